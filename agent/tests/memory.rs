//! What a crawl holds in memory, counted by this test binary's allocator
//! (its tests take turns, so nothing else allocates while one counts).
//!
//! Issue 24 item 6: walked entries were kept with their whole path, three
//! times over (display text, raw bytes and a map key), so a root of deep,
//! long names made each kept entry cost 16 KiB of path per copy (64 KiB of
//! escaped text for non-UTF-8 names): a 7.9 MB root reached 1.8 GB, a 4.2 MB
//! root of 0xff names 3.05 GB. A kept entry now costs its own name; its text
//! is made when its row is, and rows are bounded by the table budgets.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use periscope_agent::collectors::Sink;
use periscope_agent::crawl::{CrawlOptions, crawl};
use periscope_agent::encode::Common;
use periscope_proto::tables::PACKAGE_FILES;
use rustix::fs::{Mode, OFlags};

struct Counting;

static NOW: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = NOW.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        unsafe { System.dealloc(p, layout) };
        NOW.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, layout, new_size) };
        if !q.is_null() {
            if new_size > layout.size() {
                let now = NOW.fetch_add(new_size - layout.size(), Ordering::Relaxed) + new_size - layout.size();
                PEAK.fetch_max(now, Ordering::Relaxed);
            } else {
                NOW.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        q
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// This test's turn: held for its whole body, setup included, so that no
/// other test's allocations (another's setup) count in its peak.
fn turn() -> std::sync::MutexGuard<'static, ()> {
    static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    TURN.lock().unwrap_or_else(|e| e.into_inner())
}

/// Heap bytes `f` needed at its peak, above what was allocated before it
/// (call it holding [`turn`]).
fn peak_of<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = NOW.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let out = f();
    (out, PEAK.load(Ordering::Relaxed) - base)
}

/// `depth` nested directories named `dir` under `start`, then `files`
/// executable empty files at the bottom named by `file(i)` (made through
/// descriptors: the paths outgrow PATH_MAX). Returns the bytes of names made.
fn deep_tree(start: &Path, dir: &[u8], depth: usize, files: usize, file: impl Fn(usize) -> Vec<u8>) -> usize {
    let name = OsStr::from_bytes;
    std::fs::create_dir_all(start).unwrap();
    let mut fd = rustix::fs::open(start, OFlags::DIRECTORY | OFlags::RDONLY, Mode::empty()).unwrap();
    for _ in 0..depth {
        rustix::fs::mkdirat(&fd, name(dir), Mode::from_raw_mode(0o755)).unwrap();
        fd = rustix::fs::openat(&fd, name(dir), OFlags::DIRECTORY | OFlags::RDONLY, Mode::empty()).unwrap();
    }
    let mut bytes = depth * dir.len();
    for i in 0..files {
        let f = file(i);
        bytes += f.len();
        rustix::fs::openat(&fd, name(&f), OFlags::CREATE | OFlags::WRONLY, Mode::from_raw_mode(0o755)).unwrap();
    }
    bytes
}

#[test]
fn kept_entries_of_deep_long_paths_cost_their_names_not_their_paths() {
    let _turn = turn();
    const DEPTH: usize = 40;
    const FILES: usize = 1500;
    for (what, dir, file) in [
        (
            "UTF-8 names",
            vec![b'd'; 250],
            (|i| format!("{i:06}{}", "f".repeat(240)).into_bytes()) as fn(usize) -> Vec<u8>,
        ),
        ("0xff names", vec![0xff; 250], |i| [format!("{i:06}").as_bytes(), &[0xff; 240][..]].concat()),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(root.join("etc/os-release"), "ID=debian\n").unwrap();
        // Matched by the files collector's /etc/ssh/** and walked by unowned_files under /usr.
        let mut names = deep_tree(&root.join("etc/ssh"), &dir, DEPTH, FILES, file);
        names += deep_tree(&root.join("usr/lib"), &dir, DEPTH, FILES, file);
        let mut o = opts(root);
        // Rows are bounded by the table budgets; what is measured is what the collectors keep besides.
        o.budgets.max_table_bytes = 1 << 20;
        let ((rows, _), peak) = peak_of(|| crawl_rows(&o));
        let path_text: usize = rows["files"].iter().map(|r| s(r, "path").len()).max().unwrap();
        eprintln!(
            "{what}: peak heap {:.1} MB for {FILES}+{FILES} kept entries of {path_text}-byte paths ({:.1} MB of names)",
            peak as f64 / 1e6,
            names as f64 / 1e6
        );
        assert!(path_text > DEPTH * 250, "{path_text}");
        assert!(!rows["files"].is_empty() && !rows["unowned_files"].is_empty());
        // Rows take at most 1 MiB of strings per table here; the crawl's own
        // keeping measured 12 MB (10 MB for 0xff names) against 49 MB (144 MB)
        // when each kept entry held its whole path three times.
        assert!(peak < 24 << 20, "{what}: peak heap {:.1} MB", peak as f64 / 1e6);
    }
}

