//! Debian version ordering, as `dpkg --compare-versions` decides it.
//!
//! A version is `[epoch:]upstream[-revision]` (Debian Policy §5.6.12). The
//! epoch is compared as an integer, then the upstream part, then the revision,
//! each with the same fragment comparison: alternating runs of non-digits and
//! digits, where non-digits compare character by character with `~` lowest (below
//! even the end of the string), then letters, then everything else, and digit
//! runs compare as whole numbers of any length.
//!
//! Malformed input follows dpkg: what dpkg refuses with an error (an empty
//! epoch, a non-numeric or out-of-range epoch, nothing after the colon, an empty
//! revision or upstream part, embedded blanks) is a [`VersionError::Invalid`];
//! what dpkg only warns about (an upstream part that does not start with a
//! digit, characters outside Policy's set) is compared the way dpkg compares it.
//! The empty string and `<unknown>` are dpkg's "no version", which sorts before
//! every version.

use std::cmp::Ordering;

use crate::VersionError;
use crate::digits::{compare_numbers, split_digits};

const SCHEME: &str = "deb";

/// A syntactically usable Debian version, borrowed from its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DebVersion<'a> {
    epoch: u32,
    upstream: &'a [u8],
    /// Empty when the version has no `-revision`; dpkg compares that as equal
    /// to a revision of `0`, which the fragment comparison does by itself.
    revision: &'a [u8],
}

/// Compares two Debian versions the way `dpkg --compare-versions` does.
pub(crate) fn compare(a: &str, b: &str) -> Result<Ordering, VersionError> {
    let a = parse(a)?;
    let b = parse(b)?;
    Ok(match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(a), Some(b)) => a
            .epoch
            .cmp(&b.epoch)
            .then_with(|| compare_fragment(a.upstream, b.upstream))
            .then_with(|| compare_fragment(a.revision, b.revision)),
    })
}

/// Splits `text` into its parts; `Ok(None)` is dpkg's "no version".
fn parse(text: &str) -> Result<Option<DebVersion<'_>>, VersionError> {
    if text.is_empty() || text == "<unknown>" {
        return Ok(None);
    }
    let invalid =
        |reason: &str| VersionError::Invalid { scheme: SCHEME, version: text.to_string(), reason: reason.to_string() };
    if text.contains('\0') {
        return Err(invalid("contains a NUL byte, which no dpkg version can hold"));
    }
    // dpkg strips blanks (space and tab, nothing else) from both ends first.
    let trimmed = text.trim_matches([' ', '\t']);
    if trimmed.is_empty() {
        return Err(invalid("version string is empty"));
    }
    if trimmed.contains([' ', '\t']) {
        return Err(invalid("version string has embedded spaces"));
    }

    let (epoch, rest) = match trimmed.split_once(':') {
        None => (0, trimmed),
        Some((epoch, rest)) => {
            let epoch = parse_epoch(epoch).map_err(invalid)?;
            if rest.is_empty() {
                return Err(invalid("nothing after the colon that ends the epoch"));
            }
            (epoch, rest)
        }
    };
    // The revision starts after the last hyphen, so the upstream part may hold hyphens.
    let (upstream, revision) = match rest.rsplit_once('-') {
        None => (rest, ""),
        Some((_, "")) => return Err(invalid("revision is empty (nothing after the last '-')")),
        Some((upstream, revision)) => (upstream, revision),
    };
    if upstream.is_empty() {
        return Err(invalid("upstream version is empty"));
    }
    Ok(Some(DebVersion { epoch, upstream: upstream.as_bytes(), revision: revision.as_bytes() }))
}

