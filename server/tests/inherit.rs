//! Containers share with their image what they did not change: real Docker
//! containers that change nothing, edit /etc/passwd, mount a volume over
//! /usr/local/bin, delete /etc/group (a whiteout) or replace a directory of
//! the dpkg database (an opaque directory). Each sends only the tables its own
//! layers and mounts touch, and what SQL shows for each container equals what
//! a full crawl of it (`crawl --print`, which reads every table of every
//! container itself) finds.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use common::*;

/// Columns compared per table: enough to name each row.
const COMPARED: &[(&str, &[&str])] = &[
    ("os", &["pretty_name", "release", "busybox"]),
    ("packages", &["name", "version", "architecture"]),
    ("package_files", &["package", "path"]),
    ("users", &["name", "uid", "shell", "password_set"]),
    ("groups", &["name", "gid", "members"]),
    ("files", &["path", "type", "sha256", "package"]),
    ("unowned_files", &["path", "kind", "sha256", "identified"]),
    ("embedded_libraries", &["path", "library", "version", "evidence_offset"]),
];

/// The row's `cols`, nulls (explicit in printed rows, absent in SQL's JSON) as empty.
fn key(row: &serde_json::Map<String, serde_json::Value>, cols: &[&str]) -> String {
    let v = |c: &str| match row.get(c) {
        None | Some(serde_json::Value::Null) => String::new(),
        Some(_) => s(row, c),
    };
    cols.iter().map(|c| v(c)).collect::<Vec<_>>().join("|")
}

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().unwrap();
    assert!(out.status.success(), "docker {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn containers_send_only_what_their_layers_and_mounts_change_and_sql_shows_their_full_inventory() {
    if !docker_available("containers_send_only_what_their_layers_and_mounts_change_and_sql_shows_their_full_inventory")
    {
        return;
    }
    let image = docker_test_image();
    let image_id = docker(&["image", "inspect", "-f", "{{.Id}}", &image]);
    let mut cs = Containers(Vec::new());
    let plain = cs.create(&["run", "-d", &image, "sleep", "600"]);
    let passwd = cs.create(&[
        "run",
        "-d",
        &image,
        "sh",
        "-c",
        "echo 'periscope:x:4242:4242::/home/periscope:/bin/sh' >> /etc/passwd && sleep 600",
    ]);
    let tools = tempfile::tempdir().unwrap();
    std::fs::write(tools.path().join("tool"), "#!/bin/sh\necho a tool no package owns\n").unwrap();
    let exec = std::os::unix::fs::PermissionsExt::from_mode(0o755);
    std::fs::set_permissions(tools.path().join("tool"), exec).unwrap();
    let volume = format!("{}:/usr/local/bin:ro", tools.path().display());
    let mounted = cs.create(&["run", "-d", "-v", &volume, &image, "sleep", "600"]);
    let no_group = cs.create(&["run", "-d", &image, "rm", "/etc/group"]);
    let opaque = cs.create(&["run", "-d", &image, "sh", "-c", "rm -rf /var/lib/dpkg/info && mkdir /var/lib/dpkg/info"]);
    for id in [&no_group, &opaque] {
        assert_eq!(docker(&["wait", id]), "0", "{id} exited cleanly");
    }
    wait_for("the passwd edit", std::time::Duration::from_secs(30), || {
        Command::new("docker")
            .args(["exec", &passwd, "grep", "-q", "periscope", "/etc/passwd"])
            .status()
            .unwrap()
            .success()
    });

    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let (ok, _, err) = agent(&["crawl", "--server", &server.url, "--containerd", "off"]);
    assert!(ok, "{err}");
    let target = ["--server", server.url.as_str()];

    // What each container shares with its image, by table.
    let shared = |id: &str| -> BTreeSet<String> {
        let q = format!("SELECT table_name FROM inherited WHERE scope_id = '{id}' AND image_id = '{image_id}'");
        sql(&target, &q).iter().map(|r| s(r, "table_name")).collect()
    };
    let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    let fs_tables = [
        "os",
        "packages",
        "packages_not_installed",
        "package_files",
        "users",
        "groups",
        "files",
        "unowned_files",
        "embedded_libraries",
    ];
    // /etc/hosts and resolv.conf are the container's own (bind mounts): configs is always read.
    assert_eq!(shared(&plain), set(&fs_tables));
    // /etc/passwd changed: users and files (which matches /etc/passwd) are read; the rest is the image's.
    let without = |drop: &[&str]| set(&fs_tables.iter().filter(|t| !drop.contains(t)).copied().collect::<Vec<_>>());
    assert_eq!(shared(&passwd), without(&["users", "files"]));
    // A volume over /usr/local/bin: files (/usr/local/bin/*), unowned_files and embedded_libraries (/usr) are
    // read; a directory mounted anywhere may hold node_modules, so npm reads it, and packages (whose table npm
    // shares) with it.
    assert_eq!(
        shared(&mounted),
        without(&[
            "files",
            "unowned_files",
            "embedded_libraries",
            "packages",
            "packages_not_installed",
            "package_files"
        ])
    );
    // /etc/group deleted (a whiteout in the container's layer).
    assert_eq!(shared(&no_group), without(&["groups", "files"]));
    // The dpkg file lists replaced by an empty directory (opaque): packages, and what names owners, are read.
    assert_eq!(
        shared(&opaque),
        without(&[
            "packages",
            "packages_not_installed",
            "package_files",
            "files",
            "unowned_files",
            "embedded_libraries"
        ])
    );

    // The oracle: a full crawl of every container, read by the agent itself.
    let (ok, printed, err) = agent(&["crawl", "--print", "--containerd", "off"]);
    assert!(ok, "{err}");
    let mut full: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for line in printed.lines() {
        let row: serde_json::Map<String, serde_json::Value> = serde_json::from_str(line).unwrap();
        let table = s(&row, "table");
        if let Some((_, cols)) = COMPARED.iter().find(|(t, _)| *t == table) {
            full.entry((s(&row, "scope_id"), table)).or_default().insert(key(&row, cols));
        }
    }
    for id in [&plain, &passwd, &mounted, &no_group, &opaque] {
        let name = docker(&["inspect", "-f", "{{.Name}}", id]).trim_start_matches('/').to_string();
        for (table, cols) in COMPARED {
            let rows =
                sql(&target, &format!("SELECT container, {} FROM {table} WHERE scope_id = '{id}'", cols.join(", ")));
            assert!(rows.iter().all(|r| s(r, "container") == name), "{table} of {id}: container names {rows:?}");
            let got: BTreeSet<String> = rows.iter().map(|r| key(r, cols)).collect();
            let want = full.get(&(id.to_string(), table.to_string())).cloned().unwrap_or_default();
            assert_eq!(got, want, "{table} of container {name}: SQL differs from a full crawl of it");
        }
    }
    // The changes themselves are there.
    let q = |sql_text: &str| sql(&target, sql_text).len();
    assert_eq!(q(&format!("SELECT name FROM users WHERE scope_id = '{passwd}' AND name = 'periscope'")), 1);
    assert_eq!(q(&format!("SELECT name FROM users WHERE scope_id = '{plain}' AND name = 'periscope'")), 0);
    assert_eq!(
        q(&format!("SELECT path FROM unowned_files WHERE scope_id = '{mounted}' AND path = '/usr/local/bin/tool'")),
        1
    );
    assert_eq!(q(&format!("SELECT name FROM groups WHERE scope_id = '{no_group}'")), 0);
    assert!(q(&format!("SELECT name FROM groups WHERE scope_id = '{plain}'")) > 10);
    assert_eq!(q(&format!("SELECT path FROM package_files WHERE scope_id = '{opaque}'")), 0);
    // Stored once: the unchanged container sent none of the image's rows.
    assert_eq!(q(&format!("SELECT name FROM packages_history WHERE scope_id = '{plain}'")), 0);
    assert!(q(&format!("SELECT name FROM packages_history WHERE scope_id = '{image_id}'")) > 50);
}
