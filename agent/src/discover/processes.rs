//! `processes`: live processes from the host's own procfs (trusted, unlike
//! container filesystems), each attributed to a container by its cgroup path
//! (Docker's cgroupfs and systemd drivers, Kubernetes kubepods with
//! docker/cri-containerd/crio prefixes all end in the 64-hex container id).

use std::collections::HashMap;

use periscope_proto::tables::PROCESSES;

use crate::collectors::Sink;
use crate::collectors::accounts::parse_passwd;
use crate::encode::Value;

const C: &str = "processes";

/// The container id in a cgroup path: the last run of exactly 64 hex digits.
pub fn container_id_from_cgroup(path: &str) -> Option<String> {
    path.split(|c: char| !c.is_ascii_hexdigit()).rfind(|run| run.len() == 64).map(str::to_string)
}

/// The path of a /proc/<pid>/cgroup file worth reporting: one that names a
/// container if any line does (hybrid v1/v2 hosts list an empty unified
/// `0::/` beside the real v1 paths), else the unified (v2) one, else the first.
fn cgroup_path(text: &str) -> Option<String> {
    let paths: Vec<(&str, &str)> = text.lines().filter_map(|l| l.splitn(3, ':').nth(2).map(|p| (l, p))).collect();
    let pick = paths
        .iter()
        .find(|(_, p)| container_id_from_cgroup(p).is_some())
        .or_else(|| paths.iter().find(|(l, _)| l.starts_with("0::")))
        .or(paths.first())?;
    Some(pick.1.to_string())
}

/// Attributes processes to containers by their cgroups: the 64-hex id that
/// Docker and Kubernetes paths end in, or, for runtimes that let ids be any
/// name (containerd's `ctr`, nerdctl), the cgroup of a known container's main
/// process — only a cgroup path that names that container's id counts.
#[derive(Debug, Default)]
pub struct Attribution {
    by_path: HashMap<String, String>,
}

impl Attribution {
    /// From running containers as (id, host pid of the main process).
    pub fn new(running: &[(String, i64)]) -> Attribution {
        let mut by_path = HashMap::new();
        for (id, pid) in running {
            let Some(text) = super::read_host(format!("/proc/{pid}/cgroup"), 64 << 10) else { continue };
            for path in text.lines().filter_map(|l| l.splitn(3, ':').nth(2)) {
                if path.split('/').any(|seg| seg == id || seg.ends_with(&format!("-{id}.scope"))) {
                    by_path.insert(path.to_string(), id.clone());
                }
            }
        }
        Attribution { by_path }
    }

    /// The container a /proc/<pid>/cgroup text places its process in.
    pub fn container_of(&self, cgroup_text: &str) -> Option<String> {
        let paths = || cgroup_text.lines().filter_map(|l| l.splitn(3, ':').nth(2));
        paths().find_map(container_id_from_cgroup).or_else(|| paths().find_map(|p| self.by_path.get(p).cloned()))
    }
}

fn ns_inode(pid: i32, ns: &str) -> Option<i64> {
    let link = std::fs::read_link(format!("/proc/{pid}/ns/{ns}")).ok()?;
    let s = link.to_string_lossy();
    s.split_once('[')?.1.trim_end_matches(']').parse().ok()
}

/// Whether a cgroup path is one a container runtime creates (Docker cgroupfs
/// and systemd drivers, kubepods with docker/cri-containerd/crio, podman,
/// systemd-nspawn machines) — never a user-delegated one, where an
/// unprivileged user could name a cgroup after any id.
pub fn is_runtime_cgroup(path: &str) -> bool {
    if path.contains("user.slice") || path.contains("user@") {
        return false;
    }
    ["/docker/", "/docker-", "kubepods", "cri-containerd", "/crio-", "libpod-", "machine.slice"]
        .iter()
        .any(|p| path.contains(p))
}

/// Containers seen only through processes' cgroups: (container id, lowest pid
/// in it). The runtime-agnostic fallback for hosts whose runtime API does not
/// answer (or is not one Periscope speaks); only runtime-created cgroups count.
pub fn cgroup_containers() -> Vec<(String, i64)> {
    let mut found: std::collections::BTreeMap<String, i64> = std::collections::BTreeMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i64>().ok()) else { continue };
        let Some(cg) = super::read_host(format!("/proc/{pid}/cgroup"), 64 << 10) else { continue };
        if let Some(id) =
            cgroup_path(&cg).filter(|p| is_runtime_cgroup(p)).as_deref().and_then(container_id_from_cgroup)
        {
            let e = found.entry(id).or_insert(pid);
            *e = (*e).min(pid);
        }
    }
    found.into_iter().collect()
}