/// Issue 24 item 6: a dpkg status of 0xff bytes was made text whole before
/// parsing, three bytes of U+FFFD per byte (a 256 MB one cost 1.06 GB). The
/// parser reads bytes now and makes text of the values it keeps only.
#[test]
fn a_status_of_invalid_utf8_costs_its_bytes_not_three_times_them() {
    let _turn = turn();
    const SIZE: usize = 32 << 20;
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    std::fs::create_dir_all(root.join("var/lib/dpkg")).unwrap();
    std::fs::write(root.join("var/lib/dpkg/status"), vec![0xff; SIZE]).unwrap();
    let ((rows, _), peak) = peak_of(|| crawl_rows(&opts(root)));
    eprintln!("peak heap {:.1} MB for a {:.1} MB status", peak as f64 / 1e6, SIZE as f64 / 1e6);
    assert!(rows["crawl_errors"].iter().any(|r| s(r, "message").contains("not a field")));
    // Its text cost three times its size on top of the file's own bytes:
    // 168 MB for this 34 MB file, 34 MB now.
    assert!(peak < 3 * SIZE / 2, "peak heap {:.1} MB", peak as f64 / 1e6);
}

/// Raw deflate data for `parts` (bytes as given, or that many MiB of zeros),
/// each compressed on its own and sync-flushed so they concatenate, then an
/// empty final block: megabytes of zeros cost milliseconds.
fn deflate_parts(parts: &[Result<&[u8], usize>]) -> Vec<u8> {
    use std::io::Write;
    let flushed = |b: &[u8]| {
        let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
        z.write_all(b).unwrap();
        z.flush().unwrap();
        z.get_ref().clone()
    };
    let mib = flushed(&vec![0u8; 1 << 20]);
    let mut out = Vec::new();
    for p in parts {
        match p {
            Ok(b) => out.extend(flushed(b)),
            Err(n) => out.extend(mib.repeat(*n)),
        }
    }
    out.extend([0x03, 0x00]);
    out
}

/// A zip of one stored entry of `pad` MiB of zeros, then `inner` (deflated,
/// whose uncompressed length is `inner_len`) as `name`; returned deflated
/// as a whole (with its uncompressed length), made without holding the zeros.
fn nested_level(pad: usize, name: &str, inner: &[u8], inner_len: u64) -> (Vec<u8>, u64) {
    let local = |name: &str, method: u16, csize: u64, usize_: u64| {
        let mut h = Vec::new();
        h.extend(0x0403_4b50u32.to_le_bytes());
        h.extend([20, 0, 0, 0]);
        h.extend(method.to_le_bytes());
        h.extend([0u8; 8]);
        h.extend((csize as u32).to_le_bytes());
        h.extend((usize_ as u32).to_le_bytes());
        h.extend((name.len() as u16).to_le_bytes());
        h.extend([0, 0]);
        h.extend(name.as_bytes());
        h
    };
    let central = |name: &str, method: u16, csize: u64, usize_: u64, at: u64| {
        let mut c = Vec::new();
        c.extend(0x0201_4b50u32.to_le_bytes());
        c.extend([20, 0, 20, 0, 0, 0]);
        c.extend(method.to_le_bytes());
        c.extend([0u8; 8]);
        c.extend((csize as u32).to_le_bytes());
        c.extend((usize_ as u32).to_le_bytes());
        c.extend((name.len() as u16).to_le_bytes());
        c.extend([0u8; 12]);
        c.extend((at as u32).to_le_bytes());
        c.extend(name.as_bytes());
        c
    };
    let pad_len = (pad as u64) << 20;
    let h1 = local("pad", 0, pad_len, pad_len);
    let at2 = h1.len() as u64 + pad_len;
    let h2 = local(name, 8, inner.len() as u64, inner_len);
    let cd_at = at2 + h2.len() as u64 + inner.len() as u64;
    let mut tail = central("pad", 0, pad_len, pad_len, 0);
    tail.extend(central(name, 8, inner.len() as u64, inner_len, at2));
    let cd_len = tail.len() as u32;
    tail.extend(0x0605_4b50u32.to_le_bytes());
    tail.extend([0u8; 4]);
    tail.extend(2u16.to_le_bytes());
    tail.extend(2u16.to_le_bytes());
    tail.extend(cd_len.to_le_bytes());
    tail.extend((cd_at as u32).to_le_bytes());
    tail.extend([0, 0]);
    let rest = [h2.as_slice(), inner, &tail].concat();
    let total = h1.len() as u64 + pad_len + rest.len() as u64;
    (deflate_parts(&[Ok(&h1), Err(pad), Ok(&rest)]), total)
}

