//! Helpers shared by the text-database parsers (dpkg, apk, accounts): a bounded
//! problem list and char-boundary-safe cutting. Every input is untrusted, so
//! kept values are capped at [`MAX_VALUE`] bytes and problem reports stop after
//! [`MAX_ERRORS`] (one final summary is added).

/// Largest value a parser keeps, in bytes; longer values are cut and reported.
pub const MAX_VALUE: usize = 64 * 1024;

/// Problems recorded per parse before they are only counted.
pub const MAX_ERRORS: usize = 1000;

/// A stanza or line that could not become a record, with its 1-based line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StanzaError {
    pub line: usize,
    pub message: String,
}

/// At most `n` chars of `s`, for messages.
pub fn truncate(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// `s` cut to at most `max` bytes at a char boundary.
pub fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// `s` cut to at most `max` bytes by taking out its middle (marked `…`),
/// keeping up to `tail` bytes of its end: a message that starts with a long
/// path still ends with what went wrong.
pub fn cut_middle(s: &str, max: usize, tail: usize) -> std::borrow::Cow<'_, str> {
    if s.len() <= max {
        return s.into();
    }
    let tail = tail.min(max / 2);
    let mut from = s.len() - tail;
    while !s.is_char_boundary(from) {
        from += 1;
    }
    format!("{}…{}", cut(s, max - "…".len() - tail), &s[from..]).into()
}

/// Problems in line order, bounded: past [`MAX_ERRORS`] they are only counted,
/// and messages are not even formatted.
#[derive(Default)]
pub struct Errors {
    list: Vec<StanzaError>,
    dropped: usize,
    first_dropped: usize,
}

impl Errors {
    pub fn push(&mut self, line: usize, message: impl FnOnce() -> String) {
        if self.list.len() < MAX_ERRORS {
            self.list.push(StanzaError { line, message: message() });
        } else {
            if self.dropped == 0 {
                self.first_dropped = line;
            }
            self.dropped += 1;
        }
    }

    pub fn into_vec(mut self) -> Vec<StanzaError> {
        if self.dropped > 0 {
            let message = format!("{} more problems from this line on were not recorded", self.dropped);
            self.list.push(StanzaError { line: self.first_dropped, message });
        }
        self.list
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cutting_and_bounded_errors() {
        assert_eq!(cut("héllo", 2), "h");
        assert_eq!(cut("abc", 10), "abc");
        assert_eq!(truncate("héllo", 2), "hé");
        let mut e = Errors::default();
        for i in 0..MAX_ERRORS + 5 {
            e.push(i + 1, || format!("p{i}"));
        }
        let v = e.into_vec();
        assert_eq!(v.len(), MAX_ERRORS + 1);
        assert_eq!(
            v[MAX_ERRORS],
            StanzaError { line: MAX_ERRORS + 1, message: "5 more problems from this line on were not recorded".into() }
        );
    }
}
