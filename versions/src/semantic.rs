//! Semantic Versioning 2.0.0 ordering, through the `semver` crate.
//!
//! Versions must be strict SemVer (`MAJOR.MINOR.PATCH[-pre][+build]`, no
//! leading zeros); a single leading `v` is accepted and ignored. Precedence is
//! SemVer's: build metadata is ignored (`1.0.0+a` equals `1.0.0+b`), and a
//! pre-release sorts before its release, its dot-separated identifiers compared
//! numerically when numeric, as ASCII otherwise, numeric before alphanumeric,
//! and a shorter list before a longer one that it starts.

use std::cmp::Ordering;

use crate::VersionError;

fn parse(text: &str) -> Result<semver::Version, VersionError> {
    let bare = text.strip_prefix('v').unwrap_or(text);
    semver::Version::parse(bare).map_err(|e| VersionError::Invalid {
        scheme: "semver",
        version: text.to_string(),
        reason: format!("not MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD]: {e}"),
    })
}

/// Compares two semantic versions by SemVer precedence.
pub(crate) fn compare(a: &str, b: &str) -> Result<Ordering, VersionError> {
    Ok(parse(a)?.cmp_precedence(&parse(b)?))
}
