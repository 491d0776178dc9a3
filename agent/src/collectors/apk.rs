//! Parser for apk's installed database (`/lib/apk/db/installed`). (Being written; temporary stub.)

use super::dpkg::StanzaError;

#[derive(Debug, Clone, Default)]
pub struct ApkPackage {
    pub name: String,
    pub version: String,
    pub arch: Option<String>,
    pub origin: Option<String>,
    pub license: Option<String>,
    pub maintainer: Option<String>,
    pub installed_size: Option<i64>,
    pub files: Vec<String>,
}

pub fn parse_installed(_text: &str) -> (Vec<ApkPackage>, Vec<StanzaError>) {
    (Vec::new(), vec![StanzaError { line: 1, message: "apk parsing not implemented yet".into() }])
}
