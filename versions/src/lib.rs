//! Version ordering as each package manager defines it: deb (dpkg), rpm
//! (rpmvercmp over epoch, version and release), apk (apk-tools), and semver.
//! Pure functions with no I/O; the server wraps them as SQL functions such as
//! `version_lt(version, '5.2.15-2+b2')`.
//!
//! Each scheme follows its package manager's answer, including for input that
//! manager merely tolerates; see the module docs of [`compare`]'s schemes for
//! what each one rejects as [`VersionError::Invalid`]. No input panics.

use std::cmp::Ordering;

mod apk;
mod deb;
mod digits;
mod rpm;

/// A versioning scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Debian packages, ordered as `dpkg --compare-versions` orders them.
    Deb,
    /// RPM packages: `[epoch:]version[-release]`, ordered as rpm orders them.
    Rpm,
    /// Alpine packages, ordered as apk-tools orders them.
    Apk,
    /// Semantic Versioning 2.0.0 precedence (a leading `v` is allowed).
    Semver,
}

impl Scheme {
    /// The scheme's name, as [`FromStr`](std::str::FromStr) accepts it.
    pub fn name(self) -> &'static str {
        match self {
            Scheme::Deb => "deb",
            Scheme::Rpm => "rpm",
            Scheme::Apk => "apk",
            Scheme::Semver => "semver",
        }
    }
}

impl std::fmt::Display for Scheme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
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
///
/// * deb: `""` and `<unknown>` are dpkg's "no version" and sort first; what
///   dpkg rejects (bad epoch, empty revision, embedded blanks, …) is an error.
/// * rpm: every non-empty string without NUL has an order, as in rpm.
/// * apk: every string has an order, as in apk-tools (malformed tails sort low).
/// * semver: anything that is not strict SemVer is an error.
pub fn compare(scheme: Scheme, a: &str, b: &str) -> Result<Ordering, VersionError> {
    match scheme {
        Scheme::Deb => deb::compare(a, b),
        Scheme::Rpm => rpm::compare(a, b),
        Scheme::Apk => Ok(apk::compare(a, b)),
        Scheme::Semver => Err(VersionError::Invalid {
            scheme: scheme.name(),
            version: a.to_string(),
            reason: "not implemented yet".into(),
        }),
    }
}

/// `a < b` under `scheme`.
pub fn lt(scheme: Scheme, a: &str, b: &str) -> Result<bool, VersionError> {
    compare(scheme, a, b).map(Ordering::is_lt)
}

/// `a <= b` under `scheme`.
pub fn le(scheme: Scheme, a: &str, b: &str) -> Result<bool, VersionError> {
    compare(scheme, a, b).map(Ordering::is_le)
}

/// `a > b` under `scheme`.
pub fn gt(scheme: Scheme, a: &str, b: &str) -> Result<bool, VersionError> {
    compare(scheme, a, b).map(Ordering::is_gt)
}

/// `a >= b` under `scheme`.
pub fn ge(scheme: Scheme, a: &str, b: &str) -> Result<bool, VersionError> {
    compare(scheme, a, b).map(Ordering::is_ge)
}

/// The scheme whose versions a package manager's inventory holds: `dpkg` →
/// [`Scheme::Deb`], `rpm` → [`Scheme::Rpm`], `apk` → [`Scheme::Apk`]
/// (case-insensitive); `None` for any other manager.
pub fn guess_scheme(manager: &str) -> Option<Scheme> {
    match manager.to_ascii_lowercase().as_str() {
        "dpkg" => Some(Scheme::Deb),
        "rpm" => Some(Scheme::Rpm),
        "apk" => Some(Scheme::Apk),
        _ => None,
    }
}
