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
        let _ = tx.send(periscope_agent::crawl::crawl(&opts).map(|c| rows_of(&c.batches.to_vec())));
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

/// A real FUSE filesystem: fuse-overlayfs mounted at `mountpoint` over a lower
/// directory holding an executable `tool`. Frozen (its daemon stopped), every
/// access to it blocks, like a hung FUSE or NFS mount inside a container.
struct Fuse {
    daemon: std::process::Child,
    mountpoint: PathBuf,
}

impl Fuse {
    /// Mounts it at `mnt`, its layers under `tmp`; None (outside CI) without fuse-overlayfs.
    fn mount(tmp: &Path, mnt: &Path) -> Option<Fuse> {
        use std::os::unix::fs::PermissionsExt;
        fs::create_dir_all(mnt).unwrap();
        for d in ["lower", "upper", "work"] {
            fs::create_dir_all(tmp.join(d)).unwrap();
        }
        fs::write(tmp.join("lower/tool"), "#!/bin/sh\n").unwrap();
        fs::set_permissions(tmp.join("lower/tool"), fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(tmp.join("lower/hosts"), "10.0.0.1 on-the-fuse-mount\n").unwrap();
        let mount_opts = format!(
            "lowerdir={},upperdir={},workdir={}",
            tmp.join("lower").display(),
            tmp.join("upper").display(),
            tmp.join("work").display()
        );
        let Ok(daemon) = Command::new("fuse-overlayfs").args(["-f", "-o", &mount_opts]).arg(mnt).spawn() else {
            assert!(std::env::var("CI").is_err(), "fuse-overlayfs is needed for this test in CI");
            eprintln!("SKIPPED: no fuse-overlayfs");
            return None;
        };
        let fuse = Fuse { daemon, mountpoint: mnt.to_path_buf() };
        let mounted = || fs::read_to_string("/proc/self/mounts").unwrap().contains(mnt.to_str().unwrap());
        let start = Instant::now();
        while !mounted() {
            assert!(start.elapsed() < Duration::from_secs(10), "fuse-overlayfs did not mount");
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(mnt.join("tool").exists(), "the FUSE mount answers");
        Some(fuse)
    }

    fn freeze(&self) {
        let pid = rustix::process::Pid::from_raw(self.daemon.id() as i32).unwrap();
        rustix::process::kill_process(pid, rustix::process::Signal::STOP).unwrap();
    }
}

impl Drop for Fuse {
    fn drop(&mut self) {
        let pid = rustix::process::Pid::from_raw(self.daemon.id() as i32).unwrap();
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::CONT);
        let _ = Command::new("umount").arg("-l").arg(&self.mountpoint).status();
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}

/// A root with an OS, a package database and, at /opt/<mount>, a FUSE mount;
/// default config files are symlinks into the mount: /etc/hosts absolute,
/// /etc/resolv.conf relative, /etc/docker/daemon.json through a symlinked directory.
fn root_with_fuse(tmp: &Path, mount: &str) -> Option<(PathBuf, Fuse)> {
    let root = tmp.join("root");
    os_release(&root);
    fs::create_dir_all(root.join("var/lib/dpkg/info")).unwrap();
    let status = "Package: base-files\nStatus: install ok installed\nVersion: 12.4\nArchitecture: amd64\n\n";
    fs::write(root.join("var/lib/dpkg/status"), status).unwrap();
    fs::write(root.join("var/lib/dpkg/info/base-files.list"), "/etc/os-release\n").unwrap();
    fs::create_dir_all(root.join("etc/docker")).unwrap();
    fs::create_dir_all(root.join("srv")).unwrap();
    symlink(format!("/opt/{mount}/hosts"), root.join("etc/hosts")).unwrap();
    symlink(format!("../opt/{mount}/hosts"), root.join("etc/resolv.conf")).unwrap();
    symlink(format!("/opt/{mount}"), root.join("srv/data")).unwrap();
    symlink("/srv/data/hosts", root.join("etc/docker/daemon.json")).unwrap();
    let fuse = Fuse::mount(tmp, &root.join("opt").join(mount))?;
    Some((root, fuse))
}

type JsonRows = Vec<serde_json::Value>;

/// Runs what follows with openat2 refused (EPERM) by a real seccomp filter, as
/// container runtimes' default profiles may (see tests/openat2_fallback.rs).
const NO_OPENAT2: &str = r#"
import errno, os, sys, seccomp
f = seccomp.SyscallFilter(seccomp.ALLOW)
f.add_rule(seccomp.ERRNO(errno.EPERM), "openat2")
f.load()
os.execv(sys.argv[1], sys.argv[1:])
"#;

/// The agent's printed crawl of `root` as an image, and how long it took.
fn print_crawl(root: &Path, extra: &[&str], no_openat2: bool) -> (JsonRows, Duration) {
    let bin = env!("CARGO_BIN_EXE_periscope-agent");
    let mut cmd = Command::new(if no_openat2 { "/usr/bin/python3" } else { bin });
    if no_openat2 {
        cmd.arg("-c").arg(NO_OPENAT2).arg(bin);
    }
    let start = Instant::now();
    let out = cmd
        .args(["crawl", "--print", "--scope", "image", "--scope-id", "fuse", "--max-wall-secs", "10"])
        .args(extra)
        .arg("--root")
        .arg(root)
        .output()
        .unwrap();
    let took = start.elapsed();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rows = String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    (rows, took)
}

fn of_table<'a>(rows: &'a JsonRows, table: &str) -> Vec<&'a serde_json::Value> {
    rows.iter().filter(|r| r["table"] == table).collect()
}

/// Issue 18 item 14: a FUSE or NFS mount inside a container can block any
/// access forever (fstatfs included), and scopes are crawled one after
/// another. Such filesystems below a scope's root are refused, by the mount
/// table read before any path is touched: the crawl neither waits for the
/// watchdog nor loses the scope, and says what it did not read. Before, the
/// scope was given up after its wall budget plus grace, with nothing of it kept.
#[test]
fn a_hung_fuse_mount_inside_a_scope_is_refused_not_waited_for() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((root, fuse)) = root_with_fuse(tmp.path(), "hung") else { return };
    fuse.freeze();

    // And where seccomp refuses openat2, the mount table alone keeps walks and paths off the mount.
    for no_openat2 in [false, true] {
        let (rows, took) = print_crawl(&root, &[], no_openat2);
        eprintln!("crawl beside a frozen FUSE mount took {took:?} (no openat2: {no_openat2})");
        let dump = || rows.iter().map(|r| r.to_string()).collect::<Vec<_>>().join("\n");
        assert!(of_table(&rows, "crawl_errors").iter().all(|r| r["collector"] != "watchdog"), "{}", dump());
        assert!(
            took < Duration::from_secs(10),
            "finished within its wall budget, not given up (no openat2: {no_openat2}): {took:?}"
        );
        let crawl = of_table(&rows, "crawls");
        assert_eq!((crawl[0]["degraded"].clone(), crawl[0]["errors"].clone()), (false.into(), 0.into()), "{}", dump());
        // One row names the mount and the flag that reads it …
        let errors = of_table(&rows, "crawl_errors");
        let refused: Vec<_> = errors.iter().filter(|r| r["collector"] == "rootfs").collect();
        assert_eq!(refused.len(), 1, "{}", dump());
        assert_eq!(refused[0]["path"], "/opt/hung");
        assert_eq!(
            refused[0]["message"],
            "not read: fuse.fuse-overlayfs filesystem mounted at /opt/hung (--read-network-fs reads it)"
        );
        // … symlinks into it, absolute, relative or through a symlinked directory, are not followed onto it …
        for config in ["/etc/hosts", "/etc/resolv.conf", "/etc/docker/daemon.json"] {
            let e = errors.iter().find(|r| r["collector"] == "configs" && r["path"] == config);
            let message = e.map(|e| e["message"].as_str().unwrap()).unwrap_or_default();
            assert!(
                message.contains("not read: fuse.fuse-overlayfs filesystem mounted at /opt/hung"),
                "{config}: {}",
                dump()
            );
        }
        assert_eq!(errors.len(), 4, "{}", dump());
        assert!(!rows.iter().any(|r| r["path"].as_str().is_some_and(|p| p.starts_with("/opt/hung/"))), "{}", dump());
        // … and the rest of the scope is read.
        assert_eq!(of_table(&rows, "os")[0]["id"], "debian");
        assert_eq!(of_table(&rows, "packages")[0]["name"], "base-files");
    }

    // In a long-lived agent, crawl after crawl of the scope completes at once.
    for _ in 0..2 {
        let start = Instant::now();
        let o = periscope_agent::crawl::CrawlOptions { scope_id: Some("fuse-refused".into()), ..opts(&root) };
        let c = periscope_agent::crawl::crawl(&o).unwrap();
        assert!(c.complete && start.elapsed() < Duration::from_secs(10), "{:?}", start.elapsed());
    }
    drop(fuse);
}

