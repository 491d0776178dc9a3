//! `packages` with manager `nuget`: .NET libraries an application was built
//! with, from each `*.deps.json` anywhere in the root — the dependency
//! manifest the .NET SDK writes beside an application's or library's
//! assembly and the host reads to load it. Each entry of its `libraries`
//! (`"Name/Version": {"type": "package" | "project" | ...}`) is a row:
//! `name` and `version` as written (NuGet ids keep their case), `purl`
//! `pkg:nuget/<Name>@<version>` as syft writes it, `location` the
//! deps.json, and the entry's `type` in `description` (`project` is the
//! application's own assembly or a project it references).
//!
//! Each deps.json is read up to [`MAX_DEPS_BYTES`]; larger, or not JSON,
//! is a `crawl_errors` row, as are libraries past [`MAX_LIBRARIES`].
//! Files are found by the walk the application collectors share ([`super::app_files`]).

use periscope_proto::tables::PACKAGES;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::app_files::Kept;
use super::json::{Item, Key, skip_scalars};
use super::{Scope, Sink};

pub const C: &str = "nuget";

/// Bytes read from one deps.json. An ASP.NET application's is a few hundred
/// KiB, a self-contained one's (runtime packs listed file by file) one to
/// two MiB; 16 MiB let one file cost hundreds of MB and minutes of CPU.
pub const MAX_DEPS_BYTES: u64 = 4 << 20;

/// Libraries kept from one deps.json (a large application lists a few
/// hundred); past it the rest are counted, not kept (a `crawl_errors` row).
pub const MAX_LIBRARIES: usize = 10_000;

/// What the collector reads (see [`crate::inherit`]).
pub const INPUTS: &[&str] = &["/**/*.deps.json", "!/proc/**", "!/sys/**", "!/dev/**", "!/run/**"];

/// One library a deps.json lists.
#[derive(Debug, PartialEq, Eq)]
pub struct Library {
    pub name: String,
    pub version: String,
    pub kind: Option<String>,
}

/// The libraries of a deps.json, by key (`Name/Version`; other keys
/// skipped), in key order, at most [`MAX_LIBRARIES`], and how many more it
/// lists. Only the keys and their `type` are read into memory (see [`super::json`]).
pub fn parse(bytes: &[u8]) -> Result<Kept<Library>, serde_json::Error> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut libs = Libraries::default();
    let mut d = serde_json::Deserializer::from_slice(bytes);
    d.deserialize_any(Document(&mut libs))?;
    d.end()?;
    let items = libs
        .by_key
        .into_iter()
        .map(|(key, kind)| {
            let (name, version) = key.rsplit_once('/').unwrap_or_default();
            Library { name: name.to_string(), version: version.to_string(), kind }
        })
        .collect();
    Ok(Kept { items, dropped: libs.dropped })
}

/// `libraries`' entries whose key is `Name/Version`, by key (a repeated key:
/// the last value counts), and the count of those past [`MAX_LIBRARIES`].
#[derive(Default)]
struct Libraries {
    by_key: std::collections::BTreeMap<String, Option<String>>,
    dropped: u64,
}

/// The document: only its `libraries` object is read.
struct Document<'a>(&'a mut Libraries);

impl<'de> Visitor<'de> for Document<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a deps.json")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<Key>()? {
            if key.0.as_deref() == Some("libraries") {
                *self.0 = Libraries::default();
                map.next_value_seed(Entries(&mut *self.0))?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(())
    }
    skip_scalars!(());
}

/// The `libraries` object (anything else there is no libraries).
struct Entries<'a>(&'a mut Libraries);

impl<'de> DeserializeSeed<'de> for Entries<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Entries<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("the libraries")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            let kind = map.next_value_seed(Item)?.kind;
            let named = key.rsplit_once('/').is_some_and(|(n, v)| !n.is_empty() && !v.is_empty());
            if !named {
                continue;
            }
            if self.0.by_key.len() < MAX_LIBRARIES || self.0.by_key.contains_key(&key) {
                self.0.by_key.insert(key, kind);
            } else {
                self.0.dropped += 1;
            }
        }
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(())
    }
    skip_scalars!(());
}

/// `pkg:nuget/<Name>@<version>`.
pub fn purl(name: &str, version: &str) -> String {
    super::binaries::purl("nuget", name, version)
}

