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
//! `unowned_files` reads each unowned file within its hash cap anyway (to
//! hash it): it scans it in the same pass ([`examine`]), names what it found
//! in its `identified` column, and leaves the scan in [`Sink::elf_scans`] so
//! this collector does not read the file again. A longer ELF file it reads
//! only the headers of (its build info), leaving the banners to this
//! collector, whose byte budget is its own: read up to `max_file_bytes`
//! there, a few images' large binaries (CUDA, conda) spent unowned_files'
//! budget and cost it its rows. Whichever collector reads a file, its rows
//! are the same.

use std::collections::HashMap;
use std::os::unix::fs::FileExt;

use periscope_banners::{Finding, LIBRARIES, Scanner};
use periscope_proto::tables::EMBEDDED_LIBRARIES;
use rustix::fs::FileType;

use super::{Scope, Sink, usrmerge_aliases};
use crate::encode::Value;
use crate::rootfs::{Entry, ReadError};

const C: &str = "embedded_libraries";

/// Where binaries are looked for (merged-/usr aliases are walked through /usr).
pub const DIRS: &[&str] =
    &["/usr", "/opt", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/app", "/srv", "/var/www"];

/// Rows one file makes at most; past it, a `crawl_errors` row.
pub const MAX_ROWS_PER_FILE: usize = 16;

/// Scans `unowned_files` keeps for this collector (past it, this collector reads the rest itself)…
pub const MAX_KEPT_SCANS: usize = 100_000;
/// …and the bytes they may hold, by [`ElfScan::weight`].
pub const MAX_KEPT_SCAN_BYTES: usize = 8 << 20;

/// What reading one ELF file found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ElfScan {
    /// The libraries embedded in it, at most [`MAX_ROWS_PER_FILE`].
    pub libraries: Vec<Finding>,
    /// Libraries found past [`MAX_ROWS_PER_FILE`], or banners past the scanner's own limit.
    pub too_many: bool,
    /// The file was longer than the per-file budget: (bytes read, its size). Its libraries have no version.
    pub cut: Option<(u64, u64)>,
    /// Only its headers were read (it is over the hash cap `unowned_files` read it with): no libraries.
    pub headers_only: bool,
    /// What its Go or Rust build info names (see [`super::binaries::identities`]).
    pub build: Vec<String>,
}

/// The scans `unowned_files` leaves for `embedded_libraries`, by file; at
/// most [`MAX_KEPT_SCANS`] holding [`MAX_KEPT_SCAN_BYTES`]. A scan is
/// bounded (16 findings of at most 256-byte evidence, a few build
/// identities of 256 bytes), but a scope holds as many as it has files.
#[derive(Debug, Default)]
pub struct KeptScans {
    scans: HashMap<FileKey, ElfScan>,
    bytes: usize,
}

impl KeptScans {
    pub fn get(&self, key: &FileKey) -> Option<&ElfScan> {
        self.scans.get(key)
    }

    /// Keeps a scan of a file read whole or cut at the per-file budget;
    /// false when it is not kept (headers only, or past the bounds).
    pub fn keep(&mut self, key: FileKey, scan: ElfScan) -> bool {
        let weight = scan.weight();
        if scan.headers_only
            || self.scans.len() >= MAX_KEPT_SCANS
            || self.bytes + weight > MAX_KEPT_SCAN_BYTES
            || self.scans.contains_key(&key)
        {
            return false;
        }
        self.bytes += weight;
        self.scans.insert(key, scan);
        true
    }

