//! Per-user read scopes: what a SQL user confined to some hosts, Kubernetes
//! namespaces or container labels may read.
//!
//! [`ScopedTable`] wraps each table the catalog registers for such a user.
//! It accepts none of the user's filters (they stay above it), scans its
//! table for the columns asked plus those the scope decides on (`host`,
//! `scope`, `scope_id`, and `container_id`/`image_id` where the table has
//! them), and [`ScopeExec`] drops every row the scope does not admit before
//! anything above sees it. The user's expressions therefore never run on
//! another team's rows: a view filtered in the same plan let DataFusion
//! reorder the user's predicates before the scope's, so `CAST(name AS BIGINT)`
//! errors quoted other hosts' values, and `ScopeExec` is a node of its own so
//! that no optimizer merges a parent's filter into it.
//!
//! Namespace and label grants are decided per container: the scan first reads
//! the `containers` rows that hosts reported (all of history, so a removed
//! container's past rows stay readable by its team) and admits, on that host
//! only, the container's own scope, rows about it (`container_id`), its
//! image's scope and rows about that image (`image_id`). A container's
//! namespace and labels are what its own host's agent reported, so a node can
//! show its own containers to a team, never another host's.

use std::fmt;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{Array, BooleanArray, RecordBatch};
use arrow_schema::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::Result;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, lit};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, SendableRecordBatchStream,
};
use futures::StreamExt;

/// What a SQL user may read: every table, view and join of its sessions
/// shows only rows whose `host` matches one of `hosts`, or that belong to a
/// container matching one of `namespaces` or `labels` (see the module
/// comment); patterns are globs (`*` any run of characters, `?` one,
/// anything else itself). The fleet-wide report tables are not there.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReadScope {
    pub hosts: Vec<String>,
    /// Kubernetes namespaces (`k8s_namespace` of `containers`).
    pub namespaces: Vec<String>,
    /// Container labels: (key, value glob).
    pub labels: Vec<(String, String)>,
}

/// Whether `name` matches `glob` (`*`: any run of characters, `?`: one).
pub fn glob_matches(glob: &str, name: &str) -> bool {
    let (g, n): (Vec<char>, Vec<char>) = (glob.chars().collect(), name.chars().collect());
    let (mut gi, mut ni) = (0, 0);
    // Where the last `*` was, and how much of the name it covers so far.
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        match g.get(gi) {
            Some('*') => {
                star = Some((gi, ni));
                gi += 1;
            }
            Some(&c) if c == '?' || c == n[ni] => {
                gi += 1;
                ni += 1;
            }
            _ => match star {
                Some((sg, sn)) => {
                    gi = sg + 1;
                    ni = sn + 1;
                    star = Some((sg, sn + 1));
                }
                None => return false,
            },
        }
    }
    g[gi..].iter().all(|&c| c == '*')
}

impl ReadScope {
    /// Adds one pattern: `GLOB` or `host:GLOB` (host names), `ns:GLOB`
    /// (Kubernetes namespaces), `label:KEY=GLOB` (a container label's value).
    pub fn add(&mut self, pattern: &str) -> Result<(), String> {
        let empty = || format!("{pattern:?}: empty pattern");
        if let Some(ns) = pattern.strip_prefix("ns:") {
            if ns.is_empty() {
                return Err(empty());
            }
            self.namespaces.push(ns.to_string());
        } else if let Some(label) = pattern.strip_prefix("label:") {
            match label.split_once('=') {
                Some((k, v)) if !k.is_empty() => self.labels.push((k.to_string(), v.to_string())),
                _ => return Err(format!("{pattern:?}: expected label:KEY=VALUEGLOB")),
            }
        } else {
            let host = pattern.strip_prefix("host:").unwrap_or(pattern);
            if host.is_empty() {
                return Err(empty());
            }
            self.hosts.push(host.to_string());
        }
        Ok(())
    }

