//! Not re-reading what did not change: before a collector runs on a scope the
//! daemon crawled before, the agent takes a fingerprint of its inputs — the
//! stat (device, inode, size, mode, mtime and ctime to the nanosecond) of
//! every file and directory under the paths it reads, absent ones included —
//! and when it equals the fingerprint taken before the last crawl that
//! reached the spool, the collector does not run: its tables are sent as
//! `unchanged`, as they would have been after reading them.
//!
//! A fingerprint is taken before the collector reads, so a change during a
//! read makes the next fingerprint differ. Inputs too large to stat cheaply
//! (more than [`MAX_STAMPS`] entries, say a walk of /usr) have no
//! fingerprint: their collector runs every crawl, except on a host scope with
//! `run --rewalk-large-secs`, where it runs once per period ([`window`]).
//! Inputs whose fingerprint cannot be taken (a stat error, a walk problem)
//! have none either, and their collector always runs. Collectors that met
//! errors are run again next crawl; on a host, one that walks a tree too
//! large to fingerprint and met only problems of single paths (not a spent
//! budget or a panic) waits for its period.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::rootfs::{Entry, Root};

/// Most entries stat-ed for one collector's fingerprint.
pub const MAX_STAMPS: usize = 20_000;

/// A collector's fingerprint on a scope; None: its inputs are too large to fingerprint.
pub type Fingerprint = Option<[u8; 32]>;

