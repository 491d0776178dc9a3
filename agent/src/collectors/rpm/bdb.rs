//! BerkeleyDB hash databases, as rpm up to 4.15 wrote `Packages` (CentOS 7
//! and 8, RHEL up to 8, SLES up to 15 SP2, Amazon Linux 2).
//!
//! Layout (Berkeley DB's `dbinc/db_page.h`, and rpm's own read-only reader
//! `lib/backend/bdb_ro.c`), integers in the byte order of the machine that
//! wrote the file, which the metadata magic reveals:
//! - page 0 is the hash metadata: magic 0x061561 at byte 12, version at 16,
//!   page size at 20, encryption algorithm at 24, last page number at 32;
//! - every page starts with a 26-byte header: page number at 8, next page at
//!   16, item count (u16) at 20, free-area offset (u16) at 22, type at 25;
//! - hash pages (type 13, or 2 before BDB 4.6) list u16 item offsets after the
//!   header; items pair up as key, value. An item runs from its offset to the
//!   previous item's offset (or the page end). Its first byte says what it is:
//!   1 = the bytes follow inline, 3 = an off-page item of 12 bytes (type, 3
//!   unused, first overflow page, total length);
//! - overflow pages (type 7) hold the next piece of a long value: its length is
//!   the header's free-area offset, the bytes follow the header, and the next
//!   page number continues the chain.
//!
//! Keys are 4-byte package numbers (0, rpm's old counter record, is skipped);
//! values are header blobs. Every page is scanned rather than walking the hash
//! buckets, so no bucket arithmetic can be turned against us; overflow chains
//! are checked for cycles and all chain walking shares one page budget
//! proportional to the file, so the work stays linear in its size. Pages are
//! read one at a time from a [`Source`]: a file is never held whole, only the
//! header blob being reassembled.

use super::{Each, Errors, RpmPackage, Source, Work, check_blob_len, collect};

const HASH_MAGIC: u32 = 0x0006_1561;
const BTREE_MAGIC: u32 = 0x0005_3162;
const META_LEN: usize = 512;
const PAGE_HEADER: usize = 26;
const P_HASH_UNSORTED: u8 = 2;
const P_OVERFLOW: u8 = 7;
const P_HASH: u8 = 13;
const H_KEYDATA: u8 = 1;
const H_DUPLICATE: u8 = 2;
const H_OFFPAGE: u8 = 3;
const H_OFFDUP: u8 = 4;
const OFFPAGE_LEN: usize = 12;

/// The file, split into pages, read in the byte order of its metadata.
struct Db<'a> {
    src: &'a dyn Source,
    big_endian: bool,
    page_size: usize,
    pages: usize,
}

/// Overflow pages any number of chains may still visit.
struct Budget {
    pages_left: usize,
    /// Set once `pages_left` ran out: the scan stops there.
    spent: bool,
    /// Chain number that last visited each page, to spot cycles.
    seen_by: Vec<usize>,
    chain: usize,
}

/// Reads every package from the bytes of a BerkeleyDB hash `Packages` file.
pub fn read_bdb(bytes: &[u8]) -> (Vec<RpmPackage>, Vec<String>) {
    read_bdb_within(bytes, &mut Work::new(bytes.len(), None))
}

/// [`read_bdb`] within `work`'s budget and deadline.
pub fn read_bdb_within(bytes: &[u8], work: &mut Work) -> (Vec<RpmPackage>, Vec<String>) {
    collect(|each| read_bdb_from(&bytes, work, each))
}

/// [`read_bdb_within`], reading pages from `src` as they are needed; each
/// package goes to `each` (keyed by its record key) in page order, and the
/// problems come back.
pub fn read_bdb_from(src: &dyn Source, work: &mut Work, each: Each) -> Vec<String> {
    let mut errors = Errors::new("Packages (BerkeleyDB)");
    let db = match Db::open(src, &mut errors) {
        Ok(db) => db,
        Err(e) => return vec![format!("Packages (BerkeleyDB): {e}")],
    };
    let mut budget = Budget { pages_left: 2 * db.pages + 16, spent: false, seen_by: vec![0; db.pages], chain: 0 };
    let mut page = vec![0; db.page_size];
    for pgno in 1..db.pages {
        // Per page, not only per header parsed: pages of nothing but bad items parse no header.
        let read = work.check_time().and_then(|()| db.hash_page(pgno, &mut page, &mut budget, work, each, &mut errors));
        if let Err(e) = read {
            errors.push(|| format!("Packages (BerkeleyDB): {e}"));
            break;
        }
    }
    errors.finish()
}

