//! Agent authentication. An agent enrolls with the fleet's shared enroll
//! secret and gets a node key bound to its host identity; every later call
//! carries the node key, and the agent may only send rows for that host.
//! Node keys are stored hashed (SHA-256) under `<data>/agents/node_keys.json`,
//! written atomically, so a server restart keeps its agents enrolled.
//!
//! Under mTLS (`--client-ca`), an agent's identity is instead the subject CN
//! of its client certificate, which the TLS layer verified.
//!
//! A host enrolls once: while it holds a live node key, another enrollment
//! for it is refused (whoever asks, with whatever secret), so a node that
//! knows the fleet's secret cannot take over an enrolled host's identity. An
//! operator revokes a host's keys (`periscope agents revoke HOST`) to let it
//! enroll again, and can hand out one-time enrollment tokens bound to one host
//! (`periscope agents token HOST`, with `serve --enroll-tokens`) instead of a
//! fleet-wide secret. Those commands change `<data>/agents/` under a lock;
//! a running server sees their changes at its next call.
//!
//! Without an enroll secret, tokens or a client CA the server runs open (any
//! agent, any host): for a laptop or a test, not a fleet; `periscope serve`
//! refuses it beyond loopback unless told `--insecure-open`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};
use tonic::Status;
use tonic::metadata::MetadataMap;

#[derive(Debug, Clone, Default)]
pub struct AuthConfig {
    /// The shared secret agents enroll with.
    pub enroll_secret: Option<String>,
    /// Whether agents may enroll with per-host tokens (`periscope agents token`).
    /// With neither this nor a secret, the server is open.
    pub tokens: bool,
    /// How long a node key is valid after enrollment; None: until revoked.
    pub node_key_ttl: Option<Duration>,
}

/// Who is calling: the host an authenticated agent may write rows for, or
/// anyone on an open server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    Host(String),
    Open,
}

impl Identity {
    /// Refuses rows (or a batch's agent id) naming another host.
    pub fn may_write(&self, host: &str) -> Result<(), Status> {
        match self {
            Identity::Open => Ok(()),
            Identity::Host(h) if h == host => Ok(()),
            Identity::Host(h) => Err(Status::permission_denied(format!(
                "agent identified as host {h:?} sent rows for host {host:?}; an agent writes only its own host's rows"
            ))),
        }
    }
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct KeyRecord {
    host: String,
    /// Enrollment time in whole seconds: what records written before
    /// `issued_unix_ms` existed carry.
    #[serde(default)]
    issued_unix: u64,
    /// Enrollment time in milliseconds. Whole seconds made a key issued at
    /// x.999 s "one second old" at x+1.001 s: with a short TTL, expired at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    issued_unix_ms: Option<u64>,
}

impl KeyRecord {
    fn issued_ms(&self) -> u64 {
        self.issued_unix_ms.unwrap_or(self.issued_unix.saturating_mul(1000))
    }

    /// Whether a key this old at `now_ms` is past `ttl`.
    fn expired(&self, ttl: Duration, now_ms: u64) -> bool {
        u128::from(now_ms.saturating_sub(self.issued_ms())) >= ttl.as_millis()
    }
}

/// A one-time enrollment token: it enrolls `host` once, before it expires.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct TokenRecord {
    host: String,
    expires_unix_ms: u64,
}

/// What `<data>/agents/` holds: node keys and enrollment tokens, each by the
/// SHA-256 of its secret (hex); the secrets themselves are never stored.
#[derive(Debug, Default)]
struct Stored {
    keys: HashMap<String, KeyRecord>,
    tokens: HashMap<String, TokenRecord>,
}

/// The files behind [`Stored`], and the lock every change takes.
#[derive(Debug, Clone)]
struct Files {
    keys: PathBuf,
    tokens: PathBuf,
    lock: PathBuf,
}

impl Files {
    fn of(data: &Path) -> std::io::Result<Files> {
        let dir = data.join("agents");
        std::fs::create_dir_all(&dir)?;
        Ok(Files { keys: dir.join("node_keys.json"), tokens: dir.join("tokens.json"), lock: dir.join(".lock") })
    }

