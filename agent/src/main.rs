//! `periscope-agent`: crawls a root filesystem and sends or prints its rows.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use periscope_agent::crawl::{CrawlOptions, RuntimeMode, crawl_async};
use periscope_agent::rootfs::{Budgets, DEFAULT_MAX_FILE_BYTES};

#[derive(Parser)]
#[command(name = "periscope-agent", version, about = "Inventory a host's filesystems from the outside")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Crawl once, send (or print) the rows, wait for acknowledgements, exit.
    Crawl {
        /// Server to send to, e.g. http://127.0.0.1:7700.
        #[arg(long, env = "PERISCOPE_SERVER", required_unless_present = "print", conflicts_with = "print")]
        server: Option<String>,
        /// Print rows as JSON lines to stdout instead of sending them.
        #[arg(long)]
        print: bool,
        #[command(flatten)]
        tls: TlsArgs,
        #[command(flatten)]
        crawl: CrawlArgs,
    },
    /// Run as a daemon: a full crawl every interval, and between them a crawl
    /// of each container or image a Docker event names (started, died, pulled).
    /// `--config FILE` (or PERISCOPE_CONFIG) reads these settings from TOML, keys
    /// named like the flags; flags and environment variables win over the file.
    Run {
        /// Server to send to, e.g. http://127.0.0.1:7700.
        #[arg(long, env = "PERISCOPE_SERVER")]
        server: String,
        /// Seconds between full crawls.
        #[arg(long, env = "PERISCOPE_INTERVAL", default_value_t = 300)]
        interval: u64,
        /// Up to this many seconds of random delay added to each interval.
        #[arg(long, default_value_t = 30)]
        splay: u64,
        /// One full crawl and send, then exit (non-zero when the send failed).
        #[arg(long)]
        once: bool,
        /// Where batches wait, durably, until the server acknowledges them. A crawl's rows
        /// past 4 MiB per scope wait here too, in unlinked files, until sent (`crawl` puts
        /// those in $TMPDIR).
        #[arg(long, env = "PERISCOPE_SPOOL_DIR", default_value = "/var/lib/periscope-agent/spool")]
        spool_dir: PathBuf,
        /// Spool size limit in bytes; beyond it the oldest batches are evicted (and counted).
        #[arg(long, default_value_t = 1 << 30)]
        spool_max_bytes: u64,
        /// The fleet's enroll secret, when the server requires enrollment; the node key
        /// it is traded for is kept in the spool directory.
        #[arg(long, env = "PERISCOPE_ENROLL_SECRET", hide_env_values = true)]
        enroll_secret: Option<String>,
        /// Memory ceiling in bytes; over it, crawls skip files, configs, unowned_files and embedded_libraries
        /// (default: 80% of PERISCOPE_MEMORY_LIMIT_BYTES, the container's limit as Kubernetes' downward API
        /// gives it, else of the agent's cgroup memory limit, else 512 MiB).
        #[arg(long)]
        max_memory_bytes: Option<u64>,
        /// CPU niceness to run at (raised only).
        #[arg(long, default_value_t = 10)]
        nice: i32,
        /// Every this many full crawls, resend all tables, changed or not (0: never).
        #[arg(long, default_value_t = 0)]
        resend_every: u64,
        /// Inputs too large to fingerprint (a host's whole tree: application packages,
        /// unowned files, embedded libraries) are walked again at most once per this many
        /// seconds, their tables sent unchanged in between (0: every crawl).
        #[arg(long, default_value_t = 600)]
        rewalk_large_secs: u64,
        /// Serve GET /healthz, /readyz (200 once the first crawl is spooled) and /metrics
        /// (Prometheus/OpenMetrics text) on this address, e.g. 0.0.0.0:9464; off by default.
        #[arg(long, env = "PERISCOPE_METRICS_LISTEN")]
        metrics_listen: Option<String>,
        #[command(flatten)]
        tls: TlsArgs,
        #[command(flatten)]
        crawl: CrawlArgs,
    },
}

