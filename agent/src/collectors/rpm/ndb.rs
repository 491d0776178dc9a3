//! rpm's NDB backend (rpm 4.16+, `lib/backend/ndb/rpmpkg.c`): `Packages.db`.
//!
//! Layout, all integers little-endian u32:
//! - a 32-byte file header: magic `RpmP`, version 0, generation, number of
//!   4096-byte slot pages, next package index;
//! - slot pages (the header occupies the first two slots of page 0): 16-byte
//!   slots `Slot`, package index, offset and length of its blob in 16-byte
//!   blocks (offset 0 = free slot);
//! - blobs, each filling whole blocks: a 16-byte head (`BlbS`, package index,
//!   timestamp, blob length), the header blob, zero padding, and a 12-byte tail
//!   (adler32 of everything before the tail, blob length, `BlbE`).
//!
//! Slots that point outside the file, overlap another slot's blocks or lead to
//! a damaged blob become error strings; the other packages are still read.
//! Overlaps are refused, so the total work is bounded by the file size. The
//! file is read from a [`Source`] a slot page and a blob at a time, never
//! whole; used slots beyond [`MAX_SLOTS`] and problems beyond [`super::MAX_ERRORS`]
//! are counted, not kept.

use super::{Each, Errors, RpmPackage, Source, Work, check_blob_len, collect};

const FILE_MAGIC: &[u8; 4] = b"RpmP";
const SLOT_MAGIC: &[u8; 4] = b"Slot";
const BLOB_HEAD_MAGIC: &[u8; 4] = b"BlbS";
const BLOB_TAIL_MAGIC: &[u8; 4] = b"BlbE";
const FILE_HEADER_LEN: usize = 32;
const SLOT_LEN: usize = 16;
const BLOCK: usize = 16;
const PAGE: usize = 4096;
const BLOB_HEAD_LEN: usize = 16;
const BLOB_TAIL_LEN: usize = 12;
/// Used slots kept (rpm numbers packages in one database from 1; a large
/// distribution has a few thousand).
const MAX_SLOTS: usize = 1 << 20;

/// One used slot: where a package's blob lives.
#[derive(Debug, Clone, Copy)]
struct Slot {
    number: usize,
    pkgidx: u32,
    blkoff: usize,
    blkcnt: usize,
}

/// Reads every package from the bytes of an NDB `Packages.db` file.
pub fn read_ndb(bytes: &[u8]) -> (Vec<RpmPackage>, Vec<String>) {
    read_ndb_within(bytes, &mut Work::new(bytes.len(), None))
}

/// [`read_ndb`] within `work`'s budget and deadline.
pub fn read_ndb_within(bytes: &[u8], work: &mut Work) -> (Vec<RpmPackage>, Vec<String>) {
    collect(|each| read_ndb_from(&bytes, work, each))
}

/// [`read_ndb_within`], reading slot pages and blobs from `src` as they are
/// needed; each package goes to `each` (keyed by its package index) in the
/// order its blob lies in the file, and the problems come back.
pub fn read_ndb_from(src: &dyn Source, work: &mut Work, each: Each) -> Vec<String> {
    let mut errors = Errors::new("Packages.db");
    let slot_pages = match file_header(src) {
        Ok(n) => n,
        Err(e) => return vec![format!("Packages.db: {e}")],
    };
    let mut slots = match read_slots(src, slot_pages, work, &mut errors) {
        Ok(s) => s,
        Err(stop) => {
            errors.push(|| format!("Packages.db: {stop}"));
            return errors.finish();
        }
    };
    slots.sort_by_key(|s| s.blkoff);
    let mut end = slot_pages * PAGE / BLOCK;
    let mut last: Option<Slot> = None;
    let mut area = Vec::new();
    for s in slots {
        if let Some(prev) = last.filter(|_| s.blkoff < end) {
            errors.push(|| {
                format!(
                    "Packages.db: slot {} (package {}) overlaps the blob of slot {} (package {}); skipped",
                    s.number, s.pkgidx, prev.number, prev.pkgidx
                )
            });
            continue;
        }
        end = s.blkoff + s.blkcnt;
        last = Some(s);
        let parsed = match blob(src, &s, &mut area) {
            Ok(b) => match work.parse(b) {
                Ok(r) => r,
                Err(stop) => {
                    errors.push(|| format!("Packages.db: {stop}"));
                    break;
                }
            },
            Err(e) => Err(e),
        };
        match parsed {
            Ok(p) => each(i64::from(s.pkgidx), p),
            Err(e) => errors.push(|| format!("Packages.db: package {} (slot {}): {e}", s.pkgidx, s.number)),
        }
    }
    errors.finish()
}