impl<'a> Db<'a> {
    fn open(src: &'a dyn Source, errors: &mut Errors) -> Result<Self, String> {
        let len = src.size();
        if len < META_LEN as u64 {
            return Err(format!("{len} bytes is shorter than the 512-byte metadata page"));
        }
        let mut meta = [0u8; META_LEN];
        src.read_at(0, &mut meta).map_err(|e| format!("reading the metadata page: {e}"))?;
        let bytes = &meta[..];
        let magic_at = |big| Self::u32_in(bytes, 12, big);
        let big_endian = match (magic_at(false), magic_at(true)) {
            (HASH_MAGIC, _) => false,
            (_, HASH_MAGIC) => true,
            (BTREE_MAGIC, _) | (_, BTREE_MAGIC) => return Err("a BerkeleyDB btree, not a hash database".into()),
            (m, _) => return Err(format!("not a BerkeleyDB hash database (magic {m:#010x})")),
        };
        let db = Db { src, big_endian, page_size: 0, pages: 0 };
        let version = db.u32(bytes, 16);
        if !(8..=10).contains(&version) {
            return Err(format!("unsupported hash version {version}"));
        }
        let page_size = db.u32(bytes, 20) as usize;
        if !(512..=65536).contains(&page_size) || !page_size.is_power_of_two() {
            return Err(format!("bad page size {page_size}"));
        }
        if bytes[24] != 0 {
            return Err(format!("encrypted (algorithm {}); cannot read", bytes[24]));
        }
        let claimed = (db.u32(bytes, 32) as usize).saturating_add(1);
        let present = usize::try_from(len / page_size as u64).unwrap_or(usize::MAX);
        if present < claimed {
            errors.push(|| {
                format!(
                    "Packages (BerkeleyDB): metadata says {claimed} pages but the file holds {present}; reading those"
                )
            });
        }
        Ok(Db { page_size, pages: claimed.min(present), ..db })
    }

    fn u32_in(b: &[u8], at: usize, big_endian: bool) -> u32 {
        let Some(x) = b.get(at..at + 4) else { return 0 };
        let x = [x[0], x[1], x[2], x[3]];
        if big_endian { u32::from_be_bytes(x) } else { u32::from_le_bytes(x) }
    }

    fn u32(&self, b: &[u8], at: usize) -> u32 {
        Self::u32_in(b, at, self.big_endian)
    }

    fn u16(&self, b: &[u8], at: usize) -> usize {
        let Some(x) = b.get(at..at + 2) else { return 0 };
        let x = [x[0], x[1]];
        usize::from(if self.big_endian { u16::from_be_bytes(x) } else { u16::from_le_bytes(x) })
    }

    /// Reads page `pgno` (which must be below `self.pages`) into `buf` and
    /// returns its type byte.
    fn page(&self, pgno: usize, buf: &mut [u8]) -> Result<u8, String> {
        self.src.read_at((pgno * self.page_size) as u64, buf).map_err(|e| format!("reading page {pgno}: {e}"))?;
        Ok(buf[25])
    }

