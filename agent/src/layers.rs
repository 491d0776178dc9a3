//! A merged view of overlay layers, read in userspace: how Periscope reads
//! stopped containers and images without mounting anything.
//!
//! Layers are directory handles, top (upper) first. A name resolves to its
//! topmost instance; a whiteout (a 0:0 character device, or an aufs-style
//! `.wh.<name>` file) hides it in every lower layer; an opaque directory
//! (`trusted.overlay.opaque=y`, `user.overlay.opaque=y`,
//! `user.fuseoverlayfs.opaque=y`, or a `.wh..wh..opq` file) hides lower
//! layers' contents of that directory; a non-directory hides everything
//! below it. Symlinks are followed in the merged view with the same
//! RESOLVE_IN_ROOT semantics as single roots: absolute targets restart at the
//! merged root, `..` is clamped there, hops are capped at 40. Every step
//! inside a layer opens one name relative to a directory handle with
//! O_NOFOLLOW, so nothing can lead out of a layer.

use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat};
use rustix::io::Errno;

/// Symlink hops allowed in one resolution, as the kernel allows.
pub const MAX_HOPS: usize = 40;

const WH_PREFIX: &[u8] = b".wh.";
const OPAQUE_MARKER: &[u8] = b".wh..wh..opq";
const KERNEL_OPAQUE_XATTR: &str = "trusted.overlay.opaque";
const USER_OPAQUE_XATTRS: &[&str] = &["user.overlay.opaque", "user.fuseoverlayfs.opaque"];

/// Which whiteout and opaque markers the storage driver writes. Kernel
/// overlay (overlay2) writes only 0:0 character devices and
/// `trusted.overlay.opaque`, which a container cannot forge; aufs-style `.wh.`
/// files and user xattrs are ordinary names and attributes there, so they are
/// honoured only for drivers that write them (fuse-overlayfs, aufs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Markers {
    pub aufs_files: bool,
    pub user_xattrs: bool,
}

impl Markers {
    pub const KERNEL_OVERLAY: Markers = Markers { aufs_files: false, user_xattrs: false };
    pub const ALL: Markers = Markers { aufs_files: true, user_xattrs: true };

    /// The markers a Docker graph driver writes, by its name.
    pub fn for_driver(name: &str) -> Markers {
        match name {
            "fuse-overlayfs" => Markers::ALL,
            "aufs" => Markers { aufs_files: true, user_xattrs: false },
            _ => Markers::KERNEL_OVERLAY,
        }
    }
}

/// Path components one resolution may walk (symlink expansions included),
/// bounding the work a crafted tree can cause.
pub const MAX_STEPS: usize = 4096;

#[derive(Debug)]
pub struct Layers {
    /// Top first.
    dirs: Vec<OwnedFd>,
    markers: Markers,
}

