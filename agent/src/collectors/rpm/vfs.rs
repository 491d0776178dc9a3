//! A read-only SQLite VFS whose one file is a [`Source`]: SQLite reads the
//! database a page at a time, as it needs it, from the rooted file the
//! collector already opened. Nothing is copied first, so what reading an
//! `rpmdb.sqlite` holds in memory is SQLite's page cache and the blobs being
//! parsed, whatever the file's length (a valid header over 250 MB of zeros
//! cost 270 MB when the file was copied into an in-memory database).
//!
//! No path is ever opened: the name SQLite is given is a key into [`PENDING`],
//! where the caller left the source; every other file SQLite asks for (a
//! journal, a WAL, a temporary file) does not exist. The file reports itself
//! immutable, so SQLite takes no locks and looks for no journal.
//!
//! Written on `rusqlite::ffi` (the bindings the bundled SQLite already
//! ships) rather than a VFS crate: `sqlite-plugin` generates its bindings
//! with bindgen at build time (libclang, and more compile time on two cores),
//! and `sqlite-vfs` has not been released since 2022.

use std::ffi::{CStr, c_char, c_int, c_void};
use std::ptr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use rusqlite::ffi;

use super::Source;

/// The name the VFS is registered under.
pub const NAME: &str = "periscope-rpmdb";
const NAME_C: &CStr = c"periscope-rpmdb";
/// Longest name SQLite will give us ("rpmdb-" and a u64).
const MAX_PATH: c_int = 64;

type Boxed = Box<dyn Source + Send>;

/// Sources left for [`x_open`] to take, by the id in the database's name.
static PENDING: Mutex<Vec<(u64, Boxed)>> = Mutex::new(Vec::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// A source handed to SQLite: open a connection on [`Self::name`] with the
/// VFS [`NAME`]; the source leaves [`PENDING`] when SQLite opens it, and is
/// dropped when the connection closes. Dropping this takes it back if SQLite
/// never opened it.
pub struct Pending {
    id: u64,
}

impl Pending {
    pub fn new(source: Boxed) -> Result<Self, String> {
        register()?;
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        PENDING.lock().unwrap_or_else(|e| e.into_inner()).push((id, source));
        Ok(Pending { id })
    }

    pub fn name(&self) -> String {
        format!("rpmdb-{}", self.id)
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        PENDING.lock().unwrap_or_else(|e| e.into_inner()).retain(|(id, _)| *id != self.id);
    }
}

fn take(name: &CStr) -> Option<Boxed> {
    let id: u64 = name.to_str().ok()?.strip_prefix("rpmdb-")?.parse().ok()?;
    let mut pending = PENDING.lock().unwrap_or_else(|e| e.into_inner());
    let at = pending.iter().position(|(i, _)| *i == id)?;
    Some(pending.swap_remove(at).1)
}

/// Registers the VFS once per process (not as the default).
fn register() -> Result<(), String> {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        let vfs = Box::leak(Box::new(ffi::sqlite3_vfs {
            iVersion: 2,
            szOsFile: std::mem::size_of::<File>() as c_int,
            mxPathname: MAX_PATH,
            pNext: ptr::null_mut(),
            zName: NAME_C.as_ptr(),
            pAppData: ptr::null_mut(),
            xOpen: Some(x_open),
            xDelete: Some(x_delete),
            xAccess: Some(x_access),
            xFullPathname: Some(x_full_pathname),
            xDlOpen: Some(x_dl_open),
            xDlError: Some(x_dl_error),
            xDlSym: Some(x_dl_sym),
            xDlClose: Some(x_dl_close),
            xRandomness: Some(x_randomness),
            xSleep: Some(x_sleep),
            xCurrentTime: Some(x_current_time),
            xGetLastError: Some(x_get_last_error),
            xCurrentTimeInt64: Some(x_current_time_int64),
            xSetSystemCall: None,
            xGetSystemCall: None,
            xNextSystemCall: None,
        }));
        // SAFETY: `vfs` is leaked, so it outlives every connection; its callbacks below
        // uphold SQLite's VFS contract for a read-only, lock-free, single-file store.
        match unsafe { ffi::sqlite3_vfs_register(vfs, 0) } {
            ffi::SQLITE_OK => Ok(()),
            rc => Err(format!("registering the read-through SQLite VFS: error {rc}")),
        }
    })
    .clone()
}

