//! Issue 19: OSV advisories imported into a running server's data directory
//! and matched against real crawls — wheels from PyPI, Go and Rust binaries,
//! a debootstrap root and a running container of it — checked against an
//! independent evaluation of the same records (tests/osv_oracle.py: the OSV
//! specification's algorithm with packaging, python-semver and dpkg itself).

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};

use common::*;
use serde_json::{Value, json};

type Row = serde_json::Map<String, Value>;

fn import(data: &Path, paths: &[&Path]) -> String {
    let out = Command::new(periscope_bin())
        .args(["vulns", "import", "--data", data.to_str().unwrap()])
        .args(paths)
        .output()
        .expect("run periscope vulns import");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "import failed: {stdout}{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

/// A Debian 12 record of the kind the Debian security tracker publishes.
fn debian(id: &str, source: &str, release: &str, events: Value, withdrawn: bool) -> Value {
    let mut r = json!({
        "severity": if id == "PTEST-1" {
            json!([{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}])
        } else {
            json!([])
        },
        "id": id, "modified": "2026-11-01T00:00:00Z", "published": "2026-10-01T00:00:00Z",
        "aliases": [format!("CVE-2026-{}", id.len() * 1000 + source.len())],
        "summary": format!("{source} - test advisory"),
        "affected": [{"package": {"ecosystem": release, "name": source},
                      "ranges": [{"type": "ECOSYSTEM", "events": events}]}],
    });
    if withdrawn {
        r["withdrawn"] = "2026-11-02T00:00:00Z".into();
    }
    r
}

/// A column's value as text; `-` for null (which the JSON output leaves out).
fn text(row: &Row, col: &str) -> String {
    match row.get(col) {
        None | Some(Value::Null) => "-".into(),
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
    }
}

#[test]
fn vulnerabilities_match_real_crawls_as_an_independent_evaluation_does() {
    if !docker_available("vulnerabilities_match_real_crawls_as_an_independent_evaluation_does") {
        return;
    }
    let (Some(python), Some(binaries)) = (fixture_root("python-fixture.sh"), fixture_root("binary-fixtures.sh")) else {
        return;
    };
    let Some(py) = common::python() else { return };
    let image = docker_test_image();
    let tag = format!("vu{}", std::process::id());
    let web = format!("{tag}-web");
    let mut cs = Containers(Vec::new());
    cs.create(&["run", "-d", "--name", &web, &image, "sleep", "600"]);

    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let target = ["--server", server.url.as_str()];
    crawl_root(&server.url, &python, &format!("{tag}-python"), "os,packages,python", &[]);
    crawl_root(&server.url, &binaries, &format!("{tag}-bin"), "os,packages", &[]);
    // The debootstrap root as a host, with this machine's Docker containers and images beside it.
    crawl_root(&server.url, &debian_rootfs(), &format!("{tag}-deb"), "os,packages", &["--docker", "on"]);

    // Debian records written from the OSV specification against what the root holds.
    let installed: BTreeMap<String, (String, String)> = sql(
        &target,
        &format!(
            "SELECT name, source, source_version FROM packages WHERE host = '{tag}-deb' AND scope = 'host' \
             AND name IN ('bash', 'coreutils', 'tar', 'libc6')"
        ),
    )
    .iter()
    .map(|r| (text(r, "name"), (text(r, "source"), text(r, "source_version"))))
    .collect();
    assert_eq!(installed.len(), 4, "{installed:?}");
    let sv = |n: &str| installed[n].1.clone();
    assert_eq!(installed["libc6"].0, "glibc");
    let records = tempfile::tempdir().unwrap();
    let bash_fix = format!("{}+deb12u9", sv("bash"));
    let mine = [
        // Below its fix: affected, with the fix named.
        debian("PTEST-1", "bash", "Debian:12", json!([{"introduced": "0"}, {"fixed": bash_fix}]), false),
        // Fixed long ago: not affected.
        debian("PTEST-2", "coreutils", "Debian:12", json!([{"introduced": "0"}, {"fixed": "8.0-1"}]), false),
        // No fix yet: affected, no fixed version.
        debian("PTEST-3", "tar", "Debian:12", json!([{"introduced": "0"}]), false),
        // Withdrawn: matches nothing.
        debian("PTEST-4", "bash", "Debian:12", json!([{"introduced": "0"}, {"fixed": "99"}]), true),
        // Another release: matches nothing here.
        debian("PTEST-5", "bash", "Debian:11", json!([{"introduced": "0"}, {"fixed": "99"}]), false),
        // Keyed by source package (libc6 is built from glibc); last_affected is inclusive.
        debian("PTEST-6", "glibc", "Debian:12", json!([{"introduced": "0"}, {"last_affected": sv("libc6")}]), false),
        // A binary package's name is not a source package's: not matched.
        debian("PTEST-7", "libc6", "Debian:12", json!([{"introduced": "0"}, {"fixed": "99"}]), false),
    ];
    // PyPI records with the shapes the specification allows and the samples lack (urllib3 2.0.7 and
    // requests 2.31.0 are in the Python fixture's /usr/local).
    // A crates.io record for a crate compiled into the fixture's uv binary (the sample's advisories
    // name none of its versions), so the SemVer comparison is exercised too.
    let crates = sql(
        &target,
        &format!(
            "SELECT name, version FROM packages WHERE host = '{tag}-bin' AND manager = 'cargo' ORDER BY name LIMIT 1"
        ),
    );
    assert_eq!(crates.len(), 1, "uv's cargo-auditable dependencies");
    let (krate, krate_version) = (text(&crates[0], "name"), text(&crates[0], "version"));
    let pypi = |id: &str, name: &str, ranges: Value| {
        json!({"id": id, "modified": "2026-11-01T00:00:00Z",
               "affected": [{"package": {"ecosystem": "PyPI", "name": name}, "ranges": ranges}]})
    };
    let ecosystem = |events: Value| json!({"type": "ECOSYSTEM", "events": events});
    let mine = [
        mine.to_vec(),
        vec![
            // Overlapping ranges: 2.1.0 is still inside the first, so the fixing version is 2.5.0.
            pypi(
                "PTEST-8",
                "urllib3",
                json!([
                    ecosystem(json!([{"introduced": "0"}, {"fixed": "2.5.0"}])),
                    ecosystem(json!([{"introduced": "2.0.0"}, {"fixed": "2.1.0"}]))
                ]),
            ),
            // introduced and fixed at one version, listed fixed first: an empty span.
            pypi("PTEST-9", "urllib3", json!([ecosystem(json!([{"fixed": "2.0.7"}, {"introduced": "2.0.7"}]))])),
            json!({"id": "PTEST-11", "modified": "2026-11-01T00:00:00Z",
                   "affected": [{"package": {"ecosystem": "crates.io", "name": krate},
                                 "ranges": [{"type": "SEMVER", "events": [{"introduced": "0.0.0-0"}, {"fixed": "999.0.0"}]}]}]}),
            // last_affected is inclusive; the next branch's fix is the lowest fixing version.
            pypi(
                "PTEST-10",
                "Requests",
                json!([ecosystem(
                    json!([{"introduced": "0"}, {"last_affected": "2.31.0"}, {"introduced": "3.0"}, {"fixed": "3.1"}])
                )]),
            ),
        ],
    ]
    .concat();
    for r in &mine {
        std::fs::write(records.path().join(format!("{}.json", r["id"].as_str().unwrap())), r.to_string()).unwrap();
    }
    let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("vulns/tests/data/osv");
    // Imported while the server runs; its next query sees them.
    let summary = import(data.path(), &[&samples, records.path()]);
    assert!(summary.contains("not matched       GIT range not matched"), "{summary}");

    let found = sql(
        &target,
        &format!(
            "SELECT host, scope, scope_id, container, image, container_state, manager, package, version, advisory, \
                    fixed_version, severity, array_to_string(aliases, ',') AS aliases \
             FROM vulnerabilities WHERE host LIKE '{tag}-%'"
        ),
    );
    // The same question of a data directory directly gives the same rows.
    let direct = sql(
        &["--data", data.path().to_str().unwrap()],
        &format!("SELECT count(*) AS n FROM vulnerabilities WHERE host LIKE '{tag}-%'"),
    );
    assert_eq!(direct[0]["n"], json!(found.len()));

    // The independent evaluation, over the same packages and records.
    let packages = sql(
        &target,
        &format!(
            "SELECT p.host, p.scope, p.scope_id, p.manager, p.name, p.version, p.source, p.source_version, p.owner_package, \
                    o.id AS os_id, o.version_id AS os_version_id \
             FROM packages p LEFT JOIN os o ON o.host = p.host AND o.scope = p.scope AND o.scope_id = p.scope_id \
             WHERE p.host LIKE '{tag}-%'"
        ),
    );
    let mut paths: Vec<String> = Vec::new();
    for dir in [
        samples.join("go"),
        samples.join("pypi"),
        samples.join("crates-io"),
        samples.join("debian"),
        records.path().into(),
    ] {
        for f in std::fs::read_dir(dir).unwrap().flatten() {
            paths.push(f.path().to_string_lossy().into_owned());
        }
    }
    let job = json!({"records": paths, "packages": packages});
    let oracle = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/osv_oracle.py");
    let mut child = Command::new(&py)
        .arg(&oracle)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run the oracle");
    serde_json::to_writer(child.stdin.take().unwrap(), &job).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "oracle failed");
    let expected: Vec<Vec<Value>> = serde_json::from_slice(&out.stdout).unwrap();

    let key = |host: &str, scope: &str, id: &str, manager: &str, name: &str, version: &str, adv: &str, fixed: &str| {
        // Go module versions carry a `v`; OSV's events do not.
        let fixed = if manager == "golang" { fixed.trim_start_matches('v') } else { fixed };
        format!("{host} {scope} {id} {manager} {name} {version} {adv} fixed={fixed}")
    };
    let mut got: Vec<String> = found
        .iter()
        .map(|r| {
            key(
                &text(r, "host"),
                &text(r, "scope"),
                &text(r, "scope_id"),
                &text(r, "manager"),
                &text(r, "package"),
                &text(r, "version"),
                &text(r, "advisory"),
                &text(r, "fixed_version"),
            )
        })
        .collect();
    let mut want: Vec<String> = expected
        .iter()
        .map(|e| {
            let s = |i: usize| e[i].as_str().map(str::to_string).unwrap_or_else(|| "-".into());
            key(&s(0), &s(1), &s(2), &s(3), &s(4), &s(5), &s(6), &s(7))
        })
        .collect();
    got.sort();
    want.sort();
    let only_got: Vec<_> = got.iter().filter(|g| !want.contains(g)).collect();
    let only_want: Vec<_> = want.iter().filter(|w| !got.contains(w)).collect();
    assert!(only_got.is_empty() && only_want.is_empty(), "Periscope only: {only_got:#?}\noracle only: {only_want:#?}");
    assert_eq!(got, want, "the same rows, as often");

    // Not vacuous: every ecosystem of the fixtures has exposures.
    let count = |f: &dyn Fn(&Row) -> bool| found.iter().filter(|r| f(r)).count();
    for manager in ["pypi", "golang", "cargo", "dpkg"] {
        assert!(count(&|r: &Row| text(r, "manager") == manager) > 0, "no {manager} rows: {found:#?}");
    }
    // The running container carries its image's exposures, named as such.
    let in_web: Vec<&Row> =
        found.iter().filter(|r| text(r, "container") == web && text(r, "advisory") == "PTEST-1").collect();
    assert_eq!(in_web.len(), 1, "{found:#?}");
    assert_eq!(text(in_web[0], "fixed_version"), bash_fix);
    assert_eq!(text(in_web[0], "image"), image);
    assert_eq!(text(in_web[0], "container_state"), "running");
    assert_eq!(text(in_web[0], "severity"), "CRITICAL");
    let on_host = |adv: &str| {
        found
            .iter()
            .filter(|r| {
                text(r, "host") == format!("{tag}-deb") && text(r, "scope") == "host" && text(r, "advisory") == adv
            })
            .map(|r| format!("{} {}", text(r, "package"), text(r, "fixed_version")))
            .collect::<Vec<_>>()
    };
    assert_eq!(on_host("PTEST-1"), [format!("bash {bash_fix}")]);
    let python_host = |adv: &str| {
        found
            .iter()
            .filter(|r| text(r, "host") == format!("{tag}-python") && text(r, "advisory") == adv)
            .map(|r| format!("{} {} {}", text(r, "package"), text(r, "version"), text(r, "fixed_version")))
            .collect::<Vec<_>>()
    };
    assert_eq!(python_host("PTEST-8"), ["urllib3 2.0.7 2.5.0"]);
    assert_eq!(python_host("PTEST-10"), ["requests 2.31.0 3.1"]);
    assert!(python_host("PTEST-9").is_empty());
    let in_uv: Vec<String> = found
        .iter()
        .filter(|r| text(r, "advisory") == "PTEST-11")
        .map(|r| format!("{} {} {}", text(r, "package"), text(r, "version"), text(r, "fixed_version")))
        .collect();
    assert_eq!(in_uv, [format!("{krate} {krate_version} 999.0.0")]);
    assert_eq!(on_host("PTEST-3"), ["tar -"]);
    assert!(on_host("PTEST-6").contains(&"libc6 -".to_string()), "{:?}", on_host("PTEST-6"));
    for none in ["PTEST-2", "PTEST-4", "PTEST-5", "PTEST-7", "PTEST-9"] {
        assert!(found.iter().all(|r| text(r, "advisory") != none), "{none} matched");
    }
    // The history view's open spans are the current exposures, one per package version.
    let open = |view: &str, cond: &str| -> Vec<String> {
        sql(
            &target,
            &format!(
                "SELECT DISTINCT host || ' ' || scope || ' ' || scope_id || ' ' || package || ' ' || version || ' ' || advisory AS x \
                 FROM {view} WHERE host LIKE '{tag}-%' {cond} ORDER BY x"
            ),
        )
        .iter()
        .map(|r| text(r, "x"))
        .collect()
    };
    assert_eq!(open("vulnerabilities_history", "AND until IS NULL"), open("vulnerabilities", ""));
    vulns_pack_names_the_exposures(data.path(), &tag, &web, &image, &bash_fix);
    eprintln!(
        "vulnerabilities: {} rows ({} pypi, {} golang, {} cargo, {} dpkg), equal to the oracle's",
        found.len(),
        count(&|r: &Row| text(r, "manager") == "pypi"),
        count(&|r: &Row| text(r, "manager") == "golang"),
        count(&|r: &Row| text(r, "manager") == "cargo"),
        count(&|r: &Row| text(r, "manager") == "dpkg"),
    );
}

