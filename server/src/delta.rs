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
//! (reader 1, writer 2), no checkpoints — rather than with the `deltalake`
//! crate, which would bring a second HTTP stack and C-compiled crypto into a
//! build where compile time is scarce. Commits are created with `link(2)`,
//! which fails instead of overwriting: the put-if-absent the protocol requires.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use periscope_proto::tables::{ColumnType, TABLES, Table};
use serde_json::{Value, json};

/// The partition column: the UTC day of the rows' crawl_time, `YYYY-MM-DD`.
pub const PARTITION: &str = "day";

/// Directory of a table's Delta log.
pub fn log_dir(table_dir: &Path) -> PathBuf {
    table_dir.join("_delta_log")
}

/// A table's log as replayed: its latest version and the files it holds.
#[derive(Debug, Default)]
pub struct DeltaLog {
    dir: PathBuf,
    table: Option<&'static Table>,
    next: u64,
    /// Relative path → size in bytes.
    files: BTreeMap<String, u64>,
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

impl DeltaLog {
    /// Replays the log of the table in `table_dir` (empty when it has none yet).
    pub fn open(table_dir: &Path, table: &'static Table) -> Result<DeltaLog, String> {
        let dir = log_dir(table_dir);
        let mut log = DeltaLog { dir: dir.clone(), table: Some(table), ..Default::default() };
        let mut versions: Vec<(u64, PathBuf)> = match fs::read_dir(&dir) {
            Ok(rd) => rd
                .flatten()
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let v = name.strip_suffix(".json")?.parse::<u64>().ok()?;
                    Some((v, e.path()))
                })
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(format!("{}: {e}", dir.display())),
        };
        versions.sort();
        for (v, path) in versions {
            if v != log.next {
                return Err(format!("{}: version {} missing", dir.display(), log.next));
            }
            let text = fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                let action: Value = serde_json::from_str(line).map_err(|e| format!("{}: {e}", path.display()))?;
                if let Some(add) = action.get("add") {
                    let p = add["path"].as_str().unwrap_or_default();
                    log.files.insert(decode(p), add["size"].as_u64().unwrap_or(0));
                } else if let Some(rm) = action.get("remove") {
                    log.files.remove(&decode(rm["path"].as_str().unwrap_or_default()));
                }
            }
            log.next = v + 1;
        }
        Ok(log)
    }

    /// Files the log holds, relative to the table's directory.
    pub fn files(&self) -> impl Iterator<Item = &String> {
        self.files.keys()
    }

    /// Commits what it takes for the log to hold exactly `files` (paths under
    /// `table_dir`): nothing when it already does. `data_change` says whether
    /// rows changed (a flush, retention) or were only rearranged (a compaction).
    pub fn sync(&mut self, table_dir: &Path, files: &[PathBuf], data_change: bool) -> Result<(), String> {
        let table = self.table.ok_or("internal error: a Delta log without its table")?;
        let mut want: BTreeMap<String, PathBuf> = BTreeMap::new();
        for f in files {
            let rel =
                f.strip_prefix(table_dir).map_err(|_| format!("{} is outside {}", f.display(), table_dir.display()))?;
            want.insert(rel.to_string_lossy().into_owned(), f.clone());
        }
        let mut actions: Vec<Value> = Vec::new();
        let now = now_ms();
        if self.next == 0 {
            actions.push(json!({"commitInfo": {"timestamp": now, "operation": "CREATE TABLE",
                "operationParameters": {"partitionBy": format!("[\"{PARTITION}\"]")},
                "engineInfo": format!("periscope {}", env!("CARGO_PKG_VERSION"))}}));
            actions.push(json!({"protocol": {"minReaderVersion": 1, "minWriterVersion": 2}}));
            actions.push(json!({"metaData": {
                "id": table_uuid(table),
                "name": table.name,
                "description": table.description,
                "format": {"provider": "parquet", "options": {}},
                "schemaString": schema_string(table),
                "partitionColumns": [PARTITION],
                "configuration": {},
                "createdTime": now,
            }}));
        }
        let mut added = Vec::new();
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
            added.push((rel.clone(), size));
        }
        let removed: Vec<(String, u64)> =
            self.files.iter().filter(|(rel, _)| !want.contains_key(*rel)).map(|(r, s)| (r.clone(), *s)).collect();
        for (rel, size) in &removed {
            actions.push(json!({"remove": {"path": encode(rel), "deletionTimestamp": now, "dataChange": data_change,
                "extendedFileMetadata": true, "partitionValues": {PARTITION: partition_value(rel)}, "size": size}}));
        }
        if added.is_empty() && removed.is_empty() && self.next > 0 {
            return Ok(());
        }
        if self.next > 0 {
            let op = if removed.is_empty() {
                "WRITE"
            } else if data_change {
                "DELETE"
            } else {
                "OPTIMIZE"
            };
            actions.insert(
                0,
                json!({"commitInfo": {"timestamp": now, "operation": op,
                "engineInfo": format!("periscope {}", env!("CARGO_PKG_VERSION"))}}),
            );
        }
        self.commit(&actions)?;
        for (rel, size) in added {
            self.files.insert(rel, size);
        }
        for (rel, _) in removed {
            self.files.remove(&rel);
        }
        Ok(())
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

/// A stable table id (a UUID derived from the table name), so that every data directory names a table alike.
fn table_uuid(t: &Table) -> String {
    use sha2::Digest;
    let h = sha2::Sha256::digest(format!("periscope table {}", t.name).as_bytes());
    let x: String = h.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &x[0..8], &x[8..12], &x[12..16], &x[16..20], &x[20..32])
}

/// Opens the Delta log of every table under `tables_dir`.
pub fn open_all(tables_dir: &Path) -> Result<BTreeMap<&'static str, DeltaLog>, String> {
    TABLES.iter().map(|t| Ok((t.name, DeltaLog::open(&tables_dir.join(t.name), t)?))).collect()
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

    #[test]
    fn paths_are_percent_encoded_and_decoded() {
        assert_eq!(encode("day=2026-12-01/a b:c.parquet"), "day=2026-12-01/a%20b%3Ac.parquet");
        assert_eq!(decode(&encode("day=x/ü.parquet")), "day=x/ü.parquet");
    }
}
