//! Parsers for `/etc/passwd`, `/etc/group` and `/etc/shadow`, read as files of
//! the scope (never through NSS, which would describe the host instead).
//!
//! Formats as documented in passwd(5), group(5) and shadow(5): one record per
//! line, fields separated by colons: `name:password:uid:gid:gecos:home:shell`,
//! `name:password:gid:member,member` and
//! `name:password:lastchg:min:max:warn:inactive:expire:reserved` (shadow also
//! accepts the old two-field `name:password` form, as glibc does).
//!
//! What a scope's programs see of a passwd or group line is what their C
//! library makes of it, and glibc and musl do not read every line alike. So
//! each line is read as both do (glibc 2.36's nss_files line parser, behind
//! getpwent, getpwnam and getpwuid; musl's `__getpwent_a` and `__getgrent_a`)
//! and gives a record for each reading: one when they agree, as on every
//! ordinary line; none when neither reads an entry, reported unless it is a
//! blank line, a comment or an NIS marker to glibc; one or two, with a
//! problem saying what each read, when they differ. No uid or gid either
//! library would use is left out or changed without a word. Both libraries:
//! - end a record at its first NUL byte (they read C strings);
//! - take the shell (group: the member list) as the rest of the line, colons and all.
//!
//! glibc skips leading blanks, blank lines and `#` comments, needs 4 fields
//! (group: 3), and reads an id as `strtoul` does (leading blanks and a sign
//! taken, `-1` being 2^64-1), dropping the line when it is empty, not a
//! number or past 2^32-1 (for a `+`/`-` name an empty id is 0). musl reads
//! any line of 7 fields (group: 4), comments and leading blanks included, the
//! name's colon looked for from the line's second byte; an id is digits only,
//! empty is 0, and it wraps at 2^32 (`4294967296` is uid 0). glibc's
//! getpwnam/getpwuid (getgrnam/getgrgid) skip names starting with `+` or `-`
//! (NIS compat entries, which only getpwent lists) and musl's do not: such a
//! record comes with a problem saying so. Shadow lines are read as glibc
//! does: blank lines, comments and NIS markers skipped, a record ending at a NUL.
//!
//! Pure and total: any bytes in, records and per-line problems out. Input is
//! untrusted, so every kept value is capped at [`MAX_VALUE`] bytes and problem
//! reports stop after [`MAX_ERRORS`] (one final summary is added). Password
//! fields are never kept: shadow records only say what kind of value was there,
//! and no problem message quotes a password field or a whole line.

use super::parse::{Errors, StanzaError, cut, truncate};
pub use super::parse::{MAX_ERRORS, MAX_VALUE};

/// An account a C library reads from a line of `/etc/passwd`. The password field is deliberately absent.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct User {
    pub name: String,
    /// 0 to 2^32-1, as the library reads it.
    pub uid: i64,
    /// 0 to 2^32-1, as the library reads it.
    pub gid: i64,
    /// `None` when empty.
    pub gecos: Option<String>,
    /// `None` when empty.
    pub home: Option<String>,
    /// `None` when empty (login(1) then uses `/bin/sh`).
    pub shell: Option<String>,
}

/// A group a C library reads from a line of `/etc/group`. The password field is deliberately absent.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Group {
    pub name: String,
    /// 0 to 2^32-1, as the library reads it.
    pub gid: i64,
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

/// How one C library reads a line: an entry (with notes on how it read it), or why it skips the line.
enum Reading<T> {
    Reads(T, Vec<String>),
    /// `quiet`: a line the format means to be skipped (blank, comment, NIS marker): not a problem.
    Skips {
        why: String,
        quiet: bool,
    },
}

fn skips<T>(why: impl Into<String>) -> Reading<T> {
    Reading::Skips { why: why.into(), quiet: false }
}

fn quiet<T>(why: &str) -> Reading<T> {
    Reading::Skips { why: why.into(), quiet: true }
}

/// An account as a library reads it, before its values are cut to size.
struct Pw {
    name: Text,
    uid: u32,
    gid: u32,
    gecos: Text,
    home: Text,
    shell: Text,
}

/// glibc's nss_files line parser (pwd/fgetpwent_r.c's LINE_PARSER, after
/// `__nss_readline` skipped leading blanks, blank lines and comments).
fn glibc_passwd(l: &Line<'_>) -> Reading<Pw> {
    let compat = match glibc_start(l) {
        Ok(compat) => compat,
        Err(skip) => return skip,
    };
    let ids = glibc_id(l, 2, "uid", compat).and_then(|uid| Ok((uid, glibc_id(l, 3, "gid", compat)?)));
    match ids {
        Ok((uid, gid)) => {
            let pw = Pw { name: l.text(0), uid, gid, gecos: l.text(4), home: l.text(5), shell: l.rest(6) };
            Reading::Reads(pw, vec![])
        }
        Err(why) => skips(why),
    }
}

/// musl's `__getpwent_a` (src/passwd/getpwent_a.c).
fn musl_passwd(l: &Line<'_>) -> Reading<Pw> {
    let (name, k, mut notes) = musl_name(l);
    // The fields after the name, as musl splits them.
    let m = l.n - k;
    let id = |i: usize, what: &str, notes: &mut Vec<String>| (m > i).then(|| musl_id(l.f[k + i], what, notes));
    let uid = match id(2, "uid", &mut notes) {
        Some(Err(why)) => return skips(why),
        uid => uid,
    };
    let gid = match id(3, "gid", &mut notes) {
        Some(Err(why)) => return skips(why),
        gid => gid,
    };
    match (uid, gid) {
        (Some(Ok(uid)), Some(Ok(gid))) if m >= 7 => {
            let pw = Pw { name, uid, gid, gecos: l.text(k + 4), home: l.text(k + 5), shell: l.rest(k + 6) };
            Reading::Reads(pw, notes)
        }
        _ => skips(format!("{} it needs 7", fields(m))),
    }
}

/// A group as a library reads it, before its values are cut to size.
struct Gr {
    name: Text,
    gid: u32,
    members: Text,
    /// glibc's member list: each member's leading blanks skipped.
    trim: bool,
}

/// glibc's nss_files line parser (grp/fgetgrent_r.c's LINE_PARSER).
fn glibc_group(l: &Line<'_>) -> Reading<Gr> {
    let compat = match glibc_start(l) {
        Ok(compat) => compat,
        Err(skip) => return skip,
    };
    match glibc_id(l, 2, "gid", compat) {
        Ok(gid) => Reading::Reads(Gr { name: l.text(0), gid, members: l.rest(3), trim: true }, vec![]),
        Err(why) => skips(why),
    }
}

/// musl's `__getgrent_a` (src/passwd/getgrent_a.c).
fn musl_group(l: &Line<'_>) -> Reading<Gr> {
    let (name, k, mut notes) = musl_name(l);
    let m = l.n - k;
    if m < 3 {
        return skips(format!("{} it needs 4", fields(m)));
    }
    match musl_id(l.f[k + 2], "gid", &mut notes) {
        Err(why) => skips(why),
        Ok(_) if m < 4 => skips(format!("{} it needs 4", fields(m))),
        Ok(gid) => Reading::Reads(Gr { name, gid, members: l.rest(k + 3), trim: false }, notes),
    }
}

fn fields(n: usize) -> String {
    format!("{n} field{},", if n == 1 { "" } else { "s" })
}

/// What glibc does before the fields: whether the name starts with `+` or `-`, or why it skips the line.
fn glibc_start<T>(l: &Line<'_>) -> Result<bool, Reading<T>> {
    let name = l.f[0];
    if l.nul0 {
        return Err(quiet("a line that starts with a NUL byte"));
    }
    if l.n == 1 && name.len == 0 {
        return Err(quiet("a blank line"));
    }
    if name.text.starts_with('#') {
        return Err(quiet("a comment"));
    }
    let compat = name.text.starts_with(['+', '-']);
    if compat && l.n == 1 {
        return Err(quiet("an NIS compat marker"));
    }
    Ok(compat)
}

