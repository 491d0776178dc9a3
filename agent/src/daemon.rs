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
use crate::crawl::{Crawl, CrawlOptions, crawl_discovered, crawl_docker_change, discover};
use crate::discover::docker;
use crate::spool::Spool;

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
    /// Where batches wait until the server acknowledges them.
    pub spool_dir: std::path::PathBuf,
    /// Spool size limit; the oldest batches are evicted beyond it.
    pub spool_max_bytes: u64,
    /// The fleet's enroll secret, for servers that require enrollment.
    pub enroll_secret: Option<String>,
    /// Memory ceiling; None: 80% of the agent's cgroup limit, else 512 MiB.
    pub memory_limit: Option<u64>,
    /// CPU niceness to run at.
    pub nice: i32,
    /// Every this many full crawls, resend every table even if unchanged
    /// (0: never), so a server that lost data is made whole again.
    pub resend_every: u64,
    pub crawl: CrawlOptions,
    /// Told ready once the first full crawl is spooled (`/readyz`).
    pub telemetry: Option<std::sync::Arc<periscope_telemetry::Telemetry>>,
}

/// A random duration below `max`, from the clock's low bits (no RNG needed for splay).
fn jitter(max: Duration) -> Duration {
    let n = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos() as u64).unwrap_or(0);
    let max_ms = max.as_millis() as u64;
    if max_ms == 0 { Duration::ZERO } else { Duration::from_millis(n.wrapping_mul(2654435761) % max_ms) }
}

/// Where sending stands: change tracking, numbering, and the spool.
struct Outbox {
    server: String,
    agent_id: String,
    epoch: u64,
    seq: u64,
    tracker: Tracker,
    spool: Spool,
    /// Images whose inventory this agent spooled: never crawled again (an image id names fixed content).
    images_sent: std::collections::HashSet<String>,
    /// Images the server said it has the inventory of, from any host.
    images_stored: std::collections::HashSet<String>,
    /// Stopped containers this agent spooled, with their keys (see `Discovery::stopped_keys`):
    /// not crawled again while the key holds.
    stopped_sent: std::collections::HashMap<String, String>,
    /// Keys of the stopped containers being crawled now, remembered once spooled.
    stopped_now: std::collections::HashMap<String, String>,
    /// What each scope's collectors' inputs looked like at the last spooled crawl.
    fingerprints: crate::fingerprint::Fingerprints,
    /// The fleet's enroll secret, when the server requires enrollment.
    enroll_secret: Option<String>,
    /// This agent's node key, kept in `key_file` across restarts.
    node_key: Option<String>,
    key_file: std::path::PathBuf,
}

/// What one send did.
#[derive(Debug, Clone, Copy, Default)]
struct Sent {
    /// The spool is empty: everything reached the server.
    delivered: bool,
    rows: usize,
    bytes: usize,
    /// Scopes that could not be spooled (see [`Outbox::send`]).
    skipped: usize,
}

/// What [`Outbox::spool_crawls`] spooled.
#[derive(Debug, Default)]
struct Spooled {
    rows: usize,
    bytes: usize,
    sent: usize,
    unchanged: usize,
    unread: usize,
}

impl Spooled {
    fn add(&mut self, o: Spooled) {
        self.rows += o.rows;
        self.bytes += o.bytes;
        self.sent += o.sent;
        self.unchanged += o.unchanged;
        self.unread += o.unread;
    }
}

/// The agent's own health, kept between full crawls for the `agents` row.
#[derive(Debug, Default)]
struct Health {
    started_us: i64,
    crawls: i64,
    last_crawl_ms: i64,
    last: Sent,
    errors: i64,
    rss: Option<u64>,
    memory_limit: u64,
    nice: i64,
    degraded: bool,
}

