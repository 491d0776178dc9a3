//! Docker discovery against the real Docker Engine on this machine: every
//! container, running or not, with the settings it was given.

mod common;

use std::process::Command;

use common::*;
use periscope_agent::crawl::{CrawlOptions, RuntimeMode, crawl_async};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_container_appears_with_its_settings() {
    // Before the engine check: the other test points DOCKER_HOST nowhere while it holds the lock.
    let _guard = ENV_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    if !docker_available("every_container_appears_with_its_settings") {
        return;
    }
    let image = docker_test_image();
    let tag = format!("pt{}", std::process::id());
    let mut cs = Containers(Vec::new());
    let running = cs.create(&[
        "run",
        "-d",
        "--name",
        &format!("{tag}-run"),
        "--memory",
        "64m",
        "--pids-limit",
        "50",
        "--cap-add",
        "NET_ADMIN",
        "-e",
        "JAVA_TOOL_OPTIONS=-Xmx2g",
        "-e",
        "DB_PASSWORD=periscope-test-secret",
        "-v",
        "/var/run/docker.sock:/var/run/docker.sock:ro",
        "-p",
        "127.0.0.1:18931:80",
        "-u",
        "1000",
        "--security-opt",
        "no-new-privileges",
        &image,
        "sleep",
        "600",
    ]);
    let created = cs.create(&[
        "create",
        "--name",
        &format!("{tag}-new"),
        "--privileged",
        "--network",
        "host",
        "--read-only",
        &image,
        "true",
    ]);
    let exited = cs.create(&[
        "run",
        "-d",
        "--name",
        &format!("{tag}-exit"),
        "--restart",
        "on-failure:7",
        &image,
        "sh",
        "-c",
        "exit 3",
    ]);
    // A container that deleted a file and stopped: its upper layer holds a whiteout.
    let deleter = cs.create(&["run", "-d", "--name", &format!("{tag}-del"), &image, "rm", "/etc/login.defs"]);
    // A server listening in its own network namespace (perl-base is in the image).
    let listener = cs.create(&[
        "run",
        "-d",
        "--name",
        &format!("{tag}-listen"),
        &image,
        "perl",
        "-MIO::Socket::INET",
        "-e",
        "$s = IO::Socket::INET->new(LocalPort => 8931, Listen => 5, ReuseAddr => 1) or die $!; sleep 600",
    ]);
    let listening = || {
        let pid = String::from_utf8(
            Command::new("docker").args(["inspect", "-f", "{{.State.Pid}}", &listener]).output().unwrap().stdout,
        )
        .unwrap();
        std::fs::read_to_string(format!("/proc/{}/net/tcp", pid.trim()))
            .is_ok_and(|t| t.lines().any(|l| l.contains(":22E3 ") && l.contains(" 0A ")))
    };
    for _ in 0..100 {
        if listening() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(listening(), "the perl server never listened on 8931");
    // A child process blows the memory limit and is OOM-killed; the container's shell lives on.
    let oom = cs.create(&[
        "run",
        "-d",
        "--name",
        &format!("{tag}-oom"),
        "--memory",
        "32m",
        "--memory-swap",
        "32m",
        &image,
        "sh",
        "-c",
        "tail /dev/zero; sleep 600",
    ]);
    let kernel_oom_kills = || -> Option<i64> {
        let base = std::path::Path::new("/sys/fs/cgroup");
        let pid = String::from_utf8(
            Command::new("docker").args(["inspect", "-f", "{{.State.Pid}}", &oom]).output().ok()?.stdout,
        )
        .ok()?;
        let cg = std::fs::read_to_string(format!("/proc/{}/cgroup", pid.trim())).ok()?;
        let file = if base.join("cgroup.controllers").exists() {
            base.join(cg.lines().find_map(|l| l.strip_prefix("0::"))?.trim_start_matches('/')).join("memory.events")
        } else {
            let path = cg.lines().find_map(|l| l.split_once(":memory:").map(|(_, p)| p.to_string()))?;
            base.join("memory").join(path.trim_start_matches('/')).join("memory.oom_control")
        };
        std::fs::read_to_string(file)
            .ok()?
            .lines()
            .find_map(|l| l.strip_prefix("oom_kill ").and_then(|v| v.trim().parse().ok()))
    };
    for _ in 0..150 {
        if kernel_oom_kills().unwrap_or(0) > 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let oom_kills = kernel_oom_kills().expect("the kernel reports the OOM container's oom_kill count");
    assert!(oom_kills > 0, "tail /dev/zero was not OOM-killed within 30 s");
    // Wait until the short-lived one has really exited (restarts end after 7 tries).
    for _ in 0..100 {
        let st = Command::new("docker").args(["inspect", "-f", "{{.State.Status}}", &exited]).output().unwrap();
        if String::from_utf8_lossy(&st.stdout).trim() == "exited" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }

    // A file written inside the running container, and only there.
    let st = Command::new("docker")
        .args(["exec", &running, "sh", "-c", "printf '#!/bin/sh\\n' > /tmp/planted && chmod 755 /tmp/planted"])
        .status()
        .unwrap();
    assert!(st.success());
    // And a package database modified in that container only.
    let st = Command::new("docker")
        .args(["exec", "-u", "0", &running, "sh", "-c", "printf '\\nPackage: periscope-planted\\nStatus: install ok installed\\nVersion: 9.9-1\\nArchitecture: all\\n' >> /var/lib/dpkg/status"])
        .status()
        .unwrap();
    assert!(st.success());
    let mut config = periscope_agent::collectors::CollectorConfig::default();
    config.file_globs = vec!["/tmp/planted".into()];
    let opts = CrawlOptions {
        collectors: Some(vec!["os".into(), "packages".into(), "files".into(), "configs".into()]),
        config,
        docker: RuntimeMode::On,
        ..Default::default()
    };
    let crawls = crawl_async(opts).await.expect("crawl");
    let c = &crawls[0];
    assert_eq!(c.common.scope, "host");
    let (rows, text) = rows_of(&c.batches.to_vec());

    // The running container was crawled through /proc/<pid>/root as its own scope.
    let inside = crawls
        .iter()
        .find(|c| c.common.scope == "container" && c.common.scope_id == running)
        .expect("running container crawled");
    let (crows, _) = rows_of(&inside.batches.to_vec());
    let want: std::collections::BTreeMap<String, String> =
        in_chroot(&debian_rootfs(), &["dpkg-query", "-W", "-f", "${Package}\t${Version}\n"])
            .lines()
            .filter_map(|l| l.split_once('\t'))
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
    let got: std::collections::BTreeMap<String, String> =
        crows["packages"].iter().map(|r| (s(r, "name"), s(r, "version"))).collect();
    let mut want_running = want.clone();
    want_running.insert("periscope-planted".into(), "9.9-1".into());
    assert_eq!(got, want_running, "packages of the running container: its image's plus the one planted in it");
    assert_eq!(crows["files"].iter().map(|r| s(r, "path")).collect::<Vec<_>>(), ["/tmp/planted"]);
    assert!(
        crawls
            .iter()
            .filter(|c| c.common.scope_id != running)
            .all(|c| !rows_of(&c.batches.to_vec()).1.contains("/tmp/planted")),
        "the planted file shows up for its container only"
    );
    let image_id = String::from_utf8(
        Command::new("docker").args(["inspect", "-f", "{{.Image}}", &running]).output().unwrap().stdout,
    )
    .unwrap()
    .trim()
    .to_string();
    // Stopped and never-started containers and the bare image are crawled through their layers
    // (merged in userspace, nothing mounted), and see the same packages.
    for (scope, id) in [("container", exited.clone()), ("container", created.clone()), ("image", image_id.clone())] {
        let c = crawls
            .iter()
            .find(|c| c.common.scope == scope && c.common.scope_id == id)
            .unwrap_or_else(|| panic!("{scope} {id} not crawled"));
        let (crows, _) = rows_of(&c.batches.to_vec());
        let got: std::collections::BTreeMap<String, String> =
            crows["packages"].iter().map(|r| (s(r, "name"), s(r, "version"))).collect();
        assert_eq!(got, want, "packages of {scope} {id}");
    }
    // The whiteout hides the deleted file in the stopped container only.
    let configs_of = |id: &str| -> Vec<String> {
        let c = crawls.iter().find(|c| c.common.scope_id == id).unwrap_or_else(|| panic!("{id} not crawled"));
        rows_of(&c.batches.to_vec()).0["configs"].iter().map(|r| s(r, "path")).collect()
    };
    assert!(configs_of(&image_id).contains(&"/etc/login.defs".to_string()));
    assert!(!configs_of(&deleter).contains(&"/etc/login.defs".to_string()), "the whiteout hides login.defs");
    assert!(configs_of(&exited).contains(&"/etc/login.defs".to_string()));

    assert!(rows["crawl_errors"].iter().all(|r| s(r, "collector") != "docker"), "{:?}", rows["crawl_errors"]);
    let by_id = |id: &str| {
        rows["containers"]
            .iter()
            .find(|r| s(r, "container_id") == id)
            .unwrap_or_else(|| panic!("container {id} missing"))
    };

    let r = by_id(&running);
    assert_eq!(s(r, "state"), "running");
    assert_eq!(s(r, "name"), format!("{tag}-run"));
    assert_eq!(s(r, "memory_limit"), (64 << 20).to_string());
    assert_eq!(s(r, "pids_limit"), "50");
    assert!(s(r, "cap_add").contains("NET_ADMIN"), "{r:?}");
    assert_eq!(s(r, "user"), "1000");
    assert_eq!((s(r, "no_new_privileges"), s(r, "read_only_rootfs")), ("true".into(), "false".into()));
    assert!(s(r, "pid").parse::<i64>().unwrap() > 1);
    assert!(!s(r, "upper_dir").is_empty(), "the writable layer's host path is reported: {r:?}");

    let n = by_id(&created);
    assert_eq!((s(n, "state"), s(n, "started_at"), s(n, "pid")), ("created".into(), "".into(), "".into()));
    assert_eq!(
        (s(n, "privileged"), s(n, "network_mode"), s(n, "read_only_rootfs")),
        ("true".into(), "host".into(), "true".into())
    );

    let e = by_id(&exited);
    assert_eq!((s(e, "state"), s(e, "exit_code")), ("exited".into(), "3".into()));
    assert_eq!((s(e, "restart_policy"), s(e, "restart_max_retries")), ("on-failure".into(), "7".into()));
    assert!(!s(e, "finished_at").is_empty());

    // The container's process is attributed to it, with its in-container pid.
    let procs: Vec<_> = rows["processes"].iter().filter(|p| s(p, "container_id") == running).collect();
    assert!(
        procs.iter().any(|p| s(p, "cmdline") == "sleep 600" && s(p, "ns_pid") == "1" && s(p, "uid") == "1000"),
        "{procs:?}"
    );
    assert_eq!(procs.iter().find(|p| s(p, "ns_pid") == "1").map(|p| s(p, "pid")), Some(s(r, "pid")));
    let me = std::process::id().to_string();
    let this = rows["processes"].iter().find(|p| s(p, "pid") == me).expect("this test process is listed");
    assert_eq!(s(this, "container_id"), "", "host processes belong to no container");

    // The listening port is attributed to its container and process, in that container's namespace.
    let lp: Vec<_> = rows["listening_ports"].iter().filter(|p| s(p, "port") == "8931").collect();
    assert_eq!(lp.len(), 1, "{lp:?}");
    assert_eq!(
        (s(lp[0], "container_id"), s(lp[0], "process"), s(lp[0], "protocol")),
        (listener.clone(), "perl".into(), "tcp".into())
    );
    let host_ns = rows["processes"]
        .iter()
        .find(|p| s(p, "pid") == std::process::id().to_string())
        .map(|p| s(p, "net_ns"))
        .unwrap();
    assert_ne!(s(lp[0], "net_ns"), host_ns, "the port is in the container's own network namespace");

    // Its network and mount namespaces are inventoried, attributed to it.
    let ip = String::from_utf8(
        Command::new("docker")
            .args(["inspect", "-f", "{{.NetworkSettings.IPAddress}}", &running])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let eth0 = rows["interfaces"]
        .iter()
        .find(|i| s(i, "container_id") == running && s(i, "name") == "eth0")
        .expect("container eth0");
    assert_eq!(s(eth0, "ipv4"), ip.trim());
    assert!(
        rows["mounts"].iter().any(|m| s(m, "container_id") == running && s(m, "mount_point") == "/"),
        "container root mount"
    );
    assert!(
        rows["mounts"].iter().any(|m| s(m, "container_id") == running && s(m, "mount_point").ends_with("/docker.sock")),
        "socket bind mount seen from inside (/var/run is /run there)"
    );

    // cgroup figures match what Docker set and what the kernel counts.
    let metrics = |id: &str| {
        rows["container_metrics"]
            .iter()
            .find(|m| s(m, "container_id") == id)
            .unwrap_or_else(|| panic!("no metrics for {id}"))
    };
    let m = metrics(&running);
    assert_eq!((s(m, "memory_limit_bytes"), s(m, "pids_limit")), ((64 << 20).to_string(), "50".into()));
    assert!(
        s(m, "pids_current").parse::<i64>().unwrap() >= 1 && s(m, "memory_current_bytes").parse::<i64>().unwrap() > 0,
        "{m:?}"
    );
    let mo = metrics(&oom);
    assert_eq!(s(mo, "memory_limit_bytes"), (32 << 20).to_string());
    assert_eq!(s(mo, "oom_kills"), oom_kills.to_string(), "oom_kill counter as the kernel reports it");

    // Its environment, with the secret's value never stored: only a hash of it.
    let env = |name: &str| {
        rows["container_env"]
            .iter()
            .find(|e| s(e, "container_id") == running && s(e, "name") == name)
            .unwrap_or_else(|| panic!("no {name} in {:?}", rows["container_env"]))
    };
    assert_eq!(
        (s(env("JAVA_TOOL_OPTIONS"), "value"), s(env("JAVA_TOOL_OPTIONS"), "redacted")),
        ("-Xmx2g".into(), "false".into())
    );
    let secret = env("DB_PASSWORD");
    assert_eq!(s(secret, "redacted"), "true");
    assert!(s(secret, "value").starts_with("sha256:"), "{secret:?}");
    assert!(!text.contains("periscope-test-secret"), "the secret is in no row of the crawl");

    // docker.sock mounts are one WHERE away.
    let sock: Vec<_> = rows["container_mounts"].iter().filter(|m| s(m, "source").ends_with("docker.sock")).collect();
    assert_eq!(sock.len(), 1, "{:?}", rows["container_mounts"]);
    assert_eq!((s(sock[0], "container_id"), s(sock[0], "rw")), (running.clone(), "false".into()));
    let port = rows["container_ports"].iter().find(|p| s(p, "container_id") == running).expect("published port");
    assert_eq!(
        (s(port, "container_port"), s(port, "host_ip"), s(port, "host_port")),
        ("80".into(), "127.0.0.1".into(), "18931".into())
    );

    let img = rows["images"]
        .iter()
        .find(|i| s(i, "repo_tags").contains("periscope-test/bookworm"))
        .expect("test image listed");
    assert_eq!(s(img, "image_id"), s(r, "image_id"));
    assert!(rows["image_history"].iter().any(|h| s(h, "image_id") == s(img, "image_id")));
}

/// An image whose crawl killed the agent (the mark a dead run leaves is
/// written here; `hostile.rs` kills a real run on a frozen FUSE mount) is
/// quarantined, and so is every container read through it: one death, not
/// one per container. Its containers' crawls inherit nothing from an image
/// whose crawl is incomplete, so they would read it all and die in turn.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_of_a_quarantined_image_are_left_unread_with_it() {
    let _guard = ENV_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    if !docker_available("containers_of_a_quarantined_image_are_left_unread_with_it") {
        return;
    }
    let image = docker_test_image();
    let tag = format!("pq{}", std::process::id());
    // Another image (same layers, its own id): a label is all it adds.
    let other = format!("periscope-test/other:{tag}");
    let mut build = Command::new("docker")
        .args(["build", "-q", "-t", &other, "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Write;
    build.stdin.take().unwrap().write_all(format!("FROM {image}\nLABEL periscope.test={tag}\n").as_bytes()).unwrap();
    assert!(build.wait().unwrap().success(), "docker build of {other}");
    // Declared before the containers: removed after them, when the test ends or fails.
    let _other = Image(other.clone());
    let mut cs = Containers(Vec::new());
    let replicas: Vec<String> =
        (0..2).map(|i| cs.create(&["create", "--name", &format!("{tag}-{i}"), &image, "true"])).collect();
    let bystander = cs.create(&["create", "--name", &format!("{tag}-other"), &other, "true"]);
    let inspect = |what: &str| {
        let out = Command::new("docker").args(["image", "inspect", "-f", "{{.Id}}", what]).output().unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let image_id = inspect(&image);
    let host = format!("qhost{}", std::process::id());
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("crawling-dead"), format!("{host}/image/{image_id}\n1700000000\n")).unwrap();
    let (q, left) = periscope_agent::quarantine::Quarantine::open(dir.path()).unwrap();
    assert_eq!(left.len(), 1);
    periscope_agent::quarantine::install(q);
    let opts = CrawlOptions {
        host: Some(host),
        collectors: Some(vec!["os".into(), "packages".into()]),
        docker: RuntimeMode::On,
        ..Default::default()
    };
    let crawls = crawl_async(opts).await;
    periscope_agent::quarantine::uninstall();
    let crawls = crawls.expect("crawl");
    let of = |id: &str| {
        let c = crawls.iter().find(|c| c.common.scope_id == id).unwrap_or_else(|| panic!("{id} crawled"));
        rows_of(&c.batches.to_vec()).0
    };
    let image_rows = of(&image_id);
    assert!(image_rows["packages"].is_empty());
    assert!(image_rows["crawl_errors"].iter().any(|r| s(r, "message").contains("stopped before it finished")));
    for r in &replicas {
        let rows = of(r);
        assert!(rows["packages"].is_empty(), "{r} was read though its image is quarantined");
        let why: Vec<String> = rows["crawl_errors"].iter().map(|r| s(r, "message")).collect();
        assert!(why.iter().any(|m| m.contains("its image is quarantined")), "{r}: {why:?}");
    }
    // A container of another image is read as usual.
    assert!(!of(&bystander)["packages"].is_empty(), "the bystander container was not read");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_engine_is_a_crawl_error_not_a_failure() {
    // A DOCKER_HOST nobody listens on; this test needs no engine.
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("nothing.sock");
    let _guard = ENV_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    // SAFETY: every test in this binary that reads DOCKER_HOST holds ENV_LOCK.
    unsafe { std::env::set_var("DOCKER_HOST", format!("unix://{}", sock.display())) };
    let opts = CrawlOptions {
        collectors: Some(vec!["os".into()]),
        docker: RuntimeMode::On,
        containerd: RuntimeMode::Off,
        ..Default::default()
    };
    let c = crawl_async(opts).await;
    unsafe { std::env::remove_var("DOCKER_HOST") };
    let crawls = c.expect("the crawl itself succeeds");
    assert_eq!(crawls.len(), 1);
    let (rows, _) = rows_of(&crawls[0].batches.to_vec());
    let err = rows["crawl_errors"].iter().find(|r| s(r, "collector") == "docker").expect("docker error row");
    assert!(s(err, "message").contains("nothing.sock"), "{err:?}");
    assert_eq!(rows["os"].len(), 1, "the rest of the crawl still arrives");
}

/// Serializes the tests around DOCKER_HOST, which one of them changes.
static ENV_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The agent itself in a container with only `--pid host`, SYS_PTRACE and
/// DAC_READ_SEARCH, read-only host mounts and no-new-privileges — no
/// `--privileged` — still crawls the other containers, running and stopped, and the image.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_needs_no_privileged_mode() {
    let _guard = ENV_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    if !docker_available("the_agent_needs_no_privileged_mode") {
        return;
    }
    let image = docker_test_image();
    let tag = format!("lp{}", std::process::id());
    let mut cs = Containers(Vec::new());
    let running = cs.create(&["run", "-d", "--name", &format!("{tag}-run"), &image, "sleep", "600"]);
    let stopped = cs.create(&["create", "--name", &format!("{tag}-new"), &image, "true"]);
    let agent = env!("CARGO_BIN_EXE_periscope-agent");
    let out = Command::new("docker")
        .args([
            "run",
            "--rm",
            "--pid",
            "host",
            "--cap-drop",
            "ALL",
            "--cap-add",
            "SYS_PTRACE",
            "--cap-add",
            "DAC_READ_SEARCH",
        ])
        .args(["--security-opt", "no-new-privileges", "-v", "/var/run/docker.sock:/var/run/docker.sock:ro"])
        .args(["-v", "/var/lib/docker:/var/lib/docker:ro", "-v", "/sys/fs/cgroup:/sys/fs/cgroup:ro"])
        .arg("-v")
        .arg(format!("{agent}:/periscope-agent:ro"))
        .args([&image, "/periscope-agent", "crawl", "--print", "--docker", "on", "--collectors", "os,packages"])
        .output()
        .expect("docker run the agent");
    assert!(out.status.success(), "agent in a container failed: {}", String::from_utf8_lossy(&out.stderr));
    let rows: Vec<serde_json::Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let want = in_chroot(&debian_rootfs(), &["dpkg-query", "-W"]).lines().count();
    for id in [&running, &stopped] {
        let n = rows
            .iter()
            .filter(|r| r["table"] == "packages" && r["scope"] == "container" && r["scope_id"] == id.as_str())
            .count();
        assert_eq!(n, want, "packages of container {id} crawled by the unprivileged agent");
    }
    assert!(rows.iter().any(|r| r["table"] == "packages" && r["scope"] == "image"), "the image was crawled");
    // Without CAP_SYS_ADMIN no trusted.* xattr can be read (overlay opaque markers, redirects): each
    // scope read through its layers says its merged view may be wrong (issue 24), a limit of the
    // agent's privileges and so not an error of the scope. No crawl has an error.
    let (blind, others): (Vec<_>, Vec<_>) = rows.iter().filter(|r| r["table"] == "crawl_errors").partition(|r| {
        r["collector"] == "layers" && r["message"].as_str().is_some_and(|m| m.contains("CAP_SYS_ADMIN"))
    });
    let failed: Vec<_> = rows.iter().filter(|r| r["table"] == "crawls" && r["errors"] != 0).collect();
    assert!(failed.is_empty(), "{failed:?}\n{others:?}");
    assert!(blind.iter().any(|r| r["scope_id"] == stopped.as_str()), "{blind:?}");
    assert!(!blind.iter().any(|r| r["scope_id"] == running.as_str()), "a running container is read through its mount");
}