/// TLS to the server (https:// URLs); shared by `crawl` and `run`.
#[derive(clap::Args)]
struct TlsArgs {
    /// CA certificate (PEM) that signed the server's certificate.
    #[arg(long, env = "PERISCOPE_TLS_CA")]
    tls_ca: Option<PathBuf>,
    /// This agent's client certificate (PEM), for servers that require mTLS;
    /// its subject CN is the host it may write rows for.
    #[arg(long, env = "PERISCOPE_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, env = "PERISCOPE_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

impl TlsArgs {
    fn apply(&self) -> anyhow::Result<()> {
        let read = |p: &PathBuf| std::fs::read(p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()));
        let ca = self.tls_ca.as_ref().map(read).transpose()?;
        let id = match (&self.tls_cert, &self.tls_key) {
            (Some(c), Some(k)) => Some((read(c)?, read(k)?)),
            _ => None,
        };
        if ca.is_some() || id.is_some() {
            periscope_agent::send::use_tls(ca, id);
        }
        Ok(())
    }
}

/// What to crawl and within which budgets; shared by `crawl` and `run`.
#[derive(clap::Args)]
struct CrawlArgs {
    /// Root filesystem to crawl.
    #[arg(long, default_value = "/")]
    root: PathBuf,
    /// Host name to stamp on rows (default: this machine's). In a Kubernetes pod, set
    /// PERISCOPE_HOST to the node's name (downward API `spec.nodeName`).
    #[arg(long, env = "PERISCOPE_HOST")]
    host: Option<String>,
    /// Scope kind of the root: host, container or image.
    #[arg(long, default_value = "host", value_parser = ["host", "container", "image"])]
    scope: String,
    /// Scope identity (default: the root's machine-id, else host name or root path).
    #[arg(long)]
    scope_id: Option<String>,
    /// Collectors to run, comma-separated (default: all).
    #[arg(long, value_delimiter = ',', value_parser = collector_names())]
    collectors: Option<Vec<String>>,
    /// Docker discovery (containers, images): auto = when crawling this host's / and an engine is configured.
    #[arg(long, value_enum, default_value_t = RuntimeMode::Auto)]
    docker: RuntimeMode,
    /// containerd discovery (every namespace): auto = when crawling this host's / and a socket is there
    /// (CONTAINERD_ADDRESS, /run/containerd, /run/k3s/containerd or dockerd's own).
    #[arg(long, value_enum, default_value_t = RuntimeMode::Auto)]
    containerd: RuntimeMode,
    /// Per-file read budget in bytes.
    #[arg(long, default_value_t = DEFAULT_MAX_FILE_BYTES)]
    max_file_bytes: u64,
    /// Per-collector budget within a scope: bytes read across all files.
    #[arg(long, default_value_t = Budgets::default().max_total_bytes)]
    max_total_bytes: u64,
    /// Per-collector budget within a scope: directory entries visited.
    #[arg(long, default_value_t = Budgets::default().max_entries)]
    max_entries: u64,
    /// Per-scope budget: directory depth of walks.
    #[arg(long, default_value_t = Budgets::default().max_depth)]
    max_depth: usize,
    /// Per-scope budget: wall time in seconds.
    #[arg(long, default_value_t = Budgets::default().max_wall.as_secs())]
    max_wall_secs: u64,
    /// Per-scope budget: rows of any one table (the rest are dropped, and a crawl_errors row says so).
    #[arg(long, default_value_t = Budgets::default().max_rows_per_table)]
    max_rows_per_table: u64,
    /// Per-scope budget: string bytes of any one table.
    #[arg(long, default_value_t = Budgets::default().max_table_bytes)]
    max_table_bytes: u64,
    /// Bytes of any one string value in a row; longer values are cut (and reported).
    #[arg(long, default_value_t = Budgets::default().max_field_bytes)]
    max_field_bytes: usize,
    /// Read FUSE and network filesystems (NFS, SMB, sshfs, Ceph, 9p, …) mounted below a scope's root too;
    /// by default they are not read (a hung one would block the crawl) and a crawl_errors row names each.
    #[arg(long)]
    read_network_fs: bool,
}

