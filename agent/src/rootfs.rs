//! Reading inside a crawled root filesystem, which is hostile input.
//!
//! Every collector reads through [`Root`]. Paths are resolved by `pathrs`
//! (`openat2` with `RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS` where the kernel
//! has it, a userspace O_PATH resolver with the same guarantees where it is
//! missing or refused by seccomp): absolute symlinks are re-rooted at the
//! crawled root, `..` is clamped at it, magic links are refused, and resolution
//! and opening are one step — collectors only ever hold file descriptors.
//!
//! The first open is `O_PATH`, which has no side effects even on a FIFO or a
//! device; only after `fstat` says "regular file" (on a filesystem that is not
//! procfs, sysfs, cgroupfs and the like) is that same inode reopened for
//! reading, non-blocking. Directory walks never follow symlinks: each step
//! opens one name relative to its parent's descriptor with `O_NOFOLLOW`.
//!
//! FUSE and network filesystems mounted below a directory root (a running
//! container's, or one given by path) are never stepped onto unless the
//! operator asks for them ([`Root::refuse_mounts`], [`crate::mounts`]): a
//! hung one blocks any access, `fstat` included. Walks track each entry's real
//! in-root path and refuse it by the mount table; opens by path first try the
//! kernel's in-root resolution with `RESOLVE_NO_XDEV` (which fails at a mount
//! crossing before the filesystem mounted there is asked anything), and a path
//! that crosses a mount is first walked component by component, never onto a
//! refused mount point, before the real open.
//!
//! Everything is bounded by [`Budgets`], per scope: bytes per file, bytes in
//! total, directory entries, walk depth and wall time. Exhausting a budget is a
//! [`ReadError::Budget`], which a collector reports as a `crawl_errors` row.
//! Symlink hops are bounded by the resolver itself (the kernel's 40, or
//! pathrs' equivalent in the fallback).

use std::cell::{Cell, RefCell};
use std::ffi::OsStr;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pathrs::flags::OpenFlags;

use crate::mounts::{MountTable, refused_fs_type};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

/// Default cap on the bytes read from one file.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 256 << 20;

/// Per-scope limits. Hitting one ends the collector that hit it, not the crawl.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budgets {
    /// Bytes read from any one file.
    pub max_file_bytes: u64,
    /// Bytes read from all files by any one collector of the scope (see [`Root::fresh_budgets`]).
    pub max_total_bytes: u64,
    /// Directory entries visited by any one collector of the scope (its walks
    /// and listings; see [`Root::fresh_budgets`]).
    pub max_entries: u64,
    /// Directory depth below a walk's starting point.
    pub max_depth: usize,
    /// Wall time for the whole scope.
    pub max_wall: Duration,
    /// Rows of any one table from the scope (see [`crate::collectors::Sink`]).
    pub max_rows_per_table: u64,
    /// String bytes of any one table from the scope.
    pub max_table_bytes: u64,
    /// Bytes of any one string value; longer ones are cut.
    pub max_field_bytes: usize,
}

impl Default for Budgets {
    fn default() -> Self {
        Budgets {
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
            max_total_bytes: 2 << 30,
            max_entries: 2_000_000,
            max_depth: 64,
            max_wall: Duration::from_secs(300),
            max_rows_per_table: 1_000_000,
            max_table_bytes: 128 << 20,
            max_field_bytes: 1 << 20,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RootError {
    #[error("cannot open root {path}: {message}")]
    Open { path: PathBuf, message: String },
}

/// Why something inside the root could not be read. Each names the in-root path.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{path}: not found")]
    NotFound { path: String },
    #[error("{path}: not a regular file ({kind})")]
    NotRegular { path: String, kind: &'static str },
    #[error("{path}: not a directory ({kind})")]
    NotDirectory { path: String, kind: &'static str },
    #[error("{path}: {size} bytes exceeds the per-file budget of {limit} bytes")]
    TooLarge { path: String, size: u64, limit: u64 },
    #[error("{path}: symlink loop, too many symlink hops, or a magic link (refused)")]
    Loop { path: String },
    #[error("{path}: refused: {why}")]
    Refused { path: String, why: String },
    #[error("{path}: not read: {fs_type} filesystem mounted at {mount} (--read-network-fs reads it)")]
    RefusedMount { path: String, mount: String, fs_type: String },
    #[error("{path}: scope budget exhausted: {what}")]
    Budget { path: String, what: String },
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
}

impl ReadError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, ReadError::NotFound { .. })
    }
    pub fn is_budget(&self) -> bool {
        matches!(self, ReadError::Budget { .. })
    }
}

pub(crate) fn kind_name(ft: FileType) -> &'static str {
    match ft {
        FileType::RegularFile => "regular file",
        FileType::Directory => "directory",
        FileType::Symlink => "symlink",
        FileType::Fifo => "fifo",
        FileType::Socket => "socket",
        FileType::CharacterDevice => "character device",
        FileType::BlockDevice => "block device",
        FileType::Unknown => "unknown file type",
    }
}

/// Kernel pseudo-filesystems a crawl never reads or walks into.
fn pseudo_fs(magic: i64) -> Option<&'static str> {
    Some(match magic {
        0x9fa0 => "procfs",
        0x6265_6572 => "sysfs",
        0x0027_e0eb => "cgroupfs",
        0x6367_7270 => "cgroup2fs",
        0x6462_6720 => "debugfs",
        0x7472_6163 => "tracefs",
        0x7363_6673 => "securityfs",
        0xf97c_ff8c => "selinuxfs",
        0x4341_5d53 => "smackfs",
        0x6e73_6673 => "nsfs",
        0x0187 => "autofs",
        0xcafe_4a11 => "bpffs",
        0x1cd1 => "devpts",
        0x1980_0202 => "mqueue",
        0x6165_676c => "pstore",
        0x6265_6570 => "configfs",
        0xde5e_81e4 => "efivarfs",
        0x4249_4e4d => "binfmt_misc",
        0x6573_5543 => "fusectl",
        _ => return None,
    })
}

fn check_fs(fd: BorrowedFd<'_>, path: &str) -> Result<(), ReadError> {
    let st = rustix::fs::fstatfs(fd).map_err(|e| errno(path, e))?;
    match pseudo_fs(st.f_type as i64) {
        Some(name) => {
            Err(ReadError::Refused { path: path.to_string(), why: format!("on {name}, a kernel pseudo-filesystem") })
        }
        None => Ok(()),
    }
}

fn errno(path: &str, e: Errno) -> ReadError {
    let path = path.to_string();
    match e {
        Errno::NOENT | Errno::NOTDIR => ReadError::NotFound { path },
        Errno::LOOP => ReadError::Loop { path },
        Errno::XDEV => ReadError::Refused { path, why: "resolves through a magic link or out of the root".into() },
        e => ReadError::Io { path, source: e.into() },
    }
}

fn pathrs_err(path: &str, e: pathrs::error::Error) -> ReadError {
    use pathrs::error::ErrorKind;
    match e.kind() {
        ErrorKind::OsError(Some(n)) => errno(path, Errno::from_raw_os_error(n)),
        ErrorKind::SafetyViolation => ReadError::Refused { path: path.to_string(), why: e.to_string() },
        _ => ReadError::Io { path: path.to_string(), source: std::io::Error::other(e.to_string()) },
    }
}

/// Reopens the inode an `O_PATH` descriptor names, with `flags`, through
/// its magic link in the agent's own `/proc/self/fd` — the same inode,
/// whatever its path now names, so a file swapped for a device or a FIFO
/// after `fstat` is never opened. The `/proc/self/fd` directory is opened
/// once per process and checked to be procfs; pathrs' reopen, which also
/// guards against an attacker who can mount over the agent's own /proc (not
/// a container's power), set up a detached procfs and checked mount ids on
/// every call: 29 s of system time for 500,000 files (benches/README.md).
fn reopen(fd: BorrowedFd<'_>, flags: OFlags, shown: &str) -> Result<File, ReadError> {
    use std::sync::OnceLock;
    static PROC_FD: OnceLock<Option<OwnedFd>> = OnceLock::new();
    // Kept once known: the directory, or that /proc/self/fd is missing or not procfs. A
    // passing failure (out of descriptors, memory) is not kept.
    let opened = || -> Result<Option<OwnedFd>, Errno> {
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
        match rustix::fs::open("/proc/self/fd", flags, Mode::empty()) {
            Ok(d) => Ok((rustix::fs::fstatfs(&d)?.f_type as i64 == 0x9fa0).then_some(d)),
            Err(Errno::NOENT | Errno::NOTDIR | Errno::ACCESS | Errno::PERM) => Ok(None),
            Err(e) => Err(e),
        }
    };
    let dir = match PROC_FD.get() {
        Some(d) => d.as_ref(),
        None => match opened() {
            Ok(d) => {
                if d.is_none() {
                    tracing::warn!("no procfs at /proc/self/fd: files are reopened the slower way (pathrs)");
                }
                PROC_FD.get_or_init(|| d).as_ref()
            }
            Err(_) => None,
        },
    };
    match dir {
        Some(dir) => {
            use std::os::fd::AsRawFd;
            let name = fd.as_raw_fd().to_string();
            rustix::fs::openat(dir, name.as_str(), flags | OFlags::CLOEXEC, Mode::empty())
                .map(File::from)
                .map_err(|e| errno(shown, e))
        }
        None => {
            let flags = OpenFlags::from_bits_retain(u64::from((flags | OFlags::CLOEXEC).bits()));
            pathrs::Handle::from_fd(rustix::io::fcntl_dupfd_cloexec(fd, 0).map_err(|e| errno(shown, e))?)
                .reopen(flags)
                .map_err(|e| pathrs_err(shown, e))
        }
    }
}

