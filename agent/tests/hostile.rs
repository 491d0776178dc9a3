//! A root filesystem built to attack the crawler: escapes through symlinks,
//! loops, FIFOs, devices, huge and sparse files, a 10,000-level directory
//! chain, non-UTF-8 names, a bind-mount cycle, and garbage package databases.
//! The crawl must finish in bounded time, never show the marker planted
//! outside the root, record each problem in crawl_errors, and not crash.

mod common;

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;
use rustix::fs::{FileType, Mode, OFlags};

const MARKER: &str = "PERISCOPE-MARKER-8d1f2c";

fn mknod(path: &Path, kind: FileType, dev: u64) {
    rustix::fs::mknodat(rustix::fs::CWD, path, kind, Mode::from_raw_mode(0o644), dev).unwrap();
}

/// A chain of `n` nested directories, made by walking fds (the path outgrows PATH_MAX).
fn deep_chain(start: &Path, n: usize) {
    let mut fd = rustix::fs::open(start, OFlags::DIRECTORY | OFlags::RDONLY, Mode::empty()).unwrap();
    for _ in 0..n {
        rustix::fs::mkdirat(&fd, "d", Mode::from_raw_mode(0o755)).unwrap();
        fd = rustix::fs::openat(&fd, "d", OFlags::DIRECTORY | OFlags::RDONLY, Mode::empty()).unwrap();
    }
    rustix::fs::openat(&fd, "bottom-exec", OFlags::CREATE | OFlags::WRONLY, Mode::from_raw_mode(0o755)).unwrap();
}

