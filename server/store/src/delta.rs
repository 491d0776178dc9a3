//! A Delta Lake transaction log beside each table's Parquet files, so that
//! engines that read Delta tables (the Python `deltalake` package, Spark,
//! DuckDB's delta extension) see exactly the files the store has committed —
//! never a file a flush had not finished, never both a compaction's inputs
//! and its output.
//!
//! The store stays the one that decides what is committed (its flush marker
//! and compaction records, see [`crate::store`]); after each of its commits,
//! [`DeltaLog::sync`] appends one Delta commit that brings the log's set of
//! files to the store's: `add` actions for new files, `remove` for replaced
//! ones, in one atomic step. On open the log is replayed and synced again, so
//! a crash between the store's commit and the log's only delays the log.
//!
//! The log is written by hand — newline-delimited JSON actions, protocol
//! (reader 1, writer 2) — rather than with the `deltalake` crate, which would
//! bring a second HTTP stack and C-compiled crypto into a build where compile
//! time is scarce. Commits are created with `link(2)`, which fails instead of
//! overwriting: the put-if-absent the protocol requires.
//!
//! Every [`CHECKPOINT_EVERY`] versions a checkpoint (the table's state as one
//! Parquet file of actions, plus `_last_checkpoint`) lets readers, this
//! server's own open included, start there instead of replaying every commit:
//! a server flushing each minute commits about 1,440 versions a day, and the
//! Python `deltalake` package took 2.8 s to open a log of 10,000. Commits and
//! checkpoints older than a checkpoint that is itself past [`LOG_RETENTION`]
//! are deleted, as Delta's `delta.logRetentionDuration` does. The checkpoint is
//! built by decoding the same JSON actions into Arrow under the protocol's
//! checkpoint schema, and read back by encoding its rows as JSON again, so one
//! replay serves both.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use std::sync::Arc;
use std::time::Duration;

use arrow_schema::{DataType, Field, Fields, Schema};
use periscope_proto::tables::{ColumnType, TABLES, Table};
use serde_json::{Value, json};

/// A checkpoint every this many versions: Delta's default `delta.checkpointInterval`.
pub const CHECKPOINT_EVERY: u64 = 10;

/// How long commits stay in the log once a later checkpoint covers them, at
/// least: Delta's default `delta.logRetentionDuration`. Clean-up runs when a
/// checkpoint is written.
pub const LOG_RETENTION: Duration = Duration::from_secs(30 * 86_400);

/// How long checkpoints keep a removed file's tombstone: Delta's default
/// `delta.deletedFileRetentionDuration`, which other writers' VACUUM goes by.
pub const TOMBSTONE_RETENTION: Duration = Duration::from_secs(7 * 86_400);

/// The partition column: the UTC day of the rows' crawl_time, `YYYY-MM-DD`.
pub const PARTITION: &str = "day";

/// Directory of a table's Delta log.
pub fn log_dir(table_dir: &Path) -> PathBuf {
    table_dir.join("_delta_log")
}

/// What a log states about its table in its `metaData` action.
#[derive(Debug, Clone)]
pub struct Meta {
    pub name: &'static str,
    pub description: &'static str,
    /// The Delta schema string: the table's columns, then [`PARTITION`].
    pub schema: String,
}

impl Meta {
    /// The metadata of a declared table.
    pub fn of(t: &Table) -> Meta {
        Meta { name: t.name, description: t.description, schema: schema_string(t) }
    }
}

/// A table's log as replayed: its latest version and the files it holds.
#[derive(Debug, Default)]
pub struct DeltaLog {
    dir: PathBuf,
    table: Option<Meta>,
    next: u64,
    /// Relative path → its `add` action (size, partition, stats), which a checkpoint repeats.
    files: BTreeMap<String, Value>,
    /// The `protocol` and `metaData` actions in force, which a checkpoint repeats too.
    protocol: Option<Value>,
    metadata: Option<Value>,
    /// Files removed lately, which a checkpoint keeps as tombstones.
    tombstones: BTreeMap<String, Tombstone>,
    /// The version of the last checkpoint written or read (0: none).
    checkpointed: u64,
    /// A checkpoint is wanted at the next version: the newest could not be read.
    checkpoint_due: bool,
    /// Started over (see [`DeltaLog::restart`]): the next commit restates the table.
    restarted: bool,
}

/// A `remove` action kept for checkpoints.
#[derive(Debug, Clone, PartialEq)]
struct Tombstone {
    size: Option<u64>,
    deleted_ms: u64,
    data_change: bool,
}

fn delta_type(t: ColumnType) -> &'static str {
    match t {
        ColumnType::Utf8 => "string",
        ColumnType::Int64 => "long",
        ColumnType::Boolean => "boolean",
        ColumnType::Timestamp => "timestamp",
    }
}

/// The Delta schema of a table: its columns, then the partition column.
fn schema_string(t: &Table) -> String {
    let mut fields: Vec<Value> = t
        .all_columns()
        .map(|c| {
            let common = periscope_proto::tables::COMMON_COLUMNS.iter().any(|x| x.name == c.name);
            json!({"name": c.name, "type": delta_type(c.ty), "nullable": !common,
                   "metadata": {"comment": c.description}})
        })
        .collect();
    fields.push(json!({"name": PARTITION, "type": "date", "nullable": true,
                       "metadata": {"comment": "UTC day of crawl_time: the directory the file is in."}}));
    json!({"type": "struct", "fields": fields}).to_string()
}

