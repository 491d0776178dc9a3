//! Parser for dpkg's status database (`/var/lib/dpkg/status`, deb822 stanzas).
//!
//! Pure and total: any bytes in, packages and per-stanza problems out. Field
//! names are case-insensitive; continuation lines (leading space or tab) extend
//! the previous field; stanzas are separated by blank lines.

/// One stanza of the status file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DpkgPackage {
    pub name: String,
    pub version: Option<String>,
    pub architecture: Option<String>,
    pub source: Option<String>,
    pub source_version: Option<String>,
    pub status: Option<String>,
    pub maintainer: Option<String>,
    /// In bytes (the database records KiB).
    pub installed_size: Option<i64>,
    /// First line of Description.
    pub description: Option<String>,
    pub homepage: Option<String>,
}

impl DpkgPackage {
    /// True when the package's files are on disk: the third word of Status is
    /// one of dpkg's installed-ish states. `config-files` and `not-installed`
    /// (including a `deinstall`/`purge` that completed) are not.
    pub fn is_installed(&self) -> bool {
        let state = self.status.as_deref().and_then(|s| s.split_whitespace().nth(2));
        matches!(
            state,
            Some(
                "installed"
                    | "half-configured"
                    | "unpacked"
                    | "half-installed"
                    | "triggers-awaited"
                    | "triggers-pending"
            )
        )
    }
}

pub use super::parse::StanzaError;
use super::parse::{Deadline, Errors, MAX_VALUE, STOPPED, lines, quote, text};

/// Parses a whole status file.
pub fn parse_status(bytes: &[u8]) -> (Vec<DpkgPackage>, Vec<StanzaError>) {
    parse_status_within(bytes, &mut Deadline::new(&mut || false))
}

/// Parses a status file until `deadline` says the scope's time is up (asked
/// at every stanza): the packages read so far are kept and one problem says
/// where it stopped.
///
/// Values stay bytes borrowed from the input until a stanza is done; only
/// the fields a package keeps become text, each cut to [`MAX_VALUE`] bytes.
/// Problems are bounded (see [`Errors`]).
pub fn parse_status_within(bytes: &[u8], deadline: &mut Deadline<'_>) -> (Vec<DpkgPackage>, Vec<StanzaError>) {
    let mut pkgs = Vec::new();
    let mut errors = Errors::default();
    // (name, value): the value runs from after the colon to the end of its last continuation line.
    let mut fields: Vec<(&[u8], &[u8])> = Vec::new();
    let mut start = 1;
    let at = |piece: &[u8]| piece.as_ptr() as usize - bytes.as_ptr() as usize;
    for (i, line) in lines(bytes).chain(std::iter::once(&b""[..])).enumerate() {
        let lineno = i + 1;
        if line.trim_ascii().is_empty() {
            if !fields.is_empty() {
                match stanza(&fields) {
                    Ok(p) => pkgs.push(p),
                    Err(message) => errors.push(start, || message),
                }
                fields.clear();
            }
            start = lineno + 1;
            continue;
        }
        let stop = if fields.is_empty() { deadline.stanza() } else { deadline.line() };
        if stop {
            errors.push(lineno, || STOPPED.to_string());
            break;
        }
        if line.starts_with(b" ") || line.starts_with(b"\t") {
            match fields.last_mut() {
                Some((_, v)) => {
                    // Extend the value over this line, in place.
                    let from = at(v);
                    *v = &bytes[from..at(line) + line.len()];
                }
                None => errors.push(lineno, || "continuation line before any field".into()),
            }
            continue;
        }
        match line.iter().position(|&b| b == b':') {
            Some(c) if c > 0 && !line[..c].iter().any(u8::is_ascii_whitespace) => {
                fields.push((&line[..c], &line[c + 1..]));
            }
            _ => errors.push(lineno, || format!("not a field: {:?}", quote(line, 80))),
        }
    }
    (pkgs, errors.into_vec())
}

/// A field's value as text: its lines trimmed and joined by newlines, cut to [`MAX_VALUE`] bytes.
fn value(v: &[u8]) -> String {
    let mut out = Vec::new();
    for (i, l) in lines(v).enumerate() {
        if out.len() > MAX_VALUE {
            break;
        }
        if i > 0 {
            out.push(b'\n');
        }
        out.extend_from_slice(l.trim_ascii());
    }
    text(&out, MAX_VALUE)
}

