//! The advisory tables and the `vulnerabilities` view in every SQL session.
//!
//! * `advisories_history`, `advisory_affected_history`: every stored version
//!   of every record; `advisories`, `advisory_affected`: each id's current one.
//! * `vulnerabilities`: one row per current package of a scope and standing
//!   advisory that affects its installed version (see [`VULNERABILITIES`]).
//! * Functions the view is built from, usable on their own:
//!   `osv_ecosystem(manager, os_id, os_version_id)`,
//!   `osv_package_key(ecosystem_key, name, source)` and
//!   `osv_match(ecosystem_key, ranges, versions, version)`.
//!
//! Advisories are public data: read-scoped users get the tables too, and the
//! view over their own packages.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use arrow_array::builder::StringBuilder;
use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef};
use arrow_schema::{DataType, Field, SchemaRef};
use datafusion::common::{Result, exec_err};
use datafusion::datasource::MemTable;
use datafusion::datasource::TableProvider;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility};
use datafusion::prelude::SessionContext;

use crate::ecosystem;
use crate::eval::Entry;
use crate::osv::Range;
use crate::store::{ADVISORIES, ADVISORIES_SCHEMA, AFFECTED, AFFECTED_SCHEMA, committed};

/// Each id's current record: its newest `modified`, the newest import on a tie.
pub const CURRENT_ADVISORIES: &str = "CREATE VIEW advisories AS \
    SELECT id, modified, published, withdrawn, aliases, summary, details, severity, cvss_vector, cvss_score, \
           database_severity, source, imported \
    FROM (SELECT *, row_number() OVER (PARTITION BY id ORDER BY modified DESC, imported DESC) AS n \
          FROM advisories_history) WHERE n = 1";

/// The `affected` entries of each id's current record.
pub const CURRENT_AFFECTED: &str = "CREATE VIEW advisory_affected AS \
    SELECT f.* FROM advisory_affected_history f \
    JOIN advisories a ON a.id = f.advisory_id AND a.modified = f.modified AND a.imported = f.imported";

/// One row per (current package of a scope, standing advisory affecting its
/// installed version). Distribution packages meet advisories of their scope's
/// release (from its `os` row) by source package where the distribution keys
/// advisories so (Debian, Ubuntu, Alpine; compared by source version), by
/// package otherwise; application packages meet their ecosystem's by name.
pub const VULNERABILITIES: &str = "CREATE VIEW vulnerabilities AS \
    WITH p AS ( \
      SELECT p.host, p.scope, p.scope_id, p.container, p.manager, p.name, p.version, p.location, p.purl, \
             osv_ecosystem(p.manager, o.id, o.version_id) AS ecosystem_key, \
             p.source, \
             CASE WHEN p.manager IN ('dpkg', 'apk') THEN COALESCE(p.source_version, p.version) ELSE p.version END AS match_version \
      FROM packages p LEFT JOIN os o ON o.host = p.host AND o.scope = p.scope AND o.scope_id = p.scope_id \
      WHERE p.owner_package IS NULL), \
    k AS (SELECT *, osv_package_key(ecosystem_key, name, source) AS package_key FROM p WHERE ecosystem_key IS NOT NULL), \
    m AS ( \
      SELECT k.*, f.advisory_id, f.ecosystem, osv_match(f.ecosystem_key, f.ranges, f.versions, k.match_version) AS hit \
      FROM k JOIN advisory_affected f ON f.ecosystem_key = k.ecosystem_key AND f.package_key = k.package_key) \
    SELECT m.host, m.scope, m.scope_id, m.container, \
           CASE WHEN m.scope = 'image' THEN m.scope_id ELSE c.image_id END AS image_id, \
           c.image, c.state AS container_state, \
           m.manager, m.name AS package, m.version, m.location, m.purl, m.ecosystem, \
           m.advisory_id AS advisory, a.aliases, NULLIF(m.hit, '') AS fixed_version, \
           a.severity, a.cvss_score, a.summary, a.published, a.modified \
    FROM m JOIN advisories a ON a.id = m.advisory_id AND a.withdrawn IS NULL \
    LEFT JOIN containers c ON m.scope = 'container' AND c.host = m.host AND c.container_id = m.scope_id \
    WHERE m.hit IS NOT NULL";

