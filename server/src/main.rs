//! `periscope`: the server, the SQL client and local commands.

/// jemalloc, counting what each remote query's threads hold (see `periscope_query::account`).
#[global_allocator]
static ALLOC: periscope_query::account::Counting<tikv_jemallocator::Jemalloc> =
    periscope_query::account::Counting(tikv_jemallocator::Jemalloc);

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use periscope_fronts::service;
use periscope_query::query;
use periscope_sbom as sbom;
use periscope_server::output::{self, Format};
use periscope_server::{quickstart, serve};

#[derive(Parser)]
#[command(name = "periscope", version, about = "What is actually running in your container fleet, in SQL")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the server: gRPC ingest from agents and SQL queries.
    Serve {
        /// Data directory (created if missing).
        #[arg(long, env = "PERISCOPE_DATA")]
        data: PathBuf,
        /// Address to listen on; port 0 picks a free one (printed on stderr).
        #[arg(long, default_value = "127.0.0.1:7700")]
        listen: String,
        /// Shared secret agents enroll with (they then get a per-agent node key
        /// and may only write their own host's rows). Without it the server is open.
        #[arg(long, env = "PERISCOPE_ENROLL_SECRET", hide_env_values = true)]
        enroll_secret: Option<String>,
        /// Let agents enroll with one-time per-host tokens (`periscope agents token HOST`),
        /// with or without a fleet-wide --enroll-secret.
        #[arg(long)]
        enroll_tokens: bool,
        /// Seconds a node key stays valid after enrollment (default: until revoked).
        #[arg(long)]
        node_key_ttl_secs: Option<u64>,
        /// TLS certificate (PEM) for the gRPC port; with --tls-key.
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// TLS private key (PEM).
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// Require client certificates signed by this CA (PEM): mTLS, the agent's
        /// host identity taken from its certificate's subject CN.
        #[arg(long, requires = "tls_cert")]
        client_ca: Option<PathBuf>,
        /// Write buffered rows as Parquet once this many bytes of them are in
        /// memory; the server holds at most about twice this in rows.
        #[arg(long, default_value_t = 256 << 20)]
        flush_bytes: usize,
        /// Write buffered rows as Parquet at least this often (seconds), so
        /// engines reading the files directly lag by at most this much.
        #[arg(long, default_value_t = 60)]
        flush_secs: u64,
        /// A host not crawled for this many seconds leaves current state (with
        /// its containers); its rows stay in the _history tables.
        #[arg(long, default_value_t = periscope_store::store::HOST_EXPIRY.as_secs())]
        host_expiry_secs: u64,
        /// Scopes (hosts, containers, images) the current-state index may hold, about
        /// 620 bytes each; beyond it rows of new scopes are refused (agents spool and
        /// retry) until containers leave it or the limit is raised (0: no limit).
        #[arg(long, default_value_t = periscope_store::store::MAX_SCOPES)]
        max_scopes: usize,
        /// Scopes one host may hold in the current-state index (0: no limit), so no agent
        /// can fill it for the others; beyond it that host's new scopes are refused.
        #[arg(long, default_value_t = periscope_store::store::MAX_SCOPES_PER_HOST)]
        max_scopes_per_host: usize,
        /// Merge a table's small Parquet files into one once there are this many (0: never).
        #[arg(long, default_value_t = 16)]
        compact_files: usize,
        /// Keep history this many days (0: for ever). Older day partitions are
        /// rewritten, hourly, to hold only the rows current state still reads.
        #[arg(long, default_value_t = 0)]
        retention_days: u64,
        /// Serve Arrow Flight SQL (ADBC, JDBC, DBeaver) on this address; needs --sql-user.
        #[arg(long)]
        flight_listen: Option<String>,
        /// Serve the Postgres wire protocol (psql, Grafana, Metabase) on this address; needs --sql-user.
        #[arg(long)]
        pg_listen: Option<String>,
        /// A SQL user, NAME:PASSWORD (repeatable; the environment variable takes a
        /// comma-separated list). With any, remote SQL needs a user's credentials.
        #[arg(long, env = "PERISCOPE_SQL_USERS", value_delimiter = ',', hide_env_values = true)]
        sql_user: Vec<String>,
        /// Confine a SQL user, NAME=PATTERN[|PATTERN…] (repeatable): a host glob (`web-*`), a Kubernetes
        /// namespace (`ns:team-a`) or a container label (`label:app=web*`). Every table, view and join its
        /// queries see holds only those hosts' and containers' rows, on every front, and no report tables.
        /// Once one user has a scope every user needs one (`NAME=*`: everything).
        #[arg(long, env = "PERISCOPE_SQL_SCOPES", value_delimiter = ',')]
        sql_scope: Vec<String>,
        /// Memory one remote query may use, result included; beyond it the query is refused.
        #[arg(long, default_value_t = 1 << 30)]
        query_memory_bytes: usize,
        /// Memory all remote queries together may use (each Postgres connection's
        /// session and each Flight SQL or CLI query draws on it); a query that
        /// would pass it is refused with a clear error, to retry later.
        #[arg(long, default_value_t = 4 << 30)]
        sql_memory_bytes: usize,
        /// Seconds a remote query may run before it is cancelled.
        #[arg(long, default_value_t = 60)]
        query_timeout_secs: u64,
        /// Run the query packs in this directory (`*.toml`) on their schedules, storing
        /// each run under <data>/reports (the report_* tables).
        #[arg(long, env = "PERISCOPE_PACKS")]
        packs: Option<PathBuf>,
        /// Also write each scheduled run's JSON, CSV, JUnit and HTML reports under DIR/<pack>/.
        #[arg(long, requires = "packs")]
        report_out: Option<PathBuf>,
        /// POST each scheduled run's JSON report to this URL.
        #[arg(long, requires = "packs")]
        report_webhook: Option<String>,
        /// Seconds a scheduled check may run before it is cancelled (unless its pack says otherwise).
        #[arg(long, default_value_t = 60)]
        report_timeout_secs: u64,
        /// Import OSV advisories from this file, directory or http(s) URL (an all.zip, a record)
        /// at start and every --vulns-interval-secs: only new and modified records are stored (repeatable).
        #[arg(long = "vulns-source", value_name = "PATH_OR_URL")]
        vulns_sources: Vec<String>,
        /// Seconds between imports of the --vulns-source sources.
        #[arg(long, default_value_t = 6 * 3600, value_parser = clap::value_parser!(u64).range(1..))]
        vulns_interval_secs: u64,
        /// Serve on non-loopback addresses without agent authentication (--enroll-secret
        /// or --client-ca) or without SQL users: any machine that reaches the ports may
        /// then write any host's rows or read the whole fleet. Refused unless given.
        #[arg(long)]
        insecure_open: bool,
        /// Serve GET /healthz, /readyz (200 once the store is open and the fronts listen) and
        /// /metrics (Prometheus/OpenMetrics text) on this address, e.g. 0.0.0.0:9465; off by default.
        #[arg(long, env = "PERISCOPE_METRICS_LISTEN")]
        metrics_listen: Option<String>,
    },
    /// Compliance reports: run query packs of checks and validate pack files.
    Report {
        #[command(subcommand)]
        cmd: ReportCmd,
    },
    /// Run one SQL query against a server or a data directory.
    Sql {
        /// The query.
        sql: String,
        /// Server to ask.
        #[arg(long, env = "PERISCOPE_SERVER", default_value = "http://127.0.0.1:7700")]
        server: String,
        /// Query this data directory directly instead of a server (safe while a server writes to it).
        #[arg(long)]
        data: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// SQL user to authenticate as (password from PERISCOPE_PASSWORD).
        #[arg(long, env = "PERISCOPE_USER")]
        user: Option<String>,
    },
    /// Write the inventory of one container, image or host as an SBOM (CycloneDX 1.6 or SPDX 2.3 JSON),
    /// made by a server (its gRPC Query.Sbom call, within the user's read scope and limits) or read from a
    /// data directory.
    #[command(group(clap::ArgGroup::new("what").required(true).multiple(true).args(["container", "image", "host"])))]
    Sbom {
        /// A container: its name, id or a unique id prefix.
        #[arg(long, conflicts_with = "image")]
        container: Option<String>,
        /// An image: its id (or a unique prefix), a tag (`repo:tag`; `repo` is `repo:latest`) or a registry digest.
        #[arg(long)]
        image: Option<String>,
        /// A host: alone, the host's own filesystem; with --container or --image, the host to look on.
        #[arg(long)]
        host: Option<String>,
        #[arg(short, long, value_enum, default_value_t = sbom::Format::CyclonedxJson)]
        format: sbom::Format,
        /// Write the document here instead of to stdout.
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Leave out the files each package owns (CycloneDX lists them as nested file components).
        #[arg(long)]
        no_files: bool,
        /// Server to ask.
        #[arg(long, env = "PERISCOPE_SERVER", default_value = "http://127.0.0.1:7700")]
        server: String,
        /// Read this data directory directly instead of a server (safe while a server writes to it).
        #[arg(long)]
        data: Option<PathBuf>,
        /// SQL user to authenticate as (password from PERISCOPE_PASSWORD).
        #[arg(long, env = "PERISCOPE_USER")]
        user: Option<String>,
    },
    /// Vulnerability data: import OSV advisories, matched against the fleet in the `vulnerabilities` view.
    Vulns {
        #[command(subcommand)]
        cmd: VulnsCmd,
    },
    /// Agent enrollment: list enrolled hosts, revoke a host's node keys, issue per-host enrollment tokens.
    Agents {
        #[command(subcommand)]
        cmd: AgentsCmd,
    },
    /// Crawl this machine into a local store with an in-process server and show what SQL sees.
    Quickstart {
        /// Data directory [default: $XDG_DATA_HOME/periscope/quickstart].
        #[arg(long)]
        data: Option<PathBuf>,
        /// Root filesystem to crawl.
        #[arg(long, default_value = "/")]
        root: PathBuf,
    },
}

