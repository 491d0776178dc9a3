//! End-to-end ingest benchmark: synthetic agents streaming realistic rows to
//! a real `periscope serve` process on loopback, through the agent's own
//! encoding and gRPC client. Run it with `benches/ingest.sh` (release build).
//!
//! 1. Bulk: HOSTS hosts each send one full crawl (PACKAGES package rows and
//!    PROCESSES process rows, plus the crawls row), SENDERS at a time. Reports
//!    rows/s, wire bytes/row and rows per server CPU second (read from the
//!    server's /proc/<pid>/stat). Batches are acknowledged once in the
//!    write-ahead log; the server is then stopped, which writes its buffered
//!    rows as Parquet, and the rate is reported again with that CPU included.
//! 2. Fleet: FLEET lightweight agents each send one change-only crawl (their
//!    live tables changed, everything else `unchanged`), as a fleet at a 60 s
//!    interval does; reports sends/s and so the hosts one server sustains.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

use arrow_array::RecordBatch;
use periscope_agent::collectors::Sink;
use periscope_agent::encode::{Common, Value};
use periscope_proto::tables::{CRAWLS, PROCESSES, UNCHANGED};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[path = "shared/names.rs"]
mod names;
#[path = "shared/package.rs"]
mod package;
use names::NAMES;

/// One host's full crawl: packages (a distro's worth, names and versions like Debian's) and processes.
fn full_crawl(host: usize, packages: usize, processes: usize) -> Vec<RecordBatch> {
    let common = Common {
        host: format!("host-{host:05}"),
        scope: "host".into(),
        scope_id: format!("machine-{host:05}"),
        crawl_time_us: 1_767_000_000_000_000 + host as i64,
    };
    let mut sink = Sink::new(common.clone());
    for i in 0..packages {
        let name = format!("{}-{}", NAMES[i % NAMES.len()], i / NAMES.len());
        let version = format!("{}.{}.{}-{}+deb12u{}", 1 + i % 7, i % 13, i % 29, 1 + i % 3, i % 5);
        package::push(&mut sink, i, &name, &version, "installed", Some("a package of the synthetic fleet"));
    }
    for p in 0..processes {
        let cmd = format!("/usr/bin/{} --worker {p}", NAMES[p % NAMES.len()]);
        sink.row(
            &PROCESSES,
            &[
                ("pid", Value::Int(1000 + p as i64)),
                ("ppid", Value::Int(1)),
                ("name", NAMES[p % NAMES.len()].into()),
                ("cmdline", cmd.as_str().into()),
                ("uid", Value::Int((p % 3) as i64 * 1000)),
                ("state", "S".into()),
                ("rss_bytes", Value::Int(1 << 20 | (p as i64 * 4096))),
                ("threads", Value::Int(1 + (p % 8) as i64)),
            ],
        );
    }
    let mut batches = sink.finish();
    let mut m = Sink::new(common);
    m.row(&CRAWLS, &[("agent_version", "bench".into()), ("rows", Value::Int((packages + processes) as i64))]);
    batches.extend(m.finish());
    batches
}

/// One host's steady-state crawl: processes changed, the rest unchanged.
fn change_only(host: usize, processes: usize) -> Vec<RecordBatch> {
    let mut batches = full_crawl(host, 0, processes);
    let common = Common {
        host: format!("host-{host:05}"),
        scope: "host".into(),
        scope_id: format!("machine-{host:05}"),
        crawl_time_us: 1_767_000_060_000_000 + host as i64,
    };
    let mut u = Sink::new(common);
    for t in ["packages", "package_files", "users", "groups", "os", "configs"] {
        u.row(&UNCHANGED, &[("table_name", t.into()), ("since", Value::Int(1_767_000_000_000_000))]);
    }
    batches.splice(batches.len() - 1..batches.len() - 1, u.finish());
    batches
}

fn walk_bytes(dir: &std::path::Path) -> u64 {
    let mut n = 0;
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let m = e.metadata().unwrap();
        n += if m.is_dir() { walk_bytes(&e.path()) } else { m.len() };
    }
    n
}

fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let f: Vec<&str> = stat.rsplit(") ").next().unwrap_or("").split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
    ticks / clock_ticks()
}

/// USER_HZ, the unit of /proc/<pid>/stat CPU times.
fn clock_ticks() -> f64 {
    static T: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *T.get_or_init(|| {
        let out = Command::new("getconf").arg("CLK_TCK").output().ok();
        out.and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse().ok()).unwrap_or(100.0)
    })
}

struct Server(Child, String);

