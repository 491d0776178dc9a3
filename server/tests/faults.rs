//! Delivery under faults, with real processes on loopback: the server killed
//! (SIGKILL) again and again while an agent streams into it, and a server
//! that is down while the agent keeps crawling into its spool. Nothing the
//! agent produced may be lost or stored twice.

mod common;

use std::sync::mpsc::Receiver;
use std::time::Duration;

use common::*;

/// Summary lines of full crawls until one says everything was delivered
/// (spool empty); returns how many full crawls were reported.
fn until_drained(rx: &Receiver<String>, timeout: Duration) -> (usize, Vec<String>) {
    let start = std::time::Instant::now();
    let mut lines = Vec::new();
    loop {
        let left = timeout.checked_sub(start.elapsed()).expect("timed out waiting for the spool to drain");
        let l = rx.recv_timeout(left).expect("the agent kept reporting");
        let full = l.starts_with("periscope-agent: full crawl:");
        let drained = l.contains("; delivered; spool 0 batch(es)");
        lines.push(l);
        if full && drained {
            let n = lines.iter().filter(|l| l.starts_with("periscope-agent: full crawl:")).count();
            return (n, lines);
        }
    }
}

/// Crawl the debootstrap root back to back (a fraction of a second each) and
/// resend every other crawl in full: many sends, some large, for the kills to hit.
fn fast() -> Vec<String> {
    crawl_root("0")
}

fn crawl_root(interval: &str) -> Vec<String> {
    let root = debian_rootfs().display().to_string();
    let args = ["--interval", interval, "--resend-every", "2", "--root", &root, "--scope", "image"];
    args.into_iter().chain(["--scope-id", "faults", "--collectors", "os,packages"]).map(String::from).collect()
}

/// A data directory, a spool directory, and a free address for a server (with its URL).
fn setup() -> (tempfile::TempDir, tempfile::TempDir, String, String) {
    let addr = free_addr();
    let url = format!("http://{addr}");
    (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), addr, url)
}

fn count(target: &[&str], q: &str) -> i64 {
    s(&sql(target, q)[0], "n").parse().unwrap()
}

/// Exactly once: at least the `reported` crawls are stored, none twice,
/// every stored crawl is whole (its packages, or the earlier crawl its
/// `unchanged` row points at, hold exactly the root's packages), and current
/// state is whole.
fn assert_exactly_once(url: &str, reported: usize) {
    let target = ["--server", url];
    let crawls = count(&target, "SELECT count(*) AS n FROM crawls");
    assert!(crawls >= reported as i64, "{crawls} crawls stored, {reported} reported");
    assert_eq!(count(&target, "SELECT count(DISTINCT crawl_time) AS n FROM crawls"), crawls, "a crawl stored twice");
    let dup = "SELECT count(*) AS n FROM (SELECT crawl_time, name, version, architecture FROM packages_history \
               GROUP BY crawl_time, name, version, architecture HAVING count(*) > 1)";
    assert_eq!(count(&target, dup), 0, "a package row stored twice");
    let first = count(
        &target,
        "SELECT count(*) AS n FROM packages_history WHERE crawl_time = (SELECT min(crawl_time) FROM crawls)",
    );
    assert!(first > 50, "the first crawl has the root's packages: {first}");
    let partial = format!(
        "WITH d AS (SELECT c.crawl_time, COALESCE(u.since, c.crawl_time) AS data_time FROM crawls c \
           LEFT JOIN unchanged_history u ON u.crawl_time = c.crawl_time AND u.table_name = 'packages'), \
         k AS (SELECT crawl_time, count(*) AS rows FROM packages_history GROUP BY crawl_time) \
         SELECT count(*) AS n FROM d LEFT JOIN k ON k.crawl_time = d.data_time WHERE k.rows IS NULL OR k.rows <> {first}"
    );
    assert_eq!(count(&target, &partial), 0, "a stored crawl is missing package rows");
    assert_eq!(count(&target, "SELECT count(*) AS n FROM packages"), first, "current state is whole");
}

