//! PHP package versions (Composer), ordered as Composer orders them: each
//! version normalized by `composer/semver`'s `VersionParser::normalize`, the
//! two compared by PHP's `version_compare`, as Composer's constraints do
//! (checked against Debian's php-composer-semver in `tests/composer_vs_composer.rs`).
//!
//! Normalizing: blanks trimmed, an alias (`1.0 as 2.0`) and a stability flag
//! (`@dev`) dropped, build metadata (`+build`) dropped; `v1.2` is `1.2.0.0`;
//! a modifier (`-beta2`, `RC1`, `-p1`) becomes `-beta2`, `-RC1`, `-patch1`,
//! `-dev` is kept; date versions (`2010-01-02`) become `2010.01.02`;
//! `1.x-dev` is `1.9999999.9999999.9999999-dev`. What Composer calls an
//! invalid version string is an error, and so is a branch (`dev-main`,
//! `master`), which Composer never orders against anything.
//!
//! `version_compare` splits at `.` and wherever digits meet other
//! characters, numbers compare by value (as C `long`s: beyond 2^63 − 1 they
//! are all equal, as in PHP), words by rank: dev < alpha = a < beta = b <
//! RC = rc < a number < pl = p (patch), any other word below dev; a longer
//! version is greater when its next part is a number, else compares that
//! part against a number (so `1.0.0.0-beta1 < 1.0.0.0` and `1.0.0.0-patch1 > 1.0.0.0`).

use std::cmp::Ordering;
use std::sync::LazyLock;

use regex::Regex;

use crate::VersionError;

const MODIFIER: &str = r"[._-]?(?:(stable|beta|b|RC|alpha|a|patch|pl|p)((?:[.-]?[0-9]+)*)?)?([.-]?dev)?";

static ALIAS: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^([^,\s]+) +as +([^,\s]+)$").expect("regex"));
static FLAG: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(?i)@(?:stable|RC|beta|alpha|dev)$").expect("regex"));
static BUILD: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^([^,\s+]+)\+[^\s]+$").expect("regex"));
static CLASSICAL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(r"(?i)^v?([0-9]{{1,5}})(\.[0-9]+)?(\.[0-9]+)?(\.[0-9]+)?{MODIFIER}$")).expect("regex")
});
static DATE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(r"(?i)^v?([0-9]{{4}}(?:[.:-]?[0-9]{{2}}){{1,6}}(?:[.:-]?[0-9]{{1,3}})?){MODIFIER}$"))
        .expect("regex")
});
static DEV_SUFFIX: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(?i)^(.*?)[.-]?dev$").expect("regex"));
static BRANCH: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^v?([0-9]+)(\.(?:[0-9]+|[xX*]))?(\.(?:[0-9]+|[xX*]))?(\.(?:[0-9]+|[xX*]))?$").expect("regex")
});

fn php_trim(s: &str) -> &str {
    s.trim_matches([' ', '\t', '\n', '\r', '\0', '\x0b'])
}

fn expand_stability(s: &str) -> String {
    match s.to_ascii_lowercase().as_str() {
        "a" => "alpha".into(),
        "b" => "beta".into(),
        "p" | "pl" => "patch".into(),
        "rc" => "RC".into(),
        other => other.into(),
    }
}

fn invalid(text: &str, why: &str) -> VersionError {
    VersionError::Invalid { scheme: "composer", version: text.to_string(), reason: why.to_string() }
}

