//! `packages` with manager `pypi`: Python distributions installed anywhere in
//! the root — `*.dist-info/METADATA` (wheels installed by pip, into system
//! site-packages, /usr/local, virtualenvs, `--target` trees) and
//! `*.egg-info/PKG-INFO` or a `*.egg-info` file (setuptools installs,
//! Debian's python3-* packages) — as `importlib.metadata` finds them.
//!
//! The whole root is walked once for all application collectors (see
//! [`super::app_files`]: never through a symlink, so a looping or escaping
//! `*.dist-info` link is not followed; pseudo-filesystems and the runtimes'
//! storage aside), within the scope's entry, depth and time budgets. Only the metadata's
//! headers are read: up to the first blank line, at most [`MAX_HEADER_BYTES`];
//! a header block longer than that is a `crawl_errors` row, and the package
//! is still reported from the complete header lines before the cut. Each row
//! names its metadata file (`location`), its Package URL as syft and the purl
//! spec write it (`pkg:pypi/<PEP 503 name>@<version>`), and the OS package
//! whose file list holds that file (`owner_package`), so Debian's
//! python3-requests appears once as dpkg and once as pypi owned by it.
//!
//! A distribution no OS package owns lists its files too, as pip and
//! `importlib.metadata` read them: a dist-info's `RECORD` (paths relative to
//! the site directory, `../../../bin/flask` for a console script), an
//! egg-info's `installed-files.txt` (relative to the egg-info), at most
//! [`MAX_FILE_LIST_BYTES`] each. Each path, resolved lexically (nothing is
//! opened), becomes a `package_files` row of manager `pypi` and is owned for
//! `unowned_files` (not as an OS package's: see [`super::Sink::app_owners`]):
//! pip's console scripts and compiled extensions are then no longer unowned
//! files.

use periscope_proto::tables::PACKAGES;
use rustix::fs::FileType;

use super::{Scope, Sink, usrmerge_aliases};
use crate::rootfs::Entry;

const C: &str = "python";

/// Bytes of a metadata file read to find the end of its headers.
pub const MAX_HEADER_BYTES: u64 = 1 << 20;
/// Bytes of a `RECORD` or `installed-files.txt` read (a large distribution's: ~1 MB).
pub const MAX_FILE_LIST_BYTES: u64 = 4 << 20;
/// First read: most header blocks end within it, and the body (a README) is not read.
const FIRST_READ: u64 = 64 << 10;

/// Where Python environments live in practice, for change detection: the
/// interpreters' own trees, and the places images put applications and
/// virtualenvs. `collect` reads the whole root, but a container is re-read
/// (rather than sharing its image's rows, see [`crate::inherit`]) and the
/// daemon's fingerprint is taken only for changes here: Docker's own changes
/// to every running container (/etc/hosts, /dev, /proc) must not make every
/// container re-read `packages`. A container that installs packages in its
/// own layer somewhere else is, for now, shown with its image's.
pub const INPUTS: &[&str] = &[
    "/usr/lib/python*",
    "/usr/lib64/python*",
    "/usr/local/lib/python*",
    "/usr/local/lib64/python*",
    "/usr/share/python*",
    "/usr/src",
    "/opt",
    "/app",
    "/srv",
    "/home",
    "/root",
    "/var/www",
    "/var/lib",
    "/venv",
    "/code",
    "/workspace",
    "/src",
    "/data",
];

/// [`INPUTS`], as a collector declares them.
pub fn inputs(_: &super::CollectorConfig) -> Vec<String> {
    INPUTS.iter().map(|s| s.to_string()).collect()
}

/// The headers of a METADATA / PKG-INFO file that `packages` keeps.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Metadata {
    pub name: String,
    pub version: String,
    pub summary: Option<String>,
    pub license: Option<String>,
    pub home_page: Option<String>,
    pub project_urls: Vec<String>,
    pub author: Option<String>,
    /// The header block did not end within the bytes given.
    pub cut: bool,
}

impl Metadata {
    /// The project's URL: Home-page, else the Project-URL labelled as a home
    /// page, else the first Project-URL.
    pub fn url(&self) -> Option<&str> {
        if let Some(h) = self.home_page.as_deref().filter(|h| !h.is_empty() && *h != "UNKNOWN") {
            return Some(h);
        }
        let urls: Vec<(String, &str)> = self
            .project_urls
            .iter()
            .map(|p| match p.split_once(',') {
                Some((label, url)) => {
                    (label.chars().filter(char::is_ascii_alphanumeric).collect::<String>().to_lowercase(), url.trim())
                }
                None => (String::new(), p.trim()),
            })
            .filter(|(_, u)| !u.is_empty())
            .collect();
        // Labels as PyPI's well-known list spells them, home page first.
        for want in [&["homepage", "home"][..], &["source", "sourcecode", "code", "repository", "github"]] {
            if let Some((_, u)) = urls.iter().find(|(l, _)| want.contains(&l.as_str())) {
                return Some(u);
            }
        }
        urls.first().map(|(_, u)| *u)
    }
}