struct Unmount(PathBuf);
impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn hostile_rootfs_is_crawled_safely_and_every_problem_recorded() {
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("outside");
    fs::create_dir_all(&outside).unwrap();
    let marker = outside.join("marker");
    fs::write(&marker, format!("ID={MARKER}\nP:{MARKER}\nV:1\n\nroot:{MARKER}:0:0::/:/bin/sh\n")).unwrap();
    let root = tmp.path().join("root");
    for d in [
        "etc",
        "usr/lib",
        "usr/local/bin",
        "var/lib/dpkg/status.d",
        "lib/apk/db",
        "var/lib/rpm",
        "usr/lib/sysimage/rpm",
        "dev",
        "home/u/.ssh",
        "etc/ssh",
    ] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    let r = |p: &str| root.join(p);

    // Escapes: absolute, relative, chained symlinks at the marker outside.
    symlink(&marker, r("usr/lib/os-release")).unwrap();
    symlink("../../../../../../../../outside/marker", r("etc/passwd")).unwrap();
    symlink("/etc/hop1", r("etc/group")).unwrap();
    symlink("../etc/hop2", r("etc/hop1")).unwrap();
    symlink(&marker, r("etc/hop2")).unwrap();
    symlink(&outside, r("home/u/.ssh/authorized_keys")).unwrap();
    symlink(&outside, r("etc/ssh/escape_dir")).unwrap();
    // A magic link: through /proc/self/root it would be the host's file.
    symlink("/proc/self/root/etc/hostname", r("etc/shadow")).unwrap();
    // A loop.
    symlink("loop-b", r("etc/sudoers")).unwrap();
    symlink("sudoers", r("etc/loop-b")).unwrap();
    // A FIFO where os-release should be: opening it for reading would block forever.
    mknod(&r("etc/os-release"), FileType::Fifo, 0);
    // The dpkg database is a link to /dev/zero (in-root: a real character device node).
    mknod(&r("dev/zero"), FileType::CharacterDevice, rustix::fs::makedev(1, 5));
    symlink("/dev/zero", r("var/lib/dpkg/status")).unwrap();
    // A 2 GiB sparse file as a distroless dpkg stanza.
    let big = fs::File::create(r("var/lib/dpkg/status.d/huge")).unwrap();
    big.set_len(2 << 30).unwrap();
    // An apk database with a 50 MB line.
    let mut apk = b"P:longline\nV:1.0\nT:".to_vec();
    apk.extend(std::iter::repeat_n(b'x', 50 << 20));
    apk.extend(b"\n\nP:ok\nV:2.0\n\n");
    fs::write(r("lib/apk/db/installed"), apk).unwrap();
    // rpm databases: a truncated sqlite file and random bytes in NDB and BerkeleyDB places.
    let mut sqlite = b"SQLite format 3\0".to_vec();
    sqlite.extend(random_bytes(3000, 1));
    fs::write(r("var/lib/rpm/rpmdb.sqlite"), sqlite).unwrap();
    fs::write(r("usr/lib/sysimage/rpm/Packages.db"), random_bytes(70_000, 2)).unwrap();
    fs::write(r("usr/lib/sysimage/rpm/Packages"), random_bytes(70_000, 3)).unwrap();
    // A 10,000-level directory chain and non-UTF-8 names.
    deep_chain(&r("usr/local"), 10_000);
    let odd = r("usr/local/bin").join(OsStr::from_bytes(b"tool-\xff\xfe"));
    fs::write(&odd, b"#!/bin/sh\n").unwrap();
    Command::new("chmod").arg("755").arg(&odd).status().unwrap();
    // A directory cycle via a bind mount, where this machine lets us mount.
    fs::create_dir_all(r("usr/lib/cycle")).unwrap();
    let bound = Command::new("mount")
        .arg("--bind")
        .arg(r("usr"))
        .arg(r("usr/lib/cycle"))
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    let _unmount = bound.then(|| Unmount(r("usr/lib/cycle")));
    if !bound {
        eprintln!("bind mount not permitted here: the directory-cycle case is not exercised");
    }

    // A real procfs inside the root, as a running container's root has: reads
    // through it and through its magic links must be refused.
    fs::create_dir_all(r("proc")).unwrap();
    let proc_mounted = Command::new("mount")
        .args(["-t", "proc", "proc"])
        .arg(r("proc"))
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    let _unmount_proc = proc_mounted.then(|| Unmount(r("proc")));
    if !proc_mounted {
        eprintln!("mounting procfs not permitted here: the in-root procfs case is not exercised");
    }
    fs::create_dir_all(r("etc/docker")).unwrap();
    symlink("/proc/self/root/etc/hostname", r("etc/docker/daemon.json")).unwrap();

    // Crawl on another thread so a hang fails the test instead of wedging it.
    let (tx, rx) = mpsc::channel();
    let mut opts = opts(&root);
    opts.config.config_files.push("/proc/self/environ".into());
    let started = Instant::now();
    std::thread::spawn(move || {
        let _ = tx.send(periscope_agent::crawl::crawl(&opts).map(|c| rows_of(&c.batches)));
    });
    let (rows, text) =
        rx.recv_timeout(Duration::from_secs(120)).expect("crawl did not finish in 120 s").expect("crawl failed");
    eprintln!("hostile crawl took {:?}", started.elapsed());

    assert!(!text.contains(MARKER), "the marker outside the root leaked into the output");
    let errors: Vec<(String, String, String)> =
        rows["crawl_errors"].iter().map(|r| (s(r, "collector"), s(r, "path"), s(r, "message"))).collect();
    let has = |collector: &str, needle: &str| {
        errors.iter().any(|(c, p, m)| c == collector && (p.contains(needle) || m.contains(needle)))
    };
    let dump = || errors.iter().map(|e| format!("{e:?}")).collect::<Vec<_>>().join("\n");
    assert!(has("os", "fifo"), "FIFO os-release not reported:\n{}", dump());
    assert!(has("packages", "character device"), "device dpkg status not reported:\n{}", dump());
    assert!(has("packages", "exceeds the per-file budget"), "2 GiB status.d file not reported:\n{}", dump());
    assert!(has("packages", "/var/lib/rpm/rpmdb.sqlite"), "truncated sqlite not reported:\n{}", dump());
    assert!(has("packages", "/usr/lib/sysimage/rpm/Packages.db"), "random NDB not reported:\n{}", dump());
    assert!(has("packages", "/usr/lib/sysimage/rpm/Packages"), "random BerkeleyDB not reported:\n{}", dump());
    assert!(has("unowned_files", "depth over"), "10,000-level chain not reported:\n{}", dump());
    eprintln!("{}", dump());
    assert!(has("configs", "symlink loop"), "symlink loop not reported:\n{}", dump());
    if bound {
        assert!(has("unowned_files", "directory cycle"), "bind-mount cycle not reported:\n{}", dump());
    }
    if proc_mounted {
        assert!(has("configs", "/proc/self/environ: refused: on procfs"), "procfs read not refused:\n{}", dump());
        assert!(
            has("configs", "/etc/docker/daemon.json: symlink loop, too many symlink hops, or a magic link"),
            "magic link not refused:\n{}",
            dump()
        );
    }
    assert!(
        !errors.iter().any(|(_, _, m)| m.contains("tool-\\xff\\xfe: not found")),
        "non-UTF-8 name not reopened:\n{}",
        dump()
    );
    // The escapes resolve inside the root, where nothing is: no rows from the marker.
    assert!(rows["users"].is_empty() && rows["groups"].is_empty(), "{:?} {:?}", rows["users"], rows["groups"]);
    // The apk stanza after the 50 MB line still arrives.
    let apk: Vec<String> = rows["packages"].iter().filter(|r| s(r, "manager") == "apk").map(|r| s(r, "name")).collect();
    assert!(apk.contains(&"ok".to_string()), "{apk:?}");
    // The non-UTF-8 name is reported, escaped.
    let odd = rows["unowned_files"].iter().find(|r| s(r, "path") == "/usr/local/bin/tool-\\xff\\xfe");
    assert_eq!(odd.map(|r| s(r, "sha256").len()), Some(64), "{:?}", rows["unowned_files"]);
    // And the crawl is complete: its crawls row says degraded, not aborted.
    assert_eq!(s(&rows["crawls"][0], "degraded"), "true");
}

