//! `embedded_libraries`: well-known C libraries copied or statically linked
//! into ELF executables and shared objects — OpenSSL, LibreSSL, BoringSSL,
//! zlib, libcurl, SQLite, libpng, libxml2, expat, BusyBox, glibc, musl —
//! found by the version banners of their own code (what counts as evidence,
//! and when a version is left unknown: the `periscope-banners` crate).
//!
//! Which files: every regular file under [`DIRS`] that is named or moded like
//! a binary (as `unowned_files` decides), starts with the ELF magic and that
//! no package owns; of the package-owned ones, only those named like one of
//! the libraries themselves (`libcrypto.so.3`, `libc.so.6`, `busybox`). All
//! owned binaries would be the bulk of every crawl, read again each time: on
//! the machine this was measured on, /usr and /opt hold 2.9 GiB of owned ELF
//! files against 9 MiB of owned files named like these libraries, and a
//! Debian minbase root about 65 MiB of them. Home directories are not walked
//! either: on hosts they hold toolchains and caches (1.8 GiB of ELF files in
//! this machine's /root), while the binaries collector still reads Go and Rust
//! build info there from headers alone.
//!
//! How: the file is opened once through the rooted reader, its ELF headers
//! read positionally (the `binaries` collector's bounded reader: the libraries
//! it links dynamically, its Go or Rust build info), then its contents fed to
//! the scanner in 64 KiB chunks up to the per-file budget (`max_file_bytes`;
//! a longer file is a `crawl_errors` row saying what was not read), every
//! chunk counted against the scope's byte budget and deadline. A library the
//! file links dynamically (`DT_NEEDED libcrypto.so.3`) is not reported from
//! it: its banner there comes from the library's headers (the `openssl`
//! command prints `OPENSSL_VERSION_TEXT`), not its code.
//!
//! `unowned_files` reads each unowned file anyway (to hash it): it scans it in
//! the same pass ([`examine`]), names what it found in its `identified`
//! column, and leaves the scan in [`Sink::elf_scans`] so this collector does
//! not read the file again. Whichever collector reads a file, its rows are the
//! same.

use std::collections::HashMap;
use std::os::unix::fs::FileExt;

use periscope_banners::{Finding, LIBRARIES, Scanner};
use periscope_proto::tables::EMBEDDED_LIBRARIES;
use rustix::fs::FileType;

use super::{Scope, Sink, WalkErrors, unalias, usrmerge_aliases};
use crate::encode::Value;
use crate::rootfs::{Entry, ReadError};

const C: &str = "embedded_libraries";

/// Where binaries are looked for (merged-/usr aliases are walked through /usr).
pub const DIRS: &[&str] =
    &["/usr", "/opt", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/app", "/srv", "/var/www"];

/// Rows one file makes at most; past it, a `crawl_errors` row.
pub const MAX_ROWS_PER_FILE: usize = 16;

/// Scans `unowned_files` keeps for this collector (past it, this collector reads the rest itself).
pub const MAX_KEPT_SCANS: usize = 100_000;

/// What reading one ELF file found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ElfScan {
    /// The libraries embedded in it, at most [`MAX_ROWS_PER_FILE`].
    pub libraries: Vec<Finding>,
    /// Libraries found past [`MAX_ROWS_PER_FILE`], or banners past the scanner's own limit.
    pub too_many: bool,
    /// The file was longer than the per-file budget: (bytes read, its size).
    pub cut: Option<(u64, u64)>,
    /// What its Go or Rust build info names (see [`super::binaries::identities`]).
    pub build: Vec<String>,
}

impl ElfScan {
    /// `unowned_files.identified`: its build info, then each library (`openssl
    /// 3.0.11`, or `sqlite` when the version is unknown), `; `-separated.
    pub fn identified(&self) -> Option<String> {
        let libs = self.libraries.iter().map(|f| match &f.version {
            Some(v) => format!("{} {v}", f.library.name()),
            None => f.library.name().to_string(),
        });
        let mut all: Vec<String> = self.build.iter().cloned().chain(libs).collect();
        all.dedup();
        (!all.is_empty()).then(|| all.join("; "))
    }
}

