//! Parser for dpkg's status database (`/var/lib/dpkg/status`, deb822 stanzas).
//!
//! Pure and total: any bytes in, packages and per-stanza problems out. Field
//! names are case-insensitive; continuation lines (leading space or tab) extend
//! the previous field; stanzas are separated by blank lines.

/// One stanza of the status file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DpkgPackage {
    pub name: String,
    pub version: Option<String>,
    pub architecture: Option<String>,
    pub source: Option<String>,
    pub source_version: Option<String>,
    pub status: Option<String>,
    pub maintainer: Option<String>,
    /// In bytes (the database records KiB).
    pub installed_size: Option<i64>,
    /// First line of Description.
    pub description: Option<String>,
    pub homepage: Option<String>,
}

impl DpkgPackage {
    /// True when the package's files are on disk: the third word of Status is
    /// one of dpkg's installed-ish states. `config-files` and `not-installed`
    /// (including a `deinstall`/`purge` that completed) are not.
    pub fn is_installed(&self) -> bool {
        let state = self.status.as_deref().and_then(|s| s.split_whitespace().nth(2));
        matches!(
            state,
            Some(
                "installed"
                    | "half-configured"
                    | "unpacked"
                    | "half-installed"
                    | "triggers-awaited"
                    | "triggers-pending"
            )
        )
    }
}

pub use super::parse::StanzaError;
use super::parse::{Deadline, Errors, MAX_VALUE, STOPPED, quote, text};

/// Parses a whole status file.
pub fn parse_status(bytes: &[u8]) -> (Vec<DpkgPackage>, Vec<StanzaError>) {
    parse_status_within(bytes, &mut Deadline::new(&mut || false))
}

/// Parses a status file until `deadline` says the scope's time is up (asked
/// at every stanza): the packages read so far are kept and one problem says
/// where it stopped. See [`StatusParser`], which this feeds in one piece.
pub fn parse_status_within(bytes: &[u8], deadline: &mut Deadline<'_>) -> (Vec<DpkgPackage>, Vec<StanzaError>) {
    let mut pkgs = Vec::new();
    let mut p = StatusParser::new(deadline);
    p.feed(bytes, &mut |x| pkgs.push(x));
    let errors = p.finish(&mut |x| pkgs.push(x));
    (pkgs, errors)
}

/// Bytes of one line a parser keeps: a value is cut to [`MAX_VALUE`] bytes
/// anyway, so a longer line (a 190 MB Description) costs no more than this.
/// Only a line with more leading blanks than this reads differently.
pub const LINE_KEEP: usize = 2 * MAX_VALUE;

/// The fields a package keeps, in the order of [`StatusParser::values`].
const KEPT: [&str; 8] =
    ["Package", "Version", "Source", "Installed-Size", "Architecture", "Status", "Maintainer", "Homepage"];

/// A status file parsed as it is read, in chunks of any size: each package
/// is handed over as its stanza ends, and what the parser holds is bounded
/// by [`LINE_KEEP`] and the kept fields' values, never by the file.
///
/// Pure and total: any bytes in, packages and per-stanza problems out. Only
/// the fields a package keeps become text, each cut to [`MAX_VALUE`] bytes;
/// problems are bounded (see [`Errors`]).
pub struct StatusParser<'d, 'l> {
    deadline: &'d mut Deadline<'l>,
    errors: Errors,
    stopped: bool,
    // The line being read.
    line: Vec<u8>,
    len: usize,
    blank: bool,
    colon: Option<usize>,
    blank_before_colon: bool,
    last_byte: u8,
    lineno: usize,
    // The stanza being read.
    start: usize,
    fields: usize,
    values: [Option<Vec<u8>>; KEPT.len()],
    /// Description's first line, and whether it was cut at [`LINE_KEEP`].
    description: Option<(Vec<u8>, bool)>,
    /// The kept field that continuation lines extend now.
    extending: Option<usize>,
}

impl<'d, 'l> StatusParser<'d, 'l> {
    pub fn new(deadline: &'d mut Deadline<'l>) -> Self {
        StatusParser {
            deadline,
            errors: Errors::default(),
            stopped: false,
            line: Vec::new(),
            len: 0,
            blank: true,
            colon: None,
            blank_before_colon: false,
            last_byte: 0,
            lineno: 0,
            start: 1,
            fields: 0,
            values: Default::default(),
            description: None,
            extending: None,
        }
    }

