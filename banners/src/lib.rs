//! Which well-known C libraries a binary carries, read from the version
//! banners their own code holds: OpenSSL, LibreSSL, BoringSSL, zlib, libcurl,
//! SQLite, libpng, libxml2, expat, BusyBox, glibc and musl. Pure: bytes in,
//! findings out, no I/O. The agent's `embedded_libraries` collector feeds it
//! the files it reads, chunk by chunk.
//!
//! A banner counts only in the exact shape the library's own source writes
//! it (`OpenSSL 3.0.11 19 Sep 2023` then the string's NUL, ` deflate 1.2.13
//! Copyright 1995-2022 Jean-loup Gailly`, `GNU C Library (…) stable release
//! version 2.36`): a sentence that merely names a library (`requires OpenSSL
//! 1.1 or later`) is not evidence of it. Within that shape the version is
//! reported as written when it fits the library's version syntax, whatever
//! its value (no list of released versions is consulted: it would go stale,
//! and a forger writes a plausible number as easily as `99.99.99`; the
//! evidence and its offset let a person check). Where the shape around the
//! version is long (OpenSSL's date, zlib's copyright line) a version that does
//! not fit the syntax still names the library, with no version; where the
//! version is most of the shape (`expat_2.5.0`, `libcurl/7.88.1`) a token that
//! is no version is no evidence (Python holds `expat_CAPI`).
//!
//! SQLite, libxml2 and musl write their version only as a bare string
//! (`3.40.1`, `20914`, `1.2.3`). For them a marker string of the library's
//! own code decides presence (`SQLite format 3`, libxml2's version-check
//! message, musl's dynamic loader banner), and the version is taken only when
//! the file holds exactly one bare string of that shape that is not the
//! version another banner of the file states (OpenSSL 3 writes `3.0.19` beside
//! its banner); two or more (an ICU code page number looks like a libxml2
//! version) leave it unknown.
//!
//! One file naming two versions of a library is ambiguous: each version's
//! evidence is reported with no version. So is a file read only in part
//! ([`Scanner::finish_prefix`]): what its prefix holds may be its only
//! banner or not, and its only bare version string or not. What one file can
//! make is bounded: [`MAX_DISTINCT`] distinct banners are kept, the rest only
//! noted, and strings are made only for banners kept.
//!
//! Banners split across the chunks fed are found: the scanner keeps the last
//! [`MAX_BANNER`] bytes of each chunk until the next arrives.

#![forbid(unsafe_code)]

/// A library this crate recognizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Library {
    OpenSsl,
    LibreSsl,
    BoringSsl,
    Zlib,
    Libcurl,
    Sqlite,
    Libpng,
    Libxml2,
    Expat,
    Busybox,
    Glibc,
    Musl,
}

/// Every library, in the order findings are reported.
pub const LIBRARIES: [Library; 12] = [
    Library::OpenSsl,
    Library::LibreSsl,
    Library::BoringSsl,
    Library::Zlib,
    Library::Libcurl,
    Library::Sqlite,
    Library::Libpng,
    Library::Libxml2,
    Library::Expat,
    Library::Busybox,
    Library::Glibc,
    Library::Musl,
];

impl Library {
    /// The name rows carry: the upstream project's own (NVD's product name).
    pub fn name(self) -> &'static str {
        match self {
            Library::OpenSsl => "openssl",
            Library::LibreSsl => "libressl",
            Library::BoringSsl => "boringssl",
            Library::Zlib => "zlib",
            Library::Libcurl => "libcurl",
            Library::Sqlite => "sqlite",
            Library::Libpng => "libpng",
            Library::Libxml2 => "libxml2",
            Library::Expat => "expat",
            Library::Busybox => "busybox",
            Library::Glibc => "glibc",
            Library::Musl => "musl",
        }
    }

    /// Shared-object names the library is linked under, without `.so…`.
    fn stems(self) -> &'static [&'static str] {
        match self {
            Library::OpenSsl | Library::LibreSsl | Library::BoringSsl => &["libcrypto", "libssl"],
            Library::Zlib => &["libz"],
            Library::Libcurl => &["libcurl", "libcurl-gnutls", "libcurl-nss"],
            Library::Sqlite => &["libsqlite3"],
            Library::Libpng => &["libpng"],
            Library::Libxml2 => &["libxml2"],
            Library::Expat => &["libexpat", "libexpatw"],
            Library::Busybox => &[],
            Library::Glibc | Library::Musl => &["libc"],
        }
    }

    /// Whether a `DT_NEEDED` entry (`libcrypto.so.3`, `libpng16.so.16`) names
    /// this library: a file that links it dynamically holds its banner only
    /// from the library's headers (`OPENSSL_VERSION_TEXT` printed by the
    /// `openssl` command), not its code.
    pub fn is_needed_as(self, needed: &str) -> bool {
        self.stems().iter().any(|stem| {
            needed.strip_prefix(stem).is_some_and(|rest| {
                // libpng's soname carries its series (libpng16.so.16); no other library's
                // does, and a digit there is another library's (NSS's libssl3.so).
                let rest =
                    if self == Library::Libpng { rest.trim_start_matches(|c: char| c.is_ascii_digit()) } else { rest };
                rest == ".so" || rest.starts_with(".so.")
            })
        })
    }

    fn ix(self) -> usize {
        self as usize
    }
}

