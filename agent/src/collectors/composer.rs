//! `packages` with manager `composer`: PHP packages that Composer installed,
//! from each `<vendor-dir>/composer/installed.json` anywhere in the root
//! (Composer 2's `{"packages": [...]}` and Composer 1's bare list), one row
//! per package: `name` as Composer names it (`vendor/package`), `version` as
//! installed (`1.1.4`, `v5.4.1`, `dev-main`), `purl`
//! `pkg:composer/<vendor>/<package>@<version>` as syft writes it, `location`
//! the installed.json (Composer's own record of the install, as dpkg's
//! status is for dpkg). A `composer.lock` or `composer.json` alone is not an
//! install and is not read.
//!
//! Each installed.json is read up to [`MAX_INSTALLED_BYTES`]; larger, or not
//! JSON, is a `crawl_errors` row.
//! Files are found by the walk the application collectors share ([`super::app_files`]).

use periscope_proto::tables::PACKAGES;
use serde_json::Value as Json;

use super::{Scope, Sink};

pub const C: &str = "composer";

/// Bytes read from one installed.json (a large application's is a few MiB).
pub const MAX_INSTALLED_BYTES: u64 = 32 << 20;

/// What the collector reads (see [`crate::inherit`]).
pub const INPUTS: &[&str] = &["/**/composer/installed.json", "!/proc/**", "!/sys/**", "!/dev/**", "!/run/**"];

/// One installed package.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Installed {
    pub name: String,
    pub version: String,
    pub license: Option<String>,
    pub description: Option<String>,
    pub homepage: Option<String>,
    pub author: Option<String>,
}

/// The packages an installed.json lists (those with a string name and version).
pub fn parse(bytes: &[u8]) -> Result<Vec<Installed>, serde_json::Error> {
    let v: Json = serde_json::from_slice(bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes))?;
    let list = match &v {
        Json::Array(a) => a.as_slice(),
        Json::Object(o) => o.get("packages").and_then(Json::as_array).map_or(&[][..], |a| a.as_slice()),
        _ => &[],
    };
    Ok(list
        .iter()
        .filter_map(|p| {
            let s = |k: &str| p.get(k).and_then(Json::as_str).map(str::to_string).filter(|x| !x.is_empty());
            let licenses: Vec<&str> = p
                .get("license")
                .and_then(Json::as_array)
                .map_or(vec![], |a| a.iter().filter_map(Json::as_str).collect());
            Some(Installed {
                name: s("name")?,
                version: s("version")?,
                license: (!licenses.is_empty()).then(|| licenses.join(" OR ")).or_else(|| s("license")),
                description: s("description"),
                homepage: s("homepage"),
                author: p
                    .get("authors")
                    .and_then(Json::as_array)
                    .and_then(|a| a.first())
                    .and_then(|a| a.get("name"))
                    .and_then(Json::as_str)
                    .map(str::to_string),
            })
        })
        .collect())
}

/// `pkg:composer/<vendor>/<package>@<version>`.
pub fn purl(name: &str, version: &str) -> String {
    super::binaries::purl("composer", name, version)
}

pub fn collect(scope: &Scope, out: &mut Sink) {
    let found = super::app_files::take(scope, out, C, |f| &mut f.composer);
    super::app_files::each_manifest(
        scope,
        out,
        C,
        found,
        (MAX_INSTALLED_BYTES, "Composer's installed.json"),
        parse,
        |out, p, path, owner| {
            let purl = purl(&p.name, &p.version);
            out.row(
                &PACKAGES,
                &[
                    ("manager", "composer".into()),
                    ("name", p.name.as_str().into()),
                    ("version", p.version.as_str().into()),
                    ("maintainer", p.author.as_deref().into()),
                    ("license", p.license.as_deref().into()),
                    ("description", p.description.as_deref().into()),
                    ("url", p.homepage.as_deref().into()),
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
    fn composer_2_and_1_layouts() {
        let v2 = br#"{"packages":[{"name":"psr/log","version":"1.1.4","version_normalized":"1.1.4.0","license":["MIT"],"authors":[{"name":"PHP-FIG"}],"description":"Common interface","homepage":"https://github.com/php-fig/log"},{"name":"x/no-version"}],"dev":true,"dev-package-names":[]}"#;
        let p = parse(v2).unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(
            (p[0].name.as_str(), p[0].version.as_str(), p[0].license.as_deref()),
            ("psr/log", "1.1.4", Some("MIT"))
        );
        assert_eq!(p[0].author.as_deref(), Some("PHP-FIG"));
        let v1 = br#"[{"name":"symfony/console","version":"v5.4.1","license":["MIT","GPL-2.0-or-later"]}]"#;
        let p = parse(v1).unwrap();
        assert_eq!((p[0].version.as_str(), p[0].license.as_deref()), ("v5.4.1", Some("MIT OR GPL-2.0-or-later")));
        assert!(parse(b"{").is_err());
        assert!(parse(b"42").unwrap().is_empty());
        assert_eq!(purl("psr/log", "1.1.4"), "pkg:composer/psr/log@1.1.4");
    }
}