    /// Whether the deadline stopped the parse (the rest of the input is ignored).
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// Reads `chunk`; false once stopped.
    pub fn feed(&mut self, mut chunk: &[u8], each: &mut dyn FnMut(DpkgPackage)) -> bool {
        while !self.stopped && !chunk.is_empty() {
            match chunk.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    self.take(&chunk[..i]);
                    self.end_line(each);
                    chunk = &chunk[i + 1..];
                }
                None => {
                    self.take(chunk);
                    chunk = &[];
                }
            }
        }
        !self.stopped
    }

    /// The end of the input: the last stanza, and the problems found.
    pub fn finish(mut self, each: &mut dyn FnMut(DpkgPackage)) -> Vec<StanzaError> {
        if !self.stopped && self.len > 0 {
            self.end_line(each);
        }
        if !self.stopped {
            // As if a blank line followed.
            self.lineno += 1;
            self.flush(each);
        }
        self.errors.into_vec()
    }

    /// Gives up on the input (a read failed part way): the stanza being
    /// read is dropped, not made from what was read of it (a version cut
    /// short); the problems met so far are kept.
    pub fn abort(self) -> Vec<StanzaError> {
        self.errors.into_vec()
    }

    fn take(&mut self, seg: &[u8]) {
        if seg.is_empty() {
            return;
        }
        match self.colon {
            Some(_) => {}
            None => match seg.iter().position(|&b| b == b':') {
                Some(c) => {
                    self.blank_before_colon |= seg[..c].iter().any(u8::is_ascii_whitespace);
                    self.colon = Some(self.len + c);
                }
                None => self.blank_before_colon |= seg.iter().any(u8::is_ascii_whitespace),
            },
        }
        self.blank &= seg.iter().all(u8::is_ascii_whitespace);
        let room = LINE_KEEP.saturating_sub(self.line.len());
        self.line.extend_from_slice(&seg[..seg.len().min(room)]);
        self.len += seg.len();
        self.last_byte = seg[seg.len() - 1];
    }

    fn end_line(&mut self, each: &mut dyn FnMut(DpkgPackage)) {
        if self.last_byte == b'\r' && self.len > 0 {
            self.len -= 1;
            self.line.truncate(self.len);
        }
        self.lineno += 1;
        self.line_done(each);
        self.line.clear();
        (self.len, self.blank, self.colon, self.blank_before_colon, self.last_byte) = (0, true, None, false, 0);
    }

    fn flush(&mut self, each: &mut dyn FnMut(DpkgPackage)) {
        if self.fields > 0 {
            let values = std::mem::take(&mut self.values);
            let description = self.description.take();
            match stanza(values, description) {
                Ok(p) => each(p),
                Err(message) => self.errors.push(self.start, || message),
            }
            self.fields = 0;
            self.extending = None;
        }
        self.start = self.lineno + 1;
    }

    fn line_done(&mut self, each: &mut dyn FnMut(DpkgPackage)) {
        let lineno = self.lineno;
        if self.blank {
            self.flush(each);
            return;
        }
        let stop = if self.fields == 0 { self.deadline.stanza() } else { self.deadline.line() };
        if stop {
            self.errors.push(lineno, || STOPPED.to_string());
            self.stopped = true;
            return;
        }
        let cut = self.len > self.line.len();
        let line = &self.line[..];
        if line.starts_with(b" ") || line.starts_with(b"\t") {
            if self.fields == 0 {
                self.errors.push(lineno, || "continuation line before any field".into());
            } else if let Some(i) = self.extending {
                let v = self.values[i].as_mut().expect("a field being extended has a value");
                add_line(v, false, line, cut);
            }
            return;
        }
        match self.colon {
            Some(c) if c > 0 && !self.blank_before_colon => {
                self.fields += 1;
                self.extending = None;
                let (name, value) = if c < line.len() { (&line[..c], &line[c + 1..]) } else { (line, &b""[..]) };
                if name.eq_ignore_ascii_case(b"Description") && self.description.is_none() {
                    self.description = Some((value.to_vec(), cut));
                }
                if let Some(i) = KEPT.iter().position(|k| name.eq_ignore_ascii_case(k.as_bytes()))
                    && self.values[i].is_none()
                {
                    let mut v = Vec::new();
                    add_line(&mut v, true, value, cut);
                    self.values[i] = Some(v);
                    self.extending = Some(i);
                }
            }
            _ => self.errors.push(lineno, || format!("not a field: {:?}", quote(line, 80))),
        }
    }
}

