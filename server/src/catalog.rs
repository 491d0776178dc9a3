//! The SQL catalog over a data directory.
//!
//! Each declared table's files are registered as `<table>_history` (every row
//! ever stored). `crawls` is the log of completed crawls, `scope_crawls` its
//! newest row per scope and `latest_crawls` those of scopes still alive (hosts
//! heard from within the host expiry, containers their host still lists); every other table `<table>` is a view of the rows
//! from its scope's latest completed crawl — "what is true now" — or, for a
//! table that crawl marked unchanged, from the crawl that last sent it. A context is
//! built per query over a [`Snapshot`], so each query sees the rows acknowledged
//! when it starts, flushed to Parquet or not. Stored compliance-report runs
//! are `report_runs`, `report_checks` and `report_results` (see [`crate::report::history`]).

use std::sync::Arc;
use std::time::Duration;

use arrow_schema::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::datasource::{MemTable, TableProvider, TableType};
use datafusion::error::Result;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::union::UnionExec;
use datafusion::prelude::{SessionConfig, SessionContext};
use periscope_proto::tables::{CRAWLS, TABLES, Table, UNCHANGED};

use crate::store::{Snapshot, Store};

/// One table as of a snapshot: its committed Parquet files and its rows not
/// yet flushed, scanned as one. Holds the snapshot (and so, for a reader in
/// another process, the shared store lock) while any plan uses it.
struct StoredTable {
    schema: SchemaRef,
    files: Option<ListingTable>,
    recent: MemTable,
    _snapshot: Arc<Snapshot>,
}

impl std::fmt::Debug for StoredTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredTable").finish_non_exhaustive()
    }
}

impl StoredTable {
    fn new(t: &Table, snapshot: &Arc<Snapshot>) -> Result<StoredTable> {
        let schema = t.schema();
        let paths = snapshot.files.get(t.name);
        let files = if paths.is_empty() {
            None
        } else {
            let urls =
                paths.iter().map(|p| ListingTableUrl::parse(p.display().to_string())).collect::<Result<Vec<_>>>()?;
            let options = ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
            let cfg = ListingTableConfig::new_with_multi_paths(urls)
                .with_listing_options(options)
                .with_schema(schema.clone());
            Some(ListingTable::try_new(cfg)?)
        };
        let recent = snapshot.batches.get(t.name).cloned().unwrap_or_default();
        let recent = MemTable::try_new(schema.clone(), vec![recent])?;
        Ok(StoredTable { schema, files, recent, _snapshot: snapshot.clone() })
    }
}

#[async_trait]
impl TableProvider for StoredTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> Result<Vec<TableProviderFilterPushDown>> {
        // Filters prune Parquet row groups; they are applied again above the
        // scan, since the in-memory part ignores them.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let recent = self.recent.scan(state, projection, &[], limit).await?;
        let Some(files) = &self.files else { return Ok(recent) };
        let stored = files.scan(state, projection, filters, limit).await?;
        UnionExec::try_new(vec![stored, recent])
    }
}

/// The catalog every table lives in (schema `public`).
pub const CATALOG: &str = "periscope";

/// Snapshots of recent scans with when they were taken.
type RecentSnapshots = std::sync::Mutex<std::collections::VecDeque<(std::time::Instant, Arc<Snapshot>)>>;

tokio::task_local! {
    /// The snapshot every [`LiveTable`] scanned within this scope reads, so one
    /// statement sees one moment of the store (the Postgres front sets it per statement).
    pub static PINNED: Arc<Snapshot>;
}

/// One table read from the store as of each scan (or of the pinned snapshot): for long-lived sessions
/// (the Postgres front), which must see crawls stored after they started.
struct LiveTable {
    table: &'static Table,
    store: Arc<Store>,
    /// Snapshots of recent scans, kept for `keep_for`: a plan reads the files
    /// its snapshot listed after `scan` returns, and a compaction must not
    /// delete them meanwhile. Queries end within their time limit, shorter.
    recent: Arc<RecentSnapshots>,
    keep_for: Duration,
}

