//! The HTML report: one self-contained page (inline CSS and SVG, no scripts,
//! nothing fetched) with counts per severity, pass/fail per check, a chart of
//! failing items over the last runs (drawn by charts-rs), what changed since
//! the previous run and the failing items of each check.
//!
//! Counts carry `data-*` attributes so tests (and scrapers) can read them
//! without parsing the prose.

use std::fmt::Write;

use super::history::Point;
use super::render::escape;
use super::run::{Change, CheckRun, Item, Run, Status};
use super::severity::Severity;

const STYLE: &str = "
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2rem;color:#1f2328;max-width:1200px}
h1{margin-bottom:.2rem}.meta{color:#57606a;margin-top:0}
table{border-collapse:collapse;margin:.5rem 0 1.5rem}th,td{border:1px solid #d0d7de;padding:.3rem .6rem;text-align:left;vertical-align:top}
th{background:#f6f8fa}td.n{text-align:right}
.pass{color:#1a7f37;font-weight:600}.fail{color:#cf222e;font-weight:600}.error{color:#9a6700;font-weight:600}
.sev{display:inline-block;padding:0 .4rem;border-radius:.6rem;color:#fff;font-size:.85em}
.sev-critical{background:#8b0000}.sev-high{background:#cf222e}.sev-medium{background:#bc4c00}.sev-low{background:#9a6700}.sev-info{background:#57606a}
.new{color:#cf222e}.resolved{color:#1a7f37}.still_failing{color:#57606a}
details{margin:.4rem 0}summary{cursor:pointer}.chart svg{max-width:100%;height:auto}
";

fn sev(s: Severity) -> String {
    format!(r#"<span class="sev sev-{s}">{s}</span>"#)
}

/// The whole page for `run`, with `trend` (the pack's last runs, oldest first, this one included).
pub fn render(run: &Run, trend: &[Point]) -> String {
    let mut h = String::new();
    let title = format!("{} — compliance report", run.pack_title);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head><body>\n",
        escape(&title)
    );
    let _ = writeln!(h, "<h1>{}</h1>", escape(&title));
    let _ = writeln!(
        h,
        r#"<p class="meta">Pack <code>{}</code> ({}) · run <code id="run-id">{}</code> · {} · source {} · trigger {} · compared with {}</p>"#,
        escape(&run.pack),
        escape(&run.pack_file),
        escape(&run.run_id),
        escape(&run.started),
        escape(&run.source),
        escape(&run.trigger),
        escape(run.previous_run_id.as_deref().unwrap_or("no previous run")),
    );
    summary(&mut h, run);
    chart(&mut h, trend);
    checks(&mut h, run);
    changes(&mut h, run);
    failing(&mut h, run);
    if !run.problems.is_empty() {
        let _ = writeln!(h, "<h2>Pack problems</h2><ul id=\"problems\">");
        for p in &run.problems {
            let _ = writeln!(h, "<li class=\"error\">{}</li>", escape(p));
        }
        let _ = writeln!(h, "</ul>");
    }
    h.push_str("</body></html>\n");
    h
}

fn summary(h: &mut String, run: &Run) {
    let s = &run.summary;
    let _ = writeln!(
        h,
        "<h2>Summary</h2><table id=\"summary\"><tr><th>severity</th><th>checks</th><th>passed</th><th>failed</th>\
         <th>errors</th><th>failing items</th></tr>"
    );
    let row = |h: &mut String, label: String, key: &str, c: [usize; 5]| {
        let _ = writeln!(
            h,
            r#"<tr data-severity="{key}" data-checks="{}" data-passed="{}" data-failed="{}" data-errors="{}" data-items="{}"><td>{label}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td></tr>"#,
            c[0], c[1], c[2], c[3], c[4], c[0], c[1], c[2], c[3], c[4]
        );
    };
    for c in &s.by_severity {
        let label = Severity::parse(&c.severity).map(sev).unwrap_or_else(|| escape(&c.severity));
        row(h, label, &c.severity, [c.checks, c.passed, c.failed, c.errors, c.failing_items]);
    }
    row(h, "<b>total</b>".into(), "total", [s.checks, s.passed, s.failed, s.errors, s.failing_items]);
    let _ = writeln!(
        h,
        r#"</table><p id="changes-summary" data-new="{}" data-resolved="{}">{} new and {} resolved failing items since the previous run.</p>"#,
        s.new_items, s.resolved_items, s.new_items, s.resolved_items
    );
}

/// Failing items per severity over the last runs: a stacked bar chart, SVG from charts-rs.
fn chart(h: &mut String, trend: &[Point]) {
    let _ = writeln!(h, "<h2>Failing items over the last runs</h2>");
    let labels: Vec<String> = trend
        .iter()
        .map(|p| {
            chrono::DateTime::from_timestamp_micros(p.started_us)
                .map(|t| t.format("%m-%d %H:%M:%S").to_string())
                .unwrap_or_default()
        })
        .collect();
    let series: Vec<charts_rs::Series> = Severity::ALL
        .into_iter()
        .rev()
        .map(|s| {
            let mut x = charts_rs::Series::new(
                s.to_string(),
                trend.iter().map(|p| p.items[s as usize] as f32).collect::<Vec<_>>(),
            );
            x.stack = Some("items".into());
            x
        })
        .collect();
    let mut c = charts_rs::BarChart::new(series, labels);
    c.width = 900.0;
    c.height = 360.0;
    c.title.text = "Failing items per run, by severity".into();
    // The page's severity colours, critical first as the series are.
    c.series.colors = ["#8b0000", "#cf222e", "#bc4c00", "#9a6700", "#57606a"].map(charts_rs::Color::from).to_vec();
    match c.svg() {
        Ok(svg) => {
            let _ = writeln!(h, r#"<div class="chart" id="trend" data-runs="{}">{svg}</div>"#, trend.len());
        }
        Err(e) => {
            let _ = writeln!(h, "<p class=\"error\">chart could not be drawn: {}</p>", escape(&e.to_string()));
        }
    }
}

fn checks(h: &mut String, run: &Run) {
    let _ = writeln!(
        h,
        "<h2>Checks</h2><table id=\"checks\"><tr><th>check</th><th>title</th><th>severity</th><th>status</th>\
         <th>failing</th><th>new</th><th>resolved</th><th>tags</th></tr>"
    );
    let mut sorted: Vec<&CheckRun> = run.checks.iter().collect();
    sorted.sort_by(|a, b| b.severity.cmp(&a.severity).then(a.id.cmp(&b.id)));
    for c in sorted {
        let st = c.status.as_str();
        let status = match &c.error {
            Some(e) => format!(r#"<span class="{st}" title="{}">{st}</span>"#, escape(e)),
            None => format!(r#"<span class="{st}">{st}</span>"#),
        };
        let new = c.failing.iter().filter(|i| i.change == Change::New).count();
        let _ = writeln!(
            h,
            r##"<tr class="check" data-check="{id}" data-status="{st}" data-severity="{}" data-items="{}"><td><a href="#check-{id}"><code>{id}</code></a></td><td>{}</td><td>{}</td><td>{status}</td><td class="n">{}</td><td class="n">{new}</td><td class="n">{}</td><td>{}</td></tr>"##,
            c.severity,
            c.failing.len(),
            escape(&c.title),
            sev(c.severity),
            c.failing.len(),
            c.resolved.len(),
            escape(&c.tags.join(", ")),
            id = escape(&c.id),
        );
    }
    let _ = writeln!(h, "</table>");
}

fn item_rows(h: &mut String, items: &[(&CheckRun, &Item)], with_check: bool) {
    let _ = write!(h, "<tr>");
    if with_check {
        let _ = write!(h, "<th>check</th>");
    }
    let _ =
        writeln!(h, "<th>host</th><th>scope</th><th>container</th><th>item</th><th>reason</th><th>change</th></tr>");
    for (c, i) in items {
        let _ = write!(h, r#"<tr class="item" data-change="{}">"#, i.change.as_str());
        if with_check {
            let _ = write!(h, "<td><code>{}</code></td>", escape(&c.id));
        }
        let _ = writeln!(
            h,
            r#"<td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class="{}">{}</td></tr>"#,
            escape(&i.host),
            escape(&i.scope),
            escape(i.container.as_deref().unwrap_or("")),
            escape(&i.item),
            escape(&i.reason),
            i.change.as_str(),
            i.change.as_str().replace('_', " "),
        );
    }
}

fn changes(h: &mut String, run: &Run) {
    let _ = writeln!(h, "<h2>What changed since the previous run</h2>");
    if run.previous_run_id.is_none() {
        let _ = writeln!(h, "<p>No previous run of this pack: every failing item is new.</p>");
    }
    let new: Vec<_> = run
        .checks
        .iter()
        .flat_map(|c| c.failing.iter().filter(|i| i.change == Change::New).map(move |i| (c, i)))
        .collect();
    let resolved: Vec<_> = run.checks.iter().flat_map(|c| c.resolved.iter().map(move |i| (c, i))).collect();
    for (id, label, items) in [("new-items", "New failing items", new), ("resolved-items", "Resolved", resolved)] {
        let _ = writeln!(h, "<h3>{label} ({})</h3>", items.len());
        if !items.is_empty() {
            let _ = writeln!(h, "<table id=\"{id}\">");
            item_rows(h, &items, true);
            let _ = writeln!(h, "</table>");
        }
    }
}

fn failing(h: &mut String, run: &Run) {
    let _ = writeln!(h, "<h2>Failing items per check</h2>");
    let mut sorted: Vec<&CheckRun> = run.checks.iter().filter(|c| c.status != Status::Pass).collect();
    sorted.sort_by(|a, b| b.severity.cmp(&a.severity).then(a.id.cmp(&b.id)));
    if sorted.is_empty() {
        let _ = writeln!(h, "<p class=\"pass\">Every check passed.</p>");
    }
    for c in sorted {
        let _ = writeln!(
            h,
            r#"<details open id="check-{}"><summary>{} <code>{}</code> {} — {} failing</summary>"#,
            escape(&c.id),
            sev(c.severity),
            escape(&c.id),
            escape(&c.title),
            c.failing.len()
        );
        if let Some(e) = &c.error {
            let _ = writeln!(h, "<p class=\"error\">Could not run: {}</p>", escape(e));
        }
        let _ = writeln!(
            h,
            "<p><b>Why it matters:</b> {}</p><p><b>Remediation:</b> {}</p>",
            escape(&c.rationale),
            escape(&c.remediation)
        );
        if !c.failing.is_empty() {
            let items: Vec<_> = c.failing.iter().map(|i| (c, i)).collect();
            let _ = writeln!(h, "<table>");
            item_rows(h, &items, false);
            let _ = writeln!(h, "</table>");
        }
        let _ = writeln!(h, "</details>");
    }
}
