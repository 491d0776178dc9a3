//! Where a finished run goes: the report files (JSON, CSV, JUnit XML, HTML
//! with the pack's trend) and webhooks.

use super::{history, html, render, run};

/// Runs kept in the HTML report's chart.
pub const TREND_RUNS: usize = 20;

/// Writes `report.json`, `report.csv`, `junit.xml` and `report.html` for `run`
/// into `out`; the chart reads the pack's last runs from `history` when the run was stored there.
pub async fn write_files(
    run: &run::Run,
    history: Option<&std::path::Path>,
    out: &std::path::Path,
) -> anyhow::Result<()> {
    use anyhow::Context;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let file = |name: &str| -> anyhow::Result<std::io::BufWriter<std::fs::File>> {
        let p = out.join(name);
        Ok(std::io::BufWriter::new(std::fs::File::create(&p).with_context(|| format!("cannot write {}", p.display()))?))
    };
    render::json(run, &mut file("report.json")?)?;
    render::csv(run, &mut file("report.csv")?)?;
    render::junit(run, &mut file("junit.xml")?)?;
    let trend = trend(run, history).await?;
    std::io::Write::write_all(&mut file("report.html")?, html::render(run, &trend).as_bytes())?;
    Ok(())
}

/// The chart's points: the pack's last stored runs, or this run alone when it was not stored.
pub async fn trend(run: &run::Run, history: Option<&std::path::Path>) -> anyhow::Result<Vec<history::Point>> {
    let points = match history {
        Some(dir) => history::recent(dir, &run.pack, TREND_RUNS).await?,
        None => Vec::new(),
    };
    Ok(if points.iter().any(|p| p.run_id == run.run_id) { points } else { vec![this_point(run)] })
}

/// The trend point of a run that was not stored.
fn this_point(run: &run::Run) -> history::Point {
    let mut items = [0i64; 5];
    for c in &run.checks {
        items[c.severity as usize] += c.failing.len() as i64;
    }
    history::Point { run_id: run.run_id.clone(), started_us: run.started_us, items }
}

/// POSTs `run` as JSON (the `report.json` document) to `url`; a non-2xx answer is an error.
pub async fn post_webhook(url: &str, run: &run::Run) -> anyhow::Result<()> {
    let body = serde_json::to_vec(run)?;
    let target = url.to_string();
    let sent = tokio::task::spawn_blocking(move || {
        let config = ureq::Agent::config_builder().timeout_global(Some(std::time::Duration::from_secs(30))).build();
        ureq::Agent::new_with_config(config)
            .post(&target)
            .header("content-type", "application/json")
            .send(&body[..])
            .map(|_| ())
    })
    .await?;
    sent.map_err(|e| anyhow::anyhow!("webhook {url}: {e}"))
}
