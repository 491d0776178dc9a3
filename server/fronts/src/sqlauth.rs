//! Who may query: SQL users with passwords (`--sql-user NAME:PASSWORD`, or
//! PERISCOPE_SQL_USERS="alice:pw1,bob:pw2"), checked with HTTP Basic
//! credentials; a successful check hands out a bearer token (Flight SQL's
//! handshake) that later calls carry instead.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use sha2::{Digest, Sha256};
use tonic::Status;
use tonic::metadata::MetadataMap;

use crate::throttle::Throttle;

/// How long a bearer token from a handshake stays valid.
pub const TOKEN_TTL: Duration = Duration::from_secs(12 * 3600);

#[derive(Default)]
pub struct SqlUsers {
    /// User name -> SHA-256 of the password.
    users: HashMap<String, [u8; 32]>,
    tokens: Mutex<HashMap<String, (String, Instant)>>,
    /// Backoff for wrong passwords, per source address.
    throttle: crate::throttle::Throttle,
    /// User name -> what it may read; when empty, every user reads everything.
    scopes: HashMap<String, std::sync::Arc<periscope_query::scope::ReadScope>>,
}

impl std::fmt::Debug for SqlUsers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<_> = self.users.keys().collect();
        names.sort();
        f.debug_struct("SqlUsers").field("users", &names).finish_non_exhaustive()
    }
}

fn digest(password: &str) -> [u8; 32] {
    Sha256::digest(password.as_bytes()).into()
}

