//! Packages compiled into binaries: Go module build info (`.go.buildinfo`)
//! and Rust cargo-auditable dependency lists (`.dep-v0`), read from ELF
//! executables and shared objects as `packages` rows (managers `golang` and
//! `cargo`), the binary's path as their `location`.
//!
//! A binary is decided from cheap headers first: a regular executable (or
//! `*.so*`) file, then its 4-byte ELF magic, then its section headers (parsed
//! by the `object` crate through a bounded reader, so a section header that
//! points past the end of the file is refused before anything is allocated
//! for it). Only then are the two small sections read, each capped, and
//! `.dep-v0` inflated with a cap on its output and read field by field.
//! Every problem is a `crawl_errors` row naming the binary; nothing in a
//! binary is executed.
//!
//! What a binary lists is its own to write, so what is kept is bounded
//! whatever it says: 10,000 modules or crates a binary ([`MAX_GO_DEPS`],
//! [`MAX_CRATES`]), a file with several links read once, and binaries' rows
//! at most half the room the `packages` table has when they are read
//! ([`SHARE_OF_PACKAGES`]), so the collectors after them keep theirs.
//!
//! Go writes two layouts of build info: since Go 1.18 the version and module
//! strings follow the 32-byte header inline (varint-length-prefixed), which is
//! what is read here; before 1.18 the header holds pointers to Go string
//! headers elsewhere in the data segment, which is not read yet (such a binary
//! gets a `crawl_errors` row saying so). Stripped binaries without section
//! headers are found by the build info magic at the start of the first
//! writable `PT_LOAD` segment, as Go's `debug/buildinfo` finds them.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;

use object::read::ReadCache;
use object::read::elf::{Dyn, FileHeader, ProgramHeader, SectionHeader};
use object::{Endianness, elf};
use periscope_proto::tables::PACKAGES;
use rustix::fs::FileType;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::json::{Key, Loose, Pick, skip_scalars};
use super::{Scope, Sink, usrmerge_aliases};
use crate::rootfs::{Entry, ReadError};

const C: &str = "binaries";

/// Where binaries are looked for (merged-/usr aliases are walked through /usr).
pub const DIRS: &[&str] = &[
    "/usr/local",
    "/usr/bin",
    "/usr/sbin",
    "/usr/libexec",
    "/bin",
    "/sbin",
    "/opt",
    "/app",
    "/srv",
    "/home",
    "/root",
    "/var/www",
];

/// Bytes of headers (ELF header, program and section headers, section names) read per binary.
pub const MAX_HEADER_BYTES: u64 = 8 << 20;
/// Bytes of one `.go.buildinfo` or `.dep-v0` section read.
pub const MAX_SECTION_BYTES: u64 = 4 << 20;
/// Bytes `.dep-v0` may inflate to.
pub const MAX_INFLATED_BYTES: u64 = 8 << 20;
/// Bytes of a data segment searched for the build info magic when there is no section for it.
pub const MAX_SCAN_BYTES: u64 = 1 << 20;
/// Bytes this collector reads from all binaries of a scope.
pub const MAX_SCOPE_BYTES: u64 = 512 << 20;

/// Go's build info magic: `\xff Go buildinf:`.
pub const GO_MAGIC: &[u8; 14] = b"\xff Go buildinf:";

/// Why a binary could not be read; each becomes a `crawl_errors` row naming the binary.
#[derive(Debug, thiserror::Error)]
pub enum BinaryError {
    #[error("malformed ELF: {0}")]
    Malformed(String),
    #[error("{what}: {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge { what: &'static str, size: u64, limit: u64 },
    #[error("{0}")]
    Read(#[from] ReadError),
    #[error("{0}")]
    Unsupported(String),
    /// A list cut at its cap: what was kept is still read.
    #[error("{what}: {more} past the first {limit} are not read")]
    TooMany { what: &'static str, more: u64, limit: usize },
}

/// One Go module as build info lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoModule {
    pub path: String,
    pub version: String,
    /// The module it was replaced by (`=>` line): path and version.
    pub replace: Option<(String, String)>,
}

/// A Go binary's build info.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GoBuildInfo {
    /// Toolchain, e.g. `go1.19.8`.
    pub go_version: String,
    pub main: Option<GoModule>,
    /// The first [`MAX_GO_DEPS`] dependencies.
    pub deps: Vec<GoModule>,
    /// Dependencies listed past them, not kept.
    pub more_deps: u64,
    /// `build GOARCH=...`, when recorded.
    pub goarch: Option<String>,
}

/// Dependencies kept from one binary's Go build info. A large Go program
/// (kubelet, the docker CLI) lists a few hundred modules; the build info is
/// the binary's to write, and 4 MiB of `dep\ta` lines are 699,030 of them.
/// Past this the rest are counted, not kept (a `crawl_errors` row).
pub const MAX_GO_DEPS: usize = 10_000;

/// One crate of a cargo-auditable dependency list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crate {
    pub name: String,
    pub version: String,
    pub source: Option<String>,
    pub root: bool,
}

/// What a binary holds.
#[derive(Debug, Default)]
pub struct Found {
    pub go: Option<GoBuildInfo>,
    pub rust: Option<Vec<Crate>>,
    /// Problems with one part (the other may still have been read).
    pub errors: Vec<BinaryError>,
    /// The shared libraries it links (`DT_NEEDED`), at most [`MAX_NEEDED`].
    pub needed: Vec<String>,
}

/// `DT_NEEDED` entries kept per binary.
pub const MAX_NEEDED: usize = 256;

/// A binary opened for bounded positional reads. `left` is what it may still
/// read (the per-binary header cap, then each section's own).
pub struct Bin {
    file: File,
    len: u64,
    pos: u64,
    left: u64,
    /// Bytes read in all.
    pub read: u64,
}

