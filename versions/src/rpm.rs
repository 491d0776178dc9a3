//! RPM version ordering, as rpm compares an `[epoch:]version[-release]` string.
//!
//! Parsing follows rpm's own EVR split: the epoch is a run of ASCII digits
//! directly followed by `:` (an empty one counts as 0; anything else before a
//! colon is part of the version), and the release is what follows the *last*
//! `-`. Comparison applies `rpmvercmp` to the epochs (a missing one is `0`),
//! then to the versions, then to the releases, where a missing release sorts
//! before any present one (even an empty one) — rpm's own `rpm.ver` ordering,
//! and a total order, which the "ignore a missing release" rule of dependency
//! matching is not.
//!
//! `rpmvercmp` splits each string into segments of ASCII digits or ASCII
//! letters, skipping every other byte as a separator. Digit segments compare as
//! numbers (leading zeros ignored) and beat letter segments; letter segments
//! compare bytewise. `~` sorts before anything, even the end of the string;
//! `^` sorts after the end of the string but before any further segment.
//!
//! Errors ([`VersionError::Invalid`]) are what rpm refuses: an empty version
//! part (the empty string, `1:`, `-1`; rpm's `labelCompare` and rpmbuild refuse
//! these), and strings holding a NUL byte, which no C string can carry. Every
//! other string has an order, as in rpm.

use std::cmp::Ordering;

use crate::VersionError;
use crate::digits::{compare_numbers, split_digits};

const SCHEME: &str = "rpm";

/// An EVR borrowed from its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Evr<'a> {
    /// ASCII digits; empty when there is no epoch (compared as `0`).
    epoch: &'a [u8],
    version: &'a [u8],
    release: Option<&'a [u8]>,
}

/// Compares two RPM `[E:]V[-R]` strings.
pub(crate) fn compare<'a>(a: &'a str, b: &'a str) -> Result<Ordering, VersionError> {
    let a = parse(a)?;
    let b = parse(b)?;
    let epoch = |e: &'a [u8]| -> &'a [u8] { if e.is_empty() { b"0" } else { e } };
    Ok(vercmp(epoch(a.epoch), epoch(b.epoch)).then_with(|| vercmp(a.version, b.version)).then_with(|| {
        match (a.release, b.release) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Less,
            (Some(_), None) => Ordering::Greater,
            (Some(ra), Some(rb)) => vercmp(ra, rb),
        }
    }))
}

fn parse(text: &str) -> Result<Evr<'_>, VersionError> {
    let invalid =
        |reason: &str| VersionError::Invalid { scheme: SCHEME, version: text.to_string(), reason: reason.to_string() };
    if text.contains('\0') {
        return Err(invalid("contains a NUL byte, which no rpm version can hold"));
    }
    let bytes = text.as_bytes();
    let (digits, after) = split_digits(bytes);
    let (epoch, rest) = match after.split_first() {
        Some((b':', rest)) => (digits, rest),
        _ => (&b""[..], bytes),
    };
    let (version, release) = match rest.iter().rposition(|&c| c == b'-') {
        Some(hyphen) => (&rest[..hyphen], Some(&rest[hyphen + 1..])),
        None => (rest, None),
    };
    if version.is_empty() {
        return Err(invalid("version part is empty"));
    }
    Ok(Evr { epoch, version, release })
}

/// rpm's `rpmvercmp` on one component (epoch, version or release).
pub(crate) fn vercmp(mut a: &[u8], mut b: &[u8]) -> Ordering {
    if a == b {
        return Ordering::Equal;
    }
    let is_separator = |c: &u8| !c.is_ascii_alphanumeric() && *c != b'~' && *c != b'^';
    loop {
        a = &a[a.iter().take_while(|c| is_separator(c)).count()..];
        b = &b[b.iter().take_while(|c| is_separator(c)).count()..];

        match (a.first(), b.first()) {
            (Some(b'~'), Some(b'~')) => {
                a = &a[1..];
                b = &b[1..];
                continue;
            }
            (Some(b'~'), _) => return Ordering::Less,
            (_, Some(b'~')) => return Ordering::Greater,
            _ => {}
        }
        match (a.first(), b.first()) {
            (Some(b'^'), Some(b'^')) => {
                a = &a[1..];
                b = &b[1..];
                continue;
            }
            // A caret is newer than the end of the string...
            (Some(b'^'), None) => return Ordering::Greater,
            (None, Some(b'^')) => return Ordering::Less,
            // ...and older than any further segment.
            (Some(b'^'), Some(_)) => return Ordering::Less,
            (Some(_), Some(b'^')) => return Ordering::Greater,
            _ => {}
        }
        if a.is_empty() || b.is_empty() {
            break;
        }

        // The first string's segment type decides what the second one reads.
        let numeric = a[0].is_ascii_digit();
        let segment = |s: &[u8]| -> usize {
            s.iter().take_while(|c| if numeric { c.is_ascii_digit() } else { c.is_ascii_alphabetic() }).count()
        };
        let (sa, ra) = a.split_at(segment(a));
        let (sb, rb) = b.split_at(segment(b));
        if sb.is_empty() {
            // Segments of different types: the numeric one is newer.
            return if numeric { Ordering::Greater } else { Ordering::Less };
        }
        let order = if numeric { compare_numbers(sa, sb) } else { sa.cmp(sb) };
        if order != Ordering::Equal {
            return order;
        }
        a = ra;
        b = rb;
    }
    // Whichever still has something left is newer.
    a.is_empty().cmp(&b.is_empty()).reverse()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmp(a: &str, b: &str) -> Ordering {
        compare(a, b).unwrap()
    }

    #[test]
    fn rpmvercmp_basics() {
        assert_eq!(vercmp(b"1.0", b"1.0"), Ordering::Equal);
        assert_eq!(vercmp(b"1.0", b"1.00"), Ordering::Equal);
        assert_eq!(vercmp(b"1.0", b"1_0"), Ordering::Equal);
        assert_eq!(vercmp(b"1.0a", b"1.0"), Ordering::Greater);
        assert_eq!(vercmp(b"1.a", b"1.1"), Ordering::Less);
        assert_eq!(vercmp(b"1.0~rc1", b"1.0"), Ordering::Less);
        assert_eq!(vercmp(b"1.0^git1", b"1.0"), Ordering::Greater);
        assert_eq!(vercmp(b"1.0^git1", b"1.0.1"), Ordering::Less);
        assert_eq!(vercmp(b"1.0^", b"1.0"), Ordering::Greater);
        assert_eq!(vercmp(b"", b"1"), Ordering::Less);
    }

    #[test]
    fn evr() {
        assert_eq!(cmp("1:1.0-1", "2.0-1"), Ordering::Greater);
        assert_eq!(cmp("0:1.0-1", "1.0-1"), Ordering::Equal);
        assert_eq!(cmp(":1.0", "1.0"), Ordering::Equal);
        assert_eq!(cmp("1.0", "1.0-1"), Ordering::Less);
        assert_eq!(cmp("1.0", "1.0-"), Ordering::Less);
        assert_eq!(cmp("1.0-1-2", "1.0-1-10"), Ordering::Less);
        assert_eq!(cmp("a:1", "a:1"), Ordering::Equal);
        for bad in ["", "1:", "-1", ":", "-", "1:-1", "1\0"] {
            assert!(compare(bad, "1").is_err(), "{bad:?} should be refused");
        }
    }
}
