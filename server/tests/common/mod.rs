//! Shared helpers for the server's integration tests: real binaries, real
//! sockets, real root filesystems.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

// Root filesystems and the repo layout come from the agent's test helpers.
#[path = "../../../agent/tests/common/mod.rs"]
mod agent_common;
#[allow(unused_imports)]
pub use agent_common::{Containers, Image, debian_rootfs, docker_available, docker_test_image, in_chroot, repo_root};

pub fn periscope_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_periscope"))
}

/// The `periscope-agent` binary, built beside `periscope` (building it if this
/// test run did not).
pub fn agent_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let bin = periscope_bin().with_file_name("periscope-agent");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let st = Command::new(cargo)
            .args(["build", "-q", "-p", "periscope-agent", "--bin", "periscope-agent"])
            .current_dir(repo_root())
            .status()
            .expect("run cargo build for periscope-agent");
        assert!(st.success(), "building periscope-agent failed");
        assert!(bin.exists(), "{} missing after build", bin.display());
        bin
    })
    .clone()
}

/// A `periscope serve` process on a free loopback port, killed on drop.
pub struct Server {
    child: Child,
    pub url: String,
    pub data: PathBuf,
}

impl Server {
    pub fn start(data: &Path) -> Server {
        Server::start_at(data, "127.0.0.1:0")
    }

    /// On a given address, e.g. to restart a server where its agents expect it.
    pub fn start_at(data: &Path, listen: &str) -> Server {
        Server::start_with(data, listen, &[])
    }

    /// With extra environment variables.
    pub fn start_with(data: &Path, listen: &str, env: &[(&str, &str)]) -> Server {
        Server::start_full(data, listen, &[], env)
    }

    /// With extra `periscope serve` flags and environment variables.
    pub fn start_full(data: &Path, listen: &str, args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut child = Command::new(periscope_bin())
            .args(["serve", "--listen", listen, "--data"])
            .arg(data)
            .args(args)
            .envs(env.iter().copied())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn periscope serve");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let line = lines.next().and_then(Result::ok).unwrap_or_default();
        let Some(addr) = line.split("listening on ").nth(1).and_then(|r| r.split_whitespace().next()) else {
            // Not left running (and holding the test's output open) after a failed start.
            let _ = child.kill();
            let _ = child.wait();
            panic!("unexpected server output: {line:?}");
        };
        let addr = addr.to_string();
        // Keep draining stderr so the server never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(|l| eprintln!("[server] {}", l.unwrap_or_default())));
        Server { child, url: format!("http://{addr}"), data: data.to_path_buf() }
    }
}

impl Server {
    /// The server's peak resident memory in bytes since the last [`Server::reset_peak`] (VmHWM).
    pub fn peak_rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let kb = status.lines().find_map(|l| l.strip_prefix("VmHWM:")).unwrap().trim().trim_end_matches(" kB");
        kb.trim().parse::<u64>().unwrap() * 1024
    }

    /// Starts [`Server::peak_rss`] again from the server's resident memory now.
    pub fn reset_peak(&self) {
        std::fs::write(format!("/proc/{}/clear_refs", self.child.id()), "5").unwrap();
    }

    /// Whether the process has ended (e.g. crashed on purpose).
    pub fn exited(&self) -> bool {
        // SAFETY-free check: try_wait needs &mut; poll the pid instead.
        !Path::new(&format!("/proc/{}", self.child.id())).exists()
            || std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))
                .map(|s| s.split(") ").nth(1).is_some_and(|r| r.starts_with('Z')))
                .unwrap_or(true)
    }

    /// SIGTERM, as systemd or an operator would; waits for a clean exit
    /// (which writes buffered rows to Parquet) and asserts it.
    pub fn stop(mut self) {
        let ok = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap().success();
        assert!(ok, "kill -TERM");
        let status = self.child.wait().unwrap();
        assert!(status.success(), "periscope serve exited with {status} after SIGTERM");
    }

    /// SIGKILL, as a crash or the OOM killer would.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback address no one listens on right now.