/// When each exposure began and ended: one row per span of a package
/// version in a scope (from `package_changes`: added, then removed or still
/// there) and standing advisory affecting that version. `since` is the crawl
/// that first showed the version, `until` the crawl that no longer did, or,
/// for a scope that left current state (a removed container, an expired
/// host), its last crawl; null: still there. A scope is matched with its
/// newest `os` row (a container's, its image's), and a package version with
/// the source its host's rows name (no host's rows decide another's).
pub const VULNERABILITIES_HISTORY: &str = "CREATE VIEW vulnerabilities_history AS \
    WITH ev AS ( \
      SELECT host, scope, scope_id, manager, name, version, crawl_time, action, \
             LEAD(crawl_time) OVER (PARTITION BY host, scope, scope_id, manager, name, version, architecture \
               ORDER BY crawl_time, action) AS next_time, \
             LEAD(action) OVER (PARTITION BY host, scope, scope_id, manager, name, version, architecture \
               ORDER BY crawl_time, action) AS next_action \
      FROM package_changes), \
    spans AS ( \
      SELECT DISTINCT host, scope, scope_id, manager, name, version, crawl_time AS since, \
             CASE WHEN next_action = 'removed' THEN next_time END AS removed \
      FROM ev WHERE action = 'added'), \
    osl AS ( \
      SELECT host, scope, scope_id, id, version_id FROM ( \
        SELECT host, scope, scope_id, id, version_id, \
               row_number() OVER (PARTITION BY host, scope, scope_id ORDER BY crawl_time DESC) AS n \
        FROM os_history) x WHERE n = 1), \
    img AS ( \
      SELECT host, container_id, image_id FROM ( \
        SELECT host, container_id, image_id, \
               row_number() OVER (PARTITION BY host, container_id ORDER BY crawl_time DESC) AS n \
        FROM containers_history) x WHERE n = 1), \
    src AS ( \
      SELECT host, manager, name, version, min(source) AS source, min(source_version) AS source_version, \
             min(owner_package) AS owner_package \
      FROM packages_history GROUP BY host, manager, name, version), \
    lastc AS (SELECT host, scope, scope_id, max(crawl_time) AS last FROM crawls GROUP BY host, scope, scope_id), \
    live AS (SELECT DISTINCT host, scope, scope_id FROM latest_crawls), \
    k AS ( \
      SELECT s.host, s.scope, s.scope_id, s.manager, s.name, s.version, s.since, src.source, src.owner_package, \
             CASE WHEN s.removed IS NOT NULL THEN s.removed WHEN lv.host IS NULL THEN lc.last END AS until, \
             osv_ecosystem(s.manager, COALESCE(o.id, oi.id), COALESCE(o.version_id, oi.version_id)) AS ecosystem_key, \
             CASE WHEN s.manager IN ('dpkg', 'apk') THEN COALESCE(src.source_version, s.version) ELSE s.version END AS match_version \
      FROM spans s \
      LEFT JOIN osl o ON o.host = s.host AND o.scope = s.scope AND o.scope_id = s.scope_id \
      LEFT JOIN img i ON s.scope = 'container' AND i.host = s.host AND i.container_id = s.scope_id \
      LEFT JOIN osl oi ON oi.host = i.host AND oi.scope = 'image' AND oi.scope_id = i.image_id \
      LEFT JOIN src ON src.host = s.host AND src.manager = s.manager AND src.name = s.name AND src.version = s.version \
      LEFT JOIN live lv ON lv.host = s.host AND lv.scope = s.scope AND lv.scope_id = s.scope_id \
      LEFT JOIN lastc lc ON lc.host = s.host AND lc.scope = s.scope AND lc.scope_id = s.scope_id), \
    kk AS (SELECT *, osv_package_key(ecosystem_key, name, source) AS package_key FROM k \
           WHERE ecosystem_key IS NOT NULL AND owner_package IS NULL), \
    m AS ( \
      SELECT kk.*, f.advisory_id, osv_match(f.ecosystem_key, f.ranges, f.versions, kk.match_version) AS hit \
      FROM kk JOIN advisory_affected f ON f.ecosystem_key = kk.ecosystem_key AND f.package_key = kk.package_key) \
    SELECT m.host, m.scope, m.scope_id, m.manager, m.name AS package, m.version, m.advisory_id AS advisory, a.aliases, \
           NULLIF(m.hit, '') AS fixed_version, a.severity, a.published, m.since, m.until \
    FROM m JOIN advisories a ON a.id = m.advisory_id AND a.withdrawn IS NULL \
    WHERE m.hit IS NOT NULL";

