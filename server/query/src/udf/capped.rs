//! Built-in functions whose output (or work) one argument decides, capped.
//!
//! Scalar functions allocate outside a query's memory pool, and constant
//! folding runs them while planning, before the time limit starts: under a
//! 64 MiB query limit `length(repeat('x', 2e9))` held 11.6 GB for 24 s, and
//! `levenshtein` of two 100k strings took 11 s (issue 18 item 7). Each
//! function below is DataFusion's own, wrapped: before it runs, the output
//! (or, for `levenshtein`, the work) its arguments ask for is estimated from
//! their lengths and counts alone, and a call asking for more than
//! [`MAX_OUTPUT_BYTES`] (or [`MAX_WORK`]) is refused with an error naming the
//! function, before anything is allocated.
//!
//! Aggregates that gather their input into one value (`array_agg`,
//! `string_agg`) are wrapped the same way: each accumulator counts the bytes
//! it has taken in and refuses past [`MAX_OUTPUT_BYTES`], and says at least
//! that much when the memory pool asks its size. Unwrapped, `array_agg` of
//! 1.5 GB held 470 MB of server memory under a 64 MiB query limit, and a
//! grouped `string_agg` ran 13 s before the pool noticed.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef};
use arrow_schema::{DataType, FieldRef};
use datafusion::common::ScalarValue;
use datafusion::common::{Result, exec_err};
use datafusion::execution::FunctionRegistry;
use datafusion::logical_expr::function::{AccumulatorArgs, AggregateFunctionSimplification, StateFieldsArgs};
use datafusion::logical_expr::utils::AggregateOrderSensitivity;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, ColumnarValue, Documentation, ReturnFieldArgs, ScalarFunctionArgs,
    ScalarUDF, ScalarUDFImpl, Signature,
};
use datafusion::prelude::SessionContext;

/// The most one call (one batch of rows) of a capped function may produce.
pub const MAX_OUTPUT_BYTES: u64 = 64 << 20;
/// The most character comparisons one call of `levenshtein` may make (about a quarter second).
pub const MAX_WORK: u64 = 250_000_000;
/// The most one call of a function no larger than its arguments (concat, `||`,
/// make_array, …) may make: what a full batch may hold of a repeated value.
pub const MAX_CALL_BYTES: u64 = 256 << 20;
/// The most elements one call of `array_repeat` may produce.
pub const MAX_ELEMENTS: u64 = 16 << 20;

/// How a function's arguments decide its cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Rule {
    /// repeat(s, n): len(s) × n bytes.
    Repeat,
    /// lpad/rpad(s, n[, fill]): n characters.
    Pad,
    /// replace(s, from, to): every occurrence of `from` becomes `to`.
    Replace,
    /// regexp_replace(s, pattern, repl[, flags]): a pattern may match between every two characters.
    RegexpReplace,
    /// levenshtein(a, b): len(a) × len(b) comparisons.
    Levenshtein,
    /// array_repeat(x, n): n elements, each a copy of x.
    ArrayRepeat,
    /// array_resize(a, n[, fill]): n elements, the new ones copies of fill.
    ArrayResize,
    /// array_to_string(a, sep[, null]): a separator (or the null text) for every element, nested ones included.
    ArrayToString,
    /// array_replace_all/array_replace_n(a, from, to[, n]): every element may become `to`.
    ArrayReplaceAll,
    /// to_char/date_format(t, format): a format directive may print ~16 times its length.
    ToChar,
    /// regexp_match(s, pattern[, flags]): every group copies what it captured, up to the whole string.
    RegexpMatch,
    /// Functions whose output is no larger than their inputs together (concat,
    /// make_array, …): each value they make is checked after the call, so a
    /// chain of them (`s || s` nested) stops at the cap instead of doubling.
    Grows,
    /// range/generate_series(start, stop[, step]) of integers: (stop - start) / step elements.
    /// Over dates and timestamps the step is an interval: not capped here.
    Range,
}

const CAPPED: &[(&str, Rule)] = &[
    ("repeat", Rule::Repeat),
    ("lpad", Rule::Pad),
    ("rpad", Rule::Pad),
    ("replace", Rule::Replace),
    ("regexp_replace", Rule::RegexpReplace),
    ("levenshtein", Rule::Levenshtein),
    ("array_repeat", Rule::ArrayRepeat),
    ("array_resize", Rule::ArrayResize),
    ("range", Rule::Range),
    ("generate_series", Rule::Range),
    ("array_to_string", Rule::ArrayToString),
    ("to_char", Rule::ToChar),
    ("regexp_match", Rule::RegexpMatch),
    ("array_replace_all", Rule::ArrayReplaceAll),
    ("array_replace_n", Rule::ArrayReplaceAll),
    ("concat", Rule::Grows),
    ("concat_ws", Rule::Grows),
    ("array_concat", Rule::Grows),
    ("array_append", Rule::Grows),
    ("array_prepend", Rule::Grows),
    ("array_union", Rule::Grows),
    ("make_array", Rule::Grows),
    ("flatten", Rule::Grows),
    ("encode", Rule::Grows),
    ("to_hex", Rule::Grows),
    ("overlay", Rule::Grows),
    ("translate", Rule::Grows),
    ("named_struct", Rule::Grows),
    ("struct", Rule::Grows),
    ("map", Rule::Grows),
    ("make_map", Rule::Grows),
    (CONCAT_OPERATOR, Rule::Grows),
];

