//! Parser for apk's installed database (`/lib/apk/db/installed`, apk-tools v2).
//!
//! Format, as documented by apk-tools and the Alpine wiki's "Apk spec" page:
//! one stanza per package, stanzas separated by blank lines; every line is a
//! single-letter key, a colon and a value (`P:musl`). The same letters are used
//! in the package index (`APKINDEX`). File ownership is written as an `F:` line
//! (a directory relative to `/`) followed by `R:` lines (file names inside that
//! directory); `R:` lines before any `F:` are files in the root directory.
//!
//! Pure and total: any bytes in, packages and problems out. The input comes from
//! an untrusted image, so the parser is single-pass and linear, borrows bytes
//! from the input until a value is kept (only kept values become text: file
//! paths as walked paths are shown, see [`display_name`], other values with
//! invalid UTF-8 replaced), caps every kept value at [`MAX_VALUE`] bytes, stops
//! recording problems after [`MAX_ERRORS`] (one final summary is added) and
//! stops at its scope's deadline (see [`Deadline`]).

use super::parse::{Deadline, Errors, STOPPED, StanzaError, cut_bytes, quote, text};
pub use super::parse::{MAX_ERRORS, MAX_VALUE};
use crate::rootfs::display_name;

/// One package of the installed database.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ApkPackage {
    /// `P:`
    pub name: String,
    /// `V:`
    pub version: String,
    /// `A:`
    pub arch: Option<String>,
    /// `o:`, the aport (source package) this was built from.
    pub origin: Option<String>,
    /// `L:`
    pub license: Option<String>,
    /// `S:`, size of the .apk in bytes.
    pub size: Option<i64>,
    /// `I:`, installed size in bytes.
    pub installed_size: Option<i64>,
    /// `T:`
    pub description: Option<String>,
    /// `U:`
    pub url: Option<String>,
    /// `m:`
    pub maintainer: Option<String>,
    /// `c:`, the aports git commit.
    pub commit: Option<String>,
    /// `t:`, build time in seconds since the epoch.
    pub build_time: Option<i64>,
    /// Absolute paths of the files the package owns (`F:` + `R:`), in
    /// database order.
    pub files: Vec<String>,
    /// Absolute paths of the directories the package owns (`F:`).
    pub dirs: Vec<String>,
}

/// Parses a whole installed database.
///
/// A stanza without `P:` or `V:` is reported (at its first line) and skipped.
/// A line that is not `X:value` is reported and skipped. Unknown keys are
/// ignored. Numbers that do not parse are reported and left as `None`.
pub fn parse_installed(bytes: &[u8]) -> (Vec<ApkPackage>, Vec<StanzaError>) {
    parse_installed_within(bytes, &mut Deadline::new(&mut || false))
}

/// [`parse_installed`] until `deadline` says the scope's time is up: the
/// packages read so far are kept and one problem says where it stopped.
pub fn parse_installed_within(bytes: &[u8], deadline: &mut Deadline<'_>) -> (Vec<ApkPackage>, Vec<StanzaError>) {
    let mut pkgs = Vec::new();
    let mut parser = InstalledParser::new(bytes.len(), deadline);
    parser.feed(bytes, &mut |p| pkgs.push(p));
    let errors = parser.finish(&mut |p| pkgs.push(p));
    (pkgs, errors)
}

/// Bytes of a line kept: a key, its colon and the longest value kept, and a
/// few bytes more to find a char boundary and to see that a value was cut.
const LINE_KEEP: usize = 2 + MAX_VALUE + 8;

/// [`parse_installed_within`] fed a piece at a time (the database as it is
/// read), each package handed over as its stanza ends: what it holds is a
/// line of at most [`LINE_KEEP`] bytes and one stanza, whatever the file's size.
pub struct InstalledParser<'d, 'l> {
    deadline: &'d mut Deadline<'l>,
    errors: Errors,
    paths: PathBudget,
    draft: Option<Draft>,
    stopped: bool,
    /// The line being read: its first [`LINE_KEEP`] bytes, its length and
    /// whether it is blank so far.
    line: Vec<u8>,
    len: usize,
    blank: bool,
    lineno: usize,
    /// Whether anything was fed (an empty database has no lines).
    any: bool,
}

