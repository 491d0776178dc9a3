//! Version ordering as each package manager defines it: deb (dpkg), rpm
//! (rpmvercmp over epoch, version and release), apk (apk-tools), semver,
//! PEP 440 (Python packages), Maven (Java artifacts), RubyGems and Composer.
//! Pure functions with no I/O; the server wraps them as SQL functions such as
//! `version_lt(version, '5.2.15-2+b2')`.
//!
//! Each scheme gives its package manager's answer, including for input that
//! the manager merely tolerates, and refuses (with [`VersionError::Invalid`])
//! what the manager refuses; [`compare`] lists what that is per scheme. No
//! input panics. Each scheme is checked against its real tool: deb against
//! `dpkg --compare-versions`, rpm against librpm (via python3-rpm), apk
//! against apk-tools' own test corpus, semver against the SemVer 2.0.0 spec,
//! pep440 against Python's `packaging` library, maven against Maven's own
//! `ComparableVersion`, rubygems against Ruby's `Gem::Version`, composer
//! against Composer's own semver library.

#![forbid(unsafe_code)]

use std::cmp::Ordering;

mod apk;
mod composer;
mod deb;
mod digits;
mod golang;
mod maven;
mod pep440;
mod rpm;
mod rubygems;
mod semantic;

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
    /// Go module versions, ordered as `golang.org/x/mod/semver` orders them.
    Golang,
    /// Python packages (PyPI): PEP 440, ordered as pip and `packaging` order them.
    Pep440,
    /// Java artifacts (Maven coordinates), ordered as Maven's `ComparableVersion` orders them.
    Maven,
    /// Ruby gems, ordered as RubyGems' `Gem::Version` orders them.
    Rubygems,
    /// PHP packages, ordered as Composer orders them (normalized, then PHP's `version_compare`).
    Composer,
}

impl Scheme {
    /// The scheme's name, as [`FromStr`](std::str::FromStr) accepts it.
    pub fn name(self) -> &'static str {
        match self {
            Scheme::Deb => "deb",
            Scheme::Rpm => "rpm",
            Scheme::Apk => "apk",
            Scheme::Semver => "semver",
            Scheme::Golang => "golang",
            Scheme::Pep440 => "pep440",
            Scheme::Maven => "maven",
            Scheme::Rubygems => "rubygems",
            Scheme::Composer => "composer",
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
    #[error(
        "unknown version scheme {0:?}: expected deb, rpm, apk, semver, golang, pep440, maven, rubygems or composer"
    )]
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
            "semver" | "cargo" | "npm" => Ok(Scheme::Semver),
            "golang" | "go" => Ok(Scheme::Golang),
            "pep440" | "pypi" | "python" => Ok(Scheme::Pep440),
            "maven" | "java" => Ok(Scheme::Maven),
            "rubygems" | "gem" | "ruby" => Ok(Scheme::Rubygems),
            "composer" | "php" => Ok(Scheme::Composer),
            _ => Err(VersionError::UnknownScheme(s.to_string())),
        }
    }
}

