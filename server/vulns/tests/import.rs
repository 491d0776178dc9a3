//! Imports of real OSV records (tests/data/osv: Go, PyPI, crates.io and one
//! Debian advisory, unmodified; see its README) into a data directory, read
//! back through SQL and through the Delta logs.

use std::path::{Path, PathBuf};

use datafusion::prelude::SessionContext;
use periscope_query::catalog::Extension;
use periscope_vulns::import::import;
use periscope_vulns::sql::{CURRENT_ADVISORIES, CURRENT_AFFECTED, Tables};

fn samples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/osv")
}

fn records() -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for dir in std::fs::read_dir(samples()).unwrap().flatten().filter(|d| d.path().is_dir()) {
        for f in std::fs::read_dir(dir.path()).unwrap().flatten() {
            out.push(serde_json::from_slice(&std::fs::read(f.path()).unwrap()).unwrap());
        }
    }
    out
}

async fn query(data: &Path, sql: &str) -> Vec<Vec<String>> {
    let ctx = SessionContext::new();
    Tables.register(&ctx, Some(data)).unwrap();
    for v in [CURRENT_ADVISORIES, CURRENT_AFFECTED] {
        ctx.sql(v).await.unwrap();
    }
    let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    let mut rows = Vec::new();
    for b in batches {
        for i in 0..b.num_rows() {
            rows.push(b.columns().iter().map(|c| arrow_cast::display::array_value_to_string(c, i).unwrap()).collect());
        }
    }
    rows
}

#[tokio::test]
async fn every_sample_record_is_stored_once_and_what_is_not_matched_is_counted() {
    let data = tempfile::tempdir().unwrap();
    let all = records();
    let s = import(data.path(), &[samples()]).unwrap();
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    assert_eq!((s.records, s.new, s.updated, s.unchanged), (all.len() as u64, all.len() as u64, 0, 0));
    let withdrawn = all.iter().filter(|r| r.get("withdrawn").is_some()).count() as u64;
    assert_eq!(s.withdrawn, withdrawn);
    assert!(withdrawn >= 40, "the sample's withdrawn records: {withdrawn}");
    // Counted independently from the JSON: entries with a GIT range, and the Debian:7 entry of DSA-3029-1.
    let entries = || all.iter().flat_map(|r| r["affected"].as_array().cloned().unwrap_or_default());
    let git = entries()
        .filter(|a| a["ranges"].as_array().is_some_and(|rs| rs.iter().any(|r| r["type"] == "GIT")))
        .count() as u64;
    let git_ranges = entries()
        .flat_map(|a| a["ranges"].as_array().cloned().unwrap_or_default())
        .filter(|r| r["type"] == "GIT")
        .count() as u64;
    assert!(git > 0);
    assert_eq!(s.unmatched.get("GIT range not matched").copied(), Some(git_ranges), "{:?}", s.unmatched);
    assert_eq!(s.affected.values().sum::<u64>(), entries().count() as u64);
    assert_eq!(s.affected.get("Debian:7"), Some(&1));
    // Every SEMVER and ECOSYSTEM range of the sample reads in its ecosystem's order.
    let other: Vec<_> = s.unmatched.keys().filter(|k| *k != "GIT range not matched").collect();
    assert!(other.is_empty(), "{:?}", s.unmatched);

    let n = query(data.path(), "SELECT count(*), count(DISTINCT id), count(withdrawn) FROM advisories").await;
    assert_eq!(n, [[all.len().to_string(), all.len().to_string(), withdrawn.to_string()]]);
    // Scores are computed from the vectors: RUSTSEC-2016-0001 gives
    // CVSS:3.0/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:H/A:H, 8.1 on FIRST's calculator.
    let r = query(
        data.path(),
        "SELECT severity, cvss_score, array_to_string(aliases, ',') FROM advisories WHERE id = 'RUSTSEC-2016-0001'",
    )
    .await;
    assert_eq!(r, [["HIGH", "8.1", "CVE-2016-10931,GHSA-34p9-f4q3-c4r7"]]);
    let s_rows = query(
        data.path(),
        "SELECT count(*) FROM advisory_affected WHERE package_key = 'golang.org/x/net' AND ecosystem_key = 'Go'",
    )
    .await;
    assert!(s_rows[0][0].parse::<u64>().unwrap() > 20, "{s_rows:?}");

    // Again: nothing is new.
    let again = import(data.path(), &[samples()]).unwrap();
    assert_eq!((again.new, again.updated, again.unchanged), (0, 0, all.len() as u64));
    let n = query(data.path(), "SELECT count(*) FROM advisories_history").await;
    assert_eq!(n, [[all.len().to_string()]]);
}