/// Renders a file name for output: UTF-8 as is, other bytes as `\xNN`, so
/// distinct names stay distinct.
pub fn display_name(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    push_display(&mut out, bytes);
    out
}

fn push_display(out: &mut String, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for &b in chunk.invalid() {
            out.extend(['\\', 'x', HEX[usize::from(b >> 4)] as char, HEX[usize::from(b & 15)] as char]);
        }
    }
}

/// What a root reads from: one directory, or overlay layers merged in userspace.
#[derive(Debug)]
enum Backing {
    Dir(pathrs::Root),
    Layers(crate::layers::Layers),
}

fn layer_err(path: &str, e: crate::layers::LayerError) -> ReadError {
    use crate::layers::LayerError;
    match e {
        LayerError::NotFound | LayerError::NotDirectory => ReadError::NotFound { path: path.to_string() },
        LayerError::Loop => ReadError::Loop { path: path.to_string() },
        LayerError::Io(e) => errno(path, e),
        LayerError::TooMuch(what) => ReadError::Budget { path: path.to_string(), what: what.to_string() },
        LayerError::Refused(why) => ReadError::Refused { path: path.to_string(), why },
    }
}

/// A directory handle that all reads of one scope go through.
#[derive(Debug)]
pub struct Root {
    inner: Backing,
    path: PathBuf,
    budgets: Budgets,
    deadline: Instant,
    bytes_read: Cell<u64>,
    entries: Cell<u64>,
    /// Mounts below a directory root, when FUSE or network ones are refused and there are some.
    mounts: Option<RefCell<MountTable>>,
    /// Times the mount table was read again after meeting a mount it did not list.
    mount_refreshes: Cell<u32>,
    /// What to report about refused mounts (see [`Root::mount_report`]).
    mount_report: MountReport,
    /// Refused mounts a walk or a path met so far: mount point → filesystem type.
    mounts_met: RefCell<std::collections::BTreeMap<String, String>>,
}

/// What a root refuses to read of the mounts below it, as found when it was opened.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MountReport {
    /// (in-root mount point, filesystem type) of each refused mount.
    pub refused: Vec<(String, String)>,
    /// Why the mount table could not be read, when it could not.
    pub unreadable: Option<String>,
}

/// Times a scope's mount table is read again after meeting a mount it did not list.
const MAX_MOUNT_REFRESHES: u32 = 16;
/// Symlinks followed in one resolution, as the kernel's limit.
const MAX_SYMLINK_HOPS: usize = 40;

/// Bytes of a path an error quotes: an error names where it happened, it
/// does not carry a copy of a 64 KiB path (see [`WalkPath::quoted`]).
pub const MAX_QUOTE: usize = 4096;

/// A path met by [`Root::walk`], stored as its own name and a link to its
/// parent directory's path: the entries of one directory share their
/// parent's storage, so what a collector keeps of an entry costs its name,
/// however deep it lies (a 16 KiB path was copied three times per kept entry,
/// four times that as escaped text for non-UTF-8 names). Each name is made
/// text once, when the walk meets it; whole paths, as text or raw bytes, are
/// put together only when asked for.
#[derive(Clone)]
pub struct WalkPath(std::sync::Arc<PathNode>);

struct PathNode {
    parent: Option<WalkPath>,
    /// One name as text (see [`display_name`]); for the walk's start, its
    /// whole path ("" for the root).
    shown: Box<str>,
    /// The name's raw bytes, when they are not its text (not UTF-8).
    raw: Option<Box<[u8]>>,
    /// Bytes of the whole raw path, and of its text.
    len: usize,
    shown_len: usize,
}

impl PathNode {
    fn raw_name(&self) -> &[u8] {
        self.raw.as_deref().unwrap_or(self.shown.as_bytes())
    }
}

impl WalkPath {
    fn node(parent: Option<WalkPath>, name: &[u8]) -> WalkPath {
        let (shown, raw): (Box<str>, _) = match std::str::from_utf8(name) {
            Ok(s) => (s.into(), None),
            Err(_) => (display_name(name).into(), Some(name.into())),
        };
        let (len, shown_len) = match &parent {
            Some(p) => (p.0.len + 1 + name.len(), p.0.shown_len + 1 + shown.len()),
            None => (name.len(), shown.len()),
        };
        WalkPath(std::sync::Arc::new(PathNode { parent, shown, raw, len, shown_len }))
    }

    /// The path a walk starts from ("" for the root, else "/a/b").
    fn start(base: &str) -> WalkPath {
        Self::node(None, base.as_bytes())
    }

    fn child(&self, name: &[u8]) -> WalkPath {
        Self::node(Some(self.clone()), name)
    }

    /// Its nodes, from the walk's start down to itself.
    fn nodes(&self) -> Vec<&PathNode> {
        let mut out = Vec::new();
        let mut at = Some(self);
        while let Some(p) = at {
            out.push(&*p.0);
            at = p.0.parent.as_ref();
        }
        out.reverse();
        out
    }

    /// The last component's raw bytes.
    pub fn name(&self) -> &[u8] {
        self.0.raw_name()
    }

    /// The directory holding it (None for a walk's start).
    pub fn parent(&self) -> Option<&WalkPath> {
        self.0.parent.as_ref()
    }

    /// Length of the raw path in bytes.
    pub fn len(&self) -> usize {
        self.0.len
    }

    pub fn is_empty(&self) -> bool {
        self.0.len == 0
    }

    /// Feeds the raw path to `f` piece by piece (for hashing without a copy).
    pub fn for_each_chunk(&self, mut f: impl FnMut(&[u8])) {
        for (i, n) in self.nodes().into_iter().enumerate() {
            if i > 0 {
                f(b"/");
            }
            f(n.raw_name());
        }
    }

    /// The raw path, to open it again.
    pub fn raw(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.0.len);
        self.for_each_chunk(|c| out.extend_from_slice(c));
        out
    }

    /// The path for output: UTF-8 as is, other bytes as `\xNN` (see [`display_name`]).
    pub fn shown(&self) -> String {
        self.shown_upto(usize::MAX)
    }

    /// The path for an error message: its text cut to [`MAX_QUOTE`] bytes.
    pub fn quoted(&self) -> String {
        self.shown_upto(MAX_QUOTE)
    }

    fn shown_upto(&self, max: usize) -> String {
        let mut out = String::with_capacity(self.0.shown_len.min(max));
        for (i, n) in self.nodes().into_iter().enumerate() {
            if i > 0 {
                out.push('/');
            }
            out.push_str(&n.shown);
            if out.len() >= max {
                let end = (0..=max).rev().find(|&i| out.is_char_boundary(i)).unwrap_or(0);
                out.truncate(end);
                break;
            }
        }
        out
    }

    /// Orders paths by their raw bytes, as sorting the raw paths would.
    /// The directories two paths share are skipped, not compared byte by byte.
    pub fn cmp_raw(&self, other: &WalkPath) -> std::cmp::Ordering {
        let (a, b) = (self.nodes(), other.nodes());
        let same = a.iter().zip(&b).take_while(|(x, y)| std::ptr::eq(**x, **y)).count();
        // Past the shared nodes both go on with a `/`, so compare what follows it.
        let rest = |nodes: &[&PathNode]| {
            let mut out = Vec::new();
            for (i, n) in nodes.iter().enumerate() {
                if i > 0 {
                    out.push(b'/');
                }
                out.extend_from_slice(n.raw_name());
            }
            out
        };
        rest(&a[same..]).cmp(&rest(&b[same..]))
    }
}

impl std::fmt::Debug for WalkPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.quoted())
    }
}

/// One entry met by [`Root::walk`].
#[derive(Debug, Clone)]
pub struct Entry {
    /// Absolute path inside the root (shared with its directory's other entries).
    pub path: WalkPath,
    pub kind: FileType,
    pub size: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: i64,
    /// Change-detection stamp: mtime and ctime to the nanosecond.
    pub changed: [i64; 4],
    pub ino: u64,
    pub dev: u64,
    /// Hard links to the inode (st_nlink).
    pub nlink: u64,
    pub depth: usize,
}

impl Entry {
    fn new(path: WalkPath, st: &rustix::fs::Stat, depth: usize) -> Entry {
        Entry {
            path,
            kind: FileType::from_raw_mode(st.st_mode),
            size: st.st_size as u64,
            mode: st.st_mode & 0o7777,
            uid: st.st_uid,
            gid: st.st_gid,
            mtime: st.st_mtime,
            changed: [st.st_mtime, st.st_mtime_nsec as i64, st.st_ctime, st.st_ctime_nsec as i64],
            ino: st.st_ino,
            dev: st.st_dev,
            nlink: st.st_nlink as u64,
            depth,
        }
    }
}

impl Root {
    /// Opens `path` (on the agent's host) as the root of a scope.
    pub fn open(path: impl AsRef<Path>) -> Result<Root, RootError> {
        Self::with_budgets(path, Budgets::default())
    }

    pub fn with_budgets(path: impl AsRef<Path>, budgets: Budgets) -> Result<Root, RootError> {
        let path = path.as_ref().to_path_buf();
        let inner =
            pathrs::Root::open(&path).map_err(|e| RootError::Open { path: path.clone(), message: e.to_string() })?;
        Ok(Root {
            inner: Backing::Dir(inner),
            path,
            budgets,
            deadline: Instant::now() + budgets.max_wall,
            bytes_read: Cell::new(0),
            entries: Cell::new(0),
            mounts: None,
            mount_refreshes: Cell::new(0),
            mount_report: MountReport::default(),
            mounts_met: RefCell::default(),
        })
    }