/// Field `i` read as glibc's INT_FIELD reads it (nss/nss_files/files-parse.c:
/// `strtoul`, base 10; the line is dropped when nothing was converted or
/// something other than the colon or the line's end follows the number, and
/// 2.36 also drops values past 2^32-1), or INT_FIELD_MAYBE_NULL for a `+`/`-`
/// name: an empty field followed by a colon is 0.
fn glibc_id(l: &Line<'_>, i: usize, what: &str, compat: bool) -> Result<u32, String> {
    if i >= l.n {
        return Err(format!("no {what} field"));
    }
    let f = l.f[i];
    if f.len == 0 {
        return if compat && i + 1 < l.n { Ok(0) } else { Err(format!("empty {what}")) };
    }
    let n = f.num;
    if n.at != Strtoul::Digits {
        return Err(format!("{what} {:?} is not a number", truncate(f.text, 40)));
    }
    let v = if n.overflow {
        u64::MAX
    } else if n.minus {
        n.value.wrapping_neg()
    } else {
        n.value
    };
    u32::try_from(v).map_err(|_| format!("{what} {:?} is out of range", truncate(f.text, 40)))
}

/// musl's name (from the line's first byte, whatever it is: its colon is
/// looked for from the second), the index of the field it ends with, and
/// notes on how it was read.
fn musl_name(l: &Line<'_>) -> (Text, usize, Vec<String>) {
    if l.nul0 {
        (Text::default(), 0, vec!["its name ends at the NUL byte the line starts with".into()])
    } else if l.colon0 && l.n > 1 {
        let mut name = Text { s: ":".into(), len: 1, cut: false };
        name.push(l.f[1]);
        (name, 1, vec!["its name runs to the second colon, as musl looks for one from the line's second byte".into()])
    } else {
        let mut name = Text::default();
        name.push(l.lead);
        name.push(l.f[0]);
        (name, 0, vec![])
    }
}

/// Field `f` read as musl's `atou`, which must stop at a colon: digits only,
/// empty is 0, wrapping at 2^32 (noted).
fn musl_id(f: Field<'_>, what: &str, notes: &mut Vec<String>) -> Result<u32, String> {
    if f.num.not_digits {
        return Err(format!("{what} {:?} is not all digits", truncate(f.text, 40)));
    }
    if f.num.wrapped {
        notes.push(format!("{what} {:?} wraps at 2^32", truncate(f.text, 40)));
    } else if f.len == 0 {
        notes.push(format!("an empty {what} is 0"));
    }
    Ok(f.num.atou)
}

/// An entry of either file, as the records are compared and described.
trait Entry: PartialEq {
    /// "account" or "group".
    const KIND: &'static str;
    /// glibc's lookups that skip `+`/`-` names.
    const LOOKUPS: &'static str;
    fn name(&self) -> &str;
    fn describe(&self) -> String;
}

impl Entry for User {
    const KIND: &'static str = "account";
    const LOOKUPS: &'static str = "getpwnam and getpwuid";
    fn name(&self) -> &str {
        &self.name
    }
    fn describe(&self) -> String {
        format!("{:?} with uid {}", truncate(&self.name, 40), self.uid)
    }
}

impl Entry for Group {
    const KIND: &'static str = "group";
    const LOOKUPS: &'static str = "getgrnam and getgrgid";
    fn name(&self) -> &str {
        &self.name
    }
    fn describe(&self) -> String {
        let (name, gid) = (truncate(&self.name, 40), self.gid);
        if self.members.is_empty() {
            format!("{name:?} with gid {gid}")
        } else {
            format!("{name:?} with gid {gid} and members {:?}", truncate(&self.members, 40))
        }
    }
}

fn passwd_line(gl: &Line<'_>, ml: &Line<'_>, errors: &mut Errors, each: &mut dyn FnMut(User)) {
    let mut problems = Vec::new();
    let mut user = |p: Pw| {
        let name = capped(&p.name, "name", "", &mut problems);
        User {
            uid: p.uid.into(),
            gid: p.gid.into(),
            gecos: kept(&p.gecos, "gecos", &name, &mut problems),
            home: kept(&p.home, "home", &name, &mut problems),
            shell: kept(&p.shell, "shell", &name, &mut problems),
            name,
        }
    };
    let glibc = map(glibc_passwd(gl), &mut user);
    let musl = map(musl_passwd(ml), &mut user);
    settle(gl, ml, glibc, musl, problems, errors, each);
}

fn group_line(gl: &Line<'_>, ml: &Line<'_>, errors: &mut Errors, each: &mut dyn FnMut(Group)) {
    let mut problems = Vec::new();
    let mut group = |g: Gr| {
        let name = capped(&g.name, "name", "", &mut problems);
        let list = capped(&g.members, "member list", &name, &mut problems);
        let mut members = String::with_capacity(list.len());
        let blanks: &[char] = if g.trim { &[' ', '\t', '\n', '\r', '\x0b', '\x0c'] } else { &[] };
        for m in list.split(',').map(|m| m.trim_start_matches(blanks)).filter(|m| !m.is_empty()) {
            if !members.is_empty() {
                members.push(',');
            }
            members.push_str(m);
        }
        Group { gid: g.gid.into(), members, name }
    };
    let glibc = map(glibc_group(gl), &mut group);
    let musl = map(musl_group(ml), &mut group);
    settle(gl, ml, glibc, musl, problems, errors, each);
}

fn map<A, B>(r: Reading<A>, f: &mut impl FnMut(A) -> B) -> Reading<B> {
    match r {
        Reading::Reads(a, notes) => Reading::Reads(f(a), notes),
        Reading::Skips { why, quiet } => Reading::Skips { why, quiet },
    }
}

/// The records of a line from its two readings, and the problems that go with them.
fn settle<T: Entry>(
    l: &Line<'_>,
    ml: &Line<'_>,
    glibc: Reading<T>,
    musl: Reading<T>,
    problems: Vec<String>,
    errors: &mut Errors,
    each: &mut dyn FnMut(T),
) {
    use Reading::{Reads, Skips};
    let kind = T::KIND;
    // How a library changed the line before splitting it, said with what it read or why it skipped it.
    let (gq, mq) = (l.quirk.map(|q| vec![q.to_string()]).unwrap_or_default(), ml.quirk);
    let described = |t: &T, notes: &[String]| {
        let d = t.describe();
        if notes.is_empty() { d } else { format!("{d} ({})", notes.join("; ")) }
    };
    let why = |why: String, quirk: Option<&str>| match quirk {
        Some(q) => format!("{why} ({q})"),
        None => why,
    };
    let nul = if l.nul { "; the record ends at its NUL byte" } else { "" };
    let mut said = Vec::new();
    let compat = |t: &T| {
        format!(
            "{:?} is an NIS compat entry to glibc: its {} skip names starting with + or -, musl's do not",
            truncate(t.name(), 40),
            T::LOOKUPS
        )
    };
    match (glibc, musl) {
        (Reads(g, _), Reads(m, _)) if g == m => {
            if g.name().starts_with(['+', '-']) {
                said.push(compat(&g));
            }
            each(g);
        }
        (Reads(g, _), Reads(m, mut notes)) => {
            notes.extend(mq.map(str::to_string));
            said.push(format!(
                "glibc and musl read different {kind}s from this line, a record for each: glibc {}, musl {}",
                described(&g, &gq),
                described(&m, &notes)
            ));
            if g.name().starts_with(['+', '-']) {
                said.push(compat(&g));
            }
            each(g);
            each(m);
        }
        (Reads(g, _), Skips { why: w, .. }) => {
            said.push(format!(
                "only glibc reads {kind} {} from this line; musl skips it: {}{nul}",
                described(&g, &gq),
                why(w, mq)
            ));
            if g.name().starts_with(['+', '-']) {
                said.push(compat(&g));
            }
            each(g);
        }
        (Skips { why: w, .. }, Reads(m, mut notes)) => {
            notes.extend(mq.map(str::to_string));
            said.push(format!(
                "only musl reads {kind} {} from this line; glibc skips it: {}{nul}",
                described(&m, &notes),
                why(w, l.quirk)
            ));
            each(m);
        }
        (Skips { quiet: true, .. }, Skips { .. }) => {}
        (Skips { why: g, .. }, Skips { why: m, .. }) => {
            said.push(format!("line skipped by glibc ({}) and musl ({}){nul}", why(g, l.quirk), why(m, mq)));
        }
    }
    for p in problems {
        if !said.contains(&p) {
            said.push(p);
        }
    }
    for s in said {
        errors.push(l.no, || s);
    }
}

