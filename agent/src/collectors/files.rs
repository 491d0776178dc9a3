//! `files`: metadata of paths matching configured globs — type, size, mode,
//! owner, mtime, symlink target, setuid/setgid, sha256 under a size cap and
//! the owning package.

use std::collections::BTreeMap;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use globset::{GlobBuilder, GlobSetBuilder};
use periscope_proto::tables::FILES;
use rustix::fs::FileType;

use super::{Scope, Sink, WalkErrors, mode_string, sha256_entry, usrmerge_aliases};
use crate::encode::Value;
use crate::rootfs::{Entry, kind_name};

const C: &str = "files";

/// The directory a glob's walk starts from (its literal leading components)
/// and how deep below it the glob can reach (None: unbounded, for `**`).
pub fn walk_plan(glob: &str) -> (String, Option<usize>) {
    let parts: Vec<&str> = glob.split('/').filter(|p| !p.is_empty()).collect();
    let literal = parts.iter().take_while(|p| !p.contains(['*', '?', '[', '{'])).count();
    // A fully literal glob is found by listing its parent.
    let literal = literal.min(parts.len().saturating_sub(1));
    let start = format!("/{}", parts[..literal].join("/"));
    let rest = &parts[literal..];
    let depth = if rest.iter().any(|p| p.contains("**")) { None } else { Some(rest.len()) };
    (start, depth)
}

pub fn collect(scope: &Scope, out: &mut Sink) {
    let mut set = GlobSetBuilder::new();
    let mut plans: BTreeMap<String, Option<usize>> = BTreeMap::new();
    for g in &scope.config.file_globs {
        match GlobBuilder::new(g).literal_separator(true).build() {
            Ok(glob) => {
                set.add(glob);
                let (start, depth) = walk_plan(g);
                let e = plans.entry(start).or_insert(depth);
                *e = match (*e, depth) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    _ => None,
                };
            }
            Err(e) => out.error(C, None, &format!("invalid glob {g:?}: {e}")),
        }
    }
    let set = match set.build() {
        Ok(s) => s,
        Err(e) => return out.error(C, None, &format!("invalid globs: {e}")),
    };
    // Skip starts that lie inside another start walked without a depth bound.
    let starts: Vec<(String, Option<usize>)> = plans.into_iter().collect();
    let walked: Vec<&(String, Option<usize>)> = starts
        .iter()
        .filter(|(start, _)| {
            !starts.iter().any(|(s, d)| d.is_none() && s != start && (s == "/" || start.starts_with(&format!("{s}/"))))
        })
        .collect();
    let aliases = usrmerge_aliases(&scope.root);
    // Each match becomes its row as the walk meets it, in the walk's order
    // (kept to the end to be sorted, a root of 500,000 files under /etc/ssh
    // held 127 MB). Two walks meet the same path only when one's start lies
    // below the other's (walks name paths from their start): the paths a
    // walk made rows of below a later start are remembered, by a keyed
    // 128-bit hash, and that walk skips them.
    let keys = (std::hash::RandomState::new(), std::hash::RandomState::new());
    let id = |path: &str| {
        use std::hash::BuildHasher;
        (keys.0.hash_one(path), keys.1.hash_one(path))
    };
    let mut made: std::collections::HashSet<(u64, u64)> = std::collections::HashSet::new();
    // Past a budget while hashing, no more rows (the walks still report their own problems).
    let mut stopped = false;
    for (k, (start, depth)) in walked.iter().enumerate() {
        let later = &walked[k + 1..];
        let mut errors = WalkErrors::default();
        let r = scope.root.walk(
            start,
            &mut |e: &Entry| {
                if !stopped && !out.is_full(&FILES) {
                    let path = e.path.shown();
                    if set.is_match(&path) && (made.is_empty() || !made.contains(&id(&path))) {
                        if later.iter().any(|(s, _)| path.strip_prefix(s.as_str()).is_some_and(|r| r.starts_with('/')))
                        {
                            made.insert(id(&path));
                        }
                        stopped = !row(scope, out, e, path, &aliases);
                    }
                }
                depth.is_none_or(|d| e.depth < d)
            },
            &mut |e| errors.push(e),
        );
        errors.report(out, C);
        match r {
            Ok(()) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) if e.is_budget() => {
                out.error(C, Some(start), &e.to_string());
                break;
            }
            Err(e) => out.error(C, Some(start), &e.to_string()),
        }
    }
}

