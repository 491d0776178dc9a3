//! The SQL catalog over a data directory.
//!
//! Each declared table's files are registered as `<table>_history` (every row
//! ever stored); `crawls` is the log of completed crawls. Every other table
//! `<table>` is its current-state view: for each live scope, the rows its
//! latest completed crawl has of the table — carried by that crawl, by the
//! earlier crawl it marked the table `unchanged` since, or, for a container
//! that `inherited` the table, by its image's crawl, shown under the
//! container — plus the `container` name column. Where those rows are comes
//! from the store's incrementally maintained [`periscope_store::current::Index`]: a
//! view is the history table with each row checked against it
//! ([`crate::view::CurrentExec`]), never a recomputation.
//! `latest_crawls` lists those live scopes' latest crawls and `scope_crawls`
//! those of every scope the index keeps. A context is built per query over a
//! [`Snapshot`], so each query sees the rows acknowledged when it starts,
//! flushed to Parquet or not.
//! Tables owned above this module (the stored compliance-report runs) are
//! added through [`Extension`], so this module never imports their owners.

use std::sync::Arc;
use std::time::Duration;

use arrow_schema::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::Column;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::datasource::{MemTable, TableProvider, TableType, provider_as_source};
use datafusion::error::Result;
use datafusion::execution::cache::cache_manager::{CacheManager, CacheManagerConfig};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::logical_expr::{Expr, LogicalPlanBuilder, TableProviderFilterPushDown, lit};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::union::UnionExec;
use datafusion::prelude::{SessionConfig, SessionContext};
use periscope_proto::tables::{COMMON_COLUMNS, CRAWLS, TABLES, Table, scope};

use crate::scope::ReadScope;
use periscope_store::store::{Snapshot, Store};

/// What a registered name shows.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// `<table>_history` (and `crawls`): every stored row.
    History(&'static Table),
    /// `<table>`: current state.
    Current(&'static Table),
    /// Each scope's latest completed crawl, from the index: `latest_crawls`
    /// (false) lists live scopes, `scope_crawls` (true) every scope the index
    /// keeps: also expired hosts and their images (removed containers leave
    /// it within a minute, their crawls staying in `crawls`).
    Latest(bool),
}

impl Kind {
    fn schema(self) -> SchemaRef {
        match self {
            Kind::History(t) => t.schema(),
            Kind::Current(t) => t.view_schema(),
            Kind::Latest(_) => periscope_store::current::key_schema("crawl_time"),
        }
    }

    fn table_type(self) -> TableType {
        match self {
            Kind::History(_) => TableType::Base,
            _ => TableType::View,
        }
    }
}

/// The catalog every table lives in (schema `public`).
pub const CATALOG: &str = "periscope";

/// Snapshots of recent scans with when they were taken.
type RecentSnapshots = std::sync::Mutex<std::collections::VecDeque<(std::time::Instant, Arc<Snapshot>)>>;

tokio::task_local! {
    /// The snapshot every live [`SnapshotTable`] scanned within this scope reads, so one
    /// statement sees one moment of the store (the Postgres front sets it per statement).
    pub static PINNED: Arc<Snapshot>;
}

/// Where a [`SnapshotTable`] reads the store.
enum Source {
    /// One snapshot for every scan. Holding it holds, for a reader in another
    /// process, the shared store lock while any plan uses it.
    Fixed(Arc<Snapshot>),
    /// The store as of each scan (or the pinned snapshot): for long-lived
    /// sessions (the Postgres front), which must see crawls stored after they
    /// started. Snapshots of recent scans are kept for `keep_for`: a plan
    /// reads the files its snapshot listed after `scan` returns, and a
    /// compaction must not delete them meanwhile. Queries end within their
    /// time limit, shorter.
    Live { store: Arc<Store>, recent: Arc<RecentSnapshots>, keep_for: Duration },
}

impl Source {
    fn snapshot(&self) -> Arc<Snapshot> {
        match self {
            Source::Fixed(s) => s.clone(),
            Source::Live { store, recent, keep_for } => {
                let snapshot = PINNED.try_with(Arc::clone).unwrap_or_else(|_| Arc::new(store.snapshot()));
                let mut recent = recent.lock().unwrap_or_else(|e| e.into_inner());
                while recent.front().is_some_and(|(at, _)| at.elapsed() > *keep_for) {
                    recent.pop_front();
                }
                recent.push_back((std::time::Instant::now(), snapshot.clone()));
                snapshot
            }
        }
    }
}

/// One registered name ([`Kind`]) read from a [`Source`].
struct SnapshotTable {
    kind: Kind,
    source: Source,
}

impl std::fmt::Debug for SnapshotTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotTable").field("kind", &self.kind).finish_non_exhaustive()
    }
}