impl Health {
    /// The `agents` row, as a batch of `c`'s scope.
    fn batch(&self, c: &Crawl, interval: Duration, spool: &Spool) -> Vec<arrow_array::RecordBatch> {
        use crate::encode::Value;
        let mut sink = crate::collectors::Sink::new(c.common.clone());
        let i = |v: i64| Value::Int(v);
        sink.row(
            &periscope_proto::tables::AGENTS,
            &[
                ("agent_version", crate::crawl::AGENT_VERSION.into()),
                ("started", i(self.started_us)),
                ("interval_seconds", i(interval.as_secs() as i64)),
                ("crawls", i(self.crawls)),
                ("last_crawl_ms", i(self.last_crawl_ms)),
                ("last_rows_sent", i(self.last.rows as i64)),
                ("last_bytes_sent", i(self.last.bytes as i64)),
                ("spool_batches", i(spool.depth() as i64)),
                ("spool_bytes", i(spool.bytes() as i64)),
                ("spool_evicted", i(spool.evicted as i64)),
                ("errors", i(self.errors)),
                ("rss_bytes", self.rss.map(|r| r as i64).into()),
                ("memory_limit_bytes", i(self.memory_limit as i64)),
                ("nice", i(self.nice)),
                ("degraded", self.degraded.into()),
            ],
        );
        sink.finish()
    }
}

/// Most bytes of spooled batches sent on one stream.
const DRAIN_CHUNK_BYTES: u64 = 32 << 20;

impl Outbox {
    /// Spools `crawls` change-only, then drains the spool to the server;
    /// prints one summary line. A crawl that cannot be spooled (its spill
    /// file cannot be read back, the spool cannot be written) is skipped
    /// and said so: the daemon goes on, and the next crawl sends its scope.
    /// The crawls (their rows, spill files and all) are dropped once spooled,
    /// before delivery and the wait for the next crawl.
    async fn send(&mut self, what: &str, crawls: Vec<Crawl>) -> Sent {
        let (s, skipped) = self.spool_or_skip(what, &crawls);
        let scopes = crawls.len();
        drop(crawls);
        let delivered = self.drain().await;
        crate::metrics::sent(s.rows, s.bytes);
        if delivered.is_err() {
            crate::metrics::send_failed();
        }
        crate::metrics::METRICS.spool_batches.set(self.spool.depth() as i64);
        crate::metrics::METRICS.spool_evicted.set(self.spool.evicted as i64);
        let status = match &delivered {
            Ok(()) => "delivered".to_string(),
            Err(e) => format!("delivery failed: {e}"),
        };
        let skipped_text = if skipped > 0 { format!(" ({skipped} skipped)") } else { String::new() };
        eprintln!(
            "periscope-agent: {what}: {} scope(s){skipped_text}, {} table(s) sent, {} unchanged ({} not re-read), {} rows, {} bytes; {status}; spool {} batch(es), {} evicted",
            scopes,
            s.sent,
            s.unchanged,
            s.unread,
            s.rows,
            s.bytes,
            self.spool.depth(),
            self.spool.evicted,
        );
        Sent { delivered: delivered.is_ok(), rows: s.rows, bytes: s.bytes, skipped }
    }

    /// Spools `crawls`; when that fails, each alone, skipping the ones that
    /// fail again: one crawl's failure must not cost the others theirs.
    /// What was spooled, and how many crawls were skipped.
    fn spool_or_skip(&mut self, what: &str, crawls: &[Crawl]) -> (Spooled, usize) {
        let skip = |c: &Crawl, e: anyhow::Error| {
            eprintln!("periscope-agent: {what}: {} {} skipped: {e:#}", c.common.scope, c.common.scope_id);
        };
        match self.spool_crawls(crawls) {
            Ok(s) => return (s, 0),
            Err(e) if crawls.len() == 1 => {
                skip(&crawls[0], e);
                return (Spooled::default(), 1);
            }
            Err(e) => tracing::warn!("{what}: spooling failed ({e:#}); spooling each scope alone"),
        }
        let (mut s, mut skipped) = (Spooled::default(), 0);
        for c in crawls {
            match self.spool_crawls(std::slice::from_ref(c)) {
                Ok(x) => s.add(x),
                Err(e) => {
                    skip(c, e);
                    skipped += 1;
                }
            }
        }
        (s, skipped)
    }