    /// Holds the agents directory's lock until dropped: the server and the
    /// `periscope agents` commands change it one at a time.
    fn lock(&self) -> std::io::Result<std::fs::File> {
        let f = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&self.lock)?;
        f.lock()?;
        Ok(f)
    }

    /// The keys file's identity: a change (always an atomic rename) gives it another.
    fn stamp(&self) -> Option<(u64, i64, u64)> {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(&self.keys).ok().map(|m| (m.ino(), m.mtime_nsec() + m.mtime() * 1_000_000_000, m.len()))
    }

    fn read(&self) -> std::io::Result<Stored> {
        fn load<T: serde::de::DeserializeOwned + Default>(p: &Path) -> std::io::Result<T> {
            match std::fs::read(p) {
                Ok(b) => serde_json::from_slice(&b).map_err(|e| std::io::Error::other(format!("{}: {e}", p.display()))),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(T::default()),
                Err(e) => Err(e),
            }
        }
        Ok(Stored { keys: load(&self.keys)?, tokens: load(&self.tokens)? })
    }

    fn write<T: serde::Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
        let tmp = path.with_extension("json.tmp");
        let bytes = serde_json::to_vec(value).map_err(std::io::Error::other)?;
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(path.parent().expect("has a parent"))?.sync_all()
    }
}

#[derive(Debug)]
pub struct Auth {
    config: AuthConfig,
    files: Files,
    /// The stored keys and tokens, and the keys file's stamp when they were read.
    stored: Mutex<(Stored, Option<(u64, i64, u64)>)>,
    /// Backoff for wrong enroll secrets, per source address.
    throttle: crate::throttle::Throttle,
}

