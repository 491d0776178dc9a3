//! `periscope-agent run` against a real server and the real Docker Engine:
//! change-only sends (an unchanged host resends almost nothing, a changed
//! package database only its table; containers share what they did not
//! change with their image instead of sending it), and, with a full crawl only every hour,
//! containers that start after the first one crawled from Docker's events,
//! even one that lives two seconds and is removed when it exits.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

/// The tests here watch whole-host crawls: one at a time, so one's containers are not another's changes.
static HOST_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The next summary line of a full crawl, and the bytes it sent.
fn next_full_crawl(rx: &std::sync::mpsc::Receiver<String>) -> (String, u64) {
    loop {
        let l = rx.recv_timeout(Duration::from_secs(120)).expect("a full crawl within 120 s");
        assert!(!l.contains("delivery failed"), "{l}");
        if l.starts_with("periscope-agent: full crawl:") {
            let head = l.split("; ").next().unwrap();
            let bytes = head.rsplit(", ").next().and_then(|b| b.strip_suffix(" bytes")).unwrap().parse().unwrap();
            return (l, bytes);
        }
    }
}

#[test]
fn an_unchanged_host_resends_almost_nothing_and_a_changed_package_database_only_its_table() {
    let _lock = HOST_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    if !docker_available("an_unchanged_host_resends_almost_nothing_and_a_changed_package_database_only_its_table") {
        return;
    }
    let image = docker_test_image();
    let mut cs = Containers(Vec::new());
    let c = cs.create(&["run", "-d", &image, "sleep", "600"]);
    // A stopped container: read once, then not again while it stays stopped.
    let stopped = cs.create(&["run", "-d", &image, "true"]);
    assert!(Command::new("docker").args(["wait", &stopped]).output().unwrap().status.success());
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let spool = tempfile::tempdir().unwrap();
    let target = ["--server", server.url.as_str()];
    let count = |q: &str| -> i64 { s(&sql(&target, q)[0], "n").parse().unwrap() };
    let (_agent, rx) = run_agent(&server.url, spool.path(), &["--interval", "1", "--containerd", "off"]);
    let (first, b1) = next_full_crawl(&rx);
    let (second, b2) = next_full_crawl(&rx);
    eprintln!("first: {first}\nsecond: {second}");
    assert!(b2 * 100 < b1, "an unchanged host resent {b2} bytes of {b1}");
    // Current state still holds every row, read from the crawl that carried it.
    let history = |scope: &str| {
        count(&format!(
            "SELECT count(*) AS n FROM packages_history p JOIN \
             (SELECT scope_id, min(crawl_time) AS t FROM crawls WHERE scope = '{scope}' GROUP BY scope_id) f \
             ON p.scope_id = f.scope_id AND p.crawl_time = f.t"
        ))
    };
    for scope in ["host", "image"] {
        let now = count(&format!("SELECT count(*) AS n FROM packages WHERE scope = '{scope}'"));
        assert!(now > 0 && now == history(scope), "{scope}: {now} current rows, first crawl sent {}", history(scope));
    }
    // The containers changed nothing the package collector reads: they sent
    // no packages of their own, only that they share their image's, and
    // current state shows the image's packages under each container's id and name.
    let image_id = inspect(&image, "{{.Id}}");
    let want = in_chroot(&debian_rootfs(), &["dpkg-query", "-W", "-f", "${Package}\n"]).lines().count() as i64;
    assert_eq!(count("SELECT count(*) AS n FROM packages_history WHERE scope = 'container'"), 0);
    for id in [&c, &stopped] {
        let name = inspect(id, "{{.Name}}").trim_start_matches('/').to_string();
        let rows = sql(
            &target,
            &format!("SELECT container, count(*) AS n FROM packages WHERE scope_id = '{id}' GROUP BY container"),
        );
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!((s(&rows[0], "container"), s(&rows[0], "n")), (name, want.to_string()));
        let shared = sql(
            &target,
            &format!("SELECT image_id FROM inherited WHERE scope_id = '{id}' AND table_name = 'packages'"),
        );
        assert_eq!(shared.len(), 1, "{shared:?}");
        assert_eq!(s(&shared[0], "image_id"), image_id);
    }
    // configs holds the container's own /etc/hosts (a bind mount): read from the container itself.
    assert!(
        count(&format!("SELECT count(*) AS n FROM configs_history WHERE scope_id = '{c}' AND path = '/etc/hosts'")) > 0
    );

    let st = Command::new("docker")
        .args(["exec", &c, "sh", "-c", "printf '\\nPackage: periscope-planted\\nStatus: install ok installed\\nVersion: 1.0\\nArchitecture: all\\n' >> /var/lib/dpkg/status"])
        .status()
        .unwrap();
    assert!(st.success());
    // Crawls that ended while the checks above ran (one a second, more on a loaded machine) wait in
    // the channel: they read the database before the write. Past those, the crawl running now may
    // have read it before or after the write: wait for the next two.
    while rx.try_recv().is_ok() {}
    next_full_crawl(&rx);
    next_full_crawl(&rx);
    assert_eq!(
        count(&format!("SELECT count(*) AS n FROM packages WHERE scope_id = '{c}' AND name = 'periscope-planted'")),
        1
    );
    // packages were sent once for the host and the image and, once its database changed, for the changed
    // container; never for the stopped one, which still shares its image's.
    let sends =
        sql(&target, "SELECT scope_id, count(DISTINCT crawl_time) AS n FROM packages_history GROUP BY scope_id");
    for r in &sends {
        assert_eq!(s(r, "n"), "1", "{sends:?}");
        assert_ne!(s(r, "scope_id"), stopped, "{sends:?}");
    }
    assert!(sends.iter().any(|r| s(r, "scope_id") == c), "{sends:?}");
    assert!(sends.iter().any(|r| s(r, "scope_id") == image_id), "{sends:?}");
    let own = count(&format!("SELECT count(*) AS n FROM packages WHERE scope_id = '{c}'"));
    assert_eq!(own, want + 1, "the changed container's own rows: the image's packages and the planted one");
    // The differential history names the change and when it happened, and nothing else changed.
    let changes = sql(
        &target,
        &format!(
            "SELECT name, action, count(*) OVER () AS n FROM package_changes \
             WHERE scope_id = '{c}' AND crawl_time > (SELECT min(crawl_time) FROM crawls WHERE scope_id = '{c}')"
        ),
    );
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!((s(&changes[0], "name"), s(&changes[0], "action")), ("periscope-planted".into(), "added".into()));
    let first =
        count(&format!("SELECT count(*) AS n FROM package_changes WHERE scope_id = '{c}' AND action = 'added'"));
    let packages = in_chroot(&debian_rootfs(), &["dpkg-query", "-W", "-f", "${Package}\n"]).lines().count() as i64;
    assert_eq!(first, packages + 1, "a first crawl adds every package, the change one more");
    let q = format!("SELECT count(*) AS n FROM crawls WHERE scope_id = '{stopped}'");
    assert_eq!(count(&q), 1, "the stopped container was read once");
    let q = format!("SELECT count(*) AS n FROM packages WHERE scope_id = '{stopped}'");
    assert_eq!(count(&q), want, "and its packages stay current");
}

