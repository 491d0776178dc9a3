//! Helpers shared by the text-database parsers (dpkg, apk, accounts): a bounded
//! problem list, char-boundary-safe cutting, lines of bytes and the deadline
//! check. Every input is untrusted, so kept values are capped at [`MAX_VALUE`]
//! bytes, problem reports stop after [`MAX_ERRORS`] (one final summary is
//! added), and bytes become text only for the values kept, one value at a
//! time (a whole database converted at once cost three bytes of text per
//! invalid byte).

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

/// The lines of `text` as `str::lines` cuts them (`\n` or `\r\n` ends
/// one; a last line without an end counts), as bytes.
pub fn lines(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    let body = text.strip_suffix(b"\n").unwrap_or(text);
    let none = text.is_empty();
    body.split(|&b| b == b'\n').filter(move |_| !none).map(|l| l.strip_suffix(b"\r").unwrap_or(l))
}

/// `bytes` as text, cut to at most `max` bytes: UTF-8 kept, anything else
/// replaced (U+FFFD). Only the part kept is converted.
pub fn text(bytes: &[u8], max: usize) -> String {
    cut(&String::from_utf8_lossy(cut_bytes(bytes, max)), max).to_string()
}

/// `bytes` cut to at most `max` bytes, backing off (at most 3 bytes) to the
/// start of a UTF-8 char so a valid one is not cut in two.
pub fn cut_bytes(bytes: &[u8], max: usize) -> &[u8] {
    if bytes.len() <= max {
        return bytes;
    }
    let mut end = max;
    for _ in 0..3 {
        if end > 0 && bytes[end] & 0xc0 == 0x80 {
            end -= 1;
        }
    }
    &bytes[..end]
}

/// At most `n` chars of `bytes` as text, for messages.
pub fn quote(bytes: &[u8], n: usize) -> String {
    truncate(&String::from_utf8_lossy(&bytes[..bytes.len().min(4 * n)]), n).to_string()
}

/// Lines a parser may read between two asks whether its scope's time is up
/// (it also asks at every stanza).
pub const CHECK_EVERY_LINES: usize = 4096;

/// How a parser learns that its scope's wall time has run out: `late` is
/// asked at every stanza and every [`CHECK_EVERY_LINES`] lines, and once it
/// says yes the parser stops, keeping what it has and saying where it stopped
/// (a scope that was given up must stop using CPU).
pub struct Deadline<'a> {
    late: &'a mut dyn FnMut() -> bool,
    lines: usize,
}

/// Why a parse stopped early.
pub const STOPPED: &str = "stopped here: the scope's wall time budget ran out";

impl<'a> Deadline<'a> {
    pub fn new(late: &'a mut dyn FnMut() -> bool) -> Self {
        Deadline { late, lines: 0 }
    }

    /// At a stanza's start: whether to stop.
    pub fn stanza(&mut self) -> bool {
        self.lines = 0;
        (self.late)()
    }

    /// At any line: whether to stop (asks every [`CHECK_EVERY_LINES`] lines).
    pub fn line(&mut self) -> bool {
        self.lines += 1;
        if self.lines < CHECK_EVERY_LINES {
            return false;
        }
        self.lines = 0;
        (self.late)()
    }
}

/// A `late` for [`Deadline`] that is true once `deadline` has passed.
pub fn past(deadline: std::time::Instant) -> impl FnMut() -> bool {
    move || std::time::Instant::now() > deadline
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

    pub fn is_empty(&self) -> bool {
        self.list.is_empty() && self.dropped == 0
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
