//! Test-only writer of rpm header blobs, built from the format description in
//! rpm's `doc/manual/format.md` (index of big-endian tag/type/offset/count
//! entries followed by the data store), so parser tests do not depend on
//! captured binaries. Also used by the NDB and BerkeleyDB tests as payload.

use super::header::{tag, ty};

#[derive(Default, Clone)]
pub(crate) struct HeaderWriter {
    entries: Vec<[u32; 4]>,
    data: Vec<u8>,
}

impl HeaderWriter {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    fn align(&mut self, to: usize) {
        while !self.data.len().is_multiple_of(to) {
            self.data.push(0);
        }
    }

    fn push(mut self, tag: u32, ty: u32, count: usize, align: usize, bytes: &[u8]) -> Self {
        self.align(align);
        self.entries.push([tag, ty, self.data.len() as u32, count as u32]);
        self.data.extend_from_slice(bytes);
        self
    }

    pub(crate) fn string(self, tag: u32, s: &str) -> Self {
        self.push(tag, ty::STRING, 1, 1, &nul_joined(&[s]))
    }

    pub(crate) fn i18n(self, tag: u32, s: &[&str]) -> Self {
        self.push(tag, ty::I18NSTRING, s.len(), 1, &nul_joined(s))
    }

    pub(crate) fn strings(self, tag: u32, s: &[&str]) -> Self {
        self.push(tag, ty::STRING_ARRAY, s.len(), 1, &nul_joined(s))
    }

    pub(crate) fn int32(self, tag: u32, v: &[u32]) -> Self {
        let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_be_bytes()).collect();
        self.push(tag, ty::INT32, v.len(), 4, &bytes)
    }

    pub(crate) fn int64(self, tag: u32, v: &[u64]) -> Self {
        let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_be_bytes()).collect();
        self.push(tag, ty::INT64, v.len(), 8, &bytes)
    }

    pub(crate) fn bin(self, tag: u32, b: &[u8]) -> Self {
        self.push(tag, ty::BIN, b.len(), 1, b)
    }

    /// An index entry exactly as given, pointing wherever it says.
    pub(crate) fn raw_entry(mut self, tag: u32, ty: u32, offset: u32, count: u32) -> Self {
        self.entries.push([tag, ty, offset, count]);
        self
    }

    /// Bytes appended to the data store with no entry.
    pub(crate) fn raw_data(mut self, b: &[u8]) -> Self {
        self.data.extend_from_slice(b);
        self
    }

    pub(crate) fn data_len(&self) -> usize {
        self.data.len()
    }

    /// The blob with the true il and dl.
    pub(crate) fn build(&self) -> Vec<u8> {
        self.build_claiming(self.entries.len() as u32, self.data.len() as u32)
    }

    /// The blob with whatever il and dl the caller claims in the preamble.
    pub(crate) fn build_claiming(&self, il: u32, dl: u32) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&il.to_be_bytes());
        out.extend_from_slice(&dl.to_be_bytes());
        for e in &self.entries {
            for f in e {
                out.extend_from_slice(&f.to_be_bytes());
            }
        }
        out.extend_from_slice(&self.data);
        out
    }
}

fn nul_joined(s: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    for x in s {
        out.extend_from_slice(x.as_bytes());
        out.push(0);
    }
    out
}

/// A plausible installed-package header: name, version, release, arch, an
/// optional epoch and files split into DIRNAMES/BASENAMES/DIRINDEXES.
pub(crate) fn package_blob(name: &str, epoch: Option<u32>, version: &str, files: &[&str]) -> Vec<u8> {
    let mut w = HeaderWriter::new()
        .bin(63, &[0; 16])
        .string(tag::NAME, name)
        .string(tag::VERSION, version)
        .string(tag::RELEASE, "1.el9")
        .string(tag::ARCH, "x86_64");
    if let Some(e) = epoch {
        w = w.int32(tag::EPOCH, &[e]);
    }
    let mut dirs: Vec<&str> = Vec::new();
    let mut bases = Vec::new();
    let mut idx = Vec::new();
    for f in files {
        let cut = f.rfind('/').map_or(0, |i| i + 1);
        let (d, b) = f.split_at(cut);
        let i = dirs.iter().position(|x| *x == d).unwrap_or_else(|| {
            dirs.push(d);
            dirs.len() - 1
        });
        idx.push(i as u32);
        bases.push(b);
    }
    if !files.is_empty() {
        w = w.int32(tag::DIRINDEXES, &idx).strings(tag::BASENAMES, &bases).strings(tag::DIRNAMES, &dirs);
    }
    w.build()
}

/// An `rpmdb.sqlite` whose `rows` records store no blob: the column was added
/// later with `blob` as its DEFAULT, so every row reads that one stored blob.
pub(crate) fn sqlite_default_bomb(blob: &[u8], rows: usize) -> Vec<u8> {
    sqlite_default_bomb_keyed(blob, rows, "INTEGER PRIMARY KEY AUTOINCREMENT")
}

/// [`sqlite_default_bomb`] with `hnum` declared as `hnum_type` (plain
/// `INTEGER`: not the table's key, so its order is not the table's) and
/// numbered from `rows` down to 1.
pub(crate) fn sqlite_default_bomb_keyed(blob: &[u8], rows: usize, hnum_type: &str) -> Vec<u8> {
    let mut conn = rusqlite::Connection::open_in_memory().expect("open");
    conn.execute_batch(&format!("CREATE TABLE Packages (hnum {hnum_type}); BEGIN;")).expect("schema");
    for i in 0..rows {
        conn.execute("INSERT INTO Packages (hnum) VALUES (?1)", [(rows - i) as i64]).expect("insert");
    }
    let hex: String = blob.iter().map(|b| format!("{b:02x}")).collect();
    conn.execute_batch(&format!("COMMIT; ALTER TABLE Packages ADD COLUMN blob BLOB NOT NULL DEFAULT x'{hex}';"))
        .expect("add column");
    conn.serialize(rusqlite::MAIN_DB).expect("serialize").to_vec()
}

/// A header of `files` owned paths of about `len` bytes each.
pub(crate) fn fat_package_blob(files: usize, len: usize) -> Vec<u8> {
    let paths: Vec<String> = (0..files).map(|i| format!("/usr/share/{i:0>len$}")).collect();
    let refs: Vec<&str> = paths.iter().map(String::as_str).collect();
    package_blob("fat", None, "1", &refs)
}
