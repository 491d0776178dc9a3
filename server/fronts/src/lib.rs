//! Periscope's network fronts, above the SQL engine: gRPC ingest and query
//! ([`service`]), the Postgres wire protocol ([`pg`]) and Flight SQL
//! ([`flight`]), with what they share: TLS settings ([`tls`]), agent
//! enrollment ([`auth`]), SQL users ([`sqlauth`]) and per-address backoff
//! ([`throttle`]). Each front is started by the binary, never by another.
//!
//! May import: `periscope-query`, `periscope-store`, the wire contract. Never
//! the reports or the binary.

pub mod auth;
pub mod flight;
pub mod metrics;
pub mod pg;
pub mod service;
pub mod sqlauth;
pub mod throttle;
pub mod tls;
