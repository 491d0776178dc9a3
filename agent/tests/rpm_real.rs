//! The rpm database readers against databases written by real rpm.
//!
//! Tiny packages are built with Debian's `rpmbuild` and registered with `rpm
//! --justdb` in a fresh root; what our readers find is compared with what
//! `rpm -qa --queryformat` and `rpm -ql` print from the same database.
//! Debian's rpm 4.18 writes only sqlite (its backends are sqlite, bdb_ro and
//! dummy), so the BerkeleyDB reader is checked another way: a hash file is
//! written from the real header blobs and rpm's own read-only BerkeleyDB
//! reader (`bdb_ro`) must list the same packages from it as ours does. NDB is
//! compared only when the installed rpm can write it.
//!
//! The tools are required, not optional: `scripts/install-test-deps.sh`
//! installs them.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use periscope_agent::collectors::rpm::{RpmPackage, read_bdb, read_ndb, read_sqlite};

const QUERY_FORMAT: &str = "%{NAME}\\t%{EPOCH}\\t%{VERSION}\\t%{RELEASE}\\t%{ARCH}\\t%{SOURCERPM}\\t%{LICENSE}\\t%{VENDOR}\\t%{SIZE}\\t%{INSTALLTIME}\\n";

/// One test package: its spec preamble and the files `%install` creates.
struct Spec {
    name: &'static str,
    epoch: Option<u32>,
    version: &'static str,
    release: &'static str,
    noarch: bool,
    license: &'static str,
    vendor: Option<&'static str>,
    install: &'static str,
    files: &'static str,
}

const SPECS: [Spec; 4] = [
    Spec {
        name: "alpha",
        epoch: Some(0),
        version: "1.0",
        release: "1",
        noarch: true,
        license: "MIT",
        vendor: None,
        install: "mkdir -p %{buildroot}/usr/share/alpha\necho a > %{buildroot}/usr/share/alpha/a.txt\necho bb > %{buildroot}/usr/share/alpha/b.txt",
        files: "/usr/share/alpha/a.txt\n/usr/share/alpha/b.txt",
    },
    Spec {
        name: "bravo",
        epoch: Some(2),
        version: "2.5",
        release: "3.fc40",
        noarch: false,
        license: "GPL-2.0-or-later",
        vendor: Some("Periscope Test Vendor"),
        install: "mkdir -p %{buildroot}/usr/bin %{buildroot}/etc %{buildroot}/opt/bravo/sub\nprintf '#!/bin/sh\\necho bravo\\n' > %{buildroot}/usr/bin/bravo\necho conf > %{buildroot}/etc/bravo.conf\necho x > %{buildroot}/opt/bravo/sub/x",
        files: "/usr/bin/bravo\n%config /etc/bravo.conf\n/opt/bravo",
    },
    Spec {
        name: "charlie",
        epoch: None,
        version: "0.9~rc1",
        release: "7.el9",
        noarch: false,
        license: "Apache-2.0",
        vendor: None,
        install: "mkdir -p '%{buildroot}/usr/share/charlie'\necho c > '%{buildroot}/usr/share/charlie/with space.txt'",
        files: "\"/usr/share/charlie/with space.txt\"",
    },
    Spec {
        name: "delta",
        epoch: None,
        version: "4.0.1",
        release: "1",
        noarch: false,
        license: "BSD-3-Clause AND MIT",
        vendor: None,
        install: "mkdir -p %{buildroot}/usr/lib/delta\nhead -c 100000 /dev/zero > %{buildroot}/usr/lib/delta/blob.bin",
        files: "%dir /usr/lib/delta\n/usr/lib/delta/blob.bin",
    },
];

impl Spec {
    fn text(&self) -> String {
        let mut s = format!(
            "Name: {}\nVersion: {}\nRelease: {}\nSummary: periscope test package\nLicense: {}\n",
            self.name, self.version, self.release, self.license
        );
        if let Some(e) = self.epoch {
            s += &format!("Epoch: {e}\n");
        }
        if let Some(v) = self.vendor {
            s += &format!("Vendor: {v}\n");
        }
        if self.noarch {
            s += "BuildArch: noarch\n";
        }
        s += &format!("%description\nTest package.\n%install\n{}\n%files\n{}\n", self.install, self.files);
        s
    }
}

