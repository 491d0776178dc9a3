//! A bounded reader of zip archives (jar, war, ear), for hostile input.
//!
//! Only what the `java` collector needs: the central directory, read first
//! and checked against the archive's size before anything is allocated for
//! it, and the data of a few chosen entries, stored or deflated (inflated by
//! flate2, already in the tree for cargo-auditable's `.dep-v0`), each read
//! up to a caller's cap. Nothing is extracted to disk, and nothing but the
//! chosen entries is kept: a central directory of a million entries costs
//! one pass over its bytes.
//!
//! Every size and offset an archive states is a claim: the central
//! directory must lie inside the archive and within [`MAX_CD_BYTES`], each
//! entry's data inside the archive, and an entry's inflated bytes are
//! counted as they come out, whatever its header says (a zip bomb stops at
//! the cap). Bytes before the archive (a launch script in front of an
//! executable Spring Boot jar) are allowed for, as Java allows for them: the
//! central directory is taken to end where the end record starts.
//! Encrypted entries, and methods other than stored and deflate, are refused
//! by name. Zip64 end records are read (archives over 4 GiB or 65,535
//! entries); multi-disk archives are refused. CRCs are not checked: a
//! corrupt entry can only give wrong metadata, which its text already can.

use std::io::Read;

/// Bytes of central directory read from one archive (a jar of 65,535 entries
/// with long names needs about 10 MiB).
pub const MAX_CD_BYTES: u64 = 32 << 20;
/// Entries of one archive that a caller may keep (the rest are an error).
pub const MAX_KEPT: usize = 10_000;

const EOCD: u32 = 0x0605_4b50;
const EOCD64: u32 = 0x0606_4b50;
const LOCATOR64: u32 = 0x0706_4b50;
const CENTRAL: u32 = 0x0201_4b50;
const LOCAL: u32 = 0x0403_4b50;

/// Why an archive or one of its entries could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ZipError {
    #[error("not a zip archive: {0}")]
    NotZip(String),
    #[error("malformed zip archive: {0}")]
    Malformed(String),
    #[error("{what}: {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge { what: String, size: u64, limit: u64 },
    #[error("{0}")]
    Unsupported(String),
    #[error("read error: {0}")]
    Io(#[from] std::io::Error),
    /// A caller's limit over several archives (a scope's), reached.
    #[error("{0}")]
    Limit(String),
}

/// Bytes read at offsets: a file, a window into another source, or memory.
pub trait Source {
    fn len(&self) -> u64;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Fills `buf` from `offset`; an error if the source ends first.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()>;
}

impl Source for Vec<u8> {
    fn len(&self) -> u64 {
        Vec::len(self) as u64
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        let start = usize::try_from(offset).ok().filter(|&s| s <= Vec::len(self));
        let part = start.and_then(|s| self.get(s..s.checked_add(buf.len())?));
        let part = part.ok_or_else(|| std::io::Error::from(std::io::ErrorKind::UnexpectedEof))?;
        buf.copy_from_slice(part);
        Ok(())
    }
}

/// A regular file read by position, counting the bytes it gives.
pub struct FileSource {
    file: std::fs::File,
    len: u64,
    read: std::cell::Cell<u64>,
}

impl FileSource {
    pub fn new(file: std::fs::File, len: u64) -> FileSource {
        FileSource { file, len, read: std::cell::Cell::new(0) }
    }
    /// Bytes read from the file so far.
    pub fn bytes_read(&self) -> u64 {
        self.read.get()
    }
}

impl Source for FileSource {
    fn len(&self) -> u64 {
        self.len
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        if offset.checked_add(buf.len() as u64).is_none_or(|end| end > self.len) {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        self.file.read_exact_at(buf, offset)?;
        self.read.set(self.read.get() + buf.len() as u64);
        Ok(())
    }
}

/// An inflated entry: in memory while small, else in a temporary file (see [`Archive::inflate`]).
pub enum Inflated {
    Memory(Vec<u8>),
    File(FileSource),
}

impl Source for Inflated {
    fn len(&self) -> u64 {
        match self {
            Inflated::Memory(v) => Source::len(v),
            Inflated::File(f) => f.len(),
        }
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        match self {
            Inflated::Memory(v) => v.read_at(offset, buf),
            Inflated::File(f) => f.read_at(offset, buf),
        }
    }
}

/// `len` bytes of another source from `start` (a stored entry, read in place).
pub struct Window<'a> {
    inner: &'a dyn Source,
    start: u64,
    len: u64,
}

