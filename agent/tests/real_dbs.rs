//! The collectors against real package databases and account files, each
//! compared with the tool that owns the format, run inside the root.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;

#[test]
fn dpkg_packages_and_file_lists_equal_dpkg_in_a_chroot() {
    let root = debian_rootfs();
    let (rows, _) = crawl_rows(&opts(&root));

    let want: BTreeMap<String, String> =
        in_chroot(&root, &["dpkg-query", "-W", "-f", "${Package}\t${Version}\t${db:Status-Status}\n"])
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                (f[2] == "installed").then(|| (f[0].to_string(), f[1].to_string()))
            })
            .collect();
    let got: BTreeMap<String, String> = rows["packages"].iter().map(|r| (s(r, "name"), s(r, "version"))).collect();
    assert_eq!(got, want);
    assert!(want.values().any(|v| v.contains(':')), "the fixture should hold packages with epochs");
    assert!(rows["packages"].iter().all(|r| s(r, "manager") == "dpkg"));

    // package_files equals `dpkg -L` for every package, multi-arch ones (info/<pkg>:<arch>.list) included.
    let mut files: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for r in &rows["package_files"] {
        files.entry(s(r, "package")).or_default().insert(s(r, "path"));
    }
    let mut multiarch = 0;
    for name in want.keys() {
        let listed: BTreeSet<String> = in_chroot(&root, &["dpkg", "-L", name])
            .lines()
            .filter(|l| l.starts_with('/') && *l != "/.")
            .map(String::from)
            .collect();
        let ours = files.get(name).cloned().unwrap_or_default();
        assert_eq!(ours, listed, "package_files of {name}");
        if root.join(format!("var/lib/dpkg/info/{name}:amd64.list")).exists() {
            multiarch += 1;
        }
    }
    assert!(multiarch > 0, "the fixture should hold Multi-Arch: same packages");
}

#[test]
fn users_and_groups_equal_getent_in_a_chroot() {
    let root = debian_rootfs();
    let (rows, text) = crawl_rows(&opts(&root));
    let want: BTreeSet<String> = in_chroot(&root, &["getent", "passwd"]).lines().map(String::from).collect();
    let got: BTreeSet<String> = rows["users"]
        .iter()
        .map(|r| {
            format!(
                "{}:x:{}:{}:{}:{}:{}",
                s(r, "name"),
                s(r, "uid"),
                s(r, "gid"),
                s(r, "gecos"),
                s(r, "home"),
                s(r, "shell")
            )
        })
        .collect();
    assert_eq!(got, want);
    let want: BTreeSet<String> = in_chroot(&root, &["getent", "group"]).lines().map(String::from).collect();
    let got: BTreeSet<String> =
        rows["groups"].iter().map(|r| format!("{}:x:{}:{}", s(r, "name"), s(r, "gid"), s(r, "members"))).collect();
    assert_eq!(got, want);
    // root's shadow entry is locked or passwordless in a fresh debootstrap; either way no hash leaves the agent.
    let shadow = std::fs::read_to_string(root.join("etc/shadow")).unwrap();
    for field in shadow.lines().filter_map(|l| l.split(':').nth(1)).filter(|f| f.starts_with('$')) {
        assert!(!text.contains(field), "a password hash leaked");
    }
    let root_user = rows["users"].iter().find(|r| s(r, "name") == "root").unwrap();
    assert_eq!(s(root_user, "uid"), "0");
    assert!(!s(root_user, "password_set").is_empty(), "root has a shadow entry: {root_user:?}");
}

