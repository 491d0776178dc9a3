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

#[cfg(test)]
mod testutil;

pub use bdb::read_bdb;
pub use header::parse_header;
pub use ndb::read_ndb;
pub use sqlite::read_sqlite;

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