fn le32(b: &[u8], at: usize) -> u32 {
    match b.get(at..at + 4) {
        Some(x) => u32::from_le_bytes([x[0], x[1], x[2], x[3]]),
        None => 0,
    }
}

/// Checks the file header and returns how many slot pages the file holds.
fn file_header(src: &dyn Source) -> Result<usize, String> {
    let size = src.size();
    let mut bytes = [0u8; FILE_HEADER_LEN];
    if size < FILE_HEADER_LEN as u64 || src.read_at(0, &mut bytes).is_err() || &bytes[..4] != FILE_MAGIC {
        return Err(format!("not an NDB package database ({size} bytes, no \"RpmP\" magic)"));
    }
    let version = le32(&bytes, 4);
    if version != 0 {
        return Err(format!("unsupported NDB version {version}"));
    }
    let pages = le32(&bytes, 12) as usize;
    if pages == 0 {
        return Err("file header says there are no slot pages".into());
    }
    let whole = usize::try_from(size / PAGE as u64).unwrap_or(usize::MAX);
    if pages > whole {
        return Err(format!("file header claims {pages} slot pages but the file holds {whole} whole pages"));
    }
    Ok(pages)
}

/// Every used slot that points at blocks inside the file after the slot
/// pages; anything else is an error string. Err: the deadline passed.
fn read_slots(src: &dyn Source, pages: usize, work: &Work, errors: &mut Errors) -> Result<Vec<Slot>, String> {
    let file_blocks = usize::try_from(src.size() / BLOCK as u64).unwrap_or(usize::MAX);
    let first_blob_block = pages * PAGE / BLOCK;
    let mut slots: Vec<Slot> = Vec::new();
    let mut owners = std::collections::HashMap::new();
    let mut page = vec![0u8; PAGE];
    let mut over = 0usize;
    for number in FILE_HEADER_LEN / SLOT_LEN..pages * PAGE / SLOT_LEN {
        let at = number * SLOT_LEN;
        if number == FILE_HEADER_LEN / SLOT_LEN || at.is_multiple_of(PAGE) {
            work.check_time()?;
            let start = at - at % PAGE;
            if let Err(e) = src.read_at(start as u64, &mut page) {
                errors.push(|| format!("Packages.db: reading slot page {}: {e}", start / PAGE));
                break;
            }
        }
        let raw = &page[at % PAGE..at % PAGE + SLOT_LEN];
        if &raw[..4] != SLOT_MAGIC {
            errors.push(|| format!("Packages.db: slot {number} has no \"Slot\" magic"));
            continue;
        }
        let (pkgidx, blkoff, blkcnt) = (le32(raw, 4), le32(raw, 8) as usize, le32(raw, 12) as usize);
        if blkoff == 0 {
            continue;
        }
        let problem = if pkgidx == 0 {
            Some("package index 0".to_string())
        } else if blkcnt == 0 {
            Some("a blob of 0 blocks".to_string())
        } else if blkoff < first_blob_block {
            Some(format!("blob block {blkoff} inside the slot pages"))
        } else if blkoff.saturating_add(blkcnt) > file_blocks {
            Some(format!("blob blocks {blkoff}+{blkcnt} beyond the file's {file_blocks} blocks"))
        } else {
            None
        };
        match problem {
            Some(p) => errors.push(|| format!("Packages.db: slot {number} (package {pkgidx}): {p}")),
            None if slots.len() >= MAX_SLOTS => over += 1,
            None => match owners.insert(pkgidx, number) {
                Some(first) => errors.push(|| {
                    format!("Packages.db: slot {number} (package {pkgidx}): package already in slot {first}; skipped")
                }),
                None => slots.push(Slot { number, pkgidx, blkoff, blkcnt }),
            },
        }
    }
    if over > 0 {
        errors.push(|| format!("Packages.db: {over} used slots beyond the first {MAX_SLOTS} not read"));
    }
    Ok(slots)
}

