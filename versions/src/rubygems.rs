//! Ruby gem versions, ordered as RubyGems' `Gem::Version#<=>` orders them
//! (checked against Ruby's own in `tests/rubygems_vs_ruby.rs`).
//!
//! A version is `N(.X)*` with an optional `-pre(.pre)*` part, surrounding
//! blanks ignored (an empty string is `0`); anything else is an error, as
//! `Gem::Version.new` raises "Malformed version number string". A `-` reads
//! as `.pre.` (`1.0-rc1` is `1.0.pre.rc1`). The version is cut into runs of
//! digits and runs of letters; trailing zeros are dropped from the numbers
//! before the first letter run and from the end (`1.0 == 1`, `1.0.a ==
//! 1.a`). Then items compare in turn, a missing one as `0`: numbers by
//! value (any size), letter runs bytewise (case counts: `B` < `a`), and a
//! letter run below any number, so a version with letters is a pre-release
//! of the one without (`1.0.a < 1.0`, `1.0.b1 < 1.0.b2 < 1.0`).

use std::cmp::Ordering;

use crate::VersionError;
use crate::digits::compare_numbers;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg<'a> {
    /// Digits without leading zeros (empty is zero).
    Num(&'a str),
    Str(&'a str),
}

fn ruby_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r')
}

/// Whether `v` (trimmed) matches RubyGems' version pattern.
fn well_formed(v: &str) -> bool {
    if v.is_empty() {
        return true;
    }
    let (release, pre) = match v.split_once('-') {
        Some((r, p)) => (r, Some(p)),
        None => (v, None),
    };
    let mut parts = release.split('.');
    let first = parts.next().unwrap_or("");
    if first.is_empty() || !first.bytes().all(|c| c.is_ascii_digit()) {
        return false;
    }
    if !parts.all(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_alphanumeric())) {
        return false;
    }
    // The pre-release part: dot-separated runs of letters, digits and `-`.
    pre.is_none_or(|p| p.split('.').all(|x| !x.is_empty() && x.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')))
}

fn segments(v: &str) -> Vec<Seg<'_>> {
    // `-` reads as `.pre.`: the word `pre` and separators, which only end runs.
    let b = v.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'-' {
            out.push(Seg::Str("pre"));
            i += 1;
            continue;
        }
        let digit = c.is_ascii_digit();
        if !digit && !c.is_ascii_alphabetic() {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && (if digit { b[i].is_ascii_digit() } else { b[i].is_ascii_alphabetic() }) {
            i += 1;
        }
        let run = &v[start..i];
        out.push(if digit { Seg::Num(run.trim_start_matches('0')) } else { Seg::Str(run) });
    }
    out
}

/// The segments with trailing zeros dropped from the numbers before the first letters, and from the rest.
fn canonical(v: &str) -> Vec<Seg<'_>> {
    let s = segments(v);
    let split = s.iter().position(|x| matches!(x, Seg::Str(_))).unwrap_or(s.len());
    let (nums, rest) = s.split_at(split);
    let trim = |part: &[Seg<'_>]| -> usize {
        part.len() - part.iter().rev().take_while(|x| matches!(x, Seg::Num(""))).count()
    };
    let mut out = nums[..trim(nums)].to_vec();
    out.extend_from_slice(&rest[..trim(rest)]);
    out
}

fn parse(text: &str) -> Result<Vec<Seg<'_>>, VersionError> {
    let v = text.trim_matches(ruby_space);
    if !well_formed(v) {
        return Err(VersionError::Invalid {
            scheme: "rubygems",
            version: text.to_string(),
            reason: "Malformed version number string (not N(.X)*[-PRE(.PRE)*] of letters and digits)".into(),
        });
    }
    Ok(canonical(v))
}

/// Compares two gem versions.
pub(crate) fn compare(a: &str, b: &str) -> Result<Ordering, VersionError> {
    let (a, b) = (parse(a)?, parse(b)?);
    for i in 0..a.len().max(b.len()) {
        let (x, y) = (a.get(i).unwrap_or(&Seg::Num("")), b.get(i).unwrap_or(&Seg::Num("")));
        let o = match (x, y) {
            (Seg::Num(x), Seg::Num(y)) => compare_numbers(x.as_bytes(), y.as_bytes()),
            (Seg::Str(x), Seg::Str(y)) => x.as_bytes().cmp(y.as_bytes()),
            (Seg::Str(_), Seg::Num(_)) => Ordering::Less,
            (Seg::Num(_), Seg::Str(_)) => Ordering::Greater,
        };
        if o != Ordering::Equal {
            return Ok(o);
        }
    }
    Ok(Ordering::Equal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gem_version_rules() {
        use Ordering::*;
        for (a, b, want) in [
            ("1.0", "1", Equal),
            ("1.0.0", "1.0", Equal),
            ("1.0.a", "1.a", Equal),
            ("1.0.a", "1.0", Less),
            ("1.0.b1", "1.0.b2", Less),
            ("1.0.b2", "1.0", Less),
            ("1.0-rc1", "1.0.pre.rc1", Equal),
            ("1.0-rc1", "1.0", Less),
            ("1.0.B", "1.0.a", Less),
            ("1.9.3", "1.10", Less),
            ("13.0.6", "13.0.10", Less),
            ("", "0", Equal),
            (" 1.2 ", "1.2", Equal),
            ("1.2.3.4.5", "1.2.3.4", Greater),
            ("99999999999999999999999", "99999999999999999999998", Greater),
            ("1.0.0.rc.1", "1.0.0.rc.0.1", Greater),
        ] {
            assert_eq!(compare(a, b), Ok(want), "{a} vs {b}");
            assert_eq!(compare(b, a), Ok(want.reverse()), "{b} vs {a}");
        }
        for bad in ["a", "1..2", "1.", ".1", "1.2-", "1 2", "1_2", "-1", "1.0-rc..1", "v1.0", "1.0+1"] {
            assert!(compare(bad, "1").is_err(), "{bad}");
        }
    }
}