/// A FUSE filesystem (fuse-overlayfs, the real one) whose daemon is frozen:
/// every access to it blocks, like a hung FUSE or NFS mount in a container.
struct FrozenFuse {
    daemon: std::process::Child,
    mountpoint: PathBuf,
}

impl Drop for FrozenFuse {
    fn drop(&mut self) {
        let pid = rustix::process::Pid::from_raw(self.daemon.id() as i32).unwrap();
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::CONT);
        let _ = Command::new("umount").arg("-l").arg(&self.mountpoint).status();
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}

#[test]
fn a_hung_fuse_mount_inside_a_scope_costs_that_scope_not_the_crawl() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    fs::create_dir_all(root.join("etc")).unwrap();
    fs::write(root.join("etc/os-release"), "ID=debian\nVERSION_ID=12\n").unwrap();
    let mnt = root.join("opt/hung");
    fs::create_dir_all(&mnt).unwrap();
    for d in ["lower", "upper", "work"] {
        fs::create_dir_all(tmp.path().join(d)).unwrap();
    }
    fs::write(tmp.path().join("lower/tool"), "#!/bin/sh\n").unwrap();
    let mount_opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        tmp.path().join("lower").display(),
        tmp.path().join("upper").display(),
        tmp.path().join("work").display()
    );
    let Ok(daemon) = Command::new("fuse-overlayfs").args(["-f", "-o", &mount_opts]).arg(&mnt).spawn() else {
        assert!(std::env::var("CI").is_err(), "fuse-overlayfs is needed for this test in CI");
        eprintln!("SKIPPED a_hung_fuse_mount_inside_a_scope_costs_that_scope_not_the_crawl: no fuse-overlayfs");
        return;
    };
    let fuse = FrozenFuse { daemon, mountpoint: mnt.clone() };
    let mounted = || fs::read_to_string("/proc/self/mounts").unwrap().contains(mnt.to_str().unwrap());
    let start = Instant::now();
    while !mounted() {
        assert!(start.elapsed() < Duration::from_secs(10), "fuse-overlayfs did not mount");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(mnt.join("tool").exists(), "the FUSE mount answers before it is frozen");
    let pid = rustix::process::Pid::from_raw(fuse.daemon.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::STOP).unwrap();

    let start = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_periscope-agent"))
        .args(["crawl", "--print", "--scope", "image", "--scope-id", "frozen", "--max-wall-secs", "1", "--root"])
        .arg(&root)
        .output()
        .unwrap();
    let took = start.elapsed();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let rows: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let err = rows
        .iter()
        .find(|r| r["table"] == "crawl_errors" && r["collector"] == "watchdog")
        .unwrap_or_else(|| panic!("no watchdog error in {text}"));
    assert!(err["message"].as_str().unwrap().contains("a read did not return"), "{err}");
    let crawl = rows.iter().find(|r| r["table"] == "crawls").expect("the crawl still completes");
    assert_eq!(crawl["degraded"], true);
    assert!(took < Duration::from_secs(30), "given up after the wall budget plus grace, not hung: {took:?}");

    // In a long-lived agent the abandoned thread stays blocked: the next crawl of that scope
    // does not pile another thread on it, it says so at once.
    let mut o = opts(&root);
    o.budgets.max_wall = Duration::from_secs(1);
    let first = periscope_agent::crawl::crawl(&o).unwrap();
    let start = Instant::now();
    let second = periscope_agent::crawl::crawl(&o).unwrap();
    assert!(start.elapsed() < Duration::from_secs(2), "{:?}", start.elapsed());
    let (r1, _) = rows_of(&first.batches);
    let (r2, _) = rows_of(&second.batches);
    assert!(r1["crawl_errors"].iter().any(|r| s(r, "collector") == "watchdog"));
    let again = r2["crawl_errors"].iter().find(|r| s(r, "collector") == "watchdog").expect("watchdog row");
    assert!(s(again, "message").contains("a previous crawl of it is still blocked"), "{again:?}");
    drop(fuse);
}

