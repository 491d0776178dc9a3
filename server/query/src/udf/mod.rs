//! Periscope's SQL functions, registered on every session.

pub mod args;
pub mod capped;
pub mod cidr;
pub mod version;

use datafusion::prelude::SessionContext;

/// Registers every Periscope function on `ctx`.
pub fn register(ctx: &SessionContext) {
    version::register(ctx);
    cidr::register(ctx);
    capped::register(ctx);
}
