//! `packages` with manager `maven`: Java archives (`.jar`, `.war`, `.ear`,
//! and Jenkins plugins `.jpi`/`.hpi`) anywhere in the root, read as zip
//! files through [`super::zip`], never extracted, never run.
//!
//! Each `META-INF/maven/<group>/<artifact>/pom.properties` at an archive's
//! root is one package: `name` is `group:artifact` (Maven's coordinates),
//! `version` its version, `purl` `pkg:maven/<group>/<artifact>@<version>`
//! as syft and the purl spec write it. A shaded jar holds one such file per
//! library it absorbed, and each is reported. An archive with none is
//! reported from its `META-INF/MANIFEST.MF` main section (a fallback, said
//! so in `description`): `Bundle-SymbolicName` (else `Implementation-Title`,
//! else the file name without its version) and `Implementation-Version`
//! (else `Bundle-Version`); no purl, since the manifest names no Maven group
//! and a guessed one would match vulnerability data by accident. An archive
//! with neither says nothing.
//!
//! Archives inside archives — a Spring Boot jar's `BOOT-INF/lib`, a war's
//! `WEB-INF/lib`, an ear's modules, any `*.jar` entry — are read to
//! [`MAX_NESTING`] levels; their `location` is the outer file and the path
//! inside it, Java's way: `/app/app.jar!/BOOT-INF/lib/x.jar`. A stored
//! nested archive (Spring Boot stores them) is read in place; a deflated one
//! is inflated up to [`MAX_NESTED_BYTES`], into memory while small and past
//! [`MAX_NESTED_IN_MEMORY`] into an unlinked temporary file. Each metadata file is
//! inflated up to [`MAX_META_BYTES`] (a manifest only to the end of its main
//! section), and a scope's archives inflate [`MAX_SCOPE_INFLATED`] bytes and
//! read [`MAX_SCOPE_CD_BYTES`] of central directory in all, within the
//! scope's wall time, checked at every archive and entry: a zip bomb, deep
//! nesting, entries that overlap to make one archive read many times, or an
//! archive past a cap is a `crawl_errors` row naming it, and the crawl goes
//! on. A file keeps at most [`MAX_PROBLEMS`] problems and [`MAX_FOUND`] packages.
//!
//! Archives are found by the walk the application collectors share
//! ([`super::app_files`]: no symlink followed, pseudo-filesystems and
//! container runtimes' storage skipped), so Debian's
//! `/usr/share/java/x.jar -> x-1.2.jar` links are read once, at the file
//! they point to.

use std::collections::HashMap;

use periscope_proto::tables::PACKAGES;

use super::zip::{Archive, FileSource, Source, ZipError};
use super::{Scope, Sink, usrmerge_aliases};

pub const C: &str = "java";

/// Archive levels read below a file: ear → war → jar → a jar inside that.
pub const MAX_NESTING: usize = 3;
/// Bytes a deflated nested archive may inflate to (Spring Boot's
/// `BOOT-INF/lib` jars are up to tens of MB).
pub const MAX_NESTED_BYTES: u64 = 32 << 20;
/// Bytes of a deflated nested archive held in memory while it is read; a
/// larger one is inflated into an unlinked temporary file in the spill
/// directory (`rows::spill_file`) and read from there, so [`MAX_NESTING`]
/// levels hold at most 6 MiB at once.
pub const MAX_NESTED_IN_MEMORY: u64 = 2 << 20;
/// Bytes a `pom.properties` or a manifest's main section may inflate to.
pub const MAX_META_BYTES: u64 = 1 << 20;
/// Bytes all archives of a scope may inflate to.
pub const MAX_SCOPE_INFLATED: u64 = 1 << 30;
/// Bytes of central directories all archives of a scope may read: entries
/// that overlap (many names for one stored nested archive) would otherwise
/// have one file's directory read without end.
pub const MAX_SCOPE_CD_BYTES: u64 = 1 << 30;
/// Packages one file (with what is nested in it) may hold before the rest is not read.
pub const MAX_FOUND: usize = 100_000;
/// Problems kept for one file; the rest are counted in one more.
pub const MAX_PROBLEMS: usize = 1000;

/// File name endings of Java archives (compared without case).
pub const EXTENSIONS: &[&str] = &[".jar", ".war", ".ear", ".jpi", ".hpi"];