/// The catalog extension (see [`periscope_query::catalog::Extension`]).
pub struct Tables;

impl periscope_query::catalog::Extension for Tables {
    fn register(&self, ctx: &SessionContext, data: Option<&Path>) -> Result<()> {
        for (table, schema) in [(ADVISORIES, &*ADVISORIES_SCHEMA), (AFFECTED, &*AFFECTED_SCHEMA)] {
            ctx.register_table(format!("{table}_history"), provider(data, table, schema)?)?;
        }
        for f in functions() {
            ctx.register_udf(f);
        }
        Ok(())
    }

    fn public(&self) -> bool {
        true
    }

    fn views(&self) -> &'static [&'static str] {
        &[CURRENT_ADVISORIES, CURRENT_AFFECTED, VULNERABILITIES, VULNERABILITIES_HISTORY]
    }
}

fn provider(data: Option<&Path>, table: &'static str, schema: &SchemaRef) -> Result<Arc<dyn TableProvider>> {
    // A log that does not replay costs the advisory tables, never the session.
    let files = match data.map(|d| committed(d, table)) {
        Some(Ok(files)) => files,
        Some(Err(e)) => {
            tracing::error!("{table}: {e}; read as empty until the next import repairs its log");
            Vec::new()
        }
        None => Vec::new(),
    };
    if files.is_empty() {
        return Ok(Arc::new(MemTable::try_new(schema.clone(), vec![vec![]])?));
    }
    let urls = files.iter().map(|f| ListingTableUrl::parse(f.to_string_lossy())).collect::<Result<Vec<_>>>()?;
    let options = ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
    let config =
        ListingTableConfig::new_with_multi_paths(urls).with_listing_options(options).with_schema(schema.clone());
    Ok(Arc::new(ListingTable::try_new(config)?))
}

/// The functions [`VULNERABILITIES`] is built from.
pub fn functions() -> Vec<ScalarUDF> {
    [Func::Ecosystem, Func::PackageKey, Func::Match]
        .into_iter()
        .map(|kind| {
            let n = match kind {
                Func::Ecosystem | Func::PackageKey => 3,
                Func::Match => 4,
            };
            ScalarUDF::from(OsvFunc { kind, signature: Signature::any(n, Volatility::Immutable) })
        })
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Func {
    Ecosystem,
    PackageKey,
    Match,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct OsvFunc {
    kind: Func,
    signature: Signature,
}

/// The longest `ranges` text `osv_match` reads (real entries hold a few KB).
pub const MAX_RANGES_BYTES: usize = 1 << 20;

/// The most `versions` entries one call of `osv_match` compares against, over
/// all its rows (a Linux advisory lists a few thousand; a batch, a few of those).
pub const MAX_LISTED: usize = 50_000_000;

/// One argument: a column, or a constant read once (never copied per row).
struct Arg {
    array: ArrayRef,
    constant: bool,
}

impl Arg {
    fn of(v: &ColumnarValue, ty: &DataType) -> Result<Arg> {
        let (array, constant) = match v {
            ColumnarValue::Array(a) => (a.clone(), false),
            ColumnarValue::Scalar(s) => (s.to_array_of_size(1)?, true),
        };
        let array = if array.data_type() == ty { array } else { arrow_cast::cast(&array, ty)? };
        Ok(Arg { array, constant })
    }

    fn row(&self, i: usize) -> usize {
        if self.constant { 0 } else { i }
    }

    fn text(&self, i: usize) -> Option<&str> {
        let a = self.array.as_string::<i32>();
        let i = self.row(i);
        a.is_valid(i).then(|| a.value(i))
    }
}

fn list_type() -> DataType {
    DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)))
}

