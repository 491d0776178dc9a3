//! `packages` rows for installed Node.js packages (manager `npm`).
//!
//! An installed package is a package directory holding a `package.json`:
//! `…/node_modules/<name>/package.json` and `…/node_modules/@scope/<name>/package.json`
//! at any depth (nested `node_modules` included, so the global prefixes
//! /usr/lib/node_modules and /usr/local/lib/node_modules too), and Debian's
//! own module directories, /usr/share/nodejs, /usr/lib/nodejs and
//! /usr/lib/<triplet>/nodejs, which hold packages without a `node_modules`.
//!
//! Not installed packages, and so not read:
//! - a lock file (`package-lock.json`, `.package-lock.json`, `yarn.lock`)
//!   alone: it says what an install would fetch, not what is on disk;
//! - a project's own `package.json` outside those directories (the
//!   application at /app, but equally a test fixture or a template inside a
//!   package). npm itself lists the project as the root of its tree, not as
//!   an installed package, and vulnerability data is about published
//!   packages. syft reports every `package.json` it finds, these included;
//!   the comparison test lists them as accepted differences.
//! - a `package.json` without a string `name` and `version` (npm refuses to
//!   publish such a package; nothing can be said of its version).
//!
//! The whole root is walked once for all application collectors (see
//! [`super::app_files`]), never following a symlink (a symlinked
//! `node_modules` cycle is not entered; pnpm's and workspaces' symlinked
//! packages are read where they really are), skipping the kernel's
//! pseudo-filesystems and the container runtimes' storage, which are crawled
//! as scopes of their own. Each `package.json` is read up to
//! [`MAX_MANIFEST_BYTES`]: a larger one is a `crawl_errors` row, never memory.

use periscope_proto::tables::PACKAGES;
use serde::de::DeserializeSeed;

use super::json::{Loose, Pick};
use super::{Scope, Sink};

pub const C: &str = "npm";

/// Bytes read from one `package.json` (the largest on npm's registry are a few hundred KiB).
pub const MAX_MANIFEST_BYTES: u64 = 1 << 20;

/// What the collector reads (see [`crate::inherit`]): every node_modules and
/// Debian's module directories, anywhere but in the directories it skips.
pub const INPUTS: &[&str] = &[
    "/**/node_modules/**",
    "/usr/share/nodejs/**",
    "/usr/lib/nodejs/**",
    "/usr/lib/*/nodejs/**",
    "!/proc/**",
    "!/sys/**",
    "!/dev/**",
    "!/run/**",
];

/// Whether `path` is the manifest of an installed package (see the module doc).
pub fn is_installed_manifest(path: &str) -> bool {
    let c: Vec<&str> = path.split('/').collect();
    let n = c.len();
    if n < 3 || c[n - 1] != "package.json" {
        return false;
    }
    let name = c[n - 2];
    if name.is_empty() || name.starts_with('.') || name.starts_with('@') {
        return false;
    }
    // The directory holding the package (or its @scope directory).
    let holder = if n >= 4 && c[n - 3].starts_with('@') && c[n - 3].len() > 1 { n - 4 } else { n - 3 };
    if c[holder] == "node_modules" {
        return true;
    }
    // Debian: /usr/share/nodejs, /usr/lib/nodejs, /usr/lib/<triplet>/nodejs.
    c[holder] == "nodejs"
        && c[0].is_empty()
        && c.get(1) == Some(&"usr")
        && matches!((c.get(2), holder), (Some(&"share" | &"lib"), 3) | (Some(&"lib"), 4))
}

/// `pkg:npm/<namespace>/<name>@<version>` as the purl spec and syft write it
/// (`@` of a scope percent-encoded: `pkg:npm/%40types/node@20.1.0`).
pub fn purl(name: &str, version: &str) -> String {
    let (ns, base) = match name.split_once('/') {
        Some((ns, base)) if ns.starts_with('@') => (Some(ns), base),
        _ => (None, name),
    };
    let mut out = String::from("pkg:npm/");
    if let Some(ns) = ns {
        out.push_str(&escape(ns, false));
        out.push('/');
    }
    out.push_str(&escape(base, true));
    out.push('@');
    out.push_str(&escape(version, true));
    out
}

