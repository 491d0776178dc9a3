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
//! fingerprint, and their collector always runs. Collectors that met errors
//! are always run again.

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

/// The fingerprint of everything `inputs` (paths and globs) name in `root`.
pub fn of(root: &Root, inputs: &[String]) -> Fingerprint {
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
            Err(_) => return None,
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
                    if walked.is_err() || failed {
                        return None;
                    }
                }
            }
        }
        if n > MAX_STAMPS {
            return None;
        }
    }
    Some(h.finalize().into())
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
    fn inputs_too_large_have_no_fingerprint() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().join("usr");
        std::fs::create_dir_all(&d).unwrap();
        for i in 0..(MAX_STAMPS + 10) {
            std::fs::write(d.join(format!("f{i}")), "").unwrap();
        }
        assert_eq!(of(&Root::open(tmp.path()).unwrap(), &["/usr".to_string()]), None);
    }
}
