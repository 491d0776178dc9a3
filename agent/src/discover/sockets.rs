//! `listening_ports` and `connections`: sockets from /proc/<pid>/net/{tcp,udp}{,6}
//! of the host's procfs, read once per network namespace (a pod's containers
//! share one), with socket inodes mapped to the processes holding them.

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, Ipv6Addr};

use periscope_proto::tables::{CONNECTIONS, LISTENING_PORTS};

use crate::collectors::Sink;

/// One line of /proc/net/{tcp,udp}{,6}.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sock {
    pub local: (String, u16),
    pub remote: (String, u16),
    pub state: u8,
    pub inode: u64,
}

/// TCP state names by the kernel's numbering.
pub fn tcp_state(s: u8) -> &'static str {
    match s {
        1 => "ESTABLISHED",
        2 => "SYN_SENT",
        3 => "SYN_RECV",
        4 => "FIN_WAIT1",
        5 => "FIN_WAIT2",
        6 => "TIME_WAIT",
        7 => "CLOSE",
        8 => "CLOSE_WAIT",
        9 => "LAST_ACK",
        10 => "LISTEN",
        11 => "CLOSING",
        _ => "UNKNOWN",
    }
}

/// `0100007F:1F90` → ("127.0.0.1", 8080): the address is the kernel's words in host (little-endian) order.
fn addr(s: &str) -> Option<(String, u16)> {
    let (a, p) = s.split_once(':')?;
    let port = u16::from_str_radix(p, 16).ok()?;
    let ip = match a.len() {
        8 => Ipv4Addr::from(u32::from_str_radix(a, 16).ok()?.swap_bytes()).to_string(),
        32 => {
            let mut b = [0u8; 16];
            for w in 0..4 {
                let word = u32::from_str_radix(&a[w * 8..w * 8 + 8], 16).ok()?.swap_bytes();
                b[w * 4..w * 4 + 4].copy_from_slice(&word.to_be_bytes());
            }
            Ipv6Addr::from(b).to_string()
        }
        _ => return None,
    };
    Some((ip, port))
}

/// Parses a /proc/net socket table; malformed lines are skipped.
pub fn parse(text: &str) -> Vec<Sock> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some(Sock {
                local: addr(f.get(1)?)?,
                remote: addr(f.get(2)?)?,
                state: u8::from_str_radix(f.get(3)?, 16).ok()?,
                inode: f.get(9)?.parse().ok()?,
            })
        })
        .collect()
}

/// A network namespace's socket counts, from /proc/<pid>/net/sockstat{,6}.
///
/// Reading /proc/<pid>/net/tcp costs a walk of the kernel's whole TCP
/// established hash (shared by every namespace: 35% of an unchanged crawl's
/// CPU with 100 containers, `established_get_first`) even when the namespace
/// holds no socket, as an idle container's often does. The counts are the
/// namespace's own and cost nothing to read: a table they say is empty is
/// not read. Unreadable or unparsable counts: every table is read.
#[derive(Debug, Default, PartialEq, Eq)]
struct SockCounts {
    tcp: Option<u64>,
    /// TIME_WAIT sockets of the namespace, IPv4 and IPv6 alike.
    tw: Option<u64>,
    udp: Option<u64>,
    tcp6: Option<u64>,
    udp6: Option<u64>,
}

impl SockCounts {
    fn parse(v4: &str, v6: &str) -> SockCounts {
        let field = |text: &str, proto: &str, name: &str| -> Option<u64> {
            let line = text.lines().find(|l| l.split_whitespace().next() == Some(proto))?;
            let mut words = line.split_whitespace().skip(1);
            while let Some(w) = words.next() {
                if w == name {
                    return words.next()?.parse().ok();
                }
            }
            None
        };
        SockCounts {
            tcp: field(v4, "TCP:", "inuse"),
            tw: field(v4, "TCP:", "tw"),
            udp: field(v4, "UDP:", "inuse"),
            tcp6: field(v6, "TCP6:", "inuse"),
            udp6: field(v6, "UDP6:", "inuse"),
        }
    }

    /// Whether /proc/net/`proto` may list a socket (true when a count is missing).
    fn may_list(&self, proto: &str) -> bool {
        let some = |n: Option<u64>| n.is_none_or(|n| n > 0);
        match proto {
            "tcp" => some(self.tcp) || some(self.tw),
            "tcp6" => some(self.tcp6) || some(self.tw),
            "udp" => some(self.udp),
            "udp6" => some(self.udp6),
            _ => true,
        }
    }
}

fn ns_inode(pid: i32) -> Option<i64> {
    let link = std::fs::read_link(format!("/proc/{pid}/ns/net")).ok()?;
    link.to_string_lossy().split_once('[')?.1.trim_end_matches(']').parse().ok()
}

