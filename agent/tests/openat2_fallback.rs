//! Where seccomp refuses openat2 (answering EPERM, as container runtimes'
//! default profiles may), the agent must fall back to userspace resolution
//! with the same guarantees. The real agent binary runs under a real seccomp
//! filter (installed by Debian's python3-seccomp, which then execs the agent;
//! filters survive exec) and must produce what it produces without one.

mod common;

use std::os::unix::fs::symlink;
use std::process::Command;

use common::*;
use rustix::fs::{Mode, OFlags};

const FILTER: &str = r#"
import errno, os, sys, seccomp
f = seccomp.SyscallFilter(seccomp.ALLOW)
f.add_rule(seccomp.ERRNO(errno.EPERM), "openat2")
f.load()
os.execv(sys.argv[1], sys.argv[1:])
"#;

fn agent(root: &std::path::Path, seccomp: bool) -> String {
    let bin = env!("CARGO_BIN_EXE_periscope-agent");
    let args = ["crawl", "--root", root.to_str().unwrap(), "--print", "--host", "h", "--scope-id", "s"];
    let out = if seccomp {
        Command::new("/usr/bin/python3").arg("-c").arg(FILTER).arg(bin).args(args).output()
    } else {
        Command::new(bin).args(args).output()
    }
    .expect("run agent");
    assert!(out.status.success(), "agent failed (seccomp={seccomp}): {}", String::from_utf8_lossy(&out.stderr));
    // crawl_time and duration differ between runs; drop them.
    let mut lines: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: serde_json::Map<String, serde_json::Value> = serde_json::from_str(l).unwrap();
            v.remove("crawl_time");
            v.remove("duration_ms");
            serde_json::to_string(&v).unwrap()
        })
        .collect();
    lines.sort();
    lines.join("\n")
}

#[test]
fn without_openat2_the_crawl_is_the_same_and_still_confined() {
    let probe =
        Command::new("/usr/bin/python3").args(["-c", "import seccomp"]).status().map(|s| s.success()).unwrap_or(false);
    assert!(probe, "python3-seccomp is missing: run scripts/install-test-deps.sh");
    // The filter really bites: a probe that calls openat2 under it gets EPERM.
    let check = Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(FILTER)
        .args(["/usr/bin/python3", "-c", "import ctypes,os; r=ctypes.CDLL(None).syscall(437, -100, b'.', b'\\0'*24, 24); print(ctypes.get_errno() if r<0 else 'ok')"])
        .output()
        .unwrap();
    assert_ne!(String::from_utf8_lossy(&check.stdout).trim(), "ok", "the seccomp filter did not refuse openat2");

    // A copy-free escape tree plus the real Debian root.
    let tmp = tempfile::tempdir().unwrap();
    let secret = tmp.path().join("secret");
    std::fs::write(&secret, "ID=LEAKED-SECRET\n").unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir_all(root.join("etc")).unwrap();
    symlink(&secret, root.join("etc/os-release")).unwrap();
    symlink("../../../../secret", root.join("etc/passwd")).unwrap();
    // A file deeper than PATH_MAX (made through descriptors), hashed by unowned_files: its path
    // is resolved in pieces, and without openat2 component by component.
    std::fs::create_dir_all(root.join("usr/lib")).unwrap();
    let mut fd = rustix::fs::open(root.join("usr/lib"), OFlags::DIRECTORY | OFlags::RDONLY, Mode::empty()).unwrap();
    let dir = "d".repeat(250);
    for _ in 0..20 {
        rustix::fs::mkdirat(&fd, dir.as_str(), Mode::from_raw_mode(0o755)).unwrap();
        fd = rustix::fs::openat(&fd, dir.as_str(), OFlags::DIRECTORY | OFlags::RDONLY, Mode::empty()).unwrap();
    }
    let deep = rustix::fs::openat(&fd, "deep-exec", OFlags::CREATE | OFlags::WRONLY, Mode::from_raw_mode(0o755));
    rustix::io::write(deep.unwrap(), b"#!/bin/sh\n").unwrap();
    let escaped = agent(&root, true);
    assert!(!escaped.contains("LEAKED-SECRET"), "{escaped}");
    let sha = format!("{:x}", <sha2::Sha256 as sha2::Digest>::digest(b"#!/bin/sh\n"));
    assert!(escaped.contains(&sha), "the file past PATH_MAX was not hashed: {escaped}");
    assert_eq!(escaped, agent(&root, false));

    let debian = debian_rootfs();
    let with = agent(&debian, true);
    assert!(with.contains("\"table\":\"packages\""));
    assert_eq!(with, agent(&debian, false), "the fallback resolver changed the crawl");
}