/// Adds one line of a field's value as dpkg's text shows it: lines trimmed
/// and joined by newlines, no more once past [`MAX_VALUE`] bytes. A line cut
/// at [`LINE_KEEP`] keeps its trailing blanks (what follows them is lost).
fn add_line(out: &mut Vec<u8>, first: bool, line: &[u8], cut: bool) {
    if out.len() > MAX_VALUE {
        return;
    }
    if !first {
        out.push(b'\n');
    }
    let line = if cut { line.trim_ascii_start() } else { line.trim_ascii() };
    out.extend_from_slice(line);
}

fn stanza(values: [Option<Vec<u8>>; KEPT.len()], description: Option<(Vec<u8>, bool)>) -> Result<DpkgPackage, String> {
    let [name, version, source, installed_size, architecture, status, maintainer, homepage] =
        values.map(|v| v.map(|v| text(&v, MAX_VALUE)));
    let name = name.filter(|n| !n.is_empty()).ok_or_else(|| "stanza without a Package field".to_string())?;
    let version = version.filter(|v| !v.is_empty());
    let (source, source_version) = match source {
        Some(s) => match s.split_once(' ') {
            Some((n, rest)) => {
                let v = rest.trim().trim_start_matches('(').trim_end_matches(')').trim();
                (Some(n.to_string()), Some(v.to_string()).filter(|v| !v.is_empty()).or(version.clone()))
            }
            None => (Some(s), version.clone()),
        },
        None => (Some(name.clone()), version.clone()),
    };
    let installed_size = installed_size.and_then(|s| s.parse::<i64>().ok()).and_then(|k| k.checked_mul(1024));
    let description = description
        .map(|(d, cut)| text(if cut { d.trim_ascii_start() } else { d.trim_ascii() }, MAX_VALUE))
        .filter(|d| !d.is_empty());
    Ok(DpkgPackage {
        version,
        architecture,
        source,
        source_version,
        status,
        maintainer,
        installed_size,
        description,
        homepage,
        name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO: &str = "Package: libc6\nStatus: install ok installed\nPriority: optional\nInstalled-Size: 12\nMaintainer: GNU Libc Maintainers <debian-glibc@lists.debian.org>\nArchitecture: amd64\nMulti-Arch: same\nSource: glibc (2.36-9+deb12u4)\nVersion: 2.36-9+deb12u4\nDescription: GNU C Library\n shared libraries\n .\n more\n\nPackage: bash\nStatus: install ok installed\nVersion: 5.2.15-2+b2\nArchitecture: amd64\nSource: bash (5.2.15-2)\n";

    #[test]
    fn parses_multiple_stanzas_with_continuations() {
        let (p, e) = parse_status(TWO.as_bytes());
        assert!(e.is_empty(), "{e:?}");
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].name, "libc6");
        assert_eq!(p[0].source.as_deref(), Some("glibc"));
        assert_eq!(p[0].source_version.as_deref(), Some("2.36-9+deb12u4"));
        assert_eq!(p[0].installed_size, Some(12 * 1024));
        assert_eq!(p[0].maintainer.as_deref(), Some("GNU Libc Maintainers <debian-glibc@lists.debian.org>"));
        assert_eq!(p[1].version.as_deref(), Some("5.2.15-2+b2"));
        assert_eq!(p[1].source_version.as_deref(), Some("5.2.15-2"));
    }

    #[test]
    fn table_of_cases() {
        // (input, name, version, source, source_version, installed)
        let cases: &[(&str, &str, Option<&str>, &str, Option<&str>, bool)] = &[
            (
                "Package: a\nStatus: install ok installed\nVersion: 1:2.3-4\n",
                "a",
                Some("1:2.3-4"),
                "a",
                Some("1:2.3-4"),
                true,
            ),
            (
                "Package: b\nStatus: deinstall ok config-files\nVersion: 1.0\n",
                "b",
                Some("1.0"),
                "b",
                Some("1.0"),
                false,
            ),
            ("Package: c\nStatus: purge ok not-installed\n", "c", None, "c", None, false),
            ("Package: d\nStatus: deinstall ok installed\nVersion: 2\n", "d", Some("2"), "d", Some("2"), true),
            (
                "Package: e\nStatus: install ok half-configured\nVersion: 3\nSource: e-src\n",
                "e",
                Some("3"),
                "e-src",
                Some("3"),
                true,
            ),
            (
                "package: f\nstatus: install ok unpacked\nversion: 2:1.0~rc1-1\nsource: fsrc (1:0.9)\n",
                "f",
                Some("2:1.0~rc1-1"),
                "fsrc",
                Some("1:0.9"),
                true,
            ),
            ("Package: g\nStatus: install ok installed\nVersion:\n", "g", None, "g", None, true),
        ];
        for (input, name, version, source, sv, installed) in cases {
            let (p, e) = parse_status(input.as_bytes());
            assert!(e.is_empty(), "{input:?}: {e:?}");
            assert_eq!(p.len(), 1, "{input:?}");
            let p = &p[0];
            assert_eq!((&*p.name, p.version.as_deref()), (*name, *version), "{input:?}");
            assert_eq!((p.source.as_deref(), p.source_version.as_deref()), (Some(*source), *sv), "{input:?}");
            assert_eq!(p.is_installed(), *installed, "{input:?}");
        }
    }

    #[test]
    fn bad_stanzas_are_reported_and_skipped() {
        let text = "Version: 1\nStatus: install ok installed\n\n\n\nPackage: ok\nVersion: 1\n\n continuation first\n\ngarbage line\nPackage: x\n";
        let (p, e) = parse_status(text.as_bytes());
        assert_eq!(p.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["ok", "x"]);
        assert_eq!(e[0], StanzaError { line: 1, message: "stanza without a Package field".into() });
        assert!(e.iter().any(|e| e.line == 9 && e.message.contains("continuation")), "{e:?}");
        assert!(e.iter().any(|e| e.line == 11 && e.message.contains("not a field")), "{e:?}");
    }

    /// Fed in pieces cut anywhere (a byte at a time included), the parser
    /// says what it says of the whole status file in one piece.
    #[test]
    fn fed_in_pieces_it_reads_what_it_reads_whole() {
        let long = format!(
            "Package: x\nVersion: 1\nDescription: {}\n {}\nMaintainer: {}m\n",
            "d".repeat(LINE_KEEP + 100),
            "é".repeat(MAX_VALUE),
            " ".repeat(LINE_KEEP + 7)
        );
        let bad = "Version: 1\nStatus: install ok installed\n\n\n\nPackage: ok\nVersion: 1\n\n continuation first\n\ngarbage line\nPackage: x\n";
        let inputs: Vec<Vec<u8>> = vec![
            TWO.as_bytes().to_vec(),
            TWO.replace('\n', "\r\n").into_bytes(),
            bad.as_bytes().to_vec(),
            long.into_bytes(),
            b"".to_vec(),
            b"\n".to_vec(),
            b"\n\nPackage: a\nVersion: 1".to_vec(),
            b"Package: a\r".to_vec(),
        ];
        for input in &inputs {
            let whole = parse_status(input);
            for size in [1, 2, 3, 7, 64, 4096] {
                let mut pkgs = Vec::new();
                let mut never = || false;
                let mut deadline = Deadline::new(&mut never);
                let mut parser = StatusParser::new(&mut deadline);
                for piece in input.chunks(size) {
                    assert!(parser.feed(piece, &mut |p| pkgs.push(p)));
                }
                let errors = parser.finish(&mut |p| pkgs.push(p));
                assert_eq!((pkgs, errors), whole, "{size}-byte pieces of {:?}", quote(input, 200));
            }
        }
    }

    /// A read that fails part way keeps the packages whose stanzas ended
    /// and the problems met, and makes no package of the one cut short.
    #[test]
    fn aborted_it_drops_the_stanza_cut_short() {
        let input = "Version: 0\n\nPackage: a\nVersion: 1\n\nPackage: b\nVersion: 2.0-1\n";
        let cut = input.find("2.0").unwrap() + 2;
        for size in [1, 2, 5, 4096] {
            let mut pkgs = Vec::new();
            let mut never = || false;
            let mut deadline = Deadline::new(&mut never);
            let mut parser = StatusParser::new(&mut deadline);
            for piece in input.as_bytes()[..cut].chunks(size) {
                parser.feed(piece, &mut |p| pkgs.push(p));
            }
            let errors = parser.abort();
            assert_eq!(pkgs.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["a"], "{size}-byte pieces");
            assert_eq!(errors, [StanzaError { line: 1, message: "stanza without a Package field".into() }]);
        }
    }

    #[test]
    fn crlf_and_empty_input() {
        assert_eq!(parse_status(b"").0.len(), 0);
        let (p, _) = parse_status(b"Package: a\r\nVersion: 1\r\n\r\n");
        assert_eq!(p[0].version.as_deref(), Some("1"));
    }
}
