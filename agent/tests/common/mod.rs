//! Shared helpers for the agent's integration tests (also used by the
//! server's tests through `#[path]`): real root filesystems and crawls.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use arrow_array::RecordBatch;
use periscope_agent::crawl::{crawl, table_of, CrawlOptions};

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
    rows_of(&c.batches)
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

pub fn s(row: &serde_json::Map<String, serde_json::Value>, col: &str) -> String {
    match row.get(col) {
        Some(serde_json::Value::String(v)) => v.clone(),
        Some(serde_json::Value::Null) | None => String::new(),
        Some(v) => v.to_string(),
    }
}

pub fn opts(root: &Path) -> CrawlOptions {
    CrawlOptions { root: root.to_path_buf(), host: Some("test-host".into()), scope_id: Some("test".into()), ..Default::default() }
}