/// SQLite's file object: its base, then ours.
#[repr(C)]
struct File {
    base: ffi::sqlite3_file,
    source: Boxed,
}

static METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 1,
    xClose: Some(x_close),
    xRead: Some(x_read),
    xWrite: Some(x_write),
    xTruncate: Some(x_truncate),
    xSync: Some(x_sync),
    xFileSize: Some(x_file_size),
    xLock: Some(x_lock),
    xUnlock: Some(x_lock),
    xCheckReservedLock: Some(x_check_reserved_lock),
    xFileControl: Some(x_file_control),
    xSectorSize: Some(x_sector_size),
    xDeviceCharacteristics: Some(x_device_characteristics),
    xShmMap: None,
    xShmLock: None,
    xShmBarrier: None,
    xShmUnmap: None,
    xFetch: None,
    xUnfetch: None,
};

unsafe extern "C" fn x_open(
    _vfs: *mut ffi::sqlite3_vfs,
    name: ffi::sqlite3_filename,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    // SAFETY: SQLite gives us `szOsFile` writable bytes at `file`; it calls xClose only
    // when pMethods is set, which happens after `source` is written.
    unsafe {
        (*file).pMethods = ptr::null();
        if name.is_null() || flags & ffi::SQLITE_OPEN_MAIN_DB == 0 {
            return ffi::SQLITE_CANTOPEN;
        }
        let Some(source) = take(CStr::from_ptr(name)) else {
            return ffi::SQLITE_CANTOPEN;
        };
        let file = file.cast::<File>();
        ptr::addr_of_mut!((*file).source).write(source);
        (*file).base.pMethods = &METHODS;
        if !out_flags.is_null() {
            *out_flags = ffi::SQLITE_OPEN_READONLY;
        }
    }
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_close(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: only called on a file x_open filled in; the source is dropped once.
    unsafe {
        ptr::drop_in_place(ptr::addr_of_mut!((*file.cast::<File>()).source));
        (*file).pMethods = ptr::null();
    }
    ffi::SQLITE_OK
}

/// rpm keeps its database in WAL mode (header bytes 18 and 19 are 2); the
/// `-wal` file is not ours to read, so the main file is read as a rollback
/// journal database (1): what it holds is what we report.
const WAL_VERSION_BYTES: std::ops::Range<u64> = 18..20;

unsafe extern "C" fn x_read(file: *mut ffi::sqlite3_file, buf: *mut c_void, amount: c_int, offset: i64) -> c_int {
    let (Ok(amount), Ok(offset)) = (usize::try_from(amount), u64::try_from(offset)) else {
        return ffi::SQLITE_IOERR_READ;
    };
    // SAFETY: `file` was filled in by x_open; SQLite gives `amount` writable bytes at `buf`.
    let (source, out) =
        unsafe { (&(*file.cast::<File>()).source, std::slice::from_raw_parts_mut(buf.cast::<u8>(), amount)) };
    let have = usize::try_from(source.size().saturating_sub(offset)).unwrap_or(usize::MAX).min(amount);
    if source.read_at(offset, &mut out[..have]).is_err() {
        return ffi::SQLITE_IOERR_READ;
    }
    for at in WAL_VERSION_BYTES {
        if let Some(b) = at.checked_sub(offset).and_then(|i| out[..have].get_mut(i as usize))
            && *b == 2
        {
            *b = 1;
        }
    }
    if have < amount {
        out[have..].fill(0); // as SQLite requires of a short read
        return ffi::SQLITE_IOERR_SHORT_READ;
    }
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_write(_: *mut ffi::sqlite3_file, _: *const c_void, _: c_int, _: i64) -> c_int {
    ffi::SQLITE_READONLY
}

unsafe extern "C" fn x_truncate(_: *mut ffi::sqlite3_file, _: i64) -> c_int {
    ffi::SQLITE_READONLY
}

unsafe extern "C" fn x_sync(_: *mut ffi::sqlite3_file, _: c_int) -> c_int {
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_file_size(file: *mut ffi::sqlite3_file, size: *mut i64) -> c_int {
    // SAFETY: `file` was filled in by x_open; `size` is SQLite's out parameter.
    unsafe { *size = i64::try_from((*file.cast::<File>()).source.size()).unwrap_or(i64::MAX) };
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_lock(_: *mut ffi::sqlite3_file, _: c_int) -> c_int {
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_check_reserved_lock(_: *mut ffi::sqlite3_file, out: *mut c_int) -> c_int {
    // SAFETY: SQLite's out parameter.
    unsafe { *out = 0 };
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_file_control(_: *mut ffi::sqlite3_file, _: c_int, _: *mut c_void) -> c_int {
    ffi::SQLITE_NOTFOUND
}

unsafe extern "C" fn x_sector_size(_: *mut ffi::sqlite3_file) -> c_int {
    512
}

unsafe extern "C" fn x_device_characteristics(_: *mut ffi::sqlite3_file) -> c_int {
    ffi::SQLITE_IOCAP_IMMUTABLE
}

unsafe extern "C" fn x_delete(_: *mut ffi::sqlite3_vfs, _: *const c_char, _: c_int) -> c_int {
    ffi::SQLITE_IOERR_DELETE
}

/// No other file exists: no journal, no WAL.
unsafe extern "C" fn x_access(_: *mut ffi::sqlite3_vfs, _: *const c_char, _: c_int, out: *mut c_int) -> c_int {
    // SAFETY: SQLite's out parameter.
    unsafe { *out = 0 };
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_full_pathname(
    _: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    n_out: c_int,
    out: *mut c_char,
) -> c_int {
    // SAFETY: `name` is a NUL-terminated string; SQLite gives `n_out` bytes at `out`.
    unsafe {
        let name = CStr::from_ptr(name).to_bytes_with_nul();
        if name.len() > usize::try_from(n_out).unwrap_or(0) {
            return ffi::SQLITE_CANTOPEN;
        }
        ptr::copy_nonoverlapping(name.as_ptr().cast::<c_char>(), out, name.len());
    }
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_dl_open(_: *mut ffi::sqlite3_vfs, _: *const c_char) -> *mut c_void {
    ptr::null_mut()
}

unsafe extern "C" fn x_dl_error(_: *mut ffi::sqlite3_vfs, n: c_int, out: *mut c_char) {
    if n > 0 {
        // SAFETY: SQLite gives `n` bytes at `out`.
        unsafe { *out = 0 };
    }
}

unsafe extern "C" fn x_dl_sym(
    _: *mut ffi::sqlite3_vfs,
    _: *mut c_void,
    _: *const c_char,
) -> Option<unsafe extern "C" fn(*mut ffi::sqlite3_vfs, *mut c_void, *const c_char)> {
    None
}

unsafe extern "C" fn x_dl_close(_: *mut ffi::sqlite3_vfs, _: *mut c_void) {}

unsafe extern "C" fn x_randomness(_: *mut ffi::sqlite3_vfs, n: c_int, out: *mut c_char) -> c_int {
    // Nothing here needs randomness (no temporary file names): zeros will do.
    if let Ok(len) = usize::try_from(n) {
        // SAFETY: SQLite gives `n` bytes at `out`.
        unsafe { ptr::write_bytes(out, 0, len) };
    }
    n
}

unsafe extern "C" fn x_sleep(_: *mut ffi::sqlite3_vfs, micros: c_int) -> c_int {
    std::thread::sleep(std::time::Duration::from_micros(u64::try_from(micros).unwrap_or(0)));
    micros
}

/// Milliseconds since the Julian epoch, as SQLite counts time.
fn julian_millis() -> i64 {
    const UNIX_EPOCH_JULIAN_MS: i64 = 210_866_760_000_000;
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    UNIX_EPOCH_JULIAN_MS + i64::try_from(since.as_millis()).unwrap_or(0)
}

unsafe extern "C" fn x_current_time(_: *mut ffi::sqlite3_vfs, out: *mut f64) -> c_int {
    // SAFETY: SQLite's out parameter.
    unsafe { *out = julian_millis() as f64 / 86_400_000.0 };
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_current_time_int64(_: *mut ffi::sqlite3_vfs, out: *mut i64) -> c_int {
    // SAFETY: SQLite's out parameter.
    unsafe { *out = julian_millis() };
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_get_last_error(_: *mut ffi::sqlite3_vfs, _: c_int, _: *mut c_char) -> c_int {
    0
}
