//! OSV ecosystems and Periscope's packages, brought to one key so an advisory's
//! `affected` entry and an installed package meet in a join.
//!
//! * Distributions are named by release, as OSV names them (`Debian:12`,
//!   `Ubuntu:22.04:LTS`, `Alpine:v3.19`, `Rocky Linux:9`, ...). A scope's key
//!   comes from its `os` row (os-release ID and VERSION_ID); Ubuntu's `:LTS`
//!   suffix is dropped on both sides. Debian, Ubuntu, Alpine, Wolfi and
//!   Chainguard key their advisories by *source* (origin) package; the rpm
//!   distributions by binary package. SUSE's advisories mostly name module
//!   streams (`SUSE:Linux Enterprise Module for Basesystem 15 SP5`), which a
//!   scope's os-release does not name: those are not matched.
//! * Application ecosystems are named by the package's manager: pypi → PyPI,
//!   npm → npm, golang → Go, cargo → crates.io, maven → Maven, gem → RubyGems,
//!   composer → Packagist, nuget → NuGet.
//!
//! Not matched, and counted as such by an import: ecosystems not listed here,
//! Ubuntu Pro and FIPS streams (a scope does not say whether it is enrolled),
//! NuGet (no NuGet version order yet), and GIT ranges (they name commits,
//! which an installed package does not carry).

use periscope_versions::Scheme;

/// What an advisory's ecosystem means to matching.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The join key; equal to [`of_os`] or [`of_manager`] of the packages it covers.
    pub key: String,
    /// Their version order; None: not matched (see the module docs).
    pub scheme: Option<Scheme>,
}

/// The key and version order of an OSV ecosystem name; None for an ecosystem
/// Periscope has no packages of.
pub fn of_advisory(ecosystem: &str) -> Option<Target> {
    let e = ecosystem.trim();
    let t = |key: String, scheme: Option<Scheme>| Some(Target { key, scheme });
    let (family, release) = e.split_once(':').unwrap_or((e, ""));
    match family {
        "PyPI" => t("PyPI".into(), Some(Scheme::Pep440)),
        "npm" => t("npm".into(), Some(Scheme::Semver)),
        "Go" => t("Go".into(), Some(Scheme::Golang)),
        "crates.io" => t("crates.io".into(), Some(Scheme::Semver)),
        "Maven" => t("Maven".into(), Some(Scheme::Maven)),
        "RubyGems" => t("RubyGems".into(), Some(Scheme::Rubygems)),
        "Packagist" => t("Packagist".into(), Some(Scheme::Composer)),
        "NuGet" => t("NuGet".into(), None),
        "Debian" if !release.is_empty() => t(format!("Debian:{release}"), Some(Scheme::Deb)),
        "Ubuntu" if !release.is_empty() => {
            let release = release.strip_suffix(":LTS").unwrap_or(release);
            // Pro and FIPS streams (`Ubuntu:Pro:18.04:LTS`) apply only to enrolled machines.
            let plain = release.bytes().all(|c| c.is_ascii_digit() || c == b'.');
            t(format!("Ubuntu:{release}"), plain.then_some(Scheme::Deb))
        }
        "Alpine" if !release.is_empty() => t(format!("Alpine:{release}"), Some(Scheme::Apk)),
        "Wolfi" | "Chainguard" => t(family.into(), Some(Scheme::Apk)),
        "Rocky Linux" | "AlmaLinux" | "openSUSE" | "SUSE" if !release.is_empty() => {
            t(format!("{family}:{release}"), Some(Scheme::Rpm))
        }
        // `Red Hat:enterprise_linux:9::appstream`: the release is the major version after the product.
        "Red Hat" => {
            let major = release.strip_prefix("enterprise_linux:")?.split(':').next()?;
            major
                .bytes()
                .all(|c| c.is_ascii_digit())
                .then(|| Target { key: format!("Red Hat:{major}"), scheme: Some(Scheme::Rpm) })
        }
        _ => None,
    }
}

/// The version order of an ecosystem key (as [`of_advisory`], [`of_os`] and
/// [`of_manager`] make them); None where matching has none.
pub fn scheme_of_key(key: &str) -> Option<Scheme> {
    if key.starts_with("Red Hat:") {
        return Some(Scheme::Rpm);
    }
    of_advisory(key)?.scheme
}

/// The key of a distribution release from its os-release `ID` and `VERSION_ID`.
pub fn of_os(id: &str, version_id: &str) -> Option<String> {
    let v = version_id.trim();
    let major = v.split('.').next().unwrap_or("");
    let needs = |s: &str| (!s.is_empty()).then_some(());
    Some(match id.trim() {
        "debian" => {
            needs(major)?;
            format!("Debian:{major}")
        }
        "ubuntu" => {
            needs(v)?;
            format!("Ubuntu:{v}")
        }
        "alpine" => {
            let mut parts = v.split('.');
            let (a, b) = (parts.next()?, parts.next()?);
            format!("Alpine:v{a}.{b}")
        }
        "wolfi" => "Wolfi".into(),
        "chainguard" => "Chainguard".into(),
        "rocky" => {
            needs(major)?;
            format!("Rocky Linux:{major}")
        }
        "almalinux" => {
            needs(major)?;
            format!("AlmaLinux:{major}")
        }
        "rhel" => {
            needs(major)?;
            format!("Red Hat:{major}")
        }
        "opensuse-leap" => {
            needs(v)?;
            format!("openSUSE:Leap {v}")
        }
        "opensuse-tumbleweed" => "openSUSE:Tumbleweed".into(),
        // SLES 15 SP5 says VERSION_ID="15.5"; OSV names it `SUSE:Linux Enterprise Server 15 SP5`.
        "sles" | "sled" => {
            needs(major)?;
            let product = if id.trim() == "sles" { "Server" } else { "Desktop" };
            match v.split_once('.') {
                Some((m, sp)) if sp != "0" => format!("SUSE:Linux Enterprise {product} {m} SP{sp}"),
                _ => format!("SUSE:Linux Enterprise {product} {major}"),
            }
        }
        _ => return None,
    })
}

