//! Which OS package owns which path: filled by `packages`, read by `files`,
//! `unowned_files`, `binaries` and the application collectors.
//!
//! A package database is the scope's (hostile) input and may list a million
//! paths, so an owned path costs 12 bytes here, not its text: it is kept as a
//! 64-bit hash keyed with a per-map random key (an image cannot choose paths
//! that collide) and the index of its package in a table of names, one
//! shared copy per package. A path is hashed in its merged-/usr real form
//! (`/bin/ls` as `/usr/bin/ls` when `/bin -> usr/bin`, see
//! [`super::usrmerge_aliases`]), when stored and when looked up, so the
//! alias and the real path find one entry and no twin is stored.
//!
//! Entries are appended as `packages` reads them and sorted once, at the
//! first lookup after an insert.

use std::cell::RefCell;
use std::hash::BuildHasher;
use std::sync::Arc;

use super::unalias;

/// Path → owning package, for paths as their package database records them.
#[derive(Default)]
pub struct Owners {
    key: std::collections::hash_map::RandomState,
    /// `[hash >> 32, hash as u32, package]`, sorted by hash when `sorted`
    /// (stable: of two entries for one path, the later one wins).
    entries: RefCell<Vec<[u32; 3]>>,
    sorted: std::cell::Cell<bool>,
    /// Package names, by index; consecutive inserts of one package share one.
    names: Vec<Arc<str>>,
}

impl Owners {
    pub fn is_empty(&self) -> bool {
        self.entries.borrow().is_empty()
    }

    /// Paths held (a path recorded twice counts twice).
    pub fn len(&self) -> usize {
        self.entries.borrow().len()
    }

    /// Records that `package` owns `path` (as its database records it).
    pub fn insert(&mut self, path: &str, package: &Arc<str>, aliases: &[(String, String)]) {
        let same = self.names.last().is_some_and(|n| Arc::ptr_eq(n, package) || **n == **package);
        if !same {
            self.names.push(package.clone());
        }
        let index = (self.names.len() - 1) as u32;
        let h = self.hash(path, aliases);
        self.entries.get_mut().push([(h >> 32) as u32, h as u32, index]);
        *self.sorted.get_mut() = false;
    }

    /// The package owning `path`, found under it or under the path a
    /// merged-/usr alias makes of it.
    pub fn get(&self, path: &str, aliases: &[(String, String)]) -> Option<&Arc<str>> {
        let h = self.hash(path, aliases);
        let key = [(h >> 32) as u32, h as u32];
        if !self.sorted.get() {
            self.entries.borrow_mut().sort_by_key(|e| [e[0], e[1]]);
            self.sorted.set(true);
        }
        let entries = self.entries.borrow();
        let end = entries.partition_point(|e| [e[0], e[1]] <= key);
        let e = entries[..end].last().filter(|e| [e[0], e[1]] == key)?;
        Some(&self.names[e[2] as usize])
    }

    /// The map's heap bytes (for tests and logs).
    pub fn heap_bytes(&self) -> usize {
        self.entries.borrow().capacity() * 12 + self.names.capacity() * 16
    }

    fn hash(&self, path: &str, aliases: &[(String, String)]) -> u64 {
        match unalias(path, aliases) {
            Some(real) => self.key.hash_one(real.as_str()),
            None => self.key.hash_one(path),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_by_path_and_by_alias() {
        let aliases = vec![("/bin/".to_string(), "/usr/bin/".to_string())];
        let (a, b): (Arc<str>, Arc<str>) = ("a".into(), "b".into());
        let mut o = Owners::default();
        assert!(o.is_empty() && o.get("/x", &aliases).is_none());
        o.insert("/bin/ls", &a, &aliases);
        o.insert("/etc/a.conf", &a, &aliases);
        o.insert("/usr/bin/cat", &b, &aliases);
        // (query, owner): as recorded, through the alias either way, unowned.
        let cases = [
            ("/bin/ls", Some("a")),
            ("/usr/bin/ls", Some("a")),
            ("/etc/a.conf", Some("a")),
            ("/usr/bin/cat", Some("b")),
            ("/bin/cat", Some("b")),
            ("/bin/l", None),
            ("/usr/bin/l", None),
            ("/etc/b.conf", None),
        ];
        for (q, want) in cases {
            assert_eq!(o.get(q, &aliases).map(|p| &**p), want, "{q}");
        }
        // Inserts after lookups are found; a path recorded again names its last package.
        o.insert("/etc/a.conf", &b, &aliases);
        o.insert("/opt/new", &a, &aliases);
        assert_eq!(o.get("/etc/a.conf", &aliases).map(|p| &**p), Some("b"));
        assert_eq!(o.get("/opt/new", &aliases).map(|p| &**p), Some("a"));
        assert_eq!(o.len(), 5);
        assert_eq!(o.names.len(), 3, "one name per run of one package (a, b, a)");
    }

    /// Issue 24: each owned path was a String key (and its merged-/usr twin
    /// another): a million-line dpkg .list cost 200 MB, 355 MB with a
    /// `bin -> usr/bin` link. A path costs 12 bytes now.
    #[test]
    fn a_million_owned_paths_cost_their_hashes() {
        let aliases = vec![("/bin/".to_string(), "/usr/bin/".to_string())];
        let p: Arc<str> = "p".into();
        let mut o = Owners::default();
        for i in 0..1_000_000 {
            o.insert(&format!("/bin/{i:07}"), &p, &aliases);
        }
        assert_eq!(o.get("/usr/bin/0999999", &aliases).map(|p| &**p), Some("p"));
        assert_eq!(o.get("/bin/0000000", &aliases).map(|p| &**p), Some("p"));
        assert!(o.get("/bin/1000000", &aliases).is_none());
        assert_eq!(o.len(), 1_000_000, "no twin stored for the alias");
        assert!(o.heap_bytes() < 20 << 20, "{} bytes", o.heap_bytes());
    }
}