/// Shadow lines are read as glibc splits them.
fn shadow_line(l: &Line<'_>, _: &Line<'_>, errors: &mut Errors, each: &mut dyn FnMut(Shadow)) {
    let name = l.f[0];
    if l.nul0 || l.n == 1 && name.len == 0 || name.text.starts_with('#') {
        return;
    }
    let (n, counts) = (l.n, [9, 2]);
    // `+name`/`-name` lines: NIS markers to nss_compat, entries of that name to nss_files. A complete, valid one
    // is read, as nss_files would; the markers themselves (`+::::::::`, `+@netgroup`, `-user`) are skipped.
    if name.text.starts_with(['+', '-']) {
        let marker = name.len == 1 || name.text.as_bytes().get(1) == Some(&b'@');
        if marker || !counts.contains(&n) {
            return;
        }
        let mut problems = Errors::default();
        if let Some(record) = shadow(l, &mut problems).filter(|_| problems.is_empty()) {
            each(record);
        }
        return;
    }
    if !counts.contains(&n) {
        errors.push(l.no, || format!("shadow: expected 9 or 2 colon-separated fields, found {n}; line skipped"));
        return;
    }
    if let Some(record) = shadow(l, errors) {
        each(record);
    }
}

fn shadow(l: &Line<'_>, errors: &mut Errors) -> Option<Shadow> {
    let f = &l.f;
    let line = l.no;
    if f[0].len == 0 {
        errors.push(line, || "empty name; line skipped".to_string());
        return None;
    }
    let mut problems = Vec::new();
    let name = capped(&Text::of(f[0]), "name", "", &mut problems);
    for p in problems {
        errors.push(line, || p);
    }
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

/// Fields a line is split into; colons past the last are kept in it (the rest of the line).
const MOST_FIELDS: usize = 9;

/// The last field that may be read as an id (musl's gid when a line starts with a colon).
const LAST_ID: usize = 4;

/// Bytes of a field kept while reading: enough for [`MAX_VALUE`] bytes of
/// text whatever char straddles the cut.
const KEEP: usize = MAX_VALUE + 4;

/// A field of a line: its text (at most [`KEEP`] bytes of it), its whole
/// length, and (for the fields that may be ids) what it reads as a number.
#[derive(Clone, Copy)]
struct Field<'a> {
    text: &'a str,
    len: usize,
    /// Bytes of it were not kept.
    cut: bool,
    num: Num,
}

/// A value made of fields (a name with the blanks before it, the rest of a
/// line), before it is cut to [`MAX_VALUE`] bytes.
#[derive(Clone, Default)]
struct Text {
    s: String,
    len: usize,
    /// Bytes of it were not kept: nothing after them is added.
    cut: bool,
}

impl Text {
    fn of(f: Field<'_>) -> Text {
        let mut t = Text::default();
        t.push(f);
        t
    }

    fn push(&mut self, f: Field<'_>) {
        if !self.cut {
            self.s.push_str(f.text);
        }
        self.len += f.len;
        self.cut |= f.cut;
    }
}

/// A field read as a number two ways, a byte at a time (it may be longer
/// than what is kept of it): musl's `atou` and glibc's `strtoul`.
#[derive(Clone, Copy, Default)]
struct Num {
    /// `atou`: the digits, wrapping at 2^32.
    atou: u32,
    wrapped: bool,
    /// A byte that is not a digit: `atou` stops before the colon.
    not_digits: bool,
    /// `strtoul`: where it is.
    at: Strtoul,
    minus: bool,
    value: u64,
    /// Past 2^64-1: `strtoul` gives 2^64-1.
    overflow: bool,
}

#[derive(Clone, Copy, Default, PartialEq, Eq)]
enum Strtoul {
    /// Leading blanks (C's `isspace`).
    #[default]
    Blanks,
    /// A sign, no digit yet.
    Sign,
    /// Digits, and nothing after them.
    Digits,
    /// Anything else: nothing converted, or something after the number.
    Junk,
}

impl Num {
    fn push(&mut self, b: u8) {
        if b.is_ascii_digit() {
            let d = b - b'0';
            let (x, a) = self.atou.overflowing_mul(10);
            let (x, c) = x.overflowing_add(d.into());
            (self.atou, self.wrapped) = (x, self.wrapped || a || c);
            match self.value.checked_mul(10).and_then(|v| v.checked_add(d.into())) {
                Some(v) => self.value = v,
                None => self.overflow = true,
            }
        } else {
            self.not_digits = true;
        }
        self.at = match (self.at, b) {
            (Strtoul::Blanks, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c) => Strtoul::Blanks,
            (Strtoul::Blanks, b'+' | b'-') => {
                self.minus = b == b'-';
                Strtoul::Sign
            }
            (Strtoul::Blanks | Strtoul::Sign | Strtoul::Digits, b'0'..=b'9') => Strtoul::Digits,
            _ => Strtoul::Junk,
        };
    }
}

/// One line as both libraries' parsers start from it.
struct Line<'a> {
    /// 1-based.
    no: usize,
    /// The blanks before the first field (glibc skips them; musl's name starts with them).
    lead: Field<'a>,
    /// The fields; the last holds the rest of the line, colons and all.
    f: [Field<'a>; MOST_FIELDS],
    /// How many fields the record has (its colons and one).
    n: usize,
    /// The line starts with a NUL byte (a blank line to glibc; musl's name is empty).
    nul0: bool,
    /// The line starts with a colon (an empty name to glibc; part of musl's name).
    colon0: bool,
    /// The record ends at a NUL byte past the line's first.
    nul: bool,
    /// How the library changed the line before splitting it, if it did.
    quirk: Option<&'static str>,
}

impl Line<'_> {
    /// Field `i` (empty if the record has none).
    fn text(&self, i: usize) -> Text {
        if i < self.n { Text::of(self.f[i]) } else { Text::default() }
    }

    /// The rest of the line from field `i` on, colons and all.
    fn rest(&self, i: usize) -> Text {
        let mut t = Text::default();
        for k in i..self.n.min(MOST_FIELDS) {
            if k > i {
                t.push(Field { text: ":", len: 1, cut: false, num: Num::default() });
            }
            t.push(self.f[k]);
        }
        t
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Default)]
enum At {
    /// Leading blanks of a line (C's `isspace`, but `\n`).
    #[default]
    Start,
    /// In the fields of a line.
    Fields,
    /// Past a NUL byte that ended the record, until the line ends.
    Cut,
}

/// Bytes of a line kept whole, to read it again as a library that changes it
/// before splitting it (see [`Records::end_line`]).
const RAW: usize = KEEP;