#[derive(Subcommand)]
enum VulnsCmd {
    /// Import OSV records (JSON files, directories of them, osv.dev's all.zip
    /// archives) into the data directory: new ids and newer `modified` times
    /// are stored, the rest counted unchanged. Safe while a server runs on it.
    Import {
        /// Files, directories and zip archives of OSV records.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        #[arg(long, env = "PERISCOPE_DATA")]
        data: PathBuf,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum AgentsCmd {
    /// Hosts holding node keys (with when each was issued) and unused enrollment tokens.
    List {
        #[arg(long, env = "PERISCOPE_DATA")]
        data: PathBuf,
    },
    /// Revoke every node key of HOST: its agent is refused until it enrolls again, which it then may.
    Revoke {
        host: String,
        #[arg(long, env = "PERISCOPE_DATA")]
        data: PathBuf,
    },
    /// Print a one-time token that enrolls HOST (and no other host) once; needs `serve --enroll-tokens`.
    Token {
        host: String,
        #[arg(long, env = "PERISCOPE_DATA")]
        data: PathBuf,
        /// Seconds the token stays valid.
        #[arg(long, default_value_t = 86_400)]
        ttl_secs: u64,
    },
}

#[derive(Subcommand)]
enum ReportCmd {
    /// Run a pack now: print the failures, write reports, store the run and exit
    /// with status 3 when a check at or above --fail-on fails or cannot run.
    Run {
        /// Pack name (looked up as <packs>/<name>.toml, else among the compiled-in packs: cis-docker,
        /// images, packages, runtime, vulns) or path to a pack file.
        pack: String,
        /// Directory of pack files, adding packs and overriding compiled-in ones of the same name.
        #[arg(long, env = "PERISCOPE_PACKS")]
        packs: Option<PathBuf>,
        /// Read this data directory instead of a server (safe while a server writes to it); the run is stored
        /// in <data>/reports.
        #[arg(long)]
        data: Option<PathBuf>,
        /// Ask this server instead (default http://127.0.0.1:7700; the run is stored only with --history).
        #[arg(long, env = "PERISCOPE_SERVER")]
        server: Option<String>,
        /// SQL user to authenticate as with --server (password from PERISCOPE_PASSWORD).
        #[arg(long, env = "PERISCOPE_USER")]
        user: Option<String>,
        /// What to print on stdout.
        #[arg(long, value_enum, default_value_t = ReportFormat::Table)]
        format: ReportFormat,
        /// Write report.json, report.csv, junit.xml and report.html into this directory.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Exit with status 3 when a check of this severity or higher fails or cannot run.
        #[arg(long, value_enum)]
        fail_on: Option<periscope_report::Severity>,
        /// Seconds a check may run before it is cancelled (unless the pack or check sets timeout_secs).
        #[arg(long, default_value_t = 60)]
        timeout_secs: u64,
        /// Where runs are stored and the previous run is read for the diff [default: <data>/reports with --data].
        #[arg(long)]
        history: Option<PathBuf>,
        /// Diff against the stored runs but do not store this one.
        #[arg(long)]
        no_store: bool,
        /// POST the JSON report to this URL (a failed delivery is an error, exit status 1).
        #[arg(long)]
        webhook: Option<String>,
        /// Override a pack parameter ([pack.params]); VALUE is a TOML value: 30, "text", ["a", "b"] (repeatable).
        #[arg(long = "param", value_name = "NAME=VALUE")]
        params: Vec<String>,
    },
    /// Load and validate pack files (fields, ids, schedules, SQL planned against the catalog) without running them.
    Check {
        /// Pack names or paths (names as `report run` finds them).
        #[arg(required = true)]
        packs: Vec<String>,
        /// Directory of pack files, adding packs and overriding compiled-in ones of the same name.
        #[arg(long, env = "PERISCOPE_PACKS")]
        pack_dir: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ReportFormat {
    Table,
    Json,
    Csv,
    Junit,
    Html,
}

fn agents(cmd: AgentsCmd) -> anyhow::Result<ExitCode> {
    use periscope_fronts::auth::admin;
    let when = |ms: u64| {
        chrono::DateTime::from_timestamp_millis(ms as i64)
            .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_default()
    };
    match cmd {
        AgentsCmd::List { data } => {
            let (keys, tokens) = admin::list(&data)?;
            for (host, issued) in keys {
                println!("{host}\tenrolled {}", when(issued));
            }
            for (host, expires) in tokens {
                println!("{host}\ttoken unused, expires {}", when(expires));
            }
        }
        AgentsCmd::Revoke { host, data } => match admin::revoke(&data, &host)? {
            0 => anyhow::bail!("host {host:?} holds no node key in {}", data.display()),
            n => eprintln!("periscope: revoked {n} node key(s) of {host}; it may enroll again"),
        },
        AgentsCmd::Token { host, data, ttl_secs } => {
            println!("{}", admin::token(&data, &host, std::time::Duration::from_secs(ttl_secs))?);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn vulns(cmd: VulnsCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        VulnsCmd::Import { paths, data, json } => {
            let s = periscope_vulns::import::import(&data, &paths).map_err(anyhow::Error::msg)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&s)?);
            } else {
                println!(
                    "{} records read: {} new, {} updated, {} unchanged ({} of those stored withdrawn); {} errors",
                    s.records,
                    s.new,
                    s.updated,
                    s.unchanged,
                    s.withdrawn,
                    s.errors.len()
                );
                for (eco, n) in &s.affected {
                    println!("  affected entries  {eco}: {n}");
                }
                for (why, n) in &s.unmatched {
                    println!("  not matched       {why}: {n}");
                }
                for e in &s.errors {
                    println!("  error             {e}");
                }
            }
            Ok(if s.errors.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(2) })
        }
    }
}

/// Exit status of `periscope report run` when the --fail-on gate trips.
const GATE_FAILED: u8 = 3;

fn main() -> ExitCode {
    periscope_telemetry::init_logs("warn");
    // The stored report runs are SQL tables on every front and in every subcommand.
    periscope_report::install();
    periscope_vulns::install();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("periscope: error: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(Cli::parse())) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("periscope: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Binds an optional SQL front's address and says where it listens.
async fn bind_front(addr: Option<&str>, what: &str) -> anyhow::Result<Option<tokio::net::TcpListener>> {
    let Some(a) = addr else { return Ok(None) };
    let l = serve::bind(a).await.map_err(|e| anyhow::anyhow!("cannot listen on {a} ({what}): {e}"))?;
    Ok(Some(l))
}

/// Resolves on SIGTERM or Ctrl-C. The handlers are installed at once, not at
/// first poll: a stop that arrives while the store is still opening is a clean stop too.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.cmd {
        Cmd::Serve {
            data,
            listen,
            enroll_secret,
            enroll_tokens,
            node_key_ttl_secs,
            tls_cert,
            tls_key,
            client_ca,
            flush_bytes,
            flush_secs,
            host_expiry_secs,
            compact_files,
            max_scopes,
            max_scopes_per_host,
            retention_days,
            flight_listen,
            pg_listen,
            sql_user,
            sql_scope,
            query_memory_bytes,
            sql_memory_bytes,
            query_timeout_secs,
            packs,
            report_out,
            report_webhook,
            report_timeout_secs,
            vulns_sources,
            vulns_interval_secs,
            insecure_open,
            metrics_listen,
        } => {
            let read = |p: &PathBuf| std::fs::read(p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()));
            let tls = match (&tls_cert, &tls_key) {
                (Some(c), Some(k)) => Some(periscope_fronts::tls::TlsFiles {
                    cert: read(c)?,
                    key: read(k)?,
                    client_ca: client_ca.as_ref().map(read).transpose()?,
                }),
                _ => None,
            };
            let stop = shutdown_signal();
            let listener = serve::bind(&listen).await.map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
            let agents_authenticated = enroll_secret.is_some() || enroll_tokens || client_ca.is_some();
            let auth = periscope_fronts::auth::AuthConfig {
                enroll_secret,
                tokens: enroll_tokens,
                node_key_ttl: node_key_ttl_secs.map(std::time::Duration::from_secs),
            };
            let sql_users = periscope_fronts::sqlauth::SqlUsers::parse(sql_user.iter().map(String::as_str))
                .and_then(|u| u.with_scopes(sql_scope.iter().map(String::as_str)))
                .map_err(|e| anyhow::anyhow!(e))?;
            let flight = bind_front(flight_listen.as_deref(), "Flight SQL").await?;
            let pg = bind_front(pg_listen.as_deref(), "Postgres wire protocol").await?;
            let mut addrs = vec![listener.local_addr()?];
            addrs.extend(flight.iter().chain(pg.iter()).filter_map(|l| l.local_addr().ok()));
            let exposure = service::Exposure { agents_authenticated, sql_users: !sql_users.is_empty() };
            let exposed = match exposure.check(&addrs) {
                Err(why) if !insecure_open => anyhow::bail!("{why}"),
                Err(why) => Some(why),
                Ok(()) => None,
            };
            eprintln!("periscope: listening on {} with data in {}", listener.local_addr()?, data.display());
            if let Some(why) = exposed {
                eprintln!("periscope: --insecure-open: {why}");
            }
            for (front, what) in [(&flight, "Flight SQL"), (&pg, "Postgres wire protocol")] {
                if let Some(l) = front {
                    eprintln!("periscope: {what} on {}", l.local_addr()?);
                }
            }
            if !agents_authenticated {
                eprintln!("periscope: no --enroll-secret or --client-ca: any agent may send rows for any host");
            }
            let limits = periscope_query::query::Limits {
                memory_bytes: query_memory_bytes,
                timeout: std::time::Duration::from_secs(query_timeout_secs),
                shared: None,
                scope: None,
            }
            .sharing(sql_memory_bytes);
            let opts = serve::ServeOptions {
                auth,
                tls,
                store: periscope_store::store::StoreConfig {
                    flush_bytes,
                    flush_interval: std::time::Duration::from_secs(flush_secs),
                    host_expiry: std::time::Duration::from_secs(host_expiry_secs),
                    compact_files,
                    max_scopes,
                    max_scopes_per_host,
                    retention: (retention_days > 0).then(|| std::time::Duration::from_secs(retention_days * 86_400)),
                    ..Default::default()
                },
                limits: limits.clone(),
                sql_users: std::sync::Arc::new(sql_users),
                flight,
                pg,
                reports: packs.map(|packs| periscope_report::schedule::ScheduleOptions {
                    packs,
                    timeout: std::time::Duration::from_secs(report_timeout_secs),
                    out: report_out,
                    webhook: report_webhook,
                    limits,
                }),
                vulns: (!vulns_sources.is_empty())
                    .then(|| (vulns_sources, std::time::Duration::from_secs(vulns_interval_secs))),
                metrics: metrics_listen,
            };
            serve::serve_with(data, listener, opts, stop).await?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Sql { sql, server, data, format, user } => {
            let (schema, batches) = match data {
                Some(dir) => {
                    if !dir.join("tables").is_dir() {
                        anyhow::bail!("{} is not a Periscope data directory (no tables/ inside)", dir.display());
                    }
                    query::run(&dir, &sql, query::Access::Local).await?
                }
                None => {
                    let credentials = user.map(|u| (u, std::env::var("PERISCOPE_PASSWORD").unwrap_or_default()));
                    let progress = output::Progress::start();
                    let result = query::remote(&server, &sql, credentials.as_ref(), |rows| progress.rows(rows)).await;
                    progress.finish();
                    result?
                }
            };
            output::write(format, &schema, &batches, &mut std::io::stdout().lock())?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Sbom { container, image, host, format, output, no_files, server, data, user } => {
            use sbom::inventory::{self, Selector, Source};
            let (doc, summary) = match data {
                Some(dir) => {
                    let selector = Selector::named(container, image, host).map_err(anyhow::Error::msg)?;
                    let created = sbom::timestamp().map_err(anyhow::Error::msg)?;
                    if !dir.join("tables").is_dir() {
                        anyhow::bail!("{} is not a Periscope data directory (no tables/ inside)", dir.display());
                    }
                    let source = Source::data(&dir).await?;
                    let inv = inventory::read(&source, &selector, !no_files).await?;
                    let s = &inv.subject;
                    let on =
                        if s.kind == inventory::Kind::Host { String::new() } else { format!(" on host {}", s.host) };
                    let summary = format!("{} {}{on}: {} packages", s.kind.scope(), s.name, inv.packages.len());
                    (sbom::render(format, &inv, &created).into_bytes(), summary)
                }
                None => {
                    // Made by the server (its gRPC Query.Sbom call), within this user's read scope and limits.
                    let created = sbom::source_date_epoch().map_err(anyhow::Error::msg)?;
                    let request = periscope_proto::v1::SbomRequest {
                        container: container.unwrap_or_default(),
                        image: image.unwrap_or_default(),
                        host: host.unwrap_or_default(),
                        format: format.name().to_string(),
                        no_files,
                        created,
                    };
                    let credentials = user.map(|u| (u, std::env::var("PERISCOPE_PASSWORD").unwrap_or_default()));
                    let doc = query::remote_sbom(&server, request, credentials.as_ref()).await?;
                    let summary = format!("{} bytes from {server}", doc.len());
                    (doc, summary)
                }
            };
            match output {
                Some(path) => std::fs::write(&path, doc).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?,
                None => std::io::Write::write_all(&mut std::io::stdout().lock(), &doc)?,
            }
            eprintln!("periscope: sbom of {summary}");
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Quickstart { data, root } => {
            let data = data.unwrap_or_else(quickstart::default_data_dir);
            quickstart::run(data, root, &mut std::io::stdout()).await?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Report { cmd } => report(cmd).await,
        Cmd::Agents { cmd } => agents(cmd),
        Cmd::Vulns { cmd } => vulns(cmd),
    }
}

async fn report(cmd: ReportCmd) -> anyhow::Result<ExitCode> {
    use periscope_report::{self as report, pack, render, run};
    match cmd {
        ReportCmd::Check { packs, pack_dir } => {
            let mut bad = 0;
            for name in packs {
                let p = pack::load_source(&pack::find(&name, pack_dir.as_deref()), &Default::default()).await;
                let problems: Vec<_> = p.all_problems().collect();
                for problem in &problems {
                    eprintln!("{problem}");
                }
                let runnable = p.checks.iter().filter(|c| c.problem.is_none()).count();
                println!(
                    "{}: {} checks, {runnable} runnable, {} problems",
                    p.path.display(),
                    p.checks.len(),
                    problems.len()
                );
                bad += problems.len();
            }
            Ok(if bad == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        ReportCmd::Run {
            pack,
            packs,
            data,
            server,
            user,
            format,
            out,
            fail_on,
            timeout_secs,
            history,
            no_store,
            webhook,
            params,
        } => {
            let source = pack::find(&pack, packs.as_deref());
            if let pack::Source::File(path) = &source
                && !path.is_file()
            {
                let builtin: Vec<&str> = pack::BUILTIN.iter().map(|(n, _)| *n).collect();
                anyhow::bail!(
                    "no pack {pack:?}: {} is not a file, nor a compiled-in pack ({})",
                    path.display(),
                    builtin.join(", ")
                );
            }
            let overrides =
                params.iter().map(|p| pack::parse_param(p)).collect::<Result<_, _>>().map_err(anyhow::Error::msg)?;
            let loaded = pack::load_source(&source, &overrides).await;
            let (target, history) = match &data {
                Some(dir) => {
                    if !dir.join("tables").is_dir() {
                        anyhow::bail!("{} is not a Periscope data directory (no tables/ inside)", dir.display());
                    }
                    let t = run::Target::data(dir).await?;
                    (t, history.or_else(|| Some(dir.join(report::REPORTS_DIR))))
                }
                None => {
                    let url = server.unwrap_or_else(|| "http://127.0.0.1:7700".into());
                    let credentials = user.map(|u| (u, std::env::var("PERISCOPE_PASSWORD").unwrap_or_default()));
                    // Unreachable is the operator's problem, not every check's: say so once.
                    query::remote(&url, "SELECT 1", credentials.as_ref(), |_| {}).await?;
                    (run::Target::Remote { url, credentials }, history)
                }
            };
            let opts = run::RunOptions {
                timeout: std::time::Duration::from_secs(timeout_secs),
                history: history.clone(),
                store: !no_store,
                ..Default::default()
            };
            let r = run::run(&loaded, &target, &opts).await;
            let stored = if no_store { None } else { history.as_deref() };
            if let Some(out) = &out {
                report::write_files(&r, stored, out).await?;
            }
            let stdout = &mut std::io::stdout().lock();
            match format {
                ReportFormat::Table => render::table(&r, stdout)?,
                ReportFormat::Json => render::json(&r, stdout)?,
                ReportFormat::Csv => render::csv(&r, stdout)?,
                ReportFormat::Junit => render::junit(&r, stdout)?,
                ReportFormat::Html => {
                    let trend = report::trend(&r, stored).await?;
                    std::io::Write::write_all(stdout, report::html::render(&r, &trend).as_bytes())?;
                }
            }
            if let Some(url) = &webhook {
                report::post_webhook(url, &r).await?;
            }
            if let Some(sev) = fail_on {
                let gate = r.gate(sev);
                if !gate.is_empty() {
                    eprintln!("periscope: report {}: {} at or above {sev}: {}", r.run_id, gate.len(), gate.join("; "));
                    return Ok(ExitCode::from(GATE_FAILED));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
