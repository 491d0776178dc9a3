//! The durable store.
//!
//! An agent's batch is acknowledged once its wire bytes are in the write-ahead
//! log ([`crate::wal`]), fsynced together with whatever else arrived meanwhile
//! (group commit). The decoded rows wait in memory, where queries see them,
//! until a flush writes each table's buffered rows as one Parquet file per
//! day of their crawl_time (`tables/<table>/day=YYYY-MM-DD/wal-<n>.parquet`)
//! and retires the log segments they came from. So Parquet files are large
//! and few, whatever the number of agents; and each day is a partition that
//! time-bounded queries prune and retention drops.
//!
//! A flush commits atomically: its files are written under temporary names,
//! then, holding `store.lock` exclusively, renamed into place and sealed by the
//! marker `wal/flushed.json` (the first segment not yet in Parquet, and the
//! highest seq applied per agent and boot epoch up to there). A `wal-<n>` file
//! beyond the marker is an unfinished flush and is ignored, and removed on
//! open. Readers in other processes (`periscope sql --data`) hold the lock
//! shared and read the Parquet files plus the live log segments, so they see
//! every acknowledged row exactly once; engines without Periscope (DuckDB,
//! Spark) read the Parquet files, which hold everything up to the last flush,
//! and Delta readers the per-table log [`crate::delta`] keeps in step with them.
//!
//! Compaction merges a partition's small files, and retention rewrites old
//! partitions to the rows current state still reads; both swap files the same
//! atomic way (a record, then a rename under the lock) and delete the old ones
//! only when no snapshot reads them. The current-state index
//! ([`crate::current`]) is updated as rows become visible.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use periscope_proto::tables::{TABLES, Table};

use crate::current::{Index, Pending};
use crate::rows::{conform, decode_batch};
use crate::wal::{self, Record, Segment};

/// Current state from what a snapshot would show: these files, then these buffered rows.
fn build_index(files: &FileSet, buffer: &Buffer) -> Result<(Index, Pending), StoreError> {
    Index::build(&|t| files.get(t).to_vec(), &|t| buffer.get(t).cloned().unwrap_or_default())
        .map_err(StoreError::Failed)
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("data directory {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("writing parquet {path}: {source}")]
    Parquet { path: PathBuf, source: parquet::errors::ParquetError },
    #[error("data directory {0} is in use by another periscope server")]
    InUse(PathBuf),
    #[error("{0}")]
    Failed(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io { path: path.to_path_buf(), source }
}

/// When buffered rows are written out as Parquet.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Flush once this many bytes of decoded rows are buffered. Ingest waits
    /// while a full buffer is still being flushed, so the server holds at most
    /// about twice this in rows.
    pub flush_bytes: usize,
    /// Flush buffered rows at least this often, so other engines reading the
    /// Parquet files lag by at most this much.
    pub flush_interval: Duration,
    /// A host not crawled for this long leaves current state (with its
    /// containers); its rows stay in history.
    pub host_expiry: Duration,
    /// Merge a table's files smaller than `flush_bytes` once there are this
    /// many (0: never).
    pub compact_files: usize,
    /// Keep history this long (None: for ever): older day partitions are
    /// rewritten to hold only the rows current state still reads (a scope's
    /// latest crawl, the crawl an unchanged table points at, an image's).
    pub retention: Option<Duration>,
    /// How often retention runs, at the end of a flush (or of a flush
    /// interval with nothing to flush).
    pub retention_every: Duration,
    /// Scopes the current-state index may hold (0: no limit). Beyond it,
    /// rows of scopes it does not know are refused (agents keep them in their
    /// spool and retry), so the index's memory is bounded by this, not by the fleet.
    pub max_scopes: usize,
    /// Scopes one host may hold in the index, crawls in flight included (0:
    /// no limit): no agent can fill the index for the others.
    pub max_scopes_per_host: usize,
}

/// Default [`StoreConfig::max_scopes_per_host`]: far beyond a host's
/// containers and images, far below [`MAX_SCOPES`].
pub const MAX_SCOPES_PER_HOST: usize = 50_000;

/// A crawl whose `crawls` row has not arrived this long after its first rows
/// never will (agents send it right after its tables): its pending state goes.
pub const PENDING_TTL: Duration = Duration::from_secs(3600);

/// Default [`StoreConfig::host_expiry`]: a week.
pub const HOST_EXPIRY: Duration = Duration::from_secs(7 * 86_400);

/// Default [`StoreConfig::max_scopes`]: about 2.5 GB of index at the 624
/// bytes per scope `benches/fleet-query.sh` measures.
pub const MAX_SCOPES: usize = 4_000_000;

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            flush_bytes: 256 << 20,
            flush_interval: Duration::from_secs(60),
            host_expiry: HOST_EXPIRY,
            compact_files: 16,
            retention: None,
            retention_every: Duration::from_secs(3600),
            max_scopes: MAX_SCOPES,
            max_scopes_per_host: MAX_SCOPES_PER_HOST,
        }
    }
}

/// Highest seq applied per (agent, boot epoch). Agents number batches in
/// order and resend in order, so a seq at or below it is a repeat.
type Applied = HashMap<(String, u64), u64>;
type Buffer = BTreeMap<&'static str, Vec<RecordBatch>>;

#[derive(serde::Serialize, serde::Deserialize, Default)]
struct Marker {
    /// Segments numbered below this are in Parquet.
    through: u64,
    applied: Vec<(String, u64, u64)>,
}

/// The committed Parquet files of every table at one moment. Files a
/// compaction replaced are deleted once no snapshot holds this set or any
/// older one (which may list them too).
#[derive(Debug, Default)]
pub struct FileSet {
    pub tables: BTreeMap<&'static str, Vec<PathBuf>>,
    link: Arc<Link>,
}

/// A file set's place in the sequence of sets: each link keeps the next one
/// alive, so a link lives while its own set or any older one does.
#[derive(Debug, Default)]
struct Link {
    next: std::sync::OnceLock<Arc<Link>>,
    /// Set when a compaction replaced this set: its ticket in the retirement queue.
    retired: Mutex<Option<(Arc<Retirement>, u64)>>,
}

impl Drop for Link {
    fn drop(&mut self) {
        if let Some((queue, ticket)) = self.retired.get_mut().unwrap_or_else(|e| e.into_inner()).take() {
            // Deleting waits for readers in other processes (shared store lock): off the caller's thread.
            std::thread::spawn(move || queue.ready(ticket));
        }
    }
}

impl FileSet {
    fn new(tables: BTreeMap<&'static str, Vec<PathBuf>>) -> FileSet {
        FileSet { tables, link: Arc::default() }
    }

    /// The set that follows this one, with `tables`.
    fn succeed(&self, tables: BTreeMap<&'static str, Vec<PathBuf>>) -> FileSet {
        let link = Arc::new(Link::default());
        let _ = self.link.next.set(link.clone());
        FileSet { tables, link }
    }

    pub fn get(&self, table: &str) -> &[PathBuf] {
        self.tables.get(table).map(Vec::as_slice).unwrap_or_default()
    }
}

/// Files replaced by compactions, deleted strictly in the order the
/// compactions happened — each compaction's inputs, then its record — so a
/// record is never left whose output was deleted by a later compaction while
/// its own inputs remain (which would make them look live again).
#[derive(Debug)]
struct Retirement {
    data: PathBuf,
    queue: Mutex<(u64, std::collections::VecDeque<(u64, Vec<PathBuf>, bool)>)>,
}

impl Retirement {
    fn push(&self, doomed: Vec<PathBuf>) -> u64 {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        q.0 += 1;
        let ticket = q.0;
        q.1.push_back((ticket, doomed, false));
        ticket
    }

    fn ready(&self, ticket: u64) {
        {
            let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(item) = q.1.iter_mut().find(|i| i.0 == ticket) {
                item.2 = true;
            }
            if !q.1.front().is_some_and(|i| i.2) {
                return;
            }
        }
        // The flock first, with no mutex held (compaction takes the flock, then
        // the state and queue mutexes): no lock-order cycle.
        let Ok(lock) = lock_file(&self.data, "store.lock") else { return };
        if lock.lock().is_err() {
            return;
        }
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        while q.1.front().is_some_and(|i| i.2) {
            let (_, paths, _) = q.1.pop_front().expect("checked");
            for p in paths {
                if let Err(e) = fs::remove_file(&p)
                    && e.kind() != std::io::ErrorKind::NotFound
                {
                    tracing::warn!(file = %p.display(), "store: removing a compacted file: {e}");
                }
            }
        }
    }
}

/// Rows as of one moment: the Parquet files then visible and the rows not yet
/// flushed. Holds the shared store lock when read from another process.
pub struct Snapshot {
    pub files: Arc<FileSet>,
    pub batches: Buffer,
    /// See [`StoreConfig::host_expiry`].
    pub host_expiry: Duration,
    /// The data directory these rows are from (where tables owned by others,
    /// such as report runs, live beside them); None for a snapshot of none.
    pub dir: Option<PathBuf>,
    /// Current state as of these rows (see [`crate::current`]).
    pub index: Index,
    _guard: Option<File>,
}

impl Snapshot {
    /// No rows and no reports: the declared catalog only, e.g. to plan a query without running it.
    pub fn empty() -> Snapshot {
        Snapshot {
            files: Arc::default(),
            batches: Buffer::new(),
            host_expiry: HOST_EXPIRY,
            dir: None,
            index: Index::default(),
            _guard: None,
        }
    }
}

struct State {
    files: Arc<FileSet>,
    /// Current state of everything visible (files and buffers), and the rows of crawls still arriving.
    index: Index,
    pending: Pending,
    active: Buffer,
    active_bytes: usize,
    active_since: Option<Instant>,
    flushing: Option<Buffer>,
    /// `flushing`'s bytes and the time its oldest row arrived, taken from
    /// `active` when it rotated (for [`Store::stats`], without a pass over the rows).
    flushing_bytes: usize,
    flushing_since: Option<Instant>,
    flush_requested: bool,
    closing: bool,
    failed: Option<String>,
}

struct Shared {
    dir: PathBuf,
    config: StoreConfig,
    /// Each table's Delta log, kept in step with the committed files (see [`crate::delta`]).
    deltas: Mutex<BTreeMap<&'static str, crate::delta::DeltaLog>>,
    retirement: Arc<Retirement>,
    /// Id (time in ns) of the newest compaction, so ids only grow.
    last_compaction: std::sync::atomic::AtomicU64,
    /// Scopes in the index, as of the last change (read without the lock).
    scopes: std::sync::atomic::AtomicUsize,
    state: Mutex<State>,
    cond: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

type Reply = tokio::sync::oneshot::Sender<Result<u64, String>>;

/// See [`Store::stats`].
#[derive(Debug, Clone, Copy, Default)]
pub struct StoreStats {
    /// Acknowledged rows held in the log and in memory only, not yet in Parquet.
    pub unflushed_bytes: usize,
    /// Since when the oldest of them has waited.
    pub unflushed_age: std::time::Duration,
    /// A flush is writing Parquet now.
    pub flushing: bool,
    /// Scopes in the current-state index.
    pub scopes: usize,
    /// The store stopped accepting rows after a failure.
    pub failed: bool,
}

enum Cmd {
    Append {
        record: Record,
        table: &'static Table,
        batches: Vec<RecordBatch>,
        reply: Reply,
        /// Admission of these rows (see [`Store::submit`]), released once they are in the buffer.
        _permit: Option<tokio::sync::OwnedSemaphorePermit>,
        /// The new scopes these rows bring, counted against their host's quota until they are in the index.
        reserved: Option<Reservation>,
    },
    Rotate(mpsc::Sender<(u64, Applied)>),
}

/// New scopes of admitted batches, per host, until those batches are applied.
type Reserved = Arc<Mutex<HashMap<String, usize>>>;

/// A batch's new scopes, reserved against their hosts' quotas until dropped.
pub struct Reservation {
    map: Reserved,
    hosts: Vec<(String, usize)>,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        for (host, n) in &self.hosts {
            if let Some(r) = m.get_mut(host) {
                *r = r.saturating_sub(*n);
                if *r == 0 {
                    m.remove(host);
                }
            }
        }
    }
}