/// `a || b` on strings is an operator, not a function: an analyzer rule
/// wraps it in this checked identity function.
const CONCAT_OPERATOR: &str = "periscope_concat_checked";

/// Aggregates whose one value holds what they gathered.
const GATHERING: &[&str] = &["array_agg", "string_agg"];

/// Replaces each capped built-in function of `ctx` with its capped wrapper.
pub fn register(ctx: &SessionContext) {
    for &(name, rule) in CAPPED {
        let inner = if name == CONCAT_OPERATOR { Ok(Arc::new(concat_operator())) } else { ctx.udf(name) };
        if let Ok(inner) = inner {
            ctx.register_udf(ScalarUDF::new_from_impl(Capped { inner, rule }));
        }
    }
    ctx.add_analyzer_rule(Arc::new(CheckedConcat));
    for name in GATHERING {
        if let Ok(inner) = ctx.udaf(name) {
            ctx.register_udaf(AggregateUDF::new_from_impl(Gathering { inner }));
        }
    }
    ctx.add_analyzer_rule(Arc::new(NoGatheringWindows));
}

/// Refuses `array_agg` and `string_agg` as window functions: a window repeats
/// (`OVER ()`) or grows (`OVER (ORDER BY …)`) the gathered value for every row
/// of its partition, outside any memory pool (DataFusion's window operators
/// reserve nothing), so 30,000 rows asked for 7 GB under a 64 MiB limit. An
/// analyzer rule, so it holds for every front's plans.
#[derive(Debug)]
struct NoGatheringWindows;

impl datafusion::optimizer::AnalyzerRule for NoGatheringWindows {
    fn analyze(
        &self,
        plan: datafusion::logical_expr::LogicalPlan,
        _config: &datafusion::config::ConfigOptions,
    ) -> Result<datafusion::logical_expr::LogicalPlan> {
        use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
        use datafusion::logical_expr::{Expr, WindowFunctionDefinition};
        let mut refused = None;
        plan.apply_with_subqueries(|node| {
            node.apply_expressions(|e| {
                e.apply(|e| {
                    if let Expr::WindowFunction(w) = e
                        && let WindowFunctionDefinition::AggregateUDF(f) = &w.fun
                        && GATHERING.contains(&f.name())
                    {
                        refused = Some(f.name().to_string());
                        return Ok(TreeNodeRecursion::Stop);
                    }
                    Ok(TreeNodeRecursion::Continue)
                })
            })
        })?;
        match refused {
            Some(f) => datafusion::common::plan_err!(
                "{f} is refused as a window function: it would repeat or grow what it gathers for every row of \
                 the window, outside the query's memory limit; aggregate with GROUP BY and join instead"
            ),
            None => Ok(plan),
        }
    }

    fn name(&self) -> &str {
        "no_gathering_windows"
    }
}

/// `a || b` on strings: an operator, which no function wrapper sees. Each
/// is wrapped in `periscope_concat_checked`, whose value is checked like
/// the [`Rule::Grows`] functions', so `s || s` nested stops at the cap.
#[derive(Debug)]
struct CheckedConcat;