/// Percent-encoding as Go's net/url (which syft's packageurl-go uses):
/// a namespace as a query component, a name and version as a path segment.
fn escape(s: &str, segment: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        let keep = b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'.' | b'~')
            || (segment && matches!(b, b'$' | b'&' | b'+' | b',' | b':' | b';' | b'=' | b'@'));
        if keep {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// What a `package.json` says of its package.
#[derive(Debug, Default, PartialEq)]
pub struct Manifest {
    pub name: String,
    pub version: String,
    pub license: Option<String>,
    pub description: Option<String>,
    pub homepage: Option<String>,
    pub author: Option<String>,
}

/// Parses a `package.json` (a leading BOM ignored; a repeated key's last
/// value wins, as in JSON.parse). Ok(None): no string name and version.
/// Only the fields a row uses are read into memory (see [`super::json`]).
pub fn parse(bytes: &[u8]) -> Result<Option<Manifest>, serde_json::Error> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut d = serde_json::Deserializer::from_slice(bytes);
    let [name, version, license, licenses, description, homepage, author] =
        Pick(["name", "version", "license", "licenses", "description", "homepage", "author"]).deserialize(&mut d)?;
    d.end()?;
    let (Some(name), Some(version)) = (name.and_then(|v| v.text), version.and_then(|v| v.text)) else {
        return Ok(None);
    };
    // "license": "MIT" | {"type": "MIT"}; the old "licenses": [{"type": …} | "…"].
    let kind = |l: Loose| l.text.or(l.kind);
    let license = license.and_then(kind).or_else(|| {
        let all: Vec<String> = licenses?.items.into_iter().filter_map(kind).collect();
        (!all.is_empty()).then(|| all.join(" OR "))
    });
    Ok(Some(Manifest {
        name: name.trim().to_string(),
        version: version.trim().to_string(),
        license,
        description: description.and_then(|v| v.text),
        homepage: homepage.and_then(|v| v.text),
        author: author.and_then(|a| a.text.or(a.name)),
    }))
}