/// A FUSE mount made below the root after its mount table was read, in a
/// scope that refuses others: the walk sees a mount crossing the table does
/// not list, reads the table again and refuses the mount, instead of blocking.
#[test]
fn a_fuse_mount_made_after_the_table_was_read_is_refused_too() {
    use periscope_agent::mounts::MountTable;
    use periscope_agent::rootfs::Root;
    let tmp = tempfile::tempdir().unwrap();
    let Some((root, first)) = root_with_fuse(tmp.path(), "hung") else { return };
    first.freeze();
    let r = Root::open(&root).unwrap().refuse_mounts(MountTable::below_dir(&root));
    fs::create_dir_all(tmp.path().join("late")).unwrap();
    let Some(late) = Fuse::mount(&tmp.path().join("late"), &root.join("srv/late")) else { return };
    late.freeze();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let (mut seen, mut errors) = (Vec::new(), Vec::new());
        let walked = r.walk(
            "/",
            &mut |e| {
                seen.push(e.path.shown());
                true
            },
            &mut |e| errors.push(e.to_string()),
        );
        let read = r.read("/srv/late/hosts").map(|_| ()).map_err(|e| e.to_string());
        let _ = tx.send((walked.map_err(|e| e.to_string()), seen, errors, read, r.take_refused_mounts_met()));
    });
    let (walked, seen, errors, read, met) =
        rx.recv_timeout(Duration::from_secs(20)).expect("the walk blocked on the mount made after the table was read");
    walked.unwrap();
    assert_eq!(errors, Vec::<String>::new());
    let fuse = "fuse.fuse-overlayfs".to_string();
    assert_eq!(met, [("/opt/hung".to_string(), fuse.clone()), ("/srv/late".to_string(), fuse)]);
    assert!(read.unwrap_err().contains("not read: fuse.fuse-overlayfs filesystem mounted at /srv/late"));
    assert!(seen.contains(&"/etc/os-release".to_string()), "{seen:?}");
    assert!(!seen.iter().any(|p| p.starts_with("/srv/late") || p.starts_with("/opt/hung")), "{seen:?}");
    drop((late, first));
}