    /// Every key/value pair on one page, if it is a hash page. Problems with
    /// one item become errors; only an exhausted budget stops the scan.
    fn hash_page(
        &self,
        pgno: usize,
        page: &mut [u8],
        budget: &mut Budget,
        work: &mut Work,
        each: Each,
        errors: &mut Errors,
    ) -> Result<(), String> {
        let kind = self.page(pgno, page)?;
        let page = &*page;
        if kind != P_HASH && kind != P_HASH_UNSORTED {
            return Ok(());
        }
        let claims = self.u32(page, 8) as usize;
        if claims != pgno {
            errors.push(|| format!("Packages (BerkeleyDB): hash page {pgno} says it is page {claims}; skipped"));
            return Ok(());
        }
        let items = self.u16(page, 20);
        let offsets_end = PAGE_HEADER + 2 * items;
        if offsets_end > self.page_size {
            errors.push(|| format!("Packages (BerkeleyDB): hash page {pgno} claims {items} items, more than fit"));
            return Ok(());
        }
        for pair in 0..items / 2 {
            let at = |i: usize| format!("hash page {pgno} item {i}");
            let key = match self.item(page, 2 * pair, offsets_end) {
                Ok(k) => k,
                Err(e) => {
                    errors.push(|| format!("Packages (BerkeleyDB): {}: {e}", at(2 * pair)));
                    continue;
                }
            };
            let Some(key) = self.package_key(key, &at(2 * pair), errors) else { continue };
            let value = self.item(page, 2 * pair + 1, offsets_end).and_then(|v| self.value(v, budget));
            let parsed = match value {
                Ok(blob) => work.parse(&blob)?,
                Err(e) => Err(e),
            };
            match parsed {
                Ok(p) => each(i64::from(key), p),
                Err(e) if budget.spent => return Err(e),
                Err(e) => errors.push(|| format!("Packages (BerkeleyDB): package {key} ({}): {e}", at(2 * pair + 1))),
            }
        }
        Ok(())
    }

