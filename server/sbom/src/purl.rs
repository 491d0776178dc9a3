//! Package URLs (https://github.com/package-url/purl-spec) for the packages
//! the agent leaves without one: dpkg, apk and rpm, whose purls need the
//! scope's distribution, and the `oci` purl of an image with a registry digest.
//! Written in the canonical form the purl reference implementations print
//! (each part percent-encoded but for unreserved characters and `:`,
//! qualifiers sorted by key), so tools that compare purls as text agree.

/// The distribution a scope's `os` row names, as purls qualify OS packages.
#[derive(Debug, Clone, Copy, Default)]
pub struct Distro<'a> {
    /// os-release ID: `debian`, `ubuntu`, `alpine`, `rhel`, `fedora`, ...
    pub id: Option<&'a str>,
    /// os-release VERSION_ID: `12`, `3.19.1`, `9.3`.
    pub version_id: Option<&'a str>,
}

impl Distro<'_> {
    /// `debian-12`: the `distro` qualifier.
    fn qualifier(&self) -> Option<String> {
        Some(format!("{}-{}", self.id?, self.version_id?))
    }
}

/// What a purl is made from: a `packages` row's columns.
#[derive(Debug, Clone, Copy, Default)]
pub struct Row<'a> {
    pub manager: &'a str,
    pub name: &'a str,
    pub version: Option<&'a str>,
    pub architecture: Option<&'a str>,
    pub source: Option<&'a str>,
    pub source_version: Option<&'a str>,
    pub epoch: Option<i64>,
}

/// The purl of an OS package (manager `dpkg`, `apk` or `rpm`); None for any
/// other manager, whose purls the agent writes itself where it can.
///
/// - dpkg: `pkg:deb/<os id or debian>/<name>@<version>?arch=…&distro=<id>-<version_id>&upstream=<source>[@<source version>]`
///   (`upstream` only when the source package or its version differ from the binary's, as syft writes it);
/// - apk: `pkg:apk/<os id or alpine>/<name>@<version>?arch=…&distro=…&upstream=<origin>`;
/// - rpm: `pkg:rpm/<os id>/<name>@<version>-<release>?arch=…&distro=…&epoch=<epoch>&upstream=<source rpm>`
///   (the epoch a qualifier, not part of the version).
pub fn os_package(p: &Row, distro: Distro) -> Option<String> {
    let id = distro.id.map(str::to_ascii_lowercase);
    let mut q: Vec<(&str, String)> = Vec::new();
    if let Some(a) = p.architecture.filter(|a| !a.is_empty()) {
        q.push(("arch", a.to_string()));
    }
    if let Some(d) = distro.qualifier() {
        q.push(("distro", d.to_ascii_lowercase()));
    }
    let (kind, namespace, version) = match p.manager {
        "dpkg" => {
            let source = p.source.filter(|s| !s.is_empty()).unwrap_or(p.name);
            let other_version = p.source_version.filter(|v| Some(*v) != p.version && !v.is_empty());
            match (source != p.name, other_version) {
                (_, Some(v)) => q.push(("upstream", format!("{source}@{v}"))),
                (true, None) => q.push(("upstream", source.to_string())),
                (false, None) => {}
            }
            ("deb", Some(id.unwrap_or_else(|| "debian".into())), p.version.map(str::to_string))
        }
        "apk" => {
            if let Some(s) = p.source.filter(|s| !s.is_empty() && *s != p.name) {
                q.push(("upstream", s.to_string()));
            }
            ("apk", Some(id.unwrap_or_else(|| "alpine".into())), p.version.map(str::to_string))
        }
        "rpm" => {
            if let Some(e) = p.epoch {
                q.push(("epoch", e.to_string()));
            }
            if let Some(s) = p.source_version.filter(|s| !s.is_empty()) {
                q.push(("upstream", s.to_string()));
            }
            // The stored version is rpm's [epoch:]version-release; the purl's is version-release.
            let v = p.version.map(|v| match p.epoch {
                Some(e) => v.strip_prefix(&format!("{e}:")).unwrap_or(v).to_string(),
                None => v.to_string(),
            });
            ("rpm", id, v)
        }
        _ => return None,
    };
    Some(build(kind, namespace.as_deref(), p.name, version.as_deref(), q))
}

/// The `oci` purl of an image known by a registry digest (`repo@sha256:…`, as
/// Docker's RepoDigests write it): `pkg:oci/<last path part>@sha256:…?repository_url=<repo>&tag=<tag>`.
pub fn oci(repo_digest: &str, tag: Option<&str>) -> Option<String> {
    let (repo, digest) = repo_digest.rsplit_once('@')?;
    if repo.is_empty() || !digest.contains(':') {
        return None;
    }
    let name = repo.rsplit('/').next()?.to_ascii_lowercase();
    let mut q = vec![("repository_url", repo.to_string())];
    if let Some(t) = tag {
        q.push(("tag", t.to_string()));
    }
    Some(build("oci", None, &name, Some(digest), q))
}

