//! Parsers for `/etc/passwd`, `/etc/group` and `/etc/shadow`, read as files of
//! the scope (never through NSS, which would describe the host instead).
//!
//! Formats as documented in passwd(5), group(5) and shadow(5): one record per
//! line, fields separated by colons: `name:password:uid:gid:gecos:home:shell`,
//! `name:password:gid:member,member` and
//! `name:password:lastchg:min:max:warn:inactive:expire:reserved` (shadow also
//! accepts the old two-field `name:password` form, as glibc does). Blank lines
//! and `#` comments are skipped, as are NIS compat entries (`+`/`-` prefixed).
//!
//! Pure and total: any bytes in, records and per-line problems out. Input is
//! untrusted, so every kept value is capped at [`MAX_VALUE`] bytes and problem
//! reports stop after [`MAX_ERRORS`] (one final summary is added). Password
//! fields are never kept: shadow records only say what kind of value was there,
//! and no problem message quotes a password field or a whole line.

use super::parse::{Errors, StanzaError, cut, truncate};
pub use super::parse::{MAX_ERRORS, MAX_VALUE};

/// One line of `/etc/passwd`. The password field is deliberately absent.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct User {
    pub name: String,
    /// `None` when the field is not a decimal number (reported).
    pub uid: Option<i64>,
    /// `None` when the field is not a decimal number (reported).
    pub gid: Option<i64>,
    /// `None` when empty.
    pub gecos: Option<String>,
    /// `None` when empty.
    pub home: Option<String>,
    /// `None` when empty (login(1) then uses `/bin/sh`).
    pub shell: Option<String>,
}

/// One line of `/etc/group`. The password field is deliberately absent.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Group {
    pub name: String,
    /// `None` when the field is not a decimal number (reported).
    pub gid: Option<i64>,
    /// Supplementary members, in file order, comma-separated; empty names
    /// are dropped (one string, not one per member: a list may hold 32,000).
    pub members: String,
}

/// What one line of `/etc/shadow` says about an account, without its hash.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Shadow {
    pub name: String,
    /// The field holds something usable as a hash: not empty, and not
    /// starting with `!` (locked) or `*` (no password login).
    pub password_set: bool,
    /// The field starts with `!`: password login is locked.
    pub locked: bool,
    /// The field is empty: no password is needed to log in.
    pub empty_password: bool,
    /// Days since 1970-01-01 of the last password change (`0`: must change).
    pub last_change_days: Option<i64>,
    /// Days a password stays valid.
    pub max_days: Option<i64>,
    /// Days since 1970-01-01 when the account expires.
    pub expire_days: Option<i64>,
}

/// Parses `/etc/passwd` (see [`Records::passwd`], which reads it as it comes).
pub fn parse_passwd(text: &str) -> (Vec<User>, Vec<StanzaError>) {
    Records::passwd().parse(text.as_bytes())
}

/// Parses `/etc/group` (see [`Records::group`], which reads it as it comes).
pub fn parse_group(text: &str) -> (Vec<Group>, Vec<StanzaError>) {
    Records::group().parse(text.as_bytes())
}

/// Parses `/etc/shadow` (see [`Records::shadow`], which reads it as it comes).
pub fn parse_shadow(text: &str) -> (Vec<Shadow>, Vec<StanzaError>) {
    Records::shadow().parse(text.as_bytes())
}