    /// Whether this scope admits every row (a host pattern of only `*`).
    pub fn is_everything(&self) -> bool {
        self.hosts.iter().any(|g| !g.is_empty() && g.chars().all(|c| c == '*'))
    }

    /// Whether this scope admits rows of every container on `host`.
    pub fn admits(&self, host: &str) -> bool {
        self.hosts.iter().any(|g| glob_matches(g, host))
    }

    /// Whether containers are admitted by their namespace or labels.
    fn by_container(&self) -> bool {
        !self.namespaces.is_empty() || !self.labels.is_empty()
    }

    /// Whether a container with this namespace and labels (a JSON object) is admitted.
    fn admits_container(&self, namespace: Option<&str>, labels: Option<&str>) -> bool {
        if namespace.is_some_and(|ns| self.namespaces.iter().any(|g| glob_matches(g, ns))) {
            return true;
        }
        if self.labels.is_empty() {
            return false;
        }
        let Some(Ok(serde_json::Value::Object(map))) = labels.map(serde_json::from_str::<serde_json::Value>) else {
            return false;
        };
        self.labels.iter().any(|(k, g)| map.get(k).and_then(|v| v.as_str()).is_some_and(|v| glob_matches(g, v)))
    }

    /// `host LIKE …` for each pattern, ORed: handed to the table's own scan (where it
    /// supports it) only to prune, never trusted; [`ScopeExec`] decides.
    fn pruning(&self) -> Expr {
        use datafusion::logical_expr::expr::Like;
        let like = |glob: &str| {
            let mut p = String::with_capacity(glob.len());
            for c in glob.chars() {
                match c {
                    '*' => p.push('%'),
                    '?' => p.push('_'),
                    '%' | '_' | '\\' => {
                        p.push('\\');
                        p.push(c);
                    }
                    c => p.push(c),
                }
            }
            let host = Box::new(datafusion::prelude::col("host"));
            Expr::Like(Like::new(false, host, Box::new(lit(p)), Some('\\'), false))
        };
        self.hosts.iter().map(|g| like(g)).reduce(Expr::or).unwrap_or(lit(false))
    }

    /// `inner` as this scope lets it be read; `containers` is the unscoped
    /// `containers_history` table, read for namespace and label grants.
    pub fn wrap(
        self: &Arc<Self>,
        inner: Arc<dyn TableProvider>,
        containers: Arc<dyn TableProvider>,
    ) -> Arc<dyn TableProvider> {
        Arc::new(ScopedTable { inner, containers, scope: self.clone() })
    }

    /// The containers and images (by host) that namespace and label grants admit,
    /// from the `containers` rows every host reported about its own containers.
    async fn grants(&self, containers: &Arc<dyn TableProvider>, state: &dyn Session) -> Result<Grants> {
        let mut g = Grants::default();
        if !self.by_container() {
            return Ok(g);
        }
        let schema = containers.schema();
        let cols = ["host", "scope", "container_id", "image_id", "k8s_namespace", "labels"];
        let projection = cols.iter().map(|c| schema.index_of(c)).collect::<std::result::Result<Vec<_>, _>>()?;
        let plan = containers.scan(state, Some(&projection), &[], None).await?;
        let mut batches = datafusion::physical_plan::execute_stream(plan, state.task_ctx())?;
        while let Some(b) = batches.next().await {
            let b = b?;
            let text = |i: usize| arrow_cast::cast(b.column(i), &arrow_schema::DataType::Utf8);
            let (host, scope, container, image, ns, labels) =
                (text(0)?, text(1)?, text(2)?, text(3)?, text(4)?, text(5)?);
            let [host, scope, container, image, ns, labels] =
                [&host, &scope, &container, &image, &ns, &labels].map(|a| a.as_string::<i32>());
            for i in 0..b.num_rows() {
                let (Some(h), Some(periscope_proto::tables::scope::HOST), Some(c)) =
                    (get(host, i), get(scope, i), get(container, i))
                else {
                    continue;
                };
                if self.admits_container(get(ns, i), get(labels, i)) {
                    g.containers.insert((h.to_string(), c.to_string()));
                    if let Some(im) = get(image, i) {
                        g.images.insert((h.to_string(), im.to_string()));
                    }
                }
            }
        }
        Ok(g)
    }
}