    /// The bytes the kept scans hold, by [`ElfScan::weight`].
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl ElfScan {
    /// About the heap bytes it holds, and its own.
    pub fn weight(&self) -> usize {
        let libraries: usize =
            self.libraries.iter().map(|f| 64 + f.evidence.len() + f.version.as_ref().map_or(0, String::len)).sum();
        let build: usize = self.build.iter().map(|b| 24 + b.len()).sum();
        std::mem::size_of::<ElfScan>() + libraries + build
    }

    /// `unowned_files.examined`: how much of the file was read for what identifies it.
    pub fn examined(&self) -> &'static str {
        if self.headers_only {
            "elf_headers"
        } else if self.cut.is_some() {
            "elf_prefix"
        } else {
            "elf"
        }
    }

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
#[derive(Debug, Clone, Default)]
pub struct Examined {
    /// Its SHA-256, when a hash was asked for and the file is within its cap.
    pub sha256: Option<String>,
    /// None: not an ELF file.
    pub elf: Option<ElfScan>,
}

impl Examined {
    /// About the bytes it holds, with its key (for [`EXAMINED`]'s bound).
    fn weight(&self) -> usize {
        128 + self.sha256.as_ref().map_or(0, String::len) + self.elf.as_ref().map_or(0, ElfScan::weight)
    }
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

/// What a file's examination depends on: the inode and what changes with
/// its contents (size, mtime, and ctime, which no one can set back), and the
/// budgets it was read within.
#[derive(Hash, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    times: [i64; 4],
    max_file_bytes: u64,
    hash_cap: Option<u64>,
}

/// Examinations kept across crawls: an unchanged file is not read again.
/// A host's unowned binaries were read whole on every crawl of the daemon
/// (1.5 GB here: 274 files under /usr/local and /opt, 20% of an unchanged
/// crawl's CPU). Files with one inode in several containers (one image
/// layer) are read once. At most [`MAX_KEPT_EXAMINED`]; when full, it starts
/// again empty. [`forget_examined`] empties it (`run --resend-every`).
/// Each with the bytes its reading took, charged again when it is used.
static EXAMINED: std::sync::Mutex<Option<Kept>> = std::sync::Mutex::new(None);

/// Kept examinations with the bytes each read, and their total weight.
type Kept = (HashMap<Stamp, (Examined, u64)>, usize);

/// Seconds since its last change after which a file's examination is kept:
/// past the kernel's writeback of dirty pages (30 s by default), since a
/// write through a shared mapping to a page already dirty moves no time.
#[cfg(not(test))]
const SETTLED_SECS: i64 = 120;
/// In unit tests, which cannot wait two minutes.
#[cfg(test)]
const SETTLED_SECS: i64 = 2;

/// Filesystems whose ctime is the kernel's clock, not a value stored in an
/// image (erofs, squashfs) or kept by a server (FUSE, NFS): ext4, xfs,
/// btrfs, overlayfs, tmpfs, zfs. Only their files' examinations are kept.
const HONEST_TIMES: [i64; 6] = [0xEF53, 0x5846_5342, 0x9123_683E, 0x794C_7630, 0x0102_1994, 0x2FC1_2FC1];

/// What a kept examination costs beyond its [`Examined::weight`]: its key and its table slot.
const KEPT_ENTRY_BYTES: usize = 256;

/// Files whose examination is kept (most are a few hundred bytes).
pub const MAX_KEPT_EXAMINED: usize = 20_000;

/// Bytes the kept examinations may hold, by [`Examined::weight`].
pub const MAX_KEPT_EXAMINED_BYTES: usize = 8 << 20;

/// Forgets every kept examination: the next crawl reads every file again.
pub fn forget_examined() {
    *EXAMINED.lock().unwrap_or_else(|e| e.into_inner()) = None;
}

/// Reads one walked file, once: its SHA-256 when `hash_cap` is given and the
/// file is no longer, and, when it is ELF, its headers and, unless it is over
/// a given `hash_cap`, its banners. A file examined before, unchanged since
/// (see [`EXAMINED`]), is not read.
pub fn examine(scope: &Scope, e: &Entry, path: &str, hash_cap: Option<u64>) -> Result<Examined, ReadError> {
    use std::os::unix::fs::MetadataExt;
    let (file, len) = super::binaries::open_entry(scope, e)?;
    let m = file.metadata().map_err(|err| ReadError::Io { path: path.to_string(), source: err })?;
    let stamp = Stamp {
        dev: m.dev(),
        ino: m.ino(),
        size: m.size(),
        times: [m.mtime(), m.mtime_nsec(), m.ctime(), m.ctime_nsec()],
        max_file_bytes: scope.root.budgets().max_file_bytes,
        hash_cap,
    };
    let hit = EXAMINED.lock().unwrap_or_else(|e| e.into_inner()).as_ref().and_then(|(k, _)| k.get(&stamp).cloned());
    if let Some((kept, read)) = hit {
        // Counted as read: where a budget cuts must not depend on what this process read before.
        scope.root.charge_bytes(path, read)?;
        #[cfg(test)]
        tests::HITS.with(|h| h.set(h.get() + 1));
        return Ok(kept);
    }
    let honest = rustix::fs::fstatfs(&file).is_ok_and(|st| HONEST_TIMES.contains(&{ st.f_type }));
    let Opened { examined, read, complete } = examine_opened(scope, file, len, path, hash_cap)?;
    if !complete || !honest {
        return Ok(examined);
    }
    // As git does with racily clean files: a file changed within the last
    // seconds may change again within the same timestamp tick (a few ms),
    // after it was read, and keep its stamp; it is read again next time. A
    // file with a kept examination is never replaced by another with its
    // stamp: a new inode's ctime is when it was made, after what was kept.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    if m.ctime() > now - SETTLED_SECS || m.mtime() > now - SETTLED_SECS {
        return Ok(examined);
    }
    let weight = examined.weight() + KEPT_ENTRY_BYTES;
    if weight > MAX_KEPT_EXAMINED_BYTES / 64 {
        return Ok(examined);
    }
    let mut kept = EXAMINED.lock().unwrap_or_else(|e| e.into_inner());
    let (kept, bytes) = kept.get_or_insert_with(Default::default);
    if kept.len() >= MAX_KEPT_EXAMINED || *bytes + weight > MAX_KEPT_EXAMINED_BYTES {
        kept.clear();
        *bytes = 0;
    }
    if let Some((old, _)) = kept.insert(stamp, (examined.clone(), read)) {
        *bytes -= old.weight() + KEPT_ENTRY_BYTES;
    }
    *bytes += weight;
    Ok(examined)
}

