//! Values a query repeats row after row, bounded before they are copied.
//!
//! DataFusion builds some batches by copying one value many times, outside
//! any memory pool: a constant or a scalar subquery's value becomes a column
//! as long as the batch (`SELECT arrow_cast(repeat('x', 60000000),
//! 'LargeUtf8') FROM generate_series(1, 30000)` asked for ~490 GB, although
//! the capped `repeat` made only one 60 MB value, while planning); a join
//! copies a row for every match, `unnest` the other columns for every
//! element, a window function the value it picked for every row of its
//! frame. The capped functions (`udf::capped`) bound what one call
//! makes; this module bounds how often it is copied.
//!
//! Batches are cut by rows, and operators downstream (joins' and filters'
//! coalescers, repartitioning) merge small batches back up to the batch
//! size, so a bound that holds must hold per row: whatever a query repeats,
//! a full batch of it stays within [`MAX_REPEATED_BYTES`]. With the default
//! batch of 8,192 rows that is 32 KiB per repeated row:
//! - Every expression that has no column in it and holds a constant wider
//!   than [`WIDE_CONSTANT`] or a scalar subquery (whose value may be a
//!   gathered 64 MiB) is wrapped, whole, in `periscope_repeated` (an
//!   optimizer rule, after constant folding), which refuses a value wider
//!   than a full batch may repeat. A constant compared with (`=`, `LIKE`,
//!   `IN`) is never copied and is left alone, as is a literal argument a
//!   function needs as a literal (a `string_agg` delimiter).
//! - The first argument of a window function that repeats the value it
//!   picks (aggregates, `first_value`, `last_value`, `nth_value`) passes
//!   `periscope_window_value`, over the batch or the whole partition
//!   (`OVER ()`), whichever is larger; an unbounded window's buffered input
//!   is charged to the query's memory pool.
//! - Every join's rows are checked as they enter: a full output batch of
//!   the widest build row beside each probe row must stay within the limit.
//!   Joins see only the columns a query uses, so narrow the columns, or cut
//!   them (`substr`), to join wide values.
//! - Below `unnest`, the columns repeated for each element follow the same
//!   rule, each input slice's output stays within it, and above it batches
//!   are cut back to the batch size.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use arrow_array::cast::AsArray;
use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, FieldRef, SchemaRef};
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Result, exec_err};
use datafusion::config::ConfigOptions;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::expr::{ScalarFunction, WindowFunction};

use crate::width::{row_widths, value_width};
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::{
    BinaryExpr, ColumnarValue, Expr, ExprSchemable, LogicalPlan, Operator, ReturnFieldArgs, ScalarFunctionArgs,
    ScalarUDF, ScalarUDFImpl, Signature, Volatility, WindowFunctionDefinition,
};
use datafusion::optimizer::{ApplyOrder, OptimizerConfig, OptimizerRule};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::joins::{CrossJoinExec, HashJoinExec, NestedLoopJoinExec};
use datafusion::physical_plan::unnest::UnnestExec;
use datafusion::physical_plan::windows::{BoundedWindowAggExec, WindowAggExec};
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, RecordBatchStream};
use datafusion::prelude::SessionContext;
use futures::{Stream, StreamExt};

/// The most bytes one batch may hold of a value (or row) a query repeats.
pub const MAX_REPEATED_BYTES: u64 = 256 << 20;
/// Constants up to this size are left alone: a full batch of them stays far below the limit.
pub const WIDE_CONSTANT: usize = 1024;

const REPEATED: &str = "periscope_repeated";
const WINDOW_VALUE: &str = "periscope_window_value";
/// Window functions whose value for a row is another row's own (no repetition).
const MOVING: &[&str] = &["lag", "lead", "row_number", "rank", "dense_rank", "percent_rank", "cume_dist", "ntile"];

/// Installs the rules of this module on `ctx`. The guard functions are not
/// registered: the rules put them into plans, users cannot call them.
pub fn register(ctx: &SessionContext) {
    ctx.add_analyzer_rule(Arc::new(GuardWindowValues));
    ctx.add_optimizer_rule(Arc::new(GuardRepeatedValues));
    let state = ctx.state();
    let id = state.session_id().to_string();
    let state = SessionStateBuilder::new_from_existing(state)
        .with_session_id(id)
        .with_physical_optimizer_rule(Arc::new(GuardRepetition))
        .build();
    *ctx.state_ref().write() = state;
}

