//! `packages` and `package_files`: what the package managers' own databases
//! say is installed and which paths each package owns. dpkg (status and the
//! distroless status.d), apk and rpm (sqlite, NDB and BerkeleyDB) are all
//! looked for; a root with none of them gets one `crawl_errors` row.

use std::collections::HashSet;
use std::sync::Arc;

use periscope_proto::tables::{PACKAGE_FILES, PACKAGES, PACKAGES_NOT_INSTALLED};

use super::dpkg::{DpkgPackage, StatusParser};
use super::parse::{Deadline, past};
use super::rpm::{self, RpmPackage};
use super::{Scope, Sink, usrmerge_aliases};
use crate::encode::Value;
use crate::rootfs::display_name;

const C: &str = "packages";
pub const DPKG_STATUS: &str = "/var/lib/dpkg/status";
pub const DPKG_STATUS_D: &str = "/var/lib/dpkg/status.d";
pub const DPKG_INFO: &str = "/var/lib/dpkg/info";
pub const APK_INSTALLED: &str = "/lib/apk/db/installed";
pub const RPM_DIRS: &[&str] = &["/var/lib/rpm", "/usr/lib/sysimage/rpm"];

/// Bytes read from one file-list file (`info/*.list`, `*.md5sums`).
const LIST_MAX_BYTES: u64 = 16 << 20;

pub fn collect(scope: &Scope, out: &mut Sink) {
    collect_until(scope, out, &mut past(scope.root.deadline()))
}

/// [`collect`], with the text databases' parsers asking `late` whether the
/// scope's time is up (see [`Deadline`]; rpm's readers take the deadline itself).
fn collect_until(scope: &Scope, out: &mut Sink, late: &mut dyn FnMut() -> bool) {
    let aliases = usrmerge_aliases(&scope.root);
    let mut found = false;
    found |= dpkg(scope, out, &aliases, late);
    found |= apk(scope, out, &aliases, late);
    found |= rpm_dbs(scope, out, &aliases);
    // Packages compiled into binaries share this table, so they are read (or inherited) with it.
    super::binaries::collect(scope, out);
    if !found {
        let message = format!(
            "no package database found: {DPKG_STATUS}, {DPKG_STATUS_D}, {APK_INSTALLED} and rpm databases under {} are not found",
            RPM_DIRS.join(", ")
        );
        // A distribution's root without its database is an error; a root with no distribution at all
        // (an image built FROM scratch, a static binary and its files) simply has no OS packages.
        let distribution = ["/etc/os-release", "/usr/lib/os-release"].iter().any(|p| scope.root.open_file(p).is_ok());
        if distribution {
            out.error(C, None, &message);
        } else {
            out.absent(C, None, &message);
        }
    }
}

/// Adds a package's owned path to `package_files` and to the owners map
/// (see [`super::owners`]: 12 bytes a path, aliases found by lookup). Past the table's
/// limits (see [`Sink`]) the owners map stops growing with it.
/// The package name is shared by all its paths in the map (a long name must
/// not be copied once per file).
fn own(out: &mut Sink, manager: &str, package: &Arc<str>, path: &str, aliases: &[(String, String)]) {
    if path.is_empty() || path == "/." || path == "/" {
        return;
    }
    let row = [("manager", manager.into()), ("package", (&**package).into()), ("path", path.into())];
    if !out.try_row(&PACKAGE_FILES, &row) {
        return;
    }
    out.owners.insert(path, package, aliases);
}

/// [`own`] for a Python distribution's own file list: the path is the
/// package's in `package_files` and owned for `unowned_files`, but kept apart
/// from the OS packages' owners (see [`Sink::app_owners`]): an application
/// package or an ELF file inside a pip package has no OS owner, and
/// `embedded_libraries` still scans a wheel's compiled extensions.
pub(crate) fn own_app(out: &mut Sink, manager: &str, package: &Arc<str>, path: &str, aliases: &[(String, String)]) {
    if path.is_empty() || path == "/." || path == "/" {
        return;
    }
    let row = [("manager", manager.into()), ("package", (&**package).into()), ("path", path.into())];
    if out.try_row(&PACKAGE_FILES, &row) {
        out.app_owners.insert(path, package, aliases);
    }
}