/// Tombstones deleted at or before this time (ms) are past [`TOMBSTONE_RETENTION`].
fn tombstones_expired_before() -> u64 {
    now_ms().saturating_sub(TOMBSTONE_RETENTION.as_millis() as u64)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// The partition value of a file at `rel` (`day=2026-12-01/x.parquet`); null for files outside a day directory.
fn partition_value(rel: &str) -> Value {
    match rel.split_once('/').and_then(|(d, _)| d.strip_prefix("day=")) {
        Some(day) => Value::String(day.to_string()),
        None => Value::Null,
    }
}

/// A path as the protocol wants it: relative, percent-encoded where a URI needs it.
fn encode(rel: &str) -> String {
    let mut out = String::with_capacity(rel.len());
    for b in rel.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' | b'=' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn decode(p: &str) -> String {
    let b = p.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(v) = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Rows in a Parquet file, from its footer.
fn row_count(path: &Path) -> Option<i64> {
    use parquet::file::reader::FileReader;
    let r = parquet::file::reader::SerializedFileReader::new(File::open(path).ok()?).ok()?;
    Some(r.metadata().file_metadata().num_rows())
}

/// At most 200 characters of `s`, for error messages quoting hostile input.
fn shorten(s: &str) -> String {
    match s.char_indices().nth(200) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

impl DeltaLog {
    /// Replays the log of the table in `table_dir` (empty when it has none yet).
    pub fn open(table_dir: &Path, table: &'static Table) -> Result<DeltaLog, String> {
        DeltaLog::open_as(table_dir, Meta::of(table))
    }

    /// Replays the log of a table that is not one of the declared ones (the
    /// advisory tables), stating `meta` when it commits.
    pub fn open_as(table_dir: &Path, meta: Meta) -> Result<DeltaLog, String> {
        let dir = log_dir(table_dir);
        let table = meta;
        let mut log = DeltaLog { dir: dir.clone(), table: Some(table.clone()), ..Default::default() };
        let listing = Listing::read(&dir)?;
        // From the newest checkpoint that reads; a damaged one costs replaying from an older one, or from 0.
        for &v in listing.checkpoints.iter().rev() {
            match read_checkpoint(&checkpoint_path(&dir, v)) {
                Ok(actions) => match actions.iter().try_for_each(|a| log.apply(a)) {
                    Ok(()) => {
                        log.next = v + 1;
                        log.checkpointed = v;
                        break;
                    }
                    Err(e) => {
                        tracing::warn!("Delta log: checkpoint {v} not used: {e}");
                        log = DeltaLog { dir: dir.clone(), table: Some(table.clone()), ..Default::default() };
                        log.checkpoint_due = true;
                    }
                },
                Err(e) => {
                    tracing::warn!("Delta log: checkpoint {v} not used: {e}");
                    log.checkpoint_due = true;
                }
            }
        }
        for (&v, path) in listing.commits.range(log.next..) {
            if v != log.next {
                return Err(format!("{}: version {} missing", dir.display(), log.next));
            }
            let text = fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                let action: Value = serde_json::from_str(line).map_err(|e| format!("{}: {e}", path.display()))?;
                log.apply(&action).map_err(|e| format!("{}: {e}", path.display()))?;
            }
            log.next = v + 1;
        }
        Ok(log)
    }

    /// A log that cannot be replayed, started over from the version after its
    /// newest commit: the next sync commits the protocol, the metadata and
    /// every file the store has, and checkpoints it, so readers start there.
    fn restart(table_dir: &Path, table: &'static Table) -> Result<DeltaLog, String> {
        let dir = log_dir(table_dir);
        let listing = Listing::read(&dir)?;
        let newest = listing.commits.keys().next_back().copied().max(listing.checkpoints.last().copied());
        let next = newest.map_or(0, |v| v + 1);
        Ok(DeltaLog { dir, table: Some(Meta::of(table)), next, restarted: next > 0, ..Default::default() })
    }

    /// Replays one action onto the state. A file action that is not an
    /// object with a path is an error (the log is then started over), never a panic.
    fn apply(&mut self, action: &Value) -> Result<(), String> {
        let path = |a: &Value, kind: &str| match a.as_object().and_then(|o| o.get("path")).and_then(Value::as_str) {
            Some(p) => Ok(decode(p)),
            None => Err(format!("malformed {kind} action: {}", shorten(&a.to_string()))),
        };
        if let Some(add) = action.get("add") {
            let rel = path(add, "add")?;
            let mut add = add.clone();
            // A file's partition is its directory (a checkpoint read back drops null values from maps).
            add["partitionValues"] = json!({PARTITION: partition_value(&rel)});
            self.tombstones.remove(&rel);
            self.files.insert(rel, add);
        } else if let Some(rm) = action.get("remove") {
            let rel = path(rm, "remove")?;
            self.files.remove(&rel);
            let t = Tombstone {
                size: rm["size"].as_u64(),
                deleted_ms: rm["deletionTimestamp"].as_u64().unwrap_or(0),
                data_change: rm["dataChange"].as_bool().unwrap_or(true),
            };
            self.tombstones.insert(rel, t);
        } else if let Some(p) = action.get("protocol") {
            self.protocol = Some(p.clone());
        } else if let Some(m) = action.get("metaData") {
            if !m.get("schemaString").is_some_and(Value::is_string) {
                return Err(format!("malformed metaData action: {}", shorten(&m.to_string())));
            }
            self.metadata = Some(m.clone());
        }
        Ok(())
    }

    /// The latest version committed, if any.
    pub fn version(&self) -> Option<u64> {
        self.next.checked_sub(1)
    }

    /// Files the log holds, relative to the table's directory.
    pub fn files(&self) -> impl Iterator<Item = &String> {
        self.files.keys()
    }

    /// Commits what it takes for the log to hold exactly `files` (paths under
    /// `table_dir`): nothing when it already does. `data_change` says whether
    /// rows changed (a flush, retention) or were only rearranged (a compaction).
    pub fn sync(&mut self, table_dir: &Path, files: &[PathBuf], data_change: bool) -> Result<(), String> {
        let table = self.table.clone().ok_or("internal error: a Delta log without its table")?;
        let mut want: BTreeMap<String, PathBuf> = BTreeMap::new();
        for f in files {
            let rel =
                f.strip_prefix(table_dir).map_err(|_| format!("{} is outside {}", f.display(), table_dir.display()))?;
            want.insert(rel.to_string_lossy().into_owned(), f.clone());
        }
        let mut actions: Vec<Value> = Vec::new();
        let now = now_ms();
        let engine = format!("periscope {}", env!("CARGO_PKG_VERSION"));
        // A new log, or one started over: this commit states the table whole.
        let restating = self.next == 0 || self.restarted;
        if restating {
            let operation = if self.next == 0 { "CREATE TABLE" } else { "REPLACE TABLE" };
            actions.push(json!({"commitInfo": {"timestamp": now, "operation": operation,
                "operationParameters": {"partitionBy": format!("[\"{PARTITION}\"]")}, "engineInfo": engine}}));
            actions.push(json!({"protocol": {"minReaderVersion": 1, "minWriterVersion": 2}}));
            actions.push(json!({"metaData": {
                "id": table_uuid(table.name),
                "name": table.name,
                "description": table.description,
                "format": {"provider": "parquet", "options": {}},
                "schemaString": table.schema,
                "partitionColumns": [PARTITION],
                "configuration": {},
                "createdTime": now,
            }}));
        }
        let mut changed = false;
        // A table that gained columns since the log last stated its schema:
        // the new schema is committed first (Delta's schema evolution), so
        // readers see the new columns, null in the older files.
        let evolved =
            self.metadata.as_ref().filter(|m| !restating && m["schemaString"].as_str() != Some(table.schema.as_str()));
        if let Some(m) = evolved {
            let mut m = m.clone();
            m["schemaString"] = Value::String(table.schema.clone());
            actions.push(json!({ "metaData": m }));
            changed = true;
        }
        for (rel, path) in &want {
            if self.files.contains_key(rel) {
                continue;
            }
            let size = fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?.len();
            let mut add = json!({"path": encode(rel), "partitionValues": {PARTITION: partition_value(rel)},
                "size": size, "modificationTime": now, "dataChange": data_change});
            if let Some(n) = row_count(path) {
                add["stats"] = Value::String(json!({"numRecords": n}).to_string());
            }
            actions.push(json!({ "add": add }));
            changed = true;
        }
        let mut removed = false;
        for (rel, add) in self.files.iter().filter(|(rel, _)| !want.contains_key(*rel)) {
            actions.push(json!({"remove": {"path": encode(rel), "deletionTimestamp": now, "dataChange": data_change,
                "extendedFileMetadata": true, "partitionValues": {PARTITION: partition_value(rel)},
                "size": add["size"]}}));
            (changed, removed) = (true, true);
        }
        if !changed && !restating {
            return Ok(());
        }
        if !restating {
            let op = match (removed, data_change) {
                (false, _) => "WRITE",
                (true, true) => "DELETE",
                (true, false) => "OPTIMIZE",
            };
            actions.insert(0, json!({"commitInfo": {"timestamp": now, "operation": op, "engineInfo": engine}}));
        }
        self.commit(&actions)?;
        for a in &actions {
            self.apply(a)?;
        }
        self.checkpoint_due |= std::mem::take(&mut self.restarted);
        self.checkpoint_if_due();
        Ok(())
    }

    /// Checkpoints the latest version when [`CHECKPOINT_EVERY`] versions
    /// passed since the last checkpoint, or when the newest one could not be
    /// read; then removes what the retention lets go. The commits are
    /// durable already: a checkpoint that cannot be written now is only a
    /// slower read, and is tried again at the next version.
    fn checkpoint_if_due(&mut self) {
        let Some(v) = self.version() else { return };
        if !(self.checkpoint_due || v >= self.checkpointed + CHECKPOINT_EVERY) {
            return;
        }
        match self.checkpoint(v) {
            Ok(()) => {
                if let Err(e) = self.clean_up(LOG_RETENTION) {
                    tracing::warn!("Delta log {}: old commits not removed: {e}", self.dir.display());
                }
            }
            Err(e) => tracing::warn!("Delta log {}: no checkpoint at version {v}: {e}", self.dir.display()),
        }
    }

    /// The actions a checkpoint of the state holds: the protocol, the
    /// metadata, an `add` per file and a `remove` per file removed within
    /// [`TOMBSTONE_RETENTION`] (for other writers' VACUUM).
    fn state_actions(&self) -> Result<Vec<Value>, String> {
        let (Some(protocol), Some(metadata)) = (&self.protocol, &self.metadata) else {
            return Err("the log has no protocol or metaData action".into());
        };
        let expired = tombstones_expired_before();
        let mut actions = vec![json!({"protocol": protocol}), json!({"metaData": metadata})];
        actions.extend(self.files.values().map(|add| json!({"add": add})));
        for (rel, t) in self.tombstones.iter().filter(|(_, t)| t.deleted_ms > expired) {
            actions.push(json!({"remove": {"path": encode(rel), "deletionTimestamp": t.deleted_ms,
                "dataChange": t.data_change, "extendedFileMetadata": t.size.is_some(),
                "partitionValues": {PARTITION: partition_value(rel)}, "size": t.size}}));
        }
        Ok(actions)
    }

    /// Writes the checkpoint of version `v` (the state now), checks that it
    /// reads back to the same state, and points `_last_checkpoint` at it; each
    /// file atomically (a temporary file renamed, the directory synced).
    fn checkpoint(&mut self, v: u64) -> Result<(), String> {
        let actions = self.state_actions()?;
        let mut lines = Vec::new();
        for a in &actions {
            serde_json::to_writer(&mut lines, a).map_err(|e| e.to_string())?;
            lines.push(b'\n');
        }
        let schema = checkpoint_schema();
        let mut decoder = arrow_json::ReaderBuilder::new(schema.clone())
            .with_batch_size(actions.len())
            .with_strict_mode(true)
            .build_decoder()
            .map_err(|e| e.to_string())?;
        let mut at = 0;
        while at < lines.len() {
            let n = decoder.decode(&lines[at..]).map_err(|e| format!("checkpoint actions: {e}"))?;
            if n == 0 {
                break;
            }
            at += n;
        }
        let batch = decoder.flush().map_err(|e| format!("checkpoint actions: {e}"))?;
        let batch = batch.filter(|b| at == lines.len() && b.num_rows() == actions.len()).ok_or_else(|| {
            format!("internal error: checkpoint actions decoded short of the {} written", actions.len())
        })?;
        let sync_dir =
            || File::open(&self.dir).and_then(|d| d.sync_all()).map_err(|e| format!("{}: {e}", self.dir.display()));
        let path = checkpoint_path(&self.dir, v);
        let tmp = self.dir.join(format!(".{v:020}.checkpoint.parquet.tmp"));
        let err = |e: &dyn std::fmt::Display| format!("{}: {e}", tmp.display());
        let file = File::create(&tmp).map_err(|e| err(&e))?;
        let mut w = parquet::arrow::ArrowWriter::try_new(file, schema, None).map_err(|e| err(&e))?;
        w.write(&batch).map_err(|e| err(&e))?;
        let file = w.into_inner().map_err(|e| err(&e))?;
        file.sync_all().map_err(|e| err(&e))?;
        let size_in_bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
        // Once commits before it are removed, the checkpoint is the only record of the state: check it.
        let mut back = DeltaLog::default();
        read_checkpoint(&tmp)?.iter().try_for_each(|a| back.apply(a))?;
        let same = back.files == self.files && back.protocol == self.protocol && back.metadata == self.metadata;
        if !same {
            let _ = fs::remove_file(&tmp);
            return Err(format!("internal error: checkpoint {v} does not read back to the log's state"));
        }
        fs::rename(&tmp, &path).map_err(|e| err(&e))?;
        sync_dir()?;
        let last = json!({"version": v, "size": batch.num_rows(), "sizeInBytes": size_in_bytes,
                          "numOfAddFiles": self.files.len()});
        let tmp = self.dir.join("._last_checkpoint.tmp");
        fs::write(&tmp, last.to_string()).and_then(|_| File::open(&tmp)?.sync_all()).map_err(|e| err(&e))?;
        fs::rename(&tmp, self.dir.join("_last_checkpoint")).map_err(|e| err(&e))?;
        sync_dir()?;
        self.checkpointed = v;
        self.checkpoint_due = false;
        let expired = tombstones_expired_before();
        self.tombstones.retain(|_, t| t.deleted_ms > expired);
        Ok(())
    }

    /// Deletes the commits and checkpoints before the newest checkpoint whose
    /// version was committed more than `retention` ago, as Delta's metadata
    /// clean-up does: the log then starts at that checkpoint, and every
    /// version since can still be reconstructed (its data files may be gone:
    /// the store deletes replaced files once no query reads them).
    pub fn clean_up(&self, retention: Duration) -> Result<usize, String> {
        let listing = Listing::read(&self.dir)?;
        let cutoff = std::time::SystemTime::now().checked_sub(retention).unwrap_or(std::time::UNIX_EPOCH);
        let old = |p: &Path| fs::metadata(p).and_then(|m| m.modified()).is_ok_and(|t| t <= cutoff);
        let Some(&start) = listing.checkpoints.iter().rev().find(|&&c| {
            listing.commits.get(&c).is_some_and(|p| old(p)) && read_checkpoint(&checkpoint_path(&self.dir, c)).is_ok()
        }) else {
            return Ok(0);
        };
        let mut removed = 0;
        let doomed = listing.commits.range(..start).map(|(_, p)| p.clone());
        let doomed =
            doomed.chain(listing.checkpoints.iter().filter(|&&c| c < start).map(|&c| checkpoint_path(&self.dir, c)));
        for p in doomed {
            match fs::remove_file(&p) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(format!("{}: {e}", p.display())),
            }
        }
        Ok(removed)
    }

    /// Writes version `next` atomically: a temporary file linked into place,
    /// which fails rather than replace a commit that exists.
    fn commit(&mut self, actions: &[Value]) -> Result<(), String> {
        let err = |e: std::io::Error| format!("{}: {e}", self.dir.display());
        fs::create_dir_all(&self.dir).map_err(err)?;
        let name = format!("{:020}.json", self.next);
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let mut f = File::create(&tmp).map_err(err)?;
        for a in actions {
            serde_json::to_writer(&mut f, a).map_err(|e| e.to_string())?;
            f.write_all(b"\n").map_err(err)?;
        }
        f.sync_all().map_err(err)?;
        let linked = fs::hard_link(&tmp, self.dir.join(&name));
        let _ = fs::remove_file(&tmp);
        linked.map_err(|e| format!("{}: commit {name}: {e}", self.dir.display()))?;
        File::open(&self.dir).and_then(|d| d.sync_all()).map_err(err)?;
        self.next += 1;
        Ok(())
    }
}

/// The commits and checkpoints in a log directory, by version.
#[derive(Default)]
struct Listing {
    commits: BTreeMap<u64, PathBuf>,
    checkpoints: Vec<u64>,
}

impl Listing {
    fn read(dir: &Path) -> Result<Listing, String> {
        let mut l = Listing::default();
        let rd = match fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(l),
            Err(e) => return Err(format!("{}: {e}", dir.display())),
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(v) = name.strip_suffix(".json").and_then(|n| n.parse::<u64>().ok()) {
                l.commits.insert(v, e.path());
            } else if let Some(v) = name.strip_suffix(".checkpoint.parquet").and_then(|n| n.parse::<u64>().ok()) {
                l.checkpoints.push(v);
            }
        }
        l.checkpoints.sort_unstable();
        Ok(l)
    }
}