/// Issue 17, then issue 24 (review item 8): a deflated archive nested in an
/// archive was held in memory while it was read, so an ear whose war holds a
/// jar holding a jar, each level 30 MiB of its own, all deflated (the file is
/// 33 KB), held three levels at once: 94 MB of heap here, 124 MB peak RSS for
/// the release agent. A nested archive past 2 MiB is inflated into an
/// unlinked temporary file and read from there now. Every level is still
/// read (the innermost jar, a fourth level, is refused by name).
#[test]
fn nested_deflated_archives_are_read_from_disk_not_memory() {
    let _turn = turn();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(root.join("etc/os-release"), "ID=debian\n").unwrap();
    std::fs::create_dir_all(root.join("opt")).unwrap();
    let pom = b"groupId=org.example\nartifactId=deepest\nversion=1\n";
    let (mut data, mut len) = (deflate_parts(&[Ok(pom)]), pom.len() as u64);
    let mut name = "META-INF/maven/org.example/deepest/pom.properties";
    let names = ["lib/l4.jar", "lib/l3.jar", "WEB-INF/lib/l2.jar", "app.war"];
    for (i, next) in names.iter().enumerate() {
        let (d, l) = nested_level(if i == 0 { 0 } else { 30 }, name, &data, len);
        (data, len) = (d, l);
        name = next;
    }
    let (ear, _) = nested_level(0, name, &data, len);
    // The ear itself is a plain zip: inflate its deflated whole to get its bytes.
    let mut ear_bytes = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::DeflateDecoder::new(&ear[..]), &mut ear_bytes).unwrap();
    assert!(ear_bytes.len() < 1 << 20, "{}", ear_bytes.len());
    std::fs::write(root.join("opt/suite.ear"), &ear_bytes).unwrap();
    let mut o = opts(root);
    o.collectors = Some(vec!["java".into()]);
    let ((rows, _), peak) = peak_of(|| crawl_rows(&o));
    eprintln!("peak heap {:.1} MB for an ear nesting three 30 MiB deflated archives", peak as f64 / 1e6);
    let errors: Vec<String> =
        rows["crawl_errors"].iter().map(|r| format!("{} {}", s(r, "path"), s(r, "message"))).collect();
    assert!(errors.iter().any(|e| e.contains("nested 4 levels deep")), "{errors:?}");
    assert!(rows["packages"].is_empty());
    // Held in memory, 94.5 MB; inflated into temporary files, 2.2 MB.
    assert!(peak < 3 * (2 << 20) + (4 << 20), "peak heap {:.1} MB", peak as f64 / 1e6);
}

/// Issue 21: a package database was read whole (up to the 256 MiB per-file
/// budget) and then parsed: a 256 MB status cost 275 MB. It is parsed as it
/// is read now, 64 KiB at a time, a line kept up to a bound: a 64 MiB
/// Description costs what a short one does.
#[test]
fn a_big_dpkg_status_is_parsed_as_it_is_read() {
    let _turn = turn();
    const SIZE: usize = 64 << 20;
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    std::fs::create_dir_all(root.join("var/lib/dpkg")).unwrap();
    let mut status = b"Package: big\nStatus: install ok installed\nVersion: 1\nDescription: ".to_vec();
    status.resize(SIZE, b'x');
    status.extend_from_slice(b"\n more\n\nPackage: small\nStatus: install ok installed\nVersion: 2\n");
    std::fs::write(root.join("var/lib/dpkg/status"), &status).unwrap();
    drop(status);
    let o = CrawlOptions { collectors: Some(vec!["packages".into()]), ..opts(root) };
    let (c, peak) = peak_of(|| crawl(&o).unwrap());
    eprintln!("peak heap {:.1} MB for a {:.1} MB status", peak as f64 / 1e6, SIZE as f64 / 1e6);
    let (rows, _) = rows_of(&c.batches.to_vec());
    let names: Vec<String> = rows["packages"].iter().map(|r| s(r, "name")).collect();
    assert_eq!(names, ["big", "small"]);
    assert_eq!(s(&rows["packages"][0], "description").len(), periscope_agent::collectors::parse::MAX_VALUE);
    // Read whole, the file alone was 64 MiB of heap.
    assert!(peak < 8 << 20, "peak heap {:.1} MB", peak as f64 / 1e6);
}

/// Issue 21: every row of a scope was held until the scope ended (500,000
/// unowned executables: 270 MB). Past a few MiB, finished batches wait on
/// disk now: a scope of 100 MB of rows holds a bounded part of them.
#[test]
fn many_rows_in_one_scope_wait_on_disk() {
    let _turn = turn();
    const ROWS: usize = 600_000;
    let common = Common { host: "h".into(), scope: "image".into(), scope_id: "rows".into(), crawl_time_us: 0 };
    let (rows, peak) = peak_of(|| {
        let mut sink = Sink::new(common);
        let mut path = String::new();
        for i in 0..ROWS {
            path.clear();
            path.push_str(&format!("/usr/lib/{i:0>140}"));
            let row = [("manager", "dpkg".into()), ("package", "p".into()), ("path", path.as_str().into())];
            assert!(sink.try_row(&PACKAGE_FILES, &row));
        }
        sink.finish_rows()
    });
    eprintln!("peak heap {:.1} MB for {ROWS} rows of 150-byte paths ({rows:?})", peak as f64 / 1e6);
    assert_eq!(rows.num_rows(), ROWS);
    assert!(rows.spilled() > 0, "{rows:?}");
    assert!(rows.memory_bytes() <= periscope_agent::rows::SPILL_BYTES, "{rows:?}");
    // Read back one batch at a time, every row is there.
    let mut n = 0;
    let (_, reading) = peak_of(|| {
        for b in rows.iter() {
            n += b.unwrap().num_rows();
        }
    });
    assert_eq!(n, ROWS);
    // Held, the rows were 90 MB of paths and more.
    assert!(peak < 40 << 20, "peak heap {:.1} MB", peak as f64 / 1e6);
    assert!(reading < 40 << 20, "peak heap reading back {:.1} MB", reading as f64 / 1e6);
}

