//! End to end over a real socket: `periscope serve`, `periscope-agent crawl`,
//! `periscope sql`, against a real debootstrap root filesystem.

mod common;

use std::collections::BTreeMap;
use std::process::Command;

use common::*;

/// dpkg's own view of a root: `dpkg-query -W` run inside it (chroot), installed packages only.
fn dpkg_query(root: &std::path::Path) -> BTreeMap<String, (String, String)> {
    let out = Command::new("chroot")
        .arg(root)
        .args(["dpkg-query", "-W", "-f", "${Package}\t${Version}\t${Architecture}\t${db:Status-Status}\n"])
        .output()
        .expect("chroot dpkg-query");
    assert!(out.status.success(), "dpkg-query failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f[3] != "config-files" && f[3] != "not-installed")
                .then(|| (f[0].to_string(), (f[1].to_string(), f[2].to_string())))
        })
        .collect()
}

#[test]
fn packages_from_sql_equal_dpkg_query_in_the_rootfs() {
    let root = debian_rootfs();
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let root_s = root.to_str().unwrap();
    let crawl = || {
        let args = ["crawl", "--root", root_s, "--server", &server.url, "--host", "e2e-host"];
        agent(&[&args[..], &["--scope", "image", "--scope-id", "bookworm"]].concat())
    };
    let (ok, _, err) = crawl();
    assert!(ok, "agent failed: {err}");

    let expected = dpkg_query(&root);
    assert!(expected.len() > 80, "suspiciously few packages in the rootfs: {}", expected.len());
    assert!(expected.contains_key("bash"));

    let q = "SELECT name, version, architecture, host, scope, scope_id, crawl_time FROM packages WHERE scope_id = 'bookworm' ORDER BY name";
    let rows = sql(&["--server", &server.url], q);
    let got: BTreeMap<String, (String, String)> =
        rows.iter().map(|r| (s(r, "name"), (s(r, "version"), s(r, "architecture")))).collect();
    assert_eq!(got.len(), rows.len(), "duplicate package rows");
    for (name, want) in &expected {
        assert_eq!(got.get(name), Some(want), "package {name}");
    }
    assert_eq!(
        got.len(),
        expected.len(),
        "extra packages: {:?}",
        got.keys().filter(|k| !expected.contains_key(*k)).collect::<Vec<_>>()
    );
    for r in &rows {
        assert_eq!(
            (s(r, "host"), s(r, "scope"), s(r, "scope_id")),
            ("e2e-host".into(), "image".into(), "bookworm".into())
        );
        assert!(!s(r, "crawl_time").is_empty());
    }

    // The OS row matches the rootfs's os-release.
    let os = sql(&["--server", &server.url], "SELECT id, version_id, pretty_name FROM os WHERE scope_id = 'bookworm'");
    assert_eq!(os.len(), 1);
    assert_eq!((s(&os[0], "id"), s(&os[0], "version_id")), ("debian".into(), "12".into()));

    // Every collector's table answers SQL: package files agree with packages, accounts are there.
    let owned = sql(
        &["--server", &server.url],
        "SELECT count(DISTINCT f.package) AS n FROM package_files f JOIN packages p ON f.package = p.name AND f.scope_id = p.scope_id WHERE f.scope_id = 'bookworm'",
    );
    assert!(s(&owned[0], "n").parse::<usize>().unwrap() > expected.len() / 2, "{owned:?}");
    let root_user =
        sql(&["--server", &server.url], "SELECT name, shell FROM users WHERE uid = 0 AND scope_id = 'bookworm'");
    assert_eq!((s(&root_user[0], "name"), s(&root_user[0], "shell")), ("root".into(), "/bin/bash".into()));
    for table in ["groups", "files", "configs", "unowned_files", "crawl_errors"] {
        sql(&["--server", &server.url], &format!("SELECT * FROM {table} LIMIT 1"));
    }

    // The headline question: which scopes run bash below a fixed version, in dpkg's ordering.
    let bash = &expected["bash"].0;
    let below = |v: &str| {
        sql(
            &["--server", &server.url],
            &format!("SELECT host, scope_id, version FROM packages WHERE name = 'bash' AND version_lt(version, '{v}')"),
        )
        .len()
    };
    assert_eq!(below(bash), 0, "bash {bash} is not below itself");
    assert_eq!(below(&format!("{bash}.1")), 1, "bash {bash} is below {bash}.1");
    assert_eq!(below(&format!("{bash}~rc1")), 0, "a tilde sorts before the release");
    assert_eq!(below("1:0"), 1, "any epoch beats no epoch");

    // A second crawl replaces, not duplicates, the current view; history keeps both.
    let (ok, _, err) = crawl();
    assert!(ok, "second crawl failed: {err}");
    let n = |q: &str| s(&sql(&["--server", &server.url], q)[0], "n").parse::<usize>().unwrap();
    assert_eq!(n("SELECT count(*) AS n FROM packages WHERE name = 'bash'"), 1);
    assert_eq!(n("SELECT count(*) AS n FROM packages_history WHERE name = 'bash'"), 2);
    assert_eq!(n("SELECT count(*) AS n FROM crawls WHERE scope_id = 'bookworm'"), 2);

    // The data directory answers directly, while the server is still running on it.
    let local = sql(&["--data", data.path().to_str().unwrap()], q);
    assert_eq!(
        local.iter().map(|r| s(r, "version")).collect::<Vec<_>>(),
        rows.iter().map(|r| s(r, "version")).collect::<Vec<_>>()
    );
}