/// The header blob inside a slot's blocks (read into `area`), after checking
/// head, tail and checksum.
fn blob<'a>(src: &dyn Source, s: &Slot, area: &'a mut Vec<u8>) -> Result<&'a [u8], String> {
    check_blob_len(s.blkcnt.saturating_mul(BLOCK).saturating_sub(BLOB_HEAD_LEN + BLOB_TAIL_LEN))?;
    area.clear();
    area.resize(s.blkcnt * BLOCK, 0);
    src.read_at((s.blkoff * BLOCK) as u64, area)
        .map_err(|e| format!("reading blocks {}+{}: {e}", s.blkoff, s.blkcnt))?;
    let area = &area[..];
    if area.len() < BLOB_HEAD_LEN + BLOB_TAIL_LEN {
        return Err(format!("{} blocks are too few for a blob", s.blkcnt));
    }
    if &area[..4] != BLOB_HEAD_MAGIC {
        return Err(format!("no \"BlbS\" blob magic at block {}", s.blkoff));
    }
    let owner = le32(area, 4);
    if owner != s.pkgidx {
        return Err(format!("blob belongs to package {owner}, not {}", s.pkgidx));
    }
    let len = le32(area, 12) as usize;
    let need = len.saturating_add(BLOB_HEAD_LEN + BLOB_TAIL_LEN).div_ceil(BLOCK);
    if need != s.blkcnt {
        return Err(format!("blob length {len} needs {need} blocks but the slot has {}", s.blkcnt));
    }
    let tail_at = area.len() - BLOB_TAIL_LEN;
    let tail = &area[tail_at..];
    if &tail[8..] != BLOB_TAIL_MAGIC {
        return Err("no \"BlbE\" blob tail magic".into());
    }
    if le32(tail, 4) as usize != len {
        return Err(format!("blob tail says length {} but head says {len}", le32(tail, 4)));
    }
    let (stored, computed) = (le32(tail, 0), adler32(&area[..tail_at]));
    if stored != computed {
        return Err(format!("blob checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"));
    }
    Ok(&area[BLOB_HEAD_LEN..BLOB_HEAD_LEN + len])
}

