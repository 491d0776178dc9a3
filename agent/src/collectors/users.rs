//! `users`: accounts from /etc/passwd joined with /etc/shadow's password
//! state. Parsed here, never through NSS; the hash itself is never kept.
//! A row is an account glibc or musl reads from a line, with the uid that
//! library uses: a line they read differently gives each one's account and a
//! `crawl_errors` row saying what each made of it (see [`super::accounts`]).
//!
//! Both files are read as they come (see [`Records`]): what shadow says of
//! each name is kept compactly ([`PasswordStates`]), then each account's row
//! is made as its passwd line is read.

use std::hash::BuildHasher;

use periscope_proto::tables::USERS;

use super::accounts::{Records, Shadow, User};
use super::{Scope, Sink};

const C: &str = "users";
pub const PASSWD: &str = "/etc/passwd";
pub const SHADOW: &str = "/etc/shadow";
const MAX_BYTES: u64 = 16 << 20;

/// Shadow entries whose password state is kept (8 bytes each); past it, an
/// account's state is unknown (NULL) and a `crawl_errors` row says so.
pub const MAX_SHADOW_ENTRIES: usize = 1 << 20;

/// What /etc/shadow says of each name's password, 8 bytes a name: a hash of
/// the name keyed per map (an image cannot pick colliding names) and its
/// state in the low 2 bits. Of two entries for one name the later one counts.
#[derive(Default)]
pub struct PasswordStates {
    key: std::collections::hash_map::RandomState,
    entries: Vec<u64>,
    dropped: usize,
}

/// (password_set, empty_password, locked) by state.
const STATES: [(bool, bool, bool); 4] =
    [(true, false, false), (false, true, false), (false, false, true), (false, false, false)];

impl PasswordStates {
    fn insert(&mut self, s: &Shadow) {
        if self.entries.len() >= MAX_SHADOW_ENTRIES {
            self.dropped += 1;
            return;
        }
        let state = STATES.iter().position(|&t| t == (s.password_set, s.empty_password, s.locked)).unwrap_or(3);
        self.entries.push(self.key.hash_one(&s.name) << 2 | state as u64);
    }

    fn seal(&mut self) {
        self.entries.sort_by_key(|e| e >> 2);
    }

    /// (password_set, empty_password, locked) of `name`, if shadow lists it (call [`Self::seal`] first).
    fn get(&self, name: &str) -> Option<(bool, bool, bool)> {
        let h = self.key.hash_one(name) << 2 >> 2;
        // The first entry for a name, as glibc's and musl's getspnam take it (the sort is stable).
        let start = self.entries.partition_point(|e| e >> 2 < h);
        let e = self.entries.get(start).filter(|e| *e >> 2 == h)?;
        Some(STATES[(e & 3) as usize])
    }
}

