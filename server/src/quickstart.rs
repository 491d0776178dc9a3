//! `periscope quickstart`: the whole pipeline on this machine, no external
//! service. Starts the server in-process on a loopback port, crawls this
//! machine with the agent library, sends over real gRPC, then asks SQL.

use std::io::Write;
use std::path::PathBuf;

use periscope_agent::crawl::{CrawlOptions, crawl_async, hostname};
use tokio::sync::oneshot;

use crate::output::{self, Format};
use crate::serve;
use periscope_query::query;

/// The example questions the quickstart asks and prints.
pub const EXAMPLES: &[&str] = &[
    "SELECT name, version FROM packages WHERE name = 'bash'",
    "SELECT manager, count(*) AS packages FROM packages GROUP BY manager ORDER BY packages DESC, manager",
    "SELECT name, version, installed_size / 1024 AS size_kib FROM packages ORDER BY installed_size DESC, name LIMIT 5",
];

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Default data directory: `$XDG_DATA_HOME/periscope/quickstart`.
pub fn default_data_dir() -> PathBuf {
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("periscope").join("quickstart")
}

pub async fn run(data: PathBuf, root: PathBuf, out: &mut (impl Write + Send)) -> anyhow::Result<()> {
    periscope_report::install();
    periscope_vulns::install();
    std::fs::create_dir_all(&data)?;
    let listener = serve::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(serve::serve(data.clone(), listener, async {
        let _ = stopped.await;
    }));
    writeln!(out, "Periscope quickstart: server on {url}, data in {}", data.display())?;

    let opts = CrawlOptions { root: root.clone(), inherit: true, ..Default::default() };
    let crawls = crawl_async(opts).await?;
    let batches: Vec<_> = crawls.iter().flat_map(|c| c.batches.to_vec()).collect();
    let report = periscope_agent::send::send(&url, &hostname(), &batches).await?;
    let c = &crawls[0];
    let scope = format!("host = {} AND scope_id = {}", quote(&c.common.host), quote(&c.common.scope_id));

    let (_, os) = query::remote(&url, &format!("SELECT pretty_name FROM os WHERE {scope}"), None, |_| {}).await?;
    let os_name = os
        .first()
        .filter(|b| b.num_rows() > 0)
        .map(|b| arrow_cast::display::array_value_to_string(b.column(0), 0))
        .transpose()?
        .unwrap_or_else(|| "unknown (no os-release)".into());
    // OS packages and each application ecosystem's (pypi, npm, golang, …), largest first.
    let by_manager =
        format!("SELECT manager, count(*) AS n FROM packages WHERE {scope} GROUP BY manager ORDER BY n DESC, manager");
    let (_, counts) = query::remote(&url, &by_manager, None, |_| {}).await?;
    let (mut total, mut parts) = (0u64, Vec::new());
    for b in &counts {
        for i in 0..b.num_rows() {
            let manager = arrow_cast::display::array_value_to_string(b.column(0), i)?;
            let n = arrow_cast::display::array_value_to_string(b.column(1), i)?;
            total += n.parse::<u64>().unwrap_or(0);
            parts.push(format!("{manager} {n}"));
        }
    }
    let packages = if parts.is_empty() { "0".to_string() } else { format!("{total} ({})", parts.join(", ")) };
    writeln!(out, "Crawled {} (root {}, scope id {})", c.common.host, root.display(), c.common.scope_id)?;
    writeln!(out, "  OS:          {os_name}")?;
    writeln!(out, "  packages:    {packages}")?;
    writeln!(out, "  crawl errors: {}", c.errors)?;
    if crawls.len() > 1 {
        let count = |kind: &str| crawls[1..].iter().filter(|c| c.common.scope == kind).count();
        writeln!(
            out,
            "  also crawled: {} containers and {} images (running, stopped and unused)",
            count("container"),
            count("image")
        )?;
    }
    writeln!(
        out,
        "  sent:        {} rows in {} batches, {} bytes of Arrow IPC, all acknowledged",
        report.rows, report.batches, report.bytes
    )?;

    let mut examples: Vec<String> = EXAMPLES.iter().map(|s| s.to_string()).collect();
    if c.errors > 0 {
        examples.push(format!("SELECT collector, path, message FROM crawl_errors WHERE {scope}"));
    }
    for sql in &examples {
        writeln!(out, "\nperiscope sql \"{sql}\"")?;
        let (schema, batches) = query::remote(&url, sql, None, |_| {}).await?;
        output::write(Format::Table, &schema, &batches, out)?;
    }
    writeln!(out, "\nAsk your own: periscope sql --data {} \"SELECT * FROM packages LIMIT 10\"", data.display())?;
    let _ = stop.send(());
    server.await??;
    Ok(())
}
