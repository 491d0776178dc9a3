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
//! A container is read through its image: while one is crawled, its mark
//! names its image too, and a container whose image is quarantined is left
//! unread with it. Otherwise an image whose content kills the agent would
//! cost one restart per container made from it (a hundred replicas: a
//! hundred restarts, under Kubernetes' growing back-off, before the host is
//! reported), and a container that dies reading its image's files would
//! hand the same death to its siblings.
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
                // The last run did not finish this scope (nor, then, the image it names after its
                // time). Kept on disk for later restarts; when that fails, held for this run anyway
                // (the mark stays, and the next start tries again).
                let until = now + PERIOD.as_secs();
                let mut kept = true;
                for key in std::iter::once(key).chain(lines.filter(|k| !k.is_empty())) {
                    let q = dir.join(file_name("quarantine", key));
                    if let Err(e) = std::fs::write(&q, format!("{key}\n{since}\n{until}\n")) {
                        tracing::warn!("cannot keep the quarantine of {key} in {}: {e}", q.display());
                        kept = false;
                    }
                    held.insert(key.to_string(), (since, until));
                }
                if kept {
                    let _ = std::fs::remove_file(&path);
                }
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

    /// Why the container `key`, read through the image `image` (its scope
    /// key), is not to be read now: it is quarantined, or its image is.
    pub fn held_with(&self, key: &str, image: Option<&str>) -> Option<String> {
        self.held(key).or_else(|| {
            let image = image?;
            let why = self.held(image)?;
            Some(format!("its image is quarantined ({image}), and it is read through its image: {why}"))
        })
    }

    /// Marks `key` (and `image`, the image it is read through) as being
    /// crawled until the returned guard is dropped.
    pub fn crawling(&self, key: &str, image: Option<&str>) -> Marker {
        let path = self.dir.join(file_name("crawling", key));
        let image = image.map(|i| format!("{i}\n")).unwrap_or_default();
        match std::fs::write(&path, format!("{key}\n{}\n{image}", now())) {
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

/// Makes the process stop marking scopes (a test's quarantine is done with).
pub fn uninstall() {
    *GLOBAL.write().unwrap_or_else(|e| e.into_inner()) = None;
}

fn global() -> Option<Arc<Quarantine>> {
    GLOBAL.read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// [`Quarantine::held_with`] of the installed quarantine; None without one.
pub fn held(key: &str, image: Option<&str>) -> Option<String> {
    global()?.held_with(key, image)
}

/// Container scope key → the scope key of the image it is read through, as
/// discovery last saw them (whether or not the container inherits the
/// image's rows: a quarantined image's crawl is incomplete, so its
/// containers inherit nothing and read all of it).
static IMAGES: Mutex<BTreeMap<String, String>> = Mutex::new(BTreeMap::new());

/// Records which image each container is read through: `all` replaces what
/// was known (a full crawl's inventory), otherwise the entries are added
/// (one container's event).
pub fn read_through(entries: impl IntoIterator<Item = (String, String)>, all: bool) {
    let mut images = IMAGES.lock().unwrap_or_else(|e| e.into_inner());
    if all {
        images.clear();
    }
    images.extend(entries);
}

/// The image scope key the container `key` is read through, if known.
pub fn image_of(key: &str) -> Option<String> {
    IMAGES.lock().unwrap_or_else(|e| e.into_inner()).get(key).cloned()
}

/// Set by [`stopping`]: no scope is marked any more.
static STOPPING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// [`Quarantine::crawling`] of the installed quarantine; a guard doing nothing
/// without one, or once the agent is stopping.
pub fn crawling(key: &str, image: Option<&str>) -> Marker {
    if STOPPING.load(std::sync::atomic::Ordering::SeqCst) {
        return Marker(None);
    }
    global().map_or(Marker(None), |q| q.crawling(key, image))
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
        drop(q.crawling("h/container/ok", None));
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 0);
        // A run that dies mid-scope leaves its marker (forgotten here, as the kill would).
        std::mem::forget(q.crawling("h/image/bomb", None));
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

    /// An image that killed the agent holds every container read through it;
    /// a container that did holds its image (and so its siblings) too.
    #[test]
    fn a_container_is_held_with_its_image() {
        let d = tempfile::tempdir().unwrap();
        let (q, _) = Quarantine::open(d.path()).unwrap();
        std::mem::forget(q.crawling("h/image/bomb", None));
        let (q, _) = Quarantine::open(d.path()).unwrap();
        let why = q.held_with("h/container/c1", Some("h/image/bomb")).expect("held with its image");
        assert!(why.contains("its image is quarantined (h/image/bomb)"), "{why}");
        assert_eq!(q.held_with("h/container/c2", Some("h/image/fine")), None);
        assert_eq!(q.held_with("h/container/c3", None), None);

        let d = tempfile::tempdir().unwrap();
        let (q, _) = Quarantine::open(d.path()).unwrap();
        std::mem::forget(q.crawling("h/container/c1", Some("h/image/shared")));
        let (q, left) = Quarantine::open(d.path()).unwrap();
        assert_eq!(keys(&left), ["h/container/c1", "h/image/shared"]);
        assert!(q.held("h/image/shared").is_some());
        assert!(q.held_with("h/container/c2", Some("h/image/shared")).is_some());
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 2, "one quarantine file each, the mark gone");
    }
}
