//! The store is plain Parquet, partitioned by day, with a Delta Lake log per
//! table, that other engines read without Periscope (everything up to the
//! last flush; a clean stop flushes): DuckDB (PyPI) over the table
//! directories and the Python `deltalake` package over the Delta logs get the
//! same answers as `periscope sql`, through flushes and compactions.

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
    let days: Vec<_> = std::fs::read_dir(data.path().join("tables/packages"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("day="))
        .collect();
    assert_eq!(days.len(), 1, "{days:?}");
    let files = std::fs::read_dir(data.path().join("tables/packages").join(&days[0])).unwrap().count();
    assert_eq!(files, 1, "one Parquet file for the crawl's packages, not one per batch");
    let dir =
        |t: &str| format!("read_parquet('{}/tables/{t}/*/*.parquet', hive_partitioning = true)", data.path().display());
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

/// Rows and files of a table as the Python `deltalake` package reads its Delta log.
fn delta(py: &str, table_dir: &std::path::Path) -> serde_json::Value {
    // os._exit: pyarrow's scanner threads can abort the interpreter's teardown after a correct result
    // (apache/arrow#34314, delta-io/delta-rs#2184); the answer is printed and flushed by then.
    let script = "import deltalake, sys, json, os\n\
        dt = deltalake.DeltaTable(sys.argv[1])\n\
        t = dt.to_pyarrow_table()\n\
        keys = sorted(set(zip(t.column('scope_id').to_pylist(), t.column('name').to_pylist())))\n\
        days = sorted(set(str(d) for d in t.column('day').to_pylist()))\n\
        print(json.dumps({'rows': t.num_rows, 'distinct': len(keys), 'files': len(dt.file_uris()), 'days': days, 'version': dt.version()}), flush=True)\n\
        os._exit(0)";
    let out = Command::new(py).args(["-c", script]).arg(table_dir).output().expect("run python");
    assert!(
        out.status.success(),
        "deltalake ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn delta_readers_see_every_committed_row_once_through_flushes_and_compactions() {
    let Some(py) = python() else { return };
    let data = tempfile::tempdir().unwrap();
    let table = data.path().join("tables/packages");
    let root = debian_rootfs().display().to_string();
    let target = ["--data", data.path().to_str().unwrap()];
    let count = |q: &str| s(&sql(&target, q)[0], "n").parse::<u64>().unwrap();
    // Three crawls, each flushed by a clean stop; the third flush leaves three small files, which are merged.
    for i in 1..=3 {
        let server = Server::start_full(data.path(), "127.0.0.1:0", &["--compact-files", "3"], &[]);
        let id = format!("bookworm-{i}");
        let (ok, _, err) =
            agent(&["crawl", "--root", &root, "--server", &server.url, "--scope", "image", "--scope-id", &id]);
        assert!(ok, "{err}");
        server.stop();
        let d = delta(&py, &table);
        let want = count("SELECT count(*) AS n FROM packages_history");
        assert_eq!(d["rows"].as_u64().unwrap(), want, "after flush {i}: {d}");
        assert_eq!(d["distinct"].as_u64().unwrap(), want, "no row twice: {d}");
        let today = count("SELECT count(DISTINCT date_trunc('day', crawl_time)) AS n FROM packages_history");
        assert_eq!(d["days"].as_array().unwrap().len() as u64, today, "the day partition column: {d}");
        let files = if i < 3 { i } else { 1 };
        assert_eq!(d["files"].as_u64().unwrap(), files, "after flush {i}: {d}");
    }
    // The next open deletes the compaction's inputs (readers of the log's latest version never list them).
    Server::start(data.path()).stop();
    assert_eq!(walk_parquet(&table), 1);
    let d = delta(&py, &table);
    assert_eq!(
        (d["rows"].as_u64().unwrap(), d["files"].as_u64().unwrap()),
        (count("SELECT count(*) AS n FROM packages_history"), 1)
    );
    assert_eq!(d["version"].as_u64().unwrap(), 4, "created, three flushes, one compaction: {d}");
}

fn walk_parquet(dir: &std::path::Path) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() && !p.ends_with("_delta_log") {
            n += walk_parquet(&p);
        } else if p.extension().is_some_and(|x| x == "parquet") {
            n += 1;
        }
    }
    n
}

