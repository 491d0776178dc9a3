//! Alpine (apk-tools) version ordering.
//!
//! An apk version is `digits{.digits}[letter]{_suffix[digits]}[~hash][-rN]`.
//! Both versions are read token by token in step; the first pair of tokens of
//! the same kind that differ decides:
//!
//! * the leading number, suffix numbers and the `-r` revision compare as
//!   numbers (of any length here; apk-tools itself reads them into a fixed-width
//!   integer, so only numbers past 2^32 can differ);
//! * a later dot-separated number compares as a number too, unless either side
//!   starts with `0`, in which case the two compare as strings (so `1.01` <
//!   `1.1` and `8.2.0` < `8.2.001`);
//! * the letter compares as a byte; a `~hash` compares as a string;
//! * suffixes rank `_alpha` < `_beta` < `_pre` < `_rc` < (no suffix) < `_cvs` <
//!   `_svn` < `_git` < `_hg` < `_p`.
//!
//! When one version reaches a different kind of token than the other (or its
//! end), a pre-release suffix (`_alpha` … `_rc`) on one side makes that side the
//! lower one; otherwise the side whose token comes earlier in the grammar (and
//! so carries more of the version) is the higher one: `1.0` < `1.0.1` <
//! `1.0.1-r1`, `1.0_rc1` < `1.0` < `1.0_p1`.
//!
//! apk-tools compares malformed versions too, reading them up to the first
//! character the grammar does not allow and treating that point as a token
//! that sorts below every well-formed continuation; this module does the same,
//! so every input has an answer (two versions that are equal up to the point
//! where both stop being well-formed compare equal, as in apk-tools).

use std::cmp::Ordering;

use crate::digits::{compare_numbers, split_digits};

/// Token kinds in grammar order; a later kind means "less of the version left".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Leading,
    Digit,
    Letter,
    Suffix,
    SuffixNumber,
    Hash,
    Revision,
    End,
    Invalid,
}

/// Suffix ranks; those below [`NO_SUFFIX`] mark pre-releases.
const SUFFIXES: [(&[u8], u8); 9] = [
    (b"alpha", 0),
    (b"beta", 1),
    (b"pre", 2),
    (b"rc", 3),
    (b"cvs", 5),
    (b"svn", 6),
    (b"git", 7),
    (b"hg", 8),
    (b"p", 9),
];
const NO_SUFFIX: u8 = 4;

#[derive(Debug, Clone, Copy)]
struct Token<'a> {
    kind: Kind,
    /// The token's characters (digits, letter, hash); empty for suffixes.
    text: &'a [u8],
    /// The suffix rank, for [`Kind::Suffix`].
    rank: u8,
}

impl Token<'_> {
    fn is_pre_release(&self) -> bool {
        self.kind == Kind::Suffix && self.rank < NO_SUFFIX
    }
}

/// Reads a version one token at a time.
struct Lexer<'a> {
    rest: &'a [u8],
}

impl<'a> Lexer<'a> {
    fn token(kind: Kind, text: &'a [u8]) -> Token<'a> {
        Token { kind, text, rank: NO_SUFFIX }
    }

    fn invalid() -> Token<'a> {
        Self::token(Kind::Invalid, b"")
    }