/// Adler-32 (RFC 1950) as NDB uses it, starting from 1.
pub(crate) fn adler32(data: &[u8]) -> u32 {
    const MOD: u32 = 65521;
    // 5552 bytes is the most that can be summed before s2 could overflow u32.
    let (mut a, mut b) = (1u32, 0u32);
    for chunk in data.chunks(5552) {
        for &x in chunk {
            a += u32::from(x);
            b += a;
        }
        a %= MOD;
        b %= MOD;
    }
    (b << 16) | a
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::rpm::testutil::package_blob;

    /// Lays out a `Packages.db` from the format description in this file's
    /// doc: header, slot pages, then each blob at the next free block.
    struct NdbWriter {
        slot_pages: usize,
        /// (slot number, package index, header blob)
        packages: Vec<(usize, u32, Vec<u8>)>,
    }

    /// Where the writer put a package's blob, for tests that damage it.
    struct Placed {
        slot_at: usize,
        blob_at: usize,
        blkcnt: usize,
    }

    impl NdbWriter {
        fn new(slot_pages: usize) -> Self {
            NdbWriter { slot_pages, packages: Vec::new() }
        }

        fn package(mut self, slot: usize, pkgidx: u32, blob: Vec<u8>) -> Self {
            self.packages.push((slot, pkgidx, blob));
            self
        }

        fn build(&self) -> (Vec<u8>, Vec<Placed>) {
            let mut out = vec![0u8; self.slot_pages * PAGE];
            out[..4].copy_from_slice(FILE_MAGIC);
            out[8..12].copy_from_slice(&7u32.to_le_bytes());
            out[12..16].copy_from_slice(&(self.slot_pages as u32).to_le_bytes());
            out[16..20].copy_from_slice(&100u32.to_le_bytes());
            for slot in 2..self.slot_pages * PAGE / SLOT_LEN {
                out[slot * SLOT_LEN..slot * SLOT_LEN + 4].copy_from_slice(SLOT_MAGIC);
            }
            let mut placed = Vec::new();
            for (slot, pkgidx, blob) in &self.packages {
                let blob_at = out.len();
                let blkcnt = (BLOB_HEAD_LEN + blob.len() + BLOB_TAIL_LEN).div_ceil(BLOCK);
                out.extend_from_slice(BLOB_HEAD_MAGIC);
                out.extend_from_slice(&pkgidx.to_le_bytes());
                out.extend_from_slice(&1_700_000_000u32.to_le_bytes());
                out.extend_from_slice(&(blob.len() as u32).to_le_bytes());
                out.extend_from_slice(blob);
                out.resize(blob_at + blkcnt * BLOCK - BLOB_TAIL_LEN, 0);
                let sum = adler32(&out[blob_at..]);
                out.extend_from_slice(&sum.to_le_bytes());
                out.extend_from_slice(&(blob.len() as u32).to_le_bytes());
                out.extend_from_slice(BLOB_TAIL_MAGIC);
                let slot_at = slot * SLOT_LEN;
                out[slot_at + 4..slot_at + 8].copy_from_slice(&pkgidx.to_le_bytes());
                out[slot_at + 8..slot_at + 12].copy_from_slice(&((blob_at / BLOCK) as u32).to_le_bytes());
                out[slot_at + 12..slot_at + 16].copy_from_slice(&(blkcnt as u32).to_le_bytes());
                placed.push(Placed { slot_at, blob_at, blkcnt });
            }
            (out, placed)
        }
    }

    fn three() -> NdbWriter {
        NdbWriter::new(1)
            .package(2, 3, package_blob("zlib", None, "1.2.11", &["/usr/lib64/libz.so.1"]))
            .package(3, 1, package_blob("bash", Some(0), "5.1.8", &["/usr/bin/bash"]))
            .package(9, 2, package_blob("glibc", Some(2), "2.34", &["/usr/lib64/libc.so.6", "/etc/ld.so.conf"]))
    }

    fn names(p: &[RpmPackage]) -> Vec<&str> {
        p.iter().map(|p| p.name.as_str()).collect()
    }

    /// A blob larger than any real header (a sparse file's zeros cost
    /// nothing to ship) is refused before it is read into memory.
    #[test]
    fn a_blob_larger_than_any_real_header_is_refused_unread() {
        let (bytes, _) = three().package(12, 4, vec![0; crate::collectors::rpm::MAX_BLOB + 1]).build();
        let (pkgs, errs) = read_ndb(&bytes);
        assert_eq!(names(&pkgs), ["bash", "glibc", "zlib"]);
        assert!(errs.len() == 1 && errs[0].contains("package 4") && errs[0].contains("larger than"), "{errs:?}");
    }

    fn set32(b: &mut [u8], at: usize, v: u32) {
        b[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }

    #[test]
    fn adler32_matches_the_rfc_1950_reference_values() {
        assert_eq!(adler32(b""), 1);
        assert_eq!(adler32(b"Wikipedia"), 0x11e6_0398);
        // Long enough to need the periodic reduction.
        let long = vec![0xffu8; 100_000];
        let (mut a, mut b) = (1u64, 0u64);
        for &x in &long {
            a = (a + u64::from(x)) % 65521;
            b = (b + a) % 65521;
        }
        assert_eq!(adler32(&long), ((b << 16) | a) as u32);
    }

    #[test]
    fn reads_every_package_in_package_index_order() {
        let (bytes, _) = three().build();
        let (pkgs, errs) = read_ndb(&bytes);
        assert_eq!(errs, Vec::<String>::new());
        assert_eq!(names(&pkgs), ["bash", "glibc", "zlib"]);
        assert_eq!(pkgs[0].epoch, Some(0));
        assert_eq!(pkgs[1].epoch, Some(2));
        assert_eq!(pkgs[2].epoch, None);
        assert_eq!(pkgs[1].files, ["/usr/lib64/libc.so.6", "/etc/ld.so.conf"]);
    }

    #[test]
    fn slots_on_a_second_slot_page_are_read() {
        let (bytes, _) = NdbWriter::new(2)
            .package(300, 5, package_blob("second-page", None, "1", &[]))
            .package(4, 6, package_blob("first-page", None, "1", &[]))
            .build();
        let (pkgs, errs) = read_ndb(&bytes);
        assert_eq!((names(&pkgs), errs), (vec!["second-page", "first-page"], vec![]));
    }

    /// Each damage to one package's slot or blob is an error for it alone.
    #[test]
    fn a_damaged_blob_costs_only_its_package() {
        type Damage = fn(&mut Vec<u8>, &Placed);
        let cases: Vec<(&str, Damage, &str)> = vec![
            ("flipped byte inside the header", |b, p| b[p.blob_at + 40] ^= 1, "checksum mismatch"),
            ("flipped padding byte", |b, p| b[p.blob_at + p.blkcnt * BLOCK - 13] ^= 1, "checksum mismatch"),
            ("wrong stored checksum", |b, p| b[p.blob_at + p.blkcnt * BLOCK - 12] ^= 1, "checksum mismatch"),
            ("no head magic", |b, p| b[p.blob_at] = b'X', "no \"BlbS\" blob magic"),
            ("no tail magic", |b, p| b[p.blob_at + p.blkcnt * BLOCK - 1] = b'X', "no \"BlbE\""),
            ("blob of another package", |b, p| set32(b, p.blob_at + 4, 99), "belongs to package 99"),
            ("head length disagrees with blocks", |b, p| set32(b, p.blob_at + 12, 5000), "needs 315 blocks"),
            (
                "tail length disagrees with head",
                |b, p| set32(b, p.blob_at + p.blkcnt * BLOCK - 8, 1),
                "tail says length 1",
            ),
            ("slot past the end of the file", |b, p| set32(b, p.slot_at + 8, 1 << 30), "beyond the file's"),
            ("slot inside the slot pages", |b, p| set32(b, p.slot_at + 8, 3), "inside the slot pages"),
            ("slot with package index 0", |b, p| set32(b, p.slot_at + 4, 0), "package index 0"),
            ("slot with 0 blocks", |b, p| set32(b, p.slot_at + 12, 0), "0 blocks"),
            ("slot without magic", |b, p| b[p.slot_at] = b'x', "has no \"Slot\" magic"),
        ];
        for (what, damage, needle) in cases {
            let (mut bytes, placed) = three().build();
            // Damage glibc, the last blob (package 2, slot 9).
            damage(&mut bytes, &placed[2]);
            let (pkgs, errs) = read_ndb(&bytes);
            assert_eq!(names(&pkgs), ["bash", "zlib"], "{what}");
            assert_eq!(errs.len(), 1, "{what}: {errs:?}");
            assert!(errs[0].contains(needle), "{what}: {:?} does not contain {needle:?}", errs[0]);
        }
    }

    #[test]
    fn a_package_in_two_slots_is_read_once() {
        let (bytes, _) = NdbWriter::new(1)
            .package(2, 4, package_blob("first", None, "1", &[]))
            .package(3, 4, package_blob("second", None, "1", &[]))
            .build();
        let (pkgs, errs) = read_ndb(&bytes);
        assert_eq!(names(&pkgs), ["first"]);
        assert!(errs.len() == 1 && errs[0].contains("slot 3 (package 4): package already in slot 2"), "{errs:?}");
    }

    #[test]
    fn overlapping_slots_are_refused() {
        let (mut bytes, placed) = three().build();
        // Point bash's slot at zlib's blocks (zlib comes first in the file).
        let zlib_block = (placed[0].blob_at / BLOCK) as u32;
        set32(&mut bytes, placed[1].slot_at + 8, zlib_block);
        set32(&mut bytes, placed[1].slot_at + 12, placed[0].blkcnt as u32);
        let (pkgs, errs) = read_ndb(&bytes);
        assert_eq!(pkgs.len(), 2, "{errs:?}");
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(errs[0].contains("overlaps the blob of slot"), "{errs:?}");
    }

    #[test]
    fn unreadable_files_give_one_clear_error() {
        let (good, _) = three().build();
        let mut version = good.clone();
        set32(&mut version, 4, 1);
        let mut no_pages = good.clone();
        set32(&mut no_pages, 12, 0);
        let mut many_pages = good.clone();
        set32(&mut many_pages, 12, u32::MAX);
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            ("empty", Vec::new(), "no \"RpmP\" magic"),
            ("sqlite instead", b"SQLite format 3\0".repeat(100), "no \"RpmP\" magic"),
            ("version 1", version, "unsupported NDB version 1"),
            ("no slot pages", no_pages, "no slot pages"),
            ("absurd slot page count", many_pages, "claims 4294967295 slot pages"),
            ("truncated inside the slot page", good[..1000].to_vec(), "claims 1 slot pages but the file holds 0"),
        ];
        for (what, bytes, needle) in cases {
            let (pkgs, errs) = read_ndb(&bytes);
            assert!(pkgs.is_empty(), "{what}");
            assert_eq!(errs.len(), 1, "{what}: {errs:?}");
            assert!(errs[0].contains(needle), "{what}: {:?} does not contain {needle:?}", errs[0]);
        }
    }

    #[test]
    fn truncated_after_the_slots_loses_only_the_cut_packages() {
        let (good, placed) = three().build();
        let (pkgs, errs) = read_ndb(&good[..placed[2].blob_at + 20]);
        assert_eq!(names(&pkgs), ["bash", "zlib"]);
        assert!(errs.len() == 1 && errs[0].contains("beyond the file's"), "{errs:?}");
    }

    #[test]
    fn truncations_and_corruptions_never_panic() {
        let (bytes, _) = three().build();
        for n in (0..bytes.len()).step_by(7) {
            let _ = read_ndb(&bytes[..n]);
        }
        for i in (0..bytes.len()).step_by(3) {
            for v in [0x00, 0xff] {
                let mut b = bytes.clone();
                b[i] = v;
                let _ = read_ndb(&b);
            }
        }
    }
}