/// Splits a line into fields as it comes, a chunk at a time.
#[derive(Default)]
struct Splitter {
    lead: Vec<u8>,
    lead_len: usize,
    fields: [Vec<u8>; MOST_FIELDS],
    lens: [usize; MOST_FIELDS],
    nums: [Num; MOST_FIELDS],
    /// Colons in the record so far.
    colons: usize,
    nul0: bool,
    colon0: bool,
    /// The current field's last byte (a `\r` before `\n` is not part of it).
    last: u8,
    at: At,
    /// The line's bytes up to the end of its record, while at most [`RAW`].
    raw: Vec<u8>,
    raw_len: usize,
}

impl Splitter {
    /// Reads `chunk` up to the end of the line: how many bytes it took, and whether a `\n` ended the line.
    fn feed(&mut self, chunk: &[u8]) -> (usize, bool) {
        let mut i = 0;
        while let Some(&b) = chunk.get(i) {
            match self.at {
                At::Start => {
                    match b {
                        b'\n' => return (i + 1, true),
                        b' ' | b'\t' | b'\r' | 0x0b | 0x0c => {
                            if self.lead.len() < KEEP {
                                self.lead.push(b);
                            }
                            self.lead_len += 1;
                            self.keep(&[b]);
                        }
                        // At the line's first byte a NUL is musl's whole name; after blanks it ends the record.
                        0 if self.lead_len == 0 => {
                            (self.nul0, self.at) = (true, At::Fields);
                            self.keep(&[0]);
                        }
                        0 => self.at = At::Cut,
                        _ => {
                            self.colon0 = b == b':' && self.lead_len == 0;
                            self.at = At::Fields;
                            continue;
                        }
                    }
                    i += 1;
                }
                At::Cut => {
                    return match chunk[i..].iter().position(|&b| b == b'\n') {
                        Some(j) => (i + j + 1, true),
                        None => (chunk.len(), false),
                    };
                }
                At::Fields => {
                    let rest = &chunk[i..];
                    let stop = rest.iter().position(|&b| matches!(b, b':' | b'\n' | 0));
                    let seg = &rest[..stop.unwrap_or(rest.len())];
                    self.add(seg);
                    self.keep(seg);
                    let Some(j) = stop else { return (chunk.len(), false) };
                    i += j + 1;
                    match rest[j] {
                        b':' => {
                            self.keep(b":");
                            self.next_field();
                        }
                        b'\n' => return (i, true),
                        _ => self.at = At::Cut,
                    }
                }
            }
        }
        (chunk.len(), false)
    }

    fn keep(&mut self, bytes: &[u8]) {
        if self.raw_len + bytes.len() <= RAW {
            self.raw.extend_from_slice(bytes);
        }
        self.raw_len += bytes.len();
    }

    fn add(&mut self, seg: &[u8]) {
        if seg.is_empty() {
            return;
        }
        let i = self.colons.min(MOST_FIELDS - 1);
        let field = &mut self.fields[i];
        let keep = KEEP.saturating_sub(field.len()).min(seg.len());
        field.extend_from_slice(&seg[..keep]);
        self.lens[i] += seg.len();
        if i <= LAST_ID {
            for &b in seg {
                self.nums[i].push(b);
            }
        }
        self.last = seg[seg.len() - 1];
    }

    fn next_field(&mut self) {
        self.colons += 1;
        if self.colons < MOST_FIELDS {
            self.last = 0;
        } else {
            self.add(b":");
        }
    }

    /// A `\r` that ended the line before its `\n` is not text of the last field
    /// (ids keep it: both libraries stop at it).
    fn drop_cr(&mut self) {
        if self.at == At::Fields && self.last == b'\r' {
            let n = self.colons.min(MOST_FIELDS - 1);
            self.lens[n] -= 1;
            if self.fields[n].len() > self.lens[n] {
                self.fields[n].pop();
            }
        }
    }

    /// The line split (`texts` and `lead`: its fields and blanks as text, see [`Self::texts`]).
    fn line<'a>(&self, no: usize, texts: &'a [std::borrow::Cow<'a, str>; MOST_FIELDS], lead: &'a str) -> Line<'a> {
        let field = |i: usize| Field {
            text: &texts[i],
            len: self.lens[i],
            cut: self.fields[i].len() < self.lens[i],
            num: self.nums[i],
        };
        Line {
            no,
            lead: Field { text: lead, len: self.lead_len, cut: self.lead.len() < self.lead_len, num: Num::default() },
            f: std::array::from_fn(field),
            n: self.colons + 1,
            nul0: self.nul0,
            colon0: self.colon0,
            nul: self.at == At::Cut,
            quirk: None,
        }
    }

    fn texts(&self) -> ([std::borrow::Cow<'_, str>; MOST_FIELDS], std::borrow::Cow<'_, str>) {
        (std::array::from_fn(|i| String::from_utf8_lossy(&self.fields[i])), String::from_utf8_lossy(&self.lead))
    }

    /// `bytes` split as a whole line without its newline.
    fn of(bytes: &[u8]) -> Splitter {
        let mut s = Splitter::default();
        s.feed(bytes);
        s
    }

    fn clear(&mut self) {
        for f in &mut self.fields[..=self.colons.min(MOST_FIELDS - 1)] {
            f.clear();
        }
        self.lead.clear();
        self.raw.clear();
        self.lens = [0; MOST_FIELDS];
        self.nums = [Num::default(); MOST_FIELDS];
        (self.lead_len, self.raw_len, self.colons, self.nul0, self.colon0, self.last, self.at) =
            (0, 0, 0, false, false, 0, At::Start);
    }
}

/// One of the formats read as it comes, a chunk at a time: splits each line
/// into fields and hands it to the format's reader as it ends. One line is
/// held at a time, each of its fields up to [`KEEP`] bytes (its length
/// counted beyond), so a file costs a line's worth of memory however long it is.
pub struct Records<T> {
    /// The format's reader, given the line as glibc and as musl split it (almost always the same).
    read: fn(&Line<'_>, &Line<'_>, &mut Errors, &mut dyn FnMut(T)),
    split: Splitter,
    line: usize,
    errors: Errors,
}

impl Records<User> {
    /// `/etc/passwd`: each account glibc or musl reads from a line (see the module's documentation).
    pub fn passwd() -> Self {
        Self::new(passwd_line)
    }
}

impl Records<Group> {
    /// `/etc/group`: each group glibc or musl reads from a line (see the module's documentation).
    pub fn group() -> Self {
        Self::new(group_line)
    }
}

impl Records<Shadow> {
    /// `/etc/shadow`: lines with neither 9 fields nor the old 2-field form,
    /// or with an empty name, are reported and skipped; non-numeric day
    /// counts are reported and `None` (empty ones are just `None`).
    pub fn shadow() -> Self {
        Self::new(shadow_line)
    }
}

impl<T> Records<T> {
    fn new(read: fn(&Line<'_>, &Line<'_>, &mut Errors, &mut dyn FnMut(T))) -> Self {
        Records { read, split: Splitter::default(), line: 0, errors: Errors::default() }
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
        while !chunk.is_empty() {
            let (used, ended) = self.split.feed(chunk);
            chunk = &chunk[used..];
            if ended {
                self.split.drop_cr();
                self.end_line(true, each);
            }
        }
    }

    /// Ends the file (a last line without its newline is a line) and returns its problems.
    pub fn finish(mut self, each: &mut dyn FnMut(T)) -> Vec<StanzaError> {
        if self.split.at != At::Start {
            // A `\r` with no `\n` after it stays, as `str::lines` leaves it.
            self.end_line(false, each);
        }
        self.errors.into_vec()
    }

