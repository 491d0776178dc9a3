//! Stored runs: each run becomes one Parquet file per table under
//! `<data>/reports/<table>/<run_id>.parquet`, served by SQL as
//!
//! - `report_runs`: one row per run (counts, source, trigger, pack problems),
//! - `report_checks`: one row per check per run (status, error, item counts),
//! - `report_results`: one row per failing or resolved item per run, with its `change`
//!   (new, still_failing, resolved) against the previous run of the same pack.
//!
//! A run's `report_runs` file is written last (each file through a rename), so
//! a run is visible only once all of it is.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::datasource::MemTable;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::prelude::SessionContext;

use super::outcome::{Change, Item, Previous, Run};
use super::severity::Severity;

/// Where runs are stored inside a data directory.
pub const REPORTS_DIR: &str = "reports";

pub const RUNS: &str = "report_runs";
pub const CHECKS: &str = "report_checks";
pub const RESULTS: &str = "report_results";

fn ts() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into()))
}

fn schema(table: &str) -> SchemaRef {
    let s = |n: &str| Field::new(n, DataType::Utf8, true);
    let i = |n: &str| Field::new(n, DataType::Int64, true);
    let head = [s("run_id"), s("pack"), Field::new("started", ts(), true)];
    let rest: Vec<Field> = match table {
        RUNS => vec![
            s("pack_file"),
            s("source"),
            s("trigger"),
            i("duration_ms"),
            s("previous_run_id"),
            i("checks"),
            i("passed"),
            i("failed"),
            i("errors"),
            i("failing_items"),
            i("new_items"),
            i("resolved_items"),
            s("problems"),
        ],
        CHECKS => vec![
            s("check_id"),
            s("title"),
            s("severity"),
            s("tags"),
            s("status"),
            s("error"),
            i("duration_ms"),
            i("failing_items"),
            i("new_items"),
            i("resolved_items"),
        ],
        _ => vec![
            s("check_id"),
            s("severity"),
            s("host"),
            s("scope"),
            s("scope_id"),
            s("container"),
            s("item"),
            s("reason"),
            s("change"),
            s("details"),
        ],
    };
    Arc::new(Schema::new(head.into_iter().chain(rest).collect::<Vec<_>>()))
}

fn strings<I: IntoIterator<Item = Option<String>>>(v: I) -> ArrayRef {
    Arc::new(StringArray::from(v.into_iter().collect::<Vec<_>>()))
}

fn ints<I: IntoIterator<Item = i64>>(v: I) -> ArrayRef {
    Arc::new(Int64Array::from(v.into_iter().collect::<Vec<_>>()))
}