#[tokio::test]
async fn a_newer_record_replaces_the_current_one_and_withdrawing_it_is_kept() {
    let data = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    let path = samples().join("pypi/PYSEC-2023-74.json");
    let mut rec: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    import(data.path(), std::slice::from_ref(&path)).unwrap();
    // An older modified time is not an update; a newer one is, with its changes.
    rec["modified"] = "2001-01-01T00:00:00Z".into();
    rec["summary"] = "older".into();
    std::fs::write(src.path().join("old.json"), rec.to_string()).unwrap();
    let s = import(data.path(), &[src.path().join("old.json")]).unwrap();
    assert_eq!((s.new, s.updated, s.unchanged), (0, 0, 1));
    // A time far ahead of the clock would pin the id against every later correction: refused.
    rec["modified"] = "2999-01-01T00:00:00Z".into();
    std::fs::write(src.path().join("future.json"), rec.to_string()).unwrap();
    let s = import(data.path(), &[src.path().join("future.json")]).unwrap();
    assert_eq!(s.new + s.updated, 0);
    assert!(s.errors[0].contains("is in the future, not imported"), "{:?}", s.errors);
    rec["modified"] = "2026-06-01T00:00:00Z".into();
    rec["withdrawn"] = "2026-06-01T00:00:00Z".into();
    rec["summary"] = "newer".into();
    rec["affected"][0]["ranges"][0]["events"] = serde_json::json!([{"introduced": "0"}, {"fixed": "9.9"}]);
    std::fs::write(src.path().join("new.json"), rec.to_string()).unwrap();
    let s = import(data.path(), &[src.path().join("new.json")]).unwrap();
    assert_eq!((s.new, s.updated, s.withdrawn), (0, 1, 1));
    let r = query(data.path(), "SELECT summary, withdrawn IS NOT NULL FROM advisories").await;
    assert_eq!(r, [["newer", "true"]]);
    let r = query(data.path(), "SELECT count(*) FROM advisories_history").await;
    assert_eq!(r, [["2"]]);
    let r = query(data.path(), "SELECT ranges FROM advisory_affected").await;
    assert_eq!(r.len(), 1);
    assert!(r[0][0].contains("9.9"), "{r:?}");
}

#[tokio::test]
async fn zip_archives_as_osv_publishes_them_and_broken_files_are_named_not_fatal() {
    use std::io::Write;
    let data = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    let zip_path = src.path().join("all.zip");
    let mut z = zip::ZipWriter::new(std::fs::File::create(&zip_path).unwrap());
    let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    let mut n = 0;
    for f in std::fs::read_dir(samples().join("crates-io")).unwrap().flatten() {
        z.start_file(f.file_name().to_string_lossy(), opts).unwrap();
        z.write_all(&std::fs::read(f.path()).unwrap()).unwrap();
        n += 1;
    }
    z.start_file("broken.json", opts).unwrap();
    z.write_all(b"{\"id\": ").unwrap();
    z.finish().unwrap();
    std::fs::write(src.path().join("no-id.json"), b"{\"modified\": \"2024-01-01T00:00:00Z\"}").unwrap();
    let s = import(data.path(), &[zip_path, src.path().join("no-id.json"), src.path().join("missing.json")]).unwrap();
    assert_eq!(s.new, n);
    assert_eq!(s.errors.len(), 3, "{:?}", s.errors);
    assert!(s.errors[0].contains("all.zip:broken.json: not JSON"), "{:?}", s.errors);
    assert!(s.errors[1].contains("no-id.json: not an OSV record: missing field `id`"), "{:?}", s.errors);
    assert!(s.errors[2].contains("missing.json"), "{:?}", s.errors);
    let r = query(data.path(), "SELECT count(*) FROM advisories WHERE source LIKE '%all.zip:RUSTSEC-%'").await;
    assert_eq!(r, [[n.to_string()]]);
}

/// Other engines read the same tables: the Delta log lists every file the
/// import wrote, with the schema it declares.
#[test]
fn the_delta_logs_hold_every_imported_file() {
    let data = tempfile::tempdir().unwrap();
    import(data.path(), &[samples().join("go")]).unwrap();
    import(data.path(), &[samples().join("pypi")]).unwrap();
    for table in [periscope_vulns::store::ADVISORIES, periscope_vulns::store::AFFECTED] {
        let files = periscope_vulns::store::committed(data.path(), table).unwrap();
        assert_eq!(files.len(), 2, "{table}: {files:?}");
        let log = data.path().join("tables").join(table).join("_delta_log/00000000000000000000.json");
        let first = std::fs::read_to_string(log).unwrap();
        assert!(first.contains("\"schemaString\"") && first.contains(r#"\"name\":\"modified\""#), "{first}");
    }
}

/// An import streams: a large archive is written in parts as it is read,
/// not held whole, and every record arrives.
#[tokio::test]
async fn a_large_archive_is_written_in_parts_and_arrives_whole() {
    use std::io::Write;
    let data = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    let zip_path = src.path().join("all.zip");
    let mut z = zip::ZipWriter::new(std::fs::File::create(&zip_path).unwrap());
    let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    let n = 45_000;
    for i in 0..n {
        z.start_file(format!("X-{i}.json"), opts).unwrap();
        let r = serde_json::json!({"id": format!("X-{i}"), "modified": "2026-01-01T00:00:00Z",
            "affected": [{"package": {"ecosystem": "PyPI", "name": format!("p{}", i % 100)},
                          "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1.0"}]}]}]});
        z.write_all(r.to_string().as_bytes()).unwrap();
    }
    z.finish().unwrap();
    let s = import(data.path(), &[zip_path]).unwrap();
    assert_eq!((s.new, s.errors.len()), (n, 0));
    for table in [periscope_vulns::store::ADVISORIES, periscope_vulns::store::AFFECTED] {
        let files = periscope_vulns::store::committed(data.path(), table).unwrap();
        assert_eq!(files.len(), 3, "{table}: 20,000 records a file: {files:?}");
    }
    let r = query(data.path(), "SELECT count(*), count(DISTINCT id) FROM advisories").await;
    assert_eq!(r, [[n.to_string(), n.to_string()]]);
    let r = query(data.path(), "SELECT count(*) FROM advisory_affected").await;
    assert_eq!(r, [[n.to_string()]]);
}
