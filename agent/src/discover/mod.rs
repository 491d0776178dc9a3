//! Discovering what a host runs, from its container runtimes' APIs. Rows land
//! in the host scope; the container and image filesystems are separate scopes.

pub mod cgroups;
pub mod containerd;
pub mod docker;
pub mod host;
pub mod netmount;
pub mod processes;
pub mod sockets;

/// Reads at most `cap` bytes of a file of the host's own procfs or cgroupfs
/// (trusted, unlike container filesystems, but still bounded). None when the
/// file is gone, as files of exiting processes are.
pub(crate) fn read_host(path: impl AsRef<std::path::Path>, cap: u64) -> Option<String> {
    use std::io::Read;
    let mut s = String::new();
    std::fs::File::open(path).ok()?.take(cap).read_to_string(&mut s).ok()?;
    Some(s)
}