fn refused(what: &str, bytes: u64) -> datafusion::error::DataFusionError {
    datafusion::error::DataFusionError::Execution(format!(
        "{what} would hold {bytes} bytes in one batch, more than a query may build by repeating values \
         ({MAX_REPEATED_BYTES}); narrow the repeated value (select fewer or shorter columns, cut them with \
         substr, aggregate after joining) so that no query can take the server's memory"
    ))
}

// ---------------------------------------------------------------------------
// Constants, scalar subqueries and window values

/// `periscope_repeated(v)` and `periscope_window_value(v)`: `v`, refused
/// when a full batch (or the call's rows, when more) of it would pass the limit.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Guard {
    name: &'static str,
    signature: Signature,
}

impl Guard {
    fn new(name: &'static str) -> Self {
        // Immutable: folding a wide constant through it refuses while
        // planning; folding a narrow one gives the constant, wrapped again.
        Self { name, signature: Signature::any(1, Volatility::Immutable) }
    }
}

impl ScalarUDFImpl for Guard {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match arg_types {
            [t] => Ok(t.clone()),
            _ => exec_err!("{} takes one argument", self.name),
        }
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        match args.arg_fields {
            [f] => Ok(f.clone()),
            _ => exec_err!("{} takes one argument", self.name),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let Some(v) = args.args.into_iter().next() else { return exec_err!("{} takes one argument", self.name) };
        let batch = usize::from(args.config_options.execution.batch_size) as u64;
        let rows = (args.number_rows as u64).max(batch);
        let bytes = value_width(&v).saturating_mul(rows);
        if bytes > MAX_REPEATED_BYTES {
            let what = if self.name == REPEATED {
                "a constant or subquery value repeated for every row"
            } else {
                "a window function repeating its value for every row"
            };
            return Err(refused(what, bytes));
        }
        Ok(v)
    }
}

fn wrap(name: &'static str, e: Expr) -> Expr {
    Expr::ScalarFunction(ScalarFunction::new_udf(Arc::new(ScalarUDF::new_from_impl(Guard::new(name))), vec![e]))
}

fn is_guard(e: &Expr) -> bool {
    matches!(e, Expr::ScalarFunction(f) if f.name() == REPEATED || f.name() == WINDOW_VALUE)
}

/// Whether `e` has no column in it (so may evaluate to one value for a
/// whole batch) and holds a wide constant or a scalar subquery.
fn repeatable(e: &Expr) -> bool {
    let mut columns = false;
    let mut wide = false;
    let _ = e.apply(|x| {
        match x {
            Expr::Column(_) | Expr::OuterReferenceColumn(..) => columns = true,
            Expr::ScalarSubquery(_) => wide = true,
            Expr::Literal(v, _) if v.size() > WIDE_CONSTANT => wide = true,
            // An aggregate or window call is evaluated over rows, not repeated whole.
            Expr::AggregateFunction(_) | Expr::WindowFunction(_) => columns = true,
            _ => {}
        }
        Ok(if columns { TreeNodeRecursion::Stop } else { TreeNodeRecursion::Continue })
    });
    wide && !columns
}

fn compares(op: Operator) -> bool {
    use Operator::*;
    matches!(
        op,
        Eq | NotEq
            | Lt
            | LtEq
            | Gt
            | GtEq
            | IsDistinctFrom
            | IsNotDistinctFrom
            | RegexMatch
            | RegexIMatch
            | RegexNotMatch
            | RegexNotIMatch
            | LikeMatch
            | ILikeMatch
            | NotLikeMatch
            | NotILikeMatch
    )
}