/// The row of one match; false when hashing it hit a scope budget.
fn row(scope: &Scope, out: &mut Sink, e: &Entry, path: String, aliases: &[(String, String)]) -> bool {
    let target = if e.kind == FileType::Symlink {
        match scope.root.read_link(OsStr::from_bytes(&e.path.raw())) {
            Ok(t) => Some(t),
            Err(err) => {
                out.read_error(C, &path, &err);
                None
            }
        }
    } else {
        None
    };
    let sha = if e.kind == FileType::RegularFile {
        match sha256_entry(&scope.root, e, scope.config.hash_max_bytes) {
            Ok(h) => h,
            Err(err) if err.is_budget() => {
                out.read_error(C, &path, &err);
                return false;
            }
            Err(err) => {
                out.read_error(C, &path, &err);
                None
            }
        }
    } else {
        None
    };
    let owner = out.any_owner(&path, aliases).cloned();
    out.row(
        &FILES,
        &[
            ("path", path.as_str().into()),
            ("type", kind_name(e.kind).into()),
            ("size", (e.size as i64).into()),
            ("mode", mode_string(e.mode).as_str().into()),
            ("uid", (e.uid as i64).into()),
            ("gid", (e.gid as i64).into()),
            ("mtime", Value::Int(e.mtime.saturating_mul(1_000_000))),
            ("symlink_target", target.as_ref().into()),
            ("setuid", (e.mode & 0o4000 != 0).into()),
            ("setgid", (e.mode & 0o2000 != 0).into()),
            ("sha256", sha.as_ref().into()),
            ("package", owner.as_deref().into()),
            ("links", (e.nlink.min(i64::MAX as u64) as i64).into()),
        ],
    );
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows are made as the walks meet their matches (issue 21); a path two
    /// walks meet (a start below another's depth-bounded reach) is one row,
    /// while a path met through a symlinked start is its own.
    #[test]
    fn overlapping_walks_make_one_row_per_path() {
        let tmp = tempfile::tempdir().unwrap();
        let r = tmp.path();
        for f in ["a/b/x", "a/b/y/z", "a/c/w"] {
            std::fs::create_dir_all(r.join(f).parent().unwrap()).unwrap();
            std::fs::write(r.join(f), f).unwrap();
        }
        std::os::unix::fs::symlink("b", r.join("a/l")).unwrap();
        let opts = crate::crawl::CrawlOptions {
            root: r.to_path_buf(),
            host: Some("h".into()),
            scope_id: Some("s".into()),
            collectors: Some(vec!["files".into()]),
            config: crate::collectors::CollectorConfig {
                // Starts /a (depth 2), /a/b and /a/l (no bound): /a/b/x and /a/b/y are met twice.
                file_globs: vec!["/a/*/*".into(), "/a/b/**".into(), "/a/l/**".into()],
                ..crate::collectors::CollectorConfig::default()
            },
            ..Default::default()
        };
        let c = crate::crawl::crawl(&opts).unwrap();
        let mut paths = Vec::new();
        for b in c.batches.to_vec().iter().filter(|b| FILES.matches(b.schema_ref())) {
            use arrow_array::{Array, cast::AsArray};
            let p = b.column_by_name("path").unwrap().as_string::<i32>();
            paths.extend((0..p.len()).map(|i| p.value(i).to_string()));
        }
        let mut sorted = paths.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(paths.len(), sorted.len(), "{paths:?}");
        assert_eq!(sorted, ["/a/b/x", "/a/b/y", "/a/b/y/z", "/a/c/w", "/a/l/x", "/a/l/y", "/a/l/y/z"], "{paths:?}");
    }

    #[test]
    fn walk_plans() {
        for (glob, start, depth) in [
            ("/etc/passwd", "/etc", Some(1)),
            ("/etc/sudoers.d/*", "/etc/sudoers.d", Some(1)),
            ("/etc/ssh/**", "/etc/ssh", None),
            ("/home/*/.ssh/**", "/home", None),
            ("/etc/cron*/*", "/etc", Some(2)),
            ("/x", "/", Some(1)),
        ] {
            assert_eq!(walk_plan(glob), (start.to_string(), depth), "{glob}");
        }
    }
}