/// A field of `docker inspect` of a container or image.
fn inspect(id: &str, format: &str) -> String {
    let out = Command::new("docker").args(["inspect", "-f", format, id]).output().unwrap();
    assert!(out.status.success(), "docker inspect {id}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn containers_living_between_full_crawls_are_crawled_from_docker_events() {
    let _lock = HOST_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    if !docker_available("containers_living_between_full_crawls_are_crawled_from_docker_events") {
        return;
    }
    let image = docker_test_image();
    let want = in_chroot(&debian_rootfs(), &["dpkg-query", "-W", "-f", "${Package}\n"]).lines().count();
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let spool = tempfile::tempdir().unwrap();
    let (_agent, _rx) = run_agent(
        &server.url,
        spool.path(),
        &["--interval", "3600", "--collectors", "os,packages", "--containerd", "off"],
    );
    let target = ["--server", server.url.as_str()];
    let count = |q: &str| -> i64 { s(&sql(&target, q)[0], "n").parse().unwrap() };
    wait_for("the first full crawl", Duration::from_secs(120), || {
        count("SELECT count(*) AS n FROM crawls WHERE scope = 'host'") >= 1
    });

    let mut cs = Containers(Vec::new());
    // Lives two seconds, then Docker removes it: only its start event can get it crawled.
    let brief = cs.create(&["run", "-d", "--rm", &image, "sleep", "2"]);
    // Exits at once and stays: crawled through its layers.
    let exited = cs.create(&["run", "-d", &image, "true"]);
    for id in [&brief, &exited] {
        wait_for(&format!("packages of {id}"), Duration::from_secs(60), || {
            count(&format!("SELECT count(*) AS n FROM packages WHERE scope = 'container' AND scope_id = '{id}'"))
                == want as i64
        });
    }
    wait_for("the --rm container to be gone", Duration::from_secs(30), || {
        !Command::new("docker").args(["inspect", &brief]).output().unwrap().status.success()
    });
    // Still one full crawl: the two containers came from events, not from a second listing.
    assert_eq!(count("SELECT count(*) AS n FROM crawls WHERE scope = 'host'"), 1);
    let errors = sql(&target, &format!("SELECT message FROM crawl_errors WHERE scope_id IN ('{brief}', '{exited}')"));
    assert!(errors.is_empty(), "{errors:?}");

    // The next listing of the host no longer shows the removed container: it
    // leaves current state and stays in history; the exited one stays.
    let (ok, _, err) = agent(&["crawl", "--server", &server.url, "--collectors", "os,packages", "--containerd", "off"]);
    assert!(ok, "{err}");
    let packages = |table: &str, id: &str| {
        count(&format!("SELECT count(*) AS n FROM {table} WHERE scope = 'container' AND scope_id = '{id}'"))
    };
    assert_eq!(packages("packages", &brief), 0, "a removed container is not current state");
    let shared =
        format!("SELECT count(*) AS n FROM inherited_history WHERE scope_id = '{brief}' AND table_name = 'packages'");
    assert!(count(&shared) >= 1, "but its crawls stay in history");
    assert_eq!(packages("packages", &exited), want as i64);
}

#[test]
fn two_hosts_with_the_same_image_each_crawl_it_and_see_their_own_crawl() {
    let _lock = HOST_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    if !docker_available("two_hosts_with_the_same_image_each_crawl_it_and_see_their_own_crawl") {
        return;
    }
    let image = docker_test_image();
    let image_id = String::from_utf8(
        Command::new("docker").args(["image", "inspect", "-f", "{{.Id}}", &image]).output().unwrap().stdout,
    )
    .unwrap()
    .trim()
    .to_string();
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    // Two agents with two host identities, started together, both seeing the same image.
    let spools = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let agents: Vec<_> = ["fleet-a", "fleet-b"]
        .iter()
        .zip(&spools)
        .map(|(host, spool)| {
            Command::new(agent_bin())
                .args(["run", "--once", "--server", &server.url, "--host", host, "--spool-dir"])
                .arg(spool.path())
                .args(["--collectors", "os,packages", "--containerd", "off"])
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for a in agents {
        let out = a.wait_with_output().unwrap();
        eprintln!("{}", String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success());
    }
    let target = ["--server", server.url.as_str()];
    let hosts = sql(&target, "SELECT DISTINCT host FROM crawls WHERE scope = 'host' ORDER BY host");
    assert_eq!(hosts.iter().map(|r| s(r, "host")).collect::<Vec<_>>(), ["fleet-a", "fleet-b"]);
    // Image rows are trusted per host (issue 18): each host crawled the image once, and its
    // containers are shown its own crawl, never the other host's.
    let image_crawls = sql(
        &target,
        &format!("SELECT host FROM crawls WHERE scope = 'image' AND scope_id = '{image_id}' ORDER BY host"),
    );
    let crawled_by: Vec<String> = image_crawls.iter().map(|r| s(r, "host")).collect();
    assert_eq!(crawled_by, ["fleet-a", "fleet-b"], "each host crawled the image once");
    let want = in_chroot(&debian_rootfs(), &["dpkg-query", "-W", "-f", "${Package}\n"]).lines().count();
    let got = sql(
        &target,
        &format!("SELECT host, count(*) AS n FROM packages WHERE scope_id = '{image_id}' GROUP BY host ORDER BY host"),
    );
    let got: Vec<String> = got.iter().map(|r| format!("{} {}", s(r, "host"), s(r, "n"))).collect();
    assert_eq!(got, [format!("fleet-a {want}"), format!("fleet-b {want}")]);
    let listed = sql(&target, &format!("SELECT DISTINCT host FROM images WHERE image_id = '{image_id}'"));
    assert_eq!(listed.len(), 2, "{listed:?}");
}

/// Issue 21: a host's walks of its whole tree were 70% of an unchanged
/// crawl's CPU. Inputs too large to fingerprint are walked again only once
/// per `--rewalk-large-secs`; with 0, every crawl, as before.
#[test]
fn inputs_too_large_to_fingerprint_are_walked_once_per_period() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    std::fs::create_dir_all(r.join("usr/local/bin")).unwrap();
    std::fs::create_dir_all(r.join("etc")).unwrap();
    std::fs::write(r.join("etc/os-release"), "ID=debian\nVERSION_ID=12\n").unwrap();
    // More entries than a fingerprint stats (20,000): unowned executables.
    for i in 0..20_100 {
        use std::os::unix::fs::PermissionsExt;
        let p = r.join(format!("usr/local/bin/t{i}"));
        std::fs::write(&p, "").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    // And a problem every walk meets (a tree deeper than the walks go): a crawl_errors row each time.
    std::fs::create_dir_all(r.join("usr/local/deep").join(["d"; 70].join("/"))).unwrap();
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let root_arg = r.display().to_string();
    let unread = |line: &str| -> u64 {
        line.split(" unchanged (").nth(1).and_then(|r| r.split(' ').next()).unwrap().parse().unwrap()
    };
    let second_crawl = |rewalk: &str, host: &str| {
        let spool = tempfile::tempdir().unwrap();
        let args = ["--interval", "1", "--root", &root_arg, "--host", host, "--scope-id", host, "--docker", "off"];
        let more = ["--containerd", "off", "--collectors", "os,unowned_files", "--rewalk-large-secs", rewalk];
        let (_agent, rx) = run_agent(&server.url, spool.path(), &[&args[..], &more].concat());
        next_full_crawl(&rx);
        next_full_crawl(&rx).0
    };
    let every = second_crawl("0", "rewalk-every");
    let hourly = second_crawl("3600", "rewalk-hourly");
    // os: unchanged and not read either way; unowned_files: read again only with no period.
    assert_eq!(unread(&every), 1, "{every}");
    assert_eq!(unread(&hourly), 2, "{hourly}");
}

/// A root whose files did not change is not read again: the second crawl
/// stats its collectors' inputs, finds them as they were and sends their
/// tables unchanged without reading them; a changed package database is read
/// (and only the collectors that read it run).
#[test]
fn collectors_whose_inputs_did_not_change_are_not_run_again() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    let write = |p: &str, text: &str| {
        let p = r.join(p.trim_start_matches('/'));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    let pkg =
        |name: &str| format!("Package: {name}\nStatus: install ok installed\nVersion: 1.0\nArchitecture: all\n\n");
    write("/var/lib/dpkg/status", &format!("{}{}", pkg("alpha"), pkg("beta")));
    write("/var/lib/dpkg/info/alpha.list", "/usr/bin/alpha\n");
    write("/usr/bin/alpha", "#!/bin/sh\n");
    write("/etc/passwd", "root:x:0:0:root:/root:/bin/sh\n");
    write("/etc/group", "root:x:0:\n");
    write("/etc/os-release", "ID=debian\nVERSION_ID=12\nPRETTY_NAME=\"Debian 12\"\n");
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let spool = tempfile::tempdir().unwrap();
    let root_arg = r.display().to_string();
    let args = ["--interval", "1", "--root", &root_arg, "--host", "fp-host", "--scope-id", "fp", "--docker", "off"];
    let (_agent, rx) = run_agent(&server.url, spool.path(), &[&args[..], &["--containerd", "off"]].concat());
    let unread = |line: &str| -> u64 {
        line.split(" unchanged (").nth(1).and_then(|r| r.split(' ').next()).unwrap().parse().unwrap()
    };
    let (first, _) = next_full_crawl(&rx);
    let (second, _) = next_full_crawl(&rx);
    assert_eq!(unread(&first), 0, "{first}");
    // os, packages, package_files, users, groups: nothing they read changed.
    assert!(unread(&second) >= 5, "{second}");
    let target = ["--server", server.url.as_str()];
    let names = |q: &str| sql(&target, q).iter().map(|r| s(r, "name")).collect::<Vec<_>>();
    assert_eq!(
        names("SELECT name FROM packages ORDER BY name"),
        ["alpha", "beta"],
        "current state reads the first crawl's rows"
    );

    // One more package: the packages collector (and those that name owners) run again.
    // Crawls that ended while the checks above ran read the old database: not counted below.
    while rx.try_recv().is_ok() {}
    std::fs::write(r.join("var/lib/dpkg/status"), format!("{}{}{}", pkg("alpha"), pkg("beta"), pkg("gamma"))).unwrap();
    // Crawls already made (or begun) before the write still find nothing changed: the one
    // that reads the new database re-reads more than one collector's inputs.
    let mut crawls = 0;
    loop {
        let (l, _) = next_full_crawl(&rx);
        crawls += 1;
        assert!(crawls <= 5, "no crawl read the changed database: {l}");
        if unread(&l) < unread(&second) {
            break;
        }
    }
    let (after, _) = next_full_crawl(&rx);
    assert_eq!(names("SELECT name FROM packages ORDER BY name"), ["alpha", "beta", "gamma"]);
    assert_eq!(names("SELECT name FROM users"), ["root"]);
    assert!(unread(&after) >= 5, "and then it is not read again: {after}");
    let reads = sql(&target, "SELECT count(DISTINCT crawl_time) AS n FROM packages_history");
    assert_eq!(s(&reads[0], "n"), "2", "packages stored twice: the first crawl and the change");
}