/// Runs a command and returns its stdout, failing the test with its stderr.
fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// rpm and rpmbuild must be installed; a missing tool fails the test.
fn require_tools() {
    for tool in ["rpm", "rpmbuild"] {
        if Command::new(tool).arg("--version").output().is_err() {
            panic!("`{tool}` is not installed: run scripts/install-test-deps.sh (it installs Debian's rpm package)");
        }
    }
}

/// Builds the test packages under `dir` and returns the .rpm paths.
fn build_packages(dir: &Path) -> Vec<PathBuf> {
    let top = dir.join("rpmbuild");
    let mut rpms = Vec::new();
    for spec in &SPECS {
        let path = dir.join(format!("{}.spec", spec.name));
        fs::write(&path, spec.text()).expect("write spec");
        let mut cmd = Command::new("rpmbuild");
        cmd.arg("-bb")
            .arg("--quiet")
            .arg("--define")
            .arg(format!("_topdir {}", top.display()))
            .arg("--define")
            .arg("debug_package %{nil}");
        if !spec.noarch {
            cmd.args(["--target", "x86_64"]);
        }
        run(cmd.arg(&path));
        let arch = if spec.noarch { "noarch" } else { "x86_64" };
        let epochless = format!("{}-{}-{}.{arch}.rpm", spec.name, spec.version, spec.release);
        let rpm = top.join("RPMS").join(arch).join(epochless);
        assert!(rpm.is_file(), "rpmbuild did not produce {}", rpm.display());
        rpms.push(rpm);
    }
    rpms
}

/// rpm invocation on the database under `root` with the given backend.
fn rpm(root: &Path, backend: &str) -> Command {
    let mut cmd = Command::new("rpm");
    cmd.arg("--root").arg(root).args(["--dbpath", "/var/lib/rpm", "--define"]).arg(format!("_db_backend {backend}"));
    cmd
}

/// A fresh root with every test package registered in a `backend` database.
fn install(dir: &Path, rpms: &[PathBuf], backend: &str) -> PathBuf {
    let root = dir.join(format!("root-{backend}"));
    fs::create_dir_all(&root).expect("mkdir root");
    run(rpm(&root, backend).arg("--initdb"));
    run(rpm(&root, backend).args(["--justdb", "--nodeps", "--noscripts", "-i"]).args(rpms));
    root
}

/// One line per package in `QUERY_FORMAT`'s shape, as rpm would print it.
fn as_rpm_prints(p: &RpmPackage) -> String {
    let or_none = |s: &Option<String>| s.clone().unwrap_or_else(|| "(none)".into());
    let num = |n: Option<i64>| n.map_or_else(|| "(none)".into(), |n| n.to_string());
    format!(
        "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
        p.name,
        num(p.epoch),
        p.version,
        p.release,
        or_none(&p.arch),
        or_none(&p.source_rpm),
        or_none(&p.license),
        or_none(&p.vendor),
        num(p.size),
        num(p.install_time)
    )
}

fn sorted_lines(s: &str) -> Vec<String> {
    let mut v: Vec<String> = s.lines().map(str::to_string).collect();
    v.sort();
    v
}

/// How to ask rpm for a package's files.
#[derive(Clone, Copy)]
enum FileQuery {
    /// `rpm -ql NAME`, which needs rpm's Name index.
    ByName,
    /// `rpm -qa` with a FILENAMES array, for a database with no indexes.
    All,
}

/// Compares our packages with `rpm -qa` and rpm's file lists, `query` giving
/// an rpm command on the database under test.
fn assert_matches_rpm(ours: &[RpmPackage], query: impl Fn() -> Command, files: FileQuery) {
    let theirs = run(query().arg("-qa").arg("--queryformat").arg(QUERY_FORMAT));
    let mut mine: Vec<String> = ours.iter().map(as_rpm_prints).collect();
    mine.sort();
    assert_eq!(mine, sorted_lines(&theirs), "ours (left) vs rpm -qa (right)");
    assert_eq!(mine.len(), SPECS.len());
    let all = match files {
        FileQuery::All => run(query().arg("-qa").arg("--queryformat").arg("[%{=NAME}\\t%{FILENAMES}\\n]")),
        FileQuery::ByName => String::new(),
    };
    for p in ours {
        let listed: Vec<String> = match files {
            FileQuery::ByName => run(query().arg("-ql").arg(&p.name)).lines().map(str::to_string).collect(),
            FileQuery::All => all
                .lines()
                .filter_map(|l| l.split_once('\t'))
                .filter(|(name, _)| *name == p.name)
                .map(|(_, f)| f.to_string())
                .collect(),
        };
        assert!(!listed.is_empty(), "rpm lists no files for {}", p.name);
        assert_eq!(p.files, listed, "files of {} (left) vs rpm (right)", p.name);
    }
}