/// Wraps the largest repeatable parts of `e` (see [`repeatable`]).
fn guard_repeated(e: Expr) -> Result<Transformed<Expr>> {
    if is_guard(&e) {
        return Ok(Transformed::no(e));
    }
    let literal = |e: &Expr| matches!(e, Expr::Literal(..));
    match e {
        Expr::Alias(_) | Expr::AggregateFunction(_) | Expr::WindowFunction(_) => {
            // Literal arguments past the first (a delimiter, a default) are
            // used as literals; the rest are evaluated per row.
            let positional = matches!(e, Expr::AggregateFunction(_) | Expr::WindowFunction(_));
            let mut i = 0usize;
            e.map_children(|c| {
                i += 1;
                if positional && i > 1 && literal(&c) { Ok(Transformed::no(c)) } else { guard_repeated(c) }
            })
        }
        e if repeatable(&e) => Ok(Transformed::yes(wrap(REPEATED, e))),
        Expr::BinaryExpr(BinaryExpr { left, op, right }) if compares(op) => {
            // A constant compared with is never copied (a regular expression
            // only on the right: with the constant on the left both sides are expanded).
            let regex = matches!(
                op,
                Operator::RegexMatch | Operator::RegexIMatch | Operator::RegexNotMatch | Operator::RegexNotIMatch
            );
            let l = if literal(&left) && !regex { Transformed::no(*left) } else { guard_repeated(*left)? };
            let r = if literal(&right) { Transformed::no(*right) } else { guard_repeated(*right)? };
            let changed = l.transformed || r.transformed;
            let e = Expr::BinaryExpr(BinaryExpr::new(Box::new(l.data), op, Box::new(r.data)));
            Ok(Transformed::new(e, changed, TreeNodeRecursion::Continue))
        }
        Expr::Like(mut l) => {
            let x = guard_repeated(*l.expr)?;
            let p = if literal(&l.pattern) { Transformed::no(*l.pattern) } else { guard_repeated(*l.pattern)? };
            let changed = x.transformed || p.transformed;
            (l.expr, l.pattern) = (Box::new(x.data), Box::new(p.data));
            Ok(Transformed::new(Expr::Like(l), changed, TreeNodeRecursion::Continue))
        }
        Expr::InList(mut l) => {
            let x = guard_repeated(*l.expr)?;
            let mut changed = x.transformed;
            l.expr = Box::new(x.data);
            let mut list = Vec::with_capacity(l.list.len());
            for item in std::mem::take(&mut l.list) {
                let t = if literal(&item) { Transformed::no(item) } else { guard_repeated(item)? };
                changed |= t.transformed;
                list.push(t.data);
            }
            l.list = list;
            Ok(Transformed::new(Expr::InList(l), changed, TreeNodeRecursion::Continue))
        }
        e => e.map_children(guard_repeated),
    }
}

/// Wraps repeatable expressions in `periscope_repeated`. Runs last in each
/// optimizer pass, so after constant folding and projection merging.
#[derive(Debug)]
struct GuardRepeatedValues;

impl OptimizerRule for GuardRepeatedValues {
    fn name(&self) -> &str {
        "guard_repeated_values"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::TopDown)
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn rewrite(&self, plan: LogicalPlan, _config: &dyn OptimizerConfig) -> Result<Transformed<LogicalPlan>> {
        // A scan's pushed filters are compared by the table, never repeated;
        // each value of a VALUES list is one row, written out in the query;
        // a SELECT without FROM makes one row, once.
        let once = |p: &LogicalPlan| matches!(p, LogicalPlan::EmptyRelation(e) if e.produce_one_row);
        match &plan {
            LogicalPlan::TableScan(_) | LogicalPlan::Values(_) => return Ok(Transformed::no(plan)),
            LogicalPlan::Projection(p) if once(&p.input) => return Ok(Transformed::no(plan)),
            _ => {}
        }
        let names = NamePreserver::new(&plan);
        plan.map_expressions(|e| {
            let name = names.save(&e);
            let e = guard_repeated(e)?;
            Ok(if e.transformed { e.update_data(|e| name.restore(e)) } else { e })
        })
    }
}

/// Passes the first argument of every window function that repeats the
/// value it picks through `periscope_window_value`.
#[derive(Debug)]
struct GuardWindowValues;