impl datafusion::optimizer::AnalyzerRule for CheckedConcat {
    fn analyze(
        &self,
        plan: datafusion::logical_expr::LogicalPlan,
        config: &datafusion::config::ConfigOptions,
    ) -> Result<datafusion::logical_expr::LogicalPlan> {
        use datafusion::common::tree_node::{Transformed, TreeNode};
        use datafusion::logical_expr::expr::ScalarFunction;
        use datafusion::logical_expr::expr_rewriter::NamePreserver;
        use datafusion::logical_expr::{BinaryExpr, Expr, Operator};
        let _ = config;
        let checked =
            Arc::new(ScalarUDF::new_from_impl(Capped { inner: Arc::new(concat_operator()), rule: Rule::Grows }));
        plan.transform_up_with_subqueries(|node| {
            let names = NamePreserver::new(&node);
            node.map_expressions(|e| {
                let name = names.save(&e);
                let e = e.transform_up(|e| match e {
                    Expr::BinaryExpr(BinaryExpr { op: Operator::StringConcat, .. }) => {
                        Ok(Transformed::yes(Expr::ScalarFunction(ScalarFunction::new_udf(checked.clone(), vec![e]))))
                    }
                    e => Ok(Transformed::no(e)),
                })?;
                Ok(if e.transformed { e.update_data(|e| name.restore(e)) } else { e })
            })
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "checked_concat"
    }
}

/// The identity function `periscope_concat_checked` wraps (checked by its [`Capped`] wrapper).
fn concat_operator() -> ScalarUDF {
    #[derive(Debug, PartialEq, Eq, Hash)]
    struct Identity(Signature);
    impl ScalarUDFImpl for Identity {
        fn name(&self) -> &str {
            CONCAT_OPERATOR
        }
        fn signature(&self) -> &Signature {
            &self.0
        }
        fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
            arg_types.first().cloned().ok_or_else(|| datafusion::error::DataFusionError::Plan("one argument".into()))
        }
        fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
            args.arg_fields
                .first()
                .cloned()
                .ok_or_else(|| datafusion::error::DataFusionError::Plan("one argument".into()))
        }
        fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
            args.args.into_iter().next().ok_or_else(|| datafusion::error::DataFusionError::Plan("one argument".into()))
        }
    }
    ScalarUDF::new_from_impl(Identity(Signature::any(1, datafusion::logical_expr::Volatility::Immutable)))
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Capped {
    inner: Arc<ScalarUDF>,
    rule: Rule,
}

/// Byte lengths of a string argument's values (0 for nulls), `n` rows.
fn lengths(a: &ArrayRef) -> Result<Vec<u64>> {
    let a = super::args::to_utf8(a)?;
    let s = a.as_string::<i32>();
    Ok((0..s.len()).map(|i| if s.is_valid(i) { s.value(i).len() as u64 } else { 0 }).collect())
}

/// An integer argument's values, negatives and nulls as 0.
fn counts(a: &ArrayRef) -> Result<Vec<u64>> {
    let a = arrow_cast::cast(a, &DataType::Int64)?;
    let v = a.as_primitive::<arrow_array::types::Int64Type>();
    Ok((0..v.len()).map(|i| if v.is_valid(i) { v.value(i).max(0) as u64 } else { 0 }).collect())
}

/// The most characters one leaf value of a (nested) list type prints as, beyond
/// its stored bytes (strings print as stored: 0).
fn leaf_display_width(t: &DataType) -> u64 {
    match t {
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => leaf_display_width(f.data_type()),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => 0,
        DataType::Float16 | DataType::Float32 | DataType::Float64 => 330,
        DataType::Decimal32(..) | DataType::Decimal64(..) | DataType::Decimal128(..) | DataType::Decimal256(..) => 80,
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView | DataType::FixedSizeBinary(_) => 0,
        _ => 64,
    }
}