pub struct Store {
    shared: Arc<Shared>,
    reserved: Reserved,
    admission: Arc<tokio::sync::Semaphore>,
    admission_kib: u32,
    tx: Mutex<Option<mpsc::Sender<Cmd>>>,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
    _server_lock: File,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("dir", &self.shared.dir).finish()
    }
}

/// Whether every row has a crawl_time whose day partition can be named:
/// what the log's replay asks of records logged before [`check_crawl_times`] existed.
fn storable(batches: &[RecordBatch]) -> Result<(), String> {
    use arrow_array::Array;
    use arrow_array::cast::AsArray;
    for b in batches {
        let t = b.column(3).as_primitive::<arrow_array::types::TimestampMicrosecondType>();
        if t.null_count() > 0 {
            return Err("a row has no crawl_time".into());
        }
        if let Some(&bad) = t.values().iter().find(|&&us| day_name(us.div_euclid(DAY_US)).is_none()) {
            return Err(format!("crawl_time {bad} µs names no day partition"));
        }
    }
    Ok(())
}

/// Keeps what the store could not take, with why, under `<data>/quarantine/`
/// instead of retrying it for ever: a bad batch must never stop ingest for
/// the others. The files are Arrow IPC streams any Arrow reader opens.
fn quarantine(data: &Path, what: &str, why: &str, table: &Table, batches: &[RecordBatch]) {
    let dir = data.join(QUARANTINE_DIR);
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.6f");
    let name: String = format!("{stamp}-{}-{what}", table.name)
        .chars()
        .take(200)
        .map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' })
        .collect();
    let path = dir.join(format!("{name}.arrows"));
    let kept = fs::create_dir_all(&dir).map_err(|e| e.to_string()).and_then(|()| {
        let bytes = periscope_proto::ipc::encode(&table.schema(), batches).map_err(|e| e.to_string())?;
        fs::write(&path, bytes).map_err(|e| e.to_string())
    });
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    match kept {
        Ok(()) => tracing::error!(
            table = table.name,
            rows,
            file = %path.display(),
            "store: {what}: rows the store cannot take were quarantined: {why}"
        ),
        Err(e) => tracing::error!(
            table = table.name,
            rows,
            "store: {what}: rows the store cannot take were dropped ({e} keeping them): {why}"
        ),
    }
}

/// [`quarantine`] for a log record that does not even decode: its bytes as logged.
fn quarantine_bytes(data: &Path, what: &str, why: &str, table: &str, bytes: &[u8]) {
    let dir = data.join(QUARANTINE_DIR);
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.6f");
    let name: String = format!("{stamp}-{table}-{what}")
        .chars()
        .take(200)
        .map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' })
        .collect();
    let path = dir.join(format!("{name}.wire"));
    match fs::create_dir_all(&dir).and_then(|()| fs::write(&path, bytes)) {
        Ok(()) => {
            tracing::error!(file = %path.display(), "store: {what}: a record that does not decode was quarantined: {why}")
        }
        Err(e) => tracing::error!("store: {what}: a record that does not decode was dropped ({e} keeping it): {why}"),
    }
}

/// Where quarantined rows go, under the data directory.
pub const QUARANTINE_DIR: &str = "quarantine";

/// Memory a batch's rows hold: the bytes its arrays reference. Arrays decoded
/// from one IPC message share its allocation, which `get_array_memory_size`
/// counts again for every column (twenty times too much for a packages batch).
pub fn batch_bytes(b: &RecordBatch) -> usize {
    b.columns().iter().map(|c| c.to_data().get_slice_memory_size().unwrap_or_else(|_| c.get_array_memory_size())).sum()
}

/// Where a table's files live under a data directory.
pub fn table_dir(data: &Path, table: &Table) -> PathBuf {
    data.join("tables").join(table.name)
}

fn wal_dir(data: &Path) -> PathBuf {
    data.join("wal")
}

fn read_marker(data: &Path) -> Result<(u64, Applied), StoreError> {
    let path = wal_dir(data).join("flushed.json");
    let m: Marker = match fs::read(&path) {
        Ok(b) => serde_json::from_slice(&b).map_err(|e| StoreError::Failed(format!("{}: {e}", path.display())))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Marker::default(),
        Err(e) => return Err(io(&path)(e)),
    };
    Ok((m.through, m.applied.into_iter().map(|(a, e, s)| ((a, e), s)).collect()))
}

/// Boot epochs remembered per agent: a spool can hold batches of an agent's
/// earlier runs, but not of 64 restarts ago.
const EPOCHS_KEPT: usize = 64;

fn write_marker(data: &Path, through: u64, applied: &Applied) -> Result<(), StoreError> {
    let dir = wal_dir(data);
    let mut by_agent: HashMap<&str, Vec<(u64, u64)>> = HashMap::new();
    for ((a, e), s) in applied {
        by_agent.entry(a.as_str()).or_default().push((*e, *s));
    }
    let mut kept = Vec::new();
    for (a, mut epochs) in by_agent {
        epochs.sort_unstable_by(|x, y| y.cmp(x));
        kept.extend(epochs.into_iter().take(EPOCHS_KEPT).map(|(e, s)| (a.to_string(), e, s)));
    }
    let m = Marker { through, applied: kept };
    let tmp = dir.join(".flushed.json.tmp");
    let bytes = serde_json::to_vec(&m).map_err(|e| StoreError::Failed(e.to_string()))?;
    (|| {
        let mut f = File::create(&tmp)?;
        std::io::Write::write_all(&mut f, &bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, dir.join("flushed.json"))?;
        File::open(&dir)?.sync_all()
    })()
    .map_err(io(&dir))
}

/// The flush number of a committed-or-not flush file `wal-<n>.parquet`.
fn flush_number(name: &str) -> Option<u64> {
    name.strip_prefix("wal-")?.strip_suffix(".parquet")?.parse().ok()
}