impl Bin {
    pub fn new(file: File, len: u64) -> Bin {
        Bin { file, len, pos: 0, left: MAX_HEADER_BYTES, read: 0 }
    }

    /// Reads `size` bytes at `offset`, refusing ranges past the end of the file or over `limit`.
    fn range(&mut self, offset: u64, size: u64, limit: u64, what: &'static str) -> Result<Vec<u8>, BinaryError> {
        if size > limit {
            return Err(BinaryError::TooLarge { what, size, limit });
        }
        let end = offset.checked_add(size).filter(|&e| e <= self.len).ok_or_else(|| {
            BinaryError::Malformed(format!(
                "{what} at offset {offset} with size {size} lies beyond the end of the file ({} bytes)",
                self.len
            ))
        })?;
        let mut buf = vec![0u8; (end - offset) as usize];
        self.file.read_exact_at(&mut buf, offset).map_err(|e| BinaryError::Malformed(format!("{what}: {e}")))?;
        self.read += size;
        Ok(buf)
    }
}

impl object::read::ReadCacheOps for Bin {
    fn len(&mut self) -> Result<u64, ()> {
        Ok(self.len)
    }
    fn seek(&mut self, pos: u64) -> Result<u64, ()> {
        self.pos = pos;
        Ok(pos)
    }
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, ()> {
        let want = (buf.len() as u64).min(self.left) as usize;
        if want == 0 && !buf.is_empty() {
            return Err(());
        }
        let n = self.file.read_at(&mut buf[..want], self.pos).map_err(|_| ())?;
        self.pos += n as u64;
        self.left -= n as u64;
        self.read += n as u64;
        Ok(n)
    }
    fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), ()> {
        if buf.len() as u64 > self.left {
            return Err(());
        }
        self.file.read_exact_at(buf, self.pos).map_err(|_| ())?;
        self.pos += buf.len() as u64;
        self.left -= buf.len() as u64;
        self.read += buf.len() as u64;
        Ok(())
    }
}

/// Where the interesting parts of an ELF file are, from its headers.
#[derive(Debug, Default)]
struct Layout {
    buildinfo: Option<(u64, u64)>,
    dep_v0: Option<(u64, u64)>,
    /// (file offset, file size) of the first writable PT_LOAD segment.
    data_segment: Option<(u64, u64)>,
    needed: Vec<String>,
}

fn layout_of<Elf: FileHeader<Endian = Endianness>>(data: &ReadCache<Bin>) -> Result<Layout, BinaryError> {
    let bad = |e: object::read::Error| BinaryError::Malformed(e.to_string());
    let header = Elf::parse(data).map_err(bad)?;
    let endian = header.endian().map_err(bad)?;
    let mut out = Layout::default();
    let sections = header.sections(endian, data).map_err(bad)?;
    for s in sections.iter() {
        let name = sections.section_name(endian, s).map_err(bad)?;
        let wanted = match name {
            b".go.buildinfo" => &mut out.buildinfo,
            b".dep-v0" => &mut out.dep_v0,
            _ => continue,
        };
        if s.sh_type(endian) == elf::SHT_NOBITS {
            continue;
        }
        let (off, size): (u64, u64) = (s.sh_offset(endian).into(), s.sh_size(endian).into());
        *wanted = Some((off, size));
    }
    // The libraries it links: what `embedded_libraries` does not count as embedded. Best effort:
    // a dynamic section that does not parse leaves the list empty.
    if let Ok(Some((dyns, link))) = sections.dynamic(endian, data)
        && let Ok(strings) = sections.strings(endian, data, link)
    {
        for d in dyns.iter().filter(|d| d.tag(endian) == elf::DT_NEEDED).take(MAX_NEEDED) {
            if let Ok(name) = d.string(endian, strings) {
                out.needed.push(String::from_utf8_lossy(&name[..name.len().min(256)]).into_owned());
            }
        }
    }
    if out.buildinfo.is_none() {
        for p in header.program_headers(endian, data).map_err(bad)? {
            if p.p_type(endian) == elf::PT_LOAD && p.p_flags(endian) & elf::PF_W != 0 {
                out.data_segment = Some((p.p_offset(endian).into(), p.p_filesz(endian).into()));
                break;
            }
        }
    }
    Ok(out)
}

/// Reads what a binary holds. `Ok(None)`: not an ELF file.
pub fn read_binary(file: File, len: u64) -> Result<Option<(Found, u64)>, BinaryError> {
    let mut magic = [0u8; 6];
    if len < 64 || file.read_exact_at(&mut magic, 0).is_err() || &magic[..4] != b"\x7fELF" {
        return Ok(None);
    }
    let data = ReadCache::new(Bin::new(file, len));
    let layout = match magic[4] {
        elf::ELFCLASS64 => layout_of::<elf::FileHeader64<Endianness>>(&data),
        elf::ELFCLASS32 => layout_of::<elf::FileHeader32<Endianness>>(&data),
        c => Err(BinaryError::Malformed(format!("unknown ELF class {c}"))),
    };
    let mut bin = data.into_inner();
    bin.left = 0;
    let layout = layout?;
    let mut found = Found { needed: layout.needed, ..Found::default() };
    let go = match (layout.buildinfo, layout.data_segment) {
        (Some((off, size)), _) => {
            Some(bin.range(off, size, MAX_SECTION_BYTES, ".go.buildinfo section").and_then(|b| parse_go(&b)))
        }
        (None, Some((off, size))) => {
            match bin.range(
                off,
                size.min(MAX_SCAN_BYTES).min(bin.len.saturating_sub(off)),
                MAX_SCAN_BYTES,
                "data segment",
            ) {
                Ok(b) => (0..b.len().saturating_sub(32))
                    .step_by(16)
                    .find(|&i| b[i..].starts_with(GO_MAGIC))
                    .map(|i| parse_go(&b[i..])),
                Err(e) => Some(Err(e)),
            }
        }
        (None, None) => None,
    };
    match go {
        Some(Ok(g)) => {
            if g.more_deps > 0 {
                found.errors.push(BinaryError::TooMany {
                    what: "Go build info dependencies",
                    more: g.more_deps,
                    limit: MAX_GO_DEPS,
                });
            }
            found.go = Some(g);
        }
        Some(Err(e)) => found.errors.push(e),
        None => {}
    }
    if let Some((off, size)) = layout.dep_v0 {
        match bin.range(off, size, MAX_SECTION_BYTES, ".dep-v0 section").and_then(|b| parse_dep_v0(&b)) {
            Ok(list) => {
                if list.malformed > 0 {
                    let n = list.malformed;
                    let m = format!(".dep-v0: {n} entries are not packages with a string name and version");
                    found.errors.push(BinaryError::Malformed(m));
                }
                if list.more > 0 {
                    found.errors.push(BinaryError::TooMany {
                        what: ".dep-v0 packages",
                        more: list.more,
                        limit: MAX_CRATES,
                    });
                }
                found.rust = Some(list.crates);
            }
            Err(e) => found.errors.push(e),
        }
    }
    Ok(Some((found, bin.read)))
}

