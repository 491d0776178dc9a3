//! `os`: the scope's operating-system identity from os-release.

use periscope_proto::tables::OS;

use super::{Scope, Sink};

/// os-release locations in the order systemd's os-release(5) prescribes.
pub const CANDIDATES: &[&str] = &["/etc/os-release", "/usr/lib/os-release"];

/// Distribution release files, most specific first; the first present is reported.
pub const RELEASE_FILES: &[&str] = &[
    "/etc/alpine-release",
    "/etc/redhat-release",
    "/etc/centos-release",
    "/etc/fedora-release",
    "/etc/rocky-release",
    "/etc/almalinux-release",
    "/etc/oracle-release",
    "/etc/SuSE-release",
    "/etc/system-release",
    "/etc/debian_version",
    "/etc/lsb-release",
];

/// Where a busybox-based root has its busybox.
pub const BUSYBOX: &[&str] = &["/bin/busybox", "/usr/bin/busybox"];

/// The first line of the first release file present.
fn release(scope: &Scope, out: &mut Sink) -> Option<String> {
    for path in RELEASE_FILES {
        match scope.root.read_prefix(path, 4096) {
            Ok((bytes, _)) => {
                let text = String::from_utf8_lossy(&bytes);
                return Some(text.lines().next().unwrap_or("").trim().to_string());
            }
            Err(e) if e.is_not_found() => {}
            Err(e) => out.read_error("os", path, &e),
        }
    }
    None
}

/// A root with /bin/busybox is busybox-based (its applets are links to it).
fn busybox(scope: &Scope) -> bool {
    BUSYBOX.iter().any(|p| scope.root.open_file(p).is_ok())
}

pub fn collect(scope: &Scope, out: &mut Sink) {
    let release = release(scope, out);
    let busybox = busybox(scope);
    let mut fields = Vec::new();
    let mut source = None;
    for path in CANDIDATES {
        match scope.root.read_limited(path, 64 << 10) {
            Ok(bytes) => {
                fields = parse_os_release(&String::from_utf8_lossy(&bytes));
                source = Some(*path);
                break;
            }
            Err(e) if e.is_not_found() => {}
            // A present but unreadable file is worth reporting even if the next one works.
            Err(e) => out.read_error("os", path, &e),
        }
    }
    if source.is_none() {
        let message = format!("no os-release found (looked for {})", CANDIDATES.join(", "));
        // A root with a package database is a distribution's, and without os-release its packages
        // match no distribution's advisories: an error. Without either (FROM scratch), a fact.
        use super::packages::{APK_INSTALLED, DPKG_STATUS, DPKG_STATUS_D, RPM_DIRS};
        let files = [DPKG_STATUS, APK_INSTALLED].iter().any(|p| scope.root.open_file(p).is_ok());
        let dirs = std::iter::once(&DPKG_STATUS_D).chain(RPM_DIRS).any(|d| scope.root.list_dir(d).is_ok());
        if files || dirs {
            out.error("os", Some(CANDIDATES[0]), &message);
        } else {
            out.absent("os", Some(CANDIDATES[0]), &message);
        }
        if release.is_none() && !busybox {
            return;
        }
        // Identify what we can without os-release: a busybox root, or the release file alone.
        if busybox && release.is_none() {
            fields = vec![("ID".into(), "busybox".into()), ("NAME".into(), "BusyBox".into())];
        }
    }
    let get = |k: &str| fields.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
    out.row(
        &OS,
        &[
            ("id", get("ID").into()),
            ("id_like", get("ID_LIKE").into()),
            ("name", get("NAME").into()),
            ("version", get("VERSION").into()),
            ("version_id", get("VERSION_ID").into()),
            ("version_codename", get("VERSION_CODENAME").into()),
            ("pretty_name", get("PRETTY_NAME").into()),
            ("source_path", source.into()),
            ("release", release.as_ref().into()),
            ("busybox", busybox.into()),
        ],
    );
}

/// Parses os-release: `KEY=value` lines, values optionally quoted with `"` or
/// `'`, backslash escapes inside double quotes, `#` comments. Malformed lines are skipped.
pub fn parse_os_release(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else { continue };
        if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        out.push((k.to_string(), unquote(v)));
    }
    out
}

fn unquote(v: &str) -> String {
    let v = v.trim();
    let bytes = v.as_bytes();
    if v.len() >= 2 && bytes[0] == b'\'' && bytes[v.len() - 1] == b'\'' {
        return v[1..v.len() - 1].to_string();
    }
    if v.len() >= 2 && bytes[0] == b'"' && bytes[v.len() - 1] == b'"' {
        let mut s = String::new();
        let mut chars = v[1..v.len() - 1].chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                if let Some(n) = chars.next() {
                    s.push(n);
                }
            } else {
                s.push(c);
            }
        }
        return s;
    }
    v.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cases() {
        let f = parse_os_release(
            "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME='Debian'\nVERSION_ID=\"12\"\n# c\nID=debian\nBAD LINE\nX=\"a\\\"b\"\n",
        );
        let get = |k: &str| f.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
        assert_eq!(get("PRETTY_NAME"), Some("Debian GNU/Linux 12 (bookworm)"));
        assert_eq!(get("NAME"), Some("Debian"));
        assert_eq!(get("VERSION_ID"), Some("12"));
        assert_eq!(get("ID"), Some("debian"));
        assert_eq!(get("X"), Some("a\"b"));
        assert_eq!(f.len(), 5);
    }
}
