//! Agent authentication with real processes on loopback: a server started
//! with an enroll secret, agents that enroll (or fail to), node keys that
//! expire or are forged, and an agent that tries to write another host's rows.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

/// `periscope-agent run --once` against `url`: (success, stderr).
fn once(url: &str, spool: &Path, host: &str, secret: Option<&str>) -> (bool, String) {
    let root = debian_rootfs().display().to_string();
    let mut cmd = Command::new(agent_bin());
    cmd.args(["run", "--once", "--server", url, "--host", host, "--root", &root, "--scope", "image"])
        .args(["--scope-id", &format!("img-{host}"), "--collectors", "os,packages", "--spool-dir"])
        .arg(spool)
        .env_remove("PERISCOPE_ENROLL_SECRET");
    if let Some(s) = secret {
        cmd.args(["--enroll-secret", s]);
    }
    let out = cmd.output().expect("run periscope-agent");
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn server_with(data: &Path, args: &[&str]) -> Server {
    Server::start_full(data, "127.0.0.1:0", args, &[])
}

#[test]
fn agents_enroll_and_each_writes_only_its_own_host() {
    let data = tempfile::tempdir().unwrap();
    let server = server_with(data.path(), &["--enroll-secret", "fleet-secret"]);
    let spool = |_: &str| tempfile::tempdir().unwrap();

    // No secret, a wrong one: refused, with the reason.
    let s0 = spool("none");
    let (ok, err) = once(&server.url, s0.path(), "web-1", None);
    assert!(!ok && err.contains("no node key"), "{err}");
    let (ok, err) = once(&server.url, s0.path(), "web-1", Some("guess"));
    assert!(!ok && err.contains("wrong enroll secret"), "{err}");

    // The right secret: enrolled, delivered, the node key kept for the next run.
    let s1 = spool("web-1");
    let (ok, err) = once(&server.url, s1.path(), "web-1", Some("fleet-secret"));
    assert!(ok, "{err}");
    assert!(err.contains("enrolled as web-1"), "{err}");
    let key = std::fs::read_to_string(s1.path().join("node_key")).unwrap();
    let (ok, err) = once(&server.url, s1.path(), "web-1", Some("fleet-secret"));
    assert!(ok && !err.contains("enrolled"), "the kept node key is reused: {err}");

    // web-1's node key used to write rows for db-1: refused.
    let s2 = spool("db-1");
    std::fs::write(s2.path().join("node_key"), &key).unwrap();
    let (ok, err) = once(&server.url, s2.path(), "db-1", Some("fleet-secret"));
    assert!(!ok, "{err}");
    assert!(err.contains(r#"agent identified as host "web-1" sent rows for host "db-1""#), "{err}");

    // A forged node key: refused as unknown, and the agent enrolls anew.
    let s3 = spool("cache-1");
    std::fs::write(s3.path().join("node_key"), "0".repeat(64)).unwrap();
    let (ok, err) = once(&server.url, s3.path(), "cache-1", Some("fleet-secret"));
    assert!(ok && err.contains("enrolled as cache-1"), "{err}");

    let hosts = sql(&["--server", &server.url], "SELECT DISTINCT host FROM crawls ORDER BY host");
    assert_eq!(hosts.iter().map(|r| s(r, "host")).collect::<Vec<_>>(), ["cache-1", "web-1"]);
}

#[test]
fn an_expired_node_key_is_refused_and_the_agent_enrolls_again() {
    let data = tempfile::tempdir().unwrap();
    // Two seconds: a re-enrolled key must outlive the send that follows it, even on a loaded machine.
    let server = server_with(data.path(), &["--enroll-secret", "s", "--node-key-ttl-secs", "2"]);
    let spool = tempfile::tempdir().unwrap();
    let (ok, err) = once(&server.url, spool.path(), "web-1", Some("s"));
    assert!(ok, "{err}");
    let first = std::fs::read_to_string(spool.path().join("node_key")).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let (ok, err) = once(&server.url, spool.path(), "web-1", Some("s"));
    assert!(ok && err.contains("enrolled as web-1"), "{err}");
    assert_ne!(std::fs::read_to_string(spool.path().join("node_key")).unwrap(), first);
}

#[test]
fn an_agent_speaking_another_contract_version_is_refused_with_a_clear_error() {
    use periscope_proto::v1::Batch;
    use periscope_proto::v1::ingest_client::IngestClient;
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let status = rt.block_on(async {
        let mut c = IngestClient::connect(server.url.clone()).await.unwrap();
        let old = Batch {
            contract_version: periscope_proto::CONTRACT_VERSION - 1,
            agent_id: "old-agent".into(),
            boot_epoch: 1,
            seq: 1,
            table: "os".into(),
            ..Default::default()
        };
        let mut acks = c.send(futures::stream::iter(vec![old])).await.unwrap().into_inner();
        futures::StreamExt::next(&mut acks).await.unwrap().unwrap_err()
    });
    assert_eq!(status.code(), tonic::Code::FailedPrecondition);
    let want = format!(
        "agent old-agent speaks contract version {}, this server speaks {}; upgrade the older side",
        periscope_proto::CONTRACT_VERSION - 1,
        periscope_proto::CONTRACT_VERSION
    );
    assert_eq!(status.message(), want);
}
