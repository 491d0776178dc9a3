//! Packages compiled into binaries, on real binaries (scripts/binary-fixtures.sh):
//! a Go binary built here with Debian's Go (a dependency replaced by another
//! module at a pseudo-version, a `+incompatible` one, one replaced by a local
//! directory), the same binary with its `.go.buildinfo` section renamed, and
//! uv's `uvx` from its PyPI wheel (built by its authors with cargo-auditable).
//! What the agent finds is compared with syft on the same root.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use common::*;

/// A fixture script's output (see [`common::fixture`]).
fn script(name: &str, test: &str) -> Option<PathBuf> {
    common::fixture(name, test, "golang-go and binutils (scripts/install-test-deps.sh) and PyPI")
}

type Pkg = (String, String, String, String, String);

fn agent_packages(root: &std::path::Path) -> (BTreeSet<Pkg>, Vec<String>) {
    let mut o = opts(root);
    o.collectors = Some(vec!["packages".into()]);
    let (rows, _) = crawl_rows(&o);
    let pkgs = rows["packages"]
        .iter()
        .filter(|r| matches!(s(r, "manager").as_str(), "golang" | "cargo"))
        .map(|r| (s(r, "manager"), s(r, "name"), s(r, "version"), s(r, "location"), s(r, "purl")))
        .collect();
    let errors = rows["crawl_errors"].iter().map(|r| s(r, "message")).collect();
    (pkgs, errors)
}

#[test]
fn go_build_info_and_cargo_auditable_rows_from_real_binaries() {
    let Some(root) = script("binary-fixtures.sh", "go_build_info_and_cargo_auditable_rows_from_real_binaries") else {
        return;
    };
    let (pkgs, errors) = agent_packages(&root);
    assert!(errors.iter().all(|e| e.contains("no package database found")), "{errors:?}");
    for bin in ["/usr/local/bin/goapp", "/opt/tools/goapp-nosection"] {
        let go: BTreeSet<(&str, &str, &str)> = pkgs
            .iter()
            .filter(|p| p.0 == "golang" && p.3 == bin)
            .map(|p| (p.1.as_str(), p.2.as_str(), p.4.as_str()))
            .collect();
        let want: BTreeSet<(&str, &str, &str)> = [
            ("stdlib", "go1.19.8", "pkg:golang/stdlib@1.19.8"),
            ("example.com/goapp", "(devel)", "pkg:golang/example.com/goapp@(devel)"),
            ("example.com/greet", "v1.0.0", "pkg:golang/example.com/greet@v1.0.0"),
            (
                "example.com/colorsfork",
                "v0.0.0-20191109021931-daa7c04131f5",
                "pkg:golang/example.com/colorsfork@v0.0.0-20191109021931-daa7c04131f5",
            ),
            ("example.com/legacy", "v2.0.0+incompatible", "pkg:golang/example.com/legacy@v2.0.0%2Bincompatible"),
            ("./local", "(devel)", "pkg:golang/./local@(devel)"),
        ]
        .into();
        // The toolchain is whatever Debian's golang-go is; the rest is the fixture's go.mod.
        let go_version = Command::new("go").arg("env").arg("GOVERSION").output().unwrap();
        let go_version = String::from_utf8(go_version.stdout).unwrap().trim().to_string();
        let want: BTreeSet<(String, String, String)> = want
            .iter()
            .map(|&(n, v, p)| {
                if n == "stdlib" {
                    (n.into(), go_version.clone(), format!("pkg:golang/stdlib@{}", go_version.trim_start_matches("go")))
                } else {
                    (n.into(), v.into(), p.into())
                }
            })
            .collect();
        let got: BTreeSet<(String, String, String)> =
            go.iter().map(|&(n, v, p)| (n.into(), v.into(), p.into())).collect();
        assert_eq!(got, want, "{bin}");
    }
    let cargo: Vec<&Pkg> = pkgs.iter().filter(|p| p.0 == "cargo").collect();
    assert!(cargo.len() > 300, "{}", cargo.len());
    assert!(cargo.iter().all(|p| p.3 == "/usr/local/bin/uvx"));
    assert!(cargo.iter().any(|p| p.1 == "uv" && p.2 == "0.13.9" && p.4 == "pkg:cargo/uv@0.13.9"), "the root crate");
    assert!(cargo.iter().any(|p| p.1 == "zstd-sys" && p.4 == "pkg:cargo/zstd-sys@2.1.0%2Bzstd.1.5.7"));
    // Build dependencies are not in the binary.
    assert!(!cargo.iter().any(|p| p.1 == "cc" || p.1 == "autocfg"), "build dependencies reported");
}

/// The same root through syft's golang and rust-audit catalogers: the same
/// (manager, name, version, location, purl) rows, with no difference to explain.
#[test]
fn binaries_match_syft() {
    let test = "binaries_match_syft";
    let Some(root) = script("binary-fixtures.sh", test) else { return };
    let Some(syft) = script("syft.sh", test) else { return };
    let out = Command::new(&syft)
        .arg(format!("dir:{}", root.display()))
        .args(["-o", "json", "-q"])
        .output()
        .expect("run syft");
    assert!(out.status.success(), "syft: {}", String::from_utf8_lossy(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut theirs: BTreeSet<Pkg> = BTreeSet::new();
    for a in doc["artifacts"].as_array().unwrap() {
        let manager = match a["type"].as_str().unwrap() {
            "go-module" => "golang",
            "rust-crate" => "cargo",
            _ => continue,
        };
        for l in a["locations"].as_array().unwrap() {
            theirs.insert((
                manager.into(),
                a["name"].as_str().unwrap().into(),
                a["version"].as_str().unwrap().into(),
                l["path"].as_str().unwrap().into(),
                a["purl"].as_str().unwrap().into(),
            ));
        }
    }
    let (ours, _) = agent_packages(&root);
    assert!(theirs.len() > 300, "syft found {}", theirs.len());
    let only_ours: Vec<_> = ours.difference(&theirs).collect();
    let only_theirs: Vec<_> = theirs.difference(&ours).collect();
    assert!(
        only_ours.is_empty() && only_theirs.is_empty(),
        "only Periscope: {only_ours:?}\nonly syft: {only_theirs:?}"
    );
}