    /// Uses an already-open directory as the root; `shown` names it in messages.
    pub fn from_fd(fd: OwnedFd, shown: impl Into<PathBuf>, budgets: Budgets) -> Root {
        Root {
            inner: Backing::Dir(pathrs::Root::from_fd(fd)),
            path: shown.into(),
            budgets,
            deadline: Instant::now() + budgets.max_wall,
            bytes_read: Cell::new(0),
            entries: Cell::new(0),
            mounts: None,
            mount_refreshes: Cell::new(0),
            mount_report: MountReport::default(),
            mounts_met: RefCell::default(),
        }
    }

    /// A root made of overlay layer directories on this host, top (upper) first,
    /// merged in userspace: how stopped containers and images are read.
    pub fn from_layers(
        layers: &[PathBuf],
        markers: crate::layers::Markers,
        shown: impl Into<PathBuf>,
        budgets: Budgets,
    ) -> Result<Root, RootError> {
        let shown = shown.into();
        let l = crate::layers::Layers::open(layers, markers)
            .map_err(|e| RootError::Open { path: shown.clone(), message: e.to_string() })?;
        let deadline = Instant::now() + budgets.max_wall;
        l.set_deadline(deadline);
        Ok(Root {
            inner: Backing::Layers(l),
            path: shown,
            budgets,
            deadline,
            bytes_read: Cell::new(0),
            entries: Cell::new(0),
            mounts: None,
            mount_refreshes: Cell::new(0),
            mount_report: MountReport::default(),
            mounts_met: RefCell::default(),
        })
    }

    /// Refuses the FUSE and network filesystems `table` lists below this
    /// directory root (see [`crate::mounts`]); a table that could not be read
    /// is reported and refuses nothing. Layered roots are merged from layer
    /// directories of the host's container storage and take no table.
    pub fn refuse_mounts(mut self, table: std::io::Result<MountTable>) -> Root {
        if !matches!(self.inner, Backing::Dir(_)) {
            return self;
        }
        match table {
            Ok(t) => {
                self.mount_report.refused = t.refused().map(|(mp, fs)| (display_name(mp), fs.to_string())).collect();
                if !self.mount_report.refused.is_empty() {
                    self.mounts = Some(RefCell::new(t));
                }
            }
            Err(e) => self.mount_report.unreadable = Some(e.to_string()),
        }
        self
    }

    /// The refused mounts found when the root was opened, and whether the table could be read.
    pub fn mount_report(&self) -> &MountReport {
        &self.mount_report
    }

    /// The refused mounts that walks or paths met since the last call, each
    /// once: (in-root mount point, filesystem type). Mounts nothing led to are
    /// not reported (a host's `/` has one below its container storage for
    /// every container on fuse-overlayfs).
    pub fn take_refused_mounts_met(&self) -> Vec<(String, String)> {
        std::mem::take(&mut *self.mounts_met.borrow_mut()).into_iter().collect()
    }

    /// Marks the top layer of a layered root as a container's upper
    /// directory, which overlayfs reads differently from its lower layers.
    pub fn with_upper_layer(self) -> Root {
        if let Backing::Layers(l) = &self.inner {
            l.set_upper(true);
        }
        self
    }

    /// Says whether the kernel that would mount a layered root follows
    /// overlay redirects (by default, as this host's overlay module does).
    pub fn with_overlay_redirects(self, follow: bool) -> Root {
        if let Backing::Layers(l) = &self.inner {
            l.set_follow_redirects(follow);
        }
        self
    }

    /// What the overlay merge refused so far (each naming the attribute), as
    /// errors to report; empty for directory roots. Each is returned once.
    pub fn take_layer_anomalies(&self) -> Vec<(String, ReadError)> {
        match &self.inner {
            Backing::Layers(l) => l
                .take_anomalies()
                .into_iter()
                .map(|a| {
                    let path = display_name(&a.path);
                    (path.clone(), ReadError::Refused { path, why: a.message })
                })
                .collect(),
            Backing::Dir(_) => Vec::new(),
        }
    }

    /// Single-layer name lookups the overlay merge has made (0 for directory roots).
    pub fn layer_lookups(&self) -> u64 {
        match &self.inner {
            Backing::Layers(l) => l.lookups(),
            Backing::Dir(_) => 0,
        }
    }

    pub fn budgets(&self) -> &Budgets {
        &self.budgets
    }

    /// Where this root lives on the agent's host (for messages only; never joined into paths).
    pub fn host_path(&self) -> &Path {
        &self.path
    }

    /// When the scope's wall budget runs out. Parsers that loop over bytes
    /// already read check it themselves (see [`crate::collectors::rpm::Work`]).
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// A [`ReadError::Budget`] once the scope's wall budget has run out: loops
    /// that do not read (parsing, joining) call it so a given-up scope stops.
    pub fn check_time(&self, path: &str) -> Result<(), ReadError> {
        if Instant::now() > self.deadline {
            return Err(ReadError::Budget {
                path: path.into(),
                what: format!("wall time of {:?}", self.budgets.max_wall),
            });
        }
        Ok(())
    }

    /// Counts `n` bytes read from `path` against the scope's total (for
    /// collectors that read ranges of a file they opened, e.g. ELF sections).
    pub fn charge_bytes(&self, path: &str, n: u64) -> Result<(), ReadError> {
        let total = self.bytes_read.get().saturating_add(n);
        self.bytes_read.set(total);
        if total > self.budgets.max_total_bytes {
            return Err(ReadError::Budget {
                path: path.into(),
                what: format!("total bytes read over {}", self.budgets.max_total_bytes),
            });
        }
        Ok(())
    }

    /// Starts the entry and total-bytes budgets afresh: called before each
    /// collector, so that where a budget cuts a walk or a read depends on the
    /// root alone, never on which collectors ran before it. (Collectors whose
    /// inputs did not change are not run again; with one shared count, the
    /// same root would be cut at a different place every crawl and its rows
    /// resent as changed.) A scope still reads at most `max_entries` and
    /// `max_total_bytes` per collector, and its wall budget bounds them all.
    pub fn fresh_budgets(&self) {
        self.entries.set(0);
        self.bytes_read.set(0);
    }

    /// Directory entries the scope may still visit.
    fn entries_left(&self) -> u64 {
        self.budgets.max_entries.saturating_sub(self.entries.get())
    }

    fn charge_entry(&self, path: &str) -> Result<(), ReadError> {
        self.charge_entry_at(|| path.to_string())
    }

    /// [`Root::charge_entry`], naming the path only when a budget runs out.
    fn charge_entry_at(&self, path: impl FnOnce() -> String) -> Result<(), ReadError> {
        let n = self.entries.get() + 1;
        self.entries.set(n);
        if n > self.budgets.max_entries {
            return Err(ReadError::Budget {
                path: path(),
                what: format!("more than {} directory entries", self.budgets.max_entries),
            });
        }
        if Instant::now() > self.deadline {
            return self.check_time(&path());
        }
        Ok(())
    }

    /// Resolves `rel` inside the root (leading `/` allowed), following symlinks in-root.
    fn resolve(&self, rel: &OsStr) -> Result<pathrs::Handle, ReadError> {
        let shown = display_name(rel.as_bytes());
        self.check_time(&shown)?;
        match &self.inner {
            Backing::Dir(r) if is_long(rel) => self.resolve_long(r, rel.as_bytes(), true, &shown),
            Backing::Dir(r) => {
                if self.mounts.is_some() {
                    // The kernel's in-root resolution, failing at any mount crossing before the
                    // filesystem mounted there is asked anything: most paths cross none.
                    let how = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS | ResolveFlags::NO_XDEV;
                    match rustix::fs::openat2(r, inner_path(rel), OFlags::PATH | OFlags::CLOEXEC, Mode::empty(), how) {
                        Ok(fd) => return Ok(pathrs::Handle::from_fd(fd)),
                        // A mount crossed, or no openat2 (seccomp, old kernel): walked with care first.
                        Err(Errno::XDEV | Errno::NOSYS | Errno::PERM | Errno::AGAIN) => {
                            self.careful(r.as_fd(), rel.as_bytes(), true)?;
                        }
                        Err(e) => return Err(errno(&shown, e)),
                    }
                }
                r.resolve(inner_path(rel)).map_err(|e| pathrs_err(&shown, e))
            }
            Backing::Layers(l) => {
                let f = l.resolve(rel.as_bytes(), true).map_err(|e| layer_err(&shown, e))?;
                Ok(pathrs::Handle::from_fd(l.handle(&f).map_err(|e| layer_err(&shown, e))?))
            }
        }
    }