/// A walked file as the walk saw it: a scan of it stands for it while it is unchanged.
pub type FileKey = (u64, u64, u64, [i64; 4]);

pub fn key(e: &Entry) -> FileKey {
    (e.dev, e.ino, e.size, e.changed)
}

/// What one read of a file found.
#[derive(Debug, Default)]
pub struct Examined {
    /// Its SHA-256, when a hash was asked for and the file is within its cap.
    pub sha256: Option<String>,
    /// None: not an ELF file.
    pub elf: Option<ElfScan>,
}

/// Whether a file name is one of the libraries' own (`libcrypto.so.3`,
/// `libpng16.so.16`, `libc.so.6` or `libc-2.31.so`, `ld-musl-x86_64.so.1`, `busybox`): the
/// package-owned files that are read.
pub fn library_named(name: &[u8]) -> bool {
    let name = String::from_utf8_lossy(name);
    let old_glibc = name
        .strip_prefix("libc-")
        .and_then(|v| v.strip_suffix(".so"))
        .is_some_and(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit() || b == b'.'));
    name == "busybox" || name.starts_with("ld-musl-") || old_glibc || LIBRARIES.iter().any(|l| l.is_needed_as(&name))
}

/// Reads one walked file, once: its SHA-256 when `hash_cap` is given and the
/// file is no longer, and, when it is ELF, its headers and banners.
pub fn examine(scope: &Scope, e: &Entry, path: &str, hash_cap: Option<u64>) -> Result<Examined, ReadError> {
    use sha2::Digest;
    let (file, len) = super::binaries::open_entry(scope, e)?;
    let mut magic = [0u8; 4];
    let is_elf = len >= 64 && file.read_exact_at(&mut magic, 0).is_ok() && &magic == b"\x7fELF";
    let hash_cap = hash_cap.filter(|&cap| len <= cap);
    if !is_elf && hash_cap.is_none() {
        return Ok(Examined::default());
    }
    let mut needed = Vec::new();
    let mut elf = is_elf.then(ElfScan::default);
    if let Some(scan) = &mut elf {
        // Malformed headers leave the build info unread and nothing excluded as linked; the banners are still read.
        if let Ok(Ok(Some((found, read)))) = file.try_clone().map(|f| super::binaries::read_binary(f, len)) {
            scope.root.charge_bytes(path, read)?;
            scan.build = super::binaries::identities(&found);
            needed = found.needed;
        }
    }
    let mut hasher = hash_cap.map(|_| sha2::Sha256::new());
    let mut scanner = is_elf.then(Scanner::new);
    let limit = if is_elf { scope.root.budgets().max_file_bytes } else { hash_cap.unwrap_or(0) };
    let (read, cut) = scope.root.stream_opened(&file, path, len, limit, |chunk| {
        if let Some(h) = &mut hasher {
            h.update(chunk);
        }
        if let Some(s) = &mut scanner {
            s.feed(chunk);
        }
        true
    })?;
    let sha256 = hasher.filter(|_| !cut).map(|h| format!("{:x}", h.finalize()));
    if let (Some(scan), Some(scanner)) = (&mut elf, scanner) {
        let report = scanner.finish();
        let mut libraries = report.findings;
        libraries.retain(|f| !needed.iter().any(|n| f.library.is_needed_as(n)));
        scan.too_many = report.overflowed || libraries.len() > MAX_ROWS_PER_FILE;
        libraries.truncate(MAX_ROWS_PER_FILE);
        scan.libraries = libraries;
        scan.cut = cut.then_some((read, len));
    }
    Ok(Examined { sha256, elf })
}

/// The OS package owning `path` (through a merged-/usr alias too).
fn owner<'a>(
    owners: &'a HashMap<String, std::sync::Arc<str>>,
    path: &str,
    aliases: &[(String, String)],
) -> Option<&'a str> {
    owners.get(path).or_else(|| unalias(path, aliases).and_then(|p| owners.get(&p))).map(|s| &**s)
}