impl Source for Window<'_> {
    fn len(&self) -> u64 {
        self.len
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        if offset.checked_add(buf.len() as u64).is_none_or(|end| end > self.len) {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        self.inner.read_at(self.start + offset, buf)
    }
}

/// A source read sequentially (what the inflater pulls from).
struct Cursor<'a> {
    src: &'a dyn Source,
    pos: u64,
    end: u64,
}

impl Read for Cursor<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (buf.len() as u64).min(self.end - self.pos).min(64 << 10) as usize;
        if n == 0 {
            return Ok(0);
        }
        self.src.read_at(self.pos, &mut buf[..n])?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// One entry of the central directory.
#[derive(Debug, Clone)]
pub struct Entry {
    pub name: Vec<u8>,
    pub method: u16,
    pub flags: u16,
    pub compressed: u64,
    /// What the entry claims to inflate to (checked as it inflates).
    pub size: u64,
    local: u64,
}

impl Entry {
    pub fn name_lossy(&self) -> String {
        String::from_utf8_lossy(&self.name).into_owned()
    }
    pub fn is_stored(&self) -> bool {
        self.method == 0
    }
}

/// An archive's kept entries, read from its central directory.
pub struct Archive<'a> {
    src: &'a dyn Source,
    /// Bytes in front of the archive proper (added to every offset it states).
    base: u64,
    pub entries: Vec<Entry>,
    /// Entries the central directory lists.
    pub total: u64,
    /// Bytes of central directory read.
    pub cd_size: u64,
}

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes"))
}
fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes"))
}

fn read_vec(src: &dyn Source, offset: u64, len: u64, what: &str) -> Result<Vec<u8>, ZipError> {
    let mut buf = vec![0u8; usize::try_from(len).map_err(|_| ZipError::Malformed(format!("{what} too large")))?];
    src.read_at(offset, &mut buf).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => {
            ZipError::Malformed(format!("{what} at offset {offset} ({len} bytes) lies beyond the end of the archive"))
        }
        _ => ZipError::Io(e),
    })?;
    Ok(buf)
}

