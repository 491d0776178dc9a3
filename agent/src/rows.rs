//! A scope's finished batches, waiting to be sent or printed. A crawl's rows
//! are held here, not in a plain list: past [`SPILL_BYTES`] in memory, more
//! batches wait on disk, in an unlinked temporary file (Arrow IPC, one
//! stream per batch) in the spill directory (see [`set_spill_dir`]), and are
//! read back one at a time when sent. A row bomb
//! then costs disk, not memory: what a scope holds in memory is bounded by
//! [`SPILL_BYTES`] plus one batch, whatever its files say.
//!
//! Each table's digest (see [`crate::changes`]) is taken as its batches
//! arrive: it depends on the table's rows, in order, and on nothing else —
//! not on where the rows were cut into batches, nor on which batches spilled.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use arrow_array::cast::AsArray;
use arrow_array::types::{Int64Type, TimestampMicrosecondType};
use arrow_array::{Array, RecordBatch};
use arrow_ipc::reader::StreamReader;
use arrow_ipc::writer::StreamWriter;
use arrow_schema::{DataType, SchemaRef};
use periscope_proto::tables::{COMMON_COLUMNS, Table};
use sha2::{Digest, Sha256};

use crate::crawl::table_of;

/// Where spill files are made; `None`: the temporary directory.
static SPILL_DIR: std::sync::RwLock<Option<PathBuf>> = std::sync::RwLock::new(None);
/// Making a spill file failed: later scopes keep their rows in memory
/// without trying again (and saying so again) each scope of each crawl.
static SPILL_BROKEN: AtomicBool = AtomicBool::new(false);
/// A spill problem was warned of: one warning per process.
static SPILL_WARNED: AtomicBool = AtomicBool::new(false);

/// Makes this process's spill files in `dir` (the daemon's spool directory,
/// on disk and writable: a read-only root filesystem has no writable /tmp,
/// and a tmpfs /tmp costs memory). Without it, the temporary directory.
pub fn set_spill_dir(dir: impl Into<PathBuf>) {
    *SPILL_DIR.write().unwrap_or_else(|e| e.into_inner()) = Some(dir.into());
    SPILL_BROKEN.store(false, Ordering::Relaxed);
}

fn spill_dir() -> PathBuf {
    SPILL_DIR.read().unwrap_or_else(|e| e.into_inner()).clone().unwrap_or_else(std::env::temp_dir)
}

/// Bytes of batches a [`Rows`] keeps in memory; later batches wait on disk.
pub const SPILL_BYTES: usize = 4 << 20;

/// Batches of one crawl, in the order they were made, with a digest per table.
#[derive(Default)]
pub struct Rows {
    held: Vec<Held>,
    in_memory: usize,
    spill: Option<File>,
    /// Whether a spill file could not be made or written (then everything stays in memory).
    spill_failed: bool,
    digests: Vec<(&'static Table, Digester)>,
    rows: usize,
}

struct Held {
    table: &'static Table,
    rows: usize,
    at: Place,
}

enum Place {
    Memory(RecordBatch),
    /// One Arrow IPC stream of `len` bytes at `offset` of the spill file.
    Disk {
        schema: SchemaRef,
        offset: u64,
        len: u64,
    },
}

impl std::fmt::Debug for Rows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let spilled = self.held.iter().filter(|h| matches!(h.at, Place::Disk { .. })).count();
        f.debug_struct("Rows")
            .field("batches", &self.held.len())
            .field("spilled", &spilled)
            .field("rows", &self.rows)
            .finish()
    }
}

impl From<Vec<RecordBatch>> for Rows {
    fn from(batches: Vec<RecordBatch>) -> Self {
        let mut r = Rows::default();
        for b in batches {
            r.push(b);
        }
        r
    }
}

impl Rows {
    /// Rows held in memory up to [`SPILL_BYTES`], the rest on disk.
    pub fn new() -> Self {
        Rows::default()
    }

    /// Adds a batch (one without rows is dropped).
    pub fn push(&mut self, b: RecordBatch) {
        self.push_within(b, SPILL_BYTES)
    }