/// The headers [`parse_headers`] keeps: those [`Metadata`] is made of.
const USED: &[&str] = &[
    "Name",
    "Version",
    "Summary",
    "License-Expression",
    "License",
    "Home-page",
    "Project-URL",
    "Maintainer-email",
    "Maintainer",
    "Author-email",
    "Author",
];
/// Project-URL headers kept (real packages list a handful).
const MAX_PROJECT_URLS: usize = 64;

/// Parses the header block of core metadata (RFC 822 style: `Key: value`,
/// continuation lines start with a blank, the block ends at the first empty
/// line). `truncated` says the bytes are a prefix of a longer file: a last
/// line without its end is then not trusted. Err when Name or Version is missing.
pub fn parse_headers(bytes: &[u8], truncated: bool) -> Result<Metadata, String> {
    let text = String::from_utf8_lossy(bytes);
    let mut fields: Vec<(&str, String)> = Vec::new();
    let (mut keeping, mut urls) = (false, 0);
    let mut ended = false;
    let mut lines = text.split('\n').peekable();
    while let Some(raw) = lines.next() {
        // The last piece has no line end: past a cut, a partial line.
        if lines.peek().is_none() && truncated {
            break;
        }
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.is_empty() {
            ended = true;
            break;
        }
        if line.starts_with([' ', '\t']) {
            if keeping && let Some((_, v)) = fields.last_mut() {
                v.push('\n');
                v.push_str(line.trim());
            }
            continue;
        }
        // Only the headers rows use are kept (a header block of a million
        // other lines made a String each), the first of each, Project-URL up to a cap.
        keeping = false;
        if let Some((k, v)) = line.split_once(':') {
            let k = k.trim();
            let used = USED.iter().any(|u| k.eq_ignore_ascii_case(u));
            let first = !fields.iter().any(|(f, _)| f.eq_ignore_ascii_case(k));
            let url = k.eq_ignore_ascii_case("Project-URL") && urls < MAX_PROJECT_URLS;
            if used && (first || url) {
                urls += usize::from(url);
                fields.push((k, v.trim().to_string()));
                keeping = true;
            }
        }
    }
    let get = |name: &str| {
        fields.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone()).filter(|v| !v.is_empty())
    };
    let name = get("Name").ok_or("no Name header")?;
    let version = get("Version").ok_or("no Version header")?;
    let first_line = |v: String| v.lines().next().map(str::to_string).filter(|l| !l.is_empty() && l != "UNKNOWN");
    Ok(Metadata {
        name,
        version,
        summary: get("Summary").and_then(first_line),
        license: get("License-Expression").or_else(|| get("License")).and_then(first_line),
        home_page: get("Home-page"),
        project_urls: fields
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("Project-URL"))
            .map(|(_, v)| v.clone())
            .collect(),
        author: get("Maintainer-email")
            .or_else(|| get("Maintainer"))
            .or_else(|| get("Author-email"))
            .or_else(|| get("Author"))
            .and_then(first_line),
        cut: !ended && truncated,
    })
}

/// PEP 503's normalized name: lowercase, every run of `-`, `_` and `.` one `-`.
pub fn normalize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut sep = false;
    for c in name.trim().chars() {
        if matches!(c, '-' | '_' | '.') {
            sep = true;
            continue;
        }
        if sep && !out.is_empty() {
            out.push('-');
        }
        sep = false;
        out.extend(c.to_lowercase());
    }
    out
}

/// `pkg:pypi/<normalized name>@<version>`, percent-encoded as syft writes it:
/// everything but ASCII letters, digits, `.-_~` and an epoch's `!` (so a
/// local version's `+` is `%2B`).
pub fn purl(name: &str, version: &str) -> String {
    format!("pkg:pypi/{}@{}", percent(&normalize(name)), percent(version.trim()))
}

