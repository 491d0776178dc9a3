//! `interfaces` (once per network namespace) and `mounts` (once per mount
//! namespace), from the host's procfs through one representative process of
//! each namespace — no netlink, no setns into any container.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use periscope_proto::tables::{INTERFACES, MOUNTS};

use super::processes::container_id_from_cgroup;
use crate::collectors::Sink;

/// One (lowest) pid per namespace of `kind` ("net", "mnt"), with that pid's container.
fn representatives(kind: &str) -> BTreeMap<i64, (i32, Option<String>)> {
    let mut out: BTreeMap<i64, (i32, Option<String>)> = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else { return out };
    let mut pids: Vec<i32> = dir.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).collect();
    pids.sort_unstable();
    for pid in pids {
        let Ok(link) = std::fs::read_link(format!("/proc/{pid}/ns/{kind}")) else { continue };
        let Some(ns) = link.to_string_lossy().split_once('[').and_then(|(_, r)| r.trim_end_matches(']').parse().ok())
        else {
            continue;
        };
        out.entry(ns).or_insert_with(|| {
            let cid = super::read_host(format!("/proc/{pid}/cgroup"), 64 << 10)
                .and_then(|t| t.lines().find_map(|l| l.splitn(3, ':').nth(2).and_then(container_id_from_cgroup)));
            (pid, cid)
        });
    }
    out
}

/// Interface counters from /proc/net/dev: name → [rx_bytes, rx_packets, rx_errs, rx_drop, tx_bytes, tx_packets, tx_errs, tx_drop].
pub fn parse_net_dev(text: &str) -> Vec<(String, [i64; 8])> {
    text.lines()
        .skip(2)
        .filter_map(|l| {
            let (name, rest) = l.split_once(':')?;
            let f: Vec<i64> = rest.split_whitespace().filter_map(|x| x.parse().ok()).collect();
            (f.len() >= 12).then(|| (name.trim().to_string(), [f[0], f[1], f[2], f[3], f[8], f[9], f[10], f[11]]))
        })
        .collect()
}

/// IPv6 addresses by interface from /proc/net/if_inet6.
pub fn parse_if_inet6(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let hex = f.first().filter(|h| h.len() == 32)?;
            let mut b = [0u8; 16];
            for (i, byte) in b.iter_mut().enumerate() {
                *byte = u8::from_str_radix(&hex[i * 2..i * 2 + 2], 16).ok()?;
            }
            let prefix = u8::from_str_radix(f.get(2)?, 16).ok()?;
            Some((f.get(5)?.to_string(), format!("{}/{prefix}", Ipv6Addr::from(b))))
        })
        .collect()
}

/// Local IPv4 addresses from /proc/net/fib_trie ("|-- A" followed by "/32 host LOCAL").
pub fn parse_fib_trie_locals(text: &str) -> Vec<Ipv4Addr> {
    let mut out = Vec::new();
    let mut last: Option<Ipv4Addr> = None;
    for l in text.lines() {
        let t = l.trim();
        if let Some(a) = t.strip_prefix("|-- ") {
            last = a.parse().ok();
        } else if t.starts_with("/32 host LOCAL")
            && let Some(a) = last
            && !out.contains(&a)
        {
            out.push(a);
        }
    }
    out
}

/// (interface, network, mask) from /proc/net/route, most specific first.
pub fn parse_route(text: &str) -> Vec<(String, u32, u32)> {
    let mut r: Vec<(String, u32, u32)> = text
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let dest = u32::from_str_radix(f.get(1)?, 16).ok()?.swap_bytes();
            let mask = u32::from_str_radix(f.get(7)?, 16).ok()?.swap_bytes();
            Some((f[0].to_string(), dest, mask))
        })
        .collect();
    r.sort_by(|a, b| b.2.count_ones().cmp(&a.2.count_ones()));
    r
}

/// The interface an address belongs to: loopback for 127/8, else the most specific non-default route covering it.
fn iface_of(a: Ipv4Addr, routes: &[(String, u32, u32)]) -> Option<String> {
    if a.is_loopback() {
        return Some("lo".into());
    }
    let n = u32::from(a);
    routes.iter().find(|(_, d, m)| *m != 0 && n & m == *d).map(|(i, _, _)| i.clone())
}

pub fn fill_interfaces(out: &mut Sink) {
    for (ns, (pid, cid)) in representatives("net") {
        let Some(dev) = super::read_host(format!("/proc/{pid}/net/dev"), 16 << 20) else { continue };
        let v6 = parse_if_inet6(&super::read_host(format!("/proc/{pid}/net/if_inet6"), 16 << 20).unwrap_or_default());
        let routes = parse_route(&super::read_host(format!("/proc/{pid}/net/route"), 16 << 20).unwrap_or_default());
        let v4: Vec<(String, Ipv4Addr)> =
            parse_fib_trie_locals(&super::read_host(format!("/proc/{pid}/net/fib_trie"), 16 << 20).unwrap_or_default())
                .into_iter()
                .filter_map(|a| Some((iface_of(a, &routes)?, a)))
                .collect();
        for (name, c) in parse_net_dev(&dev) {
            let ipv4: Vec<String> = v4.iter().filter(|(i, _)| *i == name).map(|(_, a)| a.to_string()).collect();
            let ipv6: Vec<String> = v6.iter().filter(|(i, _)| *i == name).map(|(_, a)| a.clone()).collect();
            let j = |v: &[String]| (!v.is_empty()).then(|| v.join(","));
            out.row(
                &INTERFACES,
                &[
                    ("net_ns", ns.into()),
                    ("name", name.as_str().into()),
                    ("ipv4", j(&ipv4).as_ref().into()),
                    ("ipv6", j(&ipv6).as_ref().into()),
                    ("rx_bytes", c[0].into()),
                    ("rx_packets", c[1].into()),
                    ("rx_errors", c[2].into()),
                    ("rx_dropped", c[3].into()),
                    ("tx_bytes", c[4].into()),
                    ("tx_packets", c[5].into()),
                    ("tx_errors", c[6].into()),
                    ("tx_dropped", c[7].into()),
                    ("container_id", cid.as_ref().into()),
                ],
            );
        }
    }
}