fn dpkg_row(out: &mut Sink, p: &DpkgPackage, db_path: &str) {
    out.row(
        &PACKAGES,
        &[
            ("manager", "dpkg".into()),
            ("name", (&p.name).into()),
            ("version", p.version.as_ref().into()),
            ("architecture", p.architecture.as_ref().into()),
            ("source", p.source.as_ref().into()),
            ("source_version", p.source_version.as_ref().into()),
            ("status", p.status.as_ref().into()),
            ("maintainer", p.maintainer.as_ref().into()),
            ("installed_size", p.installed_size.into()),
            ("db_path", db_path.into()),
            ("location", db_path.into()),
            ("description", p.description.as_ref().into()),
            ("url", p.homepage.as_ref().into()),
        ],
    );
}

fn not_installed_row(out: &mut Sink, p: &DpkgPackage, db_path: &str) {
    out.row(
        &PACKAGES_NOT_INSTALLED,
        &[
            ("manager", "dpkg".into()),
            ("name", (&p.name).into()),
            ("version", p.version.as_ref().into()),
            ("architecture", p.architecture.as_ref().into()),
            ("status", p.status.as_ref().into()),
            ("db_path", db_path.into()),
        ],
    );
}

/// Paths from a dpkg file list: `info/<pkg>.list` (absolute paths) or a
/// distroless `<pkg>.md5sums` ("<md5>  <relative path>"), shown as walked
/// paths are (see [`display_name`]) so that a non-UTF-8 name is owned under
/// the name the walk gives it. Each line becomes text on its own.
fn list_paths(bytes: &[u8], md5sums: bool) -> impl Iterator<Item = String> + '_ {
    super::parse::lines(bytes).filter_map(move |l| {
        let p = if md5sums { l.windows(2).position(|w| w == b"  ").map(|i| &l[i + 2..])? } else { l };
        let p = p.trim_ascii_end();
        if p.is_empty() {
            None
        } else if p.starts_with(b"/") {
            Some(display_name(p))
        } else {
            Some(format!("/{}", display_name(p)))
        }
    })
}

/// The problems of a parse as `crawl_errors` rows of `path`.
fn parse_errors(out: &mut Sink, path: &str, errors: Vec<super::parse::StanzaError>) {
    for e in errors {
        out.error(C, Some(path), &format!("line {}: {}", e.line, e.message));
    }
}

/// Streams a dpkg status file through [`StatusParser`], 64 KiB at a time:
/// `each` gets every package as its stanza ends, and the file is never
/// whole in memory (a 256 MB status cost its size and more). The parse's
/// problems come back whether or not the read ended well; a read that
/// failed part way makes no package of the stanza it cut short.
fn stream_status(
    root: &crate::rootfs::Root,
    path: &str,
    late: &mut dyn FnMut() -> bool,
    each: &mut dyn FnMut(DpkgPackage),
) -> (Vec<super::parse::StanzaError>, Result<(), crate::rootfs::ReadError>) {
    let mut deadline = Deadline::new(late);
    let mut parser = StatusParser::new(&mut deadline);
    match root.stream_until(path, u64::MAX, |chunk| parser.feed(chunk, each)) {
        Ok(_) => (parser.finish(each), Ok(())),
        Err(e) => (parser.abort(), Err(e)),
    }
}