pub fn collect(scope: &Scope, out: &mut Sink) {
    let aliases = usrmerge_aliases(&scope.root);
    // Past a scope budget, no more files are read (the walks still report their own problems).
    let mut stopped = false;
    for dir in DIRS {
        if scope.root.read_link(dir).is_ok() {
            continue;
        }
        let mut errors = WalkErrors::default();
        let r = scope.root.walk(
            dir,
            &mut |e: &Entry| {
                if stopped
                    || e.kind != FileType::RegularFile
                    || e.size < 64
                    || super::unowned::classify(e.path.name(), e.mode).is_none()
                {
                    return true;
                }
                let path = e.path.shown();
                let owner = owner(&out.owners, &path, &aliases).map(str::to_string);
                if owner.is_some() && !library_named(e.path.name()) {
                    return true;
                }
                let scan = match out.elf_scans.get(&key(e)) {
                    Some(s) => s.clone(),
                    None => match examine(scope, e, &path, None) {
                        Ok(Examined { elf: Some(s), .. }) => s,
                        Ok(_) => return true,
                        Err(err) => {
                            out.read_error(C, &path, &err);
                            stopped = err.is_budget();
                            return true;
                        }
                    },
                };
                rows(out, &path, owner.as_deref(), &scan);
                stopped = out.is_full(&EMBEDDED_LIBRARIES);
                true
            },
            &mut |e| errors.push(e),
        );
        errors.report(out, C);
        match r {
            Ok(()) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => {
                out.read_error(C, dir, &e);
                if e.is_budget() {
                    break;
                }
            }
        }
    }
}

/// One file's rows, and what was not read or kept of it.
fn rows(out: &mut Sink, path: &str, owner: Option<&str>, scan: &ElfScan) {
    for f in &scan.libraries {
        out.row(
            &EMBEDDED_LIBRARIES,
            &[
                ("path", path.into()),
                ("library", f.library.name().into()),
                ("version", f.version.as_deref().into()),
                ("evidence", f.evidence.as_str().into()),
                ("evidence_offset", Value::Int(f.offset as i64)),
                ("owner_package", owner.into()),
            ],
        );
    }
    if scan.too_many {
        let msg = format!(
            "{path}: more library banners than are kept ({MAX_ROWS_PER_FILE} libraries, {} distinct banners per file); the rest are not reported, and a library cut short has no version",
            periscope_banners::MAX_DISTINCT
        );
        out.error(C, Some(path), &msg);
    }
    if let Some((read, size)) = scan.cut {
        let msg = format!(
            "{path}: only the first {read} of its {size} bytes were looked at (budget max_file_bytes); libraries past them are not reported"
        );
        out.not_read(C, path, &msg);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_names() {
        for (name, want) in [
            ("libcrypto.so.3", true),
            ("libssl.so.1.1", true),
            ("libz.so.1.2.13", true),
            ("libpng16.so.16.39.0", true),
            ("libc.so.6", true),
            ("ld-musl-x86_64.so.1", true),
            ("busybox", true),
            ("libzstd.so.1", false),
            ("libcryptsetup.so.12", false),
            ("openssl", false),
            ("libc-2.31.so", true),
            ("libc-client.so.2007e", false),
        ] {
            assert_eq!(library_named(name.as_bytes()), want, "{name}");
        }
    }

    #[test]
    fn identified_lists_build_info_then_libraries() {
        use periscope_banners::Library;
        let f = |library, version: Option<&str>| Finding {
            library,
            version: version.map(str::to_string),
            evidence: String::new(),
            offset: 0,
        };
        let scan = ElfScan {
            libraries: vec![f(Library::OpenSsl, Some("3.0.11")), f(Library::Sqlite, None)],
            build: vec!["golang:example.com/app@v1.2.3".into()],
            ..Default::default()
        };
        assert_eq!(scan.identified().as_deref(), Some("golang:example.com/app@v1.2.3; openssl 3.0.11; sqlite"));
        assert_eq!(ElfScan::default().identified(), None);
    }
}