    /// Resolves a path the kernel does not take in one call (longer than
    /// PATH_MAX: a walk reaches such paths through descriptors) with the
    /// same RESOLVE_IN_ROOT semantics: its first piece in-root, each further
    /// piece below the directory the previous one reached, with
    /// `RESOLVE_BENEATH` (resolving a path is resolving its pieces in turn,
    /// as long as none climbs above where it starts or restarts at the root
    /// through an absolute symlink: those fail with EXDEV, and the path is
    /// then resolved component by component, as are all long paths of a
    /// scope with refused mounts, see [`Root::careful`]). The last piece's
    /// symlink is followed when `follow_last`.
    fn resolve_long(
        &self,
        r: &pathrs::Root,
        rel: &[u8],
        follow_last: bool,
        shown: &str,
    ) -> Result<pathrs::Handle, ReadError> {
        let carefully = || self.careful(r.as_fd(), rel, follow_last).map(|(_, fd)| pathrs::Handle::from_fd(fd));
        if self.mounts.is_some() {
            return carefully();
        }
        let mut pieces = path_pieces(rel, PATH_MAX - 1);
        let first = pieces.next().unwrap_or_default();
        let mut at = OwnedFd::from(r.resolve(inner_path(OsStr::from_bytes(first))).map_err(|e| pathrs_err(shown, e))?);
        let mut pieces = pieces.peekable();
        while let Some(piece) = pieces.next() {
            self.check_time(shown)?;
            let mut flags = OFlags::PATH | OFlags::CLOEXEC;
            if !follow_last && pieces.peek().is_none() {
                flags |= OFlags::NOFOLLOW;
            }
            let how = ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
            at = match rustix::fs::openat2(&at, OsStr::from_bytes(piece), flags, Mode::empty(), how) {
                Ok(fd) => fd,
                // Out of the piece's start (`..`, an absolute symlink), or no openat2 (seccomp, old kernel).
                Err(Errno::XDEV | Errno::NOSYS | Errno::PERM | Errno::AGAIN) => return carefully(),
                Err(e) => return Err(errno(shown, e)),
            };
        }
        Ok(pathrs::Handle::from_fd(at))
    }

    /// Resolves `rel` inside the root component by component, as
    /// `RESOLVE_IN_ROOT` would (absolute symlinks re-rooted, `..` clamped, at
    /// most 40 symlinks), to decide whether it meets a refused mount: it never
    /// steps onto one (see [`Root::step`]). Returns the real in-root path
    /// (empty for the root) and an `O_PATH` descriptor of what it names:
    /// for identity checks, and what is read of a path too long for pathrs
    /// (see [`Root::resolve_long`]); other paths are read as pathrs opens them.
    fn careful(&self, root: BorrowedFd<'_>, rel: &[u8], follow_last: bool) -> Result<(Vec<u8>, OwnedFd), ReadError> {
        let shown = display_name(rel);
        let mut todo: std::collections::VecDeque<Vec<u8>> = rel.split(|&b| b == b'/').map(<[u8]>::to_vec).collect();
        // Directories below the root, with the length of the real path before each.
        let mut stack: Vec<(OwnedFd, usize)> = Vec::new();
        let mut path: Vec<u8> = Vec::new();
        let mut hops = 0;
        while let Some(name) = todo.pop_front() {
            if name.is_empty() || name == b"." {
                continue;
            }
            if name == b".." {
                if let Some((_, len)) = stack.pop() {
                    path.truncate(len);
                }
                continue;
            }
            self.check_time(&shown)?;
            let mut child = path.clone();
            child.push(b'/');
            child.extend_from_slice(&name);
            let dir = stack.last().map(|(fd, _)| fd.as_fd()).unwrap_or(root);
            let fd = self.step(dir, &name, &child).map_err(|e| match e {
                // Named by the path asked for, which may have reached the mount through symlinks.
                ReadError::RefusedMount { mount, fs_type, .. } => {
                    ReadError::RefusedMount { path: shown.clone(), mount, fs_type }
                }
                e => e,
            })?;
            let st = rustix::fs::fstat(&fd).map_err(|e| errno(&shown, e))?;
            match FileType::from_raw_mode(st.st_mode) {
                FileType::Symlink if follow_last || !todo.is_empty() => {
                    hops += 1;
                    if hops > MAX_SYMLINK_HOPS {
                        return Err(ReadError::Loop { path: shown });
                    }
                    let target = rustix::fs::readlinkat(&fd, "", Vec::new()).map_err(|e| errno(&shown, e))?;
                    let target = target.as_bytes();
                    if target.starts_with(b"/") {
                        stack.clear();
                        path.clear();
                    }
                    for c in target.split(|&b| b == b'/').rev() {
                        todo.push_front(c.to_vec());
                    }
                }
                FileType::Directory => {
                    stack.push((fd, path.len()));
                    path = child;
                }
                _ if todo.is_empty() => return Ok((child, fd)),
                _ => return Err(ReadError::NotFound { path: shown }),
            }
        }
        let fd = match stack.pop() {
            Some((fd, _)) => fd,
            None => rustix::io::fcntl_dupfd_cloexec(root, 0).map_err(|e| errno(&shown, e))?,
        };
        Ok((path, fd))
    }

    /// Opens the entry `name` of the directory `dir`, at the real in-root
    /// path `child`, as `O_PATH` without following it — unless it is at or
    /// below a refused mount, or a mount point the scope's mount table does
    /// not list as read (read again, a few times per scope, when it lists none
    /// there). A mount crossing is seen by `RESOLVE_NO_XDEV` before the
    /// filesystem mounted there is asked anything; without openat2 the table
    /// alone decides.
    fn step(&self, dir: BorrowedFd<'_>, name: &[u8], child: &[u8]) -> Result<OwnedFd, ReadError> {
        let shown = || display_name(child);
        let name = OsStr::from_bytes(name);
        let flags = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let plain = || rustix::fs::openat(dir, name, flags, Mode::empty()).map_err(|e| errno(&shown(), e));
        let Some(mounts) = &self.mounts else { return plain() };
        let refused = |t: &MountTable| {
            t.refused_at(child).map(|(mount, fs)| {
                let mount = display_name(mount);
                self.mounts_met.borrow_mut().entry(mount.clone()).or_insert_with(|| fs.to_string());
                ReadError::RefusedMount { path: shown(), mount, fs_type: fs.to_string() }
            })
        };
        if let Some(e) = refused(&mounts.borrow()) {
            return Err(e);
        }
        match rustix::fs::openat2(dir, name, flags, Mode::empty(), ResolveFlags::NO_XDEV | ResolveFlags::NO_MAGICLINKS)
        {
            Ok(fd) => return Ok(fd),
            Err(Errno::XDEV) => {}
            Err(Errno::NOSYS | Errno::PERM | Errno::AGAIN) => return plain(),
            Err(e) => return Err(errno(&shown(), e)),
        }
        // A mount point: stepped onto only when the table lists a filesystem there that is read.
        if mounts.borrow().mounted_at(child).is_none() && self.mount_refreshes.get() < MAX_MOUNT_REFRESHES {
            self.mount_refreshes.set(self.mount_refreshes.get() + 1);
            let _ = mounts.borrow_mut().refresh();
            if let Some(e) = refused(&mounts.borrow()) {
                return Err(e);
            }
        }
        match mounts.borrow().mounted_at(child) {
            Some(fs) if !refused_fs_type(fs) => plain(),
            Some(fs) => {
                self.mounts_met.borrow_mut().entry(shown()).or_insert_with(|| fs.to_string());
                Err(ReadError::RefusedMount { path: shown(), mount: shown(), fs_type: fs.into() })
            }
            None => Err(ReadError::Refused {
                path: shown(),
                why: "a mount point the scope's mount table does not list (mounted or moved during the crawl); not stepped onto".into(),
            }),
        }
    }

    /// Opens a regular file inside the root for reading. Anything else is
    /// refused without having been opened for I/O.
    pub fn open_file(&self, rel: impl AsRef<OsStr>) -> Result<(File, u64), ReadError> {
        let raw = rel.as_ref();
        let rel = &display_name(raw.as_bytes());
        let handle = self.resolve(raw)?;
        let st = rustix::fs::fstat(&handle).map_err(|e| errno(rel, e))?;
        let ft = FileType::from_raw_mode(st.st_mode);
        if ft != FileType::RegularFile {
            return Err(ReadError::NotRegular { path: rel.to_string(), kind: kind_name(ft) });
        }
        check_fs(handle.as_fd(), rel)?;
        let file = reopen(handle.as_fd(), OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY, rel)?;
        Ok((file, st.st_size as u64))
    }

    /// Opens a regular file to be read whole by the caller, with its size:
    /// refused over the per-file budget, and its size charged to the scope's
    /// byte budget as [`Root::read`] would charge it. The caller reads no more
    /// than the size returned.
    pub fn open_sized(&self, rel: impl AsRef<OsStr>) -> Result<(File, u64), ReadError> {
        let limit = self.budgets.max_file_bytes;
        let (file, size) = self.open_file(rel.as_ref())?;
        let rel = &display_name(rel.as_ref().as_bytes());
        if size > limit {
            return Err(ReadError::TooLarge { path: rel.to_string(), size, limit });
        }
        self.charge_bytes(rel, size)?;
        Ok((file, size))
    }

    /// Reads a whole regular file, refusing files over the per-file budget.
    pub fn read(&self, rel: impl AsRef<OsStr>) -> Result<Vec<u8>, ReadError> {
        self.read_limited(rel, self.budgets.max_file_bytes)
    }

    /// Reads a whole regular file of at most `limit` bytes (and within the per-file budget).
    pub fn read_limited(&self, rel: impl AsRef<OsStr>, limit: u64) -> Result<Vec<u8>, ReadError> {
        let (file, size) = self.open_file(rel.as_ref())?;
        self.read_opened(file, size, &display_name(rel.as_ref().as_bytes()), limit)
    }

    /// Like [`Root::read_limited`], once per inode: None, unread and
    /// uncharged, when the file opened is one in `seen` (another hard link to
    /// it, or a path through a symlinked directory). Resolves the path once.
    pub fn read_limited_once(
        &self,
        rel: impl AsRef<OsStr>,
        limit: u64,
        seen: &mut std::collections::HashSet<(u64, u64)>,
    ) -> Result<Option<Vec<u8>>, ReadError> {
        let (file, size) = self.open_file(rel.as_ref())?;
        let rel = &display_name(rel.as_ref().as_bytes());
        let st = rustix::fs::fstat(&file).map_err(|e| errno(rel, e))?;
        if !seen.insert((st.st_dev as u64, st.st_ino as u64)) {
            return Ok(None);
        }
        self.read_opened(file, size, rel, limit).map(Some)
    }