/// The three batches a run is stored as.
fn batches(run: &Run) -> Result<[(&'static str, RecordBatch); 3], arrow_schema::ArrowError> {
    let head = |n: usize| -> Vec<ArrayRef> {
        vec![
            strings(std::iter::repeat_n(Some(run.run_id.clone()), n)),
            strings(std::iter::repeat_n(Some(run.pack.clone()), n)),
            Arc::new(TimestampMicrosecondArray::from(vec![run.started_us; n]).with_timezone("+00:00")),
        ]
    };
    let s = &run.summary;
    let mut cols = head(1);
    cols.extend([
        strings([Some(run.pack_file.clone())]),
        strings([Some(run.source.clone())]),
        strings([Some(run.trigger.clone())]),
        ints([run.duration_ms as i64]),
        strings([run.previous_run_id.clone()]),
    ]);
    for n in [s.checks, s.passed, s.failed, s.errors, s.failing_items, s.new_items, s.resolved_items] {
        cols.push(ints([n as i64]));
    }
    cols.push(strings([(!run.problems.is_empty()).then(|| run.problems.join("\n"))]));
    let runs = RecordBatch::try_new(schema(RUNS), cols)?;

    let c = &run.checks;
    let mut cols = head(c.len());
    cols.extend([
        strings(c.iter().map(|c| Some(c.id.clone()))),
        strings(c.iter().map(|c| Some(c.title.clone()))),
        strings(c.iter().map(|c| Some(c.severity.to_string()))),
        strings(c.iter().map(|c| Some(c.tags.join(",")))),
        strings(c.iter().map(|c| Some(c.status.as_str().to_string()))),
        strings(c.iter().map(|c| c.error.clone())),
        ints(c.iter().map(|c| c.duration_ms as i64)),
        ints(c.iter().map(|c| c.failing.len() as i64)),
        ints(c.iter().map(|c| c.failing.iter().filter(|i| i.change == Change::New).count() as i64)),
        ints(c.iter().map(|c| c.resolved.len() as i64)),
    ]);
    let checks = RecordBatch::try_new(schema(CHECKS), cols)?;

    let rows: Vec<_> = c.iter().flat_map(|c| c.failing.iter().chain(&c.resolved).map(move |i| (c, i))).collect();
    let mut cols = head(rows.len());
    let details = |i: &Item| {
        (!i.details.is_empty())
            .then(|| serde_json::Value::Object(i.details.iter().map(|(k, v)| (k.clone(), v.clone().into())).collect()))
            .map(|v| v.to_string())
    };
    cols.extend([
        strings(rows.iter().map(|(c, _)| Some(c.id.clone()))),
        strings(rows.iter().map(|(c, _)| Some(c.severity.to_string()))),
        strings(rows.iter().map(|(_, i)| Some(i.host.clone()))),
        strings(rows.iter().map(|(_, i)| Some(i.scope.clone()))),
        strings(rows.iter().map(|(_, i)| i.scope_id.clone())),
        strings(rows.iter().map(|(_, i)| i.container.clone())),
        strings(rows.iter().map(|(_, i)| Some(i.item.clone()))),
        strings(rows.iter().map(|(_, i)| Some(i.reason.clone()))),
        strings(rows.iter().map(|(_, i)| Some(i.change.as_str().to_string()))),
        strings(rows.iter().map(|(_, i)| details(i))),
    ]);
    let results = RecordBatch::try_new(schema(RESULTS), cols)?;
    Ok([(RESULTS, results), (CHECKS, checks), (RUNS, runs)])
}

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Arrow(#[from] arrow_schema::ArrowError),
    #[error("{0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("{0}")]
    Sql(#[from] datafusion::error::DataFusionError),
}

/// Stores `run` under `dir` (`<data>/reports`).
pub fn store(dir: &Path, run: &Run) -> Result<(), HistoryError> {
    for (table, batch) in batches(run)? {
        let tdir = dir.join(table);
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| HistoryError::Io { path, source }
        };
        std::fs::create_dir_all(&tdir).map_err(io(&tdir))?;
        let tmp = tdir.join(format!(".{}.tmp", run.run_id));
        let file = std::fs::File::create(&tmp).map_err(io(&tmp))?;
        let mut w = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None)?;
        w.write(&batch)?;
        w.into_inner()?.sync_all().map_err(io(&tmp))?;
        let path = tdir.join(format!("{}.parquet", run.run_id));
        std::fs::rename(&tmp, &path).map_err(io(&path))?;
    }
    Ok(())
}

/// Registers `report_runs`, `report_checks` and `report_results` over the runs
/// stored in `dir` (empty tables when there are none or no `dir`).
pub fn register(ctx: &SessionContext, dir: Option<&Path>) -> datafusion::error::Result<()> {
    let complete: std::collections::HashSet<String> = dir.map(|d| stems(&d.join(RUNS))).unwrap_or_default();
    for table in [RUNS, CHECKS, RESULTS] {
        let schema = schema(table);
        let files: Vec<PathBuf> = match dir {
            Some(d) => {
                let mut v: Vec<_> =
                    stems(&d.join(table)).into_iter().filter(|s| complete.contains(s)).collect::<Vec<_>>();
                v.sort();
                v.into_iter().map(|s| d.join(table).join(format!("{s}.parquet"))).collect()
            }
            None => Vec::new(),
        };
        if files.is_empty() {
            ctx.register_table(table, Arc::new(MemTable::try_new(schema, vec![vec![]])?))?;
            continue;
        }
        let urls = files
            .iter()
            .map(|p| ListingTableUrl::parse(p.display().to_string()))
            .collect::<datafusion::error::Result<Vec<_>>>()?;
        let options = ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
        let cfg = ListingTableConfig::new_with_multi_paths(urls).with_listing_options(options).with_schema(schema);
        ctx.register_table(table, Arc::new(ListingTable::try_new(cfg)?))?;
    }
    Ok(())
}

/// The report tables as a catalog extension: the runs stored under
/// `<data>/`[`REPORTS_DIR`] of the data directory a session reads.
pub struct Tables;