    /// Spools `crawls` change-only and remembers what the server will have.
    /// On an error nothing of them stays in the spool and nothing is
    /// remembered (digests, fingerprints, images): they are sent in full next time.
    fn spool_crawls(&mut self, crawls: &[Crawl]) -> anyhow::Result<Spooled> {
        let mut r = Reduced::default();
        for c in crawls {
            r.extend(self.tracker.reduce(c));
        }
        // Merged, encoded and spooled one batch at a time: spilled rows are
        // read back as they go, never all at once.
        let (mut rows, mut bytes) = (0usize, 0usize);
        let seq_before = self.seq;
        let (agent_id, epoch, seq) = (&self.agent_id, self.epoch, &mut self.seq);
        let mut spool = self.spool.writer();
        let spooled = crate::changes::coalesce_into(std::mem::take(&mut r.parts), |b| {
            let m = crate::send::number_one(agent_id, epoch, seq, &b)?;
            tracing::debug!(table = %m.table, rows = m.rows, bytes = m.arrow_ipc.len(), "batch");
            rows += b.num_rows();
            bytes += m.arrow_ipc.len();
            Ok(spool.write(&m)?)
        });
        if let Err(e) = spooled {
            // Its batches taken back, their numbers are free again: the server sees no gap.
            let undone = spool.abandon();
            self.seq = seq_before;
            if let Err(u) = undone {
                tracing::warn!("spool: cannot sync after taking batches back: {u}");
            }
            return Err(e);
        }
        let evicted = spool.finish()?;
        let s = Spooled { rows, bytes, sent: r.tables_sent, unchanged: r.tables_unchanged, unread: r.tables_unread };
        if evicted > 0 {
            // The server may now lack rows that unchanged markers would point at: resend everything next time.
            self.forget();
        } else {
            for c in crawls {
                let key = crate::fingerprint::scope_key(&c.common);
                self.fingerprints.retain(|(k, _), _| *k != key);
                if c.complete {
                    self.fingerprints.extend(c.fingerprints.iter().map(|(col, fp)| ((key.clone(), *col), *fp)));
                }
            }
            // An image read in full is never read again; one that could not be is retried.
            let images = crawls.iter().filter(|c| c.common.scope == scope::IMAGE && c.complete);
            self.images_sent.extend(images.map(|c| c.common.scope_id.clone()));
            for c in crawls.iter().filter(|c| c.errors == 0) {
                if let Some(k) = self.stopped_now.remove(&c.common.scope_id) {
                    self.stopped_sent.insert(c.common.scope_id.clone(), k);
                }
            }
            // Spooled is as good as sent: the spool delivers it, in order.
            self.tracker.commit(r);
        }
        Ok(s)
    }

    /// Forgets what the server has, so that the next crawl reads and sends everything.
    fn forget(&mut self) {
        self.tracker = Tracker::default();
        self.images_sent.clear();
        self.images_stored.clear();
        self.stopped_sent.clear();
        self.fingerprints.clear();
    }

    /// The node key to send with, enrolling first when there is none yet.
    async fn node_key(&mut self) -> Result<Option<String>, crate::send::SendError> {
        let Some(secret) = &self.enroll_secret else { return Ok(None) };
        if self.node_key.is_none() {
            self.node_key = std::fs::read_to_string(&self.key_file).ok().map(|k| k.trim().to_string());
        }
        if self.node_key.is_none() {
            let key = crate::send::enroll(&self.server, &self.agent_id, secret).await?;
            if let Err(e) = write_private(&self.key_file, &key) {
                tracing::warn!("cannot keep the node key in {}: {e}", self.key_file.display());
            }
            eprintln!("periscope-agent: enrolled as {}", self.agent_id);
            self.node_key = Some(key);
        }
        Ok(self.node_key.clone())
    }

