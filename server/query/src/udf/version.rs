//! `version_cmp(a, b[, scheme])` and `version_lt/le/gt/ge(a, b[, scheme])`:
//! package versions ordered the way their package manager orders them.
//!
//! `scheme` is deb (the default), rpm, apk, semver, golang or pep440 — or a
//! `packages.manager` value (dpkg, rpm, apk; golang; cargo and npm, which are semver (npm checked against node-semver);
//! pypi, which is pep440), so `version_lt(version, '3.0.7', manager)` works
//! across a mixed fleet.
//! golang orders Go module versions as `golang.org/x/mod/semver` does: `v1`
//! and `v1.2` shorthands, `+incompatible` ignored, pseudo-versions
//! (`v0.0.0-20191109021931-daa7c04131f5`) as the pre-releases they are, and
//! the `stdlib` package's `go1.19.8` read as `v1.19.8`; a main module's
//! `(devel)` has no order (NULL). A NULL argument or a version the scheme cannot parse
//! gives NULL (one odd database must not fail a fleet-wide query); an unknown
//! scheme is an error naming it.

use std::cmp::Ordering;
use std::sync::Arc;

use arrow_array::builder::{BooleanBuilder, Int32Builder};
use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef};
use arrow_schema::DataType;
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, TypeSignature, Volatility,
};
use periscope_versions::{Scheme, compare};

/// What the function returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Cmp,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct VersionFunc {
    name: &'static str,
    kind: Kind,
    signature: Signature,
}

impl VersionFunc {
    fn new(name: &'static str, kind: Kind) -> Self {
        let signature =
            Signature::one_of(vec![TypeSignature::String(2), TypeSignature::String(3)], Volatility::Immutable);
        VersionFunc { name, kind, signature }
    }
}

/// Every version function.
pub fn all() -> Vec<VersionFunc> {
    vec![
        VersionFunc::new("version_cmp", Kind::Cmp),
        VersionFunc::new("version_lt", Kind::Lt),
        VersionFunc::new("version_le", Kind::Le),
        VersionFunc::new("version_gt", Kind::Gt),
        VersionFunc::new("version_ge", Kind::Ge),
    ]
}

/// Registers every version function on `ctx`.
pub fn register(ctx: &datafusion::prelude::SessionContext) {
    for f in all() {
        ctx.register_udf(datafusion::logical_expr::ScalarUDF::from(f));
    }
}

impl ScalarUDFImpl for VersionFunc {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(if self.kind == Kind::Cmp { DataType::Int32 } else { DataType::Boolean })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let arrays = arrays.iter().map(super::args::to_utf8).collect::<Result<Vec<_>>>()?;
        let a = arrays[0].as_string::<i32>();
        let b = arrays[1].as_string::<i32>();
        let schemes = arrays.get(2).map(|s| s.as_string::<i32>());
        let mut cached: Option<(String, Scheme)> = None;
        let mut out_cmp = Int32Builder::with_capacity(a.len());
        let mut out_bool = BooleanBuilder::with_capacity(a.len());
        for i in 0..a.len() {
            let scheme = match schemes {
                None => Some(Scheme::Deb),
                Some(s) if s.is_null(i) => None,
                Some(s) => {
                    let name = s.value(i);
                    match &cached {
                        Some((n, sc)) if n == name => Some(*sc),
                        _ => match name.parse::<Scheme>() {
                            Ok(sc) => {
                                cached = Some((name.to_string(), sc));
                                Some(sc)
                            }
                            Err(e) => return exec_err!("{}: {e}", self.name),
                        },
                    }
                }
            };
            let ord = match scheme {
                Some(sc) if !a.is_null(i) && !b.is_null(i) => compare(sc, a.value(i), b.value(i)).ok(),
                _ => None,
            };
            match self.kind {
                Kind::Cmp => out_cmp.append_option(ord.map(|o| o as i32)),
                k => out_bool.append_option(ord.map(|o| match k {
                    Kind::Lt => o == Ordering::Less,
                    Kind::Le => o != Ordering::Greater,
                    Kind::Gt => o == Ordering::Greater,
                    Kind::Ge => o != Ordering::Less,
                    Kind::Cmp => unreachable!("handled above"),
                })),
            }
        }
        let out: ArrayRef =
            if self.kind == Kind::Cmp { Arc::new(out_cmp.finish()) } else { Arc::new(out_bool.finish()) };
        Ok(ColumnarValue::Array(out))
    }
}

#[cfg(test)]
mod tests {
    use datafusion::prelude::SessionContext;

    async fn one(sql: &str) -> String {
        super::super::args::first_value(super::register, sql).await
    }

    #[tokio::test]
    async fn scalars_arrays_and_nulls() {
        assert_eq!(one("SELECT version_lt('5.2.15-2', '5.2.15-2+b2')").await, "true");
        assert_eq!(one("SELECT version_cmp('1:1.0', '2.0', 'deb')").await, "1");
        assert_eq!(one("SELECT version_ge('1.0~rc1', '1.0', 'dpkg')").await, "false");
        assert_eq!(one("SELECT version_lt('1.10.0', '1.9.0', 'npm')").await, "false");
        assert_eq!(one("SELECT version_lt(NULL, '1.0')").await, "");
        assert_eq!(one("SELECT version_lt('1.0', '2.0', NULL)").await, "");
        let n = one(
            "SELECT count(*) FROM (VALUES ('1.0', 'deb'), ('2.0', 'rpm'), ('3.0', 'apk')) t(v, s) WHERE version_lt(v, '2.5', s)",
        )
        .await;
        assert_eq!(n, "2");
    }

    #[tokio::test]
    async fn unknown_scheme_is_an_error_naming_it() {
        let ctx = SessionContext::new();
        super::register(&ctx);
        let err = ctx.sql("SELECT version_lt('1', '2', 'nosuch')").await.unwrap().collect().await.unwrap_err();
        assert!(err.to_string().contains("unknown version scheme \"nosuch\""), "{err}");
    }
}