impl Capped {
    /// Refuses a call whose arguments ask for more than the caps allow.
    fn check(&self, args: &[ColumnarValue], rows: usize) -> Result<()> {
        // What it makes is at most its arguments together: a constant counts once per row
        // (measured, not expanded to an array, which would only copy it once more). Each value
        // is checked after the call too.
        if self.rule == Rule::Grows {
            let total = args.iter().fold(0u64, |t, a| {
                t.saturating_add(match a {
                    ColumnarValue::Scalar(s) => (s.size() as u64).saturating_mul(rows as u64),
                    ColumnarValue::Array(a) => {
                        crate::width::widths(a.as_ref()).into_iter().fold(0u64, u64::saturating_add)
                    }
                })
            });
            let name = if self.inner.name() == CONCAT_OPERATOR { "||" } else { self.inner.name() };
            if total > MAX_CALL_BYTES {
                return exec_err!(
                    "{name}: these arguments ask for {total} bytes in one call, more than one call may make \
                     ({}); a query's functions are capped so that no query can take the server's memory or time",
                    MAX_CALL_BYTES
                );
            }
            return crate::account::check_more(total);
        }
        let arrays: Vec<ArrayRef> = args.iter().map(|a| a.to_array(rows)).collect::<Result<_>>()?;
        let arg = |i: usize| arrays.get(i).ok_or_else(|| datafusion::error::DataFusionError::Plan("argument".into()));
        let sum = |v: Vec<u64>| v.into_iter().fold(0u64, u64::saturating_add);
        let zip = |a: Vec<u64>, b: Vec<u64>, f: &dyn Fn(u64, u64) -> u64| {
            sum(a.into_iter().zip(b).map(|(x, y)| f(x, y)).collect())
        };
        let (cost, cap, unit) = match self.rule {
            Rule::Repeat => {
                (zip(lengths(arg(0)?)?, counts(arg(1)?)?, &|l, n| l.saturating_mul(n)), MAX_OUTPUT_BYTES, "bytes")
            }
            // A character is at most four bytes.
            Rule::Pad => (sum(counts(arg(1)?)?).saturating_mul(4), MAX_OUTPUT_BYTES, "bytes"),
            Rule::Replace => {
                let (s, from, to) = (lengths(arg(0)?)?, lengths(arg(1)?)?, lengths(arg(2)?)?);
                let each = s.iter().zip(from).zip(to).map(|((&s, f), t)| (s / f.max(1) + 1).saturating_mul(t) + s);
                (sum(each.collect()), MAX_OUTPUT_BYTES, "bytes")
            }
            Rule::RegexpReplace => {
                let (s, repl) = (lengths(arg(0)?)?, lengths(arg(2)?)?);
                (zip(s, repl, &|s, r| (s + 1).saturating_mul(r) + s), MAX_OUTPUT_BYTES, "bytes")
            }
            Rule::Levenshtein => {
                (zip(lengths(arg(0)?)?, lengths(arg(1)?)?, &|a, b| a.saturating_mul(b)), MAX_WORK, "comparisons")
            }
            Rule::ArrayRepeat | Rule::ArrayResize => {
                let n = counts(arg(1)?)?;
                let fill = arrays.get(if self.rule == Rule::ArrayRepeat { 0 } else { 2 });
                let fill = fill.map(|a| crate::width::widths(a.as_ref())).unwrap_or_else(|| vec![0; rows]);
                let bytes = zip(fill, n.clone(), &|w, n| w.saturating_mul(n));
                if bytes > MAX_OUTPUT_BYTES {
                    (bytes, MAX_OUTPUT_BYTES, "bytes")
                } else {
                    (sum(n), MAX_ELEMENTS, "elements")
                }
            }
            Rule::ArrayToString => {
                let (a, sep) = (arg(0)?, lengths(arg(1)?)?);
                let null = if arrays.len() > 2 { lengths(arg(2)?)? } else { vec![0; rows] };
                // Numbers and times print wider than they are stored (1e308: 309 characters from 8 bytes).
                let printed = leaf_display_width(a.data_type());
                let each = crate::width::leaf_counts(a.as_ref())
                    .into_iter()
                    .zip(crate::width::widths(a.as_ref()))
                    .zip(sep.into_iter().zip(null))
                    .map(|((n, w), (s, z))| n.saturating_mul(s + z + printed).saturating_add(w));
                (sum(each.collect()), MAX_OUTPUT_BYTES, "bytes")
            }
            Rule::ArrayReplaceAll => {
                let (a, to) = (arg(0)?, crate::width::widths(arg(2)?.as_ref()));
                let each = crate::width::leaf_counts(a.as_ref())
                    .into_iter()
                    .zip(crate::width::widths(a.as_ref()))
                    .zip(to)
                    .map(|((n, w), t)| n.saturating_mul(t).saturating_add(w));
                (sum(each.collect()), MAX_OUTPUT_BYTES, "bytes")
            }
            Rule::ToChar => {
                // `%c` prints 24 bytes from 2.
                let format = lengths(arg(1)?)?;
                (sum(format).saturating_mul(16), MAX_OUTPUT_BYTES, "bytes")
            }
            Rule::RegexpMatch => {
                let (s, p) = (lengths(arg(0)?)?, arg(1)?);
                let p = super::args::to_utf8(p)?;
                let p = p.as_string::<i32>();
                let groups =
                    (0..p.len()).map(|i| if p.is_valid(i) { p.value(i).matches('(').count() as u64 + 1 } else { 1 });
                (sum(s.into_iter().zip(groups).map(|(s, g)| s.saturating_mul(g)).collect()), MAX_OUTPUT_BYTES, "bytes")
            }
            // Returned early above: checked after the call.
            Rule::Grows => (0, MAX_OUTPUT_BYTES, "bytes"),
            Rule::Range => match arrays.len() {
                2 | 3 if arrays.iter().all(|a| a.data_type().is_integer()) => {
                    let ints = |a: &ArrayRef| -> Result<Vec<i128>> {
                        let a = arrow_cast::cast(a, &DataType::Int64)?;
                        let v = a.as_primitive::<arrow_array::types::Int64Type>();
                        Ok((0..v.len()).map(|i| if v.is_valid(i) { v.value(i) as i128 } else { 0 }).collect())
                    };
                    let (start, stop) = (ints(arg(0)?)?, ints(arg(1)?)?);
                    let step = if arrays.len() == 3 { ints(arg(2)?)? } else { vec![1; rows] };
                    let each = start.iter().zip(&stop).zip(&step).map(|((&a, &b), &s)| {
                        if s == 0 { 0 } else { u64::try_from(((b - a) / s).max(0)).unwrap_or(u64::MAX) }
                    });
                    (sum(each.collect()), MAX_ELEMENTS, "elements")
                }
                _ => (0, MAX_ELEMENTS, "elements"),
            },
        };
        if cost > cap {
            return exec_err!(
                "{}: these arguments ask for {cost} {unit}, more than one call may ({cap}); a query's functions \
                 are capped so that no query can take the server's memory or time",
                self.inner.name()
            );
        }
        Ok(())
    }
}

