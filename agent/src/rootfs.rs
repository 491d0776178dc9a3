//! Reading inside a crawled root filesystem, which is hostile input.
//!
//! Every collector reads through [`Root`]. A path is resolved and opened in one
//! kernel call (`openat2` with `RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS`), so
//! absolute symlinks are re-rooted at the crawled root, `..` is clamped at it and
//! `/proc/*/root`-style magic links are refused; there is no "check the path,
//! then open it by name" window. The first open is `O_PATH`, which has no side
//! effects even on a FIFO or device; only after `fstat` says "regular file" is
//! the same inode reopened for reading through `/proc/self/fd`, non-blocking.
//! Reads are bounded by a byte budget.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

/// Default cap on the bytes read from one file.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum RootError {
    #[error("cannot open root {path}: {source}")]
    Open { path: PathBuf, source: std::io::Error },
}

/// Why a file inside the root could not be read. Each names the in-root path.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{path}: not found")]
    NotFound { path: String },
    #[error("{path}: not a regular file ({kind})")]
    NotRegular { path: String, kind: &'static str },
    #[error("{path}: {size} bytes exceeds the per-file budget of {limit} bytes")]
    TooLarge { path: String, size: u64, limit: u64 },
    #[error("{path}: symlink loop or too many symlink hops")]
    Loop { path: String },
    #[error("{path}: refused: path resolves through a magic link or outside the root")]
    Refused { path: String },
    #[error("{path}: this kernel refuses openat2 (ENOSYS/EPERM); rooted reads are unavailable")]
    Unsupported { path: String },
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
}

impl ReadError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, ReadError::NotFound { .. })
    }
}

/// A directory handle that all reads of one scope go through.
#[derive(Debug)]
pub struct Root {
    dir: OwnedFd,
    path: PathBuf,
    max_file_bytes: u64,
}

fn kind_name(ft: FileType) -> &'static str {
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

impl Root {
    /// Opens `path` (on the agent's host) as the root of a scope.
    pub fn open(path: impl AsRef<Path>) -> Result<Root, RootError> {
        let path = path.as_ref().to_path_buf();
        let dir = rustix::fs::open(&path, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| RootError::Open { path: path.clone(), source: e.into() })?;
        Ok(Root { dir, path, max_file_bytes: DEFAULT_MAX_FILE_BYTES })
    }

    pub fn with_max_file_bytes(mut self, limit: u64) -> Self {
        self.max_file_bytes = limit;
        self
    }

    /// Where this root lives on the agent's host (for messages only; never joined into paths).
    pub fn host_path(&self) -> &Path {
        &self.path
    }

    /// Resolves `rel` inside the root (leading `/` allowed) to an `O_PATH` handle.
    fn resolve(&self, rel: &str, extra: OFlags) -> Result<OwnedFd, ReadError> {
        let inner = rel.trim_start_matches('/');
        let inner = if inner.is_empty() { "." } else { inner };
        rustix::fs::openat2(
            self.dir.as_fd(),
            inner,
            OFlags::PATH | OFlags::CLOEXEC | extra,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        )
        .map_err(|e| map_errno(rel, e))
    }

    /// Opens a regular file inside the root for reading. Anything else is refused
    /// without having been opened for I/O.
    pub fn open_file(&self, rel: &str) -> Result<(File, u64), ReadError> {
        let handle = self.resolve(rel, OFlags::empty())?;
        let st = rustix::fs::fstat(&handle).map_err(|e| map_errno(rel, e))?;
        let ft = FileType::from_raw_mode(st.st_mode);
        if ft != FileType::RegularFile {
            return Err(ReadError::NotRegular { path: rel.to_string(), kind: kind_name(ft) });
        }
        // Reopen the very inode we just checked; the O_PATH handle pins it.
        let reopened = rustix::fs::open(
            format!("/proc/self/fd/{}", handle.as_raw_fd()),
            OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOCTTY,
            Mode::empty(),
        )
        .map_err(|e| map_errno(rel, e))?;
        Ok((File::from(reopened), st.st_size as u64))
    }

    /// Reads a whole regular file, refusing files over the per-file budget.
    pub fn read(&self, rel: &str) -> Result<Vec<u8>, ReadError> {
        self.read_limited(rel, self.max_file_bytes)
    }

    pub fn read_limited(&self, rel: &str, limit: u64) -> Result<Vec<u8>, ReadError> {
        let (file, size) = self.open_file(rel)?;
        if size > limit {
            return Err(ReadError::TooLarge { path: rel.to_string(), size, limit });
        }
        let mut buf = Vec::with_capacity(size as usize);
        // Take one byte more than allowed, to notice a file that grew after fstat.
        file.take(limit + 1)
            .read_to_end(&mut buf)
            .map_err(|e| ReadError::Io { path: rel.to_string(), source: e })?;
        if buf.len() as u64 > limit {
            return Err(ReadError::TooLarge { path: rel.to_string(), size: buf.len() as u64, limit });
        }
        Ok(buf)
    }
}

fn map_errno(rel: &str, e: Errno) -> ReadError {
    let path = rel.to_string();
    match e {
        Errno::NOENT | Errno::NOTDIR => ReadError::NotFound { path },
        Errno::LOOP => ReadError::Loop { path },
        Errno::XDEV => ReadError::Refused { path },
        Errno::NOSYS | Errno::PERM => ReadError::Unsupported { path },
        e => ReadError::Io { path, source: e.into() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
        assert!(matches!(r.read("etc/a"), Err(ReadError::Loop { .. })));
        assert!(matches!(r.read("etc/fifo"), Err(ReadError::NotRegular { kind: "fifo", .. })));
        assert!(matches!(r.read("etc"), Err(ReadError::NotRegular { kind: "directory", .. })));
    }

    #[test]
    fn reads_are_bounded() {
        let (root, _outside) = tree();
        std::fs::write(root.path().join("big"), vec![b'x'; 1000]).unwrap();
        let r = Root::open(root.path()).unwrap().with_max_file_bytes(999);
        let e = r.read("big").unwrap_err();
        assert!(matches!(e, ReadError::TooLarge { size: 1000, limit: 999, .. }), "{e}");
        assert_eq!(r.read_limited("big", 1000).unwrap().len(), 1000);
    }

    #[test]
    fn magic_links_are_refused() {
        let (root, _outside) = tree();
        symlink("/proc/self/root/etc/hostname", root.path().join("etc/magic")).unwrap();
        let r = Root::open(root.path()).unwrap();
        // Re-rooted, /proc/self/root does not exist inside the tree.
        assert!(r.read("etc/magic").is_err());
        // Opened as a root itself, the host's /proc magic links are refused.
        let proc_root = Root::open("/proc/self").unwrap();
        assert!(matches!(proc_root.read("root/etc/hostname"), Err(ReadError::Refused { .. } | ReadError::Loop { .. })));
    }
}