/// Reads the text before the first colon as dpkg does: a base-10 integer that
/// may carry leading C whitespace and a sign, must fill the whole text, and must
/// lie in `0..=i32::MAX` (so `-0` is a valid epoch of 0 and `+1` one of 1).
fn parse_epoch(text: &str) -> Result<u32, &'static str> {
    let unspaced = text.trim_start_matches([' ', '\t', '\n', '\x0b', '\x0c', '\r']);
    let (negative, unsigned) = match unspaced.as_bytes().first() {
        Some(b'-') => (true, &unspaced[1..]),
        Some(b'+') => (false, &unspaced[1..]),
        _ => (false, unspaced),
    };
    let digits = unsigned.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Err("epoch is empty");
    }
    if digits != unsigned.len() {
        return Err("epoch is not a number");
    }
    let significant = unsigned.trim_start_matches('0');
    if significant.is_empty() {
        return Ok(0);
    }
    if negative {
        return Err("epoch is negative");
    }
    match significant.parse::<u32>() {
        Ok(epoch) if epoch <= i32::MAX as u32 => Ok(epoch),
        _ => Err("epoch is too big (dpkg's limit is 2147483647)"),
    }
}

/// The weight of one byte in a non-digit run; `None` is the end of the string.
///
/// Digits weigh the same as the end, because a non-digit run ends at either.
/// Bytes above ASCII weigh what dpkg on amd64 gives them: it reads them as
/// negative `char`s and adds 256, which lands them after the letters and before
/// the other ASCII punctuation.
fn weight(byte: Option<u8>) -> i32 {
    match byte {
        None => 0,
        Some(b'~') => -1,
        Some(b) if b.is_ascii_digit() => 0,
        Some(b) if b.is_ascii_alphabetic() => i32::from(b),
        Some(b) if !b.is_ascii() => i32::from(b),
        Some(b) => i32::from(b) + 256,
    }
}

/// Compares an upstream part or a revision (dpkg's `verrevcmp`).
fn compare_fragment(mut a: &[u8], mut b: &[u8]) -> Ordering {
    while !a.is_empty() || !b.is_empty() {
        // A run of non-digits, character by character.
        loop {
            let ca = a.first().copied().filter(|c| !c.is_ascii_digit());
            let cb = b.first().copied().filter(|c| !c.is_ascii_digit());
            if ca.is_none() && cb.is_none() {
                break;
            }
            let order = weight(ca).cmp(&weight(cb));
            if order != Ordering::Equal {
                return order;
            }
            // Equal weights mean the same byte on both sides, so both advance.
            a = &a[1..];
            b = &b[1..];
        }
        // A run of digits, as a number; an absent run counts as zero.
        let (da, ra) = split_digits(a);
        let (db, rb) = split_digits(b);
        let order = compare_numbers(da, db);
        if order != Ordering::Equal {
            return order;
        }
        a = ra;
        b = rb;
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmp(a: &str, b: &str) -> Ordering {
        compare(a, b).unwrap()
    }

    #[test]
    fn policy_examples() {
        assert_eq!(cmp("1.0~rc1", "1.0"), Ordering::Less);
        assert_eq!(cmp("1.0~~", "1.0~"), Ordering::Less);
        assert_eq!(cmp("1.0~", "1.0"), Ordering::Less);
        assert_eq!(cmp("1.0", "1.0a"), Ordering::Less);
        assert_eq!(cmp("1.0a", "1.0+"), Ordering::Less);
        assert_eq!(cmp("1:0", "0:9"), Ordering::Greater);
        assert_eq!(cmp("1.0", "1.0-0"), Ordering::Equal);
        assert_eq!(cmp("0001", "1"), Ordering::Equal);
        assert_eq!(cmp("1.10", "1.9"), Ordering::Greater);
        assert_eq!(cmp("5.2.15-2+b2", "5.2.15-2"), Ordering::Greater);
    }

    #[test]
    fn no_version_sorts_first() {
        assert_eq!(cmp("", "0"), Ordering::Less);
        assert_eq!(cmp("<unknown>", ""), Ordering::Equal);
    }

    #[test]
    fn dpkg_errors_are_errors() {
        for bad in [":1", "1:", "1.0-", "-1", "a:1", "1 0", "  ", "2147483648:1", "-1:1", "1:-1"] {
            assert!(compare(bad, "1").is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn epoch_like_strtol() {
        assert_eq!(parse_epoch("+1"), Ok(1));
        assert_eq!(parse_epoch("-0"), Ok(0));
        assert_eq!(parse_epoch("00"), Ok(0));
        assert_eq!(parse_epoch("2147483647"), Ok(2147483647));
        assert!(parse_epoch("99999999999999999999999").is_err());
    }
}
