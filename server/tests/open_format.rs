//! The store is plain Parquet that other engines read without Periscope
//! (everything up to the last flush; a clean stop flushes):
//! DuckDB (PyPI) over the table directories gets the same answers as
//! `periscope sql` for the same questions.

mod common;

use std::process::Command;

use common::*;

fn duckdb(py: &str, query: &str) -> Vec<Vec<String>> {
    let script = "import duckdb, sys, json\nfor row in duckdb.sql(sys.argv[1]).fetchall(): print(json.dumps([str(v) for v in row]))";
    let out = Command::new(py).args(["-c", script, query]).output().expect("run python");
    assert!(out.status.success(), "duckdb {query}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn duckdb_reads_the_stored_files_and_agrees_with_periscope() {
    let Some(py) = python() else { return };
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let root = debian_rootfs().display().to_string();
    let (ok, _, err) =
        agent(&["crawl", "--root", &root, "--server", &server.url, "--scope", "image", "--scope-id", "bookworm"]);
    assert!(ok, "{err}");
    // A clean stop writes what the server buffered; every table's rows of the crawl land in one file.
    server.stop();
    let files = std::fs::read_dir(data.path().join("tables/packages")).unwrap().count();
    assert_eq!(files, 1, "one Parquet file for the crawl's packages, not one per batch");
    let dir = |t: &str| format!("read_parquet('{}/tables/{t}/*.parquet')", data.path().display());
    let target = ["--data", data.path().to_str().unwrap()];
    let questions = [
        (
            &["name", "version", "architecture"][..],
            "SELECT name, version, architecture FROM packages_history ORDER BY name, version",
            format!("SELECT name, version, architecture FROM {} ORDER BY name, version", dir("packages")),
        ),
        (
            &["architecture", "n"][..],
            "SELECT architecture, count(*) AS n FROM packages_history GROUP BY architecture ORDER BY architecture",
            format!(
                "SELECT architecture, count(*) FROM {} GROUP BY architecture ORDER BY architecture",
                dir("packages")
            ),
        ),
        (
            &["name", "uid"][..],
            "SELECT name, uid FROM users_history WHERE uid < 100 ORDER BY uid",
            format!("SELECT name, uid FROM {} WHERE uid < 100 ORDER BY uid", dir("users")),
        ),
    ];
    for (cols, ours, theirs) in questions {
        let got: Vec<Vec<String>> = sql(&target, ours).iter().map(|r| cols.iter().map(|c| s(r, c)).collect()).collect();
        let want = duckdb(&py, &theirs);
        assert!(!want.is_empty(), "{theirs}");
        assert_eq!(got, want, "{ours}");
    }
}