#[async_trait]
impl TableProvider for SnapshotTable {
    fn schema(&self) -> SchemaRef {
        self.kind.schema()
    }

    fn table_type(&self) -> TableType {
        self.kind.table_type()
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> Result<Vec<TableProviderFilterPushDown>> {
        // Filters prune Parquet row groups and narrow the index lookups; they
        // are applied again above the scan, since in-memory rows ignore them.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let snapshot = self.source.snapshot();
        match self.kind {
            Kind::History(t) => stored(t, &snapshot, state, projection, filters, limit).await,
            Kind::Current(t) => current(t, &snapshot, state, projection, filters, limit).await,
            Kind::Latest(all) => {
                let b = snapshot.index.latest(cutoff(&snapshot), all);
                let b = arrow_array::RecordBatch::try_new(self.schema(), b.columns().to_vec())?;
                MemTable::try_new(self.schema(), vec![vec![b]])?.scan(state, projection, filters, limit).await
            }
        }
    }
}

/// `<table>_history` as of a snapshot: its committed Parquet files and its
/// rows not yet flushed, scanned as one.
async fn stored(
    t: &Table,
    snapshot: &Snapshot,
    state: &dyn Session,
    projection: Option<&Vec<usize>>,
    filters: &[Expr],
    limit: Option<usize>,
) -> Result<Arc<dyn ExecutionPlan>> {
    let schema = t.schema();
    let recent = snapshot.batches.get(t.name).cloned().unwrap_or_default();
    let recent = MemTable::try_new(schema.clone(), vec![recent])?.scan(state, projection, &[], limit).await?;
    let paths = snapshot.files.get(t.name);
    if paths.is_empty() {
        return Ok(recent);
    }
    let urls = paths.iter().map(|p| ListingTableUrl::parse(p.display().to_string())).collect::<Result<Vec<_>>>()?;
    let options = ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
    let cfg = ListingTableConfig::new_with_multi_paths(urls).with_listing_options(options).with_schema(schema);
    let files = ListingTable::try_new(cfg)?.with_cache(caches().get_file_statistic_cache());
    let stored = files.scan(state, projection, filters, limit).await?;
    UnionExec::try_new(vec![stored, recent])
}

/// Oldest crawl_time of a host still in current state.
fn cutoff(snapshot: &Snapshot) -> i64 {
    periscope_store::store::expiry_cutoff(snapshot.host_expiry)
}

/// The string a filter `name = 'literal'` (either way round) asks for.
fn equality(f: &Expr, name: &str) -> Option<String> {
    use datafusion::common::ScalarValue;
    let Expr::BinaryExpr(b) = f else { return None };
    if b.op != datafusion::logical_expr::Operator::Eq {
        return None;
    }
    let pick = |c: &Expr, v: &Expr| match (c, v) {
        (
            Expr::Column(c),
            Expr::Literal(
                ScalarValue::Utf8(Some(s)) | ScalarValue::Utf8View(Some(s)) | ScalarValue::LargeUtf8(Some(s)),
                _,
            ),
        ) if c.name == name => Some(s.clone()),
        _ => None,
    };
    pick(&b.left, &b.right).or_else(|| pick(&b.right, &b.left))
}

fn qcol(relation: &str, name: &str) -> Expr {
    Expr::Column(Column::new(Some(relation), name))
}

/// A table's current-state view as of a snapshot (see the module docs): its
/// history rows that the index says are current, and its images' current
/// rows under each container sharing them, planned anew at each scan so that
/// filters reach the Parquet scans below.
async fn current(
    t: &'static Table,
    snapshot: &Arc<Snapshot>,
    state: &dyn Session,
    projection: Option<&Vec<usize>>,
    filters: &[Expr],
    limit: Option<usize>,
) -> Result<Arc<dyn ExecutionPlan>> {
    use crate::view::{CurrentExec, Mode};
    // Equality filters on host and scope narrow the containers an image's rows are shared with.
    let only = periscope_store::current::KeyFilter {
        host: filters.iter().find_map(|f| equality(f, "host")),
        scope: filters.iter().find_map(|f| equality(f, "scope")),
    };
    let view = &t.view_schema();
    let common: Vec<&str> = COMMON_COLUMNS.iter().map(|c| c.name).collect();
    let wanted: Vec<usize> = projection.cloned().unwrap_or_else(|| (0..view.fields().len()).collect());
    // The history columns read: the common ones, then the table's own that are asked for.
    let mut read: Vec<&str> = common.clone();
    for &i in &wanted {
        let name = view.field(i).name().as_str();
        if !read.contains(&name) && t.columns.iter().any(|c| c.name == name) {
            read.push(name);
        }
    }
    let refs = |f: &Expr| f.column_refs().into_iter().map(|c| c.name.clone()).collect::<Vec<_>>();
    let is_own = |c: &String| t.columns.iter().any(|t| t.name == c);
    // Filters go below the operator where they mean the same on history
    // rows: for a scope's own rows any but on `container`; for an image's
    // rows shared with containers only those on the table's own columns.
    let own_filters: Vec<Expr> = filters.iter().filter(|f| refs(f).iter().all(|c| c != "container")).cloned().collect();
    let shared_filters: Vec<Expr> = filters.iter().filter(|f| refs(f).iter().all(is_own)).cloned().collect();
    let source = Source::Fixed(snapshot.clone());
    let history = provider_as_source(Arc::new(SnapshotTable { kind: Kind::History(t), source }));
    let input = |extra: Option<Expr>, fs: &[Expr]| -> Result<datafusion::logical_expr::LogicalPlan> {
        let mut b = LogicalPlanBuilder::scan("t", history.clone(), None)?;
        if let Some(f) = fs.iter().cloned().chain(extra).reduce(Expr::and) {
            b = b.filter(f)?;
        }
        b.project(read.iter().map(|c| qcol("t", c)))?.build()
    };
    let cutoff = cutoff(snapshot);
    let index = snapshot.index.clone();
    let mut parts: Vec<Arc<dyn ExecutionPlan>> = Vec::new();
    let own = state.create_physical_plan(&input(None, &own_filters)?).await?;
    parts.push(Arc::new(CurrentExec::try_new(own, index.clone(), t, cutoff, only.clone(), Mode::Own)?));
    let shares =
        periscope_store::current::inheritable(t) && only.scope.as_deref().is_none_or(|s| s == scope::CONTAINER);
    if shares {
        let images = input(Some(qcol("t", "scope").eq(lit(scope::IMAGE))), &shared_filters)?;
        let images = state.create_physical_plan(&images).await?;
        parts.push(Arc::new(CurrentExec::try_new(images, index, t, cutoff, only, Mode::Inherit)?));
    }
    let plan: Arc<dyn ExecutionPlan> = if parts.len() == 1 { parts.remove(0) } else { UnionExec::try_new(parts)? };
    // The view's columns asked for, by name from the operator's output.
    let projected = view.project(&wanted)?;
    let exprs = crate::view::columns(&plan, projected.fields().iter().map(|f| f.name().as_str()))?;
    // The limit is a hint: DataFusion keeps its own above the scan.
    let _ = limit;
    Ok(Arc::new(datafusion::physical_plan::projection::ProjectionExec::try_new_with_schema_metadata(
        exprs, plan, &projected,
    )?))
}

/// Builds a fresh session over `snapshot`.
pub async fn context(snapshot: Snapshot) -> Result<SessionContext> {
    context_with(snapshot, None, None).await
}

/// Builds a fresh session over `snapshot`, in `runtime` (memory limits) when
/// given, showing only what `scope` admits when given.
pub async fn context_with(
    snapshot: Snapshot,
    runtime: Option<Arc<RuntimeEnv>>,
    scope: Option<&Arc<ReadScope>>,
) -> Result<SessionContext> {
    let snapshot = Arc::new(snapshot);
    let data = snapshot.dir.clone();
    register(session(runtime), data, scope, |kind| {
        Ok(Arc::new(SnapshotTable { kind, source: Source::Fixed(snapshot.clone()) }))
    })
    .await
}

/// A long-lived session whose tables read `store` as of each query; the
/// files a query's plan reads stay on disk for `keep_for` (longer than any
/// query may run).
pub async fn live_context(
    store: Arc<Store>,
    runtime: Option<Arc<RuntimeEnv>>,
    keep_for: Duration,
    scope: Option<&Arc<ReadScope>>,
) -> Result<SessionContext> {
    let data = Some(store.dir().to_path_buf());
    let recent = Arc::default();
    register(session(runtime), data, scope, |kind| {
        let source = Source::Live { store: store.clone(), recent: Arc::clone(&recent), keep_for };
        Ok(Arc::new(SnapshotTable { kind, source }))
    })
    .await
}

fn session(runtime: Option<Arc<RuntimeEnv>>) -> SessionContext {
    let mut config =
        SessionConfig::new().with_information_schema(true).with_default_catalog_and_schema(CATALOG, "public");
    // Every column carries its description as Arrow metadata, and a UNION of
    // columns with different descriptions under DISTINCT or GROUP BY failed
    // to plan: DataFusion 55 gives the union different metadata in its
    // logical and physical plans, and this check (a guard against planner
    // bugs, which DataFusion offers to switch off for such cases) compares
    // metadata too. Types and nullability are what the operators rely on.
    config.options_mut().execution.skip_physical_aggregate_schema_check = true;
    let runtime = runtime.or_else(|| RuntimeEnvBuilder::new().with_cache_manager(cache_config()).build_arc().ok());
    match runtime {
        Some(rt) => SessionContext::new_with_config_rt(config, rt),
        None => SessionContext::new_with_config(config),
    }
}

/// Parquet footers and per-file statistics, kept for every query of the
/// process rather than read again by each: a context is built per query, and
/// planning one over `package_changes` read ~50 footers for each of its scans.
/// Stored files never change under their name, and entries are checked against the file's size and
/// mtime; both caches are bounded (DataFusion's default limits).
fn caches() -> &'static Arc<CacheManager> {
    static CACHES: std::sync::OnceLock<Arc<CacheManager>> = std::sync::OnceLock::new();
    CACHES.get_or_init(|| CacheManager::try_new(&CacheManagerConfig::default()).expect("default caches"))
}