/// One library found in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub library: Library,
    /// The version the evidence states; None when it states none that fits
    /// the library's syntax, or the file's evidence disagrees.
    pub version: Option<String>,
    /// The string found (printable ASCII, a backslash and anything else escaped as `\xNN`).
    pub evidence: String,
    /// Byte offset of the evidence in the file.
    pub offset: u64,
}

/// Bytes after a banner's first byte that decide it (the longest banner, glibc's, is under 200).
pub const MAX_BANNER: usize = 256;
/// Distinct banners (library and version, or evidence without one) kept per file.
pub const MAX_DISTINCT: usize = 64;
/// Bytes of a version token looked at.
const MAX_TOKEN: usize = 40;
/// Distinct bare version candidates kept per library (one is needed, the rest may be other libraries' versions).
const MAX_BARE: usize = 8;

/// Libraries whose version is a bare string, and the index of their candidate list.
const BARE: [Library; 3] = [Library::Sqlite, Library::Libxml2, Library::Musl];

/// First two bytes of every anchor: a position is looked at only when its
/// byte pair is here (a bitset of 65,536 pairs, 8 KiB, built at compile time).
const ANCHOR_PAIRS: &[[u8; 2]] = &[
    *b"Op",    // OpenSSL (and BoringSSL's compatibility banner)
    *b"Li",    // LibreSSL
    *b" d",    // zlib deflate
    *b" i",    // zlib inflate
    *b"li",    // libcurl/, libpng version
    *b"CL",    // CLIENT libcurl
    *b"ex",    // expat_
    *b"Bu",    // BusyBox
    *b"GN",    // GNU C Library
    *b"mu",    // musl libc
    *b"SQ",    // SQLite format 3
    *b"co",    // compiled against libxml
    [0, b'1'], // musl's bare version
    [0, b'3'], // SQLite's bare version
    *b"20",    // libxml2's bare version (2.0 to 2.19)
    *b"21",
];

const PAIRS: [u64; 1024] = {
    let mut t = [0u64; 1024];
    let mut i = 0;
    while i < ANCHOR_PAIRS.len() {
        let p = (ANCHOR_PAIRS[i][0] as usize) << 8 | ANCHOR_PAIRS[i][1] as usize;
        t[p >> 6] |= 1 << (p & 63);
        i += 1;
    }
    t
};

#[derive(Debug, Default)]
struct Bare {
    /// Distinct candidates as written, with the first offset of each (at most [`MAX_BARE`]).
    values: Vec<(String, u64)>,
    more: bool,
}

#[derive(Debug)]
struct Seen {
    library: Library,
    version: Option<String>,
    evidence: String,
    offset: u64,
}

#[derive(Debug, Default)]
struct State {
    seen: Vec<Seen>,
    /// Per library: a distinct banner past [`MAX_DISTINCT`] was dropped.
    overflow: [bool; LIBRARIES.len()],
    /// Per bare-version library: its marker's evidence and offset.
    markers: [Option<(String, u64)>; LIBRARIES.len()],
    bare: [Bare; BARE.len()],
}

/// What a file holds.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// In [`LIBRARIES`] order.
    pub findings: Vec<Finding>,
    /// More distinct banners than [`MAX_DISTINCT`]: the libraries past the
    /// limit are left out, those it cut reported without a version.
    pub overflowed: bool,
}

/// Scans one file fed in chunks; [`Scanner::finish`] says what it holds.
#[derive(Debug, Default)]
pub struct Scanner {
    /// Bytes not yet scanned, after one byte of what was (a banner's preceding byte).
    buf: Vec<u8>,
    /// File offset of `buf[0]`.
    base: u64,
    /// First position of `buf` not yet scanned.
    start: usize,
    state: State,
}

impl Scanner {
    pub fn new() -> Scanner {
        Scanner::default()
    }

    /// Scans the next bytes of the file. Positions whose banner could run
    /// into the next chunk wait for it.
    pub fn feed(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
        let end = self.buf.len().saturating_sub(MAX_BANNER);
        if end > self.start {
            scan(&self.buf, self.base, self.start, end, &mut self.state);
            let keep = end - 1;
            self.buf.drain(..keep);
            self.base += keep as u64;
            self.start = 1;
        }
    }

    /// Scans what is left and says what the file holds.
    pub fn finish(self) -> Report {
        self.end(true)
    }

    /// Like [`Scanner::finish`] for a file that was fed only in part (cut at
    /// a budget): what it holds, every version unknown. That a bare version
    /// string is the only one, or a banner's version the only one of its
    /// library, cannot be told from a prefix.
    pub fn finish_prefix(self) -> Report {
        self.end(false)
    }

    fn end(mut self, whole: bool) -> Report {
        let len = self.buf.len();
        scan(&self.buf, self.base, self.start, len, &mut self.state);
        let overflowed = self.state.overflow.iter().any(|&o| o);
        Report { findings: self.state.findings(whole), overflowed }
    }
}

/// Looks at every position in `from..to` whose byte pair starts an anchor.
fn scan(buf: &[u8], base: u64, from: usize, to: usize, state: &mut State) {
    let to = to.min(buf.len().saturating_sub(1));
    let mut i = from;
    while i < to {
        let p = (buf[i] as usize) << 8 | buf[i + 1] as usize;
        if PAIRS[p >> 6] & (1 << (p & 63)) != 0 {
            at(buf, base, i, state);
        }
        i += 1;
    }
}

/// What a string ending the shape must be followed by: the C string's end.
const NUL: u8 = 0;

