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
//! JSON, is a `crawl_errors` row, as are packages past [`MAX_PACKAGES`].
//! Files are found by the walk the application collectors share ([`super::app_files`]).

use periscope_proto::tables::PACKAGES;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::app_files::Kept;
use super::json::{Key, Loose, Pick, skip_scalars};
use super::{Scope, Sink};

pub const C: &str = "composer";

/// Bytes read from one installed.json. Composer's record of a large
/// application (Drupal, Magento: a few hundred packages with their full
/// metadata) is one to two MiB; 32 MiB let one file cost hundreds of MB.
pub const MAX_INSTALLED_BYTES: u64 = 4 << 20;

/// Packages kept from one installed.json (a large application has a few
/// hundred); past it the rest are counted, not kept (a `crawl_errors` row).
pub const MAX_PACKAGES: usize = 10_000;

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

/// The packages an installed.json lists (those with a string name and
/// version), at most [`MAX_PACKAGES`], and how many more it lists. Only the
/// fields a row uses are read into memory (see [`super::json`]).
pub fn parse(bytes: &[u8]) -> Result<Kept<Installed>, serde_json::Error> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut kept = Kept::default();
    let mut d = serde_json::Deserializer::from_slice(bytes);
    d.deserialize_any(Document(&mut kept))?;
    d.end()?;
    Ok(kept)
}

/// The document: Composer 2's `{"packages": [...]}` or Composer 1's bare list.
struct Document<'a>(&'a mut Kept<Installed>);

impl<'de> Visitor<'de> for Document<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an installed.json")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        List(self.0).visit_seq(seq)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<Key>()? {
            if key.0.as_deref() == Some("packages") {
                // A repeated key: the last list counts.
                *self.0 = Kept::default();
                map.next_value_seed(List(&mut *self.0))?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
    skip_scalars!(());
}

/// The package list (anything else where it belongs is no packages).
struct List<'a>(&'a mut Kept<Installed>);

impl<'de> DeserializeSeed<'de> for List<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for List<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a list of packages")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(p) = seq.next_element::<Package>()? {
            let Some(p) = p.0 else { continue };
            if self.0.items.len() < MAX_PACKAGES {
                self.0.items.push(p);
            } else {
                self.0.dropped += 1;
            }
        }
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(())
    }
    skip_scalars!(());
}

/// One entry of the list: a package when it is an object with a non-empty
/// string name and version.
struct Package(Option<Installed>);

impl<'de> de::Deserialize<'de> for Package {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let [name, version, license, description, homepage, authors] =
            Pick(["name", "version", "license", "description", "homepage", "authors"]).deserialize(d)?;
        let s = |v: Option<Loose>| v.and_then(|v| v.text).filter(|x| !x.is_empty());
        let (Some(name), Some(version)) = (s(name), s(version)) else { return Ok(Package(None)) };
        let licenses: Vec<String> =
            license.as_ref().map_or(vec![], |l| l.items.iter().filter_map(|i| i.text.clone()).collect());
        Ok(Package(Some(Installed {
            name,
            version,
            license: (!licenses.is_empty()).then(|| licenses.join(" OR ")).or_else(|| s(license)),
            description: s(description),
            homepage: s(homepage),
            author: authors.and_then(|a| a.items.into_iter().next()).and_then(|a| a.name),
        })))
    }
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
        let p = parse(v2).unwrap().items;
        assert_eq!(p.len(), 1);
        assert_eq!(
            (p[0].name.as_str(), p[0].version.as_str(), p[0].license.as_deref()),
            ("psr/log", "1.1.4", Some("MIT"))
        );
        assert_eq!(p[0].author.as_deref(), Some("PHP-FIG"));
        let v1 = br#"[{"name":"symfony/console","version":"v5.4.1","license":["MIT","GPL-2.0-or-later"]}]"#;
        let p = parse(v1).unwrap().items;
        assert_eq!((p[0].version.as_str(), p[0].license.as_deref()), ("v5.4.1", Some("MIT OR GPL-2.0-or-later")));
        assert!(parse(b"{").is_err());
        assert!(parse(b"42").unwrap().items.is_empty());
        assert_eq!(purl("psr/log", "1.1.4"), "pkg:composer/psr/log@1.1.4");
    }

    /// The parser before it read only what rows use: a whole `serde_json::Value`.
    fn by_value(bytes: &[u8]) -> Option<Vec<Installed>> {
        use serde_json::Value as Json;
        let v: Json = serde_json::from_slice(bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes)).ok()?;
        let list = match &v {
            Json::Array(a) => a.as_slice(),
            Json::Object(o) => o.get("packages").and_then(Json::as_array).map_or(&[][..], |a| a.as_slice()),
            _ => &[],
        };
        let one = |p: &Json| {
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
        };
        Some(list.iter().filter_map(one).collect())
    }

    /// Read field by field, files give the packages a whole JSON value gave:
    /// odd types, repeated keys (the last counts), nesting, BOM, bad JSON.
    #[test]
    fn reads_what_a_whole_value_read() {
        let cases: &[&[u8]] = &[
            br#"[]"#,
            br#"{}"#,
            br#"null"#,
            br#""x""#,
            br#"{"packages":{"name":"a","version":"1"}}"#,
            br#"{"packages":[{"name":"a","version":"1"}],"packages":[{"name":"b","version":"2"}]}"#,
            br#"[{"name":"a","version":"1","name":"c"},{"name":"","version":"1"},{"name":1,"version":"1"},[],3,"s",null]"#,
            br#"[{"name":"a","version":"1","license":["MIT",3,{"type":"X"},"GPL"],"authors":["x",{"name":"y"}]}]"#,
            br#"[{"name":"a","version":"1","license":[],"authors":[{"name":"y","name":"z"}]}]"#,
            br#"[{"name":"a","version":"1","license":"","description":"","homepage":"h","authors":{"name":"n"}}]"#,
            br#"[{"name":"a","version":"1","license":"MIT","authors":[{"name":""}],"extra":{"deep":[[[{"name":"q"}]]]}}]"#,
            b"\xEF\xBB\xBF[{\"name\":\"a\",\"version\":\"1\"}]",
            br#"[{"name":"a\u00e9\n","version":"1"}]"#,
            br#"[{"name":"a","version":"1"}] x"#,
            br#"[{"name":"a","version":"1"}"#,
            br#"[{"name":"a","version":"1",}]"#,
        ];
        for case in cases {
            let got = parse(case).ok().map(|k| k.items);
            assert_eq!(got, by_value(case), "{}", String::from_utf8_lossy(case));
        }
        let mut many = b"[".to_vec();
        for i in 0..MAX_PACKAGES + 5 {
            many.extend_from_slice(format!("{{\"name\":\"p{i}\",\"version\":\"1\"}},").as_bytes());
        }
        many.extend_from_slice(b"0]");
        let k = parse(&many).unwrap();
        assert_eq!((k.items.len(), k.dropped), (MAX_PACKAGES, 5));
        assert_eq!(k.items[MAX_PACKAGES - 1].name, format!("p{}", MAX_PACKAGES - 1));
    }
}