/// The directories a table's files live in: its day partitions
/// (`day=YYYY-MM-DD`), and the table directory itself for files written
/// before partitioning.
fn partition_dirs(table_dir: &Path) -> Result<Vec<PathBuf>, StoreError> {
    let mut out = vec![table_dir.to_path_buf()];
    match fs::read_dir(table_dir) {
        Ok(entries) => {
            for e in entries {
                let e = e.map_err(io(table_dir))?;
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with(&format!("{}=", crate::delta::PARTITION)) && e.path().is_dir() {
                    out.push(e.path());
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(table_dir)(e)),
    }
    out[1..].sort();
    Ok(out)
}

/// Microseconds in a day.
const DAY_US: i64 = 86_400_000_000;

/// The partition directory of rows whose crawl_time falls on `day` (days since the epoch, UTC).
pub fn day_dir(table_dir: &Path, day: i64) -> PathBuf {
    let date = day_name(day).unwrap_or_default();
    table_dir.join(format!("{}={date}", crate::delta::PARTITION))
}

/// `YYYY-MM-DD` of `day` (days since the epoch), when it is a four-digit year.
fn day_name(day: i64) -> Option<String> {
    let d = chrono::DateTime::from_timestamp(day.checked_mul(86_400)?, 0)?.date_naive();
    (1..=9999).contains(&chrono::Datelike::year(&d)).then(|| d.to_string())
}

/// Rows split by the UTC day of their crawl_time (the fourth column of every table).
fn split_by_day(batches: &[RecordBatch]) -> BTreeMap<i64, Vec<RecordBatch>> {
    use arrow_array::cast::AsArray;
    let mut out: BTreeMap<i64, Vec<RecordBatch>> = BTreeMap::new();
    for b in batches.iter().filter(|b| b.num_rows() > 0) {
        let t = b.column(3).as_primitive::<arrow_array::types::TimestampMicrosecondType>();
        let days: Vec<i64> = t.values().iter().map(|us| us.div_euclid(DAY_US)).collect();
        if days.iter().all(|d| *d == days[0]) {
            out.entry(days[0]).or_default().push(b.clone());
            continue;
        }
        let mut rows: BTreeMap<i64, Vec<u32>> = BTreeMap::new();
        for (i, d) in days.iter().enumerate() {
            rows.entry(*d).or_default().push(i as u32);
        }
        for (d, idx) in rows {
            let part = arrow_select::take::take_record_batch(b, &arrow_array::UInt32Array::from(idx))
                .expect("indices within the batch");
            out.entry(d).or_default().push(part);
        }
    }
    out
}

/// The visible Parquet files of every table, given the marker's `through`.
/// With `clean`, leftovers of unfinished writes are removed.
fn list_files(data: &Path, through: u64, clean: bool) -> Result<BTreeMap<&'static str, Vec<PathBuf>>, StoreError> {
    let mut out = BTreeMap::new();
    for t in TABLES {
        let mut files = Vec::new();
        for dir in partition_dirs(&table_dir(data, t))? {
            let replaced = compactions(&dir, clean)?;
            let entries = match fs::read_dir(&dir) {
                Ok(e) => e,
                // A table this directory has never stored (made by an older server, or by hand).
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && !clean => continue,
                Err(e) => return Err(io(&dir)(e)),
            };
            for e in entries {
                let e = e.map_err(io(&dir))?;
                let name = e.file_name().to_string_lossy().into_owned();
                if replaced.contains(&name) {
                    if clean {
                        fs::remove_file(e.path()).map_err(io(&e.path()))?;
                    }
                    continue;
                }
                let stale = name.starts_with('.') || flush_number(&name).is_some_and(|n| n > through);
                if stale {
                    if clean {
                        fs::remove_file(e.path()).map_err(io(&e.path()))?;
                    }
                } else if name.ends_with(".parquet") {
                    files.push(e.path());
                }
            }
        }
        files.sort();
        out.insert(t.name, files);
    }
    Ok(out)
}

/// Reads the log segments from `through` on, skipping repeats, into `buffer`.
/// With `repair`, a torn tail is cut off so that appends start clean.
fn replay(
    data: &Path,
    through: u64,
    applied: &mut Applied,
    buffer: &mut Buffer,
    repair: bool,
) -> Result<(u64, usize), StoreError> {
    let wal = wal_dir(data);
    let mut last = through.saturating_sub(1);
    let mut bytes = 0;
    for n in wal::segments(&wal).map_err(io(&wal))? {
        let path = wal::segment_path(&wal, n);
        if n < through {
            continue;
        }
        last = last.max(n);
        let read = wal::read_segment(&path).map_err(io(&path))?;
        for (from, to) in &read.corrupt {
            tracing::error!(
                segment = %path.display(),
                "write-ahead log: bytes {from}..{to} are corrupt (not a torn tail): the record(s) there are lost; \
                 the intact records after them are kept"
            );
        }
        if read.torn && repair {
            tracing::warn!(segment = %path.display(), "write-ahead log: torn tail cut off (crash during a write)");
            let f = fs::OpenOptions::new().write(true).open(&path).map_err(io(&path))?;
            f.set_len(read.valid_len).and_then(|_| f.sync_all()).map_err(io(&path))?;
        }
        for r in read.records {
            let key = (r.agent.clone(), r.epoch);
            if applied.get(&key).is_some_and(|&h| r.seq <= h) {
                continue;
            }
            let what = format!("log record {} {} {}", r.agent, r.epoch, r.seq);
            let (table, batches) = match decode_batch(&r.table, r.zstd, &r.ipc) {
                Ok(d) => d,
                Err(e) => {
                    quarantine_bytes(data, &what, &format!("{}: {e}", path.display()), &r.table, &r.ipc);
                    applied.insert(key, r.seq);
                    continue;
                }
            };
            applied.insert(key, r.seq);
            if let Err(why) = storable(&batches) {
                quarantine(data, &what, &why, table, &batches);
                continue;
            }
            bytes += batches.iter().map(batch_bytes).sum::<usize>();
            buffer.entry(table.name).or_default().extend(batches);
        }
    }
    Ok((last, bytes))
}

fn lock_file(data: &Path, name: &str) -> Result<File, StoreError> {
    let path = data.join(name);
    fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .or_else(|_| File::open(&path))
        .map_err(io(&path))
}

impl Store {
    /// Opens (creating as needed) a data directory with default settings.
    pub fn open(dir: impl AsRef<Path>) -> Result<Store, StoreError> {
        Store::open_with(dir, StoreConfig::default())
    }

    /// Opens a data directory for a server: recovers what the log holds beyond
    /// the last flush and starts the log writer and the flusher.
    pub fn open_with(dir: impl AsRef<Path>, config: StoreConfig) -> Result<Store, StoreError> {
        let dir = dir.as_ref().to_path_buf();
        for t in TABLES {
            let d = table_dir(&dir, t);
            fs::create_dir_all(&d).map_err(io(&d))?;
        }
        let wal = wal_dir(&dir);
        fs::create_dir_all(&wal).map_err(io(&wal))?;
        let server_lock = lock_file(&dir, "server.lock")?;
        if server_lock.try_lock().is_err() {
            return Err(StoreError::InUse(dir));
        }
        let store_lock = lock_file(&dir, "store.lock")?;
        store_lock.lock().map_err(io(&dir))?;
        let (through, mut applied) = read_marker(&dir)?;
        let files = Arc::new(FileSet::new(list_files(&dir, through, true)?));
        for n in wal::segments(&wal).map_err(io(&wal))? {
            if n < through {
                let p = wal::segment_path(&wal, n);
                fs::remove_file(&p).map_err(io(&p))?;
            }
        }
        let mut active = Buffer::new();
        let (last, active_bytes) = replay(&dir, through, &mut applied, &mut active, true)?;
        let segment = Segment::create(&wal, last + 1).map_err(io(&wal))?;
        drop(store_lock);
        let (mut index, pending) = build_index(&files, &active)?;
        let cutoff = expiry_cutoff(config.host_expiry);
        let departed = index.departed(cutoff);
        index.forget(departed, cutoff);
        let deltas = crate::delta::open_all(&dir.join("tables")).map_err(StoreError::Failed)?;

        let state = State {
            index,
            pending,
            files,
            active_since: (!active.is_empty()).then(Instant::now),
            active,
            active_bytes,
            flushing: None,
            flushing_bytes: 0,
            flushing_since: None,
            flush_requested: false,
            closing: false,
            failed: None,
        };
        let retirement = Arc::new(Retirement { data: dir.clone(), queue: Mutex::default() });
        let config_flush_kib = u32::try_from(config.flush_bytes / 1024).unwrap_or(u32::MAX >> 4);
        let last_compaction = std::sync::atomic::AtomicU64::new(newest_compaction(&dir));
        let shared = Arc::new(Shared {
            dir,
            config,
            deltas: Mutex::new(deltas),
            retirement,
            last_compaction,
            scopes: std::sync::atomic::AtomicUsize::new(state.index.len()),
            state: Mutex::new(state),
            cond: Condvar::new(),
        });
        // A crash between a commit and its Delta commit left the log behind: catch up.
        sync_delta(&shared, TABLES.iter().map(|t| t.name), true);
        let (tx, rx) = mpsc::channel();
        let writer = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("periscope-wal".into())
                .spawn(move || write_loop(&shared, segment, applied, rx))
                .map_err(io(&wal))?
        };
        let flusher = {
            let (shared, tx) = (shared.clone(), tx.clone());
            std::thread::Builder::new()
                .name("periscope-flush".into())
                .spawn(move || flush_loop(&shared, tx))
                .map_err(io(&wal))?
        };
        let admission_kib = (config_flush_kib).max(1);
        Ok(Store {
            admission: Arc::new(tokio::sync::Semaphore::new(admission_kib as usize)),
            admission_kib,
            shared,
            reserved: Reserved::default(),
            tx: Mutex::new(Some(tx)),
            threads: Mutex::new(vec![writer, flusher]),
            _server_lock: server_lock,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    pub fn config(&self) -> &StoreConfig {
        &self.shared.config
    }

    /// Logs an agent's batch (its decoded `batches` go to the buffer); the
    /// answer, the stored row count, comes once the record is durable. A batch
    /// whose (agent, epoch, seq) was applied before is acknowledged without
    /// being stored again.
    ///
    /// Waits while the rows already queued for the log writer reach
    /// `flush_bytes`: with the two buffers that bounds the rows in memory to
    /// about three times `flush_bytes`, however many agents send at once.
    pub async fn submit(
        &self,
        record: Record,
        table: &'static Table,
        batches: Vec<RecordBatch>,
        reserved: Option<Reservation>,
    ) -> tokio::sync::oneshot::Receiver<Result<u64, String>> {
        if let Err(why) = storable(&batches) {
            let (reply, rx) = tokio::sync::oneshot::channel();
            let _ = reply.send(Err(format!("{}: {why}", table.name)));
            return rx;
        }
        let kib = batches.iter().map(batch_bytes).sum::<usize>().div_ceil(1024);
        let permit =
            self.admission.clone().acquire_many_owned(kib.clamp(1, self.admission_kib as usize) as u32).await.ok();
        let (reply, rx) = tokio::sync::oneshot::channel();
        let failed = self.shared.lock().failed.clone();
        let tx = self.tx.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let cmd = Cmd::Append { record, table, batches, reply, _permit: permit, reserved };
        match (failed, tx) {
            (Some(f), _) => {
                let Cmd::Append { reply, .. } = cmd else { unreachable!() };
                let _ = reply.send(Err(f));
            }
            (None, Some(tx)) => {
                if let Err(mpsc::SendError(Cmd::Append { reply, .. })) = tx.send(cmd) {
                    let _ = reply.send(Err("store is shut down".into()));
                }
            }
            (None, None) => {
                let Cmd::Append { reply, .. } = cmd else { unreachable!() };
                let _ = reply.send(Err("store is shut down".into()));
            }
        }
        rx
    }

    /// Encodes `batches` as an agent would and stores them as (agent, epoch, seq).
    pub async fn apply(
        &self,
        table: &'static Table,
        batches: &[RecordBatch],
        agent: &str,
        epoch: u64,
        seq: u64,
    ) -> Result<u64, StoreError> {
        let ipc = periscope_proto::ipc::encode_wire(&table.schema(), batches)
            .map_err(|e| StoreError::Failed(e.to_string()))?;
        let record = Record { table: table.name.into(), agent: agent.into(), epoch, seq, zstd: true, ipc };
        let rx = self.submit(record, table, batches.to_vec(), None).await;
        rx.await.map_err(|_| StoreError::Failed("store is shut down".into()))?.map_err(StoreError::Failed)
    }

    /// What queries in this process see: the committed files and every
    /// acknowledged row not yet flushed.
    pub fn snapshot(&self) -> Snapshot {
        let s = self.shared.lock();
        let mut batches = s.active.clone();
        for (t, b) in s.flushing.iter().flatten() {
            batches.entry(t).or_default().extend(b.iter().cloned());
        }
        Snapshot {
            files: s.files.clone(),
            batches,
            host_expiry: self.shared.config.host_expiry,
            dir: Some(self.shared.dir.clone()),
            index: s.index.clone(),
            _guard: None,
        }
    }

    /// Refuses rows of scopes the index does not know once it holds
    /// [`StoreConfig::max_scopes`], or once their host holds
    /// [`StoreConfig::max_scopes_per_host`] (in the index, in flight, and
    /// reserved by batches admitted but not yet applied): the error says so
    /// and which flag sets it. The new scopes a batch brings stay reserved
    /// until it is applied (give the [`Reservation`] to [`Store::submit`]),
    /// so neither many batches at once nor many streams get past the quota.
    /// Below the global limit only batches of the tables that make index
    /// entries (crawls, unchanged, inherited, containers) are looked at.
    pub fn admit_scopes(&self, table: &Table, batches: &[RecordBatch]) -> Result<Option<Reservation>, String> {
        let per_host = self.shared.config.max_scopes_per_host;
        let mut reservation = None;
        if per_host > 0 && crate::current::indexed(table) {
            let s = self.shared.lock();
            let new = s.index.new_scopes(&s.pending, batches);
            if !new.is_empty() {
                let mut reserved = self.reserved.lock().unwrap_or_else(|e| e.into_inner());
                for (host, n) in &new {
                    let have =
                        s.index.host_scopes(host) + s.pending.of_host(host) + reserved.get(host).copied().unwrap_or(0);
                    if have + n > per_host {
                        return Err(format!(
                            "host {host} holds {have} scopes in the current-state index (--max-scopes-per-host \
                             {per_host}): rows of its new scopes are refused until some leave or the limit is raised"
                        ));
                    }
                }
                for (host, n) in &new {
                    *reserved.entry(host.clone()).or_default() += n;
                }
                reservation = Some(Reservation { map: self.reserved.clone(), hosts: new });
            }
        }
        let max = self.shared.config.max_scopes;
        let n = self.shared.scopes.load(std::sync::atomic::Ordering::Relaxed);
        if max == 0 || n < max {
            return Ok(reservation);
        }
        let s = self.shared.lock();
        for b in batches {
            if let Some(new) = s.index.unknown_scope(&s.pending, b) {
                return Err(format!(
                    "the current-state index is full ({n} scopes, --max-scopes {max}): rows of the new scope {new} \
                     are refused until containers leave or the limit is raised"
                ));
            }
        }
        Ok(reservation)
    }

    /// How far the store is behind its log, and how large its index is (for `/metrics`).
    pub fn stats(&self) -> StoreStats {
        let s = self.shared.lock();
        // The rows being flushed arrived before any still in `active`.
        let oldest = s.flushing_since.or(s.active_since);
        StoreStats {
            unflushed_bytes: s.active_bytes + s.flushing_bytes,
            unflushed_age: oldest.map(|t| t.elapsed()).unwrap_or_default(),
            flushing: s.flushing.is_some(),
            scopes: s.index.len(),
            failed: s.failed.is_some(),
        }
    }

    /// Current state as of now, without the rows: enough to ask what the fleet has (an image's inventory, say).
    pub fn index(&self) -> Index {
        self.shared.lock().index.clone()
    }

    /// What a reader in another process sees of a data directory, server
    /// running or not: the committed files and the log beyond them.
    pub fn read(dir: &Path) -> Result<Snapshot, StoreError> {
        let guard = lock_file(dir, "store.lock")?;
        guard.lock_shared().map_err(io(dir))?;
        let (through, mut applied) = read_marker(dir)?;
        let files = Arc::new(FileSet::new(list_files(dir, through, false)?));
        let mut batches = Buffer::new();
        if wal_dir(dir).is_dir() {
            replay(dir, through, &mut applied, &mut batches, false)?;
        }
        let (index, _) = build_index(&files, &batches)?;
        Ok(Snapshot {
            files,
            batches,
            host_expiry: HOST_EXPIRY,
            dir: Some(dir.to_path_buf()),
            index,
            _guard: Some(guard),
        })
    }

    /// Asks for a flush now and waits until everything acknowledged so far is in Parquet.
    pub fn flush(&self) -> Result<(), StoreError> {
        let mut s = self.shared.lock();
        s.flush_requested = true;
        self.shared.cond.notify_all();
        while (s.flush_requested || !s.active.is_empty() || s.flushing.is_some()) && s.failed.is_none() {
            s = self.shared.cond.wait(s).unwrap_or_else(|e| e.into_inner());
            if !s.flush_requested && s.flushing.is_none() && !s.active.is_empty() {
                s.flush_requested = true;
                self.shared.cond.notify_all();
            }
        }
        match &s.failed {
            Some(f) => Err(StoreError::Failed(f.clone())),
            None => Ok(()),
        }
    }

    /// Flushes what is buffered and stops the log writer and flusher.
    pub fn close(&self) -> Result<(), StoreError> {
        let flushed = self.flush();
        self.shared.lock().closing = true;
        self.shared.cond.notify_all();
        self.tx.lock().unwrap_or_else(|e| e.into_inner()).take();
        for t in self.threads.lock().unwrap_or_else(|e| e.into_inner()).drain(..) {
            let _ = t.join();
        }
        flushed
    }
}

impl Drop for Store {
    /// Stops the threads without flushing (as a crash would, minus the torn
    /// tail): buffered rows are recovered from the log on the next open.
    fn drop(&mut self) {
        self.shared.lock().closing = true;
        self.shared.cond.notify_all();
        self.tx.lock().unwrap_or_else(|e| e.into_inner()).take();
        for t in self.threads.lock().unwrap_or_else(|e| e.into_inner()).drain(..) {
            let _ = t.join();
        }
    }
}

fn fail(shared: &Shared, message: String) {
    tracing::error!("store: {message}");
    let mut s = shared.lock();
    s.failed.get_or_insert(message);
    shared.cond.notify_all();
}

/// The log writer: appends records, fsyncs once per group, then makes the
/// rows visible and acknowledges them.
fn write_loop(shared: &Shared, mut segment: Segment, mut applied: Applied, rx: mpsc::Receiver<Cmd>) {
    let wal = wal_dir(&shared.dir);
    while let Ok(first) = rx.recv() {
        let mut cmds = vec![first];
        while cmds.len() < 4096 {
            match rx.try_recv() {
                Ok(c) => cmds.push(c),
                Err(_) => break,
            }
        }
        let mut failed = shared.lock().failed.clone();
        let mut pending: Vec<(&'static Table, Vec<RecordBatch>, u64, Reply, Option<Reservation>)> = Vec::new();
        let mut rotations = Vec::new();
        for c in cmds {
            match c {
                Cmd::Append { reply, .. } if failed.is_some() => {
                    let _ = reply.send(Err(failed.clone().unwrap_or_default()));
                }
                Cmd::Append { record, table, batches, reply, _permit, reserved } => {
                    let rows = batches.iter().map(|b| b.num_rows() as u64).sum::<u64>();
                    let key = (record.agent.clone(), record.epoch);
                    if applied.get(&key).is_some_and(|&h| record.seq <= h) {
                        let _ = reply.send(Ok(rows));
                        continue;
                    }
                    if let Err(e) = segment.append(&record) {
                        // Nothing more goes after a torn record: this group's earlier
                        // records would be cut off with it when the log is repaired.
                        let m = format!("write-ahead log {}: {e}", segment.path().display());
                        let _ = reply.send(Err(m.clone()));
                        for (_, _, _, reply, _) in pending.drain(..) {
                            let _ = reply.send(Err(m.clone()));
                        }
                        fail(shared, m.clone());
                        failed = Some(m);
                        continue;
                    }
                    applied.insert(key, record.seq);
                    pending.push((table, batches, rows, reply, reserved));
                }
                Cmd::Rotate(r) => rotations.push(r),
            }
        }
        if failed.is_some() {
            continue;
        }
        if !pending.is_empty() {
            if let Err(e) = segment.sync() {
                let m = format!("write-ahead log {}: fsync: {e}", segment.path().display());
                for (_, _, _, reply, _) in pending {
                    let _ = reply.send(Err(m.clone()));
                }
                fail(shared, m);
                continue;
            }
            let mut guard = shared.lock();
            let s = &mut *guard;
            for (table, batches, _, _, reserved) in &mut pending {
                s.index.apply(&mut s.pending, table, batches);
                s.active_bytes += batches.iter().map(batch_bytes).sum::<usize>();
                s.active.entry(table.name).or_default().append(batches);
                // In the index (or pending) now: counted there, no longer reserved.
                reserved.take();
            }
            s.active_since.get_or_insert_with(Instant::now);
            shared.scopes.store(s.index.len(), std::sync::atomic::Ordering::Relaxed);
            drop(guard);
            for (_, _, rows, reply, _) in pending {
                crash_point();
                let _ = reply.send(Ok(rows));
            }
        }
        for r in rotations {
            match Segment::create(&wal, segment.number + 1) {
                Ok(next) => {
                    segment = next;
                    let mut s = shared.lock();
                    s.flushing = Some(std::mem::take(&mut s.active));
                    s.flushing_bytes = std::mem::take(&mut s.active_bytes);
                    s.flushing_since = s.active_since.take();
                    drop(s);
                    let _ = r.send((segment.number, applied.clone()));
                }
                Err(e) => fail(shared, format!("write-ahead log {}: {e}", wal.display())),
            }
        }
        // Backpressure: a full buffer waits for the one being flushed.
        let mut s = shared.lock();
        if s.active_bytes >= shared.config.flush_bytes {
            s.flush_requested = true;
            shared.cond.notify_all();
            while s.flushing.is_some() && s.failed.is_none() && !s.closing {
                s = shared.cond.wait(s).unwrap_or_else(|e| e.into_inner());
            }
        }
    }
}

/// The flusher: on request, on a full buffer or every flush interval, writes
/// the buffered rows as Parquet and commits them.
fn flush_loop(shared: &Shared, tx: mpsc::Sender<Cmd>) {
    let mut retry: Option<(u64, Applied)> = None;
    let mut failures = 0;
    let mut retained: Option<Instant> = None;
    let mut pruned: Option<Instant> = None;
    let mut maintain = |shared: &Shared| {
        if pruned.is_none_or(|t| t.elapsed() >= PRUNE_EVERY) {
            pruned = Some(Instant::now());
            let n = prune(shared);
            if n > 0 {
                tracing::info!("store: {n} removed container(s) left the current-state index");
            }
        }
        if shared.config.retention.is_some() && retained.is_none_or(|t| t.elapsed() >= shared.config.retention_every) {
            retained = Some(Instant::now());
            match retain(shared) {
                Ok(0) => {}
                Ok(n) => tracing::info!("store: retention rewrote or dropped {n} file(s) of old history"),
                Err(e) => tracing::error!("store: retention failed (history stays as it is): {e}"),
            }
        }
    };
    loop {
        let mut s = shared.lock();
        loop {
            let due = s.active_since.is_some_and(|t| t.elapsed() >= shared.config.flush_interval);
            if s.flush_requested || due || s.closing || retry.is_some() {
                break;
            }
            let wait = match s.active_since {
                Some(t) => shared.config.flush_interval.saturating_sub(t.elapsed()),
                None => shared.config.flush_interval,
            };
            s = shared.cond.wait_timeout(s, wait.max(Duration::from_millis(10))).unwrap_or_else(|e| e.into_inner()).0;
        }
        // Closing without a flush (close() flushes first): what is buffered stays in the log.
        if s.closing {
            return;
        }
        if s.active.is_empty() && retry.is_none() {
            s.flush_requested = false;
            shared.cond.notify_all();
            drop(s);
            maintain(shared);
            continue;
        }
        if s.failed.is_some() {
            s.flush_requested = false;
            shared.cond.notify_all();
            return;
        }
        drop(s);
        let (through, applied) = match retry.take() {
            Some(r) => r,
            None => {
                let (rtx, rrx) = mpsc::channel();
                if tx.send(Cmd::Rotate(rtx)).is_err() {
                    return;
                }
                match rrx.recv() {
                    Ok(r) => r,
                    Err(_) => return,
                }
            }
        };
        match commit(shared, through, &applied) {
            Ok(()) => {
                failures = 0;
                if let Err(e) = compact(shared) {
                    tracing::error!("store: compaction failed (the files stay as they are): {e}");
                }
                maintain(shared);
                let mut s = shared.lock();
                s.flush_requested = false;
                shared.cond.notify_all();
            }
            Err(e) => {
                failures += 1;
                if failures >= 3 {
                    // What is buffered stays in the log; a restart replays it.
                    fail(shared, format!("flush failed three times, last: {e}"));
                    return;
                }
                tracing::error!("store: flush failed, retrying in 5 s: {e}");
                retry = Some((through, applied));
                std::thread::sleep(Duration::from_secs(5));
            }
        }
    }
}

/// Writes the buffer being flushed as one Parquet file per table and commits
/// them with the marker; then retires the segments they came from.
fn commit(shared: &Shared, through: u64, applied: &Applied) -> Result<(), StoreError> {
    let data = &shared.dir;
    let flushing = shared.lock().flushing.clone().unwrap_or_default();
    let name = format!("wal-{through:012}.parquet");
    let mut written = Vec::new();
    for (t, batches) in &flushing {
        let table = periscope_proto::tables::table(t).expect("buffered tables are declared");
        for (day, batches) in split_by_day(batches) {
            let dir = day_dir(&table_dir(data, table), day);
            if !dir.is_dir() {
                fs::create_dir_all(&dir).map_err(io(&dir))?;
                let parent = dir.parent().expect("in a table dir");
                File::open(parent).and_then(|d| d.sync_all()).map_err(io(parent))?;
            }
            let tmp = dir.join(format!(".{name}.tmp"));
            match write_parquet(&tmp, table, &batches) {
                Ok(()) => {}
                // Not the disk's fault: some batch cannot be written. Keep the
                // others, quarantine what fails alone, so no batch stops ingest.
                Err(StoreError::Parquet { source, .. }) => {
                    let why = source.to_string();
                    let (good, bad): (Vec<RecordBatch>, Vec<RecordBatch>) =
                        batches.into_iter().partition(|b| writes(table, b));
                    if bad.is_empty() {
                        // Every batch writes on its own: the disk's fault after all; retried as such.
                        return Err(StoreError::Failed(format!("{}: {why}", tmp.display())));
                    }
                    quarantine(data, &format!("flush {through}"), &why, table, &bad);
                    write_parquet(&tmp, table, &good)?;
                }
                Err(e) => return Err(e),
            }
            written.push((*t, tmp, dir.join(&name)));
        }
    }
    let lock = lock_file(data, "store.lock")?;
    lock.lock().map_err(io(data))?;
    for (_, tmp, dst) in &written {
        fs::rename(tmp, dst).map_err(io(dst))?;
    }
    let dirs: std::collections::BTreeSet<&Path> = written.iter().filter_map(|(_, _, d)| d.parent()).collect();
    for dir in dirs {
        File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))?;
    }
    write_marker(data, through, applied)?;
    {
        let mut s = shared.lock();
        let mut tables = s.files.tables.clone();
        for (t, _, dst) in written {
            tables.entry(t).or_default().push(dst);
        }
        s.files = Arc::new(s.files.succeed(tables));
        s.flushing = None;
        (s.flushing_bytes, s.flushing_since) = (0, None);
        shared.cond.notify_all();
    }
    drop(lock);
    sync_delta(shared, flushing.keys().copied(), true);
    let wal = wal_dir(data);
    for n in wal::segments(&wal).map_err(io(&wal))? {
        if n < through {
            let p = wal::segment_path(&wal, n);
            fs::remove_file(&p).map_err(io(&p))?;
        }
    }
    Ok(())
}

/// Brings the Delta logs of `tables` to the committed files. A log that
/// cannot be written stays behind (and says so); the next commit catches it up.
fn sync_delta<'a>(shared: &Shared, tables: impl Iterator<Item = &'a str>, data_change: bool) {
    let files = shared.lock().files.clone();
    let mut deltas = shared.deltas.lock().unwrap_or_else(|e| e.into_inner());
    for name in tables {
        let Some(log) = deltas.get_mut(name) else { continue };
        let Some(t) = periscope_proto::tables::table(name) else { continue };
        if let Err(e) = log.sync(&table_dir(&shared.dir, t), files.get(name), data_change) {
            tracing::error!(table = name, "store: Delta log not updated (retried at the next commit): {e}");
        }
    }
}

/// How stored files are written: zstd at `level`, row groups of up to 1M
/// rows, and min/max statistics (chunk and page index) only on the common
/// columns. Those are what prune: agents' rows arrive grouped by scope, so a
/// page holds few hosts. A page of any other column (package names, versions,
/// paths) spans nearly its whole range of values, so its statistics prune
/// nothing, and computing them was about a sixth of the Parquet writer's time
/// under perf in benches/ingest.sh (end to end, inside that benchmark's scatter).
fn writer_properties(table: &Table, level: i32) -> WriterProperties {
    use parquet::file::properties::EnabledStatistics;
    let mut b = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(level).expect("valid zstd level")))
        .set_max_row_group_row_count(Some(1 << 20));
    for c in table.columns {
        b = b.set_column_statistics_enabled(c.name.into(), EnabledStatistics::None);
    }
    b.build()
}

