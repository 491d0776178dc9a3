//! `users`: accounts from /etc/passwd joined with /etc/shadow's password
//! state. Parsed here, never through NSS; the hash itself is never kept.

use std::collections::HashMap;

use periscope_proto::tables::USERS;

use super::accounts::{parse_passwd, parse_shadow};
use super::{Scope, Sink};

const C: &str = "users";
pub const PASSWD: &str = "/etc/passwd";
pub const SHADOW: &str = "/etc/shadow";
const MAX_BYTES: u64 = 16 << 20;

pub fn collect(scope: &Scope, out: &mut Sink) {
    let passwd = match scope.root.read_limited(PASSWD, MAX_BYTES) {
        Ok(b) => b,
        Err(e) if e.is_not_found() => return,
        Err(e) => return out.read_error(C, PASSWD, &e),
    };
    let (users, errors) = parse_passwd(&String::from_utf8_lossy(&passwd));
    for e in errors {
        out.error(C, Some(PASSWD), &format!("line {}: {}", e.line, e.message));
    }
    let mut shadow = HashMap::new();
    match scope.root.read_limited(SHADOW, MAX_BYTES) {
        Ok(b) => {
            let (entries, errors) = parse_shadow(&String::from_utf8_lossy(&b));
            for e in errors {
                out.error(C, Some(SHADOW), &format!("line {}: {}", e.line, e.message));
            }
            shadow.extend(entries.into_iter().map(|s| (s.name.clone(), s)));
        }
        Err(e) if e.is_not_found() => {}
        Err(e) => out.read_error(C, SHADOW, &e),
    }
    for u in &users {
        let s = shadow.get(&u.name);
        out.row(
            &USERS,
            &[
                ("name", (&u.name).into()),
                ("uid", u.uid.into()),
                ("gid", u.gid.into()),
                ("gecos", u.gecos.as_ref().into()),
                ("home", u.home.as_ref().into()),
                ("shell", u.shell.as_ref().into()),
                ("password_set", s.map(|s| s.password_set).into()),
                ("empty_password", s.map(|s| s.empty_password).into()),
                ("locked", s.map(|s| s.locked).into()),
            ],
        );
    }
}