impl CrawlArgs {
    fn options(self) -> CrawlOptions {
        let budgets = Budgets {
            max_file_bytes: self.max_file_bytes,
            max_total_bytes: self.max_total_bytes,
            max_entries: self.max_entries,
            max_depth: self.max_depth,
            max_wall: std::time::Duration::from_secs(self.max_wall_secs),
            max_rows_per_table: self.max_rows_per_table,
            max_table_bytes: self.max_table_bytes,
            max_field_bytes: self.max_field_bytes,
        };
        CrawlOptions {
            root: self.root,
            host: self.host,
            scope: self.scope,
            scope_id: self.scope_id,
            max_file_bytes: self.max_file_bytes,
            budgets,
            collectors: self.collectors,
            docker: self.docker,
            containerd: self.containerd,
            read_network_fs: self.read_network_fs,
            ..CrawlOptions::default()
        }
    }
}

/// SIGINT or SIGTERM.
async fn shutdown() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

fn collector_names() -> clap::builder::PossibleValuesParser {
    clap::builder::PossibleValuesParser::new(periscope_agent::collectors::COLLECTORS.iter().map(|c| c.name))
}

/// `periscope-agent run --config FILE` (or PERISCOPE_CONFIG=FILE): the
/// daemon's settings from a TOML file whose keys are `run`'s long flags
/// (`server = "https://…"`, `interval = 300`, `collectors = ["os", "packages"]`,
/// `once = true`). Precedence: command line, then environment variables,
/// then the file. Returns the arguments with the file's settings added.
fn with_config(mut args: Vec<std::ffi::OsString>) -> anyhow::Result<Vec<std::ffi::OsString>> {
    use clap::CommandFactory;
    if args.get(1).and_then(|a| a.to_str()) != Some("run") {
        return Ok(args);
    }
    let pos = args.iter().position(|a| a == "--config");
    let path = match pos {
        Some(i) => {
            let p = args.get(i + 1).cloned().ok_or_else(|| anyhow::anyhow!("--config needs a file"))?;
            args.drain(i..=i + 1);
            Some(PathBuf::from(p))
        }
        None => std::env::var_os("PERISCOPE_CONFIG").map(PathBuf::from),
    };
    let Some(path) = path else { return Ok(args) };
    let text = std::fs::read_to_string(&path).map_err(|e| anyhow::anyhow!("config {}: {e}", path.display()))?;
    let table: toml::Table = text.parse().map_err(|e| anyhow::anyhow!("config {}: {e}", path.display()))?;
    let cmd = Cli::command();
    let run = cmd.find_subcommand("run").expect("run subcommand");
    let given = |long: &str| {
        args.iter()
            .any(|a| a.to_str().is_some_and(|a| a == format!("--{long}") || a.starts_with(&format!("--{long}="))))
    };
    let mut extra: Vec<std::ffi::OsString> = Vec::new();
    for (key, value) in &table {
        let long = key.replace('_', "-");
        let arg = run
            .get_arguments()
            .find(|a| a.get_long() == Some(long.as_str()))
            .ok_or_else(|| anyhow::anyhow!("config {}: unknown setting {key:?}", path.display()))?;
        if given(&long) || arg.get_env().is_some_and(|e| std::env::var_os(e).is_some()) {
            continue;
        }
        let text = |v: &toml::Value| match v {
            toml::Value::String(s) => Ok(s.clone()),
            toml::Value::Integer(i) => Ok(i.to_string()),
            toml::Value::Float(f) => Ok(f.to_string()),
            other => Err(anyhow::anyhow!("config {}: {key} = {other} is not a string or number", path.display())),
        };
        match value {
            toml::Value::Boolean(true) => extra.push(format!("--{long}").into()),
            toml::Value::Boolean(false) => {}
            toml::Value::Array(items) => {
                let parts = items.iter().map(text).collect::<anyhow::Result<Vec<_>>>()?;
                extra.push(format!("--{long}").into());
                extra.push(parts.join(",").into());
            }
            v => {
                extra.push(format!("--{long}").into());
                extra.push(text(v)?.into());
            }
        }
    }
    args.splice(2..2, extra);
    Ok(args)
}