fn percent(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'~' | b'!') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Whether a walked entry is a distribution's metadata file.
pub fn is_metadata(e: &Entry) -> bool {
    if e.kind != FileType::RegularFile {
        return false;
    }
    // Decided from the last two names alone: no whole path is made for the root's every file.
    let (Ok(name), Ok(dir)) =
        (std::str::from_utf8(e.path.name()), std::str::from_utf8(e.path.parent().map_or(&b""[..], |p| p.name())))
    else {
        return false;
    };
    (name == "METADATA" && dir.ends_with(".dist-info") && dir.len() > ".dist-info".len())
        || (name == "PKG-INFO" && dir.ends_with(".egg-info") && dir.len() > ".egg-info".len())
        // A single-file egg-info (distutils, old setuptools): PKG-INFO's contents under the directory's name.
        || (name.ends_with(".egg-info") && name.len() > ".egg-info".len())
}

pub fn collect(scope: &Scope, out: &mut Sink) {
    let root = &scope.root;
    let found = super::app_files::take(scope, out, C, |f| &mut f.python);
    let aliases = usrmerge_aliases(root);
    // Metadata files with several names are read once: 2,100 hard links to
    // one 1 MB file spent the collector's 2 GB byte budget (35 s of CPU) and
    // left every package past them unread.
    let mut linked = std::collections::HashMap::new();
    for e in found {
        if let Err(err) = read_one(scope, out, &e, &aliases, &mut linked)
            && err.is_budget()
        {
            out.read_error(C, &e.path.shown(), &err);
            return;
        }
    }
}

fn read_one(
    scope: &Scope,
    out: &mut Sink,
    e: &Entry,
    aliases: &[(String, String)],
    linked: &mut std::collections::HashMap<(u64, u64), Option<Metadata>>,
) -> Result<(), crate::rootfs::ReadError> {
    let path = e.path.shown();
    let m = match linked.get(&(e.dev, e.ino)) {
        Some(Some(m)) => m.clone(),
        Some(None) => return Ok(()), // its problem was reported for its first name
        None => {
            let m = read_metadata(scope, out, e, &path)?;
            if e.nlink > 1 {
                linked.insert((e.dev, e.ino), m.clone());
            }
            match m {
                Some(m) => m,
                None => return Ok(()),
            }
        }
    };
    // Who owns the metadata file (or, for lists that name only directories, its dist-info directory).
    let owner = {
        let dir = path.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
        [path.as_str(), dir].iter().find_map(|p| out.owner(p, aliases)).cloned()
    };
    let purl = purl(&m.name, &m.version);
    out.row(
        &PACKAGES,
        &[
            ("manager", "pypi".into()),
            ("name", m.name.as_str().into()),
            ("version", m.version.as_str().into()),
            ("status", "installed".into()),
            ("maintainer", m.author.as_ref().into()),
            ("license", m.license.as_ref().into()),
            ("db_path", path.as_str().into()),
            ("location", path.as_str().into()),
            ("description", m.summary.as_ref().into()),
            ("url", m.url().into()),
            ("purl", purl.as_str().into()),
            ("owner_package", owner.as_deref().into()),
        ],
    );
    if owner.is_none() {
        own_files(scope, out, &path, &e.path.raw(), &m.name, aliases)?;
    }
    Ok(())
}

/// The metadata a file holds, None when it is unreadable or not metadata
/// (each reported as an error row).
fn read_metadata(
    scope: &Scope,
    out: &mut Sink,
    e: &Entry,
    path: &str,
) -> Result<Option<Metadata>, crate::rootfs::ReadError> {
    use std::os::unix::ffi::OsStrExt;
    let raw = e.path.raw();
    let raw = std::ffi::OsStr::from_bytes(&raw);
    let mut read = |limit| match scope.root.read_prefix(raw, limit) {
        Ok(r) => Ok(Some(r)),
        Err(err) if err.is_budget() => Err(err),
        Err(err) => {
            out.read_error(C, path, &err);
            Ok(None)
        }
    };
    let Some((mut bytes, mut truncated)) = read(FIRST_READ)? else { return Ok(None) };
    if truncated && !has_blank_line(&bytes) {
        let Some(r) = read(MAX_HEADER_BYTES)? else { return Ok(None) };
        (bytes, truncated) = r;
    }
    let m = match parse_headers(&bytes, truncated) {
        Ok(m) => m,
        Err(why) => {
            out.error(C, Some(path), &format!("not a Python package's metadata: {why}"));
            return Ok(None);
        }
    };
    if m.cut {
        let msg = format!(
            "metadata headers longer than {MAX_HEADER_BYTES} bytes: read up to there, the rest of the file is ignored"
        );
        out.error(C, Some(path), &msg);
    }
    Ok(Some(m))
}