    fn read_opened(&self, file: File, size: u64, rel: &str, limit: u64) -> Result<Vec<u8>, ReadError> {
        let limit = limit.min(self.budgets.max_file_bytes);
        if size > limit {
            return Err(ReadError::TooLarge { path: rel.to_string(), size, limit });
        }
        let buf = read_capped(file, rel, limit, size)?;
        if buf.len() as u64 > limit {
            return Err(ReadError::TooLarge { path: rel.to_string(), size: buf.len() as u64, limit });
        }
        self.charge_bytes(rel, buf.len() as u64)?;
        Ok(buf)
    }

    /// Reads at most `limit` bytes from the start of a regular file; the flag
    /// says whether the file was longer.
    pub fn read_prefix(&self, rel: impl AsRef<OsStr>, limit: u64) -> Result<(Vec<u8>, bool), ReadError> {
        let limit = limit.min(self.budgets.max_file_bytes);
        let (file, size) = self.open_file(rel.as_ref())?;
        let rel = &display_name(rel.as_ref().as_bytes());
        let mut buf = read_capped(file, rel, limit, size)?;
        let truncated = buf.len() as u64 > limit;
        buf.truncate(limit as usize);
        self.charge_bytes(rel, buf.len() as u64)?;
        Ok((buf, truncated))
    }

    /// Feeds a regular file to `f` in chunks, up to `limit` bytes; returns
    /// the bytes read, or `TooLarge` without feeding the rest.
    pub fn stream(&self, rel: impl AsRef<OsStr>, limit: u64, f: impl FnMut(&[u8])) -> Result<u64, ReadError> {
        self.stream_expecting(rel, None, limit, f)
    }

    /// Like [`Root::stream`], until `f` returns false (a parser that stopped
    /// at its deadline): the rest of the file is not read.
    pub fn stream_until(
        &self,
        rel: impl AsRef<OsStr>,
        limit: u64,
        f: impl FnMut(&[u8]) -> bool,
    ) -> Result<u64, ReadError> {
        self.stream_inner(rel.as_ref(), None, limit, f)
    }

    /// Like [`Root::stream`], but refuses to read unless the opened file is
    /// the inode `(dev, ino)` a walk saw — a file swapped (e.g. for a symlink)
    /// after the walk is reported, not read in its place.
    pub fn stream_expecting(
        &self,
        rel: impl AsRef<OsStr>,
        expect: Option<(u64, u64)>,
        limit: u64,
        mut f: impl FnMut(&[u8]),
    ) -> Result<u64, ReadError> {
        self.stream_inner(rel.as_ref(), expect, limit, |chunk| {
            f(chunk);
            true
        })
    }

    fn stream_inner(
        &self,
        rel: &OsStr,
        expect: Option<(u64, u64)>,
        limit: u64,
        f: impl FnMut(&[u8]) -> bool,
    ) -> Result<u64, ReadError> {
        let limit = limit.min(self.budgets.max_file_bytes);
        let (file, size) = self.open_file(rel)?;
        let rel = &display_name(rel.as_bytes());
        if let Some(want) = expect {
            use std::os::unix::fs::MetadataExt;
            let m = file.metadata().map_err(|e| ReadError::Io { path: rel.to_string(), source: e })?;
            if (m.dev(), m.ino()) != want {
                return Err(ReadError::Refused { path: rel.to_string(), why: "changed while being crawled".into() });
            }
        }
        if size > limit {
            return Err(ReadError::TooLarge { path: rel.to_string(), size, limit });
        }
        let (total, stopped) = self.feed(&file, rel, limit, f)?;
        // Grown past the limit since it was opened: refused, as a file that long would have been.
        use std::os::unix::fs::FileExt;
        let mut more = [0u8; 1];
        if !stopped && total == limit && file.read_at(&mut more, total).is_ok_and(|n| n > 0) {
            return Err(ReadError::TooLarge { path: rel.to_string(), size: total + 1, limit });
        }
        Ok(total)
    }

    /// Feeds `file` to `f` in chunks from its start, at most `limit` bytes,
    /// each chunk counted against the scope's byte budget and its deadline,
    /// until `f` returns false. Returns the bytes read and whether `f` stopped.
    fn feed(
        &self,
        file: &File,
        rel: &str,
        limit: u64,
        mut f: impl FnMut(&[u8]) -> bool,
    ) -> Result<(u64, bool), ReadError> {
        use std::os::unix::fs::FileExt;
        let mut buf = vec![0u8; 64 << 10];
        let mut total = 0u64;
        while total < limit {
            self.check_time(rel)?;
            let want = (limit - total).min(buf.len() as u64) as usize;
            let n = file
                .read_at(&mut buf[..want], total)
                .map_err(|e| ReadError::Io { path: rel.to_string(), source: e })?;
            if n == 0 {
                break;
            }
            total += n as u64;
            self.charge_bytes(rel, n as u64)?;
            if !f(&buf[..n]) {
                return Ok((total, true));
            }
        }
        Ok((total, false))
    }

    /// Feeds a file opened with [`Root::open_file`] to `f` in chunks from its
    /// start, at most `limit` bytes (and the per-file budget) however long it
    /// is, each chunk counted against the scope's byte budget and its
    /// deadline, until `f` returns false. Returns the bytes read and whether
    /// the file went on past `limit` (its `size` as opened). For collectors that
    /// read a file's headers positionally first, then its contents, from one open.
    pub fn stream_opened(
        &self,
        file: &File,
        rel: &str,
        size: u64,
        limit: u64,
        f: impl FnMut(&[u8]) -> bool,
    ) -> Result<(u64, bool), ReadError> {
        let limit = limit.min(self.budgets.max_file_bytes);
        let (total, stopped) = self.feed(file, rel, limit, f)?;
        Ok((total, !stopped && total >= limit && size > limit))
    }

    /// Identity (device, inode) of what `rel` resolves to, to notice two paths
    /// naming one file (e.g. /var/lib/rpm linked to /usr/lib/sysimage/rpm).
    /// What change detection compares of `rel` (symlinks followed in-root):
    /// (dev, ino, size, mode, mtime, mtime ns, ctime, ctime ns) and whether it is a directory.
    pub fn stamp(&self, rel: impl AsRef<OsStr>) -> Result<([i64; 8], bool), ReadError> {
        let handle = self.resolve(rel.as_ref())?;
        let shown = &display_name(rel.as_ref().as_bytes());
        let st = rustix::fs::fstat(&handle).map_err(|e| errno(shown, e))?;
        let stamp = [
            st.st_dev as i64,
            st.st_ino as i64,
            st.st_size,
            st.st_mode as i64,
            st.st_mtime,
            st.st_mtime_nsec as i64,
            st.st_ctime,
            st.st_ctime_nsec as i64,
        ];
        Ok((stamp, FileType::from_raw_mode(st.st_mode) == FileType::Directory))
    }

    pub fn file_id(&self, rel: impl AsRef<OsStr>) -> Result<(u64, u64), ReadError> {
        let handle = self.resolve(rel.as_ref())?;
        let rel = &display_name(rel.as_ref().as_bytes());
        let st = rustix::fs::fstat(&handle).map_err(|e| errno(rel, e))?;
        Ok((st.st_dev as u64, st.st_ino as u64))
    }

    /// The target of the symlink at `rel` (the link itself is not followed).
    pub fn read_link(&self, rel: impl AsRef<OsStr>) -> Result<String, ReadError> {
        let shown = display_name(rel.as_ref().as_bytes());
        self.check_time(&shown)?;
        match &self.inner {
            Backing::Dir(r) if is_long(rel.as_ref()) => {
                let link = self.resolve_long(r, rel.as_ref().as_bytes(), false, &shown)?;
                rustix::fs::readlinkat(&link, "", Vec::new())
                    .map(|t| display_name(t.as_bytes()))
                    .map_err(|e| errno(&shown, if e == Errno::NOENT { Errno::INVAL } else { e }))
            }
            Backing::Dir(r) => {
                if self.mounts.is_some() {
                    self.careful(r.as_fd(), rel.as_ref().as_bytes(), false)?;
                }
                r.readlink(inner_path(rel.as_ref()))
                    .map(|p| display_name(p.as_os_str().as_bytes()))
                    .map_err(|e| pathrs_err(&shown, e))
            }
            Backing::Layers(l) => {
                l.read_link(rel.as_ref().as_bytes()).map(|t| display_name(&t)).map_err(|e| layer_err(&shown, e))
            }
        }
    }

    /// Whether the directory `rel` (in a container's own layer) may change
    /// what lies below it in the lower layers: an opaque marker or a redirect
    /// that `markers`' driver honours. A directory that cannot be opened may.
    pub fn dir_hides_lower(&self, rel: &[u8], markers: crate::layers::Markers) -> bool {
        let shown = display_name(rel);
        self.resolve(OsStr::from_bytes(rel))
            .and_then(|h| reopen(h.as_fd(), OFlags::RDONLY | OFlags::DIRECTORY, &shown))
            .map(|f| {
                let fd = OwnedFd::from(f);
                markers.is_opaque(fd.as_fd()) || markers.has_redirect(fd.as_fd())
            })
            .unwrap_or(true)
    }