/// A cursor over the bytes after an anchor.
struct Cur<'a> {
    w: &'a [u8],
    i: usize,
}

impl<'a> Cur<'a> {
    fn lit(&mut self, s: &[u8]) -> bool {
        if self.w[self.i..].starts_with(s) {
            self.i += s.len();
            true
        } else {
            false
        }
    }

    fn byte(&mut self, b: u8) -> bool {
        if self.w.get(self.i) == Some(&b) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn peek(&self) -> Option<u8> {
        self.w.get(self.i).copied()
    }

    /// `min..=max` ASCII digits.
    fn digits(&mut self, min: usize, max: usize) -> bool {
        let n = self.w[self.i..].iter().take(max).take_while(|b| b.is_ascii_digit()).count();
        if n < min || self.w.get(self.i + n).is_some_and(u8::is_ascii_digit) {
            return false;
        }
        self.i += n;
        true
    }

    /// A version token: the run of version characters here (at most [`MAX_TOKEN`]).
    fn token(&mut self) -> &'a [u8] {
        let n = self.w[self.i..]
            .iter()
            .take(MAX_TOKEN + 1)
            .take_while(|&&b| b.is_ascii_alphanumeric() || b"._+~-".contains(&b))
            .count();
        let t = &self.w[self.i..self.i + n];
        self.i += n;
        t
    }
}

/// `N.N[.N…]`: `min..=max` dot-separated numbers of at most 4 digits; the byte count used.
fn dotted(t: &[u8], min: usize, max: usize) -> Option<usize> {
    let mut c = Cur { w: t, i: 0 };
    let mut parts = 0;
    loop {
        if !c.digits(1, 4) {
            return None;
        }
        parts += 1;
        if parts == max || !(c.peek() == Some(b'.') && t.get(c.i + 1).is_some_and(u8::is_ascii_digit)) {
            break;
        }
        c.i += 1;
    }
    (parts >= min).then_some(c.i)
}

/// Exactly `N.N.N` (or `min..=max` parts), nothing after.
fn plain(t: &[u8], min: usize, max: usize) -> bool {
    dotted(t, min, max) == Some(t.len())
}

/// OpenSSL's versions: `1.0.2k`, `1.1.1w`, `3.0.11`, `3.2.0-alpha1`, `1.0.2k-fips`, and a fork's
/// build suffix, as quictls writes it (`3.0.13+quic`, `1.1.1w+quic`).
fn openssl_version(t: &[u8]) -> bool {
    let Some(n) = dotted(t, 3, 3) else { return false };
    let rest = &t[n..];
    let letters = rest.iter().take(2).take_while(|b| b.is_ascii_lowercase()).count();
    let mut rest = &rest[letters..];
    if let Some(plus) = rest.iter().position(|&b| b == b'+') {
        let build = &rest[plus + 1..];
        if build.is_empty() || build.len() > 16 || !build.iter().all(u8::is_ascii_lowercase) {
            return false;
        }
        rest = &rest[..plus];
    }
    if rest.is_empty() || rest == b"-fips" || rest == b"-dev" {
        return true;
    }
    ["-alpha", "-beta", "-pre", "-rc"].iter().any(|p| {
        rest.strip_prefix(p.as_bytes())
            .is_some_and(|d| !d.is_empty() && d.len() <= 2 && d.iter().all(u8::is_ascii_digit))
    })
}

/// `N.N.N` with an optional `-DEV`/`-rc<N>` (libcurl) or `.git` (BusyBox) or `beta<N>`/`rc<N>` (libpng) tail.
fn version_with(t: &[u8], tails: &[&str]) -> bool {
    let Some(n) = dotted(t, 3, 3) else { return false };
    let rest = &t[n..];
    rest.is_empty()
        || tails.iter().any(|tail| {
            rest.strip_prefix(tail.as_bytes()).is_some_and(|d| d.len() <= 2 && d.iter().all(u8::is_ascii_digit))
        })
}

const MONTHS: [&[u8; 3]; 12] =
    [b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec"];

/// A match at one position: the library, its version if the token fits, and the evidence's length.
/// Borrowed: strings are made only for what a file keeps (see [`State::add`]).
struct Hit<'a> {
    library: Library,
    version: Option<&'a [u8]>,
    len: usize,
}

fn hit(library: Library, token: &[u8], fits: bool, len: usize) -> Option<Hit<'_>> {
    Some(Hit { library, version: fits.then_some(token), len })
}

/// Tries every anchor starting at `buf[i]`.
fn at(buf: &[u8], base: u64, i: usize, state: &mut State) {
    let w = &buf[i..buf.len().min(i + MAX_BANNER)];
    let before = if i == 0 { None } else { Some(buf[i - 1]) };
    let offset = base + i as u64;
    match [w[0], w[1]] {
        [0, b'1'] => bare(w, 1, b"1.", &[3], offset + 1, &mut state.bare[2]),
        [0, b'3'] => bare(w, 1, b"3.", &[3, 4], offset + 1, &mut state.bare[0]),
        [b'2', b'0' | b'1'] => {
            let delimited = before.is_none_or(|b| !(b.is_ascii_alphanumeric() || b"._-".contains(&b)));
            if delimited && w.len() > 5 && w[..5].iter().all(u8::is_ascii_digit) && w[5] == NUL {
                candidate(&mut state.bare[1], &w[..5], offset);
            }
        }
        _ => {
            for m in [marker(w), banner(w, before)].into_iter().flatten() {
                if BARE.contains(&m.library) {
                    state.markers[m.library.ix()].get_or_insert_with(|| (escape(&w[..m.len]), offset));
                } else {
                    state.add(m.library, m.version, &w[..m.len], offset);
                }
            }
        }
    }
}