/// The files a distribution's own list names (see the module's doc), for a
/// metadata file at `path` (`raw`: its bytes, to read the list beside it).
fn own_files(
    scope: &Scope,
    out: &mut Sink,
    path: &str,
    raw: &[u8],
    name: &str,
    aliases: &[(String, String)],
) -> Result<(), crate::rootfs::ReadError> {
    use std::os::unix::ffi::OsStrExt;
    let (Some((dir, file)), Some(raw_dir)) =
        (path.rsplit_once('/'), raw.iter().rposition(|&b| b == b'/').map(|at| &raw[..at]))
    else {
        return Ok(());
    };
    let (list, base) = match file {
        "METADATA" => ("RECORD", dir.rsplit_once('/').map_or("", |(site, _)| site)),
        "PKG-INFO" => ("installed-files.txt", dir),
        _ => return Ok(()), // a single-file egg-info lists nothing
    };
    let list_raw = [raw_dir, b"/", list.as_bytes()].concat();
    let list_path = format!("{dir}/{list}");
    let (bytes, truncated) = match scope.root.read_prefix(std::ffi::OsStr::from_bytes(&list_raw), MAX_FILE_LIST_BYTES) {
        Ok(r) => r,
        Err(err) if err.is_budget() => return Err(err),
        Err(err) if err.is_not_found() => return Ok(()),
        Err(err) => {
            out.read_error(C, &list_path, &err);
            return Ok(());
        }
    };
    let mut lines = bytes.split(|&b| b == b'\n').collect::<Vec<_>>();
    if truncated {
        lines.pop(); // cut mid-line
        let msg = format!("longer than {MAX_FILE_LIST_BYTES} bytes: the files it names past there are not attributed");
        out.error(C, Some(&list_path), &msg);
    }
    let package: std::sync::Arc<str> = name.into();
    for line in lines {
        let Ok(line) = std::str::from_utf8(line) else { continue };
        let entry =
            if file == "METADATA" { record_path(line.trim_end_matches('\r')) } else { Some(line.trim().into()) };
        if let Some(p) = entry.filter(|p| !p.is_empty()) {
            super::packages::own_app(out, "pypi", &package, &resolve(base, &p), aliases);
        }
    }
    Ok(())
}

/// The path field of a `RECORD` line (CSV: `path,hash,size`, the path quoted
/// when it holds a comma or a quote, `""` standing for a quote).
fn record_path(line: &str) -> Option<std::borrow::Cow<'_, str>> {
    let Some(rest) = line.strip_prefix('"') else {
        return Some(line.split(',').next().unwrap_or("").into());
    };
    let mut out = String::new();
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if chars.peek() == Some(&'"') => {
                chars.next();
                out.push('"');
            }
            '"' => return Some(out.into()),
            c => out.push(c),
        }
    }
    None // no closing quote
}

