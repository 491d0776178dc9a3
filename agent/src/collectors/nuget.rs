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
//! is a `crawl_errors` row.
//! Files are found by the walk the application collectors share ([`super::app_files`]).

use periscope_proto::tables::PACKAGES;
use serde_json::Value as Json;

use super::{Scope, Sink};

pub const C: &str = "nuget";

/// Bytes read from one deps.json (an ASP.NET application's is a few hundred KiB).
pub const MAX_DEPS_BYTES: u64 = 16 << 20;

/// What the collector reads (see [`crate::inherit`]).
pub const INPUTS: &[&str] = &["/**/*.deps.json", "!/proc/**", "!/sys/**", "!/dev/**", "!/run/**"];

/// One library a deps.json lists.
#[derive(Debug, PartialEq, Eq)]
pub struct Library {
    pub name: String,
    pub version: String,
    pub kind: Option<String>,
}

/// The libraries of a deps.json, by key (`Name/Version`; other keys skipped).
pub fn parse(bytes: &[u8]) -> Result<Vec<Library>, serde_json::Error> {
    let v: Json = serde_json::from_slice(bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes))?;
    let Some(libs) = v.get("libraries").and_then(Json::as_object) else { return Ok(Vec::new()) };
    Ok(libs
        .iter()
        .filter_map(|(key, lib)| {
            let (name, version) = key.rsplit_once('/')?;
            (!name.is_empty() && !version.is_empty()).then(|| Library {
                name: name.to_string(),
                version: version.to_string(),
                kind: lib.get("type").and_then(Json::as_str).map(str::to_string),
            })
        })
        .collect())
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
        let l = parse(text).unwrap();
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
        assert!(parse(b"{}").unwrap().is_empty());
    }
}