impl<'a> Archive<'a> {
    /// Reads the central directory of `src`, keeping the entries whose names `keep` accepts.
    pub fn open(src: &'a dyn Source, keep: &mut dyn FnMut(&[u8]) -> bool) -> Result<Archive<'a>, ZipError> {
        let len = src.len();
        if len < 22 {
            return Err(ZipError::NotZip(format!("{len} bytes, shorter than an end record")));
        }
        // The end record is in the last 22 + 65,535 (its longest comment) bytes.
        let tail_len = len.min(22 + 0xffff);
        let tail = read_vec(src, len - tail_len, tail_len, "end of archive")?;
        let at = (0..=tail.len() - 22)
            .rev()
            .find(|&i| u32_at(&tail, i) == EOCD && i + 22 + u16_at(&tail, i + 20) as usize <= tail.len())
            .ok_or_else(|| ZipError::NotZip("no end of central directory record".into()))?;
        let eocd_pos = len - tail_len + at as u64;
        let e = &tail[at..];
        let (disk, cd_disk) = (u16_at(e, 4), u16_at(e, 6));
        let mut total = u64::from(u16_at(e, 10));
        let mut cd_size = u64::from(u32_at(e, 12));
        let mut cd_offset = u64::from(u32_at(e, 16));
        let mut cd_end = eocd_pos;
        if total == 0xffff || cd_size == 0xffff_ffff || cd_offset == 0xffff_ffff {
            // Zip64: a locator right before the end record points at the zip64 end record.
            if eocd_pos >= 20 {
                let loc = read_vec(src, eocd_pos - 20, 20, "zip64 locator")?;
                if u32_at(&loc, 0) == LOCATOR64 {
                    let stated = u64_at(&loc, 8);
                    // As with the plain end record, the zip64 record is found where it must be: right before the locator.
                    let pos =
                        eocd_pos.checked_sub(20 + 56).ok_or_else(|| ZipError::Malformed("zip64 end record".into()))?;
                    let r = read_vec(src, pos, 56, "zip64 end record")?;
                    if u32_at(&r, 0) != EOCD64 {
                        return Err(ZipError::Malformed(format!("no zip64 end record (stated at {stated})")));
                    }
                    total = u64_at(&r, 32);
                    cd_size = u64_at(&r, 40);
                    cd_offset = u64_at(&r, 48);
                    cd_end = pos;
                }
            }
        }
        if disk != 0 || cd_disk != 0 {
            return Err(ZipError::Unsupported("multi-disk zip archives are not read".into()));
        }
        if cd_size > MAX_CD_BYTES {
            return Err(ZipError::TooLarge { what: "central directory".into(), size: cd_size, limit: MAX_CD_BYTES });
        }
        let cd_start = cd_end.checked_sub(cd_size).ok_or_else(|| {
            ZipError::Malformed(format!("central directory of {cd_size} bytes before the start of the archive"))
        })?;
        // Offsets are stated from the archive's start; anything in front shifts them all.
        let base = cd_start.checked_sub(cd_offset).ok_or_else(|| {
            ZipError::Malformed(format!("central directory stated at {cd_offset}, past where it can be ({cd_start})"))
        })?;
        if total > cd_size / 46 {
            return Err(ZipError::Malformed(format!(
                "{total} entries cannot fit in a {cd_size}-byte central directory"
            )));
        }
        let cd = read_vec(src, cd_start, cd_size, "central directory")?;
        let mut entries = Vec::new();
        let mut p = 0usize;
        let mut seen = 0u64;
        while p + 46 <= cd.len() && u32_at(&cd, p) == CENTRAL {
            let (nlen, xlen, clen) =
                (u16_at(&cd, p + 28) as usize, u16_at(&cd, p + 30) as usize, u16_at(&cd, p + 32) as usize);
            let end = p + 46 + nlen + xlen + clen;
            if end > cd.len() {
                return Err(ZipError::Malformed(format!("central directory entry {seen} runs past its end")));
            }
            seen += 1;
            let name = &cd[p + 46..p + 46 + nlen];
            if keep(name) {
                if entries.len() >= MAX_KEPT {
                    return Err(ZipError::TooLarge {
                        what: "entries of interest".into(),
                        size: entries.len() as u64 + 1,
                        limit: MAX_KEPT as u64,
                    });
                }
                let mut e = Entry {
                    name: name.to_vec(),
                    flags: u16_at(&cd, p + 8),
                    method: u16_at(&cd, p + 10),
                    compressed: u64::from(u32_at(&cd, p + 20)),
                    size: u64::from(u32_at(&cd, p + 24)),
                    local: u64::from(u32_at(&cd, p + 42)),
                };
                zip64_extra(&cd[p + 46 + nlen..p + 46 + nlen + xlen], &mut e);
                entries.push(e);
            }
            p = end;
        }
        if seen != total && total != 0xffff {
            return Err(ZipError::Malformed(format!(
                "central directory holds {seen} entries, its end record says {total}"
            )));
        }
        Ok(Archive { src, base, entries, total: seen, cd_size })
    }

    /// Where an entry's data lies: (offset in the source, compressed length).
    fn data(&self, e: &Entry) -> Result<(u64, u64), ZipError> {
        let at = self.base.checked_add(e.local).ok_or_else(|| ZipError::Malformed("local header offset".into()))?;
        let h = read_vec(self.src, at, 30, "local header")?;
        if u32_at(&h, 0) != LOCAL {
            return Err(ZipError::Malformed(format!("no local header for {} at {at}", e.name_lossy())));
        }
        let start = at + 30 + u64::from(u16_at(&h, 26)) + u64::from(u16_at(&h, 28));
        if start.checked_add(e.compressed).is_none_or(|end| end > self.src.len()) {
            return Err(ZipError::Malformed(format!(
                "{}: {} bytes of data at {start} lie beyond the end of the archive",
                e.name_lossy(),
                e.compressed
            )));
        }
        Ok((start, e.compressed))
    }

    fn check(e: &Entry) -> Result<(), ZipError> {
        if e.flags & 1 != 0 {
            return Err(ZipError::Unsupported(format!("{}: encrypted", e.name_lossy())));
        }
        if e.method != 0 && e.method != 8 {
            return Err(ZipError::Unsupported(format!(
                "{}: compression method {} is not read",
                e.name_lossy(),
                e.method
            )));
        }
        Ok(())
    }

    /// A stored entry's bytes, in place (no copy): for a nested archive.
    pub fn window(&self, e: &Entry) -> Result<Window<'a>, ZipError> {
        Self::check(e)?;
        let (start, len) = self.data(e)?;
        if !e.is_stored() {
            return Err(ZipError::Unsupported(format!("{} is compressed", e.name_lossy())));
        }
        Ok(Window { inner: self.src, start, len })
    }