impl<'d, 'l> InstalledParser<'d, 'l> {
    /// A parser of a database of `len` bytes (which bounds the paths it makes, see [`PathBudget`]).
    pub fn new(len: usize, deadline: &'d mut Deadline<'l>) -> Self {
        InstalledParser {
            deadline,
            errors: Errors::default(),
            paths: PathBudget::for_input(len),
            draft: None,
            stopped: false,
            line: Vec::new(),
            len: 0,
            blank: true,
            lineno: 0,
            any: false,
        }
    }

    /// Reads `bytes`; false once the deadline stopped it (the rest need not be fed).
    pub fn feed(&mut self, mut bytes: &[u8], pkg: &mut dyn FnMut(ApkPackage)) -> bool {
        while !self.stopped && !bytes.is_empty() {
            self.any = true;
            let (part, ended) = match bytes.iter().position(|&b| b == b'\n') {
                Some(i) => (&bytes[..i], true),
                None => (bytes, false),
            };
            let keep = LINE_KEEP.saturating_sub(self.line.len()).min(part.len());
            self.line.extend_from_slice(&part[..keep]);
            self.len += part.len();
            self.blank &= part.iter().all(u8::is_ascii_whitespace);
            bytes = &bytes[part.len() + usize::from(ended)..];
            if ended {
                self.end_line(pkg);
            }
        }
        !self.stopped
    }

    /// Ends the input (a last line without its newline counts); the problems met.
    pub fn finish(mut self, pkg: &mut dyn FnMut(ApkPackage)) -> Vec<StanzaError> {
        if !self.stopped && self.len > 0 {
            self.end_line(pkg);
        }
        if let Some(d) = self.draft.take() {
            d.finish(pkg, &mut self.errors);
        }
        self.errors.into_vec()
    }

    /// Gives up on the input (a read failed part way): the package being
    /// read is dropped, not made from what was read of it (a version cut
    /// short); the problems met so far are kept.
    pub fn abort(self) -> Vec<StanzaError> {
        self.errors.into_vec()
    }

    fn end_line(&mut self, pkg: &mut dyn FnMut(ApkPackage)) {
        self.lineno += 1;
        let lineno = self.lineno;
        let mut line = std::mem::take(&mut self.line);
        let (len, blank) = (std::mem::replace(&mut self.len, 0), std::mem::replace(&mut self.blank, true));
        // `\r\n` ends a line too.
        let len = if line.len() == len && line.last() == Some(&b'\r') {
            line.pop();
            len - 1
        } else {
            len
        };
        self.read_line(&line, len, blank, lineno, pkg);
        line.clear();
        self.line = line;
    }

    fn read_line(&mut self, line: &[u8], len: usize, blank: bool, lineno: usize, pkg: &mut dyn FnMut(ApkPackage)) {
        if blank {
            if let Some(d) = self.draft.take() {
                d.finish(pkg, &mut self.errors);
            }
            return;
        }
        let stop = if self.draft.is_none() { self.deadline.stanza() } else { self.deadline.line() };
        if stop {
            self.errors.push(lineno, || STOPPED.to_string());
            self.draft = None;
            self.stopped = true;
            return;
        }
        let d = self.draft.get_or_insert_with(|| Draft::new(lineno));
        match line {
            [key, b':', value @ ..] if key.is_ascii_alphabetic() => {
                d.field(*key, value, len - 2, lineno, &mut self.errors, &mut self.paths)
            }
            _ => self.errors.push(lineno, || format!("not a `X:value` line: {:?}", quote(line, 80))),
        }
    }
}