#[test]
fn a_server_killed_twenty_times_during_ingest_loses_and_duplicates_nothing() {
    let (data, spool, addr, url) = setup();
    // A tiny flush size and compaction threshold: the server writes Parquet,
    // retires log segments and merges files all the time, so kills also land
    // in the middle of flushes and compactions.
    let start = |env: &[(&str, &str)]| {
        Server::start_full(data.path(), &addr, &["--flush-bytes", "200000", "--compact-files", "3"], env)
    };
    let mut server = Some(start(&[]));
    let (agent, rx) = run_agent(&url, spool.path(), &fast().iter().map(String::as_str).collect::<Vec<_>>());
    // Kill moments spread over the send path: a simple LCG, its seed printed to replay a failure.
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos() as u64;
    eprintln!("kill schedule seed {seed}");
    let mut x = seed;
    let mut next = || {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        x >> 33
    };
    for i in 0..20 {
        if i % 2 == 0 {
            // SIGKILL at a random moment.
            std::thread::sleep(Duration::from_millis(100 + next() % 1400));
            server.take().unwrap().kill();
            server = Some(start(&[]));
        } else {
            // A crash between storing a batch and acknowledging it, or between a
            // compaction's record and its commit, which random kills rarely hit.
            server.take().unwrap().kill();
            let after = (1 + next() % 6).to_string();
            let crash = if i % 4 == 1 {
                ("PERISCOPE_CRASH_AFTER_BATCHES", after.as_str())
            } else {
                ("PERISCOPE_CRASH_IN_COMPACTION", "1")
            };
            let crashing = start(&[crash]);
            wait_for("the injected crash", Duration::from_secs(60), || crashing.exited());
            server = Some(start(&[]));
        }
    }
    // What the agent reported while the kills went on, then a send after the last one that emptied the spool.
    let mut lines: Vec<String> = rx.try_iter().collect();
    let (n, after) = until_drained(&rx, Duration::from_secs(180));
    drop(agent);
    let n = n + lines.iter().filter(|l| l.starts_with("periscope-agent: full crawl:")).count();
    lines.extend(after);
    let failed = lines.iter().filter(|l| l.contains("delivery failed")).count();
    eprintln!("{n} full crawls, {failed} sends interrupted by a kill");
    assert!(failed >= 10, "the injected crashes interrupt sends: {failed}");
    assert_exactly_once(&url, n);
    let names: Vec<String> = std::fs::read_dir(data.path().join("tables/packages"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("day="))
        .flat_map(|d| std::fs::read_dir(d.path()).unwrap().flatten())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let flushed = names.iter().filter(|n| n.starts_with("wal-")).count();
    let compacted = names.iter().filter(|n| n.starts_with("compact-")).count();
    assert!(flushed + compacted >= 1, "the server flushed to Parquet between kills");
    assert!(compacted >= 1, "the server compacted files between kills");
    // Another process reading the data directory while the server runs sees the same.
    let local = ["--data", data.path().to_str().unwrap()];
    let n_local = sql(&local, "SELECT count(*) AS n FROM packages_history")[0]["n"].clone();
    let n_server = sql(&["--server", url.as_str()], "SELECT count(*) AS n FROM packages_history")[0]["n"].clone();
    assert_eq!(n_local, n_server, "log plus Parquet, read from outside, equals the server's view");
    // After a clean stop (a last flush), the Delta log, through all the crashes, holds exactly the rows.
    server.take().unwrap().stop();
    if let Some(py) = python() {
        let script = "import deltalake, sys, os\n\
            print(deltalake.DeltaTable(sys.argv[1]).to_pyarrow_table().num_rows, flush=True)\n\
            os._exit(0)";
        let out = std::process::Command::new(py)
            .args(["-c", script])
            .arg(data.path().join("tables/packages"))
            .output()
            .unwrap();
        assert!(out.status.success(), "deltalake: {}", String::from_utf8_lossy(&out.stderr));
        let delta = String::from_utf8(out.stdout).unwrap().trim().to_string();
        let stored = sql(&local, "SELECT count(*) AS n FROM packages_history")[0]["n"].to_string();
        assert_eq!(delta, stored, "the Delta log's rows equal the store's");
    }
}

#[test]
fn crawls_made_while_the_server_is_down_are_delivered_when_it_returns() {
    let (data, spool, addr, url) = setup();
    let (agent, rx) = run_agent(&url, spool.path(), &fast().iter().map(String::as_str).collect::<Vec<_>>());
    let mut down = Vec::new();
    while down.len() < 4 {
        let l = rx.recv_timeout(Duration::from_secs(120)).expect("crawls go on while the server is down");
        assert!(l.contains("delivery failed"), "{l}");
        down.push(l);
    }
    let _server = Server::start_at(data.path(), &addr);
    let (n, _) = until_drained(&rx, Duration::from_secs(120));
    drop(agent);
    assert!(n >= 1);
    assert_exactly_once(&url, down.len() + n);
}

#[test]
fn a_full_spool_evicts_the_oldest_batches_counts_them_and_recovers() {
    let (data, spool, addr, url) = setup();
    // Less than one full crawl: the next crawl's batches push the first one's out.
    let (agent, rx) = run_agent(
        &url,
        spool.path(),
        &["--interval", "0", "--docker", "off", "--containerd", "off", "--spool-max-bytes", "1000000"],
    );
    let mut evicted = 0u64;
    for _ in 0..3 {
        let l = rx.recv_timeout(Duration::from_secs(120)).unwrap();
        evicted = l.rsplit(", ").next().and_then(|t| t.strip_suffix(" evicted")).unwrap().parse().unwrap();
    }
    assert!(evicted > 0, "a full spool evicts and says how many");
    let _server = Server::start_at(data.path(), &addr);
    until_drained(&rx, Duration::from_secs(120));
    // After an eviction the agent resends everything rather than point at rows the server never got.
    until_drained(&rx, Duration::from_secs(120));
    drop(agent);
    let target = ["--server", url.as_str()];
    let newest = count(
        &target,
        "SELECT count(*) AS n FROM packages_history WHERE crawl_time = (SELECT max(crawl_time) FROM packages_history)",
    );
    assert!(newest > 50);
    assert_eq!(count(&target, "SELECT count(*) AS n FROM packages"), newest, "current state is whole");
}

#[test]
fn between_crawls_the_spool_is_retried_with_backoff() {
    let (data, spool, addr, url) = setup();
    // One crawl an hour: delivery after the server returns comes from the retries, not from a crawl.
    let (agent, rx) = run_agent(&url, spool.path(), &crawl_root("3600").iter().map(String::as_str).collect::<Vec<_>>());
    let first = rx.recv_timeout(Duration::from_secs(60)).unwrap();
    assert!(first.contains("delivery failed"), "{first}");
    let _server = Server::start_at(data.path(), &addr);
    let drained = rx.recv_timeout(Duration::from_secs(90)).expect("a retry within the backoff");
    assert_eq!(drained, "periscope-agent: spool drained");
    drop(agent);
    assert_exactly_once(&url, 1);
}

#[test]
fn the_agent_reports_its_health_and_degrades_over_its_memory_ceiling() {
    let data = tempfile::tempdir().unwrap();
    let spool = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let root = debian_rootfs().display().to_string();
    // A ceiling no process fits under: the second crawl on skips the optional collectors.
    let args = ["--interval", "0", "--root", &root, "--scope", "image", "--scope-id", "health"];
    let args: Vec<&str> = args
        .into_iter()
        .chain(["--collectors", "os,packages,configs", "--max-memory-bytes", "1", "--nice", "12"])
        .collect();
    let (agent, rx) = run_agent(&server.url, spool.path(), &args);
    let mut degraded_line = None;
    let mut full = 0;
    while full < 3 {
        let l = rx.recv_timeout(Duration::from_secs(60)).unwrap();
        if l.contains("over the 1 byte ceiling") {
            degraded_line = Some(l);
        } else if l.starts_with("periscope-agent: full crawl:") && l.contains("; delivered;") {
            full += 1;
        }
    }
    drop(agent);
    let l = degraded_line.expect("the agent says it is over its ceiling");
    assert!(l.contains("configs"), "{l}");
    let target = ["--server", server.url.as_str()];
    let a = &sql(&target, "SELECT * FROM agents")[0];
    assert_eq!((s(a, "degraded"), s(a, "memory_limit_bytes"), s(a, "nice")), ("true".into(), "1".into(), "12".into()));
    assert!(s(a, "crawls").parse::<i64>().unwrap() >= 2, "{a:?}");
    assert!(s(a, "rss_bytes").parse::<i64>().unwrap() > 1 << 20, "{a:?}");
    assert!(s(a, "last_rows_sent").parse::<i64>().unwrap() > 0, "{a:?}");
    // The first crawl read configs; the degraded ones did not.
    assert!(count(&target, "SELECT count(*) AS n FROM configs_history") > 0);
    assert_eq!(count(&target, "SELECT count(*) AS n FROM configs"), 0);
}

#[test]
fn the_daemon_reads_a_toml_config_and_flags_override_it() {
    let data = tempfile::tempdir().unwrap();
    let spool = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let cfg = spool.path().join("agent.toml");
    let text = format!(
        "server = {:?}\nonce = true\nroot = {:?}\nscope = \"image\"\nscope_id = \"from-file\"\n\
         collectors = [\"os\", \"packages\"]\nspool_dir = {:?}\nnice = 3\n",
        server.url,
        debian_rootfs().display().to_string(),
        spool.path().join("spool").display().to_string()
    );
    std::fs::write(&cfg, text).unwrap();
    let agent = |extra: &[&str]| {
        let out = std::process::Command::new(agent_bin())
            .args(["run", "--config"])
            .arg(&cfg)
            .args(extra)
            .env_remove("PERISCOPE_SERVER")
            .output()
            .unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (ok, err) = agent(&[]);
    assert!(ok, "{err}");
    let (ok, err) = agent(&["--scope-id", "from-flag"]);
    assert!(ok, "{err}");
    let target = ["--server", server.url.as_str()];
    let ids = sql(&target, "SELECT DISTINCT scope_id FROM crawls ORDER BY scope_id");
    assert_eq!(ids.iter().map(|r| s(r, "scope_id")).collect::<Vec<_>>(), ["from-file", "from-flag"]);
    assert_eq!(count(&target, "SELECT count(*) AS n FROM configs_history"), 0, "collectors came from the file");
    // An unknown setting is a clear error naming it.
    std::fs::write(&cfg, "server = \"http://x\"\nintervall = 5\n").unwrap();
    let (ok, err) = agent(&[]);
    assert!(!ok && err.contains("unknown setting \"intervall\""), "{err}");
}