fn user(f: &[Field<'_>; MOST_FIELDS], line: usize, errors: &mut Errors) -> Option<User> {
    let name = name(f[0], line, errors)?;
    let uid = id(f[2], "uid", &name, line, errors);
    let gid = id(f[3], "gid", &name, line, errors);
    Some(User {
        uid,
        gid,
        gecos: kept(f[4], "gecos", &name, line, errors),
        home: kept(f[5], "home", &name, line, errors),
        shell: kept(f[6], "shell", &name, line, errors),
        name,
    })
}

fn group(f: &[Field<'_>; MOST_FIELDS], line: usize, errors: &mut Errors) -> Option<Group> {
    let name = name(f[0], line, errors)?;
    let gid = id(f[2], "gid", &name, line, errors);
    let list = capped(f[3], "member list", &name, line, errors);
    let mut members = String::with_capacity(list.len());
    for m in list.split(',').filter(|m| !m.is_empty()) {
        if !members.is_empty() {
            members.push(',');
        }
        members.push_str(m);
    }
    Some(Group { name, gid, members })
}

fn shadow(f: &[Field<'_>; MOST_FIELDS], line: usize, errors: &mut Errors) -> Option<Shadow> {
    let name = name(f[0], line, errors)?;
    let password = f[1].text;
    let mut days = |i: usize, what: &str| {
        let v = f[i].text;
        if v.is_empty() {
            return None;
        }
        match digits(f[i]) {
            Some(n) => Some(n),
            None => {
                // Never quote the value: keep shadow problems free of field text.
                errors.push(line, || format!("{what} of {name:?} is not a day count"));
                None
            }
        }
    };
    let last_change_days = days(2, "last change");
    let max_days = days(4, "maximum age");
    let expire_days = days(7, "expiry");
    Some(Shadow {
        password_set: !password.is_empty() && !password.starts_with(['!', '*']),
        locked: password.starts_with('!'),
        empty_password: password.is_empty(),
        last_change_days,
        max_days,
        expire_days,
        name,
    })
}

/// Most fields in any of the formats; lines are split into at most this many.
const MOST_FIELDS: usize = 9;

/// Bytes of a field kept while reading: enough for [`MAX_VALUE`] bytes of
/// text whatever char straddles the cut.
const KEEP: usize = MAX_VALUE + 4;

/// A field of a line: its text (at most [`KEEP`] bytes of it) and its whole length.
#[derive(Clone, Copy)]
struct Field<'a> {
    text: &'a str,
    len: usize,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum At {
    /// Leading blanks of a line (`str::trim_start`'s ASCII ones).
    Start,
    /// In the fields of a record line.
    Fields,
    /// In a comment or NIS compat line, skipped.
    Skip,
}

/// One of the formats read as it comes, a chunk at a time: skips blanks,
/// comments and NIS compat entries, checks the field count, and hands each
/// record to `each` as its line ends. One line is held at a time, each of
/// its fields up to [`KEEP`] bytes (its length counted beyond), so a file
/// costs a line's worth of memory however long it is.
pub struct Records<T> {
    file: &'static str,
    counts: &'static [usize],
    make: fn(&[Field<'_>; MOST_FIELDS], usize, &mut Errors) -> Option<T>,
    fields: [Vec<u8>; MOST_FIELDS],
    lens: [usize; MOST_FIELDS],
    /// The field being read; past [`MOST_FIELDS`], `over`.
    n: usize,
    over: bool,
    /// The current field's last byte (a `\r` before `\n` is not part of it).
    last: u8,
    at: At,
    line: usize,
    errors: Errors,
}

impl Records<User> {
    /// `/etc/passwd`: lines without exactly 7 fields or with an empty name
    /// are reported and skipped; a non-numeric uid or gid is reported and `None`.
    pub fn passwd() -> Self {
        Self::new("passwd", &[7], user)
    }
}

impl Records<Group> {
    /// `/etc/group`: lines without exactly 4 fields or with an empty name
    /// are reported and skipped; a non-numeric gid is reported and `None`.
    pub fn group() -> Self {
        Self::new("group", &[4], group)
    }
}

impl Records<Shadow> {
    /// `/etc/shadow`: lines with neither 9 fields nor the old 2-field form,
    /// or with an empty name, are reported and skipped; non-numeric day
    /// counts are reported and `None` (empty ones are just `None`).
    pub fn shadow() -> Self {
        Self::new("shadow", &[9, 2], shadow)
    }
}

impl<T> Records<T> {
    fn new(
        file: &'static str,
        counts: &'static [usize],
        make: fn(&[Field<'_>; MOST_FIELDS], usize, &mut Errors) -> Option<T>,
    ) -> Self {
        Records {
            file,
            counts,
            make,
            fields: Default::default(),
            lens: [0; MOST_FIELDS],
            n: 0,
            over: false,
            last: 0,
            at: At::Start,
            line: 0,
            errors: Errors::default(),
        }
    }

    /// All of `bytes` at once.
    fn parse(mut self, bytes: &[u8]) -> (Vec<T>, Vec<StanzaError>) {
        let mut out = Vec::new();
        self.feed(bytes, &mut |r| out.push(r));
        let errors = self.finish(&mut |r| out.push(r));
        (out, errors)
    }

    /// Reads the next chunk of the file; each record whose line ends in it goes to `each`.
    pub fn feed(&mut self, mut chunk: &[u8], each: &mut dyn FnMut(T)) {
        while let Some(&b) = chunk.first() {
            match self.at {
                At::Start => {
                    if b == b'\n' {
                        self.end_line(each);
                    } else if !matches!(b, b' ' | b'\t' | b'\r' | 0x0b | 0x0c) {
                        // `+name` and `-name` lines are NIS markers to nss_compat only: nss_files (Debian's
                        // and musl's default) reads them as accounts of that name, so they are reported.
                        self.at = if b == b'#' { At::Skip } else { At::Fields };
                        continue;
                    }
                    chunk = &chunk[1..];
                }
                At::Skip => match chunk.iter().position(|&b| b == b'\n') {
                    Some(i) => {
                        self.end_line(each);
                        chunk = &chunk[i + 1..];
                    }
                    None => return,
                },
                At::Fields => {
                    let stop = chunk.iter().position(|&b| b == b':' || b == b'\n');
                    let seg = &chunk[..stop.unwrap_or(chunk.len())];
                    self.add(seg);
                    let Some(i) = stop else { return };
                    if chunk[i] == b':' {
                        self.next_field();
                    } else {
                        self.end_line(each);
                    }
                    chunk = &chunk[i + 1..];
                }
            }
        }
    }

    /// Ends the file (a last line without its newline is a line) and returns its problems.
    pub fn finish(mut self, each: &mut dyn FnMut(T)) -> Vec<StanzaError> {
        if self.at != At::Start {
            // A `\r` with no `\n` after it stays, as `str::lines` leaves it.
            self.last = 0;
            self.end_line(each);
        }
        self.errors.into_vec()
    }

    /// The problems so far, the line being read dropped (a read that failed part way).
    pub fn abort(self) -> Vec<StanzaError> {
        self.errors.into_vec()
    }

    fn add(&mut self, seg: &[u8]) {
        if self.over || seg.is_empty() {
            return;
        }
        let field = &mut self.fields[self.n];
        let keep = KEEP.saturating_sub(field.len()).min(seg.len());
        field.extend_from_slice(&seg[..keep]);
        self.lens[self.n] += seg.len();
        self.last = seg[seg.len() - 1];
    }

    fn next_field(&mut self) {
        if self.n + 1 == MOST_FIELDS {
            self.over = true;
        } else if !self.over {
            self.n += 1;
            self.last = 0;
        }
    }

    fn end_line(&mut self, each: &mut dyn FnMut(T)) {
        self.line += 1;
        if self.at == At::Fields {
            if !self.over && self.last == b'\r' {
                self.lens[self.n] -= 1;
                if self.fields[self.n].len() > self.lens[self.n] {
                    self.fields[self.n].pop();
                }
            }
            self.record(each);
        }
        for f in &mut self.fields[..=self.n] {
            f.clear();
        }
        self.lens = [0; MOST_FIELDS];
        (self.n, self.over, self.last, self.at) = (0, false, 0, At::Start);
    }

    fn record(&mut self, each: &mut dyn FnMut(T)) {
        let (lineno, file, counts) = (self.line, self.file, self.counts);
        let n = if self.over { MOST_FIELDS + 1 } else { self.n + 1 };
        // `+name`/`-name` lines: NIS markers to nss_compat, accounts of that name to nss_files (Debian's and musl's
        // default). A complete, valid one is reported, as nss_files would serve it; the markers themselves
        // (`+::::::`, `+@netgroup`, `-user`) are skipped without a word.
        let compat = matches!(self.fields[0].first(), Some(b'+' | b'-'));
        if compat {
            let marker = self.fields[0].len() == 1 || self.fields[0].get(1) == Some(&b'@');
            if marker || !counts.contains(&n) {
                return;
            }
            let texts: [std::borrow::Cow<'_, str>; MOST_FIELDS] =
                std::array::from_fn(|i| String::from_utf8_lossy(&self.fields[i]));
            let fields: [Field<'_>; MOST_FIELDS] =
                std::array::from_fn(|i| Field { text: &texts[i], len: self.lens[i] });
            let mut problems = Errors::default();
            if let Some(record) = (self.make)(&fields, lineno, &mut problems).filter(|_| problems.is_empty()) {
                each(record);
            }
            return;
        }
        if !counts.contains(&n) {
            let expected = counts.iter().map(usize::to_string).collect::<Vec<_>>().join(" or ");
            let found = if n > MOST_FIELDS { format!("more than {MOST_FIELDS}") } else { n.to_string() };
            self.errors.push(lineno, || {
                format!("{file}: expected {expected} colon-separated fields, found {found}; line skipped")
            });
            return;
        }
        let texts: [std::borrow::Cow<'_, str>; MOST_FIELDS] =
            std::array::from_fn(|i| String::from_utf8_lossy(&self.fields[i]));
        let fields: [Field<'_>; MOST_FIELDS] = std::array::from_fn(|i| Field { text: &texts[i], len: self.lens[i] });
        if let Some(record) = (self.make)(&fields, lineno, &mut self.errors) {
            each(record);
        }
    }
}

/// The record's name, or `None` (reported) when empty.
fn name(field: Field<'_>, line: usize, errors: &mut Errors) -> Option<String> {
    if field.len == 0 {
        errors.push(line, || "empty name; line skipped".to_string());
        return None;
    }
    Some(capped(field, "name", "", line, errors).to_owned())
}

/// A uid or gid: `None` (reported) unless a decimal number.
fn id(field: Field<'_>, what: &str, name: &str, line: usize, errors: &mut Errors) -> Option<i64> {
    let n = digits(field);
    if n.is_none() {
        errors.push(line, || format!("{what} of {name:?} is not a number: {:?}", truncate(field.text, 40)));
    }
    n
}

/// A non-negative decimal number (no sign, no spaces) that fits in i64.
fn digits(field: Field<'_>) -> Option<i64> {
    let text = field.text;
    if text.is_empty() || text.len() < field.len || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// An optional text field: `None` when empty, capped otherwise.
fn kept(field: Field<'_>, what: &str, name: &str, line: usize, errors: &mut Errors) -> Option<String> {
    Some(capped(field, what, name, line, errors)).filter(|v| !v.is_empty()).map(str::to_owned)
}

/// `field`, cut to [`MAX_VALUE`] bytes at a char boundary (reported if cut).
fn capped<'a>(field: Field<'a>, what: &str, name: &str, line: usize, errors: &mut Errors) -> &'a str {
    let kept = cut(field.text, MAX_VALUE);
    if kept.len() < field.len.max(field.text.len()) {
        errors.push(line, || {
            let whose = if name.is_empty() { String::new() } else { format!(" of {:?}", truncate(name, 40)) };
            format!("{what}{whose} has {} bytes, truncated to {}", field.len.max(field.text.len()), kept.len())
        });
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (input, records expected, problems expected as (line, message fragment))
    type Case<T> = (&'static str, Vec<T>, &'static [(usize, &'static str)]);

    fn check_errors(input: &str, got: &[StanzaError], want: &[(usize, &str)]) {
        assert_eq!(got.len(), want.len(), "{input:?}: {got:?}");
        for (e, (line, frag)) in got.iter().zip(want) {
            assert!(e.line == *line && e.message.contains(frag), "{input:?}: {e:?} vs {line} {frag:?}");
        }
    }

    fn user(
        name: &str,
        uid: Option<i64>,
        gid: Option<i64>,
        gecos: Option<&str>,
        home: Option<&str>,
        shell: Option<&str>,
    ) -> User {
        let s = |v: Option<&str>| v.map(str::to_owned);
        User { name: name.into(), uid, gid, gecos: s(gecos), home: s(home), shell: s(shell) }
    }

    #[test]
    fn passwd_table() {
        let root = || user("root", Some(0), Some(0), Some("root"), Some("/root"), Some("/bin/bash"));
        let cases: Vec<Case<User>> = vec![
            ("", vec![], &[]),
            ("root:x:0:0:root:/root:/bin/bash\n", vec![root()], &[]),
            ("root:x:0:0:root:/root:/bin/bash\r\n\r\n", vec![root()], &[]),
            (
                "# comment\n\n   \n  # indented comment\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin",
                vec![user(
                    "nobody",
                    Some(65534),
                    Some(65534),
                    Some("nobody"),
                    Some("/nonexistent"),
                    Some("/usr/sbin/nologin"),
                )],
                &[],
            ),
            ("+::::::\n-baduser::::::\n+@admins\nroot:x:0:0:root:/root:/bin/bash\n", vec![root()], &[]),
            // nss_files serves a complete `+` line as the account `+evil`: a uid 0 it must not hide.
            (
                "+evil:x:0:0::/root:/bin/sh\n",
                vec![user("+evil", Some(0), Some(0), None, Some("/root"), Some("/bin/sh"))],
                &[],
            ),
            ("svc:x:10:20:::\n", vec![user("svc", Some(10), Some(20), None, None, None)], &[]),
            (
                "a:x:1:1:A User,Room 1,,:/home/a:/bin/sh\n",
                vec![user("a", Some(1), Some(1), Some("A User,Room 1,,"), Some("/home/a"), Some("/bin/sh"))],
                &[],
            ),
            (
                "a:x:1:1:g:/h\nb:x:1:1:g:/h:/s:extra\n",
                vec![],
                &[(1, "expected 7 colon-separated fields, found 6"), (2, "found 8")],
            ),
            ("a:x:1:1:g:/h:/s:::::::::::::::::\n", vec![], &[(1, "found more than 9")]),
            (
                "a:x:abc:1:::\nb:x:2:-1:::\nc:x::3:::\nd:x:99999999999999999999:4:::\n",
                vec![
                    user("a", None, Some(1), None, None, None),
                    user("b", Some(2), None, None, None, None),
                    user("c", None, Some(3), None, None, None),
                    user("d", None, Some(4), None, None, None),
                ],
                &[
                    (1, "uid of \"a\" is not a number: \"abc\""),
                    (2, "gid of \"b\""),
                    (3, "uid of \"c\""),
                    (4, "uid of \"d\""),
                ],
            ),
            (":x:1:1:::\nroot:x:0:0:root:/root:/bin/bash\n", vec![root()], &[(1, "empty name")]),
        ];
        for (input, want, want_errors) in cases {
            let (got, errors) = parse_passwd(input);
            assert_eq!(got, want, "{input:?}");
            check_errors(input, &errors, want_errors);
        }
    }

    #[test]
    fn group_table() {
        let g = |name: &str, gid: Option<i64>, members: &[&str]| Group {
            name: name.into(),
            gid,
            members: members.join(","),
        };
        let cases: Vec<Case<Group>> = vec![
            ("", vec![], &[]),
            ("root:x:0:\n", vec![g("root", Some(0), &[])], &[]),
            (
                "sudo:x:27:alice,bob\r\nadm:x:4:syslog",
                vec![g("sudo", Some(27), &["alice", "bob"]), g("adm", Some(4), &["syslog"])],
                &[],
            ),
            ("g:x:5:a,,b,\n", vec![g("g", Some(5), &["a", "b"])], &[]),
            ("# c\n\n+:::\n-grp:::\nwheel:!:10:root\n", vec![g("wheel", Some(10), &["root"])], &[]),
            ("bad:x:1\nworse:x:1:a:b\n", vec![], &[(1, "expected 4 colon-separated fields, found 3"), (2, "found 5")]),
            (
                "g:x:x:\nh:x::a\n",
                vec![g("g", None, &[]), g("h", None, &["a"])],
                &[(1, "gid of \"g\" is not a number"), (2, "gid of \"h\"")],
            ),
            (":x:1:\n", vec![], &[(1, "empty name")]),
        ];
        for (input, want, want_errors) in cases {
            let (got, errors) = parse_group(input);
            assert_eq!(got, want, "{input:?}");
            check_errors(input, &errors, want_errors);
        }
    }

    #[test]
    fn shadow_table() {
        // (input, name, password_set, locked, empty_password, last_change, max, expire, errors)
        type ShadowCase = (
            &'static str,
            &'static str,
            bool,
            bool,
            bool,
            Option<i64>,
            Option<i64>,
            Option<i64>,
            &'static [(usize, &'static str)],
        );
        let cases: &[ShadowCase] = &[
            ("root:*:19000:0:99999:7:::\n", "root", false, false, false, Some(19000), Some(99999), None, &[]),
            (
                "alice:$6$pepper$Zq9h1Q:19500:0:90:7:14:20000:\n",
                "alice",
                true,
                false,
                false,
                Some(19500),
                Some(90),
                Some(20000),
                &[],
            ),
            ("bob:!$6$pepper$Zq9h1Q:19500::::::\n", "bob", false, true, false, Some(19500), None, None, &[]),
            ("carol::0:0:99999:7:::\r\n", "carol", false, false, true, Some(0), Some(99999), None, &[]),
            ("dave:!!:::::::\n", "dave", false, true, false, None, None, None, &[]),
            ("erin:*LK*:1::::::\n", "erin", false, false, false, Some(1), None, None, &[]),
            ("old:$1$abc$def\n", "old", true, false, false, None, None, None, &[]),
            ("# comment\n+::::::::\nfrank:!:1::::::", "frank", false, true, false, Some(1), None, None, &[]),
            (
                "x:*:1:2:3\ngina:*:abc:0:x:7::y:\n",
                "gina",
                false,
                false,
                false,
                None,
                None,
                None,
                &[
                    (1, "expected 9 or 2 colon-separated fields, found 5"),
                    (2, "last change of \"gina\""),
                    (2, "maximum age"),
                    (2, "expiry"),
                ],
            ),
        ];
        for (input, name, set, locked, empty, last, max, expire, want_errors) in cases {
            let (got, errors) = parse_shadow(input);
            let want = Shadow {
                name: name.to_string(),
                password_set: *set,
                locked: *locked,
                empty_password: *empty,
                last_change_days: *last,
                max_days: *max,
                expire_days: *expire,
            };
            assert_eq!(got, [want], "{input:?}");
            check_errors(input, &errors, want_errors);
        }
        assert_eq!(parse_shadow(""), (vec![], vec![]));
    }

    #[test]
    fn password_fields_never_leak() {
        const HASH: &str = "$6$Ns4ltVal$Secr3tH4shB0dyXyZ";
        let shadow = format!(
            "alice:{HASH}:19500:0:99999:7:::\nbob:!{HASH}:19500:0:99999:7:::\nwrong:{HASH}:1:2\ncarol:{HASH}:oops:x:y:z:w:v:\n\
             {HASH}\n:{HASH}:1::::::\nold:{HASH}\ntoo:{HASH}:1:2:3:4:5:6:7:8:9\n"
        );
        let passwd = format!("alice:{HASH}:1000:1000::/home/alice:/bin/sh\nbad:{HASH}:x:y\nuid:{HASH}:q:1:::\n");
        let group = format!("staff:{HASH}:50:alice\nbad:{HASH}\n");
        let everything = format!("{:?} {:?} {:?}", parse_shadow(&shadow), parse_passwd(&passwd), parse_group(&group));
        for secret in [HASH, "Ns4ltVal", "Secr3tH4shB0dyXyZ"] {
            assert!(!everything.contains(secret), "{secret} leaked: {everything}");
        }
        // The records are still there, and the problems were reported.
        let (s, e) = parse_shadow(&shadow);
        assert_eq!(
            s.iter().map(|s| (s.name.as_str(), s.password_set, s.locked)).collect::<Vec<_>>(),
            [("alice", true, false), ("bob", false, true), ("carol", true, false), ("old", true, false)]
        );
        assert_eq!(e.len(), 7, "{e:?}");
    }

    #[test]
    fn hostile_sizes_are_bounded() {
        let colons = ":".repeat(10 * 1024 * 1024);
        let (u, e) = parse_passwd(&colons);
        assert!(u.is_empty());
        assert_eq!(e.len(), 1);
        assert!(e[0].message.len() < 200);

        let text = format!("a:x:1:1:{}:/h:/s\n", "é".repeat(MAX_VALUE));
        let (u, e) = parse_passwd(&text);
        let gecos = u[0].gecos.as_deref().unwrap_or_default();
        assert!(gecos.len() <= MAX_VALUE && gecos.len() > MAX_VALUE - 4);
        assert!(e.len() == 1 && e[0].message.contains("gecos of \"a\"") && e[0].message.contains("truncated"), "{e:?}");

        let text = format!("g:x:1:{}\n", "m,".repeat(MAX_VALUE));
        let (g, e) = parse_group(&text);
        assert_eq!(g[0].members.split(',').count(), MAX_VALUE / 2);
        assert_eq!(e.len(), 1);

        let (_, e) = parse_group(&"?\n".repeat(5000));
        assert_eq!(e.len(), MAX_ERRORS + 1);
        assert!(
            e[MAX_ERRORS].line == MAX_ERRORS + 1 && e[MAX_ERRORS].message.starts_with("4000 more"),
            "{:?}",
            e[MAX_ERRORS]
        );
    }

    /// Read a chunk at a time, split anywhere (in a field, between `\r` and
    /// `\n`, in leading blanks), the files give what they give whole.
    #[test]
    fn fed_in_pieces_it_reads_what_it_reads_whole() {
        let long = "é".repeat(MAX_VALUE);
        let passwd = format!(
            "  root:x:0:0:root:/root:/bin/bash\r\n\r\n# c:x\n+::::::\na:x:1:1:{long}:/h:/s\r\nb:x:2\n\
             c:x:3:3:::::::::::\n:x:1:1:::\nlast:x:9:9:::/bin/sh\r"
        );
        let group = format!("g:x:5:a,,b,\r\nbig:x:6:{}\nh:x::\nend:x:7:z", "m,".repeat(MAX_VALUE));
        let shadow = "root:*:19000:0:99999:7:::\r\nold:$1$abc\nbad:x:1\n";
        fn pieces<T>(mut r: Records<T>, bytes: &[u8], size: usize) -> (Vec<T>, Vec<StanzaError>) {
            let mut out = Vec::new();
            for chunk in bytes.chunks(size) {
                r.feed(chunk, &mut |x| out.push(x));
            }
            let errors = r.finish(&mut |x| out.push(x));
            (out, errors)
        }
        for size in [1, 2, 3, 7, 64, 4096, 65536] {
            assert_eq!(pieces(Records::passwd(), passwd.as_bytes(), size), parse_passwd(&passwd), "{size}");
            assert_eq!(pieces(Records::group(), group.as_bytes(), size), parse_group(&group), "{size}");
            assert_eq!(pieces(Records::shadow(), shadow.as_bytes(), size), parse_shadow(shadow), "{size}");
        }
        let (users, errors) = parse_passwd(&passwd);
        let names: Vec<&str> = users.iter().map(|u| u.name.as_str()).collect();
        assert_eq!(names, ["root", "a", "last"]);
        assert_eq!(users[2].shell.as_deref(), Some("/bin/sh\r"), "a \\r ends a line only before \\n");
        assert_eq!(users[1].gecos.as_deref().map(str::len), Some(MAX_VALUE));
        assert_eq!(errors.len(), 4, "{errors:?}");
        let (groups, _) = parse_group(&group);
        assert_eq!(groups[0].members, "a,b");
        assert_eq!(groups[1].members.len(), MAX_VALUE - 1);
    }

    /// The files of a real Debian root, when the test machine has one cached.
    #[test]
    fn debian_bookworm_root() {
        let etc = std::path::Path::new("/root/.cache/periscope/rootfs/bookworm-minbase/etc");
        let read = |f: &str| match std::fs::read_to_string(etc.join(f)) {
            Ok(text) => Some(text),
            Err(e) => {
                println!("skipping {f} of the Debian root: {}: {e}", etc.join(f).display());
                None
            }
        };
        if let Some(text) = read("passwd") {
            let (users, errors) = parse_passwd(&text);
            assert!(errors.is_empty(), "{errors:?}");
            let root = users.iter().find(|u| u.name == "root").expect("root in passwd");
            assert_eq!((root.uid, root.gid, root.shell.as_deref()), (Some(0), Some(0), Some("/bin/bash")));
            assert!(users.iter().any(|u| u.name == "nobody" && u.uid == Some(65534)));
        }
        if let Some(text) = read("group") {
            let (groups, errors) = parse_group(&text);
            assert!(errors.is_empty(), "{errors:?}");
            assert!(groups.iter().any(|g| g.name == "root" && g.gid == Some(0)));
        }
        if let Some(text) = read("shadow") {
            let (shadow, errors) = parse_shadow(&text);
            assert!(errors.is_empty(), "{errors:?}");
            let root = shadow.iter().find(|s| s.name == "root").expect("root in shadow");
            assert!(!root.empty_password);
        }
    }
}