    /// The bytes of item `i` on a hash page, type byte included.
    fn item<'p>(&self, page: &'p [u8], i: usize, offsets_end: usize) -> Result<&'p [u8], String> {
        let start = self.u16(page, PAGE_HEADER + 2 * i);
        let end = if i == 0 { self.page_size } else { self.u16(page, PAGE_HEADER + 2 * (i - 1)) };
        if start < offsets_end || start >= end || end > self.page_size {
            return Err(format!("offset {start} (ending at {end}) is outside the item area"));
        }
        Ok(&page[start..end])
    }

    /// The package number of a key item, or None (with an error unless it is
    /// rpm's record 0).
    fn package_key(&self, item: &[u8], at: &str, errors: &mut Errors) -> Option<u32> {
        match item.split_first() {
            Some((&H_KEYDATA, k)) if k.len() == 4 => match self.u32(k, 0) {
                0 => None,
                n => Some(n),
            },
            Some((&H_KEYDATA, k)) => {
                errors.push(|| format!("Packages (BerkeleyDB): {at}: key of {} bytes, not a package number", k.len()));
                None
            }
            Some((t, _)) => {
                errors.push(|| format!("Packages (BerkeleyDB): {at}: key of item type {t}, not a package number"));
                None
            }
            None => None,
        }
    }

    /// A value item's bytes, following its overflow chain when off-page.
    fn value<'p>(&self, item: &'p [u8], budget: &mut Budget) -> Result<std::borrow::Cow<'p, [u8]>, String> {
        match item.split_first() {
            Some((&H_KEYDATA, v)) => Ok(v.into()),
            Some((&H_OFFPAGE, _)) if item.len() == OFFPAGE_LEN => {
                let first = self.u32(item, 4) as usize;
                let len = self.u32(item, 8) as usize;
                self.overflow(first, len, budget).map(Into::into)
            }
            Some((&H_OFFPAGE, _)) => Err(format!("off-page item of {} bytes, not 12", item.len())),
            Some((&(H_DUPLICATE | H_OFFDUP), _)) => Err("duplicate values, which rpm never writes".into()),
            Some((t, _)) => Err(format!("unknown item type {t}")),
            None => Err("empty item".into()),
        }
    }

    /// Reassembles `len` bytes from the overflow chain starting at `first`.
    fn overflow(&self, first: usize, len: usize, budget: &mut Budget) -> Result<Vec<u8>, String> {
        let room = self.pages.saturating_mul(self.page_size - PAGE_HEADER);
        if len == 0 || len > room {
            return Err(format!("overflow length {len} impossible in a file of {} pages", self.pages));
        }
        check_blob_len(len)?;
        budget.chain += 1;
        let mut out = Vec::with_capacity(len);
        let mut page = vec![0; self.page_size];
        let mut pgno = first;
        while out.len() < len {
            if pgno == 0 || pgno >= self.pages {
                return Err(format!("overflow chain from page {first} reaches page {pgno}, outside the file"));
            }
            if budget.pages_left == 0 {
                budget.spent = true;
                return Err(format!(
                    "overflow chains visited more than {} pages in a {}-page file; stopped reading",
                    2 * self.pages + 16,
                    self.pages
                ));
            }
            budget.pages_left -= 1;
            if budget.seen_by[pgno] == budget.chain {
                return Err(format!("overflow chain from page {first} loops back to page {pgno}"));
            }
            budget.seen_by[pgno] = budget.chain;
            let kind = self.page(pgno, &mut page)?;
            if kind != P_OVERFLOW {
                return Err(format!("overflow chain from page {first} reaches page {pgno} of type {kind}"));
            }
            if self.u32(&page, 8) as usize != pgno {
                return Err(format!("overflow page {pgno} says it is page {}", self.u32(&page, 8)));
            }
            let piece = self.u16(&page, 22);
            if piece == 0 || PAGE_HEADER + piece > self.page_size || out.len() + piece > len {
                return Err(format!("overflow page {pgno} holds {piece} bytes, which does not fit"));
            }
            out.extend_from_slice(&page[PAGE_HEADER..PAGE_HEADER + piece]);
            pgno = self.u32(&page, 16) as usize;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::rpm::testutil::package_blob;

    /// One item on a hash page, as the writer lays it out.
    enum Item {
        Inline(Vec<u8>),
        OffPage { first: u32, len: u32 },
        Raw(Vec<u8>),
    }

    /// Lays out a hash database from the layout in this file's doc: page 0
    /// metadata, then pages appended in order, in either byte order.
    struct BdbWriter {
        big_endian: bool,
        page_size: usize,
        pages: Vec<Vec<u8>>,
    }

    impl BdbWriter {
        fn new(big_endian: bool, page_size: usize) -> Self {
            BdbWriter { big_endian, page_size, pages: vec![vec![0; page_size]] }
        }

        fn u32b(&self, v: u32) -> [u8; 4] {
            if self.big_endian { v.to_be_bytes() } else { v.to_le_bytes() }
        }

        fn u16b(&self, v: u16) -> [u8; 2] {
            if self.big_endian { v.to_be_bytes() } else { v.to_le_bytes() }
        }

        fn set32(&mut self, pgno: usize, at: usize, v: u32) {
            let b = self.u32b(v);
            self.pages[pgno][at..at + 4].copy_from_slice(&b);
        }

        fn set16(&mut self, pgno: usize, at: usize, v: u16) {
            let b = self.u16b(v);
            self.pages[pgno][at..at + 2].copy_from_slice(&b);
        }

        fn key(&self, n: u32) -> Item {
            let mut k = vec![H_KEYDATA];
            k.extend_from_slice(&self.u32b(n));
            Item::Raw(k)
        }

        fn new_page(&mut self, kind: u8) -> usize {
            let pgno = self.pages.len();
            self.pages.push(vec![0; self.page_size]);
            self.set32(pgno, 8, pgno as u32);
            self.pages[pgno][25] = kind;
            pgno
        }

        /// Writes `data` over as many overflow pages as it needs; returns the
        /// first page number.
        fn overflow(&mut self, data: &[u8]) -> u32 {
            let per_page = self.page_size - PAGE_HEADER;
            let chunks: Vec<&[u8]> = data.chunks(per_page).collect();
            let first = self.pages.len();
            for (i, chunk) in chunks.iter().enumerate() {
                let pgno = self.new_page(P_OVERFLOW);
                let next = if i + 1 < chunks.len() { pgno + 1 } else { 0 };
                self.set32(pgno, 12, if i == 0 { 0 } else { pgno as u32 - 1 });
                self.set32(pgno, 16, next as u32);
                self.set16(pgno, 22, chunk.len() as u16);
                self.pages[pgno][PAGE_HEADER..PAGE_HEADER + chunk.len()].copy_from_slice(chunk);
            }
            first as u32
        }

        /// One hash page holding `items`, laid from the page end downwards.
        fn hash_page(&mut self, items: Vec<Item>) -> usize {
            let pgno = self.new_page(P_HASH);
            let mut end = self.page_size;
            for (i, item) in items.into_iter().enumerate() {
                let bytes = match item {
                    Item::Inline(v) => [vec![H_KEYDATA], v].concat(),
                    Item::OffPage { first, len } => {
                        [vec![H_OFFPAGE, 0, 0, 0], self.u32b(first).to_vec(), self.u32b(len).to_vec()].concat()
                    }
                    Item::Raw(b) => b,
                };
                let start = end - bytes.len();
                self.pages[pgno][start..end].copy_from_slice(&bytes);
                self.set16(pgno, PAGE_HEADER + 2 * i, start as u16);
                self.set16(pgno, 20, i as u16 + 1);
                end = start;
            }
            self.set16(pgno, 22, end as u16);
            pgno
        }

        fn build(&mut self) -> Vec<u8> {
            let last = self.pages.len() as u32 - 1;
            let magic = self.u32b(HASH_MAGIC);
            let (version, size, last) = (self.u32b(9), self.u32b(self.page_size as u32), self.u32b(last));
            let meta = &mut self.pages[0];
            meta[12..16].copy_from_slice(&magic);
            meta[16..20].copy_from_slice(&version);
            meta[20..24].copy_from_slice(&size);
            meta[25] = 8;
            meta[32..36].copy_from_slice(&last);
            self.pages.concat()
        }
    }

    fn names(p: &[RpmPackage]) -> Vec<&str> {
        p.iter().map(|p| p.name.as_str()).collect()
    }

    fn big_blob(name: &str, epoch: Option<u32>) -> Vec<u8> {
        let files: Vec<String> = (0..150).map(|i| format!("/usr/share/{name}/file-number-{i}.txt")).collect();
        let files: Vec<&str> = files.iter().map(String::as_str).collect();
        package_blob(name, epoch, "1.0", &files)
    }

    #[test]
    fn inline_values_little_endian_skipping_record_zero() {
        let mut w = BdbWriter::new(false, 4096);
        let items = vec![
            w.key(0),
            Item::Inline(vec![0, 0, 0, 9]),
            w.key(2),
            Item::Inline(package_blob("zlib", None, "1.2.11", &["/usr/lib64/libz.so.1"])),
            w.key(1),
            Item::Inline(package_blob("bash", Some(0), "5.1.8", &["/usr/bin/bash"])),
        ];
        w.hash_page(items);
        let (pkgs, errs) = read_bdb(&w.build());
        assert_eq!(errs, Vec::<String>::new());
        assert_eq!(names(&pkgs), ["bash", "zlib"]);
        assert_eq!((pkgs[0].epoch, pkgs[1].epoch), (Some(0), None));
        assert_eq!(pkgs[1].files, ["/usr/lib64/libz.so.1"]);
    }

    /// Big-endian, small pages: values span overflow chains of several pages
    /// and the pairs are spread over two hash pages.
    /// An overflow chain longer than any real header is refused before it is
    /// reassembled in memory.
    #[test]
    fn an_overflow_longer_than_any_real_header_is_refused_unread() {
        let mut w = BdbWriter::new(false, 65536);
        let huge = vec![0; crate::collectors::rpm::MAX_BLOB + 1];
        let (fa, fh) = (w.overflow(&big_blob("alpha", None)), w.overflow(&huge));
        w.hash_page(vec![w.key(1), Item::OffPage { first: fa, len: big_blob("alpha", None).len() as u32 }]);
        w.hash_page(vec![w.key(2), Item::OffPage { first: fh, len: huge.len() as u32 }]);
        let (pkgs, errs) = read_bdb(&w.build());
        assert_eq!(names(&pkgs), ["alpha"]);
        assert!(errs.len() == 1 && errs[0].contains("larger than"), "{errs:?}");
    }

    #[test]
    fn overflow_chains_across_pages_big_endian() {
        let mut w = BdbWriter::new(true, 512);
        let a = big_blob("alpha", Some(2));
        let b = big_blob("beta", None);
        assert!(a.len() > 3 * 512, "the test needs chains of several pages");
        let (fa, fb) = (w.overflow(&a), w.overflow(&b));
        let items = vec![w.key(10), Item::OffPage { first: fa, len: a.len() as u32 }];
        w.hash_page(items);
        let items = vec![w.key(4), Item::OffPage { first: fb, len: b.len() as u32 }];
        w.hash_page(items);
        let (pkgs, errs) = read_bdb(&w.build());
        assert_eq!(errs, Vec::<String>::new());
        assert_eq!(names(&pkgs), ["beta", "alpha"]);
        assert_eq!(pkgs[1].epoch, Some(2));
        assert_eq!(pkgs[1].files.len(), 150);
        assert_eq!(pkgs[1].files[149], "/usr/share/alpha/file-number-149.txt");
    }

    /// A chain whose last page points back to its first, with a length that
    /// promises more bytes than the loop holds, must stop with an error and
    /// leave the other packages readable.
    #[test]
    fn an_overflow_cycle_is_detected() {
        let mut w = BdbWriter::new(false, 512);
        let a = big_blob("looped", None);
        let good = big_blob("fine", None);
        let fa = w.overflow(&a);
        let last = w.pages.len() - 1;
        w.set32(last, 16, fa);
        let fg = w.overflow(&good);
        let items = vec![
            w.key(1),
            Item::OffPage { first: fa, len: a.len() as u32 + 1 },
            w.key(2),
            Item::OffPage { first: fg, len: good.len() as u32 },
        ];
        let hp = w.hash_page(items);
        let (pkgs, errs) = read_bdb(&w.build());
        assert_eq!(names(&pkgs), ["fine"]);
        assert_eq!(errs.len(), 1, "{errs:?}");
        let want = format!("package 1 (hash page {hp} item 1): overflow chain from page {fa} loops back to page {fa}");
        assert!(errs[0].contains(&want), "{errs:?}");
    }

    /// Many items sharing one long chain would be quadratic work; the shared
    /// page budget stops the scan instead.
    #[test]
    fn shared_chains_exhaust_the_work_budget() {
        let mut w = BdbWriter::new(false, 4096);
        let blob = package_blob("shared", None, "1", &[]);
        let mut long = blob.clone();
        long.resize(40_000, 0);
        let first = w.overflow(&long);
        let items: Vec<Item> =
            (1..=150).flat_map(|k| [w.key(k), Item::OffPage { first, len: long.len() as u32 }]).collect();
        w.hash_page(items);
        let bytes = w.build();
        let (pkgs, errs) = read_bdb(&bytes);
        let pages = bytes.len() / 4096;
        assert!(pkgs.len() < 5, "{} packages read", pkgs.len());
        assert_eq!(errs.last().map(|e| e.contains("stopped reading")), Some(true), "{errs:?}");
        assert!(errs.last().is_some_and(|e| e.contains(&format!("in a {pages}-page file"))), "{errs:?}");
    }

    /// Each damage to one item costs that item only.
    /// The second review's bomb: pages of nothing but items of an unknown
    /// type, an error string for every 6 bytes (240 MB: 3.5 GB, then an
    /// abort). A database keeps 1,000 of its problems and counts the rest.
    #[test]
    fn a_database_of_bad_items_keeps_a_thousand_problems_and_counts_the_rest() {
        let mut w = BdbWriter::new(false, 4096);
        for page in 0..4 {
            let items = (0..600u32).flat_map(|i| [w.key(page * 1000 + i + 1), Item::Raw(vec![9])]).collect();
            w.hash_page(items);
        }
        let (pkgs, errs) = read_bdb(&w.build());
        assert!(pkgs.is_empty());
        assert_eq!(errs.len(), crate::collectors::rpm::MAX_ERRORS + 1, "{:?}", &errs[..3]);
        assert!(errs[0].contains("unknown item type 9"), "{}", errs[0]);
        assert_eq!(errs.last().unwrap(), "Packages (BerkeleyDB): 1400 more problems like these");
    }

    #[test]
    fn a_damaged_item_costs_only_its_package() {
        struct Case {
            what: &'static str,
            damage: fn(&mut BdbWriter, usize, usize, u32) -> Vec<Item>,
            needle: &'static str,
        }
        // Each builds the items for package 5 given its chain's first and
        // last page and its true length; packages 1 and 9 stay intact.
        let cases = [
            Case {
                what: "chain leaves the file",
                damage: |w, first, last, len| {
                    w.set32(last, 16, 9999);
                    vec![w.key(5), Item::OffPage { first: first as u32, len: len + 1 }]
                },
                needle: "reaches page 9999, outside the file",
            },
            Case {
                what: "chain reaches the metadata page",
                damage: |w, first, _, len| vec![w.key(5), Item::OffPage { first: first as u32, len: len + 1 }],
                needle: "reaches page 0, outside the file",
            },
            Case {
                what: "chain reaches a hash page",
                damage: |w, first, last, len| {
                    // The hash page is the next page the writer adds.
                    let hash_page = w.pages.len() as u32;
                    w.set32(last, 16, hash_page);
                    vec![w.key(5), Item::OffPage { first: first as u32, len: len + 1 }]
                },
                needle: "of type 13",
            },
            Case {
                what: "overflow page longer than the value",
                damage: |w, first, _, _| vec![w.key(5), Item::OffPage { first: first as u32, len: 10 }],
                needle: "holds 486 bytes, which does not fit",
            },
            Case {
                what: "overflow page claiming more than a page",
                damage: |w, first, _, len| {
                    w.set16(first, 22, 600);
                    vec![w.key(5), Item::OffPage { first: first as u32, len }]
                },
                needle: "holds 600 bytes",
            },
            Case {
                what: "overflow page with the wrong page number",
                damage: |w, first, _, len| {
                    w.set32(first, 8, 77);
                    vec![w.key(5), Item::OffPage { first: first as u32, len }]
                },
                needle: "says it is page 77",
            },
            Case {
                what: "zero-length off-page value",
                damage: |w, first, _, _| vec![w.key(5), Item::OffPage { first: first as u32, len: 0 }],
                needle: "overflow length 0 impossible",
            },
            Case {
                what: "off-page value longer than the file",
                damage: |w, first, _, _| vec![w.key(5), Item::OffPage { first: first as u32, len: u32::MAX }],
                needle: "overflow length 4294967295 impossible",
            },
            Case {
                what: "short off-page item",
                damage: |w, _, _, _| vec![w.key(5), Item::Raw(vec![H_OFFPAGE, 0, 0])],
                needle: "off-page item of 3 bytes",
            },
            Case {
                what: "duplicate set",
                damage: |w, _, _, _| vec![w.key(5), Item::Raw(vec![H_DUPLICATE, 1, 2])],
                needle: "duplicate values",
            },
            Case {
                what: "unknown item type",
                damage: |w, _, _, _| vec![w.key(5), Item::Raw(vec![42, 1, 2])],
                needle: "unknown item type 42",
            },
            Case {
                what: "garbage header blob",
                damage: |w, _, _, _| vec![w.key(5), Item::Inline(vec![0xff; 40])],
                needle: "more than the limit",
            },
            Case {
                what: "key of 8 bytes",
                damage: |_, _, _, _| vec![Item::Inline(vec![5; 8]), Item::Inline(vec![])],
                needle: "key of 8 bytes, not a package number",
            },
            Case {
                what: "off-page key",
                damage: |_, _, _, _| vec![Item::OffPage { first: 1, len: 4 }, Item::Inline(vec![])],
                needle: "key of item type 3",
            },
        ];
        for case in cases {
            let mut w = BdbWriter::new(false, 512);
            let damaged_blob = big_blob("damaged", None);
            let damaged = w.overflow(&damaged_blob);
            let last = w.pages.len() - 1;
            let one = big_blob("one", None);
            let f1 = w.overflow(&one);
            let mut items = vec![w.key(1), Item::OffPage { first: f1, len: one.len() as u32 }];
            items.extend((case.damage)(&mut w, damaged as usize, last, damaged_blob.len() as u32));
            items.extend([w.key(9), Item::Inline(package_blob("nine", None, "1", &[]))]);
            w.hash_page(items);
            let (pkgs, errs) = read_bdb(&w.build());
            assert_eq!(names(&pkgs), ["one", "nine"], "{}: {errs:?}", case.what);
            assert_eq!(errs.len(), 1, "{}: {errs:?}", case.what);
            assert!(errs[0].contains(case.needle), "{}: {:?} does not contain {:?}", case.what, errs[0], case.needle);
        }
    }

    #[test]
    fn damaged_hash_pages_are_skipped_with_an_error() {
        let mut w = BdbWriter::new(false, 512);
        let items = vec![w.key(1), Item::Inline(package_blob("kept", None, "1", &[]))];
        w.hash_page(items);
        let items = vec![w.key(2), Item::Inline(package_blob("misnumbered", None, "1", &[]))];
        let p2 = w.hash_page(items);
        w.set32(p2, 8, 40);
        let items = vec![w.key(3), Item::Inline(package_blob("overfull", None, "1", &[]))];
        let p3 = w.hash_page(items);
        w.set16(p3, 20, 300);
        let items = vec![w.key(4), Item::Inline(package_blob("bad-offset", None, "1", &[]))];
        let p4 = w.hash_page(items);
        w.set16(p4, PAGE_HEADER, 10);
        let (pkgs, errs) = read_bdb(&w.build());
        assert_eq!(names(&pkgs), ["kept"]);
        assert_eq!(errs.len(), 3, "{errs:?}");
        assert!(errs[0].contains("hash page 2 says it is page 40"), "{errs:?}");
        assert!(errs[1].contains("hash page 3 claims 300 items"), "{errs:?}");
        assert!(errs[2].contains("hash page 4 item 0: offset 10"), "{errs:?}");
    }

    #[test]
    fn unreadable_files_give_one_clear_error() {
        let mut w = BdbWriter::new(false, 512);
        let items = vec![w.key(1), Item::Inline(package_blob("p", None, "1", &[]))];
        w.hash_page(items);
        let good = w.build();
        let with = |at: usize, b: &[u8]| {
            let mut x = good.clone();
            x[at..at + b.len()].copy_from_slice(b);
            x
        };
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            ("empty", Vec::new(), "shorter than the 512-byte metadata page"),
            ("zeros", vec![0; 4096], "not a BerkeleyDB hash database"),
            ("btree", with(12, &BTREE_MAGIC.to_le_bytes()), "btree, not a hash"),
            ("version 7", with(16, &7u32.to_le_bytes()), "unsupported hash version 7"),
            ("page size 1000", with(20, &1000u32.to_le_bytes()), "bad page size 1000"),
            ("page size 0", with(20, &0u32.to_le_bytes()), "bad page size 0"),
            ("encrypted", with(24, &[1]), "encrypted"),
        ];
        for (what, bytes, needle) in cases {
            let (pkgs, errs) = read_bdb(&bytes);
            assert!(pkgs.is_empty(), "{what}");
            assert_eq!(errs.len(), 1, "{what}: {errs:?}");
            assert!(errs[0].contains(needle), "{what}: {:?} does not contain {needle:?}", errs[0]);
        }
    }

    #[test]
    fn a_truncated_file_reads_the_pages_present() {
        let mut w = BdbWriter::new(true, 512);
        let items = vec![w.key(1), Item::Inline(package_blob("first", None, "1", &[]))];
        w.hash_page(items);
        let b = big_blob("cut", None);
        let f = w.overflow(&b);
        let items = vec![w.key(2), Item::OffPage { first: f, len: b.len() as u32 }];
        w.hash_page(items);
        let bytes = w.build();
        let (pkgs, errs) = read_bdb(&bytes[..512 * 4 + 100]);
        assert_eq!(names(&pkgs), ["first"]);
        assert!(errs.len() == 1 && errs[0].contains("says"), "{errs:?}");
        assert!(errs[0].contains("pages but the file holds 4"), "{errs:?}");
    }

    #[test]
    fn truncations_and_corruptions_never_panic() {
        for big_endian in [false, true] {
            let mut w = BdbWriter::new(big_endian, 512);
            let b = big_blob("x", Some(1));
            let f = w.overflow(&b);
            let items = vec![
                w.key(1),
                Item::OffPage { first: f, len: b.len() as u32 },
                w.key(2),
                Item::Inline(package_blob("y", None, "1", &[])),
            ];
            w.hash_page(items);
            let bytes = w.build();
            for n in (0..bytes.len()).step_by(13) {
                let _ = read_bdb(&bytes[..n]);
            }
            for i in 0..bytes.len() {
                let mut c = bytes.clone();
                c[i] ^= 0xff;
                let _ = read_bdb(&c);
            }
        }
    }
}