    /// Names in the directory `rel` (symlinks in `rel` followed in-root), sorted.
    pub fn list_dir(&self, rel: &str) -> Result<Vec<Vec<u8>>, ReadError> {
        if let Backing::Layers(l) = &self.inner {
            self.check_time(rel)?;
            let names = l.list(rel.as_bytes(), self.entries_left()).map_err(|e| layer_err(rel, e))?;
            for _ in &names {
                self.charge_entry(rel)?;
            }
            return Ok(names);
        }
        let dir = self.open_dir(rel)?;
        let mut names = Vec::new();
        for_each_name(dir.as_fd(), rel, |name| {
            self.charge_entry(rel)?;
            names.push(name.to_vec());
            Ok(())
        })?;
        names.sort();
        Ok(names)
    }

    fn open_dir(&self, rel: &str) -> Result<OwnedFd, ReadError> {
        let handle = self.resolve(OsStr::new(rel))?;
        let st = rustix::fs::fstat(&handle).map_err(|e| errno(rel, e))?;
        let ft = FileType::from_raw_mode(st.st_mode);
        if ft != FileType::Directory {
            return Err(ReadError::NotDirectory { path: rel.to_string(), kind: kind_name(ft) });
        }
        check_fs(handle.as_fd(), rel)?;
        let f = reopen(handle.as_fd(), OFlags::RDONLY | OFlags::DIRECTORY, rel)?;
        Ok(OwnedFd::from(f))
    }

    /// Walks the tree under `start` (which may itself be reached through
    /// symlinks, in-root) without following any symlink below it. `visit`
    /// sees every entry below `start` and returns whether to descend into a
    /// directory. Problems with single entries go to `on_error` (quoting at
    /// most [`MAX_QUOTE`] bytes of the path) and the walk goes on; an
    /// exhausted budget ends the walk with that error.
    pub fn walk(
        &self,
        start: &str,
        visit: &mut dyn FnMut(&Entry) -> bool,
        on_error: &mut dyn FnMut(ReadError),
    ) -> Result<(), ReadError> {
        let base = if start == "/" { String::new() } else { format!("/{}", start.trim_matches('/')) };
        let at = WalkPath::start(&base);
        if let Backing::Layers(l) = &self.inner {
            // The start may be reached through symlinks; entries below it never are.
            let f = l.resolve(start.as_bytes(), true).map_err(|e| layer_err(start, e))?;
            if FileType::from_raw_mode(f.stat.st_mode) != FileType::Directory {
                return Err(ReadError::NotDirectory {
                    path: start.to_string(),
                    kind: kind_name(FileType::from_raw_mode(f.stat.st_mode)),
                });
            }
            return self.walk_layers(l, &at, 1, visit, on_error);
        }
        // With refused mounts, entries are checked by their real in-root path: the start's, found
        // with care, must be the directory opened.
        let real = match (&self.inner, &self.mounts) {
            (Backing::Dir(r), Some(_)) => Some(self.careful(r.as_fd(), start.as_bytes(), true)?),
            _ => None,
        };
        let dir = self.open_dir(start)?;
        let st = rustix::fs::fstat(&dir).map_err(|e| errno(start, e))?;
        if let Some((_, fd)) = &real {
            let seen = rustix::fs::fstat(fd).map_err(|e| errno(start, e))?;
            if (seen.st_dev, seen.st_ino) != (st.st_dev, st.st_ino) {
                return Err(ReadError::Refused { path: start.to_string(), why: "changed while being crawled".into() });
            }
        }
        let mut ancestors = vec![(st.st_dev as u64, st.st_ino as u64)];
        let real = real.map(|(p, _)| p);
        self.walk_dir(dir.as_fd(), &at, real.as_deref(), 1, &mut ancestors, visit, on_error)
    }

    fn walk_layers(
        &self,
        l: &crate::layers::Layers,
        at: &WalkPath,
        depth: usize,
        visit: &mut dyn FnMut(&Entry) -> bool,
        on_error: &mut dyn FnMut(ReadError),
    ) -> Result<(), ReadError> {
        // One merged listing per directory, its names in one buffer; each is looked up in the
        // directory the listing found (no re-resolution of its path) as the walk meets it.
        let raw = if at.is_empty() { b"/".to_vec() } else { at.raw() };
        let mut names = l.names(&raw, self.entries_left()).map_err(|e| layer_err(&at.quoted(), e))?;
        drop(raw);
        for i in 0..names.len() {
            let Some(st) = l.stat(&mut names, i).map_err(|e| layer_err(&at.quoted(), e))? else { continue };
            self.charge_entry_at(|| at.quoted())?;
            let entry = Entry::new(at.child(names.name(i)), &st, depth);
            if !visit(&entry) || entry.kind != FileType::Directory {
                continue;
            }
            if depth >= self.budgets.max_depth {
                on_error(ReadError::Budget {
                    path: entry.path.quoted(),
                    what: format!("directory depth over {}", self.budgets.max_depth),
                });
                continue;
            }
            // Below, this directory's descriptors (one per layer holding it) are not held.
            names.release();
            self.walk_layers(l, &entry.path, depth + 1, visit, on_error)?;
        }
        Ok(())
    }

    fn walk_dir(
        &self,
        dir: BorrowedFd<'_>,
        at: &WalkPath,
        real: Option<&[u8]>,
        depth: usize,
        ancestors: &mut Vec<(u64, u64)>,
        visit: &mut dyn FnMut(&Entry) -> bool,
        on_error: &mut dyn FnMut(ReadError),
    ) -> Result<(), ReadError> {
        // The names, sorted, are held while the directory is walked: in one
        // buffer, each known by where it lies, not an allocation each.
        let mut bytes = Vec::new();
        let mut names: Vec<(u32, u32)> = Vec::new();
        for_each_name(dir, &at.quoted(), |n| {
            self.charge_entry_at(|| at.quoted())?;
            let (from, to) = (bytes.len(), bytes.len() + n.len());
            let (Ok(from), Ok(to)) = (u32::try_from(from), u32::try_from(to)) else {
                return Err(ReadError::Budget { path: at.quoted(), what: "names in one directory over 4 GiB".into() });
            };
            names.push((from, to));
            bytes.extend_from_slice(n);
            Ok(())
        })?;
        let of = |(from, to): (u32, u32)| &bytes[from as usize..to as usize];
        names.sort_unstable_by(|a, b| of(*a).cmp(of(*b)));
        for name in names {
            let name = of(name);
            let path = at.child(name);
            let os = OsStr::from_bytes(name);
            let real_child = real.map(|r| [r, &b"/"[..], name].concat());
            let (st, handle) = match &real_child {
                // Refused mounts below the root: never stat a mount point before knowing what is mounted there.
                Some(real_child) => match self.step(dir, name, real_child) {
                    Ok(fd) => match rustix::fs::fstat(&fd) {
                        Ok(st) => (st, Some(fd)),
                        Err(e) => {
                            on_error(errno(&path.quoted(), e));
                            continue;
                        }
                    },
                    // A refused mount point: the scope reports it once, not once per walk.
                    Err(ReadError::RefusedMount { path, mount, .. }) if path == mount => continue,
                    Err(e) => {
                        on_error(e);
                        continue;
                    }
                },
                None => match rustix::fs::statat(dir, os, AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(st) => (st, None),
                    Err(e) => {
                        on_error(errno(&path.quoted(), e));
                        continue;
                    }
                },
            };
            let entry = Entry::new(path, &st, depth);
            let descend = visit(&entry);
            if entry.kind != FileType::Directory || !descend {
                continue;
            }
            if depth >= self.budgets.max_depth {
                on_error(ReadError::Budget {
                    path: entry.path.quoted(),
                    what: format!("directory depth over {}", self.budgets.max_depth),
                });
                continue;
            }
            let id = (entry.dev, entry.ino);
            if ancestors.contains(&id) {
                on_error(ReadError::Refused {
                    path: entry.path.quoted(),
                    why: "directory cycle (bind mount or hard link)".into(),
                });
                continue;
            }
            let sub = match handle {
                // The directory just checked, opened through its own "." (which crosses no mount):
                // no second lookup of the name.
                Some(fd) => rustix::fs::openat(
                    &fd,
                    ".",
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NONBLOCK,
                    Mode::empty(),
                )
                .map_err(|e| errno(&entry.path.quoted(), e)),
                None => rustix::fs::openat(
                    dir,
                    os,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK,
                    Mode::empty(),
                )
                .map_err(|e| errno(&entry.path.quoted(), e)),
            };
            let sub = match sub {
                Ok(fd) => fd,
                Err(e) => {
                    on_error(e);
                    continue;
                }
            };
            match check_fs(sub.as_fd(), &entry.path.quoted()) {
                Ok(()) => {}
                // A kernel pseudo-filesystem holds no content of the scope (a container's bind of the
                // host's / brings /proc, /sys and /dev/pts below it): passed by, not an error.
                Err(ReadError::Refused { .. }) => continue,
                Err(e) => {
                    on_error(e);
                    continue;
                }
            }
            ancestors.push(id);
            let r =
                self.walk_dir(sub.as_fd(), &entry.path, real_child.as_deref(), depth + 1, ancestors, visit, on_error);
            ancestors.pop();
            r?;
        }
        Ok(())
    }
}

/// Bytes of a path the kernel takes in one call, its NUL included.
const PATH_MAX: usize = 4096;

/// Whether `rel` is too long to be resolved in one call (see [`Root::resolve_long`]).
fn is_long(rel: &OsStr) -> bool {
    inner_path(rel).as_os_str().len() >= PATH_MAX
}

