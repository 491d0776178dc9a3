//! Whether an installed version is affected by an OSV `affected` entry, by the
//! evaluation the OSV specification gives: a version listed in `versions` is
//! affected; otherwise each SEMVER or ECOSYSTEM range's events are sorted by
//! version (`introduced: "0"` first) and walked in order — at or past an
//! `introduced` the version is affected, at or past a `fixed`, or past a
//! `last_affected`, it is not — and a range with `limit` events covers only
//! versions below one of them (`*`: no limit). GIT ranges name commits, which
//! an installed package does not carry: they are never matched, and an import
//! counts them.
//!
//! A range whose events the ecosystem's version order cannot read is not
//! matched either (an import counts it); an installed version that order
//! cannot read matches only an identical `versions` entry.

use std::cmp::Ordering;

use periscope_versions::{Scheme, compare};

use crate::ecosystem::event_version;
use crate::osv::{Event, Range};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Introduced,
    Fixed,
    LastAffected,
    Limit,
}

/// One range, ready to evaluate: events sorted, versions in the scheme's form.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    events: Vec<(Kind, String)>,
    limits: Vec<String>,
}

/// The ranges of an `affected` entry, ready to evaluate against many
/// versions. Its `versions` list is not kept: [`Entry::affects`] reads it
/// where it lies (a Linux advisory lists thousands).
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    key: String,
    scheme: Scheme,
    ranges: Vec<Prepared>,
    /// Why parts of the entry are not matched (GIT ranges, unreadable versions, ...).
    pub unmatched: Vec<String>,
}

fn event(e: &Event) -> Result<(Kind, &str), String> {
    let set: Vec<(Kind, &str)> = [
        (Kind::Introduced, &e.introduced),
        (Kind::Fixed, &e.fixed),
        (Kind::LastAffected, &e.last_affected),
        (Kind::Limit, &e.limit),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.as_deref().map(|v| (k, v)))
    .collect();
    match set.as_slice() {
        [one] => Ok(*one),
        _ => Err(format!("an event sets {} of introduced, fixed, last_affected and limit", set.len())),
    }
}

/// "0" introduces from the beginning of time: lowest of all.
fn order(scheme: Scheme, a: &str, b: &str) -> Result<Ordering, String> {
    match (a == "0", b == "0") {
        (true, true) => Ok(Ordering::Equal),
        (true, false) => Ok(Ordering::Less),
        (false, true) => Ok(Ordering::Greater),
        _ => compare(scheme, a, b).map_err(|e| e.to_string()),
    }
}

impl Entry {
    /// Prepares the entry of ecosystem `key` (see [`crate::ecosystem`]) for
    /// matching under `scheme`.
    pub fn new(key: &str, scheme: Scheme, ranges: &[Range]) -> Entry {
        let mut unmatched = Vec::new();
        let mut prepared = Vec::new();
        for r in ranges {
            match r.kind.as_str() {
                "SEMVER" | "ECOSYSTEM" => match prepare(key, scheme, r) {
                    Ok(p) => prepared.push(p),
                    Err(e) => unmatched.push(format!("{} range not matched: {e}", r.kind)),
                },
                "GIT" => unmatched.push("GIT range not matched: it names commits".to_string()),
                other => unmatched.push(format!("{other:?} range not matched: unknown range type")),
            }
        }
        Entry { key: key.to_string(), scheme, ranges: prepared, unmatched }
    }

