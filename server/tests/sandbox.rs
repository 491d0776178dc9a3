//! Remote SQL is read-only and bounded: statements that write, read server
//! files or change runtime settings are refused before planning; a query that
//! needs more memory than allowed is refused, one that runs too long is
//! cancelled; the server stays up and answers the next query.

mod common;

use common::*;

#[test]
fn remote_sql_is_read_only_bounded_and_the_server_survives() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_full(
        data.path(),
        "127.0.0.1:0",
        &["--query-memory-bytes", "67108864", "--query-timeout-secs", "10"],
        &[],
    );
    let target = ["--server", server.url.as_str()];
    let copied = data.path().join("copied.csv");
    let copy = format!("COPY (SELECT 1 AS x) TO '{}' STORED AS CSV", copied.display());
    let cases: [(&str, &str); 6] = [
        ("CREATE EXTERNAL TABLE pw (line VARCHAR) STORED AS CSV LOCATION '/etc/passwd'", "DDL not supported"),
        ("SELECT * FROM '/etc/passwd'", "not found"),
        (&copy, "DML not supported: COPY"),
        ("SET datafusion.runtime.memory_limit = '100G'", "Statement not supported"),
        // 10^11 groups to hold: far beyond 64 MiB, and no spilling to disk.
        (
            "SELECT a.value * 1000000 + b.value AS k, count(*) AS n \
             FROM generate_series(1, 100000) a CROSS JOIN generate_series(1, 1000000) b GROUP BY k",
            "more memory than a query may use",
        ),
        ("SELECT max(value % 7) FROM generate_series(1, 1000000000000)", "cancelled after 10 s"),
    ];
    for (query, why) in cases {
        let start = std::time::Instant::now();
        let err = sql_refused(&target, query, &[]);
        assert!(err.contains(why), "{query}: expected {why:?} in: {err}");
        assert!(start.elapsed() < std::time::Duration::from_secs(30), "{query}: took {:?}", start.elapsed());
        assert!(!server.exited(), "the server died on {query}");
    }
    assert!(!copied.exists(), "COPY wrote a file on the server");
    let rows = sql(&target, "SELECT count(*) AS n FROM generate_series(1, 1000)");
    assert_eq!(rows[0]["n"], 1000, "the server still answers");
}

/// All remote queries together stay within `--sql-memory-bytes`: here it is
/// below what one query may use, so a query needing more is refused by the
/// server-wide budget (with its flag named) and the server carries on.
#[test]
fn remote_queries_together_stay_within_the_servers_sql_memory() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_full(data.path(), "127.0.0.1:0", &["--sql-memory-bytes", "33554432"], &[]);
    let target = ["--server", server.url.as_str()];
    let big = "SELECT a.value * 1000000 + b.value AS k, count(*) AS n \
               FROM generate_series(1, 100000) a CROSS JOIN generate_series(1, 1000000) b GROUP BY k";
    let err = sql_refused(&target, big, &[]);
    assert!(err.contains("--sql-memory-bytes"), "expected the server-wide budget in: {err}");
    assert!(!server.exited());
    let rows = sql(&target, "SELECT count(*) AS n FROM generate_series(1, 1000)");
    assert_eq!(rows[0]["n"], 1000, "the server still answers, its budget given back");
}