fn read_file(path: &Path) -> Vec<u8> {
    fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

#[test]
fn sqlite_database_matches_rpm() {
    require_tools();
    let dir = tempfile::tempdir().expect("tempdir");
    let rpms = build_packages(dir.path());
    let root = install(dir.path(), &rpms, "sqlite");
    let bytes = read_file(&root.join("var/lib/rpm/rpmdb.sqlite"));
    let (pkgs, errs) = read_sqlite(&bytes);
    assert_eq!(errs, Vec::<String>::new());
    assert_matches_rpm(&pkgs, || rpm(&root, "sqlite"), FileQuery::ByName);
    // The epoch cases the specs set up, spelled out.
    let epoch = |n: &str| pkgs.iter().find(|p| p.name == n).map(|p| p.epoch);
    assert_eq!([epoch("alpha"), epoch("bravo"), epoch("charlie")], [Some(Some(0)), Some(Some(2)), Some(None)]);

    // The same root through the packages collector: the rows users query.
    let opts = periscope_agent::crawl::CrawlOptions {
        root: root.clone(),
        collectors: Some(vec!["packages".into()]),
        ..Default::default()
    };
    let c = periscope_agent::crawl::crawl(&opts).expect("crawl");
    let mut out = Vec::new();
    periscope_agent::print::print_json_lines(&c.batches.to_vec(), &mut out).unwrap();
    let rows: Vec<serde_json::Value> =
        String::from_utf8(out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let pkg = |n: &str| {
        rows.iter()
            .find(|r| r["table"] == "packages" && r["name"] == n)
            .unwrap_or_else(|| panic!("{n} missing: {rows:?}"))
    };
    for p in &pkgs {
        let r = pkg(&p.name);
        assert_eq!(r["manager"], "rpm");
        let evr = match p.epoch {
            Some(e) => format!("{e}:{}-{}", p.version, p.release),
            None => format!("{}-{}", p.version, p.release),
        };
        assert_eq!(r["version"], evr.as_str());
        assert_eq!(r["epoch"], p.epoch.map_or(serde_json::Value::Null, |e| e.into()), "{}", p.name);
        assert_eq!(r["db_path"], "/var/lib/rpm/rpmdb.sqlite");
        for f in &p.files {
            assert!(
                rows.iter().any(|x| x["table"] == "package_files"
                    && x["package"] == p.name.as_str()
                    && x["path"] == f.as_str()),
                "{f}"
            );
        }
    }
    assert!(!rows.iter().any(|r| r["table"] == "crawl_errors"), "{rows:?}");
}

/// rpm's available backends, from `rpm --showrc`.
fn backends() -> String {
    let rc = run(Command::new("rpm").arg("--showrc"));
    rc.lines()
        .find_map(|l| l.strip_prefix("available backends").map(|r| r.trim_start_matches([' ', ':']).to_string()))
        .unwrap_or_default()
}

#[test]
fn ndb_database_matches_rpm_when_this_rpm_writes_ndb() {
    require_tools();
    let available = backends();
    if !available.split_whitespace().any(|b| b == "ndb") {
        eprintln!("this rpm has no ndb backend (available: {available}); NDB is covered by unit tests only");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let rpms = build_packages(dir.path());
    let root = install(dir.path(), &rpms, "ndb");
    let (pkgs, errs) = read_ndb(&read_file(&root.join("var/lib/rpm/Packages.db")));
    assert_eq!(errs, Vec::<String>::new());
    assert_matches_rpm(&pkgs, || rpm(&root, "ndb"), FileQuery::ByName);
}

/// The real header blobs from an rpm-written sqlite database, by hnum.
fn real_blobs(db: &Path) -> Vec<(u32, Vec<u8>)> {
    let conn = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .expect("open rpmdb.sqlite");
    let mut stmt = conn.prepare("SELECT hnum, blob FROM Packages ORDER BY hnum").expect("prepare");
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).expect("query").collect::<Result<_, _>>().expect("rows")
}

/// A BerkeleyDB hash file (Berkeley DB's `db_page.h` layout) holding `blobs`
/// under their package numbers: metadata page, one hash page (bucket 0, the
/// only bucket) of key/off-page pairs, and one overflow chain per blob.
fn write_bdb(blobs: &[(u32, Vec<u8>)], big_endian: bool) -> Vec<u8> {
    const PAGE: usize = 4096;
    let u32b = |v: u32| if big_endian { v.to_be_bytes() } else { v.to_le_bytes() };
    let u16b = |v: u16| if big_endian { v.to_be_bytes() } else { v.to_le_bytes() };
    let mut pages = vec![vec![0u8; PAGE], vec![0u8; PAGE]];
    let header = |page: &mut Vec<u8>, pgno: usize, kind: u8| {
        page[8..12].copy_from_slice(&u32b(pgno as u32));
        page[25] = kind;
    };
    // Overflow chains first, so the hash page can point at them.
    let mut firsts = Vec::new();
    for (_, blob) in blobs {
        firsts.push(pages.len() as u32);
        let chunks: Vec<&[u8]> = blob.chunks(PAGE - 26).collect();
        for (i, chunk) in chunks.iter().enumerate() {
            let pgno = pages.len();
            let mut page = vec![0u8; PAGE];
            header(&mut page, pgno, 7);
            if i > 0 {
                page[12..16].copy_from_slice(&u32b(pgno as u32 - 1));
            }
            if i + 1 < chunks.len() {
                page[16..20].copy_from_slice(&u32b(pgno as u32 + 1));
            }
            page[20..22].copy_from_slice(&u16b(1));
            page[22..24].copy_from_slice(&u16b(chunk.len() as u16));
            page[26..26 + chunk.len()].copy_from_slice(chunk);
            pages.push(page);
        }
    }
    // Bucket 0: key and off-page value items, laid from the page end down.
    let mut hash = vec![0u8; PAGE];
    header(&mut hash, 1, 13);
    let mut end = PAGE;
    let mut n = 0u16;
    for ((key, blob), first) in blobs.iter().zip(&firsts) {
        let key_item = [&[1u8][..], &u32b(*key)].concat();
        let value_item = [&[3u8, 0, 0, 0][..], &u32b(*first), &u32b(blob.len() as u32)].concat();
        for item in [key_item, value_item] {
            let start = end - item.len();
            assert!(start > 26 + 2 * (usize::from(n) + 1), "too many packages for one hash page");
            hash[start..end].copy_from_slice(&item);
            hash[26 + 2 * usize::from(n)..28 + 2 * usize::from(n)].copy_from_slice(&u16b(start as u16));
            n += 1;
            end = start;
        }
    }
    hash[20..22].copy_from_slice(&u16b(n));
    hash[22..24].copy_from_slice(&u16b(end as u16));
    pages[1] = hash;
    // Metadata: hash magic, version 9, page size, last page, one bucket whose
    // page is 0 + spares[0] = 1.
    let last = pages.len() as u32 - 1;
    let meta = &mut pages[0];
    meta[12..16].copy_from_slice(&u32b(0x0006_1561));
    meta[16..20].copy_from_slice(&u32b(9));
    meta[20..24].copy_from_slice(&u32b(PAGE as u32));
    meta[25] = 8;
    meta[32..36].copy_from_slice(&u32b(last));
    meta[96..100].copy_from_slice(&u32b(1));
    pages.concat()
}

#[test]
fn bdb_file_from_real_headers_reads_like_rpms_own_bdb_reader() {
    require_tools();
    let available = backends();
    assert!(available.contains("bdb_ro"), "this rpm lacks its read-only BerkeleyDB backend ({available})");
    let dir = tempfile::tempdir().expect("tempdir");
    let rpms = build_packages(dir.path());
    let root = install(dir.path(), &rpms, "sqlite");
    let blobs = real_blobs(&root.join("var/lib/rpm/rpmdb.sqlite"));
    assert_eq!(blobs.len(), SPECS.len());
    for big_endian in [false, true] {
        let bdb_root = dir.path().join(format!("bdb-{big_endian}"));
        let dbdir = bdb_root.join("var/lib/rpm");
        fs::create_dir_all(&dbdir).expect("mkdir");
        let bytes = write_bdb(&blobs, big_endian);
        fs::write(dbdir.join("Packages"), &bytes).expect("write Packages");
        let (pkgs, errs) = read_bdb(&bytes);
        assert_eq!(errs, Vec::<String>::new(), "big endian: {big_endian}");
        // rpm cannot look names up without its index files, which bdb_ro
        // would want as BerkeleyDB too; list files from the package scan.
        assert_matches_rpm(&pkgs, || rpm(&bdb_root, "bdb_ro"), FileQuery::All);
    }
}