impl SqlUsers {
    /// Parses `NAME:PASSWORD` entries.
    pub fn parse<'a>(entries: impl IntoIterator<Item = &'a str>) -> Result<SqlUsers, String> {
        let mut users = HashMap::new();
        for e in entries {
            let (name, password) =
                e.split_once(':').ok_or_else(|| format!("SQL user {e:?}: expected NAME:PASSWORD"))?;
            if name.is_empty() || password.is_empty() {
                return Err(format!("SQL user {name:?}: empty name or password"));
            }
            users.insert(name.to_string(), digest(password));
        }
        Ok(SqlUsers { users, tokens: Mutex::default(), throttle: Default::default(), scopes: HashMap::new() })
    }

    /// These users, confined to what they may read: `NAME=PATTERN[|PATTERN…]`
    /// entries, each pattern a host glob (`web-*`, or `host:web-*`), a
    /// Kubernetes namespace (`ns:team-a*`) or a container label
    /// (`label:app=web*`); `*` any run of characters, `?` one. Entries for
    /// one user add up. Once any user has a scope every user needs one
    /// (`NAME=*` reads everything), so a user left out reads nothing rather than
    /// everything.
    pub fn with_scopes<'a>(mut self, entries: impl IntoIterator<Item = &'a str>) -> Result<SqlUsers, String> {
        use periscope_query::scope::ReadScope;
        let mut scopes: HashMap<String, ReadScope> = HashMap::new();
        for e in entries {
            let (name, patterns) =
                e.split_once('=').ok_or_else(|| format!("SQL scope {e:?}: expected NAME=PATTERN[|PATTERN…]"))?;
            if !self.users.contains_key(name) {
                return Err(format!("SQL scope {e:?}: no SQL user {name:?} (--sql-user)"));
            }
            let scope = scopes.entry(name.to_string()).or_default();
            let before = scope.clone();
            for p in patterns.split('|').filter(|p| !p.is_empty()) {
                scope.add(p).map_err(|why| format!("SQL scope {e:?}: {why}"))?;
            }
            if *scope == before {
                return Err(format!("SQL scope {e:?}: no pattern"));
            }
        }
        if !scopes.is_empty() {
            let mut open: Vec<&String> = self.users.keys().filter(|u| !scopes.contains_key(*u)).collect();
            open.sort();
            if let Some(u) = open.first() {
                return Err(format!(
                    "SQL user {u:?} has no --sql-scope while other users have one; \
                     give it {u}=* to let it read every host"
                ));
            }
        }
        self.scopes = scopes.into_iter().map(|(u, s)| (u, std::sync::Arc::new(s))).collect();
        Ok(self)
    }

    /// What `user` may read, when it is confined (None: everything).
    pub fn scope(&self, user: &str) -> Option<std::sync::Arc<periscope_query::scope::ReadScope>> {
        self.scopes.get(user).filter(|s| !s.is_everything()).cloned()
    }

    /// Whether any user is configured (if not, the SQL fronts that need one refuse to start).
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// Checks a user name and password sent from `from`: a source that
    /// guessed wrong too often is refused for a while without a check.
    pub fn check(&self, user: &str, password: &str, from: Option<IpAddr>) -> Result<String, Status> {
        self.throttle.check(from).map_err(|wait| Status::unavailable(Throttle::refusal(from, wait)))?;
        let checked = self.check_password(user, password);
        if checked.is_err() {
            self.throttle.failed(from);
        }
        checked
    }

    fn check_password(&self, user: &str, password: &str) -> Result<String, Status> {
        let want = self.users.get(user);
        let got = digest(password);
        // Compare digests without an early exit, user known or not.
        let same = want.map(|w| w.iter().zip(got.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0);
        match same {
            Some(true) => Ok(user.to_string()),
            _ => Err(Status::unauthenticated(format!("wrong user name or password for SQL user {user:?}"))),
        }
    }

    /// Checks `Authorization: Basic …` (padding optional, as Go's flight client omits it).
    pub fn check_basic(&self, header: &str, from: Option<IpAddr>) -> Result<String, Status> {
        let b64 = header.strip_prefix("Basic ").ok_or_else(|| Status::unauthenticated("expected Basic credentials"))?;
        let raw = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(b64.trim().trim_end_matches('='))
            .map_err(|_| Status::unauthenticated("Basic credentials are not base64"))?;
        let raw = String::from_utf8(raw).map_err(|_| Status::unauthenticated("Basic credentials are not UTF-8"))?;
        let (user, password) =
            raw.split_once(':').ok_or_else(|| Status::unauthenticated("Basic credentials without a ':'"))?;
        self.check(user, password, from)
    }

    /// A new bearer token for `user`.
    pub fn issue(&self, user: &str) -> String {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).expect("system random source");
        let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let mut tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        tokens.retain(|_, (_, at)| at.elapsed() < TOKEN_TTL);
        tokens.insert(token.clone(), (user.to_string(), Instant::now()));
        token
    }

    /// The user a call's `authorization` metadata (Bearer token or Basic
    /// credentials, sent from `from`) identifies.
    pub fn identify(&self, metadata: &MetadataMap, from: Option<IpAddr>) -> Result<String, Status> {
        let header = metadata
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| Status::unauthenticated("SQL access needs credentials: a user name and password"))?;
        if let Some(token) = header.strip_prefix("Bearer ") {
            let tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
            return match tokens.get(token.trim()) {
                Some((user, at)) if at.elapsed() < TOKEN_TTL => Ok(user.clone()),
                Some(_) => Err(Status::unauthenticated("bearer token expired; authenticate again")),
                None => Err(Status::unauthenticated("unknown bearer token; authenticate again")),
            };
        }
        self.check_basic(header, from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl SqlUsers {
        fn identify_md(&self, m: &MetadataMap) -> Result<String, Status> {
            self.identify(m, None)
        }
    }

    fn md(v: &str) -> MetadataMap {
        let mut m = MetadataMap::new();
        m.insert("authorization", v.parse().unwrap());
        m
    }

    #[test]
    fn basic_with_or_without_padding_then_bearer() {
        let users = SqlUsers::parse(["alice:s3cret", "bob:pw"]).unwrap();
        // "alice:s3cret" is 12 bytes: no padding either way; "bob:pw" (6) neither; "bob:pwx" needs one '='.
        let users2 = SqlUsers::parse(["bob:pwxy"]).unwrap();
        let e = base64::engine::general_purpose::STANDARD;
        assert_eq!(users.identify_md(&md(&format!("Basic {}", e.encode("alice:s3cret")))).unwrap(), "alice");
        let padded = e.encode("bob:pwxy");
        assert!(padded.ends_with('='));
        assert_eq!(users2.identify_md(&md(&format!("Basic {padded}"))).unwrap(), "bob");
        assert_eq!(users2.identify_md(&md(&format!("Basic {}", padded.trim_end_matches('=')))).unwrap(), "bob");
        let wrong = users.identify_md(&md(&format!("Basic {}", e.encode("alice:nope")))).unwrap_err();
        assert_eq!(wrong.code(), tonic::Code::Unauthenticated);
        assert!(wrong.message().contains("wrong user name or password"), "{}", wrong.message());
        assert!(users.identify_md(&MetadataMap::new()).is_err());
        let token = users.issue("alice");
        assert_eq!(users.identify_md(&md(&format!("Bearer {token}"))).unwrap(), "alice");
        assert!(users.identify_md(&md("Bearer 00")).is_err());
        assert!(SqlUsers::parse(["nocolon"]).is_err());
    }

    #[test]
    fn scopes_name_known_users_add_up_and_leave_no_user_unconfined() {
        let users = SqlUsers::parse(["a:pw", "b:pw", "c:pw"]).unwrap();
        let users = users.with_scopes(["a=web-*", "a=db-1|ns:team-a|label:app=web*", "b=*", "c=host:x"]).unwrap();
        let a = users.scope("a").unwrap();
        assert_eq!(a.hosts, ["web-*", "db-1"]);
        assert_eq!(a.namespaces, ["team-a"]);
        assert_eq!(a.labels, [("app".to_string(), "web*".to_string())]);
        assert!(users.scope("b").is_none(), "b=* reads everything");
        assert_eq!(users.scope("c").unwrap().hosts, ["x"]);
        // Issue 18 item 12: a user left out of the scopes read every host.
        let users = SqlUsers::parse(["a:pw", "b:pw"]).unwrap();
        let err = users.with_scopes(["a=web-*"]).unwrap_err();
        assert!(err.contains("SQL user \"b\" has no --sql-scope") && err.contains("b=*"), "{err}");
        let unscoped = SqlUsers::parse(["a:pw", "b:pw"]).unwrap().with_scopes([]).unwrap();
        assert!(unscoped.scope("a").is_none() && unscoped.scope("b").is_none(), "no scopes: all read everything");
        let none = SqlUsers::parse(["a:pw"]).unwrap();
        assert!(none.with_scopes(["c=web-*"]).unwrap_err().contains("no SQL user \"c\""));
        for bad in ["a=", "a=ns:", "a=label:=x", "a=label:app", "a=host:"] {
            let none = SqlUsers::parse(["a:pw"]).unwrap();
            assert!(none.with_scopes([bad]).is_err(), "{bad}");
        }
    }

    /// Issue 18 item 10: 1,000 wrong passwords took 1.3 s, unthrottled.
    #[test]
    fn wrong_passwords_from_one_source_lock_it_out_even_from_the_right_password() {
        let users = SqlUsers::parse(["alice:s3cret"]).unwrap();
        let (guesser, other) = (Some("192.0.2.7".parse().unwrap()), Some("192.0.2.8".parse().unwrap()));
        let mut refused = 0;
        for _ in 0..100 {
            let e = users.check("alice", "guess", guesser).unwrap_err();
            if e.message().contains("too many failed logins from 192.0.2.7") {
                assert_eq!(e.code(), tonic::Code::Unavailable);
                refused += 1;
            }
        }
        assert!(refused >= 90, "only {refused} of 100 guesses were refused unchecked");
        let e = users.check("alice", "s3cret", guesser).unwrap_err();
        assert!(e.message().contains("retry in"), "{}", e.message());
        assert_eq!(users.check("alice", "s3cret", other).unwrap(), "alice", "another source logs in");
    }
}