pub fn fill(out: &mut Sink, attribution: &Attribution) {
    let procs = match procfs::process::all_processes() {
        Ok(p) => p,
        Err(e) => return out.error(C, Some("/proc"), &format!("cannot list processes: {e}")),
    };
    // The host's users: PID 1's root is the host's `/` also when the agent runs in a container.
    let users: HashMap<i64, String> = super::read_host("/proc/1/root/etc/passwd", 64 << 10)
        .or_else(|| super::read_host("/etc/passwd", 64 << 10))
        .map(|t| parse_passwd(&t).0.into_iter().map(|u| (u.uid, u.name)).collect())
        .unwrap_or_default();
    let ticks = procfs::ticks_per_second().max(1) as i64;
    let boot = procfs::boot_time_secs().unwrap_or(0) as i64;
    let page = procfs::page_size() as i64;
    for p in procs {
        // A process that exits mid-listing is not an error.
        let Ok(p) = p else { continue };
        let Ok(stat) = p.stat() else { continue };
        let status = p.status().ok();
        let pid = p.pid;
        let cmdline = p.cmdline().map(|c| c.join(" ")).unwrap_or_default();
        let exe = p.exe().ok().map(|e| e.to_string_lossy().into_owned());
        let cgroup_text = super::read_host(format!("/proc/{pid}/cgroup"), 64 << 10);
        let cgroup = cgroup_text.as_deref().and_then(cgroup_path);
        let container = cgroup_text.as_deref().and_then(|t| attribution.container_of(t));
        let uid = status.as_ref().map(|s| s.ruid as i64);
        let user = if container.is_none() { uid.and_then(|u| users.get(&u).cloned()) } else { None };
        let ns_pid = status.as_ref().and_then(|s| s.nspid.as_ref()).and_then(|v| v.last().copied()).map(i64::from);
        let seccomp = status.as_ref().and_then(|s| s.seccomp).map(|m| match m {
            0 => "disabled",
            1 => "strict",
            _ => "filter",
        });
        let start_us = (boot * 1_000_000).saturating_add(stat.starttime as i64 * 1_000_000 / ticks);
        let cpu_ms = (stat.utime + stat.stime) as i64 * 1000 / ticks;
        out.row(
            &PROCESSES,
            &[
                ("pid", i64::from(pid).into()),
                ("ns_pid", ns_pid.into()),
                ("ppid", i64::from(stat.ppid).into()),
                ("name", stat.comm.as_str().into()),
                ("exe", exe.as_ref().into()),
                ("cmdline", cmdline.as_str().into()),
                ("uid", uid.into()),
                ("euid", status.as_ref().map(|s| s.euid as i64).into()),
                ("user", user.as_ref().into()),
                ("state", stat.state.to_string().as_str().into()),
                ("start_time", Value::Int(start_us)),
                ("rss_bytes", (stat.rss as i64 * page).into()),
                ("cpu_time_ms", cpu_ms.into()),
                ("threads", stat.num_threads.into()),
                ("cap_eff", status.as_ref().map(|s| format!("{:016x}", s.capeff)).as_ref().into()),
                ("no_new_privs", status.as_ref().and_then(|s| s.nonewprivs).map(|n| n != 0).into()),
                ("seccomp", seccomp.into()),
                ("cgroup", cgroup.as_ref().into()),
                ("pid_ns", ns_inode(pid, "pid").into()),
                ("net_ns", ns_inode(pid, "net").into()),
                ("mnt_ns", ns_inode(pid, "mnt").into()),
                ("container_id", container.as_ref().into()),
            ],
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_ids_from_cgroup_paths() {
        let id = "8f3c2a1b9d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a";
        for (path, want) in [
            (format!("/docker/{id}"), Some(id)),
            (format!("/system.slice/docker-{id}.scope"), Some(id)),
            (format!("/kubepods/burstable/pod1234-5678/{id}"), Some(id)),
            (format!("/kubepods.slice/kubepods-pod1.slice/cri-containerd-{id}.scope"), Some(id)),
            (format!("/kubepods.slice/kubepods-besteffort.slice/crio-{id}.scope"), Some(id)),
            ("/user.slice/user-0.slice/session-1.scope".to_string(), None),
            ("/".to_string(), None),
        ] {
            assert_eq!(container_id_from_cgroup(&path).as_deref(), want, "{path}");
        }
        assert_eq!(cgroup_path("0::/system.slice/x.scope\n").as_deref(), Some("/system.slice/x.scope"));
        // Review finding: user-delegated cgroups are never taken for containers.
        assert!(is_runtime_cgroup(&format!("/system.slice/docker-{id}.scope")));
        assert!(is_runtime_cgroup(&format!("/kubepods/burstable/pod1/{id}")));
        assert!(!is_runtime_cgroup(&format!("/user.slice/user-1000.slice/user@1000.service/{id}.scope")));
        assert!(!is_runtime_cgroup(&format!("/periscope-test/{id}")));
        assert_eq!(cgroup_path("12:pids:/docker/abc\n1:name=systemd:/docker/abc\n").as_deref(), Some("/docker/abc"));
        // Hybrid hosts: the empty unified line must not hide the container's v1 path.
        let hybrid = format!("4:memory:/docker/{id}\n0::/\n");
        assert_eq!(cgroup_path(&hybrid), Some(format!("/docker/{id}")));
    }
}