/// Where `R:` lines currently land.
#[derive(Clone, Copy)]
enum Cwd {
    /// No `F:` yet: the root directory.
    Root,
    /// The last entry of `Draft::dirs`.
    LastDir,
    /// The last `F:` was rejected; its files are dropped with it.
    Rejected,
}

/// A stanza being read: scalar values as bytes, each capped at [`MAX_VALUE`].
struct Draft {
    start: usize,
    any_field: bool,
    name: Option<Vec<u8>>,
    version: Option<Vec<u8>>,
    arch: Option<Vec<u8>>,
    origin: Option<Vec<u8>>,
    license: Option<Vec<u8>>,
    description: Option<Vec<u8>>,
    url: Option<Vec<u8>>,
    maintainer: Option<Vec<u8>>,
    commit: Option<Vec<u8>>,
    size: Option<i64>,
    installed_size: Option<i64>,
    build_time: Option<i64>,
    cwd: Cwd,
    files: Vec<String>,
    dirs: Vec<String>,
}

impl Draft {
    fn new(start: usize) -> Self {
        Draft {
            start,
            any_field: false,
            name: None,
            version: None,
            arch: None,
            origin: None,
            license: None,
            description: None,
            url: None,
            maintainer: None,
            commit: None,
            size: None,
            installed_size: None,
            build_time: None,
            cwd: Cwd::Root,
            files: Vec::new(),
            dirs: Vec::new(),
        }
    }

    /// One `X:value` line; `len` is the value's length, of which `value` may be only the first bytes.
    fn field(&mut self, key: u8, value: &[u8], len: usize, line: usize, errors: &mut Errors, paths: &mut PathBudget) {
        self.any_field = true;
        let slot = match key {
            b'P' => &mut self.name,
            b'V' => &mut self.version,
            b'A' => &mut self.arch,
            b'o' => &mut self.origin,
            b'L' => &mut self.license,
            b'T' => &mut self.description,
            b'U' => &mut self.url,
            b'm' => &mut self.maintainer,
            b'c' => &mut self.commit,
            // A number longer than a kept line is none (its kept start may be blanks).
            b'S' | b'I' | b't' if len > value.len() => {
                return errors.push(line, || format!("{}: not a number: {:?}", key as char, quote(value, 80)));
            }
            b'S' => return number(&mut self.size, key, value, line, errors),
            b'I' => return number(&mut self.installed_size, key, value, line, errors),
            b't' => return number(&mut self.build_time, key, value, line, errors),
            b'F' => return self.dir(value, len, line, errors),
            b'R' => return self.file(value, len, line, errors, paths),
            _ => return,
        };
        if slot.is_some() {
            errors.push(line, || format!("duplicate {}: field, keeping the first", key as char));
            return;
        }
        *slot = Some(capped(key, value, len, line, errors).to_vec());
    }

    fn dir(&mut self, value: &[u8], len: usize, line: usize, errors: &mut Errors) {
        let value = capped(b'F', value, len, line, errors);
        let start = value.iter().position(|&b| b != b'/').unwrap_or(value.len());
        let end = value.iter().rposition(|&b| b != b'/').map_or(start, |e| e + 1);
        let rel = &value[start..end.max(start)];
        if rel.contains(&0) || rel.split(|&b| b == b'/').any(|c| c == b"..") {
            errors.push(line, || {
                format!("F: directory {:?} is not a path below the root; its files are skipped", quote(value, 80))
            });
            self.cwd = Cwd::Rejected;
            return;
        }
        self.dirs.push(format!("/{}", display_name(rel)));
        self.cwd = Cwd::LastDir;
    }