/// `rel` joined to the directory `base`, `.` and `..` resolved by name alone
/// (`..` stops at the root, as in the root itself).
fn resolve(base: &str, rel: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    let start = if rel.starts_with('/') { "" } else { base };
    for p in start.split('/').chain(rel.split('/')) {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

fn has_blank_line(b: &[u8]) -> bool {
    b.starts_with(b"\n")
        || b.starts_with(b"\r\n")
        || b.windows(2).any(|w| w == b"\n\n")
        || b.windows(3).any(|w| w == b"\n\r\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalized_names_and_purls() {
        for (name, version, want) in [
            ("requests", "2.31.0", "pkg:pypi/requests@2.31.0"),
            ("zope.interface", "6.1", "pkg:pypi/zope-interface@6.1"),
            ("typing_extensions", "4.8.0", "pkg:pypi/typing-extensions@4.8.0"),
            ("Jinja2", "3.1.2", "pkg:pypi/jinja2@3.1.2"),
            ("Foo__-.Bar", "1.0", "pkg:pypi/foo-bar@1.0"),
            ("torch", "2.1.0+cu121", "pkg:pypi/torch@2.1.0%2Bcu121"),
            ("x", "1!2.0", "pkg:pypi/x@1!2.0"),
            ("Foo.Bar_baz", "2.1.0+cu121", "pkg:pypi/foo-bar-baz@2.1.0%2Bcu121"),
            ("x", "1 2", "pkg:pypi/x@1%202"),
        ] {
            assert_eq!(purl(name, version), want, "{name} {version}");
        }
    }

    /// What Docker changes in every running container (bind-mounted /etc
    /// files, /dev, /proc, its init layer) leaves Python packages to the
    /// image; a change where Python environments live does not.
    #[test]
    fn docker_own_changes_leave_python_packages_to_the_image() {
        use crate::inherit::{Change, Plan};
        let tmp = tempfile::tempdir().unwrap();
        let root = crate::rootfs::Root::open(tmp.path()).unwrap();
        let col = crate::collectors::collector("python").unwrap();
        let config = Default::default();
        let inherits = |changes: &[(&str, bool)]| {
            let changes = changes.iter().map(|(p, w)| Change { path: p.to_string(), whole: *w }).collect();
            Plan::new("sha256:x".into(), changes).inherits(col, &root, &config)
        };
        let docker = [
            ("/etc", false),
            ("/etc/hosts", true),
            ("/etc/resolv.conf", true),
            ("/etc/hostname", true),
            ("/etc/mtab", true),
            ("/dev", true),
            ("/proc", true),
            ("/sys", true),
            ("/.dockerenv", true),
            ("/tmp/x", true),
        ];
        assert!(inherits(&docker));
        let pkgs = crate::collectors::collector("packages").unwrap();
        let changes: Vec<Change> = docker.iter().map(|(p, w)| Change { path: p.to_string(), whole: *w }).collect();
        assert!(Plan::new("sha256:x".into(), changes).inherits(pkgs, &root, &config), "packages");
        for p in [
            "/app/venv/lib/python3.11/site-packages/x-1.0.dist-info",
            "/usr/local/lib/python3.12/site-packages/x",
            "/usr/lib/python3/dist-packages/x-1.0.egg-info",
            "/opt/tool",
            "/root/.local",
        ] {
            assert!(!inherits(&[(p, true)]), "{p}");
        }
        assert!(!inherits(&[("/usr/local", true)]), "a whole /usr/local replaced");
    }

    #[test]
    fn record_paths_are_csv_fields_resolved_by_name() {
        assert_eq!(record_path("flask/app.py,sha256=x,123").as_deref(), Some("flask/app.py"));
        assert_eq!(record_path("\"a,b\"\"c.py\",,").as_deref(), Some("a,b\"c.py"));
        assert_eq!(record_path("\"unterminated,").as_deref(), None);
        let site = "/usr/local/lib/python3.11/site-packages";
        assert_eq!(resolve(site, "../../../bin/flask"), "/usr/local/bin/flask");
        assert_eq!(resolve(site, "./x/../y.py"), "/usr/local/lib/python3.11/site-packages/y.py");
        // A list cannot name a path above the root, nor make one relative.
        assert_eq!(resolve(site, "../../../../../../../../etc/passwd"), "/etc/passwd");
        assert_eq!(resolve(site, "/abs/path"), "/abs/path");
    }

    #[test]
    fn headers_stop_at_the_first_blank_line() {
        let text = b"Metadata-Version: 2.1\r\nName: Flask\nVersion: 3.0.0\nSummary: A simple framework\nLicense: BSD\n  second line\nProject-URL: Donate, https://palletsprojects.com/donate\nProject-URL: Source Code, https://github.com/pallets/flask/\n\nName: Body\nVersion: 9\n";
        let m = parse_headers(text, false).unwrap();
        assert_eq!((m.name.as_str(), m.version.as_str()), ("Flask", "3.0.0"));
        assert_eq!(m.summary.as_deref(), Some("A simple framework"));
        assert_eq!(m.license.as_deref(), Some("BSD"));
        assert_eq!(m.url(), Some("https://github.com/pallets/flask/"));
        assert!(!m.cut);
        let m = parse_headers(b"Name: a\nVersion: 1\nHome-page: UNKNOWN\nProject-URL: Homepage, https://h/\n", false)
            .unwrap();
        assert_eq!(m.url(), Some("https://h/"));
        assert!(parse_headers(b"Name: a\n\nVersion: 1\n", false).unwrap_err().contains("Version"));
        assert!(parse_headers(b"", false).is_err());
    }

    #[test]
    fn a_cut_header_block_keeps_its_complete_lines() {
        let text = b"Name: big\nVersion: 1.0\nX-Junk: aaaaaaaaaa";
        let m = parse_headers(text, true).unwrap();
        assert!(m.cut);
        assert_eq!(m.version, "1.0");
        // The partial last line is not trusted: here it would have been the version.
        assert!(parse_headers(b"Name: big\nVersion: 1.0", true).is_err());
    }
}
