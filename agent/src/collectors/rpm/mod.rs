//! rpm databases: header blobs and the three database formats (sqlite, NDB,
//! BerkeleyDB hash). Pure: bytes in, packages and problems out.
//! (Being written; see the functions' contracts.)

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

/// Parses one header blob as stored in an rpm database (no lead, no magic).
pub fn parse_header(_blob: &[u8]) -> Result<RpmPackage, String> {
    Err("rpm header parsing not implemented yet".into())
}

/// Reads every package from the bytes of an `rpmdb.sqlite` file.
pub fn read_sqlite(_bytes: &[u8]) -> (Vec<RpmPackage>, Vec<String>) {
    (Vec::new(), vec!["rpm sqlite reading not implemented yet".into()])
}

/// Reads every package from the bytes of an NDB `Packages.db` file.
pub fn read_ndb(_bytes: &[u8]) -> (Vec<RpmPackage>, Vec<String>) {
    (Vec::new(), vec!["rpm NDB reading not implemented yet".into()])
}

/// Reads every package from the bytes of a BerkeleyDB hash `Packages` file.
pub fn read_bdb(_bytes: &[u8]) -> (Vec<RpmPackage>, Vec<String>) {
    (Vec::new(), vec!["rpm BerkeleyDB reading not implemented yet".into()])
}
