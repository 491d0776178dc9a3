//! SPDX 2.3 JSON (https://spdx.github.io/spdx-spec/v2.3/).
//!
//! The document DESCRIBES one package standing for the subject (purpose
//! `CONTAINER` for a container or image, `DEVICE` for a host), which CONTAINS
//! the OS (purpose `OPERATING-SYSTEM`) and every package; an application
//! package an OS package's files include (`owner_package`) is CONTAINed by
//! that package too. Licenses that are SPDX expressions are declared as
//! such, the others as `LicenseRef-` ids quoting the recorded text. Files are
//! not listed: SPDX 2.3 requires a SHA-1 of every file, which the store does
//! not keep, so file ownership is in the CycloneDX document only.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::inventory::{Inventory, Kind, Package};
use super::license::{self, License};
use super::shared::{short, uuid_of, web_url};

const SUBJECT: &str = "SPDXRef-Subject";
const OS: &str = "SPDXRef-OperatingSystem";

/// The document; `created` is its creation time (RFC 3339, UTC, seconds).
pub fn document(inv: &Inventory, created: &str, tool_version: &str) -> Value {
    let s = &inv.subject;
    let mut packages = vec![subject(inv)];
    let mut relationships = vec![relation("SPDXRef-DOCUMENT", "DESCRIBES", SUBJECT)];
    if let Some(os) = &inv.os {
        let mut p = json!({
            "SPDXID": OS,
            "name": os.id.as_deref().unwrap_or("linux"),
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
            "primaryPackagePurpose": "OPERATING-SYSTEM",
        });
        put(&mut p, "versionInfo", os.version_id.as_deref());
        put(&mut p, "description", os.pretty_name.as_deref().or(os.name.as_deref()));
        packages.push(p);
        relationships.push(relation(SUBJECT, "CONTAINS", OS));
    }
    let mut extracted: BTreeMap<String, String> = BTreeMap::new();
    for p in &inv.packages {
        packages.push(package(p, &mut extracted));
        relationships.push(relation(SUBJECT, "CONTAINS", &id(p)));
    }
    // An application package inside an OS package's files (Debian's python3-requests holds requests).
    for app in inv.packages.iter().filter(|p| p.owner_package.is_some()) {
        for owner in inv.packages.iter().filter(|o| {
            matches!(o.manager.as_str(), "dpkg" | "apk" | "rpm") && Some(&o.name) == app.owner_package.as_ref()
        }) {
            relationships.push(relation(&id(owner), "CONTAINS", &id(app)));
        }
    }
    let name = match s.kind {
        Kind::Container => format!("container {} ({}) on host {}", s.name, short(&s.scope_id), s.host),
        Kind::Image => format!("image {} on host {}", s.name, s.host),
        Kind::Host => format!("host {}", s.host),
    };
    let mut doc = json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": name,
        "creationInfo": {
            "created": created,
            "creators": [format!("Tool: periscope-{tool_version}")],
            "licenseListVersion": license::list_version(),
        },
        "packages": packages,
        "relationships": relationships,
    });
    if !extracted.is_empty() {
        doc["hasExtractedLicensingInfos"] = extracted
            .into_iter()
            .map(|(id, text)| json!({"licenseId": id, "extractedText": text, "name": text}))
            .collect::<Vec<_>>()
            .into();
    }
    // From everything else the document says, its creation time included: one namespace per document.
    let uuid = uuid_of(doc.to_string().as_bytes());
    doc["documentNamespace"] = format!("urn:uuid:{uuid}").into();
    doc
}

fn subject(inv: &Inventory) -> Value {
    let s = &inv.subject;
    let image = s.image.as_ref();
    let purpose = if s.kind == Kind::Host { "DEVICE" } else { "CONTAINER" };
    let mut p = json!({
        "SPDXID": SUBJECT,
        "name": s.name,
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": false,
        "primaryPackagePurpose": purpose,
    });
    put(&mut p, "versionInfo", image.map(|i| i.id.as_str()));
    if s.kind == Kind::Image
        && let Some(purl) = image.and_then(|i| i.digests.first()).and_then(|d| super::purl::oci(d, None))
    {
        p["externalRefs"] = json!([purl_ref(&purl)]);
    }
    // What identifies the subject, as `key: value` lines.
    let mut lines =
        vec![format!("host: {}", s.host), format!("scope: {}", s.kind.scope()), format!("scope_id: {}", s.scope_id)];
    let mut add = |k: &str, v: Option<&str>| {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            lines.push(format!("{k}: {v}"));
        }
    };
    add("crawl_time", s.crawled.as_deref());
    add("container_id", (s.kind == Kind::Container).then_some(s.scope_id.as_str()));
    add("container_name", (s.kind == Kind::Container).then_some(s.name.as_str()));
    add("container_state", s.state.as_deref());
    add("container_image", s.image_ref.as_deref());
    add("image_id", image.map(|i| i.id.as_str()));
    for t in image.map(|i| i.tags.as_slice()).unwrap_or_default() {
        add("image_tag", Some(t));
    }
    for d in image.map(|i| i.digests.as_slice()).unwrap_or_default() {
        add("image_digest", Some(d));
    }
    add("kernel_release", s.kernel.as_deref());
    add("arch", s.arch.as_deref());
    p["comment"] = lines.join("\n").into();
    p
}

