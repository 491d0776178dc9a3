//! What every function does with its arguments.

#[cfg(test)]
use datafusion::prelude::SessionContext;

/// A string argument as Utf8 (callers may pass Utf8View or LargeUtf8).
pub(crate) fn to_utf8(a: &arrow_array::ArrayRef) -> datafusion::common::Result<arrow_array::ArrayRef> {
    use arrow_array::Array;
    let utf8 = arrow_schema::DataType::Utf8;
    Ok(if a.data_type() == &utf8 { a.clone() } else { arrow_cast::cast(a, &utf8)? })
}

/// Test helper: the first value of a query's result, with the functions `register` adds.
#[cfg(test)]
pub(crate) async fn first_value(register: impl FnOnce(&SessionContext), sql: &str) -> String {
    let ctx = SessionContext::new();
    register(&ctx);
    let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    arrow_cast::display::array_value_to_string(batches[0].column(0), 0).unwrap()
}