#[test]
fn a_root_without_dpkg_still_delivers_os_and_records_the_error() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("etc")).unwrap();
    std::fs::write(
        root.path().join("etc/os-release"),
        "ID=alpine\nVERSION_ID=3.20.0\nPRETTY_NAME=\"Alpine Linux v3.20\"\n",
    )
    .unwrap();
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let (ok, _, err) =
        agent(&["crawl", "--root", root.path().to_str().unwrap(), "--server", &server.url, "--scope-id", "nodpkg"]);
    assert!(ok, "a missing database must not fail the crawl: {err}");

    let errors = sql(
        &["--server", &server.url],
        "SELECT host, scope, collector, path, message, crawl_time FROM crawl_errors WHERE scope_id = 'nodpkg'",
    );
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(s(&errors[0], "collector"), "packages");
    let message = s(&errors[0], "message");
    assert!(message.contains("no package database found") && message.contains("/var/lib/dpkg/status"), "{errors:?}");
    let os = sql(&["--server", &server.url], "SELECT pretty_name FROM os WHERE scope_id = 'nodpkg'");
    assert_eq!(s(&os[0], "pretty_name"), "Alpine Linux v3.20");
    let crawl = sql(&["--server", &server.url], "SELECT errors, degraded FROM crawls WHERE scope_id = 'nodpkg'");
    assert_eq!((s(&crawl[0], "errors"), s(&crawl[0], "degraded")), ("1".into(), "true".into()));
}

