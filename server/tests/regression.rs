//! Regression tests, each named after the bug it pins.

mod common;

use common::*;

/// A CASE mixing a literal and a cast is Utf8 in the logical plan but Utf8View
/// in the batches; the server wrote its IPC stream under the logical schema
/// and remote clients failed with "Buffer count mismatched with metadata".
#[test]
fn remote_sql_with_a_case_of_literal_and_cast_is_readable() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let rows = sql(
        &["--server", server.url.as_str()],
        "SELECT CASE WHEN random() < 2 THEN 'a' ELSE CAST(random() AS VARCHAR) END AS r",
    );
    assert_eq!(rows.len(), 1);
    assert_eq!(s(&rows[0], "r"), "a");
}