fn checkpoint_path(dir: &Path, v: u64) -> PathBuf {
    dir.join(format!("{v:020}.checkpoint.parquet"))
}

/// A checkpoint's actions, each row as the JSON action it stands for.
fn read_checkpoint(path: &Path) -> Result<Vec<Value>, String> {
    let err = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let file = File::open(path).map_err(|e| err(&e))?;
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.build())
        .map_err(|e| err(&e))?;
    let mut actions = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| err(&e))?;
        let mut w = arrow_json::LineDelimitedWriter::new(Vec::new());
        w.write(&batch).map_err(|e| err(&e))?;
        w.finish().map_err(|e| err(&e))?;
        for line in w.into_inner().split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            actions.push(serde_json::from_slice(line).map_err(|e| err(&e))?);
        }
    }
    Ok(actions)
}

/// The protocol's checkpoint schema, for the actions this log writes: one
/// nullable struct column per action type, each row holding one action.
/// Field names and nullability follow what Delta's writers produce.
fn checkpoint_schema() -> Arc<Schema> {
    let s = |n: &str, null: bool| Field::new(n, DataType::Utf8, null);
    let i64 = |n: &str, null: bool| Field::new(n, DataType::Int64, null);
    let map = |n: &str, values_null: bool, null: bool| {
        let entries = Field::new(
            "key_value",
            DataType::Struct(Fields::from(vec![s("key", false), s("value", values_null)])),
            false,
        );
        Field::new(n, DataType::Map(Arc::new(entries), false), null)
    };
    let strukt = |n: &str, fields: Vec<Field>, null: bool| Field::new(n, DataType::Struct(Fields::from(fields)), null);
    let list = |n: &str| Field::new(n, DataType::List(Arc::new(s("element", false))), false);
    Arc::new(Schema::new(vec![
        strukt("txn", vec![s("appId", false), i64("version", false), i64("lastUpdated", true)], true),
        strukt(
            "add",
            vec![
                s("path", false),
                map("partitionValues", true, false),
                i64("size", false),
                i64("modificationTime", false),
                Field::new("dataChange", DataType::Boolean, false),
                s("stats", true),
                map("tags", true, true),
            ],
            true,
        ),
        strukt(
            "remove",
            vec![
                s("path", false),
                i64("deletionTimestamp", true),
                Field::new("dataChange", DataType::Boolean, false),
                Field::new("extendedFileMetadata", DataType::Boolean, true),
                map("partitionValues", true, true),
                i64("size", true),
            ],
            true,
        ),
        strukt(
            "metaData",
            vec![
                s("id", false),
                s("name", true),
                s("description", true),
                strukt("format", vec![s("provider", false), map("options", false, false)], false),
                s("schemaString", false),
                list("partitionColumns"),
                i64("createdTime", true),
                map("configuration", false, false),
            ],
            true,
        ),
        strukt(
            "protocol",
            vec![
                Field::new("minReaderVersion", DataType::Int32, false),
                Field::new("minWriterVersion", DataType::Int32, false),
            ],
            true,
        ),
    ]))
}

