//! Packs on their schedules inside `periscope serve --packs DIR`: each pack's
//! `schedule` runs its checks that have none of their own, each check's own
//! `schedule` runs that check alone; every run reads a snapshot of the live
//! store and is stored (and diffed) under `<data>/reports`, optionally written
//! as files and POSTed to a webhook. Packs are read once, at start.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::pack::{self, Pack};
use super::run::{self, RunOptions, Target};
use periscope_store::store::Store;

/// How the scheduler runs.
#[derive(Debug, Clone)]
pub struct ScheduleOptions {
    /// Directory of pack files (`*.toml`), read once at start.
    pub packs: PathBuf,
    /// Time limit of a check that sets none.
    pub timeout: Duration,
    /// Also write each run's report files (JSON, CSV, JUnit, HTML) under `<out>/<pack>/`.
    pub out: Option<PathBuf>,
    /// POST each run's JSON here.
    pub webhook: Option<String>,
    /// The memory a check may use (and the server-wide SQL budget it draws on).
    pub limits: periscope_query::query::Limits,
}

/// One schedule: a pack and the checks it runs (None: those without their own schedule).
struct Job {
    pack: Arc<Pack>,
    cron: croner::Cron,
    expr: String,
    only: HashSet<String>,
    next: Option<DateTime<Utc>>,
}

/// Loads the packs and builds their jobs; problems are logged, never fatal.
async fn load(dir: &std::path::Path) -> anyhow::Result<Vec<Job>> {
    let files = pack::list(dir).map_err(|e| anyhow::anyhow!("cannot list packs in {}: {e}", dir.display()))?;
    let mut jobs = Vec::new();
    for f in files {
        let p = Arc::new(pack::load(&f).await);
        for problem in p.all_problems() {
            eprintln!("periscope: pack problem: {problem}");
        }
        let mut by_pack = HashSet::new();
        for c in &p.checks {
            match &c.schedule {
                Some(expr) => {
                    if let Ok(cron) = pack::parse_cron(expr) {
                        let only = HashSet::from([c.id.clone()]);
                        jobs.push(Job { pack: p.clone(), cron, expr: expr.clone(), only, next: None });
                    }
                }
                None => {
                    by_pack.insert(c.id.clone());
                }
            }
        }
        if let Some(expr) = &p.schedule
            && !by_pack.is_empty()
            && let Ok(cron) = pack::parse_cron(expr)
        {
            jobs.push(Job { pack: p.clone(), cron, expr: expr.clone(), only: by_pack, next: None });
        }
    }
    Ok(jobs)
}

/// Runs the scheduled packs until `stop` turns true.
pub async fn run(store: Arc<Store>, opts: ScheduleOptions, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut jobs = match load(&opts.packs).await {
        Ok(j) => j,
        Err(e) => {
            eprintln!("periscope: scheduler: {e:#}");
            return;
        }
    };
    for j in &jobs {
        eprintln!("periscope: scheduled pack {} ({} checks) at {:?}", j.pack.name, j.only.len(), j.expr);
    }
    let history = store.dir().join(super::history::REPORTS_DIR);
    loop {
        let now = Utc::now();
        for j in &mut jobs {
            if j.next.is_none() {
                j.next = j.cron.find_next_occurrence(&now, false).ok();
            }
        }
        let Some(due) = jobs.iter().filter_map(|j| j.next).min() else {
            // Nothing will ever fire.
            let _ = stop.wait_for(|s| *s).await;
            return;
        };
        let wait = (due - now).to_std().unwrap_or(Duration::ZERO);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        for j in jobs.iter_mut().filter(|j| j.next.is_some_and(|n| n <= Utc::now())) {
            j.next = None;
            let label = store.dir().display().to_string();
            let target = match Target::snapshot_in(store.snapshot(), label, &opts.limits).await {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("periscope: scheduled run of {}: {e}", j.pack.name);
                    continue;
                }
            };
            let ropts = RunOptions {
                timeout: opts.timeout,
                only: Some(j.only.clone()),
                trigger: "schedule".into(),
                history: Some(history.clone()),
                store: true,
            };
            let r = run::run(&j.pack, &target, &ropts).await;
            let s = &r.summary;
            eprintln!(
                "periscope: report {}: {} checks, {} failed, {} errors, {} failing items ({} new, {} resolved)",
                r.run_id, s.checks, s.failed, s.errors, s.failing_items, s.new_items, s.resolved_items
            );
            if let Some(out) = &opts.out
                && let Err(e) = super::deliver::write_files(&r, Some(&history), &out.join(&r.pack)).await
            {
                eprintln!("periscope: report {}: cannot write files: {e:#}", r.run_id);
            }
            if let Some(url) = &opts.webhook
                && let Err(e) = super::deliver::post_webhook(url, &r).await
            {
                eprintln!("periscope: report {}: {e:#}", r.run_id);
            }
        }
    }
}
