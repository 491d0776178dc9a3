//! Periscope's SQL engine, above the store.
//!
//! Owns the DataFusion catalog over a store snapshot ([`catalog`]: history
//! tables, current-state views planned through [`view`]), Periscope's SQL
//! functions ([`udf`]), per-user read scopes ([`scope`]), and the one API
//! every front and report runs SQL through, with its limits and sandbox
//! ([`query`]). Tables owned above it (report history) register through
//! [`catalog::Extension`].
//!
//! May import: `periscope-store`, the wire contract (its gRPC client serves
//! `periscope sql --server` and report runs against a server),
//! `periscope-versions` (the version UDFs), DataFusion. Never a front, the
//! reports or the binary.

pub mod account;
pub mod catalog;
pub mod metrics;
pub mod query;
pub mod repeat;
pub mod scope;
pub mod udf;
pub mod view;
pub mod width;
