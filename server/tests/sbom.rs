//! Issue 19: `periscope sbom` on real crawls — the debootstrap root, a root
//! of pip-installed wheels and Debian's python3-requests, and a running
//! Docker container of the debootstrap image — checked by the formats' own
//! validators from PyPI (cyclonedx-python-lib against the CycloneDX 1.6 JSON
//! schema, spdx-tools against SPDX 2.3; tests/sbom_validate.py), against the
//! store's package counts and dpkg itself, read back by syft, and the same
//! from a server as from its data directory.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use common::*;
use serde_json::Value;

/// A fixed timestamp, so two runs can be compared byte for byte.
const EPOCH: &str = "1767225600"; // 2026-01-01T00:00:00Z

const FORMATS: [&str; 2] = ["cyclonedx-json", "spdx-json"];

/// Runs `periscope sbom` with `args`; the document, or the failure's stderr.
fn sbom(args: &[&str], epoch: Option<&str>) -> Result<String, String> {
    sbom_as(args, epoch, &[])
}

/// [`sbom`] with extra environment variables (a SQL user's credentials).
fn sbom_as(args: &[&str], epoch: Option<&str>, env: &[(&str, &str)]) -> Result<String, String> {
    let mut cmd = Command::new(periscope_bin());
    cmd.arg("sbom").args(args).env_remove("SOURCE_DATE_EPOCH").envs(env.iter().copied());
    if let Some(e) = epoch {
        cmd.env("SOURCE_DATE_EPOCH", e);
    }
    let out = cmd.output().expect("run periscope sbom");
    if out.status.success() {
        Ok(String::from_utf8(out.stdout).expect("UTF-8 document"))
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// The formats' validators' verdict on `doc` (tests/sbom_validate.py).
fn validate(py: &str, format: &str, doc: &str, dir: &Path) -> Value {
    let kind = if format == "spdx-json" { "spdx" } else { "cyclonedx" };
    let file = dir.join(format!("validate.{kind}.json"));
    std::fs::write(&file, doc).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sbom_validate.py");
    let out = Command::new(py).arg(&script).arg(kind).arg(&file).output().expect("run the validator");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{} failed: {stderr}\n(PERISCOPE_PYTHON needs cyclonedx-python-lib and spdx-tools: run scripts/python-clients.sh)",
        script.display()
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("validator output: {e}: {stderr}"))
}

/// `syft convert FILE -o syft-json`: its artifacts, after asserting it ran without an error.
fn syft_reads(syft: &Path, format: &str, doc: &str, dir: &Path) -> Vec<Value> {
    let file = dir.join(format!("syft-in.{format}.json"));
    std::fs::write(&file, doc).unwrap();
    let out = Command::new(syft)
        .args(["convert", file.to_str().unwrap(), "-o", "syft-json"])
        // No update check: it is a network call, and its failure is logged as an ERROR.
        .env("SYFT_CHECK_FOR_APP_UPDATE", "false")
        .output()
        .expect("run syft convert");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "syft convert of {format} failed: {stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("ERROR")).collect();
    assert!(errors.is_empty(), "syft convert of {format} said: {errors:?}");
    let converted: Value = serde_json::from_slice(&out.stdout).expect("syft-json");
    converted["artifacts"].as_array().expect("artifacts").clone()
}

fn count(target: &[&str], filter: &str) -> usize {
    let rows = sql(target, &format!("SELECT count(*) AS n FROM packages WHERE {filter}"));
    rows[0]["n"].as_u64().unwrap() as usize
}

/// The (name, version) of each package row in `filter`, sorted.
fn names(target: &[&str], filter: &str) -> Vec<(String, String)> {
    sql(target, &format!("SELECT name, version FROM packages WHERE {filter} ORDER BY name, version"))
        .iter()
        .map(|r| (s(r, "name"), s(r, "version")))
        .collect()
}

/// The CycloneDX document's package components (its OS component left out).
fn components(doc: &Value) -> Vec<&Value> {
    doc["components"].as_array().unwrap().iter().filter(|c| c["type"] != "operating-system").collect()
}

/// The SPDX document's packages but the subject and the OS.
fn spdx_packages(doc: &Value) -> Vec<&Value> {
    doc["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["SPDXID"].as_str().unwrap().starts_with("SPDXRef-Package-"))
        .collect()
}

fn prop<'a>(c: &'a Value, name: &str) -> Vec<&'a str> {
    c["properties"]
        .as_array()
        .map(|ps| ps.iter().filter(|p| p["name"] == name).filter_map(|p| p["value"].as_str()).collect())
        .unwrap_or_default()
}