/// A runtime's cache settings sharing [`caches`].
pub fn cache_config() -> CacheManagerConfig {
    CacheManagerConfig::default()
        .with_file_statistics_cache(caches().get_file_statistic_cache())
        .with_file_metadata_cache(Some(caches().get_file_metadata_cache()))
}

/// Tables whose owner sits above the catalog (the report history): the owner
/// implements this, and the binary adds it once with [`extend`], so that the
/// catalog depends on nothing that depends on it.
pub trait Extension: Send + Sync {
    /// Registers the tables on `ctx`, read from the data directory `data`
    /// (None: a snapshot of no data directory; register them empty).
    fn register(&self, ctx: &SessionContext, data: Option<&std::path::Path>) -> Result<()>;

    /// Whether read-scoped sessions get the tables too: data that belongs to
    /// no host (advisories), as opposed to fleet-wide results (report runs).
    fn public(&self) -> bool {
        false
    }

    /// Views to create once every table is registered (`CREATE VIEW ...`), in order.
    fn views(&self) -> &'static [&'static str] {
        &[]
    }
}

fn extensions() -> &'static std::sync::RwLock<Vec<Arc<dyn Extension>>> {
    static EXTENSIONS: std::sync::RwLock<Vec<Arc<dyn Extension>>> = std::sync::RwLock::new(Vec::new());
    &EXTENSIONS
}

