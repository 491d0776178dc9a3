//! `packages` with manager `gem`: installed Ruby gems, one row per gem
//! specification where RubyGems keeps them — `<dir>/specifications/*.gemspec`
//! and default gems' `<dir>/specifications/default/*.gemspec` — anywhere in
//! the root: Ruby's own tree (/usr/lib/ruby/gems/3.1.0, /usr/local/lib/ruby/gems),
//! Debian's ruby-* packages (/usr/share/rubygems-integration/all), the official
//! images' /usr/local/bundle, an application's vendor/bundle.
//!
//! An installed gemspec is Ruby code that RubyGems writes
//! (`Gem::Specification#to_ruby`); it is never run here. Name and version
//! are read from its `s.name = "…"` and `s.version = "…"` lines, else from
//! the `# stub: <name> <version> <platform> <paths>` line RubyGems itself
//! reads to list gems without loading them; licenses, homepage, summary and
//! authors from their lines when present. A gemspec is read up to
//! [`MAX_SPEC_BYTES`] (name and version come first; a longer one is read to
//! there). `purl` is `pkg:gem/<name>@<version>`, as syft writes it.
//!
//! Gemspecs are found by the walk the application collectors share ([`super::app_files`]).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use periscope_proto::tables::PACKAGES;

use super::{Scope, Sink, usrmerge_aliases};

pub const C: &str = "gem";

/// Bytes read from one gemspec (RubyGems' largest are tens of KiB).
pub const MAX_SPEC_BYTES: u64 = 256 << 10;

/// What the collector reads (see [`crate::inherit`]).
pub const INPUTS: &[&str] = &[
    "/**/specifications/*.gemspec",
    "/**/specifications/default/*.gemspec",
    "!/proc/**",
    "!/sys/**",
    "!/dev/**",
    "!/run/**",
];

/// What a gemspec says of its gem.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Spec {
    pub name: String,
    pub version: String,
    pub licenses: Vec<String>,
    pub homepage: Option<String>,
    pub summary: Option<String>,
    pub authors: Vec<String>,
}

/// The Ruby string literals of `text` (double- or single-quoted), unescaped, in order.
fn strings(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut it = text.chars();
    while let Some(c) = it.by_ref().find(|&c| c == '"' || c == '\'') {
        let mut s = String::new();
        let mut closed = false;
        while let Some(x) = it.next() {
            if x == c {
                closed = true;
                break;
            }
            if x == '\\' {
                match it.next() {
                    Some('n') if c == '"' => s.push('\n'),
                    Some('t') if c == '"' => s.push('\t'),
                    Some(o) => {
                        if c == '\'' && o != '\'' && o != '\\' {
                            s.push('\\');
                        }
                        s.push(o);
                    }
                    None => {}
                }
            } else {
                s.push(x);
            }
        }
        if !closed {
            break;
        }
        out.push(s);
    }
    out
}

/// The value of `<var>.<attr> = …` on a line, as its string literals.
fn assigned(line: &str, attr: &str) -> Option<Vec<String>> {
    let l = line.trim_start();
    let (lhs, rhs) = l.split_once('=')?;
    let lhs = lhs.trim_end();
    let (var, a) = lhs.split_once('.')?;
    if a != attr || var.is_empty() || !var.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_') {
        return None;
    }
    // `==` is a comparison, not an assignment.
    if rhs.starts_with('=') {
        return None;
    }
    Some(strings(rhs))
}

/// Reads a gemspec's name, version and description; None without a name and version.
pub fn parse(text: &str) -> Option<Spec> {
    let mut spec = Spec::default();
    let mut stub: Option<(String, String)> = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# stub: ") {
            let f: Vec<&str> = rest.split_whitespace().collect();
            if stub.is_none() && f.len() >= 2 {
                stub = Some((f[0].to_string(), f[1].to_string()));
            }
            continue;
        }
        let first = |attr: &str| assigned(line, attr).and_then(|v| v.into_iter().next());
        if spec.name.is_empty()
            && let Some(v) = first("name")
        {
            spec.name = v;
        } else if spec.version.is_empty()
            && let Some(v) = first("version")
        {
            spec.version = v;
        } else if let Some(v) = assigned(line, "licenses").or_else(|| assigned(line, "license")) {
            spec.licenses.extend(v);
        } else if let Some(v) = first("homepage") {
            spec.homepage = Some(v);
        } else if let Some(v) = first("summary") {
            spec.summary = Some(v);
        } else if let Some(v) = assigned(line, "authors").or_else(|| assigned(line, "author")) {
            spec.authors.extend(v);
        }
    }
    if let Some((n, v)) = stub {
        if spec.name.is_empty() {
            spec.name = n;
        }
        if spec.version.is_empty() {
            spec.version = v;
        }
    }
    (!spec.name.is_empty() && !spec.version.is_empty()).then_some(spec)
}

