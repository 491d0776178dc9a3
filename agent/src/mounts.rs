//! Which filesystems below a scope's root a crawl leaves alone: FUSE and
//! network filesystems, unless the operator asks for them (`--read-network-fs`).
//!
//! A read from a FUSE filesystem whose daemon hangs, or from an NFS or SMB
//! share whose server went away, can block forever, and nothing interrupts it:
//! the scope's watchdog can only give the whole scope up. Even `fstatfs` blocks
//! on such a mount, so the decision comes from the mount table that applies to
//! the scope, read when its root is opened, before any of its paths is
//! touched: `/proc/<pid>/mountinfo` of a running container (whose mount points
//! are already relative to that process's root), `/proc/self/mountinfo` for a
//! directory (mount points below its canonical path, made relative to it).
//! The mount at the root itself is the scope and is read (a container on
//! fuse-overlayfs is still a container); only mounts below it are refused.
//! [`crate::rootfs::Root`] never steps onto a refused mount point.

use std::collections::BTreeMap;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Bytes of a mount table read at most (a pod has dozens of mounts, a busy host thousands).
const MAX_MOUNTINFO_BYTES: u64 = 16 << 20;

/// Network filesystems: util-linux's `mnt_fstype_is_netfs` (cifs, smb3, smbfs,
/// nfs*, afs, ncpfs, glusterfs, 9p*), gnulib's remote ones (auristorfs), and
/// the cluster filesystems whose reads wait on other machines.
const NETWORK_FS: &[&str] = &[
    "cifs",
    "smb3",
    "smbfs",
    "afs",
    "auristorfs",
    "ncpfs",
    "glusterfs",
    "ceph",
    "lustre",
    "gpfs",
    "beegfs",
    "orangefs",
    "pvfs2",
    "coda",
    "ocfs2",
    "gfs2",
];

/// Whether a crawl leaves a filesystem of type `fs_type` (as mountinfo names
/// it) alone: FUSE (`fuse`, `fuseblk`, `fuse.*`, and `virtiofs`, FUSE to a
/// host daemon) and the network filesystems above, `nfs*` and `9p*` included.
pub fn refused_fs_type(fs_type: &str) -> bool {
    fs_type == "fuse"
        || fs_type == "fuseblk"
        || fs_type.starts_with("fuse.")
        || fs_type == "virtiofs"
        || fs_type.starts_with("nfs")
        || fs_type.starts_with("9p")
        || NETWORK_FS.contains(&fs_type)
}

/// One line of a mountinfo file, with the mount point's raw bytes (octal escapes decoded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    pub id: i64,
    pub parent: i64,
    pub mount_point: Vec<u8>,
    pub fs_type: String,
}