fn varint(b: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, &x) in b.iter().enumerate().take(10) {
        v |= u64::from(x & 0x7f) << (7 * i);
        if x & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

/// Parses build info starting at its magic (Go ≥ 1.18's inline layout).
pub fn parse_go(b: &[u8]) -> Result<GoBuildInfo, BinaryError> {
    let bad = |m: &str| BinaryError::Malformed(format!("Go build info: {m}"));
    if b.len() < 32 || !b.starts_with(GO_MAGIC) {
        return Err(bad("no build info header"));
    }
    let flags = b[15];
    if flags & 2 == 0 {
        return Err(BinaryError::Unsupported("Go build info in the pre-1.18 pointer layout is not read yet".into()));
    }
    let mut rest = &b[32..];
    let mut strings = Vec::new();
    for what in ["version", "module info"] {
        let (n, used) = varint(rest).ok_or_else(|| bad(&format!("truncated {what} length")))?;
        let s = rest
            .get(used..)
            .and_then(|r| r.get(..usize::try_from(n).ok()?))
            .ok_or_else(|| bad(&format!("{what} of {n} bytes runs past the section")))?;
        strings.push(s);
        rest = &rest[used + s.len()..];
    }
    let mut info = GoBuildInfo { go_version: String::from_utf8_lossy(strings[0]).into_owned(), ..Default::default() };
    // Module info is framed by 16-byte sentinels (not UTF-8) and ends with a newline, as debug/buildinfo checks.
    let m = strings[1];
    let text = if m.len() >= 33 && m[m.len() - 17] == b'\n' {
        String::from_utf8_lossy(&m[16..m.len() - 16]).into_owned()
    } else {
        String::new()
    };
    parse_modinfo(&text, &mut info);
    Ok(info)
}

/// Reads the `path`/`mod`/`dep`/`=>`/`build` lines of Go module info: the
/// first [`MAX_GO_DEPS`] dependencies, the others counted in `more_deps`.
pub fn parse_modinfo(text: &str, info: &mut GoBuildInfo) {
    /// The module a `=>` line replaces: the last `mod` or `dep` line's.
    enum Last {
        Main,
        Dep,
        /// A dependency past the cap, not kept: its replacement is not either.
        Dropped,
    }
    let mut last = Last::Main;
    for line in text.lines() {
        let mut f = line.split('\t');
        let (kind, a, b) = (f.next().unwrap_or(""), f.next(), f.next());
        let pair = || (a.unwrap_or("").to_string(), b.unwrap_or("").to_string());
        let module = || {
            let (path, version) = pair();
            GoModule { path, version, replace: None }
        };
        match kind {
            "mod" if a.is_some() => {
                info.main = Some(module());
                last = Last::Main;
            }
            "dep" if a.is_some() && info.deps.len() < MAX_GO_DEPS => {
                info.deps.push(module());
                last = Last::Dep;
            }
            "dep" if a.is_some() => {
                info.more_deps += 1;
                last = Last::Dropped;
            }
            "=>" if a.is_some() => {
                let target = match last {
                    Last::Main => info.main.as_mut(),
                    Last::Dep => info.deps.last_mut(),
                    Last::Dropped => None,
                };
                if let Some(m) = target {
                    m.replace = Some(pair());
                }
            }
            "build" => {
                if let Some(arch) = a.and_then(|s| s.strip_prefix("GOARCH=")) {
                    info.goarch = Some(arch.to_string());
                }
            }
            _ => {}
        }
    }
}

/// Entries of a `.dep-v0` package list read per binary. uv, a large Rust
/// program, lists about 530 crates; past this the rest are counted, not kept
/// (a `crawl_errors` row).
pub const MAX_CRATES: usize = 10_000;

/// The crates a `.dep-v0` lists, and what of the list was not kept.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct DepList {
    pub crates: Vec<Crate>,
    /// Entries past the first [`MAX_CRATES`], skipped unread.
    pub more: u64,
    /// Entries read that are not a package with a string name and version.
    pub malformed: u64,
}

