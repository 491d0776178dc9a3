//! The SQL catalog over a data directory.
//!
//! Each declared table's files are registered as `<table>_history` (every row
//! ever stored). `crawls` is the log of completed crawls and `latest_crawls`
//! its newest row per scope; every other table `<table>` is a view of the rows
//! from its scope's latest completed crawl — "what is true now". A context is
//! built per query, so each query sees the files present when it starts.

use std::path::Path;
use std::sync::Arc;

use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::error::Result;
use datafusion::prelude::{SessionConfig, SessionContext};
use periscope_proto::tables::{CRAWLS, TABLES};

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
    ctx.sql(
        "CREATE VIEW latest_crawls AS \
         SELECT host, scope, scope_id, max(crawl_time) AS crawl_time FROM crawls GROUP BY host, scope, scope_id",
    )
    .await?;
    for t in TABLES.iter().filter(|t| t.name != CRAWLS.name) {
        ctx.sql(&format!(
            "CREATE VIEW {0} AS SELECT t.* FROM {0}_history t JOIN latest_crawls l \
             ON t.host = l.host AND t.scope = l.scope AND t.scope_id = l.scope_id AND t.crawl_time = l.crawl_time",
            t.name
        ))
        .await?;
    }
    Ok(ctx)
}