/// Flush files use zstd level 1: flushing is on the ingest path (level 3 cost
/// about 10% of ingest CPU in benches/ingest.sh); compaction rewrites small
/// files at level 3.
fn write_parquet(path: &Path, table: &Table, batches: &[RecordBatch]) -> Result<(), StoreError> {
    let props = writer_properties(table, 1);
    let file = File::create(path).map_err(io(path))?;
    let pq = |source| StoreError::Parquet { path: path.to_path_buf(), source };
    let mut w = ArrowWriter::try_new(file, table.schema(), Some(props)).map_err(pq)?;
    for b in batches {
        w.write(b).map_err(pq)?;
    }
    let file = w.into_inner().map_err(pq)?;
    file.sync_all().map_err(io(path))
}

/// Whether one batch can be written as Parquet (in memory): how a failed
/// flush finds the batches to quarantine.
fn writes(table: &Table, b: &RecordBatch) -> bool {
    let mut w = match ArrowWriter::try_new(Vec::new(), table.schema(), Some(writer_properties(table, 1))) {
        Ok(w) => w,
        Err(_) => return false,
    };
    w.write(b).is_ok() && w.close().is_ok()
}

/// A compaction's record, `.compact-<id>.json` in the table's directory:
/// written before its output file is renamed into place, so that once the
/// output exists its inputs are known to be replaced, crash or not.
#[derive(serde::Serialize, serde::Deserialize)]
struct Compaction {
    output: String,
    inputs: Vec<String>,
    /// Retention removed the inputs' rows without a replacement: the record
    /// itself, renamed into place under the store lock, is the commit.
    #[serde(default)]
    drop: bool,
}