/// Runs queries/vulns.toml over the data directory and returns report.json.
fn run_vulns_pack(data: &Path, params: &[&str]) -> Value {
    let out = tempfile::tempdir().unwrap();
    let packs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../queries");
    let st = Command::new(periscope_bin())
        .args(["report", "run", "vulns", "--packs", packs.to_str().unwrap(), "--data", data.to_str().unwrap()])
        .args(["--out", out.path().to_str().unwrap(), "--no-store"])
        .args(params)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "report run vulns: {st}");
    let run: Value = serde_json::from_slice(&std::fs::read(out.path().join("report.json")).unwrap()).unwrap();
    for c in run["checks"].as_array().unwrap() {
        assert_ne!(c["status"], "error", "{c}");
    }
    run
}

/// The items of check `id` on this test's hosts, as "host-suffix item: reason".
fn items(run: &Value, id: &str, tag: &str) -> Vec<String> {
    let check = run["checks"].as_array().unwrap().iter().find(|c| c["id"] == id).unwrap();
    let mut v: Vec<String> = check["failing"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| {
            let host = i["host"].as_str()?.strip_prefix(&format!("{tag}-"))?;
            Some(format!("{host} {} {}: {}", i["scope"].as_str()?, i["item"].as_str()?, i["reason"].as_str()?))
        })
        .collect();
    v.sort();
    v
}