/// Inflates and parses a `.dep-v0` section (zlib-compressed JSON, cargo-auditable's format).
/// Only the fields rows use are read into memory (see [`super::json`]): the
/// list is the binary's to write, and 8 KB of zlib inflate to 8 MiB of `[0,0,…]`,
/// which as a whole `serde_json::Value` cost 150 MB.
pub fn parse_dep_v0(compressed: &[u8]) -> Result<DepList, BinaryError> {
    let mut json = Vec::new();
    flate2::read::ZlibDecoder::new(compressed)
        .take(MAX_INFLATED_BYTES + 1)
        .read_to_end(&mut json)
        .map_err(|e| BinaryError::Malformed(format!(".dep-v0: not zlib data: {e}")))?;
    if json.len() as u64 > MAX_INFLATED_BYTES {
        return Err(BinaryError::TooLarge {
            what: ".dep-v0 inflated",
            size: json.len() as u64,
            limit: MAX_INFLATED_BYTES,
        });
    }
    let mut list = None;
    let mut d = serde_json::Deserializer::from_slice(&json);
    d.deserialize_any(DepDocument(&mut list))
        .and_then(|()| d.end())
        .map_err(|e| BinaryError::Malformed(format!(".dep-v0: not JSON: {e}")))?;
    list.ok_or_else(|| BinaryError::Malformed(".dep-v0: no \"packages\" list".into()))
}

/// The document: `{"packages": [...], ...}`; its list, when it has one, is put in `.0`.
struct DepDocument<'a>(&'a mut Option<DepList>);

impl<'de> Visitor<'de> for DepDocument<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a cargo-auditable dependency list")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<Key>()? {
            if key.0.as_deref() == Some("packages") {
                // A repeated key: the last value counts, as it did in a whole value.
                *self.0 = map.next_value_seed(DepPackages)?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(())
    }
    skip_scalars!(());
}

/// The `packages` value: a list is read, anything else is no list.
struct DepPackages;

impl<'de> DeserializeSeed<'de> for DepPackages {
    type Value = Option<DepList>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for DepPackages {
    type Value = Option<DepList>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a list of packages")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut list = DepList::default();
        let mut read = 0;
        while read < MAX_CRATES {
            let Some(entry) = seq.next_element::<DepEntry>()? else { return Ok(Some(list)) };
            read += 1;
            match entry {
                DepEntry::Crate(c) => list.crates.push(c),
                DepEntry::Build => {}
                DepEntry::Malformed => list.malformed += 1,
            }
        }
        while seq.next_element::<IgnoredAny>()?.is_some() {
            list.more += 1;
        }
        Ok(Some(list))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }
    skip_scalars!(None);
}

/// One entry of the list.
enum DepEntry {
    Crate(Crate),
    /// A build dependency (a build script, a proc macro): it ran at build
    /// time and is not in the binary; syft skips them too.
    Build,
    /// Not an object with a string name and version.
    Malformed,
}

impl<'de> serde::Deserialize<'de> for DepEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let [name, version, source, kind, root] = Pick(["name", "version", "source", "kind", "root"]).deserialize(d)?;
        let text = |v: Option<Loose>| v.and_then(|v| v.text);
        let (Some(name), Some(version)) = (text(name), text(version)) else { return Ok(DepEntry::Malformed) };
        if text(kind).as_deref() == Some("build") {
            return Ok(DepEntry::Build);
        }
        let root = root.and_then(|r| r.flag) == Some(true);
        Ok(DepEntry::Crate(Crate { name, version, source: text(source), root }))
    }
}

/// Percent-encodes one purl segment as syft (packageurl-go) writes it: unreserved
/// characters and sub-delimiters other than `+` stay, everything else is encoded.
pub fn purl_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~!$&'()*,;=:".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `pkg:<type>/<namespace segments>/<name>@<version>`, each segment encoded.
pub fn purl(kind: &str, path: &str, version: &str) -> String {
    let p: Vec<String> = path.split('/').map(purl_escape).collect();
    let mut s = format!("pkg:{kind}/{}", p.join("/"));
    if !version.is_empty() {
        s.push('@');
        s.push_str(&purl_escape(version));
    }
    s
}

/// The Go packages a binary's build info names, as (name, version, purl, note):
/// the toolchain as `stdlib`, the main module, each dependency (a replaced
/// one as its replacement, which is what was compiled in, as syft reports it).
pub fn go_packages(g: &GoBuildInfo) -> Vec<(String, String, String, Option<String>)> {
    let mut out = Vec::new();
    if let Some(v) = g.go_version.split_whitespace().next().filter(|v| !v.is_empty()) {
        out.push(("stdlib".to_string(), v.to_string(), purl("golang", "stdlib", v.trim_start_matches("go")), None));
    }
    for (m, is_main) in g.main.iter().map(|m| (m, true)).chain(g.deps.iter().map(|d| (d, false))) {
        let (path, version, note) = match &m.replace {
            Some((p, v)) => (p.clone(), v.clone(), Some(format!("replaces {}@{}", m.path, m.version))),
            None => (m.path.clone(), m.version.clone(), None),
        };
        if path.is_empty() {
            continue;
        }
        let note =
            if is_main { Some(note.map_or("main module".to_string(), |n| format!("main module; {n}"))) } else { note };
        out.push((path.clone(), version.clone(), purl("golang", &path, &version), note));
    }
    out
}

/// Identities [`identities`] gives one binary at most, a note of the rest after them.
pub const MAX_IDENTITIES: usize = 4;
/// Bytes of one identity kept (a longer one is cut, ending in `…`).
pub const MAX_IDENTITY_BYTES: usize = 256;