impl std::fmt::Debug for LiveTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveTable").field("table", &self.table.name).finish()
    }
}

#[async_trait]
impl TableProvider for LiveTable {
    fn schema(&self) -> SchemaRef {
        self.table.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let snapshot = PINNED.try_with(Arc::clone).unwrap_or_else(|_| Arc::new(self.store.snapshot()));
        {
            let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
            while recent.front().is_some_and(|(at, _)| at.elapsed() > self.keep_for) {
                recent.pop_front();
            }
            recent.push_back((std::time::Instant::now(), snapshot.clone()));
        }
        StoredTable::new(self.table, &snapshot)?.scan(state, projection, filters, limit).await
    }
}

/// Builds a fresh session over `snapshot`.
pub async fn context(snapshot: Snapshot) -> Result<SessionContext> {
    context_with(snapshot, None).await
}

/// Builds a fresh session over `snapshot`, in `runtime` (memory limits) when given.
pub async fn context_with(snapshot: Snapshot, runtime: Option<Arc<RuntimeEnv>>) -> Result<SessionContext> {
    let snapshot = Arc::new(snapshot);
    let reports = snapshot.reports.clone();
    register(session(runtime), snapshot.host_expiry, reports, |t| Ok(Arc::new(StoredTable::new(t, &snapshot)?))).await
}

/// A long-lived session whose tables read `store` as of each query; the
/// files a query's plan reads stay on disk for `keep_for` (longer than any
/// query may run).
pub async fn live_context(
    store: Arc<Store>,
    runtime: Option<Arc<RuntimeEnv>>,
    keep_for: Duration,
) -> Result<SessionContext> {
    let expiry = store.config().host_expiry;
    let reports = Some(store.dir().join(crate::report::REPORTS_DIR));
    let recent = Arc::default();
    register(session(runtime), expiry, reports, |t| {
        Ok(Arc::new(LiveTable { table: t, store: store.clone(), recent: Arc::clone(&recent), keep_for }))
    })
    .await
}

fn session(runtime: Option<Arc<RuntimeEnv>>) -> SessionContext {
    let config = SessionConfig::new().with_information_schema(true).with_default_catalog_and_schema(CATALOG, "public");
    match runtime {
        Some(rt) => SessionContext::new_with_config_rt(config, rt),
        None => SessionContext::new_with_config(config),
    }
}

