//! One rpm header blob, as an rpm database stores it, into an [`RpmPackage`].
//!
//! Format (rpm's `doc/manual/format.md`, "Header structure", and
//! `lib/header.c`): a big-endian u32 count of index entries `il`, a u32 data
//! length `dl`, then `il` 16-byte entries (tag, type, offset, count; all
//! big-endian u32), then `dl` bytes of data that the entries point into. A
//! database blob has no lead and no 8-byte header magic in front.
//!
//! The blob comes from a filesystem we do not trust: every offset and count is
//! checked against the bytes actually present before it is used, nothing is
//! allocated in proportion to a count that has not been checked, and every
//! problem is an `Err` naming the entry and what was wrong with it.

use super::RpmPackage;

/// Most index entries accepted in one header (rpm itself allows 0xffff).
pub const MAX_INDEX_ENTRIES: u32 = 100_000;
/// Most data bytes accepted in one header (rpm itself allows 256 MiB).
pub const MAX_DATA_LEN: u32 = 256 << 20;
/// A file list may expand to at most this many times the data length (plus
/// [`FILE_LIST_SLACK`]) once directory names are joined to base names.
const FILE_LIST_EXPANSION: usize = 8;
const FILE_LIST_SLACK: usize = 1 << 20;
/// …and to no more than this in all (with [`PATH_COST`] per path): about
/// 500,000 paths, 25 times a kernel-devel's. One header's list is held
/// whole while its package's rows are made.
pub const MAX_FILE_LIST: usize = 32 << 20;
/// What one owned path costs in memory beyond its bytes (a `String`, and a
/// slot in the lists it passes through), charged even for an empty one.
pub const PATH_COST: usize = 32;

const ENTRY_LEN: usize = 16;

/// Header tags this module reads.
pub(crate) mod tag {
    pub const NAME: u32 = 1000;
    pub const VERSION: u32 = 1001;
    pub const RELEASE: u32 = 1002;
    pub const EPOCH: u32 = 1003;
    pub const INSTALLTIME: u32 = 1008;
    pub const SIZE: u32 = 1009;
    pub const VENDOR: u32 = 1011;
    pub const LICENSE: u32 = 1014;
    pub const ARCH: u32 = 1022;
    pub const OLDFILENAMES: u32 = 1027;
    pub const SOURCERPM: u32 = 1044;
    pub const DIRINDEXES: u32 = 1116;
    pub const BASENAMES: u32 = 1117;
    pub const DIRNAMES: u32 = 1118;
    pub const LONGSIZE: u32 = 5009;
}

/// Header data types (rpm's `rpmTagType`).
pub(crate) mod ty {
    pub const CHAR: u32 = 1;
    pub const INT8: u32 = 2;
    pub const INT16: u32 = 3;
    pub const INT32: u32 = 4;
    pub const INT64: u32 = 5;
    pub const STRING: u32 = 6;
    pub const BIN: u32 = 7;
    pub const STRING_ARRAY: u32 = 8;
    pub const I18NSTRING: u32 = 9;
}

/// Tags looked up after the one pass over the index; a later entry for the
/// same tag replaces an earlier one, as rpm's "dribble" entries do.
const WANTED: [u32; 15] = [
    tag::NAME,
    tag::VERSION,
    tag::RELEASE,
    tag::EPOCH,
    tag::INSTALLTIME,
    tag::SIZE,
    tag::VENDOR,
    tag::LICENSE,
    tag::ARCH,
    tag::OLDFILENAMES,
    tag::SOURCERPM,
    tag::DIRINDEXES,
    tag::BASENAMES,
    tag::DIRNAMES,
    tag::LONGSIZE,
];

/// One index entry, already checked to point inside the data.
#[derive(Debug, Clone, Copy)]
struct Entry {
    index: usize,
    tag: u32,
    ty: u32,
    offset: usize,
    count: usize,
}

impl Entry {
    fn fail(&self, what: impl std::fmt::Display) -> String {
        format!("header index entry {} (tag {}): {what}", self.index, self.tag)
    }
}

/// A header whose index has been checked; values are read lazily.
struct Header<'a> {
    data: &'a [u8],
    found: [Option<Entry>; WANTED.len()],
}

