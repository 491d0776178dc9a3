//! Maven artifact versions, ordered as Maven's `ComparableVersion` orders
//! them (maven-artifact 3.8, the Maven Debian bookworm ships; checked
//! against it in `tests/maven_vs_maven.rs`).
//!
//! Any string is a version; none is refused. A version is cut, after
//! lowercasing, into items: numbers and words, split at `.` and `-` and
//! where digits meet letters. A `-` (and a change between digits and
//! letters) opens a nested list, so `1-1` is `[1, [1]]`; an empty item
//! counts as `0`. A word right before digits (`1.0.RC1`) opens a list of
//! its own, as if written `1.0-RC1`. Trailing "null" items — `0`, the
//! empty word and its aliases `ga`, `final`, `release`, an empty list —
//! are dropped from every list (also from before a nested list), so
//! `1.0.0 == 1 == 1-ga`.
//!
//! Words: `alpha` < `beta` < `milestone` < `rc` (`cr`) < `snapshot` <
//! `""` (release) < `sp`, then any other word, alphabetically, above all
//! of these; a single `a`, `b` or `m` followed by digits means alpha, beta,
//! milestone. Numbers compare by value (any size). Between kinds: a number
//! is above a word and above a list (`1.1 > 1-sp`, `1.1 > 1-1`), a list
//! is above a word; a missing item compares as null (so `1-sp > 1`, `1-rc < 1`).
//!
//! Only ASCII digits are digits here (Java's `Character.isDigit` also takes
//! other scripts' digits, which no published version uses).

use std::cmp::Ordering;

use crate::digits::compare_numbers;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    /// Digits without leading zeros (empty is zero).
    Num(String),
    /// A word, after aliases.
    Word(String),
    List(Vec<Item>),
}

/// The known qualifiers, in order; the empty word (a release) is at [`RELEASE`].
const QUALIFIERS: &[&str] = &["alpha", "beta", "milestone", "rc", "snapshot", "", "sp"];
const RELEASE: usize = 5;

fn word(text: &str, followed_by_digit: bool) -> Item {
    let w = match text {
        "a" if followed_by_digit => "alpha",
        "b" if followed_by_digit => "beta",
        "m" if followed_by_digit => "milestone",
        "ga" | "final" | "release" => "",
        "cr" => "rc",
        other => other,
    };
    Item::Word(w.to_string())
}

fn number(digits: &str) -> Item {
    Item::Num(digits.trim_start_matches('0').to_string())
}

fn item(text: &str, digits: bool) -> Item {
    if digits { number(text) } else { word(text, false) }
}

/// The rank of a word: a known qualifier's index, or past them all (then by the word itself).
fn rank(w: &str) -> (usize, &str) {
    match QUALIFIERS.iter().position(|q| *q == w) {
        Some(i) => (i, ""),
        None => (QUALIFIERS.len(), w),
    }
}

impl Item {
    fn is_null(&self) -> bool {
        match self {
            Item::Num(n) => n.is_empty(),
            Item::Word(w) => w.is_empty(),
            Item::List(l) => l.is_empty(),
        }
    }

    /// Compares with a missing item.
    fn cmp_null(&self) -> Ordering {
        match self {
            Item::Num(n) => {
                if n.is_empty() {
                    Ordering::Equal
                } else {
                    Ordering::Greater
                }
            }
            Item::Word(w) => rank(w).cmp(&(RELEASE, "")),
            // Every item against null, not only the first (Maven's MNG-6964): 1-ga.2 > 1.
            Item::List(l) => l.iter().map(Item::cmp_null).find(|o| o.is_ne()).unwrap_or(Ordering::Equal),
        }
    }

    fn cmp_item(&self, other: &Item) -> Ordering {
        use Item::*;
        match (self, other) {
            (Num(a), Num(b)) => compare_numbers(a.as_bytes(), b.as_bytes()),
            (Num(_), _) => Ordering::Greater,
            (Word(_), Num(_)) => Ordering::Less,
            (Word(a), Word(b)) => rank(a).cmp(&rank(b)),
            (Word(_), List(_)) => Ordering::Less,
            (List(_), Num(_)) => Ordering::Less,
            (List(_), Word(_)) => Ordering::Greater,
            (List(a), List(b)) => cmp_lists(a, b),
        }
    }
}

