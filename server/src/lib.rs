//! The `periscope` binary's library: the command line's pieces that wire the
//! server's crates together.
//!
//! Data flows one way: agents' batches arrive through the gRPC front
//! (`periscope-fronts`), are made durable by `periscope-store`, and are
//! answered in SQL by `periscope-query`, which the fronts and the compliance
//! reports (`periscope-report`) call. [`serve`] starts them side by side,
//! [`output`] formats results for the terminal, and [`quickstart`] runs all
//! of it in one process (the only server code that uses the agent crate).
//!
//! May import: every server crate and, for `quickstart` only, the agent.
//! Nothing imports it.

pub mod output;
pub mod quickstart;
pub mod serve;