impl periscope_query::catalog::Extension for Tables {
    fn register(&self, ctx: &SessionContext, data: Option<&Path>) -> datafusion::error::Result<()> {
        register(ctx, data.map(|d| d.join(REPORTS_DIR)).as_deref())
    }
}

/// Run ids with a file in `dir`.
fn stems(dir: &Path) -> std::collections::HashSet<String> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Default::default() };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.strip_suffix(".parquet").map(str::to_string))
        .filter(|s| !s.starts_with('.'))
        .collect()
}

/// A session over the stored runs only.
fn context(dir: &Path) -> datafusion::error::Result<SessionContext> {
    let ctx = SessionContext::new();
    register(&ctx, Some(dir))?;
    Ok(ctx)
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

async fn collect(ctx: &SessionContext, sql: &str) -> Result<Vec<RecordBatch>, HistoryError> {
    Ok(ctx.sql(sql).await?.collect().await?)
}

fn col<'a>(b: &'a RecordBatch, name: &str) -> &'a StringArray {
    b.column_by_name(name).expect("column of a query written here").as_string::<i32>()
}

/// What the last runs of `pack` found failing, per check: for each check, the
/// items of the latest run in which it ran without error.
pub async fn previous(dir: &Path, pack: &str) -> Result<Previous, HistoryError> {
    let ctx = context(dir)?;
    let p = quote(pack);
    let last =
        collect(&ctx, &format!("SELECT run_id FROM {RUNS} WHERE pack = {p} ORDER BY started DESC LIMIT 1")).await?;
    let run_id = last.iter().find(|b| b.num_rows() > 0).map(|b| col(b, "run_id").value(0).to_string());
    let sql = format!(
        "SELECT r.check_id, r.host, r.scope, r.scope_id, r.container, r.item, r.reason, r.details \
         FROM {RESULTS} r JOIN ( \
           SELECT check_id, max(started) AS started FROM {CHECKS} \
           WHERE pack = {p} AND status <> 'error' GROUP BY check_id) l \
         ON r.check_id = l.check_id AND r.started = l.started \
         WHERE r.pack = {p} AND r.change <> 'resolved'"
    );
    let mut failing: std::collections::HashMap<String, Vec<Item>> = Default::default();
    for b in collect(&ctx, &sql).await? {
        let opt = |name: &str, i: usize| {
            let c = col(&b, name);
            c.is_valid(i).then(|| c.value(i).to_string())
        };
        for i in 0..b.num_rows() {
            let details = opt("details", i)
                .and_then(|d| serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&d).ok())
                .map(|m| m.into_iter().map(|(k, v)| (k, v.as_str().unwrap_or_default().to_string())).collect())
                .unwrap_or_default();
            failing.entry(opt("check_id", i).unwrap_or_default()).or_default().push(Item {
                host: opt("host", i).unwrap_or_default(),
                scope: opt("scope", i).unwrap_or_default(),
                scope_id: opt("scope_id", i),
                container: opt("container", i),
                item: opt("item", i).unwrap_or_default(),
                reason: opt("reason", i).unwrap_or_default(),
                change: Change::StillFailing,
                details,
            });
        }
    }
    Ok(Previous { run_id, failing })
}

/// One past run of a pack, for the trend chart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Point {
    pub run_id: String,
    pub started_us: i64,
    /// Failing items per severity, in [`Severity::ALL`] order.
    pub items: [i64; 5],
}

