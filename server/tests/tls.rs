//! TLS and mTLS between agents and server, with certificates made by
//! openssl for this test: a fleet CA, a server certificate for localhost,
//! agent certificates whose subject CN is the host they write rows for, and
//! a second, foreign CA whose certificates must be refused.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").current_dir(dir).args(args).output().expect("run openssl");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A certificate `name` for subject CN `cn` (and DNS SAN `cn`), signed by CA `by`.
fn issue(dir: &Path, by: &str, name: &str, cn: &str) {
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            &format!("/CN={cn}"),
        ],
    );
    std::fs::write(dir.join(format!("{name}.ext")), format!("subjectAltName=DNS:{cn}\n")).unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{by}.crt"),
            "-CAkey",
            &format!("{by}.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            &format!("{name}.crt"),
            "-extfile",
            &format!("{name}.ext"),
        ],
    );
}

fn make_ca(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.crt"),
            "-subj",
            &format!("/CN={name}"),
        ],
    );
}

/// `periscope-agent run --once` over TLS with client certificate `cert` (or none): (success, stderr).
fn once(url: &str, dir: &Path, cert: Option<&str>, host: &str) -> (bool, String) {
    let spool = tempfile::tempdir().unwrap();
    let root = debian_rootfs().display().to_string();
    let p = |f: String| -> PathBuf { dir.join(f) };
    let mut cmd = Command::new(agent_bin());
    cmd.args(["run", "--once", "--server", url, "--host", host, "--root", &root, "--scope", "image"])
        .args(["--scope-id", &format!("img-{host}"), "--collectors", "os,packages", "--spool-dir"])
        .arg(spool.path())
        .arg("--tls-ca")
        .arg(p("fleet-ca.crt".into()));
    if let Some(c) = cert {
        cmd.arg("--tls-cert").arg(p(format!("{c}.crt"))).arg("--tls-key").arg(p(format!("{c}.key")));
    }
    let out = cmd.output().expect("run periscope-agent");
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn mtls_takes_the_agent_identity_from_its_certificate_and_refuses_other_cas() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    make_ca(d, "fleet-ca");
    make_ca(d, "other-ca");
    issue(d, "fleet-ca", "server", "localhost");
    issue(d, "fleet-ca", "web-1", "web-1");
    issue(d, "other-ca", "intruder", "web-1");
    let data = tempfile::tempdir().unwrap();
    let f = |n: &str| d.join(n).display().to_string();
    let args = ["--tls-cert", &f("server.crt"), "--tls-key", &f("server.key"), "--client-ca", &f("fleet-ca.crt")];
    let server = Server::start_full(data.path(), "127.0.0.1:0", &args, &[]);
    let url = server.url.replace("http://127.0.0.1", "https://localhost");

    // The fleet CA's certificate for web-1: delivered, as web-1.
    let (ok, err) = once(&url, d, Some("web-1"), "web-1");
    assert!(ok, "{err}");
    // The same certificate writing rows for another host: refused.
    let (ok, err) = once(&url, d, Some("web-1"), "db-1");
    assert!(!ok && err.contains(r#"agent identified as host "web-1" sent rows for host "db-1""#), "{err}");
    // A certificate from another CA, or none: the handshake fails.
    let (ok, err) = once(&url, d, Some("intruder"), "web-1");
    // (rustls reports "received fatal alert: UnknownCA", or the stream just breaks.)
    assert!(!ok && err.contains("delivery failed"), "{err}");
    // Without one, TLS 1.3 reports the refusal after the handshake: the stream breaks.
    let (ok, err) = once(&url, d, None, "web-1");
    assert!(!ok && err.contains("delivery failed"), "{err}");

    // Only the one legitimate crawl was stored.
    let crawls = sql(&["--data", data.path().to_str().unwrap()], "SELECT host FROM crawls");
    assert_eq!(crawls.iter().map(|r| s(r, "host")).collect::<Vec<_>>(), ["web-1"]);
}
