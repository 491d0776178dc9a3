//! Periscope's SQL functions, registered on every session.

pub mod capped;
pub mod cidr;
pub mod version;

use datafusion::logical_expr::ScalarUDF;
use datafusion::prelude::SessionContext;

/// Registers every Periscope function on `ctx`.
pub fn register(ctx: &SessionContext) {
    for f in version::all() {
        ctx.register_udf(ScalarUDF::from(f));
    }
    ctx.register_udf(ScalarUDF::from(cidr::CidrContains::default()));
    capped::register(ctx);
}

/// A string argument as Utf8 (callers may pass Utf8View or LargeUtf8).
pub(crate) fn to_utf8(a: &arrow_array::ArrayRef) -> datafusion::common::Result<arrow_array::ArrayRef> {
    use arrow_array::Array;
    let utf8 = arrow_schema::DataType::Utf8;
    Ok(if a.data_type() == &utf8 { a.clone() } else { arrow_cast::cast(a, &utf8)? })
}

/// Test helper: the first value of a query's result, with Periscope's functions registered.
#[cfg(test)]
pub(crate) async fn first_value(sql: &str) -> String {
    let ctx = SessionContext::new();
    register(&ctx);
    let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    arrow_cast::display::array_value_to_string(batches[0].column(0), 0).unwrap()
}
