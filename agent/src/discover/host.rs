//! `host_info`: facts about the machine the agent runs on, from uname and
//! the host's own procfs (trusted, unlike container filesystems).

use periscope_proto::tables::HOST_INFO;

use crate::collectors::Sink;
use crate::encode::Value;

/// The value of `key` (in kB) in /proc/meminfo, as bytes.
pub fn meminfo_bytes(text: &str, key: &str) -> Option<i64> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(key)?.strip_prefix(':')?;
        let kb: i64 = rest.split_whitespace().next()?.parse().ok()?;
        kb.checked_mul(1024)
    })
}

pub fn fill(out: &mut Sink) {
    let u = rustix::system::uname();
    let s = |c: &std::ffi::CStr| c.to_string_lossy().into_owned();
    let uptime = std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|t| t.split_whitespace().next().and_then(|x| x.parse::<f64>().ok()))
        .map(|f| f as i64);
    let boot = procfs::boot_time_secs().ok().map(|b| b as i64 * 1_000_000);
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let cpus = std::thread::available_parallelism().ok().map(|n| n.get() as i64);
    let cgroup_version = if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() { 2 } else { 1 };
    if meminfo.is_empty() {
        out.error("host_info", Some("/proc/meminfo"), "unreadable: memory figures missing");
    }
    out.row(
        &HOST_INFO,
        &[
            ("hostname", s(u.nodename()).as_str().into()),
            ("kernel_release", s(u.release()).as_str().into()),
            ("kernel_version", s(u.version()).as_str().into()),
            ("arch", s(u.machine()).as_str().into()),
            ("boot_time", boot.map_or(Value::Null, Value::Int)),
            ("uptime_seconds", uptime.into()),
            ("cpu_count", cpus.into()),
            ("memory_total_bytes", meminfo_bytes(&meminfo, "MemTotal").into()),
            ("memory_available_bytes", meminfo_bytes(&meminfo, "MemAvailable").into()),
            ("cgroup_version", Value::Int(cgroup_version)),
        ],
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_parsing() {
        let t = "MemTotal:       24576000 kB\nMemFree: 100 kB\nMemAvailable:   20000000 kB\n";
        assert_eq!(meminfo_bytes(t, "MemTotal"), Some(24_576_000 * 1024));
        assert_eq!(meminfo_bytes(t, "MemAvailable"), Some(20_000_000 * 1024));
        assert_eq!(meminfo_bytes(t, "Mem"), None);
        assert_eq!(meminfo_bytes("MemTotal: x kB", "MemTotal"), None);
    }
}