impl datafusion::optimizer::AnalyzerRule for GuardWindowValues {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|node| {
            let LogicalPlan::Window(_) = &node else { return Ok(Transformed::no(node)) };
            let schema = node.inputs().first().map(|i| Arc::clone(i.schema()));
            let Some(schema) = schema else { return Ok(Transformed::no(node)) };
            let names = NamePreserver::new(&node);
            node.map_expressions(|e| {
                let name = names.save(&e);
                let e = e.transform_down(|e| match e {
                    Expr::WindowFunction(w) => {
                        let mut w: WindowFunction = *w;
                        let moving = match &w.fun {
                            WindowFunctionDefinition::WindowUDF(f) => MOVING.contains(&f.name()),
                            WindowFunctionDefinition::AggregateUDF(_) => false,
                        };
                        let narrow = |t: &DataType| t.is_primitive() || *t == DataType::Boolean || *t == DataType::Null;
                        // What it returns decides (count of a wide column repeats a number).
                        let result = Expr::WindowFunction(Box::new(w.clone())).get_type(schema.as_ref())?;
                        let first = w.params.args.first();
                        let wide = match first {
                            Some(a)
                                if !moving && !narrow(&result) && !matches!(a, Expr::Literal(..)) && !is_guard(a) =>
                            {
                                !narrow(&a.get_type(schema.as_ref())?)
                            }
                            _ => false,
                        };
                        // lag/lead fill the rows without a neighbour with their default: a wide one is copied for each.
                        if let WindowFunctionDefinition::WindowUDF(f) = &w.fun
                            && matches!(f.name(), "lag" | "lead")
                            && let Some(Expr::Literal(d, _)) = w.params.args.get(2)
                            && d.size() > WIDE_CONSTANT
                        {
                            return datafusion::common::plan_err!(
                                "{}: a default of {} bytes would be copied for every row without a neighbour; \
                                 defaults are limited to {WIDE_CONSTANT} bytes",
                                f.name(),
                                d.size()
                            );
                        }
                        if wide {
                            let a = w.params.args.remove(0);
                            w.params.args.insert(0, wrap(WINDOW_VALUE, a));
                        }
                        Ok(Transformed::new(Expr::WindowFunction(Box::new(w)), wide, TreeNodeRecursion::Jump))
                    }
                    e => Ok(Transformed::no(e)),
                })?;
                Ok(if e.transformed { e.update_data(|e| name.restore(e)) } else { e })
            })
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "guard_window_values"
    }
}

// ---------------------------------------------------------------------------
// Joins, unnest and unbounded windows

/// Adds guards below every join, around every `unnest`, and below every
/// unbounded window.
#[derive(Debug)]
struct GuardRepetition;