fn dpkg(scope: &Scope, out: &mut Sink, aliases: &[(String, String)], late: &mut dyn FnMut() -> bool) -> bool {
    let root = &scope.root;
    let mut found = false;
    // A file list is read once, for the first stanza that names it:
    // repeated stanzas must not make one list's rows again each time, nor
    // lists hard-linked to one file (130 links to a 16 MB list cost 63 s).
    // Once package_files is full, lists are not read at all.
    let mut lists_read = HashSet::new();
    let mut files_read = HashSet::new();
    let mut later = super::ReadErrors::default();
    let (errors, streamed) = stream_status(root, DPKG_STATUS, late, &mut |p| {
        if !p.is_installed() {
            not_installed_row(out, &p, DPKG_STATUS);
            return;
        }
        dpkg_row(out, &p, DPKG_STATUS);
        let mut candidates = vec![format!("{DPKG_INFO}/{}.list", p.name)];
        if let Some(arch) = &p.architecture {
            candidates.push(format!("{DPKG_INFO}/{}:{arch}.list", p.name));
        }
        for list in candidates {
            if lists_read.contains(&list) || out.is_full(&PACKAGE_FILES) {
                break;
            }
            match root.read_limited_once(&list, LIST_MAX_BYTES, &mut files_read) {
                // Another link to a list already read.
                Ok(None) => {
                    lists_read.insert(list);
                    break;
                }
                Ok(Some(b)) => {
                    let name: Arc<str> = p.name.as_str().into();
                    for path in list_paths(&b, false) {
                        own(out, "dpkg", &name, &path, aliases);
                    }
                    lists_read.insert(list);
                    break;
                }
                Err(e) if e.is_not_found() => continue,
                Err(e) => {
                    later.push(list, e);
                    break;
                }
            }
        }
    });
    match streamed {
        Ok(()) => {
            found = true;
            parse_errors(out, DPKG_STATUS, errors);
            later.report(out, C);
        }
        Err(e) if e.is_not_found() => {}
        Err(e) => {
            found = true;
            parse_errors(out, DPKG_STATUS, errors);
            later.report(out, C);
            out.error(C, Some(DPKG_STATUS), &format!("dpkg database unreadable: {e}"));
        }
    }
    // Distroless images: one stanza per file in status.d, file lists in <name>.md5sums.
    match root.list_dir(DPKG_STATUS_D) {
        Ok(names) => {
            found = true;
            for name in names {
                let name = String::from_utf8_lossy(&name).into_owned();
                if name.ends_with(".md5sums") || name.starts_with('.') {
                    continue;
                }
                let path = format!("{DPKG_STATUS_D}/{name}");
                // Distroless stanzas usually carry no Status line: present means installed.
                let (mut installed, mut owner) = (0usize, None::<String>);
                let (errors, streamed) = stream_status(root, &path, late, &mut |p| {
                    if p.status.is_some() && !p.is_installed() {
                        not_installed_row(out, &p, &path);
                        return;
                    }
                    dpkg_row(out, &p, &path);
                    installed += 1;
                    owner.get_or_insert(p.name);
                });
                parse_errors(out, &path, errors);
                if let Err(e) = streamed {
                    out.read_error(C, &path, &e);
                    continue;
                }
                // One stanza per file, one file list per file: its files belong
                // to that stanza's package, read once however many stanzas the file has.
                let Some(owner) = owner else { continue };
                if installed > 1 {
                    let msg = format!(
                        "{installed} installed stanzas in one status.d file; its {name}.md5sums is read once, as {}'s",
                        super::parse::truncate(&owner, 80)
                    );
                    out.error(C, Some(&path), &msg);
                }
                let sums = format!("{DPKG_STATUS_D}/{name}.md5sums");
                match root.read_limited(&sums, LIST_MAX_BYTES) {
                    Ok(b) => {
                        let name: Arc<str> = owner.as_str().into();
                        for f in list_paths(&b, true) {
                            own(out, "dpkg", &name, &f, aliases);
                        }
                    }
                    Err(e) if e.is_not_found() => {}
                    Err(e) => out.read_error(C, &sums, &e),
                }
            }
        }
        Err(e) if e.is_not_found() => {}
        Err(e) => {
            found = true;
            out.read_error(C, DPKG_STATUS_D, &e);
        }
    }
    found
}