/// What the collector reads (see [`crate::inherit`]).
pub const INPUTS: &[&str] =
    &["/**/*.jar", "/**/*.war", "/**/*.ear", "/**/*.jpi", "/**/*.hpi", "!/proc/**", "!/sys/**", "!/dev/**", "!/run/**"];

pub fn is_archive_name(name: &[u8]) -> bool {
    name.len() > 4 && EXTENSIONS.iter().any(|x| name[name.len() - 4..].eq_ignore_ascii_case(x.as_bytes()))
}

/// `META-INF/maven/<group>/<artifact>/pom.properties`, at the archive's root.
fn is_pom_properties(name: &[u8]) -> bool {
    let Some(rest) = name.strip_prefix(b"META-INF/maven/") else { return false };
    rest.ends_with(b"/pom.properties") && rest.iter().filter(|&&c| c == b'/').count() == 2
}

fn is_manifest(name: &[u8]) -> bool {
    name.eq_ignore_ascii_case(b"META-INF/MANIFEST.MF")
}

/// One package an archive describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub name: String,
    pub version: String,
    pub purl: Option<String>,
    /// Where inside the outer file (empty for the file itself).
    pub inner: String,
    pub note: Option<String>,
}

/// A Java `.properties` file's keys and values (what Maven writes: `key=value`
/// lines and `#` comments; `:` and blanks also separate, `\` escapes and
/// continues lines, `\uXXXX` is a character).
pub fn parse_properties(text: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut logical = String::new();
    for raw in text.lines() {
        let line = raw.trim_start_matches([' ', '\t', '\x0c']);
        if logical.is_empty() && (line.starts_with('#') || line.starts_with('!')) {
            continue;
        }
        // A line ending in an odd number of backslashes continues on the next.
        let slashes = line.bytes().rev().take_while(|&c| c == b'\\').count();
        if slashes % 2 == 1 {
            logical.push_str(&line[..line.len() - 1]);
            continue;
        }
        logical.push_str(line);
        let l = std::mem::take(&mut logical);
        if l.is_empty() {
            continue;
        }
        let (k, v) = split_property(&l);
        out.insert(unescape(k), unescape(v.trim_start_matches([' ', '\t', '\x0c'])));
    }
    out
}

fn split_property(l: &str) -> (&str, &str) {
    let b = l.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'=' | b':' => return (&l[..i], &l[i + 1..]),
            b' ' | b'\t' | b'\x0c' => {
                let rest = l[i..].trim_start_matches([' ', '\t', '\x0c']);
                let rest = rest.strip_prefix(['=', ':']).unwrap_or(rest);
                return (&l[..i], rest);
            }
            _ => i += 1,
        }
    }
    (l, "")
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match it.next() {
            Some('u') => {
                let hex: String = it.clone().take(4).collect();
                match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                    Some(ch) if hex.len() == 4 => {
                        out.push(ch);
                        it.nth(3);
                    }
                    _ => out.push('u'),
                }
            }
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\x0c'),
            Some(o) => out.push(o),
            None => {}
        }
    }
    out
}