impl PhysicalOptimizerRule for GuardRepetition {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, config: &ConfigOptions) -> Result<Arc<dyn ExecutionPlan>> {
        let batch = usize::from(config.execution.batch_size) as u64;
        plan.transform_up(|node| {
            // Every batch a scan, a join or unnest makes, and every one a window holds, passes
            // a guard, which asks the query's account (see `account`): operators that buffer
            // outside the pool (a bounded window's input) or multiply rows are stopped there.
            if node.children().is_empty() {
                return Ok(Transformed::yes(Guarded::new(node, Role::Check, batch)));
            }
            if node.is::<BoundedWindowAggExec>() {
                let children: Vec<Arc<dyn ExecutionPlan>> = node.children().into_iter().cloned().collect();
                let inputs = children.into_iter().map(|c| Guarded::new(c, Role::Check, batch)).collect();
                return Ok(Transformed::yes(node.replace_children(inputs, keep())?));
            }
            let collected = node.is::<CrossJoinExec>() || node.is::<HashJoinExec>() || node.is::<NestedLoopJoinExec>();
            if (collected || (node.children().len() == 2 && node.name().contains("Join"))) && !filters_only(&node) {
                let children: Vec<Arc<dyn ExecutionPlan>> = node.children().into_iter().cloned().collect();
                let [left, right] = <[_; 2]>::try_from(children)
                    .map_err(|_| datafusion::error::DataFusionError::Internal("a join without two inputs".into()))?;
                let (l, r) = if collected {
                    // The build side (left) is read whole before the probe side.
                    let build = Arc::new(AtomicU64::new(0));
                    (Role::Build(build.clone()), Role::Probe(build))
                } else {
                    // Neither side is read first: each gets half.
                    (Role::Narrow(2), Role::Narrow(2))
                };
                let left = Guarded::new(left, l, batch);
                let right = Guarded::new(right, r, batch);
                let join = node.replace_children(vec![left, right], keep())?;
                return Ok(Transformed::yes(Guarded::new(join, Role::Check, batch)));
            }
            if let Some(u) = node.downcast_ref::<UnnestExec>() {
                let lists: Vec<(usize, bool)> =
                    u.list_column_indices().iter().map(|l| (l.index_in_input_schema, l.depth > 1)).collect();
                let input = Guarded::new(u.input().clone(), Role::Unnest(lists), batch);
                let node = node.clone().replace_children(vec![input], keep())?;
                return Ok(Transformed::yes(Guarded::new(node, Role::Rebatch, batch)));
            }
            if node.is::<WindowAggExec>() {
                let children: Vec<Arc<dyn ExecutionPlan>> = node.children().into_iter().cloned().collect();
                let inputs = children.into_iter().map(|c| Guarded::new(c, Role::Charge, batch)).collect();
                return Ok(Transformed::yes(node.replace_children(inputs, keep())?));
            }
            Ok(Transformed::no(node))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "guard_repetition"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// Semi, anti and mark joins keep rows of one side, each at most once: they repeat nothing.
fn filters_only(node: &Arc<dyn ExecutionPlan>) -> bool {
    use datafusion::common::JoinType::*;
    let t = if let Some(j) = node.downcast_ref::<HashJoinExec>() {
        Some(*j.join_type())
    } else if let Some(j) = node.downcast_ref::<NestedLoopJoinExec>() {
        Some(*j.join_type())
    } else {
        None
    };
    matches!(t, Some(LeftSemi | RightSemi | LeftAnti | RightAnti | LeftMark | RightMark))
}

/// Replacing a node's inputs by guards over them changes none of its properties.
fn keep() -> datafusion::physical_plan::ReplaceChildrenOptions {
    datafusion::physical_plan::ReplaceChildrenOptions::new(datafusion::physical_plan::ChildrenPropertiesMode::Keep)
}

#[derive(Debug, Clone)]
enum Role {
    /// A join's build side: no row wider than a full batch may repeat; the widest is kept.
    Build(Arc<AtomicU64>),
    /// A join's probe side: each row beside the widest build row, a full batch of them within the limit.
    Probe(Arc<AtomicU64>),
    /// A streaming join's input: rows within this share of a full batch's limit.
    Narrow(u64),
    /// Below `unnest` (these columns are unnested, and whether more than one level deep):
    /// the others are repeated for each element.
    Unnest(Vec<(usize, bool)>),
    /// Above `unnest`: batches cut back to the batch size.
    Rebatch,
    /// Below an unbounded window, which holds all its input: charged to the query's memory pool.
    Charge,
    /// Above a scan, a join or a bounded window's input: only the query's account is asked
    /// (as every guard asks it, see [`crate::account`]).
    Check,
}

#[derive(Debug)]
struct Guarded {
    input: Arc<dyn ExecutionPlan>,
    role: Role,
    batch: u64,
    properties: Arc<PlanProperties>,
}

impl Guarded {
    fn new(input: Arc<dyn ExecutionPlan>, role: Role, batch: u64) -> Arc<dyn ExecutionPlan> {
        let properties = Arc::clone(input.properties());
        Arc::new(Self { input, role, batch, properties })
    }

    /// Where `batch` is cut (the end of each slice), or why it is refused.
    fn cuts(&self, batch: &RecordBatch, charged: Option<&mut MemoryReservation>) -> Result<Vec<usize>> {
        // Whatever else it asks, a guard passes no batch of a query that holds too much.
        crate::account::check()?;
        let n = batch.num_rows();
        let limit = MAX_REPEATED_BYTES;
        // Batches may be longer than the batch size (memory tables, cross join output).
        let full = |w: u64| w.saturating_mul(self.batch.max(n as u64));
        let widest = |cols: Option<&[usize]>| row_widths(batch, cols).into_iter().max().unwrap_or(0);
        match &self.role {
            Role::Build(top) => {
                let w = widest(None);
                if full(w) > limit {
                    return Err(refused("a join repeating a build row for every match", full(w)));
                }
                top.fetch_max(w, Ordering::Relaxed);
                Ok(vec![n])
            }
            Role::Probe(top) => {
                let w = widest(None).saturating_add(top.load(Ordering::Relaxed));
                if full(w) > limit {
                    return Err(refused("a join repeating rows for every match", full(w)));
                }
                Ok(vec![n])
            }
            Role::Narrow(share) => {
                let w = widest(None).saturating_mul(*share);
                if full(w) > limit {
                    return Err(refused("a join repeating rows for every match", full(w)));
                }
                Ok(vec![n])
            }
            Role::Check => Ok(vec![n]),
            Role::Rebatch => {
                let step = self.batch as usize;
                Ok((1..=n.div_ceil(step)).map(|i| (i * step).min(n)).collect())
            }
            Role::Charge => {
                if let Some(r) = charged {
                    r.try_grow(row_widths(batch, None).into_iter().fold(0u64, u64::saturating_add) as usize)?;
                }
                Ok(vec![n])
            }
            Role::Unnest(lists) => {
                let others: Vec<usize> =
                    (0..batch.num_columns()).filter(|i| !lists.iter().any(|l| l.0 == *i)).collect();
                let w = row_widths(batch, Some(&others));
                let top = w.iter().copied().max().unwrap_or(0);
                if full(top) > limit {
                    return Err(refused("unnest repeating the other columns for every element", full(top)));
                }
                let mut elements = vec![0u64; n];
                for &(i, deep) in lists {
                    let Some(c) = batch.columns().get(i) else { continue };
                    // Unnested more than one level, a row becomes as many rows as it has nested elements.
                    let lengths = if deep { crate::width::leaf_counts(c.as_ref()) } else { list_lengths(c.as_ref()) };
                    for (e, len) in elements.iter_mut().zip(lengths) {
                        *e = (*e).max(len);
                    }
                }
                let each: Vec<u64> = w.iter().zip(&elements).map(|(&w, &e)| w.saturating_mul(e)).collect();
                slices(&each, limit, "unnest repeating the other columns for every element")
            }
        }
    }
}

/// Element counts of a list column's rows (0 for other types).
fn list_lengths(a: &dyn Array) -> Vec<u64> {
    match a.data_type() {
        DataType::List(_) => {
            a.as_list::<i32>().value_offsets().windows(2).map(|w| (w[1] - w[0]).max(0) as u64).collect()
        }
        DataType::LargeList(_) => {
            a.as_list::<i64>().value_offsets().windows(2).map(|w| (w[1] - w[0]).max(0) as u64).collect()
        }
        DataType::FixedSizeList(_, s) => vec![(*s).max(0) as u64; a.len()],
        _ => vec![0; a.len()],
    }
}

/// Cuts rows costing `each` into slices whose sum stays within `limit`; a
/// row that alone passes it is refused.
fn slices(each: &[u64], limit: u64, what: &str) -> Result<Vec<usize>> {
    let mut cuts = Vec::new();
    let mut sum = 0u64;
    for (i, &x) in each.iter().enumerate() {
        if x > limit {
            return Err(refused(what, x));
        }
        if sum.saturating_add(x) > limit {
            cuts.push(i);
            sum = 0;
        }
        sum = sum.saturating_add(x);
    }
    cuts.push(each.len());
    Ok(cuts)
}

impl DisplayAs for Guarded {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let role = match &self.role {
            Role::Build(_) => "build",
            Role::Probe(..) => "probe",
            Role::Narrow(_) => "narrow",
            Role::Unnest(_) => "unnest",
            Role::Rebatch => "rebatch",
            Role::Charge => "charge",
            Role::Check => "check",
        };
        write!(f, "RepetitionGuard: {role}")
    }
}

impl ExecutionPlan for Guarded {
    fn name(&self) -> &str {
        "RepetitionGuard"
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn datafusion::physical_plan::PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false]
    }

    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        match <[_; 1]>::try_from(children) {
            Ok([input]) => Ok(Guarded::new(input, self.role.clone(), self.batch)),
            Err(_) => datafusion::common::internal_err!("RepetitionGuard takes one input"),
        }
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let charged = matches!(self.role, Role::Charge)
            .then(|| MemoryConsumer::new(format!("window input[{partition}]")).register(context.memory_pool()));
        let input = self.input.execute(partition, context)?;
        let guard = Guarded {
            input: self.input.clone(),
            role: self.role.clone(),
            batch: self.batch,
            properties: self.properties.clone(),
        };
        Ok(Box::pin(GuardStream { schema: input.schema(), input, guard, pending: Vec::new(), charged }))
    }
}