/// What [`examine_opened`] found, the bytes it read, and whether nothing
/// passing (an I/O error, no descriptor) left any of it unread.
struct Opened {
    examined: Examined,
    read: u64,
    complete: bool,
}

fn examine_opened(
    scope: &Scope,
    file: std::fs::File,
    len: u64,
    path: &str,
    hash_cap: Option<u64>,
) -> Result<Opened, ReadError> {
    use sha2::Digest;
    let mut magic = [0u8; 4];
    let magic_read = len < 64 || file.read_exact_at(&mut magic, 0).is_ok();
    let is_elf = len >= 64 && magic_read && &magic == b"\x7fELF";
    let (mut total, mut complete) = (0u64, magic_read);
    // Asked for a hash (unowned_files), a file over the hash cap is not read
    // through: its banners are left to embedded_libraries' own budget.
    let within = hash_cap.is_none_or(|cap| len <= cap);
    let hash_cap = hash_cap.filter(|_| within);
    if !is_elf && hash_cap.is_none() {
        return Ok(Opened { examined: Examined::default(), read: 0, complete });
    }
    let mut needed = Vec::new();
    let mut elf = is_elf.then(|| ElfScan { headers_only: !within, ..ElfScan::default() });
    if let Some(scan) = &mut elf {
        // Malformed headers leave the build info unread and nothing excluded as linked; the banners are still read.
        match file.try_clone().map(|f| super::binaries::read_binary(f, len)) {
            Ok(Ok(Some((found, read)))) => {
                scope.root.charge_bytes(path, read)?;
                total += read;
                scan.build = super::binaries::identities(&found);
                needed = found.needed;
            }
            // What the file says (malformed, unsupported, too large) is the same next time; a read error may not be.
            Ok(Ok(None))
            | Ok(Err(super::binaries::BinaryError::Malformed(_)))
            | Ok(Err(super::binaries::BinaryError::Unsupported(_)))
            | Ok(Err(super::binaries::BinaryError::TooLarge { .. }))
            | Ok(Err(super::binaries::BinaryError::TooMany { .. })) => {}
            Ok(Err(super::binaries::BinaryError::Read(_))) | Err(_) => complete = false,
        }
    }
    if !within {
        return Ok(Opened { examined: Examined { sha256: None, elf }, read: total, complete });
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
        // Cut at the per-file budget, what the file holds is known, its versions not.
        let report = if cut { scanner.finish_prefix() } else { scanner.finish() };
        let mut libraries = report.findings;
        libraries.retain(|f| !needed.iter().any(|n| f.library.is_needed_as(n)));
        scan.too_many = report.overflowed || libraries.len() > MAX_ROWS_PER_FILE;
        libraries.truncate(MAX_ROWS_PER_FILE);
        scan.libraries = libraries;
        scan.cut = cut.then_some((read, len));
    }
    Ok(Opened { examined: Examined { sha256, elf }, read: total + read, complete })
}