fn package(p: &Package, extracted: &mut BTreeMap<String, String>) -> Value {
    let mut v = json!({
        "SPDXID": id(p),
        "name": p.name,
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": false,
        "licenseConcluded": "NOASSERTION",
    });
    put(&mut v, "versionInfo", p.version.as_deref());
    v["licenseDeclared"] = match License::of(p.license.as_deref()) {
        Some(License::Expression(e)) => e.into(),
        Some(License::Text(t)) => {
            let id = License::reference(&t);
            extracted.insert(id.clone(), t);
            id.into()
        }
        None => "NOASSERTION".into(),
    };
    if let Some(who) = p.maintainer.as_deref().or(p.vendor.as_deref()).and_then(actor) {
        v["supplier"] = who.into();
    }
    put(&mut v, "homepage", p.url.as_deref().and_then(web_url).filter(|u| spdx_url(u)));
    put(&mut v, "summary", p.description.as_deref());
    let mut info = format!("{} record", p.manager);
    if let Some(l) = p.location.as_deref() {
        info.push_str(&format!(" at {l}"));
    }
    if let Some(src) = p.source.as_deref().filter(|s| *s != p.name || p.source_version != p.version) {
        info.push_str(&format!("; source package {src}"));
        if let Some(sv) = p.source_version.as_deref() {
            info.push_str(&format!(" {sv}"));
        }
    }
    v["sourceInfo"] = info.into();
    if let Some(purl) = p.purl.as_deref() {
        v["externalRefs"] = json!([purl_ref(purl)]);
    }
    v
}

fn id(p: &Package) -> String {
    format!("SPDXRef-Package-{}", p.key)
}

fn purl_ref(purl: &str) -> Value {
    json!({"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl", "referenceLocator": purl})
}

fn relation(from: &str, kind: &str, to: &str) -> Value {
    json!({"spdxElementId": from, "relationshipType": kind, "relatedSpdxElement": to})
}

fn put(c: &mut Value, key: &str, v: Option<&str>) {
    if let Some(v) = v.filter(|v| !v.is_empty()) {
        c[key] = v.into();
    }
}

/// A maintainer as an SPDX actor: `Person: Name (email)` from `Name <email>`,
/// else `Person: text`; parentheses, which the actor syntax uses, dropped.
fn actor(who: &str) -> Option<String> {
    let clean = |s: &str| s.replace(['(', ')', '\n', '\r'], " ").split_whitespace().collect::<Vec<_>>().join(" ");
    let (name, email) = match who.split_once('<') {
        Some((n, rest)) => (clean(n), rest.split_once('>').map(|(e, _)| clean(e))),
        None => (clean(who), None),
    };
    match (name.is_empty(), email.filter(|e| !e.is_empty())) {
        (false, Some(e)) => Some(format!("Person: {name} ({e})")),
        (false, None) => Some(format!("Person: {name}")),
        (true, Some(e)) => Some(format!("Person: {e} ({e})")),
        (true, None) => None,
    }
}

/// What SPDX's URL syntax accepts of a web URL: a host with a 2-5 letter top-level domain.
fn spdx_url(url: &str) -> bool {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let host = rest.split(['/', '?', '#', ':']).next().unwrap_or("");
    let tld = host.rsplit('.').next().unwrap_or("");
    host.contains('.') && (2..=5).contains(&tld.len()) && tld.chars().all(|c| c.is_ascii_alphabetic())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maintainers_become_spdx_actors() {
        let cases = [
            ("Matthias Klose <doko@debian.org>", Some("Person: Matthias Klose (doko@debian.org)")),
            ("Debian Bash Maintainers", Some("Person: Debian Bash Maintainers")),
            ("Foo (the team) <x@y.org>", Some("Person: Foo the team (x@y.org)")),
            ("<x@y.org>", Some("Person: x@y.org (x@y.org)")),
            ("  ", None),
        ];
        for (who, want) in cases {
            assert_eq!(actor(who).as_deref(), want, "{who}");
        }
    }

    #[test]
    fn spdx_urls_need_a_short_top_level_domain() {
        assert!(spdx_url("https://www.gnu.org/software/bash/"));
        assert!(spdx_url("https://example.com:8080/x"));
        assert!(!spdx_url("https://localhost/x"));
        assert!(!spdx_url("https://example.software/"));
    }
}
