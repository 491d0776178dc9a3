//! Rows for unit tests in this crate and the crates above it.

use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow_schema::DataType;
use periscope_proto::tables::CRAWL_ERRORS;

/// A `crawl_errors` batch of `n` rows.
pub fn crawl_error_batch(n: usize) -> RecordBatch {
    let schema = CRAWL_ERRORS.schema();
    let text = |v: &str| Arc::new(StringArray::from(vec![v; n])) as ArrayRef;
    let tz = match schema.field(3).data_type() {
        DataType::Timestamp(_, tz) => tz.clone(),
        other => unreachable!("crawl_time is a timestamp, not {other}"),
    };
    let time = TimestampMicrosecondArray::from(vec![1_700_000_000_000_000; n]).with_timezone_opt(tz);
    let paths = StringArray::from_iter_values((0..n).map(|i| format!("/p{i}")));
    let columns =
        vec![text("h1"), text("host"), text("s1"), Arc::new(time), text("packages"), Arc::new(paths), text("boom")];
    RecordBatch::try_new(schema, columns).expect("the declared crawl_errors schema")
}