pub fn collect(scope: &Scope, out: &mut Sink) {
    let aliases = usrmerge_aliases(&scope.root);
    // Past a scope budget, no more files are read (the walks still report their own problems).
    let mut stopped = false;
    super::walk_dirs(scope, out, C, DIRS, &mut |e: &Entry, out: &mut Sink| {
        if stopped
            || e.kind != FileType::RegularFile
            || e.size < 64
            || super::unowned::classify(e.path.name(), e.mode).is_none()
        {
            return true;
        }
        let path = e.path.shown();
        let owner = out.owner(&path, &aliases).map(|s| s.to_string());
        if owner.is_some() && !library_named(e.path.name()) {
            return true;
        }
        let scan = match out.elf_scans.get(&key(e)).filter(|s| !s.headers_only) {
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
    });
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
            "{path}: only the first {read} of its {size} bytes were looked at (budget max_file_bytes); libraries past them are not reported, and those found have no version"
        );
        out.not_read(C, path, &msg);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    thread_local! {
        /// Examinations this thread took from [`EXAMINED`].
        pub static HITS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    }

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

    /// The daemon read a host's 1.5 GB of unowned binaries on every crawl.
    #[test]
    fn an_unchanged_file_is_read_once_and_a_changed_one_again() {
        use crate::rootfs::{Budgets, Root};
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("usr/local/bin");
        std::fs::create_dir_all(&bin).unwrap();
        let tool = bin.join("tool");
        let elf = |tail: &[u8]| [&b"\x7fELF"[..], &[0u8; 60], b"zlib 1.2.13 ", tail].concat();
        std::fs::write(&tool, elf(b"one")).unwrap();
        // Read within the last seconds, a file may still change within its timestamp's tick.
        std::thread::sleep(std::time::Duration::from_millis(SETTLED_SECS as u64 * 1000 + 1100));
        let common =
            crate::encode::Common { host: "h".into(), scope: "image".into(), scope_id: "x".into(), crawl_time_us: 0 };
        let hits = || HITS.with(|h| h.get());
        let scope = |max_total_bytes| {
            let root = Root::with_budgets(dir.path(), Budgets { max_total_bytes, ..Budgets::default() }).unwrap();
            Scope { common: common.clone(), root, config: Default::default(), app_files: Default::default() }
        };
        let entry = |scope: &Scope| {
            let mut found = None;
            scope
                .root
                .walk(
                    "/usr/local/bin",
                    &mut |e| {
                        found = Some(e.clone());
                        true
                    },
                    &mut |e| panic!("{e}"),
                )
                .unwrap();
            found.unwrap()
        };
        let (reads, spent) = (scope(1 << 20), scope(0));
        let first = examine(&reads, &entry(&reads), "/usr/local/bin/tool", Some(1 << 20)).unwrap();
        let before = hits();
        let again = examine(&reads, &entry(&reads), "/usr/local/bin/tool", Some(1 << 20)).unwrap();
        assert_eq!(hits(), before + 1, "kept, not read");
        assert!(first.sha256.is_some());
        assert_eq!(again.sha256, first.sha256);
        assert_eq!(again.elf, first.elf);
        // What a kept examination read is charged as if read again: budgets cut where they did.
        let e = examine(&spent, &entry(&spent), "/usr/local/bin/tool", Some(1 << 20)).unwrap_err();
        assert!(e.is_budget(), "{e}");
        // Rewritten in place, same size, its mtime set back: its ctime moved, so it is read again.
        let mtime = std::fs::metadata(&tool).unwrap().modified().unwrap();
        std::fs::write(&tool, elf(b"two")).unwrap();
        std::fs::File::options().write(true).open(&tool).unwrap().set_modified(mtime).unwrap();
        let e = examine(&spent, &entry(&spent), "/usr/local/bin/tool", Some(1 << 20)).unwrap_err();
        assert!(e.is_budget(), "{e}");
        let changed = examine(&reads, &entry(&reads), "/usr/local/bin/tool", Some(1 << 20)).unwrap();
        assert_ne!(changed.sha256, first.sha256);
        // A file changed just now is read each time.
        let before = hits();
        let now = examine(&reads, &entry(&reads), "/usr/local/bin/tool", Some(1 << 20)).unwrap();
        assert_eq!((hits(), now.sha256), (before, changed.sha256));
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