#[test]
fn files_configs_and_unowned_files_on_a_copy_of_the_rootfs() {
    let base = debian_rootfs();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("r");
    let st = std::process::Command::new("cp").args(["-a", "--reflink=auto"]).arg(&base).arg(&root).status().unwrap();
    assert!(st.success());
    // Software nobody's package manager knows about, the way images compile into /usr/local.
    std::fs::write(root.join("usr/local/bin/mytool"), b"#!/bin/sh\necho hi\n").unwrap();
    std::fs::create_dir_all(root.join("usr/local/lib")).unwrap();
    std::fs::write(root.join("usr/local/lib/libmine.so.1"), b"\x7fELF").unwrap();
    std::os::unix::fs::PermissionsExt::set_mode(
        &mut std::fs::metadata(root.join("usr/local/bin/mytool")).unwrap().permissions(),
        0o755,
    );
    std::process::Command::new("chmod").args(["4755"]).arg(root.join("usr/local/bin/mytool")).status().unwrap();
    // A removed package whose configuration files stay behind.
    let mut status = std::fs::read_to_string(root.join("var/lib/dpkg/status")).unwrap();
    status.push_str("\nPackage: oldtool\nStatus: deinstall ok config-files\nArchitecture: amd64\nVersion: 1:2.0-1\n");
    std::fs::write(root.join("var/lib/dpkg/status"), status).unwrap();
    std::fs::create_dir_all(root.join("etc/ssh")).unwrap();
    std::fs::write(root.join("etc/ssh/sshd_config"), "PermitRootLogin yes\n").unwrap();

    let (rows, _) = crawl_rows(&opts(&root));
    let gone: Vec<(String, String, String)> =
        rows["packages_not_installed"].iter().map(|r| (s(r, "name"), s(r, "version"), s(r, "status"))).collect();
    assert_eq!(gone, [("oldtool".to_string(), "1:2.0-1".to_string(), "deinstall ok config-files".to_string())]);
    assert!(!rows["packages"].iter().any(|r| s(r, "name") == "oldtool"), "not-installed kept apart from packages");
    let unowned: BTreeMap<String, String> =
        rows["unowned_files"].iter().map(|r| (s(r, "path"), s(r, "kind"))).collect();
    assert_eq!(
        unowned,
        BTreeMap::from([
            ("/usr/local/bin/mytool".to_string(), "executable".to_string()),
            ("/usr/local/lib/libmine.so.1".to_string(), "shared_library".to_string())
        ]),
        "only the two planted files are unowned"
    );
    let files: BTreeMap<String, &serde_json::Map<String, serde_json::Value>> =
        rows["files"].iter().map(|r| (s(r, "path"), r)).collect();
    let tool = files["/usr/local/bin/mytool"];
    assert_eq!((s(tool, "setuid"), s(tool, "mode"), s(tool, "package")), ("true".into(), "4755".into(), "".into()));
    let sha = std::process::Command::new("sha256sum").arg(root.join("usr/local/bin/mytool")).output().unwrap();
    assert_eq!(s(tool, "sha256"), String::from_utf8(sha.stdout).unwrap().split_whitespace().next().unwrap());
    // /etc/passwd is made by base-passwd's maintainer script, so no package lists it.
    assert_eq!(s(files["/etc/passwd"], "package"), "");
    let cron = files["/etc/cron.daily/dpkg"];
    assert_eq!(s(cron, "package"), "dpkg", "owning package via package_files");
    assert_eq!(s(cron, "type"), "regular file");
    let configs: BTreeMap<String, String> = rows["configs"].iter().map(|r| (s(r, "path"), s(r, "content"))).collect();
    assert_eq!(configs["/etc/ssh/sshd_config"], "PermitRootLogin yes\n");
    assert!(configs.contains_key("/etc/login.defs"));
}