fn stanza(fields: &[(&[u8], &[u8])]) -> Result<DpkgPackage, String> {
    let get = |name: &str| fields.iter().find(|(k, _)| k.eq_ignore_ascii_case(name.as_bytes())).map(|(_, v)| value(v));
    let name = get("Package").filter(|n| !n.is_empty()).ok_or_else(|| "stanza without a Package field".to_string())?;
    let version = get("Version").filter(|v| !v.is_empty());
    let (source, source_version) = match get("Source") {
        Some(s) => match s.split_once(' ') {
            Some((n, rest)) => {
                let v = rest.trim().trim_start_matches('(').trim_end_matches(')').trim();
                (Some(n.to_string()), Some(v.to_string()).filter(|v| !v.is_empty()).or(version.clone()))
            }
            None => (Some(s), version.clone()),
        },
        None => (Some(name.clone()), version.clone()),
    };
    let installed_size = get("Installed-Size").and_then(|s| s.parse::<i64>().ok()).and_then(|k| k.checked_mul(1024));
    let description = fields
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(b"Description"))
        .and_then(|(_, v)| lines(v).next().map(|first| text(first.trim_ascii(), MAX_VALUE)))
        .filter(|d| !d.is_empty());
    Ok(DpkgPackage {
        version,
        architecture: get("Architecture"),
        source,
        source_version,
        status: get("Status"),
        maintainer: get("Maintainer"),
        installed_size,
        description,
        homepage: get("Homepage"),
        name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO: &str = "Package: libc6\nStatus: install ok installed\nPriority: optional\nInstalled-Size: 12\nMaintainer: GNU Libc Maintainers <debian-glibc@lists.debian.org>\nArchitecture: amd64\nMulti-Arch: same\nSource: glibc (2.36-9+deb12u4)\nVersion: 2.36-9+deb12u4\nDescription: GNU C Library\n shared libraries\n .\n more\n\nPackage: bash\nStatus: install ok installed\nVersion: 5.2.15-2+b2\nArchitecture: amd64\nSource: bash (5.2.15-2)\n";

    #[test]
    fn parses_multiple_stanzas_with_continuations() {
        let (p, e) = parse_status(TWO.as_bytes());
        assert!(e.is_empty(), "{e:?}");
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].name, "libc6");
        assert_eq!(p[0].source.as_deref(), Some("glibc"));
        assert_eq!(p[0].source_version.as_deref(), Some("2.36-9+deb12u4"));
        assert_eq!(p[0].installed_size, Some(12 * 1024));
        assert_eq!(p[0].maintainer.as_deref(), Some("GNU Libc Maintainers <debian-glibc@lists.debian.org>"));
        assert_eq!(p[1].version.as_deref(), Some("5.2.15-2+b2"));
        assert_eq!(p[1].source_version.as_deref(), Some("5.2.15-2"));
    }

    #[test]
    fn table_of_cases() {
        // (input, name, version, source, source_version, installed)
        let cases: &[(&str, &str, Option<&str>, &str, Option<&str>, bool)] = &[
            (
                "Package: a\nStatus: install ok installed\nVersion: 1:2.3-4\n",
                "a",
                Some("1:2.3-4"),
                "a",
                Some("1:2.3-4"),
                true,
            ),
            (
                "Package: b\nStatus: deinstall ok config-files\nVersion: 1.0\n",
                "b",
                Some("1.0"),
                "b",
                Some("1.0"),
                false,
            ),
            ("Package: c\nStatus: purge ok not-installed\n", "c", None, "c", None, false),
            ("Package: d\nStatus: deinstall ok installed\nVersion: 2\n", "d", Some("2"), "d", Some("2"), true),
            (
                "Package: e\nStatus: install ok half-configured\nVersion: 3\nSource: e-src\n",
                "e",
                Some("3"),
                "e-src",
                Some("3"),
                true,
            ),
            (
                "package: f\nstatus: install ok unpacked\nversion: 2:1.0~rc1-1\nsource: fsrc (1:0.9)\n",
                "f",
                Some("2:1.0~rc1-1"),
                "fsrc",
                Some("1:0.9"),
                true,
            ),
            ("Package: g\nStatus: install ok installed\nVersion:\n", "g", None, "g", None, true),
        ];
        for (input, name, version, source, sv, installed) in cases {
            let (p, e) = parse_status(input.as_bytes());
            assert!(e.is_empty(), "{input:?}: {e:?}");
            assert_eq!(p.len(), 1, "{input:?}");
            let p = &p[0];
            assert_eq!((&*p.name, p.version.as_deref()), (*name, *version), "{input:?}");
            assert_eq!((p.source.as_deref(), p.source_version.as_deref()), (Some(*source), *sv), "{input:?}");
            assert_eq!(p.is_installed(), *installed, "{input:?}");
        }
    }

    #[test]
    fn bad_stanzas_are_reported_and_skipped() {
        let text = "Version: 1\nStatus: install ok installed\n\n\n\nPackage: ok\nVersion: 1\n\n continuation first\n\ngarbage line\nPackage: x\n";
        let (p, e) = parse_status(text.as_bytes());
        assert_eq!(p.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["ok", "x"]);
        assert_eq!(e[0], StanzaError { line: 1, message: "stanza without a Package field".into() });
        assert!(e.iter().any(|e| e.line == 9 && e.message.contains("continuation")), "{e:?}");
        assert!(e.iter().any(|e| e.line == 11 && e.message.contains("not a field")), "{e:?}");
    }

    #[test]
    fn crlf_and_empty_input() {
        assert_eq!(parse_status(b"").0.len(), 0);
        let (p, _) = parse_status(b"Package: a\r\nVersion: 1\r\n\r\n");
        assert_eq!(p[0].version.as_deref(), Some("1"));
    }
}
