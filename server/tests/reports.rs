//! `periscope report`: query packs run against real crawls of real Docker
//! containers and root filesystems, through the real CLI and server.
//!
//! - every cis-docker check fails on a container (or root) built to break it and
//!   passes on one built to satisfy it;
//! - a pack with a syntax error, a bad field, invalid SQL and a check that times
//!   out reports each in the run while its good checks complete;
//! - two runs with a change between them mark items new, still failing and resolved,
//!   stored as the report_* tables;
//! - the HTML report loads in headless Chromium without errors, is screenshotted,
//!   and shows the JSON report's counts.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use common::*;
use serde_json::Value;

/// Tests here crawl the whole host: one at a time, so one's containers are not another's surprise.
static HOST_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn queries() -> PathBuf {
    repo_root().join("queries")
}

/// Runs `periscope report <args>`; returns (exit code, stdout, stderr).
fn report(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(periscope_bin()).arg("report").args(args).output().expect("run periscope report");
    let (o, e) = (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned());
    eprintln!("periscope report {args:?}: {}\n{e}", out.status);
    (out.status.code().unwrap_or(-1), o, e)
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn check<'a>(run: &'a Value, id: &str) -> &'a Value {
    run["checks"].as_array().unwrap().iter().find(|c| c["id"] == id).unwrap_or_else(|| panic!("no check {id}"))
}

/// A report run written to a fresh directory: its exit code, its standard
/// output, its `report.json` and the directory (the other formats are there).
struct Ran {
    code: i32,
    stdout: String,
    run: Value,
    out: tempfile::TempDir,
}

/// `periscope report run ARGS --out DIR`, DIR a fresh directory.
fn run_pack(args: &[&str]) -> Ran {
    let out = tempfile::tempdir().unwrap();
    let (code, stdout, _) = report(&[&["run"], args, &["--out", out.path().to_str().unwrap()]].concat());
    let run = read_json(&out.path().join("report.json"));
    Ran { code, stdout, run, out }
}

/// The values of `field` that start with `{tag}-` among the items failing
/// check `id`, with that prefix taken off, sorted (one per item: repeats stay).
fn failing(run: &Value, id: &str, field: &str, tag: &str) -> Vec<String> {
    let prefix = format!("{tag}-");
    let mut v: Vec<String> = check(run, id)["failing"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i[field].as_str()?.strip_prefix(&prefix).map(str::to_string))
        .collect();
    v.sort();
    v
}

/// Crawls this host (containers from Docker, configs of every scope) into the server.
fn crawl_host(url: &str) {
    let (ok, _, err) = agent(&["crawl", "--server", url, "--collectors", "configs", "--containerd", "off"]);
    assert!(ok, "crawl failed: {err}");
}

/// An HTTP endpoint that takes POSTs: each body arrives on the receiver.
fn webhook_receiver() -> (String, std::sync::mpsc::Receiver<Value>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut r = BufReader::new(conn.try_clone().unwrap());
            let (mut line, mut length, mut post) = (String::new(), 0usize, false);
            while r.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
                post |= line.starts_with("POST /hook ");
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
                line.clear();
            }
            let mut body = vec![0; length];
            r.read_exact(&mut body).unwrap();
            let _ = conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            assert!(post, "not a POST to /hook");
            let _ = tx.send(serde_json::from_slice(&body).unwrap());
        }
    });
    (url, rx)
}

/// A host port below 1024 nobody listens on now.
fn free_privileged_port() -> u16 {
    (900..1000)
        .find(|p| std::net::TcpListener::bind(("0.0.0.0", *p)).is_ok())
        .expect("a free port between 900 and 1000")
}

