//! `unowned_files`: executables and shared libraries under the system
//! directories that no package database claims — software copied or compiled
//! into an image (typically /usr/local) where no package manager sees it —
//! with what identifies each: the Go or Rust build info and the embedded
//! libraries of an ELF file, read in the one pass that hashes it (see
//! [`super::embedded::examine`]), and how much of it was read for that
//! (`examined`), so "unowned software nothing identifies" is
//! `WHERE examined = 'elf' AND identified IS NULL`: an ELF file read whole,
//! not a script, a file that could not be read, or one read in part.
//!
//! Only files within the hash cap (`hash_max_bytes`, 16 MiB) are read
//! through; of a longer ELF file only the headers, for its build info
//! (`examined = 'elf_headers'`): its banners are `embedded_libraries`' to
//! read, within that collector's own byte budget.

use periscope_proto::tables::UNOWNED_FILES;
use rustix::fs::FileType;

use super::embedded::{self, Examined};
use super::{Scope, Sink, mode_string, usrmerge_aliases};
use crate::encode::Value;
use crate::rootfs::Entry;

const C: &str = "unowned_files";
pub const DIRS: &[&str] = &["/usr", "/opt", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"];

/// executable, shared_library, or None for other files, by a file's name and mode.
pub fn classify(name: &[u8], mode: u32) -> Option<&'static str> {
    let is_so = name.ends_with(b".so") || name.windows(4).any(|w| w == b".so.");
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
    // Each found file becomes its row at once (a tree of 500,000 unowned
    // files held every entry to the end), and a problem hashing it its
    // error row at once (kept to the end, 15,000 problems naming 15 KB
    // paths held 270 MB).
    // Past a budget while hashing, no more rows (the walks still report their own problems).
    let mut stopped = false;
    super::walk_dirs(scope, out, C, DIRS, &mut |e: &Entry, out: &mut Sink| {
        if !stopped
            && e.kind == FileType::RegularFile
            && let Some(kind) = classify(e.path.name(), e.mode)
        {
            let path = e.path.shown();
            if out.any_owner(&path, &aliases).is_none() && !out.is_full(&UNOWNED_FILES) {
                stopped = !row(scope, out, e, kind, path);
            }
        }
        true
    });
}

/// The row of one unowned file; false when reading it hit a scope budget.
/// An ELF file within the hash cap is read whole (up to the per-file budget)
/// for its libraries as it is hashed; its scan is kept for `embedded_libraries`.
fn row(scope: &Scope, out: &mut Sink, e: &Entry, kind: &str, path: String) -> bool {
    let (Examined { sha256: sha, elf }, read) =
        match embedded::examine(scope, e, &path, Some(scope.config.hash_max_bytes)) {
            Ok(x) => (x, true),
            Err(err) => {
                out.read_error(C, &path, &err);
                if err.is_budget() {
                    return false;
                }
                (Examined::default(), false)
            }
        };
    let identified = elf.as_ref().and_then(embedded::ElfScan::identified);
    let examined = match &elf {
        Some(scan) => Some(scan.examined()),
        None => read.then_some("not_elf"),
    };
    if let Some(scan) = elf {
        out.elf_scans.keep(embedded::key(e), scan);
    }
    out.row(
        &UNOWNED_FILES,
        &[
            ("path", path.as_str().into()),
            ("kind", kind.into()),
            ("size", (e.size as i64).into()),
            ("mode", mode_string(e.mode).as_str().into()),
            ("mtime", Value::Int(e.mtime.saturating_mul(1_000_000))),
            ("sha256", sha.as_ref().into()),
            ("identified", identified.as_ref().into()),
            ("examined", examined.into()),
        ],
    );
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scope's kept scans are bounded in bytes, not only in count: each
    /// may be several KiB of evidence and build identities.
    #[test]
    fn kept_scans_are_bounded_in_bytes() {
        use periscope_banners::{Finding, Library};
        let heavy = embedded::ElfScan {
            libraries: (0..embedded::MAX_ROWS_PER_FILE)
                .map(|i| Finding {
                    library: Library::OpenSsl,
                    version: Some(format!("1.0.{i}")),
                    evidence: "x".repeat(256),
                    offset: 0,
                })
                .collect(),
            build: vec!["y".repeat(256); 5],
            ..Default::default()
        };
        let mut kept = embedded::KeptScans::default();
        let mut n = 0u64;
        while kept.keep((0, n, 0, [0; 4]), heavy.clone()) {
            n += 1;
        }
        assert!(n > 100 && kept.bytes() <= embedded::MAX_KEPT_SCAN_BYTES, "{n} scans, {} bytes", kept.bytes());
        // What is not kept, embedded_libraries reads itself; a headers-only scan is never kept.
        assert!(kept.get(&(0, n, 0, [0; 4])).is_none());
        let mut fresh = embedded::KeptScans::default();
        assert!(!fresh.keep((1, 1, 0, [0; 4]), embedded::ElfScan { headers_only: true, ..Default::default() }));
    }

    #[test]
    fn classification() {
        for (path, mode, kind) in [
            ("/usr/local/bin/node", 0o755, Some("executable")),
            ("/usr/lib/libfoo.so", 0o644, Some("shared_library")),
            ("/usr/lib/libfoo.so.1.2", 0o644, Some("shared_library")),
            ("/usr/share/doc/readme", 0o644, None),
            ("/usr/lib/python3/x.sol", 0o644, None),
        ] {
            let name = path.rsplit('/').next().unwrap();
            assert_eq!(classify(name.as_bytes(), mode), kind, "{path}");
        }
    }
}