/// The application ecosystem key of a package manager; None for the
/// distributions' managers (dpkg, apk, rpm), whose key is the scope's [`of_os`].
pub fn of_manager(manager: &str) -> Option<&'static str> {
    Some(match manager {
        "pypi" => "PyPI",
        "npm" => "npm",
        "golang" => "Go",
        "cargo" => "crates.io",
        "maven" => "Maven",
        "gem" => "RubyGems",
        "composer" => "Packagist",
        "nuget" => "NuGet",
        _ => return None,
    })
}

/// Whether advisories of the ecosystem `key` name source packages.
pub fn by_source(key: &str) -> bool {
    ["Debian:", "Ubuntu:", "Alpine:"].iter().any(|p| key.starts_with(p)) || key == "Wolfi" || key == "Chainguard"
}

/// A package name as its ecosystem compares names: PyPI's normalized form
/// (PEP 503: lower case, runs of `-`, `_`, `.` as one `-`), Packagist's and
/// NuGet's lower case; everything else as written.
pub fn name_key<'a>(key: &str, name: &'a str) -> std::borrow::Cow<'a, str> {
    use std::borrow::Cow;
    Cow::Owned(match key {
        "PyPI" => {
            let mut out = String::with_capacity(name.len());
            let mut sep = false;
            for c in name.trim().chars() {
                if matches!(c, '-' | '_' | '.') {
                    sep = true;
                } else {
                    if sep && !out.is_empty() {
                        out.push('-');
                    }
                    sep = false;
                    out.extend(c.to_lowercase());
                }
            }
            out
        }
        "Packagist" | "NuGet" => name.trim().to_lowercase(),
        _ => return Cow::Borrowed(name.trim()),
    })
}

/// The version an advisory event is compared with, in the form the scheme
/// reads: OSV writes Go versions without the `v` that module versions carry.
pub fn event_version(key: &str, version: &str) -> String {
    if key == "Go" && !version.starts_with('v') && version != "0" && version != "*" {
        format!("v{version}")
    } else {
        version.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advisories_and_scopes_of_the_same_release_share_a_key() {
        let pairs = [
            ("Debian:12", of_os("debian", "12")),
            ("Ubuntu:22.04:LTS", of_os("ubuntu", "22.04")),
            ("Ubuntu:23.10", of_os("ubuntu", "23.10")),
            ("Alpine:v3.19", of_os("alpine", "3.19.1")),
            ("Rocky Linux:9", of_os("rocky", "9.3")),
            ("AlmaLinux:8", of_os("almalinux", "8.9")),
            ("Red Hat:enterprise_linux:9::appstream", of_os("rhel", "9.2")),
            ("SUSE:Linux Enterprise Server 15 SP5", of_os("sles", "15.5")),
            ("openSUSE:Leap 15.5", of_os("opensuse-leap", "15.5")),
            ("Wolfi", of_os("wolfi", "20230201")),
        ];
        for (eco, os) in pairs {
            let t = of_advisory(eco).unwrap();
            assert_eq!(Some(t.key.clone()), os, "{eco}");
            assert!(t.scheme.is_some(), "{eco}");
            assert_eq!(scheme_of_key(&t.key), t.scheme, "{eco}");
        }
        assert_eq!(of_advisory("Ubuntu:Pro:18.04:LTS").unwrap().scheme, None);
        assert_eq!(of_advisory("NuGet").unwrap().scheme, None);
        assert_eq!(of_advisory("Hex"), None);
        assert_eq!(of_advisory("Debian"), None);
        assert_eq!(of_os("debian", ""), None);
        assert_eq!(of_os("alpine", "3"), None);
        for (m, e) in [("pypi", "PyPI"), ("golang", "Go"), ("cargo", "crates.io"), ("composer", "Packagist")] {
            assert_eq!(of_manager(m), Some(e));
            assert_eq!(of_advisory(e).unwrap().key, e);
        }
        assert_eq!(of_manager("dpkg"), None);
    }

    #[test]
    fn names_compare_as_their_ecosystem_compares_them() {
        assert_eq!(name_key("PyPI", "Zope.Interface"), "zope-interface");
        assert_eq!(name_key("PyPI", "charset_normalizer"), "charset-normalizer");
        assert_eq!(name_key("PyPI", "a-_.b"), "a-b");
        assert_eq!(name_key("Packagist", "Monolog/Monolog"), "monolog/monolog");
        assert_eq!(name_key("npm", "@Scope/Pkg"), "@Scope/Pkg");
        assert_eq!(event_version("Go", "0.23.0"), "v0.23.0");
        assert_eq!(event_version("Go", "0"), "0");
        assert_eq!(event_version("crates.io", "0.23.0"), "0.23.0");
    }
}