/// What a binary's build info identifies it as (for `unowned_files.identified`):
/// its Go main module (`golang:example.com/app@v1.2.3`, or the toolchain,
/// `golang:go1.22.1`, for a binary built without one) and its cargo-auditable
/// root crates (`cargo:uv@0.13.9`). Bounded whatever the build info says:
/// every crate of an 8 MiB `.dep-v0` may claim to be a root, with a name of
/// any length, and a scan is kept per file ([`super::embedded::KeptScans`]).
/// At most [`MAX_IDENTITIES`], each at most [`MAX_IDENTITY_BYTES`], then
/// `cargo:… and N more root crates`.
pub fn identities(found: &Found) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(g) = &found.go {
        match g.main.as_ref().filter(|m| !m.path.is_empty()) {
            Some(m) if m.version.is_empty() => out.push(format!("golang:{}", m.path)),
            Some(m) => out.push(format!("golang:{}@{}", m.path, m.version)),
            None => out.extend(g.go_version.split_whitespace().next().map(|v| format!("golang:{v}"))),
        }
    }
    if let Some(crates) = &found.rust {
        let roots: Vec<&Crate> = crates.iter().filter(|c| c.root).collect();
        let named = if roots.is_empty() { crates.iter().take(1).collect() } else { roots };
        let room = MAX_IDENTITIES.saturating_sub(out.len());
        out.extend(named.iter().take(room).map(|c| format!("cargo:{}@{}", c.name, c.version)));
        if named.len() > room {
            out.push(format!("cargo:… and {} more root crates", named.len() - room));
        }
    }
    for id in &mut out {
        if id.len() > MAX_IDENTITY_BYTES {
            let mut end = MAX_IDENTITY_BYTES - '…'.len_utf8();
            while !id.is_char_boundary(end) {
                end -= 1;
            }
            id.truncate(end);
            id.push('…');
        }
    }
    out
}

/// Of the room the `packages` table has when binaries are read (its rows
/// and string bytes, see [`Sink::room`]), binaries' rows take at most one
/// part in this many: the collectors after them that fill the table (python,
/// npm, java, gem, composer, nuget) keep the rest. Before, 120 hard links to
/// one binary listing 699,030 modules filled the table, and a Python
/// package's row was dropped.
pub const SHARE_OF_PACKAGES: u64 = 2;

/// What binaries' rows may take of the `packages` table (see [`SHARE_OF_PACKAGES`]).
struct Share {
    start: (u64, u64),
    limit: (u64, u64),
}

impl Share {
    fn new(out: &Sink) -> Share {
        let start = out.room(&PACKAGES);
        Share { start, limit: (start.0 / SHARE_OF_PACKAGES, start.1 / SHARE_OF_PACKAGES) }
    }

    /// Whether binaries' rows have taken their share; if so, says so as a
    /// `crawl_errors` row naming the binary whose rows are not all made.
    fn spent(&self, out: &mut Sink, path: &str) -> bool {
        let now = out.room(&PACKAGES);
        let taken = (self.start.0.saturating_sub(now.0), self.start.1.saturating_sub(now.1));
        if taken.0 < self.limit.0 && taken.1 < self.limit.1 {
            return false;
        }
        let (rows, bytes) = self.limit;
        let message = if rows == 0 || bytes == 0 {
            format!("{path}: the packages table is full in this scope; the modules of binaries are not read")
        } else {
            format!(
                "{path}: binaries' packages rows reached their share of the packages table in this scope \
             ({rows} rows or {bytes} bytes of strings, 1/{SHARE_OF_PACKAGES} of its room); \
             the rest of this binary's modules and those of the binaries after it are not read"
            )
        };
        out.error(C, Some(path), &message);
        true
    }
}

/// A `.go.buildinfo` section in Go 1.18's inline layout: the toolchain
/// `version`, then `modinfo` (the module text, its 16-byte sentinels
/// included), each varint-length-prefixed. For tests and benchmarks that make
/// Go binaries without a Go toolchain.
pub fn go_buildinfo_section(version: &str, modinfo: &[u8]) -> Vec<u8> {
    let mut b = GO_MAGIC.to_vec();
    b.extend([8, 2]); // pointer size, flags: inline strings
    b.resize(32, 0);
    for field in [version.as_bytes(), modinfo] {
        let mut n = field.len();
        while n >= 0x80 {
            b.push(n as u8 | 0x80);
            n >>= 7;
        }
        b.push(n as u8);
        b.extend_from_slice(field);
    }
    b
}

/// Executables and libraries kept to be read, about 200 bytes each until
/// then: a large host has a few tens of thousands under the walked
/// directories, and a layer of a few MB can hold a million hard links to one
/// (220 MB when all were kept).
pub const MAX_CANDIDATES: usize = 100_000;