/// `VersionParser::normalize`; a branch is an error (it has no order).
fn normalize(text: &str) -> Result<String, VersionError> {
    let mut v = php_trim(text).to_string();
    if let Some(c) = ALIAS.captures(&v) {
        v = c[1].to_string();
    }
    if let Some(m) = FLAG.find(&v) {
        v.truncate(m.start());
    }
    if matches!(v.as_str(), "master" | "trunk" | "default")
        || v.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("dev-"))
    {
        return Err(invalid(text, "a branch, which Composer does not order against versions"));
    }
    if let Some(c) = BUILD.captures(&v) {
        v = c[1].to_string();
    }
    let matched = if let Some(c) = CLASSICAL.captures(&v) {
        let part = |i: usize| c.get(i).map_or(".0", |m| m.as_str()).to_string();
        Some((format!("{}{}{}{}", &c[1], part(2), part(3), part(4)), c, 5))
    } else if let Some(c) = DATE.captures(&v) {
        let d: String = c[1].chars().map(|x| if x.is_ascii_digit() { x } else { '.' }).collect();
        Some((d, c, 2))
    } else {
        None
    };
    if let Some((mut out, c, i)) = matched {
        let get = |k: usize| c.get(k).map_or("", |m| m.as_str());
        if !get(i).is_empty() {
            if get(i) == "stable" {
                return Ok(out);
            }
            out.push('-');
            out.push_str(&expand_stability(get(i)));
            out.push_str(get(i + 1).trim_start_matches(['.', '-']));
        }
        if !get(i + 2).is_empty() {
            out.push_str("-dev");
        }
        return Ok(out);
    }
    if let Some(c) = DEV_SUFFIX.captures(&v)
        && let Some(b) = BRANCH.captures(php_trim(&c[1]))
    {
        let mut out = String::new();
        for k in 1..5 {
            match b.get(k) {
                Some(m) => out.push_str(&m.as_str().replace(['*', 'X'], "x")),
                None => out.push_str(".x"),
            }
        }
        return Ok(out.replace('x', "9999999") + "-dev");
    }
    Err(invalid(text, "Invalid version string (Composer's VersionParser refuses it)"))
}

/// PHP's `php_canonicalize_version`: `-`, `_`, `+` and other non-alphanumerics
/// become `.`, and a `.` goes wherever digits meet other characters.
fn canonicalize(v: &[u8]) -> Vec<u8> {
    let Some((&first, rest)) = v.split_first() else { return Vec::new() };
    let isdig = |x: u8| x.is_ascii_digit();
    let isndig = |x: u8| !x.is_ascii_digit() && x != b'.';
    let mut q = vec![first];
    let mut lp = first;
    for &p in rest {
        let lq = *q.last().expect("never empty");
        if matches!(p, b'-' | b'_' | b'+') {
            if lq != b'.' {
                q.push(b'.');
            }
        } else if (isndig(lp) && isdig(p)) || (isdig(lp) && isndig(p)) {
            if lq != b'.' {
                q.push(b'.');
            }
            q.push(p);
        } else if !p.is_ascii_alphanumeric() {
            if lq != b'.' {
                q.push(b'.');
            }
        } else {
            q.push(p);
        }
        lp = p;
    }
    q
}

fn special(form: &[u8]) -> i32 {
    const FORMS: &[(&[u8], i32)] = &[
        (b"dev", 0),
        (b"alpha", 1),
        (b"a", 1),
        (b"beta", 2),
        (b"b", 2),
        (b"RC", 3),
        (b"rc", 3),
        (b"#", 4),
        (b"pl", 5),
        (b"p", 5),
    ];
    FORMS.iter().find(|(f, _)| form.starts_with(f)).map_or(-1, |&(_, o)| o)
}

/// C's `strtol` of a part that starts with a digit: saturating at `i64::MAX`.
fn strtol(p: &[u8]) -> i64 {
    p.iter()
        .take_while(|c| c.is_ascii_digit())
        .fold(0i64, |n, &c| n.saturating_mul(10).saturating_add(i64::from(c - b'0')))
}