/// Why a merged lookup failed.
#[derive(Debug, PartialEq, Eq)]
pub enum LayerError {
    NotFound,
    NotDirectory,
    Loop,
    Io(Errno),
    /// A bound on work was hit (resolution steps, directory entries).
    TooMuch(&'static str),
}

/// A resolved entry: the layer it lives in, its parent directory there, its name and stat.
pub struct Found {
    pub layer: usize,
    pub parent: OwnedFd,
    pub name: Vec<u8>,
    pub stat: Stat,
}

fn open_dir_at(dir: BorrowedFd<'_>, name: &[u8]) -> Result<OwnedFd, Errno> {
    rustix::fs::openat(
        dir,
        OsStr::from_bytes(name),
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

fn is_whiteout(st: &Stat) -> bool {
    FileType::from_raw_mode(st.st_mode) == FileType::CharacterDevice && st.st_rdev == 0
}

fn xattr_is_y(dir: BorrowedFd<'_>, name: &str) -> bool {
    let mut buf = [0u8; 8];
    matches!(rustix::fs::fgetxattr(dir, name, &mut buf), Ok(n) if n >= 1 && buf[0] == b'y')
}

impl Markers {
    pub(crate) fn is_opaque(self, dir: BorrowedFd<'_>) -> bool {
        xattr_is_y(dir, KERNEL_OPAQUE_XATTR)
            || (self.user_xattrs && USER_OPAQUE_XATTRS.iter().any(|x| xattr_is_y(dir, x)))
            || (self.aufs_files
                && rustix::fs::statat(dir, OsStr::from_bytes(OPAQUE_MARKER), AtFlags::SYMLINK_NOFOLLOW).is_ok())
    }

    fn has_aufs_whiteout(self, dir: BorrowedFd<'_>, name: &[u8]) -> bool {
        if !self.aufs_files {
            return false;
        }
        let mut wh = WH_PREFIX.to_vec();
        wh.extend_from_slice(name);
        rustix::fs::statat(dir, OsStr::from_bytes(&wh), AtFlags::SYMLINK_NOFOLLOW).is_ok()
    }
}

/// Path components, `.` and empty ones dropped (`..` kept for the caller).
fn split(path: &[u8]) -> Vec<Vec<u8>> {
    path.split(|&b| b == b'/').filter(|c| !c.is_empty() && *c != b".").map(<[u8]>::to_vec).collect()
}

impl Layers {
    /// Opens each host directory (top first) as a layer.
    pub fn open(paths: &[std::path::PathBuf], markers: Markers) -> Result<Layers, std::io::Error> {
        let dirs = paths
            .iter()
            .map(|p| {
                rustix::fs::open(p, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
                    .map_err(std::io::Error::from)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Layers { dirs, markers })
    }

    /// The directory instances of a symlink-free path, top first, as the merged view sees them.
    fn dir_instances(&self, comps: &[Vec<u8>]) -> Result<Vec<(usize, OwnedFd)>, LayerError> {
        let mut dirs: Vec<(usize, OwnedFd)> = Vec::new();
        // The merged root is always merged: an opaque marker on a layer's root is ignored, as the kernel does.
        for (i, d) in self.dirs.iter().enumerate() {
            dirs.push((i, rustix::io::dup(d).map_err(LayerError::Io)?));
        }
        for comp in comps {
            let mut next = Vec::new();
            let mut top_is_dir = None;
            for (i, d) in &dirs {
                match rustix::fs::statat(d, OsStr::from_bytes(comp), AtFlags::SYMLINK_NOFOLLOW) {
                    Err(Errno::NOENT) => {
                        if self.markers.has_aufs_whiteout(d.as_fd(), comp) {
                            break;
                        }
                        continue;
                    }
                    Err(e) => return Err(LayerError::Io(e)),
                    Ok(st) if is_whiteout(&st) => break,
                    Ok(st) => {
                        let dir = FileType::from_raw_mode(st.st_mode) == FileType::Directory;
                        if top_is_dir.is_none() {
                            top_is_dir = Some(dir);
                        }
                        if !dir || top_is_dir == Some(false) {
                            break; // a non-directory hides everything below it
                        }
                        let fd = open_dir_at(d.as_fd(), comp).map_err(LayerError::Io)?;
                        let opaque = self.markers.is_opaque(fd.as_fd());
                        next.push((*i, fd));
                        if opaque {
                            break;
                        }
                    }
                }
            }
            match top_is_dir {
                None => return Err(LayerError::NotFound),
                Some(false) => return Err(LayerError::NotDirectory),
                Some(true) => dirs = next,
            }
        }
        Ok(dirs)
    }

    /// The topmost visible instance of a symlink-free path, not following a final symlink.
    fn lookup(&self, comps: &[Vec<u8>]) -> Result<Found, LayerError> {
        let Some((last, parent)) = comps.split_last() else {
            let fd = rustix::io::dup(&self.dirs[0]).map_err(LayerError::Io)?;
            let stat = rustix::fs::fstat(&fd).map_err(LayerError::Io)?;
            let parent = rustix::io::dup(&self.dirs[0]).map_err(LayerError::Io)?;
            return Ok(Found { layer: 0, parent, name: b".".to_vec(), stat });
        };
        for (i, d) in self.dir_instances(parent)? {
            match rustix::fs::statat(&d, OsStr::from_bytes(last), AtFlags::SYMLINK_NOFOLLOW) {
                Err(Errno::NOENT) => {
                    if self.markers.has_aufs_whiteout(d.as_fd(), last) {
                        return Err(LayerError::NotFound);
                    }
                }
                Err(e) => return Err(LayerError::Io(e)),
                Ok(st) if is_whiteout(&st) => return Err(LayerError::NotFound),
                Ok(stat) => return Ok(Found { layer: i, parent: d, name: last.clone(), stat }),
            }
        }
        Err(LayerError::NotFound)
    }

    /// Resolves `path` in the merged view with RESOLVE_IN_ROOT semantics,
    /// following symlinks (the final one too when `follow_final`).
    pub fn resolve(&self, path: &[u8], follow_final: bool) -> Result<Found, LayerError> {
        self.lookup(&self.components(path, follow_final)?)
    }

    /// The symlink-free components `path` resolves to: absolute targets restart
    /// at the merged root, `..` is clamped there, hops are capped.
    fn components(&self, path: &[u8], follow_final: bool) -> Result<Vec<Vec<u8>>, LayerError> {
        let mut todo: std::collections::VecDeque<Vec<u8>> = split(path).into();
        let mut done: Vec<Vec<u8>> = Vec::new();
        let mut hops = 0;
        let mut steps = 0;
        while let Some(c) = todo.pop_front() {
            steps += 1;
            if steps > MAX_STEPS || todo.len() > MAX_STEPS {
                return Err(LayerError::TooMuch("path resolution over 4096 components"));
            }
            if c == b".." {
                done.pop();
                continue;
            }
            done.push(c);
            let f = self.lookup(&done)?;
            let is_link = FileType::from_raw_mode(f.stat.st_mode) == FileType::Symlink;
            if is_link && (!todo.is_empty() || follow_final) {
                hops += 1;
                if hops > MAX_HOPS {
                    return Err(LayerError::Loop);
                }
                let target = rustix::fs::readlinkat(&f.parent, OsStr::from_bytes(&f.name), Vec::new())
                    .map_err(LayerError::Io)?;
                let target = target.as_bytes();
                done.pop();
                if target.starts_with(b"/") {
                    done.clear();
                }
                for t in split(target).into_iter().rev() {
                    todo.push_front(t);
                }
            }
        }
        Ok(done)
    }

    /// An O_PATH handle on a resolved entry (never opened for I/O).
    pub fn handle(&self, f: &Found) -> Result<OwnedFd, LayerError> {
        rustix::fs::openat(
            &f.parent,
            OsStr::from_bytes(&f.name),
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(LayerError::Io)
    }

    /// The symlink target of `path`'s final component (not followed).
    pub fn read_link(&self, path: &[u8]) -> Result<Vec<u8>, LayerError> {
        let f = self.resolve(path, false)?;
        rustix::fs::readlinkat(&f.parent, OsStr::from_bytes(&f.name), Vec::new())
            .map(|t| t.into_bytes())
            .map_err(|e| if e == Errno::INVAL { LayerError::NotFound } else { LayerError::Io(e) })
    }

    /// Names in the merged directory at `path` (symlinks followed), sorted.
    /// At most `max` names; more is a `TooMuch` error, before any more work.
    pub fn list(&self, path: &[u8], max: u64) -> Result<Vec<Vec<u8>>, LayerError> {
        Ok(self.list_stat(path, max)?.into_iter().map(|(n, _)| n).collect())
    }

    /// Like [`Layers::list`], with each visible entry's stat (its topmost
    /// instance, not following symlinks), from the same pass over the layers.
    pub fn list_stat(&self, path: &[u8], max: u64) -> Result<Vec<(Vec<u8>, Stat)>, LayerError> {
        let canonical = self.components(path, true)?;
        let f = self.lookup(&canonical)?;
        if FileType::from_raw_mode(f.stat.st_mode) != FileType::Directory {
            return Err(LayerError::NotDirectory);
        }
        // name -> Some(stat) when visible, None when hidden by a higher layer's whiteout.
        let mut seen = std::collections::BTreeMap::<Vec<u8>, Option<Stat>>::new();
        for (_, d) in self.dir_instances(&canonical)? {
            let dup = rustix::io::dup(&d).map_err(LayerError::Io)?;
            let mut dir = rustix::fs::Dir::new(dup).map_err(LayerError::Io)?;
            while let Some(ent) = dir.read() {
                let ent = ent.map_err(LayerError::Io)?;
                let name = ent.file_name().to_bytes().to_vec();
                if seen.len() as u64 >= max {
                    return Err(LayerError::TooMuch("directory entries over the scope budget"));
                }
                if name == b"." || name == b".." || seen.contains_key(&name) {
                    continue;
                }
                if self.markers.aufs_files && name == OPAQUE_MARKER {
                    continue;
                }
                if let Some(hidden) = name.strip_prefix(WH_PREFIX).filter(|_| self.markers.aufs_files) {
                    seen.entry(hidden.to_vec()).or_insert(None);
                    continue;
                }
                let visible = match rustix::fs::statat(&d, OsStr::from_bytes(&name), AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(st) if !is_whiteout(&st) => Some(st),
                    _ => None,
                };
                seen.insert(name, visible);
            }
        }
        Ok(seen.into_iter().filter_map(|(n, st)| Some((n, st?))).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn whiteout(p: &std::path::Path) {
        rustix::fs::mknodat(rustix::fs::CWD, p, FileType::CharacterDevice, Mode::from_raw_mode(0), 0).unwrap();
    }

    /// lower: /etc/{a,b,c}, /opt/x/y, /usr/bin/tool; upper: whiteout /etc/b, aufs whiteout /etc/c,
    /// opaque /opt with /opt/z, /etc/link -> /etc/a, /etc/up -> ../../../../etc/a, /usr/bin/tool replaced.
    fn layers() -> (tempfile::TempDir, Layers) {
        let t = tempfile::tempdir().unwrap();
        let (lo, up) = (t.path().join("lower"), t.path().join("upper"));
        for d in ["etc", "opt/x", "usr/bin"] {
            std::fs::create_dir_all(lo.join(d)).unwrap();
        }
        for (f, c) in [("etc/a", "A"), ("etc/b", "B"), ("etc/c", "C"), ("opt/x/y", "Y"), ("usr/bin/tool", "old")] {
            std::fs::write(lo.join(f), c).unwrap();
        }
        for d in ["etc", "opt", "usr/bin"] {
            std::fs::create_dir_all(up.join(d)).unwrap();
        }
        whiteout(&up.join("etc/b"));
        std::fs::write(up.join("etc/.wh.c"), "").unwrap();
        std::fs::write(up.join("opt/.wh..wh..opq"), "").unwrap();
        std::fs::write(up.join("opt/z"), "Z").unwrap();
        std::fs::write(up.join("usr/bin/tool"), "new").unwrap();
        symlink("/etc/a", up.join("etc/link")).unwrap();
        symlink("../../../../etc/a", up.join("etc/up")).unwrap();
        symlink("loop2", up.join("etc/loop1")).unwrap();
        let outside = t.path().join("outside-secret");
        std::fs::write(&outside, "SECRET").unwrap();
        symlink(&outside, up.join("etc/escape")).unwrap();
        symlink("/etc", lo.join("etc/escape_dir_target_unused")).unwrap();
        symlink(t.path(), up.join("etc/escape_dir")).unwrap();
        symlink("loop1", up.join("etc/loop2")).unwrap();
        let l = Layers::open(&[up, lo], Markers::ALL).unwrap();
        (t, l)
    }

    fn content(l: &Layers, p: &str) -> Result<String, LayerError> {
        let f = l.resolve(p.as_bytes(), true)?;
        Ok(std::fs::read_to_string(
            std::path::Path::new("/proc/self/fd").join(std::os::fd::AsRawFd::as_raw_fd(&l.handle(&f)?).to_string()),
        )
        .unwrap())
    }

    #[test]
    fn merged_view_follows_overlay_rules() {
        let (_t, l) = layers();
        assert_eq!(content(&l, "/etc/a").unwrap(), "A");
        assert_eq!(content(&l, "/etc/b"), Err(LayerError::NotFound), "whiteout hides the lower file");
        assert_eq!(content(&l, "/etc/c"), Err(LayerError::NotFound), "aufs whiteout hides the lower file");
        assert_eq!(content(&l, "/opt/x/y"), Err(LayerError::NotFound), "opaque dir hides the lower dir's contents");
        assert_eq!(content(&l, "/opt/z").unwrap(), "Z");
        assert_eq!(content(&l, "/usr/bin/tool").unwrap(), "new", "upper file wins");
        assert_eq!(content(&l, "/etc/link").unwrap(), "A", "absolute symlink resolves in the merged view");
        assert_eq!(content(&l, "/etc/up").unwrap(), "A", "`..` is clamped at the merged root");
        assert_eq!(content(&l, "/etc/loop1").err(), Some(LayerError::Loop));
        // An absolute link at a real host file resolves inside the merged root, where it does not exist.
        assert_eq!(content(&l, "/etc/escape").err(), Some(LayerError::NotFound));
        assert_eq!(content(&l, "/etc/escape_dir/passwd").err(), Some(LayerError::NotFound));
        assert_eq!(l.read_link(b"/etc/link").unwrap(), b"/etc/a");
        let names: Vec<String> =
            l.list(b"/etc", 1000).unwrap().into_iter().map(|n| String::from_utf8(n).unwrap()).collect();
        assert_eq!(names, ["a", "escape", "escape_dir", "escape_dir_target_unused", "link", "loop1", "loop2", "up"]);
        let opt: Vec<Vec<u8>> = l.list(b"/opt", 1000).unwrap();
        assert_eq!(opt, [b"z".to_vec()]);
        assert_eq!(l.list(b"/etc", 3), Err(LayerError::TooMuch("directory entries over the scope budget")));
    }

    /// Review findings: an opaque marker on a layer's root must not hide the
    /// lower layers (the kernel ignores it), and on kernel overlay a container
    /// cannot hide lower files with forgeable `.wh.` names or user xattrs.
    #[test]
    fn forged_markers_do_not_hide_lower_layers() {
        let t = tempfile::tempdir().unwrap();
        let (lo, up) = (t.path().join("lower"), t.path().join("upper"));
        std::fs::create_dir_all(lo.join("usr/bin")).unwrap();
        std::fs::write(lo.join("usr/bin/ls"), "ls").unwrap();
        std::fs::create_dir_all(up.join("usr/bin")).unwrap();
        std::fs::write(up.join(".wh..wh..opq"), "").unwrap();
        std::fs::write(up.join("usr/bin/.wh.ls"), "").unwrap();
        let l = Layers::open(&[up.clone(), lo.clone()], Markers::KERNEL_OVERLAY).unwrap();
        assert_eq!(content(&l, "/usr/bin/ls").unwrap(), "ls");
        assert!(l.list(b"/usr/bin", 100).unwrap().contains(&b"ls".to_vec()));
        // With aufs markers honoured, the root marker is still ignored but the file whiteout applies.
        let l = Layers::open(&[up, lo], Markers::ALL).unwrap();
        assert_eq!(content(&l, "/usr/bin/ls"), Err(LayerError::NotFound));
        assert_eq!(l.list(b"/", 100).unwrap(), [b"usr".to_vec()]);
    }

    #[test]
    fn resolution_work_is_bounded() {
        let t = tempfile::tempdir().unwrap();
        let up = t.path().join("upper");
        std::fs::create_dir_all(&up).unwrap();
        let long = "a/".repeat(2000); // within PATH_MAX
        symlink(&long, up.join("deep")).unwrap();
        let l = Layers::open(&[up], Markers::ALL).unwrap();
        assert!(matches!(l.resolve(b"/deep", true), Err(LayerError::TooMuch(_)) | Err(LayerError::NotFound)));
        let path = "x/".repeat(5000);
        assert!(matches!(l.resolve(path.as_bytes(), true), Err(LayerError::TooMuch(_))));
    }
}
