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
    /// Supplementary members, in file order; empty names are dropped.
    pub members: Vec<String>,
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

/// Parses `/etc/passwd`. Lines without exactly 7 fields or with an empty name
/// are reported and skipped; a non-numeric uid or gid is reported and `None`.
pub fn parse_passwd(text: &str) -> (Vec<User>, Vec<StanzaError>) {
    records(text, "passwd", &[7], |f, line, errors| {
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
    })
}

/// Parses `/etc/group`. Lines without exactly 4 fields or with an empty name
/// are reported and skipped; a non-numeric gid is reported and `None`.
pub fn parse_group(text: &str) -> (Vec<Group>, Vec<StanzaError>) {
    records(text, "group", &[4], |f, line, errors| {
        let name = name(f[0], line, errors)?;
        let gid = id(f[2], "gid", &name, line, errors);
        let members = capped(f[3], "member list", &name, line, errors);
        let members = members.split(',').filter(|m| !m.is_empty()).map(str::to_owned).collect();
        Some(Group { name, gid, members })
    })
}

/// Parses `/etc/shadow`. Lines with neither 9 fields nor the old 2-field form,
/// or with an empty name, are reported and skipped; non-numeric day counts
/// are reported and `None` (empty ones are just `None`).
pub fn parse_shadow(text: &str) -> (Vec<Shadow>, Vec<StanzaError>) {
    records(text, "shadow", &[9, 2], |f, line, errors| {
        let name = name(f[0], line, errors)?;
        let password = f[1];
        let mut days = |i: usize, what: &str| {
            let v = f[i];
            if v.is_empty() {
                return None;
            }
            match digits(v) {
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
    })
}

/// Most fields in any of the formats; lines are split into at most this many.
const MOST_FIELDS: usize = 9;

/// The shared line loop: skips blanks, comments and NIS compat entries, checks
/// the field count, and hands the fields (missing ones empty) to `make`.
fn records<'a, T>(
    text: &'a str,
    file: &str,
    counts: &[usize],
    mut make: impl FnMut(&[&'a str; MOST_FIELDS], usize, &mut Errors) -> Option<T>,
) -> (Vec<T>, Vec<StanzaError>) {
    let mut out = Vec::new();
    let mut errors = Errors::default();
    for (i, line) in text.lines().enumerate() {
        let lineno = i + 1;
        let line = line.trim_start();
        if line.is_empty() || line.starts_with(['#', '+', '-']) {
            continue;
        }
        let mut fields = [""; MOST_FIELDS];
        let mut n = 0;
        for field in line.split(':') {
            if n == MOST_FIELDS {
                n += 1;
                break;
            }
            fields[n] = field;
            n += 1;
        }
        if !counts.contains(&n) {
            let expected = counts.iter().map(usize::to_string).collect::<Vec<_>>().join(" or ");
            let found = if n > MOST_FIELDS { format!("more than {MOST_FIELDS}") } else { n.to_string() };
            errors.push(lineno, || {
                format!("{file}: expected {expected} colon-separated fields, found {found}; line skipped")
            });
            continue;
        }
        if let Some(record) = make(&fields, lineno, &mut errors) {
            out.push(record);
        }
    }
    (out, errors.into_vec())
}

/// The record's name, or `None` (reported) when empty.
fn name(field: &str, line: usize, errors: &mut Errors) -> Option<String> {
    if field.is_empty() {
        errors.push(line, || "empty name; line skipped".to_string());
        return None;
    }
    Some(capped(field, "name", "", line, errors).to_owned())
}

/// A uid or gid: `None` (reported) unless a decimal number.
fn id(field: &str, what: &str, name: &str, line: usize, errors: &mut Errors) -> Option<i64> {
    let n = digits(field);
    if n.is_none() {
        errors.push(line, || format!("{what} of {name:?} is not a number: {:?}", truncate(field, 40)));
    }
    n
}

/// A non-negative decimal number (no sign, no spaces) that fits in i64.
fn digits(field: &str) -> Option<i64> {
    if field.is_empty() || !field.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    field.parse().ok()
}

/// An optional text field: `None` when empty, capped otherwise.
fn kept(field: &str, what: &str, name: &str, line: usize, errors: &mut Errors) -> Option<String> {
    Some(capped(field, what, name, line, errors)).filter(|v| !v.is_empty()).map(str::to_owned)
}

/// `field`, cut to [`MAX_VALUE`] bytes at a char boundary (reported if cut).
fn capped<'a>(field: &'a str, what: &str, name: &str, line: usize, errors: &mut Errors) -> &'a str {
    let kept = cut(field, MAX_VALUE);
    if kept.len() < field.len() {
        errors.push(line, || {
            let whose = if name.is_empty() { String::new() } else { format!(" of {:?}", truncate(name, 40)) };
            format!("{what}{whose} has {} bytes, truncated to {}", field.len(), kept.len())
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
            members: members.iter().map(|m| m.to_string()).collect(),
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
        assert_eq!(g[0].members.len(), MAX_VALUE / 2);
        assert_eq!(e.len(), 1);

        let (_, e) = parse_group(&"?\n".repeat(5000));
        assert_eq!(e.len(), MAX_ERRORS + 1);
        assert!(
            e[MAX_ERRORS].line == MAX_ERRORS + 1 && e[MAX_ERRORS].message.starts_with("4000 more"),
            "{:?}",
            e[MAX_ERRORS]
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
