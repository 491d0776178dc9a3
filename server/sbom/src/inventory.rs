//! What an SBOM states, read from the store through SQL: the subject (one
//! container, image or host), its OS, its packages with their purls, licenses
//! and files. Every row comes through SQL in a session over one snapshot —
//! of a data directory, or of a server's store as the asking user may read
//! it — so a server's read scopes and query limits hold for SBOMs too.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use datafusion::prelude::SessionContext;
use periscope_query::query::{self, Access, Limits, QueryError};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::purl;

type Row = Map<String, Value>;

/// Where rows come from: one session over one snapshot of the store, so
/// every query of a document sees the same rows, within the limits of the
/// user it is read for.
pub struct Source {
    ctx: SessionContext,
    limits: Limits,
}

impl Source {
    /// A snapshot of the data directory `dir` (a server may be writing to it), read without limits: the
    /// local command line, the user's own process.
    pub async fn data(dir: &Path) -> Result<Source, QueryError> {
        let snapshot = periscope_store::store::Store::read(dir).map_err(|e| QueryError::Store(e.to_string()))?;
        Source::snapshot(snapshot, Limits::none()).await
    }

    /// A server's snapshot, read as a user with `limits` (their read scope, memory and time per query).
    pub async fn snapshot(snapshot: periscope_store::store::Snapshot, limits: Limits) -> Result<Source, QueryError> {
        let ctx = periscope_query::catalog::context_with(snapshot, limits.runtime()?, limits.scope.as_ref()).await?;
        Ok(Source { ctx, limits })
    }

    /// The rows of `sql` as JSON objects (null columns left out). The result
    /// stays on the query's thread and is counted against its memory, as is
    /// what is made of it: a document is refused past the user's limits at
    /// each query and at [`Source::check`], not only inside DataFusion.
    async fn rows(&self, sql: &str) -> Result<Vec<Row>, Error> {
        let (_, batches) =
            query::execute(&self.ctx, sql, Access::ReadOnly, &self.limits).await.map_err(|e| match e {
                QueryError::Limit(m) => Error::Limit(m),
                e => Error::Query(e.to_string()),
            })?;
        for b in &batches {
            periscope_query::account::taken_back(periscope_store::store::batch_bytes(b));
        }
        let json =
            |e: &dyn std::fmt::Display| Error::Query(format!("internal error: the result of {sql:?} as JSON: {e}"));
        let mut w = arrow_json::ArrayWriter::new(Vec::new());
        for b in &batches {
            w.write(b).map_err(|e| json(&e))?;
        }
        w.finish().map_err(|e| json(&e))?;
        drop(batches);
        let bytes = w.into_inner();
        self.check()?;
        if bytes.is_empty() {
            return Ok(Vec::new());
        }
        let rows = serde_json::from_slice(&bytes).map_err(|e| json(&e))?;
        drop(bytes);
        self.check()?;
        Ok(rows)
    }

    /// Refuses the document once what its thread holds is past the user's
    /// limits (the query memory account; nothing on the local command line).
    pub fn check(&self) -> Result<(), Error> {
        periscope_query::account::check().map_err(|e| match e {
            datafusion::error::DataFusionError::ResourcesExhausted(why) => {
                Error::Limit(format!("the SBOM needs more memory than a query may use: {why}"))
            }
            e => Error::Query(e.to_string()),
        })
    }
}

/// Which scope to describe, as the command line names it.
#[derive(Debug, Clone)]
pub enum Selector {
    /// A container by name, full id or unique id prefix; on one host when given.
    Container { name_or_id: String, host: Option<String> },
    /// An image by id (with or without `sha256:`, or a unique prefix), tag (`repo:tag`, `repo` meaning
    /// `repo:latest`) or registry digest (`repo@sha256:…` or the bare digest); on one host when given.
    Image { id_or_ref: String, host: Option<String> },
    /// A host's own root filesystem.
    Host { host: String },
}

impl Selector {
    /// The scope named by a container, else an image, else a host (empty strings: not named).
    pub fn named(container: Option<String>, image: Option<String>, host: Option<String>) -> Result<Selector, String> {
        let some = |s: Option<String>| s.filter(|s| !s.is_empty());
        Ok(match (some(container), some(image), some(host)) {
            (Some(name_or_id), _, host) => Selector::Container { name_or_id, host },
            (None, Some(id_or_ref), host) => Selector::Image { id_or_ref, host },
            (None, None, Some(host)) => Selector::Host { host },
            (None, None, None) => return Err("name a container, an image or a host".into()),
        })
    }
}

