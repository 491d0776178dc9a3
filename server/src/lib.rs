//! Periscope's server, as a library.
//!
//! Data flows one way: agents' batches arrive through [`service`] (gRPC
//! ingest), are made durable by [`store`] (a write-ahead log, then large Parquet files), and are answered in
//! SQL by DataFusion over the [`catalog`] via [`query`]; [`output`] formats
//! results for the `periscope` CLI; [`report`] runs query packs of compliance checks over it. [`quickstart`] runs all of it in one process.

pub mod auth;
pub mod catalog;
pub mod current;
pub mod delta;
pub mod flight;
pub mod output;
pub mod pg;
pub mod query;
pub mod quickstart;
pub mod report;
pub mod rows;
pub mod scope;
pub mod serve;
pub mod service;
pub mod sqlauth;
pub mod store;
#[cfg(test)]
mod testutil;
pub mod throttle;
pub mod tls;
pub mod udf;
pub mod view;
pub mod wal;