pub fn collect(scope: &Scope, out: &mut Sink) {
    let aliases = usrmerge_aliases(&scope.root);
    let mut candidates: Vec<Entry> = Vec::new();
    let mut dropped = 0u64;
    super::walk_dirs(scope, out, C, DIRS, &mut |e: &Entry, _: &mut Sink| {
        if e.kind == FileType::RegularFile && e.size >= 64 && super::unowned::classify(e.path.name(), e.mode).is_some()
        {
            if candidates.len() < MAX_CANDIDATES {
                candidates.push(e.clone());
            } else {
                dropped += 1;
            }
        }
        true
    });
    if dropped > 0 {
        out.mark_cut();
        let msg = format!(
            "{dropped} more executables and libraries than the {MAX_CANDIDATES} this collector reads per scope; they are not read (budget: files per collector)"
        );
        out.error(C, Some("/"), &msg);
    }
    // The links of one file side by side, where the walk met the first, so
    // that each file is read once and what it holds kept only until its last
    // link is reported (120 links to a binary were 120 reads).
    let mut first: HashMap<(u64, u64), usize> = HashMap::new();
    let mut place: Vec<usize> = Vec::with_capacity(candidates.len());
    for (i, e) in candidates.iter().enumerate() {
        place.push(if e.nlink > 1 { *first.entry((e.dev, e.ino)).or_insert(i) } else { i });
    }
    drop(first);
    let mut order: Vec<usize> = (0..candidates.len()).collect();
    order.sort_by_key(|&i| place[i]);
    let mut spent = 0u64;
    let share = Share::new(out);
    // The file last read, by (device, inode), and what it holds.
    type Read = ((u64, u64), Result<Option<Found>, BinaryError>);
    let mut last: Option<Read> = None;
    for e in order.into_iter().map(|i| &candidates[i]) {
        let path = e.path.shown();
        if share.spent(out, &path) {
            return;
        }
        if last.as_ref().is_none_or(|(id, _)| *id != (e.dev, e.ino)) {
            last = None;
            if spent > MAX_SCOPE_BYTES {
                let msg = format!("binaries read up to {MAX_SCOPE_BYTES} bytes in this scope; the rest are not read");
                out.error(C, Some(&path), &msg);
                return;
            }
            let (file, len) = match open_entry(scope, e) {
                Ok(f) => f,
                Err(err) => {
                    out.read_error(C, &path, &err);
                    if err.is_budget() {
                        return;
                    }
                    continue;
                }
            };
            #[cfg(test)]
            tests::READS.with(|r| r.set(r.get() + 1));
            let outcome = read_binary(file, len);
            if let Ok(Some((_, read))) = &outcome {
                spent += read;
                if let Err(err) = scope.root.charge_bytes(&path, *read) {
                    out.read_error(C, &path, &err);
                    return;
                }
            }
            last = Some(((e.dev, e.ino), outcome.map(|o| o.map(|(found, _)| found))));
        }
        let Some((_, outcome)) = &last else { continue };
        let found = match outcome {
            Ok(Some(f)) => f,
            Ok(None) => continue,
            Err(err) => {
                out.error(C, Some(&path), &format!("{path}: {err}"));
                continue;
            }
        };
        for err in &found.errors {
            out.error(C, Some(&path), &format!("{path}: {err}"));
        }
        let owner = out.owner(&path, &aliases).map(|s| s.to_string());
        let at = At { location: &path, owner: owner.as_deref(), share: &share };
        if let Some(g) = &found.go {
            for (name, version, purl, note) in go_packages(g) {
                if !row(out, &at, "golang", &name, &version, &purl, g.goarch.as_deref(), note.as_deref()) {
                    return;
                }
            }
        }
        for c in found.rust.iter().flatten() {
            let purl = purl("cargo", &c.name, &c.version);
            if !row(out, &at, "cargo", &c.name, &c.version, &purl, None, c.root.then_some("root crate")) {
                return;
            }
        }
    }
}

/// Opens a walked file for reading, refusing it if the path no longer names the walked inode.
pub(crate) fn open_entry(scope: &Scope, e: &Entry) -> Result<(File, u64), ReadError> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::MetadataExt;
    let (file, len) = scope.root.open_file(std::ffi::OsStr::from_bytes(&e.path.raw()))?;
    let m = file.metadata().map_err(|err| ReadError::Io { path: e.path.quoted(), source: err })?;
    if (m.dev(), m.ino()) != (e.dev, e.ino) {
        return Err(ReadError::Refused { path: e.path.quoted(), why: "changed while being crawled".into() });
    }
    Ok((file, len))
}

/// Where a binary's rows are: its path, its owner, and the share of the table they may take.
struct At<'a> {
    location: &'a str,
    owner: Option<&'a str>,
    share: &'a Share,
}