/// Why no inventory was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// No stored scope answers to the name (or the user may not read it).
    NotFound(String),
    /// The name fits several scopes.
    Ambiguous(String),
    /// A query failed, in the query layer's words.
    Query(String),
    /// The document was refused: past the user's time or memory limits.
    Limit(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::NotFound(m) | Error::Ambiguous(m) | Error::Query(m) | Error::Limit(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Error {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Host,
    Container,
    Image,
}

impl Kind {
    /// The `scope` column's value.
    pub fn scope(self) -> &'static str {
        match self {
            Kind::Host => "host",
            Kind::Container => "container",
            Kind::Image => "image",
        }
    }
}

/// An image's identity as its host listed it.
#[derive(Debug, Clone, Default)]
pub struct Image {
    /// Image id (`sha256:…` of its configuration).
    pub id: String,
    /// Tags (`repo:tag`).
    pub tags: Vec<String>,
    /// Registry digests (`repo@sha256:…`).
    pub digests: Vec<String>,
    pub architecture: Option<String>,
    pub os: Option<String>,
}

/// What the SBOM describes.
#[derive(Debug, Clone)]
pub struct Subject {
    pub kind: Kind,
    pub host: String,
    /// The scope's id: machine id, container id or image id.
    pub scope_id: String,
    /// Container name, the image's tag (the one asked for, else its first) or id, host name.
    pub name: String,
    /// A container's: the reference it was created from and its state.
    pub image_ref: Option<String>,
    pub state: Option<String>,
    /// A container's image or the image itself; None where the host's listing no longer has it.
    pub image: Option<Image>,
    /// A host's kernel release and machine architecture.
    pub kernel: Option<String>,
    pub arch: Option<String>,
    /// The scope's latest crawl (UTC, RFC 3339).
    pub crawled: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Os {
    pub id: Option<String>,
    pub version_id: Option<String>,
    pub version_codename: Option<String>,
    pub name: Option<String>,
    pub pretty_name: Option<String>,
}

/// Ordered by its fields in turn (every field, so equal rows are the only ties).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Package {
    pub manager: String,
    pub name: String,
    pub version: Option<String>,
    pub architecture: Option<String>,
    pub location: Option<String>,
    pub source: Option<String>,
    pub source_version: Option<String>,
    pub license: Option<String>,
    pub maintainer: Option<String>,
    pub vendor: Option<String>,
    pub url: Option<String>,
    pub description: Option<String>,
    /// The agent's purl, else one made here for dpkg, apk and rpm.
    pub purl: Option<String>,
    pub owner_package: Option<String>,
    /// Paths the package manager's file list gives it, sorted.
    pub files: Vec<String>,
    /// Stable within a document and across runs: a hash of what identifies the row.
    pub key: String,
}

#[derive(Debug, Clone)]
pub struct Inventory {
    pub subject: Subject,
    pub os: Option<Os>,
    /// Sorted by manager, name, version, architecture, location and the rest.
    pub packages: Vec<Package>,
    /// Whether `package_files` was read (else `files` is empty because it was not asked for).
    pub with_files: bool,
}

/// Reads the inventory of the scope `selector` names; `files`: also each package's files.
pub async fn read(source: &Source, selector: &Selector, files: bool) -> Result<Inventory, Error> {
    let subject = resolve(source, selector).await?;
    let scope = format!(
        "host = {} AND scope = {} AND scope_id = {}",
        lit(&subject.host),
        lit(subject.kind.scope()),
        lit(&subject.scope_id)
    );
    let q = |sql: String| async move { source.rows(&sql).await };
    let os = q(format!(
        "SELECT id, version_id, version_codename, name, pretty_name FROM os WHERE {scope} \
         ORDER BY id, version_id LIMIT 1"
    ))
    .await?
    .first()
    .map(|r| Os {
        id: text(r, "id"),
        version_id: text(r, "version_id"),
        version_codename: text(r, "version_codename"),
        name: text(r, "name"),
        pretty_name: text(r, "pretty_name"),
    });
    let distro = purl::Distro {
        id: os.as_ref().and_then(|o| o.id.as_deref()),
        version_id: os.as_ref().and_then(|o| o.version_id.as_deref()),
    };
    let rows = q(format!(
        "SELECT manager, name, version, architecture, source, source_version, epoch, license, maintainer, vendor, \
         url, description, location, purl, owner_package FROM packages WHERE {scope}"
    ))
    .await?;
    let mut packages: Vec<Package> = rows
        .iter()
        .map(|r| {
            let manager = text(r, "manager").unwrap_or_default();
            let name = text(r, "name").unwrap_or_default();
            let mut p = Package {
                version: text(r, "version"),
                architecture: text(r, "architecture"),
                source: text(r, "source"),
                source_version: text(r, "source_version"),
                license: text(r, "license"),
                maintainer: text(r, "maintainer"),
                vendor: text(r, "vendor"),
                url: text(r, "url"),
                description: text(r, "description"),
                location: text(r, "location"),
                purl: text(r, "purl"),
                owner_package: text(r, "owner_package"),
                manager,
                name,
                ..Package::default()
            };
            if p.purl.is_none() {
                let row = purl::Row {
                    manager: &p.manager,
                    name: &p.name,
                    version: p.version.as_deref(),
                    architecture: p.architecture.as_deref(),
                    source: p.source.as_deref(),
                    source_version: p.source_version.as_deref(),
                    epoch: r.get("epoch").and_then(Value::as_i64),
                };
                p.purl = purl::os_package(&row, distro);
            }
            p
        })
        .collect();
    packages.sort();
    assign_keys(&mut packages);
    if files {
        let mut owned: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
        for r in q(format!("SELECT manager, package, path FROM package_files WHERE {scope}")).await? {
            if let (Some(m), Some(p), Some(path)) = (text(&r, "manager"), text(&r, "package"), text(&r, "path")) {
                owned.entry((m, p)).or_default().insert(path);
            }
        }
        for p in &mut packages {
            if let Some(paths) = owned.remove(&(p.manager.clone(), p.name.clone())) {
                p.files = leaves(&paths);
            }
        }
        drop(owned);
        source.check()?;
    }
    Ok(Inventory { subject, os, packages, with_files: files })
}

/// The paths of a package's file list that no other of its paths lies
/// under: its files, without the directories (`/usr`, `/usr/share/doc`) dpkg
/// and rpm list beside them. (An empty directory a package owns stays: the
/// list does not say what a path is.)
fn leaves(paths: &BTreeSet<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(paths.len());
    // A sibling can sort between a directory and its contents (`/a/b.d` before `/a/b/x`):
    // look for the first path at or after "<path>/" instead.
    for p in paths {
        let dir = format!("{}/", p.trim_end_matches('/'));
        let has_child = paths.range(dir.clone()..).next().is_some_and(|n| n.starts_with(&dir));
        if !has_child {
            out.push(p.clone());
        }
    }
    out
}

/// Gives each package a key from a hash of what identifies it; identical
/// rows (the same package seen twice at one location) are told apart by
/// their place among their equals, which the sort makes stable.
fn assign_keys(packages: &mut [Package]) {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for p in packages {
        let mut h = Sha256::new();
        for part in [
            Some(p.manager.as_str()),
            Some(p.name.as_str()),
            p.version.as_deref(),
            p.architecture.as_deref(),
            p.location.as_deref(),
            p.purl.as_deref(),
        ] {
            h.update(part.unwrap_or("\u{0}null").as_bytes());
            h.update([0xff]);
        }
        let hex: String = h.finalize()[..8].iter().map(|b| format!("{b:02x}")).collect();
        let n = seen.entry(hex.clone()).or_default();
        *n += 1;
        p.key = if *n == 1 { hex } else { format!("{hex}-{n}") };
    }
}

async fn resolve(source: &Source, selector: &Selector) -> Result<Subject, Error> {
    let q = |sql: String| async move { source.rows(&sql).await };
    let on = |host: &Option<String>| host.as_ref().map(|h| format!(" AND host = {}", lit(h))).unwrap_or_default();
    let crawled = "to_char(crawl_time, '%Y-%m-%dT%H:%M:%SZ') AS crawled";
    match selector {
        Selector::Host { host } => {
            let rows = q(format!(
                "SELECT scope_id, {crawled} FROM latest_crawls WHERE scope = 'host' AND host = {}",
                lit(host)
            ))
            .await?;
            let Some(r) = rows.first() else {
                return Err(Error::NotFound(format!(
                    "no crawl of host {host:?} is stored (or it has expired from current state)"
                )));
            };
            let scope_id = text(r, "scope_id").unwrap_or_default();
            let info = q(format!(
                "SELECT kernel_release, arch FROM host_info WHERE host = {} AND scope = 'host' AND scope_id = {}",
                lit(host),
                lit(&scope_id)
            ))
            .await?;
            Ok(Subject {
                kind: Kind::Host,
                host: host.clone(),
                scope_id,
                name: host.clone(),
                image_ref: None,
                state: None,
                image: None,
                kernel: info.first().and_then(|r| text(r, "kernel_release")),
                arch: info.first().and_then(|r| text(r, "arch")),
                crawled: text(r, "crawled"),
            })
        }
        Selector::Container { name_or_id, host } => {
            let x = lit(name_or_id);
            let rows = q(format!(
                "SELECT host, scope_id, container, {crawled} FROM latest_crawls WHERE scope = 'container' \
                 AND (scope_id = {x} OR container = {x} OR starts_with(scope_id, {x})){}",
                on(host)
            ))
            .await?;
            // A name or full id before an id prefix.
            let exact: Vec<&Row> = rows
                .iter()
                .filter(|r| {
                    text(r, "scope_id").as_ref() == Some(name_or_id)
                        || text(r, "container").as_ref() == Some(name_or_id)
                })
                .collect();
            let found = if exact.is_empty() { rows.iter().collect() } else { exact };
            let r = match found.as_slice() {
                [one] => *one,
                [] => {
                    return Err(Error::NotFound(format!(
                        "no crawled container named {name_or_id:?} or with that id{}",
                        host.as_ref().map(|h| format!(" on host {h:?}")).unwrap_or_default()
                    )));
                }
                many => {
                    let list: Vec<String> = many
                        .iter()
                        .map(|r| {
                            format!(
                                "{} on host {}",
                                text(r, "container").unwrap_or_else(|| text(r, "scope_id").unwrap_or_default()),
                                text(r, "host").unwrap_or_default()
                            )
                        })
                        .collect();
                    return Err(Error::Ambiguous(format!(
                        "{name_or_id:?} names {} containers ({}); name one with --host or a longer id",
                        many.len(),
                        list.join(", ")
                    )));
                }
            };
            let host = text(r, "host").unwrap_or_default();
            let id = text(r, "scope_id").unwrap_or_default();
            let listed = q(format!(
                "SELECT name, image, image_id, state FROM containers WHERE host = {} AND container_id = {}",
                lit(&host),
                lit(&id)
            ))
            .await?;
            let c = listed.first();
            let image = match c.and_then(|c| text(c, "image_id")) {
                Some(image_id) => Some(
                    images(source, &format!("host = {} AND image_id = {}", lit(&host), lit(&image_id)))
                        .await?
                        .into_iter()
                        .next()
                        .map(|(_, i)| i)
                        .unwrap_or(Image { id: image_id, ..Image::default() }),
                ),
                None => None,
            };
            Ok(Subject {
                kind: Kind::Container,
                name: text(r, "container").or_else(|| c.and_then(|c| text(c, "name"))).unwrap_or_else(|| id.clone()),
                host,
                scope_id: id,
                image_ref: c.and_then(|c| text(c, "image")),
                state: c.and_then(|c| text(c, "state")),
                image,
                kernel: None,
                arch: None,
                crawled: text(r, "crawled"),
            })
        }
        Selector::Image { id_or_ref, host } => {
            let x = lit(id_or_ref);
            let y = lit(&format!("sha256:{id_or_ref}"));
            let filter = format!(
                "(image_id = {x} OR starts_with(image_id, {x}) OR starts_with(image_id, {y}) \
                 OR strpos(repo_tags, {x}) > 0 OR strpos(repo_digests, {x}) > 0){}",
                on(host)
            );
            let candidates = images(source, &filter).await?;
            // The best kind of match any image gives: exact id, tag, registry digest, id prefix.
            let rank = |i: &Image| -> Option<u8> {
                let id = i.id.as_str();
                let bare = id.strip_prefix("sha256:").unwrap_or(id);
                let tag =
                    |t: &String| t == id_or_ref || (!id_or_ref.contains(':') && *t == format!("{id_or_ref}:latest"));
                let digest = |d: &String| d == id_or_ref || d.rsplit_once('@').is_some_and(|(_, dg)| dg == id_or_ref);
                if id == id_or_ref || bare == id_or_ref {
                    Some(0)
                } else if i.tags.iter().any(tag) {
                    Some(1)
                } else if i.digests.iter().any(digest) {
                    Some(2)
                } else if id.starts_with(id_or_ref.as_str()) || bare.starts_with(id_or_ref.as_str()) {
                    Some(3)
                } else {
                    None
                }
            };
            let best = candidates.iter().filter_map(|(_, i)| rank(i)).min();
            let found: Vec<&(String, Image)> =
                candidates.iter().filter(|(_, i)| best.is_some() && rank(i) == best).collect();
            let (host, image) = match found.as_slice() {
                [one] => (*one).clone(),
                [] => {
                    return Err(Error::NotFound(format!(
                        "no image with id, tag or digest {id_or_ref:?} is listed{}",
                        host.as_ref().map(|h| format!(" on host {h:?}")).unwrap_or_default()
                    )));
                }
                many => {
                    let list: Vec<String> = many.iter().map(|(h, i)| format!("{} on host {h}", i.id)).collect();
                    return Err(Error::Ambiguous(format!(
                        "{id_or_ref:?} names {} images ({}); name one with --host or a longer id",
                        many.len(),
                        list.join(", ")
                    )));
                }
            };
            let crawl = q(format!(
                "SELECT {crawled} FROM latest_crawls WHERE scope = 'image' AND host = {} AND scope_id = {}",
                lit(&host),
                lit(&image.id)
            ))
            .await?;
            if crawl.is_empty() {
                return Err(Error::NotFound(format!(
                    "image {} is listed on host {host} but no crawl of it is stored",
                    image.id
                )));
            }
            let name = image
                .tags
                .iter()
                .find(|t| *t == id_or_ref || **t == format!("{id_or_ref}:latest"))
                .or(image.tags.first())
                .cloned()
                .unwrap_or_else(|| image.id.clone());
            Ok(Subject {
                kind: Kind::Image,
                host,
                scope_id: image.id.clone(),
                name,
                image_ref: None,
                state: None,
                image: Some(image),
                kernel: None,
                arch: None,
                crawled: crawl.first().and_then(|r| text(r, "crawled")),
            })
        }
    }
}

/// Rows of the `images` view matching `filter`: (host, image), sorted.
async fn images(source: &Source, filter: &str) -> Result<Vec<(String, Image)>, Error> {
    let rows = source
        .rows(&format!(
            "SELECT DISTINCT host, image_id, repo_tags, repo_digests, architecture, os FROM images WHERE {filter} \
             ORDER BY host, image_id"
        ))
        .await?;
    let list = |r: &Row, c: &str| -> Vec<String> {
        let mut v: Vec<String> = text(r, c)
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        v.sort();
        v.dedup();
        v
    };
    Ok(rows
        .iter()
        .map(|r| {
            (
                text(r, "host").unwrap_or_default(),
                Image {
                    id: text(r, "image_id").unwrap_or_default(),
                    tags: list(r, "repo_tags"),
                    digests: list(r, "repo_digests"),
                    architecture: text(r, "architecture"),
                    os: text(r, "os"),
                },
            )
        })
        .collect())
}

/// A SQL string literal.
fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A column's text; None for null, missing or empty.
fn text(r: &Row, col: &str) -> Option<String> {
    match r.get(col)? {
        Value::String(s) if s.is_empty() => None,
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        v => Some(v.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_stable_and_unique() {
        let p = |name: &str, loc: &str| Package {
            manager: "pypi".into(),
            name: name.into(),
            version: Some("1".into()),
            location: Some(loc.into()),
            ..Package::default()
        };
        let mut a = vec![p("a", "/x"), p("a", "/x"), p("a", "/y"), p("b", "/x")];
        assign_keys(&mut a);
        let keys: BTreeSet<&str> = a.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys.len(), 4, "{a:?}");
        assert_eq!(a[1].key, format!("{}-2", a[0].key));
        let mut b = vec![p("a", "/x"), p("a", "/x"), p("a", "/y"), p("b", "/x")];
        assign_keys(&mut b);
        assert_eq!(a.iter().map(|p| &p.key).collect::<Vec<_>>(), b.iter().map(|p| &p.key).collect::<Vec<_>>());
    }

    #[test]
    fn directories_holding_listed_paths_are_left_out() {
        let paths: BTreeSet<String> =
            ["/", "/usr", "/usr/bin", "/usr/bin/x", "/usr/bin.d", "/usr/share/empty", "/usr/bin2/y"]
                .into_iter()
                .map(String::from)
                .collect();
        assert_eq!(leaves(&paths), ["/usr/bin.d", "/usr/bin/x", "/usr/bin2/y", "/usr/share/empty"]);
    }

    #[test]
    fn literals_are_quoted() {
        assert_eq!(lit("it's"), "'it''s'");
    }
}