pub fn fill(out: &mut Sink, attribution: &super::processes::Attribution) {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out.error("sockets", Some("/proc"), "cannot list /proc");
    };
    let pids: Vec<i32> = dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect();
    // socket inode -> pid, one representative pid per network namespace, and each pid's container.
    let mut holder: HashMap<u64, i32> = HashMap::new();
    let mut netns: BTreeMap<i64, i32> = BTreeMap::new();
    let mut container: HashMap<i32, String> = HashMap::new();
    let mut name: HashMap<i32, String> = HashMap::new();
    for &pid in &pids {
        let Some(ns) = ns_inode(pid) else { continue };
        netns.entry(ns).or_insert(pid);
        if let Some(cg) = super::read_host(format!("/proc/{pid}/cgroup"), 64 << 10)
            && let Some(id) = attribution.container_of(&cg)
        {
            container.insert(pid, id);
        }
        if let Some(comm) = super::read_host(format!("/proc/{pid}/comm"), 256) {
            name.insert(pid, comm.trim().to_string());
        }
        if let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
            for fd in fds.flatten() {
                let Ok(link) = std::fs::read_link(fd.path()) else { continue };
                let l = link.to_string_lossy();
                if let Some(ino) = l.strip_prefix("socket:[").and_then(|r| r.trim_end_matches(']').parse().ok()) {
                    holder.entry(ino).or_insert(pid);
                }
            }
        }
    }
    for (ns, rep) in netns {
        // A namespace's sockets belong to the container its processes are in, when they agree.
        let ns_container = container.get(&rep).cloned();
        let counts = super::read_host(format!("/proc/{rep}/net/sockstat"), 4096)
            .zip(super::read_host(format!("/proc/{rep}/net/sockstat6"), 4096))
            .map(|(v4, v6)| SockCounts::parse(&v4, &v6));
        for proto in ["tcp", "tcp6", "udp", "udp6"] {
            if counts.as_ref().is_some_and(|c| !c.may_list(proto)) {
                continue;
            }
            let Some(text) = super::read_host(format!("/proc/{rep}/net/{proto}"), 64 << 20) else { continue };
            for s in parse(&text) {
                let pid = holder.get(&s.inode).copied();
                let cid = pid.and_then(|p| container.get(&p).cloned()).or_else(|| ns_container.clone());
                let udp = proto.starts_with("udp");
                let listening = if udp { s.remote.1 == 0 } else { s.state == 10 };
                if listening {
                    out.row(
                        &LISTENING_PORTS,
                        &[
                            ("protocol", proto.into()),
                            ("address", s.local.0.as_str().into()),
                            ("port", i64::from(s.local.1).into()),
                            ("net_ns", ns.into()),
                            ("pid", pid.map(i64::from).into()),
                            ("process", pid.and_then(|p| name.get(&p)).into()),
                            ("container_id", cid.as_ref().into()),
                        ],
                    );
                } else {
                    out.row(
                        &CONNECTIONS,
                        &[
                            ("protocol", proto.into()),
                            ("local_address", s.local.0.as_str().into()),
                            ("local_port", i64::from(s.local.1).into()),
                            ("remote_address", s.remote.0.as_str().into()),
                            ("remote_port", i64::from(s.remote.1).into()),
                            ("state", (if udp { "UDP" } else { tcp_state(s.state) }).into()),
                            ("net_ns", ns.into()),
                            ("pid", pid.map(i64::from).into()),
                            ("container_id", cid.as_ref().into()),
                        ],
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_net_lines() {
        // Lines in the kernel's /proc/net/tcp and tcp6 layout.
        let tcp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 1 0000000000000000 100 0 0 10 0\n   1: 0F02000A:0016 0102000A:C350 01 00000000:00000000 02:00000A2B 00000000     0        0 67890 4 0000000000000000 20 4 30 10 -1\ngarbage\n";
        let s = parse(tcp);
        assert_eq!(s.len(), 2);
        assert_eq!(
            s[0],
            Sock { local: ("127.0.0.1".into(), 8080), remote: ("0.0.0.0".into(), 0), state: 10, inode: 12345 }
        );
        assert_eq!(
            (s[1].local.clone(), s[1].remote.clone(), tcp_state(s[1].state)),
            (("10.0.2.15".into(), 22), ("10.0.2.1".into(), 50000), "ESTABLISHED")
        );
        let tcp6 = "header\n   0: 00000000000000000000000001000000:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 555 1\n";
        assert_eq!(parse(tcp6)[0].local, ("::1".into(), 80));
    }

    #[test]
    fn sockstat_counts_say_which_tables_may_list_sockets() {
        // The kernel's layout (net/ipv4/proc.c, net/ipv6/proc.c).
        let v4 = "sockets: used 25\nTCP: inuse 0 orphan 0 tw 0 alloc 1 mem 147\nUDP: inuse 2 mem 0\nUDPLITE: inuse 0\nRAW: inuse 0\nFRAG: inuse 0 memory 0\n";
        let v6 = "TCP6: inuse 3\nUDP6: inuse 0\nUDPLITE6: inuse 0\nRAW6: inuse 0\nFRAG6: inuse 0 memory 0\n";
        let c = SockCounts::parse(v4, v6);
        assert_eq!(c, SockCounts { tcp: Some(0), tw: Some(0), udp: Some(2), tcp6: Some(3), udp6: Some(0) });
        let listed: Vec<&str> = ["tcp", "tcp6", "udp", "udp6"].into_iter().filter(|p| c.may_list(p)).collect();
        assert_eq!(listed, ["tcp6", "udp"]);
        // TIME_WAIT sockets are counted once for both families: both tables may list them.
        let c = SockCounts::parse(&v4.replace("tw 0", "tw 1"), v6);
        assert!(c.may_list("tcp") && c.may_list("tcp6"));
        // Counts that cannot be read mean "read it".
        let c = SockCounts::parse("garbage", "");
        assert!(["tcp", "tcp6", "udp", "udp6"].iter().all(|p| c.may_list(p)));
    }
}
