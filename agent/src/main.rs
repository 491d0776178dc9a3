//! `periscope-agent`: crawls a root filesystem and sends or prints its rows.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use periscope_agent::crawl::{CrawlOptions, DockerMode, crawl_async, hostname};
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
        /// Root filesystem to crawl.
        #[arg(long, default_value = "/")]
        root: PathBuf,
        /// Server to send to, e.g. http://127.0.0.1:7700.
        #[arg(long, env = "PERISCOPE_SERVER", required_unless_present = "print", conflicts_with = "print")]
        server: Option<String>,
        /// Print rows as JSON lines to stdout instead of sending them.
        #[arg(long)]
        print: bool,
        /// Host name to stamp on rows (default: this machine's).
        #[arg(long)]
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
        #[arg(long, value_enum, default_value_t = DockerMode::Auto)]
        docker: DockerMode,
        /// Per-file read budget in bytes.
        #[arg(long, default_value_t = DEFAULT_MAX_FILE_BYTES)]
        max_file_bytes: u64,
        /// Per-scope budget: bytes read across all files.
        #[arg(long, default_value_t = Budgets::default().max_total_bytes)]
        max_total_bytes: u64,
        /// Per-scope budget: directory entries visited.
        #[arg(long, default_value_t = Budgets::default().max_entries)]
        max_entries: u64,
        /// Per-scope budget: directory depth of walks.
        #[arg(long, default_value_t = Budgets::default().max_depth)]
        max_depth: usize,
        /// Per-scope budget: wall time in seconds.
        #[arg(long, default_value_t = Budgets::default().max_wall.as_secs())]
        max_wall_secs: u64,
    },
}

fn collector_names() -> clap::builder::PossibleValuesParser {
    clap::builder::PossibleValuesParser::new(periscope_agent::collectors::COLLECTORS.iter().map(|(n, _)| *n))
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PERISCOPE_LOG").unwrap_or_else(|_| "error".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("periscope-agent: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.cmd {
        Cmd::Crawl {
            root,
            server,
            print,
            host,
            scope,
            scope_id,
            collectors,
            docker,
            max_file_bytes,
            max_total_bytes,
            max_entries,
            max_depth,
            max_wall_secs,
        } => {
            let budgets = Budgets {
                max_file_bytes,
                max_total_bytes,
                max_entries,
                max_depth,
                max_wall: std::time::Duration::from_secs(max_wall_secs),
            };
            let opts = CrawlOptions {
                root,
                host,
                scope,
                scope_id,
                max_file_bytes,
                budgets,
                collectors,
                ..CrawlOptions::default()
            };
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
            let crawls = rt.block_on(crawl_async(opts, docker))?;
            let batches: Vec<_> = crawls.iter().flat_map(|c| c.batches.iter().cloned()).collect();
            if print {
                // Buffered: stdout is line-buffered, and a crawl prints tens of thousands of lines.
                let mut out = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
                return periscope_agent::print::print_json_lines(&batches, &mut out);
            }
            let server = server.expect("clap enforces --server or --print");
            let report = rt.block_on(periscope_agent::send::send(&server, &hostname(), &batches))?;
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