/// PHP's `version_compare` (8.x).
fn php_version_compare(a: &[u8], b: &[u8]) -> Ordering {
    if a.is_empty() || b.is_empty() {
        return (!a.is_empty()).cmp(&!b.is_empty());
    }
    let v1 = if a[0] == b'#' { a.to_vec() } else { canonicalize(a) };
    let v2 = if b[0] == b'#' { b.to_vec() } else { canonicalize(b) };
    let (mut p1, mut p2) = (0usize, 0usize);
    let (mut n1, mut n2): (Option<usize>, Option<usize>) = (Some(0), Some(0));
    let mut compare = Ordering::Equal;
    let at = |v: &[u8], p: usize| v.get(p).copied().unwrap_or(0);
    while at(&v1, p1) != 0 && at(&v2, p2) != 0 && n1.is_some() && n2.is_some() {
        n1 = v1[p1..].iter().position(|&c| c == b'.').map(|i| p1 + i);
        n2 = v2[p2..].iter().position(|&c| c == b'.').map(|i| p2 + i);
        let e1 = &v1[p1..n1.unwrap_or(v1.len())];
        let e2 = &v2[p2..n2.unwrap_or(v2.len())];
        let (d1, d2) = (e1[0].is_ascii_digit(), e2[0].is_ascii_digit());
        compare = match (d1, d2) {
            (true, true) => strtol(e1).cmp(&strtol(e2)),
            (false, false) => special(e1).cmp(&special(e2)),
            (true, false) => special(b"#N#").cmp(&special(e2)),
            (false, true) => special(e1).cmp(&special(b"#N#")),
        };
        if compare != Ordering::Equal {
            break;
        }
        if let Some(n) = n1 {
            p1 = n + 1;
        }
        if let Some(n) = n2 {
            p2 = n + 1;
        }
    }
    if compare == Ordering::Equal {
        if n1.is_some() {
            compare =
                if at(&v1, p1).is_ascii_digit() { Ordering::Greater } else { php_version_compare(&v1[p1..], b"#N#") };
        } else if n2.is_some() {
            compare =
                if at(&v2, p2).is_ascii_digit() { Ordering::Less } else { php_version_compare(b"#N#", &v2[p2..]) };
        }
    }
    compare
}

/// Compares two Composer versions.
pub(crate) fn compare(a: &str, b: &str) -> Result<Ordering, VersionError> {
    let (a, b) = (normalize(a)?, normalize(b)?);
    Ok(php_version_compare(a.as_bytes(), b.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalized_as_composer_does() {
        for (v, want) in [
            ("1.1.4", "1.1.4.0"),
            ("v5.4.1", "5.4.1.0"),
            ("1.0.0-beta2", "1.0.0.0-beta2"),
            ("1.0RC1", "1.0.0.0-RC1"),
            ("1.0.0-p1", "1.0.0.0-patch1"),
            ("1.0.0-stable", "1.0.0.0"),
            ("1.0.0-beta.1-dev", "1.0.0.0-beta1-dev"),
            ("2010-01-02", "2010.01.02"),
            ("1.x-dev", "1.9999999.9999999.9999999-dev"),
            ("1.0.0+build.5", "1.0.0.0"),
            ("1.0 as 2.0", "1.0.0.0"),
            ("1.0@dev", "1.0.0.0"),
            ("123456", "123456"),
        ] {
            assert_eq!(normalize(v).as_deref(), Ok(want), "{v}");
        }
        for bad in ["dev-main", "master", "", "foo", "1.0.0.0.0", "1.0-foo"] {
            assert!(normalize(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ordered_as_composer_does() {
        use Ordering::*;
        for (a, b, want) in [
            ("1.0.0", "v1.0", Equal),
            ("1.0.0-beta1", "1.0.0", Less),
            ("1.0.0-alpha2", "1.0.0-beta1", Less),
            ("1.0.0-RC1", "1.0.0", Less),
            ("1.0.0-p1", "1.0.0", Greater),
            ("1.0.0-dev", "1.0.0-alpha1", Less),
            ("1.9.0", "1.10.0", Less),
            ("2.0.0", "1.x-dev", Greater),
        ] {
            assert_eq!(compare(a, b), Ok(want), "{a} vs {b}");
            assert_eq!(compare(b, a), Ok(want.reverse()), "{b} vs {a}");
        }
    }
}
