//! Running a pack: every check over the same rows, each within its time limit,
//! one failing check or broken query never stopping the others; then the
//! diff against the previous run of the same pack.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use arrow_array::{Array, RecordBatch};
use arrow_schema::SchemaRef;
use datafusion::prelude::SessionContext;

pub use super::outcome::{Change, CheckRun, Item, Previous, Run, SeverityCount, Status, Summary};
use super::pack::{Check, Pack};
use periscope_query::query::{self, Access, Limits};

/// Where a run's checks read from.
pub enum Target {
    /// A session over one snapshot of a data directory or of the live store:
    /// every check sees the same rows.
    Local { ctx: SessionContext, label: String },
    /// A running server over gRPC (its own query limits apply too).
    Remote { url: String, credentials: Option<(String, String)> },
}

impl Target {
    /// A snapshot of the data directory `dir` (a server may be writing to it).
    pub async fn data(dir: &Path) -> Result<Target, query::QueryError> {
        let snapshot = periscope_store::store::Store::read(dir).map_err(|e| query::QueryError::Store(e.to_string()))?;
        Target::snapshot(snapshot, dir.display().to_string()).await
    }

    pub async fn snapshot(
        snapshot: periscope_store::store::Snapshot,
        label: String,
    ) -> Result<Target, query::QueryError> {
        Target::snapshot_in(snapshot, label, &Limits::none()).await
    }

    /// [`Target::snapshot`], its checks within the memory of `limits`.
    pub async fn snapshot_in(
        snapshot: periscope_store::store::Snapshot,
        label: String,
        limits: &Limits,
    ) -> Result<Target, query::QueryError> {
        super::history::install();
        Ok(Target::Local {
            ctx: periscope_query::catalog::context_with(snapshot, limits.runtime()?, limits.scope.as_ref()).await?,
            label,
        })
    }

    pub fn label(&self) -> String {
        match self {
            Target::Local { label, .. } => label.clone(),
            Target::Remote { url, .. } => url.clone(),
        }
    }

    async fn query(&self, sql: &str, timeout: Duration) -> Result<(SchemaRef, Vec<RecordBatch>), String> {
        let work = async {
            match self {
                Target::Local { ctx, .. } => query::execute(ctx, sql, Access::ReadOnly, &Limits::none()).await,
                Target::Remote { url, credentials } => query::remote(url, sql, credentials.as_ref(), |_| {}).await,
            }
        };
        // Dropping the query on timeout cancels it (locally: its DataFusion stream).
        match tokio::time::timeout(timeout, work).await {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(_) => {
                Err(format!("timed out after {} s (the check's timeout_secs, else --timeout-secs)", timeout.as_secs()))
            }
        }
    }
}

pub struct RunOptions {
    /// Time limit of a check that sets none (and whose pack sets none).
    pub timeout: Duration,
    /// Run only these checks (a check's own schedule); None: all.
    pub only: Option<HashSet<String>>,
    pub trigger: String,
    /// Where runs are stored; diffs read the previous run from here. None: no diff, not stored.
    pub history: Option<PathBuf>,
    /// Store this run in `history` (else only diff against it).
    pub store: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions { timeout: Duration::from_secs(60), only: None, trigger: "cli".into(), history: None, store: true }
    }
}

/// Runs `pack`'s checks against `target`, diffs them against the previous
/// stored run and stores this one when `opts.history` is set.
pub async fn run(pack: &Pack, target: &Target, opts: &RunOptions) -> Run {
    let started = chrono::Utc::now();
    let clock = Instant::now();
    let mut checks = Vec::new();
    for c in pack.checks.iter().filter(|c| opts.only.as_ref().is_none_or(|o| o.contains(&c.id))) {
        checks.push(run_check(c, target, c.timeout.or(pack.timeout).unwrap_or(opts.timeout)).await);
    }
    let mut run = Run {
        run_id: format!("{}-{}", pack.name, started.format("%Y%m%dT%H%M%S%.6fZ")),
        pack: pack.name.clone(),
        pack_title: if pack.title.is_empty() { pack.name.clone() } else { pack.title.clone() },
        pack_file: pack.path.display().to_string(),
        source: target.label(),
        trigger: opts.trigger.clone(),
        started: started.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        started_us: started.timestamp_micros(),
        duration_ms: 0,
        previous_run_id: None,
        summary: Summary::default(),
        problems: pack.problems.iter().map(|p| p.to_string()).collect(),
        checks,
    };
    if let Some(dir) = &opts.history {
        match super::history::previous(dir, &run.pack).await {
            Ok(prev) => diff(&mut run, prev),
            Err(e) => run.problems.push(format!("cannot read the previous run from {}: {e}", dir.display())),
        }
    }
    run.duration_ms = clock.elapsed().as_millis() as u64;
    run.summarize();
    if let Some(dir) = opts.history.as_ref().filter(|_| opts.store)
        && let Err(e) = super::history::store(dir, &run)
    {
        run.problems.push(format!("cannot store the run in {}: {e}", dir.display()));
    }
    run
}

