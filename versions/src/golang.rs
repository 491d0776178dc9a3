//! Go module versions, ordered as `golang.org/x/mod/semver.Compare` orders
//! them (what the `go` command uses for module versions).
//!
//! A version is `vMAJOR[.MINOR[.PATCH[-PRERELEASE][+BUILD]]]` with no
//! leading zeros; the shorthands `v1` and `v1.2` mean `v1.0.0` and `v1.2.0`
//! (and take no pre-release or build). Build metadata, `+incompatible`
//! included, is ignored. A pseudo-version (`v0.0.0-20191109021931-daa7c04131f5`,
//! `v1.2.4-0.20191109021931-daa7c04131f5`) is an ordinary pre-release, so it
//! sorts before the release it precedes, by its timestamp. Numbers of any size
//! compare exactly (by length, then digits), as Go compares them.
//!
//! Go's toolchain versions as build info records them (`go1.19.8`, the
//! `stdlib` package) are read as `v1.19.8`. Where `semver.Compare` would
//! quietly sort an invalid version below every valid one, this refuses it
//! (as the `go` command refuses it in a go.mod): `(devel)` has no order.

use std::cmp::Ordering;

use crate::VersionError;

struct Parsed<'a> {
    major: &'a str,
    minor: &'a str,
    patch: &'a str,
    /// With its leading `-`, or empty.
    prerelease: &'a str,
}

fn invalid(text: &str, reason: &str) -> VersionError {
    VersionError::Invalid { scheme: "golang", version: text.to_string(), reason: reason.to_string() }
}

fn int(v: &str) -> Option<(&str, &str)> {
    let n = v.bytes().take_while(u8::is_ascii_digit).count();
    if n == 0 || (n > 1 && v.starts_with('0')) {
        return None;
    }
    Some((&v[..n], &v[n..]))
}

fn ident_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'-'
}

fn bad_num(id: &str) -> bool {
    id.len() > 1 && id.starts_with('0') && id.bytes().all(|c| c.is_ascii_digit())
}

fn parse(text: &str) -> Result<Parsed<'_>, VersionError> {
    let v = match text.strip_prefix("go") {
        Some(rest) if rest.starts_with(|c: char| c.is_ascii_digit()) => rest,
        _ => text.strip_prefix('v').ok_or_else(|| invalid(text, "does not start with v (or go)"))?,
    };
    let bad = || invalid(text, "not vMAJOR[.MINOR[.PATCH[-PRERELEASE][+BUILD]]] without leading zeros");
    let (major, v) = int(v).ok_or_else(bad)?;
    if v.is_empty() {
        return Ok(Parsed { major, minor: "0", patch: "0", prerelease: "" });
    }
    let (minor, v) = v.strip_prefix('.').and_then(int).ok_or_else(bad)?;
    if v.is_empty() {
        return Ok(Parsed { major, minor, patch: "0", prerelease: "" });
    }
    let (patch, mut v) = v.strip_prefix('.').and_then(int).ok_or_else(bad)?;
    let mut prerelease = "";
    if v.starts_with('-') {
        let end = v.find('+').unwrap_or(v.len());
        prerelease = &v[..end];
        let ids = &prerelease[1..];
        if ids.split('.').any(|id| id.is_empty() || bad_num(id) || !id.bytes().all(ident_char)) {
            return Err(bad());
        }
        v = &v[end..];
    }
    if let Some(build) = v.strip_prefix('+') {
        if build.split('.').any(|id| id.is_empty() || !id.bytes().all(ident_char)) {
            return Err(bad());
        }
        v = "";
    }
    if !v.is_empty() {
        return Err(bad());
    }
    Ok(Parsed { major, minor, patch, prerelease })
}

fn cmp_int(a: &str, b: &str) -> Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

fn cmp_prerelease(x: &str, y: &str) -> Ordering {
    if x == y {
        return Ordering::Equal;
    }
    if x.is_empty() {
        return Ordering::Greater;
    }
    if y.is_empty() {
        return Ordering::Less;
    }
    let (mut xs, mut ys) = (x[1..].split('.'), y[1..].split('.'));
    loop {
        match (xs.next(), ys.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(a), Some(b)) if a == b => continue,
            (Some(a), Some(b)) => {
                let num = |s: &str| s.bytes().all(|c| c.is_ascii_digit());
                return match (num(a), num(b)) {
                    (true, false) => Ordering::Less,
                    (false, true) => Ordering::Greater,
                    (true, true) => cmp_int(a, b),
                    (false, false) => a.cmp(b),
                };
            }
        }
    }
}

/// Compares two Go module versions as `semver.Compare` does; invalid ones are errors.
pub(crate) fn compare(a: &str, b: &str) -> Result<Ordering, VersionError> {
    let (x, y) = (parse(a)?, parse(b)?);
    Ok(cmp_int(x.major, y.major)
        .then_with(|| cmp_int(x.minor, y.minor))
        .then_with(|| cmp_int(x.patch, y.patch))
        .then_with(|| cmp_prerelease(x.prerelease, y.prerelease)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_module_rules() {
        use Ordering::*;
        for (a, b, want) in [
            ("v1", "v1.0.0", Equal),
            ("v1.2", "v1.2.0", Equal),
            ("v2.0.0+incompatible", "v2.0.0", Equal),
            ("v0.0.0-20191109021931-daa7c04131f5", "v0.0.0-20200101000000-000000000000", Less),
            ("v1.2.4-0.20191109021931-daa7c04131f5", "v1.2.4", Less),
            ("v1.2.4-0.20191109021931-daa7c04131f5", "v1.2.3", Greater),
            ("v1.0.0-alpha", "v1.0.0-alpha.1", Less),
            ("v1.0.0-alpha.beta", "v1.0.0-beta", Less),
            ("v1.0.0-2", "v1.0.0-11", Less),
            ("v1.0.0-11", "v1.0.0-a", Less),
            ("v99999999999999999999.0.0", "v100000000000000000000.0.0", Less),
            ("go1.19.8", "v1.19.10", Less),
            ("go1.21", "go1.21.0", Equal),
        ] {
            assert_eq!(compare(a, b), Ok(want), "{a} vs {b}");
            assert_eq!(compare(b, a), Ok(want.reverse()), "{b} vs {a}");
        }
        for bad in [
            "1.0.0",
            "(devel)",
            "v1.2-pre",
            "v01.0.0",
            "v1.0.0-01",
            "v1.0.0-",
            "v1.0.0+",
            "v1.0.0-a..b",
            "go1.21rc2",
            "",
        ] {
            assert!(compare(bad, "v1.0.0").is_err(), "{bad}");
        }
    }
}
