//! Agent authentication. An agent enrolls with the fleet's shared enroll
//! secret and gets a node key bound to its host identity; every later call
//! carries the node key, and the agent may only send rows for that host.
//! Node keys are stored hashed (SHA-256) under `<data>/agents/node_keys.json`,
//! written atomically, so a server restart keeps its agents enrolled.
//!
//! Under mTLS (`--client-ca`), an agent's identity is instead the subject CN
//! of its client certificate, which the TLS layer verified.
//!
//! Without an enroll secret or a client CA the server runs open (any agent, any host): for
//! a laptop or a test, not a fleet; `periscope serve` says so when it starts.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};
use tonic::Status;
use tonic::metadata::MetadataMap;

#[derive(Debug, Clone, Default)]
pub struct AuthConfig {
    /// The shared secret agents enroll with; None: open server.
    pub enroll_secret: Option<String>,
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

#[derive(Debug)]
pub struct Auth {
    config: AuthConfig,
    path: PathBuf,
    /// sha256(node key) hex -> record.
    keys: Mutex<HashMap<String, KeyRecord>>,
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
        let dir = data.join("agents");
        std::fs::create_dir_all(&dir)?;
        let path = dir.join("node_keys.json");
        let keys = match std::fs::read(&path) {
            Ok(b) => {
                serde_json::from_slice(&b).map_err(|e| std::io::Error::other(format!("{}: {e}", path.display())))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => HashMap::new(),
            Err(e) => return Err(e),
        };
        Ok(Auth { config, path, keys: Mutex::new(keys) })
    }

    pub fn is_open(&self) -> bool {
        self.config.enroll_secret.is_none()
    }

    /// Checks the enroll secret and issues a node key for `host`.
    pub fn enroll(&self, host: &str, secret: &str) -> Result<String, Status> {
        let Some(want) = &self.config.enroll_secret else {
            return Err(Status::failed_precondition("this server runs without enrollment; send without a node key"));
        };
        if !same_secret(want, secret) {
            return Err(Status::unauthenticated("wrong enroll secret"));
        }
        if host.is_empty() {
            return Err(Status::invalid_argument("enrollment names no host"));
        }
        let mut raw = [0u8; 32];
        getrandom::fill(&mut raw).map_err(|e| Status::internal(format!("no randomness for a node key: {e}")))?;
        let key: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        let now = now_unix_ms();
        let rec = KeyRecord { host: host.to_string(), issued_unix: now / 1000, issued_unix_ms: Some(now) };
        keys.insert(hash(&key), rec);
        self.persist(&keys).map_err(|e| Status::unavailable(format!("cannot store the node key: {e}")))?;
        tracing::info!(host, "agent enrolled");
        Ok(key)
    }

    fn persist(&self, keys: &HashMap<String, KeyRecord>) -> std::io::Result<()> {
        let tmp = self.path.with_extension("json.tmp");
        let bytes = serde_json::to_vec(keys).map_err(std::io::Error::other)?;
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &self.path)?;
        std::fs::File::open(self.path.parent().expect("has a parent"))?.sync_all()
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
        let keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        let rec = keys.get(&hash(key)).ok_or_else(|| Status::unauthenticated("unknown node key; enroll again"))?;
        if let Some(ttl) = self.config.node_key_ttl
            && rec.expired(ttl, now_unix_ms())
        {
            return Err(Status::unauthenticated("expired node key; enroll again"));
        }
        Ok(Identity::Host(rec.host.clone()))
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
        let cfg = AuthConfig { enroll_secret: Some("s3cret".into()), node_key_ttl: None };
        let auth = Auth::open(dir.path(), cfg.clone()).unwrap();
        assert_eq!(auth.enroll("web-1", "nope").unwrap_err().code(), tonic::Code::Unauthenticated);
        let key = auth.enroll("web-1", "s3cret").unwrap();
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

    #[test]
    fn node_keys_expire() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = AuthConfig { enroll_secret: Some("s".into()), node_key_ttl: Some(Duration::ZERO) };
        let auth = Auth::open(dir.path(), cfg).unwrap();
        let key = auth.enroll("h", "s").unwrap();
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