/// `path` (leading slashes dropped) cut at slashes into pieces of at most
/// `max` bytes: resolved in turn, they resolve it. A single name longer
/// than `max` is a piece of its own (which no filesystem has: the kernel
/// says so).
fn path_pieces(path: &[u8], max: usize) -> impl Iterator<Item = &[u8]> {
    let mut rest = &path[path.iter().position(|&c| c != b'/').unwrap_or(path.len())..];
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let end = if rest.len() <= max {
            rest.len()
        } else {
            match rest[..=max].iter().rposition(|&c| c == b'/') {
                Some(0) | None => rest.iter().position(|&c| c == b'/').unwrap_or(rest.len()),
                Some(i) => i,
            }
        };
        let piece = &rest[..end];
        rest = &rest[end..];
        rest = &rest[rest.iter().position(|&c| c != b'/').unwrap_or(rest.len())..];
        Some(piece)
    })
}

/// `rel` relative to the root: leading slashes dropped, empty meaning the root itself.
fn inner_path(rel: &OsStr) -> &Path {
    let b = rel.as_bytes();
    let start = b.iter().position(|&c| c != b'/').unwrap_or(b.len());
    if start == b.len() { Path::new(".") } else { Path::new(OsStr::from_bytes(&b[start..])) }
}

/// Reads at most `limit` bytes and one more; `size` (what fstat said) sizes
/// the buffer, so a large file is not read into one twice its size.
fn read_capped(file: File, rel: &str, limit: u64, size: u64) -> Result<Vec<u8>, ReadError> {
    let mut buf = Vec::with_capacity(usize::try_from(size.min(limit)).unwrap_or(0).saturating_add(1));
    // One byte more than allowed, to notice a file that grew after fstat.
    file.take(limit + 1).read_to_end(&mut buf).map_err(|e| ReadError::Io { path: rel.to_string(), source: e })?;
    Ok(buf)
}