fn apk(scope: &Scope, out: &mut Sink, aliases: &[(String, String)], late: &mut dyn FnMut() -> bool) -> bool {
    // Its size bounds the paths its parser makes (see `apk::PathBudget`).
    let len = match scope.root.stamp(APK_INSTALLED) {
        Ok((stamp, _)) => usize::try_from(stamp[2]).unwrap_or(0),
        Err(e) if e.is_not_found() => return false,
        Err(e) => {
            out.error(C, Some(APK_INSTALLED), &format!("apk database unreadable: {e}"));
            return true;
        }
    };
    // Parsed as it is read, each package's rows made as its stanza ends: a
    // database read whole cost its size, and its packages' paths four times
    // that, before the first row.
    let mut deadline = Deadline::new(late);
    let mut parser = super::apk::InstalledParser::new(len, &mut deadline);
    let mut row = |p: super::apk::ApkPackage| apk_rows(out, &p, aliases);
    let read = scope.root.stream_until(APK_INSTALLED, u64::MAX, |chunk| parser.feed(chunk, &mut row));
    // A read that failed part way (the scope's byte budget, EIO, a file
    // grown past max_file_bytes) cut the last package short: it makes no row.
    let errors = match &read {
        Ok(_) => parser.finish(&mut row),
        Err(_) => parser.abort(),
    };
    if let Err(e) = read {
        if e.is_not_found() {
            return false;
        }
        out.error(C, Some(APK_INSTALLED), &format!("apk database unreadable: {e}"));
    }
    parse_errors(out, APK_INSTALLED, errors);
    true
}

fn apk_rows(out: &mut Sink, p: &super::apk::ApkPackage, aliases: &[(String, String)]) {
    out.row(
        &PACKAGES,
        &[
            ("manager", "apk".into()),
            ("name", (&p.name).into()),
            ("version", (&p.version).into()),
            ("architecture", p.arch.as_ref().into()),
            ("source", p.origin.as_ref().or(Some(&p.name)).into()),
            ("source_version", (&p.version).into()),
            ("status", "installed".into()),
            ("maintainer", p.maintainer.as_ref().into()),
            ("installed_size", p.installed_size.into()),
            ("license", p.license.as_ref().into()),
            ("db_path", APK_INSTALLED.into()),
            ("location", APK_INSTALLED.into()),
            ("description", p.description.as_ref().into()),
            ("url", p.url.as_ref().into()),
            ("commit", p.commit.as_ref().into()),
            ("package_size", p.size.into()),
        ],
    );
    let name: Arc<str> = p.name.as_str().into();
    for f in &p.files {
        own(out, "apk", &name, f, aliases);
    }
}

/// rpm's [E:]V-R, the string its ordering compares.
pub fn rpm_evr(p: &RpmPackage) -> String {
    match p.epoch {
        Some(e) => format!("{e}:{}-{}", p.version, p.release),
        None => format!("{}-{}", p.version, p.release),
    }
}

fn rpm_dbs(scope: &Scope, out: &mut Sink, aliases: &[(String, String)]) -> bool {
    /// Each format is read from the file, never into a buffer of its size: sqlite a page at a time
    /// through a read-only VFS, BerkeleyDB and NDB a page or a blob at a time. Each package's rows
    /// are made as it is read, so a database costs one header at a time.
    type Reader = fn(rpm::FileSource, &mut rpm::Work, rpm::Each) -> Vec<String>;
    const FORMATS: &[(&str, Reader)] = &[
        ("rpmdb.sqlite", |src, work, each| rpm::read_sqlite_from(src, work, each)),
        ("Packages.db", |src, work, each| rpm::read_ndb_from(&src, work, each)),
        ("Packages", |src, work, each| rpm::read_bdb_from(&src, work, each)),
    ];
    let mut seen = HashSet::new();
    let mut found = false;
    for dir in RPM_DIRS {
        for (file, read) in FORMATS {
            let path = format!("{dir}/{file}");
            match scope.root.file_id(&path) {
                Ok(id) if !seen.insert(id) => continue, // same file through a symlinked directory
                Ok(_) => {}
                Err(e) if e.is_not_found() => continue,
                Err(e) => {
                    found = true;
                    out.read_error(C, &path, &e);
                    continue;
                }
            }
            found = true;
            let deadline = Some(scope.root.deadline());
            let (file, len) = match scope.root.open_sized(&path) {
                Ok(f) => f,
                Err(e) => {
                    out.error(C, Some(&path), &format!("rpm database unreadable: {e}"));
                    continue;
                }
            };
            let mut work = rpm::Work::new(usize::try_from(len).unwrap_or(usize::MAX), deadline);
            let errors = read(rpm::FileSource { file, len }, &mut work, &mut |_, p| rpm_rows(out, &p, &path, aliases));
            for e in errors {
                out.error(C, Some(&path), &e);
            }
        }
    }
    found
}

