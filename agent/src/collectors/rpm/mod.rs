//! rpm databases: header blobs and the three database formats (sqlite, NDB,
//! BerkeleyDB hash). Pure: bytes in, packages and problems out.
//!
//! Each database format lives in its own file and only finds the header
//! blobs; [`parse_header`] turns a blob into an [`RpmPackage`]. Problems with
//! one package become an error string for it while the others are still
//! returned; a database that cannot be read at all gives no packages and one
//! error.

mod bdb;
mod header;
mod ndb;
mod sqlite;
mod vfs;

#[cfg(test)]
pub(crate) mod testutil;

pub use bdb::{read_bdb, read_bdb_from, read_bdb_within};
pub use header::parse_header;
pub use ndb::{read_ndb, read_ndb_from, read_ndb_within};
pub use sqlite::{read_sqlite, read_sqlite_from, read_sqlite_within};

use std::time::Instant;

/// Problems kept as error strings per database; the rest are counted in one more.
pub const MAX_ERRORS: usize = 1000;

/// Largest header blob read. rpm itself accepts 256 MiB of header data, but
/// the largest real headers hold a few MB (a kernel-devel of 20,000 files:
/// under 2 MB); one blob is held whole while it is parsed, so this bounds
/// what a database can make us hold at once.
pub const MAX_BLOB: usize = 32 << 20;

/// Err naming the budget when a blob of `len` bytes is larger than [`MAX_BLOB`].
pub fn check_blob_len(len: usize) -> Result<(), String> {
    if len > MAX_BLOB {
        return Err(format!(
            "header blob of {len} bytes is larger than the {MAX_BLOB} bytes read per header (rpm allows 256 MiB; real headers hold a few MB); skipped"
        ));
    }
    Ok(())
}

/// Where a reader hands each package as soon as it is parsed, with its key
/// in the database (sqlite's hnum, NDB's package index, BerkeleyDB's key):
/// packages come in the order the file stores them, and none is held after
/// it is handed over, so a database costs one header at a time.
pub type Each<'a> = &'a mut dyn FnMut(i64, RpmPackage);

/// Collects what a reader hands over, in key order (rpm's `-qa` order): for
/// tests and callers that want the whole list.
pub fn collect(read: impl FnOnce(Each) -> Vec<String>) -> (Vec<RpmPackage>, Vec<String>) {
    let mut found = Vec::new();
    let errors = read(&mut |key, p| found.push((key, p)));
    found.sort_by_key(|(key, _)| *key);
    (found.into_iter().map(|(_, p)| p).collect(), errors)
}

/// The first [`MAX_ERRORS`] problems of one database, and how many more there
/// were: a database of nothing but bad items would otherwise make an error
/// string per few bytes (a 240 MB BerkeleyDB file: 3.5 GB, then an abort).
/// Messages past the cap are not even formatted.
pub struct Errors {
    file: &'static str,
    kept: Vec<String>,
    more: usize,
}

impl Errors {
    /// Problems of the database `file` names (the prefix of the count line).
    pub fn new(file: &'static str) -> Self {
        Errors { file, kept: Vec::new(), more: 0 }
    }

    pub fn push(&mut self, message: impl FnOnce() -> String) {
        if self.kept.len() < MAX_ERRORS {
            self.kept.push(message());
        } else {
            self.more += 1;
        }
    }

    pub fn finish(mut self) -> Vec<String> {
        if self.more > 0 {
            self.kept.push(format!("{}: {} more problems like these", self.file, self.more));
        }
        self.kept
    }
}

/// A database's bytes, read piece by piece: from a buffer, or from the file
/// itself (so a large or sparse file is not held in memory whole).
pub trait Source {
    /// Its length in bytes (a file's, as it was when opened).
    fn size(&self) -> u64;
    /// Fills `buf` from byte `at`; an error when those bytes are not there.
    fn read_at(&self, at: u64, buf: &mut [u8]) -> std::io::Result<()>;
}

impl Source for &[u8] {
    fn size(&self) -> u64 {
        <[u8]>::len(self) as u64
    }
    fn read_at(&self, at: u64, buf: &mut [u8]) -> std::io::Result<()> {
        let start = usize::try_from(at).unwrap_or(usize::MAX);
        match start.checked_add(buf.len()).and_then(|end| self.get(start..end)) {
            Some(b) => {
                buf.copy_from_slice(b);
                Ok(())
            }
            None => Err(std::io::ErrorKind::UnexpectedEof.into()),
        }
    }
}