fn hash(key: &str) -> String {
    Sha256::digest(key.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

fn now_unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Equal-length-independent, data-independent comparison of secrets.
fn same_secret(a: &str, b: &str) -> bool {
    let (ha, hb) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    ha.iter().zip(hb.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Auth {
    pub fn open(data: &Path, config: AuthConfig) -> std::io::Result<Auth> {
        let files = Files::of(data)?;
        let stamp = files.stamp();
        let stored = files.read()?;
        Ok(Auth { config, files, stored: Mutex::new((stored, stamp)), throttle: Default::default() })
    }

    pub fn is_open(&self) -> bool {
        self.config.enroll_secret.is_none() && !self.config.tokens
    }

    /// The stored keys, read again when another process (`periscope agents
    /// revoke`) changed them since.
    fn current(&self) -> std::sync::MutexGuard<'_, (Stored, Option<(u64, i64, u64)>)> {
        let mut g = self.stored.lock().unwrap_or_else(|e| e.into_inner());
        let stamp = self.files.stamp();
        if stamp != g.1 {
            match self.files.read() {
                Ok(s) => *g = (s, stamp),
                Err(e) => tracing::error!("agent keys not re-read (the ones read before stay in force): {e}"),
            }
        }
        g
    }

    fn live(&self, rec: &KeyRecord, now_ms: u64) -> bool {
        self.config.node_key_ttl.is_none_or(|ttl| !rec.expired(ttl, now_ms))
    }

    /// Checks the enroll secret or a token for `host` (sent from `from`: a
    /// source that guessed wrong too often is refused for a while) and issues
    /// a node key for `host`, unless it holds a live one already.
    pub fn enroll(&self, host: &str, secret: &str, from: Option<std::net::IpAddr>) -> Result<String, Status> {
        if self.is_open() {
            return Err(Status::failed_precondition("this server runs without enrollment; send without a node key"));
        }
        use crate::throttle::Throttle;
        self.throttle.check(from).map_err(|wait| Status::unavailable(Throttle::refusal(from, wait)))?;
        if host.is_empty() {
            return Err(Status::invalid_argument("enrollment names no host"));
        }
        let unavailable = |e: std::io::Error| Status::unavailable(format!("cannot read or store agent keys: {e}"));
        let _lock = self.files.lock().map_err(unavailable)?;
        // Read afresh under the lock: `periscope agents` may have changed keys or tokens.
        let mut g = self.stored.lock().unwrap_or_else(|e| e.into_inner());
        *g = (self.files.read().map_err(unavailable)?, self.files.stamp());
        let now = now_unix_ms();
        let token = hash(secret);
        let by_token =
            self.config.tokens && g.0.tokens.get(&token).is_some_and(|t| t.host == host && t.expires_unix_ms > now);
        // A host an operator issued a token for enrolls with that token only, not the fleet's secret.
        let has_token = g.0.tokens.values().any(|t| t.host == host && t.expires_unix_ms > now);
        let by_secret =
            !has_token && self.config.enroll_secret.as_deref().is_some_and(|want| same_secret(want, secret));
        if !(by_token || by_secret) {
            self.throttle.failed(from);
            return Err(Status::unauthenticated(format!("wrong enroll secret or token for host {host:?}")));
        }
        if let Some(rec) = g.0.keys.values().find(|r| r.host == host && self.live(r, now)) {
            let since = chrono::DateTime::from_timestamp_millis(rec.issued_ms() as i64).unwrap_or_default();
            return Err(Status::already_exists(format!(
                "host {host:?} already holds a live node key (enrolled {}); a host enrolls once, so that no node \
                 can take over another's identity: an operator revokes it with `periscope agents revoke {host}` first",
                since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            )));
        }
        let mut raw = [0u8; 32];
        getrandom::fill(&mut raw).map_err(|e| Status::internal(format!("no randomness for a node key: {e}")))?;
        let key: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        let mut keys = g.0.keys.clone();
        keys.retain(|_, r| self.live(r, now));
        keys.insert(
            hash(&key),
            KeyRecord { host: host.to_string(), issued_unix: now / 1000, issued_unix_ms: Some(now) },
        );
        let mut tokens = g.0.tokens.clone();
        let used = by_token && !by_secret;
        // The key first: should the token's removal then fail, the host holds a live key and the token cannot
        // enroll it again.
        Files::write(&self.files.keys, &keys).map_err(unavailable)?;
        if used {
            tokens.remove(&token);
            tokens.retain(|_, t| t.expires_unix_ms > now);
            Files::write(&self.files.tokens, &tokens).map_err(unavailable)?;
        }
        *g = (Stored { keys, tokens }, self.files.stamp());
        tracing::info!(host, token = used, "agent enrolled");
        Ok(key)
    }

    /// The caller's identity: under mTLS the subject CN of its verified client
    /// certificate, else its `authorization: Bearer <node key>` metadata.
    pub fn identify<T>(&self, request: &tonic::Request<T>) -> Result<Identity, Status> {
        if let Some(cert) = request.peer_certs().as_ref().and_then(|c| c.first().cloned()) {
            return cert_identity(&cert).map(Identity::Host);
        }
        self.identify_key(request.metadata())
    }

    /// The caller's identity from its `authorization: Bearer <node key>` metadata.
    pub fn identify_key(&self, md: &MetadataMap) -> Result<Identity, Status> {
        if self.is_open() {
            return Ok(Identity::Open);
        }
        let key = md
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| Status::unauthenticated("no node key: enroll with the fleet's enroll secret first"))?;
        let g = self.current();
        let rec = g.0.keys.get(&hash(key)).ok_or_else(|| Status::unauthenticated("unknown node key; enroll again"))?;
        if !self.live(rec, now_unix_ms()) {
            return Err(Status::unauthenticated("expired node key; enroll again"));
        }
        Ok(Identity::Host(rec.host.clone()))
    }
}

/// An operator's changes to the agents directory of `data`, made under its
/// lock, from a process of its own (a running server sees them at its next
/// call): `periscope agents revoke|token|list`.
pub mod admin {
    use super::*;

    /// Revokes every node key of `host`; it may then enroll again. Returns how many there were.
    pub fn revoke(data: &Path, host: &str) -> std::io::Result<usize> {
        let files = Files::of(data)?;
        let _lock = files.lock()?;
        let mut stored = files.read()?;
        let before = stored.keys.len();
        stored.keys.retain(|_, r| r.host != host);
        let gone = before - stored.keys.len();
        if gone > 0 {
            Files::write(&files.keys, &stored.keys)?;
        }
        Ok(gone)
    }

    /// A new one-time token that enrolls `host` (only it) once, within `ttl`.
    pub fn token(data: &Path, host: &str, ttl: Duration) -> std::io::Result<String> {
        if host.is_empty() {
            return Err(std::io::Error::other("a token names the host it enrolls"));
        }
        let files = Files::of(data)?;
        let _lock = files.lock()?;
        let mut stored = files.read()?;
        let mut raw = [0u8; 24];
        getrandom::fill(&mut raw).map_err(std::io::Error::other)?;
        let token: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        let now = now_unix_ms();
        stored.tokens.retain(|_, t| t.expires_unix_ms > now);
        let expires_unix_ms = now.saturating_add(ttl.as_millis() as u64);
        stored.tokens.insert(hash(&token), TokenRecord { host: host.into(), expires_unix_ms });
        Files::write(&files.tokens, &stored.tokens)?;
        Ok(token)
    }

    /// Enrolled hosts with when each key was issued (Unix ms), and unused tokens' hosts with when they expire.
    pub fn list(data: &Path) -> std::io::Result<(Vec<(String, u64)>, Vec<(String, u64)>)> {
        let stored = Files::of(data)?.read()?;
        let mut keys: Vec<(String, u64)> = stored.keys.values().map(|r| (r.host.clone(), r.issued_ms())).collect();
        let now = now_unix_ms();
        let mut tokens: Vec<(String, u64)> = stored
            .tokens
            .values()
            .filter(|t| t.expires_unix_ms > now)
            .map(|t| (t.host.clone(), t.expires_unix_ms))
            .collect();
        keys.sort();
        tokens.sort();
        Ok((keys, tokens))
    }
}

/// The host a client certificate names: its subject common name. The TLS
/// layer has verified the certificate against the configured client CA.
fn cert_identity(der: &[u8]) -> Result<String, Status> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| Status::unauthenticated(format!("unreadable client certificate: {e}")))?;
    let cn = cert.subject().iter_common_name().next().and_then(|cn| cn.as_str().ok()).map(str::to_string);
    cn.filter(|c| !c.is_empty())
        .ok_or_else(|| Status::unauthenticated("the client certificate names no host (subject CN)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bearer(key: &str) -> MetadataMap {
        let mut md = MetadataMap::new();
        md.insert("authorization", format!("Bearer {key}").parse().unwrap());
        md
    }

    #[test]
    fn enrolled_keys_identify_their_host_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = AuthConfig { enroll_secret: Some("s3cret".into()), ..Default::default() };
        let auth = Auth::open(dir.path(), cfg.clone()).unwrap();
        assert_eq!(auth.enroll("web-1", "nope", None).unwrap_err().code(), tonic::Code::Unauthenticated);
        let key = auth.enroll("web-1", "s3cret", None).unwrap();
        assert_eq!(auth.identify_key(&bearer(&key)).unwrap(), Identity::Host("web-1".into()));
        assert_eq!(auth.identify_key(&bearer("forged")).unwrap_err().code(), tonic::Code::Unauthenticated);
        assert_eq!(auth.identify_key(&MetadataMap::new()).unwrap_err().code(), tonic::Code::Unauthenticated);
        let again = Auth::open(dir.path(), cfg).unwrap();
        assert_eq!(again.identify_key(&bearer(&key)).unwrap(), Identity::Host("web-1".into()));
        assert!(!std::fs::read_to_string(dir.path().join("agents/node_keys.json")).unwrap().contains(&key));
        let id = Identity::Host("web-1".into());
        assert!(id.may_write("web-1").is_ok());
        assert_eq!(id.may_write("db-1").unwrap_err().code(), tonic::Code::PermissionDenied);
    }

    /// Issue 18 item 3: every agent holds the fleet's secret, so any node could
    /// enroll as any other host and take over its identity.
    #[test]
    fn a_host_enrolls_once_until_an_operator_revokes_it() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = AuthConfig { enroll_secret: Some("fleet".into()), ..Default::default() };
        let auth = Auth::open(dir.path(), cfg).unwrap();
        let key = auth.enroll("web-1", "fleet", None).unwrap();
        let e = auth.enroll("web-1", "fleet", None).unwrap_err();
        assert_eq!(e.code(), tonic::Code::AlreadyExists);
        assert!(e.message().contains("periscope agents revoke web-1"), "{}", e.message());
        assert_eq!(auth.identify_key(&bearer(&key)).unwrap(), Identity::Host("web-1".into()), "the key still works");
        // The operator revokes from another process; the running server sees it at its next call.
        assert_eq!(admin::revoke(dir.path(), "web-1").unwrap(), 1);
        let e = auth.identify_key(&bearer(&key)).unwrap_err();
        assert!(e.message().contains("unknown node key"), "{}", e.message());
        let again = auth.enroll("web-1", "fleet", None).unwrap();
        assert_eq!(auth.identify_key(&bearer(&again)).unwrap(), Identity::Host("web-1".into()));
        assert_eq!(admin::list(dir.path()).unwrap().0.iter().map(|(h, _)| h.as_str()).collect::<Vec<_>>(), ["web-1"]);
    }

    #[test]
    fn a_token_enrolls_its_own_host_once_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = AuthConfig { tokens: true, enroll_secret: Some("fleet".into()), ..Default::default() };
        let auth = Auth::open(dir.path(), cfg).unwrap();
        assert!(!auth.is_open());
        let t = admin::token(dir.path(), "db-1", Duration::from_secs(3600)).unwrap();
        let e = auth.enroll("db-1", "fleet", None).unwrap_err();
        assert_eq!(e.code(), tonic::Code::Unauthenticated, "a host with a token enrolls with it, not the fleet secret");
        let stale = admin::token(dir.path(), "db-2", Duration::ZERO).unwrap();
        assert_eq!(auth.enroll("db-9", &t, None).unwrap_err().code(), tonic::Code::Unauthenticated, "another host");
        assert_eq!(auth.enroll("db-2", &stale, None).unwrap_err().code(), tonic::Code::Unauthenticated, "expired");
        let key = auth.enroll("db-1", &t, None).unwrap();
        assert_eq!(auth.identify_key(&bearer(&key)).unwrap(), Identity::Host("db-1".into()));
        admin::revoke(dir.path(), "db-1").unwrap();
        assert_eq!(auth.enroll("db-1", &t, None).unwrap_err().code(), tonic::Code::Unauthenticated, "used up");
        assert!(!std::fs::read_to_string(dir.path().join("agents/tokens.json")).unwrap().contains(&t));
    }

    #[test]
    fn node_keys_expire() {
        let dir = tempfile::tempdir().unwrap();
        let cfg =
            AuthConfig { enroll_secret: Some("s".into()), node_key_ttl: Some(Duration::ZERO), ..Default::default() };
        let auth = Auth::open(dir.path(), cfg).unwrap();
        let key = auth.enroll("h", "s", None).unwrap();
        let e = auth.identify_key(&bearer(&key)).unwrap_err();
        assert!(e.message().contains("expired"), "{e}");
    }

    #[test]
    fn a_key_expires_a_full_ttl_after_enrollment_not_at_the_next_second() {
        let ttl = Duration::from_secs(1);
        // Issued just before a second boundary, checked just after it.
        let rec = KeyRecord { host: "h".into(), issued_unix: 12, issued_unix_ms: Some(12_999) };
        assert!(!rec.expired(ttl, 13_001));
        assert!(!rec.expired(ttl, 13_998));
        assert!(rec.expired(ttl, 13_999));
        // A record stored before milliseconds were kept still expires, by its seconds.
        let old: KeyRecord = serde_json::from_str(r#"{"host":"h","issued_unix":12}"#).unwrap();
        assert!(!old.expired(ttl, 12_999));
        assert!(old.expired(ttl, 13_000));
    }
}