fn vulns_pack_names_the_exposures(data: &Path, tag: &str, web: &str, image: &str, bash_fix: &str) {
    let run = run_vulns_pack(data, &[]);
    let critical = items(&run, "critical-high-running", tag);
    let bash = critical.iter().find(|i| i.contains("(PTEST-1)")).unwrap_or_else(|| panic!("{critical:#?}"));
    assert!(
        bash.starts_with("deb container bash ") && bash.ends_with(&format!(": CRITICAL, fixed in {bash_fix}")),
        "{bash}"
    );
    let check = run["checks"].as_array().unwrap().iter().find(|c| c["id"] == "critical-high-running").unwrap();
    assert!(check["failing"].as_array().unwrap().iter().any(|i| i["container"] == web), "{check}");
    // Nothing here is older than 30 days: the packages arrived with this test's crawls.
    assert!(items(&run, "exposed-longer-than", tag).is_empty());
    assert!(items(&run, "fix-available", tag).iter().any(|i| i.contains("(PTEST-1)")));
    let rebuild = items(&run, "rebuild-fixes-most", tag);
    assert!(rebuild.iter().any(|i| i.starts_with(&format!("deb image {image}: "))), "{rebuild:#?}");
    // With no window at all, every exposure is over it, dated by its arrival.
    let run = run_vulns_pack(data, &["--param", "max_exposure_days=-1"]);
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let old = items(&run, "exposed-longer-than", tag);
    assert!(
        old.iter().any(|i| i.starts_with("deb host tar ") && i.ends_with(&format!("(PTEST-3): exposed since {today}"))),
        "{old:#?}"
    );
}