    fn file(&mut self, value: &[u8], len: usize, line: usize, errors: &mut Errors, paths: &mut PathBudget) {
        let name = capped(b'R', value, len, line, errors);
        if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') || name.contains(&0) {
            errors.push(line, || format!("R: {:?} is not a file name", quote(name, 80)));
            return;
        }
        let name = display_name(name);
        let path = match (self.cwd, self.dirs.last()) {
            (Cwd::Rejected, _) => return,
            (Cwd::LastDir, Some(dir)) if dir != "/" => format!("{dir}/{name}"),
            _ => format!("/{name}"),
        };
        if paths.take(path.len(), line, errors) {
            self.files.push(path);
        }
    }

    fn finish(self, pkg: &mut dyn FnMut(ApkPackage), errors: &mut Errors) {
        if !self.any_field {
            return; // only malformed lines, each already reported
        }
        fn present(v: &Option<Vec<u8>>) -> Option<&[u8]> {
            v.as_deref().filter(|v| !v.is_empty())
        }
        let (Some(name), Some(version)) = (present(&self.name), present(&self.version)) else {
            let missing = match (present(&self.name), present(&self.version)) {
                (None, None) => "P: and V:",
                (None, _) => "P:",
                _ => "V:",
            };
            errors.push(self.start, || format!("stanza without {missing}; skipped"));
            return;
        };
        let owned = |v: &Option<Vec<u8>>| present(v).map(|v| text(v, MAX_VALUE));
        pkg(ApkPackage {
            name: text(name, MAX_VALUE),
            version: text(version, MAX_VALUE),
            arch: owned(&self.arch),
            origin: owned(&self.origin),
            license: owned(&self.license),
            size: self.size,
            installed_size: self.installed_size,
            description: owned(&self.description),
            url: owned(&self.url),
            maintainer: owned(&self.maintainer),
            commit: owned(&self.commit),
            build_time: self.build_time,
            files: self.files,
            dirs: self.dirs,
        });
    }
}

/// What joining `F:` directories to `R:` names may cost in all: a few times
/// the database's size. A long `F:` followed by many short `R:` lines would
/// otherwise make each byte of the database cost kilobytes of paths.
pub struct PathBudget {
    left: usize,
    limit: usize,
    spent: bool,
}

/// Paths may add up to this many times the input's length…
pub const PATH_EXPANSION: usize = 4;
/// …plus this.
pub const PATH_SLACK: usize = 1 << 20;

impl PathBudget {
    pub fn for_input(len: usize) -> Self {
        let limit = len.saturating_mul(PATH_EXPANSION).saturating_add(PATH_SLACK);
        PathBudget { left: limit, limit, spent: false }
    }

    /// Whether a path of `n` bytes may be kept; the first refusal is reported.
    fn take(&mut self, n: usize, line: usize, errors: &mut Errors) -> bool {
        if n <= self.left {
            self.left -= n;
            return true;
        }
        if !std::mem::replace(&mut self.spent, true) {
            let limit = self.limit;
            errors.push(line, || format!("file paths add up to more than {limit} bytes; the rest are skipped"));
        }
        false
    }
}

/// Parses a decimal number field; a bad one is reported and stays `None`.
fn number(slot: &mut Option<i64>, key: u8, value: &[u8], line: usize, errors: &mut Errors) {
    let v = value.trim_ascii();
    if v.is_empty() {
        return;
    }
    match std::str::from_utf8(v).ok().and_then(|v| v.parse::<i64>().ok()) {
        Some(n) if slot.is_none() => *slot = Some(n),
        Some(_) => errors.push(line, || format!("duplicate {}: field, keeping the first", key as char)),
        None => errors.push(line, || format!("{}: not a number: {:?}", key as char, quote(v, 80))),
    }
}