fn build(kind: &str, namespace: Option<&str>, name: &str, version: Option<&str>, mut q: Vec<(&str, String)>) -> String {
    let mut s = format!("pkg:{kind}/");
    if let Some(ns) = namespace.filter(|n| !n.is_empty()) {
        for seg in ns.split('/').filter(|s| !s.is_empty()) {
            s.push_str(&encode(seg, false));
            s.push('/');
        }
    }
    s.push_str(&encode(name, false));
    if let Some(v) = version.filter(|v| !v.is_empty()) {
        s.push('@');
        s.push_str(&encode(v, false));
    }
    q.retain(|(_, v)| !v.is_empty());
    q.sort_by(|a, b| a.0.cmp(b.0));
    for (i, (k, v)) in q.iter().enumerate() {
        s.push(if i == 0 { '?' } else { '&' });
        s.push_str(k);
        s.push('=');
        s.push_str(&encode(v, true));
    }
    s
}

/// Percent-encodes all but RFC 3986's unreserved characters and `:` (and `/`
/// inside a qualifier value, as the reference implementations leave it).
pub fn encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' | b'_' | b'~' | b':' => out.push(b as char),
            b'/' if keep_slash => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row<'a>(manager: &'a str, name: &'a str, version: &'a str, arch: &'a str) -> Row<'a> {
        Row { manager, name, version: Some(version), architecture: Some(arch), ..Row::default() }
    }

    #[test]
    fn os_packages_get_the_purls_syft_and_the_spec_write() {
        let deb12 = Distro { id: Some("debian"), version_id: Some("12") };
        let cases: &[(Row, Distro, &str)] = &[
            (
                Row {
                    source: Some("bash"),
                    source_version: Some("5.2.15-2"),
                    ..row("dpkg", "bash", "5.2.15-2+b7", "amd64")
                },
                deb12,
                "pkg:deb/debian/bash@5.2.15-2%2Bb7?arch=amd64&distro=debian-12&upstream=bash%405.2.15-2",
            ),
            (
                Row {
                    source: Some("glibc"),
                    source_version: Some("2.36-9+deb12u4"),
                    ..row("dpkg", "libc6", "2.36-9+deb12u4", "amd64")
                },
                deb12,
                "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64&distro=debian-12&upstream=glibc",
            ),
            (
                Row { source: Some("libstdc++6"), ..row("dpkg", "libstdc++6", "1:12.2.0-14", "amd64") },
                Distro { id: Some("ubuntu"), version_id: Some("22.04") },
                "pkg:deb/ubuntu/libstdc%2B%2B6@1:12.2.0-14?arch=amd64&distro=ubuntu-22.04",
            ),
            // No os row: Debian's namespace, no distro.
            (
                row("dpkg", "tzdata", "2024a-0+deb12u1", "all"),
                Distro::default(),
                "pkg:deb/debian/tzdata@2024a-0%2Bdeb12u1?arch=all",
            ),
            (
                Row { source: Some("busybox"), ..row("apk", "busybox-binsh", "1.36.1-r15", "x86_64") },
                Distro { id: Some("alpine"), version_id: Some("3.19.1") },
                "pkg:apk/alpine/busybox-binsh@1.36.1-r15?arch=x86_64&distro=alpine-3.19.1&upstream=busybox",
            ),
            (
                Row {
                    epoch: Some(2),
                    source: Some("vim"),
                    source_version: Some("vim-8.2.2637-20.el9_1.src.rpm"),
                    ..row("rpm", "vim-minimal", "2:8.2.2637-20.el9_1", "x86_64")
                },
                Distro { id: Some("rocky"), version_id: Some("9.3") },
                "pkg:rpm/rocky/vim-minimal@8.2.2637-20.el9_1?arch=x86_64&distro=rocky-9.3&epoch=2&upstream=vim-8.2.2637-20.el9_1.src.rpm",
            ),
            (
                row("rpm", "gpg-pubkey", "fd431d51-4ae0493b", ""),
                Distro::default(),
                "pkg:rpm/gpg-pubkey@fd431d51-4ae0493b",
            ),
        ];
        for (r, d, want) in cases {
            assert_eq!(os_package(r, *d).as_deref(), Some(*want), "{r:?}");
        }
        assert_eq!(os_package(&row("pypi", "requests", "2.31.0", ""), deb12), None);
    }

    #[test]
    fn an_image_digest_makes_an_oci_purl() {
        assert_eq!(
            oci("ghcr.io/org/app@sha256:abc123", Some("1.2")).as_deref(),
            Some("pkg:oci/app@sha256:abc123?repository_url=ghcr.io/org/app&tag=1.2")
        );
        assert_eq!(oci("debian@sha256:ff", None).as_deref(), Some("pkg:oci/debian@sha256:ff?repository_url=debian"));
        assert_eq!(oci("no-digest", None), None);
    }

    #[test]
    fn encoding_keeps_unreserved_and_colon_only() {
        assert_eq!(encode("a b+c@d/e:f~g", false), "a%20b%2Bc%40d%2Fe:f~g");
        assert_eq!(encode("docker.io/library/x", true), "docker.io/library/x");
        assert_eq!(encode("é", false), "%C3%A9");
    }
}