/// With `--read-network-fs` the operator asks for FUSE and network
/// filesystems too: the mount is read like any other directory, and if it
/// hangs the watchdog still gives up that scope, not the crawl.
#[test]
fn with_read_network_fs_a_fuse_mount_is_read_and_the_watchdog_still_bounds_a_hung_one() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((root, fuse)) = root_with_fuse(tmp.path(), "app") else { return };
    let unowned = |rows: &JsonRows| -> Vec<String> {
        of_table(rows, "unowned_files").iter().map(|r| r["path"].as_str().unwrap().to_string()).collect()
    };
    let hosts = |rows: &JsonRows| -> Vec<String> {
        of_table(rows, "configs")
            .iter()
            .filter(|r| r["path"] == "/etc/hosts")
            .map(|r| r["content"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    // By default it is refused, answering or not.
    let (rows, _) = print_crawl(&root, &[], false);
    assert!(of_table(&rows, "crawl_errors").iter().any(|r| r["collector"] == "rootfs" && r["path"] == "/opt/app"));
    assert_eq!((unowned(&rows), hosts(&rows)), (vec![], vec![]));

    let (rows, _) = print_crawl(&root, &["--read-network-fs"], false);
    let errors = of_table(&rows, "crawl_errors");
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(unowned(&rows), ["/opt/app/tool"]);
    assert_eq!(hosts(&rows), ["10.0.0.1 on-the-fuse-mount\n"]);
    let daemon_json = of_table(&rows, "configs").into_iter().find(|r| r["path"] == "/etc/docker/daemon.json").cloned();
    assert_eq!(daemon_json.map(|r| r["content"].clone()), Some("10.0.0.1 on-the-fuse-mount\n".into()));

    // Opted in and hung: the watchdog gives the scope up, and the next crawl of it does not
    // pile another thread on the one still blocked.
    fuse.freeze();
    let mut o = opts(&root);
    o.scope_id = Some("fuse-read-hung".into());
    o.read_network_fs = true;
    o.budgets.max_wall = Duration::from_secs(1);
    let first = periscope_agent::crawl::crawl(&o).unwrap();
    let start = Instant::now();
    let second = periscope_agent::crawl::crawl(&o).unwrap();
    assert!(start.elapsed() < Duration::from_secs(2), "{:?}", start.elapsed());
    let (r1, _) = rows_of(&first.batches.to_vec());
    let (r2, _) = rows_of(&second.batches.to_vec());
    let watchdog =
        |r: &Rows| r["crawl_errors"].iter().find(|r| s(r, "collector") == "watchdog").map(|r| s(r, "message"));
    assert!(watchdog(&r1).is_some_and(|m| m.contains("a read did not return")), "{r1:?}");
    assert!(watchdog(&r2).is_some_and(|m| m.contains("a previous crawl of it is still blocked")), "{r2:?}");
    assert!(!first.complete && !second.complete);
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

/// dpkg file lists hard-linked to one file are read once, and none is read
/// once package_files is full (130 links to a 16 MB list: 63 s of CPU).
#[test]
fn hard_linked_dpkg_file_lists_are_read_once() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    os_release(root);
    let info = root.join("var/lib/dpkg/info");
    fs::create_dir_all(&info).unwrap();
    let stanzas: String =
        (0..50).map(|i| format!("Package: p{i}\nStatus: install ok installed\nVersion: 1\n\n")).collect();
    fs::write(root.join("var/lib/dpkg/status"), stanzas).unwrap();
    let list: String = (0..400).map(|i| format!("/usr/lib/p/f{i}\n")).collect();
    fs::write(info.join("p0.list"), list).unwrap();
    for i in 1..50 {
        fs::hard_link(info.join("p0.list"), info.join(format!("p{i}.list"))).unwrap();
    }
    let (rows, _) = crawl_rows(&opts(root));
    let (files, _) = files_and_errors(&rows);
    assert_eq!(files.len(), 400, "the one file's paths once, not once per name");
    assert_eq!(rows["packages"].len(), 50);
}

/// A million hard links to one empty `x.egg-info` fit in a layer of a few
/// MB; each match was kept (220 MB). At most `MAX_MATCHES` per collector are,
/// and the rest are counted in an error row.
#[test]
fn matches_past_the_per_collector_cap_are_counted_not_kept() {
    use periscope_agent::collectors::app_files::MAX_MATCHES;
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    os_release(root);
    let d = root.join("srv/d");
    fs::create_dir_all(&d).unwrap();
    fs::write(d.join("0.egg-info"), "Name: linked\nVersion: 1\n\n").unwrap();
    for i in 1..MAX_MATCHES + 10 {
        fs::hard_link(d.join("0.egg-info"), d.join(format!("{i}.egg-info"))).unwrap();
    }
    let mut o = opts(root);
    o.collectors = Some(vec!["os".into(), "python".into()]);
    let (rows, _) = crawl_rows(&o);
    let pypi = rows["packages"].iter().filter(|r| s(r, "manager") == "pypi").count();
    assert_eq!(pypi, MAX_MATCHES);
    let errors: Vec<String> = rows["crawl_errors"].iter().map(|r| s(r, "message")).collect();
    assert!(errors.iter().any(|e| e.starts_with("10 more files than the 50000")), "{errors:?}");
}

/// The same for the binaries collector: past `MAX_CANDIDATES` executables,
/// counted in an error row, not kept.
#[test]
fn executables_past_the_binaries_cap_are_counted_not_kept() {
    use periscope_agent::collectors::binaries::MAX_CANDIDATES;
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    os_release(root);
    let d = root.join("usr/local/bin");
    fs::create_dir_all(&d).unwrap();
    // ext4 allows 65,000 links to one inode: a few source files.
    for i in 0..MAX_CANDIDATES + 7 {
        let source = d.join(format!("x{}", i / 50_000 * 50_000));
        if i % 50_000 == 0 {
            fs::write(&source, vec![b'#'; 64]).unwrap();
            fs::set_permissions(&source, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        } else {
            fs::hard_link(&source, d.join(format!("x{i}"))).unwrap();
        }
    }
    let mut o = opts(root);
    o.collectors = Some(vec!["os".into(), "packages".into()]);
    let (rows, _) = crawl_rows(&o);
    let errors: Vec<String> = rows["crawl_errors"].iter().map(|r| s(r, "message")).collect();
    assert!(errors.iter().any(|e| e.starts_with("7 more executables and libraries than the 100000")), "{errors:?}");
    assert_eq!(rows["os"].len(), 1);
}

/// Python metadata hard-linked under many names is read once: 2,100 links to
/// a 1 MB header block spent the collector's whole byte budget (35 s of CPU)
/// and left the packages past them unread. Each name is still a row.
#[test]
fn hard_linked_python_metadata_is_read_once() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    os_release(root);
    let d = root.join("srv/p");
    fs::create_dir_all(&d).unwrap();
    let header = format!("Name: big\nVersion: 1\n{}\n", "X-Junk: a\n".repeat(100_000));
    fs::write(d.join("0.egg-info"), &header).unwrap();
    for i in 1..200 {
        fs::hard_link(d.join("0.egg-info"), d.join(format!("{i}.egg-info"))).unwrap();
    }
    fs::create_dir_all(root.join("srv/z/real-1.0.dist-info")).unwrap();
    fs::write(root.join("srv/z/real-1.0.dist-info/METADATA"), "Name: real\nVersion: 1.0\n\n").unwrap();
    let mut o = opts(root);
    o.collectors = Some(vec!["os".into(), "python".into()]);
    // 200 names of a 1 MB file: 200 MB read if each were read, more than this budget.
    o.budgets.max_total_bytes = 64 << 20;
    let (rows, _) = crawl_rows(&o);
    let names: Vec<String> =
        rows["packages"].iter().filter(|r| s(r, "manager") == "pypi").map(|r| s(r, "name")).collect();
    assert_eq!(names.iter().filter(|n| *n == "big").count(), 200, "a row per name");
    assert!(names.iter().any(|n| n == "real"), "the package past the links was read");
    let errors: Vec<String> = rows["crawl_errors"].iter().map(|r| s(r, "message")).collect();
    assert!(errors.is_empty(), "{errors:?}");
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

/// Copies this host's /usr/bin/true into `dst` with a section `name` holding `data` (objcopy, a real ELF).
fn elf_with_section(dst: &Path, name: &str, data: &[u8]) {
    let blob = dst.with_extension("section");
    fs::write(&blob, data).unwrap();
    let st = Command::new("objcopy")
        .arg("--add-section")
        .arg(format!("{name}={}", blob.display()))
        .arg("/usr/bin/true")
        .arg(dst)
        .status()
        .expect("objcopy (binutils; scripts/install-test-deps.sh installs it)");
    assert!(st.success());
    fs::remove_file(blob).unwrap();
    let mut p = fs::metadata(dst).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut p, 0o755);
    fs::set_permissions(dst, p).unwrap();
}

/// Rewrites the offset and size of section `name` in a little-endian ELF64 file's section header table.
fn lie_about_section(path: &Path, name: &str, offset: Option<u64>, size: Option<u64>) {
    let mut b = fs::read(path).unwrap();
    let u16_at = |b: &[u8], o: usize| u16::from_le_bytes(b[o..o + 2].try_into().unwrap()) as usize;
    let u64_at = |b: &[u8], o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap());
    let (shoff, shentsize, shnum, shstrndx) =
        (u64_at(&b, 0x28) as usize, u16_at(&b, 0x3a), u16_at(&b, 0x3c), u16_at(&b, 0x3e));
    let sh = |i: usize| shoff + i * shentsize;
    let strtab = u64_at(&b, sh(shstrndx) + 0x18) as usize;
    let i = (0..shnum)
        .find(|&i| {
            let n = strtab + u32::from_le_bytes(b[sh(i)..sh(i) + 4].try_into().unwrap()) as usize;
            b[n..].starts_with(name.as_bytes()) && b[n + name.len()] == 0
        })
        .unwrap();
    if let Some(o) = offset {
        b[sh(i) + 0x18..sh(i) + 0x20].copy_from_slice(&o.to_le_bytes());
    }
    if let Some(s) = size {
        b[sh(i) + 0x20..sh(i) + 0x28].copy_from_slice(&s.to_le_bytes());
    }
    fs::write(path, b).unwrap();
}

/// Issue 17: binaries are hostile input too. Section headers that point past
/// the end of the file or claim 4 GiB, a `.dep-v0` zlib bomb and a truncated
/// Go build info each become a `crawl_errors` row naming the binary — no
/// panic, no allocation of what the headers claim, no rows made up.
#[test]
fn lying_elf_sections_a_dep_v0_bomb_and_truncated_build_info_are_errors() {
    use std::io::Write;
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let bin = root.join("usr/local/bin");
    fs::create_dir_all(&bin).unwrap();
    let mut go = b"\xff Go buildinf:\x08\x02".to_vec();
    go.resize(32, 0);
    go.extend([8, b'g', b'o', b'1', b'.', b'2', b'2', b'.', b'0', 0xc8, 0x01, b'x']); // module info: 200 bytes claimed, 1 there
    elf_with_section(&bin.join("go-truncated"), ".go.buildinfo", &go);
    elf_with_section(&bin.join("go-past-end"), ".go.buildinfo", &go);
    let len = fs::metadata(bin.join("go-past-end")).unwrap().len();
    lie_about_section(&bin.join("go-past-end"), ".go.buildinfo", Some(len + 4096), None);
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    z.write_all(b"{\"packages\":[").unwrap();
    let spaces = vec![b' '; 1 << 20];
    for _ in 0..64 {
        z.write_all(&spaces).unwrap(); // 64 MiB of blanks inflate from ~64 KiB
    }
    let bomb = z.finish().unwrap();
    assert!(bomb.len() < 1 << 20);
    elf_with_section(&bin.join("dep-bomb"), ".dep-v0", &bomb);
    elf_with_section(&bin.join("dep-4gib"), ".dep-v0", b"x");
    lie_about_section(&bin.join("dep-4gib"), ".dep-v0", None, Some(4 << 30));
    elf_with_section(&bin.join("strtab-4gib"), ".dep-v0", b"x");
    lie_about_section(&bin.join("strtab-4gib"), ".shstrtab", None, Some(4 << 30));

    let start = Instant::now();
    let (rows, _) = crawl_rows(&opts(root));
    assert!(start.elapsed() < Duration::from_secs(20), "{:?}", start.elapsed());
    let app: Vec<String> = rows["packages"]
        .iter()
        .filter(|r| matches!(s(r, "manager").as_str(), "golang" | "cargo"))
        .map(|r| format!("{} {}", s(r, "location"), s(r, "name")))
        .collect();
    assert!(app.is_empty(), "packages made up from hostile binaries: {app:?}");
    let errors: Vec<(String, String)> = rows["crawl_errors"]
        .iter()
        .filter(|r| s(r, "collector") == "binaries")
        .map(|r| (s(r, "path"), s(r, "message")))
        .collect();
    let error_of = |name: &str| {
        let path = format!("/usr/local/bin/{name}");
        errors.iter().find(|(p, _)| *p == path).map(|(_, m)| m.clone()).unwrap_or_else(|| panic!("{name}: {errors:?}"))
    };
    assert!(error_of("go-truncated").contains("module info of 200 bytes runs past"), "{errors:?}");
    assert!(error_of("go-past-end").contains("beyond the end of the file"), "{errors:?}");
    assert!(error_of("dep-bomb").contains(".dep-v0 inflated"), "{errors:?}");
    assert!(error_of("dep-4gib").contains("4294967296 bytes exceeds the limit"), "{errors:?}");
    assert!(error_of("strtab-4gib").contains("malformed ELF"), "{errors:?}");
}

/// A `.dep-v0` list of more crates than any real binary links (uv: about
/// 530), with entries that are not packages: the first 10,000 entries are
/// read, the rest counted, each cut a `crawl_errors` row naming the binary;
/// an honest binary and a Python package beside it are still reported.
#[test]
fn a_dep_v0_of_more_crates_than_are_kept_is_cut_and_reported() {
    use std::io::Write;
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    os_release(root);
    let bin = root.join("usr/local/bin");
    fs::create_dir_all(&bin).unwrap();
    let dep_v0 = |entries: &[String]| {
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        z.write_all(format!(r#"{{"packages":[{}]}}"#, entries.join(",")).as_bytes()).unwrap();
        z.finish().unwrap()
    };
    let mut many: Vec<String> = vec!["0".into(), r#"{"name":"no-version"}"#.into()];
    many.extend((0..10_005).map(|i| format!(r#"{{"name":"c{i}","version":"1.0.{i}"}}"#)));
    elf_with_section(&bin.join("many"), ".dep-v0", &dep_v0(&many));
    elf_with_section(
        &bin.join("honest"),
        ".dep-v0",
        &dep_v0(&[r#"{"name":"uv","version":"0.13.9","root":true}"#.into()]),
    );
    let site = root.join("usr/lib/python3/dist-packages/requests-2.31.0.dist-info");
    fs::create_dir_all(&site).unwrap();
    fs::write(site.join("METADATA"), "Metadata-Version: 2.1\nName: requests\nVersion: 2.31.0\n\n").unwrap();

    let (rows, _) = crawl_rows(&opts(root));
    let cargo = |bin: &str| {
        let location = format!("/usr/local/bin/{bin}");
        rows["packages"].iter().filter(|r| s(r, "manager") == "cargo" && s(r, "location") == location).count()
    };
    assert_eq!((cargo("many"), cargo("honest")), (9_998, 1));
    let errors: Vec<String> = rows["crawl_errors"]
        .iter()
        .filter(|r| s(r, "collector") == "binaries")
        .map(|r| format!("{} {}", s(r, "path"), s(r, "message")))
        .collect();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors.iter().all(|e| e.starts_with("/usr/local/bin/many ")), "{errors:?}");
    assert!(errors.iter().any(|e| e.contains("2 entries are not packages")), "{errors:?}");
    assert!(errors.iter().any(|e| e.contains(".dep-v0 packages: 7 past the first 10000")), "{errors:?}");
    assert!(rows["packages"].iter().any(|r| s(r, "manager") == "pypi" && s(r, "name") == "requests"));
}

/// Go build info is the binary's to write: 4 MiB of `dep` lines list
/// 699,030 modules, and 120 hard links to such a binary made 84 million rows
/// that filled the `packages` table, so a Python package after them was
/// dropped. Each binary keeps its first 10,000 modules, a hard-linked one is
/// read once, and binaries' rows stop at half the table's room, each cut a
/// `crawl_errors` row naming the binary; the Python package is still there.
#[test]
fn go_build_info_of_too_many_modules_and_its_hard_links_leave_room_for_other_packages() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    os_release(root);
    let bin = root.join("usr/local/bin");
    fs::create_dir_all(&bin).unwrap();
    let mut m = vec![0u8; 16];
    for i in 0..10_003 {
        m.extend_from_slice(format!("dep\texample.com/m{i}\tv0.0.{i}\n").as_bytes());
    }
    m.extend_from_slice(&[0u8; 16]);
    let go = periscope_agent::collectors::binaries::go_buildinfo_section("go1.22", &m);
    elf_with_section(&bin.join("go-many"), ".go.buildinfo", &go);
    for i in 0..5 {
        fs::hard_link(bin.join("go-many"), bin.join(format!("go-link{i}"))).unwrap();
    }
    let site = root.join("usr/lib/python3/dist-packages/requests-2.31.0.dist-info");
    fs::create_dir_all(&site).unwrap();
    fs::write(site.join("METADATA"), "Metadata-Version: 2.1\nName: requests\nVersion: 2.31.0\n\n").unwrap();

    let mut o = opts(root);
    o.budgets.max_rows_per_table = 30_000;
    let (rows, _) = crawl_rows(&o);
    let golang = rows["packages"].iter().filter(|r| s(r, "manager") == "golang").count();
    assert_eq!(golang, 15_000, "half the table's room");
    assert!(rows["packages"].iter().any(|r| s(r, "manager") == "pypi" && s(r, "name") == "requests"));
    let errors: Vec<String> = rows["crawl_errors"]
        .iter()
        .filter(|r| s(r, "collector") == "binaries")
        .map(|r| format!("{} {}", s(r, "path"), s(r, "message")))
        .collect();
    let cut: Vec<&String> = errors.iter().filter(|e| e.contains("3 past the first 10000")).collect();
    assert_eq!(cut.len(), 2, "the two paths read: {errors:?}");
    let share: Vec<&String> = errors.iter().filter(|e| e.contains("reached their share")).collect();
    assert_eq!(share.len(), 1, "{errors:?}");
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert!(
        !rows["crawl_errors"].iter().any(|r| s(r, "message").contains("max_rows_per_table")),
        "the table never filled"
    );
}

/// Issue 17 review: a `.dep-v0` may name every one of its crates a root, each
/// with a name of any length (the JSON is bounded at 8 MiB inflated, not its
/// strings): `unowned_files.identified`, and the scan the agent keeps per file
/// for `embedded_libraries`, hold at most 4 root crates of 256 bytes and a
/// note of the rest.
#[test]
fn a_dep_v0_of_thousands_of_long_root_crates_identifies_within_bounds() {
    use std::io::Write;
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let bin = root.join("usr/local/bin");
    fs::create_dir_all(&bin).unwrap();
    let name = "n".repeat(600);
    let packages: Vec<String> = (0..10_000)
        .map(|i| format!(r#"{{"name":"c{i}-{name}","version":"1.0.{i}","source":"crates.io","root":true}}"#))
        .collect();
    let json = format!(r#"{{"packages":[{}]}}"#, packages.join(","));
    assert!(json.len() < 8 << 20);
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    z.write_all(json.as_bytes()).unwrap();
    elf_with_section(&bin.join("roots"), ".dep-v0", &z.finish().unwrap());

    let mut o = opts(root);
    o.collectors = Some(vec!["unowned_files".into(), "embedded_libraries".into()]);
    let (rows, _) = crawl_rows(&o);
    let r = rows["unowned_files"].iter().find(|r| s(r, "path") == "/usr/local/bin/roots").unwrap();
    let identified = s(r, "identified");
    let ids: Vec<&str> = identified.split("; ").collect();
    assert_eq!(ids.len(), 5, "{identified}");
    assert!(ids.iter().all(|i| i.len() <= 256), "{identified}");
    assert!(ids[0].starts_with("cargo:c0-nnn") && ids[0].ends_with('…'), "{}", ids[0]);
    assert_eq!(ids[4], "cargo:… and 9996 more root crates");
    assert_eq!(s(r, "examined"), "elf");
}

/// Issue 17: Python metadata is read from anywhere in the root, so its files
/// are hostile like any other. A METADATA whose header block is one 100 MB
/// line costs at most 1 MiB of reading, is a crawl error, and the package is
/// still reported from the complete lines before it; `*.dist-info`
/// directories that are symlink loops, links out of the root, and a METADATA
/// that links to another file are not followed.
#[test]
fn python_metadata_with_a_huge_header_line_and_dist_info_symlink_loops() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    os_release(root);
    let site = root.join("usr/local/lib/python3.11/site-packages");
    fs::create_dir_all(site.join("evil-1.0.dist-info")).unwrap();
    fs::create_dir_all(site.join("ok-2.0.dist-info")).unwrap();
    fs::write(site.join("ok-2.0.dist-info/METADATA"), "Metadata-Version: 2.1\nName: ok\nVersion: 2.0\n\nbody\n")
        .unwrap();
    {
        use std::io::Write;
        let mut f = fs::File::create(site.join("evil-1.0.dist-info/METADATA")).unwrap();
        f.write_all(b"Metadata-Version: 2.1\nName: evil\nVersion: 1.0\nSummary: ").unwrap();
        let chunk = vec![b'a'; 1 << 20];
        for _ in 0..100 {
            f.write_all(&chunk).unwrap();
        }
        f.write_all(b"\n\n").unwrap();
    }
    symlink("loop.dist-info", site.join("loop.dist-info")).unwrap();
    symlink("b.dist-info", site.join("a.dist-info")).unwrap();
    symlink("a.dist-info", site.join("b.dist-info")).unwrap();
    symlink("/", site.join("up.dist-info")).unwrap();
    symlink("../../../../..", site.join("parent-1.0.dist-info")).unwrap();
    fs::create_dir_all(site.join("leak-1.0.dist-info")).unwrap();
    symlink("/etc/os-release", site.join("leak-1.0.dist-info/METADATA")).unwrap();
    // A directory loop one level down: site-packages/deep.dist-info/again -> ..
    fs::create_dir_all(site.join("deep-1.0.dist-info")).unwrap();
    symlink("..", site.join("deep-1.0.dist-info/again")).unwrap();

    let start = Instant::now();
    let (rows, _) = crawl_rows(&opts(root));
    assert!(start.elapsed() < Duration::from_secs(30), "took {:?}", start.elapsed());
    let pypi: Vec<(String, String, String)> = rows["packages"]
        .iter()
        .filter(|r| s(r, "manager") == "pypi")
        .map(|r| (s(r, "name"), s(r, "version"), s(r, "location")))
        .collect();
    let meta = |d: &str| format!("/usr/local/lib/python3.11/site-packages/{d}/METADATA");
    assert_eq!(
        pypi,
        [
            ("evil".into(), "1.0".into(), meta("evil-1.0.dist-info")),
            ("ok".into(), "2.0".into(), meta("ok-2.0.dist-info"))
        ],
        "only the two real dist-info directories"
    );
    let errors: Vec<String> =
        rows["crawl_errors"].iter().map(|r| format!("{} {}", s(r, "path"), s(r, "message"))).collect();
    let huge: Vec<&String> = errors.iter().filter(|e| e.contains("longer than 1048576 bytes")).collect();
    assert_eq!(huge.len(), 1, "{errors:?}");
    assert!(huge[0].contains("evil-1.0.dist-info/METADATA"), "{huge:?}");
    let evil = rows["packages"].iter().find(|r| s(r, "name") == "evil").unwrap();
    assert_eq!(s(evil, "description"), "", "the cut Summary line is not trusted");
    assert!(rows["packages"].iter().all(|r| !s(r, "name").contains("debian")), "os-release read as METADATA");
}

/// Node.js packages (issue 17) as an attacker would lay them out: a 1 GB
/// (sparse) package.json, a node_modules symlinked into itself, a package
/// directory nested past the depth budget, and manifests that are not JSON or
/// nest JSON past serde_json's recursion limit. Each is a crawl_errors row of
/// the `npm` collector; the honest packages beside them are still read, once.
#[test]
fn hostile_node_modules_are_bounded_and_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    os_release(root);
    let nm = root.join("app/node_modules");
    let manifest = |dir: &Path, name: &str| {
        fs::create_dir_all(dir).unwrap();
        fs::write(dir.join("package.json"), format!(r#"{{"name":"{name}","version":"1.0.0"}}"#)).unwrap();
    };
    manifest(&nm.join("good"), "good");
    // 1 GB of holes: refused by its size before a byte is read.
    fs::create_dir_all(nm.join("huge")).unwrap();
    fs::File::create(nm.join("huge/package.json")).unwrap().set_len(1 << 30).unwrap();
    // Cycles: a package whose node_modules is its parent's, and a package that is node_modules itself.
    fs::create_dir_all(nm.join("good/node_modules")).unwrap();
    symlink("../..", nm.join("good/node_modules/good")).unwrap();
    symlink("../node_modules", nm.join("loop")).unwrap();
    symlink("/app", nm.join("good/node_modules/app")).unwrap();
    // 40 levels of node_modules/deep: 80 directories, past the depth budget of 64.
    let mut dir = nm.clone();
    for i in 0..40 {
        dir = dir.join("deep");
        manifest(&dir, &format!("deep{i}"));
        dir = dir.join("node_modules");
    }
    fs::create_dir_all(nm.join("garbage")).unwrap();
    fs::write(nm.join("garbage/package.json"), b"{\"name\": \"garbage\", \"version\": \xff").unwrap();
    fs::create_dir_all(nm.join("nested")).unwrap();
    fs::write(nm.join("nested/package.json"), "[".repeat(100_000)).unwrap();

    let started = Instant::now();
    let (rows, _) = crawl_rows(&opts(root));
    assert!(started.elapsed() < Duration::from_secs(60), "took {:?}", started.elapsed());
    let npm: Vec<String> =
        rows["packages"].iter().filter(|r| s(r, "manager") == "npm").map(|r| s(r, "location")).collect();
    let errors: Vec<String> = rows["crawl_errors"]
        .iter()
        .filter(|r| s(r, "collector") == "npm")
        .map(|r| format!("{} {}", s(r, "path"), s(r, "message")))
        .collect();
    let has = |needle: &str| errors.iter().any(|e| e.contains(needle));
    assert_eq!(npm.iter().filter(|l| l.ends_with("/node_modules/good/package.json")).count(), 1, "{npm:?}");
    assert!(
        has("/app/node_modules/huge/package.json: 1073741824 bytes exceeds the per-file budget of 1048576"),
        "{errors:?}"
    );
    assert!(has("/app/node_modules/garbage/package.json: not a package.json"), "{errors:?}");
    // Skipped iteratively (see the composer test): no stack is spent on the depth.
    assert!(has("/app/node_modules/nested/package.json: not a package.json: EOF while parsing a list"), "{errors:?}");
    // The cut walk is the root walk all application collectors share: reported once, by the one that walked.
    let walk_errors: Vec<String> = rows["crawl_errors"].iter().map(|r| s(r, "message")).collect();
    assert!(walk_errors.iter().any(|e| e.contains("depth over 64")), "the cut walk is not reported: {walk_errors:?}");
    // Levels within the budget are read, the ones past it are not.
    let deep: Vec<&String> = npm.iter().filter(|l| l.contains("/deep/")).collect();
    assert!((20..40).contains(&deep.len()), "{} deep levels read: {deep:?}", deep.len());
    assert_eq!(npm.len(), 1 + deep.len(), "{npm:?}");
}

/// Raw deflate data inflating to `mib` MiB of zeros, made in milliseconds: one
/// MiB compressed and sync-flushed (so it ends on a byte and refers only to
/// itself), repeated, then an empty final block.
fn deflate_zeros(mib: usize) -> Vec<u8> {
    use std::io::Write;
    let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    z.write_all(&vec![0u8; 1 << 20]).unwrap();
    z.flush().unwrap();
    let mut out = z.get_ref().repeat(mib);
    out.extend([0x03, 0x00]);
    out
}

fn deflate(b: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(b).unwrap();
    z.finish().unwrap()
}

/// A zip archive whose entries are (name, data as stored, method, size the headers claim when deflated).
fn zip_of(entries: &[(&str, Vec<u8>, u16, u32)]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut cd = Vec::new();
    for (name, data, method, claimed) in entries {
        let claimed = if *method == 0 { data.len() as u32 } else { *claimed };
        let local = out.len() as u32;
        let mut common = Vec::new();
        common.extend(method.to_le_bytes());
        common.extend([0u8; 8]); // time, date, crc
        common.extend((data.len() as u32).to_le_bytes());
        common.extend(claimed.to_le_bytes());
        common.extend((name.len() as u16).to_le_bytes());
        out.extend(0x0403_4b50u32.to_le_bytes());
        out.extend([20, 0, 0, 0]);
        out.extend(&common);
        out.extend([0, 0]);
        out.extend(name.as_bytes());
        out.extend(data);
        cd.extend(0x0201_4b50u32.to_le_bytes());
        cd.extend([20, 0, 20, 0, 0, 0]);
        cd.extend(&common);
        cd.extend([0u8; 12]);
        cd.extend(local.to_le_bytes());
        cd.extend(name.as_bytes());
    }
    let at = out.len() as u32;
    out.extend(&cd);
    out.extend(0x0605_4b50u32.to_le_bytes());
    out.extend([0u8; 4]);
    out.extend((entries.len() as u16).to_le_bytes());
    out.extend((entries.len() as u16).to_le_bytes());
    out.extend((cd.len() as u32).to_le_bytes());
    out.extend(at.to_le_bytes());
    out.extend([0, 0]);
    out
}

/// Java archives (issue 17) as an attacker would make them: a nested jar that
/// inflates to 1 GiB (its size told, then lied about), a pom.properties that
/// inflates to 100 MiB, jars nested twelve deep, a central directory claiming
/// 4 GiB, and a `.jar` that is not a zip. Each is a crawl_errors row of the
/// `java` collector naming the archive (and the entry inside it); nothing is
/// inflated past its cap, and the honest jar beside them is still read.
#[test]
fn zip_bombs_and_deeply_nested_jars_are_bounded_and_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    os_release(root);
    let app = root.join("app");
    fs::create_dir_all(&app).unwrap();
    let pom = |a: &str| format!("groupId=org.example\nartifactId={a}\nversion=1.0\n").into_bytes();
    fs::write(app.join("good.jar"), zip_of(&[("META-INF/maven/org.example/good/pom.properties", pom("good"), 0, 45)]))
        .unwrap();
    let gib = deflate_zeros(1024);
    assert!(gib.len() < 2 << 20, "{}", gib.len());
    fs::write(app.join("bomb.jar"), zip_of(&[("BOOT-INF/lib/bomb.jar", gib.clone(), 8, 1 << 30)])).unwrap();
    fs::write(app.join("liar.jar"), zip_of(&[("WEB-INF/lib/liar.jar", gib, 8, 1000)])).unwrap();
    let hundred = deflate_zeros(100);
    fs::write(app.join("pom-bomb.jar"), zip_of(&[("META-INF/maven/a/b/pom.properties", hundred, 8, 10)])).unwrap();
    let mut deep = zip_of(&[("META-INF/maven/org.example/deepest/pom.properties", pom("deepest"), 0, 49)]);
    for i in 0..12 {
        let (data, method) = if i % 2 == 0 { (deflate(&deep), 8) } else { (deep.clone(), 0) };
        deep = zip_of(&[(&format!("lib/level{i}.jar"), data, method, deep.len() as u32)]);
    }
    fs::write(app.join("deep.jar"), deep).unwrap();
    let mut lie = zip_of(&[("META-INF/maven/org.example/lie/pom.properties", pom("lie"), 0, 44)]);
    let e = lie.len() - 22;
    lie[e + 12..e + 16].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
    fs::write(app.join("cd-lie.jar"), lie).unwrap();
    fs::write(app.join("not-a.jar"), random_bytes(100_000, 7)).unwrap();

    let started = Instant::now();
    let (rows, _) = crawl_rows(&opts(root));
    assert!(started.elapsed() < Duration::from_secs(60), "took {:?}", started.elapsed());
    let maven: Vec<String> = rows["packages"]
        .iter()
        .filter(|r| s(r, "manager") == "maven")
        .map(|r| format!("{} {}", s(r, "name"), s(r, "location")))
        .collect();
    assert_eq!(maven, ["org.example:good /app/good.jar"], "only the honest jar");
    let errors: Vec<String> = rows["crawl_errors"]
        .iter()
        .filter(|r| s(r, "collector") == "java")
        .map(|r| format!("{} | {}", s(r, "path"), s(r, "message")))
        .collect();
    let has = |a: &str, b: &str| errors.iter().any(|e| e.contains(a) && e.contains(b));
    assert!(
        has("/app/bomb.jar!/BOOT-INF/lib/bomb.jar", "1073741824 bytes exceeds the limit of 33554432"),
        "{errors:#?}"
    );
    assert!(
        has("/app/liar.jar!/WEB-INF/lib/liar.jar", "inflated: 33554433 bytes exceeds the limit of 33554432"),
        "{errors:#?}"
    );
    assert!(
        has("/app/pom-bomb.jar", "pom.properties inflated: 1048577 bytes exceeds the limit of 1048576"),
        "{errors:#?}"
    );
    assert!(
        has("/app/deep.jar!/lib/level11.jar!/lib/level10.jar!/lib/level9.jar!/lib/level8.jar", "nested 4 levels deep"),
        "{errors:#?}"
    );
    assert!(has("/app/cd-lie.jar", "central directory"), "{errors:#?}");
    assert!(has("/app/not-a.jar", "not a zip archive"), "{errors:#?}");
    assert_eq!(errors.len(), 6, "{errors:#?}");
}

/// Gem specifications (issue 17) are Ruby code from the container, never
/// run: a 1 GiB gemspec (sparse, its name and version first) costs 256 KiB
/// of reading and is still reported; one that names nothing is a crawl
/// error; a `specifications` directory linked into itself is not followed.
#[test]
fn hostile_gemspecs_are_bounded_and_never_run() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    os_release(root);
    let specs = root.join("usr/local/bundle/specifications");
    fs::create_dir_all(&specs).unwrap();
    let f = fs::File::create(specs.join("big-1.0.gemspec")).unwrap();
    {
        use std::io::Write;
        let mut w = &f;
        w.write_all(b"# stub: big 1.0 ruby lib\nGem::Specification.new do |s|\n  s.name = \"big\".freeze\n  s.version = \"1.0\"\n  system(\"touch /tmp/PWNED\")\n").unwrap();
    }
    f.set_len(1 << 30).unwrap();
    fs::write(specs.join("empty-1.0.gemspec"), "`rm -rf /`\n").unwrap();
    symlink("../specifications", specs.join("specifications")).unwrap();
    let started = Instant::now();
    let (rows, _) = crawl_rows(&opts(root));
    assert!(started.elapsed() < Duration::from_secs(30), "took {:?}", started.elapsed());
    let gems: Vec<String> = rows["packages"]
        .iter()
        .filter(|r| s(r, "manager") == "gem")
        .map(|r| format!("{} {} {}", s(r, "name"), s(r, "version"), s(r, "location")))
        .collect();
    assert_eq!(gems, ["big 1.0 /usr/local/bundle/specifications/big-1.0.gemspec"]);
    let errors: Vec<String> = rows["crawl_errors"]
        .iter()
        .filter(|r| s(r, "collector") == "gem")
        .map(|r| format!("{} | {}", s(r, "path"), s(r, "message")))
        .collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("empty-1.0.gemspec: no gem name and version"), "{errors:?}");
}

/// Composer's installed.json (issue 17) from a container: a 1 GiB one
/// (sparse) is refused by its size before a byte is read, one that is not
/// JSON or nests past serde_json's recursion limit is a crawl error, and an
/// honest one beside them is read.
#[test]
fn hostile_composer_installed_json_is_bounded_and_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    os_release(root);
    let dir = |d: &str| {
        let p = root.join(d).join("vendor/composer");
        fs::create_dir_all(&p).unwrap();
        p.join("installed.json")
    };
    fs::write(dir("srv/ok"), r#"{"packages":[{"name":"psr/log","version":"1.1.4"}]}"#).unwrap();
    fs::File::create(dir("srv/huge")).unwrap().set_len(1 << 30).unwrap();
    fs::write(dir("srv/garbage"), b"{\"packages\": [\xff").unwrap();
    fs::write(dir("srv/nested"), "[".repeat(100_000)).unwrap();
    // The same depth, closed, in a field no row uses: skipped, the package still read.
    let deep = format!(
        r#"{{"packages":[{{"name":"deep/x","version":"1","extra":{}{}}}]}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    fs::write(dir("srv/deep"), deep).unwrap();
    let (rows, _) = crawl_rows(&opts(root));
    let php: Vec<String> = rows["packages"]
        .iter()
        .filter(|r| s(r, "manager") == "composer")
        .map(|r| format!("{} {} {}", s(r, "name"), s(r, "version"), s(r, "location")))
        .collect();
    assert_eq!(
        php,
        ["deep/x 1 /srv/deep/vendor/composer/installed.json", "psr/log 1.1.4 /srv/ok/vendor/composer/installed.json"]
    );
    let errors: Vec<String> = rows["crawl_errors"]
        .iter()
        .filter(|r| s(r, "collector") == "composer")
        .map(|r| format!("{} | {}", s(r, "path"), s(r, "message")))
        .collect();
    let has = |a: &str, b: &str| errors.iter().any(|e| e.contains(a) && e.contains(b));
    assert!(has("/srv/huge/vendor/composer/installed.json", "1073741824 bytes exceeds"), "{errors:#?}");
    assert!(has("/srv/garbage/vendor/composer/installed.json", "not Composer's installed.json"), "{errors:#?}");
    // Fields no row uses are skipped by serde_json's iterative scanner (a byte per level, no stack),
    // so 100,000 unclosed levels end at EOF rather than at a recursion limit.
    assert!(has("/srv/nested/vendor/composer/installed.json", "EOF while parsing a list"), "{errors:#?}");
    assert_eq!(errors.len(), 3, "{errors:#?}");
}

/// .NET deps.json files (issue 17) from a container: a 1 GiB one (sparse)
/// is refused by its size, one that is not JSON is a crawl error, and an
/// honest one beside them is read.
#[test]
fn hostile_deps_json_is_bounded_and_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    os_release(root);
    let app = root.join("app");
    fs::create_dir_all(&app).unwrap();
    fs::write(app.join("ok.deps.json"), r#"{"libraries":{"Newtonsoft.Json/13.0.3":{"type":"package"}}}"#).unwrap();
    fs::File::create(app.join("huge.deps.json")).unwrap().set_len(1 << 30).unwrap();
    fs::write(app.join("garbage.deps.json"), b"{\"libraries\": \xff").unwrap();
    let (rows, _) = crawl_rows(&opts(root));
    let libs: Vec<String> = rows["packages"]
        .iter()
        .filter(|r| s(r, "manager") == "nuget")
        .map(|r| format!("{} {} {}", s(r, "name"), s(r, "version"), s(r, "location")))
        .collect();
    assert_eq!(libs, ["Newtonsoft.Json 13.0.3 /app/ok.deps.json"]);
    let errors: Vec<String> = rows["crawl_errors"]
        .iter()
        .filter(|r| s(r, "collector") == "nuget")
        .map(|r| format!("{} | {}", s(r, "path"), s(r, "message")))
        .collect();
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert!(
        errors.iter().any(|e| e.contains("/app/huge.deps.json") && e.contains("1073741824 bytes exceeds")),
        "{errors:#?}"
    );
    assert!(
        errors.iter().any(|e| e.contains("/app/garbage.deps.json") && e.contains("not a .NET deps.json")),
        "{errors:#?}"
    );
}

/// Issue 17: library banners are hostile input too. A banner split across
/// the agent's 64 KiB reads is found once, at its offset; a file of 10,000
/// fake banners makes at most 16 rows and says so; a 1 GiB file is read only
/// up to the per-file budget, the rest said not read; a file named like a
/// library that is not ELF is not read for banners; a lying but well-formed
/// banner is reported as written, one broken after its version not at all;
/// and a spent scope budget stops the reading with an error.
#[test]
fn hostile_library_banners_are_bounded_and_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let bin = root.join("usr/local/bin");
    fs::create_dir_all(&bin).unwrap();
    fs::create_dir_all(root.join("usr/local/lib")).unwrap();
    let elf = fs::read("/usr/bin/true").unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let p = bin.join(name);
        fs::write(&p, bytes).unwrap();
        let mut perm = fs::metadata(&p).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
        fs::set_permissions(&p, perm).unwrap();
    };
    // A real ELF file with bytes placed at given offsets past its end.
    let with = |parts: &[(usize, &[u8])]| {
        let mut b = elf.clone();
        for (at, bytes) in parts {
            if b.len() < at + bytes.len() {
                b.resize(at + bytes.len(), 0x90);
            }
            b[*at..at + bytes.len()].copy_from_slice(bytes);
        }
        b.extend_from_slice(&[0x90; 64]);
        b
    };
    let ssl = b"\0OpenSSL 3.0.11 19 Sep 2023\0";
    let zlib = b" deflate 1.2.13 Copyright 1995-2022 Jean-loup Gailly \0";
    // Split at the first and second 64 KiB read boundaries.
    write("split", &with(&[(65536 - 13, ssl), (131072 - 20, zlib)]));
    let mut fake = Vec::new();
    for i in 0..10_000 {
        fake.extend_from_slice(format!("\0OpenSSL 1.0.{i} 1 Jan 2020\0").as_bytes());
    }
    write("fake-banners", &with(&[(elf.len(), &fake)]));
    write("lying", &with(&[(elf.len(), b"\0OpenSSL 99.99.99x 1 Jan 2099\0")]));
    write("lying-garbage", &with(&[(elf.len(), b"\0OpenSSL 99.99.99x\xff\xfe garbage\x01 1 Jan 2099\0")]));
    // Not ELF, named like a library and holding a banner.
    fs::write(root.join("usr/local/lib/libcrypto.so.3"), b"not ELF\0OpenSSL 3.0.11 19 Sep 2023\0").unwrap();
    // 1 GiB, sparse: a banner in its first MiB and one at its end.
    let huge = bin.join("huge");
    fs::write(&huge, with(&[(4096, ssl)])).unwrap();
    let f = fs::OpenOptions::new().write(true).open(&huge).unwrap();
    f.set_len(1 << 30).unwrap();
    std::os::unix::fs::FileExt::write_at(&f, zlib, (1 << 30) - 100).unwrap();
    let mut perm = fs::metadata(&huge).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
    fs::set_permissions(&huge, perm).unwrap();

    let mut o = opts(root);
    o.collectors = Some(vec!["unowned_files".into(), "embedded_libraries".into()]);
    let start = Instant::now();
    let (rows, _) = crawl_rows(&o);
    assert!(start.elapsed() < Duration::from_secs(60), "{:?}", start.elapsed());
    let libs: Vec<(String, String, String, i64)> = rows["embedded_libraries"]
        .iter()
        .map(|r| (s(r, "path"), s(r, "library"), s(r, "version"), r["evidence_offset"].as_i64().unwrap()))
        .collect();
    let of = |name: &str| -> Vec<(String, String, i64)> {
        let path = format!("/usr/local/bin/{name}");
        libs.iter().filter(|l| l.0 == path).map(|l| (l.1.clone(), l.2.clone(), l.3)).collect()
    };
    let (s3, z) = ("openssl".to_string(), "zlib".to_string());
    assert_eq!(of("split"), [(s3.clone(), "3.0.11".into(), 65536 - 12), (z.clone(), "1.2.13".into(), 131072 - 20)]);
    let fakes = of("fake-banners");
    assert_eq!(fakes.len(), 16, "{fakes:?}");
    assert!(fakes.iter().all(|(l, v, _)| *l == s3 && v.is_empty()), "no version from a file naming 10,000: {fakes:?}");
    // Lying: the version a well-formed banner states, as written; the evidence lets a person judge it.
    assert_eq!(of("lying"), [(s3.clone(), "99.99.99x".into(), elf.len() as i64 + 1)]);
    assert_eq!(of("lying-garbage"), []);
    assert!(libs.iter().all(|l| l.0 != "/usr/local/lib/libcrypto.so.3"), "{libs:?}");
    // Only the first 256 MiB (the per-file budget) of the 1 GiB file: OpenSSL is there, but
    // whether its banner is the file's only one cannot be told from a prefix.
    assert_eq!(of("huge"), [(s3.clone(), "".into(), 4097)]);

    let errors: Vec<(String, String, String)> =
        rows["crawl_errors"].iter().map(|r| (s(r, "collector"), s(r, "path"), s(r, "message"))).collect();
    let error_of = |name: &str| -> Vec<&str> {
        let path = format!("/usr/local/bin/{name}");
        errors.iter().filter(|e| e.0 == "embedded_libraries" && e.1 == path).map(|e| e.2.as_str()).collect()
    };
    assert!(
        matches!(error_of("fake-banners")[..], [m] if m.contains("more library banners than are kept")),
        "{errors:?}"
    );
    let cut = format!("only the first {} of its {} bytes were looked at", 256 << 20, 1u64 << 30);
    assert!(matches!(error_of("huge")[..], [m] if m.contains(&cut)), "{errors:?}");
    assert_eq!(errors.len(), 2, "{errors:?}");
    // The cut is the configured budget, not a problem of the scope.
    assert_eq!(s(&rows["crawls"][0], "errors"), "1");
    // unowned_files names what was found, and says how much of each file it read for it: nothing
    // of the file that is not ELF, and only the headers of the one over its hash cap.
    let unowned = |path: &str| {
        let r = rows["unowned_files"].iter().find(|r| s(r, "path") == path).unwrap();
        (s(r, "identified"), s(r, "examined"))
    };
    assert_eq!(unowned("/usr/local/bin/split"), ("openssl 3.0.11; zlib 1.2.13".into(), "elf".into()));
    assert_eq!(unowned("/usr/local/lib/libcrypto.so.3"), ("".into(), "not_elf".into()));
    assert_eq!(unowned("/usr/local/bin/huge"), ("".into(), "elf_headers".into()));

    // Files over the hash cap are not read through by unowned_files: a scope byte budget below
    // the per-file one is spent by embedded_libraries alone, and unowned_files keeps every row.
    // (Examinations are kept across crawls of unchanged files: forget them, so each crawl reads.)
    let budget_errors = |o: &periscope_agent::crawl::CrawlOptions| {
        periscope_agent::collectors::embedded::forget_examined();
        let (rows, _) = crawl_rows(o);
        let budget: Vec<String> = rows["crawl_errors"]
            .iter()
            .filter(|r| s(r, "message").contains("scope budget exhausted"))
            .map(|r| s(r, "collector"))
            .collect();
        (budget, rows["unowned_files"].len())
    };
    o.budgets.max_total_bytes = 200 << 20;
    let (budget, unowned_rows) = budget_errors(&o);
    assert_eq!(budget, ["embedded_libraries"]);
    assert_eq!(unowned_rows, 6);
    // A spent scope byte budget stops both collectors' reading, each with an error.
    o.budgets.max_total_bytes = 100 << 10;
    let (budget, _) = budget_errors(&o);
    assert!(budget.contains(&"unowned_files".to_string()), "{budget:?}");
    assert!(budget.contains(&"embedded_libraries".to_string()), "{budget:?}");
}

/// Issue 24 review: a scope costing more memory than the agent is given (a
/// bomb no budget anticipated) got the agent killed by the kernel, and on
/// every restart it crawled that scope again first and died again — in a
/// 256 MiB pod, 18 kills in 10 minutes and no row of the host ever sent. A run
/// killed mid-scope (here blocked on a frozen FUSE mount it was asked to read,
/// then sent SIGKILL, as the OOM killer does) leaves that scope's marker; the
/// next run leaves the scope unread for a period, says why in `crawl_errors`,
/// and gets on with the crawl instead of blocking (or dying) on it again.
#[test]
fn a_scope_whose_crawl_killed_the_agent_is_left_unread_by_the_next_run() {
    let t = tempfile::tempdir().unwrap();
    let Some((root, fuse)) = root_with_fuse(t.path(), "app") else { return };
    fuse.freeze();
    let spool = t.path().join("spool");
    let run = || {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_periscope-agent"));
        cmd.args(["run", "--once", "--server", "http://127.0.0.1:1", "--host", "qhost", "--scope-id", "qscope"])
            .args(["--docker", "off", "--containerd", "off", "--read-network-fs", "--max-wall-secs", "5"])
            .arg("--spool-dir")
            .arg(&spool)
            .arg("--root")
            .arg(&root)
            .stderr(std::process::Stdio::piped());
        cmd
    };
    let markers = spool.join("crawling");
    let marked = |markers: &Path| {
        fs::read_dir(markers)
            .map(|d| d.flatten().any(|e| e.file_name().to_string_lossy().starts_with("crawling-")))
            .unwrap_or(false)
    };
    let wait_marked = |run: &mut std::process::Child| {
        let start = Instant::now();
        while !marked(&markers) {
            assert!(run.try_wait().unwrap().is_none(), "the run ended before its crawl was seen");
            assert!(start.elapsed() < Duration::from_secs(60), "no crawl marker in {}", markers.display());
            std::thread::sleep(Duration::from_millis(10));
        }
        // Blocked on the frozen mount now (the watchdog would give up after 15 s).
        std::thread::sleep(Duration::from_millis(500));
    };
    // Stopped on purpose (SIGTERM, as a rolling update does): the mark goes, nothing is quarantined.
    let mut stopped = run().spawn().unwrap();
    wait_marked(&mut stopped);
    let pid = rustix::process::Pid::from_raw(stopped.id() as i32).unwrap();
    let start = Instant::now();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    stopped.wait().unwrap();
    // At once, not when the watchdog gives up on the blocked scope (15 s).
    assert!(start.elapsed() < Duration::from_secs(5), "SIGTERM took {:?}", start.elapsed());
    assert!(!marked(&markers), "a stopped run left its crawl marker");

    let mut first = run().spawn().unwrap();
    wait_marked(&mut first);
    // Killed (SIGKILL, as the OOM killer does): the mark stays.
    first.kill().unwrap();
    first.wait().unwrap();

    let start = Instant::now();
    let second = run().output().unwrap();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(start.elapsed() < Duration::from_secs(15), "the second run waited on the scope: {stderr}");
    // No server listens: the run spools its crawl and says it could not deliver it.
    assert!(stderr.contains("the crawl is spooled"), "{stderr}");
    assert!(stderr.contains("the last run stopped while crawling qhost/host/qscope"), "{stderr}");
    // What it spooled for the server: the scope's crawl says why it was not read, and nothing of it was.
    let mut sp = periscope_agent::spool::Spool::open(&spool, 1 << 30).unwrap();
    let mut why = Vec::new();
    let mut tables = std::collections::BTreeSet::new();
    for (_, b) in sp.peek(u64::MAX) {
        tables.insert(b.table.clone());
        if b.table != "crawl_errors" {
            continue;
        }
        let (_, batches) = periscope_proto::ipc::decode_wire(&b.arrow_ipc, b.compression != 0, 1 << 30).unwrap();
        for rb in batches {
            let msg = rb.column_by_name("message").unwrap();
            let msg = msg.as_any().downcast_ref::<arrow_array::StringArray>().unwrap();
            why.extend(msg.iter().flatten().map(str::to_string));
        }
    }
    assert!(why.iter().any(|m| m.contains("stopped before it finished")), "{why:?}");
    assert!(!tables.contains("packages") && !tables.contains("unowned_files"), "{tables:?}");
    drop(fuse);
}

/// What a pip distribution's own file list names is that distribution's in
/// `package_files`, but it has no OS owner: a jar shipped inside a wheel is
/// a Maven package with no `owner_package` (not the wheel's name), and an
/// `owner_package IS NULL` query still finds what no OS package manager owns.
#[test]
fn a_pip_file_list_gives_files_no_os_owner() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    os_release(root);
    let site = root.join("usr/local/lib/python3.11/site-packages");
    fs::create_dir_all(site.join("outer-1.0.dist-info")).unwrap();
    fs::create_dir_all(site.join("outer/jars")).unwrap();
    fs::write(site.join("outer-1.0.dist-info/METADATA"), "Name: outer\nVersion: 1.0\n\n").unwrap();
    fs::write(site.join("outer-1.0.dist-info/RECORD"), "outer/jars/lib.jar,,\nouter-1.0.dist-info/METADATA,,\n")
        .unwrap();
    let pom = b"groupId=org.example\nartifactId=lib\nversion=2.0\n".to_vec();
    fs::write(site.join("outer/jars/lib.jar"), zip_of(&[("META-INF/maven/org.example/lib/pom.properties", pom, 0, 0)]))
        .unwrap();
    let mut o = opts(root);
    o.collectors = Some(vec!["os".into(), "packages".into(), "python".into(), "java".into()]);
    let (rows, _) = crawl_rows(&o);
    let jar = "/usr/local/lib/python3.11/site-packages/outer/jars/lib.jar";
    assert!(
        rows["package_files"]
            .iter()
            .any(|r| s(r, "manager") == "pypi" && s(r, "package") == "outer" && s(r, "path") == jar),
        "{:?}",
        rows["package_files"]
    );
    let lib = rows["packages"].iter().find(|r| s(r, "name") == "org.example:lib").expect("the jar's package");
    assert_eq!(s(lib, "owner_package"), "", "a pip distribution is not an OS owner");
}