impl ScalarUDFImpl for Capped {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.return_type(arg_types)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        self.inner.return_field_from_args(args)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.coerce_types(arg_types)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        // Many calls that each pass their cap add up (a chain of `||`, a hundred folded
        // constants): each call first asks whether its query already holds too much.
        crate::account::check()?;
        self.check(&args.args, args.number_rows)?;
        let out = self.inner.invoke_with_args(args)?;
        if self.rule == Rule::Grows {
            let widest = match &out {
                ColumnarValue::Scalar(v) => v.size() as u64,
                ColumnarValue::Array(a) => crate::width::widths(a.as_ref()).into_iter().max().unwrap_or(0),
            };
            if widest > MAX_OUTPUT_BYTES {
                return exec_err!(
                    "{}: made a value of {widest} bytes, more than one value may hold ({MAX_OUTPUT_BYTES}); a \
                     query's functions are capped so that no query can take the server's memory or time",
                    if self.inner.name() == CONCAT_OPERATOR { "||" } else { self.inner.name() }
                );
            }
        }
        Ok(out)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }
}

/// A gathering aggregate (see the module comment), capped per value.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Gathering {
    inner: Arc<AggregateUDF>,
}

impl AggregateUDFImpl for Gathering {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.return_type(arg_types)
    }

    fn return_field(&self, arg_fields: &[FieldRef]) -> Result<FieldRef> {
        self.inner.return_field(arg_fields)
    }

    fn is_nullable(&self) -> bool {
        self.inner.is_nullable()
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let distinct = args.is_distinct;
        Ok(Box::new(Gathered {
            inner: self.inner.accumulator(args)?,
            name: self.inner.name().into(),
            bytes: 0,
            distinct,
        }))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        self.inner.state_fields(args)
    }

    // No groups accumulator: one capped accumulator per group, each sized to the pool.
    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        false
    }

    fn create_sliding_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let distinct = args.is_distinct;
        let inner = self.inner.inner().create_sliding_accumulator(args)?;
        Ok(Box::new(Gathered { inner, name: self.inner.name().into(), bytes: 0, distinct }))
    }

    fn with_beneficial_ordering(self: Arc<Self>, beneficial: bool) -> Result<Option<Arc<dyn AggregateUDFImpl>>> {
        let ordered = Arc::clone(self.inner.inner()).with_beneficial_ordering(beneficial)?;
        Ok(ordered.map(|f| {
            Arc::new(Gathering { inner: Arc::new(AggregateUDF::new_from_shared_impl(f)) }) as Arc<dyn AggregateUDFImpl>
        }))
    }

    fn order_sensitivity(&self) -> AggregateOrderSensitivity {
        self.inner.inner().order_sensitivity()
    }

    fn simplify(&self) -> Option<AggregateFunctionSimplification> {
        self.inner.simplify()
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.coerce_types(arg_types)
    }

    fn default_value(&self, data_type: &DataType) -> Result<ScalarValue> {
        self.inner.default_value(data_type)
    }

    fn supports_null_handling_clause(&self) -> bool {
        self.inner.inner().supports_null_handling_clause()
    }

    fn supports_within_group_clause(&self) -> bool {
        self.inner.inner().supports_within_group_clause()
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }
}

/// Whether `t` holds view arrays anywhere (their slices keep whole data buffers alive).
fn has_views(t: &DataType) -> bool {
    match t {
        DataType::Utf8View | DataType::BinaryView => true,
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) | DataType::Map(f, _) => {
            has_views(f.data_type())
        }
        DataType::Struct(fs) => fs.iter().any(|f| has_views(f.data_type())),
        DataType::Dictionary(_, v) => has_views(v),
        _ => false,
    }
}