/// Issue 21: `crawl --print` made a whole batch JSON values at once, up to
/// 65,536 rows (a root of 500,000 unowned executables peaked at 198 MB RSS,
/// 100 MB of it JSON values of one batch), and a thousand long rows at once
/// still cost hundreds of MB (issue 24's roots of 15 KB paths). Rows are
/// made JSON about a MiB of the batch at a time now.
#[test]
fn printing_a_full_batch_costs_a_few_rows_not_the_batch() {
    let _turn = turn();
    // A batch is full at BATCH_ROWS rows, or at BATCH_BYTES (8 MiB) of strings.
    for (rows, path_len) in [(periscope_agent::collectors::BATCH_ROWS, 17), (400, 20_000)] {
        let common = Common { host: "h".into(), scope: "image".into(), scope_id: "print".into(), crawl_time_us: 0 };
        let mut sink = Sink::new(common);
        for i in 0..rows {
            let path = format!("/usr/bin/e{i:0>width$}", width = path_len - 10);
            let row = [("manager", "dpkg".into()), ("package", "p".into()), ("path", path.as_str().into())];
            assert!(sink.try_row(&PACKAGE_FILES, &row));
        }
        let batches = sink.finish();
        assert_eq!(batches.iter().map(|b| b.num_rows()).max(), Some(rows));
        let mut lines = 0usize;
        let mut count = LineCount(&mut lines);
        let (r, peak) = peak_of(|| periscope_agent::print::print_json_lines(&batches, &mut count));
        r.unwrap();
        eprintln!("peak heap {:.1} MB printing a batch of {lines} rows of {path_len}-byte paths", peak as f64 / 1e6);
        assert_eq!(lines, rows);
        // The whole batch as JSON values measured 66.3 MB for the short rows,
        // 1,024 rows at a time 1.0 MB; the long rows, 400 at once, 18.6 MB (0.2 MB
        // now).
        assert!(peak < 4 << 20, "{path_len}-byte paths: peak heap {:.1} MB", peak as f64 / 1e6);
    }
}

/// Counts the lines written to it, keeping nothing.
struct LineCount<'a>(&'a mut usize);

impl std::io::Write for LineCount<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        *self.0 += buf.iter().filter(|&&c| c == b'\n').count();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A walk holds one directory's names while it walks it (they are sorted
/// first, so rows and digests do not follow the filesystem's order); one
/// directory of 200,000 names held each in its own allocation.
#[test]
fn a_walk_holds_a_big_directorys_names_in_one_buffer() {
    let _turn = turn();
    const FILES: usize = 200_000;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("usr/bin");
    deep_tree(&dir, b"d", 0, FILES, |i| format!("e{i:07}").into_bytes());
    let root = periscope_agent::rootfs::Root::open(tmp.path()).unwrap();
    let mut seen = 0usize;
    let (r, peak) = peak_of(|| {
        root.walk(
            "/usr/bin",
            &mut |_| {
                seen += 1;
                true
            },
            &mut |e| panic!("{e}"),
        )
    });
    r.unwrap();
    eprintln!("peak heap {:.1} MB walking {seen} names of 8 bytes", peak as f64 / 1e6);
    assert_eq!(seen, FILES);
    // A Vec each (and a stable sort's scratch) measured 12.7 MB here, for
    // 1.6 MB of names; one buffer 4.2 MB.
    assert!(peak < 8 << 20, "peak heap {:.1} MB", peak as f64 / 1e6);
}

/// Issue 24 item 6: `unowned_files` kept each problem hashing a file until
/// all its walks were done (15,000 problems naming 15 KB paths held 270 MB,
/// 379 MB RSS); then each became its error row at once. The problem itself
/// was that a walk reaches paths past PATH_MAX through descriptors, but
/// opening them again by path to hash them failed (ENAMETOOLONG): no sha256
/// and an error row (its path quoted) per file. Such paths are resolved in
/// pieces now (see `Root::resolve_long`) and hashed like any other file.
#[test]
fn files_under_paths_past_path_max_are_hashed_not_errors() {
    let _turn = turn();
    const FILES: usize = 6000;
    const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(root.join("etc/os-release"), "ID=debian\n").unwrap();
    deep_tree(&root.join("usr/lib"), &[b'd'; 250], 20, FILES, |i| format!("{i:06}").into_bytes());
    let o = CrawlOptions { collectors: Some(vec!["unowned_files".into()]), ..opts(root) };
    let (c, peak) = peak_of(|| crawl(&o).unwrap());
    eprintln!("peak heap {:.1} MB for {FILES} files of 5 KB paths", peak as f64 / 1e6);
    let (rows, _) = rows_of(&c.batches.to_vec());
    assert_eq!(rows["unowned_files"].len(), FILES);
    let hashed = rows["unowned_files"].iter().filter(|r| s(r, "sha256") == EMPTY).count();
    assert_eq!(hashed, FILES);
    let errors: Vec<String> = rows["crawl_errors"].iter().map(|r| s(r, "message")).collect();
    assert!(errors.is_empty(), "{errors:?}");
    // With an error row each (said at once), 19.2 MB here; 10.9 MB hashed.
    assert!(peak < 16 << 20, "peak heap {:.1} MB", peak as f64 / 1e6);
}