/// The containers and images a scope admits through namespace and label
/// grants, each as (host, id).
#[derive(Debug, Default)]
struct Grants {
    containers: std::collections::HashSet<(String, String)>,
    images: std::collections::HashSet<(String, String)>,
}

/// Row `i` of `a`, None when null.
fn get(a: &arrow_array::StringArray, i: usize) -> Option<&str> {
    a.is_valid(i).then(|| a.value(i))
}

/// Row `i` of an optional column, None when it is absent or null.
fn get_opt(a: &Option<arrow_array::ArrayRef>, i: usize) -> Option<&str> {
    a.as_ref().and_then(|a| get(a.as_string::<i32>(), i))
}

/// A table as a scoped user reads it (see the module comment).
#[derive(Debug)]
pub struct ScopedTable {
    inner: Arc<dyn TableProvider>,
    containers: Arc<dyn TableProvider>,
    scope: Arc<ReadScope>,
}

/// Where, in the scan below a [`ScopeExec`], the columns it decides on are.
#[derive(Debug, Clone, Copy)]
struct Deciding {
    host: usize,
    /// `scope` and `scope_id`, `container_id` and `image_id` (where the table has them):
    /// read only when containers are admitted by namespace or label.
    scope: Option<(usize, usize)>,
    container: Option<usize>,
    image: Option<usize>,
}

#[async_trait]
impl TableProvider for ScopedTable {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }

    fn table_type(&self) -> TableType {
        self.inner.table_type()
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> Result<Vec<TableProviderFilterPushDown>> {
        // The user's filters run above the scope, on admitted rows only.
        Ok(vec![TableProviderFilterPushDown::Unsupported; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let schema = self.inner.schema();
        let wanted: Vec<usize> = projection.cloned().unwrap_or_else(|| (0..schema.fields().len()).collect());
        let mut read = wanted.clone();
        let mut need = |name: &str| -> Result<usize> {
            let i = schema.index_of(name)?;
            Ok(read.iter().position(|&r| r == i).unwrap_or_else(|| {
                read.push(i);
                read.len() - 1
            }))
        };
        let by_container = self.scope.by_container();
        let deciding = Deciding {
            host: need("host")?,
            scope: if by_container { Some((need("scope")?, need("scope_id")?)) } else { None },
            container: if by_container && schema.index_of("container_id").is_ok() {
                Some(need("container_id")?)
            } else {
                None
            },
            image: if by_container && schema.index_of("image_id").is_ok() { Some(need("image_id")?) } else { None },
        };
        // Host patterns prune the table's own scan where it can (never trusted: ScopeExec decides);
        // container grants cannot be said as a filter there.
        let pruning = self.scope.pruning();
        let pushed = match self.inner.supports_filters_pushdown(&[&pruning])?.first() {
            _ if by_container => Vec::new(),
            Some(TableProviderFilterPushDown::Unsupported) | None => Vec::new(),
            Some(_) => vec![pruning],
        };
        let grants = Arc::new(self.scope.grants(&self.containers, state).await?);
        let input = self.inner.scan(state, Some(&read), &pushed, None).await?;
        let scoped: Arc<dyn ExecutionPlan> = Arc::new(ScopeExec::new(input, deciding, self.scope.clone(), grants));
        if read == wanted {
            return Ok(scoped);
        }
        // Back to the columns asked for.
        let exprs = crate::view::columns(&scoped, wanted.iter().map(|&i| schema.field(i).name().as_str()))?;
        Ok(Arc::new(ProjectionExec::try_new(exprs, scoped)?))
    }
}

/// Passes on only the rows the scope admits.
#[derive(Debug)]
pub struct ScopeExec {
    input: Arc<dyn ExecutionPlan>,
    deciding: Deciding,
    scope: Arc<ReadScope>,
    grants: Arc<Grants>,
}

impl ScopeExec {
    fn new(input: Arc<dyn ExecutionPlan>, deciding: Deciding, scope: Arc<ReadScope>, grants: Arc<Grants>) -> ScopeExec {
        ScopeExec { input, deciding, scope, grants }
    }
}

impl DisplayAs for ScopeExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let s = &self.scope;
        write!(f, "ScopeExec: hosts={:?} namespaces={:?} labels={:?}", s.hosts, s.namespaces, s.labels)
    }
}