impl Source for Vec<u8> {
    fn size(&self) -> u64 {
        self.as_slice().size()
    }
    fn read_at(&self, at: u64, buf: &mut [u8]) -> std::io::Result<()> {
        self.as_slice().read_at(at, buf)
    }
}

/// An open file of `len` bytes (its size when it was opened).
pub struct FileSource {
    pub file: std::fs::File,
    pub len: u64,
}

impl Source for FileSource {
    fn size(&self) -> u64 {
        self.len
    }
    fn read_at(&self, at: u64, buf: &mut [u8]) -> std::io::Result<()> {
        if at.saturating_add(buf.len() as u64) > self.len {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        std::os::unix::fs::FileExt::read_exact_at(&self.file, buf, at)
    }
}

/// What reading one database may cost, whatever its bytes say. Every header
/// is parsed through [`Work::parse`], which checks the scope's deadline first
/// (so a scope that was given up stops using CPU) and charges the header's
/// bytes: an honest database stores each header once, so all the headers it
/// yields add up to no more than its own length. A database whose rows share
/// one stored blob (an sqlite column DEFAULT, pages reached twice) would
/// otherwise make one stored byte cost a parse per row. File lists joined
/// from directory and base names are bounded the same way.
#[derive(Debug)]
pub struct Work {
    deadline: Option<Instant>,
    header_bytes: u64,
    header_bytes_limit: u64,
    path_bytes: u64,
    path_bytes_limit: u64,
    /// Headers parsed so far.
    pub headers: u64,
}

/// Joined file paths may add up to this many times the database's length…
pub const PATH_EXPANSION: u64 = 2;
/// …plus this; and headers to the database's length plus this.
pub const SLACK: u64 = 1 << 20;

impl Work {
    /// The budget of a database of `len` bytes, read until `deadline`.
    pub fn new(len: usize, deadline: Option<Instant>) -> Self {
        let len = len as u64;
        Work {
            deadline,
            header_bytes: 0,
            header_bytes_limit: len.saturating_add(SLACK),
            path_bytes: 0,
            path_bytes_limit: len.saturating_mul(PATH_EXPANSION).saturating_add(SLACK),
            headers: 0,
        }
    }

    /// Err once the deadline has passed: stop reading.
    pub fn check_time(&self) -> Result<(), String> {
        match self.deadline {
            Some(d) if Instant::now() > d => {
                Err(format!("stopped after {} headers: the scope's wall time budget ran out", self.headers))
            }
            _ => Ok(()),
        }
    }

    /// Parses one header blob: the outer Err means stop reading the database
    /// (a budget ran out), the inner one is this package's problem.
    pub fn parse(&mut self, blob: &[u8]) -> Result<Result<RpmPackage, String>, String> {
        self.check_time()?;
        if let Err(e) = check_blob_len(blob.len()) {
            return Ok(Err(e));
        }
        self.header_bytes = self.header_bytes.saturating_add(blob.len() as u64);
        if self.header_bytes > self.header_bytes_limit {
            return Err(format!(
                "stopped after {} headers: they add up to more than the {} bytes the database holds (rows share stored header blobs; budget: header bytes per database)",
                self.headers, self.header_bytes_limit
            ));
        }
        self.headers += 1;
        let p = parse_header(blob);
        if let Ok(p) = &p {
            let cost = p.files.iter().map(|f| (f.len() + header::PATH_COST) as u64).sum();
            self.path_bytes = self.path_bytes.saturating_add(cost);
            if self.path_bytes > self.path_bytes_limit {
                return Err(format!(
                    "stopped after {} headers: their file lists add up to more than {} bytes (budget: file list bytes per database)",
                    self.headers, self.path_bytes_limit
                ));
            }
        }
        Ok(p)
    }
}

/// One installed rpm, from its header blob.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RpmPackage {
    pub name: String,
    /// None when the header has no EPOCH tag; Some(0) is a different value.
    pub epoch: Option<i64>,
    pub version: String,
    pub release: String,
    pub arch: Option<String>,
    pub source_rpm: Option<String>,
    pub license: Option<String>,
    pub vendor: Option<String>,
    /// Installed size in bytes (LONGSIZE when present, else SIZE).
    pub size: Option<i64>,
    /// INSTALLTIME, seconds since the Unix epoch.
    pub install_time: Option<i64>,
    /// Owned paths, from DIRNAMES/BASENAMES/DIRINDEXES (or OLDFILENAMES).
    pub files: Vec<String>,
}