/// Issue 21: apk's installed database was read whole (up to the 256 MiB
/// per-file budget) and all its packages made before the first row. It is
/// parsed as it is read now, each package's rows made as its stanza ends:
/// a 64 MiB description costs what a short one does.
#[test]
fn a_big_apk_database_is_parsed_as_it_is_read() {
    let _turn = turn();
    const SIZE: usize = 64 << 20;
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    std::fs::create_dir_all(root.join("lib/apk/db")).unwrap();
    let mut db = b"P:big\nV:1\nT:".to_vec();
    db.resize(SIZE, b'x');
    db.extend_from_slice(b"\nF:usr/bin\nR:big\n\nP:small\nV:2\nF:usr/bin\nR:small\n");
    std::fs::write(root.join("lib/apk/db/installed"), &db).unwrap();
    drop(db);
    let o = CrawlOptions { collectors: Some(vec!["packages".into()]), ..opts(root) };
    let (c, peak) = peak_of(|| crawl(&o).unwrap());
    eprintln!("peak heap {:.1} MB for a {:.1} MB apk database", peak as f64 / 1e6, SIZE as f64 / 1e6);
    let (rows, _) = rows_of(&c.batches.to_vec());
    let names: Vec<String> = rows["packages"].iter().map(|r| s(r, "name")).collect();
    assert_eq!(names, ["big", "small"]);
    let files: Vec<String> = rows["package_files"].iter().map(|r| s(r, "path")).collect();
    assert_eq!(files, ["/usr/bin/big", "/usr/bin/small"]);
    // Read whole, it measured 67.3 MB of heap; parsed as read, 0.6 MB.
    assert!(peak < 8 << 20, "peak heap {:.1} MB", peak as f64 / 1e6);
}

/// Issue 21: a layered root's listing of a directory held every entry's
/// name in its own allocation, twice over (a map of the names the layers
/// list, then each with its whole stat), before the walk visited the first:
/// about 84 MB for one directory of 500,000 files. A listing holds its names
/// in one buffer now, and each is looked up (and stat'd) as the walk visits it.
#[test]
fn a_layered_walk_holds_a_big_directorys_names_not_their_stats() {
    let _turn = turn();
    const FILES: usize = 100_000;
    let tmp = tempfile::tempdir().unwrap();
    let (upper, lower) = (tmp.path().join("upper"), tmp.path().join("lower"));
    // Half the names in each layer, some in both: a merged directory, its names deduplicated.
    deep_tree(&lower.join("usr/bin"), b"d", 0, FILES / 2 + 1000, |i| format!("e{i:07}").into_bytes());
    deep_tree(&upper.join("usr/bin"), b"d", 0, FILES / 2, |i| format!("e{:07}", FILES / 2 + i).into_bytes());
    let root = periscope_agent::rootfs::Root::from_layers(
        &[upper, lower],
        periscope_agent::layers::Markers::KERNEL_OVERLAY,
        "layers",
        periscope_agent::rootfs::Budgets::default(),
    )
    .unwrap();
    let (mut seen, mut last) = (0usize, Vec::new());
    let (r, peak) = peak_of(|| {
        root.walk(
            "/usr/bin",
            &mut |e| {
                assert!(e.path.name() > &last[..], "in order");
                last = e.path.name().to_vec();
                seen += 1;
                true
            },
            &mut |e| panic!("{e}"),
        )
    });
    r.unwrap();
    eprintln!("peak heap {:.1} MB walking {seen} names of 8 bytes in two layers", peak as f64 / 1e6);
    assert_eq!(seen, FILES);
    // A Vec and a stat each measured 24.2 MB here; one buffer of names 3.8 MB.
    assert!(peak < 8 << 20, "peak heap {:.1} MB", peak as f64 / 1e6);
}

/// Peak RSS in bytes of `periscope-agent crawl --print` of `root`, from its own rusage.
fn printed_crawl_peak_rss(root: &Path) -> u64 {
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_periscope-agent"))
        .args(["crawl", "--print", "--docker", "off", "--containerd", "off", "--scope", "image"])
        .args(["--scope-id", "x", "--root"])
        .arg(root)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let (mut status, mut usage) = (0, unsafe { std::mem::zeroed::<libc::rusage>() });
    // SAFETY: waits for the child just spawned (std never waits for it: `child` is leaked).
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    std::mem::forget(child);
    assert!(pid > 0 && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "{pid} {status}");
    usage.ru_maxrss as u64 * 1024
}