/// The newest compaction id among the tables' compacted files.
fn newest_compaction(data: &Path) -> u64 {
    let mut newest = 0;
    for dir in TABLES.iter().flat_map(|t| partition_dirs(&table_dir(data, t)).unwrap_or_default()) {
        for e in fs::read_dir(dir).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let id = name.strip_prefix("compact-").and_then(|n| n.strip_suffix(".parquet"));
            if let Some(id) = id.and_then(|n| n.parse::<u64>().ok()) {
                newest = newest.max(id);
            }
        }
    }
    newest
}

/// Names of files that committed compactions replaced in `dir`. With `clean`
/// (the server opening), replaced files and records are removed and records
/// of compactions that never committed are dropped.
fn compactions(dir: &Path, clean: bool) -> Result<std::collections::HashSet<String>, StoreError> {
    let mut replaced = std::collections::HashSet::new();
    let Ok(entries) = fs::read_dir(dir) else { return Ok(replaced) };
    let mut records = Vec::new();
    for e in entries {
        let name = e.map_err(io(dir))?.file_name().to_string_lossy().into_owned();
        if name.starts_with(".compact-") && name.ends_with(".json") {
            records.push(name);
        }
    }
    // Whether each compaction committed (its output exists) is decided for all
    // of them before anything is deleted: deleting one's inputs may remove
    // another's output. In id order, the order they happened.
    records.sort();
    let mut decided = Vec::new();
    for name in records {
        let path = dir.join(&name);
        let record: Compaction = match fs::read(&path).map(|b| serde_json::from_slice::<Compaction>(&b)) {
            // Every name a record gives is a data file of this very directory: a
            // crafted record must not make the store delete anything else.
            Ok(Ok(r)) if std::iter::once(&r.output).chain(&r.inputs).all(|n| n.is_empty() || data_file_name(n)) => r,
            Ok(Ok(_)) => {
                tracing::error!(record = %path.display(), "store: a compaction record names files outside its partition; ignored");
                Compaction { output: String::new(), inputs: Vec::new(), drop: false }
            }
            // A record torn by a crash: its output was never renamed into place.
            _ => Compaction { output: String::new(), inputs: Vec::new(), drop: false },
        };
        let committed = record.drop || (!record.output.is_empty() && dir.join(&record.output).exists());
        decided.push((path, record, committed));
    }
    for (path, record, committed) in decided {
        if committed {
            if clean {
                for i in &record.inputs {
                    match fs::remove_file(dir.join(i)) {
                        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(&dir.join(i))(e)),
                        _ => {}
                    }
                }
            } else {
                replaced.extend(record.inputs);
            }
        }
        if clean {
            fs::remove_file(&path).map_err(io(&path))?;
        }
    }
    Ok(replaced)
}

/// Whether `name` is what the store names its data files in a partition:
/// `wal-N.parquet` or `compact-ID.parquet`, a plain name (no separator, no `..`).
fn data_file_name(name: &str) -> bool {
    let plain = !name.contains('/') && !name.contains('\\') && !name.starts_with('.');
    plain && name.ends_with(".parquet") && (name.starts_with("wal-") || name.starts_with("compact-"))
}

/// Merges a table's small files into one when there are `compact_files` or
/// more of them. The output becomes visible atomically (rename under the
/// exclusive store lock, after its record); the inputs are deleted once no
/// snapshot reads them.
fn compact(shared: &Shared) -> Result<usize, StoreError> {
    let data = &shared.dir;
    let (min_files, small) = (shared.config.compact_files, shared.config.flush_bytes as u64);
    let mut merged = 0;
    for t in TABLES {
        let files: Vec<PathBuf> = shared.lock().files.get(t.name).to_vec();
        // Small files, by the partition (day) they are in: a compaction merges one partition's.
        let mut partitions: BTreeMap<PathBuf, Vec<PathBuf>> = BTreeMap::new();
        for f in files.into_iter().filter(|f| fs::metadata(f).map(|m| m.len() < small).unwrap_or(false)) {
            partitions.entry(f.parent().unwrap_or(data).to_path_buf()).or_default().push(f);
        }
        let before = merged;
        for (dir, inputs) in partitions {
            if min_files < 2 || inputs.len() < min_files {
                continue;
            }
            merged += compact_partition(shared, t, &dir, inputs, None)?;
        }
        if merged > before {
            sync_delta(shared, [t.name].into_iter(), false);
        }
    }
    Ok(merged)
}

/// Which rows of a batch a rewrite keeps (retention); None keeps them all (compaction).
type Keep<'a> = Option<&'a dyn Fn(&RecordBatch) -> Result<RecordBatch, StoreError>>;

/// Merges `inputs`, files of one partition directory `dir` of table `t`, into
/// one file there, keeping the rows `keep` keeps. The output becomes visible
/// atomically (rename under the exclusive store lock, after its record); when
/// retention keeps no row there is no output and the record itself, renamed
/// under the lock, commits the removal. The inputs are deleted once no
/// snapshot reads them.
fn compact_partition(
    shared: &Shared,
    t: &'static Table,
    dir: &Path,
    inputs: Vec<PathBuf>,
    keep: Keep<'_>,
) -> Result<usize, StoreError> {
    let data = &shared.dir;
    // Ids order compactions (see `compactions`): never behind an earlier one, whatever the clock does.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let last = shared.last_compaction.load(std::sync::atomic::Ordering::SeqCst) as u128;
    let id_n = now.max(last + 1);
    shared.last_compaction.store(id_n as u64, std::sync::atomic::Ordering::SeqCst);
    let id = format!("{id_n:020}");
    let output = format!("compact-{id}.parquet");
    let tmp = dir.join(format!(".{output}.tmp"));
    let pq = |source| StoreError::Parquet { path: tmp.clone(), source };
    let mut kept = 0;
    {
        let props = writer_properties(t, 3);
        let file = File::create(&tmp).map_err(io(&tmp))?;
        let mut w = ArrowWriter::try_new(file, t.schema(), Some(props)).map_err(pq)?;
        for f in &inputs {
            let reader =
                parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(File::open(f).map_err(io(f))?)
                    .and_then(|b| b.with_batch_size(64 * 1024).build())
                    .map_err(|source| StoreError::Parquet { path: f.clone(), source })?;
            for b in reader {
                let b = b.map_err(|e| StoreError::Failed(format!("{}: {e}", f.display())))?;
                // Stored under the declared schema (older files may carry other metadata, or lack
                // columns added since).
                let b = conform(t, &b).map_err(|e| StoreError::Failed(format!("{}: {e}", f.display())))?;
                let b = match keep {
                    Some(k) => k(&b)?,
                    None => b,
                };
                kept += b.num_rows();
                w.write(&b).map_err(pq)?;
            }
        }
        w.into_inner().map_err(pq)?.sync_all().map_err(io(&tmp))?;
    }
    let dropped = keep.is_some() && kept == 0;
    if dropped {
        fs::remove_file(&tmp).map_err(io(&tmp))?;
    }
    let names = |v: &[PathBuf]| -> Vec<String> {
        v.iter().filter_map(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned()).collect()
    };
    let record = Compaction {
        output: if dropped { String::new() } else { output.clone() },
        inputs: names(&inputs),
        drop: dropped,
    };
    let record_path = dir.join(format!(".compact-{id}.json"));
    let record_tmp = dir.join(format!(".compact-{id}.json.tmp"));
    let write_record = |to: &Path| {
        (|| {
            let mut f = File::create(&record_tmp)?;
            std::io::Write::write_all(&mut f, &serde_json::to_vec(&record).unwrap_or_default())?;
            f.sync_all()?;
            fs::rename(&record_tmp, to)?;
            File::open(dir)?.sync_all()
        })()
        .map_err(io(dir))
    };
    if !dropped {
        write_record(&record_path)?;
        crash_point_named("PERISCOPE_CRASH_IN_COMPACTION");
    }
    let lock = lock_file(data, "store.lock")?;
    lock.lock().map_err(io(data))?;
    let dst = dir.join(&output);
    if dropped {
        write_record(&record_path)?;
    } else {
        fs::rename(&tmp, &dst).map_err(io(&dst))?;
    }
    // The output is live from here on: account for it before anything else can fail.
    let synced = File::open(dir).and_then(|d| d.sync_all());
    {
        let mut s = shared.lock();
        let mut tables = s.files.tables.clone();
        let list = tables.entry(t.name).or_default();
        list.retain(|f| !inputs.contains(f));
        if !dropped {
            list.push(dst);
            list.sort();
        }
        let next = Arc::new(s.files.succeed(tables));
        let old = std::mem::replace(&mut s.files, next);
        let mut doomed = inputs.clone();
        doomed.push(record_path);
        let ticket = shared.retirement.push(doomed);
        *old.link.retired.lock().unwrap_or_else(|e| e.into_inner()) = Some((shared.retirement.clone(), ticket));
    }
    drop(lock);
    if let Err(e) = synced {
        tracing::warn!(dir = %dir.display(), "store: fsync after compaction: {e}");
    }
    Ok(inputs.len())
}

/// How often departed containers are dropped from the index.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// Hosts crawled before this (µs) have expired, `host_expiry` after their last crawl.
pub fn expiry_cutoff(host_expiry: Duration) -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    now.saturating_sub(host_expiry).as_micros() as i64
}

/// Drops containers that left current state from the index ([`Index::departed`]),
/// found on a snapshot of it so that ingest waits only for the removals.
fn prune(shared: &Shared) -> usize {
    let cutoff = expiry_cutoff(shared.config.host_expiry);
    let expired = shared.lock().pending.expire(PENDING_TTL);
    if expired > 0 {
        tracing::warn!(
            "store: {expired} crawl(s) whose crawls row never arrived were dropped from the index's pending state"
        );
    }
    let index = shared.lock().index.clone();
    let departed = index.departed(cutoff);
    drop(index);
    if departed.is_empty() {
        return 0;
    }
    let mut s = shared.lock();
    let gone = s.index.forget(departed, cutoff);
    shared.scopes.store(s.index.len(), std::sync::atomic::Ordering::Relaxed);
    gone
}

