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

/// Heap bytes `f` needed at its peak, above what was allocated before it.
fn peak_of<T>(f: impl FnOnce() -> T) -> (T, usize) {
    static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
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
