//! A scope whose crawl killed the agent is not crawled again at once.
//!
//! Some inputs cost more than the agent is given whatever its budgets say: a
//! parser bug, a bomb no budget anticipated, a memory limit set below what a
//! normal scope needs. The kernel then kills the agent (out of memory) in the
//! middle of one scope, and on restart it crawls the same scope first thing
//! and dies again: nothing of the host is ever reported, and nothing says why.
//!
//! So while the daemon crawls a scope, a marker file names it in the spool's
//! `crawling/` directory, removed when the scope's crawl returns (or is given
//! up by the watchdog). A marker found at start names a scope whose crawl
//! the last run did not survive: it becomes a quarantine, kept on disk, and
//! until it expires ([`PERIOD`]) the scope is reported by one `watchdog` error
//! row instead of being read, while every other scope is crawled as usual.
//! A run stopped on purpose (SIGTERM, SIGINT) removes its marks first
//! ([`stopping`]); one killed otherwise (a reboot, `kill -9`) mid-scope costs
//! that scope one period too; the row says what is known.
//!
//! Without one installed (the one-shot `crawl` command) nothing is written.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

/// How long a scope that killed the agent is left unread.
pub const PERIOD: Duration = Duration::from_secs(3600);

/// The daemon's quarantine, once it has set one up ([`install`]).
static GLOBAL: RwLock<Option<Arc<Quarantine>>> = RwLock::new(None);

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn file_name(prefix: &str, key: &str) -> String {
    let h = Sha256::digest(key.as_bytes());
    let hex: String = h[..12].iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}-{hex}")
}

/// Markers and quarantines kept in one directory.
pub struct Quarantine {
    dir: PathBuf,
    /// Quarantined scope keys → (when the run crawling them stopped, until when), in Unix seconds.
    held: Mutex<BTreeMap<String, (u64, u64)>>,
}

impl Quarantine {
    /// Keeps markers in `dir`, turning those a previous run left there into
    /// quarantines. Also returns the scope keys quarantined now, with the
    /// time each was left (Unix seconds), for the caller to log.
    pub fn open(dir: &Path) -> std::io::Result<(Quarantine, Vec<(String, u64)>)> {
        std::fs::create_dir_all(dir)?;
        let now = now();
        let mut held = BTreeMap::new();
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else { continue };
            let Ok(text) = std::fs::read_to_string(&path) else { continue };
            let mut lines = text.lines();
            let (Some(key), Some(since)) = (lines.next(), lines.next().and_then(|s| s.parse::<u64>().ok())) else {
                let _ = std::fs::remove_file(&path);
                continue;
            };
            if name.starts_with("crawling-") {
                // The last run did not finish this scope. Kept on disk for later restarts; when that
                // fails, held for this run anyway (the mark stays, and the next start tries again).
                let until = now + PERIOD.as_secs();
                let q = dir.join(file_name("quarantine", key));
                match std::fs::write(&q, format!("{key}\n{since}\n{until}\n")) {
                    Ok(()) => {
                        let _ = std::fs::remove_file(&path);
                    }
                    Err(e) => tracing::warn!("cannot keep the quarantine of {key} in {}: {e}", q.display()),
                }
                held.insert(key.to_string(), (since, until));
            } else if name.starts_with("quarantine-") {
                match lines.next().and_then(|s| s.parse::<u64>().ok()) {
                    Some(until) if until > now => {
                        held.insert(key.to_string(), (since, until));
                    }
                    _ => {
                        let _ = std::fs::remove_file(&path);
                    }
                }
            }
        }
        let left = held.iter().map(|(k, (since, _))| (k.clone(), *since)).collect();
        Ok((Quarantine { dir: dir.to_path_buf(), held: Mutex::new(held) }, left))
    }

    /// Why the scope `key` is not to be read now, if it is quarantined.
    pub fn held(&self, key: &str) -> Option<String> {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let (since, until) = *held.get(key)?;
        let now = now();
        if until <= now {
            held.remove(key);
            let _ = std::fs::remove_file(self.dir.join(file_name("quarantine", key)));
            return None;
        }
        Some(format!(
            "not read: the agent's run that was crawling this scope {} s ago stopped before it finished (killed \
             for memory? the host's kernel log says), so it is left unread for {} s more; every other scope is crawled",
            now.saturating_sub(since),
            until - now
        ))
    }

    /// Marks `key` as being crawled until the returned guard is dropped.
    pub fn crawling(&self, key: &str) -> Marker {
        let path = self.dir.join(file_name("crawling", key));
        match std::fs::write(&path, format!("{key}\n{}\n", now())) {
            Ok(()) => Marker(Some(path)),
            Err(e) => {
                tracing::warn!("cannot write the crawl marker {}: {e}", path.display());
                Marker(None)
            }
        }
    }
}