/// Retention: rewrites every day partition older than the retention period
/// to hold only the rows current state reads — as the index says now: each
/// live scope's latest crawl (its `crawls`, `unchanged`, `inherited` rows),
/// each of its tables' rows wherever they live (an earlier crawl a table was
/// unchanged since, an image's crawl), each host's listing. Rows of
/// superseded crawls, removed containers and expired hosts go. Returns the
/// number of files rewritten or dropped.
fn retain(shared: &Shared) -> Result<usize, StoreError> {
    let Some(period) = shared.config.retention else { return Ok(0) };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let cutoff_day = (now.saturating_sub(period).as_micros() as i64).div_euclid(DAY_US);
    let expiry = expiry_cutoff(shared.config.host_expiry);
    let (index, files) = {
        let s = shared.lock();
        (s.index.clone(), s.files.clone())
    };
    let mut rewritten = 0;
    for t in TABLES {
        let table_dir = table_dir(&shared.dir, t);
        let mut old: BTreeMap<PathBuf, Vec<PathBuf>> = BTreeMap::new();
        for f in files.get(t.name) {
            let Some(dir) = f.parent() else { continue };
            let day = dir.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_prefix("day="));
            let day = day.and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok());
            let Some(day) = day.map(|d| d.and_hms_opt(0, 0, 0).expect("midnight").and_utc().timestamp() / 86_400)
            else {
                continue;
            };
            if dir.parent() == Some(table_dir.as_path()) && day < cutoff_day {
                old.entry(dir.to_path_buf()).or_default().push(f.clone());
            }
        }
        if old.is_empty() {
            continue;
        }
        let keys = if t.name == periscope_proto::tables::CRAWLS.name {
            index.latest(expiry, false)
        } else {
            index.keys(t, expiry, &crate::current::KeyFilter::default()).own
        };
        let keep = KeepKeys::new(&keys);
        let filter = |b: &RecordBatch| keep.filter(b);
        let before = rewritten;
        for (dir, inputs) in old {
            // Nothing to gain where every row is still read.
            if inputs.iter().all(|f| keep.keeps_all(f).unwrap_or(false)) {
                continue;
            }
            rewritten += compact_partition(shared, t, &dir, inputs, Some(&filter))?;
        }
        if rewritten > before {
            sync_delta(shared, [t.name].into_iter(), true);
        }
    }
    Ok(rewritten)
}

/// The (host, scope, scope_id, crawl_time) keys retention keeps.
struct KeepKeys(std::collections::HashSet<(String, String, String, i64)>);

impl KeepKeys {
    fn new(keys: &RecordBatch) -> KeepKeys {
        use arrow_array::cast::AsArray;
        let s = |i: usize| keys.column(i).as_string::<i32>();
        let t = keys.column(3).as_primitive::<arrow_array::types::TimestampMicrosecondType>();
        let set = (0..keys.num_rows())
            .map(|i| (s(0).value(i).to_string(), s(1).value(i).to_string(), s(2).value(i).to_string(), t.value(i)))
            .collect();
        KeepKeys(set)
    }

    fn mask(&self, b: &RecordBatch) -> arrow_array::BooleanArray {
        use arrow_array::cast::AsArray;
        let s = |i: usize| b.column(i).as_string::<i32>();
        let t = b.column(3).as_primitive::<arrow_array::types::TimestampMicrosecondType>();
        (0..b.num_rows())
            .map(|i| {
                let k = (s(0).value(i).to_string(), s(1).value(i).to_string(), s(2).value(i).to_string(), t.value(i));
                Some(self.0.contains(&k))
            })
            .collect()
    }

    fn filter(&self, b: &RecordBatch) -> Result<RecordBatch, StoreError> {
        arrow_select::filter::filter_record_batch(b, &self.mask(b)).map_err(|e| StoreError::Failed(e.to_string()))
    }

    /// Whether every row of the file is kept (read by its common columns only).
    fn keeps_all(&self, f: &Path) -> Result<bool, StoreError> {
        let pq = |source| StoreError::Parquet { path: f.to_path_buf(), source };
        let builder =
            parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(File::open(f).map_err(io(f))?)
                .map_err(pq)?;
        let mask = parquet::arrow::ProjectionMask::roots(builder.parquet_schema(), [0, 1, 2, 3]);
        for b in builder.with_projection(mask).build().map_err(pq)? {
            let b = b.map_err(|e| StoreError::Failed(format!("{}: {e}", f.display())))?;
            if self.mask(&b).true_count() < b.num_rows() {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// Fault injection for crash tests: with PERISCOPE_CRASH_AFTER_BATCHES=N the
/// process aborts right after its Nth batch is durable and before it is
/// acknowledged — the one moment a random SIGKILL rarely hits, where a resent
/// batch must not be stored twice.
/// With the variable `name` set, the process aborts there (crash tests).
fn crash_point_named(name: &str) {
    if std::env::var_os(name).is_some() {
        eprintln!("periscope: {name} set: aborting");
        std::process::abort();
    }
}

fn crash_point() {
    use std::sync::atomic::{AtomicU64, Ordering};
    static STORED: AtomicU64 = AtomicU64::new(0);
    static LIMIT: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    let limit = LIMIT.get_or_init(|| std::env::var("PERISCOPE_CRASH_AFTER_BATCHES").ok()?.parse().ok());
    if let Some(limit) = limit
        && STORED.fetch_add(1, Ordering::SeqCst) + 1 == *limit
    {
        eprintln!("periscope: PERISCOPE_CRASH_AFTER_BATCHES={limit} reached: aborting before the ack");
        std::process::abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use periscope_proto::tables::CRAWL_ERRORS;

    fn rows(snap: &Snapshot) -> (usize, usize) {
        let buffered = snap.batches.values().flatten().map(RecordBatch::num_rows).sum();
        let mut stored = 0;
        for f in snap.files.tables.values().flatten() {
            let r = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(File::open(f).unwrap())
                .unwrap()
                .build()
                .unwrap();
            stored += r.map(|b| b.unwrap().num_rows()).sum::<usize>();
        }
        (stored, buffered)
    }

    /// The day partition the test batches' crawl_time falls in.
    fn test_day(data: &Path) -> PathBuf {
        day_dir(&table_dir(data, &CRAWL_ERRORS), 1_700_000_000_000_000 / DAY_US)
    }

    /// Names in a directory, but the Delta log.
    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != "_delta_log")
            .collect();
        v.sort();
        v
    }

    fn config() -> StoreConfig {
        StoreConfig { flush_bytes: 64 << 20, flush_interval: Duration::from_secs(3600), ..Default::default() }
    }

    #[tokio::test]
    async fn batches_are_buffered_then_flushed_into_one_file_per_table() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open_with(tmp.path(), config()).unwrap();
        let batch = crate::testutil::crawl_error_batch(3);
        for seq in 1..=10 {
            assert_eq!(store.apply(&CRAWL_ERRORS, std::slice::from_ref(&batch), "a", 1, seq).await.unwrap(), 3);
        }
        assert_eq!(rows(&store.snapshot()), (0, 30), "acknowledged rows are visible before any flush");
        assert_eq!(rows(&Store::read(tmp.path()).unwrap()), (0, 30), "another process reads them from the log");
        store.flush().unwrap();
        assert_eq!(rows(&store.snapshot()), (30, 0));
        assert_eq!(rows(&Store::read(tmp.path()).unwrap()), (30, 0), "the flushed log is not read twice");
        assert_eq!(names(&test_day(tmp.path())).len(), 1, "ten batches, one file, in its day's partition");
        assert_eq!(wal::segments(&wal_dir(tmp.path())).unwrap().len(), 1, "flushed segments are retired");
        // Statistics, chunk and page level, on the common columns (they prune by host and time), not the rest.
        let file = test_day(tmp.path()).join(&names(&test_day(tmp.path()))[0]);
        let opts = parquet::arrow::arrow_reader::ArrowReaderOptions::new()
            .with_page_index_policy(parquet::file::metadata::PageIndexPolicy::Required);
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new_with_options(
            File::open(file).unwrap(),
            opts,
        )
        .unwrap();
        let meta = reader.metadata();
        let index = meta.column_index().expect("a page index");
        for (i, c) in meta.row_group(0).columns().iter().enumerate() {
            let name = c.column_descr().name();
            let common = periscope_proto::tables::COMMON_COLUMNS.iter().any(|k| k.name == name);
            assert_eq!(c.statistics().is_some_and(|s| s.min_bytes_opt().is_some()), common, "{name}: chunk statistics");
            let paged = !matches!(index[0][i], parquet::file::page_index::column_index::ColumnIndexMetaData::NONE);
            assert_eq!(paged, common, "{name}: page index");
        }
    }

    /// `batch` with every row's crawl_time set to `us`.
    fn dated(batch: &RecordBatch, us: i64) -> RecordBatch {
        let mut cols = batch.columns().to_vec();
        let t = arrow_array::TimestampMicrosecondArray::from(vec![us; batch.num_rows()]).with_timezone("+00:00");
        cols[3] = Arc::new(t);
        RecordBatch::try_new(batch.schema(), cols).unwrap()
    }

    /// Issue 18 item 4: rows dated i64::MAX and i64::MIN both mapped to an
    /// empty day partition; the flush failed three times, the store refused
    /// every later batch, and the log replayed them into the same failure at
    /// every restart.
    #[tokio::test]
    async fn rows_no_day_can_hold_are_refused_and_a_log_holding_them_is_quarantined_at_open() {
        let tmp = tempfile::tempdir().unwrap();
        let good = crate::testutil::crawl_error_batch(2);
        {
            let store = Store::open_with(tmp.path(), config()).unwrap();
            for (seq, t) in [(1, i64::MAX), (2, i64::MIN)] {
                let e = store.apply(&CRAWL_ERRORS, &[dated(&good, t)], "a", 1, seq).await.unwrap_err();
                assert!(e.to_string().contains("names no day partition"), "{e}");
            }
            store.apply(&CRAWL_ERRORS, std::slice::from_ref(&good), "a", 1, 3).await.unwrap();
        }
        // What a server from before that check logged: bad records between good ones.
        let wal = wal_dir(tmp.path());
        let next = wal::segments(&wal).unwrap().into_iter().max().unwrap() + 1;
        let mut seg = Segment::create(&wal, next).unwrap();
        for (seq, t) in [(10, i64::MAX), (11, 1_700_000_000_000_000), (12, i64::MIN)] {
            let ipc = periscope_proto::ipc::encode_wire(&CRAWL_ERRORS.schema(), &[dated(&good, t)]).unwrap();
            let r = Record { table: CRAWL_ERRORS.name.into(), agent: "old".into(), epoch: 1, seq, zstd: true, ipc };
            seg.append(&r).unwrap();
        }
        seg.sync().unwrap();
        drop(seg);
        let store = Store::open_with(tmp.path(), config()).unwrap();
        assert_eq!(rows(&store.snapshot()), (0, 4), "the good records replayed");
        let kept = names(&tmp.path().join(QUARANTINE_DIR));
        assert_eq!(kept.len(), 2, "the bad ones kept aside: {kept:?}");
        assert!(kept.iter().all(|n| n.contains("crawl_errors-log_record_old_1_1")), "{kept:?}");
        store.flush().unwrap();
        store.apply(&CRAWL_ERRORS, std::slice::from_ref(&good), "a", 1, 4).await.unwrap();
        store.close().unwrap();
        assert_eq!(rows(&Store::read(tmp.path()).unwrap()), (6, 0), "ingest went on, across a restart");
        assert!(!tmp.path().join("tables/crawl_errors/day=").exists(), "no nameless partition");
    }

    #[tokio::test]
    async fn a_numbered_batch_sent_twice_is_stored_once_before_and_after_a_flush_and_a_restart() {
        let tmp = tempfile::tempdir().unwrap();
        let batch = crate::testutil::crawl_error_batch(2);
        let one = std::slice::from_ref(&batch);
        {
            let store = Store::open_with(tmp.path(), config()).unwrap();
            store.apply(&CRAWL_ERRORS, one, "a", 7, 1).await.unwrap();
            assert_eq!(store.apply(&CRAWL_ERRORS, one, "a", 7, 1).await.unwrap(), 2, "a repeat is acknowledged");
            assert_eq!(rows(&store.snapshot()), (0, 2));
            store.flush().unwrap();
            store.apply(&CRAWL_ERRORS, one, "a", 7, 1).await.unwrap();
            for (agent, epoch, seq) in [("b", 7, 1), ("a", 8, 1), ("a", 7, 2)] {
                store.apply(&CRAWL_ERRORS, one, agent, epoch, seq).await.unwrap();
            }
            assert_eq!(rows(&store.snapshot()), (2, 6), "another agent, epoch or seq is another batch");
            // Dropped without close: as after a crash, the last three live only in the log.
        }
        let store = Store::open_with(tmp.path(), config()).unwrap();
        assert_eq!(rows(&store.snapshot()), (2, 6), "recovered from the log");
        store.apply(&CRAWL_ERRORS, one, "a", 7, 2).await.unwrap();
        store.apply(&CRAWL_ERRORS, one, "a", 7, 1).await.unwrap();
        assert_eq!(rows(&store.snapshot()), (2, 6), "repeats after a restart are still recognised");
        store.close().unwrap();
        assert_eq!(rows(&Store::read(tmp.path()).unwrap()), (8, 0));
    }

    #[tokio::test]
    async fn small_files_are_compacted_and_replaced_files_outlive_the_snapshots_reading_them() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open_with(tmp.path(), StoreConfig { compact_files: 3, ..config() }).unwrap();
        let batch = crate::testutil::crawl_error_batch(5);
        let dir = test_day(tmp.path());
        let parquet = || names(&dir).iter().filter(|n| !n.starts_with('.')).count();
        let mut held = None;
        for seq in 1..=3 {
            store.apply(&CRAWL_ERRORS, std::slice::from_ref(&batch), "a", 1, seq).await.unwrap();
            if seq == 3 {
                // A query's snapshot from before the compaction that the third flush triggers.
                held = Some(store.snapshot());
            }
            store.flush().unwrap();
        }
        let held = held.unwrap();
        assert_eq!(rows(&store.snapshot()), (15, 0));
        assert_eq!(store.snapshot().files.get("crawl_errors").len(), 1, "three flushes, merged into one file");
        assert_eq!(rows(&held), (10, 5), "an older snapshot still reads the files it listed");
        assert_eq!(rows(&Store::read(tmp.path()).unwrap()), (15, 0), "other processes see the merged file only");
        drop(held);
        wait_for(|| parquet() == 1);
        store.close().unwrap();
        drop(store);
        let store = Store::open_with(tmp.path(), config()).unwrap();
        assert_eq!(rows(&store.snapshot()), (15, 0));
    }

    #[tokio::test]
    async fn chained_compactions_delete_in_order_and_never_show_a_row_twice() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open_with(tmp.path(), StoreConfig { compact_files: 2, ..config() }).unwrap();
        let batch = crate::testutil::crawl_error_batch(1);
        let mut held = Vec::new();
        for seq in 1..=4 {
            held.push(store.snapshot());
            store.apply(&CRAWL_ERRORS, std::slice::from_ref(&batch), "a", 1, seq).await.unwrap();
            store.flush().unwrap();
            assert_eq!(rows(&Store::read(tmp.path()).unwrap()), (seq as usize, 0), "after flush {seq}");
        }
        // Every held snapshot still reads what it listed, oldest dropped last.
        for (i, snap) in held.iter().enumerate() {
            assert_eq!(rows(snap), (i, 0));
        }
        while let Some(snap) = held.pop() {
            drop(snap);
            std::thread::sleep(Duration::from_millis(50));
            assert_eq!(rows(&Store::read(tmp.path()).unwrap()), (4, 0), "no row twice or lost while files retire");
        }
        drop(store);
        let store = Store::open_with(tmp.path(), config()).unwrap();
        assert_eq!(rows(&store.snapshot()), (4, 0));
        assert_eq!(store.snapshot().files.get("crawl_errors").len(), 1);
    }