/// `a` as the accumulator keeps it, and the bytes it holds. A top-level view
/// array is compacted first: a view array taken from (or cast zero-copy out
/// of) a batch shares that batch's whole strings, so one visible byte per
/// row could keep 8 KB alive. Views nested deeper are counted with every
/// buffer they share (too much, never too little).
fn held(a: &ArrayRef) -> Result<(ArrayRef, usize)> {
    let views = |a: &ArrayRef, lens: &mut dyn Iterator<Item = usize>| lens.fold(a.len() * 16, usize::saturating_add);
    Ok(match a.data_type() {
        DataType::Utf8View => {
            let kept: ArrayRef = Arc::new(a.as_string_view().gc());
            let n = views(&kept, &mut kept.as_string_view().iter().map(|v| v.map_or(0, str::len)));
            (kept, n)
        }
        DataType::BinaryView => {
            let kept: ArrayRef = Arc::new(a.as_binary_view().gc());
            let n = views(&kept, &mut kept.as_binary_view().iter().map(|v| v.map_or(0, <[u8]>::len)));
            (kept, n)
        }
        // A list of views (the partial states array_agg merges): its child compacted the same way.
        DataType::List(f) if has_views(f.data_type()) => {
            let l = a.as_list::<i32>();
            let offsets = l.value_offsets();
            let (first, last) = (offsets[0], offsets[l.len()]);
            let (child, n) = held(&l.values().slice(first as usize, (last - first) as usize))?;
            let rebased = arrow_buffer::OffsetBuffer::new(offsets.iter().map(|o| o - first).collect());
            let list = arrow_array::ListArray::try_new(f.clone(), rebased, child, l.nulls().cloned())?;
            (Arc::new(list), n.saturating_add(a.len() * 4))
        }
        DataType::LargeList(f) if has_views(f.data_type()) => {
            let l = a.as_list::<i64>();
            let offsets = l.value_offsets();
            let (first, last) = (offsets[0], offsets[l.len()]);
            let (child, n) = held(&l.values().slice(first as usize, (last - first) as usize))?;
            let rebased = arrow_buffer::OffsetBuffer::new(offsets.iter().map(|o| o - first).collect());
            let list = arrow_array::LargeListArray::try_new(f.clone(), rebased, child, l.nulls().cloned())?;
            (Arc::new(list), n.saturating_add(a.len() * 8))
        }
        // A struct holding views (the ordering values an ordered array_agg or string_agg carries
        // with each value): each child compacted the same way.
        DataType::Struct(fields) if has_views(a.data_type()) => {
            let st = a.as_struct();
            let (mut children, mut n) = (Vec::with_capacity(fields.len()), 0usize);
            for c in st.columns() {
                let (kept, bytes) = held(c)?;
                children.push(kept);
                n = n.saturating_add(bytes);
            }
            (Arc::new(arrow_array::StructArray::try_new(fields.clone(), children, st.nulls().cloned())?), n)
        }
        // Views nested otherwise (rare in what is gathered): every buffer they share is counted.
        t if has_views(t) => (a.clone(), a.get_array_memory_size()),
        _ => (a.clone(), a.to_data().get_slice_memory_size()?),
    })
}

/// A gathering aggregate's accumulator: counts the bytes it takes in (for
/// DISTINCT, what the inner accumulator kept: duplicates are not held).
#[derive(Debug)]
struct Gathered {
    inner: Box<dyn Accumulator>,
    name: String,
    bytes: usize,
    distinct: bool,
}

impl Gathered {
    /// `arrays` as they are to be kept, counted.
    fn take(&mut self, arrays: &[ArrayRef]) -> Result<Vec<ArrayRef>> {
        let mut kept = Vec::with_capacity(arrays.len());
        for a in arrays {
            let (a, n) = held(a)?;
            if !self.distinct {
                self.bytes = self.bytes.saturating_add(n);
            }
            kept.push(a);
        }
        self.check()?;
        Ok(kept)
    }

    fn check(&self) -> Result<()> {
        if self.size() as u64 > MAX_OUTPUT_BYTES {
            return exec_err!(
                "{}: the values gathered into one result pass {MAX_OUTPUT_BYTES} bytes, more than one \
                 aggregate value may hold; a query's functions are capped so that no query can take the \
                 server's memory or time (aggregate fewer rows, or GROUP BY)",
                self.name
            );
        }
        Ok(())
    }
}

