//! The contract between Periscope's agent and server.
//!
//! Two things live here and nowhere else: the gRPC service definitions
//! (`proto/periscope/v1/periscope.proto`, compiled by tonic/prost) and the
//! schema of every table (`tables`), which both sides use — the agent to build
//! Arrow batches, the server to register tables and validate what arrives.

pub mod ipc;
pub mod tables;

/// Generated gRPC types and stubs for `periscope.v1`.
pub mod v1 {
    tonic::include_proto!("periscope.v1");
}

/// Version of the wire contract this build speaks. Bumped on any incompatible change
/// (3: `crawls.tables`, the `inherited` table and `ImagesResponse.stored`;
/// 4: `crawls.received`, image rows trusted per host).
pub const CONTRACT_VERSION: u32 = 4;

/// Largest gRPC message either side sends or accepts: an agent's batch, or a
/// chunk of a query's result.
pub const MAX_MESSAGE_BYTES: usize = 256 << 20;