    /// After the server refused the node key (unknown, expired): forget it, so the next call enrolls again.
    fn forget_key(&mut self, e: &crate::send::SendError) {
        if matches!(e, crate::send::SendError::Unauthenticated { .. }) && self.enroll_secret.is_some() {
            self.node_key = None;
            let _ = std::fs::remove_file(&self.key_file);
        }
    }

    /// Images not to crawl: the ones this agent sent, and the ones the
    /// server has from any host or another agent is crawling. When the
    /// server cannot be asked, only the first.
    async fn images_to_skip(&mut self, ids: Vec<String>) -> std::collections::HashSet<String> {
        let mut skip: std::collections::HashSet<String> =
            ids.iter().filter(|i| self.images_sent.contains(*i)).cloned().collect();
        let ask: Vec<String> = ids.into_iter().filter(|i| !skip.contains(i)).collect();
        if !ask.is_empty() {
            let key = match self.node_key().await {
                Ok(k) => k,
                Err(e) => {
                    tracing::info!("crawling every new image: {e}");
                    return skip;
                }
            };
            match crate::send::images_to_skip(&self.server, key.as_deref(), &self.agent_id, ask).await {
                Ok(a) => {
                    skip.extend(a.skip);
                    self.images_stored.extend(a.stored);
                }
                Err(e) => {
                    self.forget_key(&e);
                    tracing::info!("crawling every new image: {e}");
                }
            }
        }
        skip
    }

    /// Images whose inventory the server has or will have from this agent's
    /// spool: containers of these may send `inherited` rows.
    fn inheritable(&self) -> std::collections::HashSet<String> {
        self.images_sent.union(&self.images_stored).cloned().collect()
    }

    /// Sends spooled batches oldest first, removing each once acknowledged.
    async fn drain(&mut self) -> Result<(), crate::send::SendError> {
        let mut enrolled_again = false;
        loop {
            let chunk = self.spool.peek(DRAIN_CHUNK_BYTES);
            if chunk.is_empty() {
                return Ok(());
            }
            let (ns, msgs): (Vec<u64>, Vec<_>) = chunk.into_iter().unzip();
            let key = self.node_key().await?;
            let spool = &mut self.spool;
            if let Err(e) = crate::send::send_numbered(&self.server, key.as_deref(), msgs, |i| {
                crate::metrics::acknowledged(1);
                spool.remove(ns[i])
            })
            .await
            {
                let had_key = self.node_key.is_some();
                self.forget_key(&e);
                // A stale node key (expired, or from another server): enroll again once, right away.
                if had_key && self.node_key.is_none() && !enrolled_again {
                    enrolled_again = true;
                    continue;
                }
                return Err(e);
            }
        }
    }
}

