//! CycloneDX 1.6 JSON (https://cyclonedx.org/docs/1.6/json/).
//!
//! `metadata.component` is the subject: a `container` for a container (named
//! by its name, versioned by its image id) and an image (named by its tag,
//! versioned by its id), a `device` for a host; what identifies it (host,
//! scope id, container id and state, image id, tags and registry digests,
//! the latest crawl) are `periscope:` properties. The scope's OS is an
//! `operating-system` component, each package a `library` component whose
//! files, where the package manager lists them, are nested `file`
//! components (an assembly: the package includes them). `metadata.lifecycles`
//! says `operations`: the inventory was observed where it runs, not built.

use serde_json::{Value, json};

use super::inventory::{Inventory, Kind, Package};
use super::license::License;
use super::shared::{short, uuid_of, web_url};

/// The document; `created` is its timestamp (RFC 3339, UTC).
pub fn document(inv: &Inventory, created: &str, tool_version: &str) -> Value {
    let mut components = Vec::with_capacity(inv.packages.len() + 1);
    if let Some(os) = &inv.os {
        let mut c = json!({
            "type": "operating-system",
            "bom-ref": "os",
            "name": os.id.as_deref().unwrap_or("linux"),
        });
        put(&mut c, "version", os.version_id.as_deref());
        put(&mut c, "description", os.pretty_name.as_deref().or(os.name.as_deref()));
        let props = props(&[("periscope:os:version_codename", os.version_codename.as_deref())]);
        if !props.is_empty() {
            c["properties"] = props.into();
        }
        components.push(c);
    }
    components.extend(inv.packages.iter().map(|p| package(p, inv.with_files)));
    let mut bom = json!({
        "$schema": "http://cyclonedx.org/schema/bom-1.6.schema.json",
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "version": 1,
        "metadata": {
            "timestamp": created,
            "lifecycles": [{"phase": "operations"}],
            "tools": {"components": [{"type": "application", "name": "periscope", "version": tool_version}]},
            "component": subject(inv),
        },
        "components": components,
    });
    // From everything else the document says, its timestamp included: one serial per BOM.
    let serial = uuid_of(bom.to_string().as_bytes());
    bom["serialNumber"] = format!("urn:uuid:{serial}").into();
    bom
}

fn subject(inv: &Inventory) -> Value {
    let s = &inv.subject;
    let image = s.image.as_ref();
    let (kind, description) = match s.kind {
        Kind::Container => (
            "container",
            format!(
                "container {} ({}) on host {}{}",
                s.name,
                short(&s.scope_id),
                s.host,
                s.image_ref.as_ref().map(|r| format!(", created from {r}")).unwrap_or_default()
            ),
        ),
        Kind::Image => ("container", format!("image {} on host {}", s.scope_id, s.host)),
        Kind::Host => ("device", format!("host {}", s.host)),
    };
    let mut c = json!({"type": kind, "bom-ref": "subject", "name": s.name, "description": description});
    put(&mut c, "version", image.map(|i| i.id.as_str()));
    if s.kind == Kind::Image
        && let Some(p) = image.and_then(|i| i.digests.first()).and_then(|d| super::purl::oci(d, None))
    {
        c["purl"] = p.into();
    }
    let mut p = props(&[
        ("periscope:host", Some(s.host.as_str())),
        ("periscope:scope", Some(s.kind.scope())),
        ("periscope:scope_id", Some(s.scope_id.as_str())),
        ("periscope:crawl_time", s.crawled.as_deref()),
        ("periscope:container:id", (s.kind == Kind::Container).then_some(s.scope_id.as_str())),
        ("periscope:container:name", (s.kind == Kind::Container).then_some(s.name.as_str())),
        ("periscope:container:state", s.state.as_deref()),
        ("periscope:container:image", s.image_ref.as_deref()),
        ("periscope:image:id", image.map(|i| i.id.as_str())),
        ("periscope:image:architecture", image.and_then(|i| i.architecture.as_deref())),
        ("periscope:image:os", image.and_then(|i| i.os.as_deref())),
        ("periscope:host:kernel_release", s.kernel.as_deref()),
        ("periscope:host:arch", s.arch.as_deref()),
    ]);
    for t in image.map(|i| i.tags.as_slice()).unwrap_or_default() {
        p.push(json!({"name": "periscope:image:tag", "value": t}));
    }
    for d in image.map(|i| i.digests.as_slice()).unwrap_or_default() {
        p.push(json!({"name": "periscope:image:digest", "value": d}));
    }
    c["properties"] = p.into();
    c
}

fn package(p: &Package, with_files: bool) -> Value {
    // Maven's `group:artifact` is CycloneDX's group and name.
    let (group, name) = match (p.manager.as_str(), p.name.split_once(':')) {
        ("maven", Some((g, a))) => (Some(g), a),
        _ => (None, p.name.as_str()),
    };
    let mut c = json!({"type": "library", "bom-ref": format!("pkg-{}", p.key), "name": name});
    put(&mut c, "group", group);
    put(&mut c, "version", p.version.as_deref());
    put(&mut c, "description", p.description.as_deref());
    put(&mut c, "publisher", p.maintainer.as_deref().or(p.vendor.as_deref()));
    match License::of(p.license.as_deref()) {
        Some(License::Expression(e)) => c["licenses"] = json!([{"expression": e}]),
        Some(License::Text(t)) => c["licenses"] = json!([{"license": {"name": t}}]),
        None => {}
    }
    put(&mut c, "purl", p.purl.as_deref());
    if let Some(u) = p.url.as_deref().and_then(web_url) {
        c["externalReferences"] = json!([{"type": "website", "url": u}]);
    }
    let props = props(&[
        ("periscope:manager", Some(p.manager.as_str())),
        ("periscope:architecture", p.architecture.as_deref()),
        ("periscope:source", p.source.as_deref()),
        ("periscope:source_version", p.source_version.as_deref()),
        ("periscope:location", p.location.as_deref()),
        ("periscope:owner_package", p.owner_package.as_deref()),
    ]);
    c["properties"] = props.into();
    if with_files && !p.files.is_empty() {
        c["components"] = p.files.iter().map(|f| json!({"type": "file", "name": f})).collect::<Vec<_>>().into();
    }
    c
}

fn put(c: &mut Value, key: &str, v: Option<&str>) {
    if let Some(v) = v.filter(|v| !v.is_empty()) {
        c[key] = v.into();
    }
}

fn props(list: &[(&str, Option<&str>)]) -> Vec<Value> {
    list.iter().filter_map(|(k, v)| v.filter(|v| !v.is_empty()).map(|v| json!({"name": k, "value": v}))).collect()
}