/// Issue 21: glibc's malloc kept what the crawl freed. Its mmap threshold
/// follows the largest block freed (up to 32 MiB), so after a crawl's first
/// batch (up to 8 MiB of strings) was freed, the next ones, their spill
/// encodings and the printed rows came from the crawl thread's heap, which
/// stays resident: a release build peaked at 74 MB RSS over a root of deep
/// long names for 23 MB of heap. The agent pins the threshold at its start
/// (`limits::release_big_blocks`): 29 MB.
#[test]
fn a_crawls_freed_batches_go_back_to_the_system() {
    let _turn = turn();
    const FILES: usize = 3000;
    let tmp = tempfile::tempdir().unwrap();
    let (busy, idle) = (tmp.path().join("busy"), tmp.path().join("idle"));
    for root in [&busy, &idle] {
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(root.join("etc/os-release"), "ID=debian\n").unwrap();
    }
    // 60 MB of rows of 10 KB paths (files and unowned_files), in 8 MiB batches.
    let file = |i| format!("{i:06}{}", "f".repeat(240)).into_bytes();
    deep_tree(&busy.join("etc/ssh"), &[b'd'; 250], 40, FILES, file);
    deep_tree(&busy.join("usr/lib"), &[b'd'; 250], 40, FILES, file);
    let idle_rss = printed_crawl_peak_rss(&idle);
    let busy_rss = printed_crawl_peak_rss(&busy);
    let more = busy_rss.saturating_sub(idle_rss);
    eprintln!("peak RSS {:.1} MB, {:.1} MB over an empty root's", busy_rss as f64 / 1e6, more as f64 / 1e6);
    // Freed blocks kept, 29.7 MB more here (debug build); given back, 16.7 MB.
    assert!(more < 23_000_000, "{:.1} MB more than an empty root's", more as f64 / 1e6);
}

/// Issue 21: `files` kept every entry its globs matched until its walks
/// were done, to sort them, however few rows its table could take: a root
/// of 500,000 files under /etc/ssh peaked at 127 MB RSS (release). Each
/// match is its row as the walk meets it now.
#[test]
fn files_matches_become_rows_as_met_not_kept() {
    let _turn = turn();
    const FILES: usize = 50_000;
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(root.join("etc/os-release"), "ID=debian\n").unwrap();
    deep_tree(&root.join("etc/ssh"), b"d", 0, FILES, |i| format!("k{i:07}").into_bytes());
    let mut o = CrawlOptions { collectors: Some(vec!["files".into()]), ..opts(root) };
    o.budgets.max_rows_per_table = 1000;
    let ((rows, _), peak) = peak_of(|| crawl_rows(&o));
    eprintln!("peak heap {:.1} MB for {FILES} matches, 1,000 rows", peak as f64 / 1e6);
    assert_eq!(rows["files"].len(), 1000);
    // Kept and sorted, the matches measured 16.1 MB here; as rows, 3.4 MB.
    assert!(peak < 8 << 20, "peak heap {:.1} MB", peak as f64 / 1e6);
}

/// Issue 24 review: rpm databases were read whole before parsing, so a
/// 250 MB file (sparse, or zeros that compress to nothing in a layer) peaked
/// at 283 MB as `Packages` and 541 MB as `rpmdb.sqlite` (our buffer, then
/// SQLite's copy). BerkeleyDB and NDB are now read a page or a blob at a time
/// from the file (NDB keeping 1,000 of its 4 million slot problems here), and
/// SQLite's copy is made straight from it. (SQLite allocates with the system's
/// malloc, which this count does not see: it checks that our buffer is gone.)
#[test]
fn rpm_databases_are_not_read_into_a_buffer_of_their_size() {
    let _turn = turn();
    const SIZE: u64 = 64 << 20;
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let dir = root.join("var/lib/rpm");
    std::fs::create_dir_all(&dir).unwrap();
    // A BerkeleyDB hash metadata page (little-endian) over 16,384 empty 4 KiB pages, none of them written.
    let mut meta = vec![0u8; 512];
    meta[12..16].copy_from_slice(&0x0006_1561u32.to_le_bytes());
    meta[16..20].copy_from_slice(&9u32.to_le_bytes());
    meta[20..24].copy_from_slice(&4096u32.to_le_bytes());
    meta[32..36].copy_from_slice(&((SIZE / 4096 - 1) as u32).to_le_bytes());
    let f = std::fs::File::create(dir.join("Packages")).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &meta, 0).unwrap();
    f.set_len(SIZE).unwrap();
    // An NDB file header claiming every page holds slots, none of them used (each slot a problem).
    let mut head = b"RpmP".to_vec();
    head.extend_from_slice(&[0; 8]);
    head.extend_from_slice(&((SIZE / 4096) as u32).to_le_bytes());
    let f = std::fs::File::create(dir.join("Packages.db")).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &head, 0).unwrap();
    f.set_len(SIZE).unwrap();
    let f = std::fs::File::create(dir.join("rpmdb.sqlite")).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, b"SQLite format 3\0", 0).unwrap();
    f.set_len(SIZE).unwrap();
    let o = CrawlOptions { collectors: Some(vec!["packages".into()]), ..opts(root) };
    let (c, peak) = peak_of(|| crawl(&o).unwrap());
    eprintln!("peak heap {:.1} MB for three {:.1} MB rpm databases", peak as f64 / 1e6, SIZE as f64 / 1e6);
    let (rows, _) = rows_of(&c.batches.to_vec());
    let errors: Vec<String> = rows["crawl_errors"].iter().map(|r| s(r, "path")).collect();
    assert!(errors.iter().any(|p| p.ends_with("rpmdb.sqlite")), "{errors:?}");
    let ndb = rows["crawl_errors"].iter().filter(|r| s(r, "path").ends_with("Packages.db")).count();
    assert_eq!(ndb, 1001, "the first 1,000 slot problems and a count of the rest");
    // Read whole, each file alone was 64 MiB of heap.
    assert!(peak < 8 << 20, "peak heap {:.1} MB", peak as f64 / 1e6);
}