/// Compares two versions under `scheme`.
///
/// * deb: `""` and `<unknown>` are dpkg's "no version" and sort first. What
///   dpkg refuses is an error: an empty or non-numeric epoch, one outside
///   `0..=2147483647`, nothing after the epoch's colon, an empty revision
///   (`1.0-`) or upstream part (`-1`), blanks inside the string. What dpkg only
///   warns about (no leading digit, characters outside Policy's set) is
///   compared as dpkg compares it. Blanks at either end are ignored.
/// * rpm: an error only for an empty version part (`""`, `1:`, `-1`) or a NUL
///   byte; everything else has rpm's order. A missing epoch is `0`; a missing
///   release sorts before any release (`1.0` < `1.0-1`), as in `rpm.ver`.
/// * apk: never an error; malformed versions get apk-tools' order (read up
///   to the first character its grammar rejects, which sorts low).
/// * semver: anything that is not strict SemVer (after one optional leading
///   `v`) is an error; build metadata is ignored.
/// * golang: Go module versions as `golang.org/x/mod/semver` orders them
///   (`v1` and `v1.2` shorthands, `+incompatible` ignored, pseudo-versions as
///   pre-releases; `go1.19.8` read as `v1.19.8`); what it calls invalid, such
///   as `(devel)`, is an error rather than sorted first.
/// * pep440: anything PEP 440 cannot normalize is an error (as `packaging`
///   ≥ 22 refuses it), and release numbers past 2^64 − 1.
/// * maven: never an error; every string is a Maven version (see Maven's
///   `ComparableVersion`: `1.0 == 1-ga`, `1-rc1 < 1-SNAPSHOT < 1 < 1-sp < 1-1 < 1.1`).
/// * rubygems: what `Gem::Version.new` refuses ("Malformed version number
///   string": not `N(.X)*[-PRE(.PRE)*]` of ASCII letters and digits) is an error.
/// * composer: what Composer's `VersionParser::normalize` refuses is an
///   error, and so is a branch (`dev-main`), which Composer never orders.
pub fn compare(scheme: Scheme, a: &str, b: &str) -> Result<Ordering, VersionError> {
    match scheme {
        Scheme::Deb => deb::compare(a, b),
        Scheme::Rpm => rpm::compare(a, b),
        Scheme::Apk => Ok(apk::compare(a, b)),
        Scheme::Semver => semantic::compare(a, b),
        Scheme::Golang => golang::compare(a, b),
        Scheme::Pep440 => pep440::compare(a, b),
        Scheme::Maven => Ok(maven::compare(a, b)),
        Scheme::Rubygems => rubygems::compare(a, b),
        Scheme::Composer => composer::compare(a, b),
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
/// (case-insensitive), `golang` → [`Scheme::Golang`], `cargo` and `npm` → [`Scheme::Semver`],
/// `pypi` → [`Scheme::Pep440`], `maven` → [`Scheme::Maven`], `gem` → [`Scheme::Rubygems`],
/// `composer` → [`Scheme::Composer`]; `None` for any other manager.
pub fn guess_scheme(manager: &str) -> Option<Scheme> {
    match manager.to_ascii_lowercase().as_str() {
        "dpkg" => Some(Scheme::Deb),
        "rpm" => Some(Scheme::Rpm),
        "apk" => Some(Scheme::Apk),
        "golang" => Some(Scheme::Golang),
        "cargo" => Some(Scheme::Semver),
        "pypi" => Some(Scheme::Pep440),
        "maven" => Some(Scheme::Maven),
        "gem" => Some(Scheme::Rubygems),
        "composer" => Some(Scheme::Composer),
        // node-semver's strict versions, which npm's registry holds: SemVer 2.0.0 with an optional `v`.
        "npm" => Some(Scheme::Semver),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrappers_and_guess() {
        assert_eq!(lt(Scheme::Deb, "5.2.15-2", "5.2.15-2+b2"), Ok(true));
        assert_eq!(le(Scheme::Rpm, "1.0-1", "1.0-1"), Ok(true));
        assert_eq!(gt(Scheme::Apk, "1.0-r1", "1.0"), Ok(true));
        assert_eq!(ge(Scheme::Semver, "v1.0.0", "1.0.0-rc.1"), Ok(true));
        assert!(lt(Scheme::Semver, "1.0", "1.0.0").is_err());
        assert_eq!(guess_scheme("dpkg"), Some(Scheme::Deb));
        assert_eq!(guess_scheme("rpm"), Some(Scheme::Rpm));
        assert_eq!(guess_scheme("apk"), Some(Scheme::Apk));
        assert_eq!(guess_scheme("npm"), Some(Scheme::Semver));
        assert_eq!(guess_scheme("pip"), None);
        assert_eq!(guess_scheme("golang"), Some(Scheme::Golang));
        assert_eq!(guess_scheme("cargo"), Some(Scheme::Semver));
        assert_eq!("cargo".parse::<Scheme>(), Ok(Scheme::Semver));
        assert_eq!(guess_scheme("pypi"), Some(Scheme::Pep440));
        assert_eq!(guess_scheme("maven"), Some(Scheme::Maven));
        assert_eq!(lt(Scheme::Maven, "2.14.1", "2.17.0"), Ok(true));
        assert_eq!(guess_scheme("gem"), Some(Scheme::Rubygems));
        assert_eq!(lt(Scheme::Rubygems, "1.0.b1", "1.0"), Ok(true));
        assert_eq!(guess_scheme("composer"), Some(Scheme::Composer));
        assert_eq!(lt(Scheme::Composer, "v1.0.0-RC1", "1.0.0"), Ok(true));
        for s in [Scheme::Deb, Scheme::Rpm, Scheme::Apk, Scheme::Semver, Scheme::Golang, Scheme::Pep440, Scheme::Maven]
        {
            assert_eq!(s.name().parse::<Scheme>(), Ok(s));
        }
    }
}