/// One mountinfo line: (mount_id, parent_id, device, root, mount_point, options, fs_type, source, super_options).
pub type MountLine = (i64, i64, String, String, String, String, String, String, String);

/// Parses /proc/<pid>/mountinfo; octal escapes (\\040 for space) are decoded.
pub fn parse_mountinfo(text: &str) -> Vec<MountLine> {
    let unescape = |s: &str| String::from_utf8_lossy(&crate::mounts::unescape(s.as_bytes())).into_owned();
    text.lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let a: Vec<&str> = pre.split(' ').collect();
            let b: Vec<&str> = post.split(' ').collect();
            Some((
                a.first()?.parse().ok()?,
                a.get(1)?.parse().ok()?,
                a.get(2)?.to_string(),
                unescape(a.get(3)?),
                unescape(a.get(4)?),
                a.get(5)?.to_string(),
                b.first()?.to_string(),
                unescape(b.get(1)?),
                b.get(2).map(|s| s.to_string()).unwrap_or_default(),
            ))
        })
        .collect()
}

pub fn fill_mounts(out: &mut Sink) {
    for (ns, (pid, cid)) in representatives("mnt") {
        let Some(text) = super::read_host(format!("/proc/{pid}/mountinfo"), 16 << 20) else { continue };
        for (id, parent, dev, root, mp, opts, fs, src, sopts) in parse_mountinfo(&text) {
            out.row(
                &MOUNTS,
                &[
                    ("mnt_ns", ns.into()),
                    ("mount_id", id.into()),
                    ("parent_id", parent.into()),
                    ("device", dev.as_str().into()),
                    ("root", root.as_str().into()),
                    ("mount_point", mp.as_str().into()),
                    ("options", opts.as_str().into()),
                    ("fs_type", fs.as_str().into()),
                    ("source", src.as_str().into()),
                    ("super_options", sopts.as_str().into()),
                    ("container_id", cid.as_ref().into()),
                ],
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn procfs_formats() {
        let dev = "Inter-|   Receive\n face |bytes\n    lo: 100 2 0 0 0 0 0 0 100 2 0 0 0 0 0 0\n  eth0: 5000 40 1 2 0 0 0 0 7000 50 3 4 0 0 0 0\n";
        assert_eq!(
            parse_net_dev(dev),
            [("lo".to_string(), [100, 2, 0, 0, 100, 2, 0, 0]), ("eth0".to_string(), [5000, 40, 1, 2, 7000, 50, 3, 4])]
        );
        let v6 = "00000000000000000000000000000001 01 80 10 80       lo\nfe800000000000000042e2fffe25f42c 05 40 20 80  docker0\n";
        assert_eq!(
            parse_if_inet6(v6),
            [
                ("lo".to_string(), "::1/128".to_string()),
                ("docker0".to_string(), "fe80::42:e2ff:fe25:f42c/64".to_string())
            ]
        );
        let trie = "Main:\n  +-- 0.0.0.0/0 3 0 4\n     |-- 127.0.0.1\n        /32 host LOCAL\n     |-- 172.17.0.1\n        /32 host LOCAL\n     |-- 172.17.255.255\n        /32 link BROADCAST\nLocal:\n     |-- 172.17.0.1\n        /32 host LOCAL\n";
        let locals = parse_fib_trie_locals(trie);
        assert_eq!(locals, [Ipv4Addr::new(127, 0, 0, 1), Ipv4Addr::new(172, 17, 0, 1)]);
        let route = "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT\neth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\ndocker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n";
        let routes = parse_route(route);
        assert_eq!(iface_of(Ipv4Addr::new(172, 17, 0, 1), &routes).as_deref(), Some("docker0"));
        assert_eq!(iface_of(Ipv4Addr::new(127, 0, 0, 1), &routes).as_deref(), Some("lo"));
        assert_eq!(
            iface_of(Ipv4Addr::new(8, 8, 8, 8), &routes),
            None,
            "the default route names no address's interface"
        );
        let mi =
            "36 35 98:0 /mnt1 /mnt/with\\040space rw,noatime master:1 - ext3 /dev/root rw,errors=continue\nbad line\n";
        let m = parse_mountinfo(mi);
        assert_eq!(m.len(), 1);
        assert_eq!(
            (m[0].0, m[0].1, m[0].4.as_str(), m[0].6.as_str(), m[0].7.as_str()),
            (36, 35, "/mnt/with space", "ext3", "/dev/root")
        );
    }
}