/// Makes `q` the process's quarantine: every scope crawled from now on is marked while it is.
pub fn install(q: Quarantine) {
    *GLOBAL.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(q));
}

fn global() -> Option<Arc<Quarantine>> {
    GLOBAL.read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// [`Quarantine::held`] of the installed quarantine; None without one.
pub fn held(key: &str) -> Option<String> {
    global()?.held(key)
}

/// Set by [`stopping`]: no scope is marked any more.
static STOPPING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// [`Quarantine::crawling`] of the installed quarantine; a guard doing nothing
/// without one, or once the agent is stopping.
pub fn crawling(key: &str) -> Marker {
    if STOPPING.load(std::sync::atomic::Ordering::SeqCst) {
        return Marker(None);
    }
    global().map_or(Marker(None), |q| q.crawling(key))
}

/// The agent is being stopped on purpose (SIGTERM, SIGINT): the scopes being
/// crawled did not kill it, so their marks go and the next start reads them.
/// Without this, every restart of a rolling update would cost a scope an hour.
pub fn stopping() {
    STOPPING.store(true, std::sync::atomic::Ordering::SeqCst);
    let Some(q) = global() else { return };
    let Ok(dir) = std::fs::read_dir(&q.dir) else { return };
    for e in dir.flatten() {
        if e.file_name().to_string_lossy().starts_with("crawling-") {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Removes its marker when dropped.
pub struct Marker(Option<PathBuf>);

impl Drop for Marker {
    fn drop(&mut self) {
        if let Some(p) = &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(left: &[(String, u64)]) -> Vec<&str> {
        left.iter().map(|(k, _)| k.as_str()).collect()
    }

    #[test]
    fn a_marker_left_by_a_dead_run_quarantines_its_scope_for_a_period() {
        let d = tempfile::tempdir().unwrap();
        let (q, left) = Quarantine::open(d.path()).unwrap();
        assert!(left.is_empty());
        // A crawl that returns leaves nothing behind.
        drop(q.crawling("h/container/ok"));
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 0);
        // A run that dies mid-scope leaves its marker (forgotten here, as the kill would).
        std::mem::forget(q.crawling("h/image/bomb"));
        let (q, left) = Quarantine::open(d.path()).unwrap();
        assert_eq!(keys(&left), ["h/image/bomb"]);
        let why = q.held("h/image/bomb").expect("quarantined");
        assert!(why.contains("stopped before it finished"), "{why}");
        assert_eq!(q.held("h/container/ok"), None);
        // Kept on disk: a second restart within the period still leaves it unread.
        let (q, left) = Quarantine::open(d.path()).unwrap();
        assert_eq!(keys(&left), ["h/image/bomb"]);
        assert!(q.held("h/image/bomb").is_some());
        // An expired quarantine is dropped, file and all.
        let file = d.path().join(file_name("quarantine", "h/image/bomb"));
        std::fs::write(&file, format!("h/image/bomb\n{}\n{}\n", now() - 10, now() - 1)).unwrap();
        let (q, left) = Quarantine::open(d.path()).unwrap();
        assert!(left.is_empty());
        assert!(!file.exists());
        assert_eq!(q.held("h/image/bomb"), None);
    }
}
