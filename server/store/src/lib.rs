//! Periscope's durable store, the bottom floor of the server.
//!
//! Owns what agents' rows become once accepted: the write-ahead log
//! ([`wal`]), the Parquet files and their Delta logs ([`store`], [`delta`]),
//! compaction and retention, and the current-state index ([`current`]) that
//! says which stored rows are current. [`rows`] is what the store accepts
//! from an agent. Its limits are its own: configuration ([`store::StoreConfig`])
//! and the ingest bounds declared in [`rows`] (sizes, keys, agent ids, times),
//! which the fronts enforce.
//!
//! May import: the wire contract and table declarations (`periscope-proto`),
//! Arrow and Parquet. Knows nothing of SQL, the network fronts or reports, and
//! imports no other server crate.

pub mod current;
pub mod delta;
pub mod rows;
pub mod store;
#[doc(hidden)]
pub mod testutil;
pub mod wal;