/// Adds `tables` to every session built from now on in this process.
pub fn extend(tables: Arc<dyn Extension>) {
    extensions().write().unwrap_or_else(|e| e.into_inner()).push(tables);
}

/// Registers every table (from `provider`, filtered by `scope` when given),
/// the views over them and the descriptions; the [`Extension`] tables only for an
/// unscoped session (a report run covers the whole fleet), unless they are public.
async fn register(
    ctx: SessionContext,
    data: Option<std::path::PathBuf>,
    scope: Option<&Arc<ReadScope>>,
    provider: impl Fn(Kind) -> Result<Arc<dyn TableProvider>>,
) -> Result<SessionContext> {
    // A scoped user's tables decide on containers from the unscoped listing of them.
    let containers = provider(Kind::History(&periscope_proto::tables::CONTAINERS))?;
    let provider = |k: Kind| match scope {
        Some(s) => Ok(s.wrap(provider(k)?, containers.clone())),
        None => provider(k),
    };
    crate::udf::register(&ctx);
    crate::repeat::register(&ctx);
    for t in TABLES {
        let name = if t.name == CRAWLS.name { t.name.to_string() } else { format!("{}_history", t.name) };
        ctx.register_table(name, provider(Kind::History(t))?)?;
    }
    register_descriptions(&ctx)?;
    let extensions: Vec<Arc<dyn Extension>> = extensions()
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|e| scope.is_none() || e.public())
        .cloned()
        .collect();
    for e in &extensions {
        e.register(&ctx, data.as_deref())?;
    }
    // The newest crawl of every scope, and of the scopes still alive: a host
    // not crawled within the host expiry leaves current state with its
    // containers, and a container its host's newest listing no longer shows
    // (removed) leaves too. Both stay in the `_history` tables.
    ctx.register_table("scope_crawls", provider(Kind::Latest(true))?)?;
    ctx.register_table("latest_crawls", provider(Kind::Latest(false))?)?;
    for t in TABLES.iter().filter(|t| t.name != CRAWLS.name) {
        ctx.register_table(t.name, provider(Kind::Current(t))?)?;
    }
    ctx.sql(PACKAGE_CHANGES).await?;
    for view in extensions.iter().flat_map(|e| e.views()) {
        ctx.sql(view).await?;
    }
    Ok(ctx)
}

