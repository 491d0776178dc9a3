//! Vulnerabilities: OSV advisories imported into stored tables ([`import`],
//! [`store`]) and matched against the fleet's current packages in SQL
//! ([`sql`]), with each ecosystem's own version order ([`eval`],
//! [`ecosystem`]).

pub mod ecosystem;
pub mod eval;
pub mod import;
pub mod osv;
pub mod source;
pub mod sql;
pub mod store;

/// Makes the advisory tables, functions and the `vulnerabilities` view part of
/// every catalog built from now on in this process; once is enough, more is harmless.
pub fn install() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| periscope_query::catalog::extend(std::sync::Arc::new(sql::Tables)));
}