fn main() -> ExitCode {
    periscope_agent::limits::release_big_blocks();
    periscope_agent::limits::raise_fd_limit();
    periscope_telemetry::init_logs("error");
    let args = match with_config(std::env::args_os().collect()) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("periscope-agent: error: {e:#}");
            return ExitCode::from(2);
        }
    };
    match run(Cli::parse_from(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("periscope-agent: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.cmd {
        Cmd::Run {
            server,
            interval,
            splay,
            once,
            spool_dir,
            spool_max_bytes,
            enroll_secret,
            max_memory_bytes,
            nice,
            resend_every,
            rewalk_large_secs,
            metrics_listen,
            tls,
            crawl,
        } => {
            tls.apply()?;
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
            let telemetry = match metrics_listen {
                Some(addr) => {
                    let mut registry = periscope_telemetry::Registry::default();
                    periscope_agent::metrics::register(&mut registry);
                    let t = periscope_telemetry::Telemetry::new(registry, || {});
                    let bound = rt.block_on(periscope_telemetry::serve(&addr, t.clone()))?;
                    eprintln!("periscope-agent: /healthz, /readyz and /metrics on http://{bound}");
                    Some(t)
                }
                None => None,
            };
            let opts = periscope_agent::daemon::RunOptions {
                server,
                spool_dir,
                spool_max_bytes,
                resend_every,
                enroll_secret,
                memory_limit: max_memory_bytes,
                nice,
                interval: std::time::Duration::from_secs(interval),
                splay: std::time::Duration::from_secs(splay),
                once,
                // A server resolves what containers share with their image.
                crawl: CrawlOptions {
                    inherit: true,
                    rewalk_large: std::time::Duration::from_secs(rewalk_large_secs),
                    ..crawl.options()
                },
                telemetry,
            };
            rt.block_on(async {
                tokio::select! {
                    r = periscope_agent::daemon::run(opts) => r,
                    _ = shutdown() => {
                        // Now, not when the scope being read returns (up to its wall budget): what was
                        // spooled is on disk, and a crawl cut short is read again by the next start.
                        periscope_agent::quarantine::stopping();
                        eprintln!("periscope-agent: stopping");
                        std::process::exit(0)
                    }
                }
            })
        }
        Cmd::Crawl { server, print, tls, crawl } => {
            tls.apply()?;
            // Printed rows are all there is: containers are read in full. A server resolves inherited tables.
            let opts = CrawlOptions { inherit: !print, ..crawl.options() };
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
            let crawls = rt.block_on(crawl_async(opts))?;
            if print {
                // Buffered: stdout is line-buffered, and a crawl prints tens of thousands of lines.
                let mut out = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
                return periscope_agent::print::print_crawls(&crawls, &mut out);
            }
            let server = server.expect("clap enforces --server or --print");
            let report = rt.block_on(periscope_agent::send::send_crawls(&server, &crawls[0].common.host, &crawls))?;
            let errors: usize = crawls.iter().map(|c| c.errors).sum();
            eprintln!(
                "periscope-agent: sent {} rows in {} batches ({} bytes) for {} scope(s), first {} {}, to {server}; {errors} crawl errors",
                report.rows,
                report.batches,
                report.bytes,
                crawls.len(),
                crawls[0].common.scope,
                crawls[0].common.scope_id
            );
            Ok(())
        }
    }
}