    /// The entry's contents as a reader, at most `cap + 1` bytes of them.
    fn reader(&self, e: &Entry, cap: u64) -> Result<Box<dyn Read + 'a>, ZipError> {
        Self::check(e)?;
        let (start, len) = self.data(e)?;
        let raw = Cursor { src: self.src, pos: start, end: start + len };
        Ok(if e.is_stored() {
            Box::new(raw.take(cap + 1))
        } else {
            Box::new(flate2::read::DeflateDecoder::new(raw).take(cap + 1))
        })
    }

    /// Reads (inflating) a whole entry of at most `cap` bytes; `inflated`
    /// counts what came out, also when the entry is refused for its size.
    pub fn read(&self, e: &Entry, cap: u64, inflated: &mut u64) -> Result<Vec<u8>, ZipError> {
        if e.size > cap {
            return Err(ZipError::TooLarge { what: e.name_lossy(), size: e.size, limit: cap });
        }
        // Room for what the entry says it holds (at most `cap`), so a truthful entry costs its size, not
        // the doubling growth to it; a lying one grows as it inflates, still within `cap`.
        let mut out = Vec::with_capacity(e.size as usize + 1);
        let r = self.reader(e, cap)?.read_to_end(&mut out);
        *inflated += out.len() as u64;
        r.map_err(|err| ZipError::Malformed(format!("{}: {err}", e.name_lossy())))?;
        if out.len() as u64 > cap {
            return Err(ZipError::TooLarge {
                what: format!("{} inflated", e.name_lossy()),
                size: out.len() as u64,
                limit: cap,
            });
        }
        Ok(out)
    }

    /// Inflates a whole entry of at most `cap` bytes to read it as an
    /// archive: in memory up to `in_memory` bytes, past that into the file
    /// `spill` gives (an unlinked temporary file), so what a nested archive
    /// holds in memory does not grow with its size. `inflated` counts what
    /// came out, also when the entry is refused for its size.
    pub fn inflate(
        &self,
        e: &Entry,
        cap: u64,
        in_memory: u64,
        inflated: &mut u64,
        spill: &mut dyn FnMut() -> std::io::Result<std::fs::File>,
    ) -> Result<Inflated, ZipError> {
        use std::io::Write;
        if e.size > cap {
            return Err(ZipError::TooLarge { what: e.name_lossy(), size: e.size, limit: cap });
        }
        let mut r = self.reader(e, cap)?;
        let malformed = |err: std::io::Error| ZipError::Malformed(format!("{}: {err}", e.name_lossy()));
        // Room for what the entry says it holds when that fits in memory (a lie grows as it inflates).
        let mut mem = Vec::with_capacity(e.size.min(in_memory) as usize + 1);
        let mut file: Option<std::fs::File> = None;
        let (mut chunk, mut total) = (vec![0u8; 64 << 10], 0u64);
        loop {
            let n = r.read(&mut chunk).map_err(malformed)?;
            if n == 0 {
                break;
            }
            *inflated += n as u64;
            total += n as u64;
            if total > cap {
                return Err(ZipError::TooLarge {
                    what: format!("{} inflated", e.name_lossy()),
                    size: total,
                    limit: cap,
                });
            }
            match &mut file {
                None if total <= in_memory => mem.extend_from_slice(&chunk[..n]),
                None => {
                    let mut f = spill().map_err(|err| {
                        ZipError::Io(std::io::Error::new(
                            err.kind(),
                            format!("{}: no temporary file to inflate it into: {err}", e.name_lossy()),
                        ))
                    })?;
                    f.write_all(&mem).and_then(|()| f.write_all(&chunk[..n]))?;
                    mem = Vec::new();
                    file = Some(f);
                }
                Some(f) => f.write_all(&chunk[..n])?,
            }
        }
        Ok(match file {
            Some(f) => Inflated::File(FileSource::new(f, total)),
            None => Inflated::Memory(mem),
        })
    }

    /// Reads an entry up to the first blank line (a manifest's main
    /// section), at most `cap` bytes; the flag says it was cut there.
    pub fn read_head(&self, e: &Entry, cap: u64, inflated: &mut u64) -> Result<(Vec<u8>, bool), ZipError> {
        let mut r = self.reader(e, cap)?;
        let mut out = Vec::new();
        let mut chunk = [0u8; 8192];
        loop {
            let n = r.read(&mut chunk).map_err(|err| ZipError::Malformed(format!("{}: {err}", e.name_lossy())))?;
            if n == 0 {
                return Ok((out, false));
            }
            *inflated += n as u64;
            let from = out.len().saturating_sub(3);
            out.extend_from_slice(&chunk[..n]);
            if let Some(i) = blank_line(&out[from..]) {
                out.truncate(from + i);
                return Ok((out, false));
            }
            if out.len() as u64 > cap {
                out.truncate(cap as usize);
                return Ok((out, true));
            }
        }
    }
}