/// Issue 24: every path a package owns was a key of the owners map, twice
/// with a merged-/usr link (as listed and as the real path): one package
/// whose .list named 1,000,000 files in /bin peaked at 355 MB RSS. An owned
/// path costs 12 bytes of the map now (see `collectors::owners`), and
/// lookups still find it through the link.
#[test]
fn a_huge_file_list_costs_its_paths_hashes_not_their_text() {
    let _turn = turn();
    const FILES: usize = 300_000;
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    std::fs::create_dir_all(root.join("var/lib/dpkg/info")).unwrap();
    std::fs::create_dir_all(root.join("usr/bin")).unwrap();
    std::os::unix::fs::symlink("usr/bin", root.join("bin")).unwrap();
    std::fs::write(root.join("usr/bin/0000007"), b"#!/bin/sh\n").unwrap();
    std::fs::write(root.join("var/lib/dpkg/status"), b"Package: p\nStatus: install ok installed\nVersion: 1\n\n")
        .unwrap();
    let list: String = (0..FILES).map(|i| format!("/bin/{i:07}\n")).collect();
    std::fs::write(root.join("var/lib/dpkg/info/p.list"), list).unwrap();
    let o = CrawlOptions {
        collectors: Some(vec!["packages".into(), "files".into(), "unowned_files".into()]),
        ..opts(root)
    };
    let (c, peak) = peak_of(|| crawl(&o).unwrap());
    eprintln!("peak heap {:.1} MB for {FILES} owned paths", peak as f64 / 1e6);
    assert_eq!(c.batches.rows_of(&PACKAGE_FILES), FILES);
    let (rows, _) = rows_of(&c.batches.to_vec());
    // /usr/bin/0000007 is walked under its real path and owned through /bin.
    assert!(rows.get("unowned_files").is_none_or(|r| r.is_empty()), "{:?}", rows.get("unowned_files"));
    // As two String keys a path, the map alone was about 60 MB.
    assert!(peak < 24 << 20, "peak heap {:.1} MB", peak as f64 / 1e6);
}

/// Issue 24: /etc/passwd and /etc/group were read whole (up to 16 MiB),
/// every record made (one String per group member) before the first row:
/// 16 MB of one-line accounts peaked at 315 MB RSS, 16 MB of groups with
/// 32,000 members each at 514 MB. They are parsed as they are read now, a
/// row made as each line ends and one line held.
#[test]
fn big_account_files_are_parsed_as_they_are_read() {
    let _turn = turn();
    const USERS: usize = 250_000;
    const GROUPS: usize = 64;
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(root.join("etc/passwd"), b"a:x:0:0:b:/c:/d\n".repeat(USERS)).unwrap();
    let mut group = b"g:x:1:".to_vec();
    group.extend_from_slice(&b"a,".repeat(32_000));
    group.push(b'\n');
    std::fs::write(root.join("etc/group"), group.repeat(GROUPS)).unwrap();
    let o = CrawlOptions { collectors: Some(vec!["users".into(), "groups".into()]), ..opts(root) };
    let (c, peak) = peak_of(|| crawl(&o).unwrap());
    eprintln!("peak heap {:.1} MB for {USERS} accounts and {GROUPS} groups of 32,000 members", peak as f64 / 1e6);
    let table = |name: &str| periscope_proto::tables::TABLES.iter().find(|t| t.name == name).unwrap();
    assert_eq!(c.batches.rows_of(table("users")), USERS);
    assert_eq!(c.batches.rows_of(table("groups")), GROUPS);
    // Made before their rows, the records were about 130 MB.
    assert!(peak < 24 << 20, "peak heap {:.1} MB", peak as f64 / 1e6);
}