#[test]
fn an_unreachable_server_is_a_one_line_error_and_a_failing_exit() {
    let root = tempfile::tempdir().unwrap();
    // Port 1 on loopback: nothing listens there.
    let (ok, _, err) = agent(&["crawl", "--root", root.path().to_str().unwrap(), "--server", "http://127.0.0.1:1"]);
    assert!(!ok);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("cannot reach server at http://127.0.0.1:1"), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    let out =
        Command::new(periscope_bin()).args(["sql", "--server", "http://127.0.0.1:1", "SELECT 1"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach server"));
}

#[test]
fn remote_sql_is_read_only() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    for q in [
        "CREATE VIEW v AS SELECT 1",
        "CREATE EXTERNAL TABLE p STORED AS CSV LOCATION '/etc/passwd'",
        "SET datafusion.execution.batch_size = 1",
    ] {
        let out = Command::new(periscope_bin()).args(["sql", "--server", &server.url, q]).output().unwrap();
        assert!(!out.status.success(), "{q} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("not supported") || err.contains("not allowed") || err.contains("Unsupported"),
            "{q}: {err}"
        );
    }
    assert_eq!(sql(&["--server", &server.url], "SELECT 1 AS one").len(), 1);
}

#[test]
fn quickstart_prints_this_machines_bash_version_from_sql() {
    let data = tempfile::tempdir().unwrap();
    let out = Command::new(periscope_bin()).args(["quickstart", "--data"]).arg(data.path()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "quickstart failed: {}{stdout}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("SELECT name, version FROM packages WHERE name = 'bash'"), "{stdout}");
    // The host's live facts arrived and agree with the kernel.
    let hi = sql(
        &["--data", data.path().to_str().unwrap()],
        "SELECT kernel_release, cpu_count, memory_total_bytes FROM host_info",
    );
    assert_eq!(hi.len(), 1, "{hi:?}");
    let release = String::from_utf8(Command::new("uname").arg("-r").output().unwrap().stdout).unwrap();
    assert_eq!(s(&hi[0], "kernel_release"), release.trim());
    assert_eq!(s(&hi[0], "cpu_count"), std::thread::available_parallelism().unwrap().get().to_string());
    // The summary counts packages by manager (OS and application ecosystems) as SQL does.
    let by_manager = sql(
        &["--data", data.path().to_str().unwrap()],
        "SELECT manager, count(*) AS n FROM packages WHERE scope = 'host' GROUP BY manager ORDER BY n DESC, manager",
    );
    let total: u64 = by_manager.iter().map(|r| s(r, "n").parse::<u64>().unwrap()).sum();
    let parts: Vec<String> = by_manager.iter().map(|r| format!("{} {}", s(r, "manager"), s(r, "n"))).collect();
    let line = format!("packages:    {total} ({})", parts.join(", "));
    assert!(stdout.lines().any(|l| l.trim() == line), "{line:?} not in:\n{stdout}");
    let procs = sql(&["--data", data.path().to_str().unwrap()], "SELECT count(*) AS n FROM processes WHERE pid = 1");
    assert_eq!(s(&procs[0], "n"), "1");
    match Command::new("dpkg-query").args(["-W", "-f", "${Version}", "bash"]).output() {
        Ok(o) if o.status.success() => {
            let v = String::from_utf8(o.stdout).unwrap();
            assert!(stdout.lines().any(|l| l.contains("| bash") && l.contains(&v)), "bash {v} not in:\n{stdout}");
        }
        _ => eprintln!("this machine has no dpkg; only checking that quickstart ran"),
    }
}

#[test]
fn every_table_and_column_is_described_in_sql() {
    let data = tempfile::tempdir().unwrap();
    let target = ["--data", data.path().to_str().unwrap()];
    std::fs::create_dir_all(data.path().join("tables")).unwrap();
    let cols = sql(&target, "SELECT table_name, column_name, data_type, description FROM column_descriptions");
    // Every view adds the `container` column to its table's declared ones; `crawls` is the log itself.
    let declared: usize = periscope_proto::tables::TABLES
        .iter()
        .map(|t| if t.name == "crawls" { t.schema() } else { t.view_schema() }.fields().len())
        .sum();
    assert_eq!(cols.len(), declared);
    assert!(cols.iter().all(|r| !s(r, "description").is_empty()), "a column without a description");
    let v = cols.iter().find(|r| s(r, "table_name") == "packages" && s(r, "column_name") == "version").unwrap();
    assert!(s(v, "description").starts_with("Full version string"), "{v:?}");
    // The same columns information_schema lists for the tables.
    let info = sql(
        &target,
        "SELECT count(*) AS n FROM information_schema.columns c JOIN column_descriptions d \
         ON c.table_name = d.table_name AND c.column_name = d.column_name",
    );
    assert_eq!(s(&info[0], "n"), declared.to_string(), "each described column is one a table or view has");
    let c = cols.iter().find(|r| s(r, "table_name") == "packages" && s(r, "column_name") == "container").unwrap();
    assert!(s(c, "description").starts_with("Name of the container"), "{c:?}");
    let t = sql(&target, "SELECT description FROM table_descriptions WHERE table_name = 'crawl_errors'");
    assert_eq!(t.len(), 1);
}

/// A host not heard from within --host-expiry-secs leaves current state; its
/// rows stay in history, and an image's inventory (content-addressed) stays.
#[test]
fn a_silent_host_leaves_current_state_and_stays_in_history() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_full(data.path(), "127.0.0.1:0", &["--host-expiry-secs", "4"], &[]);
    let root = debian_rootfs().display().to_string();
    for scope in ["host", "image"] {
        let (ok, _, err) = agent(&[
            "crawl",
            "--root",
            &root,
            "--server",
            &server.url,
            "--host",
            "silent-host",
            "--scope",
            scope,
            "--scope-id",
            &format!("{scope}-1"),
            "--collectors",
            "os,packages",
        ]);
        assert!(ok, "{err}");
    }
    let target = ["--server", server.url.as_str()];
    let count = |q: &str| -> i64 { s(&sql(&target, q)[0], "n").parse().unwrap() };
    let current = "SELECT count(*) AS n FROM packages WHERE host = 'silent-host' AND scope = 'host'";
    let n = count(current);
    assert!(n > 50, "{n}");
    wait_for("the host to expire", std::time::Duration::from_secs(30), || count(current) == 0);
    assert_eq!(count("SELECT count(*) AS n FROM packages_history WHERE host = 'silent-host' AND scope = 'host'"), n);
    assert_eq!(count("SELECT count(*) AS n FROM packages WHERE scope = 'image'"), n, "images stay");
}

/// A long query against a server shows rows received and time on a terminal
/// (a real pty, from util-linux's `script`), then a summary line; piped, the
/// CLI prints the rows alone.
#[test]
fn a_long_query_against_a_server_shows_progress_on_a_terminal_only() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    // Several seconds of work in a debug build, five rows at the end.
    let q = "SELECT v FROM generate_series(1, 100000000) t(v) WHERE v % 20000000 = 0 ORDER BY v";
    let cli = format!("{} sql --server {} --format csv '{q}'", periscope_bin().display(), server.url);
    let out = Command::new("script").args(["-qec", &cli, "/dev/null"]).output().expect("script (util-linux)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let tty = String::from_utf8_lossy(&out.stdout).replace('\r', "\n");
    assert!(tty.contains(" rows received"), "no progress on the terminal: {tty}");
    assert!(tty.contains("periscope: 5 rows received in "), "no summary: {tty}");
    assert!(tty.contains("100000000"), "{tty}");
    let piped =
        Command::new(periscope_bin()).args(["sql", "--server", &server.url, "--format", "csv", q]).output().unwrap();
    assert!(piped.status.success());
    assert_eq!(String::from_utf8_lossy(&piped.stderr), "", "nothing but rows when not on a terminal");
    assert_eq!(String::from_utf8_lossy(&piped.stdout).lines().count(), 6, "a header and five rows");
}

/// `--max-scopes`: once the index holds that many scopes, an agent crawling a
/// new one is refused with the flag named, and a known scope still updates.
#[test]
fn a_full_index_refuses_an_agents_new_scope_with_a_clear_error() {
    let root = debian_rootfs();
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_full(data.path(), "127.0.0.1:0", &["--max-scopes", "1"], &[]);
    let crawl = |id: &str| {
        agent(&[
            "crawl",
            "--root",
            root.to_str().unwrap(),
            "--server",
            &server.url,
            "--host",
            "full",
            "--scope",
            "image",
            "--scope-id",
            id,
        ])
    };
    let (ok, _, err) = crawl("first");
    assert!(ok, "agent failed: {err}");
    let (ok, _, err) = crawl("second");
    assert!(!ok, "a second scope went in past --max-scopes 1");
    assert!(err.contains("--max-scopes 1") && err.contains("full/image/second"), "unclear error: {err}");
    let (ok, _, err) = crawl("first");
    assert!(ok, "the known scope's next crawl was refused: {err}");
    let rows = sql(&["--server", &server.url], "SELECT DISTINCT scope_id FROM crawls ORDER BY scope_id");
    let ids: Vec<String> = rows.iter().map(|r| s(r, "scope_id")).collect();
    assert_eq!(ids, ["first"]);
}

/// Issue 17's "done": a container of an official-style image — OS from the
/// debootstrap root, a Python runtime's packages under /usr/local and a
/// virtualenv under /app, Node.js packages in /app/node_modules and Debian's
/// /usr/share/nodejs, Spring Boot and shaded jars, a Go binary and
/// cargo-auditable binaries — shows every application package in SQL, with
/// location, purl and owning OS package: the same rows a crawl of each part
/// on its own gives (those are checked against pip, npm and syft in the agent's
/// tests).
#[test]
fn a_container_of_an_official_style_image_shows_every_application_package_in_sql() {
    if !docker_available("a_container_of_an_official_style_image_shows_every_application_package_in_sql") {
        return;
    }
    let parts = ["python-fixture.sh", "node-fixture.sh", "java-fixture.sh", "binary-fixtures.sh"];
    let Some(parts) = parts.iter().map(|p| fixture_root(p)).collect::<Option<Vec<_>>>() else { return };
    let base = docker_test_image();
    let tag = format!("of{}", std::process::id());
    let collectors = "os,packages,python,npm,java";

    // The image: the base, each part copied over it, dpkg's status the base's and the parts' stanzas.
    let ctx = tempfile::tempdir().unwrap();
    let rootfs = ctx.path().join("rootfs");
    std::fs::create_dir_all(rootfs.join("var/lib/dpkg")).unwrap();
    let mut status = std::fs::read_to_string(debian_rootfs().join("var/lib/dpkg/status")).unwrap();
    for part in &parts {
        let st = Command::new("cp").arg("-a").arg(format!("{}/.", part.display())).arg(&rootfs).status().unwrap();
        assert!(st.success(), "copying {}", part.display());
        if let Ok(extra) = std::fs::read_to_string(part.join("var/lib/dpkg/status")) {
            status = format!("{}\n\n{}\n", status.trim_end(), extra.trim());
        }
    }
    std::fs::write(rootfs.join("var/lib/dpkg/status"), status).unwrap();
    std::fs::write(ctx.path().join("Dockerfile"), format!("FROM {base}\nCOPY rootfs/ /\n")).unwrap();
    let image = format!("periscope-test/official:{tag}");
    let out = Command::new("docker").args(["build", "-q", "-t", &image]).arg(ctx.path()).output().unwrap();
    assert!(out.status.success(), "docker build: {}", String::from_utf8_lossy(&out.stderr));
    let _image = Image(image.clone());
    let name = format!("{tag}-app");
    let mut cs = Containers(Vec::new());
    cs.create(&["run", "-d", "--name", &name, &image, "sleep", "600"]);

    // What each part shows crawled on its own.
    type Pkg = (String, String, String, String, String, String);
    let row = |r: &serde_json::Map<String, serde_json::Value>| -> Pkg {
        let v = |c: &str| r.get(c).and_then(|v| v.as_str()).unwrap_or("").to_string();
        (v("manager"), v("name"), v("version"), v("purl"), v("location"), v("owner_package"))
    };
    let mut want = std::collections::BTreeSet::new();
    for part in &parts {
        let root = part.to_str().unwrap();
        let args = ["crawl", "--print", "--root", root, "--docker", "off", "--containerd", "off"];
        let (ok, out, err) = agent(&[&args[..], &["--collectors", collectors]].concat());
        assert!(ok, "crawl of {root}: {err}");
        for line in out.lines() {
            let r: serde_json::Map<String, serde_json::Value> = serde_json::from_str(line).unwrap();
            if r["table"] == "packages" && r["manager"] != "dpkg" {
                want.insert(row(&r));
            }
        }
    }
    for m in ["pypi", "npm", "maven", "golang", "cargo"] {
        assert!(want.iter().any(|p| p.0 == m), "no {m} package in the parts: {want:?}");
    }
    assert!(want.iter().any(|p| !p.5.is_empty()), "no application package owned by an OS package");

    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    crawl_root(&server.url, &debian_rootfs(), &tag, collectors, &["--docker", "on"]);
    let got: std::collections::BTreeSet<Pkg> = sql(
        &["--server", server.url.as_str()],
        &format!(
            "SELECT manager, name, version, purl, location, owner_package FROM packages \
             WHERE host = '{tag}' AND container = '{name}' AND manager <> 'dpkg'"
        ),
    )
    .iter()
    .map(row)
    .collect();
    let (missing, extra): (Vec<_>, Vec<_>) = (want.difference(&got).collect(), got.difference(&want).collect());
    assert!(missing.is_empty() && extra.is_empty(), "missing from SQL: {missing:#?}\nnot in the parts: {extra:#?}");
    println!("{} application packages of the container in SQL, as its parts show them", got.len());
}
