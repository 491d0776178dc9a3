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

/// Each column carries its description as Arrow metadata. Under DISTINCT or
/// GROUP BY, a UNION ALL of columns with different descriptions failed to
/// plan with DataFusion's "Physical input schema should be the same as the
/// one converted from logical input schema" (an internal error), found by a
/// runtime check reading packages beside container_env.
#[test]
fn distinct_over_a_union_of_differently_described_columns_plans_and_answers() {
    let root = debian_rootfs();
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    crawl_root(&server.url, &root, "union-host", "os,packages", &[]);
    let target = ["--server", server.url.as_str()];
    let scope_id = s(&sql(&target, "SELECT DISTINCT scope_id FROM packages")[0], "scope_id");
    let os_id = s(&sql(&target, "SELECT id FROM os")[0], "id");
    for table in ["", "_history"] {
        let q = format!(
            "SELECT DISTINCT host, x FROM (SELECT host, scope_id AS x FROM packages{table} \
             UNION ALL SELECT host, id AS x FROM os{table}) ORDER BY x"
        );
        let rows = sql(&target, &q);
        let got: Vec<(String, String)> = rows.iter().map(|r| (s(r, "host"), s(r, "x"))).collect();
        let mut want = vec![("union-host".to_string(), scope_id.clone()), ("union-host".to_string(), os_id.clone())];
        want.sort_by(|a, b| a.1.cmp(&b.1));
        assert_eq!(got, want, "{q}");
        let q = format!(
            "SELECT x, count(*) AS n FROM (SELECT scope_id AS x FROM packages{table} \
             UNION ALL SELECT id AS x FROM os{table}) GROUP BY x ORDER BY x"
        );
        assert_eq!(sql(&target, &q).len(), 2, "{q}");
    }
}