/// `pkg:gem/<name>@<version>`.
pub fn purl(name: &str, version: &str) -> String {
    super::binaries::purl("gem", name, version)
}

pub fn collect(scope: &Scope, out: &mut Sink) {
    let found = super::app_files::take(scope, out, C, |f| &mut f.gem);
    let aliases = usrmerge_aliases(&scope.root);
    for e in found {
        let (path, raw) = (e.path.shown(), e.path.raw());
        let bytes = match scope.root.read_prefix(OsStr::from_bytes(&raw), MAX_SPEC_BYTES) {
            Ok((b, _)) => b,
            Err(err) => {
                out.read_error(C, &path, &err);
                if err.is_budget() {
                    return;
                }
                continue;
            }
        };
        let Some(spec) = parse(&String::from_utf8_lossy(&bytes)) else {
            out.error(C, Some(&path), &format!("{path}: no gem name and version in this gemspec"));
            continue;
        };
        let owner = out.owner(&path, &aliases).cloned();
        let purl = purl(&spec.name, &spec.version);
        let license = (!spec.licenses.is_empty()).then(|| spec.licenses.join(", "));
        let authors = (!spec.authors.is_empty()).then(|| spec.authors.join(", "));
        out.row(
            &PACKAGES,
            &[
                ("manager", "gem".into()),
                ("name", spec.name.as_str().into()),
                ("version", spec.version.as_str().into()),
                ("maintainer", authors.as_deref().into()),
                ("license", license.as_deref().into()),
                ("description", spec.summary.as_deref().into()),
                ("url", spec.homepage.as_deref().into()),
                ("location", path.as_str().into()),
                ("purl", purl.as_str().into()),
                ("owner_package", owner.as_deref().into()),
            ],
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installed_gemspecs_as_rubygems_writes_them() {
        let text = r#"# -*- encoding: utf-8 -*-
# stub: rake 13.0.6 ruby lib

Gem::Specification.new do |s|
  s.name = "rake".freeze
  s.version = "13.0.6"

  s.authors = ["Hiroshi SHIBATA".freeze, "Eric Hodel".freeze]
  s.homepage = "https://github.com/ruby/rake".freeze
  s.licenses = ["MIT".freeze]
  s.summary = "Rake is a \"Make\"-like program".freeze
end
"#;
        let s = parse(text).unwrap();
        assert_eq!((s.name.as_str(), s.version.as_str()), ("rake", "13.0.6"));
        assert_eq!(s.licenses, ["MIT"]);
        assert_eq!(s.authors, ["Hiroshi SHIBATA", "Eric Hodel"]);
        assert_eq!(s.summary.as_deref(), Some("Rake is a \"Make\"-like program"));
        assert_eq!(s.homepage.as_deref(), Some("https://github.com/ruby/rake"));
        // Only the stub line: what RubyGems lists without loading the spec.
        let s = parse("# stub: nokogiri 1.15.4 x86_64-linux lib\n").unwrap();
        assert_eq!((s.name.as_str(), s.version.as_str()), ("nokogiri", "1.15.4"));
        // Other spellings: another variable, single quotes, `license`.
        let s = parse("Gem::Specification.new do |spec|\n  spec.name    = 'a-b'\n  spec.version = '1.0'\n  spec.license = 'MIT'\n  if spec.name == 'x'\n").unwrap();
        assert_eq!(
            (s.name.as_str(), s.version.as_str(), s.licenses.as_slice()),
            ("a-b", "1.0", &["MIT".to_string()][..])
        );
        assert_eq!(parse("s.name = \"x\"\n"), None);
        assert_eq!(parse("s.name = \"unterminated\ns.version = \"1\"\n"), None);
        assert_eq!(purl("rake", "13.0.6"), "pkg:gem/rake@13.0.6");
    }
}