/// Decodes mountinfo's octal escapes (`\040` for a space, `\012` for a newline, `\134` for `\`).
pub fn unescape(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let octal = |c: &[u8]| (b'0'..=b'3').contains(&c[0]) && c[1..].iter().all(|c| (b'0'..=b'7').contains(c));
        if s[i] == b'\\' && i + 3 < s.len() && octal(&s[i + 1..i + 4]) {
            out.push(((s[i + 1] - b'0') << 6) | ((s[i + 2] - b'0') << 3) | (s[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    out
}

/// Parses mountinfo (proc(5)); lines it cannot read are skipped.
pub fn parse_mountinfo(text: &[u8]) -> Vec<MountEntry> {
    text.split(|&b| b == b'\n')
        .filter_map(|line| {
            // Fields are separated by single spaces; spaces inside them are escaped.
            let fields: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
            let dash = fields.iter().position(|f| *f == b"-")?;
            if dash < 6 {
                return None;
            }
            Some(MountEntry {
                id: std::str::from_utf8(fields[0]).ok()?.parse().ok()?,
                parent: std::str::from_utf8(fields[1]).ok()?.parse().ok()?,
                mount_point: unescape(fields[4]),
                fs_type: String::from_utf8_lossy(&unescape(fields.get(dash + 1)?)).into_owned(),
            })
        })
        .collect()
}

/// The mounts a path walk from the root can reach. A walk enters a mount
/// when it reaches the directory it is mounted on and no other mount on the
/// same parent covers a directory above that; it then goes on to the top of
/// what is stacked there, so a mount with another mounted on its root is
/// hidden, and so is everything mounted deeper on it.
fn visible(all: &[MountEntry]) -> Vec<&MountEntry> {
    let below = |inner: &[u8], outer: &[u8]| {
        inner == outer || outer == b"/" || (inner.starts_with(outer) && inner.get(outer.len()) == Some(&b'/'))
    };
    let by_id: BTreeMap<i64, &MountEntry> = all.iter().map(|m| (m.id, m)).collect();
    let overmounted =
        |m: &MountEntry| all.iter().any(|n| n.id != m.id && n.parent == m.id && n.mount_point == m.mount_point);
    // Whether a walk enters `m` (None while being decided: a parent cycle enters nothing).
    let mut entered: BTreeMap<i64, Option<bool>> = BTreeMap::new();
    fn enters<'a>(
        m: &'a MountEntry,
        by_id: &BTreeMap<i64, &'a MountEntry>,
        all: &[MountEntry],
        entered: &mut BTreeMap<i64, Option<bool>>,
        below: &dyn Fn(&[u8], &[u8]) -> bool,
        overmounted: &dyn Fn(&MountEntry) -> bool,
    ) -> bool {
        if let Some(known) = entered.get(&m.id) {
            return known.unwrap_or(false);
        }
        entered.insert(m.id, None);
        let covered = all.iter().any(|n| {
            n.id != m.id
                && n.parent == m.parent
                && n.mount_point != m.mount_point
                && below(&m.mount_point, &n.mount_point)
        });
        let reached = match by_id.get(&m.parent) {
            None => true,
            Some(p) => {
                enters(p, by_id, all, entered, below, overmounted)
                    && (m.mount_point == p.mount_point || !overmounted(p))
            }
        };
        let r = !covered && reached;
        entered.insert(m.id, Some(r));
        r
    }
    all.iter().filter(|m| enters(m, &by_id, all, &mut entered, &below, &overmounted) && !overmounted(m)).collect()
}

fn refused_of(mounts: &BTreeMap<Vec<u8>, String>) -> Vec<(Vec<u8>, String)> {
    mounts.iter().filter(|(_, t)| refused_fs_type(t)).map(|(p, t)| (p.clone(), t.clone())).collect()
}

/// Where a scope's mount table is read from, again when it may have changed.
#[derive(Debug)]
enum Source {
    /// `/proc/<pid>` of a running container's process: its `mountinfo`.
    Process(OwnedFd),
    /// A directory of this host at this canonical path: `/proc/self/mountinfo`.
    Dir(PathBuf),
}

/// The mounts below one scope's root, by in-root mount point ("/opt/data").
#[derive(Debug)]
pub struct MountTable {
    source: Source,
    /// In-root mount point → the type of the filesystem visible there.
    mounts: BTreeMap<Vec<u8>, String>,
    /// The refused ones among them (looked up for every entry a walk meets).
    refused: Vec<(Vec<u8>, String)>,
}

impl MountTable {
    /// The mounts of the process whose `/proc/<pid>` directory `proc_dir` is.
    pub fn of_process(proc_dir: impl AsFd) -> std::io::Result<MountTable> {
        let fd = rustix::io::fcntl_dupfd_cloexec(proc_dir.as_fd(), 0)?;
        let mut t = MountTable { source: Source::Process(fd), mounts: BTreeMap::new(), refused: Vec::new() };
        t.refresh()?;
        Ok(t)
    }

    /// The mounts of this host's mount namespace below the directory `dir`.
    pub fn below_dir(dir: &Path) -> std::io::Result<MountTable> {
        let source = Source::Dir(std::fs::canonicalize(dir)?);
        let mut t = MountTable { source, mounts: BTreeMap::new(), refused: Vec::new() };
        t.refresh()?;
        Ok(t)
    }

    /// Reads the mount table again.
    pub fn refresh(&mut self) -> std::io::Result<()> {
        use std::io::Read;
        let file = match &self.source {
            Source::Process(dir) => std::fs::File::from(rustix::fs::openat(
                dir,
                "mountinfo",
                rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )?),
            Source::Dir(_) => std::fs::File::open("/proc/self/mountinfo")?,
        };
        let mut text = Vec::new();
        file.take(MAX_MOUNTINFO_BYTES).read_to_end(&mut text)?;
        let prefix: &[u8] = match &self.source {
            Source::Process(_) => b"",
            Source::Dir(p) if p == Path::new("/") => b"",
            Source::Dir(p) => p.as_os_str().as_bytes(),
        };
        let all = parse_mountinfo(&text);
        let mut mounts = BTreeMap::new();
        for m in visible(&all) {
            let Some(rest) = m.mount_point.strip_prefix(prefix) else { continue };
            // Strictly below the root: the root's own mount is the scope.
            if !rest.starts_with(b"/") || rest == b"/" {
                continue;
            }
            let e = mounts.entry(rest.to_vec()).or_insert_with(|| m.fs_type.clone());
            // Two visible at one place (should not happen): the refused one wins.
            if refused_fs_type(&m.fs_type) {
                *e = m.fs_type.clone();
            }
        }
        self.refused = refused_of(&mounts);
        self.mounts = mounts;
        Ok(())
    }

    /// A table for the directory `dir` that lists `mounts` (in-root mount point, type), whatever is mounted.
    #[cfg(test)]
    pub(crate) fn for_tests(dir: &Path, mounts: &[(&str, &str)]) -> MountTable {
        let mounts = mounts.iter().map(|(p, t)| (p.as_bytes().to_vec(), t.to_string())).collect();
        MountTable { source: Source::Dir(std::fs::canonicalize(dir).unwrap()), refused: refused_of(&mounts), mounts }
    }

    /// Refused mounts: (in-root mount point, filesystem type).
    pub fn refused(&self) -> impl Iterator<Item = (&[u8], &str)> {
        self.refused.iter().map(|(p, t)| (p.as_slice(), t.as_str()))
    }

    /// The refused mount that `path` (absolute, normalized, in-root) is at or below.
    pub fn refused_at(&self, path: &[u8]) -> Option<(&[u8], &str)> {
        self.refused().find(|(mp, _)| path.starts_with(mp) && matches!(path.get(mp.len()), None | Some(b'/')))
    }

    /// The type of the filesystem mounted exactly at `path`, if the table lists one.
    pub fn mounted_at(&self, path: &[u8]) -> Option<&str> {
        self.mounts.get(path).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_types() {
        for t in ["fuse", "fuseblk", "fuse.sshfs", "fuse.fuse-overlayfs", "nfs", "nfs4", "cifs", "smb3", "9p", "ceph"] {
            assert!(refused_fs_type(t), "{t}");
        }
        for t in ["ext4", "xfs", "overlay", "tmpfs", "proc", "fusectl", "btrfs", "squashfs", "", "fuse2"] {
            assert!(!refused_fs_type(t), "{t}");
        }
    }

    fn line(id: i64, parent: i64, mp: &str, fs: &str) -> String {
        format!("{id} {parent} 0:{id} / {mp} rw,relatime shared:1 - {fs} src rw\n")
    }

    #[test]
    fn mountinfo_lines_and_escapes() {
        let text = format!(
            "{}{}{}garbage\n{}",
            line(1, 0, "/", "overlay"),
            line(2, 1, "/opt/with\\040space", "fuse.sshfs"),
            "3 1 0:3 / /bad\\377name rw - nfs4 srv:/x rw\n",
            "4 1 0:4 / /no-optional rw - ext4 /dev/sda1 rw\n"
        );
        let m = parse_mountinfo(text.as_bytes());
        let got: Vec<(i64, &[u8], &str)> =
            m.iter().map(|e| (e.id, e.mount_point.as_slice(), e.fs_type.as_str())).collect();
        assert_eq!(
            got,
            [
                (1, &b"/"[..], "overlay"),
                (2, &b"/opt/with space"[..], "fuse.sshfs"),
                (3, &b"/bad\xffname"[..], "nfs4"),
                (4, &b"/no-optional"[..], "ext4")
            ]
        );
        assert_eq!(unescape(b"a\\134b\\012"), b"a\\b\n");
        assert_eq!(unescape(b"trailing\\04"), b"trailing\\04");
        assert_eq!(unescape(b"not\\777a byte"), b"not\\777a byte");
    }

    #[test]
    fn hidden_mounts_are_not_the_ones_a_walk_reaches() {
        let all = parse_mountinfo(
            [
                line(1, 0, "/", "ext4"),
                // Covered by a later mount at the same place: ext4 is what a walk meets.
                line(2, 1, "/srv", "nfs"),
                line(3, 2, "/srv", "ext4"),
                // Hidden by a mount over a directory above it on the same parent.
                line(4, 1, "/opt/hung", "fuse.sshfs"),
                line(5, 1, "/opt", "tmpfs"),
                // Mounted on top of the new /opt: reachable.
                line(6, 5, "/opt/live", "fuse.sshfs"),
                // On the hidden /opt/hung: hidden too.
                line(7, 4, "/opt/hung/deeper", "nfs"),
                // Deeper on the covered /srv mount: hidden; on the mount covering it: reachable.
                line(8, 2, "/srv/deep", "nfs"),
                line(9, 3, "/srv/deep", "ext4"),
            ]
            .concat()
            .as_bytes(),
        );
        let v: Vec<i64> = visible(&all).iter().map(|m| m.id).collect();
        assert_eq!(v, [1, 3, 5, 6, 9]);
    }

    #[test]
    fn refused_at_matches_whole_components() {
        let t = MountTable::for_tests(Path::new("/"), &[("/opt/hung", "fuse"), ("/data", "ext4")]);
        assert_eq!(t.refused_at(b"/opt/hung"), Some((&b"/opt/hung"[..], "fuse")));
        assert_eq!(t.refused_at(b"/opt/hung/x/y"), Some((&b"/opt/hung"[..], "fuse")));
        assert_eq!(t.refused_at(b"/opt/hungry"), None);
        assert_eq!(t.refused_at(b"/opt"), None);
        assert_eq!(t.refused_at(b"/data/x"), None);
        assert_eq!(t.mounted_at(b"/data"), Some("ext4"));
    }

    /// A running container's table is its process's, relative to that process's root.
    #[test]
    fn a_process_table_is_relative_to_its_root() {
        let tmp = tempfile::tempdir().unwrap();
        let m = tmp.path().join("opt/m");
        std::fs::create_dir_all(&m).unwrap();
        if !std::process::Command::new("mount").args(["-t", "tmpfs", "tmpfs"]).arg(&m).status().unwrap().success() {
            println!("SKIPPED: cannot mount tmpfs here; needs root");
            return;
        }
        // A process chrooted into the directory, as a container's process is into its root.
        let mut chrooted = std::process::Command::new("/usr/bin/python3")
            .args(["-c", "import os, sys; os.chroot(sys.argv[1]); print('in', flush=True); sys.stdin.read()"])
            .arg(tmp.path())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(chrooted.stdout.take().unwrap()), &mut line).unwrap();
        let flags = rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY;
        let proc_dir = rustix::fs::open(format!("/proc/{}", chrooted.id()), flags, rustix::fs::Mode::empty()).unwrap();
        let t = MountTable::of_process(&proc_dir);
        drop(chrooted.stdin.take());
        let _ = chrooted.wait();
        let _ = std::process::Command::new("umount").arg("-l").arg(&m).status();
        assert_eq!(line, "in\n");
        let t = t.unwrap();
        assert_eq!(t.mounts.into_iter().collect::<Vec<_>>(), [(b"/opt/m".to_vec(), "tmpfs".to_string())]);
    }

    /// A directory root sees the host's mounts below it, relative to it, and not its own.
    #[test]
    fn a_directory_roots_table_is_relative_to_it() {
        let tmp = tempfile::tempdir().unwrap();
        let t = MountTable::below_dir(tmp.path()).unwrap();
        assert_eq!(t.mounts.len(), 0, "{:?}", t.mounts);
        let host = MountTable::below_dir(Path::new("/")).unwrap();
        assert_eq!(host.mounted_at(b"/proc"), Some("proc"), "{:?}", host.mounts);
        assert!(host.mounted_at(b"/").is_none());
    }
}