/// Writes a secret readable by its owner only, atomically.
fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
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
    let host = opts.crawl.host_name();
    let watch = opts.crawl.docker.wanted(opts.crawl.is_live(), docker::configured()) && !opts.once;
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
    let spool = Spool::open(&opts.spool_dir, opts.spool_max_bytes)
        .map_err(|e| anyhow::anyhow!("spool {}: {e}", opts.spool_dir.display()))?;
    // Crawls spill their rows next to the spool: a directory known writable and on disk.
    crate::rows::set_spill_dir(&opts.spool_dir);
    // Scopes the last run died crawling are left unread for a while (see `quarantine`).
    match crate::quarantine::Quarantine::open(&opts.spool_dir.join("crawling")) {
        Ok((q, left)) => {
            for (key, since) in left {
                eprintln!(
                    "periscope-agent: the last run stopped while crawling {key} (at {since}, Unix time); it is left unread for {} s",
                    crate::quarantine::PERIOD.as_secs()
                );
            }
            crate::quarantine::install(q);
        }
        Err(e) => tracing::warn!("no crawl markers (a scope that kills the agent will be crawled again at once): {e}"),
    }
    if spool.depth() > 0 {
        eprintln!("periscope-agent: {} batch(es) left in the spool by a previous run", spool.depth());
    }
    let mut out = Outbox {
        server: opts.server.clone(),
        agent_id: host.clone(),
        epoch: crate::send::new_epoch(),
        seq: 0,
        tracker: Tracker::default(),
        spool,
        images_sent: Default::default(),
        images_stored: Default::default(),
        stopped_sent: Default::default(),
        stopped_now: Default::default(),
        fingerprints: Default::default(),
        enroll_secret: opts.enroll_secret.clone(),
        node_key: None,
        key_file: opts.spool_dir.join("node_key"),
    };
    let mut health = Health {
        started_us: SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or(0),
        memory_limit: opts.memory_limit.unwrap_or_else(crate::limits::default_memory_limit),
        nice: crate::limits::set_nice(opts.nice) as i64,
        ..Default::default()
    };
    let mut n = 0u64;
    loop {
        n += 1;
        if opts.resend_every > 0 && n.is_multiple_of(opts.resend_every) {
            out.forget();
            // Files are read again too (not on a spool eviction: what was read has not changed).
            crate::collectors::embedded::forget_examined();
        }
        // Over the memory ceiling after the last crawl: this one skips the optional collectors.
        health.degraded = health.rss.is_some_and(|r| r > health.memory_limit);
        let mut crawl_opts = opts.crawl.clone();
        if health.degraded {
            let all = crate::collectors::COLLECTORS.iter().map(|c| c.name.to_string()).collect::<Vec<_>>();
            let wanted = crawl_opts.collectors.clone().unwrap_or(all);
            crawl_opts.collectors = Some(
                wanted.into_iter().filter(|c| !crate::limits::OPTIONAL_COLLECTORS.contains(&c.as_str())).collect(),
            );
            eprintln!(
                "periscope-agent: {} bytes resident, over the {} byte ceiling: skipping {:?} this crawl",
                health.rss.unwrap_or(0),
                health.memory_limit,
                crate::limits::OPTIONAL_COLLECTORS
            );
        }
        crawl_opts.fingerprints = Some(std::sync::Arc::new(out.fingerprints.clone()));
        let started = std::time::Instant::now();
        let found = discover(&crawl_opts).await;
        let mut skip = out.images_to_skip(found.image_ids()).await;
        out.stopped_now.clear();
        for (id, key) in found.stopped_keys() {
            if out.stopped_sent.get(&id) == Some(&key) {
                skip.insert(id);
            } else {
                out.stopped_now.insert(id, key);
            }
        }
        let mut crawls = crawl_discovered(crawl_opts, found, &skip, &out.inheritable()).await?;
        health.crawls = n as i64;
        if let Some(first) = crawls.first_mut() {
            // The health row joins the first scope's crawl, before its completion marker.
            let rows = health.batch(first, opts.interval, &out.spool);
            first.add_rows(rows);
        }
        let errors = crawls.iter().map(|c| c.errors as i64).sum();
        let sent = out.send("full crawl", crawls).await;
        health.last_crawl_ms = started.elapsed().as_millis() as i64;
        health.last = sent;
        health.errors = errors;
        health.rss = crate::limits::rss_bytes();
        crate::metrics::crawled("full", started.elapsed());
        let m = &crate::metrics::METRICS;
        m.resident_bytes.set(health.rss.unwrap_or(0) as i64);
        m.degraded.set(health.degraded as i64);
        if let Some(t) = &opts.telemetry {
            // Ready once a crawl is spooled: delivery may wait for the server, and the spool keeps it.
            t.set_ready(sent.skipped == 0);
        }
        if opts.once {
            anyhow::ensure!(sent.skipped == 0, "{} scope(s) of the crawl could not be spooled", sent.skipped);
            anyhow::ensure!(sent.delivered, "the crawl is spooled but could not be delivered to {}", opts.server);
            return Ok(());
        }
        let deadline = tokio::time::Instant::now() + opts.interval + jitter(opts.splay);
        // While batches wait in the spool, retry delivery with exponential backoff and jitter.
        let mut backoff = Duration::from_secs(1);
        let mut retry_at = tokio::time::Instant::now() + backoff;
        loop {
            let retry = out.spool.depth() > 0 && retry_at < deadline;
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => break,
                _ = tokio::time::sleep_until(retry_at), if retry => {
                    match out.drain().await {
                        Ok(()) => eprintln!("periscope-agent: spool drained"),
                        Err(e) => tracing::info!("spool: {} batch(es) wait: {e}", out.spool.depth()),
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(60));
                    retry_at = tokio::time::Instant::now() + backoff + jitter(backoff / 2);
                }
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
                    let started = std::time::Instant::now();
                    if let Some(c) = crawl_docker_change(&opts.crawl, &docker, &change, &out.inheritable()).await {
                        let what = format!("event crawl of {} {}", c.common.scope, c.common.scope_id);
                        out.send(&what, vec![c]).await;
                        crate::metrics::crawled("event", started.elapsed());
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::Sink;
    use periscope_proto::tables::PACKAGE_FILES;

    fn crawl(id: &str, spilled: bool) -> Crawl {
        let common =
            crate::encode::Common { host: "h".into(), scope: "image".into(), scope_id: id.into(), crawl_time_us: 1 };
        let mut sink = Sink::new(common.clone());
        for i in 0..100 {
            sink.row(
                &PACKAGE_FILES,
                &[("manager", "dpkg".into()), ("package", "p".into()), ("path", format!("/f{i}").as_str().into())],
            );
        }
        let mut batches = crate::rows::Rows::new();
        for b in sink.finish() {
            batches.push_within(b, if spilled { 0 } else { usize::MAX });
        }
        Crawl {
            rows: batches.num_rows(),
            batches,
            errors: 0,
            common,
            complete: true,
            root: "/".into(),
            duration_ms: 0,
            fingerprints: Vec::new(),
            unread: Vec::new(),
        }
    }

    /// A spill file that could not be read back made `send` fail, and the
    /// daemon stopped with part of a crawl spooled and no `crawls` marker.
    /// Now that crawl alone is skipped: none of its batches stay spooled,
    /// its digests are not remembered, and the others are spooled.
    #[test]
    fn a_spill_read_back_error_skips_that_crawl_alone() {
        let dir = tempfile::tempdir().unwrap();
        let mut out = Outbox {
            server: "http://127.0.0.1:9".into(),
            agent_id: "a".into(),
            epoch: 1,
            seq: 0,
            tracker: Tracker::default(),
            spool: Spool::open(dir.path(), 1 << 30).unwrap(),
            images_sent: Default::default(),
            images_stored: Default::default(),
            stopped_sent: Default::default(),
            stopped_now: Default::default(),
            fingerprints: Default::default(),
            enroll_secret: None,
            node_key: None,
            key_file: dir.path().join("node_key"),
        };
        let bad = crawl("bad", true);
        assert!(bad.batches.spilled() > 0);
        bad.batches.break_spill();
        let (s, skipped) = out.spool_or_skip("test", &[crawl("good", false), bad]);
        assert_eq!(skipped, 1);
        assert_eq!((s.sent, s.rows), (1, 100));
        // The good crawl's batches alone, numbered without a gap.
        assert_eq!(out.spool.depth() as u64, out.seq);
        assert_eq!(out.images_sent.iter().collect::<Vec<_>>(), ["good"]);
        // The bad one's table is sent in full next time; the good one's is unchanged.
        let (s, skipped) = out.spool_or_skip("test", &[crawl("good", false), crawl("bad", true)]);
        assert_eq!((s.sent, s.unchanged, skipped), (1, 1, 0));
        assert_eq!(
            std::fs::read_dir(dir.path())
                .unwrap()
                .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with('.'))
                .count(),
            0
        );
    }
}