    /// [`Rows::push`], keeping at most `memory` bytes of batches in memory.
    pub fn push_within(&mut self, b: RecordBatch, memory: usize) {
        if b.num_rows() == 0 {
            return;
        }
        let table = table_of(&b);
        let d = match self.digests.iter_mut().position(|(t, _)| t.name == table.name) {
            Some(i) => &mut self.digests[i].1,
            None => {
                self.digests.push((table, Digester::default()));
                &mut self.digests.last_mut().expect("just pushed").1
            }
        };
        d.update(&b);
        self.rows += b.num_rows();
        let size = b.get_array_memory_size();
        let rows = b.num_rows();
        let cannot = self.spill_failed || (self.spill.is_none() && SPILL_BROKEN.load(Ordering::Relaxed));
        let at = if self.in_memory + size <= memory || cannot {
            self.in_memory += size;
            Place::Memory(b)
        } else {
            match self.write(&b) {
                Ok((offset, len)) => Place::Disk { schema: b.schema(), offset, len },
                Err(e) => {
                    if !SPILL_WARNED.swap(true, Ordering::Relaxed) {
                        tracing::warn!(
                            "cannot spill crawls' rows to a file in {}, keeping them in memory: {e} (said once)",
                            spill_dir().display()
                        );
                    }
                    self.spill_failed = true;
                    self.in_memory += size;
                    Place::Memory(b)
                }
            }
        };
        self.held.push(Held { table, rows, at });
    }

    /// Appends `b` to the spill file: its offset and length there.
    fn write(&mut self, b: &RecordBatch) -> std::io::Result<(u64, u64)> {
        if self.spill.is_none() {
            let file = unlinked_temp_file(&spill_dir());
            if file.is_err() {
                SPILL_BROKEN.store(true, Ordering::Relaxed);
            }
            self.spill = Some(file?);
        }
        let mut file = self.spill.as_ref().expect("just made");
        let offset = file.seek(std::io::SeekFrom::End(0))?;
        let mut out = BufWriter::with_capacity(64 << 10, file);
        let mut w = StreamWriter::try_new(&mut out, b.schema_ref()).map_err(std::io::Error::other)?;
        w.write(b).map_err(std::io::Error::other)?;
        w.finish().map_err(std::io::Error::other)?;
        drop(w);
        out.flush()?;
        drop(out);
        let end = file.stream_position()?;
        Ok((offset, end - offset))
    }

    /// Rows of every batch.
    pub fn num_rows(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// Batches waiting on disk.
    pub fn spilled(&self) -> usize {
        self.held.iter().filter(|h| matches!(h.at, Place::Disk { .. })).count()
    }

    /// Bytes of batches held in memory.
    pub fn memory_bytes(&self) -> usize {
        self.in_memory
    }

    /// The tables with rows, in the order their first batch came.
    pub fn tables(&self) -> Vec<&'static Table> {
        let mut out: Vec<&'static Table> = Vec::new();
        for h in &self.held {
            if !out.iter().any(|t| t.name == h.table.name) {
                out.push(h.table);
            }
        }
        out
    }

    /// Rows of `table`.
    pub fn rows_of(&self, table: &Table) -> usize {
        self.held.iter().filter(|h| h.table.name == table.name).map(|h| h.rows).sum()
    }

    /// Digest of `table`'s rows without the common columns (which name the
    /// scope and the crawl, and so differ every time): equal rows in equal
    /// order, equal digests, however they were batched.
    pub fn digest(&self, table: &Table) -> Option<[u8; 32]> {
        self.digests.iter().find(|(t, _)| t.name == table.name).map(|(_, d)| d.finish())
    }

    /// Forgets `table`'s batches (its spilled bytes stay in the file until it is dropped).
    pub fn remove_table(&mut self, table: &Table) {
        self.held.retain(|h| {
            let keep = h.table.name != table.name;
            if !keep && let Place::Memory(b) = &h.at {
                self.in_memory -= b.get_array_memory_size();
            }
            keep
        });
        self.digests.retain(|(t, _)| t.name != table.name);
        self.rows = self.held.iter().map(|h| h.rows).sum();
    }

    /// Every batch in order, spilled ones read back one at a time.
    pub fn iter(&self) -> impl Iterator<Item = std::io::Result<RecordBatch>> + '_ {
        self.held.iter().map(|h| self.load(h))
    }

    /// `table`'s batches in order, spilled ones read back one at a time.
    pub fn of_table<'a>(&'a self, table: &'a Table) -> impl Iterator<Item = std::io::Result<RecordBatch>> + 'a {
        self.held.iter().filter(move |h| h.table.name == table.name).map(|h| self.load(h))
    }

    /// Every batch, all in memory at once: for tests and small crawls.
    pub fn to_vec(&self) -> Vec<RecordBatch> {
        self.iter().collect::<Result<_, _>>().expect("internal error: a crawl's spilled rows cannot be read back")
    }

    /// Empties the spill file, so that spilled batches cannot be read back.
    #[cfg(test)]
    pub fn break_spill(&self) {
        self.spill.as_ref().expect("a spill file").set_len(0).unwrap();
    }

    fn load(&self, h: &Held) -> std::io::Result<RecordBatch> {
        match &h.at {
            Place::Memory(b) => Ok(b.clone()),
            Place::Disk { schema, offset, len } => {
                let file = self.spill.as_ref().expect("a spilled batch has a spill file");
                let part = BufReader::with_capacity(64 << 10, At { file, at: *offset, end: offset + len });
                let mut r = StreamReader::try_new(part, None).map_err(std::io::Error::other)?;
                let b = r.next().ok_or_else(|| std::io::Error::other("spilled batch missing"))?;
                let b = b.map_err(std::io::Error::other)?;
                // The declared schema, metadata and all, as the batch was made.
                RecordBatch::try_new(schema.clone(), b.columns().to_vec()).map_err(std::io::Error::other)
            }
        }
    }
}