fn cmp_lists(a: &[Item], b: &[Item]) -> Ordering {
    for i in 0..a.len().max(b.len()) {
        let o = match (a.get(i), b.get(i)) {
            (Some(x), Some(y)) => x.cmp_item(y),
            (Some(x), None) => x.cmp_null(),
            (None, Some(y)) => y.cmp_null().reverse(),
            (None, None) => Ordering::Equal,
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    Ordering::Equal
}

/// Drops null items from the end of a list, looking past nested lists
/// (which are normalized first, being closed before their parent).
fn normalize(list: &mut Vec<Item>) {
    let mut i = list.len();
    while i > 0 {
        i -= 1;
        if list[i].is_null() {
            list.remove(i);
        } else if !matches!(list[i], Item::List(_)) {
            break;
        }
    }
}

/// The open lists, innermost last; each is closed (normalized and put into its parent) at the end.
struct Lists(Vec<Vec<Item>>);

impl Lists {
    fn top(&mut self) -> &mut Vec<Item> {
        self.0.last_mut().expect("the outermost list is never closed early")
    }
    fn open(&mut self) {
        self.0.push(Vec::new());
    }
    fn finish(mut self) -> Vec<Item> {
        while self.0.len() > 1 {
            let mut inner = self.0.pop().expect("checked");
            normalize(&mut inner);
            self.top().push(Item::List(inner));
        }
        let mut outer = self.0.pop().expect("checked");
        normalize(&mut outer);
        outer
    }
}

/// The items of a version, as Maven parses it.
fn parse(version: &str) -> Vec<Item> {
    // Java's toLowerCase(Locale.ENGLISH); ASCII is what decides the order of
    // known words, and other characters only need a consistent case.
    let v = version.to_lowercase();
    let mut lists = Lists(vec![Vec::new()]);
    let mut digits = false;
    let mut start = 0;
    for (i, c) in v.char_indices() {
        match c {
            '.' | '-' => {
                let it = if i == start { Item::Num(String::new()) } else { item(&v[start..i], digits) };
                lists.top().push(it);
                start = i + 1;
                if c == '-' {
                    lists.open();
                }
            }
            c if c.is_ascii_digit() => {
                if !digits && i > start {
                    // A word before digits (1.0.RC1) is its own list, as if after a '-'.
                    if !lists.top().is_empty() {
                        lists.open();
                    }
                    lists.top().push(word(&v[start..i], true));
                    start = i;
                    lists.open();
                }
                digits = true;
            }
            _ => {
                if digits && i > start {
                    lists.top().push(number(&v[start..i]));
                    start = i;
                    lists.open();
                }
                digits = false;
            }
        }
    }
    if v.len() > start {
        // A trailing word after other items (1.0.0.X) is its own list too.
        if !digits && !lists.top().is_empty() {
            lists.open();
        }
        let it = item(&v[start..], digits);
        lists.top().push(it);
    }
    lists.finish()
}

/// Compares two Maven versions (never an error: every string is a Maven version).
pub(crate) fn compare(a: &str, b: &str) -> Ordering {
    cmp_lists(&parse(a), &parse(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comparable_version_rules() {
        use Ordering::*;
        for (a, b, want) in [
            ("1", "1.0", Equal),
            ("1.0", "1-ga", Equal),
            ("1-ga", "1-final", Equal),
            ("1-release", "1", Equal),
            ("1.0.RC1", "1-rc1", Equal),
            ("1-cr1", "1-rc1", Equal),
            ("1-alpha1", "1a1", Equal),
            ("1-SNAPSHOT", "1", Less),
            ("1-rc1", "1-SNAPSHOT", Less),
            ("1-alpha-1", "1-beta-1", Less),
            ("1-m2", "1-rc", Less),
            ("1", "1-sp", Less),
            ("1-sp", "1-abc", Less),
            ("1-abc", "1-def", Less),
            ("1-1", "1.1", Less),
            ("1-sp", "1-1", Less),
            ("2.0.10", "2.0.9", Greater),
            ("2.14.1", "2.17.0", Less),
            ("2.17.1", "2.17.0", Greater),
            ("1.0.0.X1", "1.0.0-X2", Less),
            ("12345678901234567890", "12345678901234567891", Less),
            ("0001", "1", Equal),
            ("", "0", Equal),
            ("1..1", "1.0.1", Equal),
        ] {
            assert_eq!(compare(a, b), want, "{a} vs {b}");
            assert_eq!(compare(b, a), want.reverse(), "{b} vs {a}");
        }
    }

    #[test]
    fn parsed_items() {
        assert_eq!(parse("1.0.RC1"), parse("1-rc-1"));
    }
}