pub fn collect(scope: &Scope, out: &mut Sink) {
    let found = super::app_files::take(scope, out, C, |f| &mut f.npm);
    let parse = |b: &[u8]| parse(b).map(|m| super::app_files::Kept { items: m.into_iter().collect(), dropped: 0 });
    super::app_files::each_manifest(
        scope,
        out,
        C,
        found,
        (MAX_MANIFEST_BYTES, "a package.json"),
        parse,
        |out, m, path, owner| {
            let purl = purl(&m.name, &m.version);
            out.row(
                &PACKAGES,
                &[
                    ("manager", "npm".into()),
                    ("name", m.name.as_str().into()),
                    ("version", m.version.as_str().into()),
                    ("maintainer", m.author.as_ref().into()),
                    ("license", m.license.as_ref().into()),
                    ("description", m.description.as_ref().into()),
                    ("url", m.homepage.as_ref().into()),
                    ("location", path.into()),
                    ("purl", purl.as_str().into()),
                    ("owner_package", owner.into()),
                ],
            );
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installed_manifests() {
        for (path, yes) in [
            ("/app/node_modules/ms/package.json", true),
            ("/app/node_modules/@types/node/package.json", true),
            ("/app/node_modules/a/node_modules/b/package.json", true),
            ("/app/node_modules/a/node_modules/@s/b/package.json", true),
            ("/usr/lib/node_modules/npm/package.json", true),
            ("/usr/local/lib/node_modules/npm/node_modules/semver/package.json", true),
            ("/usr/share/nodejs/semver/package.json", true),
            ("/usr/share/nodejs/@types/semver/package.json", true),
            ("/usr/lib/nodejs/ws/package.json", true),
            ("/usr/lib/x86_64-linux-gnu/nodejs/bufferutil/package.json", true),
            // Not a package directory: the project itself, a file inside a package, hidden ones.
            ("/app/package.json", false),
            ("/app/node_modules/package.json", false),
            ("/app/node_modules/ms/lib/package.json", false),
            ("/app/node_modules/@types/package.json", false),
            ("/app/node_modules/.bin/package.json", false),
            ("/app/node_modules/.package-lock.json", false),
            ("/app/node_modules/ms/package-lock.json", false),
            ("/usr/share/nodejs/package.json", false),
            ("/usr/share/nodejs/semver/test/package.json", false),
            ("/opt/usr/share/nodejs/semver/package.json", false),
            ("/usr/lib/a/b/nodejs/x/package.json", false),
        ] {
            assert_eq!(is_installed_manifest(path), yes, "{path}");
        }
    }

    /// As syft (packageurl-go) writes them; checked against syft's output in tests/npm_real.rs.
    #[test]
    fn purls() {
        for (name, version, want) in [
            ("ms", "2.1.3", "pkg:npm/ms@2.1.3"),
            ("@types/node", "20.1.0", "pkg:npm/%40types/node@20.1.0"),
            ("@npmcli/node-gyp", "3.0.0", "pkg:npm/%40npmcli/node-gyp@3.0.0"),
            ("x", "1.0.0-rc.1+build.5", "pkg:npm/x@1.0.0-rc.1+build.5"),
            ("a b", "1 2", "pkg:npm/a%20b@1%202"),
            ("a/b", "1", "pkg:npm/a%2Fb@1"),
        ] {
            assert_eq!(purl(name, version), want);
        }
    }

    #[test]
    fn manifests() {
        let m = parse(br#"{"name":"x","version":"1.0.0","license":{"type":"MIT","url":"u"},"author":{"name":"A"},"homepage":"h","description":"d"}"#)
            .unwrap()
            .unwrap();
        assert_eq!(
            m,
            Manifest {
                name: "x".into(),
                version: "1.0.0".into(),
                license: Some("MIT".into()),
                description: Some("d".into()),
                homepage: Some("h".into()),
                author: Some("A".into())
            }
        );
        let m = parse(b"\xEF\xBB\xBF{\"name\":\"x\",\"version\":\"1\",\"version\":\"2\",\"licenses\":[{\"type\":\"MIT\"},\"GPL-2.0\"],\"author\":\"B <b@x>\"}")
            .unwrap()
            .unwrap();
        assert_eq!(
            (m.version.as_str(), m.license.as_deref(), m.author.as_deref()),
            ("2", Some("MIT OR GPL-2.0"), Some("B <b@x>"))
        );
        assert_eq!(parse(br#"{"name":"x"}"#).unwrap(), None);
        assert_eq!(parse(br#"{"name":"x","version":1}"#).unwrap(), None);
        assert!(parse(b"{").is_err());
        assert!(parse(b"[]").unwrap().is_none());
    }

    /// The parser before it read only what rows use: a whole `serde_json::Value`.
    fn by_value(bytes: &[u8]) -> Option<Option<Manifest>> {
        use serde_json::Value as Json;
        let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        let v: Json = serde_json::from_slice(bytes).ok()?;
        let s = |k: &str| v.get(k).and_then(Json::as_str).map(str::to_string);
        let (Some(name), Some(version)) = (s("name"), s("version")) else { return Some(None) };
        let kind = |l: &Json| l.as_str().or_else(|| l.get("type").and_then(Json::as_str)).map(str::to_string);
        let license = v.get("license").and_then(kind).or_else(|| {
            let all: Vec<String> = v.get("licenses")?.as_array()?.iter().filter_map(kind).collect();
            (!all.is_empty()).then(|| all.join(" OR "))
        });
        let author = v
            .get("author")
            .and_then(|a| a.as_str().or_else(|| a.get("name").and_then(Json::as_str)))
            .map(str::to_string);
        Some(Some(Manifest {
            name: name.trim().to_string(),
            version: version.trim().to_string(),
            license,
            description: s("description"),
            homepage: s("homepage"),
            author,
        }))
    }

    /// Read field by field, manifests give what a whole JSON value gave.
    #[test]
    fn reads_what_a_whole_value_read() {
        let cases: &[&[u8]] = &[
            br#"[]"#,
            br#"null"#,
            br#"{"name":"a"}"#,
            br#"{"name":" a ","version":"1 ","name":"b"}"#,
            br#"{"name":"a","version":1}"#,
            br#"{"name":"a","version":"1","license":{"type":"MIT","name":"x"},"author":{"name":"n","email":"e"}}"#,
            br#"{"name":"a","version":"1","license":3,"licenses":[{"type":"A"},"B",7,{"name":"C"}],"author":"s"}"#,
            br#"{"name":"a","version":"1","licenses":[],"author":["x"],"description":"","homepage":{"x":1}}"#,
            br#"{"name":"a","version":"1","licenses":{"type":"A"},"dependencies":{"x":"^1"},"z":[[[[]]]]}"#,
            b"\xEF\xBB\xBF{\"name\":\"a\",\"version\":\"1\"}",
            br#"{"name":"a","version":"1""#,
            br#"{"name":"a","version":"1"}}"#,
        ];
        for case in cases {
            assert_eq!(parse(case).ok(), by_value(case), "{}", String::from_utf8_lossy(case));
        }
    }
}