/// `value` (the first bytes of one of `len` bytes), cut to [`MAX_VALUE`]
/// bytes at a char boundary (reported if cut).
fn capped<'a>(key: u8, value: &'a [u8], len: usize, line: usize, errors: &mut Errors) -> &'a [u8] {
    let kept = cut_bytes(value, MAX_VALUE);
    if kept.len() < len {
        errors.push(line, || format!("{}: value of {len} bytes truncated to {}", key as char, kept.len()));
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two packages the way apk 2.x writes them (checksums shortened).
    const TWO: &str = "\
C:Q1abcdefghijklmnopqrstuvwxyz0123=
P:musl
V:1.2.4_git20230717-r4
A:x86_64
S:407169
I:663552
T:the musl c library (libc) implementation
U:https://musl.libc.org/
L:MIT
o:musl
m:Timo Teräs <timo.teras@iki.fi>
t:1700000000
c:0123456789abcdef0123456789abcdef01234567
p:so:libc.musl-x86_64.so.1=1
F:lib
R:ld-musl-x86_64.so.1
a:0:0:755
Z:Q1AAAAAAAAAAAAAAAAAAAAAAAAAAAA=
R:libc.musl-x86_64.so.1
a:0:0:777
Z:Q1BBBBBBBBBBBBBBBBBBBBBBBBBBBB=

C:Q1zyxwvutsrqponmlkjihgfedcba9876=
P:busybox
V:1.36.1-r15
A:x86_64
S:509308
I:946176
T:Size optimized toolbox of many common UNIX utilities
U:https://busybox.net/
L:GPL-2.0-only
o:busybox
m:Sören Tempel <soeren+alpine@soeren-tempel.net>
t:1700000001
c:fedcba9876543210fedcba9876543210fedcba98
D:so:libc.musl-x86_64.so.1
p:/bin/sh cmd:busybox=1.36.1-r15 cmd:sh=1.36.1-r15
r:busybox-initscripts
F:bin
R:busybox
a:0:0:755
Z:Q1CCCCCCCCCCCCCCCCCCCCCCCCCCCC=
R:sh
a:0:0:777
Z:Q1DDDDDDDDDDDDDDDDDDDDDDDDDDDD=
F:etc
R:securetty
Z:Q1EEEEEEEEEEEEEEEEEEEEEEEEEEEE=
F:etc/network
F:etc/network/if-up.d
M:0:0:755
R:dad
F:usr/share/udhcpc
R:default.script
";

    #[test]
    fn realistic_database() {
        let (p, e) = parse_installed(TWO.as_bytes());
        assert!(e.is_empty(), "{e:?}");
        assert_eq!(p.len(), 2);
        let musl = &p[0];
        assert_eq!(
            musl,
            &ApkPackage {
                name: "musl".into(),
                version: "1.2.4_git20230717-r4".into(),
                arch: Some("x86_64".into()),
                origin: Some("musl".into()),
                license: Some("MIT".into()),
                size: Some(407169),
                installed_size: Some(663552),
                description: Some("the musl c library (libc) implementation".into()),
                url: Some("https://musl.libc.org/".into()),
                maintainer: Some("Timo Teräs <timo.teras@iki.fi>".into()),
                commit: Some("0123456789abcdef0123456789abcdef01234567".into()),
                build_time: Some(1700000000),
                files: vec!["/lib/ld-musl-x86_64.so.1".into(), "/lib/libc.musl-x86_64.so.1".into()],
                dirs: vec!["/lib".into()],
            }
        );
        let bb = &p[1];
        assert_eq!((&*bb.name, &*bb.version, bb.build_time), ("busybox", "1.36.1-r15", Some(1700000001)));
        assert_eq!(
            bb.files,
            [
                "/bin/busybox",
                "/bin/sh",
                "/etc/securetty",
                "/etc/network/if-up.d/dad",
                "/usr/share/udhcpc/default.script"
            ]
        );
        assert_eq!(bb.dirs, ["/bin", "/etc", "/etc/network", "/etc/network/if-up.d", "/usr/share/udhcpc"]);
    }

    #[test]
    fn table_of_cases() {
        // (input, [(name, version, files)], [(error line, message fragment)])
        type Case = (
            &'static str,
            &'static [(&'static str, &'static str, &'static [&'static str])],
            &'static [(usize, &'static str)],
        );
        let cases: &[Case] = &[
            ("", &[], &[]),
            ("\n\n  \n", &[], &[]),
            ("P:a\nV:1", &[("a", "1", &[])], &[]),
            (
                "P:a\r\nV:1\r\nF:usr/bin\r\nR:x\r\n\r\nP:b\r\nV:2\r\n",
                &[("a", "1", &["/usr/bin/x"]), ("b", "2", &[])],
                &[],
            ),
            // R: before any F: is the root directory; F: may be nested and revisited.
            (
                "P:a\nV:1\nR:top\nF:usr\nF:usr/lib/x\nR:y\nF:usr\nR:z\n",
                &[("a", "1", &["/top", "/usr/lib/x/y", "/usr/z"])],
                &[],
            ),
            // Stray slashes in F: are tolerated.
            ("P:a\nV:1\nF:/opt/\nR:f\nF:\nR:g\n", &[("a", "1", &["/opt/f", "/g"])], &[]),
            // Missing V: or P: drops the stanza, reported at its first line.
            ("P:a\nA:x86\n\nP:b\nV:2\n", &[("b", "2", &[])], &[(1, "without V:")]),
            ("\n\nV:1\nT:t\n", &[], &[(3, "without P:")]),
            ("P:a\nV:\n", &[], &[(1, "without V:")]),
            ("A:x\n", &[], &[(1, "without P: and V:")]),
            // Garbage lines are reported and skipped; the stanza survives.
            (
                "P:a\ngarbage\nV:1\n:x\nPP:y\n1:z\n",
                &[("a", "1", &[])],
                &[(2, "not a `X:value`"), (4, "not a"), (5, "not a"), (6, "not a")],
            ),
            ("garbage only\n", &[], &[(1, "not a `X:value`")]),
            // Unknown and ignored keys.
            ("P:a\nV:1\nk:100\nq:1\ni:b c\ns:x\nf:y\nw:z\n", &[("a", "1", &[])], &[]),
            // Bad numbers become None, with a report.
            (
                "P:a\nV:1\nS:12k\nI:-\nt:99999999999999999999\n",
                &[("a", "1", &[])],
                &[(3, "S: not a number"), (4, "I: not a number"), (5, "t: not a number")],
            ),
            // Duplicates keep the first.
            ("P:a\nP:b\nV:1\n", &[("a", "1", &[])], &[(2, "duplicate P:")]),
            // Path escapes and non-names are refused.
            (
                "P:a\nV:1\nF:usr/../../etc\nR:shadow\nF:ok\nR:../x\nR:a/b\nR:.\nR:\nR:fine\n",
                &[("a", "1", &["/ok/fine"])],
                &[
                    (3, "not a path below"),
                    (6, "not a file name"),
                    (7, "not a file name"),
                    (8, "not a file name"),
                    (9, "not a file name"),
                ],
            ),
        ];
        for (input, want, want_errors) in cases {
            let (p, e) = parse_installed(input.as_bytes());
            let got: Vec<_> = p.iter().map(|p| (p.name.as_str(), p.version.as_str(), p.files.clone())).collect();
            let want: Vec<_> =
                want.iter().map(|(n, v, f)| (*n, *v, f.iter().map(|s| s.to_string()).collect::<Vec<_>>())).collect();
            assert_eq!(got, want, "{input:?}");
            assert_eq!(e.len(), want_errors.len(), "{input:?}: {e:?}");
            for (e, (line, frag)) in e.iter().zip(want_errors.iter()) {
                assert!(e.line == *line && e.message.contains(frag), "{input:?}: {e:?} vs {line} {frag}");
            }
        }
    }

    #[test]
    fn fifty_megabyte_single_lines() {
        const BIG: usize = 50 * 1024 * 1024;
        // A garbage line: one short report, no copy of the line.
        let garbage = "x".repeat(BIG);
        let (p, e) = parse_installed(garbage.as_bytes());
        assert!(p.is_empty());
        assert_eq!(e.len(), 1);
        assert!(e[0].message.len() < 200, "{}", e[0].message.len());

        // A huge value is kept only up to MAX_VALUE, cut at a char boundary.
        let text = format!("P:a\nV:1\nT:x{}", "é".repeat(BIG / 2));
        let (p, e) = parse_installed(text.as_bytes());
        assert_eq!(p.len(), 1);
        let d = p[0].description.as_deref().unwrap_or_default();
        assert!(d.len() <= MAX_VALUE && d.len() > MAX_VALUE - 4, "{}", d.len());
        assert_eq!(e.len(), 1);
        assert!(e[0].line == 3 && e[0].message.contains("truncated"), "{e:?}");

        // A huge R: name on one line, then a normal one.
        let text = format!("P:a\nV:1\nF:d\nR:{}\nR:ok", "n".repeat(BIG));
        let (p, e) = parse_installed(text.as_bytes());
        assert_eq!(p[0].files.len(), 2);
        assert_eq!(p[0].files[1], "/d/ok");
        assert_eq!(e.len(), 1, "{e:?}");
    }

    #[test]
    fn problems_are_bounded() {
        let text = "?\n".repeat(100_000);
        let (p, e) = parse_installed(text.as_bytes());
        assert!(p.is_empty());
        assert_eq!(e.len(), MAX_ERRORS + 1);
        let last = &e[MAX_ERRORS];
        assert_eq!(last.line, MAX_ERRORS + 1);
        assert!(last.message.starts_with("99000 more problems"), "{last:?}");
    }

    /// Fed in pieces cut anywhere (a byte at a time included), the parser
    /// says what it says of the whole database in one piece.
    #[test]
    fn fed_in_pieces_it_reads_what_it_reads_whole() {
        let long = format!(
            "P:x\nV:1\nT:{}\nF:d\nR:{}\nS:{}7\n",
            "d".repeat(MAX_VALUE + 100),
            "é".repeat(MAX_VALUE),
            " ".repeat(2 * MAX_VALUE)
        );
        let inputs: Vec<Vec<u8>> = vec![
            TWO.as_bytes().to_vec(),
            TWO.replace('\n', "\r\n").into_bytes(),
            b"P:a\nV:1\nS: 12x\n\n \t\nbad line\n?\nP:b\r".to_vec(),
            long.into_bytes(),
            b"".to_vec(),
            b"\n".to_vec(),
            b"\n\nP:a\nV:1".to_vec(),
        ];
        for input in &inputs {
            let whole = parse_installed(input);
            for size in [1, 2, 3, 7, 64, 4096] {
                let mut pkgs = Vec::new();
                let mut never = || false;
                let mut deadline = Deadline::new(&mut never);
                let mut parser = InstalledParser::new(input.len(), &mut deadline);
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
    fn aborted_it_drops_the_package_cut_short() {
        let input = "?\nP:a\nV:1\n\nP:b\nV:2.0-r1\n\nP:c\nV:3.1-r0\n";
        let cut = input.find("3.1").unwrap() + 2;
        for size in [1, 2, 5, 4096] {
            let mut pkgs = Vec::new();
            let mut never = || false;
            let mut deadline = Deadline::new(&mut never);
            let mut parser = InstalledParser::new(input.len(), &mut deadline);
            for piece in input.as_bytes()[..cut].chunks(size) {
                parser.feed(piece, &mut |p| pkgs.push(p));
            }
            let errors = parser.abort();
            let names: Vec<_> = pkgs.iter().map(|p| (p.name.as_str(), p.version.as_str())).collect();
            assert_eq!(names, [("a", "1"), ("b", "2.0-r1")], "{size}-byte pieces");
            assert_eq!(errors.len(), 1, "{errors:?}");
            assert_eq!(errors[0].line, 1);
        }
    }
}