    /// The problems so far, the line being read dropped (a read that failed part way).
    pub fn abort(self) -> Vec<StanzaError> {
        self.errors.into_vec()
    }

    /// Hands the line to the format's reader. Two lines are not split alike by both libraries:
    /// - a record that no `\n` ends (cut at a NUL, or the file's last line without one) after leading
    ///   blanks: glibc's `__nss_readline` moves it over the blanks with `memmove(buf, p, strlen(p))`,
    ///   its end not moved, so its last bytes come twice (`  a:x:0:` is read as `a:x:0:0:`);
    /// - the file's last line without a `\n`: musl's `line[0][l-1] = 0` drops its last byte.
    ///
    /// Those are split again as each library sees them, when the line is at most [`RAW`] bytes.
    fn end_line(&mut self, newline: bool, each: &mut dyn FnMut(T)) {
        self.line += 1;
        let split = &self.split;
        if split.at != At::Start {
            let (texts, lead) = split.texts();
            let line = split.line(self.line, &texts, &lead);
            let glibc_moves = split.lead_len > 0 && (!newline || split.at == At::Cut);
            let musl_drops = !newline && split.at != At::Cut;
            if !glibc_moves && !musl_drops {
                (self.read)(&line, &line, &mut self.errors, each);
            } else if split.raw_len > RAW {
                (self.read)(&line, &line, &mut self.errors, each);
                self.errors.push(self.line, || {
                    let how = if glibc_moves { "glibc repeats its last bytes" } else { "musl drops its last byte" };
                    format!("a line of {} bytes that no newline ends, where {how}, was read as it is", split.raw_len)
                });
            } else {
                let raw = &split.raw;
                let glibc = if glibc_moves {
                    let k = split.lead_len;
                    let mut v = raw[k..].to_vec();
                    v.extend_from_slice(&raw[raw.len() - k.min(raw.len())..]);
                    Splitter::of(&v)
                } else {
                    Splitter::of(raw)
                };
                let musl = Splitter::of(if musl_drops { &raw[..raw.len() - 1] } else { raw });
                let (gt, gl) = glibc.texts();
                let (mt, ml) = musl.texts();
                let mut g = glibc.line(self.line, &gt, &gl);
                let mut m = musl.line(self.line, &mt, &ml);
                (g.nul, m.nul) = (line.nul, line.nul);
                if glibc_moves {
                    g.quirk = Some(
                        "glibc moves a record no newline ends over its leading blanks and reads its last bytes twice",
                    );
                }
                if musl_drops {
                    m.quirk = Some("musl drops the last byte of a last line without a newline");
                }
                (self.read)(&g, &m, &mut self.errors, each);
            }
        }
        self.split.clear();
    }
}