struct GuardStream {
    schema: SchemaRef,
    input: SendableRecordBatchStream,
    guard: Guarded,
    /// Slices cut from the last batch, not yet handed on (in reverse order).
    pending: Vec<RecordBatch>,
    /// What an unbounded window holds of its input, in the query's pool until the stream ends.
    charged: Option<MemoryReservation>,
}

impl Stream for GuardStream {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Some(b) = self.pending.pop() {
            return Poll::Ready(Some(Ok(b)));
        }
        match self.input.poll_next_unpin(cx) {
            Poll::Ready(Some(Ok(batch))) => match {
                let this = &mut *self;
                this.guard.cuts(&batch, this.charged.as_mut())
            } {
                Ok(cuts) if cuts.len() <= 1 => Poll::Ready(Some(Ok(batch))),
                Ok(cuts) => {
                    let mut start = 0;
                    let mut parts = Vec::with_capacity(cuts.len());
                    for end in cuts {
                        parts.push(batch.slice(start, end - start));
                        start = end;
                    }
                    parts.reverse();
                    let first = parts.pop();
                    self.pending = parts;
                    Poll::Ready(first.map(Ok))
                }
                Err(e) => Poll::Ready(Some(Err(e))),
            },
            other => other,
        }
    }
}

impl RecordBatchStream for GuardStream {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn run(sql: &str) -> Result<Vec<RecordBatch>> {
        let ctx = SessionContext::new();
        crate::udf::register(&ctx);
        register(&ctx);
        ctx.sql(sql).await?.collect().await
    }