/// A window of a file, read by position (the file is shared by every reader).
struct At<'a> {
    file: &'a File,
    at: u64,
    end: u64,
}

impl Read for At<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let want = buf.len().min((self.end - self.at) as usize);
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.at)?;
        self.at += n as u64;
        Ok(n)
    }
}

/// A temporary file with no name in the spill directory (see
/// [`set_spill_dir`]), for what a collector would otherwise hold in memory.
pub fn spill_file() -> std::io::Result<File> {
    unlinked_temp_file(&spill_dir())
}

/// A temporary file with no name in `dir`: gone when closed, whatever
/// happens to the agent, and never seen by a crawl of the host.
fn unlinked_temp_file(dir: &Path) -> std::io::Result<File> {
    use rustix::fs::{Mode, OFlags};
    let flags = OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC;
    match rustix::fs::open(dir, flags, Mode::from_raw_mode(0o600)) {
        Ok(fd) => Ok(File::from(fd)),
        // No O_TMPFILE on this filesystem: a fresh name, unlinked at once.
        Err(_) => named_then_unlinked(dir),
    }
}

fn named_then_unlinked(dir: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let pid = std::process::id();
    for n in 0..100u32 {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let path = dir.join(format!(".periscope-rows-{pid}-{}-{n}", nanos.as_nanos()));
        match std::fs::OpenOptions::new().read(true).write(true).create_new(true).mode(0o600).open(&path) {
            Ok(f) => {
                if let Err(e) = std::fs::remove_file(&path) {
                    // A file that would outlive the agent is not used: emptied, it costs nothing.
                    let _ = f.set_len(0);
                    return Err(std::io::Error::new(e.kind(), format!("cannot unlink {}: {e}", path.display())));
                }
                return Ok(f);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::other("no free temporary file name"))
}

/// Feeds `h` each row of a fixed-width column: tagged present (then its
/// bytes) or null.
fn fixed_width(h: &mut Sha256, col: &dyn Array, value: impl Fn(usize) -> [u8; 8]) {
    for r in 0..col.len() {
        if col.is_valid(r) {
            h.update([1]);
            h.update(value(r));
        } else {
            h.update([0]);
        }
    }
}

/// A table's digest, fed batch by batch: one hash per column over its values
/// in row order (each value tagged null or not, strings with their length),
/// so batch boundaries never show.
#[derive(Default, Clone)]
struct Digester {
    columns: Vec<(String, Sha256)>,
}

impl Digester {
    fn update(&mut self, b: &RecordBatch) {
        let schema = b.schema();
        let mut i = 0;
        for (f, col) in schema.fields().iter().zip(b.columns()) {
            if COMMON_COLUMNS.iter().any(|c| c.name == f.name()) {
                continue;
            }
            if self.columns.len() <= i {
                self.columns.push((f.name().clone(), Sha256::new()));
            }
            let h = &mut self.columns[i].1;
            i += 1;
            let present = |r: usize| col.is_valid(r);
            match f.data_type() {
                DataType::Utf8 => {
                    let a = col.as_string::<i32>();
                    for r in 0..a.len() {
                        if present(r) {
                            let v = a.value(r).as_bytes();
                            h.update([1]);
                            h.update((v.len() as u64).to_le_bytes());
                            h.update(v);
                        } else {
                            h.update([0]);
                        }
                    }
                }
                DataType::Int64 => {
                    let a = col.as_primitive::<Int64Type>();
                    fixed_width(h, col.as_ref(), |r| a.value(r).to_le_bytes());
                }
                DataType::Timestamp(..) => {
                    let a = col.as_primitive::<TimestampMicrosecondType>();
                    fixed_width(h, col.as_ref(), |r| a.value(r).to_le_bytes());
                }
                DataType::Boolean => {
                    let a = col.as_boolean();
                    for r in 0..a.len() {
                        h.update(if !present(r) {
                            [0]
                        } else if a.value(r) {
                            [2]
                        } else {
                            [1]
                        });
                    }
                }
                other => unreachable!("internal error: no table declares a {other} column"),
            }
        }
    }

    fn finish(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        for (name, c) in &self.columns {
            h.update((name.len() as u64).to_le_bytes());
            h.update(name.as_bytes());
            h.update(c.clone().finalize());
        }
        h.finalize().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::Sink;
    use crate::encode::{Common, Value};
    use periscope_proto::tables::{OS, PACKAGE_FILES};

    fn common(time: i64) -> Common {
        Common { host: "h".into(), scope: "image".into(), scope_id: "s".into(), crawl_time_us: time }
    }

    /// One batch per `cut` rows of package_files, made by a sink.
    fn batches(paths: &[String], cut: usize, time: i64) -> Vec<RecordBatch> {
        let mut out = Vec::new();
        for part in paths.chunks(cut) {
            let mut s = Sink::new(common(time));
            for p in part {
                s.row(&PACKAGE_FILES, &[("manager", "dpkg".into()), ("package", "p".into()), ("path", p.into())]);
            }
            out.extend(s.finish());
        }
        out
    }

    /// The unchanged-host daemon test resent 90% of a host's bytes once
    /// batches spilled: a table's digest must follow its rows alone.
    #[test]
    fn a_tables_digest_depends_on_its_rows_not_on_batches_or_spilling() {
        let paths: Vec<String> = (0..5000).map(|i| format!("/usr/lib/f{i}")).collect();
        let whole = Rows::from(batches(&paths, paths.len(), 1));
        assert_eq!(whole.spilled(), 0);
        // Other boundaries, another crawl time, and every batch but the first on disk.
        let mut cut = Rows::new();
        for b in batches(&paths, 333, 2) {
            cut.push_within(b, 1);
        }
        assert!(cut.spilled() > 10, "{cut:?}");
        let d = whole.digest(&PACKAGE_FILES).unwrap();
        assert_eq!(cut.digest(&PACKAGE_FILES).unwrap(), d);
        // Read back, the same rows: pushed again in other batches, the same digest.
        let mut again = Rows::new();
        for b in cut.to_vec() {
            again.push_within(b, 0);
        }
        assert_eq!(again.digest(&PACKAGE_FILES).unwrap(), d);
        assert_eq!(again.num_rows(), 5000);
        assert!(again.to_vec().iter().all(|b| table_of(b).name == PACKAGE_FILES.name));
        // One changed row, or the same rows in another order: another digest.
        let mut changed = paths.clone();
        changed[4321].push('x');
        assert_ne!(Rows::from(batches(&changed, 1000, 1)).digest(&PACKAGE_FILES).unwrap(), d);
        let mut swapped = paths.clone();
        swapped.swap(1, 2);
        assert_ne!(Rows::from(batches(&swapped, 1000, 1)).digest(&PACKAGE_FILES).unwrap(), d);
        // A value moved between columns is a change too.
        let mut a = Sink::new(common(1));
        a.row(&OS, &[("id", "ab".into()), ("name", Value::Null)]);
        let mut b = Sink::new(common(1));
        b.row(&OS, &[("id", Value::Null), ("name", "ab".into())]);
        assert_ne!(Rows::from(a.finish()).digest(&OS), Rows::from(b.finish()).digest(&OS));
    }

    /// Spill files are made in the directory asked for, and leave no name there.
    #[test]
    fn spill_files_leave_nothing_in_their_directory() {
        let dir = tempfile::tempdir().unwrap();
        for make in [unlinked_temp_file, named_then_unlinked] {
            let f = make(dir.path()).unwrap();
            (&f).write_all(b"rows").unwrap();
            assert_eq!(f.metadata().unwrap().len(), 4);
            assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        }
        assert!(unlinked_temp_file(&dir.path().join("missing")).is_err());
    }

    /// Spilled batches come back in order, with their rows and schema.
    #[test]
    fn spilled_batches_read_back_in_order() {
        let paths: Vec<String> = (0..1000).map(|i| format!("/p{i}")).collect();
        let mut r = Rows::new();
        let made = batches(&paths, 100, 1);
        for (i, b) in made.iter().enumerate() {
            r.push_within(b.clone(), if i % 2 == 0 { 0 } else { usize::MAX });
        }
        assert_eq!(r.spilled(), 5);
        assert_eq!(r.to_vec(), made);
        assert_eq!(r.rows_of(&PACKAGE_FILES), 1000);
        r.remove_table(&PACKAGE_FILES);
        assert!(r.is_empty() && r.num_rows() == 0 && r.digest(&PACKAGE_FILES).is_none());
    }
}
