//! `container_metrics`: memory, OOM, CPU and pids figures of each running
//! container from the host's cgroup filesystem, for both hierarchies: v1
//! (one directory per controller) and v2 (one unified directory). The parsers
//! take a file reader, so each hierarchy is testable from file contents.

use periscope_proto::tables::CONTAINER_METRICS;

use crate::collectors::Sink;
use crate::encode::Value;

/// One container's figures; None where the kernel does not report one or it is unlimited.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Metrics {
    pub version: i64,
    pub memory_current: Option<i64>,
    pub memory_limit: Option<i64>,
    pub memory_peak: Option<i64>,
    pub oom_events: Option<i64>,
    pub oom_kills: Option<i64>,
    pub cpu_usage_ns: Option<i64>,
    pub cpu_periods: Option<i64>,
    pub cpu_throttled_periods: Option<i64>,
    pub cpu_throttled_ns: Option<i64>,
    pub pids_current: Option<i64>,
    pub pids_limit: Option<i64>,
}

fn num(s: Option<String>) -> Option<i64> {
    s?.trim().parse().ok()
}

/// A `key value` line's value from flat-keyed files (memory.events, cpu.stat, memory.oom_control).
fn keyed(text: &Option<String>, key: &str) -> Option<i64> {
    text.as_ref()?.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// v1 reports "no limit" as a huge page-aligned number.
fn v1_limit(v: Option<i64>) -> Option<i64> {
    v.filter(|&n| n < (1i64 << 62))
}

/// cgroup v1: `read(controller, file)`.
pub fn v1(read: &dyn Fn(&str, &str) -> Option<String>) -> Metrics {
    let oom = read("memory", "memory.oom_control");
    let cpu_stat = read("cpu", "cpu.stat");
    Metrics {
        version: 1,
        memory_current: num(read("memory", "memory.usage_in_bytes")),
        memory_limit: v1_limit(num(read("memory", "memory.limit_in_bytes"))),
        memory_peak: num(read("memory", "memory.max_usage_in_bytes")),
        // v1 counts hitting the limit in failcnt; oom_kill appeared in kernel 4.13.
        oom_events: num(read("memory", "memory.failcnt")),
        oom_kills: keyed(&oom, "oom_kill"),
        cpu_usage_ns: num(read("cpuacct", "cpuacct.usage")),
        cpu_periods: keyed(&cpu_stat, "nr_periods"),
        cpu_throttled_periods: keyed(&cpu_stat, "nr_throttled"),
        cpu_throttled_ns: keyed(&cpu_stat, "throttled_time"),
        pids_current: num(read("pids", "pids.current")),
        pids_limit: num(read("pids", "pids.max")),
    }
}

/// cgroup v2: `read(file)` in the container's unified directory.
pub fn v2(read: &dyn Fn(&str) -> Option<String>) -> Metrics {
    let events = read("memory.events");
    let cpu_stat = read("cpu.stat");
    Metrics {
        version: 2,
        memory_current: num(read("memory.current")),
        memory_limit: num(read("memory.max")),
        memory_peak: num(read("memory.peak")),
        oom_events: keyed(&events, "oom"),
        oom_kills: keyed(&events, "oom_kill"),
        cpu_usage_ns: keyed(&cpu_stat, "usage_usec").map(|u| u.saturating_mul(1000)),
        cpu_periods: keyed(&cpu_stat, "nr_periods"),
        cpu_throttled_periods: keyed(&cpu_stat, "nr_throttled"),
        cpu_throttled_ns: keyed(&cpu_stat, "throttled_usec").map(|u| u.saturating_mul(1000)),
        pids_current: num(read("pids.current")),
        pids_limit: num(read("pids.max")),
    }
}

/// The metrics of the cgroups `pid` is in, under the cgroup filesystem at `base`.
pub fn for_pid(pid: i64, base: &std::path::Path) -> Result<Metrics, String> {
    let unreadable = || "cgroup unreadable (stopped?)".to_string();
    let text = super::read_host(format!("/proc/{pid}/cgroup"), 64 << 10).ok_or_else(unreadable)?;
    if base.join("cgroup.controllers").exists() {
        let path = text.lines().find_map(|l| l.strip_prefix("0::")).ok_or_else(unreadable)?;
        // Seen from a cgroup namespace of its own (a pod's, a container's on cgroup v2), another
        // container's cgroup is a path above that namespace's root, which no mount here shows.
        if path.split('/').any(|c| c == "..") {
            return Err(format!(
                "its cgroup {path} lies outside the agent's cgroup namespace: the agent needs the host's \
                 (a systemd service or `docker run --cgroupns host`); Kubernetes gives every pod its own on cgroup v2"
            ));
        }
        let dir = base.join(path.trim_start_matches('/'));
        return Ok(v2(&|f| super::read_host(dir.join(f), 64 << 10)));
    }
    // v1: each line is id:controllers:path; a controller's directory may be shared ("cpu,cpuacct").
    let mut dirs = Vec::new();
    for l in text.lines() {
        let mut it = l.splitn(3, ':');
        let (Some(ctrls), Some(path)) = (it.nth(1), it.next()) else { continue };
        for c in ctrls.split(',').filter(|c| !c.is_empty()) {
            dirs.push((c.to_string(), base.join(c).join(path.trim_start_matches('/'))));
        }
    }
    Ok(v1(&|ctrl, f| dirs.iter().find(|(c, _)| c == ctrl).and_then(|(_, d)| super::read_host(d.join(f), 64 << 10))))
}

pub fn fill(running: &[(String, i64)], out: &mut Sink) {
    let base = std::path::Path::new("/sys/fs/cgroup");
    for (id, pid) in running {
        let m = match for_pid(*pid, base) {
            Ok(m) => m,
            Err(why) => {
                out.error("container_metrics", Some(&format!("/proc/{pid}/cgroup")), &format!("container {id}: {why}"));
                continue;
            }
        };
        let v = |x: Option<i64>| x.map_or(Value::Null, Value::Int);
        out.row(
            &CONTAINER_METRICS,
            &[
                ("container_id", id.as_str().into()),
                ("cgroup_version", Value::Int(m.version)),
                ("memory_current_bytes", v(m.memory_current)),
                ("memory_limit_bytes", v(m.memory_limit)),
                ("memory_peak_bytes", v(m.memory_peak)),
                ("oom_events", v(m.oom_events)),
                ("oom_kills", v(m.oom_kills)),
                ("cpu_usage_ns", v(m.cpu_usage_ns)),
                ("cpu_periods", v(m.cpu_periods)),
                ("cpu_throttled_periods", v(m.cpu_throttled_periods)),
                ("cpu_throttled_ns", v(m.cpu_throttled_ns)),
                ("pids_current", v(m.pids_current)),
                ("pids_limit", v(m.pids_limit)),
            ],
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// cgroup v2 files in the format of the kernel's cgroup-v2 documentation
    /// (this machine runs v1, so v2 is checked on file contents; v1 is tested live).
    #[test]
    fn v2_from_file_contents() {
        let files = [
            ("memory.current", "5242880\n"),
            ("memory.max", "67108864\n"),
            ("memory.peak", "8388608\n"),
            ("memory.events", "low 0\nhigh 0\nmax 12\noom 3\noom_kill 2\noom_group_kill 0\n"),
            (
                "cpu.stat",
                "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 10\nnr_throttled 4\nthrottled_usec 250\n",
            ),
            ("pids.current", "3\n"),
            ("pids.max", "max\n"),
        ];
        let m = v2(&|f| files.iter().find(|(n, _)| *n == f).map(|(_, c)| c.to_string()));
        assert_eq!(
            m,
            Metrics {
                version: 2,
                memory_current: Some(5_242_880),
                memory_limit: Some(67_108_864),
                memory_peak: Some(8_388_608),
                oom_events: Some(3),
                oom_kills: Some(2),
                cpu_usage_ns: Some(1_500_000),
                cpu_periods: Some(10),
                cpu_throttled_periods: Some(4),
                cpu_throttled_ns: Some(250_000),
                pids_current: Some(3),
                pids_limit: None,
            }
        );
        let unlimited = v2(&|f| (f == "memory.max").then(|| "max\n".to_string()));
        assert_eq!(unlimited.memory_limit, None);
    }

    #[test]
    fn v1_unlimited_memory_is_null() {
        let m = v1(&|c, f| match (c, f) {
            ("memory", "memory.limit_in_bytes") => Some("9223372036854771712\n".into()),
            ("memory", "memory.oom_control") => Some("oom_kill_disable 0\nunder_oom 0\noom_kill 5\n".into()),
            ("pids", "pids.max") => Some("max\n".into()),
            _ => None,
        });
        assert_eq!((m.memory_limit, m.oom_kills, m.pids_limit), (None, Some(5), None));
    }
}