#[test]
fn apk_database_written_from_the_format_documentation() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    std::fs::create_dir_all(root.join("lib/apk/db")).unwrap();
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(root.join("etc/alpine-release"), "3.20.3\n").unwrap();
    std::fs::write(
        root.join("lib/apk/db/installed"),
        "C:Q1abc=\nP:musl\nV:1.2.5-r0\nA:x86_64\nS:407000\nI:667648\nT:the musl c library\nU:https://musl.libc.org/\nL:MIT\no:musl\nm:Natanael Copa <ncopa@alpinelinux.org>\nt:1715000000\nc:abc123\nF:lib\nR:ld-musl-x86_64.so.1\na:0:0:755\nZ:Q1xyz=\nR:libc.musl-x86_64.so.1\n\nP:busybox\nV:1.36.1-r29\nA:x86_64\nL:GPL-2.0-only\no:busybox\nF:bin\nR:busybox\nF:etc\nR:securetty\n\n",
    )
    .unwrap();
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::write(root.join("bin/busybox"), b"\x7fELF").unwrap();
    let (rows, _) = crawl_rows(&opts(root));
    let pk: BTreeMap<String, (String, String, String)> =
        rows["packages"].iter().map(|r| (s(r, "name"), (s(r, "manager"), s(r, "version"), s(r, "license")))).collect();
    assert_eq!(pk["musl"], ("apk".into(), "1.2.5-r0".into(), "MIT".into()));
    assert_eq!(pk["busybox"].1, "1.36.1-r29");
    let musl = rows["packages"].iter().find(|r| s(r, "name") == "musl").unwrap();
    assert_eq!(
        (s(musl, "description"), s(musl, "url"), s(musl, "commit"), s(musl, "package_size"), s(musl, "installed_size")),
        (
            "the musl c library".into(),
            "https://musl.libc.org/".into(),
            "abc123".into(),
            "407000".into(),
            "667648".into()
        )
    );
    let files: BTreeSet<(String, String)> =
        rows["package_files"].iter().map(|r| (s(r, "package"), s(r, "path"))).collect();
    assert!(files.contains(&("musl".into(), "/lib/ld-musl-x86_64.so.1".into())), "{files:?}");
    assert!(files.contains(&("busybox".into(), "/etc/securetty".into())), "{files:?}");
    let os = &rows["os"][0];
    assert_eq!((s(os, "release"), s(os, "busybox")), ("3.20.3".into(), "true".into()));
    assert!(rows["unowned_files"].is_empty(), "busybox is owned by its package: {:?}", rows["unowned_files"]);
}

#[test]
fn a_busybox_root_without_os_release_is_identified() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("bin")).unwrap();
    std::fs::write(tmp.path().join("bin/busybox"), b"\x7fELF").unwrap();
    let (rows, _) = crawl_rows(&opts(tmp.path()));
    let os = &rows["os"][0];
    assert_eq!((s(os, "id"), s(os, "busybox")), ("busybox".into(), "true".into()));
    assert!(rows["crawl_errors"].iter().any(|r| s(r, "message").contains("no os-release found")));
}

#[test]
fn distroless_status_d_from_real_control_stanzas() {
    // Distroless images carry one control stanza per package in status.d and its md5sums beside it.
    let base = debian_rootfs();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    std::fs::create_dir_all(root.join("var/lib/dpkg/status.d")).unwrap();
    let status = std::fs::read_to_string(base.join("var/lib/dpkg/status")).unwrap();
    let mut want = BTreeMap::new();
    for name in ["libc6", "base-files", "tzdata"] {
        let stanza = status.split("\n\n").find(|s| s.starts_with(&format!("Package: {name}\n"))).unwrap();
        // Distroless drops the Status line: present means installed.
        let stanza: String = stanza.lines().filter(|l| !l.starts_with("Status:")).map(|l| format!("{l}\n")).collect();
        let version = stanza.lines().find_map(|l| l.strip_prefix("Version: ")).unwrap().to_string();
        std::fs::write(root.join(format!("var/lib/dpkg/status.d/{name}")), &stanza).unwrap();
        let sums = ["", ":amd64"]
            .iter()
            .find_map(|a| std::fs::read(base.join(format!("var/lib/dpkg/info/{name}{a}.md5sums"))).ok())
            .unwrap();
        std::fs::write(root.join(format!("var/lib/dpkg/status.d/{name}.md5sums")), &sums).unwrap();
        let files: BTreeSet<String> = String::from_utf8(sums)
            .unwrap()
            .lines()
            .filter_map(|l| l.split_once("  "))
            .map(|(_, p)| format!("/{p}"))
            .collect();
        want.insert(name.to_string(), (version, files));
    }
    let (rows, _) = crawl_rows(&opts(root));
    let got: BTreeMap<String, String> = rows["packages"].iter().map(|r| (s(r, "name"), s(r, "version"))).collect();
    assert_eq!(got, want.iter().map(|(n, (v, _))| (n.clone(), v.clone())).collect::<BTreeMap<_, _>>());
    for (name, (_, files)) in &want {
        let ours: BTreeSet<String> =
            rows["package_files"].iter().filter(|r| s(r, "package") == *name).map(|r| s(r, "path")).collect();
        assert_eq!(&ours, files, "{name}");
    }
    assert!(rows["packages"].iter().all(|r| s(r, "db_path").starts_with("/var/lib/dpkg/status.d/")));
    assert!(!rows["crawl_errors"].iter().any(|r| s(r, "collector") == "packages"), "{:?}", rows["crawl_errors"]);
}