fn find<'a>(list: &[&'a Value], name: &str, version: &str) -> &'a Value {
    let key = if list.first().is_some_and(|v| v.get("SPDXID").is_some()) { "versionInfo" } else { "version" };
    list.iter()
        .find(|c| c["name"] == name && c[key] == version)
        .unwrap_or_else(|| panic!("no {name} {version} in the document"))
}

/// One subject: how to name it on the command line and which package rows are its.
struct Case {
    what: String,
    args: Vec<String>,
    filter: String,
    /// A host subject is a package to syft (only container and file roots are not).
    host: bool,
    has_os: bool,
}

#[test]
fn sboms_of_real_crawls_validate_match_the_store_and_read_back() {
    let test = "sboms_of_real_crawls_validate_match_the_store_and_read_back";
    let Some(py) = common::python() else { return };
    let Some(python_root) = fixture_root("python-fixture.sh") else { return };
    let syft = fixture_root("syft.sh");
    let docker = docker_available(test);
    let deb_root = debian_rootfs();
    let tag = format!("sb{}", std::process::id());
    let (deb, pyh) = (format!("{tag}-deb"), format!("{tag}-py"));
    let web = format!("{tag}-web");
    let mut cs = Containers(Vec::new());
    let (mut container_id, mut image_id, mut image) = (String::new(), String::new(), String::new());
    if docker {
        image = docker_test_image();
        container_id = cs.create(&["run", "-d", "--name", &web, &image, "sleep", "600"]);
        let out = Command::new("docker").args(["image", "inspect", "-f", "{{.Id}}", &image]).output().unwrap();
        image_id = String::from_utf8(out.stdout).unwrap().trim().to_string();
    }

    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let remote = ["--server", server.url.as_str()];
    crawl_root(&server.url, &python_root, &pyh, "os,packages,python", &[]);
    let docker_flag: &[&str] = if docker { &["--docker", "on"] } else { &[] };
    crawl_root(&server.url, &deb_root, &deb, "os,packages", docker_flag);
    let local = ["--data", data.path().to_str().unwrap()];

    let mut cases = vec![
        Case {
            what: format!("host {deb}"),
            args: vec!["--host".into(), deb.clone()],
            filter: format!("host = '{deb}' AND scope = 'host'"),
            host: true,
            has_os: true,
        },
        Case {
            what: format!("host {pyh}"),
            args: vec!["--host".into(), pyh.clone()],
            filter: format!("host = '{pyh}' AND scope = 'host'"),
            host: true,
            has_os: false,
        },
    ];
    if docker {
        cases.push(Case {
            what: format!("container {web}"),
            args: vec!["--container".into(), web.clone()],
            filter: format!("host = '{deb}' AND scope = 'container' AND scope_id = '{container_id}'"),
            host: false,
            has_os: true,
        });
        cases.push(Case {
            what: format!("image {image}"),
            args: vec!["--image".into(), image.clone(), "--host".into(), deb.clone()],
            filter: format!("host = '{deb}' AND scope = 'image' AND scope_id = '{image_id}'"),
            host: false,
            has_os: true,
        });
    }

    let mut docs: BTreeMap<(String, &str), Value> = BTreeMap::new();
    // The server's call sends a document in pieces of 256 KiB: a host's, with its files, takes several.
    let mut largest = 0;
    for case in &cases {
        let n = count(&remote, &case.filter);
        assert!(n > 0, "{}: no packages stored", case.what);
        let stored = names(&remote, &case.filter);
        for format in FORMATS {
            let args: Vec<&str> = case.args.iter().map(String::as_str).chain(["--format", format]).collect();
            // 4. The server's answer is the data directory's, byte for byte at one timestamp.
            let from_server = sbom(&[&remote[..], &args].concat(), Some(EPOCH)).unwrap();
            let from_data = sbom(&[&local[..], &args].concat(), Some(EPOCH)).unwrap();
            assert!(from_server == from_data, "{} {format}: --server and --data documents differ", case.what);
            largest = largest.max(from_server.len());
            // Unpinned, the timestamp is now; the rest but the serial number (made from it) is the same.
            let now: Value = serde_json::from_str(&sbom(&[&remote[..], &args].concat(), None).unwrap()).unwrap();
            let doc: Value = serde_json::from_str(&from_server).unwrap();
            let (mut a, mut b) = (doc.clone(), now.clone());
            if format == "cyclonedx-json" {
                assert_eq!(doc["metadata"]["timestamp"], "2026-01-01T00:00:00Z");
                assert_ne!(now["metadata"]["timestamp"], doc["metadata"]["timestamp"]);
                for d in [&mut a, &mut b] {
                    d["metadata"]["timestamp"] = Value::Null;
                    d["serialNumber"] = Value::Null;
                }
            } else {
                assert_eq!(doc["creationInfo"]["created"], "2026-01-01T00:00:00Z");
                for d in [&mut a, &mut b] {
                    d["creationInfo"]["created"] = Value::Null;
                    d["documentNamespace"] = Value::Null;
                }
            }
            assert_eq!(a, b, "{} {format}: documents differ beyond their timestamp", case.what);

            // 1. The formats' own validators.
            let verdict = validate(&py, format, &from_server, work.path());
            eprintln!("{} {format}: {verdict}", case.what);
            assert_eq!(verdict["errors"], Value::Array(vec![]), "{} {format}: {verdict}", case.what);
            assert_eq!(verdict["noncanonical"], Value::Array(vec![]), "{} {format}: {verdict}", case.what);

            // 2. One component per package row of the scope, with its name and version.
            let mut listed: Vec<(String, String)> = match format {
                "cyclonedx-json" => components(&doc)
                    .iter()
                    .map(|c| {
                        let name = match c["group"].as_str() {
                            Some(g) => format!("{g}:{}", c["name"].as_str().unwrap()),
                            None => c["name"].as_str().unwrap().to_string(),
                        };
                        (name, c["version"].as_str().unwrap_or_default().to_string())
                    })
                    .collect(),
                _ => spdx_packages(&doc)
                    .iter()
                    .map(|p| (p["name"].as_str().unwrap().into(), p["versionInfo"].as_str().unwrap_or_default().into()))
                    .collect(),
            };
            listed.sort();
            assert_eq!(listed.len(), n, "{} {format}: components vs SELECT count(*) FROM packages", case.what);
            assert_eq!(listed, stored, "{} {format}", case.what);
            let purls = verdict["purls"].as_u64().unwrap() as usize;
            assert!(purls >= n, "{} {format}: {purls} purls for {n} packages, all of which have one here", case.what);

            // 3. syft reads the document back: CycloneDX's packages one for one; from SPDX
            // it also takes the OS package and a host subject (it drops only container
            // and file roots) for packages.
            if let Some(syft) = &syft {
                let artifacts = syft_reads(syft, format, &from_server, work.path());
                let extra = if format == "spdx-json" { case.has_os as usize + case.host as usize } else { 0 };
                eprintln!("{} {format}: syft convert read {} packages ({n} + {extra})", case.what, artifacts.len());
                assert_eq!(artifacts.len(), n + extra, "{} {format}: syft's packages", case.what);
                let mut theirs: Vec<(String, String)> = artifacts
                    .iter()
                    .map(|a| (a["name"].as_str().unwrap().to_string(), a["version"].as_str().unwrap().to_string()))
                    .collect();
                theirs.sort();
                let ours: Vec<&(String, String)> = stored.iter().collect();
                let theirs_of_ours: Vec<&(String, String)> = theirs.iter().filter(|t| stored.contains(t)).collect();
                assert_eq!(theirs_of_ours, ours, "{} {format}: syft's (name, version) pairs", case.what);
            }
            docs.insert((case.what.clone(), format), doc);
        }
    }
    assert!(largest > 2 * (256 << 10), "the largest document, {largest} bytes, crossed fewer than three pieces");

    // bash in the debootstrap root: version and purl as dpkg and os-release say.
    let dpkg =
        in_chroot(&deb_root, &["dpkg-query", "-W", "-f", "${Version}\t${Architecture}\t${source:Version}", "bash"]);
    let [version, arch, source_version]: [&str; 3] = dpkg.split('\t').collect::<Vec<_>>().try_into().unwrap();
    let os_release = std::fs::read_to_string(deb_root.join("etc/os-release"))
        .or_else(|_| std::fs::read_to_string(deb_root.join("usr/lib/os-release")))
        .unwrap();
    let version_id = os_release.lines().find_map(|l| l.strip_prefix("VERSION_ID=")).unwrap().trim_matches('"');
    let enc = |v: &str| v.replace('+', "%2B");
    let mut want = format!("pkg:deb/debian/bash@{}?arch={arch}&distro=debian-{version_id}", enc(version));
    if source_version != version {
        want.push_str(&format!("&upstream=bash%40{}", enc(source_version)));
    }
    let cdx = &docs[&(format!("host {deb}"), "cyclonedx-json")];
    let bash = find(&components(cdx), "bash", version);
    assert_eq!(bash["purl"], want.as_str());
    // Its files, as dpkg lists them: every path that is not a directory.
    let files: Vec<&str> = bash["components"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap()).collect();
    let listed = in_chroot(&deb_root, &["dpkg-query", "-L", "bash"]);
    let not_dirs: Vec<&str> = listed
        .lines()
        // (Followed: /bin is usrmerge's relative symlink to usr/bin, a directory to dpkg.)
        .filter(|p| p.starts_with('/') && !std::fs::metadata(deb_root.join(&p[1..])).is_ok_and(|m| m.is_dir()))
        .collect();
    assert!(not_dirs.iter().any(|p| p.ends_with("/bin/bash")), "{not_dirs:?}");
    for p in &not_dirs {
        assert!(files.contains(p), "bash's {p} is not among its files: {files:?}");
    }
    assert!(!files.contains(&"/usr") && !files.contains(&"/bin"), "directories among bash's files: {files:?}");
    let spdx = &docs[&(format!("host {deb}"), "spdx-json")];
    let bash = find(&spdx_packages(spdx), "bash", version);
    assert_eq!(bash["externalRefs"][0]["referenceLocator"], want.as_str());
    assert_eq!(bash["externalRefs"][0]["referenceCategory"], "PACKAGE-MANAGER");

    // Wheels: pypi purls, licenses from their METADATA (an SPDX id stated, free text quoted).
    let cdx = &docs[&(format!("host {pyh}"), "cyclonedx-json")];
    let spdx = &docs[&(format!("host {pyh}"), "spdx-json")];
    let requests = find(&components(cdx), "requests", "2.31.0");
    assert_eq!(requests["purl"], "pkg:pypi/requests@2.31.0");
    let metadata = |dist: &str| {
        let text = std::fs::read_to_string(
            python_root.join("usr/local/lib/python3.11/site-packages").join(dist).join("METADATA"),
        )
        .unwrap();
        text.lines().find_map(|l| l.strip_prefix("License: ")).unwrap().to_string()
    };
    let requests_license = metadata("requests-2.31.0.dist-info");
    assert_eq!(requests["licenses"][0]["license"]["name"], requests_license.as_str());
    assert_eq!(find(&components(cdx), "zope.interface", "6.1")["purl"], "pkg:pypi/zope-interface@6.1");
    let certifi = metadata("certifi-2023.7.22.dist-info");
    assert_eq!(certifi, "MPL-2.0");
    assert_eq!(find(&components(cdx), "certifi", "2023.7.22")["licenses"][0]["expression"], "MPL-2.0");
    assert_eq!(find(&spdx_packages(spdx), "certifi", "2023.7.22")["licenseDeclared"], "MPL-2.0");
    let declared = find(&spdx_packages(spdx), "requests", "2.31.0")["licenseDeclared"].as_str().unwrap();
    assert!(declared.starts_with("LicenseRef-"), "{declared}");
    let extracted = spdx["hasExtractedLicensingInfos"].as_array().unwrap();
    assert!(extracted.iter().any(|e| e["licenseId"] == declared && e["extractedText"] == requests_license.as_str()));
    // Debian's python3-requests holds the requests its files include.
    let owner = find(
        &spdx_packages(spdx),
        "python3-requests",
        &s(
            &sql(&remote, &format!("SELECT version FROM packages WHERE host = '{pyh}' AND name = 'python3-requests'"))
                [0],
            "version",
        ),
    )["SPDXID"]
        .clone();
    let inner = find(&spdx_packages(spdx), "requests", "2.28.1")["SPDXID"].clone();
    assert!(spdx["relationships"].as_array().unwrap().iter().any(|r| r["spdxElementId"] == owner
        && r["relationshipType"] == "CONTAINS"
        && r["relatedSpdxElement"] == inner));

    let mut on_first = String::new();
    if docker {
        // The running container names its image: id and tag.
        let cdx = &docs[&(format!("container {web}"), "cyclonedx-json")];
        let subject = &cdx["metadata"]["component"];
        assert_eq!(subject["type"], "container");
        assert_eq!(subject["name"], web.as_str());
        assert_eq!(subject["version"], image_id.as_str());
        assert_eq!(prop(subject, "periscope:image:id"), [image_id.as_str()]);
        assert_eq!(prop(subject, "periscope:container:id"), [container_id.as_str()]);
        assert_eq!(prop(subject, "periscope:image:tag"), [image.as_str()]);
        assert_eq!(prop(subject, "periscope:container:state"), ["running"]);
        let spdx = &docs[&(format!("container {web}"), "spdx-json")];
        let root = &spdx["packages"][0];
        assert_eq!(
            (root["SPDXID"].as_str(), root["primaryPackagePurpose"].as_str()),
            (Some("SPDXRef-Subject"), Some("CONTAINER"))
        );
        assert_eq!(root["versionInfo"], image_id.as_str());
        assert!(root["comment"].as_str().unwrap().contains(&format!("image_id: {image_id}")));
        let image_doc = &docs[&(format!("image {image}"), "cyclonedx-json")];
        assert_eq!(image_doc["metadata"]["component"]["name"], image.as_str());
        assert_eq!(image_doc["metadata"]["component"]["version"], image_id.as_str());
        // A container by a unique id prefix, an image by a prefix of its id (without `sha256:`).
        let by_prefix = sbom(&[&remote[..], &["--container", &container_id[..12]]].concat(), Some(EPOCH)).unwrap();
        assert_eq!(by_prefix, sbom(&[&remote[..], &["--container", &web]].concat(), Some(EPOCH)).unwrap());
        let by_id = sbom(&[&remote[..], &["--image", &image_id[7..19], "--host", &deb]].concat(), Some(EPOCH)).unwrap();
        let by_id: Value = serde_json::from_str(&by_id).unwrap();
        assert_eq!(&by_id, image_doc, "--image by id prefix and by tag");

        // The same container seen from a second host: the name alone is ambiguous, --host decides.
        let deb2 = format!("{tag}-deb2");
        crawl_root(&server.url, &deb_root, &deb2, "os,packages", &["--docker", "on"]);
        let err = sbom(&[&remote[..], &["--container", &web]].concat(), None).unwrap_err();
        assert!(err.contains("--host") && err.contains(&deb) && err.contains(&deb2), "{err}");
        on_first = sbom(&[&remote[..], &["--container", &web, "--host", &deb]].concat(), Some(EPOCH)).unwrap();
        assert_eq!(on_first, by_prefix);
        let err = sbom(&[&remote[..], &["--container", "no-such-container"]].concat(), None).unwrap_err();
        assert!(err.contains("no crawled container"), "{err}");
    }

    // From a server with SQL users, a user confined to one host gets that host's SBOMs,
    // the documents the data directory gives, and no other host's.
    server.stop();
    let scope = format!("deb={deb}");
    let args = ["--sql-user", "all:pa", "--sql-user", "deb:pd", "--sql-scope", "all=*", "--sql-scope", &scope];
    let server = Server::start_full(data.path(), "127.0.0.1:0", &args, &[]);
    let scoped = ["--server", server.url.as_str()];
    let as_deb = [("PERISCOPE_USER", "deb"), ("PERISCOPE_PASSWORD", "pd")];
    let whole = sbom(&[&local[..], &["--host", &deb]].concat(), Some(EPOCH)).unwrap();
    assert_eq!(sbom_as(&[&scoped[..], &["--host", &deb]].concat(), Some(EPOCH), &as_deb).unwrap(), whole);
    let err = sbom_as(&[&scoped[..], &["--host", &pyh]].concat(), None, &as_deb).unwrap_err();
    assert!(err.contains("no crawl of host"), "{err}");
    let as_all = [("PERISCOPE_USER", "all"), ("PERISCOPE_PASSWORD", "pa")];
    assert!(sbom_as(&[&scoped[..], &["--host", &pyh]].concat(), None, &as_all).is_ok());
    assert!(sbom(&[&scoped[..], &["--host", &deb]].concat(), None).is_err(), "no user, no SBOM");
    if docker {
        // The other host's container of that name is not the user's to see: the name is not ambiguous to it.
        let mine = sbom_as(&[&scoped[..], &["--container", &web]].concat(), Some(EPOCH), &as_deb).unwrap();
        assert_eq!(mine, on_first);
    }

    // The server makes the document on its own threads: what it holds while it does counts against the
    // user's query memory, and a document larger than that is refused, not made.
    server.stop();
    let server = Server::start_full(data.path(), "127.0.0.1:0", &["--query-memory-bytes", "262144"], &[]);
    let small = ["--server", server.url.as_str()];
    let err = sbom(&[&small[..], &["--host", &deb]].concat(), None).unwrap_err();
    assert!(err.contains("--query-memory-bytes"), "{err}");
}
