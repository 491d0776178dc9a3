//! `periscope-agent run` against a real server and the real Docker Engine:
//! with a full crawl only every hour, containers that start after the first
//! one are crawled from Docker's events, even one that lives two seconds and
//! is removed when it exits.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

struct Agent(std::process::Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn containers_living_between_full_crawls_are_crawled_from_docker_events() {
    if !docker_available("containers_living_between_full_crawls_are_crawled_from_docker_events") {
        return;
    }
    let image = docker_test_image();
    let want = in_chroot(&debian_rootfs(), &["dpkg-query", "-W", "-f", "${Package}\n"]).lines().count();
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let mut child = Command::new(agent_bin())
        .args(["run", "--server", &server.url, "--interval", "3600", "--splay", "0"])
        .args(["--collectors", "os,packages", "--containerd", "off"])
        .env("PERISCOPE_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn periscope-agent run");
    let lines = BufReader::new(child.stderr.take().unwrap()).lines();
    std::thread::spawn(move || lines.for_each(|l| eprintln!("[agent] {}", l.unwrap_or_default())));
    let _agent = Agent(child);
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
}
