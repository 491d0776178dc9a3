//! The SQL catalog over a data directory.
//!
//! Each declared table's files are registered as `<table>_history` (every row
//! ever stored). `crawls` is the log of completed crawls and `latest_crawls`
//! its newest row per scope; every other table `<table>` is a view of the rows
//! from its scope's latest completed crawl — "what is true now" — or, for a
//! table that crawl marked unchanged, from the crawl that last sent it. A context is
//! built per query, so each query sees the files present when it starts.

use std::path::Path;
use std::sync::Arc;

use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::error::Result;
use datafusion::prelude::{SessionConfig, SessionContext};
use periscope_proto::tables::{CRAWLS, TABLES, UNCHANGED};

use crate::store::table_dir;

/// Builds a fresh session over the data directory `data`.
pub async fn context(data: &Path) -> Result<SessionContext> {
    let config =
        SessionConfig::new().with_information_schema(true).with_default_catalog_and_schema("periscope", "public");
    let ctx = SessionContext::new_with_config(config);
    crate::udf::register(&ctx);
    for t in TABLES {
        let dir = table_dir(data, t);
        std::fs::create_dir_all(&dir)?;
        let url = ListingTableUrl::parse(format!("{}/", dir.canonicalize()?.display()))?;
        let options = ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
        let cfg = ListingTableConfig::new(url).with_listing_options(options).with_schema(t.schema());
        let name = if t.name == CRAWLS.name { t.name.to_string() } else { format!("{}_history", t.name) };
        ctx.register_table(name, Arc::new(ListingTable::try_new(cfg)?))?;
    }
    register_descriptions(&ctx)?;
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