/// `vulnerabilities_history`: an exposure begins with the crawl that first
/// shows the package version and ends with the one that no longer does.
#[test]
fn an_exposure_spans_the_crawls_that_held_the_package() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let root = tempfile::tempdir().unwrap();
    let info = root.path().join("usr/lib/python3/dist-packages/urllib3-1.26.0.dist-info");
    std::fs::create_dir_all(&info).unwrap();
    std::fs::write(info.join("METADATA"), "Metadata-Version: 2.1\nName: urllib3\nVersion: 1.26.0\n").unwrap();
    let host = format!("span{}", std::process::id());
    crawl_root(&server.url, root.path(), &host, "os,packages,python", &[]);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    // The next crawl of the same host still shows it; the one after, gone.
    crawl_root(&server.url, root.path(), &host, "os,packages,python", &[]);
    std::fs::remove_dir_all(&info).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    crawl_root(&server.url, root.path(), &host, "os,packages,python", &[]);
    let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("vulns/tests/data/osv/pypi");
    import(data.path(), &[&samples]);
    let target = ["--server", server.url.as_str()];
    let crawls: Vec<String> = sql(
        &target,
        &format!("SELECT CAST(crawl_time AS VARCHAR) AS t FROM crawls WHERE host = '{host}' ORDER BY crawl_time"),
    )
    .iter()
    .map(|r| text(r, "t"))
    .collect();
    assert_eq!(crawls.len(), 3, "{crawls:?}");
    let spans = sql(
        &target,
        &format!(
            "SELECT package, version, advisory, fixed_version, CAST(since AS VARCHAR) AS since, CAST(until AS VARCHAR) AS until \
             FROM vulnerabilities_history WHERE host = '{host}' ORDER BY advisory"
        ),
    );
    // urllib3 1.26.0 is below several real fixes in the sample (1.26.5, 1.26.17, ...).
    assert!(spans.len() >= 3, "{spans:#?}");
    for s in &spans {
        assert_eq!((text(s, "package"), text(s, "version")), ("urllib3".into(), "1.26.0".into()));
        assert_eq!((text(s, "since"), text(s, "until")), (crawls[0].clone(), crawls[2].clone()), "{s:?}");
    }
    // The same advisories as the current view showed, now gone from it.
    let now = sql(&target, &format!("SELECT count(*) AS n FROM vulnerabilities WHERE host = '{host}'"));
    assert_eq!(now[0]["n"], json!(0));
    let fixes: Vec<String> = spans.iter().map(|s| text(s, "fixed_version")).collect();
    assert!(fixes.contains(&"1.26.5".to_string()), "{fixes:?}");
}