/// The last `n` stored runs of `pack`, oldest first.
pub async fn recent(dir: &Path, pack: &str, n: usize) -> Result<Vec<Point>, HistoryError> {
    let ctx = context(dir)?;
    let p = quote(pack);
    let sql = format!(
        "SELECT r.run_id, arrow_cast(r.started, 'Int64') AS started, c.severity, \
                CAST(sum(c.failing_items) AS BIGINT) AS items \
         FROM (SELECT run_id, started FROM {RUNS} WHERE pack = {p} ORDER BY started DESC LIMIT {n}) r \
         LEFT JOIN {CHECKS} c ON c.run_id = r.run_id \
         GROUP BY r.run_id, r.started, c.severity"
    );
    let mut points: Vec<Point> = Vec::new();
    for b in collect(&ctx, &sql).await? {
        let (ids, sev) = (col(&b, "run_id"), col(&b, "severity"));
        let started = b.column_by_name("started").unwrap().as_primitive::<arrow_array::types::Int64Type>();
        let items = b.column_by_name("items").unwrap().as_primitive::<arrow_array::types::Int64Type>();
        for i in 0..b.num_rows() {
            let id = ids.value(i).to_string();
            let idx = match points.iter().position(|p| p.run_id == id) {
                Some(x) => x,
                None => {
                    points.push(Point { run_id: id, started_us: started.value(i), items: [0; 5] });
                    points.len() - 1
                }
            };
            if sev.is_valid(i)
                && let Some(s) = Severity::parse(sev.value(i))
            {
                points[idx].items[s as usize] += if items.is_valid(i) { items.value(i) } else { 0 };
            }
        }
    }
    points.sort_by_key(|p| (p.started_us, p.run_id.clone()));
    Ok(points)
}

/// Makes the stored report runs (the `report_*` tables) SQL tables of every
/// catalog built from now on in this process; once is enough, more is
/// harmless. Report runs over a data directory call it themselves; the
/// binary calls it first thing, so every front and subcommand has them.
pub fn install() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| periscope_query::catalog::extend(Arc::new(Tables)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::{CheckRun, Status, Summary};

    fn run(n: i64, checks: Vec<(&str, Status, Vec<Item>)>) -> Run {
        Run {
            run_id: format!("p-{n}"),
            pack: "p".into(),
            pack_title: "p".into(),
            pack_file: "p.toml".into(),
            source: "test".into(),
            trigger: "cli".into(),
            started: String::new(),
            started_us: n,
            duration_ms: 1,
            previous_run_id: None,
            summary: Summary::default(),
            problems: vec![],
            checks: checks
                .into_iter()
                .map(|(id, status, failing)| CheckRun {
                    id: id.into(),
                    title: id.into(),
                    severity: Severity::High,
                    tags: vec![],
                    rationale: String::new(),
                    remediation: String::new(),
                    status,
                    error: (status == Status::Error).then(|| "boom".into()),
                    invalid: false,
                    duration_ms: 1,
                    failing,
                    resolved: vec![],
                })
                .collect(),
        }
    }

    #[tokio::test]
    async fn previous_reads_each_checks_last_decided_run_of_the_same_pack() {
        let dir = tempfile::tempdir().unwrap();
        store(
            dir.path(),
            &run(1, vec![("a", Status::Fail, vec![Item::example("x")]), ("b", Status::Fail, vec![Item::example("y")])]),
        )
        .unwrap();
        // Check b errored in the latest run: its items come from the run before.
        store(dir.path(), &run(2, vec![("a", Status::Fail, vec![Item::example("z")]), ("b", Status::Error, vec![])]))
            .unwrap();
        // Another pack, and a run whose report_runs file never landed (a crash mid-store), are invisible.
        let mut other = run(3, vec![("a", Status::Fail, vec![Item::example("other")])]);
        other.pack = "q".into();
        store(dir.path(), &other).unwrap();
        let mut half = run(4, vec![("a", Status::Fail, vec![Item::example("half")])]);
        half.run_id = "p-4".into();
        store(dir.path(), &half).unwrap();
        std::fs::remove_file(dir.path().join(RUNS).join("p-4.parquet")).unwrap();

        let prev = previous(dir.path(), "p").await.unwrap();
        assert_eq!(prev.run_id.as_deref(), Some("p-2"));
        let names = |id: &str| prev.failing[id].iter().map(|i| i.item.clone()).collect::<Vec<_>>();
        assert_eq!(names("a"), ["z"]);
        assert_eq!(names("b"), ["y"]);
        assert_eq!(prev.failing["a"][0].details, [("image".to_string(), "debian".to_string())]);
        let points = recent(dir.path(), "p", 10).await.unwrap();
        assert_eq!(points.iter().map(|p| p.run_id.as_str()).collect::<Vec<_>>(), ["p-1", "p-2"]);
        assert_eq!(points[0].items[Severity::High as usize], 2);
    }

    #[tokio::test]
    async fn no_stored_runs_is_an_empty_history() {
        let dir = tempfile::tempdir().unwrap();
        let prev = previous(&dir.path().join("missing"), "p").await.unwrap();
        assert!(prev.run_id.is_none() && prev.failing.is_empty());
    }
}