/// Calls `f` with each name in the open directory `dir` except `.` and `..`.
fn for_each_name(
    dir: BorrowedFd<'_>,
    path: &str,
    mut f: impl FnMut(&[u8]) -> Result<(), ReadError>,
) -> Result<(), ReadError> {
    let dup = rustix::io::dup(dir).map_err(|e| errno(path, e))?;
    let mut d = rustix::fs::Dir::new(dup).map_err(|e| errno(path, e))?;
    while let Some(ent) = d.read() {
        let ent = ent.map_err(|e| errno(path, e))?;
        let name = ent.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        f(name)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mounts::MountTable;
    use std::os::unix::fs::symlink;

    fn tree() -> (tempfile::TempDir, tempfile::TempDir) {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("marker"), "OUTSIDE-SECRET").unwrap();
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("etc")).unwrap();
        std::fs::write(root.path().join("etc/real"), "inside").unwrap();
        std::fs::write(root.path().join("marker"), "inside-marker").unwrap();
        (root, outside)
    }

    #[test]
    fn absolute_symlinks_are_rerooted() {
        let (root, outside) = tree();
        // Points at the marker outside; inside the root it must mean <root>/<outside>/marker.
        symlink(outside.path().join("marker"), root.path().join("etc/abs")).unwrap();
        symlink("/etc/real", root.path().join("etc/abs_in")).unwrap();
        let r = Root::open(root.path()).unwrap();
        assert!(r.read("etc/abs").unwrap_err().is_not_found());
        assert_eq!(r.read("/etc/abs_in").unwrap(), b"inside");
    }

    #[test]
    fn dotdot_is_clamped_at_the_root() {
        let (root, _outside) = tree();
        symlink("../../../../../../marker", root.path().join("etc/up")).unwrap();
        let r = Root::open(root.path()).unwrap();
        assert_eq!(r.read("etc/up").unwrap(), b"inside-marker");
        assert_eq!(r.read("../../../../marker").unwrap(), b"inside-marker");
    }

    #[test]
    fn loops_fifos_and_directories_are_refused_not_followed() {
        let (root, _outside) = tree();
        symlink("b", root.path().join("etc/a")).unwrap();
        symlink("a", root.path().join("etc/b")).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            root.path().join("etc/fifo"),
            FileType::Fifo,
            Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        let r = Root::open(root.path()).unwrap();
        assert!(matches!(r.read("etc/a"), Err(ReadError::Loop { .. })), "{:?}", r.read("etc/a"));
        assert!(matches!(r.read("etc/fifo"), Err(ReadError::NotRegular { kind: "fifo", .. })));
        assert!(matches!(r.read("etc"), Err(ReadError::NotRegular { kind: "directory", .. })));
    }

    #[test]
    fn reads_are_bounded_per_file_and_per_scope() {
        let (root, _outside) = tree();
        std::fs::write(root.path().join("big"), vec![b'x'; 1000]).unwrap();
        let b = Budgets { max_file_bytes: 999, max_total_bytes: 1500, ..Budgets::default() };
        let r = Root::with_budgets(root.path(), b).unwrap();
        let e = r.read("big").unwrap_err();
        assert!(matches!(e, ReadError::TooLarge { size: 1000, limit: 999, .. }), "{e}");
        assert_eq!(r.read_prefix("big", 800).unwrap().0.len(), 800);
        let e = r.read_prefix("big", 800).unwrap_err();
        assert!(e.is_budget(), "{e}");
    }

    #[test]
    fn magic_links_and_procfs_are_refused() {
        let (root, _outside) = tree();
        symlink("/proc/self/root/etc/hostname", root.path().join("etc/magic")).unwrap();
        let r = Root::open(root.path()).unwrap();
        // Re-rooted, /proc/self/root does not exist inside the tree.
        assert!(r.read("etc/magic").is_err());
        // Crawling the host's /: its /proc is a pseudo-filesystem, never read.
        let host = Root::open("/").unwrap();
        let e = host.read("/proc/self/status").unwrap_err();
        assert!(matches!(e, ReadError::Refused { .. }), "{e}");
        assert!(matches!(
            host.read("/proc/self/root/etc/hostname"),
            Err(ReadError::Refused { .. } | ReadError::Loop { .. })
        ));
    }

    #[test]
    fn walk_does_not_follow_symlinks_and_reports_depth_and_cycles() {
        let (root, outside) = tree();
        std::fs::create_dir_all(root.path().join("a/b/c/d")).unwrap();
        std::fs::write(root.path().join("a/b/c/d/deep"), "x").unwrap();
        symlink(outside.path(), root.path().join("a/out")).unwrap();
        std::fs::write(root.path().join(OsStr::from_bytes(b"a/bad\xffname")), "y").unwrap();
        let b = Budgets { max_depth: 3, ..Budgets::default() };
        let r = Root::with_budgets(root.path(), b).unwrap();
        let mut seen = Vec::new();
        let mut errs = Vec::new();
        r.walk(
            "/a",
            &mut |e| {
                seen.push((e.path.shown(), e.kind));
                true
            },
            &mut |e| errs.push(e.to_string()),
        )
        .unwrap();
        let paths: Vec<&str> = seen.iter().map(|(p, _)| p.as_str()).collect();
        assert!(paths.contains(&"/a/out"), "{paths:?}");
        assert!(paths.contains(&"/a/bad\\xffname"), "{paths:?}");
        assert!(!paths.iter().any(|p| p.contains("marker")), "walk followed a symlink: {paths:?}");
        assert!(paths.contains(&"/a/b/c"), "{paths:?}");
        assert!(!paths.contains(&"/a/b/c/d/deep"), "{paths:?}");
        assert!(errs.iter().any(|e| e.contains("depth over 3")), "{errs:?}");
        let link = seen.iter().find(|(p, _)| p == "/a/out").unwrap();
        assert_eq!(link.1, FileType::Symlink);
        assert!(r.read_link("/a/out").unwrap().ends_with(outside.path().file_name().unwrap().to_str().unwrap()));
    }

    /// Regression: FUSE's own magic (0x65735546) was listed as fusectl, so every
    /// container on fuse-overlayfs was refused.
    #[test]
    fn fuse_filesystems_are_not_pseudo_filesystems() {
        assert_eq!(pseudo_fs(0x6573_5546), None);
        assert_eq!(pseudo_fs(0x6573_5543), Some("fusectl"));
        assert_eq!(pseudo_fs(0x9fa0), Some("procfs"));
        assert_eq!(pseudo_fs(0x794c_7630), None, "overlayfs");
        // Regression: securityfs was listed under a wrong magic and so was read.
        assert_eq!(pseudo_fs(0x7363_6673), Some("securityfs"));
    }

    /// Review finding: a walked file swapped before it is hashed must not be read in its place.
    #[test]
    fn a_file_swapped_after_the_walk_is_refused() {
        let (root, _outside) = tree();
        let r = Root::open(root.path()).unwrap();
        let mut seen = Vec::new();
        r.walk(
            "/etc",
            &mut |e| {
                seen.push(e.clone());
                true
            },
            &mut |_| {},
        )
        .unwrap();
        let real = seen.iter().find(|e| e.path.shown() == "/etc/real").unwrap();
        assert_eq!(r.stream_expecting("/etc/real", Some((real.dev, real.ino)), 100, |_| {}).unwrap(), 6);
        // The attack: swap the walked file for a symlink to another file in the root.
        std::fs::remove_file(root.path().join("etc/real")).unwrap();
        symlink("/marker", root.path().join("etc/real")).unwrap();
        let e = r.stream_expecting("/etc/real", Some((real.dev, real.ino)), 100, |_| {}).unwrap_err();
        assert!(matches!(e, ReadError::Refused { .. }), "{e}");
    }

    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }

    fn tmpfs(at: &Path, file: &str, content: &str) -> Option<Unmount> {
        std::fs::create_dir_all(at).unwrap();
        let ok = std::process::Command::new("mount").args(["-t", "tmpfs", "tmpfs"]).arg(at).status().ok()?.success();
        std::fs::write(at.join(file), content).unwrap();
        ok.then(|| Unmount(at.to_path_buf()))
    }

    /// Issue 18 item 14: a mount the scope's table names as FUSE or network is
    /// never stepped onto, by a walk or by a path, whatever symlinks lead to it,
    /// while the other mounts below the root are read.
    #[test]
    fn refused_mounts_are_never_stepped_onto() {
        let (root, _outside) = tree();
        let p = root.path();
        let Some(_m) = tmpfs(&p.join("opt/m"), "secret", "ON-THE-REFUSED-MOUNT") else {
            println!("SKIPPED: cannot mount tmpfs here; needs root");
            return;
        };
        let _ok = tmpfs(&p.join("var/ok"), "file", "on-a-read-mount").unwrap();
        symlink("/opt/m/secret", p.join("etc/abs")).unwrap();
        symlink("../opt/m/secret", p.join("etc/rel")).unwrap();
        symlink("/opt", p.join("etc/dirlink")).unwrap();
        symlink("dirlink/m/secret", p.join("etc/via")).unwrap();
        symlink("/etc/../../opt/./m", p.join("etc/up")).unwrap();
        // Without the table, every one of these reads the mount.
        let open = Root::open(p).unwrap();
        for link in ["/etc/abs", "/etc/rel", "/etc/via", "/etc/up/secret", "/opt/m/secret"] {
            assert_eq!(open.read(link).unwrap(), b"ON-THE-REFUSED-MOUNT", "{link}");
        }

        let table = MountTable::for_tests(p, &[("/opt/m", "nfs4"), ("/var/ok", "tmpfs")]);
        let r = Root::open(p).unwrap().refuse_mounts(Ok(table));
        assert_eq!(r.mount_report().refused, [("/opt/m".to_string(), "nfs4".to_string())]);
        assert_eq!(r.take_refused_mounts_met(), [], "nothing led to it yet");
        for link in ["/etc/abs", "/etc/rel", "/etc/via", "/etc/up/secret", "/opt/m/secret", "/opt/m"] {
            let e = r.read(link).unwrap_err();
            assert!(
                matches!(&e, ReadError::RefusedMount { mount, fs_type, .. } if mount == "/opt/m" && fs_type == "nfs4"),
                "{link}: {e}"
            );
        }
        assert!(matches!(r.list_dir("/etc/up"), Err(ReadError::RefusedMount { .. })));
        assert!(matches!(r.read_link("/etc/up/secret"), Err(ReadError::RefusedMount { .. })));
        assert_eq!(r.read_link("/etc/abs").unwrap(), "/opt/m/secret", "the link itself is not on the mount");
        assert_eq!(r.read("/var/ok/file").unwrap(), b"on-a-read-mount");
        assert_eq!(r.read("/etc/real").unwrap(), b"inside");

        // Walks, also from a start reached through a symlink: the mount point is skipped, its
        // files never listed; the scope reports the mount once, so no error per walk.
        for start in ["/", "/opt", "/etc/dirlink"] {
            let (mut seen, mut errs) = (Vec::new(), Vec::new());
            r.walk(
                start,
                &mut |e| {
                    seen.push(e.path.shown());
                    true
                },
                &mut |e| errs.push(e.to_string()),
            )
            .unwrap();
            assert!(!seen.iter().any(|p| p.ends_with("/m") || p.contains("/m/")), "{start}: {seen:?}");
            assert!(errs.is_empty(), "{start}: {errs:?}");
            if start == "/" {
                assert!(seen.contains(&"/var/ok/file".to_string()), "{seen:?}");
                assert!(seen.contains(&"/etc/real".to_string()), "{seen:?}");
            }
        }
        assert!(matches!(r.walk("/etc/up", &mut |_| true, &mut |_| {}), Err(ReadError::RefusedMount { .. })));
        assert_eq!(r.take_refused_mounts_met(), [("/opt/m".to_string(), "nfs4".to_string())]);
        r.walk("/opt", &mut |_| true, &mut |_| {}).unwrap();
        assert_eq!(r.take_refused_mounts_met(), [("/opt/m".to_string(), "nfs4".to_string())], "met by a walk");
    }

    /// Issue 24: a walk reaches paths longer than PATH_MAX through
    /// descriptors, but every later open by path failed there with
    /// ENAMETOOLONG (a root of deep long names: 17,000 files without a sha256,
    /// each an error row). Such paths resolve in pieces now, with
    /// RESOLVE_IN_ROOT's semantics: symlinks down there resolve in the root,
    /// `..` is clamped at it, also across the pieces' boundaries, and nothing
    /// leads out — with and without refused mounts in the scope.
    #[test]
    fn paths_longer_than_path_max_are_read_in_root() {
        let (root, outside) = tree();
        let p = root.path();
        let name = "n".repeat(200);
        let mut fd = rustix::fs::open(p, OFlags::DIRECTORY | OFlags::RDONLY, Mode::empty()).unwrap();
        let mut deep = String::new();
        for _ in 0..50 {
            rustix::fs::mkdirat(&fd, name.as_str(), Mode::from_raw_mode(0o755)).unwrap();
            fd = rustix::fs::openat(&fd, name.as_str(), OFlags::DIRECTORY | OFlags::RDONLY, Mode::empty()).unwrap();
            deep.push('/');
            deep.push_str(&name);
        }
        assert!(deep.len() > 2 * PATH_MAX, "{}", deep.len());
        let file =
            rustix::fs::openat(&fd, "file", OFlags::CREATE | OFlags::WRONLY, Mode::from_raw_mode(0o644)).unwrap();
        rustix::io::write(&file, b"deep").unwrap();
        let marker = outside.path().join("marker");
        let up = format!("{}marker", "../".repeat(100));
        for (link, target) in [
            ("abs", "/marker"),
            ("out", marker.to_str().unwrap()),
            ("outdir", outside.path().to_str().unwrap()),
            ("up", up.as_str()),
            ("dirlink", "/etc"),
            ("loop", "loop"),
        ] {
            rustix::fs::symlinkat(target, &fd, link).unwrap();
        }
        let back = format!("{}{}/file", "/..".repeat(25), format!("/{name}").repeat(25));
        let table = MountTable::for_tests(p, &[("/opt/none", "nfs4")]);
        for (what, r) in [
            ("plain", Root::open(p).unwrap()),
            ("with refused mounts", Root::open(p).unwrap().refuse_mounts(Ok(table))),
        ] {
            let at = |rel: &str| format!("{deep}/{rel}");
            assert_eq!(r.read(at("file")).unwrap(), b"deep", "{what}");
            assert_eq!(r.read(at("abs")).unwrap(), b"inside-marker", "{what}");
            assert_eq!(r.read(at("up")).unwrap(), b"inside-marker", "{what}");
            assert_eq!(r.read(at("dirlink/real")).unwrap(), b"inside", "{what}");
            assert_eq!(r.read(format!("{deep}{back}")).unwrap(), b"deep", "{what}: `..` across pieces");
            assert!(r.read(at("out")).unwrap_err().is_not_found(), "{what}");
            assert!(r.read(at("outdir/marker")).unwrap_err().is_not_found(), "{what}");
            assert!(matches!(r.read(at("loop")), Err(ReadError::Loop { .. })), "{what}: {:?}", r.read(at("loop")));
            assert!(matches!(r.read(at("")), Err(ReadError::NotRegular { kind: "directory", .. })), "{what}");
            assert_eq!(r.read_link(at("abs")).unwrap(), "/marker", "{what}");
            assert!(r.read_link(at("file")).is_err(), "{what}");
            assert_eq!(r.list_dir(&deep).unwrap().len(), 7, "{what}");
            // What a walk met is read by the path it met it at.
            let mut met = Vec::new();
            r.walk(
                "/",
                &mut |e| {
                    if e.path.name() == b"file" {
                        met.push(e.clone());
                    }
                    true
                },
                &mut |e| panic!("{what}: {e}"),
            )
            .unwrap();
            let [e] = &met[..] else { panic!("{what}: {met:?}") };
            let read = r.stream_expecting(OsStr::from_bytes(&e.path.raw()), Some((e.dev, e.ino)), 100, |_| {});
            assert_eq!(read.unwrap(), 4, "{what}");
        }
    }

    #[test]
    fn path_pieces_cut_at_slashes() {
        fn pieces(p: &str, max: usize) -> Vec<&str> {
            path_pieces(p.as_bytes(), max).map(|b| std::str::from_utf8(b).unwrap()).collect()
        }
        assert_eq!(pieces("/aa/bb/cc", 5), ["aa/bb", "cc"]);
        assert_eq!(pieces("//aa//bb/cc/", 5), ["aa/", "bb/cc"]);
        assert_eq!(pieces("aaaaaaa/b", 5), ["aaaaaaa", "b"]);
        assert_eq!(pieces("a/bbbbbbb/c", 5), ["a", "bbbbbbb", "c"]);
        assert_eq!(pieces("/", 5), Vec::<&str>::new());
    }

    #[test]
    fn entry_budget_ends_a_walk() {
        let (root, _outside) = tree();
        for i in 0..50 {
            std::fs::write(root.path().join(format!("etc/f{i}")), "").unwrap();
        }
        let r = Root::with_budgets(root.path(), Budgets { max_entries: 20, ..Budgets::default() }).unwrap();
        let e = r.walk("/", &mut |_| true, &mut |_| {}).unwrap_err();
        assert!(e.is_budget(), "{e}");
        assert!(r.list_dir("/etc").unwrap_err().is_budget());
    }
}