/// `serve --vulns-source`: a directory and a URL imported at start, and
/// again on the interval, picking up a record added meanwhile.
#[test]
fn a_server_imports_its_advisory_sources_on_an_interval() {
    let Some(py) = common::python() else { return };
    let data = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let web = tempfile::tempdir().unwrap();
    let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("vulns/tests/data/osv");
    for f in ["go/GO-2022-0969.json", "pypi/PYSEC-2023-74.json"] {
        let from = samples.join(f);
        std::fs::copy(&from, dir.path().join(from.file_name().unwrap())).unwrap();
    }
    std::fs::copy(samples.join("crates-io/RUSTSEC-2016-0001.json"), web.path().join("one.json")).unwrap();
    // A plain HTTP server on loopback stands in for osv.dev.
    let port = free_addr().rsplit(':').next().unwrap().to_string();
    let mut http = Command::new(&py)
        .args(["-m", "http.server", &port, "--bind", "127.0.0.1", "--directory", web.path().to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("http.server", std::time::Duration::from_secs(20), || {
        std::net::TcpStream::connect(format!("127.0.0.1:{port}")).is_ok()
    });
    let url = format!("http://127.0.0.1:{port}/one.json");
    let server = Server::start_full(
        data.path(),
        &free_addr(),
        &["--vulns-source", dir.path().to_str().unwrap(), "--vulns-source", &url, "--vulns-interval-secs", "1"],
        &[],
    );
    let target = ["--server", server.url.as_str()];
    let ids = || -> Vec<String> {
        sql(&target, "SELECT id FROM advisories ORDER BY id").iter().map(|r| text(r, "id")).collect()
    };
    wait_for("the first import", std::time::Duration::from_secs(60), || ids().len() == 3);
    assert_eq!(ids(), ["GO-2022-0969", "PYSEC-2023-74", "RUSTSEC-2016-0001"]);
    std::fs::copy(samples.join("debian/DSA-3029-1.json"), dir.path().join("DSA-3029-1.json")).unwrap();
    wait_for("the next round", std::time::Duration::from_secs(60), || ids().len() == 4);
    // Rounds that find nothing new store nothing.
    std::thread::sleep(std::time::Duration::from_secs(3));
    let n = sql(&target, "SELECT count(*) AS n FROM advisories_history");
    assert_eq!(n[0]["n"], json!(4));
    let _ = http.kill();
    let _ = http.wait();
}

/// Other engines read the advisory tables as they read the fleet's: the
/// Python `deltalake` package opens both Delta tables and finds every row.
#[test]
fn deltalake_reads_the_advisory_tables() {
    let Some(py) = common::python() else { return };
    let data = tempfile::tempdir().unwrap();
    let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("vulns/tests/data/osv");
    import(data.path(), &[&samples.join("go"), &samples.join("crates-io")]);
    import(data.path(), &[&samples.join("pypi")]);
    let want = sql(
        &["--data", data.path().to_str().unwrap()],
        "SELECT (SELECT count(*) FROM advisories_history) AS a, (SELECT count(*) FROM advisory_affected_history) AS f",
    );
    // os._exit: pyarrow's scanner threads can abort the interpreter's teardown
    // ("terminate called without an active exception") after a correct result.
    let script = r#"
import sys, os, deltalake
for t in ("advisories", "advisory_affected"):
    d = deltalake.DeltaTable(sys.argv[1] + "/tables/" + t)
    print(t, d.to_pyarrow_table().num_rows, len(d.file_uris()), flush=True)
os._exit(0)
"#;
    let out = Command::new(&py).args(["-c", script, data.path().to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let got = String::from_utf8(out.stdout).unwrap();
    assert_eq!(got, format!("advisories {} 2\nadvisory_affected {} 2\n", want[0]["a"], want[0]["f"]));
}