async fn run_check(c: &Check, target: &Target, timeout: Duration) -> CheckRun {
    let clock = Instant::now();
    let mut out = CheckRun {
        id: c.id.clone(),
        title: c.title.clone(),
        severity: c.severity,
        tags: c.tags.clone(),
        rationale: c.rationale.clone(),
        remediation: c.remediation.clone(),
        status: Status::Error,
        error: None,
        invalid: false,
        duration_ms: 0,
        failing: Vec::new(),
        resolved: Vec::new(),
    };
    if let Some(p) = &c.problem {
        out.error = Some(p.to_string());
        out.invalid = true;
        return out;
    }
    match target.query(&c.sql, timeout).await.and_then(|(schema, batches)| items(&schema, &batches)) {
        Ok(items) => {
            out.status = if items.is_empty() { Status::Pass } else { Status::Fail };
            out.failing = items;
        }
        Err(e) => out.error = Some(e),
    }
    out.duration_ms = clock.elapsed().as_millis() as u64;
    out
}

/// A check's result rows as items (see `queries/README.md` for the columns).
fn items(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<Vec<Item>, String> {
    let index = |name: &str| schema.index_of(name).ok();
    let required = |name: &str| index(name).ok_or_else(|| format!("the query returned no `{name}` column"));
    let (host, scope, item, reason) = (required("host")?, required("scope")?, required("item")?, required("reason")?);
    let (scope_id, container) = (index("scope_id"), index("container"));
    let known = [Some(host), Some(scope), Some(item), Some(reason), scope_id, container];
    let mut out = Vec::new();
    for b in batches {
        let cols: Vec<Vec<Option<String>>> = b.columns().iter().map(|a| text(a.as_ref())).collect::<Result<_, _>>()?;
        for row in 0..b.num_rows() {
            let get = |i: usize| cols[i][row].clone();
            out.push(Item {
                host: get(host).unwrap_or_default(),
                scope: get(scope).unwrap_or_default(),
                scope_id: scope_id.and_then(get),
                container: container.and_then(get),
                item: get(item).unwrap_or_default(),
                reason: get(reason).unwrap_or_default(),
                change: Change::New,
                details: (0..cols.len())
                    .filter(|i| !known.contains(&Some(*i)))
                    .filter_map(|i| get(i).map(|v| (schema.field(i).name().clone(), v)))
                    .collect(),
            });
        }
    }
    Ok(out)
}

/// Each value of a column as text; None for null.
fn text(a: &dyn Array) -> Result<Vec<Option<String>>, String> {
    let f = arrow_cast::display::ArrayFormatter::try_new(a, &Default::default()).map_err(|e| e.to_string())?;
    Ok((0..a.len()).map(|i| (!a.is_null(i)).then(|| f.value(i).to_string())).collect())
}

/// Marks each failing item new or still failing, and lists what was failing
/// before and is not now. A check that errored now resolves nothing: it decided nothing.
fn diff(run: &mut Run, prev: Previous) {
    run.previous_run_id = prev.run_id;
    for c in &mut run.checks {
        let before = prev.failing.get(&c.id).map(Vec::as_slice).unwrap_or_default();
        let before_keys: HashSet<_> = before.iter().map(Item::key).collect();
        let now_keys: HashSet<_> = c.failing.iter().map(Item::key).collect();
        for i in &mut c.failing {
            i.change = if before_keys.contains(&i.key()) { Change::StillFailing } else { Change::New };
        }
        if c.status != Status::Error {
            let mut seen = HashSet::new();
            c.resolved = before
                .iter()
                .filter(|i| !now_keys.contains(&i.key()) && seen.insert(i.key()))
                .map(|i| Item { change: Change::Resolved, ..i.clone() })
                .collect();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::severity::Severity;

    /// A run of pack "p" with `checks` and nothing else set.
    fn run_of(checks: Vec<CheckRun>) -> Run {
        Run {
            run_id: "r".into(),
            pack: "p".into(),
            pack_title: String::new(),
            pack_file: String::new(),
            source: String::new(),
            trigger: String::new(),
            started: String::new(),
            started_us: 0,
            duration_ms: 0,
            previous_run_id: None,
            summary: Summary::default(),
            problems: vec![],
            checks,
        }
    }

    /// A report run from a library caller (no binary to register them) still
    /// sees the stored runs as tables, empty before any run.
    #[tokio::test]
    async fn a_target_has_the_report_tables_without_the_binary() {
        let target = Target::snapshot(periscope_store::store::Snapshot::empty(), "empty".into()).await.unwrap();
        let (_, rows) = target.query("SELECT count(*) FROM report_runs", Duration::from_secs(30)).await.unwrap();
        assert_eq!(rows.iter().map(|b| b.num_rows()).sum::<usize>(), 1);
    }

    fn check(status: Status, names: &[&str]) -> CheckRun {
        CheckRun {
            id: "c".into(),
            title: String::new(),
            severity: Severity::Low,
            tags: vec![],
            rationale: String::new(),
            remediation: String::new(),
            status,
            error: None,
            invalid: false,
            duration_ms: 0,
            failing: names.iter().map(|n| Item::example(n)).collect(),
            resolved: vec![],
        }
    }

    /// (failing before, status now, failing now, changes of the failing items, resolved).
    type DiffCase<'a> = (&'a [&'a str], Status, &'a [&'a str], &'a [&'a str], &'a [&'a str]);

    #[test]
    fn diff_marks_new_still_failing_and_resolved() {
        let cases: &[DiffCase] = &[
            (&[], Status::Fail, &["a"], &["new"], &[]),
            (&["a"], Status::Fail, &["a", "b"], &["still_failing", "new"], &[]),
            (&["a", "b"], Status::Fail, &["b"], &["still_failing"], &["a"]),
            (&["a"], Status::Pass, &[], &[], &["a"]),
            // An error decided nothing: nothing is resolved.
            (&["a"], Status::Error, &[], &[], &[]),
        ];
        for (before, status, now, changes, resolved) in cases {
            let mut run = run_of(vec![check(*status, now)]);
            let prev = Previous {
                run_id: Some("before".into()),
                failing: [("c".to_string(), before.iter().map(|n| Item::example(n)).collect())].into(),
            };
            diff(&mut run, prev);
            run.summarize();
            let c = &run.checks[0];
            let got: Vec<_> = c.failing.iter().map(|i| i.change.as_str()).collect();
            assert_eq!(&got, changes, "{before:?} -> {now:?}");
            let got: Vec<_> = c.resolved.iter().map(|i| i.item.as_str()).collect();
            assert_eq!(&got, resolved, "{before:?} -> {now:?}");
            assert!(c.resolved.iter().all(|i| i.change == Change::Resolved));
            assert_eq!(run.summary.resolved_items, resolved.len());
            assert_eq!(run.previous_run_id.as_deref(), Some("before"));
        }
    }

    #[test]
    fn gate_counts_failures_and_errors_at_or_above_the_severity_and_pack_problems() {
        let mut run = run_of(vec![check(Status::Fail, &["a"]), check(Status::Pass, &[])]);
        assert_eq!(run.gate(Severity::Low).len(), 1);
        assert!(run.gate(Severity::Medium).is_empty());
        run.checks[1].status = Status::Error;
        assert_eq!(run.gate(Severity::Low).len(), 2);
        run.checks[1].invalid = true;
        assert_eq!(run.gate(Severity::Critical).len(), 1, "an invalid check gates at any severity");
        run.problems.push("p.toml:3: TOML syntax".into());
        assert_eq!(run.gate(Severity::Critical).len(), 2);
    }
}