/// A bare version: `lead` then `parts` dot-separated numbers of 1–2 digits, then NUL.
fn bare(w: &[u8], skip: usize, lead: &[u8], parts: &[usize], offset: u64, into: &mut Bare) {
    let t = &w[skip..];
    if !t.starts_with(lead) {
        return;
    }
    let Some(n) = dotted(t, 1, 4) else { return };
    let count = t[..n].iter().filter(|&&b| b == b'.').count() + 1;
    let short = t[..n].split(|&b| b == b'.').all(|p| p.len() <= 2);
    if parts.contains(&count) && short && t.get(n) == Some(&NUL) {
        candidate(into, &t[..n], offset);
    }
}

/// A bare version string (ASCII digits and dots), kept when new.
fn candidate(into: &mut Bare, s: &[u8], offset: u64) {
    if into.values.iter().any(|(v, _)| v.as_bytes() == s) {
        return;
    }
    if into.values.len() < MAX_BARE {
        into.values.push((String::from_utf8_lossy(s).into_owned(), offset));
    } else {
        into.more = true;
    }
}

/// The markers of libraries whose version is a bare string.
fn marker(w: &[u8]) -> Option<Hit<'_>> {
    let found = |library, s: &[u8]| w.starts_with(s).then_some(Hit { library, version: None, len: s.len() });
    match [w[0], w[1]] {
        [b'S', b'Q'] => {
            // The file-format header string of SQLite's own B-tree code.
            (w.starts_with(b"SQLite format 3\0")).then_some(Hit { library: Library::Sqlite, version: None, len: 15 })
        }
        // xmlCheckVersion's message, in every libxml2 build.
        [b'c', b'o'] => found(Library::Libxml2, b"compiled against libxml %d using libxml %d"),
        // The dynamic loader's banner (musl's libc.so is its loader).
        [b'm', b'u'] => found(Library::Musl, b"musl libc ("),
        _ => None,
    }
}

/// The banners that carry their version.
fn banner(w: &[u8], before: Option<u8>) -> Option<Hit<'_>> {
    let mut c = Cur { w, i: 0 };
    match [w[0], w[1]] {
        [b'O', b'p'] => {
            if !c.lit(b"OpenSSL ") {
                return None;
            }
            let t = c.token();
            if t.is_empty() {
                return None;
            }
            // BoringSSL's OPENSSL_VERSION_TEXT: it has no versions of its own.
            if t == b"1.1.1" && c.lit(b" (compatible; BoringSSL)") && c.peek() == Some(NUL) {
                return Some(Hit { library: Library::BoringSsl, version: None, len: c.i });
            }
            // OPENSSL_VERSION_TEXT: "OpenSSL 3.0.11 19 Sep 2023", 1.x with two spaces before a one-digit
            // day, Red Hat's FIPS builds with a token before the date ("OpenSSL 1.1.1k  FIPS 25 Mar 2021").
            if !c.byte(b' ') {
                return None;
            }
            c.byte(b' ');
            c.lit(b"FIPS ");
            if !(c.digits(1, 2) && c.byte(b' ')) {
                return None;
            }
            let date = MONTHS.iter().any(|m| c.lit(&m[..])) && c.byte(b' ') && c.digits(4, 4);
            if !date || c.peek() != Some(NUL) {
                return None;
            }
            hit(Library::OpenSsl, t, openssl_version(t), c.i)
        }
        [b'L', b'i'] => {
            // LibreSSL's OPENSSL_VERSION_TEXT: "LibreSSL 3.8.2", the whole string.
            if !c.lit(b"LibreSSL ") {
                return None;
            }
            let t = c.token();
            (!t.is_empty() && c.peek() == Some(NUL)).then_some(())?;
            plain(t, 3, 3).then_some(())?;
            hit(Library::LibreSsl, t, true, c.i)
        }
        [b' ', b'd' | b'i'] => {
            // zlib's deflate_copyright / inflate_copyright.
            let author: &[u8] = if c.lit(b" deflate ") {
                b" Jean-loup Gailly"
            } else if c.lit(b" inflate ") {
                b" Mark Adler"
            } else {
                return None;
            };
            let t = c.token();
            let ok = !t.is_empty()
                && c.lit(b" Copyright ")
                && c.digits(4, 4)
                && c.byte(b'-')
                && c.digits(4, 4)
                && c.lit(author);
            if !ok {
                return None;
            }
            // 1.2.13, 1.3, 1.2.11.1-motley (Chromium's).
            let fits = dotted(t, 2, 4).is_some_and(|n| {
                let rest = &t[n..];
                rest.is_empty() || (rest.len() <= 16 && rest[0] == b'-' && rest[1..].iter().all(u8::is_ascii_lowercase))
            });
            hit(Library::Zlib, t, fits, c.i)
        }
        [b'l', b'i'] => {
            if c.lit(b"libcurl/") {
                // curl_version()'s "libcurl/7.88.1", its own string.
                let t = c.token();
                (!t.is_empty() && c.peek() == Some(NUL)).then_some(())?;
                version_with(t, &["-DEV", "-rc"]).then_some(())?;
                hit(Library::Libcurl, t, true, c.i)
            } else if c.lit(b"libpng version ") {
                // png_get_copyright's "\nlibpng version 1.6.39\n", PNG_HEADER_VERSION_STRING's " - November 20, 2022".
                let t = c.token();
                let end = c.i;
                let ok = !t.is_empty() && (c.byte(b'\n') || c.lit(b" - "));
                ok.then_some(())?;
                version_with(t, &["beta", "rc", ".git"]).then_some(())?;
                hit(Library::Libpng, t, true, end)
            } else {
                None
            }
        }
        [b'C', b'L'] => {
            // The DICT protocol's greeting: "CLIENT libcurl 7.88.1\r\n".
            if !c.lit(b"CLIENT libcurl ") {
                return None;
            }
            let t = c.token();
            let end = c.i;
            (!t.is_empty() && c.lit(b"\r\n")).then_some(())?;
            version_with(t, &["-DEV", "-rc"]).then_some(())?;
            hit(Library::Libcurl, t, true, end)
        }
        [b'e', b'x'] => {
            // XML_ExpatVersion's "expat_2.5.0", the whole string.
            if before.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_') || !c.lit(b"expat_") {
                return None;
            }
            let t = c.token();
            (!t.is_empty() && c.peek() == Some(NUL)).then_some(())?;
            plain(t, 3, 3).then_some(())?;
            hit(Library::Expat, t, true, c.i)
        }
        [b'B', b'u'] => {
            // "BusyBox v1.36.1 (2023-11-07 18:53:09 UTC)", "BusyBox v1.35.0 (Debian 1:1.35.0-4)".
            if !c.lit(b"BusyBox v") {
                return None;
            }
            let t = c.token();
            let end = c.i;
            (!t.is_empty() && (c.lit(b" (") || c.peek() == Some(NUL))).then_some(())?;
            version_with(t, &[".git"]).then_some(())?;
            hit(Library::Busybox, t, true, end)
        }
        [b'G', b'N'] => {
            // __libc_print_version's "GNU C Library (Debian GLIBC 2.36-9) stable release version 2.36."
            if !c.lit(b"GNU C Library (") {
                return None;
            }
            let vendor = w[c.i..].iter().take(100).take_while(|&&b| (0x20..0x7f).contains(&b) && b != b')').count();
            c.i += vendor;
            if !c.lit(b") ") {
                return None;
            }
            let _ = c.lit(b"stable ") || c.lit(b"development ") || c.lit(b"release ");
            if !c.lit(b"release version ") && !c.lit(b"version ") {
                return None;
            }
            let n = dotted(&w[c.i..], 2, 3)?;
            let t = &w[c.i..c.i + n];
            c.i += n;
            // Then "." (2.36.), "," (2.17, by Roland McGrath) or the string's end.
            matches!(c.peek(), Some(b'.' | b',' | NUL)).then_some(())?;
            hit(Library::Glibc, t, true, c.i)
        }
        _ => None,
    }
}