fn rpm_rows(out: &mut Sink, p: &RpmPackage, path: &str, aliases: &[(String, String)]) {
    let evr = rpm_evr(p);
    let source = p.source_rpm.as_deref().map(source_name);
    out.row(
        &PACKAGES,
        &[
            ("manager", "rpm".into()),
            ("name", (&p.name).into()),
            ("version", evr.as_str().into()),
            ("architecture", p.arch.as_ref().into()),
            ("source", source.flatten().into()),
            ("source_version", p.source_rpm.as_ref().into()),
            ("status", "installed".into()),
            ("maintainer", Value::Null),
            ("installed_size", p.size.into()),
            ("epoch", p.epoch.into()),
            ("release", (&p.release).into()),
            ("license", p.license.as_ref().into()),
            ("vendor", p.vendor.as_ref().into()),
            ("install_time", p.install_time.map(|t| Value::Int(t.saturating_mul(1_000_000))).unwrap_or(Value::Null)),
            ("db_path", path.into()),
            ("location", path.into()),
        ],
    );
    let name: Arc<str> = p.name.as_str().into();
    for f in &p.files {
        own(out, "rpm", &name, f, aliases);
    }
}

/// The source package name from a source rpm file name: `bash-5.1.8-9.el9.src.rpm` → `bash`.
fn source_name(srpm: &str) -> Option<&str> {
    let base = srpm.strip_suffix(".rpm")?;
    let base = base.rsplit_once('.').map(|(b, _arch)| b)?; // drop ".src"/".nosrc"
    let (nv, _release) = base.rsplit_once('-')?;
    let (name, _version) = nv.rsplit_once('-')?;
    Some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_rpm_names() {
        for (srpm, name) in [
            ("bash-5.1.8-9.el9.src.rpm", Some("bash")),
            ("python3-pip-21.3.1-1.fc36.src.rpm", Some("python3-pip")),
            ("x.src.rpm", None),
            ("", None),
        ] {
            assert_eq!(source_name(srpm), name, "{srpm}");
        }
    }

    #[test]
    fn evr_keeps_epoch_zero_apart_from_none() {
        let mut p = RpmPackage { version: "1.0".into(), release: "2".into(), ..Default::default() };
        assert_eq!(rpm_evr(&p), "1.0-2");
        p.epoch = Some(0);
        assert_eq!(rpm_evr(&p), "0:1.0-2");
    }

    /// The rpm sqlite CPU bomb through the collector: every row of Packages
    /// shares one stored blob. The database yields no more headers than its
    /// bytes hold, says why, and the rest of the crawl still arrives.
    #[test]
    fn an_rpmdb_whose_rows_share_one_blob_costs_what_the_file_holds() {
        use crate::collectors::rpm::testutil::{fat_package_blob, sqlite_default_bomb};
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("var/lib/rpm")).unwrap();
        std::fs::create_dir_all(tmp.path().join("etc")).unwrap();
        std::fs::write(tmp.path().join("etc/os-release"), "ID=fedora\n").unwrap();
        let blob = fat_package_blob(4000, 40);
        let db = sqlite_default_bomb(&blob, 5000);
        std::fs::write(tmp.path().join("var/lib/rpm/rpmdb.sqlite"), &db).unwrap();
        let opts = crate::crawl::CrawlOptions { root: tmp.path().into(), ..Default::default() };
        let c = crate::crawl::crawl(&opts).unwrap();
        let rows = |t: &str| c.batches.rows_of(periscope_proto::tables::TABLES.iter().find(|x| x.name == t).unwrap());
        let most = (db.len() as u64 + rpm::SLACK) / blob.len() as u64;
        assert!(rows("packages") as u64 <= most, "{} packages from a {}-byte file", rows("packages"), db.len());
        assert!(rows("package_files") as u64 <= most * 4000);
        let mut text = Vec::new();
        crate::print::print_json_lines(&c.batches.to_vec(), &mut text).unwrap();
        let errors = String::from_utf8(text).unwrap();
        assert!(errors.contains("bytes per database"), "{errors}");
        assert_eq!(rows("os"), 1);
    }

    /// A long package name owning many files used to be copied into the
    /// owners map once per file (half the peak of a long-name row bomb).
    #[test]
    fn the_owners_map_shares_one_copy_of_a_package_name() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().join("var/lib/dpkg/status.d");
        std::fs::create_dir_all(&d).unwrap();
        let name = "n".repeat(10_000);
        std::fs::write(d.join("x"), format!("Package: {name}\nVersion: 1\n")).unwrap();
        let sums: String = (0..1000).map(|i| format!("d41d8cd98f00b204e9800998ecf8427e  f{i}\n")).collect();
        std::fs::write(d.join("x.md5sums"), sums).unwrap();
        let common =
            crate::encode::Common { host: "h".into(), scope: "image".into(), scope_id: "x".into(), crawl_time_us: 0 };
        let root = crate::rootfs::Root::open(tmp.path()).unwrap();
        let scope = Scope { common: common.clone(), root, config: Default::default(), app_files: Default::default() };
        let mut sink = Sink::new(common);
        collect(&scope, &mut sink);
        assert_eq!(sink.owners.len(), 1000);
        let owners: Vec<&Arc<str>> = (0..1000).filter_map(|i| sink.owner(&format!("/f{i}"), &[])).collect();
        assert_eq!(owners.len(), 1000);
        assert!(owners.iter().all(|o| Arc::ptr_eq(o, owners[0]) && o.len() == 10_000));
    }

    /// A database read that fails part way (here the scope's byte budget,
    /// charged per 64 KiB chunk, runs out after the first chunk) used to make
    /// a row of the package the failure cut short, with its version cut
    /// too; dpkg's dropped the problems of the stanzas read before it.
    #[test]
    fn a_database_read_cut_short_makes_no_row_of_its_last_package() {
        let chunk = 64 << 10;
        for (file, bad, stanza, last, rest) in [
            (
                "var/lib/dpkg/status",
                "Version: 0\n\n",
                "Package: p\nStatus: install ok installed\nVersion: 1\n\n",
                "Package: last\nStatus: install ok installed\nVersion: 1.2",
                ".3-1\n\n",
            ),
            (
                "var/lib/dpkg/status.d/x",
                "Version: 0\n\n",
                "Package: p\nVersion: 1\n\n",
                "Package: last\nVersion: 1.2",
                ".3-1\n\n",
            ),
            ("lib/apk/db/installed", "?\n", "P:p\nV:1\n\n", "P:last\nV:1.2", ".3-r0\n\n"),
        ] {
            let mut text = bad.to_string();
            while text.len() + stanza.len() + last.len() < chunk {
                text.push_str(stanza);
            }
            text.push_str(&"\n".repeat(chunk - text.len() - last.len()));
            text.push_str(last);
            assert_eq!(text.len(), chunk);
            text.push_str(rest);
            text.push_str(&stanza.repeat(1000));
            let tmp = tempfile::tempdir().unwrap();
            let path = tmp.path().join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, text).unwrap();
            let common = crate::encode::Common {
                host: "h".into(),
                scope: "image".into(),
                scope_id: "x".into(),
                crawl_time_us: 0,
            };
            let budgets = crate::rootfs::Budgets { max_total_bytes: chunk as u64 + 1, ..Default::default() };
            let root = crate::rootfs::Root::with_budgets(tmp.path(), budgets).unwrap();
            let scope =
                Scope { common: common.clone(), root, config: Default::default(), app_files: Default::default() };
            let mut sink = Sink::new(common);
            if file.contains("apk") {
                assert!(apk(&scope, &mut sink, &[], &mut || false));
            } else {
                assert!(dpkg(&scope, &mut sink, &[], &mut || false));
            }
            let mut out = Vec::new();
            crate::print::print_json_lines(&sink.finish(), &mut out).unwrap();
            let out = String::from_utf8(out).unwrap();
            assert!(out.contains("\"p\""), "{file}: {out}");
            assert!(!out.contains("\"last\""), "{file}: a row of the package cut short: {out}");
            assert!(out.contains("total bytes read over"), "{file}: {out}");
            assert!(out.contains("line 1: "), "{file}: the earlier stanza's problem is lost: {out}");
        }
    }

    #[test]
    fn list_files() {
        let l: Vec<_> = list_paths(b"/.\n/usr\n/usr/bin/x\n\n", false).collect();
        assert_eq!(l, ["/.", "/usr", "/usr/bin/x"]);
        let m: Vec<_> = list_paths(b"d41d8cd98f00b204e9800998ecf8427e  usr/lib/libz.so.1\nbad\n", true).collect();
        assert_eq!(m, ["/usr/lib/libz.so.1"]);
        // Non-UTF-8 names as the walk shows them.
        let x: Vec<_> = list_paths(b"/usr/bin/a\xffb\n", false).collect();
        assert_eq!(x, ["/usr/bin/a\\xffb"]);
    }

    /// Issue 24: the dpkg (status and status.d) and apk parsers ran to the
    /// end of any database, whatever the scope's deadline (only rpm's
    /// readers checked it), so a scope that was given up kept a core busy.
    /// They now ask at every stanza. Told the time is up from the 6th
    /// question on (the questions are counted, not timed), the collector
    /// stops there, keeps what it read and says why.
    #[test]
    fn text_databases_stop_at_the_scopes_deadline() {
        for (file, stanza) in [
            ("var/lib/dpkg/status", "Package: p{}\nStatus: install ok installed\nVersion: 1\n\n"),
            ("var/lib/dpkg/status.d/big", "Package: p{}\nVersion: 1\n\n"),
            ("lib/apk/db/installed", "P:p{}\nV:1\nF:usr/bin\nR:p{}\n\n"),
        ] {
            let tmp = tempfile::tempdir().unwrap();
            let path = tmp.path().join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, (0..1000).map(|i| stanza.replace("{}", &i.to_string())).collect::<String>()).unwrap();
            let common = crate::encode::Common {
                host: "h".into(),
                scope: "image".into(),
                scope_id: "x".into(),
                crawl_time_us: 0,
            };
            let root = crate::rootfs::Root::open(tmp.path()).unwrap();
            let scope =
                Scope { common: common.clone(), root, config: Default::default(), app_files: Default::default() };
            let mut sink = Sink::new(common);
            let mut asked = 0;
            collect_until(&scope, &mut sink, &mut || {
                asked += 1;
                asked > 5
            });
            let batches = sink.finish();
            let packages: usize =
                batches.iter().filter(|b| crate::crawl::table_of(b).name == "packages").map(|b| b.num_rows()).sum();
            let mut text = Vec::new();
            crate::print::print_json_lines(&batches, &mut text).unwrap();
            let text = String::from_utf8(text).unwrap();
            assert!((1..=5).contains(&packages), "{file}: {packages} packages of 1000 read past the deadline");
            assert_eq!(asked, 6, "{file}");
            assert!(text.contains("wall time budget ran out"), "{file}: {text}");
        }
    }
}
