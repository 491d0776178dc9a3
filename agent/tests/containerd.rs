//! containerd discovery against a real containerd: the one dockerd runs on
//! this machine (a Kubernetes node's containerd serves the same API). The
//! test works in a containerd namespace of its own, with containers made by
//! containerd's own CLI (`ctr`) and no Docker involved, as on a node
//! without Docker: one running, one exited, one never started on another
//! snapshotter, one privileged on the host network.

mod common;

use std::collections::BTreeMap;
use std::process::{Command, Output};

use common::*;
use periscope_agent::crawl::{CrawlOptions, RuntimeMode, crawl_async};
use periscope_agent::discover::containerd;

/// `ctr` against one socket and namespace; the namespace and everything in it
/// is removed when the test ends.
struct Ctr {
    socket: String,
    ns: String,
}

impl Ctr {
    fn run(&self, args: &[&str]) -> Output {
        let out = Command::new("ctr").args(["-a", &self.socket, "-n", &self.ns]).args(args).output().expect("ctr");
        assert!(out.status.success(), "ctr {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        out
    }

    fn task_status(&self, id: &str) -> String {
        let out = self.run(&["tasks", "ls"]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.first() == Some(&id)).then(|| f.last().unwrap_or(&"").to_string())
            })
            .unwrap_or_default()
    }
}