/// Paths of `package_files` rows and the crawl's error messages.
fn files_and_errors(rows: &Rows) -> (Vec<String>, Vec<String>) {
    let files = rows["package_files"].iter().map(|r| s(r, "path")).collect();
    let errors = rows["crawl_errors"].iter().map(|r| format!("{}: {}", s(r, "collector"), s(r, "message"))).collect();
    (files, errors)
}

fn os_release(root: &Path) {
    fs::create_dir_all(root.join("etc")).unwrap();
    fs::write(root.join("etc/os-release"), "ID=debian\nVERSION_ID=12\n").unwrap();
}

/// Row bomb, distroless: one status.d file of 1,000 stanzas and a 1,000-line
/// md5sums made a million package_files rows (the md5sums re-read per stanza),
/// long names a copy each; at scale the Arrow offsets overflowed and the scope
/// was lost. The list is read once, and rows per table are capped.
#[test]
fn a_status_d_row_bomb_is_read_once_and_capped() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    os_release(root);
    let d = root.join("var/lib/dpkg/status.d");
    fs::create_dir_all(&d).unwrap();
    let name = "n".repeat(200);
    fs::write(d.join("bomb"), format!("Package: {name}\nVersion: 1\n\n").repeat(1000)).unwrap();
    let sums: String = (0..1000).map(|i| format!("d41d8cd98f00b204e9800998ecf8427e  usr/lib/f{i}\n")).collect();
    fs::write(d.join("bomb.md5sums"), sums).unwrap();

    let (rows, _) = crawl_rows(&opts(root));
    let (files, errors) = files_and_errors(&rows);
    assert_eq!(files.len(), 1000, "each path of the list once");
    assert!(errors.iter().any(|e| e.contains("1000 installed stanzas in one status.d file")), "{errors:?}");

    // With a tighter row budget: capped, said so, and the rest of the crawl arrives.
    let mut o = opts(root);
    o.budgets.max_rows_per_table = 300;
    let (rows, _) = crawl_rows(&o);
    let (files, errors) = files_and_errors(&rows);
    assert_eq!(files.len(), 300);
    assert_eq!(rows["packages"].len(), 300);
    assert!(
        errors.iter().any(|e| e.starts_with("packages: table package_files") && e.contains("max_rows_per_table")),
        "{errors:?}"
    );
    assert_eq!(rows["os"].len(), 1, "the other collectors still run");
    assert_eq!(s(&rows["crawls"][0], "degraded"), "true");
}