/// The Python `deltalake` package reads the log from the store's checkpoint:
/// once the commits before it are gone, the checkpoint alone carries the
/// protocol, the schema and the files, and the commits after it replay on top.
#[test]
fn deltalake_reads_the_table_from_a_checkpoint_once_older_commits_are_gone() {
    use periscope_store::delta::{CHECKPOINT_EVERY, DeltaLog, log_dir};
    let Some(py) = python() else { return };
    let data = tempfile::tempdir().unwrap();
    let table = data.path().join("packages");
    let day = table.join("day=2026-12-01");
    std::fs::create_dir_all(&day).unwrap();
    let packages = periscope_proto::tables::table("packages").unwrap();
    let mut log = DeltaLog::open(&table, packages).unwrap();
    // A file from before day partitions, throughout; versions 0-24 each add one in a day and, from the
    // fourth on, remove the oldest. Reopened at 15: checkpoint 20 is written from state read from checkpoint 10.
    let old = table.join("old.parquet");
    std::fs::write(&old, b"x").unwrap();
    let mut files = Vec::new();
    for i in 0..25 {
        let f = day.join(format!("wal-{i}.parquet"));
        std::fs::write(&f, vec![b'x'; i + 1]).unwrap();
        files.push(f);
        if files.len() > 3 {
            files.remove(0);
        }
        log.sync(&table, &[&files[..], std::slice::from_ref(&old)].concat(), true).unwrap();
        if i == 15 {
            log = DeltaLog::open(&table, packages).unwrap();
        }
    }
    assert_eq!(CHECKPOINT_EVERY, 10);
    assert_eq!(log.clean_up(std::time::Duration::ZERO).unwrap(), 21, "commits 0-19 and checkpoint 10 removed");
    assert!(!log_dir(&table).join(format!("{:020}.json", 0)).exists());
    let script = "import deltalake, pyarrow, sys, json\n\
        dt = deltalake.DeltaTable(sys.argv[1])\n\
        m = dt.metadata()\n\
        adds = {a['path'].rsplit('/', 1)[-1]: a['partition.day'] for a in pyarrow.table(dt.get_add_actions(flatten=True)).to_pylist()}\n\
        print(json.dumps({'version': dt.version(), 'files': sorted(u.rsplit('/', 1)[-1] for u in dt.file_uris()), \
        'partitions': m.partition_columns, 'name': m.name, 'columns': [f.name for f in dt.schema().fields], \
        'days': {k: None if v is None else str(v) for k, v in adds.items()}}))";
    let out = Command::new(&py).args(["-c", script]).arg(&table).output().expect("run python");
    assert!(out.status.success(), "deltalake: {}", String::from_utf8_lossy(&out.stderr));
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got["version"], 24, "{got}");
    let want_files = ["old.parquet", "wal-22.parquet", "wal-23.parquet", "wal-24.parquet"];
    assert_eq!(got["files"], serde_json::json!(want_files), "{got}");
    let days = serde_json::json!({"old.parquet": null, "wal-22.parquet": "2026-12-01",
        "wal-23.parquet": "2026-12-01", "wal-24.parquet": "2026-12-01"});
    assert_eq!(got["days"], days, "partition values, the null one included");
    assert_eq!(
        (got["partitions"].clone(), got["name"].clone()),
        (serde_json::json!(["day"]), serde_json::json!("packages"))
    );
    let columns: Vec<&str> = got["columns"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
    let want: Vec<&str> = packages.all_columns().map(|c| c.name).chain(["day"]).collect();
    assert_eq!(columns, want);
}