/// A day count: a non-negative decimal number (no sign, no spaces) that fits in i64.
fn digits(field: Field<'_>) -> Option<i64> {
    let text = field.text;
    if text.is_empty() || text.len() < field.len || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// An optional text value: `None` when empty, capped otherwise.
fn kept(t: &Text, what: &str, name: &str, problems: &mut Vec<String>) -> Option<String> {
    Some(capped(t, what, name, problems)).filter(|v| !v.is_empty())
}

/// `t`, cut to [`MAX_VALUE`] bytes at a char boundary (reported if cut).
fn capped(t: &Text, what: &str, name: &str, problems: &mut Vec<String>) -> String {
    let kept = cut(&t.s, MAX_VALUE);
    let whole = t.len.max(t.s.len());
    if kept.len() < whole {
        let whose = if name.is_empty() { String::new() } else { format!(" of {:?}", truncate(name, 40)) };
        problems.push(format!("{what}{whose} has {whole} bytes, truncated to {}", kept.len()));
    }
    kept.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (input, records expected, problems expected as (line, whole message))
    type Case<T> = (&'static str, Vec<T>, &'static [(usize, &'static str)]);

    fn check_errors(input: &str, got: &[StanzaError], want: &[(usize, &str)]) {
        let got: Vec<(usize, &str)> = got.iter().map(|e| (e.line, e.message.as_str())).collect();
        assert_eq!(got, want, "{input:?}");
    }

    /// Problems expected as (line, message fragment).
    fn check_fragments(input: &str, got: &[StanzaError], want: &[(usize, &str)]) {
        assert_eq!(got.len(), want.len(), "{input:?}: {got:?}");
        for (e, (line, frag)) in got.iter().zip(want) {
            assert!(e.line == *line && e.message.contains(frag), "{input:?}: {e:?} vs {line} {frag:?}");
        }
    }

    fn user(name: &str, uid: i64, gid: i64, gecos: Option<&str>, home: Option<&str>, shell: Option<&str>) -> User {
        let s = |v: Option<&str>| v.map(str::to_owned);
        User { name: name.into(), uid, gid, gecos: s(gecos), home: s(home), shell: s(shell) }
    }

    /// Ordinary files: what both libraries read alike, no problem.
    #[test]
    fn passwd_ordinary_lines() {
        let root = || user("root", 0, 0, Some("root"), Some("/root"), Some("/bin/bash"));
        let cases: Vec<Case<User>> = vec![
            ("", vec![], &[]),
            ("root:x:0:0:root:/root:/bin/bash\n", vec![root()], &[]),
            ("root:x:0:0:root:/root:/bin/bash\r\n\r\n", vec![root()], &[]),
            (
                "# comment\n\n   \n  # indented comment\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
                vec![user("nobody", 65534, 65534, Some("nobody"), Some("/nonexistent"), Some("/usr/sbin/nologin"))],
                &[],
            ),
            ("svc:x:10:20:::\n", vec![user("svc", 10, 20, None, None, None)], &[]),
            (
                "a:x:1:1:A User,Room 1,,:/home/a:/bin/sh\n",
                vec![user("a", 1, 1, Some("A User,Room 1,,"), Some("/home/a"), Some("/bin/sh"))],
                &[],
            ),
            // The largest id both read; leading zeros are nothing to either.
            ("max:x:4294967295:007:::\n", vec![user("max", 4294967295, 7, None, None, None)], &[]),
            // Markers of nss_compat with no fields: neither library reads an account.
            ("+\n-baduser\n+@admins\n-@staff\n", vec![], &[]),
        ];
        for (input, want, want_errors) in cases {
            let (got, errors) = parse_passwd(input);
            assert_eq!(got, want, "{input:?}");
            check_errors(input, &errors, want_errors);
        }
    }

    /// Lines glibc 2.36 and musl read differently, or that the agent read
    /// differently from both: each reading is a record, and a problem says
    /// what each library made of the line. Every outcome here was checked
    /// against glibc 2.36's fgetpwent and musl 1.2.3's.
    #[test]
    fn passwd_lines_as_glibc_and_musl_read_them() {
        let cases: Vec<Case<User>> = vec![
            // A NUL ends the record for both: no account "nulname\0junk".
            (
                "nulname\0junk:x:0:0::/root:/bin/sh\n",
                vec![],
                &[(
                    1,
                    "line skipped by glibc (no uid field) and musl (1 field, it needs 7); the record ends at its NUL byte",
                )],
            ),
            (
                "root:x:0:0::/root:/bin/sh\0:extra\n",
                vec![user("root", 0, 0, None, Some("/root"), Some("/bin/sh"))],
                &[],
            ),
            // glibc drops an id past 2^32-1; musl's wraps: a root on Alpine.
            (
                "wrap:x:4294967296:0::/root:/bin/sh\n",
                vec![user("wrap", 0, 0, None, Some("/root"), Some("/bin/sh"))],
                &[(
                    1,
                    "only musl reads account \"wrap\" with uid 0 (uid \"4294967296\" wraps at 2^32) from this line; \
                     glibc skips it: uid \"4294967296\" is out of range",
                )],
            ),
            (
                "big:x:99999999999999999999:1:::\n",
                vec![user("big", 1661992959, 1, None, None, None)],
                &[(
                    1,
                    "only musl reads account \"big\" with uid 1661992959 (uid \"99999999999999999999\" wraps at 2^32) \
                     from this line; glibc skips it: uid \"99999999999999999999\" is out of range",
                )],
            ),
            // Past 7 fields the shell is the rest of the line, to both.
            (
                "eight:x:0:0::/root:/bin/sh:extra\n",
                vec![user("eight", 0, 0, None, Some("/root"), Some("/bin/sh:extra"))],
                &[],
            ),
            (
                "many:x:1:1:g:/h:/s:::::::::::::::::\n",
                vec![user("many", 1, 1, Some("g"), Some("/h"), Some("/s:::::::::::::::::"))],
                &[],
            ),
            // glibc's strtoul takes a sign and leading blanks; musl's atou only digits.
            (
                "plus:x:+0:0::/root:/bin/sh\n",
                vec![user("plus", 0, 0, None, Some("/root"), Some("/bin/sh"))],
                &[(
                    1,
                    "only glibc reads account \"plus\" with uid 0 from this line; musl skips it: uid \"+0\" is not all digits",
                )],
            ),
            (
                "space:x: 0:0::/root:/bin/sh\n",
                vec![user("space", 0, 0, None, Some("/root"), Some("/bin/sh"))],
                &[(
                    1,
                    "only glibc reads account \"space\" with uid 0 from this line; musl skips it: uid \" 0\" is not all digits",
                )],
            ),
            (
                "negzero:x:-0:0:::\nneg:x:-1:0:::\nback:x:-18446744073709551615:0:::\n",
                vec![user("negzero", 0, 0, None, None, None), user("back", 1, 0, None, None, None)],
                &[
                    (
                        1,
                        "only glibc reads account \"negzero\" with uid 0 from this line; musl skips it: uid \"-0\" is not all digits",
                    ),
                    (2, "line skipped by glibc (uid \"-1\" is out of range) and musl (uid \"-1\" is not all digits)"),
                    (
                        3,
                        "only glibc reads account \"back\" with uid 1 from this line; \
                         musl skips it: uid \"-18446744073709551615\" is not all digits",
                    ),
                ],
            ),
            // musl reads an empty id as 0; glibc drops the line.
            (
                "x::0::/root:/bin/sh:\n",
                vec![user("x", 0, 0, Some("/root"), Some("/bin/sh"), None)],
                &[(
                    1,
                    "only musl reads account \"x\" with uid 0 (an empty gid is 0) from this line; glibc skips it: empty gid",
                )],
            ),
            (
                "empty:x::0::/root:/bin/sh\n",
                vec![user("empty", 0, 0, None, Some("/root"), Some("/bin/sh"))],
                &[(
                    1,
                    "only musl reads account \"empty\" with uid 0 (an empty uid is 0) from this line; glibc skips it: empty uid",
                )],
            ),
            // Neither reads these.
            (
                "a:x:abc:1:::\nb:x:0 :1:::\nc:x:0x10:1:::\n",
                vec![],
                &[
                    (1, "line skipped by glibc (uid \"abc\" is not a number) and musl (uid \"abc\" is not all digits)"),
                    (2, "line skipped by glibc (uid \"0 \" is not a number) and musl (uid \"0 \" is not all digits)"),
                    (
                        3,
                        "line skipped by glibc (uid \"0x10\" is not a number) and musl (uid \"0x10\" is not all digits)",
                    ),
                ],
            ),
            // glibc reads 4 to 6 fields, musl needs 7.
            (
                "six:x:0:0::/root\nfour:x:0:0\nthree:x:0\n",
                vec![user("six", 0, 0, None, Some("/root"), None), user("four", 0, 0, None, None, None)],
                &[
                    (
                        1,
                        "only glibc reads account \"six\" with uid 0 from this line; musl skips it: 6 fields, it needs 7",
                    ),
                    (
                        2,
                        "only glibc reads account \"four\" with uid 0 from this line; musl skips it: 4 fields, it needs 7",
                    ),
                    (3, "line skipped by glibc (no gid field) and musl (3 fields, it needs 7)"),
                ],
            ),
            // musl reads comments and keeps leading blanks in the name.
            (
                "#toor:x:0:0::/root:/bin/sh\n  sp:x:0:0::/r:/s\n",
                vec![
                    user("#toor", 0, 0, None, Some("/root"), Some("/bin/sh")),
                    user("sp", 0, 0, None, Some("/r"), Some("/s")),
                    user("  sp", 0, 0, None, Some("/r"), Some("/s")),
                ],
                &[
                    (1, "only musl reads account \"#toor\" with uid 0 from this line; glibc skips it: a comment"),
                    (
                        2,
                        "glibc and musl read different accounts from this line, a record for each: \
                         glibc \"sp\" with uid 0, musl \"  sp\" with uid 0",
                    ),
                ],
            ),
            // musl looks for the name's colon from the second byte: a line that starts with ':' shifts its fields.
            (
                ":x:5:0::/r:/s:x\n",
                vec![
                    user("", 5, 0, None, Some("/r"), Some("/s:x")),
                    user(":x", 0, 0, Some("/r"), Some("/s"), Some("x")),
                ],
                &[(
                    1,
                    "glibc and musl read different accounts from this line, a record for each: glibc \"\" with uid 5, \
                     musl \":x\" with uid 0 (its name runs to the second colon, as musl looks for one from the line's \
                     second byte; an empty gid is 0)",
                )],
            ),
            // ... and a NUL as the line's first byte is musl's whole name.
            (
                "\0evil:x:0:0::/r:/s\n",
                vec![user("", 0, 0, None, Some("/r"), Some("/s"))],
                &[(
                    1,
                    "only musl reads account \"\" with uid 0 (its name ends at the NUL byte the line starts with) \
                     from this line; glibc skips it: a line that starts with a NUL byte",
                )],
            ),
            // glibc moves a record no newline ends over its leading blanks, reading its last bytes twice.
            (
                "  evil:x:0:\0junk\nroot:x:0:0::/root:/bin/sh\n  tail:x:0:",
                vec![
                    user("evil", 0, 0, None, None, None),
                    user("root", 0, 0, None, Some("/root"), Some("/bin/sh")),
                    user("tail", 0, 0, None, None, None),
                ],
                &[
                    (
                        1,
                        "only glibc reads account \"evil\" with uid 0 (glibc moves a record no newline ends over its \
                         leading blanks and reads its last bytes twice) from this line; musl skips it: 4 fields, it \
                         needs 7; the record ends at its NUL byte",
                    ),
                    (
                        3,
                        "only glibc reads account \"tail\" with uid 0 (glibc moves a record no newline ends over its \
                         leading blanks and reads its last bytes twice) from this line; musl skips it: 3 fields, it \
                         needs 7 (musl drops the last byte of a last line without a newline)",
                    ),
                ],
            ),
            // musl drops the last byte of a last line without a newline.
            (
                "last:x:0:0::/r:",
                vec![user("last", 0, 0, None, Some("/r"), None)],
                &[(
                    1,
                    "only glibc reads account \"last\" with uid 0 from this line; musl skips it: 6 fields, it needs 7 \
                     (musl drops the last byte of a last line without a newline)",
                )],
            ),
            (
                "end:x:7:7::/r:/bin/sh",
                vec![
                    user("end", 7, 7, None, Some("/r"), Some("/bin/sh")),
                    user("end", 7, 7, None, Some("/r"), Some("/bin/s")),
                ],
                &[(
                    1,
                    "glibc and musl read different accounts from this line, a record for each: glibc \"end\" with \
                     uid 7, musl \"end\" with uid 7 (musl drops the last byte of a last line without a newline)",
                )],
            ),
            // Complete `+`/`-` lines are accounts to both parsers, but glibc's lookups skip them (files-pwd.c).
            (
                "+evil:x:0:0::/root:/bin/sh\n+::::::\n-baduser::::::\n",
                vec![
                    user("+evil", 0, 0, None, Some("/root"), Some("/bin/sh")),
                    user("+", 0, 0, None, None, None),
                    user("-baduser", 0, 0, None, None, None),
                ],
                &[
                    (
                        1,
                        "\"+evil\" is an NIS compat entry to glibc: its getpwnam and getpwuid skip names starting with + or -, musl's do not",
                    ),
                    (
                        2,
                        "\"+\" is an NIS compat entry to glibc: its getpwnam and getpwuid skip names starting with + or -, musl's do not",
                    ),
                    (
                        3,
                        "\"-baduser\" is an NIS compat entry to glibc: its getpwnam and getpwuid skip names starting with + or -, musl's do not",
                    ),
                ],
            ),
            // For a `+`/`-` name glibc reads an empty id as 0 too, unless the line ends there.
            (
                "+x:x::0::/r:/s\n-y:x:0:\n",
                vec![user("+x", 0, 0, None, Some("/r"), Some("/s"))],
                &[
                    (
                        1,
                        "\"+x\" is an NIS compat entry to glibc: its getpwnam and getpwuid skip names starting with + or -, musl's do not",
                    ),
                    (2, "line skipped by glibc (empty gid) and musl (4 fields, it needs 7)"),
                ],
            ),
        ];
        for (input, want, want_errors) in cases {
            let (got, errors) = parse_passwd(input);
            assert_eq!(got, want, "{input:?}");
            check_errors(input, &errors, want_errors);
        }
    }

    #[test]
    fn group_table() {
        let g = |name: &str, gid: i64, members: &[&str]| Group { name: name.into(), gid, members: members.join(",") };
        let cases: Vec<Case<Group>> = vec![
            ("", vec![], &[]),
            ("root:x:0:\n", vec![g("root", 0, &[])], &[]),
            (
                "sudo:x:27:alice,bob\r\nadm:x:4:syslog",
                vec![g("sudo", 27, &["alice", "bob"]), g("adm", 4, &["syslog"]), g("adm", 4, &["syslo"])],
                &[(
                    2,
                    "glibc and musl read different groups from this line, a record for each: glibc \"adm\" with gid 4 \
                     and members \"syslog\", musl \"adm\" with gid 4 and members \"syslo\" (musl drops the last byte \
                     of a last line without a newline)",
                )],
            ),
            ("g:x:5:a,,b,\n", vec![g("g", 5, &["a", "b"])], &[]),
            ("# c\n\n+\n-grp\nwheel:!:10:root\n", vec![g("wheel", 10, &["root"])], &[]),
            // The member list is the rest of the line, to both.
            ("more:x:1:a:b:c\n", vec![g("more", 1, &["a:b:c"])], &[]),
            // glibc reads 3 fields, musl needs 4.
            (
                "bad:x:1\nworse:x\n",
                vec![g("bad", 1, &[])],
                &[
                    (
                        1,
                        "only glibc reads group \"bad\" with gid 1 from this line; musl skips it: 3 fields, it needs 4",
                    ),
                    (2, "line skipped by glibc (no gid field) and musl (2 fields, it needs 4)"),
                ],
            ),
            (
                "w:x:4294967296:a\nh:x::\nx:x:x:\n",
                vec![g("w", 0, &["a"]), g("h", 0, &[])],
                &[
                    (
                        1,
                        "only musl reads group \"w\" with gid 0 and members \"a\" (gid \"4294967296\" wraps at 2^32) \
                         from this line; glibc skips it: gid \"4294967296\" is out of range",
                    ),
                    (
                        2,
                        "only musl reads group \"h\" with gid 0 (an empty gid is 0) from this line; glibc skips it: empty gid",
                    ),
                    (3, "line skipped by glibc (gid \"x\" is not a number) and musl (gid \"x\" is not all digits)"),
                ],
            ),
            // glibc skips the blanks before each member; to musl they are part of its name.
            (
                "wheel:x:10:root, alice\n",
                vec![g("wheel", 10, &["root", "alice"]), g("wheel", 10, &["root", " alice"])],
                &[(
                    1,
                    "glibc and musl read different groups from this line, a record for each: glibc \"wheel\" with gid \
                     10 and members \"root,alice\", musl \"wheel\" with gid 10 and members \"root, alice\"",
                )],
            ),
            (
                "nul\0x:x:0:\n+:::\n",
                vec![g("+", 0, &[])],
                &[
                    (
                        1,
                        "line skipped by glibc (no gid field) and musl (1 field, it needs 4); the record ends at its NUL byte",
                    ),
                    (
                        2,
                        "\"+\" is an NIS compat entry to glibc: its getgrnam and getgrgid skip names starting with + or -, musl's do not",
                    ),
                ],
            ),
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
            check_fragments(input, &errors, want_errors);
        }
        assert_eq!(parse_shadow(""), (vec![], vec![]));
    }

    #[test]
    fn shadow_records_end_at_a_nul() {
        let (got, errors) = parse_shadow("root:!:19000:0:99999:7:::\0junk\nbad:*:1\0:2:3:4:5:6:7\n");
        assert_eq!(got.iter().map(|s| (s.name.as_str(), s.locked)).collect::<Vec<_>>(), [("root", true)]);
        check_fragments("", &errors, &[(2, "expected 9 or 2 colon-separated fields, found 3")]);
    }

    #[test]
    fn password_fields_never_leak() {
        const HASH: &str = "$6$Ns4ltVal$Secr3tH4shB0dyXyZ";
        let shadow = format!(
            "alice:{HASH}:19500:0:99999:7:::\nbob:!{HASH}:19500:0:99999:7:::\nwrong:{HASH}:1:2\ncarol:{HASH}:oops:x:y:z:w:v:\n\
             {HASH}\n:{HASH}:1::::::\nold:{HASH}\ntoo:{HASH}:1:2:3:4:5:6:7:8:9\n"
        );
        let passwd = format!(
            "alice:{HASH}:1000:1000::/home/alice:/bin/sh\nbad:{HASH}:x:y\nuid:{HASH}:q:1:::\nsix:{HASH}:1:1::\n\
             wrap:{HASH}:4294967296:0:::\n  lead:{HASH}:1:1:::\n"
        );
        let group = format!("staff:{HASH}:50:alice\nbad:{HASH}\nthree:{HASH}:1\n");
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
        let (u, e) = parse_passwd(&passwd);
        let names: Vec<&str> = u.iter().map(|u| u.name.as_str()).collect();
        assert_eq!(names, ["alice", "six", "wrap", "lead", "  lead"]);
        assert_eq!(e.len(), 5, "{e:?}");
    }

    #[test]
    fn hostile_sizes_are_bounded() {
        // To musl a line of colons is the account ":" with uid 0 and the rest of the line as its shell.
        let colons = ":".repeat(10 * 1024 * 1024);
        let (u, e) = parse_passwd(&colons);
        assert_eq!(u.len(), 1);
        assert_eq!((u[0].name.as_str(), u[0].uid, u[0].shell.as_deref().map(str::len)), (":", 0, Some(MAX_VALUE)));
        assert_eq!(e.len(), 3, "{e:?}");
        assert!(e.iter().all(|e| e.message.len() < 400), "{e:?}");
        assert!(e[1].message.starts_with("shell of \":\" has 10485753 bytes, truncated to 65536"), "{e:?}");
        assert!(e[2].message.contains("where musl drops its last byte, was read as it is"), "{e:?}");

        let text = format!("a:x:1:1:{}:/h:/s\n", "é".repeat(MAX_VALUE));
        let (u, e) = parse_passwd(&text);
        let gecos = u[0].gecos.as_deref().unwrap_or_default();
        assert!(gecos.len() <= MAX_VALUE && gecos.len() > MAX_VALUE - 4);
        assert!(e.len() == 1 && e[0].message.contains("gecos of \"a\"") && e[0].message.contains("truncated"), "{e:?}");

        // A uid longer than what is kept of a field is still read whole, both ways: 10^n wraps to 0 in musl.
        let text = format!("z:x:{}7:0:::\nw:x:1{}:0:::\n", "0".repeat(2 * KEEP), "0".repeat(2 * KEEP));
        let (u, e) = parse_passwd(&text);
        assert_eq!(u.iter().map(|u| (u.name.as_str(), u.uid)).collect::<Vec<_>>(), [("z", 7), ("w", 0)]);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].message.starts_with("only musl reads account \"w\" with uid 0 (uid \"10000"), "{e:?}");

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

        // A line glibc or musl would change, too long to keep whole, is read as it is and said to be.
        let text = format!("  a:x:1:1:{}:/h:/s\0\n", "g".repeat(RAW));
        let (u, e) = parse_passwd(&text);
        assert_eq!(u.len(), 2);
        assert!(e.iter().any(|e| e.message.contains("that no newline ends, where glibc repeats")), "{e:?}");
    }

    /// Read a chunk at a time, split anywhere (in a field, between `\r` and
    /// `\n`, in leading blanks), the files give what they give whole.
    #[test]
    fn fed_in_pieces_it_reads_what_it_reads_whole() {
        let long = "é".repeat(MAX_VALUE);
        let passwd = format!(
            "root:x:0:0:root:/root:/bin/bash\r\n\r\n# c:x\n+\na:x:1:1:{long}:/h:/s\r\nb:x:2\n\
             c:x:3:3:::::::::::\n:x:1:1:::\n  n:x:0:\0x\nlast:x:9:9:::/bin/sh\r"
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
        assert_eq!(names, ["root", "a", "c", "", "n", "last", "last"]);
        assert_eq!(users[2].shell.as_deref(), Some("::::::::"));
        assert_eq!(users[5].shell.as_deref(), Some("/bin/sh\r"), "a \\r ends a line only before \\n");
        assert_eq!(users[6].shell.as_deref(), Some("/bin/sh"), "musl drops the file's last byte");
        assert_eq!(users[1].gecos.as_deref().map(str::len), Some(MAX_VALUE));
        assert_eq!(errors.len(), 5, "{errors:?}");
        let (groups, _) = parse_group(&group);
        assert_eq!(groups[0].members, "a,b");
        assert_eq!(groups[1].members.len(), MAX_VALUE - 1);
    }

    /// What the host's glibc reads of a passwd file (`getent -s files passwd`,
    /// with the file bind-mounted over /etc/passwd in a private mount
    /// namespace) is what the parser says glibc reads, line for line.
    #[test]
    fn glibc_reads_what_getent_reads() {
        let lines: &[&[u8]] = &[
            b"root:x:0:0:root:/root:/bin/bash\n",
            b"nulname\0junk:x:0:0::/root:/bin/sh\n",
            b"wrap:x:4294967296:0::/root:/bin/sh\n",
            b"max:x:4294967295:0::/r:/s\n",
            b"plus:x:+0:0::/r:/s\n",
            b"space:x: 0:0::/r:/s\n",
            b"tab:x:\t7:8::/r:/s\n",
            b"empty:x::0::/r:/s\n",
            b"neg:x:-1:0::/r:/s\n",
            b"negzero:x:-0:0::/r:/s\n",
            b"back:x:-18446744073709551615:0::/r:/s\n",
            b"hex:x:0x10:0::/r:/s\n",
            b"trail:x:0 :0::/r:/s\n",
            b"six:x:0:0::/r\n",
            b"four:x:0:0\n",
            b"eight:x:0:0::/root:/bin/sh:extra\n",
            b"three:x:0\n",
            b"#toor:x:0:0::/r:/s\n",
            b"  lead:x:3:3::/r:/s\n",
            b":x:5:0::/r:/s:x\n",
            b"\0evil:x:0:0::/r:/s\n",
            b"  dup:x:0:\0junk\n",
            b"nl:x:0:0::/r:/s\0more\n",
            b"  tail:x:0:",
        ];
        let text: Vec<u8> = lines.concat();
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("passwd");
        std::fs::write(&file, &text).unwrap();
        let script = format!("mount --bind '{}' /etc/passwd && exec getent -s files passwd", file.display());
        let out = match std::process::Command::new("unshare").args(["--mount", "sh", "-c", &script]).output() {
            Ok(out) if out.status.success() => out,
            Ok(out) => {
                println!(
                    "skipping: unshare --mount with a bind mount failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                return;
            }
            Err(e) => return println!("skipping: cannot run unshare: {e}"),
        };
        let getent: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect();
        // getent cannot print an entry with a colon in a field (putpwent fails with EINVAL and says so).
        let unprintable = String::from_utf8_lossy(&out.stderr).matches("error writing passwd entry").count();
        // What the parser says glibc reads, printed as getent prints it.
        fn glibc_only(gl: &Line<'_>, _: &Line<'_>, _: &mut Errors, each: &mut dyn FnMut(User)) {
            if let Reading::Reads(p, _) = glibc_passwd(gl) {
                let t = |t: &Text| t.s.clone();
                let (uid, gid) = (p.uid.into(), p.gid.into());
                each(User {
                    name: t(&p.name),
                    uid,
                    gid,
                    gecos: Some(t(&p.gecos)),
                    home: Some(t(&p.home)),
                    shell: Some(t(&p.shell)),
                });
            }
        }
        let (ours, _) = Records::new(glibc_only).parse(&text);
        let (ours, colons): (Vec<String>, Vec<String>) = ours
            .iter()
            .map(|u| {
                let s = |v: &Option<String>| v.clone().unwrap_or_default();
                format!("{}:x:{}:{}:{}:{}:{}", u.name, u.uid, u.gid, s(&u.gecos), s(&u.home), s(&u.shell))
            })
            .partition(|l| l.matches(':').count() == 6);
        assert_eq!(getent, ours);
        assert_eq!(colons, ["eight:x:0:0::/root:/bin/sh:extra", ":x:5:0::/r:/s:x"]);
        assert_eq!(unprintable, colons.len());
        // And each account either library reads is a record.
        let (records, _) = parse_passwd(std::str::from_utf8(&text).unwrap());
        let roots: Vec<&str> = records.iter().filter(|u| u.uid == 0).map(|u| u.name.as_str()).collect();
        assert_eq!(
            roots,
            [
                "root", "wrap", "plus", "space", "empty", "negzero", "six", "four", "eight", "#toor", ":x", "", "dup",
                "nl", "tail"
            ]
        );
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
            assert_eq!((root.uid, root.gid, root.shell.as_deref()), (0, 0, Some("/bin/bash")));
            assert!(users.iter().any(|u| u.name == "nobody" && u.uid == 65534));
        }
        if let Some(text) = read("group") {
            let (groups, errors) = parse_group(&text);
            assert!(errors.is_empty(), "{errors:?}");
            assert!(groups.iter().any(|g| g.name == "root" && g.gid == 0));
        }
        if let Some(text) = read("shadow") {
            let (shadow, errors) = parse_shadow(&text);
            assert!(errors.is_empty(), "{errors:?}");
            let root = shadow.iter().find(|s| s.name == "root").expect("root in shadow");
            assert!(!root.empty_password);
        }
    }
}