    #[tokio::test]
    async fn ordinary_queries_give_what_datafusion_gives() {
        let wide = "w".repeat(3000);
        for sql in [
            format!("SELECT '{wide}' AS c, value FROM generate_series(1, 100) ORDER BY value"),
            "SELECT a.value, b.value FROM generate_series(1, 300) a JOIN generate_series(1, 300) b ON a.value = b.value \
             ORDER BY 1"
                .into(),
            "SELECT a.value, b.value FROM generate_series(1, 300) a CROSS JOIN generate_series(1, 30) b ORDER BY 1, 2".into(),
            "SELECT unnest(range(1, 20000)) AS u, 'abc' AS s".into(),
            "SELECT (SELECT max(value) FROM generate_series(1, 10)) AS m, value FROM generate_series(1, 50) ORDER BY value"
                .into(),
            "SELECT first_value(s) OVER (ORDER BY s) FROM (SELECT repeat('s', value) AS s FROM generate_series(1, 40)) t"
                .into(),
            format!("SELECT count(*) FROM generate_series(1, 10) WHERE '{wide}' LIKE 'w%'"),
        ] {
            let ours = run(&sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
            let plain = SessionContext::new().sql(&sql).await.unwrap().collect().await.unwrap();
            assert_eq!(
                arrow_cast::pretty::pretty_format_batches(&ours).unwrap().to_string(),
                arrow_cast::pretty::pretty_format_batches(&plain).unwrap().to_string(),
                "{sql}"
            );
        }
    }

    #[tokio::test]
    async fn repeating_a_wide_value_is_refused_before_it_is_copied() {
        // Each of these asked DataFusion for gigabytes to hundreds of
        // gigabytes outside any memory pool; each is refused before the copy.
        for sql in [
            // A folded constant, as wide as the capped repeat allows, for every row.
            "SELECT arrow_cast(repeat('x', 60000000), 'LargeUtf8') FROM generate_series(1, 30000)",
            // A scalar subquery's value for every row, also inside a function.
            "SELECT (SELECT string_agg(repeat('y', 6000000), '') FROM generate_series(1, 5)) FROM generate_series(1, 30000)",
            "SELECT max(value || concat_ws((SELECT max(repeat('x', 40000)) FROM generate_series(1, 1)), 'a', 'a', 'a', 'a')) \
             FROM generate_series(1, 30000)",
            // One wide row, repeated by a cross join, a hash join and a nested-loop join.
            "SELECT length(s) FROM (SELECT repeat('z', 1000000) AS s) a CROSS JOIN generate_series(1, 30000) b",
            "SELECT length(s) FROM (SELECT 1 AS k, repeat('z', 1000000) AS s) a \
             JOIN (SELECT value % 1 + 1 AS k FROM generate_series(1, 30000)) b ON a.k = b.k",
            "SELECT length(s) FROM (SELECT 1 AS k, repeat('z', 1000000) AS s) a \
             JOIN generate_series(1, 30000) b ON a.k < b.value",
            // unnest repeating the other columns for every element, one level or more.
            "SELECT s, unnest(range(1, 30000)) FROM (SELECT repeat('u', 60000000) AS s)",
            "SELECT length(s), unnest(unnest(n)) FROM (SELECT arrow_cast(repeat(CAST(value AS VARCHAR), 32000), 'LargeUtf8') AS s, \
             make_array(range(1, 100000)) AS n FROM generate_series(1, 1))",
            // A window function repeating its pick for every row of the partition.
            "SELECT length(max(s) OVER ()) FROM (SELECT CASE WHEN value = 1 THEN repeat('v', 10000) ELSE 'v' END AS s \
             FROM generate_series(1, 30000)) t",
        ] {
            let e = run(sql).await.err().unwrap_or_else(|| panic!("{sql}: not refused")).to_string();
            assert!(e.contains("repeating values"), "{sql}: {e}");
        }
    }

    #[tokio::test]
    async fn what_is_not_repeated_is_left_alone() {
        let wide = "w".repeat(9000);
        for (sql, want) in [
            // 40 build rows of 20 KB, each matching 150 probe rows: a full batch stays within the limit.
            (
                "SELECT count(*), sum(length(s)) FROM (SELECT value % 2 AS k, repeat('a', 20000) AS s \
                 FROM generate_series(1, 40)) a JOIN (SELECT value % 2 AS k FROM generate_series(1, 300)) b ON a.k = b.k"
                    .to_string(),
                "6000|120000000",
            ),
            // A wide constant compared with, or a delimiter, is used as it is.
            (format!("SELECT count(*), 0 FROM generate_series(1, 3000) WHERE repeat('w', 9000 + value % 2) = '{wide}'"), "1500|0"),
            (format!("SELECT count(*), 0 FROM generate_series(1, 30000) WHERE '{wide}' LIKE 'w%'"), "30000|0"),
            (format!("SELECT length(string_agg(CAST(value AS VARCHAR), '{wide}')), 0 FROM generate_series(1, 3)"), "18003|0"),
            // lag and lead take a literal default, and repeat nothing.
            (
                "SELECT count(a), max(length(b)) FROM (SELECT lag(s, 1, 'none') OVER (ORDER BY value) AS a, \
                 lead(s) OVER (ORDER BY value) AS b FROM (SELECT value, repeat('l', CASE WHEN value > 0 THEN 40000 ELSE 1 END) AS s FROM generate_series(1, 3)) t) w"
                    .into(),
                "3|40000",
            ),
        ] {
            let b = run(&sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
            let row = |i: usize| arrow_cast::display::array_value_to_string(b[0].column(i), 0).unwrap();
            assert_eq!(format!("{}|{}", row(0), row(1)), want, "{sql}");
        }
    }
}