    #[tokio::test]
    async fn a_compaction_cut_short_by_a_crash_rolls_back_or_forward() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = test_day(tmp.path());
        let batch = crate::testutil::crawl_error_batch(2);
        {
            let store = Store::open_with(tmp.path(), config()).unwrap();
            for seq in 1..=2 {
                store.apply(&CRAWL_ERRORS, std::slice::from_ref(&batch), "a", 1, seq).await.unwrap();
                store.flush().unwrap();
            }
        }
        let inputs = names(&dir);
        assert_eq!(inputs.len(), 2);
        let record = |id: &str, output: &str| {
            let r = Compaction { output: output.into(), inputs: inputs.clone(), drop: false };
            fs::write(dir.join(format!(".compact-{id}.json")), serde_json::to_vec(&r).unwrap()).unwrap();
        };
        // Crashed before its output was renamed into place: the inputs stand.
        record("1", "compact-1.parquet");
        fs::write(dir.join(".compact-1.parquet.tmp"), b"partial").unwrap();
        assert_eq!(rows(&Store::read(tmp.path()).unwrap()), (4, 0));
        // Crashed after the rename, before the inputs were deleted: the output stands alone.
        record("2", "compact-2.parquet");
        write_parquet(&dir.join("compact-2.parquet"), &CRAWL_ERRORS, &[batch.clone(), batch.clone()]).unwrap();
        assert_eq!(rows(&Store::read(tmp.path()).unwrap()), (4, 0), "no row twice");
        let store = Store::open_with(tmp.path(), config()).unwrap();
        assert_eq!(rows(&store.snapshot()), (4, 0));
        assert_eq!(names(&dir), ["compact-2.parquet"], "opening rolled both forward or back and cleaned up");
    }

    /// One crawl's batches: `packages` rows named `names` (or the table marked unchanged since `since`), crawls last.
    fn crawl(
        host: &str,
        scope: &str,
        t: i64,
        names: &[&str],
        since: Option<i64>,
    ) -> Vec<(&'static Table, RecordBatch)> {
        use periscope_agent::encode::{Common, Value};
        use periscope_proto::tables::{CRAWLS, PACKAGES, UNCHANGED};
        let c =
            Common { host: host.into(), scope: scope.into(), scope_id: format!("{host}-{scope}"), crawl_time_us: t };
        let mut out = Vec::new();
        let mut sink = periscope_agent::collectors::Sink::new(c.clone());
        for n in names {
            sink.row(&PACKAGES, &[("name", (*n).into())]);
        }
        if let Some(since) = since {
            sink.row(&UNCHANGED, &[("table_name", "packages".into()), ("since", Value::Int(since))]);
        }
        for b in sink.finish() {
            out.push((periscope_agent::crawl::table_of(&b), b));
        }
        let mut m = periscope_agent::collectors::Sink::new(c);
        m.row(&CRAWLS, &[("tables", "packages".into())]);
        out.extend(m.finish().into_iter().map(|b| (&CRAWLS, b)));
        out
    }

    fn names_in(snap: &Snapshot, table: &str) -> Vec<String> {
        use arrow_array::cast::AsArray;
        let mut out = Vec::new();
        for f in snap.files.get(table) {
            let r = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(File::open(f).unwrap())
                .unwrap()
                .build()
                .unwrap();
            for b in r {
                let b = b.unwrap();
                let col = if table == "packages" { "name" } else { "scope_id" };
                let (h, n) = (b.column(0).as_string::<i32>(), b.column_by_name(col).unwrap().as_string::<i32>());
                out.extend((0..b.num_rows()).map(|i| format!("{}:{}", h.value(i), n.value(i))));
            }
        }
        out.sort();
        out
    }

    #[tokio::test]
    async fn retention_keeps_what_current_state_reads_and_drops_the_rest_of_old_days() {
        use periscope_proto::tables::PACKAGES;
        let tmp = tempfile::tempdir().unwrap();
        let cfg = StoreConfig {
            retention: Some(Duration::from_secs(7 * 86_400)),
            retention_every: Duration::ZERO,
            ..config()
        };
        let store = Store::open_with(tmp.path(), cfg).unwrap();
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as i64;
        let (old, recent) = (now - 30 * DAY_US, now - 3_600_000_000);
        let mut batches = Vec::new();
        // h1: packages unchanged since its old crawl; h2: silent for a month (expired); h3: changed since.
        batches.extend(crawl("h1", "host", old, &["a"], None));
        batches.extend(crawl("h1", "host", recent, &[], Some(old)));
        batches.extend(crawl("h2", "host", old, &["b"], None));
        batches.extend(crawl("h1", "image", old, &["c"], None));
        batches.extend(crawl("h3", "host", old, &["d"], None));
        batches.extend(crawl("h3", "host", recent, &["e"], None));
        for (seq, (t, b)) in batches.into_iter().enumerate() {
            store.apply(t, &[b], "a", 1, seq as u64 + 1).await.unwrap();
        }
        store.flush().unwrap();
        let snap = store.snapshot();
        assert_eq!(names_in(&snap, "packages"), ["h1:a", "h1:c", "h3:e"], "current rows stay, however old");
        assert_eq!(
            names_in(&snap, "crawls"),
            ["h1:h1-host", "h1:h1-image", "h3:h3-host"],
            "latest crawls of live scopes"
        );
        // Current state, as the catalog reads it, is unchanged by retention.
        let own = snap.index.keys(&PACKAGES, now - HOST_EXPIRY.as_micros() as i64, &Default::default()).own;
        assert_eq!(own.num_rows(), 3);
        // The Delta log follows, and a reopened store sees the same.
        let log = crate::delta::DeltaLog::open(&table_dir(tmp.path(), &PACKAGES), &PACKAGES).unwrap();
        let logged: Vec<PathBuf> = log.files().map(|f| table_dir(tmp.path(), &PACKAGES).join(f)).collect();
        assert_eq!(logged, snap.files.get("packages"));
        drop(snap);
        store.close().unwrap();
        drop(store);
        let store = Store::open_with(tmp.path(), config()).unwrap();
        assert_eq!(names_in(&store.snapshot(), "packages"), ["h1:a", "h1:c", "h3:e"]);
        assert_eq!(store.index().len(), 3, "h1, its image and h3 are current; h2 expired");
    }

    /// A full index refuses rows of scopes it does not know, naming the
    /// limit, and still takes those of scopes it holds.
    #[tokio::test]
    async fn a_full_index_refuses_new_scopes_only() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open_with(tmp.path(), StoreConfig { max_scopes: 2, ..config() }).unwrap();
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as i64;
        let mut seq = 0;
        let mut send = async |batches: Vec<(&'static Table, RecordBatch)>| {
            for (t, b) in batches {
                let b = [b];
                store.admit_scopes(t, &b)?;
                seq += 1;
                store.apply(t, &b, "a", 1, seq).await.map_err(|e| e.to_string())?;
            }
            Ok::<_, String>(())
        };
        send(crawl("h1", "host", now, &["a"], None)).await.unwrap();
        send(crawl("h2", "host", now, &["b"], None)).await.unwrap();
        assert_eq!(store.index().len(), 2);
        let err = send(crawl("h3", "host", now, &["c"], None)).await.unwrap_err();
        assert!(err.contains("--max-scopes 2") && err.contains("h3/host/h3-host"), "{err}");
        assert_eq!(store.index().len(), 2, "nothing of h3 went in");
        send(crawl("h1", "host", now + 1, &["a", "d"], None)).await.expect("a known scope's next crawl");
        store.flush().unwrap();
        assert_eq!(names_in(&store.snapshot(), "packages"), ["h1:a", "h1:a", "h1:d", "h2:b"], "no row of h3 stored");
    }

    /// Issue 18 item 5: image scopes never leave the index, so one agent
    /// filled --max-scopes with made-up images and other hosts' new containers
    /// were refused; crawls that never complete sat in the pending map for ever.
    #[tokio::test]
    async fn one_host_cannot_fill_the_index_for_the_others() {
        use periscope_agent::collectors::Sink;
        use periscope_agent::encode::{Common, Value};
        use periscope_proto::tables::{CRAWLS, UNCHANGED};
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open_with(tmp.path(), StoreConfig { max_scopes_per_host: 3, ..config() }).unwrap();
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as i64;
        let stamp = |host: &str, scope: &str, id: &str, t: i64| Common {
            host: host.into(),
            scope: scope.into(),
            scope_id: id.into(),
            crawl_time_us: t,
        };
        let done = |c: Common| {
            let mut m = Sink::new(c);
            m.row(&CRAWLS, &[("tables", "".into())]);
            m.finish()
        };
        let mut seq = 0;
        let mut send = async |batches: Vec<RecordBatch>| {
            for b in batches {
                let t = periscope_agent::crawl::table_of(&b);
                let b = [b];
                store.admit_scopes(t, &b)?;
                seq += 1;
                store.apply(t, &b, "a", 1, seq).await.map_err(|e| e.to_string())?;
            }
            Ok::<_, String>(())
        };
        for i in 0..3 {
            send(done(stamp("flood", "image", &format!("sha256:{i}"), now))).await.unwrap();
        }
        let err = send(done(stamp("flood", "image", "sha256:3", now))).await.unwrap_err();
        assert!(err.contains("host flood holds 3 scopes") && err.contains("--max-scopes-per-host 3"), "{err}");
        send(done(stamp("flood", "image", "sha256:0", now + 1))).await.expect("its known scopes go on");
        send(done(stamp("web", "host", "m", now))).await.expect("other hosts are not affected");
        assert_eq!(store.index().len(), 4);
        // Admitted but not yet applied (pipelined on a stream, or on many streams), they count too.
        let one = |id: &str| done(stamp("burst", "image", id, now));
        let held: Vec<_> = ["a", "b", "c"].iter().map(|id| store.admit_scopes(&CRAWLS, &one(id)).unwrap()).collect();
        let e = store.admit_scopes(&CRAWLS, &one("d")).err().expect("a fourth new scope in flight");
        assert!(e.contains("host burst holds 3 scopes"), "{e}");
        drop(held);
        // So do several batches of one message.
        let many: Vec<RecordBatch> = ["a", "b", "c", "d"].iter().flat_map(|id| one(id)).collect();
        assert!(store.admit_scopes(&CRAWLS, &many).is_err(), "four new scopes in one message");
        let three: Vec<RecordBatch> = ["a", "b", "c"].iter().flat_map(|id| one(id)).collect();
        drop(store.admit_scopes(&CRAWLS, &three).expect("three fit"));
        // Crawls in flight count too, and those never completed go after PENDING_TTL.
        let mut sink = Sink::new(stamp("web", "container", "c1", now));
        sink.row(&UNCHANGED, &[("table_name", "packages".into()), ("since", Value::Int(now))]);
        send(sink.finish()).await.unwrap();
        let mut s = store.shared.lock();
        assert_eq!(s.pending.of_host("web"), 1);
        assert_eq!(s.pending.expire(Duration::from_secs(3600)), 0, "not yet");
        assert_eq!(s.pending.expire(Duration::ZERO), 1);
        assert!(s.pending.is_empty() && s.pending.of_host("web") == 0);
    }

    /// Files and log records written before `crawls.received` existed still
    /// compact, are retained and replay: the column reads as null.
    #[tokio::test]
    async fn data_from_before_a_column_was_added_still_compacts_and_replays() {
        use periscope_proto::tables::CRAWLS;
        let tmp = tempfile::tempdir().unwrap();
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as i64;
        let older = |b: &RecordBatch| -> RecordBatch {
            let keep: Vec<usize> = (0..b.num_columns()).filter(|&i| b.schema().field(i).name() != "received").collect();
            b.project(&keep).unwrap()
        };
        let crawls = |t: i64| {
            let c = periscope_agent::encode::Common {
                host: "h".into(),
                scope: "host".into(),
                scope_id: "m".into(),
                crawl_time_us: t,
            };
            let mut b = periscope_agent::encode::TableBuilder::new(&CRAWLS);
            b.push(&c, &[("tables", "".into())]);
            b.finish()
        };
        let day = day_dir(&table_dir(tmp.path(), &CRAWLS), now.div_euclid(DAY_US));
        fs::create_dir_all(&day).unwrap();
        // Two files as an older server wrote them, one as this one does.
        for (i, t) in [(1u64, now - 3), (2, now - 2)] {
            let b = older(&crawls(t));
            let f = File::create(day.join(format!("wal-{i:012}.parquet"))).unwrap();
            let mut w = ArrowWriter::try_new(f, b.schema(), None).unwrap();
            w.write(&b).unwrap();
            w.close().unwrap();
        }
        // And a log record from before the column.
        {
            let wal = wal_dir(tmp.path());
            fs::create_dir_all(&wal).unwrap();
            let mut seg = Segment::create(&wal, 3).unwrap();
            let b = older(&crawls(now - 1));
            let ipc = periscope_proto::ipc::encode_wire(&b.schema(), &[b]).unwrap();
            seg.append(&Record { table: "crawls".into(), agent: "old".into(), epoch: 1, seq: 1, zstd: true, ipc })
                .unwrap();
            seg.sync().unwrap();
            write_marker(tmp.path(), 3, &Applied::default()).unwrap();
        }
        let store = Store::open_with(tmp.path(), StoreConfig { compact_files: 2, ..config() }).unwrap();
        assert_eq!(store.index().len(), 1);
        store.apply(&CRAWLS, &[crawls(now)], "a", 1, 1).await.unwrap();
        store.flush().unwrap();
        wait_for(|| names(&day).iter().filter(|n| n.ends_with(".parquet")).count() == 1);
        store.close().unwrap();
        assert!(!tmp.path().join(QUARANTINE_DIR).exists(), "nothing quarantined");
        let snap = Store::read(tmp.path()).unwrap();
        let n: usize = snap
            .files
            .get("crawls")
            .iter()
            .map(|f| {
                let r = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(File::open(f).unwrap())
                    .unwrap();
                r.metadata().file_metadata().num_rows() as usize
            })
            .sum();
        assert_eq!(n, 4, "all four crawls, in one compacted file");
    }

    /// Issue 18 item 13: a crafted compaction record could delete any path.
    #[test]
    fn a_compaction_record_cannot_delete_outside_its_partition() {
        let tmp = tempfile::tempdir().unwrap();
        let part = tmp.path().join("tables/packages/day=2026-12-01");
        fs::create_dir_all(&part).unwrap();
        let victim = tmp.path().join("precious");
        fs::write(&victim, b"keep").unwrap();
        fs::write(part.join("compact-1.parquet"), b"output").unwrap();
        fs::write(part.join("wal-000000000001.parquet"), b"input").unwrap();
        let absolute = victim.display().to_string();
        for bad in ["../../../precious", absolute.as_str(), "wal-x/../../../../precious"] {
            let record = serde_json::json!({"output": "compact-1.parquet", "inputs": [bad], "drop": false});
            fs::write(part.join(".compact-1.json"), record.to_string()).unwrap();
            compactions(&part, true).unwrap();
            assert!(victim.exists(), "{bad}");
        }
        // A genuine record still retires its inputs.
        let record = serde_json::json!({"output": "compact-1.parquet", "inputs": ["wal-000000000001.parquet"]});
        fs::write(part.join(".compact-1.json"), record.to_string()).unwrap();
        compactions(&part, true).unwrap();
        assert!(!part.join("wal-000000000001.parquet").exists() && part.join("compact-1.parquet").exists());
        assert!(data_file_name("wal-000000000001.parquet") && !data_file_name("../wal-1.parquet"));
    }

    fn wait_for(mut ok: impl FnMut() -> bool) {
        let start = Instant::now();
        while !ok() {
            assert!(start.elapsed() < Duration::from_secs(10), "timed out");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn decoded_batches_are_counted_once_not_once_per_column() {
        let batch = crate::testutil::crawl_error_batch(2000);
        let ipc = periscope_proto::ipc::encode_wire(&CRAWL_ERRORS.schema(), std::slice::from_ref(&batch)).unwrap();
        let (_, decoded) = decode_batch("crawl_errors", true, &ipc).unwrap();
        let counted: usize = decoded.iter().map(batch_bytes).sum();
        let naive: usize = decoded.iter().map(RecordBatch::get_array_memory_size).sum();
        let plain = periscope_proto::ipc::encode(&CRAWL_ERRORS.schema(), std::slice::from_ref(&batch)).unwrap().len();
        assert!(counted <= plain * 2, "counted {counted} for a {plain}-byte IPC stream");
        assert!(naive > counted * 3, "the per-column count ({naive}) is what this avoids ({counted})");
    }

    #[tokio::test]
    async fn an_unfinished_flush_is_ignored_and_a_second_server_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open_with(tmp.path(), config()).unwrap();
        assert!(matches!(Store::open_with(tmp.path(), config()), Err(StoreError::InUse(_))));
        let batch = crate::testutil::crawl_error_batch(4);
        store.apply(&CRAWL_ERRORS, std::slice::from_ref(&batch), "a", 1, 1).await.unwrap();
        // A flush that crashed after renaming its file but before writing the marker (in the
        // unpartitioned layout of older servers, which is still read).
        let dir = table_dir(tmp.path(), &CRAWL_ERRORS);
        write_parquet(&dir.join("wal-000000000099.parquet"), &CRAWL_ERRORS, std::slice::from_ref(&batch)).unwrap();
        fs::write(dir.join(".wal-000000000100.parquet.tmp"), b"partial").unwrap();
        assert_eq!(rows(&Store::read(tmp.path()).unwrap()), (0, 4), "readers ignore it");
        drop(store);
        let store = Store::open_with(tmp.path(), config()).unwrap();
        assert_eq!(rows(&store.snapshot()), (0, 4));
        assert!(names(&dir).is_empty(), "the server removed the leftovers");
    }

    fn crawls_row_of(scope: &str, id: &str) -> RecordBatch {
        let common = periscope_agent::encode::Common {
            host: "h".into(),
            scope: scope.into(),
            scope_id: id.into(),
            crawl_time_us: 1,
        };
        let mut b = periscope_agent::encode::TableBuilder::new(&periscope_proto::tables::CRAWLS);
        b.push(&common, &[("rows", 1i64.into())]);
        b.finish()
    }

    #[tokio::test]
    async fn stored_images_are_known_from_ingest_and_after_a_restart() {
        let data = tempfile::tempdir().unwrap();
        let store = Store::open(data.path()).unwrap();
        store
            .apply(&periscope_proto::tables::CRAWLS, &[crawls_row_of("image", "sha256:old")], "a", 1, 1)
            .await
            .unwrap();
        assert!(store.index().has_image("h", "sha256:old"));
        store.flush().unwrap();
        let later = [crawls_row_of("image", "sha256:new"), crawls_row_of("container", "c1")];
        store.apply(&periscope_proto::tables::CRAWLS, &later, "a", 1, 2).await.unwrap();
        let known = store.index();
        assert!(known.has_image("h", "sha256:new") && !known.has_image("h", "c1"));
        assert!(!known.has_image("other-host", "sha256:new"), "stored by h, not by another host");
        drop(store);
        // One from Parquet, one from the log.
        let store = Store::open(data.path()).unwrap();
        assert!(store.index().has_image("h", "sha256:old") && store.index().has_image("h", "sha256:new"));
    }
}
