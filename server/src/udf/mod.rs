//! Periscope's SQL functions, registered on every session.

pub mod cidr;
pub mod version;

use datafusion::logical_expr::ScalarUDF;
use datafusion::prelude::SessionContext;

/// Registers every Periscope function on `ctx`.
pub fn register(ctx: &SessionContext) {
    for f in version::all() {
        ctx.register_udf(ScalarUDF::from(f));
    }
    ctx.register_udf(ScalarUDF::from(cidr::CidrContains::default()));
}