    /// None when `installed` is not affected (by the ranges, or by the entry's
    /// `versions` list, `listed`); otherwise the lowest fixing version above
    /// it: the lowest `fixed` event above it that the entry does not affect
    /// (None inside when there is none: no fix, or only a `last_affected`).
    pub fn affects(&self, installed: &str, listed: &[&str]) -> Option<Option<String>> {
        let affected = |v: &str| self.ranges.iter().any(|r| r.affects(self.scheme, v)) || self.lists(v, listed);
        if !affected(installed) {
            return None;
        }
        let above = |v: &str| compare(self.scheme, v, installed).ok() == Some(Ordering::Greater);
        let mut fixes: Vec<&str> = (self.ranges.iter())
            .flat_map(|r| r.events.iter().filter(|(k, v)| *k == Kind::Fixed && above(v)).map(|(_, v)| v.as_str()))
            .collect();
        fixes.sort_by(|a, b| compare(self.scheme, a, b).unwrap_or(Ordering::Equal));
        fixes.dedup();
        Some(fixes.into_iter().find(|f| !affected(f)).map(str::to_string))
    }

    /// Whether `v` is in the entry's `versions` list.
    fn lists(&self, v: &str, listed: &[&str]) -> bool {
        listed.iter().any(|l| {
            let l = event_version(&self.key, l);
            l == v || (l != "0" && compare(self.scheme, &l, v).ok() == Some(Ordering::Equal))
        })
    }
}

/// The most events a range may hold (real ranges hold a handful; Linux's a few hundred).
pub const MAX_EVENTS: usize = 10_000;

fn prepare(key: &str, scheme: Scheme, r: &Range) -> Result<Prepared, String> {
    if r.events.len() > MAX_EVENTS {
        return Err(format!("{} events, over the {MAX_EVENTS}-event limit", r.events.len()));
    }
    let mut events = Vec::with_capacity(r.events.len());
    let mut limits = Vec::new();
    for e in &r.events {
        let (kind, v) = event(e)?;
        let v = event_version(key, v);
        if v != "0" && !(kind == Kind::Limit && v == "*") {
            // Refuse what the order cannot read now, not at every comparison.
            compare(scheme, &v, &v).map_err(|e| e.to_string())?;
        } else if kind != Kind::Introduced && kind != Kind::Limit {
            return Err(format!("{kind:?} at \"0\""));
        }
        if kind == Kind::Limit {
            limits.push(v);
        } else {
            events.push((kind, v));
        }
    }
    if !events.iter().any(|(k, _)| *k == Kind::Introduced) {
        return Err("no introduced event".to_string());
    }
    // At one version, `introduced` sorts first: `introduced X, fixed X` is an
    // empty span in whichever order the record lists them.
    let rank = |k: Kind| u8::from(k != Kind::Introduced);
    let mut failed = None;
    events.sort_by(|a, b| match order(scheme, &a.1, &b.1) {
        Ok(o) => o.then(rank(a.0).cmp(&rank(b.0))),
        Err(e) => {
            failed = Some(e);
            Ordering::Equal
        }
    });
    match failed {
        Some(e) => Err(e),
        None => Ok(Prepared { events, limits }),
    }
}

