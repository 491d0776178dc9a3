//! Periscope's host agent, as a library.
//!
//! The pipeline runs one way: a scope's root is opened ([`rootfs`]), each
//! collector fills its table ([`collectors`]), rows become Arrow batches
//! ([`encode`]), and the batches are sent over gRPC ([`send`]) or printed as JSON
//! lines ([`print`]). [`crawl::crawl`] ties the first three together for one scope.

pub mod changes;
pub mod collectors;
pub mod crawl;
pub mod daemon;
pub mod discover;
pub mod encode;
pub mod fingerprint;
pub mod inherit;
pub mod layers;
pub mod limits;
pub mod metrics;
pub mod mounts;
pub mod print;
pub mod quarantine;
pub mod rootfs;
pub mod rows;
pub mod send;
pub mod spool;