impl State {
    /// Keeps a banner unless one of its library and version is kept: a
    /// file of a million copies of one banner makes strings for one.
    fn add(&mut self, library: Library, version: Option<&[u8]>, evidence: &[u8], offset: u64) {
        if self.seen.iter().any(|s| s.library == library && s.version.as_deref().map(str::as_bytes) == version) {
            return;
        }
        if self.seen.len() >= MAX_DISTINCT {
            self.overflow[library.ix()] = true;
            return;
        }
        // Version tokens are ASCII (see `Cur::token`): the string is the bytes.
        let version = version.map(|v| String::from_utf8_lossy(v).into_owned());
        self.seen.push(Seen { library, version, evidence: escape(evidence), offset });
    }

    /// What the file holds; `whole`: every byte of it was scanned.
    fn findings(self, whole: bool) -> Vec<Finding> {
        let mut out = Vec::new();
        for lib in LIBRARIES {
            if let Some(b) = BARE.iter().position(|&l| l == lib) {
                let Some((marker, at)) = &self.markers[lib.ix()] else { continue };
                let c = &self.bare[b];
                // A bare string that is the version another banner of the file states is that
                // library's (OpenSSL 3 writes "3.0.19" beside its banner: SQLite's shape).
                let theirs = |v: &str| self.seen.iter().any(|s| s.version.as_deref() == Some(v));
                let values: Vec<&(String, u64)> = c.values.iter().filter(|(v, _)| !theirs(v)).collect();
                let f = match (&values[..], c.more || !whole) {
                    ([(v, offset)], false) => Finding {
                        library: lib,
                        version: Some(if lib == Library::Libxml2 { libxml2_dotted(v) } else { v.clone() }),
                        evidence: v.clone(),
                        offset: *offset,
                    },
                    _ => Finding { library: lib, version: None, evidence: marker.clone(), offset: *at },
                };
                out.push(f);
                continue;
            }
            let mine: Vec<&Seen> = self.seen.iter().filter(|s| s.library == lib).collect();
            let versioned: Vec<&&Seen> = mine.iter().filter(|s| s.version.is_some()).collect();
            let finding = |s: &Seen, version: Option<String>| Finding {
                library: lib,
                version,
                evidence: s.evidence.clone(),
                offset: s.offset,
            };
            match (versioned.len(), self.overflow[lib.ix()] || !whole) {
                (1, false) => out.push(finding(versioned[0], versioned[0].version.clone())),
                (0, false) => out.extend(mine.first().map(|s| finding(s, None))),
                // Two versions in one file, or more banners than were kept: each with no version.
                _ => out.extend(versioned.iter().map(|s| finding(s, None))),
            }
            if versioned.is_empty() && (self.overflow[lib.ix()] || !whole) {
                out.extend(mine.first().map(|s| finding(s, None)));
            }
        }
        out
    }
}