    /// Reads a run of digits as a token of `kind`; an empty run is invalid.
    fn digits(&mut self, kind: Kind) -> Token<'a> {
        let (digits, rest) = split_digits(self.rest);
        self.rest = rest;
        if digits.is_empty() { Self::invalid() } else { Self::token(kind, digits) }
    }

    /// The first token: the leading number.
    fn first(&mut self) -> Token<'a> {
        self.digits(Kind::Leading)
    }

    /// The token after one of kind `prev`.
    fn next(&mut self, prev: Kind) -> Token<'a> {
        let Some(&c) = self.rest.first() else {
            return Self::token(Kind::End, b"");
        };
        match c {
            b'a'..=b'z' if prev <= Kind::Digit => {
                let (letter, rest) = self.rest.split_at(1);
                self.rest = rest;
                Self::token(Kind::Letter, letter)
            }
            b'.' if prev <= Kind::Digit => {
                self.rest = &self.rest[1..];
                self.digits(Kind::Digit)
            }
            b'0'..=b'9' if prev == Kind::Suffix => self.digits(Kind::SuffixNumber),
            b'_' if prev <= Kind::SuffixNumber => {
                let name_len = self.rest[1..].iter().take_while(|c| c.is_ascii_lowercase()).count();
                let name = &self.rest[1..1 + name_len];
                self.rest = &self.rest[1 + name_len..];
                match SUFFIXES.iter().find(|(s, _)| *s == name) {
                    Some(&(_, rank)) => Token { kind: Kind::Suffix, text: b"", rank },
                    None => Self::invalid(),
                }
            }
            b'~' if prev < Kind::Hash => {
                let hex = self.rest[1..].iter().take_while(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')).count();
                let hash = &self.rest[1..1 + hex];
                self.rest = &self.rest[1 + hex..];
                if hash.is_empty() { Self::invalid() } else { Self::token(Kind::Hash, hash) }
            }
            b'-' if prev < Kind::Revision => match self.rest.strip_prefix(b"-r") {
                Some(rest) => {
                    self.rest = rest;
                    self.digits(Kind::Revision)
                }
                None => Self::invalid(),
            },
            _ => Self::invalid(),
        }
    }
}

/// Compares two tokens of the same kind.
fn compare_tokens(a: &Token<'_>, b: &Token<'_>) -> Ordering {
    match a.kind {
        Kind::Digit if a.text.starts_with(b"0") || b.text.starts_with(b"0") => a.text.cmp(b.text),
        Kind::Leading | Kind::Digit | Kind::SuffixNumber | Kind::Revision => compare_numbers(a.text, b.text),
        Kind::Suffix => a.rank.cmp(&b.rank),
        Kind::Letter | Kind::Hash | Kind::End | Kind::Invalid => a.text.cmp(b.text),
    }
}

/// Compares two apk versions. Never fails: see the module docs.
pub(crate) fn compare(a: &str, b: &str) -> Ordering {
    let mut la = Lexer { rest: a.as_bytes() };
    let mut lb = Lexer { rest: b.as_bytes() };
    let mut ta = la.first();
    let mut tb = lb.first();
    while ta.kind == tb.kind && ta.kind < Kind::End {
        let order = compare_tokens(&ta, &tb);
        if order != Ordering::Equal {
            return order;
        }
        ta = la.next(ta.kind);
        tb = lb.next(tb.kind);
    }
    if ta.kind == tb.kind {
        Ordering::Equal
    } else if ta.is_pre_release() {
        Ordering::Less
    } else if tb.is_pre_release() {
        Ordering::Greater
    } else {
        // The side that stopped (or went astray) earlier in the grammar is lower.
        tb.kind.cmp(&ta.kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grammar_order() {
        let ordered = [
            "1.0_alpha",
            "1.0_alpha1",
            "1.0_beta",
            "1.0_pre",
            "1.0_rc1",
            "1.0",
            "1.0-r1",
            "1.0_cvs",
            "1.0_svn",
            "1.0_git",
            "1.0_hg",
            "1.0_p1",
            "1.0a",
            "1.0.1",
        ];
        for w in ordered.windows(2) {
            assert_eq!(compare(w[0], w[1]), Ordering::Less, "{} < {}", w[0], w[1]);
            assert_eq!(compare(w[1], w[0]), Ordering::Greater, "{} > {}", w[1], w[0]);
        }
    }

    #[test]
    fn leading_zeros() {
        assert_eq!(compare("1.01", "1.1"), Ordering::Less);
        assert_eq!(compare("006", "6"), Ordering::Equal);
        assert_eq!(compare("1.0-r01", "1.0-r1"), Ordering::Equal);
    }

    #[test]
    fn malformed() {
        assert_eq!(compare("", "abc"), Ordering::Equal);
        assert_eq!(compare("", "0"), Ordering::Less);
        assert_eq!(compare("1.0", "1.0bc"), Ordering::Less);
        assert_eq!(compare("1.0", "1.0@"), Ordering::Greater);
    }
}
