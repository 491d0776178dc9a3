//! `periscope-agent run`: crawls the host and every container and image on it
//! each interval, and in between crawls each container or image a Docker
//! event names, so a container that starts and dies between two full crawls
//! is still crawled (through /proc/<pid>/root while it runs, through its
//! layers once it stopped). The next full crawl reconciles whatever an event
//! missed.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use periscope_proto::tables::scope;
use tokio::sync::mpsc;

use crate::changes::{Reduced, Tracker};
use crate::crawl::{Crawl, CrawlOptions, RuntimeMode, crawl_async, crawl_docker_change, hostname};
use crate::discover::docker;

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub server: String,
    /// Time between full crawls.
    pub interval: Duration,
    /// Up to this much random delay added to each interval, so a fleet's
    /// agents do not all crawl and send in the same second.
    pub splay: Duration,
    /// One full crawl and send, then exit.
    pub once: bool,
    pub crawl: CrawlOptions,
}

/// A random duration below `max`, from the clock's low bits (no RNG needed for splay).
fn jitter(max: Duration) -> Duration {
    let n = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos() as u64).unwrap_or(0);
    let max_ms = max.as_millis() as u64;
    if max_ms == 0 { Duration::ZERO } else { Duration::from_millis(n.wrapping_mul(2654435761) % max_ms) }
}

/// Sends `crawls` change-only and remembers what the server acknowledged;
/// prints one summary line. A failed send changes nothing: the next crawl
/// sends those tables again.
async fn send(server: &str, agent_id: &str, tracker: &mut Tracker, what: &str, crawls: &[Crawl]) -> bool {
    let mut r = Reduced::default();
    for c in crawls {
        r.extend(tracker.reduce(c));
    }
    match crate::send::send(server, agent_id, &r.batches).await {
        Ok(report) => {
            eprintln!(
                "periscope-agent: {what}: {} scope(s), {} table(s) sent, {} unchanged, {} rows, {} bytes",
                crawls.len(),
                r.tables_sent,
                r.tables_unchanged,
                report.rows,
                report.bytes
            );
            tracker.commit(r);
            true
        }
        Err(e) => {
            eprintln!("periscope-agent: {what}: send failed: {e}");
            false
        }
    }
}

/// Forwards Docker events into `tx`, reconnecting with exponential backoff
/// when the engine goes away; ends when the receiver is gone.
async fn watch_docker(tx: mpsc::Sender<docker::Change>) {
    let mut backoff = Duration::from_secs(1);
    loop {
        match docker::connect(Duration::from_secs(30)).await {
            Ok(d) => {
                tracing::info!("watching Docker events");
                let mut events = std::pin::pin!(docker::events(&d));
                while let Some(e) = events.next().await {
                    match e {
                        Ok(change) => {
                            backoff = Duration::from_secs(1);
                            if tx.send(change).await.is_err() {
                                return;
                            }
                        }
                        Err(e) => {
                            tracing::warn!("Docker event stream: {e}");
                            break;
                        }
                    }
                }
            }
            Err(e) => tracing::warn!("{e}"),
        }
        if tx.is_closed() {
            return;
        }
        tokio::time::sleep(backoff + jitter(backoff / 2)).await;
        backoff = (backoff * 2).min(Duration::from_secs(60));
    }
}

/// Runs until the future returns (or after one crawl with `once`).
pub async fn run(opts: RunOptions) -> anyhow::Result<()> {
    let host = opts.crawl.host.clone().unwrap_or_else(hostname);
    let live = opts.crawl.scope == scope::HOST && opts.crawl.root == std::path::Path::new("/");
    let watch = match opts.crawl.docker {
        RuntimeMode::Off => false,
        RuntimeMode::On => true,
        RuntimeMode::Auto => live && docker::configured(),
    } && !opts.once;
    let (tx, mut rx) = mpsc::channel::<docker::Change>(4096);
    // Event crawls look the named object up through their own connection; the
    // watcher reconnects on its own when the engine restarts.
    let docker = if watch {
        tokio::spawn(watch_docker(tx));
        docker::connect(Duration::from_secs(30)).await.ok()
    } else {
        drop(tx);
        None
    };
    let mut tracker = Tracker::default();
    loop {
        let crawls = crawl_async(opts.crawl.clone()).await?;
        let sent = send(&opts.server, &host, &mut tracker, "full crawl", &crawls).await;
        if opts.once {
            anyhow::ensure!(sent, "the crawl could not be sent to {}", opts.server);
            return Ok(());
        }
        let deadline = tokio::time::Instant::now() + opts.interval + jitter(opts.splay);
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => break,
                Some(change) = rx.recv() => {
                    // Several events for one object in a burst (start, then die) are crawled in
                    // order: the last crawl is what it looks like now.
                    let docker = match &docker {
                        Some(d) => d.clone(),
                        None => match docker::connect(Duration::from_secs(30)).await {
                            Ok(d) => d,
                            Err(e) => { tracing::warn!("{e}"); continue }
                        },
                    };
                    if let Some(c) = crawl_docker_change(&opts.crawl, &docker, &change).await {
                        let what = format!("event crawl of {} {}", c.common.scope, c.common.scope_id);
                        send(&opts.server, &host, &mut tracker, &what, std::slice::from_ref(&c)).await;
                    }
                }
            }
        }
    }
}
