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

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef};
use arrow_schema::{DataType, FieldRef};
use datafusion::common::{Result, exec_err};
use datafusion::execution::FunctionRegistry;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
};
use datafusion::prelude::SessionContext;

/// The most one call (one batch of rows) of a capped function may produce.
pub const MAX_OUTPUT_BYTES: u64 = 64 << 20;
/// The most character comparisons one call of `levenshtein` may make (about a quarter second).
pub const MAX_WORK: u64 = 250_000_000;
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
    /// array_repeat(x, n): n elements.
    ArrayRepeat,
}

const CAPPED: &[(&str, Rule)] = &[
    ("repeat", Rule::Repeat),
    ("lpad", Rule::Pad),
    ("rpad", Rule::Pad),
    ("replace", Rule::Replace),
    ("regexp_replace", Rule::RegexpReplace),
    ("levenshtein", Rule::Levenshtein),
    ("array_repeat", Rule::ArrayRepeat),
];

/// Replaces each capped built-in function of `ctx` with its capped wrapper.
pub fn register(ctx: &SessionContext) {
    for &(name, rule) in CAPPED {
        if let Ok(inner) = ctx.udf(name) {
            ctx.register_udf(ScalarUDF::new_from_impl(Capped { inner, rule }));
        }
    }
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

impl Capped {
    /// Refuses a call whose arguments ask for more than the caps allow.
    fn check(&self, args: &[ColumnarValue], rows: usize) -> Result<()> {
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
            Rule::ArrayRepeat => (sum(counts(arg(1)?)?), MAX_ELEMENTS, "elements"),
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
        self.check(&args.args, args.number_rows)?;
        self.inner.invoke_with_args(args)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn run(sql: &str) -> Result<String> {
        let ctx = SessionContext::new();
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
            ("SELECT max(length(repeat(CAST(v AS VARCHAR), 80))) FROM generate_series(1, 20000) t(v)", "400"),
            ("SELECT repeat(NULL, 3) IS NULL", "true"),
        ] {
            assert_eq!(run(sql).await.unwrap(), want, "{sql}");
        }
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
            // Many rows each asking for a little.
            ("SELECT max(length(repeat(CAST(value AS VARCHAR), 100000))) FROM generate_series(1, 10000)", "repeat"),
        ] {
            let e = run(sql).await.unwrap_err().to_string();
            assert!(e.contains(what) && e.contains("more than one call may"), "{sql}: {e}");
        }
    }
}