/// `b` less the rows `scope` does not admit.
fn admitted(b: &RecordBatch, at: Deciding, scope: &ReadScope, grants: &Grants) -> Result<RecordBatch> {
    let text = |i: usize| arrow_cast::cast(b.column(i), &arrow_schema::DataType::Utf8);
    let hosts = text(at.host)?;
    let hosts = hosts.as_string::<i32>();
    let opt = |i: Option<usize>| i.map(text).transpose();
    let (scopes, ids) = (opt(at.scope.map(|s| s.0))?, opt(at.scope.map(|s| s.1))?);
    let (containers, images) = (opt(at.container)?, opt(at.image)?);
    let container_grant = |host: &str, i: usize| {
        use periscope_proto::tables::scope::{CONTAINER, IMAGE};
        let has = |set: &std::collections::HashSet<(String, String)>, id: Option<&str>| {
            id.is_some_and(|id| set.contains(&(host.to_string(), id.to_string())))
        };
        // Each row is decided by one identity: a container's scope by its id, an image's by
        // its id; a host's rows about a container (containers, mounts, processes, …) by that
        // container alone, even when they also name its image (other teams run the same
        // images: pause sandboxes, sidecars); only rows about an image alone by the image.
        match get_opt(&scopes, i) {
            Some(CONTAINER) => has(&grants.containers, get_opt(&ids, i)),
            Some(IMAGE) => has(&grants.images, get_opt(&ids, i)),
            _ if containers.is_some() => has(&grants.containers, get_opt(&containers, i)),
            _ => has(&grants.images, get_opt(&images, i)),
        }
    };
    let keep: BooleanArray = (0..hosts.len())
        .map(|i| {
            let host = hosts.is_valid(i).then(|| hosts.value(i));
            Some(host.is_some_and(|h| scope.admits(h) || (scope.by_container() && container_grant(h, i))))
        })
        .collect();
    Ok(arrow_select::filter::filter_record_batch(b, &keep)?)
}

impl ExecutionPlan for ScopeExec {
    fn name(&self) -> &str {
        "ScopeExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        let input = crate::view::only_child(self.name(), children)?;
        Ok(Arc::new(ScopeExec::new(input, self.deciding, self.scope.clone(), self.grants.clone())))
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let input = self.input.execute(partition, context)?;
        let (at, scope, grants) = (self.deciding, self.scope.clone(), self.grants.clone());
        let rows = input.map(move |b| admitted(&b?, at, &scope, &grants));
        Ok(Box::pin(RecordBatchStreamAdapter::new(self.input.schema(), rows)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_as_globs() {
        for (g, n, want) in [
            ("web-*", "web-1", true),
            ("web-*", "web_1", false),
            ("web_*", "web_1", true),
            ("web_*", "webx1", false),
            ("web%", "web%", true),
            ("web%", "webx", false),
            ("web?1", "web-1", true),
            ("web?1", "web-12", false),
            ("*", "", true),
            ("*-db-*", "eu-db-1", true),
            ("*-db-*", "eu-web-1", false),
            ("a*b*c", "aXbYbZc", true),
            ("a*b*c", "aXbYbZ", false),
            ("", "", true),
            ("", "x", false),
        ] {
            assert_eq!(glob_matches(g, n), want, "{g} {n}");
        }
    }
}
