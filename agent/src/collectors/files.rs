//! `files`: metadata of paths matching configured globs — type, size, mode,
//! owner, mtime, symlink target, setuid/setgid, sha256 under a size cap and
//! the owning package.

use std::collections::BTreeMap;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use globset::{GlobBuilder, GlobSetBuilder};
use periscope_proto::tables::FILES;
use rustix::fs::FileType;

use super::{Scope, Sink, WalkErrors, mode_string, sha256_entry, unalias, usrmerge_aliases};
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
    let aliases = usrmerge_aliases(&scope.root);
    // Matches keep only their entries (whose paths share their directories'
    // storage); a match's text is made again when its row is.
    let mut matched: Vec<Entry> = Vec::new();
    for (start, depth) in &starts {
        let covered =
            starts.iter().any(|(s, d)| d.is_none() && s != start && (s == "/" || start.starts_with(&format!("{s}/"))));
        if covered {
            continue;
        }
        let mut errors = WalkErrors::default();
        let r = scope.root.walk(
            start,
            &mut |e: &Entry| {
                if set.is_match(e.path.shown()) {
                    matched.push(e.clone());
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
    // In path order, each once (walks from overlapping starts meet some twice).
    matched.sort_by(|a, b| a.path.cmp_raw(&b.path));
    matched.dedup_by(|a, b| a.path.cmp_raw(&b.path).is_eq());
    for e in matched {
        if out.is_full(&FILES) {
            break;
        }
        let path = e.path.shown();
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
            match sha256_entry(&scope.root, &e, scope.config.hash_max_bytes) {
                Ok(h) => h,
                Err(err) if err.is_budget() => {
                    out.read_error(C, &path, &err);
                    return;
                }
                Err(err) => {
                    out.read_error(C, &path, &err);
                    None
                }
            }
        } else {
            None
        };
        let owner =
            out.owners.get(&path).or_else(|| unalias(&path, &aliases).and_then(|p| out.owners.get(&p))).cloned();
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