pub fn collect(scope: &Scope, out: &mut Sink) {
    let mut states = PasswordStates::default();
    let mut parser = Records::shadow();
    let read = scope.root.stream(SHADOW, MAX_BYTES, |chunk| parser.feed(chunk, &mut |s| states.insert(&s)));
    // Shadow's problems are reported after passwd's, and not at all without a passwd.
    let (shadow_errors, shadow_failed) = match read {
        Ok(_) => (parser.finish(&mut |s| states.insert(&s)), None),
        Err(e) if e.is_not_found() => (vec![], None),
        Err(e) => (parser.abort(), Some(e)),
    };
    states.seal();

    let mut parser = Records::passwd();
    let mut row = |u: User| {
        let s = states.get(&u.name);
        out.row(
            &USERS,
            &[
                ("name", (&u.name).into()),
                ("uid", u.uid.into()),
                ("gid", u.gid.into()),
                ("gecos", u.gecos.as_ref().into()),
                ("home", u.home.as_ref().into()),
                ("shell", u.shell.as_ref().into()),
                ("password_set", s.map(|s| s.0).into()),
                ("empty_password", s.map(|s| s.1).into()),
                ("locked", s.map(|s| s.2).into()),
            ],
        );
    };
    let read = scope.root.stream(PASSWD, MAX_BYTES, |chunk| parser.feed(chunk, &mut row));
    let errors = match read {
        Ok(_) => parser.finish(&mut row),
        Err(e) if e.is_not_found() => return,
        Err(e) => {
            out.read_error(C, PASSWD, &e);
            parser.abort()
        }
    };
    for e in errors {
        out.error(C, Some(PASSWD), &format!("line {}: {}", e.line, e.message));
    }
    if let Some(e) = shadow_failed {
        out.read_error(C, SHADOW, &e);
    }
    for e in shadow_errors {
        out.error(C, Some(SHADOW), &format!("line {}: {}", e.line, e.message));
    }
    if states.dropped > 0 {
        let message = format!(
            "more than {MAX_SHADOW_ENTRIES} entries; the password state of the {} past them is not kept",
            states.dropped
        );
        out.error(C, Some(SHADOW), &message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rows this collector makes of the root at `root`, as printed.
    fn collected(root: &std::path::Path) -> Vec<serde_json::Value> {
        let common =
            crate::encode::Common { host: "h".into(), scope: "image".into(), scope_id: "x".into(), crawl_time_us: 0 };
        let root = crate::rootfs::Root::open(root).unwrap();
        let scope = Scope { common: common.clone(), root, config: Default::default(), app_files: Default::default() };
        let mut sink = Sink::new(common);
        collect(&scope, &mut sink);
        let mut text = Vec::new();
        crate::print::print_json_lines(&sink.finish(), &mut text).unwrap();
        String::from_utf8(text).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    /// Each account gets what shadow says of its name (the first of two
    /// entries, as getspnam takes it), NULLs where shadow does not list it.
    #[test]
    fn accounts_joined_with_their_shadow_state() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("etc")).unwrap();
        let names = ["set", "locked", "empty", "star", "twice", "absent"];
        let passwd: String = names.iter().enumerate().map(|(i, n)| format!("{n}:x:{i}:{i}:::\n")).collect();
        std::fs::write(tmp.path().join("etc/passwd"), passwd).unwrap();
        let shadow =
            "set:$6$x:1::::::\nlocked:!$6$x:1::::::\nempty::1::::::\nstar:*:1::::::\ntwice::1::::::\ntwice:!:1::::::\n";
        std::fs::write(tmp.path().join("etc/shadow"), shadow).unwrap();
        let rows = collected(tmp.path());
        let got: Vec<(String, serde_json::Value, serde_json::Value, serde_json::Value)> = rows
            .iter()
            .filter(|r| r["table"] == "users")
            .map(|r| {
                (
                    r["name"].as_str().unwrap().to_string(),
                    r["password_set"].clone(),
                    r["empty_password"].clone(),
                    r["locked"].clone(),
                )
            })
            .collect();
        let j = |b: Option<bool>| b.map_or(serde_json::Value::Null, serde_json::Value::Bool);
        let want: Vec<_> = [
            ("set", Some(true), Some(false), Some(false)),
            ("locked", Some(false), Some(false), Some(true)),
            ("empty", Some(false), Some(true), Some(false)),
            ("star", Some(false), Some(false), Some(false)),
            // The empty password listed first is what the system sees, not the lock after it.
            ("twice", Some(false), Some(true), Some(false)),
            ("absent", None, None, None),
        ]
        .into_iter()
        .map(|(n, a, b, c)| (n.to_string(), j(a), j(b), j(c)))
        .collect();
        assert_eq!(got, want);
        assert!(!rows.iter().any(|r| r["table"] == "crawl_errors"), "{rows:?}");
    }

    /// The `users` rows and `crawl_errors` messages of a root whose /etc/passwd is `passwd`.
    fn users_of(
        passwd: &[u8],
    ) -> (Vec<(String, serde_json::Value, serde_json::Value, serde_json::Value)>, Vec<String>) {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("etc")).unwrap();
        std::fs::write(tmp.path().join("etc/passwd"), passwd).unwrap();
        let rows = collected(tmp.path());
        let users = rows
            .iter()
            .filter(|r| r["table"] == "users")
            .map(|r| (r["name"].as_str().unwrap().to_string(), r["uid"].clone(), r["gid"].clone(), r["shell"].clone()))
            .collect();
        let errors = rows
            .iter()
            .filter(|r| r["table"] == "crawl_errors")
            .map(|r| {
                assert_eq!((&r["collector"], &r["path"]), (&serde_json::json!("users"), &serde_json::json!(PASSWD)));
                r["message"].as_str().unwrap().to_string()
            })
            .collect();
        (users, errors)
    }

    /// Regression: /etc/passwd lines that glibc 2.36 or musl read otherwise
    /// than the agent did, so that an image could hide a uid-0 account from
    /// `SELECT ... FROM users WHERE uid = 0` or make one up. Each row is an
    /// account one of them reads, with the uid it reads; where they differ a
    /// `crawl_errors` row says what each makes of the line.
    #[test]
    fn users_rows_are_the_accounts_glibc_or_musl_read() {
        let row = |name: &str, uid: i64, shell: &str| (name.to_string(), uid.into(), 0.into(), shell.into());
        type Case = (
            &'static [u8],
            Vec<(String, serde_json::Value, serde_json::Value, serde_json::Value)>,
            &'static [&'static str],
        );
        let cases: Vec<Case> = vec![
            // Ordinary lines: one row each, no error.
            (
                b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:0::/nonexistent:/usr/sbin/nologin\n",
                vec![row("root", 0, "/bin/sh"), row("nobody", 65534, "/usr/sbin/nologin")],
                &[],
            ),
            // The record ends at the NUL: no account named "nulname\0junk".
            (
                b"nulname\0junk:x:0:0::/root:/bin/sh\n",
                vec![],
                &[
                    "line 1: line skipped by glibc (no uid field) and musl (1 field, it needs 7); the record ends at its NUL byte",
                ],
            ),
            // glibc drops the line, musl's uid wraps to 0: a root on Alpine.
            (
                b"wrap:x:4294967296:0::/root:/bin/sh\n",
                vec![row("wrap", 0, "/bin/sh")],
                &[
                    "line 1: only musl reads account \"wrap\" with uid 0 (uid \"4294967296\" wraps at 2^32) from this line; \
                   glibc skips it: uid \"4294967296\" is out of range",
                ],
            ),
            // A uid-0 account to both: the shell is the rest of the line.
            (b"eight:x:0:0::/root:/bin/sh:extra\n", vec![row("eight", 0, "/bin/sh:extra")], &[]),
            // glibc's strtoul reads 0; musl skips the line.
            (
                b"plus:x:+0:0::/root:/bin/sh\nspace:x: 0:0::/root:/bin/sh\n",
                vec![row("plus", 0, "/bin/sh"), row("space", 0, "/bin/sh")],
                &[
                    "line 1: only glibc reads account \"plus\" with uid 0 from this line; musl skips it: uid \"+0\" is not all digits",
                    "line 2: only glibc reads account \"space\" with uid 0 from this line; musl skips it: uid \" 0\" is not all digits",
                ],
            ),
            // musl reads an empty uid as 0; glibc skips the line.
            (
                b"empty:x::0::/root:/bin/sh\n",
                vec![row("empty", 0, "/bin/sh")],
                &[
                    "line 1: only musl reads account \"empty\" with uid 0 (an empty uid is 0) from this line; glibc skips it: empty uid",
                ],
            ),
            // Neither reads an account: no row with a NULL uid.
            (
                b"a:x:abc:0::/root:/bin/sh\n",
                vec![],
                &[
                    "line 1: line skipped by glibc (uid \"abc\" is not a number) and musl (uid \"abc\" is not all digits)",
                ],
            ),
        ];
        for (passwd, want_users, want_errors) in cases {
            let (users, errors) = users_of(passwd);
            assert_eq!(users, want_users, "{:?}", String::from_utf8_lossy(passwd));
            assert_eq!(errors, want_errors, "{:?}", String::from_utf8_lossy(passwd));
        }
    }

    /// A shadow of more names than are kept costs [`MAX_SHADOW_ENTRIES`]
    /// entries: the names past them have no password state, and an error says so.
    #[test]
    fn shadow_names_past_the_limit_are_counted_not_kept() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("etc")).unwrap();
        let last = MAX_SHADOW_ENTRIES + 1;
        std::fs::write(tmp.path().join("etc/passwd"), format!("u0:x:0:0:::\nu{last}:x:1:1:::\n")).unwrap();
        let shadow: String = (0..=last).map(|i| format!("u{i}:!\n")).collect();
        std::fs::write(tmp.path().join("etc/shadow"), shadow).unwrap();
        let rows = collected(tmp.path());
        let locked: Vec<_> = rows.iter().filter(|r| r["table"] == "users").map(|r| r["locked"].clone()).collect();
        assert_eq!(locked, [serde_json::Value::Bool(true), serde_json::Value::Null]);
        let errors: Vec<&str> =
            rows.iter().filter(|r| r["table"] == "crawl_errors").map(|r| r["message"].as_str().unwrap()).collect();
        assert!(errors.len() == 1 && errors[0].contains("the 2 past them is not kept"), "{errors:?}");
    }
}