pub fn free_addr() -> String {
    // Not a kernel-picked port: those come from the ephemeral range, where,
    // once this listener closes, a `127.0.0.1:0` bind or the source port of any
    // outgoing connection (another test's agent) can take it before the server
    // binds it. Ports below that range (32768 and up on Linux) are only ever
    // handed out here: a counter per process, spread by pid across processes.
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let spread = (std::process::id() % 400) * 30;
    for _ in 0..12_000 {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (20_000 + (spread + n) % 12_000) as u16;
        if let Ok(l) = std::net::TcpListener::bind(("127.0.0.1", port)) {
            return l.local_addr().unwrap().to_string();
        }
    }
    panic!("no free port below the ephemeral range");
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `periscope-agent` with `args`; returns (success, stdout, stderr).
pub fn agent(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(agent_bin()).args(args).output().expect("run periscope-agent");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

/// Runs a query through the real CLI against a server (`--server URL`) or a
/// data directory (`--data DIR`) and returns the rows as JSON objects.
pub fn sql(target: &[&str], query: &str) -> Vec<serde_json::Map<String, serde_json::Value>> {
    let out = Command::new(periscope_bin())
        .arg("sql")
        .args(target)
        .args(["--format", "json", query])
        .output()
        .expect("run periscope sql");
    assert!(
        out.status.success(),
        "periscope sql {query:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
        .collect()
}

/// Runs `periscope sql` expecting it to fail; returns its stderr.
pub fn sql_refused(target: &[&str], query: &str, env: &[(&str, &str)]) -> String {
    let out = Command::new(periscope_bin())
        .arg("sql")
        .args(target)
        .arg(query)
        .envs(env.iter().copied())
        .output()
        .expect("run periscope sql");
    assert!(!out.status.success(), "periscope sql {query:?} succeeded: {}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The venv python with DuckDB and the ADBC Flight SQL driver
/// (scripts/python-clients.sh), or None (skip) with the reason printed.
pub fn python() -> Option<String> {
    match std::env::var("PERISCOPE_PYTHON") {
        Ok(p) => Some(p),
        Err(_) => {
            assert!(std::env::var("CI").is_err(), "CI runs scripts/test, which sets PERISCOPE_PYTHON");
            eprintln!("SKIPPED: PERISCOPE_PYTHON unset (scripts/test sets it up with DuckDB and ADBC)");
            None
        }
    }
}

pub fn s(row: &serde_json::Map<String, serde_json::Value>, col: &str) -> String {
    match row.get(col) {
        Some(serde_json::Value::String(v)) => v.clone(),
        Some(v) => v.to_string(),
        None => String::new(),
    }
}

pub fn wait_for(what: &str, timeout: std::time::Duration, mut ok: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !ok() {
        assert!(start.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
}

pub struct Agent(pub std::process::Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `periscope-agent run` with `args`; its summary lines (one per send) arrive on the receiver.
pub fn run_agent(url: &str, spool: &Path, args: &[&str]) -> (Agent, std::sync::mpsc::Receiver<String>) {
    let mut child = Command::new(agent_bin())
        .args(["run", "--server", url, "--splay", "0", "--spool-dir"])
        .arg(spool)
        .args(args)
        .env("PERISCOPE_LOG", "info")
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn periscope-agent run");
    let lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in lines.map_while(Result::ok) {
            eprintln!("[agent] {l}");
            if l.starts_with("periscope-agent: ") {
                let _ = tx.send(l);
            }
        }
    });
    (Agent(child), rx)
}

/// The root a fixture script builds (and caches), or None (skipped outside CI) when it cannot.
pub fn fixture_root(script: &str) -> Option<std::path::PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts").join(script);
    let out = std::process::Command::new(&path).stderr(std::process::Stdio::inherit()).output();
    match out {
        Ok(o) if o.status.success() => Some(String::from_utf8_lossy(&o.stdout).trim().into()),
        other => {
            assert!(std::env::var("CI").is_err(), "{} failed in CI: {other:?}", path.display());
            eprintln!("SKIPPED: {} failed ({other:?})", path.display());
            None
        }
    }
}

/// Crawls a fixture root as host `host` with `collectors` (Docker and
/// containerd off unless `extra` turns one on).
pub fn crawl_root(url: &str, root: &Path, host: &str, collectors: &str, extra: &[&str]) {
    let root = root.to_str().unwrap();
    let docker = if extra.contains(&"--docker") { &[][..] } else { &["--docker", "off"][..] };
    let args =
        ["crawl", "--server", url, "--root", root, "--host", host, "--collectors", collectors, "--containerd", "off"];
    let (ok, _, err) = agent(&[&args[..], docker, extra].concat());
    assert!(ok, "crawl of {root} failed: {err}");
}
