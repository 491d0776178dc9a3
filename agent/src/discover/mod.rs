//! Discovering what a host runs, from its container runtimes' APIs. Rows land
//! in the host scope; the container and image filesystems are separate scopes.

pub mod cgroups;
pub mod docker;
pub mod host;
pub mod netmount;
pub mod processes;
pub mod sockets;