/// A manifest's main section as (header, value) pairs: `Name: value` lines,
/// a line starting with one space continuing the previous value.
pub fn parse_manifest(text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)) {
        if line.is_empty() {
            break;
        }
        if let Some(more) = line.strip_prefix(' ') {
            if let Some((_, v)) = out.last_mut() {
                v.push_str(more);
            }
        } else if let Some((k, v)) = line.split_once(':') {
            out.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    out
}

/// `pkg:maven/<group>/<artifact>@<version>`, each part encoded as syft (packageurl-go) encodes it.
pub fn purl(group: &str, artifact: &str, version: &str) -> String {
    super::binaries::purl("maven", &format!("{group}/{artifact}"), version)
}

/// The package a `pom.properties` names, if it names group, artifact and version.
pub fn from_pom_properties(text: &str) -> Option<(String, String, String)> {
    let p = parse_properties(text);
    let get = |k: &str| p.get(k).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
    Some((get("groupId")?, get("artifactId")?, get("version")?))
}

/// The fallback package a manifest names (see the module doc); `file` is the archive's file name.
pub fn from_manifest(headers: &[(String, String)], file: &str) -> Option<(String, String)> {
    let get = |k: &str| {
        headers.iter().find(|(h, _)| h.eq_ignore_ascii_case(k)).map(|(_, v)| v.trim()).filter(|v| !v.is_empty())
    };
    let version = get("Implementation-Version").or_else(|| get("Bundle-Version"))?;
    // Bundle-SymbolicName may carry OSGi directives: `org.foo.bar;singleton:=true`.
    let name = get("Bundle-SymbolicName")
        .map(|n| n.split(';').next().unwrap_or(n).trim())
        .filter(|n| !n.is_empty())
        .or_else(|| get("Implementation-Title"))
        .map(str::to_string)
        .or_else(|| {
            let stem = file.rsplit('/').next().unwrap_or(file);
            let stem = stem.rsplit_once('.').map_or(stem, |(s, _)| s);
            // `commons-io-2.11.0` → `commons-io`: cut at the first `-` followed by a digit.
            let cut = stem.as_bytes().windows(2).position(|w| w[0] == b'-' && w[1].is_ascii_digit());
            let name = cut.map_or(stem, |i| &stem[..i]);
            (!name.is_empty()).then(|| name.to_string())
        })?;
    Some((name, version.to_string()))
}

/// What reading a scope's archives has cost so far, against its caps.
pub struct Work {
    pub inflated: u64,
    /// [`MAX_SCOPE_INFLATED`], but for tests.
    pub limit: u64,
    /// Bytes of central directories read.
    pub cd_read: u64,
    /// [`MAX_SCOPE_CD_BYTES`], but for tests.
    pub cd_limit: u64,
    /// The scope's wall-time deadline, checked at every archive opened.
    pub deadline: Option<std::time::Instant>,
    /// A limit was reached and said so: the scope's archives are read no further.
    pub stopped: bool,
    /// Problems not kept (past [`MAX_PROBLEMS`] for a file).
    pub dropped: u64,
}

impl Default for Work {
    fn default() -> Self {
        Work {
            inflated: 0,
            limit: MAX_SCOPE_INFLATED,
            cd_read: 0,
            cd_limit: MAX_SCOPE_CD_BYTES,
            deadline: None,
            stopped: false,
            dropped: 0,
        }
    }
}

impl Work {
    /// Whether reading must stop now, before something that says it will
    /// inflate `next` bytes (said once, as a problem at `inner`; later calls only return true).
    fn stop(&mut self, found: usize, next: u64, problems: &mut Vec<Problem>, inner: &str) -> bool {
        if self.stopped {
            return true;
        }
        let why = if self.deadline.is_some_and(|d| std::time::Instant::now() > d) {
            "the scope's wall time ran out; its archives are read no further".to_string()
        } else if self.inflated.saturating_add(next) > self.limit {
            format!(
                "archives of this scope inflated {} bytes (and {next} more next), over the limit of {}; the rest are not read",
                self.inflated, self.limit
            )
        } else if self.cd_read > self.cd_limit {
            format!(
                "archives of this scope read {} bytes of central directory, over the limit of {}; the rest are not read",
                self.cd_read, self.cd_limit
            )
        } else if found >= MAX_FOUND {
            format!("more than {MAX_FOUND} packages in one file; the rest are not read")
        } else {
            return false;
        };
        self.stopped = true;
        problems.push(Problem { inner: inner.to_string(), error: ZipError::Limit(why) });
        true
    }
}

/// A problem inside an archive: where (inside the outer file) and what.
#[derive(Debug)]
pub struct Problem {
    pub inner: String,
    pub error: ZipError,
}

/// Reads one archive (and those nested in it) from `src`: the packages
/// found, and the problems met. `inner` is its path inside the outer file.
pub fn read_archive(
    src: &dyn Source,
    inner: &str,
    file_name: &str,
    depth: usize,
    work: &mut Work,
) -> (Vec<Found>, Vec<Problem>) {
    let mut found = Vec::new();
    let mut problems = Vec::new();
    let dropped = work.dropped;
    scan(src, inner, file_name, depth, work, &mut found, &mut problems);
    if work.dropped > dropped {
        let why = format!("{} more problems in this file were not recorded", work.dropped - dropped);
        problems.push(Problem { inner: inner.to_string(), error: ZipError::Limit(why) });
    }
    (found, problems)
}

fn problem(work: &mut Work, problems: &mut Vec<Problem>, inner: &str, error: ZipError) {
    if problems.len() < MAX_PROBLEMS {
        problems.push(Problem { inner: inner.to_string(), error });
    } else {
        work.dropped += 1;
    }
}

fn scan(
    src: &dyn Source,
    inner: &str,
    file_name: &str,
    depth: usize,
    work: &mut Work,
    found: &mut Vec<Found>,
    problems: &mut Vec<Problem>,
) {
    if work.stop(found.len(), 0, problems, inner) {
        return;
    }
    let archive = match Archive::open(src, &mut |n| is_pom_properties(n) || is_manifest(n) || is_archive_name(n)) {
        Ok(a) => a,
        Err(e) => return problem(work, problems, inner, e),
    };
    work.cd_read += archive.cd_size;
    let before = found.len();
    for e in archive.entries.iter().filter(|e| is_pom_properties(&e.name)) {
        if work.stop(found.len(), e.size.min(MAX_META_BYTES), problems, inner) {
            return;
        }
        match archive.read(e, MAX_META_BYTES, &mut work.inflated) {
            Ok(b) => {
                if let Some((g, a, v)) = from_pom_properties(&String::from_utf8_lossy(&b)) {
                    found.push(Found {
                        purl: Some(purl(&g, &a, &v)),
                        name: format!("{g}:{a}"),
                        version: v,
                        inner: inner.to_string(),
                        note: None,
                    });
                }
            }
            Err(err) => problem(work, problems, inner, err),
        }
    }
    if found.len() == before
        && let Some(m) = archive.entries.iter().find(|e| is_manifest(&e.name))
    {
        match archive.read_head(m, MAX_META_BYTES, &mut work.inflated) {
            Ok((b, cut)) => {
                if cut {
                    let what = "META-INF/MANIFEST.MF main section".to_string();
                    problem(
                        work,
                        problems,
                        inner,
                        ZipError::TooLarge { what, size: MAX_META_BYTES + 1, limit: MAX_META_BYTES },
                    );
                }
                if let Some((name, version)) = from_manifest(&parse_manifest(&String::from_utf8_lossy(&b)), file_name) {
                    let note = Some("from META-INF/MANIFEST.MF (no pom.properties)".to_string());
                    found.push(Found { name, version, purl: None, inner: inner.to_string(), note });
                }
            }
            Err(err) => problem(work, problems, inner, err),
        }
    }
    for e in archive.entries.iter().filter(|e| is_archive_name(&e.name) && !e.name.ends_with(b"/")) {
        let name = e.name_lossy();
        let path = if inner.is_empty() { format!("!/{name}") } else { format!("{inner}!/{name}") };
        if depth >= MAX_NESTING {
            let why = format!("an archive nested {} levels deep is not read (the limit is {MAX_NESTING})", depth + 1);
            problem(work, problems, &path, ZipError::Unsupported(why));
            continue;
        }
        // What the entry says it inflates to counts before it is inflated (a lie is caught as it inflates).
        let next = if e.is_stored() { 0 } else { e.size.min(MAX_NESTED_BYTES) };
        if work.stop(found.len(), next, problems, &path) {
            return;
        }
        if e.is_stored() {
            match archive.window(e) {
                Ok(w) => scan(&w, &path, &name, depth + 1, work, found, problems),
                Err(err) => problem(work, problems, &path, err),
            }
            continue;
        }
        match archive.inflate(
            e,
            MAX_NESTED_BYTES,
            MAX_NESTED_IN_MEMORY,
            &mut work.inflated,
            &mut crate::rows::spill_file,
        ) {
            Ok(inflated) => scan(&inflated, &path, &name, depth + 1, work, found, problems),
            Err(err) => problem(work, problems, &path, err),
        }
    }
}

pub fn collect(scope: &Scope, out: &mut Sink) {
    let candidates = super::app_files::take(scope, out, C, |f| &mut f.java);
    let aliases = usrmerge_aliases(&scope.root);
    let mut work = Work { deadline: Some(scope.root.deadline()), ..Work::default() };
    for e in candidates {
        let path = e.path.shown();
        if let Err(err) = scope.root.check_time(&path) {
            out.read_error(C, &path, &err);
            return;
        }
        if work.stopped {
            // Said where it happened; the files after it are not opened.
            return;
        }
        let (file, len) = match super::binaries::open_entry(scope, &e) {
            Ok(f) => f,
            Err(err) => {
                out.read_error(C, &path, &err);
                if err.is_budget() {
                    return;
                }
                continue;
            }
        };
        let src = FileSource::new(file, len);
        let file_name = String::from_utf8_lossy(e.path.name()).into_owned();
        let (found, problems) = read_archive(&src, "", &file_name, 0, &mut work);
        for p in problems {
            // A file named *.jar that is not a zip at all says so once, like any other problem.
            out.error(C, Some(&format!("{path}{}", p.inner)), &format!("{path}{}: {}", p.inner, p.error));
        }
        if let Err(err) = scope.root.charge_bytes(&path, src.bytes_read()) {
            out.read_error(C, &path, &err);
            return;
        }
        let owner = out.owner(&path, &aliases).cloned();
        for f in found {
            let location = format!("{path}{}", f.inner);
            out.row(
                &PACKAGES,
                &[
                    ("manager", "maven".into()),
                    ("name", f.name.as_str().into()),
                    ("version", f.version.as_str().into()),
                    ("location", location.as_str().into()),
                    ("purl", f.purl.as_deref().into()),
                    ("owner_package", owner.as_deref().into()),
                    ("description", f.note.as_deref().into()),
                ],
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::zip::tests::build;
    use super::*;

    #[test]
    fn pom_properties_as_maven_writes_them() {
        let text = "#Generated by Maven\n#Sat Oct 01 01:48:00 UTC 2025\nartifactId=commons-lang3\ngroupId=org.apache.commons\nversion=3.12.0\n";
        assert_eq!(
            from_pom_properties(text),
            Some(("org.apache.commons".into(), "commons-lang3".into(), "3.12.0".into()))
        );
        let p = parse_properties("a = 1\nb:2\nc 3\n  d=x\\\n   y\ne=\\u0041\\=\\\\\n! comment\nf\n");
        let get = |k: &str| p.get(k).map(String::as_str);
        assert_eq!(
            (get("a"), get("b"), get("c"), get("d"), get("e"), get("f")),
            (Some("1"), Some("2"), Some("3"), Some("xy"), Some("A=\\"), Some(""))
        );
        assert_eq!(from_pom_properties("groupId=g\nartifactId=a\n"), None);
    }

    #[test]
    fn manifest_fallback() {
        let m = parse_manifest(
            "Manifest-Version: 1.0\r\nBundle-SymbolicName: org.foo.bar;singleton:=tr\r\n ue\r\nBundle-Version: 1.2.3\r\n\r\nName: x\r\nImplementation-Version: 9\r\n",
        );
        assert_eq!(m.len(), 3);
        assert_eq!(from_manifest(&m, "bar.jar"), Some(("org.foo.bar".into(), "1.2.3".into())));
        let m = parse_manifest("Implementation-Version: 2.11.0\n");
        assert_eq!(from_manifest(&m, "commons-io-2.11.0.jar"), Some(("commons-io".into(), "2.11.0".into())));
        assert_eq!(from_manifest(&parse_manifest("Implementation-Title: x\n"), "x.jar"), None);
    }

    #[test]
    fn purls_as_syft_writes_them() {
        assert_eq!(
            purl("org.apache.logging.log4j", "log4j-core", "2.19.0"),
            "pkg:maven/org.apache.logging.log4j/log4j-core@2.19.0"
        );
        assert_eq!(purl("g", "a", "1.0+x"), "pkg:maven/g/a@1.0%2Bx");
    }

    #[test]
    fn shaded_and_nested_archives_to_the_nesting_limit() {
        let pom = |g: &str, a: &str, v: &str| format!("groupId={g}\nartifactId={a}\nversion={v}\n").into_bytes();
        let lib = build(&[("META-INF/maven/g/lib/pom.properties", &pom("g", "lib", "1"), true)], b"");
        let shaded = build(
            &[
                ("META-INF/maven/g/app/pom.properties", &pom("g", "app", "2"), true),
                ("META-INF/maven/h/absorbed/pom.properties", &pom("h", "absorbed", "3"), false),
                ("META-INF/maven/x/not-at-root/extra/pom.properties", &pom("x", "no", "0"), true),
                ("BOOT-INF/lib/lib-1.jar", &lib, false),
                ("WEB-INF/lib/lib-1.jar", &lib, true),
            ],
            b"",
        );
        let mut work = Work::default();
        let (found, problems) = read_archive(&shaded, "", "app.jar", 0, &mut work);
        assert!(problems.is_empty(), "{problems:?}");
        let got: Vec<(String, String, String)> =
            found.iter().map(|f| (f.name.clone(), f.version.clone(), f.inner.clone())).collect();
        assert_eq!(
            got,
            [
                ("g:app".into(), "2".into(), "".into()),
                ("h:absorbed".into(), "3".into(), "".into()),
                ("g:lib".into(), "1".into(), "!/BOOT-INF/lib/lib-1.jar".into()),
                ("g:lib".into(), "1".into(), "!/WEB-INF/lib/lib-1.jar".into()),
            ]
        );
        // Nested deeper than the limit: what is within it is read, the rest is a problem.
        let mut z = lib.clone();
        for i in 0..5 {
            z = build(&[(&format!("l{i}.jar"), &z, i % 2 == 0)], b"");
        }
        let (found, problems) = read_archive(&z, "", "deep.jar", 0, &mut Work::default());
        assert!(found.is_empty());
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].inner, "!/l4.jar!/l3.jar!/l2.jar!/l1.jar");
        assert!(problems[0].error.to_string().contains("nested 4 levels deep"), "{}", problems[0].error);
    }

    /// Deflated nested archives count against the scope's inflation cap:
    /// once past it, the rest of the archive is a problem, not read.
    #[test]
    fn the_scopes_inflation_cap_stops_the_reading() {
        let pom = b"groupId=g\nartifactId=a\nversion=1\n".to_vec();
        let lib = build(&[("META-INF/maven/g/a/pom.properties", &pom, true)], b"");
        let entries: Vec<(String, Vec<u8>)> = (0..10).map(|i| (format!("lib{i}.jar"), lib.clone())).collect();
        let refs: Vec<(&str, &[u8], bool)> = entries.iter().map(|(n, b)| (n.as_str(), &b[..], true)).collect();
        let outer = build(&refs, b"");
        let mut work = Work { limit: 3 * lib.len() as u64, ..Work::default() };
        let (found, problems) = read_archive(&outer, "", "outer.jar", 0, &mut work);
        assert!((2..=4).contains(&found.len()), "{found:?}");
        assert!(problems.last().unwrap().error.to_string().contains("archives of this scope inflated"), "{problems:?}");
    }

    /// Many central directory entries naming one stored nested archive (its
    /// bytes overlapping): each name reads that archive's directory again, so
    /// the scope's central directory bytes stop it, with one problem.
    #[test]
    fn overlapping_entries_stop_at_the_scopes_directory_bytes() {
        let pom = b"groupId=g\nartifactId=a\nversion=1\n";
        let lib = build(&[("META-INF/maven/g/a/pom.properties", pom, false)], b"");
        let one = build(&[("l.jar", &lib, false)], b"");
        // Split into local part, central directory entry and end record; repeat the central entry.
        let eocd = one.len() - 22;
        let cd_size = u32::from_le_bytes(one[eocd + 12..eocd + 16].try_into().unwrap()) as usize;
        let cd_at = eocd - cd_size;
        let n = 5000u16;
        let mut z = one[..cd_at].to_vec();
        for _ in 0..n {
            z.extend_from_slice(&one[cd_at..eocd]);
        }
        z.extend_from_slice(&one[eocd..eocd + 8]);
        z.extend(n.to_le_bytes());
        z.extend(n.to_le_bytes());
        z.extend(((cd_size * n as usize) as u32).to_le_bytes());
        z.extend((cd_at as u32).to_le_bytes());
        z.extend([0, 0]);
        let inner_cd = (lib.len() - 22 - 22) as u64; // at most: the nested archive's whole directory
        let mut work = Work { cd_limit: 100 * inner_cd + (cd_size as u64) * n as u64, ..Work::default() };
        let (found, problems) = read_archive(&z, "", "overlap.jar", 0, &mut work);
        assert!(found.len() >= 90 && found.len() <= 5000, "{}", found.len());
        assert!(found.len() < 5000, "stopped before reading every name");
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].error.to_string().contains("bytes of central directory"), "{problems:?}");
        // Past the stop nothing more is read, in this file or the next.
        let (more, _) = read_archive(&lib, "", "next.jar", 0, &mut work);
        assert!(more.is_empty());
    }
}
