//! Shared helpers for the agent's integration tests (also used by the
//! server's tests through `#[path]`): real root filesystems and crawls.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use arrow_array::RecordBatch;
use periscope_agent::crawl::{CrawlOptions, crawl, table_of};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// A minimal Debian bookworm root filesystem made by debootstrap (cached by
/// scripts/debian-rootfs.sh between runs).
pub fn debian_rootfs() -> PathBuf {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let out = Command::new(repo_root().join("scripts/debian-rootfs.sh"))
            .stderr(Stdio::inherit())
            .output()
            .expect("run scripts/debian-rootfs.sh");
        assert!(out.status.success(), "scripts/debian-rootfs.sh failed (needs root and Debian's package mirror)");
        PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
    })
    .clone()
}

/// Runs a command inside `root` with chroot — the test's oracle, never the agent's method.
pub fn in_chroot(root: &Path, args: &[&str]) -> String {
    let out = Command::new("chroot").arg(root).args(args).output().expect("run chroot");
    assert!(out.status.success(), "chroot {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// Rows of one crawl as JSON objects, grouped by table.
pub type Rows = BTreeMap<String, Vec<serde_json::Map<String, serde_json::Value>>>;

pub fn crawl_rows(opts: &CrawlOptions) -> (Rows, String) {
    let c = crawl(opts).expect("crawl");
    rows_of(&c.batches.to_vec())
}

/// Groups batches' rows by table; also returns everything as JSON lines text.
pub fn rows_of(batches: &[RecordBatch]) -> (Rows, String) {
    let mut buf = Vec::new();
    periscope_agent::print::print_json_lines(batches, &mut buf).unwrap();
    let text = String::from_utf8(buf).unwrap();
    let mut rows = Rows::new();
    for line in text.lines() {
        let v: serde_json::Map<String, serde_json::Value> = serde_json::from_str(line).unwrap();
        rows.entry(v["table"].as_str().unwrap().to_string()).or_default().push(v);
    }
    for t in periscope_proto::tables::TABLES {
        rows.entry(t.name.to_string()).or_default();
    }
    for b in batches {
        assert!(rows.contains_key(table_of(b).name));
    }
    (rows, text)
}

/// A row as `crawl --print` writes it.
pub type Row = serde_json::Map<String, serde_json::Value>;

/// `packages` rows of `manager`, and the errors of `collector`, from
/// `periscope-agent crawl --print` of `root` as an image.
pub fn crawl_printed(root: &Path, manager: &str, collector: &str) -> (Vec<Row>, Vec<Row>) {
    // Only the agent's own tests have its binary (this module is shared with the server's).
    let Some(agent) = option_env!("CARGO_BIN_EXE_periscope-agent") else {
        panic!("crawl_printed runs in the agent's tests only");
    };
    let out = Command::new(agent)
        .args(["crawl", "--print", "--scope", "image", "--scope-id", "x", "--root"])
        .arg(root)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rows: Vec<Row> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let errors =
        rows.iter().filter(|r| s(r, "table") == "crawl_errors" && s(r, "collector") == collector).cloned().collect();
    let packages = rows.into_iter().filter(|r| s(r, "table") == "packages" && s(r, "manager") == manager).collect();
    (packages, errors)
}

pub fn s(row: &serde_json::Map<String, serde_json::Value>, col: &str) -> String {
    match row.get(col) {
        Some(serde_json::Value::String(v)) => v.clone(),
        Some(serde_json::Value::Null) | None => String::new(),
        Some(v) => v.to_string(),
    }
}

pub fn opts(root: &Path) -> CrawlOptions {
    CrawlOptions {
        root: root.to_path_buf(),
        host: Some("test-host".into()),
        scope_id: Some("test".into()),
        ..Default::default()
    }
}

/// True when a Docker Engine answers. Without one, Docker tests skip with a
/// printed reason — unless PERISCOPE_REQUIRE_DOCKER=1 (CI), where they fail.
pub fn docker_available(test: &str) -> bool {
    let ok = Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        assert!(
            std::env::var("PERISCOPE_REQUIRE_DOCKER").as_deref() != Ok("1"),
            "{test}: PERISCOPE_REQUIRE_DOCKER=1 but no Docker Engine is reachable"
        );
        eprintln!("SKIPPED {test}: no Docker Engine reachable (set PERISCOPE_REQUIRE_DOCKER=1 to make this a failure)");
    }
    ok
}

/// The debootstrap root imported as an image (no registry needed), tagged by
/// a hash of the root's dpkg status so a rebuilt root gets a fresh image.
pub fn docker_test_image() -> String {
    static IMAGE: OnceLock<String> = OnceLock::new();
    IMAGE
        .get_or_init(|| {
            let status = debian_rootfs().join("var/lib/dpkg/status");
            let sum = Command::new("sha256sum").arg(&status).output().expect("sha256sum");
            let hash: String = String::from_utf8_lossy(&sum.stdout).chars().take(12).collect();
            let name = format!("periscope-test/bookworm:{hash}");
            let have = Command::new("docker")
                .args(["image", "inspect", &name])
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false);
            if !have {
                let root = debian_rootfs();
                let st = Command::new("sh")
                    .arg("-c")
                    .arg(format!("tar -C '{}' -c . | docker import - {name}", root.display()))
                    .stdout(Stdio::null())
                    .status()
                    .expect("docker import");
                assert!(st.success(), "docker import of the debootstrap root failed");
            }
            name
        })
        .clone()
}

/// Containers made by a test, removed when it ends.
pub struct Containers(pub Vec<String>);

impl Containers {
    /// `docker <args>` returning the container id it prints.
    pub fn create(&mut self, args: &[&str]) -> String {
        let out = Command::new("docker").args(args).output().expect("docker");
        assert!(out.status.success(), "docker {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        let id = String::from_utf8(out.stdout).unwrap().trim().lines().last().unwrap_or("").to_string();
        self.0.push(id.clone());
        id
    }
}

/// An image made by a test, removed when it ends (a failing test included).
pub struct Image(pub String);

impl Drop for Image {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rmi", "-f", &self.0]).output();
    }
}

impl Drop for Containers {
    fn drop(&mut self) {
        for id in &self.0 {
            let _ = Command::new("docker").args(["rm", "-f", id]).output();
        }
    }
}

/// The path a fixture script (scripts/NAME) prints, building and caching what it
/// stands for; None with a printed reason when it cannot, and a failure in CI,
/// where the project's scripts must be able to build every fixture. `needs`
/// says what the script needs, for the message.
pub fn fixture(name: &str, test: &str, needs: &str) -> Option<PathBuf> {
    let out = std::process::Command::new(repo_root().join("scripts").join(name))
        .stderr(std::process::Stdio::inherit())
        .output();
    match out {
        Ok(o) if o.status.success() => Some(PathBuf::from(String::from_utf8_lossy(&o.stdout).trim())),
        other => {
            let why = format!("scripts/{name} failed ({other:?}); it needs {needs}");
            assert!(std::env::var("CI").as_deref() != Ok("true"), "{test}: {why}");
            eprintln!("SKIPPED {test}: {why}");
            None
        }
    }
}
