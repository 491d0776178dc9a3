//! The agent's self-limits: a CPU niceness applied at start, and a memory
//! ceiling checked after every full crawl. Over the ceiling, the next crawls
//! skip the optional collectors (files, configs, unowned_files and
//! embedded_libraries) until the agent's memory is back under it: degraded,
//! reported, never killed.
//! The default ceiling follows the agent's own cgroup: 80% of its memory
//! limit when it has one (a DaemonSet's resources.limits.memory), else 512 MiB.

/// Bytes from which glibc's malloc maps each block on its own, and unmaps
/// it when freed (see [`release_big_blocks`]).
pub const MMAP_THRESHOLD: usize = 1 << 20;

/// Makes glibc's malloc give freed blocks of [`MMAP_THRESHOLD`] bytes or
/// more back to the system at once (call it first thing, before any thread).
/// By default its threshold follows the largest mapped block freed, up to
/// 32 MiB: once a crawl's first batch (up to 8 MiB of strings) was freed,
/// later batches, their spill encodings and printed rows came from the heap
/// of the crawl thread's arena, where what is freed stays resident. A root
/// of deep long names peaked at 74 MB RSS for 23 MB of heap; 29 MB with the
/// threshold pinned (setting it turns glibc's adjustment off). Other C
/// libraries' allocators are left as they are.
pub fn release_big_blocks() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a tunable of glibc's allocator.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD as libc::c_int);
    }
}

/// Raises this process's soft limit on open descriptors to its hard limit,
/// as Go's runtime does at start (call it first thing): the soft limit is
/// often 1024 for compatibility with select(2), which the agent never uses,
/// and the merge of an image's layers holds one descriptor per layer for
/// each directory it caches (see `layers::cache_fds`). Returns the soft limit
/// now in force.
pub fn raise_fd_limit() -> u64 {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut l = getrlimit(Resource::Nofile);
    if l.current != l.maximum {
        let raised = rustix::process::Rlimit { current: l.maximum, maximum: l.maximum };
        if setrlimit(Resource::Nofile, raised).is_ok() {
            l = getrlimit(Resource::Nofile);
        }
    }
    l.current.unwrap_or(u64::MAX)
}

/// Collectors the agent drops first when it is over its memory ceiling.
pub const OPTIONAL_COLLECTORS: &[&str] = &["files", "configs", "unowned_files", "embedded_libraries"];

/// Resident memory of this process, from /proc/self/statm.
pub fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * procfs::page_size())
}

/// The memory limit of this process's own cgroup (v2 memory.max, or v1
/// memory.limit_in_bytes), when one is set.
pub fn cgroup_memory_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    for line in text.lines() {
        let mut f = line.splitn(3, ':');
        let (_, ctrls, path) = (f.next()?, f.next()?, f.next()?);
        let path = path.trim_start_matches('/');
        let file = if ctrls.is_empty() {
            std::path::Path::new("/sys/fs/cgroup").join(path).join("memory.max")
        } else if ctrls.split(',').any(|c| c == "memory") {
            std::path::Path::new("/sys/fs/cgroup/memory").join(path).join("memory.limit_in_bytes")
        } else {
            continue;
        };
        if let Some(v) = std::fs::read_to_string(file).ok().and_then(|s| s.trim().parse::<u64>().ok()) {
            // v1 reports "no limit" as a huge number near i64::MAX.
            if v < (1 << 60) {
                return Some(v);
            }
        }
    }
    None
}

/// The ceiling when none is configured: 80% of the container's memory limit
/// — PERISCOPE_MEMORY_LIMIT_BYTES when set (Kubernetes' downward API gives a
/// pod its `limits.memory` so: in a cgroup namespace with the host's cgroup
/// filesystem mounted, the agent's own limit cannot be read), else its
/// cgroup's — or 512 MiB when there is none.
pub fn default_memory_limit() -> u64 {
    let given = std::env::var("PERISCOPE_MEMORY_LIMIT_BYTES").ok().and_then(|v| v.trim().parse::<u64>().ok());
    given.filter(|&l| l > 0).or_else(cgroup_memory_limit).map_or(512 << 20, |l| l / 10 * 8)
}

/// Raises this process's niceness to `nice` (never lowers it); returns the niceness now.
pub fn set_nice(nice: i32) -> i32 {
    let now = rustix::process::getpriority_process(None).unwrap_or(0);
    if nice > now {
        let _ = rustix::process::setpriority_process(None, nice);
    }
    rustix::process::getpriority_process(None).unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_memory_and_niceness_are_read() {
        let rss = rss_bytes().unwrap();
        assert!(rss > 1 << 20 && rss < 16 << 30, "{rss}");
        assert!(default_memory_limit() > 0);
        // A test process may raise its own niceness.
        let n = set_nice(5);
        assert!(n >= 5, "{n}");
    }
}