/// libxml2's LIBXML_VERSION_STRING `20914` as the release it names, 2.9.14.
fn libxml2_dotted(v: &str) -> String {
    let n = |s: &str| s.parse::<u32>().unwrap_or(0);
    format!("{}.{}.{}", n(&v[..1]), n(&v[1..3]), n(&v[3..5]))
}

/// Printable ASCII as it is, a backslash as `\\`, every other byte as `\xNN`: lossless.
pub fn escape(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len());
    for &b in bytes {
        match b {
            b'\\' => s.push_str("\\\\"),
            0x20..=0x7e => s.push(b as char),
            _ => s.push_str(&format!("\\x{b:02x}")),
        }
    }
    s
}

/// Scans a whole buffer at once (tests, and callers that hold the bytes).
pub fn scan_bytes(bytes: &[u8]) -> Report {
    let mut s = Scanner::new();
    s.feed(bytes);
    s.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use Library::*;

    fn one(bytes: &[u8]) -> Vec<(Library, Option<String>, String)> {
        scan_bytes(bytes).findings.into_iter().map(|f| (f.library, f.version, f.evidence)).collect()
    }

    fn v(s: &str) -> Option<String> {
        Some(s.to_string())
    }

    /// Each library's banner as its source writes it, and near misses.
    #[test]
    fn banners_in_their_exact_shape() {
        type Want<'a> = &'a [(Library, Option<&'a str>, &'a str)];
        let cases: &[(&[u8], Want)] = &[
            (b"\0OpenSSL 3.0.19 27 Jan 2026\0", &[(OpenSsl, Some("3.0.19"), "OpenSSL 3.0.19 27 Jan 2026")]),
            (b"\0OpenSSL 1.1.1w  11 Sep 2023\0", &[(OpenSsl, Some("1.1.1w"), "OpenSSL 1.1.1w  11 Sep 2023")]),
            (b"\0OpenSSL 1.0.2k-fips  26 Jan 2017\0", &[(OpenSsl, Some("1.0.2k-fips"), "OpenSSL 1.0.2k-fips  26 Jan 2017")]),
            (b"\0OpenSSL 3.2.0-alpha1 7 Sep 2023\0", &[(OpenSsl, Some("3.2.0-alpha1"), "OpenSSL 3.2.0-alpha1 7 Sep 2023")]),
            // quictls (Node.js's OpenSSL): its build suffix is part of the version as written.
            (b"\0OpenSSL 3.0.13+quic 30 Jan 2024\0", &[(OpenSsl, Some("3.0.13+quic"), "OpenSSL 3.0.13+quic 30 Jan 2024")]),
            (b"\0OpenSSL 1.1.1w+quic  11 Sep 2023\0", &[(OpenSsl, Some("1.1.1w+quic"), "OpenSSL 1.1.1w+quic  11 Sep 2023")]),
            (b"\0OpenSSL 3.0.13+QUIC! 30 Jan 2024\0", &[]),
            (b"\0OpenSSL 3.0.13+ 30 Jan 2024\0", &[(OpenSsl, None, "OpenSSL 3.0.13+ 30 Jan 2024")]),
            // Red Hat Enterprise Linux 8's FIPS builds: a token between the version and the date.
            (b"\0OpenSSL 1.1.1k  FIPS 25 Mar 2021\0", &[(OpenSsl, Some("1.1.1k"), "OpenSSL 1.1.1k  FIPS 25 Mar 2021")]),
            (b"\0OpenSSL 1.1.1k  FIPS\0", &[]),
            // The shape with a token that is no OpenSSL version: the library, no version.
            (b"\0OpenSSL 3.x 1 Jan 2020\0", &[(OpenSsl, None, "OpenSSL 3.x 1 Jan 2020")]),
            // Sentences naming OpenSSL are not its banner.
            (b"requires OpenSSL 1.1.1 or later\0", &[]),
            (b"OpenSSL 3.0.19 27 Jan 2026 (Library: %s)\0", &[]),
            (b"\0OpenSSL 1.1.1 (compatible; BoringSSL)\0", &[(BoringSsl, None, "OpenSSL 1.1.1 (compatible; BoringSSL)")]),
            (b"\0LibreSSL 3.8.2\0", &[(LibreSsl, Some("3.8.2"), "LibreSSL 3.8.2")]),
            (b"\0LibreSSL\0", &[]),
            (
                b" deflate 1.2.13 Copyright 1995-2022 Jean-loup Gailly and Mark Adler \0 inflate 1.2.13 Copyright 1995-2022 Mark Adler \0",
                &[(Zlib, Some("1.2.13"), " deflate 1.2.13 Copyright 1995-2022 Jean-loup Gailly")],
            ),
            (b" inflate 1.3 Copyright 1995-2023 Mark Adler \0", &[(Zlib, Some("1.3"), " inflate 1.3 Copyright 1995-2023 Mark Adler")]),
            (
                b" deflate 1.3.0.1-motley Copyright 1995-2024 Jean-loup Gailly \0",
                &[(Zlib, Some("1.3.0.1-motley"), " deflate 1.3.0.1-motley Copyright 1995-2024 Jean-loup Gailly")],
            ),
            (
                b" deflate 1.3.0.zlib-ng Copyright 1995-2024 Jean-loup Gailly \0",
                &[(Zlib, None, " deflate 1.3.0.zlib-ng Copyright 1995-2024 Jean-loup Gailly")],
            ),
            (b"\0libcurl/7.88.1\0zlib/%s\0", &[(Libcurl, Some("7.88.1"), "libcurl/7.88.1")]),
            (b"CLIENT libcurl 8.5.0-DEV\r\nMATCH", &[(Libcurl, Some("8.5.0-DEV"), "CLIENT libcurl 8.5.0-DEV")]),
            (b"\0libcurl/%s\0", &[]),
            (b"\nlibpng version 1.6.39\nCopyright", &[(Libpng, Some("1.6.39"), "libpng version 1.6.39")]),
            (b" libpng version 1.6.43 - February 23, 2024\n", &[(Libpng, Some("1.6.43"), "libpng version 1.6.43")]),
            (b"\0expat_2.5.0\0", &[(Expat, Some("2.5.0"), "expat_2.5.0")]),
            (b"\0libexpat_2.5.0\0", &[]),
            (b"\0pyexpat.expat_CAPI\0", &[]),
            (b"\0expat_2.5\0", &[]),
            (b"BusyBox vX (x)", &[]),
            (
                b"BusyBox v1.35.0 (Debian 1:1.35.0-4+deb12u1+b1) multi-call binary.",
                &[(Busybox, Some("1.35.0"), "BusyBox v1.35.0")],
            ),
            (b"BusyBox v1.37.0.git (2024-01-01)", &[(Busybox, Some("1.37.0.git"), "BusyBox v1.37.0.git")]),
            (
                b"GNU C Library (Debian GLIBC 2.36-9+deb12u4) stable release version 2.36.\n",
                &[(Glibc, Some("2.36"), "GNU C Library (Debian GLIBC 2.36-9+deb12u4) stable release version 2.36")],
            ),
            (
                b"GNU C Library (GNU libc) stable release version 2.17, by Roland McGrath et al.\n",
                &[(Glibc, Some("2.17"), "GNU C Library (GNU libc) stable release version 2.17")],
            ),
            (
                b"GNU C Library (GNU libc) development release version 2.38.9000.\n",
                &[(Glibc, Some("2.38.9000"), "GNU C Library (GNU libc) development release version 2.38.9000")],
            ),
        ];
        for (bytes, want) in cases {
            let want: Vec<(Library, Option<String>, String)> =
                want.iter().map(|(l, v, e)| (*l, v.map(str::to_string), e.to_string())).collect();
            assert_eq!(one(bytes), want, "{}", escape(bytes));
        }
    }

    /// SQLite, libxml2 and musl: the marker decides presence, one bare version string the version.
    #[test]
    fn bare_versions_need_their_marker_and_are_taken_only_when_unique() {
        let sqlite = b"\x08\0\0\x003.40.1\0\0\x01 corrupt\0SQLite format 3\0\xff";
        assert_eq!(one(sqlite), [(Sqlite, v("3.40.1"), "3.40.1".into())]);
        // Without the marker a bare version is nothing.
        assert_eq!(one(b"\x003.40.1\0"), []);
        // Two candidates (SQLite's and Python's): present, version unknown, the marker as evidence.
        let two = b"\x003.40.1\0\x003.11.2\0SQLite format 3\0";
        assert_eq!(one(two), [(Sqlite, None, "SQLite format 3".into())]);
        // OpenSSL 3's OPENSSL_VERSION_STR beside its banner is OpenSSL's, not a second SQLite candidate.
        let with_openssl = b"\0OpenSSL 3.0.19 27 Jan 2026\x003.0.19\0platform\0\x003.40.1\0SQLite format 3\0";
        let got = one(with_openssl);
        assert_eq!(got[1], (Sqlite, v("3.40.1"), "3.40.1".into()), "{got:?}");
        let xml = b"\xc4\x08\xe4\xff::20914\0\0Fatal: program compiled against libxml %d using libxml %d\n\0";
        assert_eq!(one(xml), [(Libxml2, v("2.9.14"), "20914".into())]);
        let icu = b"\x0020127\0\x0020914\0compiled against libxml %d using libxml %d\0";
        assert_eq!(one(icu), [(Libxml2, None, "compiled against libxml %d using libxml %d".into())]);
        let musl = b"musl libc (x86_64)\nVersion %s\n\0/proc/self/fd/\x001.2.3\0Unsupported";
        assert_eq!(one(musl), [(Musl, v("1.2.3"), "1.2.3".into())]);
        // A year or a longer number is no candidate.
        assert_eq!(one(b"x2022-12-28\0\x00209140\0compiled against libxml %d using libxml %d\0").len(), 1);
    }

    /// A banner split across the chunks at every position is found once, at its offset.
    #[test]
    fn banners_split_across_chunks_at_every_position() {
        let mut file = vec![0x90u8; 3 * MAX_BANNER];
        let banner = b"\0OpenSSL 3.0.19 27 Jan 2026\0";
        let at = file.len();
        file.extend_from_slice(banner);
        file.extend_from_slice(&[0x90; 100]);
        file.extend_from_slice(b" deflate 1.2.13 Copyright 1995-2022 Jean-loup Gailly \0");
        for split in 0..file.len() {
            for size in [1, 7, split.max(1)] {
                let mut s = Scanner::new();
                let (a, b) = file.split_at(split);
                for part in a.chunks(size).chain(b.chunks(size)) {
                    s.feed(part);
                }
                let f = s.finish().findings;
                assert_eq!(f.len(), 2, "split {split} size {size}: {f:?}");
                assert_eq!((f[0].library, f[0].offset), (OpenSsl, at as u64 + 1), "split {split}");
                assert_eq!(f[1].version.as_deref(), Some("1.2.13"));
            }
        }
    }

    /// Two versions of one library in one file: each reported, neither as the version.
    #[test]
    fn disagreeing_versions_are_unknown() {
        let f = scan_bytes(b"\0OpenSSL 1.1.1w  11 Sep 2023\0OpenSSL 3.0.11 19 Sep 2023\0OpenSSL 3.0.11 19 Sep 2023\0")
            .findings;
        let got: Vec<(Option<String>, &str)> = f.iter().map(|f| (f.version.clone(), f.evidence.as_str())).collect();
        assert_eq!(got, [(None, "OpenSSL 1.1.1w  11 Sep 2023"), (None, "OpenSSL 3.0.11 19 Sep 2023")]);
    }

    /// A file of fake banners keeps at most MAX_DISTINCT, and the library's version is unknown.
    #[test]
    fn fake_banners_are_bounded() {
        let mut file = Vec::new();
        for i in 0..10_000 {
            file.extend_from_slice(format!("\0OpenSSL 1.0.{i} 1 Jan 2020\0").as_bytes());
        }
        file.extend_from_slice(b"\0expat_2.5.0\0");
        let r = scan_bytes(&file);
        assert!(r.overflowed);
        let f = r.findings;
        let ssl: Vec<&Finding> = f.iter().filter(|f| f.library == OpenSsl).collect();
        assert_eq!(ssl.len(), MAX_DISTINCT);
        assert!(ssl.iter().all(|f| f.version.is_none()));
        // Past the limit, a library seen only there is dropped, never guessed.
        assert!(f.iter().all(|f| f.library != Expat), "{f:?}");
    }

    /// Lying versions: a well-formed banner is reported as written; one
    /// broken after its version is not a banner at all.
    #[test]
    fn lying_versions() {
        assert_eq!(
            one(b"\0OpenSSL 99.99.99x 1 Jan 2099\0"),
            [(OpenSsl, v("99.99.99x"), "OpenSSL 99.99.99x 1 Jan 2099".into())]
        );
        assert_eq!(one(b"\0OpenSSL 99.99.99x\xff\xfegarbage 1 Jan 2099\0"), []);
        assert_eq!(
            one(b"\0OpenSSL 99.99.99xyzzy-garbage 1 Jan 2099\0"),
            [(OpenSsl, None, "OpenSSL 99.99.99xyzzy-garbage 1 Jan 2099".into())]
        );
        let long = format!("\0OpenSSL 1.{} 1 Jan 2099\0", "1".repeat(500));
        assert_eq!(one(long.as_bytes()), []);
        // Evidence is escaped losslessly.
        assert_eq!(escape(b"a\\b\xff\n"), "a\\\\b\\xff\\x0a");
    }

    /// A file cut at a budget: what its prefix holds, no version (another
    /// banner or bare string may follow the cut).
    #[test]
    fn a_prefix_states_no_version() {
        let bytes = b"\0OpenSSL 3.0.19 27 Jan 2026\0\x003.40.1\0SQLite format 3\0\0OpenSSL 3.x 1 Jan 2020\0";
        let mut s = Scanner::new();
        s.feed(bytes);
        let got: Vec<(Library, Option<String>, String)> =
            s.finish_prefix().findings.into_iter().map(|f| (f.library, f.version, f.evidence)).collect();
        assert_eq!(
            got,
            [(OpenSsl, None, "OpenSSL 3.0.19 27 Jan 2026".into()), (Sqlite, None, "SQLite format 3".into())]
        );
        let mut s = Scanner::new();
        s.feed(b"\0OpenSSL 3.x 1 Jan 2020\0");
        assert_eq!(s.finish_prefix().findings[0].evidence, "OpenSSL 3.x 1 Jan 2020");
        // Read whole, the same bytes state both versions.
        assert_eq!(
            one(bytes)[..2],
            [(OpenSsl, v("3.0.19"), "OpenSSL 3.0.19 27 Jan 2026".into()), (Sqlite, v("3.40.1"), "3.40.1".into())]
        );
    }

    #[test]
    fn needed_names() {
        assert!(OpenSsl.is_needed_as("libcrypto.so.3"));
        assert!(OpenSsl.is_needed_as("libssl.so.1.1"));
        // NSS's libssl3.so is not OpenSSL's libssl; only libpng's soname carries digits.
        assert!(!OpenSsl.is_needed_as("libssl3.so"));
        assert!(!Zlib.is_needed_as("libz3.so.1"));
        assert!(Libpng.is_needed_as("libpng16.so.16"));
        assert!(Zlib.is_needed_as("libz.so.1"));
        assert!(!Zlib.is_needed_as("libzstd.so.1"));
        assert!(Libcurl.is_needed_as("libcurl-gnutls.so.4"));
        assert!(!Glibc.is_needed_as("libcrypto.so.3"));
        assert!(Glibc.is_needed_as("libc.so.6") && Musl.is_needed_as("libc.so"));
    }
}