/// Where the first blank line ends the text before it, if it does.
fn blank_line(b: &[u8]) -> Option<usize> {
    (0..b.len())
        .find(|&i| b[i..].starts_with(b"\n\n") || b[i..].starts_with(b"\r\n\r\n") || b[i..].starts_with(b"\r\r"))
}

/// Sizes and offset that the central directory stores as 0xffffffff are in the zip64 extra field, in this order.
fn zip64_extra(mut x: &[u8], e: &mut Entry) {
    while x.len() >= 4 {
        let (id, n) = (u16_at(x, 0), u16_at(x, 2) as usize);
        let Some(body) = x.get(4..4 + n) else { return };
        if id == 1 {
            let mut f = body.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")));
            for v in [&mut e.size, &mut e.compressed, &mut e.local] {
                if *v == 0xffff_ffff {
                    match f.next() {
                        Some(x) => *v = x,
                        None => return,
                    }
                }
            }
            return;
        }
        x = &x[4 + n..];
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use std::io::Write;

    /// A zip archive made here: (name, data, deflate?) entries, with `prefix` bytes in front.
    pub fn build(entries: &[(&str, &[u8], bool)], prefix: &[u8]) -> Vec<u8> {
        let mut out = prefix.to_vec();
        let mut cd = Vec::new();
        for (name, data, deflate) in entries {
            let body = if *deflate {
                let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
                z.write_all(data).unwrap();
                z.finish().unwrap()
            } else {
                data.to_vec()
            };
            let local = (out.len() - prefix.len()) as u32;
            let method: u16 = if *deflate { 8 } else { 0 };
            let mut h = Vec::new();
            h.extend(LOCAL.to_le_bytes());
            h.extend([20, 0, 0, 0]);
            h.extend(method.to_le_bytes());
            h.extend([0; 8]); // time, date, crc
            h.extend((body.len() as u32).to_le_bytes());
            h.extend((data.len() as u32).to_le_bytes());
            h.extend((name.len() as u16).to_le_bytes());
            h.extend([0, 0]);
            out.extend(&h);
            out.extend(name.as_bytes());
            out.extend(&body);
            cd.extend(CENTRAL.to_le_bytes());
            cd.extend([20, 0, 20, 0, 0, 0]);
            cd.extend(method.to_le_bytes());
            cd.extend([0; 8]);
            cd.extend((body.len() as u32).to_le_bytes());
            cd.extend((data.len() as u32).to_le_bytes());
            cd.extend((name.len() as u16).to_le_bytes());
            cd.extend([0; 12]);
            cd.extend(local.to_le_bytes());
            cd.extend(name.as_bytes());
        }
        let cd_offset = (out.len() - prefix.len()) as u32;
        out.extend(&cd);
        out.extend(EOCD.to_le_bytes());
        out.extend([0; 4]);
        out.extend((entries.len() as u16).to_le_bytes());
        out.extend((entries.len() as u16).to_le_bytes());
        out.extend((cd.len() as u32).to_le_bytes());
        out.extend(cd_offset.to_le_bytes());
        out.extend([0, 0]);
        out
    }

    #[test]
    fn stored_and_deflated_entries_behind_a_launch_script() {
        let z = build(
            &[
                ("META-INF/MANIFEST.MF", b"Manifest-Version: 1.0\r\nA: b\r\n\r\nName: x\r\n", true),
                ("lib/a.jar", b"inner", false),
            ],
            b"#!/bin/sh\nexec java -jar \"$0\"\n",
        );
        let a = Archive::open(&z, &mut |_| true).unwrap();
        assert_eq!(a.total, 2);
        let mut n = 0;
        assert_eq!(a.read(&a.entries[1], 100, &mut n).unwrap(), b"inner");
        let (head, cut) = a.read_head(&a.entries[0], 100, &mut n).unwrap();
        assert_eq!((head.as_slice(), cut), (&b"Manifest-Version: 1.0\r\nA: b"[..], false));
        let w = a.window(&a.entries[1]).unwrap();
        let mut b = [0u8; 5];
        w.read_at(0, &mut b).unwrap();
        assert_eq!(&b, b"inner");
        assert!(w.read_at(1, &mut b).is_err());
    }

    #[test]
    fn lies_are_errors_and_bombs_stop_at_the_cap() {
        let zeros = vec![0u8; 10 << 20];
        let z = build(&[("bomb", &zeros, true)], b"");
        assert!(z.len() < 100 << 10);
        let a = Archive::open(&z, &mut |_| true).unwrap();
        let mut n = 0;
        let err = a.read(&a.entries[0], 1 << 20, &mut n).unwrap_err();
        assert!(err.to_string().contains("exceeds the limit"), "{err}");
        // The header may lie about the size: the inflated bytes are what counts.
        let mut lying = a.entries[0].clone();
        lying.size = 10;
        let err = a.read(&lying, 1 << 20, &mut n).unwrap_err();
        assert!(err.to_string().contains("bomb inflated"), "{err}");
        assert!(n <= (2 << 20) + 2, "{n}");
        // Central directory offsets and counts that cannot be.
        let mut bad = z.clone();
        let e = bad.len() - 22;
        bad[e + 10..e + 12].copy_from_slice(&60000u16.to_le_bytes());
        assert!(Archive::open(&bad, &mut |_| true).err().unwrap().to_string().contains("cannot fit"));
        let mut bad = z.clone();
        bad[e + 12..e + 16].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(Archive::open(&bad, &mut |_| true), Err(ZipError::Malformed(_) | ZipError::TooLarge { .. })));
        let mut bad = z.clone();
        bad[e + 16..e + 20].copy_from_slice(&(z.len() as u32).to_le_bytes());
        assert!(Archive::open(&bad, &mut |_| true).err().unwrap().to_string().contains("past where it can be"));
        assert!(matches!(Archive::open(&b"PK\x05\x06".to_vec(), &mut |_| true), Err(ZipError::NotZip(_))));
        assert!(matches!(Archive::open(&vec![0u8; 100], &mut |_| true), Err(ZipError::NotZip(_))));
    }

    /// A nested archive past its memory allowance is inflated into the
    /// spill file and reads the same; one with no file to go to says why.
    #[test]
    fn inflate_spills_past_its_memory_allowance() {
        let data: Vec<u8> = (0..300_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let zip = build(&[("big.jar", &data, true), ("small.jar", b"tiny", true)], b"");
        let a = Archive::open(&zip, &mut |_| true).unwrap();
        let (big, small) = (&a.entries[0], &a.entries[1]);
        let mut inflated = 0;
        let tmp = tempfile::tempdir().unwrap();
        let spilled = std::cell::Cell::new(0);
        let mut spill = || {
            spilled.set(spilled.get() + 1);
            tempfile::tempfile_in(tmp.path())
        };
        let got = a.inflate(big, 1 << 30, 64 << 10, &mut inflated, &mut spill).unwrap();
        assert!(matches!(got, Inflated::File(_)));
        let mut back = vec![0u8; data.len()];
        got.read_at(0, &mut back).unwrap();
        assert_eq!(back, data);
        assert!(
            matches!(a.inflate(small, 1 << 30, 64 << 10, &mut inflated, &mut spill), Ok(Inflated::Memory(v)) if v == b"tiny")
        );
        assert_eq!(spilled.get(), 1, "only the big one");
        assert_eq!(inflated, data.len() as u64 + 4);
        let err = a
            .inflate(big, 1 << 30, 64 << 10, &mut inflated, &mut || Err(std::io::ErrorKind::ReadOnlyFilesystem.into()))
            .err()
            .unwrap();
        assert!(err.to_string().contains("big.jar: no temporary file"), "{err}");
        let err = a.inflate(big, 100_000, 64 << 10, &mut inflated, &mut spill).err().unwrap();
        assert!(err.to_string().contains("exceeds the limit of 100000"), "{err}");
    }
}