/// Parses one header blob as stored in an rpm database (no lead, no magic).
pub fn parse_header(blob: &[u8]) -> Result<RpmPackage, String> {
    let h = Header::parse(blob)?;
    let files = h.files()?;
    let size = match h.int(tag::LONGSIZE)? {
        Some(n) => Some(n),
        None => h.int(tag::SIZE)?,
    };
    Ok(RpmPackage {
        name: h.required_string(tag::NAME, "NAME")?,
        epoch: h.int(tag::EPOCH)?,
        version: h.required_string(tag::VERSION, "VERSION")?,
        release: h.required_string(tag::RELEASE, "RELEASE")?,
        arch: h.string(tag::ARCH)?,
        source_rpm: h.string(tag::SOURCERPM)?,
        license: h.string(tag::LICENSE)?,
        vendor: h.string(tag::VENDOR)?,
        size,
        install_time: h.int(tag::INSTALLTIME)?,
        files,
    })
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    let bytes = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

fn be64(b: &[u8], at: usize) -> Option<u64> {
    let hi = be32(b, at)?;
    let lo = be32(b, at.checked_add(4)?)?;
    Some(u64::from(hi) << 32 | u64::from(lo))
}

/// Bytes per element of a fixed-size type; None for strings.
fn fixed_size(ty: u32) -> Option<usize> {
    match ty {
        ty::CHAR | ty::INT8 | ty::BIN => Some(1),
        ty::INT16 => Some(2),
        ty::INT32 => Some(4),
        ty::INT64 => Some(8),
        _ => None,
    }
}

impl<'a> Header<'a> {
    fn parse(blob: &'a [u8]) -> Result<Self, String> {
        let (Some(il), Some(dl)) = (be32(blob, 0), be32(blob, 4)) else {
            return Err(format!("header blob is {} bytes, shorter than its 8-byte preamble", blob.len()));
        };
        if il == 0 {
            return Err("header has no index entries".into());
        }
        if il > MAX_INDEX_ENTRIES {
            return Err(format!("header claims {il} index entries, more than the limit of {MAX_INDEX_ENTRIES}"));
        }
        if dl > MAX_DATA_LEN {
            return Err(format!("header claims {dl} data bytes, more than the limit of {MAX_DATA_LEN}"));
        }
        // Both fit in usize comfortably after the caps above.
        let (il, dl) = (il as usize, dl as usize);
        let index_end = 8 + il * ENTRY_LEN;
        let need = index_end + dl;
        if blob.len() < need {
            return Err(format!(
                "header blob is {} bytes but its {il} entries and {dl} data bytes need {need}",
                blob.len()
            ));
        }
        let index = &blob[8..index_end];
        let data = &blob[index_end..need];
        let mut found = [None; WANTED.len()];
        for (i, raw) in index.chunks_exact(ENTRY_LEN).enumerate() {
            let e = Self::entry(i, raw, data.len())?;
            if let Some(slot) = WANTED.iter().position(|&t| t == e.tag) {
                found[slot] = Some(e);
            }
        }
        Ok(Header { data, found })
    }

    /// Decodes and checks one 16-byte index entry against the data length.
    fn entry(index: usize, raw: &[u8], dl: usize) -> Result<Entry, String> {
        let field = |at| be32(raw, at).unwrap_or(0);
        let (tag, ty, offset, count) = (field(0), field(4), field(8), field(12));
        let e = Entry { index, tag, ty, offset: offset as usize, count: count as usize };
        if ty > ty::I18NSTRING {
            return Err(e.fail(format_args!("unknown data type {ty}")));
        }
        if e.offset > dl {
            return Err(e.fail(format_args!("offset {offset} beyond data length {dl}")));
        }
        if let Some(size) = fixed_size(ty) {
            let span = e.count.checked_mul(size).and_then(|n| n.checked_add(e.offset));
            if span.is_none_or(|end| end > dl) {
                return Err(e.fail(format_args!(
                    "{count} values of {size} bytes at offset {offset} run past data length {dl}"
                )));
            }
        }
        Ok(e)
    }

    fn get(&self, tag: u32) -> Option<Entry> {
        let slot = WANTED.iter().position(|&t| t == tag)?;
        self.found[slot]
    }

    /// The NUL-terminated string starting at `at`, without its NUL.
    fn cstr(&self, e: &Entry, at: usize) -> Result<&'a [u8], String> {
        let rest = self.data.get(at..).unwrap_or_default();
        match rest.iter().position(|&b| b == 0) {
            Some(n) => Ok(&rest[..n]),
            None => Err(e.fail(format_args!("string at data offset {at} is not NUL-terminated"))),
        }
    }

    /// `e.count` consecutive NUL-terminated strings; the count is checked
    /// against the bytes left (each string takes at least one) before any
    /// allocation.
    fn cstrs(&self, e: &Entry) -> Result<Vec<&'a [u8]>, String> {
        let available = self.data.len() - e.offset;
        if e.count > available {
            return Err(e.fail(format_args!(
                "{} strings cannot fit in the {available} bytes after offset {}",
                e.count, e.offset
            )));
        }
        let mut out = Vec::with_capacity(e.count);
        let mut at = e.offset;
        for _ in 0..e.count {
            let s = self.cstr(e, at)?;
            at += s.len() + 1;
            out.push(s);
        }
        Ok(out)
    }

    /// A single string: STRING, or the first of an I18NSTRING or STRING_ARRAY.
    fn string(&self, tag: u32) -> Result<Option<String>, String> {
        let Some(e) = self.get(tag) else { return Ok(None) };
        match e.ty {
            ty::STRING | ty::I18NSTRING | ty::STRING_ARRAY if e.count >= 1 => {
                Ok(Some(String::from_utf8_lossy(self.cstr(&e, e.offset)?).into_owned()))
            }
            ty::STRING | ty::I18NSTRING | ty::STRING_ARRAY => Err(e.fail("string with a count of 0")),
            other => Err(e.fail(format_args!("expected a string, found data type {other}"))),
        }
    }

    fn required_string(&self, tag: u32, name: &str) -> Result<String, String> {
        self.string(tag)?.ok_or_else(|| format!("header has no {name} (tag {tag})"))
    }

    fn string_array(&self, tag: u32) -> Result<Option<Vec<&'a [u8]>>, String> {
        let Some(e) = self.get(tag) else { return Ok(None) };
        match e.ty {
            ty::STRING_ARRAY => self.cstrs(&e).map(Some),
            other => Err(e.fail(format_args!("expected a string array, found data type {other}"))),
        }
    }

    /// The first value of an INT32 (read unsigned, as rpm prints it) or INT64.
    fn int(&self, tag: u32) -> Result<Option<i64>, String> {
        let Some(e) = self.get(tag) else { return Ok(None) };
        if e.count == 0 {
            return Err(e.fail("number with a count of 0"));
        }
        // Entry::entry checked that `count` values of this type fit.
        match e.ty {
            ty::INT32 => Ok(be32(self.data, e.offset).map(i64::from)),
            ty::INT64 => match be64(self.data, e.offset) {
                Some(v) => i64::try_from(v).map(Some).map_err(|_| e.fail(format_args!("value {v} out of range"))),
                None => Ok(None),
            },
            other => Err(e.fail(format_args!("expected INT32 or INT64, found data type {other}"))),
        }
    }

    /// Every value of an INT32 entry (already checked to fit in the data).
    fn int32_array(&self, tag: u32) -> Result<Option<Vec<u32>>, String> {
        let Some(e) = self.get(tag) else { return Ok(None) };
        if e.ty != ty::INT32 {
            return Err(e.fail(format_args!("expected INT32, found data type {}", e.ty)));
        }
        let bytes = &self.data[e.offset..e.offset + e.count * 4];
        Ok(Some(bytes.chunks_exact(4).map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]])).collect()))
    }

    /// Owned paths: DIRNAMES[DIRINDEXES[i]] + BASENAMES[i], else OLDFILENAMES.
    /// Each path is charged its bytes plus [`PATH_COST`] against the header's
    /// expansion limit, and the number of names is checked before any list
    /// of them is made: empty names cost memory too.
    fn files(&self) -> Result<Vec<String>, String> {
        let limit =
            self.data.len().saturating_mul(FILE_LIST_EXPANSION).saturating_add(FILE_LIST_SLACK).min(MAX_FILE_LIST);
        let refuse = |total: usize| {
            Err(format!(
                "file list would expand to {total} bytes from {} data bytes, more than the {limit} allowed; refusing",
                self.data.len()
            ))
        };
        // Counts that cannot fit in the data are refused as such by `string_array` below.
        let names = |tag: u32| self.get(tag).filter(|e| e.count <= self.data.len() - e.offset).map_or(0, |e| e.count);
        let least = names(tag::BASENAMES).max(names(tag::OLDFILENAMES)).saturating_mul(PATH_COST);
        if least > limit {
            return refuse(least);
        }
        let Some(base) = self.string_array(tag::BASENAMES)? else {
            let old = self.string_array(tag::OLDFILENAMES)?.unwrap_or_default();
            let total = old.iter().fold(0usize, |t, p| t.saturating_add(p.len() + PATH_COST));
            if total > limit {
                return refuse(total);
            }
            return Ok(old.iter().map(|p| String::from_utf8_lossy(p).into_owned()).collect());
        };
        let dirs = self.string_array(tag::DIRNAMES)?.ok_or("header has BASENAMES but no DIRNAMES")?;
        let idx = self.int32_array(tag::DIRINDEXES)?.ok_or("header has BASENAMES but no DIRINDEXES")?;
        if idx.len() != base.len() {
            return Err(format!("header has {} BASENAMES but {} DIRINDEXES", base.len(), idx.len()));
        }
        let mut total = 0usize;
        for (i, &d) in idx.iter().enumerate() {
            let dir = dirs
                .get(d as usize)
                .ok_or_else(|| format!("file {i}: DIRINDEXES value {d} beyond the {} DIRNAMES", dirs.len()))?;
            total = total.saturating_add(dir.len() + base[i].len() + PATH_COST);
        }
        if total > limit {
            return refuse(total);
        }
        Ok(idx
            .iter()
            .zip(&base)
            .map(|(&d, b)| {
                let mut path = dirs[d as usize].to_vec();
                path.extend_from_slice(b);
                String::from_utf8_lossy(&path).into_owned()
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::rpm::testutil::HeaderWriter;

    fn base() -> HeaderWriter {
        HeaderWriter::new().string(tag::NAME, "bash").string(tag::VERSION, "5.1.8").string(tag::RELEASE, "9.el9")
    }

    fn pkg(name: &str, version: &str, release: &str) -> RpmPackage {
        RpmPackage { name: name.into(), version: version.into(), release: release.into(), ..Default::default() }
    }

    #[test]
    fn every_field_of_a_full_header() {
        let blob = HeaderWriter::new()
            .bin(63, &[0; 16])
            .string(tag::NAME, "bash")
            .string(tag::VERSION, "5.1.8")
            .string(tag::RELEASE, "9.el9")
            .int32(tag::EPOCH, &[3])
            .string(tag::ARCH, "x86_64")
            .string(tag::SOURCERPM, "bash-5.1.8-9.el9.src.rpm")
            .string(tag::LICENSE, "GPLv3+")
            .string(tag::VENDOR, "Rocky Enterprise Software Foundation")
            .int32(tag::SIZE, &[7_738_634])
            .int32(tag::INSTALLTIME, &[1_700_000_000])
            .int32(tag::DIRINDEXES, &[0, 1, 1])
            .strings(tag::BASENAMES, &["bash", "bash.1.gz", "sh.1.gz"])
            .strings(tag::DIRNAMES, &["/usr/bin/", "/usr/share/man/man1/"])
            .build();
        let want = RpmPackage {
            epoch: Some(3),
            arch: Some("x86_64".into()),
            source_rpm: Some("bash-5.1.8-9.el9.src.rpm".into()),
            license: Some("GPLv3+".into()),
            vendor: Some("Rocky Enterprise Software Foundation".into()),
            size: Some(7_738_634),
            install_time: Some(1_700_000_000),
            files: vec![
                "/usr/bin/bash".into(),
                "/usr/share/man/man1/bash.1.gz".into(),
                "/usr/share/man/man1/sh.1.gz".into(),
            ],
            ..pkg("bash", "5.1.8", "9.el9")
        };
        assert_eq!(parse_header(&blob), Ok(want));
    }

    /// Well-formed headers and the package each must give.
    #[test]
    fn valid_cases() {
        let cases: Vec<(&str, Vec<u8>, RpmPackage)> = vec![
            ("minimal: no epoch is None", base().build(), pkg("bash", "5.1.8", "9.el9")),
            (
                "epoch 0 is Some(0), not None",
                base().int32(tag::EPOCH, &[0]).build(),
                RpmPackage { epoch: Some(0), ..pkg("bash", "5.1.8", "9.el9") },
            ),
            (
                "epoch 2",
                base().int32(tag::EPOCH, &[2]).build(),
                RpmPackage { epoch: Some(2), ..pkg("bash", "5.1.8", "9.el9") },
            ),
            (
                "i18n strings take the first translation",
                HeaderWriter::new()
                    .i18n(tag::NAME, &["zsh", "zsh-de"])
                    .string(tag::VERSION, "5.8")
                    .string(tag::RELEASE, "1")
                    .i18n(tag::LICENSE, &["MIT", "MIT-fr"])
                    .build(),
                RpmPackage { license: Some("MIT".into()), ..pkg("zsh", "5.8", "1") },
            ),
            (
                "LONGSIZE is preferred to SIZE",
                base().int32(tag::SIZE, &[5]).int64(tag::LONGSIZE, &[6_000_000_000]).build(),
                RpmPackage { size: Some(6_000_000_000), ..pkg("bash", "5.1.8", "9.el9") },
            ),
            (
                "INT32 SIZE above 2^31 is read unsigned",
                base().int32(tag::SIZE, &[3_000_000_000]).build(),
                RpmPackage { size: Some(3_000_000_000), ..pkg("bash", "5.1.8", "9.el9") },
            ),
            (
                "OLDFILENAMES when there are no BASENAMES",
                base().strings(tag::OLDFILENAMES, &["/bin/a", "/etc/b"]).build(),
                RpmPackage { files: vec!["/bin/a".into(), "/etc/b".into()], ..pkg("bash", "5.1.8", "9.el9") },
            ),
            (
                "BASENAMES win over OLDFILENAMES",
                base()
                    .strings(tag::OLDFILENAMES, &["/old"])
                    .int32(tag::DIRINDEXES, &[0])
                    .strings(tag::BASENAMES, &["new"])
                    .strings(tag::DIRNAMES, &["/"])
                    .build(),
                RpmPackage { files: vec!["/new".into()], ..pkg("bash", "5.1.8", "9.el9") },
            ),
            (
                "a later entry for a tag replaces an earlier one",
                base().string(tag::VERSION, "5.2").build(),
                pkg("bash", "5.2", "9.el9"),
            ),
            (
                "tags of other types are ignored",
                base()
                    .raw_entry(1004, ty::CHAR, 0, 1)
                    .raw_entry(1005, ty::INT16, 0, 1)
                    .raw_entry(5000, ty::INT8, 0, 3)
                    .raw_entry(62, ty::BIN, 0, 16)
                    .raw_data(&[0; 16])
                    .build(),
                pkg("bash", "5.1.8", "9.el9"),
            ),
            (
                "bytes after the data are ignored",
                {
                    let mut b = base().build();
                    b.extend_from_slice(b"trailing");
                    b
                },
                pkg("bash", "5.1.8", "9.el9"),
            ),
            (
                "empty strings are kept",
                HeaderWriter::new()
                    .string(tag::NAME, "x")
                    .string(tag::VERSION, "")
                    .string(tag::RELEASE, "")
                    .string(tag::VENDOR, "")
                    .build(),
                RpmPackage { vendor: Some(String::new()), ..pkg("x", "", "") },
            ),
        ];
        for (what, blob, want) in cases {
            assert_eq!(parse_header(&blob), Ok(want), "{what}");
        }
    }

    /// Hostile or broken headers and a piece of the error each must give.
    #[test]
    fn hostile_cases_are_errors_naming_the_problem() {
        let good = base().build();
        let unterminated = {
            let w = HeaderWriter::new().raw_entry(tag::NAME, ty::STRING, 0, 1).raw_data(b"no-nul-here");
            w.build()
        };
        let long_dir = "d".repeat(10_000);
        let bomb = base()
            .strings(tag::DIRNAMES, &[long_dir.as_str()])
            .strings(tag::BASENAMES, &vec![""; 20_000])
            .int32(tag::DIRINDEXES, &vec![0; 20_000])
            .build();
        // Zero bytes, each an empty name: no path bytes, but a String each (the review's 3 MB header made 157 MB).
        let empty_names = base().strings(tag::OLDFILENAMES, &vec![""; 200_000]).build();
        let w = base();
        let dl = w.data_len() as u32;
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            ("empty", Vec::new(), "shorter than its 8-byte preamble"),
            ("7 bytes", vec![0, 0, 0, 1, 0, 0, 0], "shorter than its 8-byte preamble"),
            ("no entries", HeaderWriter::new().build(), "no index entries"),
            ("huge il", w.build_claiming(u32::MAX, dl), "index entries, more than the limit"),
            ("huge dl", w.build_claiming(3, u32::MAX), "data bytes, more than the limit"),
            ("il larger than the index present", w.build_claiming(50, dl), "need"),
            ("dl larger than the data present", w.build_claiming(3, dl + 1), "need"),
            ("truncated by one byte", good[..good.len() - 1].to_vec(), "need"),
            (
                "offset past the end",
                base().raw_entry(tag::EPOCH, ty::INT32, 9999, 1).build(),
                "header index entry 3 (tag 1003): offset 9999 beyond data length",
            ),
            (
                "INT32 count running past the data",
                base().raw_entry(tag::SIZE, ty::INT32, 0, 0x4000_0000).build(),
                "1073741824 values of 4 bytes at offset 0 run past",
            ),
            (
                "INT64 count that overflows 32 bits",
                base().raw_entry(tag::LONGSIZE, ty::INT64, 0, u32::MAX).build(),
                "run past data length",
            ),
            ("unterminated string", unterminated, "not NUL-terminated"),
            (
                "string array count beyond the bytes present",
                base().raw_entry(tag::BASENAMES, ty::STRING_ARRAY, 0, 1_000_000).build(),
                "1000000 strings cannot fit",
            ),
            (
                "string array whose last string is cut",
                base().raw_entry(tag::OLDFILENAMES, ty::STRING_ARRAY, 0, 4).build(),
                "not NUL-terminated",
            ),
            ("unknown data type", base().raw_entry(1234, 42, 0, 1).build(), "unknown data type 42"),
            (
                "NAME as INT32",
                HeaderWriter::new().int32(tag::NAME, &[7]).build(),
                "expected a string, found data type 4",
            ),
            ("EPOCH as STRING", base().string(tag::EPOCH, "1").build(), "expected INT32 or INT64, found data type 6"),
            ("EPOCH with count 0", base().raw_entry(tag::EPOCH, ty::INT32, 0, 0).build(), "count of 0"),
            ("NAME with count 0", base().raw_entry(tag::NAME, ty::STRING, 0, 0).build(), "count of 0"),
            ("LONGSIZE beyond i64", base().int64(tag::LONGSIZE, &[u64::MAX]).build(), "out of range"),
            (
                "DIRINDEXES as STRING_ARRAY",
                base()
                    .strings(tag::DIRINDEXES, &["x"])
                    .strings(tag::BASENAMES, &["a"])
                    .strings(tag::DIRNAMES, &["/"])
                    .build(),
                "expected INT32",
            ),
            (
                "no NAME",
                HeaderWriter::new().string(tag::VERSION, "1").string(tag::RELEASE, "1").build(),
                "no NAME (tag 1000)",
            ),
            ("no RELEASE", HeaderWriter::new().string(tag::NAME, "a").string(tag::VERSION, "1").build(), "no RELEASE"),
            (
                "DIRINDEXES pointing past DIRNAMES",
                base()
                    .int32(tag::DIRINDEXES, &[0, 5])
                    .strings(tag::BASENAMES, &["a", "b"])
                    .strings(tag::DIRNAMES, &["/"])
                    .build(),
                "file 1: DIRINDEXES value 5 beyond the 1 DIRNAMES",
            ),
            (
                "fewer DIRINDEXES than BASENAMES",
                base()
                    .int32(tag::DIRINDEXES, &[0])
                    .strings(tag::BASENAMES, &["a", "b"])
                    .strings(tag::DIRNAMES, &["/"])
                    .build(),
                "2 BASENAMES but 1 DIRINDEXES",
            ),
            (
                "BASENAMES without DIRNAMES",
                base().int32(tag::DIRINDEXES, &[0]).strings(tag::BASENAMES, &["a"]).build(),
                "no DIRNAMES",
            ),
            ("a file list that would explode in memory", bomb, "file list would expand"),
            ("200,000 empty OLDFILENAMES (each still a String)", empty_names, "file list would expand"),
        ];
        for (what, blob, needle) in cases {
            match parse_header(&blob) {
                Ok(p) => panic!("{what}: parsed as {p:?}, wanted an error containing {needle:?}"),
                Err(e) => assert!(e.contains(needle), "{what}: error {e:?} does not contain {needle:?}"),
            }
        }
    }

    /// Every truncation and every single-byte corruption of a real-shaped
    /// header must come back as Ok or Err, never a panic.
    #[test]
    fn truncations_and_corruptions_never_panic() {
        let blob = crate::collectors::rpm::testutil::package_blob(
            "openssl-libs",
            Some(1),
            "3.0.7",
            &["/usr/lib64/libssl.so.3", "/usr/lib64/libcrypto.so.3", "/etc/pki/tls/openssl.cnf"],
        );
        assert!(parse_header(&blob).is_ok());
        for n in 0..blob.len() {
            let _ = parse_header(&blob[..n]);
        }
        for i in 0..blob.len() {
            for v in [0x00, 0x01, 0x7f, 0x80, 0xff] {
                let mut b = blob.clone();
                b[i] = v;
                let _ = parse_header(&b);
            }
        }
    }
}