/// Registers every table (from `provider`), the views over them and the descriptions.
async fn register(
    ctx: SessionContext,
    host_expiry: Duration,
    reports: Option<std::path::PathBuf>,
    provider: impl Fn(&'static Table) -> Result<Arc<dyn TableProvider>>,
) -> Result<SessionContext> {
    crate::udf::register(&ctx);
    for t in TABLES {
        let name = if t.name == CRAWLS.name { t.name.to_string() } else { format!("{}_history", t.name) };
        ctx.register_table(name, provider(t)?)?;
    }
    register_descriptions(&ctx)?;
    crate::report::history::register(&ctx, reports.as_deref())?;
    // The newest crawl of every scope, then the ones still alive: a host that
    // has not been crawled within `host_expiry` leaves current state with its
    // containers, and a container its host's newest listing no longer shows
    // (removed) leaves too. Both stay in the `_history` tables.
    ctx.sql(
        "CREATE VIEW scope_crawls AS \
         SELECT host, scope, scope_id, max(crawl_time) AS crawl_time FROM crawls GROUP BY host, scope, scope_id",
    )
    .await?;
    ctx.sql(&format!(
        "CREATE VIEW latest_crawls AS \
         WITH hosts AS ( \
           SELECT h.host, h.crawl_time, COALESCE(u.since, h.crawl_time) AS listed_at, \
                  h.crawl_time >= now() - INTERVAL '{expiry} seconds' AS alive \
           FROM scope_crawls h LEFT JOIN unchanged_history u \
             ON u.host = h.host AND u.scope = h.scope AND u.scope_id = h.scope_id \
             AND u.crawl_time = h.crawl_time AND u.table_name = 'containers' \
           WHERE h.scope = 'host'), \
         listed AS ( \
           SELECT DISTINCT c.host, c.container_id FROM containers_history c JOIN hosts h \
             ON c.host = h.host AND c.scope = 'host' AND c.crawl_time = h.listed_at) \
         SELECT s.host, s.scope, s.scope_id, s.crawl_time FROM scope_crawls s \
         LEFT JOIN hosts h ON h.host = s.host \
         LEFT JOIN listed l ON l.host = s.host AND l.container_id = s.scope_id \
         WHERE CASE s.scope \
           WHEN 'host' THEN h.alive \
           WHEN 'container' THEN h.host IS NULL \
             OR (h.alive AND (l.container_id IS NOT NULL OR s.crawl_time > h.crawl_time)) \
           ELSE true END",
        expiry = host_expiry.as_secs()
    ))
    .await?;
    // A table the agent did not resend because its rows did not change is read
    // from the crawl that last carried it (`unchanged.since`).
    for t in TABLES.iter().filter(|t| t.name != CRAWLS.name && t.name != UNCHANGED.name) {
        ctx.sql(&format!(
            "CREATE VIEW {0} AS SELECT t.* FROM {0}_history t JOIN ( \
               SELECT l.host, l.scope, l.scope_id, COALESCE(u.since, l.crawl_time) AS data_time \
               FROM latest_crawls l LEFT JOIN unchanged_history u \
               ON u.host = l.host AND u.scope = l.scope AND u.scope_id = l.scope_id \
                  AND u.crawl_time = l.crawl_time AND u.table_name = '{0}') k \
             ON t.host = k.host AND t.scope = k.scope AND t.scope_id = k.scope_id AND t.crawl_time = k.data_time",
            t.name
        ))
        .await?;
    }
    // osquery-style differential history: what each crawl of a scope added to
    // or removed from the previous one (a scope's first crawl adds everything).
    // A crawl that marked packages unchanged compares what it points at.
    ctx.sql(
        "CREATE VIEW package_changes AS \
         WITH c AS ( \
           SELECT host, scope, scope_id, crawl_time, \
                  LAG(crawl_time) OVER (PARTITION BY host, scope, scope_id ORDER BY crawl_time) AS prev_crawl \
           FROM crawls), \
         d AS ( \
           SELECT c.host, c.scope, c.scope_id, c.crawl_time, COALESCE(u.since, c.crawl_time) AS data_time, \
                  CASE WHEN c.prev_crawl IS NULL THEN NULL ELSE COALESCE(pu.since, c.prev_crawl) END AS prev_time \
           FROM c LEFT JOIN unchanged_history u ON u.host = c.host AND u.scope = c.scope \
             AND u.scope_id = c.scope_id AND u.crawl_time = c.crawl_time AND u.table_name = 'packages' \
           LEFT JOIN unchanged_history pu ON pu.host = c.host AND pu.scope = c.scope \
             AND pu.scope_id = c.scope_id AND pu.crawl_time = c.prev_crawl AND pu.table_name = 'packages'), \
         now AS ( \
           SELECT d.host, d.scope, d.scope_id, d.crawl_time, p.manager, p.name, p.version, p.architecture \
           FROM d JOIN packages_history p ON p.host = d.host AND p.scope = d.scope \
             AND p.scope_id = d.scope_id AND p.crawl_time = d.data_time), \
         before AS ( \
           SELECT d.host, d.scope, d.scope_id, d.crawl_time, p.manager, p.name, p.version, p.architecture \
           FROM d JOIN packages_history p ON p.host = d.host AND p.scope = d.scope \
             AND p.scope_id = d.scope_id AND p.crawl_time = d.prev_time) \
         SELECT *, 'added' AS action FROM (SELECT * FROM now EXCEPT SELECT * FROM before) \
         UNION ALL SELECT *, 'removed' AS action FROM (SELECT * FROM before EXCEPT SELECT * FROM now)",
    )
    .await?;
    ctx.sql(
        "CREATE VIEW unchanged AS SELECT u.* FROM unchanged_history u JOIN latest_crawls l \
         ON u.host = l.host AND u.scope = l.scope AND u.scope_id = l.scope_id AND u.crawl_time = l.crawl_time",
    )
    .await?;
    Ok(ctx)
}

/// `table_descriptions` (table_name, description) and `column_descriptions`
/// (table_name, column_name, data_type, description): what every table and
/// column means, from the declarations in `periscope_proto::tables`, so SQL
/// clients can read it beside `information_schema.columns`.
fn register_descriptions(ctx: &SessionContext) -> Result<()> {
    use arrow_array::{RecordBatch, StringArray};
    use arrow_schema::{DataType, Field, Schema};
    use datafusion::datasource::MemTable;
    use periscope_proto::tables::COMMON_COLUMNS;
    let utf8 = |n: &str| Field::new(n, DataType::Utf8, false);
    let strings = |v: Vec<String>| Arc::new(StringArray::from(v)) as arrow_array::ArrayRef;

    let schema = Arc::new(Schema::new(vec![utf8("table_name"), utf8("description")]));
    let (names, descs): (Vec<String>, Vec<String>) =
        TABLES.iter().map(|t| (t.name.to_string(), t.description.to_string())).unzip();
    let batch = RecordBatch::try_new(schema.clone(), vec![strings(names), strings(descs)])?;
    ctx.register_table("table_descriptions", Arc::new(MemTable::try_new(schema, vec![vec![batch]])?))?;

    let schema =
        Arc::new(Schema::new(vec![utf8("table_name"), utf8("column_name"), utf8("data_type"), utf8("description")]));
    let mut cols: [Vec<String>; 4] = Default::default();
    for t in TABLES {
        for f in t.schema().fields() {
            let desc = f
                .metadata()
                .get(periscope_proto::tables::DESCRIPTION_KEY)
                .cloned()
                .or_else(|| COMMON_COLUMNS.iter().find(|c| c.name == f.name()).map(|c| c.description.to_string()))
                .unwrap_or_default();
            cols[0].push(t.name.to_string());
            cols[1].push(f.name().clone());
            cols[2].push(f.data_type().to_string());
            cols[3].push(desc);
        }
    }
    let [a, b, c, d] = cols;
    let batch = RecordBatch::try_new(schema.clone(), vec![strings(a), strings(b), strings(c), strings(d)])?;
    ctx.register_table("column_descriptions", Arc::new(MemTable::try_new(schema, vec![vec![batch]])?))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use periscope_proto::tables::CRAWL_ERRORS;

    #[tokio::test]
    async fn a_pinned_statement_sees_one_moment_and_an_unpinned_one_the_latest() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(tmp.path()).unwrap());
        let batch = crate::testutil::crawl_error_batch(3);
        store.apply(&CRAWL_ERRORS, std::slice::from_ref(&batch), "a", 1, 1).await.unwrap();
        let ctx = live_context(store.clone(), None, Duration::from_secs(60)).await.unwrap();
        let count = |ctx: SessionContext| async move {
            let b = ctx.sql("SELECT count(*) FROM crawl_errors_history").await.unwrap().collect().await.unwrap();
            arrow_array::cast::AsArray::as_primitive::<arrow_array::types::Int64Type>(b[0].column(0)).value(0)
        };
        let pinned = Arc::new(store.snapshot());
        store.apply(&CRAWL_ERRORS, std::slice::from_ref(&batch), "a", 1, 2).await.unwrap();
        assert_eq!(PINNED.scope(pinned, count(ctx.clone())).await, 3, "the statement's own moment");
        assert_eq!(count(ctx).await, 6, "without a pin, the latest");
    }
}