/// osquery-style differential history: what each crawl of a scope added to
/// or removed from the previous one (a scope's first crawl adds everything).
/// A crawl's packages are its own rows, those of the crawl it marked them
/// unchanged since, or, when it inherited them, its image's newest crawl's.
///
/// Each distinct package of each crawl is read once and compared, by window
/// functions over the scope and the package, with the crawls before and after
/// it: a package is added by a crawl whose previous crawl lacked it, and
/// removed by the next crawl when that one lacks it. (Set differences between
/// each crawl's packages and its previous one's planned the package rows
/// four times over, 42 scans, and planning cost more than running.)
pub const PACKAGE_CHANGES: &str = "CREATE VIEW package_changes AS \
    WITH c AS ( \
      SELECT host, scope, scope_id, crawl_time, received, \
             LAG(crawl_time) OVER (PARTITION BY host, scope, scope_id ORDER BY received NULLS FIRST, crawl_time) AS prev_crawl, \
             LEAD(crawl_time) OVER (PARTITION BY host, scope, scope_id ORDER BY received NULLS FIRST, crawl_time) AS next_crawl \
      FROM crawls), \
    src AS ( \
      SELECT c.host, c.scope, c.scope_id, c.crawl_time, c.received, c.prev_crawl, c.next_crawl, \
             COALESCE(u.since, c.crawl_time) AS data_time, i.image_id \
      FROM c LEFT JOIN unchanged_history u ON u.host = c.host AND u.scope = c.scope \
        AND u.scope_id = c.scope_id AND u.crawl_time = c.crawl_time AND u.table_name = 'packages' \
      LEFT JOIN inherited_history i ON i.host = c.host AND i.scope = c.scope \
        AND i.scope_id = c.scope_id AND i.crawl_time = c.crawl_time AND i.table_name = 'packages'), \
    images AS ( \
      SELECT x.scope_id AS image_id, x.host, COALESCE(u.since, x.crawl_time) AS data_time FROM ( \
        SELECT host, scope_id, crawl_time, \
               row_number() OVER (PARTITION BY host, scope_id ORDER BY received DESC NULLS LAST, crawl_time DESC) AS n \
        FROM crawls WHERE scope = 'image') x \
      LEFT JOIN unchanged_history u ON u.host = x.host AND u.scope = 'image' AND u.scope_id = x.scope_id \
        AND u.crawl_time = x.crawl_time AND u.table_name = 'packages' \
      WHERE x.n = 1), \
    pkgs AS ( \
      SELECT DISTINCT * FROM ( \
        SELECT s.host, s.scope, s.scope_id, s.crawl_time, s.received, s.prev_crawl, s.next_crawl, \
               p.manager, p.name, p.version, p.architecture \
        FROM src s JOIN packages_history p ON p.host = s.host AND p.scope = s.scope \
          AND p.scope_id = s.scope_id AND p.crawl_time = s.data_time \
        WHERE s.image_id IS NULL \
        UNION ALL \
        SELECT s.host, s.scope, s.scope_id, s.crawl_time, s.received, s.prev_crawl, s.next_crawl, \
               p.manager, p.name, p.version, p.architecture \
        FROM src s JOIN images im ON im.image_id = s.image_id AND im.host = s.host \
        JOIN packages_history p ON p.host = im.host AND p.scope = 'image' \
          AND p.scope_id = s.image_id AND p.crawl_time = im.data_time) x), \
    w AS ( \
      SELECT *, \
             LAG(crawl_time) OVER (PARTITION BY host, scope, scope_id, manager, name, version, architecture \
               ORDER BY received NULLS FIRST, crawl_time) AS had_before, \
             LEAD(crawl_time) OVER (PARTITION BY host, scope, scope_id, manager, name, version, architecture \
               ORDER BY received NULLS FIRST, crawl_time) AS has_next \
      FROM pkgs) \
    SELECT host, scope, scope_id, \
           CASE WHEN a.action = 'added' THEN crawl_time ELSE next_crawl END AS crawl_time, \
           manager, name, version, architecture, a.action \
    FROM w CROSS JOIN (VALUES ('added'), ('removed')) AS a(action) \
    WHERE (a.action = 'added' AND (had_before IS NULL OR had_before <> prev_crawl)) \
       OR (a.action = 'removed' AND next_crawl IS NOT NULL AND (has_next IS NULL OR has_next <> next_crawl))";

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
        // The plain name is the current-state view (`crawls` is the log itself).
        let schema = if t.name == CRAWLS.name { t.schema() } else { t.view_schema() };
        for f in schema.fields() {
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

    /// Host globs are globs: `*` and `?` are wildcards, SQL's `%` and `_` are plain characters.
    #[tokio::test]
    async fn a_read_scope_matches_host_globs_literally_but_for_star_and_question_mark() {
        use arrow_array::{RecordBatch, StringArray};
        let schema = Arc::new(arrow_schema::Schema::new(vec![arrow_schema::Field::new(
            "host",
            arrow_schema::DataType::Utf8,
            false,
        )]));
        let hosts = StringArray::from(vec!["web_1", "web-1", "web%x", "webx", "db-1"]);
        let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(hosts)]).unwrap();
        let table: Arc<dyn TableProvider> = Arc::new(MemTable::try_new(schema, vec![vec![batch]]).unwrap());
        for (globs, want) in [
            (vec!["web_*"], vec!["web_1"]),
            (vec!["web%*"], vec!["web%x"]),
            (vec!["web?1"], vec!["web-1", "web_1"]),
            (vec!["web-1", "db-*"], vec!["db-1", "web-1"]),
            (vec!["*"], vec!["db-1", "web%x", "web-1", "web_1", "webx"]),
        ] {
            let scope =
                Arc::new(ReadScope { hosts: globs.iter().map(|g| g.to_string()).collect(), ..Default::default() });
            let ctx = SessionContext::new();
            ctx.register_table("t", scope.wrap(table.clone(), table.clone())).unwrap();
            let out = ctx.sql("SELECT host FROM t ORDER BY host").await.unwrap().collect().await.unwrap();
            let got: Vec<String> = out
                .iter()
                .flat_map(|b| {
                    let c = arrow_array::cast::AsArray::as_string::<i32>(b.column(0));
                    (0..b.num_rows()).map(|i| c.value(i).to_string()).collect::<Vec<_>>()
                })
                .collect();
            assert_eq!(got, want, "{globs:?}");
        }
    }

    /// `package_changes` as first defined, by set differences between each
    /// crawl's packages and its previous crawl's: what the view must equal.
    const PACKAGE_CHANGES_BY_SET_DIFFERENCE: &str = "CREATE VIEW package_changes_reference AS \
        WITH c AS ( \
          SELECT host, scope, scope_id, crawl_time, \
                 LAG(crawl_time) OVER (PARTITION BY host, scope, scope_id ORDER BY received NULLS FIRST, crawl_time) AS prev_crawl \
          FROM crawls), \
        src AS ( \
          SELECT c.host, c.scope, c.scope_id, c.crawl_time, c.prev_crawl, \
                 COALESCE(u.since, c.crawl_time) AS data_time, i.image_id \
          FROM c LEFT JOIN unchanged_history u ON u.host = c.host AND u.scope = c.scope \
            AND u.scope_id = c.scope_id AND u.crawl_time = c.crawl_time AND u.table_name = 'packages' \
          LEFT JOIN inherited_history i ON i.host = c.host AND i.scope = c.scope \
            AND i.scope_id = c.scope_id AND i.crawl_time = c.crawl_time AND i.table_name = 'packages'), \
        images AS ( \
          SELECT x.scope_id AS image_id, x.host, COALESCE(u.since, x.crawl_time) AS data_time FROM ( \
            SELECT host, scope_id, crawl_time, \
                   row_number() OVER (PARTITION BY host, scope_id ORDER BY received DESC NULLS LAST, crawl_time DESC) AS n \
            FROM crawls WHERE scope = 'image') x \
          LEFT JOIN unchanged_history u ON u.host = x.host AND u.scope = 'image' AND u.scope_id = x.scope_id \
            AND u.crawl_time = x.crawl_time AND u.table_name = 'packages' \
          WHERE x.n = 1), \
        pkgs AS ( \
          SELECT s.host, s.scope, s.scope_id, s.crawl_time, p.manager, p.name, p.version, p.architecture \
          FROM src s JOIN packages_history p ON p.host = s.host AND p.scope = s.scope \
            AND p.scope_id = s.scope_id AND p.crawl_time = s.data_time \
          WHERE s.image_id IS NULL \
          UNION ALL \
          SELECT s.host, s.scope, s.scope_id, s.crawl_time, p.manager, p.name, p.version, p.architecture \
          FROM src s JOIN images im ON im.image_id = s.image_id AND im.host = s.host \
          JOIN packages_history p ON p.host = im.host AND p.scope = 'image' \
            AND p.scope_id = s.image_id AND p.crawl_time = im.data_time), \
        now AS (SELECT * FROM pkgs), \
        before AS ( \
          SELECT s.host, s.scope, s.scope_id, s.crawl_time, p.manager, p.name, p.version, p.architecture \
          FROM src s JOIN pkgs p ON p.host = s.host AND p.scope = s.scope AND p.scope_id = s.scope_id \
            AND p.crawl_time = s.prev_crawl) \
        SELECT *, 'added' AS action FROM (SELECT * FROM now EXCEPT SELECT * FROM before) \
        UNION ALL SELECT *, 'removed' AS action FROM (SELECT * FROM before EXCEPT SELECT * FROM now)";

    #[tokio::test]
    async fn a_pinned_statement_sees_one_moment_and_an_unpinned_one_the_latest() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(tmp.path()).unwrap());
        let batch = periscope_store::testutil::crawl_error_batch(3);
        store.apply(&CRAWL_ERRORS, std::slice::from_ref(&batch), "a", 1, 1).await.unwrap();
        let ctx = live_context(store.clone(), None, Duration::from_secs(60), None).await.unwrap();
        let count = |ctx: SessionContext| async move {
            let b = ctx.sql("SELECT count(*) FROM crawl_errors_history").await.unwrap().collect().await.unwrap();
            arrow_array::cast::AsArray::as_primitive::<arrow_array::types::Int64Type>(b[0].column(0)).value(0)
        };
        let pinned = Arc::new(store.snapshot());
        store.apply(&CRAWL_ERRORS, std::slice::from_ref(&batch), "a", 1, 2).await.unwrap();
        assert_eq!(PINNED.scope(pinned, count(ctx.clone())).await, 3, "the statement's own moment");
        assert_eq!(count(ctx).await, 6, "without a pin, the latest");
    }

    /// One crawl of (host, scope, id) at `t`: `packages` as (name, version,
    /// architecture), or the table marked unchanged since `since`, or inherited
    /// from `image`; the crawls row last.
    enum Packages<'a> {
        Rows(&'a [(&'a str, &'a str, Option<&'a str>)]),
        Since(i64),
        Image(&'a str),
    }

    async fn crawl(store: &Store, seq: &mut u64, (host, scope, id): (&str, &str, &str), t: i64, p: Packages<'_>) {
        use periscope_agent::encode::{Common, Value};
        use periscope_proto::tables::{INHERITED, PACKAGES, UNCHANGED};
        let c = Common { host: host.into(), scope: scope.into(), scope_id: id.into(), crawl_time_us: t };
        let mut sink = periscope_agent::collectors::Sink::new(c.clone());
        match p {
            Packages::Rows(rows) => {
                for (name, version, arch) in rows {
                    let mut v =
                        vec![("manager", "dpkg".into()), ("name", (*name).into()), ("version", (*version).into())];
                    if let Some(a) = arch {
                        v.push(("architecture", (*a).into()));
                    }
                    sink.row(&PACKAGES, &v);
                }
            }
            Packages::Since(since) => {
                sink.row(&UNCHANGED, &[("table_name", "packages".into()), ("since", Value::Int(since))])
            }
            Packages::Image(image) => {
                sink.row(&INHERITED, &[("table_name", "packages".into()), ("image_id", image.into())])
            }
        }
        let mut done = periscope_agent::collectors::Sink::new(c);
        done.row(&CRAWLS, &[("tables", "packages".into())]);
        for b in sink.finish().into_iter().chain(done.finish()) {
            *seq += 1;
            store.apply(periscope_agent::crawl::table_of(&b), &[b], host, 1, *seq).await.unwrap();
        }
    }

    #[tokio::test]
    async fn package_changes_equal_the_set_differences_between_consecutive_crawls() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        let seq = &mut 0;
        let t = |n: i64| 1_700_000_000_000_000 + n * 3_600_000_000;
        let (h1, h2) = (("h1", "host", "m1"), ("h2", "host", "m2"));
        let (image, k1) = (("h1", "image", "sha256:i1"), ("h1", "container", "k1"));
        let amd = Some("amd64");
        // A host: a duplicate row, a package without an architecture, a version change, an
        // unchanged crawl, removals, and a package removed and added again.
        let first = [("a", "1", amd), ("b", "1", amd), ("b", "1", amd), ("c", "1", None)];
        crawl(&store, seq, h1, t(1), Packages::Rows(&first)).await;
        crawl(&store, seq, h1, t(2), Packages::Rows(&[("a", "1", amd), ("b", "2", amd), ("d", "1", amd)])).await;
        crawl(&store, seq, h1, t(3), Packages::Since(t(2))).await;
        crawl(&store, seq, h1, t(4), Packages::Rows(&[("a", "1", amd)])).await;
        crawl(&store, seq, h1, t(5), Packages::Rows(&[("a", "1", amd), ("c", "1", None)])).await;
        crawl(&store, seq, h2, t(1), Packages::Rows(&[("a", "1", amd)])).await;
        // An image crawled twice (its newest crawl is what containers inherit), and a container
        // that inherits its packages, then has its own.
        crawl(&store, seq, image, t(1), Packages::Rows(&[("x", "1", amd), ("y", "1", amd)])).await;
        crawl(&store, seq, image, t(3), Packages::Rows(&[("x", "1", amd), ("y", "2", amd)])).await;
        crawl(&store, seq, k1, t(2), Packages::Image("sha256:i1")).await;
        crawl(&store, seq, k1, t(4), Packages::Rows(&[("x", "1", amd), ("z", "1", amd)])).await;

        let ctx = context(store.snapshot()).await.unwrap();
        ctx.sql(PACKAGE_CHANGES_BY_SET_DIFFERENCE).await.unwrap();
        let rows = |view: &str| {
            let ctx = ctx.clone();
            let q = format!(
                "SELECT host, scope_id, CAST(crawl_time AS BIGINT) AS t, action, name, version, architecture FROM {view} \
                 ORDER BY host, scope_id, t, action, name, version, architecture"
            );
            async move {
                let b = ctx.sql(&q).await.unwrap().collect().await.unwrap();
                datafusion::arrow::util::pretty::pretty_format_batches(&b).unwrap().to_string()
            }
        };
        let (got, want) = (rows("package_changes").await, rows("package_changes_reference").await);
        assert_eq!(got, want);
        // Not two empty answers: the changes are the ones made above.
        // m1: 3 added, 2 removed and 2 added, none (unchanged), 2 removed, 1 added; m2: 1 added;
        // the image: 2 added, 1 removed and 1 added; k1: 2 added (the image's newest), 1 removed and 1 added.
        let n = got.lines().filter(|l| l.contains("added") || l.contains("removed")).count();
        assert_eq!(n, 10 + 1 + 4 + 4, "{got}");
        for (id, at, action, name) in [
            ("m1", t(2), "removed", "c"),
            ("m1", t(2), "removed", "b"),
            ("m1", t(2), "added", "b"),
            ("m1", t(4), "removed", "d"),
            ("m1", t(5), "added", "c"),
            ("k1", t(2), "added", "y"),
            ("k1", t(4), "removed", "y"),
            ("k1", t(4), "added", "z"),
        ] {
            assert!(
                got.lines().any(|l| {
                    let f: Vec<&str> = l.split('|').map(str::trim).collect();
                    f.len() > 5 && f[2] == id && f[3] == at.to_string() && f[4] == action && f[5] == name
                }),
                "{id} {at} {action} {name} in\n{got}"
            );
        }
    }
}
