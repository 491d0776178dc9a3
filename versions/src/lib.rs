//! Version ordering as each package manager defines it: deb (dpkg), rpm
//! (rpmvercmp with epoch and release), apk (apk-tools), and semver.
//! Pure functions with no I/O; the server wraps them as SQL functions.
//! (Being written.)

use std::cmp::Ordering;

/// A versioning scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Deb,
    Rpm,
    Apk,
    Semver,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    #[error("unknown version scheme {0:?}: expected deb, rpm, apk or semver")]
    UnknownScheme(String),
    #[error("invalid {scheme} version {version:?}: {reason}")]
    Invalid { scheme: &'static str, version: String, reason: String },
}

impl std::str::FromStr for Scheme {
    type Err = VersionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "deb" | "dpkg" | "debian" => Ok(Scheme::Deb),
            "rpm" => Ok(Scheme::Rpm),
            "apk" | "alpine" => Ok(Scheme::Apk),
            "semver" => Ok(Scheme::Semver),
            _ => Err(VersionError::UnknownScheme(s.to_string())),
        }
    }
}

/// Compares two versions under `scheme`.
pub fn compare(_scheme: Scheme, _a: &str, _b: &str) -> Result<Ordering, VersionError> {
    Err(VersionError::Invalid { scheme: "any", version: String::new(), reason: "not implemented yet".into() })
}
