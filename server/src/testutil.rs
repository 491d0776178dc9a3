//! Helpers for unit tests in this crate.

use arrow_array::RecordBatch;
use periscope_agent::encode::{Common, TableBuilder};
use periscope_proto::tables::CRAWL_ERRORS;

/// A `crawl_errors` batch of `n` rows.
pub fn crawl_error_batch(n: usize) -> RecordBatch {
    let common =
        Common { host: "h1".into(), scope: "host".into(), scope_id: "s1".into(), crawl_time_us: 1_700_000_000_000_000 };
    let mut b = TableBuilder::new(&CRAWL_ERRORS);
    for i in 0..n {
        let path = format!("/p{i}");
        b.push(
            &common,
            &[("collector", "packages".into()), ("path", path.as_str().into()), ("message", "boom".into())],
        );
    }
    b.finish()
}