impl Accumulator for Gathered {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        crate::account::check()?;
        let kept = self.take(values)?;
        self.inner.update_batch(&kept)?;
        self.check()
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        crate::account::check()?;
        let kept = self.take(states)?;
        self.inner.merge_batch(&kept)?;
        self.check()
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        self.inner.evaluate()
    }

    fn size(&self) -> usize {
        self.inner.size().max(self.bytes)
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        self.inner.state()
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        if !self.distinct {
            for a in values {
                self.bytes = self.bytes.saturating_sub(held(a)?.1);
            }
        }
        self.inner.retract_batch(values)
    }

    fn supports_retract_batch(&self) -> bool {
        self.inner.supports_retract_batch()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn run(sql: &str) -> Result<String> {
        // Several partitions, so that aggregates merge partial states as on a server.
        let ctx = SessionContext::new_with_config(datafusion::prelude::SessionConfig::new().with_target_partitions(4));
        register(&ctx);
        let batches = ctx.sql(sql).await?.collect().await?;
        Ok(arrow_cast::display::array_value_to_string(batches[0].column(0), 0)?)
    }

    #[tokio::test]
    async fn ordinary_calls_give_what_datafusion_gives() {
        for (sql, want) in [
            ("SELECT repeat('ab', 3)", "ababab"),
            ("SELECT lpad('7', 3, '0')", "007"),
            ("SELECT rpad('x', 3)", "x  "),
            ("SELECT replace('a-b-c', '-', '+')", "a+b+c"),
            ("SELECT regexp_replace('aaa', 'a', 'b', 'g')", "bbb"),
            ("SELECT levenshtein('kitten', 'sitting')", "3"),
            ("SELECT cardinality(array_repeat(1, 5))", "5"),
            ("SELECT cardinality(range(1, 10))", "9"),
            ("SELECT cardinality(generate_series(1, 10, 2))", "5"),
            ("SELECT cardinality(range(DATE '2020-01-01', DATE '2020-02-01', INTERVAL '1 day'))", "31"),
            ("SELECT max(length(repeat(CAST(v AS VARCHAR), 80))) FROM generate_series(1, 20000) t(v)", "400"),
            ("SELECT repeat(NULL, 3) IS NULL", "true"),
            ("SELECT string_agg(CAST(v AS VARCHAR), ',' ORDER BY v DESC) FROM generate_series(1, 3) t(v)", "3,2,1"),
            ("SELECT array_agg(v ORDER BY v DESC) FROM generate_series(1, 3) t(v)", "[3, 2, 1]"),
            (
                "SELECT max(cardinality(a)) FROM (SELECT array_agg(v) a FROM generate_series(1, 100000) t(v) GROUP BY v % 7)",
                "14286",
            ),
            (
                "SELECT sum(length(s)) FROM (SELECT string_agg(CAST(v AS VARCHAR), '') s FROM generate_series(1, 9999) t(v) GROUP BY v % 3)",
                "38889",
            ),
            // Grouped over views, as Parquet strings are read: each group's partial state shares
            // its batch's strings, and is counted (and kept) as its own bytes, not the batch's.
            (
                "SELECT sum(cardinality(a)) FROM (SELECT array_agg(arrow_cast(repeat(CAST(v AS VARCHAR), 50), 'Utf8View')) a FROM generate_series(1, 400000) t(v) GROUP BY v % 5000)",
                "400000",
            ),
            // The same ordered: the ordering values travel as a struct of views beside each value.
            (
                "SELECT sum(cardinality(a)) FROM (SELECT array_agg(s ORDER BY s) a FROM (SELECT v, arrow_cast(repeat(CAST(v AS VARCHAR), 50), 'Utf8View') s FROM generate_series(1, 400000) t(v)) GROUP BY v % 5000)",
                "400000",
            ),
            // DISTINCT holds what is distinct: three values out of 3M rows of 1 KB.
            (
                "SELECT cardinality(array_agg(DISTINCT repeat(CAST(v % 3 AS VARCHAR), 1000))) FROM generate_series(1, 3000000) t(v)",
                "3",
            ),
        ] {
            assert_eq!(run(sql).await.unwrap(), want, "{sql}");
        }
    }

    /// A view array sliced out of a batch shares the whole batch's strings: what an
    /// aggregate keeps of it is compacted to its own bytes, and counted as those.
    #[test]
    fn gathered_views_keep_only_their_own_bytes() {
        let long: Vec<String> = (0..1000).map(|i| format!("{i}").repeat(2000)).collect();
        let batch: ArrayRef = Arc::new(arrow_array::StringViewArray::from_iter_values(long.iter()));
        let one = batch.slice(7, 1);
        assert!(one.get_array_memory_size() > 1 << 20, "the slice shares the batch's strings");
        let (kept, counted) = held(&one).unwrap();
        assert!(kept.get_array_memory_size() < 64 << 10, "{}", kept.get_array_memory_size());
        assert_eq!(counted, 16 + long[7].len());
        assert_eq!(kept.as_string_view().value(0), long[7]);
    }

    /// Issue 18 item 7: each of these held gigabytes, or a core for seconds,
    /// outside the query's memory pool and (folded while planning) its clock.
    #[tokio::test]
    async fn calls_asking_for_more_than_the_caps_are_refused_before_running() {
        for (sql, what) in [
            ("SELECT length(repeat('x', 2000000000))", "repeat: these arguments ask for 2000000000 bytes"),
            ("SELECT length(lpad('x', 2000000000))", "lpad"),
            ("SELECT length(rpad('x', 2000000000, 'y'))", "rpad"),
            ("SELECT length(replace(repeat('x', 1000000), 'x', repeat('y', 1000)))", "replace"),
            ("SELECT length(regexp_replace(repeat('x', 100000), '', repeat('y', 1000), 'g'))", "regexp_replace"),
            ("SELECT levenshtein(repeat('a', 100000), repeat('b', 100000))", "levenshtein"),
            ("SELECT cardinality(array_repeat(1, 100000000))", "array_repeat"),
            // Few elements, each a copy of a wide value.
            (
                "SELECT cardinality(array_repeat(repeat('x', 1000000), 1000))",
                "array_repeat: these arguments ask for 1000",
            ),
            ("SELECT cardinality(array_resize(make_array('a'), 1000, repeat('x', 1000000)))", "array_resize"),
            ("SELECT cardinality(array_resize(make_array(1), 100000000))", "array_resize"),
            // A separator for every one of a million (empty) elements.
            ("SELECT length(array_to_string(array_repeat('', 1000000), repeat('y', 1000000)))", "array_to_string"),
            (
                "SELECT cardinality(array_replace_all(array_repeat('a', 1000000), 'a', repeat('y', 1000)))",
                "array_replace_all",
            ),
            // Functions no larger than their inputs, nested: each doubles what the last made.
            (
                "WITH a0 AS (SELECT arrow_cast(repeat(CAST(value AS VARCHAR), 30000000), 'LargeUtf8') AS s \
                 FROM generate_series(1, 1)), a1 AS (SELECT s || s AS s FROM a0), a2 AS (SELECT s || s AS s FROM a1), \
                 a3 AS (SELECT s || s AS s FROM a2) SELECT length(s) FROM a3",
                "||: made a value of",
            ),
            (
                "WITH a0 AS (SELECT repeat(CAST(value AS VARCHAR), 30000000) AS s FROM generate_series(1, 1)), \
                 a1 AS (SELECT concat(s, s) AS s FROM a0), a2 AS (SELECT concat(s, s) AS s FROM a1) SELECT length(s) FROM a2",
                "concat: made a value of",
            ),
            // Many arguments, each a little: concat reserves their sum before it copies.
            (
                "SELECT max(length(concat(s, s, s, s, s, s, s, s, s, s, s, s, s, s, s, s, s, s, s, s))) FROM \
                 (SELECT CAST(v AS VARCHAR) || repeat('w', 32000) AS s FROM generate_series(1, 40000) t(v))",
                "concat: these arguments ask for",
            ),
            ("SELECT cardinality(range(1, 600000000))", "range"),
            ("SELECT cardinality(generate_series(-9223372036854775807, 9223372036854775807, 3))", "generate_series"),
            // Many rows each asking for a little.
            ("SELECT max(length(repeat(CAST(value AS VARCHAR), 100000))) FROM generate_series(1, 10000)", "repeat"),
            // Aggregates gathering more than one value may hold, grouped or not, ordered or not.
            (
                "SELECT cardinality(array_agg(repeat(CAST(v AS VARCHAR), 1000))) FROM generate_series(1, 300000) t(v)",
                "array_agg",
            ),
            (
                "SELECT length(string_agg(repeat(CAST(v AS VARCHAR), 1000), ',')) FROM generate_series(1, 300000) t(v)",
                "string_agg",
            ),
            (
                "SELECT v % 2, length(string_agg(repeat(CAST(v AS VARCHAR), 1000), ',' ORDER BY v)) FROM generate_series(1, 300000) t(v) GROUP BY 1",
                "string_agg",
            ),
            (
                "SELECT v % 2, cardinality(array_agg(repeat(CAST(v AS VARCHAR), 1000))) FROM generate_series(1, 300000) t(v) GROUP BY 1",
                "array_agg",
            ),
            // As window functions they repeat or grow what they gather for every row.
            (
                "SELECT max(cardinality(a)) FROM (SELECT array_agg(v) OVER () a FROM generate_series(1, 30000) t(v)) x",
                "array_agg is refused as a window function",
            ),
            (
                "SELECT max(length(s)) FROM (SELECT string_agg(CAST(v AS VARCHAR), ',') OVER (ORDER BY v) s FROM generate_series(1, 30000) t(v)) x",
                "string_agg is refused as a window function",
            ),
        ] {
            let e = run(sql).await.unwrap_err().to_string();
            let capped = e.contains("more than one call may")
                || e.contains("more than one value may hold")
                || e.contains("more than one aggregate value may hold")
                || e.contains("is refused as a window function");
            assert!(e.contains(what) && capped, "{sql}: {e}");
        }
    }
}