impl ScalarUDFImpl for OsvFunc {
    fn name(&self) -> &str {
        match self.kind {
            Func::Ecosystem => "osv_ecosystem",
            Func::PackageKey => "osv_package_key",
            Func::Match => "osv_match",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let n = args.number_rows;
        let text = |i: usize| Arg::of(&args.args[i], &DataType::Utf8);
        let mut out = StringBuilder::with_capacity(n, n * 8);
        match self.kind {
            Func::Ecosystem => {
                let (m, id, ver) = (text(0)?, text(1)?, text(2)?);
                // A scope's rows arrive together: its release is worked out once per run of rows.
                let mut last: Option<((&str, &str), Option<String>)> = None;
                for i in 0..n {
                    match (m.text(i), id.text(i), ver.text(i)) {
                        (Some(m), ..) if ecosystem::of_manager(m).is_some() => {
                            out.append_option(ecosystem::of_manager(m))
                        }
                        (Some("dpkg" | "apk" | "rpm"), Some(id), Some(ver)) => {
                            if last.as_ref().is_none_or(|(k, _)| *k != (id, ver)) {
                                last = Some(((id, ver), ecosystem::of_os(id, ver)));
                            }
                            out.append_option(last.as_ref().and_then(|(_, key)| key.as_deref()));
                        }
                        _ => out.append_null(),
                    }
                }
            }
            Func::PackageKey => {
                let (k, name, source) = (text(0)?, text(1)?, text(2)?);
                for i in 0..n {
                    let (Some(key), Some(name)) = (k.text(i), name.text(i)) else {
                        out.append_null();
                        continue;
                    };
                    let name = match source.text(i) {
                        Some(src) if ecosystem::by_source(key) && !src.is_empty() => src,
                        _ => name,
                    };
                    out.append_value(&*ecosystem::name_key(key, name));
                }
            }
            Func::Match => {
                let (k, ranges, installed) = (text(0)?, text(1)?, text(3)?);
                let versions = Arg::of(&args.args[2], &list_type())?;
                let lists = versions.array.as_list::<i32>();
                let offsets = lists.value_offsets();
                let listed = lists.values().as_string::<i32>();
                let per_row = |i: usize| {
                    let r = versions.row(i);
                    if lists.is_null(r) { 0..0 } else { offsets[r] as usize..offsets[r + 1] as usize }
                };
                let work: usize = if versions.constant {
                    per_row(0).len().saturating_mul(n)
                } else {
                    (0..n).map(|i| per_row(i).len()).sum()
                };
                if work > MAX_LISTED {
                    return exec_err!("osv_match: {work} listed versions in one call, over the {MAX_LISTED} limit");
                }
                // Entries repeat across rows (one advisory, many installs): prepare each once per call.
                let mut prepared: HashMap<(&str, &str), Option<Entry>> = HashMap::new();
                for i in 0..n {
                    let (Some(key), Some(ranges), Some(installed)) = (k.text(i), ranges.text(i), installed.text(i))
                    else {
                        out.append_null();
                        continue;
                    };
                    if ranges.len() > MAX_RANGES_BYTES {
                        return exec_err!(
                            "osv_match: ranges of {} bytes, over the {MAX_RANGES_BYTES}-byte limit",
                            ranges.len()
                        );
                    }
                    let entry = prepared.entry((key, ranges)).or_insert_with_key(|(key, ranges)| {
                        let scheme = ecosystem::scheme_of_key(key)?;
                        let ranges: Vec<Range> = serde_json::from_str(ranges).ok()?;
                        Some(Entry::new(key, scheme, &ranges))
                    });
                    let these: Vec<&str> =
                        per_row(i).filter(|&j| listed.is_valid(j)).map(|j| listed.value(j)).collect();
                    match entry.as_ref().and_then(|e| e.affects(installed, &these)) {
                        None => out.append_null(),
                        Some(fixed) => out.append_value(fixed.unwrap_or_default()),
                    }
                }
            }
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}
