//! `unowned_files`: executables and shared libraries under the system
//! directories that no package database claims — software copied or compiled
//! into an image (typically /usr/local) where no package manager sees it.

use periscope_proto::tables::UNOWNED_FILES;
use rustix::fs::FileType;

use super::{Scope, Sink, mode_string, sha256_entry, unalias, usrmerge_aliases};
use crate::encode::Value;
use crate::rootfs::Entry;

const C: &str = "unowned_files";
pub const DIRS: &[&str] = &["/usr", "/opt", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"];

/// executable, shared_library, or None for other files.
pub fn classify(path: &str, mode: u32) -> Option<&'static str> {
    let name = path.rsplit('/').next().unwrap_or(path);
    let is_so = name.ends_with(".so") || name.contains(".so.");
    if is_so {
        Some("shared_library")
    } else if mode & 0o111 != 0 {
        Some("executable")
    } else {
        None
    }
}

pub fn collect(scope: &Scope, out: &mut Sink) {
    let aliases = usrmerge_aliases(&scope.root);
    let mut found: Vec<(Entry, &'static str)> = Vec::new();
    for dir in DIRS {
        // A merged-/usr alias (/bin -> usr/bin) is walked through /usr.
        if scope.root.read_link(dir).is_ok() {
            continue;
        }
        let mut errors = Vec::new();
        let r = scope.root.walk(
            dir,
            &mut |e: &Entry| {
                if e.kind == FileType::RegularFile
                    && let Some(kind) = classify(&e.path, e.mode)
                {
                    let owned = out.owners.contains_key(&e.path)
                        || unalias(&e.path, &aliases).is_some_and(|p| out.owners.contains_key(&p));
                    if !owned {
                        found.push((e.clone(), kind));
                    }
                }
                true
            },
            &mut |e| errors.push(e),
        );
        for e in errors {
            out.error(C, None, &e.to_string());
        }
        match r {
            Ok(()) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => {
                out.error(C, Some(dir), &e.to_string());
                if e.is_budget() {
                    break;
                }
            }
        }
    }
    for (e, kind) in found {
        let sha = match sha256_entry(&scope.root, &e, scope.config.hash_max_bytes) {
            Ok(h) => h,
            Err(err) => {
                out.read_error(C, &e.path, &err);
                if err.is_budget() {
                    return;
                }
                None
            }
        };
        out.row(
            &UNOWNED_FILES,
            &[
                ("path", e.path.as_str().into()),
                ("kind", kind.into()),
                ("size", (e.size as i64).into()),
                ("mode", mode_string(e.mode).as_str().into()),
                ("mtime", Value::Int(e.mtime.saturating_mul(1_000_000))),
                ("sha256", sha.as_ref().into()),
            ],
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        for (path, mode, kind) in [
            ("/usr/local/bin/node", 0o755, Some("executable")),
            ("/usr/lib/libfoo.so", 0o644, Some("shared_library")),
            ("/usr/lib/libfoo.so.1.2", 0o644, Some("shared_library")),
            ("/usr/share/doc/readme", 0o644, None),
            ("/usr/lib/python3/x.sol", 0o644, None),
        ] {
            assert_eq!(classify(path, mode), kind, "{path}");
        }
    }
}