/// Issue 24: composer's installed.json, .NET's deps.json and npm's
/// package.json were parsed into a whole `serde_json::Value`, and every
/// entry made before the first row: 4 MB of `[0,0,…]` in an installed.json
/// peaked at 99 MB RSS, a deps.json of 1.3M library keys at 395 MB. Only the
/// fields rows use are read into memory now, at most 10,000 entries a file.
#[test]
fn json_manifests_cost_the_fields_rows_use() {
    let _turn = turn();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    for d in ["app/vendor/composer", "app/node_modules/x"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    let mut zeros = b"[".to_vec();
    zeros.extend_from_slice(&b"0,".repeat(1_900_000));
    zeros.extend_from_slice(b"{\"name\":\"psr/log\",\"version\":\"1.1.4\"}]");
    std::fs::write(root.join("app/vendor/composer/installed.json"), &zeros).unwrap();
    let keys: Vec<String> = (0..300_000).map(|i| format!("\"{i:x}/1\":0")).collect();
    std::fs::write(root.join("app/x.deps.json"), format!("{{\"libraries\":{{{}}}}}", keys.join(","))).unwrap();
    zeros.truncate(1 << 20);
    zeros.splice(0..1, b"{\"name\":\"x\",\"version\":\"1\",\"a\":[".iter().copied());
    zeros.truncate((1 << 20) - 2);
    zeros.extend_from_slice(b"]}");
    std::fs::write(root.join("app/node_modules/x/package.json"), &zeros).unwrap();
    drop((zeros, keys));
    let o = CrawlOptions { collectors: Some(vec!["composer".into(), "nuget".into(), "npm".into()]), ..opts(root) };
    let (c, peak) = peak_of(|| crawl(&o).unwrap());
    eprintln!("peak heap {:.1} MB for 7.8 MB of JSON manifests", peak as f64 / 1e6);
    // As whole values, the installed.json alone was about 60 MB of heap, the deps.json 100 MB.
    assert!(peak < 24 << 20, "peak heap {:.1} MB", peak as f64 / 1e6);
    let (rows, _) = rows_of(&c.batches.to_vec());
    let count = |m: &str| rows["packages"].iter().filter(|r| s(r, "manager") == m).count();
    assert_eq!((count("composer"), count("nuget"), count("npm")), (1, 10_000, 1));
    let errors: Vec<String> = rows["crawl_errors"].iter().map(|r| s(r, "message")).collect();
    assert!(errors.len() == 1 && errors[0].contains("290000 entries past the first 10000"), "{errors:?}");
}

/// A Rust binary's `.dep-v0` is the binary's to write: 8 KB of zlib inflate
/// to 8 MiB of `{"packages":[0,0,…]}`, which as a whole `serde_json::Value`
/// peaked at 148 MB RSS in a crawl (and was parsed by three collectors).
/// Only the fields rows use are read, of at most 10,000 entries; the heap
/// holds the inflated text and little else.
#[test]
fn a_dep_v0_list_costs_its_text_not_a_value() {
    use std::io::Write;
    let _turn = turn();
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    z.write_all(b"{\"packages\":[").unwrap();
    z.write_all(&b"0,".repeat(4_194_280)).unwrap();
    z.write_all(b"0]}").unwrap();
    let bomb = z.finish().unwrap();
    assert!(bomb.len() < 16 << 10, "{}", bomb.len());
    let (list, peak) = peak_of(|| periscope_agent::collectors::binaries::parse_dep_v0(&bomb).unwrap());
    eprintln!("peak heap {:.1} MB for {} bytes of .dep-v0", peak as f64 / 1e6, bomb.len());
    assert!(peak < 16 << 20, "peak heap {:.1} MB", peak as f64 / 1e6);
    assert_eq!((list.crates.len(), list.malformed, list.more), (0, 10_000, 4_194_281 - 10_000));
}

/// Go build info is the binary's to write: a 4 MiB `.go.buildinfo` of
/// `dep\ta` lines lists 699,030 modules, each kept (216 MB peak RSS in a
/// crawl, 699,031 packages rows). The first 10,000 are kept, the rest counted.
#[test]
fn go_build_info_costs_the_modules_kept() {
    use periscope_agent::collectors::binaries;
    let _turn = turn();
    let mut m = vec![0u8; 16];
    m.extend_from_slice(&b"dep\ta\n".repeat(699_030));
    m.push(b'\n');
    m.extend_from_slice(&[0u8; 16]);
    let section = binaries::go_buildinfo_section("go1.22", &m);
    drop(m);
    let ((info, rows), peak) = peak_of(|| {
        let info = binaries::parse_go(&section).unwrap();
        let rows = binaries::go_packages(&info).len();
        (info, rows)
    });
    eprintln!("peak heap {:.1} MB for {} bytes of Go build info", peak as f64 / 1e6, section.len());
    assert!(peak < 12 << 20, "peak heap {:.1} MB", peak as f64 / 1e6);
    assert_eq!((info.deps.len(), info.more_deps, rows), (10_000, 689_030, 10_001));
}
