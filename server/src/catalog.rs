//! The SQL catalog over a data directory.
//!
//! Each declared table's files are registered as `<table>_history` (every row
//! ever stored). `crawls` is the log of completed crawls and `latest_crawls`
//! its newest row per scope; every other table `<table>` is a view of the rows
//! from its scope's latest completed crawl — "what is true now" — or, for a
//! table that crawl marked unchanged, from the crawl that last sent it. A context is
//! built per query over a [`Snapshot`], so each query sees the rows acknowledged
//! when it starts, flushed to Parquet or not. Stored compliance-report runs
//! are `report_runs`, `report_checks` and `report_results` (see [`crate::report::history`]).

use std::sync::Arc;

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

use crate::store::Snapshot;

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
        let paths = snapshot.files.get(t.name).map(Vec::as_slice).unwrap_or_default();
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

/// Builds a fresh session over `snapshot`.
pub async fn context(snapshot: Snapshot) -> Result<SessionContext> {
    context_with(snapshot, None).await
}

/// Builds a fresh session over `snapshot`, in `runtime` (memory limits) when given.
pub async fn context_with(snapshot: Snapshot, runtime: Option<Arc<RuntimeEnv>>) -> Result<SessionContext> {
    let config =
        SessionConfig::new().with_information_schema(true).with_default_catalog_and_schema("periscope", "public");
    let ctx = match runtime {
        Some(rt) => SessionContext::new_with_config_rt(config, rt),
        None => SessionContext::new_with_config(config),
    };
    crate::udf::register(&ctx);
    let snapshot = Arc::new(snapshot);
    for t in TABLES {
        let name = if t.name == CRAWLS.name { t.name.to_string() } else { format!("{}_history", t.name) };
        ctx.register_table(name, Arc::new(StoredTable::new(t, &snapshot)?))?;
    }
    register_descriptions(&ctx)?;
    crate::report::history::register(&ctx, snapshot.reports.as_deref())?;
    ctx.sql(
        "CREATE VIEW latest_crawls AS \
         SELECT host, scope, scope_id, max(crawl_time) AS crawl_time FROM crawls GROUP BY host, scope, scope_id",
    )
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
