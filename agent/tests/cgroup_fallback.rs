//! Runtime-agnostic discovery: a process whose cgroup path names a container
//! that no runtime API reports still becomes a container scope, crawled
//! through its /proc/<pid>/root. The "container" here is made by hand: a
//! process chrooted into the debootstrap root (test fixture only; the agent
//! never chroots) and moved into a Docker-shaped cgroup (/docker/<64-hex id>) no engine knows.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};

use common::*;
use periscope_agent::crawl::{CrawlOptions, RuntimeMode, crawl_async};

struct Fixture {
    child: std::process::Child,
    cgroup: PathBuf,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir(&self.cgroup);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_only_its_cgroup_reveals_is_crawled() {
    let id = format!("{:064x}", 0x5eed_0000_u64 + std::process::id() as u64);
    let base = PathBuf::from("/sys/fs/cgroup");
    let (cgroup, procs) = if base.join("cgroup.controllers").exists() {
        let d = base.join(format!("docker/{id}"));
        (d.clone(), d.join("cgroup.procs"))
    } else {
        let d = base.join(format!("pids/docker/{id}"));
        (d.clone(), d.join("cgroup.procs"))
    };
    std::fs::create_dir_all(&cgroup)
        .unwrap_or_else(|e| panic!("cannot create cgroup {}: {e} (needs root)", cgroup.display()));
    let child =
        Command::new("chroot").arg(debian_rootfs()).args(["sleep", "120"]).stdout(Stdio::null()).spawn().unwrap();
    let fixture = Fixture { child, cgroup };
    std::fs::write(&procs, fixture.child.id().to_string()).expect("move the process into the cgroup");

    let opts = CrawlOptions {
        collectors: Some(vec!["packages".into()]),
        docker: RuntimeMode::Off,
        containerd: RuntimeMode::Off,
        ..Default::default()
    };
    let crawls = crawl_async(opts).await.expect("crawl");
    let c = crawls
        .iter()
        .find(|c| c.common.scope == "container" && c.common.scope_id == id)
        .expect("cgroup-only container crawled");
    let (rows, _) = rows_of(&c.batches.to_vec());
    let want = in_chroot(&debian_rootfs(), &["dpkg-query", "-W"]).lines().count();
    assert_eq!(rows["packages"].len(), want);
    let (host, _) = rows_of(&crawls[0].batches.to_vec());
    let p = host["processes"].iter().find(|p| s(p, "pid") == fixture.child.id().to_string()).expect("process listed");
    assert_eq!(s(p, "container_id"), id);
    drop(fixture);
}