/// The same amplification through dpkg's status: repeated stanzas of one
/// package re-read its info/*.list each time.
#[test]
fn repeated_dpkg_stanzas_read_their_file_list_once() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    os_release(root);
    fs::create_dir_all(root.join("var/lib/dpkg/info")).unwrap();
    let stanza = "Package: x\nStatus: install ok installed\nVersion: 1\nArchitecture: amd64\n\n";
    fs::write(root.join("var/lib/dpkg/status"), stanza.repeat(500)).unwrap();
    let list: String = (0..500).map(|i| format!("/usr/lib/x/f{i}\n")).collect();
    fs::write(root.join("var/lib/dpkg/info/x.list"), list).unwrap();
    let (rows, _) = crawl_rows(&opts(root));
    let (files, _) = files_and_errors(&rows);
    assert_eq!(files.len(), 500);
}

/// apk row bomb: a 20 KB `F:` directory followed by 10,000 one-letter `R:`
/// lines joined to 200 MB of paths from a 60 KB database (a 400 KB one took
/// 4.2 GB and panicked). Joined paths are bounded by the database's size.
#[test]
fn an_apk_path_bomb_is_bounded_by_the_databases_size() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    os_release(root);
    fs::create_dir_all(root.join("lib/apk/db")).unwrap();
    let mut db = format!("P:bomb\nV:1\nF:{}\n", "d".repeat(20_000));
    db.push_str(&"R:a\n".repeat(10_000));
    db.push_str("\nP:ok\nV:2\nF:usr/bin\nR:ok\n");
    fs::write(root.join("lib/apk/db/installed"), &db).unwrap();
    let (rows, _) = crawl_rows(&opts(root));
    let (files, errors) = files_and_errors(&rows);
    let bytes: usize = files.iter().map(String::len).sum();
    assert!(bytes <= 4 * db.len() + (1 << 20), "{bytes} bytes of paths from a {}-byte database", db.len());
    assert!(errors.iter().any(|e| e.contains("file paths add up to more than")), "{errors:?}");
    let names: Vec<String> = rows["packages"].iter().map(|r| s(r, "name")).collect();
    assert_eq!(names, ["bomb", "ok"], "the packages still arrive");
}

/// Issue 24 item 7, decided: a hard link reaches an inode, not a path, so a
/// file of the root may also have names outside it (possible on the same
/// filesystem). The agent reads it as the scope presents it, as a process in
/// the container would, and says how many links it has: `files.links` above 1
/// marks the files whose other names it cannot see. Refusing them would hide
/// every hard-linked binary of ordinary images (busybox applets, git, perl).
#[test]
fn a_hard_link_from_outside_the_root_is_read_as_the_root_presents_it_and_flagged() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    fs::create_dir_all(root.join("etc/ssh")).unwrap();
    fs::create_dir_all(root.join("usr/local/bin")).unwrap();
    let outside = tmp.path().join("outside-secret");
    fs::write(&outside, "PermitRootLogin yes\n").unwrap();
    fs::hard_link(&outside, root.join("etc/ssh/sshd_config")).unwrap();
    fs::write(root.join("usr/local/bin/tool"), "#!/bin/sh\n").unwrap();
    let (rows, text) = crawl_rows(&opts(&root));
    let file = |p: &str| rows["files"].iter().find(|r| s(r, "path") == p).unwrap_or_else(|| panic!("{p}: {text}"));
    let linked = file("/etc/ssh/sshd_config");
    assert_eq!(linked["links"], 2, "{linked:?}");
    assert_eq!(file("/usr/local/bin/tool")["links"], 1);
    // Read, as the container would: the scope's own view, whatever other names the inode has.
    let config = rows["configs"].iter().find(|r| s(r, "path") == "/etc/ssh/sshd_config").expect("sshd_config read");
    assert_eq!(s(config, "content"), "PermitRootLogin yes\n");
}
