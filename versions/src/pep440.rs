//! Python package versions (PEP 440), ordered as pip and Python's `packaging`
//! library order them, through astral's `pep440_rs` (the parser uv uses).
//!
//! Input is normalized as PEP 440 says (`1.0RC1` is `1.0rc1`, `v1.0` is
//! `1.0`, `1.0-1` is `1.0.post1`, case and surrounding blanks are ignored);
//! what PEP 440 cannot read (the "legacy" versions `packaging` ≥ 22 refuses
//! too) is an error. Order: epoch, release (trailing zeros ignored: `1.0 ==
//! 1.0.0`), then dev < pre (a < b < rc) < final < post, a dev release sorting
//! before its pre/post release, and a local version (`+ubuntu1`) after the
//! same public version, its segments numeric above alphanumeric.
//! One deliberate limit: release numbers above 2^64 − 1 are an error here,
//! where Python has arbitrary-size integers.

use std::cmp::Ordering;
use std::str::FromStr;

use pep440_rs::Version;

use crate::VersionError;

fn parse(text: &str) -> Result<Version, VersionError> {
    Version::from_str(text).map_err(|e| VersionError::Invalid {
        scheme: "pep440",
        version: text.to_string(),
        reason: e.to_string(),
    })
}

/// Compares two PEP 440 versions.
pub(crate) fn compare(a: &str, b: &str) -> Result<Ordering, VersionError> {
    Ok(parse(a)?.cmp(&parse(b)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs() {
        use Ordering::*;
        for (a, b, want) in [
            ("1.0", "1.0.0", Equal),
            ("1.0RC1", "1.0rc1", Equal),
            ("1.0.dev1", "1.0a1", Less),
            ("1.0a1", "1.0", Less),
            ("1.0", "1.0.post1", Less),
            ("1.0+local", "1.0", Greater),
            ("1!0.1", "2.0", Greater),
            ("1.0-1", "1.0.post1", Equal),
            ("2.0.0", "10.0", Less),
        ] {
            assert_eq!(compare(a, b), Ok(want), "{a} vs {b}");
        }
        assert!(compare("not a version", "1.0").is_err());
        assert!(compare("1.0", "").is_err());
    }
}