/// A high loopback port nobody listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn every_cis_docker_check_fails_on_a_bad_container_and_passes_on_a_good_one() {
    let _lock = HOST_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    if !docker_available("every_cis_docker_check_fails_on_a_bad_container_and_passes_on_a_good_one") {
        return;
    }
    let image = docker_test_image();
    let tag = format!("pr{}", std::process::id());
    let (bad, web, good) = (format!("{tag}-bad"), format!("{tag}-web"), format!("{tag}-good"));
    let scratch = tempfile::tempdir().unwrap();
    let shared = scratch.path().to_str().unwrap();
    let mut cs = Containers(Vec::new());
    // Breaks every container-settings check at once. Created, not started: the
    // crawl reads its configuration all the same, and an rshared mount of a
    // directory that is not on a shared mount could not start anyway.
    cs.create(&[
        "create",
        "--name",
        &bad,
        "--privileged",
        "--network",
        "host",
        "--pid",
        "host",
        "--ipc",
        "host",
        "--uts",
        "host",
        "--userns",
        "host",
        "-v",
        "/var/run/docker.sock:/var/run/docker.sock:ro",
        "-v",
        "/etc:/host-etc:ro",
        "--mount",
        &format!("type=bind,source={shared},target=/shared,bind-propagation=rshared"),
        "--cap-add",
        "SYS_ADMIN",
        "--security-opt",
        "seccomp=unconfined",
        "--security-opt",
        "apparmor=unconfined",
        "--restart",
        "on-failure:10",
        "--device",
        "/dev/null:/dev/periscope-null",
        &image,
        "sleep",
        "600",
    ]);
    // Running: a privileged port on all interfaces, and a process named sshd
    // (the image's sleep under that name: what the check looks at is the live process).
    let port = free_privileged_port().to_string();
    cs.create(&[
        "run",
        "-d",
        "--name",
        &web,
        "-p",
        &format!("{port}:8080"),
        &image,
        "sh",
        "-c",
        "cp /bin/sleep /tmp/sshd && exec /tmp/sshd 600",
    ]);
    // Satisfies every check.
    let loopback = format!("127.0.0.1:{}:8080", free_port());
    cs.create(&[
        "run",
        "-d",
        "--name",
        &good,
        "-u",
        "1000:1000",
        "--memory",
        "64m",
        "--cpus",
        "0.5",
        "--pids-limit",
        "50",
        "--security-opt",
        "no-new-privileges",
        "--read-only",
        "--health-cmd",
        "true",
        "--restart",
        "on-failure:3",
        "-p",
        &loopback,
        "--cap-drop",
        "ALL",
        "--cap-add",
        "NET_BIND_SERVICE",
        &image,
        "sleep",
        "600",
    ]);
    // Host-level: a daemon.json with and without userns-remap, as crawled roots.
    let roots = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    for (root, json) in roots.iter().zip([r#"{"log-driver": "json-file"}"#, r#"{"userns-remap": "default"}"#]) {
        std::fs::create_dir_all(root.path().join("etc/docker")).unwrap();
        std::fs::write(root.path().join("etc/docker/daemon.json"), json).unwrap();
    }
    let (remap_off, remap_on) = (format!("{tag}-remap-off"), format!("{tag}-remap-on"));

    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    crawl_host(&server.url);
    crawl_root(&server.url, roots[0].path(), &remap_off, "configs", &[]);
    crawl_root(&server.url, roots[1].path(), &remap_on, "configs", &[]);
    let start = Instant::now();
    let packs = queries();
    let Ran { code, stdout: table, run, out } =
        run_pack(&["cis-docker", "--packs", packs.to_str().unwrap(), "--server", &server.url, "--fail-on", "critical"]);
    eprintln!("report run took {:?}", start.elapsed());
    assert_eq!(code, 3, "a critical check fails, so --fail-on critical exits 3");

    // (check, what fails it, what passes it): a container name, or a host for host-level checks.
    let cases: &[(&str, &str, &str)] = &[
        ("container-runs-as-root", &bad, &good),
        ("privileged", &bad, &good),
        ("runtime-socket-mounted", &bad, &good),
        ("sensitive-host-path-mounted", &bad, &good),
        ("host-network-namespace", &bad, &good),
        ("host-pid-namespace", &bad, &good),
        ("host-ipc-namespace", &bad, &good),
        ("host-uts-namespace", &bad, &good),
        ("host-user-namespace", &bad, &good),
        ("daemon-userns-remap-off", &remap_off, &remap_on),
        ("no-memory-limit", &bad, &good),
        ("no-cpu-limit", &bad, &good),
        ("no-pids-limit", &bad, &good),
        ("capabilities-added", &bad, &good),
        ("no-new-privileges-unset", &bad, &good),
        ("seccomp-unconfined", &bad, &good),
        ("apparmor-unconfined", &bad, &good),
        ("rootfs-writable", &bad, &good),
        ("privileged-port-published", &web, &good),
        ("port-on-all-interfaces", &web, &good),
        ("restart-on-failure-above-5", &bad, &good),
        ("no-healthcheck", &bad, &good),
        ("sshd-in-container", &web, &good),
        ("host-devices", &bad, &good),
        ("mount-propagation-shared", &bad, &good),
    ];
    // Every check of the pack has a fixture here, and there are at least 20.
    let ids: Vec<&str> = run["checks"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
    let mut want: Vec<&str> = cases.iter().map(|c| c.0).collect();
    let mut got = ids.clone();
    want.sort();
    got.sort();
    assert_eq!(got, want, "every check has a failing and a passing fixture");
    assert!(ids.len() >= 20);
    assert!(run["problems"].as_array().unwrap().is_empty(), "{}", run["problems"]);

    let names = |c: &Value| -> Vec<String> {
        c["failing"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|i| [i["container"].as_str().unwrap_or("").to_string(), i["host"].as_str().unwrap().to_string()])
            .collect()
    };
    for (id, fails, passes) in cases {
        let c = check(&run, id);
        assert_eq!(c["status"], "fail", "{id}: {c}");
        let n = names(c);
        assert!(n.iter().any(|x| x == fails), "{id}: {fails} should fail it: {}", c["failing"]);
        assert!(!n.iter().any(|x| x == passes), "{id}: {passes} should pass it: {}", c["failing"]);
    }
    // The item of the sshd check is the container the process runs in.
    let sshd = check(&run, "sshd-in-container")["failing"].as_array().unwrap().clone();
    assert!(sshd.iter().any(|i| i["container"] == web.as_str() && i["reason"].as_str().unwrap().contains("/tmp/sshd")));

    // The table names the failures; JUnit has a testcase per check and a failure per failing check; CSV a row per item.
    assert!(table.contains(&bad) && table.contains("privileged"), "{table}");
    let junit = std::fs::read_to_string(out.path().join("junit.xml")).unwrap();
    assert_eq!(junit.matches("<testcase ").count(), ids.len(), "{junit}");
    let failed = run["summary"]["failed"].as_u64().unwrap() as usize;
    assert_eq!(junit.matches("<failure ").count(), failed);
    assert!(junit.contains(&format!(r#"failures="{failed}""#)));
    let csv = std::fs::read_to_string(out.path().join("report.csv")).unwrap();
    let items = run["summary"]["failing_items"].as_u64().unwrap() as usize;
    let passed = run["summary"]["passed"].as_u64().unwrap() as usize;
    assert_eq!(csv.lines().count(), 1 + items + passed, "header, one row per item, one per passing check");
}

/// A pack with one good check, one with an unknown field, one with SQL naming a
/// column that does not exist, one that times out and a syntax error at the end.
const BROKEN_PACK: &str = r#"[pack]
name = "broken"
timeout_secs = 30

[[check]]
id = "bash-installed"
title = "bash is installed"
severity = "low"
rationale = "r"
remediation = "m"
sql = """
SELECT host, scope, scope_id, name AS item, 'bash ' || version AS reason FROM packages WHERE name = 'bash'
"""

[[check]]
id = "typo"
title = "t"
sevrity = "high"
rationale = "r"
remediation = "m"
sql = "SELECT host, scope, name AS item, 'x' AS reason FROM packages"

[[check]]
id = "no-such-column"
title = "t"
severity = "high"
rationale = "r"
remediation = "m"
sql = """
SELECT host, scope, name AS item, 'x' AS reason
FROM packages WHERE versoin = '1'
"""

[[check]]
id = "slow"
title = "t"
severity = "medium"
rationale = "r"
remediation = "m"
timeout_secs = 2
sql = """
SELECT 'h' AS host, 'host' AS scope, 'x' AS item, CAST(count(*) AS VARCHAR) AS reason
FROM generate_series(1, 100000000000) WHERE value % 7 = 3
"""

[[check]
id = "cut-off"
"#;

#[test]
fn a_broken_pack_reports_each_problem_in_the_run_and_its_good_checks_complete() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let t = Instant::now();
    crawl_root(&server.url, &debian_rootfs(), "fixture-debian", "os,packages", &[]);
    eprintln!("fixture crawl took {:?}", t.elapsed());
    let packs = tempfile::tempdir().unwrap();
    let pack = packs.path().join("broken.toml");
    std::fs::write(&pack, BROKEN_PACK).unwrap();
    let d = data.path().to_str().unwrap();
    let start = Instant::now();
    let Ran { code, run, .. } = run_pack(&[pack.to_str().unwrap(), "--data", d, "--fail-on", "info"]);
    let took = start.elapsed();
    assert_eq!(code, 3);
    let file = pack.display().to_string();

    let good = check(&run, "bash-installed");
    assert_eq!(good["status"], "fail", "{good}");
    let bash = in_chroot(&debian_rootfs(), &["dpkg-query", "-W", "-f", "${Version}", "bash"]);
    assert_eq!(good["failing"][0]["reason"], format!("bash {bash}"));
    assert_eq!(good["failing"][0]["host"], "fixture-debian");

    let typo = check(&run, "typo");
    assert_eq!((&typo["status"], &typo["invalid"], &typo["title"]), (&"error".into(), &true.into(), &"t".into()));
    let msg = typo["error"].as_str().unwrap();
    assert!(msg.starts_with(&format!("{file}:18: check typo: unknown field `sevrity`")), "{msg}");

    let col = check(&run, "no-such-column");
    assert_eq!(col["status"], "error");
    let msg = col["error"].as_str().unwrap();
    assert!(msg.starts_with(&format!("{file}:29: check no-such-column: SQL does not plan")) && msg.contains("versoin"));

    let slow = check(&run, "slow");
    assert_eq!(slow["status"], "error");
    assert!(slow["error"].as_str().unwrap().contains("timed out after 2 s"), "{slow}");
    assert!(took.as_secs() < 25, "the slow check was cancelled at its limit, not run to the end: {took:?}");

    let problems: Vec<&str> = run["problems"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
    assert!(problems.iter().any(|p| p.starts_with(&format!("{file}:46: TOML syntax"))), "{problems:?}");
    // The run record (stored) says the same.
    let rows = sql(
        &["--data", d],
        "SELECT check_id, status, error FROM report_checks WHERE pack = 'broken' ORDER BY check_id",
    );
    let status: Vec<(String, String)> = rows.iter().map(|r| (s(r, "check_id"), s(r, "status"))).collect();
    let want = [("bash-installed", "fail"), ("no-such-column", "error"), ("slow", "error"), ("typo", "error")];
    assert_eq!(status, want.map(|(a, b)| (a.to_string(), b.to_string())));
    let runs = sql(&["--data", d], "SELECT errors, failed, problems FROM report_runs WHERE pack = 'broken'");
    assert_eq!((s(&runs[0], "errors"), s(&runs[0], "failed")), ("3".into(), "1".into()));
    assert!(s(&runs[0], "problems").contains("TOML syntax"));

    // Invalid checks trip the gate whatever their severity; a check that only failed or timed out does not.
    let (code, _, err) = report(&["run", pack.to_str().unwrap(), "--data", d, "--no-store", "--fail-on", "critical"]);
    assert_eq!(code, 3);
    assert!(err.contains("typo (info, error)") && !err.contains("slow ("), "{err}");
    // `report check` names the same problems and fails; a wholly malformed file is a run with a problem, not a crash.
    let (code, _, err) = report(&["check", pack.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains(":18: check typo") && err.contains(":29: check no-such-column"), "{err}");
    let garbage = packs.path().join("garbage.toml");
    std::fs::write(&garbage, "this is = = not toml\n[[[").unwrap();
    let (url, posted) = webhook_receiver();
    let (code, stdout, _) =
        report(&["run", garbage.to_str().unwrap(), "--data", d, "--format", "json", "--webhook", &url]);
    assert_eq!(code, 0, "without --fail-on a run with problems still succeeds");
    let g: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(g["checks"].as_array().unwrap().len(), 0);
    assert!(g["problems"][0].as_str().unwrap().contains("garbage.toml:1: TOML syntax"), "{g}");
    // The webhook got the same JSON document.
    assert_eq!(posted.recv_timeout(std::time::Duration::from_secs(10)).unwrap(), g);
}

/// Two containers fail `privileged`; between two runs one goes and another comes.
#[test]
fn two_runs_with_a_change_between_mark_items_new_still_failing_and_resolved_and_render_html() {
    let _lock = HOST_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    if !docker_available("two_runs_with_a_change_between_mark_items_new_still_failing_and_resolved_and_render_html") {
        return;
    }
    let image = docker_test_image();
    let tag = format!("pd{}", std::process::id());
    let (a, b, c) = (format!("{tag}-a"), format!("{tag}-b"), format!("{tag}-c"));
    let mut cs = Containers(Vec::new());
    let id_a = cs.create(&["create", "--name", &a, "--privileged", &image, "true"]);
    cs.create(&["create", "--name", &b, "--privileged", &image, "true"]);
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let d = data.path().to_str().unwrap();
    let packs = queries();
    let run_args = |out: &Path| -> Vec<String> {
        ["run", "cis-docker", "--packs", packs.to_str().unwrap(), "--data", d, "--out", out.to_str().unwrap()]
            .map(String::from)
            .to_vec()
    };
    let run = |out: &Path| -> Value {
        let args = run_args(out);
        let (code, _, _) = report(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(code, 0);
        read_json(&out.join("report.json"))
    };
    crawl_host(&server.url);
    let out1 = tempfile::tempdir().unwrap();
    let first = run(out1.path());
    let changes = |r: &Value, list: &str| -> Vec<(String, String)> {
        let mut v: Vec<_> = check(r, "privileged")[list]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["container"].as_str().unwrap_or("").starts_with(&tag))
            .map(|i| (i["container"].as_str().unwrap().to_string(), i["change"].as_str().unwrap().to_string()))
            .collect();
        v.sort();
        v
    };
    assert!(first["previous_run_id"].is_null());
    assert_eq!(changes(&first, "failing"), [(a.clone(), "new".into()), (b.clone(), "new".into())]);

    let st = Command::new("docker").args(["rm", "-f", &id_a]).output().unwrap();
    assert!(st.status.success());
    cs.create(&["create", "--name", &c, "--privileged", &image, "true"]);
    crawl_host(&server.url);
    let out2 = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("report-html");
    let _ = std::fs::remove_dir_all(&out2);
    let second = run(&out2);
    assert_eq!(second["previous_run_id"], first["run_id"]);
    assert_eq!(changes(&second, "failing"), [(b.clone(), "still_failing".into()), (c.clone(), "new".into())]);
    assert_eq!(changes(&second, "resolved"), [(a.clone(), "resolved".into())]);

    // Stored: the same marks as SQL rows.
    let q = format!(
        "SELECT r.container, r.change FROM report_results r JOIN report_runs u ON r.run_id = u.run_id \
         WHERE r.check_id = 'privileged' AND r.container LIKE '{tag}-%' AND u.run_id = '{}' ORDER BY r.container",
        second["run_id"].as_str().unwrap()
    );
    let rows: Vec<(String, String)> =
        sql(&["--data", d], &q).iter().map(|r| (s(r, "container"), s(r, "change"))).collect();
    let want = [(a.clone(), "resolved"), (b.clone(), "still_failing"), (c.clone(), "new")];
    assert_eq!(rows, want.map(|(x, y)| (x, y.to_string())));
    let runs = sql(&["--data", d], "SELECT count(*) AS n FROM report_runs WHERE pack = 'cis-docker'");
    assert_eq!(s(&runs[0], "n"), "2");

    html_loads_in_chromium_and_matches_the_json(&out2, &second);
}

/// Loads report.html in headless Chromium: no console errors, a screenshot
/// for review, and the DOM's counts equal the JSON report's.
fn html_loads_in_chromium_and_matches_the_json(dir: &Path, run: &Value) {
    if Command::new("chromium").arg("--version").output().is_err() {
        assert!(std::env::var("CI").is_err(), "CI runs scripts/test, which installs chromium");
        eprintln!("SKIPPED html check: no chromium (scripts/install-test-deps.sh installs it)");
        return;
    }
    let html = dir.join("report.html");
    let url = format!("file://{}", html.display());
    let shot = dir.join("report.png");
    let chromium = |extra: &[&str]| {
        let profile = tempfile::tempdir().unwrap();
        let out = Command::new("chromium")
            .args(["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--enable-logging=stderr"])
            .args(["--v=0", "--window-size=1280,2400"])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(extra)
            .arg(&url)
            .output()
            .expect("run chromium");
        assert!(out.status.success(), "chromium: {}", String::from_utf8_lossy(&out.stderr));
        (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (_, log) = chromium(&[&format!("--screenshot={}", shot.display())]);
    let console: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("CONSOLE") || l.contains("Failed to load") || l.contains("Refused to"))
        .collect();
    assert!(console.is_empty(), "console errors: {console:?}");
    let png = std::fs::read(&shot).expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "screenshot of {} bytes", png.len());
    eprintln!("screenshot of the HTML report for review: {}", shot.display());

    // What the browser parsed, not the file's text.
    let (dom, _) = chromium(&["--dump-dom"]);
    let attr = |tag: &str, name: &str| -> Option<String> {
        let at = tag.find(&format!("{name}=\""))? + name.len() + 2;
        Some(tag[at..].split('"').next()?.to_string())
    };
    let rows: Vec<&str> = dom.split("<tr ").skip(1).map(|t| t.split('>').next().unwrap()).collect();
    let summary = &run["summary"];
    for sev in summary["by_severity"].as_array().unwrap() {
        let name = sev["severity"].as_str().unwrap();
        let tr = rows
            .iter()
            .find(|t| !t.contains("class=") && attr(t, "data-severity").as_deref() == Some(name))
            .unwrap_or_else(|| panic!("no summary row for {name}"));
        for (a, k) in [("checks", "checks"), ("passed", "passed"), ("failed", "failed"), ("errors", "errors")] {
            assert_eq!(attr(tr, &format!("data-{a}")), Some(sev[k].to_string()), "{name} {a}");
        }
        assert_eq!(attr(tr, "data-items"), Some(sev["failing_items"].to_string()), "{name} items");
    }
    let total = rows.iter().find(|t| attr(t, "data-severity").as_deref() == Some("total")).unwrap();
    assert_eq!(attr(total, "data-failed"), Some(summary["failed"].to_string()));
    assert_eq!(attr(total, "data-items"), Some(summary["failing_items"].to_string()));
    let checks: Vec<_> = rows.iter().filter(|t| t.contains(r#"class="check""#)).collect();
    assert_eq!(checks.len(), run["checks"].as_array().unwrap().len());
    for c in run["checks"].as_array().unwrap() {
        let id = c["id"].as_str().unwrap();
        let tr = checks.iter().find(|t| attr(t, "data-check").as_deref() == Some(id)).unwrap();
        assert_eq!(attr(tr, "data-status").as_deref(), c["status"].as_str(), "{id}");
        assert_eq!(attr(tr, "data-items"), Some(c["failing"].as_array().unwrap().len().to_string()), "{id}");
    }
    let changed = dom.split("id=\"changes-summary\"").nth(1).unwrap();
    assert_eq!(attr(changed, "data-new"), Some(summary["new_items"].to_string()));
    assert_eq!(attr(changed, "data-resolved"), Some(summary["resolved_items"].to_string()));
    // The chart is the library's SVG, over both stored runs.
    let chart = dom.split("id=\"trend\"").nth(1).expect("a chart");
    assert_eq!(attr(chart, "data-runs").as_deref(), Some("2"));
    assert!(chart.contains("<svg"), "the chart is inline SVG");
}

/// A pack scheduled every 2 s and a check of it on its own 3 s schedule.
const SCHEDULED_PACK: &str = r#"[pack]
name = "sched"
schedule = "*/2 * * * * *"

[[check]]
id = "daemon-json"
title = "daemon.json present"
severity = "high"
rationale = "r"
remediation = "m"
sql = """
SELECT host, scope, scope_id, path AS item, 'present' AS reason FROM configs WHERE path = '/etc/docker/daemon.json'
"""

[[check]]
id = "own-schedule"
title = "runs on its own"
severity = "low"
rationale = "r"
remediation = "m"
schedule = "*/3 * * * * *"
sql = "SELECT host, scope, path AS item, 'x' AS reason FROM configs WHERE false"
"#;

#[test]
fn serve_runs_packs_on_their_schedules_and_stores_diffed_runs() {
    let packs = tempfile::tempdir().unwrap();
    std::fs::write(packs.path().join("sched.toml"), SCHEDULED_PACK).unwrap();
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("etc/docker")).unwrap();
    std::fs::write(root.path().join("etc/docker/daemon.json"), "{}").unwrap();
    let (data, out) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (url, posted) = webhook_receiver();
    let args = [
        "--packs",
        packs.path().to_str().unwrap(),
        "--report-out",
        out.path().to_str().unwrap(),
        "--report-webhook",
        &url,
    ];
    let server = Server::start_full(data.path(), "127.0.0.1:0", &args, &[]);
    let target = ["--server", server.url.as_str()];
    let start = Instant::now();
    crawl_root(&server.url, root.path(), "sched-host", "configs", &[]);
    let changes = || -> Vec<String> {
        sql(&target, "SELECT change FROM report_results WHERE check_id = 'daemon-json' ORDER BY started")
            .iter()
            .map(|r| s(r, "change"))
            .collect()
    };
    let timeout = std::time::Duration::from_secs(60);
    wait_for("a run that finds daemon.json, then one that still does", timeout, || {
        let c = changes();
        c.contains(&"new".to_string()) && c.contains(&"still_failing".to_string())
    });
    std::fs::remove_file(root.path().join("etc/docker/daemon.json")).unwrap();
    crawl_root(&server.url, root.path(), "sched-host", "configs", &[]);
    wait_for("a run that marks it resolved", timeout, || changes().contains(&"resolved".to_string()));
    let c = changes();
    let first_resolved = c.iter().position(|x| x == "resolved").unwrap();
    assert_eq!(c[0], "new", "{c:?}");
    assert!(c[1..first_resolved].iter().all(|x| x == "still_failing"), "{c:?}");
    eprintln!("scheduler: new, still failing, resolved within {:?}", start.elapsed());

    // The pack's schedule runs its check, the check with its own schedule runs alone.
    let runs = sql(
        &target,
        "SELECT r.trigger, min(c.check_id) AS first, max(c.check_id) AS last, count(*) AS n FROM report_runs r \
         JOIN report_checks c ON c.run_id = r.run_id GROUP BY r.run_id, r.trigger",
    );
    assert!(runs.iter().all(|r| s(r, "trigger") == "schedule" && s(r, "n") == "1"), "{runs:?}");
    assert!(runs.iter().any(|r| s(r, "first") == "own-schedule"), "{runs:?}");
    assert!(runs.iter().any(|r| s(r, "first") == "daemon-json"), "{runs:?}");
    let written = read_json(&out.path().join("sched/report.json"));
    assert_eq!(written["pack"], "sched");
    assert!(out.path().join("sched/report.html").is_file() && out.path().join("sched/junit.xml").is_file());
    let hook = posted.recv_timeout(std::time::Duration::from_secs(10)).expect("a scheduled run POSTed to the webhook");
    assert_eq!((hook["pack"].as_str(), hook["trigger"].as_str()), (Some("sched"), Some("schedule")));
    server.stop();
}

/// A root filesystem with just an os-release and a package database: what the
/// os and packages collectors read.
fn package_root(os_release: &str, db_path: &str, db: &str) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let db_file = root.path().join(db_path);
    std::fs::create_dir_all(db_file.parent().unwrap()).unwrap();
    std::fs::write(&db_file, db).unwrap();
    std::fs::create_dir_all(root.path().join("etc")).unwrap();
    std::fs::write(root.path().join("etc/os-release"), os_release).unwrap();
    root
}

fn dpkg(packages: &[(&str, &str)]) -> String {
    packages
        .iter()
        .map(|(n, v)| format!("Package: {n}\nStatus: install ok installed\nVersion: {v}\nArchitecture: amd64\n\n"))
        .collect()
}

#[test]
fn packages_pack_flags_vulnerable_versions_and_end_of_life_releases_in_crawled_roots() {
    let stretch = "ID=debian\nVERSION_ID=\"9\"\nPRETTY_NAME=\"Debian GNU/Linux 9 (stretch)\"\n";
    let bookworm = "ID=debian\nVERSION_ID=\"12\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n";
    let alpine = "ID=alpine\nVERSION_ID=3.17.2\nPRETTY_NAME=\"Alpine Linux v3.17\"\n";
    let status = "var/lib/dpkg/status";
    // Vulnerable bash and OpenSSL on an end-of-life release.
    let old = package_root(stretch, status, &dpkg(&[("bash", "4.2+dfsg-0.1"), ("libssl3", "3.0.5-4")]));
    // Exactly the fixed versions on a supported release.
    let fixed = package_root(bookworm, status, &dpkg(&[("bash", "4.3-9.1"), ("libssl3", "3.0.7-1")]));
    // apk ordering and an Alpine minor release past its end of life.
    let apk = package_root(alpine, "lib/apk/db/installed", "C:Q1x\nP:bash\nV:4.3.24-r0\nA:x86_64\n\n");
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let tag = format!("pk{}", std::process::id());
    let hosts = [("old", old.path().to_path_buf()), ("fixed", fixed.path().to_path_buf()), ("apk", apk.path().into())];
    for (name, root) in hosts.iter().cloned().chain([("bookworm", debian_rootfs())]) {
        crawl_root(&server.url, &root, &format!("{tag}-{name}"), "os,packages", &[]);
    }
    let packs = queries();
    let Ran { code, run, .. } =
        run_pack(&["packages", "--packs", packs.to_str().unwrap(), "--data", data.path().to_str().unwrap()]);
    assert_eq!(code, 0);
    // Every failing item is one of this test's hosts, once.
    let failing_hosts = |id: &str| {
        let hosts = failing(&run, id, "host", &tag);
        assert_eq!(hosts.len(), check(&run, id)["failing"].as_array().unwrap().len(), "{id}: {run}");
        hosts
    };
    assert_eq!(failing_hosts("bash-shellshock"), ["apk", "old"]);
    assert_eq!(failing_hosts("openssl-cve-2022-3602"), ["old"]);
    assert_eq!(failing_hosts("os-end-of-life"), ["apk", "old"]);
    let eol = &check(&run, "os-end-of-life")["failing"];
    assert!(eol.as_array().unwrap().iter().any(|i| i["item"] == "Alpine Linux v3.17"), "{eol}");
    assert!(run["checks"].as_array().unwrap().iter().all(|c| c["status"] != "error"), "{run}");
}

/// Issue 17: application libraries are checked like OS packages. The Python
/// fixture (wheels from PyPI, a virtualenv and Debian's python3-* packages)
/// and the Node.js one (Debian's node-* packages and an npm install) hold
/// real old releases; the pack names each below its fix, with where it was read.
#[test]
fn packages_pack_flags_application_libraries_below_their_fix() {
    let (Some(python), Some(node)) = (fixture_root("python-fixture.sh"), fixture_root("node-fixture.sh")) else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let tag = format!("app{}", std::process::id());
    crawl_root(&server.url, &python, &format!("{tag}-python"), "os,packages,python", &[]);
    crawl_root(&server.url, &node, &format!("{tag}-node"), "os,packages,npm", &[]);
    let packs = queries();
    let Ran { run, .. } =
        run_pack(&["packages", "--packs", packs.to_str().unwrap(), "--data", data.path().to_str().unwrap()]);
    let id = "application-libraries-vulnerable";
    let items = failing(&run, id, "host", &tag);
    let mut found: Vec<String> = check(&run, id)["failing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            format!(
                "{} {}",
                i["host"].as_str().unwrap().trim_start_matches(&format!("{tag}-")),
                i["item"].as_str().unwrap()
            )
        })
        .collect();
    found.sort();
    assert_eq!(items.len(), found.len(), "only this test's hosts: {found:?}");
    // pip --target into /usr/local, and Debian's python3-requests/urllib3 (their egg-info).
    for want in [
        "python requests 2.31.0 at /usr/local/lib/python3.11/site-packages/requests-2.31.0.dist-info/METADATA",
        "python urllib3 2.0.7 at /usr/local/lib/python3.11/site-packages/urllib3-2.0.7.dist-info/METADATA",
        "python requests 2.28.1 at ",
        "python urllib3 1.26.12 at ",
        "node semver 7.3.5 at /usr/share/nodejs/semver/package.json",
    ] {
        assert!(found.iter().any(|f| f.starts_with(want)), "{want:?} not in {found:#?}");
    }
    // What is at or past its fix is not flagged.
    assert!(
        found.iter().all(|f| !f.contains(" flask ") && !f.contains("semver 7.5") && !f.contains("semver 7.6")),
        "{found:#?}"
    );
    assert!(run["checks"].as_array().unwrap().iter().all(|c| c["status"] != "error"), "{run}");
}

/// Issue 17: libraries compiled into binaries, and unowned software nothing
/// identifies. The embedded-libraries fixture (Debian's OpenSSL 3.0 and other
/// libraries linked statically, scripts/embedded-fixtures.sh) passes the
/// OpenSSL check and shows the /usr/local binaries nothing identifies (ELF
/// files read whole; not its shell script); a root with OpenSSL 1.1.1's
/// banner in one binary and two OpenSSL banners in another fails it, each
/// item naming the file and the banner, and so do an old quictls (3.0.1+quic)
/// and RHEL 8's FIPS banner; a current quictls, a package's own old
/// libcrypto (left to the package checks) and a pip entry-point script do not.
#[test]
fn packs_flag_outdated_embedded_openssl_and_unidentified_software() {
    let Some(fixture) = fixture_root("embedded-fixtures.sh") else { return };
    let legacy = tempfile::tempdir().unwrap();
    let bin = legacy.path().join("usr/local/bin");
    std::fs::create_dir_all(&bin).unwrap();
    let elf = std::fs::read("/usr/bin/true").unwrap();
    let old = b"\0OpenSSL 1.1.1w  11 Sep 2023\0";
    let new = b"\0OpenSSL 3.0.11 19 Sep 2023\0";
    let executable = |path: &std::path::Path, bytes: &[u8]| {
        std::fs::write(path, bytes).unwrap();
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    };
    for (name, banners) in [
        ("legacy-ssl", vec![&old[..]]),
        ("two-ssl", vec![&old[..], &new[..]]),
        ("quic-old", vec![&b"\0OpenSSL 3.0.1+quic 14 Dec 2021\0"[..]]),
        ("quic-new", vec![&b"\0OpenSSL 3.0.13+quic 30 Jan 2024\0"[..]]),
        ("rhel-fips", vec![&b"\0OpenSSL 1.1.1k  FIPS 25 Mar 2021\0"[..]]),
    ] {
        executable(&bin.join(name), &[&elf[..], &banners.concat()].concat());
    }
    executable(&bin.join("pip"), b"#!/usr/local/bin/python3\nfrom pip._internal.cli.main import main\nmain()\n");
    // A package's own old libcrypto, as dpkg lists it.
    let owned = "/usr/lib/x86_64-linux-gnu/libcrypto.so.1.1";
    let lib = legacy.path().join(owned.trim_start_matches('/'));
    std::fs::create_dir_all(lib.parent().unwrap()).unwrap();
    std::fs::write(&lib, [&elf[..], &old[..]].concat()).unwrap();
    let dpkg = legacy.path().join("var/lib/dpkg");
    std::fs::create_dir_all(dpkg.join("info")).unwrap();
    std::fs::write(
        dpkg.join("status"),
        "Package: libssl1.1\nStatus: install ok installed\nArchitecture: amd64\nSource: openssl\n\
         Version: 1.1.1w-0+deb11u1\nDescription: Secure Sockets Layer toolkit - shared libraries\n\n",
    )
    .unwrap();
    std::fs::write(dpkg.join("info/libssl1.1:amd64.list"), format!("/usr/lib/x86_64-linux-gnu\n{owned}\n")).unwrap();
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let tag = format!("emb{}", std::process::id());
    let collectors = "packages,unowned_files,embedded_libraries";
    crawl_root(&server.url, &fixture, &format!("{tag}-fixture"), collectors, &[]);
    crawl_root(&server.url, legacy.path(), &format!("{tag}-legacy"), collectors, &[]);
    let packs = queries();
    let items = |run: &Value, id: &str| -> Vec<String> {
        let mut v: Vec<String> = check(run, id)["failing"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|i| {
                let host = i["host"].as_str()?.strip_prefix(&format!("{tag}-"))?;
                Some(format!("{host} {}", i["item"].as_str().unwrap()))
            })
            .collect();
        v.sort();
        v
    };
    let Ran { run, .. } =
        run_pack(&["packages", "--packs", packs.to_str().unwrap(), "--data", data.path().to_str().unwrap()]);
    assert!(run["checks"].as_array().unwrap().iter().all(|c| c["status"] != "error"), "{run}");
    assert_eq!(
        items(&run, "embedded-openssl-outdated"),
        [
            "legacy /usr/local/bin/legacy-ssl: OpenSSL 1.1.1w  11 Sep 2023",
            "legacy /usr/local/bin/quic-old: OpenSSL 3.0.1+quic 14 Dec 2021",
            "legacy /usr/local/bin/rhel-fips: OpenSSL 1.1.1k  FIPS 25 Mar 2021",
            "legacy /usr/local/bin/two-ssl: OpenSSL 1.1.1w  11 Sep 2023",
            "legacy /usr/local/bin/two-ssl: OpenSSL 3.0.11 19 Sep 2023",
        ]
    );
    let reasons: Vec<&str> = check(&run, "embedded-openssl-outdated")["failing"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["host"].as_str().is_some_and(|h| h == format!("{tag}-legacy")))
        .map(|i| i["reason"].as_str().unwrap())
        .collect();
    assert!(reasons.contains(&"OpenSSL 1.1.1k below 3.0.7"), "{reasons:?}");
    assert!(reasons.contains(&"OpenSSL 3.0.1+quic below 3.0.7"), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.starts_with("OpenSSL of unknown version (")), "{reasons:?}");
    // The package-owned copy is there, with its owner: the check leaves it to the package checks.
    let rows = sql(
        &["--data", data.path().to_str().unwrap()],
        &format!("SELECT owner_package FROM embedded_libraries WHERE host = '{tag}-legacy' AND path = '{owned}'"),
    );
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["owner_package"], "libssl1.1");
    let Ran { run, .. } =
        run_pack(&["images", "--packs", packs.to_str().unwrap(), "--data", data.path().to_str().unwrap()]);
    assert!(run["checks"].as_array().unwrap().iter().all(|c| c["status"] != "error"), "{run}");
    // Not the scripts (tool.sh, pip), which are not ELF: nothing is looked for in them.
    assert_eq!(
        items(&run, "unidentified-software-in-usr-local"),
        ["fixture /usr/local/bin/plain-static", "fixture /usr/local/bin/ssl-dynamic"]
    );
    // What identifies the rest is what SQL shows.
    let rows = sql(
        &["--data", data.path().to_str().unwrap()],
        &format!(
            "SELECT path, identified FROM unowned_files WHERE host = '{tag}-fixture' AND path LIKE '%/fat-static'"
        ),
    );
    let fat = rows[0]["identified"].as_str().unwrap();
    assert!(fat.starts_with("openssl 3.0.") && fat.contains("; zlib 1.2.") && fat.contains("; sqlite 3."), "{fat}");
    server.stop();
}

/// The test image with `EXPOSE 8931/tcp`, built locally (no registry).
fn exposed_image(base: &str) -> String {
    let name = format!("periscope-test/exposed:{}", base.rsplit(':').next().unwrap());
    let have = Command::new("docker").args(["image", "inspect", &name]).output().unwrap().status.success();
    if !have {
        let mut child = Command::new("docker")
            .args(["build", "-q", "-t", &name, "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("docker build");
        use std::io::Write;
        write!(child.stdin.take().unwrap(), "FROM {base}\nEXPOSE 8931/tcp\n").unwrap();
        assert!(child.wait().unwrap().success(), "docker build of {name}");
    }
    name
}

fn inspect(id: &str, format: &str) -> String {
    let out = Command::new("docker").args(["inspect", "-f", format, id]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn runtime_pack_flags_oom_kills_restart_loops_oversized_heaps_and_undeclared_ports() {
    let _lock = HOST_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    if !docker_available("runtime_pack_flags_oom_kills_restart_loops_oversized_heaps_and_undeclared_ports") {
        return;
    }
    let image = docker_test_image();
    let exposed = exposed_image(&image);
    let tag = format!("rt{}", std::process::id());
    let name = |n: &str| format!("{tag}-{n}");
    let mut cs = Containers(Vec::new());
    // Its main process allocates until the kernel kills it.
    let oom = cs.create(&[
        "run",
        "-d",
        "--name",
        &name("oom"),
        "--memory",
        "32m",
        "--memory-swap",
        "32m",
        &image,
        "sh",
        "-c",
        "exec tail /dev/zero",
    ]);
    // Exits at once, restarted for ever.
    let looping =
        cs.create(&["run", "-d", "--name", &name("loop"), "--restart", "always", &image, "sh", "-c", "exit 1"]);
    // A process whose command line asks for a 512 MiB heap, under a 64 MiB and a 1 GiB limit
    // (perl stands in for the JVM: the check reads the command line).
    let heap = ["perl", "-e", "sleep 600", "--", "-Xmx512m"];
    cs.create(&[&["run", "-d", "--name", &name("heap-big"), "--memory", "64m", &image][..], &heap].concat());
    cs.create(&[&["run", "-d", "--name", &name("heap-ok"), "--memory", "1g", &image][..], &heap].concat());
    // The JVM's order of options, later winning: JAVA_TOOL_OPTIONS, the command line, _JAVA_OPTIONS;
    // and a repeated -Xmx, whose last one counts.
    let under = |n: &str, env: &[&str], args: &[&str]| {
        let mut run = vec!["run", "-d", "--name", n, "--memory", "64m"];
        env.iter().for_each(|e| run.extend(["-e", *e]));
        run.push(&image);
        run.extend(if args.is_empty() { &["sleep", "600"][..] } else { args });
        run.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let small = ["perl", "-e", "sleep 600", "--", "-Xmx32m"];
    let none: &[&str] = &[];
    let cases: [(&str, &[&str], &[&str]); 10] = [
        ("heap-tool", &["JAVA_TOOL_OPTIONS=-Xms16m -Xmx512m"], none),
        ("heap-tool-overridden", &["JAVA_TOOL_OPTIONS=-Xmx512m"], &small),
        ("heap-last-word", &["_JAVA_OPTIONS=-XX:MaxHeapSize=1g"], &small),
        ("heap-twice", none, &["perl", "-e", "sleep 600", "--", "-Xmx512m", "-Xmx32m"]),
        // Running, and its command line shows no heap: the start scripts did not use JAVA_OPTS.
        ("heap-opts-unused", &["JAVA_OPTS=-Xmx2g"], none),
        // Java 8 before 8u191 and 9 size their heap from the host's memory.
        ("jvm-8u181", &["JAVA_VERSION=8u181"], none),
        ("jvm-9", &["JAVA_VERSION=9.0.4"], none),
        ("jvm-6b38", &["JAVA_VERSION=6b38"], none),
        ("jvm-8u372", &["JAVA_VERSION=jdk8u372-b07"], none),
        ("jvm-8u181-maxram", &["JAVA_VERSION=1.8.0_181", "JAVA_TOOL_OPTIONS=-XX:MaxRAM=64m"], none),
    ];
    for (n, env, args) in cases {
        let run = under(&name(n), env, args);
        cs.create(&run.iter().map(String::as_str).collect::<Vec<_>>());
    }
    // No memory limit: nothing to grow past.
    let unlimited = ["run", "-d", "--name", &name("jvm-8u181-unlimited"), "-e", "JAVA_VERSION=8u181"];
    cs.create(&[&unlimited[..], &[image.as_str(), "sleep", "600"]].concat());
    // Never started: judged by its environment, where JAVA_OPTS stands for the command line.
    let opts = ["create", "--name", &name("heap-stopped"), "--memory", "64m", "-e", "JAVA_OPTS=-Xmx2g"];
    cs.create(&[&opts[..], &[image.as_str(), "sleep", "600"]].concat());
    // Health checks that fail and pass; a start the engine refuses (no such executable).
    let health = ["run", "-d", "--health-interval", "1s", "--health-retries", "2", "--health-cmd"];
    let sick =
        cs.create(&[&health[..], &["echo down; exit 3", "--name", &name("sick"), &image, "sleep", "600"]].concat());
    let well = cs.create(&[&health[..], &["true", "--name", &name("well"), &image, "sleep", "600"]].concat());
    let broken = cs.create(&["create", "--name", &name("broken"), &image, "/no/such/binary"]);
    let started = Command::new("docker").args(["start", &broken]).output().unwrap();
    assert!(!started.status.success(), "a missing executable starts");
    // A server on 8931 in an image that does not declare it, and in one that does.
    let listen = "$s = IO::Socket::INET->new(LocalPort => 8931, Listen => 5, ReuseAddr => 1) or die $!; sleep 600";
    let server_cmd = ["perl", "-MIO::Socket::INET", "-e", listen];
    let undeclared = cs.create(&[&["run", "-d", "--name", &name("undeclared"), &image][..], &server_cmd].concat());
    let declared = cs.create(&[&["run", "-d", "--name", &name("declared"), &exposed][..], &server_cmd].concat());
    let start = Instant::now();
    wait_for("the OOM kill and three restarts", std::time::Duration::from_secs(60), || {
        inspect(&oom, "{{.State.OOMKilled}}") == "true"
            && inspect(&looping, "{{.RestartCount}}").parse::<i64>().unwrap_or(0) >= 3
    });
    wait_for("one health check to fail twice, the other to pass", std::time::Duration::from_secs(30), || {
        inspect(&sick, "{{.State.Health.Status}}") == "unhealthy"
            && inspect(&well, "{{.State.Health.Status}}") == "healthy"
    });
    let listening = |id: &str| {
        let pid = inspect(id, "{{.State.Pid}}");
        std::fs::read_to_string(format!("/proc/{pid}/net/tcp"))
            .is_ok_and(|t| t.lines().any(|l| l.contains(":22E3 ") && l.contains(" 0A ")))
    };
    wait_for("both servers to listen", std::time::Duration::from_secs(30), || {
        listening(&undeclared) && listening(&declared)
    });
    eprintln!("fixtures ready in {:?}", start.elapsed());

    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    crawl_host(&server.url);
    let packs = queries();
    let Ran { code, run, .. } = run_pack(&["runtime", "--packs", packs.to_str().unwrap(), "--server", &server.url]);
    assert_eq!(code, 0);
    let ours = |id: &str| {
        let mut v = failing(&run, id, "container", &tag);
        v.dedup();
        v
    };
    assert_eq!(ours("oom-killed"), ["oom"]);
    assert_eq!(ours("restart-loop"), ["loop"]);
    assert_eq!(ours("unhealthy"), ["sick"]);
    assert_eq!(ours("failed-to-start"), ["broken"]);
    assert_eq!(ours("heap-above-memory-limit"), ["heap-big", "heap-last-word", "heap-stopped", "heap-tool"]);
    assert_eq!(ours("jvm-ignores-memory-limit"), ["jvm-6b38", "jvm-8u181", "jvm-9"]);
    let reason = |id: &str, n: &str| {
        let failing = check(&run, id)["failing"].as_array().unwrap().clone();
        let item = failing.into_iter().find(|i| i["container"] == name(n).as_str()).unwrap();
        item["reason"].as_str().unwrap().to_string()
    };
    assert!(reason("heap-above-memory-limit", "heap-stopped").starts_with("its environment has a maximum heap of 2g"));
    assert!(reason("heap-above-memory-limit", "heap-last-word").contains("maximum heap of 1g"));
    assert!(reason("jvm-ignores-memory-limit", "jvm-9").starts_with("JAVA_VERSION=9.0.4 sizes its heap"));
    let why = reason("unhealthy", "sick");
    assert!(why.starts_with("unhealthy, ") && why.ends_with(" checks failed in a row; last: exit 3: down"), "{why}");
    let why = reason("failed-to-start", "broken");
    let engine = inspect(&broken, "{{.State.Error}}");
    assert!(why == format!("not started: {engine}") && engine.contains("/no/such/binary"), "{why}");
    assert_eq!(ours("undeclared-listening-port"), ["undeclared"]);
    let item = &check(&run, "undeclared-listening-port")["failing"];
    let item = item.as_array().unwrap().iter().find(|i| i["container"] == name("undeclared").as_str()).unwrap();
    assert_eq!(item["item"], format!("{} 8931/tcp", name("undeclared")));
    assert!(run["checks"].as_array().unwrap().iter().all(|c| c["status"] != "error"), "{run}");
}

/// Images made by a test, removed when it ends (after its containers: declare this first).
struct Images(Vec<String>);

impl Drop for Images {
    fn drop(&mut self) {
        for i in &self.0 {
            let _ = Command::new("docker").args(["rmi", "-f", i]).output();
        }
    }
}

/// `docker build -t name` of `dockerfile` in a context holding `files`.
fn build_image(name: &str, dockerfile: &str, files: &[(&str, &[u8])]) {
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("Dockerfile"), dockerfile).unwrap();
    for (path, bytes) in files {
        let p = ctx.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
    let out = Command::new("docker").args(["build", "-q", "-t", name]).arg(ctx.path()).output().unwrap();
    assert!(out.status.success(), "docker build {name}: {}", String::from_utf8_lossy(&out.stderr));
}

/// `base` re-saved with its config's creation time set to 2015 and loaded as `name`:
/// a real image, only old.
fn load_old_image(base: &str, name: &str) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let st = Command::new("sh").arg("-c").arg(format!("docker save {base} | tar -x -C {d}")).status().unwrap();
    assert!(st.success(), "docker save {base}");
    let mut manifest: Value = read_json(&dir.path().join("manifest.json"));
    let config_file = dir.path().join(manifest[0]["Config"].as_str().unwrap());
    let mut config = read_json(&config_file);
    config["created"] = "2015-01-01T00:00:00Z".into();
    let bytes = serde_json::to_vec(&config).unwrap();
    use sha2::Digest;
    let digest: String = sha2::Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
    std::fs::remove_file(&config_file).unwrap();
    std::fs::write(dir.path().join(format!("{digest}.json")), bytes).unwrap();
    let _ = std::fs::remove_file(dir.path().join("repositories"));
    manifest[0]["Config"] = format!("{digest}.json").into();
    manifest[0]["RepoTags"] = serde_json::json!([name]);
    std::fs::write(dir.path().join("manifest.json"), manifest.to_string()).unwrap();
    let st = Command::new("sh").arg("-c").arg(format!("tar -c -C {d} . | docker load -q")).status().unwrap();
    assert!(st.success(), "docker load {name}");
}

#[test]
fn images_pack_flags_old_images_tag_drift_unapproved_bases_unowned_software_and_build_tools() {
    let _lock = HOST_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    if !docker_available("images_pack_flags_old_images_tag_drift_unapproved_bases_unowned_software_and_build_tools") {
        return;
    }
    let image = docker_test_image();
    let tag = format!("im{}", std::process::id());
    let old = format!("periscope-test/{tag}-old:2015");
    let drift = format!("periscope-test/{tag}-drift:v1");
    let minimal = format!("periscope-test/{tag}-minimal:1");
    let mut images = Images(vec![old.clone(), drift.clone(), minimal.clone()]);
    load_old_image(&image, &old);
    // A distroless-style image: one package (base-files) in a status.d entry, no package manager.
    let status = b"Package: base-files\nVersion: 12.4\nArchitecture: amd64\nStatus: install ok installed\n\n";
    build_image(&minimal, "FROM scratch\nCOPY var /var\n", &[("var/lib/dpkg/status.d/base", status)]);
    // The tag moves on under a container: built, used, rebuilt.
    build_image(&drift, &format!("FROM {image}\nLABEL periscope.build=1\n"), &[]);
    let mut cs = Containers(Vec::new());
    cs.create(&["create", "--name", &format!("{tag}-stale"), &drift, "true"]);
    let old_id = inspect(&drift, "{{.Id}}");
    build_image(&drift, &format!("FROM {image}\nLABEL periscope.build=2\n"), &[]);
    assert_ne!(inspect(&drift, "{{.Id}}"), old_id);
    images.0.push(old_id.clone());
    cs.create(&["create", "--name", &format!("{tag}-current"), &drift, "true"]);
    // On a base of its own (the minimal image's one layer), not the test image's.
    cs.create(&["create", "--name", &format!("{tag}-elsewhere"), &minimal, "/none"]);
    // Software in /usr/local that no package owns, in a crawled root; the debootstrap root has none.
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("usr/local/bin")).unwrap();
    std::fs::copy("/bin/true", root.path().join("usr/local/bin/tool")).unwrap();

    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let (ok, _, err) = agent(&["crawl", "--server", &server.url, "--collectors", "packages", "--containerd", "off"]);
    assert!(ok, "{err}");
    crawl_root(&server.url, root.path(), &format!("{tag}-local"), "unowned_files", &[]);
    crawl_root(&server.url, &debian_rootfs(), &format!("{tag}-clean"), "unowned_files", &[]);
    let packs = queries();
    let run_with = |params: &[&str]| -> Value {
        let args = ["images", "--packs", packs.to_str().unwrap(), "--server", &server.url];
        let params: Vec<&str> = params.iter().flat_map(|p| ["--param", p]).collect();
        let ran = run_pack(&[&args[..], &params].concat());
        assert_eq!(ran.code, 0);
        ran.run
    };
    let run = run_with(&[]);
    let items_of = |run: &Value, id: &str, field: &str| -> Vec<String> {
        check(run, id)["failing"].as_array().unwrap().iter().map(|i| i[field].as_str().unwrap_or("").into()).collect()
    };
    let items = |id: &str, field: &str| items_of(&run, id, field);
    assert!(run["checks"].as_array().unwrap().iter().all(|c| c["status"] != "error"), "{run}");
    let aged = items("image-too-old", "item");
    assert!(aged.contains(&old), "{aged:?}");
    assert!(!aged.iter().any(|i| i.contains(&image) || i.contains(&minimal)), "{aged:?}");
    let drifted = items("base-image-drift", "container");
    assert!(drifted.contains(&format!("{tag}-stale")), "{drifted:?}");
    assert!(!drifted.contains(&format!("{tag}-current")), "{drifted:?}");
    let unowned = check(&run, "unowned-software-in-usr-local")["failing"].as_array().unwrap().clone();
    assert!(unowned.iter().any(|i| i["host"] == format!("{tag}-local") && i["item"] == "/usr/local/bin/tool"));
    assert!(!unowned.iter().any(|i| i["host"] == format!("{tag}-clean")), "{unowned:?}");
    let tools = check(&run, "package-manager-or-compiler-in-image")["failing"].as_array().unwrap().clone();
    let of = |name: &str| tools.iter().find(|i| i["item"].as_str().unwrap().split(',').any(|t| t == name));
    let test_image = of(&image).unwrap_or_else(|| panic!("{image} carries dpkg and apt: {tools:?}"));
    assert!(test_image["reason"].as_str().unwrap().contains("dpkg"), "{test_image}");
    assert!(of(&minimal).is_none(), "{tools:?}");
    // No approved bases configured: nothing flagged. With the test image's layer chain approved, only the
    // container on another base is; with a century allowed, the 2015 image is young enough.
    assert!(items("unapproved-base-image", "container").is_empty());
    let layers = inspect(&image, "{{join .RootFS.Layers \",\"}}");
    let approved = format!("approved_bases=[\"{layers}\"]");
    let tuned = run_with(&[&approved, "max_image_age_days=36500"]);
    let unapproved: Vec<String> =
        items_of(&tuned, "unapproved-base-image", "container").into_iter().filter(|c| c.starts_with(&tag)).collect();
    assert_eq!(unapproved, [format!("{tag}-elsewhere")]);
    assert!(!items_of(&tuned, "image-too-old", "item").contains(&old));
    // The minimal image was crawled: its one package is there.
    let rows = sql(
        &["--server", server.url.as_str()],
        &format!(
            "SELECT p.name FROM packages p JOIN images i ON i.image_id = p.scope_id WHERE i.repo_tags = '{minimal}'"
        ),
    );
    assert_eq!(rows.iter().map(|r| s(r, "name")).collect::<Vec<_>>(), ["base-files"]);
}

/// The starter packs are compiled into the binary: from a directory with no
/// queries/ beside it, `report check` and `report run` find them by name
/// (equal to queries/'s files, check for check), and `--packs DIR` overrides
/// one of them by name while the others stay found.
#[test]
fn the_starter_packs_are_built_in_and_a_pack_directory_overrides_them() {
    let elsewhere = tempfile::tempdir().unwrap();
    let in_dir = |args: &[&str]| {
        let out = Command::new(periscope_bin())
            .arg("report")
            .args(args)
            .current_dir(elsewhere.path())
            .env_remove("PERISCOPE_PACKS")
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let names = ["cis-docker", "images", "packages", "runtime", "vulns"];
    let (code, stdout, stderr) = in_dir(&[&["check"][..], &names].concat());
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    for name in names {
        let text = std::fs::read_to_string(queries().join(format!("{name}.toml"))).unwrap();
        let checks = text.matches("[[check]]").count();
        let line = stdout
            .lines()
            .find(|l| l.contains(&format!("<built-in>/{name}.toml")))
            .unwrap_or_else(|| panic!("{name}: {stdout}"));
        assert!(line.contains(&format!(": {checks} checks, {checks} runnable, 0 problems")), "{line}");
    }
    // An empty data directory: the run finds the pack and runs every check.
    let data = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(data.path().join("tables")).unwrap();
    let out = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) =
        in_dir(&["run", "runtime", "--data", data.path().to_str().unwrap(), "--out", out.path().to_str().unwrap()]);
    assert!(code == 0 || code == 3, "{stdout}\n{stderr}");
    let run = read_json(&out.path().join("report.json"));
    assert_eq!(
        run["checks"].as_array().unwrap().len(),
        std::fs::read_to_string(queries().join("runtime.toml")).unwrap().matches("[[check]]").count()
    );

    // --packs DIR: its runtime.toml wins; cis-docker is still the compiled-in one.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("runtime.toml"),
        "[pack]\nname = \"runtime\"\ntitle = \"Ours\"\n\n[[check]]\nid = \"ours\"\ntitle = \"t\"\nseverity = \"low\"\nrationale = \"r\"\nremediation = \"m\"\nsql = \"SELECT host, scope, scope_id AS item, '' AS reason FROM os WHERE false\"\n",
    )
    .unwrap();
    let (code, stdout, stderr) =
        in_dir(&["check", "runtime", "cis-docker", "--pack-dir", dir.path().to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("{}: 1 checks, 1 runnable, 0 problems", dir.path().join("runtime.toml").display())),
        "{stdout}"
    );
    assert!(stdout.contains("<built-in>/cis-docker.toml"), "{stdout}");
    let (code, _, stderr) = in_dir(&["run", "no-such-pack", "--data", data.path().to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(stderr.contains("nor a compiled-in pack (cis-docker, images, packages, runtime, vulns)"), "{stderr}");
}