/// Makes one row; false once binaries' rows have taken their share (see [`Share::spent`]).
#[allow(clippy::too_many_arguments)]
fn row(
    out: &mut Sink,
    at: &At,
    manager: &str,
    name: &str,
    version: &str,
    purl: &str,
    arch: Option<&str>,
    note: Option<&str>,
) -> bool {
    if at.share.spent(out, at.location) {
        return false;
    }
    let version = (!version.is_empty()).then_some(version);
    out.row(
        &PACKAGES,
        &[
            ("manager", manager.into()),
            ("name", name.into()),
            ("version", version.into()),
            ("architecture", arch.into()),
            ("location", at.location.into()),
            ("purl", purl.into()),
            ("owner_package", at.owner.into()),
            ("description", note.into()),
        ],
    );
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rootfs::{Budgets, Root};

    thread_local! {
        /// Files [`collect`] read with [`read_binary`] on this thread.
        pub static READS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    }

    /// A `.go.buildinfo` section (Go 1.18's inline layout) listing `deps` modules.
    fn go_section(deps: usize) -> Vec<u8> {
        let mut m = vec![0u8; 16];
        m.extend_from_slice(b"path\texample.com/app\nmod\texample.com/app\tv1.0.0\n");
        for i in 0..deps {
            m.extend_from_slice(format!("dep\texample.com/m{i}\tv0.0.{i}\n").as_bytes());
        }
        m.extend_from_slice(&[0u8; 16]);
        go_buildinfo_section("go1.22", &m)
    }

    /// `/usr/bin/true` with `data` added as section `name`, at `dst`, executable.
    fn elf_with_section(dst: &std::path::Path, name: &str, data: &[u8]) {
        use std::os::unix::fs::PermissionsExt;
        let blob = dst.with_extension("section");
        std::fs::write(&blob, data).unwrap();
        let st = std::process::Command::new("objcopy")
            .arg("--add-section")
            .arg(format!("{name}={}", blob.display()))
            .arg("/usr/bin/true")
            .arg(dst)
            .status()
            .expect("objcopy (binutils; scripts/install-test-deps.sh installs it)");
        assert!(st.success());
        std::fs::remove_file(blob).unwrap();
        std::fs::set_permissions(dst, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    type Pairs = Vec<(String, String)>;

    /// What [`collect`] makes of `root` under `budgets`: (path, name) of each
    /// `golang` row, and (path, message) of each error row, with the files it read.
    fn collected(root: &std::path::Path, budgets: Budgets) -> (Pairs, Pairs, usize) {
        let common =
            crate::encode::Common { host: "h".into(), scope: "image".into(), scope_id: "x".into(), crawl_time_us: 0 };
        let root = Root::with_budgets(root, budgets).unwrap();
        let scope = Scope { common: common.clone(), root, config: Default::default(), app_files: Default::default() };
        let mut sink = Sink::with_budgets(common, &budgets);
        let before = READS.with(|r| r.get());
        collect(&scope, &mut sink);
        let reads = READS.with(|r| r.get()) - before;
        let mut text = Vec::new();
        crate::print::print_json_lines(&sink.finish(), &mut text).unwrap();
        let rows: Vec<serde_json::Value> =
            String::from_utf8(text).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        let pick = |table: &str, a: &str, b: &str| {
            rows.iter()
                .filter(|r| r["table"] == table)
                .map(|r| (r[a].as_str().unwrap_or("").to_string(), r[b].as_str().unwrap_or("").to_string()))
                .collect::<Vec<_>>()
        };
        (pick("packages", "location", "name"), pick("crawl_errors", "path", "message"), reads)
    }

    /// A binary with 120 hard links was read, and its build info parsed, 120
    /// times. It is read once now and reported under each of its paths (in
    /// any directory); and binaries' rows stop at their share of the
    /// `packages` table, saying so, so the collectors after them keep room
    /// for theirs.
    #[test]
    fn a_hard_linked_binary_is_read_once_and_its_rows_kept_to_their_share() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = |d: &str| {
            let d = tmp.path().join(d);
            std::fs::create_dir_all(&d).unwrap();
            d
        };
        let (local, usr_bin, opt) = (dir("usr/local/bin"), dir("usr/bin"), dir("opt"));
        elf_with_section(&local.join("tool"), ".go.buildinfo", &go_section(98));
        elf_with_section(&usr_bin.join("other"), ".go.buildinfo", &go_section(0));
        for link in [local.join("link1"), local.join("link2"), opt.join("link3")] {
            std::fs::hard_link(local.join("tool"), link).unwrap();
        }
        let links = ["/usr/local/bin/tool", "/usr/local/bin/link1", "/usr/local/bin/link2", "/opt/link3"];
        let (rows, errors, reads) = collected(tmp.path(), Budgets::default());
        assert_eq!(reads, 2);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(rows.len(), 4 * 100 + 2);
        for path in links {
            assert_eq!(rows.iter().filter(|(p, _)| p == path).count(), 100, "{path}");
        }
        assert_eq!(rows.iter().filter(|(p, _)| p == "/usr/bin/other").count(), 2);

        // Half of 500 rows: two links' 100 rows each, then 50 of the third's, and no more.
        let (rows, errors, reads) = collected(tmp.path(), Budgets { max_rows_per_table: 500, ..Budgets::default() });
        assert_eq!((rows.len(), reads), (250, 1));
        assert_eq!(errors.len(), 1, "{errors:?}");
        let (path, message) = &errors[0];
        assert!(links.contains(&path.as_str()), "{path}");
        assert!(message.starts_with(&format!("{path}: binaries' packages rows reached their share")), "{message}");
        assert!(message.contains("(250 rows or"), "{message}");
        assert_eq!(rows.iter().filter(|(p, _)| p == path).count(), 50);
    }

    #[test]
    fn modinfo_lines_with_replacements() {
        let text = "path\texample.com/goapp\nmod\texample.com/goapp\t(devel)\t\n\
            dep\texample.com/colors\tv0.3.0\n=>\texample.com/colorsfork\tv0.0.0-20191109021931-daa7c04131f5\th1:x=\n\
            dep\texample.com/greet\tv1.0.0\th1:y=\nbuild\tGOARCH=amd64\n";
        let mut g = GoBuildInfo { go_version: "go1.19.8".into(), ..Default::default() };
        parse_modinfo(text, &mut g);
        assert_eq!(g.goarch.as_deref(), Some("amd64"));
        let p = go_packages(&g);
        let names: Vec<(&str, &str, &str)> =
            p.iter().map(|(n, v, u, _)| (n.as_str(), v.as_str(), u.as_str())).collect();
        assert_eq!(
            names,
            [
                ("stdlib", "go1.19.8", "pkg:golang/stdlib@1.19.8"),
                ("example.com/goapp", "(devel)", "pkg:golang/example.com/goapp@(devel)"),
                (
                    "example.com/colorsfork",
                    "v0.0.0-20191109021931-daa7c04131f5",
                    "pkg:golang/example.com/colorsfork@v0.0.0-20191109021931-daa7c04131f5"
                ),
                ("example.com/greet", "v1.0.0", "pkg:golang/example.com/greet@v1.0.0"),
            ]
        );
        assert_eq!(p[2].3.as_deref(), Some("replaces example.com/colors@v0.3.0"));
    }

    #[test]
    fn purls_encode_plus_as_syft_does() {
        assert_eq!(
            purl("golang", "example.com/legacy", "v2.0.0+incompatible"),
            "pkg:golang/example.com/legacy@v2.0.0%2Bincompatible"
        );
        assert_eq!(purl("cargo", "zstd-sys", "2.1.0+zstd.1.5.7"), "pkg:cargo/zstd-sys@2.1.0%2Bzstd.1.5.7");
        assert_eq!(purl("golang", "./local", "(devel)"), "pkg:golang/./local@(devel)");
    }

    /// Build info is the binary's to write: one root crate per package of an
    /// 8 MiB `.dep-v0`, each named with kilobytes, made one string each.
    #[test]
    fn identities_are_bounded_whatever_the_build_info_says() {
        let long = "é".repeat(1000);
        let crates = (0..10_000)
            .map(|i| Crate { name: format!("{long}{i}"), version: "1.0.0".into(), source: None, root: true })
            .collect();
        let go = GoBuildInfo {
            go_version: "go1.22.1".into(),
            main: Some(GoModule { path: "example.com/app".into(), version: "v1.2.3".into(), replace: None }),
            ..Default::default()
        };
        let found = Found { go: Some(go), rust: Some(crates), ..Found::default() };
        let ids = identities(&found);
        assert_eq!(ids.len(), MAX_IDENTITIES + 1, "{ids:?}");
        assert_eq!(ids[0], "golang:example.com/app@v1.2.3");
        assert!(ids.iter().all(|i| i.len() <= MAX_IDENTITY_BYTES), "{ids:?}");
        assert!(ids[1].starts_with("cargo:éé") && ids[1].ends_with('…'), "{}", ids[1]);
        assert_eq!(ids[MAX_IDENTITIES], "cargo:… and 9997 more root crates");
        // Within the bounds, as written.
        let one = Found {
            rust: Some(vec![Crate { name: "uv".into(), version: "0.13.9".into(), source: None, root: true }]),
            ..Found::default()
        };
        assert_eq!(identities(&one), ["cargo:uv@0.13.9"]);
    }

    /// The build info is the binary's to write: past [`MAX_GO_DEPS`]
    /// dependencies the rest are counted, and a replacement of one not kept
    /// is not put on the last one kept; lines after them are still read.
    #[test]
    fn go_dependencies_past_the_cap_are_counted() {
        let mut text = String::from("mod\texample.com/app\tv1.0.0\n");
        for i in 0..MAX_GO_DEPS + 3 {
            text.push_str(&format!("dep\texample.com/m{i}\tv0.0.{i}\n"));
        }
        text.push_str("=>\texample.com/fork\tv9.9.9\nbuild\tGOARCH=arm64\n");
        let mut g = GoBuildInfo { go_version: "go1.22.1".into(), ..Default::default() };
        parse_modinfo(&text, &mut g);
        assert_eq!((g.deps.len(), g.more_deps), (MAX_GO_DEPS, 3));
        assert_eq!(g.deps.last().unwrap().path, format!("example.com/m{}", MAX_GO_DEPS - 1));
        assert!(g.deps.iter().all(|d| d.replace.is_none()));
        assert_eq!(g.goarch.as_deref(), Some("arm64"));
        assert_eq!(g.main.as_ref().unwrap().path, "example.com/app");
        assert_eq!(go_packages(&g).len(), 1 + 1 + MAX_GO_DEPS);
    }

    fn zlib(json: &str) -> Vec<u8> {
        use std::io::Write;
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        z.write_all(json.as_bytes()).unwrap();
        z.finish().unwrap()
    }

    /// Only name, version, source, kind and root are read; build
    /// dependencies are left out; entries that are not packages are counted.
    #[test]
    fn dep_v0_entries_as_rows_use_them() {
        let json = r#"{"format":1,"packages":[
            {"name":"uv","version":"0.13.9","source":"local","kind":"runtime","dependencies":[1,2],"root":true},
            {"name":"cc","version":"1.2.0","source":"crates.io","kind":"build"},
            {"name":"zstd-sys","version":"2.1.0+zstd.1.5.7","source":"crates.io","root":"yes"},
            0, [], {"name":"no-version"}, {"name":1,"version":"1.0"}]}"#;
        let list = parse_dep_v0(&zlib(json)).unwrap();
        let c = |name: &str, version: &str, source: &str, root| Crate {
            name: name.into(),
            version: version.into(),
            source: Some(source.into()),
            root,
        };
        assert_eq!(
            list,
            DepList {
                crates: vec![c("uv", "0.13.9", "local", true), c("zstd-sys", "2.1.0+zstd.1.5.7", "crates.io", false)],
                more: 0,
                malformed: 4,
            }
        );
        // A repeated key: the last list counts; a document without one is an error.
        let twice = parse_dep_v0(&zlib(r#"{"packages":[{"name":"a","version":"1"}],"packages":[]}"#)).unwrap();
        assert!(twice.crates.is_empty());
        for no_list in [r#"{"packages":{"name":"a"}}"#, "[1]", r#"{"format":1}"#, "7"] {
            let e = parse_dep_v0(&zlib(no_list)).unwrap_err().to_string();
            assert!(e.contains("no \"packages\" list"), "{no_list}: {e}");
        }
        assert!(parse_dep_v0(&zlib(r#"{"packages":[1,"#)).unwrap_err().to_string().contains("not JSON"));
    }

    /// The list is the binary's to write: past [`MAX_CRATES`] entries the rest are counted, not read.
    #[test]
    fn dep_v0_entries_past_the_cap_are_counted() {
        let entries: Vec<String> =
            (0..MAX_CRATES + 7).map(|i| format!(r#"{{"name":"c{i}","version":"1.0.{i}"}}"#)).collect();
        let list = parse_dep_v0(&zlib(&format!(r#"{{"packages":[{}]}}"#, entries.join(",")))).unwrap();
        assert_eq!((list.crates.len(), list.more, list.malformed), (MAX_CRATES, 7, 0));
        assert_eq!(list.crates.last().unwrap().name, format!("c{}", MAX_CRATES - 1));
    }

    #[test]
    fn truncated_and_old_build_info_are_errors() {
        let mut b = GO_MAGIC.to_vec();
        b.extend([8, 2]);
        b.resize(32, 0);
        b.extend([0x80, 0x80]); // a varint that never ends
        assert!(matches!(parse_go(&b), Err(BinaryError::Malformed(_))));
        let mut b2 = b[..32].to_vec();
        b2.extend([50, b'g', b'o']); // 50 bytes claimed, 2 there
        assert!(parse_go(&b2).unwrap_err().to_string().contains("runs past"));
        b2[15] = 0; // pre-1.18 pointer layout
        assert!(matches!(parse_go(&b2), Err(BinaryError::Unsupported(_))));
    }
}
