//! The durable store: one directory per table under `<data>/tables/`, holding
//! immutable Parquet files. A file becomes visible only by an atomic rename
//! after its bytes and then its directory are fsynced, so a reader — the
//! server, or `periscope sql --data` in another process — never sees a partial
//! file, and an acknowledged batch survives a crash.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use arrow_array::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use periscope_proto::tables::{TABLES, Table};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("data directory {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("writing parquet {path}: {source}")]
    Parquet { path: PathBuf, source: parquet::errors::ParquetError },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io { path: path.to_path_buf(), source }
}

#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    counter: AtomicU64,
}

impl Store {
    /// Opens (creating as needed) a data directory with a folder per declared table.
    pub fn open(dir: impl AsRef<Path>) -> Result<Store, StoreError> {
        let dir = dir.as_ref().to_path_buf();
        for t in TABLES {
            let d = table_dir(&dir, t);
            fs::create_dir_all(&d).map_err(io(&d))?;
        }
        Ok(Store { dir, counter: AtomicU64::new(0) })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes `batches` of `table` as one Parquet file and returns only once it
    /// is durable. Blocking: call from a blocking context.
    pub fn append(&self, table: &Table, batches: &[RecordBatch]) -> Result<u64, StoreError> {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        self.write(table, batches, &format!("part-{nanos:020}-{}-{n:06}.parquet", std::process::id()))
    }

    /// Like [`append`](Self::append) for a batch an agent numbered: the file
    /// is named after (agent, boot epoch, seq), so a batch sent again after a
    /// lost acknowledgement (server crash, broken stream) finds its file
    /// already there and is not stored twice.
    pub fn apply(
        &self,
        table: &Table,
        batches: &[RecordBatch],
        agent_id: &str,
        epoch: u64,
        seq: u64,
    ) -> Result<u64, StoreError> {
        use sha2::Digest;
        let agent: String =
            sha2::Sha256::digest(agent_id.as_bytes()).iter().take(8).map(|b| format!("{b:02x}")).collect();
        self.write(table, batches, &format!("batch-{agent}-{epoch:020}-{seq:012}.parquet"))
    }

    fn write(&self, table: &Table, batches: &[RecordBatch], name: &str) -> Result<u64, StoreError> {
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        if rows == 0 {
            return Ok(0);
        }
        let dir = table_dir(&self.dir, table);
        let tmp = dir.join(format!(".{name}.tmp"));
        let dst = dir.join(name);
        if dst.exists() {
            return Ok(rows as u64);
        }
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).expect("valid zstd level")))
            .build();
        let file = File::create(&tmp).map_err(io(&tmp))?;
        let pq = |source| StoreError::Parquet { path: tmp.clone(), source };
        let mut w = ArrowWriter::try_new(file, table.schema(), Some(props)).map_err(pq)?;
        for b in batches {
            w.write(b).map_err(pq)?;
        }
        let file = w.into_inner().map_err(pq)?;
        file.sync_all().map_err(io(&tmp))?;
        drop(file);
        fs::rename(&tmp, &dst).map_err(io(&dst))?;
        File::open(&dir).and_then(|d| d.sync_all()).map_err(io(&dir))?;
        Ok(rows as u64)
    }
}

/// Where a table's files live under a data directory.
pub fn table_dir(data: &Path, table: &Table) -> PathBuf {
    data.join("tables").join(table.name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use periscope_proto::tables::CRAWL_ERRORS;

    #[test]
    fn append_leaves_only_complete_parquet_files() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        let schema = CRAWL_ERRORS.schema();
        assert_eq!(store.append(&CRAWL_ERRORS, &[RecordBatch::new_empty(schema)]).unwrap(), 0);
        let batch = crate::testutil::crawl_error_batch(3);
        assert_eq!(store.append(&CRAWL_ERRORS, &[batch.clone(), batch]).unwrap(), 6);
        let files: Vec<_> = fs::read_dir(table_dir(tmp.path(), &CRAWL_ERRORS))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(files.len(), 1, "{files:?}");
        assert!(files[0].starts_with("part-") && files[0].ends_with(".parquet"));
        let f = File::open(table_dir(tmp.path(), &CRAWL_ERRORS).join(&files[0])).unwrap();
        let r = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f).unwrap().build().unwrap();
        assert_eq!(r.map(|b| b.unwrap().num_rows()).sum::<usize>(), 6);
    }

    #[test]
    fn a_numbered_batch_sent_twice_is_stored_once() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        let batch = crate::testutil::crawl_error_batch(2);
        let count = || fs::read_dir(table_dir(tmp.path(), &CRAWL_ERRORS)).unwrap().count();
        assert_eq!(store.apply(&CRAWL_ERRORS, std::slice::from_ref(&batch), "a", 7, 1).unwrap(), 2);
        assert_eq!(store.apply(&CRAWL_ERRORS, std::slice::from_ref(&batch), "a", 7, 1).unwrap(), 2);
        assert_eq!(count(), 1, "the repeat was acknowledged without a second file");
        for (agent, epoch, seq) in [("b", 7, 1), ("a", 8, 1), ("a", 7, 2)] {
            store.apply(&CRAWL_ERRORS, std::slice::from_ref(&batch), agent, epoch, seq).unwrap();
        }
        assert_eq!(count(), 4, "another agent, epoch or seq is another batch");
    }
}
