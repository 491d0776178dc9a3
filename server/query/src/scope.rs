//! Per-user read scopes: what a SQL user confined to some hosts may read.
//!
//! [`ScopedTable`] wraps each table the catalog registers for such a user.
//! It accepts none of the user's filters (they stay above it), scans its
//! table for the columns asked plus `host`, and [`ScopeExec`] drops every row
//! whose host no pattern matches before anything above sees it. The user's
//! expressions therefore never run on another host's rows: a view filtered
//! in the same plan let DataFusion reorder the user's predicates before the
//! scope's, so `CAST(name AS BIGINT)` errors quoted other hosts' values, and
//! `ScopeExec` is a node of its own so that no optimizer merges a parent's
//! filter into it.

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

/// The hosts a SQL user may read: every table, view and join of its sessions
/// shows only rows whose `host` matches one of these patterns (`*` any run of
/// characters, `?` one, anything else itself), and the fleet-wide report
/// tables are not there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadScope {
    pub hosts: Vec<String>,
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
    /// Whether this scope admits rows of `host`.
    pub fn admits(&self, host: &str) -> bool {
        self.hosts.iter().any(|g| glob_matches(g, host))
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

    /// `inner` as this scope lets it be read.
    pub fn wrap(self: &Arc<Self>, inner: Arc<dyn TableProvider>) -> Arc<dyn TableProvider> {
        Arc::new(ScopedTable { inner, scope: self.clone() })
    }
}

/// A table as a scoped user reads it (see the module comment).
#[derive(Debug)]
pub struct ScopedTable {
    inner: Arc<dyn TableProvider>,
    scope: Arc<ReadScope>,
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
        let host = schema.index_of("host")?;
        let wanted: Vec<usize> = projection.cloned().unwrap_or_else(|| (0..schema.fields().len()).collect());
        let mut read = wanted.clone();
        if !read.contains(&host) {
            read.push(host);
        }
        let pruning = self.scope.pruning();
        let pushed = match self.inner.supports_filters_pushdown(&[&pruning])?.first() {
            Some(TableProviderFilterPushDown::Unsupported) | None => Vec::new(),
            Some(_) => vec![pruning],
        };
        let input = self.inner.scan(state, Some(&read), &pushed, None).await?;
        let host_at = read.iter().position(|&i| i == host).expect("host was added");
        let scoped: Arc<dyn ExecutionPlan> = Arc::new(ScopeExec::new(input, host_at, self.scope.clone()));
        if read == wanted {
            return Ok(scoped);
        }
        // Back to the columns asked for.
        let exprs = crate::view::columns(&scoped, wanted.iter().map(|&i| schema.field(i).name().as_str()))?;
        Ok(Arc::new(ProjectionExec::try_new(exprs, scoped)?))
    }
}

/// Passes on only the rows whose host (column `host_at`) the scope admits.
#[derive(Debug)]
pub struct ScopeExec {
    input: Arc<dyn ExecutionPlan>,
    host_at: usize,
    scope: Arc<ReadScope>,
}

impl ScopeExec {
    fn new(input: Arc<dyn ExecutionPlan>, host_at: usize, scope: Arc<ReadScope>) -> ScopeExec {
        ScopeExec { input, host_at, scope }
    }
}

impl DisplayAs for ScopeExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "ScopeExec: hosts={:?}", self.scope.hosts)
    }
}

/// `b` less the rows whose host `scope` does not admit.
fn admitted(b: &RecordBatch, host_at: usize, scope: &ReadScope) -> Result<RecordBatch> {
    let hosts = arrow_cast::cast(b.column(host_at), &arrow_schema::DataType::Utf8)?;
    let hosts = hosts.as_string::<i32>();
    let keep: BooleanArray =
        (0..hosts.len()).map(|i| Some(hosts.is_valid(i) && scope.admits(hosts.value(i)))).collect();
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
        Ok(Arc::new(ScopeExec::new(input, self.host_at, self.scope.clone())))
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let input = self.input.execute(partition, context)?;
        let (host_at, scope) = (self.host_at, self.scope.clone());
        let rows = input.map(move |b| admitted(&b?, host_at, &scope));
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