impl Drop for Ctr {
    fn drop(&mut self) {
        let ctr = |args: &[&str]| {
            let _ = Command::new("ctr").args(["-a", &self.socket, "-n", &self.ns]).args(args).output();
        };
        for id in ["run", "exit", "new", "priv"] {
            ctr(&["tasks", "kill", "-s", "KILL", id]);
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
        for id in ["run", "exit", "new", "priv"] {
            ctr(&["tasks", "rm", "-f", id]);
            ctr(&["containers", "rm", id]);
        }
        let images = Command::new("ctr").args(["-a", &self.socket, "-n", &self.ns, "images", "ls", "-q"]).output();
        for img in images.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default().lines() {
            ctr(&["images", "rm", "--sync", img]);
        }
        let _ = Command::new("ctr").args(["-a", &self.socket, "namespaces", "rm", &self.ns]).output();
    }
}

/// The containerd socket and `ctr`, or None (skip) with the reason printed;
/// a failure instead when PERISCOPE_REQUIRE_DOCKER=1.
fn containerd_available(test: &str) -> Option<String> {
    if !docker_available(test) {
        return None;
    }
    let socket = containerd::sockets().into_iter().next();
    let ctr = Command::new("ctr").arg("--version").output().is_ok_and(|o| o.status.success());
    let reason = match (&socket, ctr) {
        (None, _) => "no containerd socket found (CONTAINERD_ADDRESS or the usual paths)",
        (_, false) => "containerd's ctr command is not installed",
        (Some(s), true) => return Some(s.display().to_string()),
    };
    assert!(std::env::var("PERISCOPE_REQUIRE_DOCKER").as_deref() != Ok("1"), "{test}: {reason}");
    eprintln!("SKIPPED {test}: {reason}");
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containerd_containers_are_discovered_and_crawled_in_every_state() {
    let Some(socket) = containerd_available("containerd_containers_are_discovered_and_crawled_in_every_state") else {
        return;
    };
    let image = docker_test_image();
    let ctr = Ctr { socket, ns: format!("periscope-test-{}", std::process::id()) };
    let dir = tempfile::tempdir().unwrap();
    let tar = dir.path().join("image.tar");
    let st = Command::new("docker").args(["save", "-o"]).arg(&tar).arg(&image).status().unwrap();
    assert!(st.success(), "docker save");
    let tar = tar.to_str().unwrap();
    // Unpacked for the default snapshotter (overlayfs) and for the native one (plain directories).
    ctr.run(&["images", "import", tar]);
    ctr.run(&["images", "import", "--snapshotter", "native", tar]);
    let reference = format!("docker.io/{image}");

    ctr.run(&[
        "run",
        "-d",
        "--memory-limit",
        &(64u64 << 20).to_string(),
        "--cap-add",
        "CAP_NET_ADMIN",
        "--label",
        "io.kubernetes.pod.name=web-0",
        "--label",
        "io.kubernetes.pod.namespace=shop",
        "--mount",
        "type=bind,src=/var/run/docker.sock,dst=/var/run/docker.sock,options=rbind:ro",
        &reference,
        "run",
        "sleep",
        "600",
    ]);
    // A file written inside the running container, by a process of its own.
    ctr.run(&["tasks", "exec", "--exec-id", "plant", "run", "sh", "-c", "echo planted > /tmp/planted"]);
    // Exits at once after deleting a file of its image: its task stays, stopped.
    ctr.run(&["run", "-d", &reference, "exit", "sh", "-c", "rm /etc/login.defs"]);
    for _ in 0..100 {
        if ctr.task_status("exit") == "STOPPED" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(ctr.task_status("exit"), "STOPPED");
    ctr.run(&["containers", "create", "--snapshotter", "native", &reference, "new", "true"]);
    ctr.run(&["containers", "create", "--privileged", "--net-host", &reference, "priv", "true"]);

    let mut config = periscope_agent::collectors::CollectorConfig::default();
    config.file_globs = vec!["/tmp/planted".into()];
    let opts = CrawlOptions {
        collectors: Some(vec!["os".into(), "packages".into(), "files".into(), "configs".into()]),
        config,
        docker: RuntimeMode::Off,
        containerd: RuntimeMode::On,
        ..Default::default()
    };
    let crawls = crawl_async(opts).await.expect("crawl");
    let (rows, _) = rows_of(&crawls[0].batches.to_vec());
    let ctrd_errors: Vec<_> = rows["crawl_errors"].iter().filter(|r| s(r, "collector") == "containerd").collect();
    assert!(ctrd_errors.is_empty(), "{ctrd_errors:?}");
    let mine: BTreeMap<String, &serde_json::Map<String, serde_json::Value>> =
        rows["containers"].iter().filter(|r| s(r, "namespace") == ctr.ns).map(|r| (s(r, "container_id"), r)).collect();
    assert_eq!(mine.keys().map(String::as_str).collect::<Vec<_>>(), ["exit", "new", "priv", "run"]);
    assert!(mine.values().all(|r| s(r, "engine") == "containerd" && s(r, "image") == reference));

    let r = mine["run"];
    assert_eq!((s(r, "state"), s(r, "command")), ("running".into(), "sleep 600".into()));
    assert_eq!(s(r, "memory_limit"), (64 << 20).to_string());
    assert_eq!(s(r, "cap_add"), "NET_ADMIN");
    assert_eq!((s(r, "k8s_pod"), s(r, "k8s_namespace")), ("web-0".into(), "shop".into()));
    assert_eq!((s(r, "privileged"), s(r, "network_mode")), ("false".into(), "private".into()));
    let pid: i64 = s(r, "pid").parse().unwrap();
    let e = mine["exit"];
    assert_eq!((s(e, "state"), s(e, "exit_code"), s(e, "oom_killed")), ("exited".into(), "0".into(), "false".into()));
    assert_eq!((s(mine["new"], "state"), s(mine["new"], "storage_driver")), ("stopped".into(), "native".into()));
    let p = mine["priv"];
    assert_eq!((s(p, "privileged"), s(p, "network_mode")), ("true".into(), "host".into()));
    let sock = rows["container_mounts"]
        .iter()
        .find(|m| s(m, "container_id") == "run" && s(m, "destination") == "/var/run/docker.sock")
        .expect("the docker.sock mount is findable");
    assert_eq!((s(sock, "source"), s(sock, "rw")), ("/var/run/docker.sock".into(), "false".into()));

    // Live state: the container's cgroup metrics and its processes, attributed by its cgroup.
    let m = rows["container_metrics"].iter().find(|m| s(m, "container_id") == "run").expect("metrics of run");
    assert_eq!(s(m, "memory_limit_bytes"), (64 << 20).to_string());
    let proc_ = rows["processes"].iter().find(|p| s(p, "pid") == pid.to_string()).expect("the main process");
    assert_eq!((s(proc_, "container_id"), s(proc_, "name")), ("run".into(), "sleep".into()));

    // Every container's filesystem: the running one through /proc/<pid>/root,
    // the others through their snapshots' directories (overlayfs and native), nothing mounted.
    let want: BTreeMap<String, String> =
        in_chroot(&debian_rootfs(), &["dpkg-query", "-W", "-f", "${Package}\t${Version}\n"])
            .lines()
            .filter_map(|l| l.split_once('\t'))
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
    let scope = |id: &str| {
        let c = crawls
            .iter()
            .find(|c| c.common.scope == "container" && c.common.scope_id == id)
            .unwrap_or_else(|| panic!("container {id} not crawled"));
        rows_of(&c.batches.to_vec()).0
    };
    for id in ["run", "exit", "new", "priv"] {
        let got: BTreeMap<String, String> =
            scope(id)["packages"].iter().map(|r| (s(r, "name"), s(r, "version"))).collect();
        assert_eq!(got, want, "packages of {id}");
    }
    assert_eq!(scope("run")["files"].iter().map(|r| s(r, "path")).collect::<Vec<_>>(), ["/tmp/planted"]);
    assert!(scope("new")["files"].is_empty(), "the planted file shows up for its container only");
    // The lookup Docker's containerd image store needs (no GraphDriver directories there: a
    // container's filesystem is a snapshot keyed by its id). Docker 20.10 here has no such
    // store, so the lookup is exercised on a snapshot of this test's own.
    assert_eq!(s(mine["new"], "snapshot_key"), "new");
    let sockets = containerd::sockets();
    let mounts = containerd::snapshot_mounts(&sockets, &ctr.ns, "native", "new", std::time::Duration::from_secs(10))
        .await
        .expect("mounts of a snapshot");
    let (dirs, _) = containerd::snapshot_layers(&mounts).unwrap();
    assert!(dirs[0].join("var/lib/dpkg/status").is_file(), "{dirs:?}");
    let err =
        containerd::snapshot_mounts(&sockets, &ctr.ns, "native", "no-such-key", std::time::Duration::from_secs(10))
            .await
            .unwrap_err();
    assert!(err.contains("no-such-key"), "{err}");
    let configs = |id: &str| scope(id)["configs"].iter().map(|r| s(r, "path")).collect::<Vec<_>>();
    assert!(!configs("exit").contains(&"/etc/login.defs".to_string()), "the overlay whiteout hides login.defs");
    assert!(configs("new").contains(&"/etc/login.defs".to_string()));
}