impl Prepared {
    fn affects(&self, scheme: Scheme, v: &str) -> bool {
        let cmp = |e: &str| order(scheme, v, e).ok();
        let below_a_limit =
            self.limits.is_empty() || self.limits.iter().any(|l| l == "*" || cmp(l) == Some(Ordering::Less));
        if !below_a_limit {
            return false;
        }
        let mut affected = false;
        for (kind, e) in &self.events {
            let Some(c) = cmp(e) else { return false };
            match kind {
                Kind::Introduced if e == "0" || c != Ordering::Less => affected = true,
                Kind::Fixed if c != Ordering::Less => affected = false,
                Kind::LastAffected if c == Ordering::Greater => affected = false,
                _ => {}
            }
        }
        affected
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(kind: &str, events: &[(&str, &str)]) -> Range {
        let events = events
            .iter()
            .map(|(k, v)| {
                let v = Some(v.to_string());
                match *k {
                    "introduced" => Event { introduced: v, ..Default::default() },
                    "fixed" => Event { fixed: v, ..Default::default() },
                    "last_affected" => Event { last_affected: v, ..Default::default() },
                    _ => Event { limit: v, ..Default::default() },
                }
            })
            .collect();
        Range { kind: kind.to_string(), repo: None, events }
    }

    /// An entry with its `versions` list.
    fn entry<'a>(key: &str, scheme: Scheme, ranges: &[Range], versions: &'a [&'a str]) -> (Entry, &'a [&'a str]) {
        (Entry::new(key, scheme, ranges), versions)
    }

    fn hits((e, listed): &(Entry, &[&str]), vs: &[&str]) -> Vec<String> {
        vs.iter()
            .map(|v| match e.affects(v, listed) {
                None => "-".to_string(),
                Some(None) => "open".to_string(),
                Some(Some(f)) => f,
            })
            .collect()
    }

    #[test]
    fn introduced_zero_fixed_and_last_affected_follow_the_specification() {
        let e = entry("PyPI", Scheme::Pep440, &[range("ECOSYSTEM", &[("introduced", "0"), ("fixed", "2.2.2")])], &[]);
        assert_eq!(hits(&e, &["0.1", "2.2.1", "2.2.2", "3.0", "2.2.2rc1"]), ["2.2.2", "2.2.2", "-", "-", "2.2.2"]);
        let e = entry(
            "PyPI",
            Scheme::Pep440,
            &[range("ECOSYSTEM", &[("introduced", "1.0"), ("last_affected", "1.4")])],
            &[],
        );
        assert_eq!(hits(&e, &["0.9", "1.0", "1.4", "1.4.post1", "1.5"]), ["-", "open", "open", "-", "-"]);
    }

    #[test]
    fn events_are_sorted_before_the_walk_and_several_ranges_each_count() {
        // Two branches in one range, written out of order: [1.0, 1.2) and [2.0, 2.1).
        let e = entry(
            "crates.io",
            Scheme::Semver,
            &[range(
                "SEMVER",
                &[("fixed", "2.1.0"), ("introduced", "2.0.0"), ("fixed", "1.2.0"), ("introduced", "1.0.0")],
            )],
            &[],
        );
        assert_eq!(hits(&e, &["0.9.0", "1.1.0", "1.2.0", "2.0.5", "2.1.0"]), ["-", "1.2.0", "-", "2.1.0", "-"]);
        // Overlapping ranges: a fix one range names but the other still covers fixes nothing.
        let e = entry(
            "npm",
            Scheme::Semver,
            &[
                range("SEMVER", &[("introduced", "0"), ("fixed", "1.5.0")]),
                range("SEMVER", &[("introduced", "1.0.0"), ("fixed", "1.3.0")]),
            ],
            &[],
        );
        assert_eq!(hits(&e, &["0.5.0", "1.1.0", "1.4.0"]), ["1.5.0", "1.5.0", "1.5.0"]);
        // A branch that ends in last_affected has no fix of its own; the next branch's fix is a fixing version.
        let events = [("introduced", "0"), ("last_affected", "1.4.0"), ("introduced", "2.0.0"), ("fixed", "2.5.0")];
        let e = entry("npm", Scheme::Semver, &[range("SEMVER", &events)], &[]);
        assert_eq!(hits(&e, &["1.2.0", "1.5.0", "2.1.0"]), ["2.5.0", "-", "2.5.0"]);
        // Listed versions are affected, so none of them is a fix.
        let e = entry(
            "npm",
            Scheme::Semver,
            &[range("SEMVER", &[("introduced", "1.0.0"), ("fixed", "1.1.0")])],
            &["1.1.0"],
        );
        assert_eq!(hits(&e, &["1.0.5", "1.1.0"]), ["open", "open"]);
    }

    #[test]
    fn at_one_version_introduced_comes_first_whatever_the_record_order() {
        for events in [[("introduced", "1.0.0"), ("fixed", "1.0.0")], [("fixed", "1.0.0"), ("introduced", "1.0.0")]] {
            let e = entry("crates.io", Scheme::Semver, &[range("SEMVER", &events)], &[]);
            assert_eq!(hits(&e, &["0.9.0", "1.0.0", "1.1.0"]), ["-", "-", "-"], "{events:?}");
        }
        let many: Vec<(&str, &str)> = std::iter::repeat_n(("introduced", "1.0.0"), MAX_EVENTS + 1).collect();
        let e = entry("npm", Scheme::Semver, &[range("SEMVER", &many)], &[]);
        assert!(e.0.unmatched[0].contains("over the 10000-event limit"), "{:?}", e.0.unmatched);
    }

    #[test]
    fn limits_bound_a_range_and_versions_lists_match_exactly() {
        let e = entry(
            "Go",
            Scheme::Golang,
            &[
                range("SEMVER", &[("introduced", "0"), ("limit", "1.5.0")]),
                range("SEMVER", &[("introduced", "2.0.0"), ("limit", "*")]),
            ],
            &[],
        );
        assert_eq!(hits(&e, &["v1.4.9", "v1.5.0", "v1.9.0", "v2.3.0"]), ["open", "-", "-", "open"]);
        let e = entry("PyPI", Scheme::Pep440, &[], &["1.0", "1.1"]);
        assert_eq!(hits(&e, &["1.0", "1.0.0", "1.0.1", "not a version"]), ["open", "open", "-", "-"]);
        assert!(e.0.unmatched.is_empty());
    }

    #[test]
    fn go_events_gain_their_v_and_the_toolchain_reads_as_go_versions() {
        let e = entry("Go", Scheme::Golang, &[range("SEMVER", &[("introduced", "1.21.0"), ("fixed", "1.21.5")])], &[]);
        assert_eq!(hits(&e, &["go1.21.3", "v1.21.3", "go1.21.5", "go1.20.1"]), ["v1.21.5", "v1.21.5", "-", "-"]);
    }

    #[test]
    fn git_ranges_and_unreadable_events_are_not_matched_and_say_why() {
        let git = Range {
            repo: Some("https://github.com/x/y".into()),
            ..range("GIT", &[("introduced", "abc"), ("fixed", "def")])
        };
        let e = entry(
            "crates.io",
            Scheme::Semver,
            &[
                git,
                range("SEMVER", &[("introduced", "0.0.0-0"), ("fixed", "not.semver")]),
                range("SEMVER", &[("fixed", "1.0.0")]),
            ],
            &[],
        );
        assert_eq!(hits(&e, &["0.5.0"]), ["-"]);
        let why = &e.0.unmatched;
        assert_eq!(why.len(), 3, "{why:?}");
        assert!(why[0].starts_with("GIT range not matched"));
        assert!(why[1].contains("not.semver"), "{why:?}");
        assert!(why[2].contains("no introduced event"), "{why:?}");
        let two = Event { introduced: Some("0".into()), fixed: Some("1".into()), ..Default::default() };
        let e = entry("npm", Scheme::Semver, &[Range { kind: "SEMVER".into(), repo: None, events: vec![two] }], &[]);
        assert!(e.0.unmatched[0].contains("sets 2 of"), "{:?}", e.0.unmatched);
    }

    #[test]
    fn distributions_compare_in_their_own_order() {
        let e = entry(
            "Debian:12",
            Scheme::Deb,
            &[range("ECOSYSTEM", &[("introduced", "0"), ("fixed", "5.2.15-2+deb12u1")])],
            &[],
        );
        assert_eq!(
            hits(&e, &["5.2.15-2", "5.2.15-2+b2", "5.2.15-2+deb12u1", "1:1.0"]),
            ["5.2.15-2+deb12u1", "5.2.15-2+deb12u1", "-", "-"]
        );
        let e = entry(
            "Alpine:v3.19",
            Scheme::Apk,
            &[range("ECOSYSTEM", &[("introduced", "0"), ("fixed", "3.1.4-r5")])],
            &[],
        );
        assert_eq!(hits(&e, &["3.1.4-r4", "3.1.4-r5"]), ["3.1.4-r5", "-"]);
    }
}