/// Fingerprints the last spooled crawl of each scope took, per collector:
/// (host/scope/scope_id, collector) → fingerprint.
pub type Fingerprints = HashMap<(String, &'static str), Fingerprint>;

/// Shared, read-only during a crawl.
pub type Known = Arc<Fingerprints>;

/// The scope key fingerprints are filed under.
pub fn scope_key(c: &crate::encode::Common) -> String {
    format!("{}/{}/{}", c.host, c.scope, c.scope_id)
}

/// What taking a fingerprint gave.
#[derive(Debug, PartialEq, Eq)]
pub enum Taken {
    Of([u8; 32]),
    /// More than [`MAX_STAMPS`] entries.
    TooLarge,
    /// A stat or a walk failed.
    Failed,
}

/// The fingerprint of everything `inputs` (paths and globs) name in `root`.
pub fn of(root: &Root, inputs: &[String]) -> Fingerprint {
    match of_inputs(root, inputs) {
        Taken::Of(f) => Some(f),
        Taken::TooLarge | Taken::Failed => None,
    }
}

/// [`of`], saying why there is none.
pub fn of_inputs(root: &Root, inputs: &[String]) -> Taken {
    // Each input's literal leading directories, at their symlinks' targets too; nested ones walked once.
    let mut starts: BTreeSet<String> = BTreeSet::new();
    // `!PATTERN` inputs only narrow what touches the others (see `inherit`): fingerprinting more is safe.
    for i in inputs.iter().filter(|i| !i.starts_with('!')) {
        for p in crate::inherit::expand(root, i) {
            let lit: Vec<&str> =
                p.split('/').filter(|c| !c.is_empty()).take_while(|c| !c.contains(['*', '?', '[', '{'])).collect();
            starts.insert(format!("/{}", lit.join("/")));
        }
    }
    let starts: Vec<String> =
        starts.iter().filter(|s| !starts.iter().any(|o| o != *s && inside(s, o))).cloned().collect();
    let mut h = Sha256::new();
    let mut n = 0usize;
    for start in &starts {
        h.update(start.as_bytes());
        h.update([0]);
        match root.stamp(start) {
            Err(e) if e.is_not_found() => h.update(b"absent"),
            Err(_) => return Taken::Failed,
            Ok((stamp, dir)) => {
                n += 1;
                for x in stamp {
                    h.update(x.to_le_bytes());
                }
                if dir {
                    let mut failed = false;
                    let walked = root.walk(
                        start,
                        &mut |e: &Entry| {
                            n += 1;
                            e.path.for_each_chunk(|c| h.update(c));
                            h.update([0]);
                            for x in [e.ino as i64, e.size as i64, e.mode as i64, e.kind.as_raw_mode() as i64] {
                                h.update(x.to_le_bytes());
                            }
                            for x in e.changed {
                                h.update(x.to_le_bytes());
                            }
                            n <= MAX_STAMPS
                        },
                        &mut |_| failed = true,
                    );
                    if n > MAX_STAMPS {
                        return Taken::TooLarge;
                    }
                    if walked.is_err() || failed {
                        return Taken::Failed;
                    }
                }
            }
        }
        if n > MAX_STAMPS {
            return Taken::TooLarge;
        }
    }
    Taken::Of(h.finalize().into())
}

/// The stand-in fingerprint of inputs too large to fingerprint, for a
/// daemon that walks them at most once per `period`: it names the period
/// the current time falls in, so the collector runs when a new one begins
/// and is `unread` until then. Periods start at an offset drawn from the
/// scope, so a fleet's agents do not all walk at once; one scope's
/// collectors share it, since collectors filling one table (`packages`:
/// python, npm, java, ...) run together. None when `period` is zero.
/// On a 2-core build machine the host's walks of / (application packages,
/// unowned files, embedded libraries) were 70% of an unchanged crawl's CPU.
pub fn window(scope_key: &str, collector: &str, period: std::time::Duration) -> Fingerprint {
    let secs = period.as_secs();
    if secs == 0 {
        return None;
    }
    let seed: [u8; 32] = Sha256::new().chain_update(scope_key).finalize().into();
    let offset = u64::from_le_bytes(seed[..8].try_into().unwrap_or_default()) % secs;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let n = (u128::from(now) + u128::from(offset)) / u128::from(secs);
    let token = Sha256::new().chain_update(b"large inputs, period").chain_update(seed).chain_update(collector);
    Some(token.chain_update(n.to_le_bytes()).finalize().into())
}

/// Whether path `a` lies inside directory `b`.
fn inside(a: &str, b: &str) -> bool {
    b == "/" || a.strip_prefix(b).is_some_and(|rest| rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fingerprint_changes_with_any_input_and_only_with_them() {
        let tmp = tempfile::tempdir().unwrap();
        let r = tmp.path();
        std::fs::create_dir_all(r.join("var/lib/dpkg/info")).unwrap();
        std::fs::write(r.join("var/lib/dpkg/status"), "Package: a\n").unwrap();
        std::fs::write(r.join("var/lib/dpkg/info/a.list"), "/usr/bin/a\n").unwrap();
        std::fs::create_dir_all(r.join("etc")).unwrap();
        let inputs = vec!["/var/lib/dpkg".to_string(), "/lib/apk/db/installed".to_string()];
        let fp = || of(&Root::open(r).unwrap(), &inputs);
        let first = fp();
        assert!(first.is_some());
        assert_eq!(fp(), first, "nothing changed");
        std::fs::write(r.join("etc/hosts"), "x").unwrap();
        assert_eq!(fp(), first, "a path it does not read");
        std::fs::write(r.join("var/lib/dpkg/info/b.list"), "/usr/bin/b\n").unwrap();
        let second = fp();
        assert_ne!(second, first, "a file added below an input");
        // Same size, same second: the nanoseconds or the ctime still tell.
        std::fs::write(r.join("var/lib/dpkg/status"), "Package: b\n").unwrap();
        assert_ne!(fp(), second, "a file rewritten in place");
        let third = fp();
        std::fs::create_dir_all(r.join("lib/apk/db")).unwrap();
        std::fs::write(r.join("lib/apk/db/installed"), "P:x\n").unwrap();
        assert_ne!(fp(), third, "an absent input appeared");
    }

    #[test]
    fn a_window_names_its_period_and_differs_by_scope_and_collector() {
        use std::time::Duration;
        assert_eq!(window("h/host/x", "python", Duration::ZERO), None);
        // A period of a century does not turn over between two calls.
        let long = Duration::from_secs(100 * 365 * 86400);
        let w = window("h/host/x", "python", long);
        assert!(w.is_some());
        assert_eq!(window("h/host/x", "python", long), w);
        assert_ne!(window("h/host/y", "python", long), w);
        assert_ne!(window("h/host/x", "npm", long), w);
        // A one-second period turns over within about a second.
        let first = window("h/host/x", "python", Duration::from_secs(1));
        std::thread::sleep(Duration::from_millis(1100));
        assert_ne!(window("h/host/x", "python", Duration::from_secs(1)), first);
    }

    #[test]
    fn inputs_too_large_have_no_fingerprint() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().join("usr");
        std::fs::create_dir_all(&d).unwrap();
        for i in 0..(MAX_STAMPS + 10) {
            std::fs::write(d.join(format!("f{i}")), "").unwrap();
        }
        assert_eq!(of(&Root::open(tmp.path()).unwrap(), &["/usr".to_string()]), None);
        assert_eq!(of_inputs(&Root::open(tmp.path()).unwrap(), &["/usr".to_string()]), Taken::TooLarge);
    }

    /// Only inputs too large to stat get a period (see [`window`]); a small
    /// tree whose walk meets a problem is read every crawl.
    #[test]
    fn a_walk_problem_is_a_failure_not_a_large_tree() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("usr/lib").join(["d"; 70].join("/"))).unwrap();
        assert_eq!(of_inputs(&Root::open(tmp.path()).unwrap(), &["/usr".to_string()]), Taken::Failed);
    }
}