/// A stable table id (a UUID derived from the table name), so that every data directory names a table alike.
fn table_uuid(name: &str) -> String {
    use sha2::Digest;
    let h = sha2::Sha256::digest(format!("periscope table {name}").as_bytes());
    let x: String = h.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &x[0..8], &x[8..12], &x[12..16], &x[16..20], &x[20..32])
}

/// Whether `name` is a temporary file of this module's (a commit, a
/// checkpoint or `_last_checkpoint` being written), not another writer's.
fn our_temporary(name: &str) -> bool {
    let Some(inner) = name.strip_prefix('.').and_then(|n| n.strip_suffix(".tmp")) else { return false };
    let version = inner.strip_suffix(".json").or_else(|| inner.strip_suffix(".checkpoint.parquet"));
    inner == "_last_checkpoint" || version.is_some_and(|v| v.len() == 20 && v.bytes().all(|b| b.is_ascii_digit()))
}

/// Opens the Delta log of every table under `tables_dir`, for the store's
/// one writer. Temporary files a crash left in the logs are removed; a
/// checkpoint is written when one is due (a log from before checkpoints, or
/// whose newest checkpoint does not read); a log that cannot
/// be replayed at all is started over (see [`DeltaLog::restart`]) rather
/// than keep the server from starting: the store, not the log, holds the rows.
pub fn open_all(tables_dir: &Path) -> Result<BTreeMap<&'static str, DeltaLog>, String> {
    let mut logs = BTreeMap::new();
    for t in TABLES {
        let dir = tables_dir.join(t.name);
        for e in fs::read_dir(log_dir(&dir)).into_iter().flatten().flatten() {
            if our_temporary(&e.file_name().to_string_lossy()) {
                let _ = fs::remove_file(e.path());
            }
        }
        let log = match DeltaLog::open(&dir, t) {
            Ok(mut log) => {
                log.checkpoint_if_due();
                log
            }
            Err(e) => {
                tracing::error!("Delta log of {}: {e}; started over at its next version", t.name);
                DeltaLog::restart(&dir, t)?
            }
        };
        logs.insert(t.name, log);
    }
    Ok(logs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use periscope_proto::tables::CRAWL_ERRORS;

    #[test]
    fn the_log_follows_the_file_set_and_replays_to_it() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let day = dir.join("day=2026-12-01");
        fs::create_dir_all(&day).unwrap();
        let (a, b, c) = (day.join("wal-1.parquet"), day.join("wal-2.parquet"), day.join("compact-3.parquet"));
        for f in [&a, &b, &c] {
            fs::write(f, b"not parquet, sized").unwrap();
        }
        let mut log = DeltaLog::open(dir, &CRAWL_ERRORS).unwrap();
        log.sync(dir, std::slice::from_ref(&a), true).unwrap();
        log.sync(dir, &[a.clone(), b.clone()], true).unwrap();
        log.sync(dir, &[a.clone(), b.clone()], true).unwrap();
        log.sync(dir, std::slice::from_ref(&c), false).unwrap();
        let versions = fs::read_dir(log_dir(dir)).unwrap().count();
        assert_eq!(versions, 3, "an unchanged set commits nothing");
        let first = fs::read_to_string(log_dir(dir).join(format!("{:020}.json", 0))).unwrap();
        assert!(
            first.contains("\"minReaderVersion\":1") && first.contains("\"partitionColumns\":[\"day\"]"),
            "{first}"
        );
        let last = fs::read_to_string(log_dir(dir).join(format!("{:020}.json", 2))).unwrap();
        assert_eq!(last.matches("\"remove\"").count(), 2, "{last}");
        assert!(last.contains("\"dataChange\":false") && last.contains("OPTIMIZE"), "{last}");
        let replayed = DeltaLog::open(dir, &CRAWL_ERRORS).unwrap();
        assert_eq!(replayed.files().cloned().collect::<Vec<_>>(), ["day=2026-12-01/compact-3.parquet"]);
        assert_eq!(replayed.next, 3);
        // A version never overwrites another.
        let mut stale = DeltaLog { next: 1, ..DeltaLog::open(dir, &CRAWL_ERRORS).unwrap() };
        let err = stale.commit(&[json!({"commitInfo": {}})]).unwrap_err();
        assert!(err.contains("exists"), "{err}");
    }

    /// `n` versions: a file outside any day directory throughout, and a
    /// sliding set of three in one day, each version adding one and, from the
    /// fourth on, removing the oldest.
    fn versions(dir: &Path, n: usize) -> DeltaLog {
        let day = dir.join("day=2026-12-01");
        fs::create_dir_all(&day).unwrap();
        let old = dir.join("old.parquet");
        fs::write(&old, b"from before partitions").unwrap();
        let mut log = DeltaLog::open(dir, &CRAWL_ERRORS).unwrap();
        let mut files = Vec::new();
        for i in 0..n {
            let f = day.join(format!("wal-{i}.parquet"));
            fs::write(&f, vec![b'x'; i + 1]).unwrap();
            files.push(f);
            if files.len() > 3 {
                files.remove(0);
            }
            log.sync(dir, &[&files[..], &[old.clone()]].concat(), true).unwrap();
        }
        log
    }

    fn state(log: &DeltaLog) -> (Vec<String>, u64) {
        (log.files().cloned().collect(), log.next)
    }

    #[test]
    fn checkpoints_replay_to_the_same_state_and_old_commits_go() {
        let tmp = tempfile::tempdir().unwrap();
        let tables = tmp.path().join("tables");
        let dir = &tables.join(CRAWL_ERRORS.name);
        let log = versions(dir, 25);
        let want = (log.files().cloned().collect::<Vec<_>>(), 25);
        assert_eq!(want.0.len(), 4);
        let logs = log_dir(dir);
        let last = || -> Value { serde_json::from_slice(&fs::read(logs.join("_last_checkpoint")).unwrap()).unwrap() };
        // Protocol, metadata, 4 files, and the 18 files removed by version 20 as tombstones.
        let l = last();
        assert_eq!(
            (l["version"].as_u64(), l["numOfAddFiles"].as_u64(), l["size"].as_u64()),
            (Some(20), Some(4), Some(24))
        );
        assert!(checkpoint_path(&logs, 10).exists() && checkpoint_path(&logs, 20).exists());
        // The checkpoint holds the actions in force, sizes and partition values included.
        let actions = read_checkpoint(&checkpoint_path(&logs, 20)).unwrap();
        assert_eq!(actions[0]["protocol"], json!({"minReaderVersion": 1, "minWriterVersion": 2}));
        assert_eq!(actions[1]["metaData"]["partitionColumns"], json!(["day"]));
        assert_eq!(actions[1]["metaData"]["schemaString"], json!(schema_string(&CRAWL_ERRORS)));
        assert_eq!(actions[2]["add"]["partitionValues"], json!({"day": "2026-12-01"}));
        assert_eq!(actions[2]["add"]["size"], json!(19), "wal-18, the oldest file at version 20: {:?}", actions[2]);
        let removes: Vec<&Value> = actions.iter().filter_map(|a| a.get("remove")).collect();
        assert_eq!(removes.len(), 18);
        assert!(removes.iter().all(|r| r["deletionTimestamp"].as_u64() > Some(0) && r["size"].as_u64() > Some(0)));

        let opened = DeltaLog::open(dir, &CRAWL_ERRORS).unwrap();
        assert_eq!(state(&opened), want);
        assert_eq!(opened.metadata, log.metadata);
        assert_eq!(opened.tombstones.len(), 22, "wal-0 to wal-21");
        // The null partition of a file outside a day directory survives a checkpoint.
        assert_eq!(opened.files["old.parquet"]["partitionValues"], json!({"day": null}));

        // A damaged newest checkpoint: read from the older one and the commits after it, and written anew.
        let good = fs::read(checkpoint_path(&logs, 20)).unwrap();
        fs::write(checkpoint_path(&logs, 20), &good[..good.len() / 2]).unwrap();
        assert_eq!(state(&DeltaLog::open(dir, &CRAWL_ERRORS).unwrap()), want);
        // What a crash leaves half-written is swept away when the store opens the logs; others' files stay.
        fs::write(logs.join(".00000000000000000030.checkpoint.parquet.tmp"), b"half").unwrap();
        fs::write(logs.join(".00000000000000000030.json.3f2a.tmp"), b"another writer's").unwrap();
        let all = open_all(&tables).unwrap();
        assert_eq!(state(&all[CRAWL_ERRORS.name]), want);
        assert!(!logs.join(".00000000000000000030.checkpoint.parquet.tmp").exists());
        assert!(logs.join(".00000000000000000030.json.3f2a.tmp").exists());
        assert_eq!(last()["version"], 24, "the damaged checkpoint is superseded");
        read_checkpoint(&checkpoint_path(&logs, 24)).unwrap();

        // Within the retention nothing goes; past it, everything before the newest checkpoint.
        assert_eq!(log.clean_up(LOG_RETENTION).unwrap(), 0);
        assert_eq!(log.clean_up(Duration::ZERO).unwrap(), 24 + 2, "commits 0-23, checkpoints 10 and 20");
        let left = Listing::read(&logs).unwrap();
        assert_eq!((left.commits.keys().collect::<Vec<_>>(), left.checkpoints.as_slice()), (vec![&24], &[24][..]));
        assert_eq!(state(&DeltaLog::open(dir, &CRAWL_ERRORS).unwrap()), want);

        // The one checkpoint torn too: replaying fails and says why; the store's open starts the log
        // over at version 25, restating the table, and readers start from its checkpoint.
        fs::write(checkpoint_path(&logs, 24), b"torn").unwrap();
        let e = DeltaLog::open(dir, &CRAWL_ERRORS).unwrap_err();
        assert!(e.contains("version 0 missing"), "{e}");
        let mut all = open_all(&tables).unwrap();
        let log = all.get_mut(CRAWL_ERRORS.name).unwrap();
        let files: Vec<PathBuf> = want.0.iter().map(|r| dir.join(r)).collect();
        log.sync(dir, &files, true).unwrap();
        assert_eq!(last()["version"], 25);
        let restarted = fs::read_to_string(logs.join(format!("{:020}.json", 25))).unwrap();
        assert!(restarted.contains("REPLACE TABLE") && restarted.contains("\"metaData\""), "{restarted}");
        assert_eq!(state(&DeltaLog::open(dir, &CRAWL_ERRORS).unwrap()), (want.0, 26));
    }

    /// A table that gained a column (crawls.received) after its log was
    /// started: the next commit states the new schema, so Delta readers see it.
    #[test]
    fn a_table_that_gained_columns_commits_its_new_schema() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let day = dir.join("day=2026-12-01");
        fs::create_dir_all(&day).unwrap();
        let (a, b) = (day.join("wal-1.parquet"), day.join("wal-2.parquet"));
        for f in [&a, &b] {
            fs::write(f, b"x").unwrap();
        }
        DeltaLog::open(dir, &CRAWL_ERRORS).unwrap().sync(dir, std::slice::from_ref(&a), true).unwrap();
        // Version 0 as an older build wrote it: one column fewer.
        let v0 = log_dir(dir).join(format!("{:020}.json", 0));
        let older: Vec<String> = fs::read_to_string(&v0)
            .unwrap()
            .lines()
            .map(|l| {
                let mut v: Value = serde_json::from_str(l).unwrap();
                if let Some(m) = v.get_mut("metaData") {
                    let mut schema: Value = serde_json::from_str(m["schemaString"].as_str().unwrap()).unwrap();
                    schema["fields"].as_array_mut().unwrap().pop();
                    m["schemaString"] = Value::String(schema.to_string());
                }
                v.to_string()
            })
            .collect();
        fs::write(&v0, older.join("\n") + "\n").unwrap();
        let mut log = DeltaLog::open(dir, &CRAWL_ERRORS).unwrap();
        assert_ne!(log.metadata.as_ref().unwrap()["schemaString"], json!(schema_string(&CRAWL_ERRORS)));
        log.sync(dir, &[a.clone(), b.clone()], true).unwrap();
        let v1 = fs::read_to_string(log_dir(dir).join(format!("{:020}.json", 1))).unwrap();
        assert!(v1.contains("\"metaData\"") && v1.contains("\"add\""), "{v1}");
        let reopened = DeltaLog::open(dir, &CRAWL_ERRORS).unwrap();
        assert_eq!(reopened.metadata.as_ref().unwrap()["schemaString"], json!(schema_string(&CRAWL_ERRORS)));
        assert_eq!(reopened.metadata.as_ref().unwrap()["id"], json!(table_uuid(CRAWL_ERRORS.name)), "the same table");
        // Once stated, not again.
        let mut log = reopened;
        let c = day.join("wal-3.parquet");
        fs::write(&c, b"y").unwrap();
        log.sync(dir, &[a, b, c], true).unwrap();
        let v2 = fs::read_to_string(log_dir(dir).join(format!("{:020}.json", 2))).unwrap();
        assert!(!v2.contains("\"metaData\""), "{v2}");
    }

    /// Issue 18 item 13: `{"add":5}` in a commit made `serve` panic at every start.
    #[test]
    fn malformed_actions_are_errors_and_the_store_starts_the_log_over() {
        let tmp = tempfile::tempdir().unwrap();
        let tables = tmp.path().join("tables");
        let dir = &tables.join(CRAWL_ERRORS.name);
        let log = versions(dir, 3);
        let want = state(&log).0;
        for bad in
            [r#"{"add":5}"#, r#"{"remove":"x"}"#, r#"{"add":{"path":7}}"#, r#"{"add":null}"#, r#"{"metaData":5}"#]
        {
            fs::write(log_dir(dir).join(format!("{:020}.json", 3)), format!("{bad}\n")).unwrap();
            let e = DeltaLog::open(dir, &CRAWL_ERRORS).unwrap_err();
            assert!(e.contains("malformed"), "{bad}: {e}");
            let mut all = open_all(&tables).unwrap();
            let restarted = all.get_mut(CRAWL_ERRORS.name).unwrap();
            let files: Vec<PathBuf> = want.iter().map(|r| dir.join(r)).collect();
            restarted.sync(dir, &files, true).unwrap();
            assert_eq!(state(&DeltaLog::open(dir, &CRAWL_ERRORS).unwrap()).0, want, "{bad}");
            // Back to the three good versions for the next case.
            for v in 3.. {
                let (c, k) = (log_dir(dir).join(format!("{v:020}.json")), checkpoint_path(&log_dir(dir), v));
                if !c.exists() && !k.exists() {
                    break;
                }
                let _ = fs::remove_file(c);
                let _ = fs::remove_file(k);
            }
            let _ = fs::remove_file(log_dir(dir).join("_last_checkpoint"));
        }
    }

    #[test]
    fn paths_are_percent_encoded_and_decoded() {
        assert_eq!(encode("day=2026-12-01/a b:c.parquet"), "day=2026-12-01/a%20b%3Ac.parquet");
        assert_eq!(decode(&encode("day=x/ü.parquet")), "day=x/ü.parquet");
    }
}