impl Server {
    /// SIGTERM (the server flushes its buffer to Parquet and exits); returns
    /// seconds to exit and the server CPU seconds spent meanwhile (up to the
    /// last reading before it exited).
    fn stop(mut self) -> (f64, f64) {
        let pid = self.0.id();
        let cpu0 = cpu_seconds(pid);
        let start = Instant::now();
        Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap();
        let mut cpu = cpu0;
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                assert!(status.success(), "server exited with {status}");
                break;
            }
            cpu = cpu_seconds(pid).max(cpu);
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        (start.elapsed().as_secs_f64(), cpu - cpu0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_server(data: &std::path::Path) -> Server {
    use std::io::{BufRead, BufReader};
    let bin = std::env::current_exe().unwrap().parent().unwrap().parent().unwrap().join("periscope");
    let mut child = Command::new(&bin)
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(data)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e} (build it: cargo build --release -p periscope-server)", bin.display()));
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let line = lines.next().unwrap().unwrap();
    let addr = line.split("listening on ").nth(1).and_then(|r| r.split_whitespace().next()).unwrap().to_string();
    std::thread::spawn(move || lines.for_each(drop));
    Server(child, format!("http://{addr}"))
}

/// Sends every host's batches, `senders` at a time; returns (rows, wire bytes, seconds, server CPU seconds).
async fn run(server: &Server, crawls: Vec<Vec<RecordBatch>>, senders: usize) -> (u64, u64, f64, f64) {
    let url = Arc::new(server.1.clone());
    let queue = Arc::new(std::sync::Mutex::new(crawls.into_iter().enumerate().collect::<Vec<_>>()));
    let cpu0 = cpu_seconds(server.0.id());
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..senders {
        let (url, queue) = (url.clone(), queue.clone());
        tasks.push(tokio::spawn(async move {
            let (mut rows, mut bytes) = (0u64, 0u64);
            loop {
                let Some((i, batches)) = queue.lock().unwrap().pop() else { break };
                let msgs = periscope_agent::send::number(&format!("host-{i:05}"), 1, &mut 0, &batches).unwrap();
                bytes += msgs.iter().map(|m| m.arrow_ipc.len() as u64).sum::<u64>();
                let r = periscope_agent::send::send_numbered(&url, None, msgs, |_| {}).await.unwrap();
                rows += r.rows;
            }
            (rows, bytes)
        }));
    }
    let (mut rows, mut bytes) = (0, 0);
    for t in tasks {
        let (r, b) = t.await.unwrap();
        rows += r;
        bytes += b;
    }
    let secs = start.elapsed().as_secs_f64();
    (rows, bytes, secs, cpu_seconds(server.0.id()) - cpu0)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let hosts = env("HOSTS", 200);
    let packages = env("PACKAGES", 2000);
    let processes = env("PROCESSES", 150);
    let senders = env("SENDERS", 16);
    let fleet = env("FLEET", 2000);
    let data = tempfile::tempdir().unwrap();
    let server = start_server(data.path());

    let crawls: Vec<_> = (0..hosts).map(|h| full_crawl(h, packages, processes)).collect();
    let (rows, bytes, secs, cpu) = run(&server, crawls, senders).await;
    println!(
        "bulk ingest: {hosts} hosts x ({packages} packages + {processes} processes), {senders} concurrent senders"
    );
    println!(
        "  {rows} rows in {secs:.2} s = {:.0} rows/s; {:.1} wire bytes/row; server CPU {cpu:.2} s = {:.0} rows per server CPU second",
        rows as f64 / secs,
        bytes as f64 / rows as f64,
        rows as f64 / cpu.max(1e-9)
    );

    let (flush_secs, flush_cpu) = server.stop();
    let on_disk: u64 = walk_bytes(&data.path().join("tables"));
    println!(
        "  then writing them as Parquet (clean stop): {flush_secs:.2} s, server CPU {flush_cpu:.2} s; {:.0} rows per server CPU second in all; {:.1} bytes/row on disk",
        rows as f64 / (cpu + flush_cpu).max(1e-9),
        on_disk as f64 / rows as f64
    );

    let server = start_server(data.path());
    let steady: Vec<_> = (0..fleet).map(|h| change_only(h, processes)).collect();
    let (rows, bytes, secs, cpu) = run(&server, steady, senders * 4).await;
    let per_sec = fleet as f64 / secs;
    println!("fleet steady state: {fleet} agents, one change-only crawl each ({processes} processes changed)");
    println!(
        "  {per_sec:.0} agent sends/s ({:.0} bytes each, {rows} rows); server CPU {cpu:.2} s; at a 60 s interval one server sustains ~{:.0} hosts",
        bytes as f64 / fleet as f64,
        per_sec * 60.0
    );
}