pub fn collect(scope: &Scope, out: &mut Sink) {
    let found = super::app_files::take(scope, out, C, |f| &mut f.nuget);
    super::app_files::each_manifest(
        scope,
        out,
        C,
        found,
        (MAX_DEPS_BYTES, "a .NET deps.json"),
        parse,
        |out, l, path, owner| {
            let purl = purl(&l.name, &l.version);
            out.row(
                &PACKAGES,
                &[
                    ("manager", "nuget".into()),
                    ("name", l.name.as_str().into()),
                    ("version", l.version.as_str().into()),
                    ("description", l.kind.as_deref().into()),
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
    fn libraries_of_a_deps_json() {
        let text = br#"{"runtimeTarget":{"name":".NETCoreApp,Version=v8.0"},"targets":{},"libraries":{
            "App/1.0.0":{"type":"project","serviceable":false,"sha512":""},
            "Newtonsoft.Json/13.0.3":{"type":"package","serviceable":true,"path":"newtonsoft.json/13.0.3"},
            "odd":{"type":"package"},
            "Scoped.Name/With/1.0-beta+x":{}}}"#;
        let l = parse(text).unwrap().items;
        let got: Vec<(&str, &str, Option<&str>)> =
            l.iter().map(|l| (l.name.as_str(), l.version.as_str(), l.kind.as_deref())).collect();
        assert_eq!(
            got,
            [
                ("App", "1.0.0", Some("project")),
                ("Newtonsoft.Json", "13.0.3", Some("package")),
                ("Scoped.Name/With", "1.0-beta+x", None)
            ]
        );
        assert_eq!(purl("Newtonsoft.Json", "13.0.3"), "pkg:nuget/Newtonsoft.Json@13.0.3");
        assert!(parse(b"[").is_err());
        assert!(parse(b"{}").unwrap().items.is_empty());
    }

    /// The parser before it read only what rows use: a whole `serde_json::Value`.
    fn by_value(bytes: &[u8]) -> Option<Vec<Library>> {
        use serde_json::Value as Json;
        let v: Json = serde_json::from_slice(bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes)).ok()?;
        let Some(libs) = v.get("libraries").and_then(Json::as_object) else { return Some(Vec::new()) };
        let one = |(key, lib): (&String, &Json)| {
            let (name, version) = key.rsplit_once('/')?;
            (!name.is_empty() && !version.is_empty()).then(|| Library {
                name: name.to_string(),
                version: version.to_string(),
                kind: lib.get("type").and_then(Json::as_str).map(str::to_string),
            })
        };
        Some(libs.iter().filter_map(one).collect())
    }

    /// Read field by field, files give the libraries a whole JSON value gave:
    /// key order, repeated keys (the last counts), odd types, bad JSON.
    #[test]
    fn reads_what_a_whole_value_read() {
        let cases: &[&[u8]] = &[
            br#"[]"#,
            br#"7"#,
            br#"{"libraries":[{"a/1":{}}]}"#,
            br#"{"libraries":{"b/2":{"type":"package"},"a/1":{"type":3},"a/1":{"type":"project","type":"x"}}}"#,
            br#"{"libraries":{"b/2":{}},"libraries":{"c/3":"s","/1":{},"d/":{},"e":{},"f/g/4":[{"type":"t"}]}}"#,
            br#"{"targets":{"x":{"libraries":{"z/9":{}}}},"libraries":{"\u00e9/1":{"type":"package","sha512":"\u2026"}}}"#,
            b"\xEF\xBB\xBF{\"libraries\":{\"a/1\":{}}}",
            br#"{"libraries":{"a/1":{}}"#,
            br#"{"libraries":{"a/1":{}}} ]"#,
        ];
        for case in cases {
            let got = parse(case).ok().map(|k| k.items);
            assert_eq!(got, by_value(case), "{}", String::from_utf8_lossy(case));
        }
        let keys: Vec<String> = (0..MAX_LIBRARIES + 3).map(|i| format!("\"l{i}/1\":{{}}")).collect();
        let k =
            parse(format!("{{\"libraries\":{{{},\"l0/1\":{{\"type\":\"t\"}}}}}}", keys.join(",")).as_bytes()).unwrap();
        assert_eq!((k.items.len(), k.dropped), (MAX_LIBRARIES, 3));
        assert_eq!(k.items[0].kind.as_deref(), Some("t"), "a kept key's later value counts");
    }
}
