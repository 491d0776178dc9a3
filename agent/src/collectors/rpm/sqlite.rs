//! rpm's sqlite backend (rpm 4.16+, `lib/backend/sqlite.c`): `rpmdb.sqlite`
//! holds a table `Packages(hnum INTEGER PRIMARY KEY, blob BLOB)` whose blobs
//! are header blobs.
//!
//! SQLite reads the file through [`super::vfs`], a page at a time, straight
//! from the rooted file the collector opened: the database is never copied
//! into memory, and no path is ever opened. The connection is made defensive
//! before the first statement: triggers and views are off, the schema is
//! untrusted, `Packages` must be a plain table whose two columns are stored
//! (not generated), and rows are capped, so a hostile file can only make us
//! read the bytes it already has.

use rusqlite::config::DbConfig;
use rusqlite::limits::Limit;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags, OptionalExtension};

use super::vfs::{self, Pending};
use super::{Each, Errors, MAX_BLOB, RpmPackage, Source, Work, check_blob_len, collect};

/// Most rows read from `Packages` (a large distribution image has ~3000).
const MAX_ROWS: usize = 1_000_000;
const MAGIC: &[u8; 16] = b"SQLite format 3\0";
/// Smallest SQLite file: one 512-byte page.
const MIN_LEN: u64 = 512;

/// Reads every package from the bytes of an `rpmdb.sqlite` file.
pub fn read_sqlite(bytes: &[u8]) -> (Vec<RpmPackage>, Vec<String>) {
    read_sqlite_within(bytes, &mut Work::new(bytes.len(), None))
}

/// [`read_sqlite`] within `work`'s budget and deadline (SQLite's own work
/// is interrupted at the deadline too).
pub fn read_sqlite_within(bytes: &[u8], work: &mut Work) -> (Vec<RpmPackage>, Vec<String>) {
    collect(|each| read_sqlite_from(bytes.to_vec(), work, each))
}

/// [`read_sqlite_within`] from `source` (an open file), which SQLite reads
/// as it needs pages: what it holds in memory does not grow with the file.
/// Each package goes to `each` as it is read, in the table's stored order
/// (see [`read_rows`]); the problems come back.
pub fn read_sqlite_from(source: impl Source + Send + 'static, work: &mut Work, each: Each) -> Vec<String> {
    let conn = match open(Box::new(source), work.deadline).and_then(|c| check_schema(&c).map(|()| c)) {
        Ok(c) => c,
        Err(e) => {
            let late = work.check_time().err().map(|late| format!(" ({late})")).unwrap_or_default();
            return vec![format!("rpmdb.sqlite: {e}{late}")];
        }
    };
    let mut errors = Errors::new("rpmdb.sqlite");
    let read = read_rows(&conn, work, each, &mut errors);
    if let Err(e) = read {
        match work.check_time() {
            Err(late) => errors.push(|| format!("rpmdb.sqlite: {late} (SQLite interrupted: {e})")),
            Ok(()) => errors.push(|| format!("rpmdb.sqlite: reading Packages: {e}")),
        }
    }
    errors.finish()
}

/// A defensive, read-only connection reading `source` through [`vfs`],
/// interrupted past `deadline` from its first step: loading the schema (which
/// the first query or some pragmas do) walks pages the file chose, and
/// nested interior pages can make that walk take forever.
fn open(source: Box<dyn Source + Send>, deadline: Option<std::time::Instant>) -> Result<Connection, String> {
    let len = source.size();
    let mut head = [0u8; 18];
    if len < MIN_LEN || source.read_at(0, &mut head).is_err() || !head.starts_with(MAGIC) {
        return Err(format!("not an SQLite database ({len} bytes, no \"SQLite format 3\" header)"));
    }
    let page_size = match u16::from_be_bytes([head[16], head[17]]) {
        1 => 65536,
        n => u32::from(n),
    };
    if !(512..=65536).contains(&page_size) || !page_size.is_power_of_two() {
        return Err(format!("not an SQLite database: its header's page size is {page_size}"));
    }
    let pending = Pending::new(source)?;
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut conn = Connection::open_with_flags_and_vfs(pending.name(), flags, vfs::NAME)
        .map_err(|e| format!("opening the database: {e}"))?;
    drop(pending);
    if let Some(deadline) = deadline {
        let late = move || std::time::Instant::now() > deadline;
        conn.progress_handler(1000, Some(late)).map_err(|e| format!("setting a deadline on the database: {e}"))?;
    }
    harden(&conn).map_err(|e| format!("configuring the database: {e}"))?;
    // No value SQLite loads may be larger than a header blob we would read: a
    // self-linked overflow chain otherwise makes one TEXT value of a 2 KB file
    // up to 1 GB (SQLite's default limit).
    conn.set_limit(Limit::SQLITE_LIMIT_LENGTH, (MAX_BLOB + 64) as i32)
        .map_err(|e| format!("configuring the database: {e}"))?;
    // The header's suggested cache size (bytes 48..52) is the file's to choose: up
    // to every page read would stay cached. Ours: 2 MiB.
    conn.execute_batch(
        "PRAGMA cache_size = -2048; PRAGMA query_only = ON; PRAGMA cell_size_check = ON; PRAGMA temp_store = MEMORY;",
    )
    .map_err(|e| format!("configuring the database: {e}"))?;
    Ok(conn)
}

fn harden(conn: &Connection) -> rusqlite::Result<()> {
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true)?;
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_TRUSTED_SCHEMA, false)?;
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_TRIGGER, false)?;
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_VIEW, false)?;
    Ok(())
}

/// `Packages` must be an ordinary table with stored `hnum` and `blob` columns.
fn check_schema(conn: &Connection) -> Result<(), String> {
    let kind: Option<(String, Option<String>)> = conn
        .query_row("SELECT type, sql FROM sqlite_schema WHERE name = 'Packages' COLLATE NOCASE", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()
        .map_err(|e| format!("reading the schema: {e}"))?;
    match kind {
        // A virtual table (FTS, R-tree) is a "table" too, whose module would read shadow tables the file wrote.
        Some((kind, sql)) if kind == "table" => {
            let words: Vec<String> =
                sql.unwrap_or_default().split_whitespace().take(2).map(|w| w.to_ascii_uppercase()).collect();
            if words != ["CREATE", "TABLE"] {
                return Err("Packages is not a plain table (a virtual table?)".into());
            }
        }
        Some((other, _)) => return Err(format!("Packages is a {other}, not a table")),
        None => return Err("no Packages table".into()),
    }
    let mut stmt =
        conn.prepare("SELECT name, hidden FROM pragma_table_xinfo('Packages')").map_err(|e| e.to_string())?;
    let cols: Vec<(String, i64)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .and_then(|rows| rows.collect())
        .map_err(|e| format!("reading the Packages columns: {e}"))?;
    for want in ["hnum", "blob"] {
        match cols.iter().find(|(name, _)| name.eq_ignore_ascii_case(want)) {
            Some((_, 0)) => {}
            Some((_, _)) => return Err(format!("Packages.{want} is a generated or hidden column")),
            None => return Err(format!("Packages has no {want} column")),
        }
    }
    Ok(())
}

/// Reads rows in the table's own order. Nothing is asked of SQLite that it
/// must sort: where `hnum` is not the table's key, `ORDER BY hnum` made it
/// copy every row's blob (a 1 MiB column DEFAULT) into a sorter that spilled
/// gigabytes to temporary files before the first row came back, beyond the
/// reach of the per-database work budget.
///
/// Nothing larger than a header is loaded: a blob over [`MAX_BLOB`] is
/// passed over on its length alone, a non-integer `hnum` and a non-blob
/// `blob` on their types (`length()` of a text would load it; `octet_length`
/// does not), and no blob of a row whose `hnum` is not an integer (reaching
/// it would walk the overflow pages of whatever `hnum` holds).
fn read_rows(conn: &Connection, work: &mut Work, each: Each, errors: &mut Errors) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare(
        "SELECT CASE WHEN typeof(hnum) = 'integer' THEN hnum END, CASE WHEN typeof(hnum) = 'integer' AND typeof(blob) = 'blob' AND octet_length(blob) <= ?1 THEN blob END, typeof(blob), octet_length(blob) FROM Packages",
    )?;
    let mut rows = stmt.query([MAX_BLOB as i64])?;
    let mut n = 0;
    while let Some(row) = rows.next()? {
        n += 1;
        if n > MAX_ROWS {
            errors.push(|| format!("rpmdb.sqlite: more than {MAX_ROWS} packages; stopped reading"));
            break;
        }
        let hnum = match row.get_ref(0)? {
            ValueRef::Integer(i) => i,
            _ => {
                errors.push(|| format!("rpmdb.sqlite: row {n}: hnum is not an integer"));
                continue;
            }
        };
        let result = match (row.get_ref(2)?.as_str().unwrap_or(""), row.get_ref(1)?) {
            ("blob", ValueRef::Blob(b)) => match work.parse(b) {
                Ok(r) => r,
                Err(stop) => {
                    errors.push(|| format!("rpmdb.sqlite: {stop}"));
                    break;
                }
            },
            ("blob", _) => Err(check_blob_len(usize::try_from(row.get::<_, i64>(3)?).unwrap_or(usize::MAX))
                .err()
                .unwrap_or_else(|| "blob is unreadable".into())),
            ("null", _) => Err("blob is NULL".into()),
            (other, _) => Err(format!("blob is {other}, not a BLOB")),
        };
        match result {
            Ok(p) => each(hnum, p),
            Err(e) => errors.push(|| format!("rpmdb.sqlite: package hnum {hnum}: {e}")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::rpm::testutil::package_blob;
    use rusqlite::{MAIN_DB, params};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// Builds a database the way rpm lays it out and returns its file bytes.
    fn db_bytes(schema: &str, rows: &[(i64, Option<Vec<u8>>)]) -> Vec<u8> {
        let mut conn = Connection::open_in_memory().expect("open");
        conn.execute_batch(schema).expect("schema");
        for (hnum, blob) in rows {
            conn.execute("INSERT INTO Packages (hnum, blob) VALUES (?1, ?2)", params![hnum, blob]).expect("insert");
        }
        conn.serialize(MAIN_DB).expect("serialize").to_vec()
    }

    const RPM_SCHEMA: &str = "CREATE TABLE Packages (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL);";
    const LOOSE_SCHEMA: &str = "CREATE TABLE Packages (hnum INTEGER PRIMARY KEY, blob);";

    fn names(p: &[RpmPackage]) -> Vec<&str> {
        p.iter().map(|p| p.name.as_str()).collect()
    }

    #[test]
    fn reads_every_package_in_hnum_order() {
        let bytes = db_bytes(
            RPM_SCHEMA,
            &[
                (7, Some(package_blob("zlib", None, "1.2.11", &["/usr/lib64/libz.so.1"]))),
                (2, Some(package_blob("bash", Some(0), "5.1.8", &["/usr/bin/bash", "/usr/bin/sh"]))),
            ],
        );
        let (pkgs, errs) = read_sqlite(&bytes);
        assert_eq!(errs, Vec::<String>::new());
        assert_eq!(names(&pkgs), ["bash", "zlib"]);
        assert_eq!(pkgs[0].epoch, Some(0));
        assert_eq!(pkgs[1].epoch, None);
        assert_eq!(pkgs[0].files, ["/usr/bin/bash", "/usr/bin/sh"]);
    }

    #[test]
    fn a_bad_blob_is_an_error_for_its_hnum_and_the_rest_still_come_back() {
        let bytes = db_bytes(
            LOOSE_SCHEMA,
            &[
                (1, Some(package_blob("a", None, "1", &[]))),
                (2, Some(b"garbage".to_vec())),
                (3, None),
                (4, Some(package_blob("d", Some(4), "1", &[]))),
            ],
        );
        let (pkgs, errs) = read_sqlite(&bytes);
        assert_eq!(names(&pkgs), ["a", "d"]);
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(errs[0].contains("hnum 2") && errs[0].contains("preamble"), "{errs:?}");
        assert!(errs[1].contains("hnum 3") && errs[1].contains("NULL"), "{errs:?}");
    }

    #[test]
    fn a_text_blob_is_an_error() {
        let mut conn = Connection::open_in_memory().expect("open");
        conn.execute_batch(LOOSE_SCHEMA).expect("schema");
        conn.execute("INSERT INTO Packages VALUES (1, 'text')", []).expect("insert");
        let bytes = conn.serialize(MAIN_DB).expect("serialize").to_vec();
        let (pkgs, errs) = read_sqlite(&bytes);
        assert!(pkgs.is_empty());
        assert!(errs.len() == 1 && errs[0].contains("hnum 1") && errs[0].contains("not a BLOB"), "{errs:?}");
    }

    /// rpm leaves its database in WAL mode (header bytes 18 and 19 are 2).
    #[test]
    fn a_wal_mode_file_is_read() {
        let mut bytes = db_bytes(RPM_SCHEMA, &[(1, Some(package_blob("wal", None, "1", &[])))]);
        bytes[18] = 2;
        bytes[19] = 2;
        let (pkgs, errs) = read_sqlite(&bytes);
        assert_eq!((names(&pkgs), errs), (vec!["wal"], vec![]));
    }

    /// A database followed by a terabyte of zeros (a sparse file, or a valid
    /// header over a few MB that compress from hundreds): the packages come
    /// back, and only the pages SQLite needs are read. When the file was
    /// copied into an in-memory database first, its whole length was held.
    #[test]
    fn a_file_far_longer_than_its_database_is_read_a_page_at_a_time() {
        struct Padded {
            db: Vec<u8>,
            len: u64,
            read: Arc<AtomicU64>,
        }
        impl Source for Padded {
            fn size(&self) -> u64 {
                self.len
            }
            fn read_at(&self, at: u64, buf: &mut [u8]) -> std::io::Result<()> {
                self.read.fetch_add(buf.len() as u64, Ordering::Relaxed);
                for (i, b) in buf.iter_mut().enumerate() {
                    *b = usize::try_from(at + i as u64).ok().and_then(|i| self.db.get(i)).copied().unwrap_or(0);
                }
                Ok(())
            }
        }
        let rows: Vec<_> =
            (1..=50).map(|i| (i, Some(package_blob(&format!("p{i}"), None, "1", &["/usr/bin/x"])))).collect();
        let db = db_bytes(RPM_SCHEMA, &rows);
        let db_len = db.len() as u64;
        let read = Arc::new(AtomicU64::new(0));
        let padded = Padded { db, len: 1 << 40, read: read.clone() };
        let (pkgs, errs) = collect(|each| read_sqlite_from(padded, &mut Work::new(usize::MAX, None), each));
        assert_eq!((pkgs.len(), errs), (50, Vec::<String>::new()));
        let read = read.load(Ordering::Relaxed);
        assert!(read <= db_len * 2, "read {read} bytes of a {db_len}-byte database in a 1 TiB file");

        // A blob larger than any real header is skipped without being loaded.
        let huge = vec![0u8; MAX_BLOB + 1];
        let rows = [
            (1, Some(package_blob("a", None, "1", &[]))),
            (2, Some(huge)),
            (3, Some(package_blob("c", None, "1", &[]))),
        ];
        let db = db_bytes(RPM_SCHEMA, &rows);
        let read = Arc::new(AtomicU64::new(0));
        let padded = Padded { db, len: 1 << 40, read: read.clone() };
        let (pkgs, errs) = collect(|each| read_sqlite_from(padded, &mut Work::new(usize::MAX, None), each));
        assert_eq!(names(&pkgs), ["a", "c"]);
        assert!(errs.len() == 1 && errs[0].contains("hnum 2") && errs[0].contains("larger than"), "{errs:?}");
        let read = read.load(Ordering::Relaxed);
        assert!(read < 1 << 20, "read {read} bytes to skip a {}-byte blob", MAX_BLOB + 1);

        // Nor is a value of the wrong type, whatever its length: a text blob
        // (`length()` would load it), a blob hnum.
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(LOOSE_SCHEMA.replace("INTEGER PRIMARY KEY", "").as_str()).unwrap();
        let big = "x".repeat(MAX_BLOB + 1);
        conn.execute("INSERT INTO Packages VALUES (1, ?1)", [&big]).unwrap();
        conn.execute(
            "INSERT INTO Packages VALUES (?1, ?2)",
            params![big.as_bytes(), package_blob("b", None, "1", &[])],
        )
        .unwrap();
        conn.execute("INSERT INTO Packages VALUES (3, ?1)", [package_blob("c", None, "1", &[])]).unwrap();
        let db = conn.serialize(MAIN_DB).unwrap().to_vec();
        drop(conn);
        let read = Arc::new(AtomicU64::new(0));
        let padded = Padded { db, len: 1 << 40, read: read.clone() };
        let (pkgs, errs) = collect(|each| read_sqlite_from(padded, &mut Work::new(usize::MAX, None), each));
        assert_eq!(names(&pkgs), ["c"]);
        assert!(
            errs.len() == 2
                && errs[0].contains("text, not a BLOB")
                && errs[1].contains("row 2: hnum is not an integer"),
            "{errs:?}"
        );
        let read = read.load(Ordering::Relaxed);
        assert!(read < 1 << 20, "read {read} bytes to pass over two {}-byte values", MAX_BLOB + 1);
    }

    /// A schema table whose interior pages each point 60 times at the next:
    /// loading the schema visits its one row 60^4 times (seconds; each level
    /// more, 60 times that). The deadline holds from the connection's first
    /// step, not from the first row of Packages.
    #[test]
    fn a_schema_that_takes_forever_to_load_stops_at_the_deadline() {
        const PAGE: usize = 1024;
        const LEVELS: usize = 4;
        let mut file = vec![0u8; PAGE * (LEVELS + 2)];
        let (leaf, packages) = (LEVELS + 1, LEVELS + 2);
        let h = &mut file[..100];
        h[..16].copy_from_slice(MAGIC);
        h[16..18].copy_from_slice(&(PAGE as u16).to_be_bytes());
        h[18..24].copy_from_slice(&[1, 1, 0, 64, 32, 32]);
        h[24..28].copy_from_slice(&1u32.to_be_bytes()); // change counter…
        h[28..32].copy_from_slice(&(packages as u32).to_be_bytes());
        h[40..44].copy_from_slice(&1u32.to_be_bytes()); // schema cookie
        h[44..48].copy_from_slice(&4u32.to_be_bytes()); // schema format
        h[56..60].copy_from_slice(&1u32.to_be_bytes()); // UTF-8
        h[92..96].copy_from_slice(&1u32.to_be_bytes()); // …and the version it is valid for
        h[96..100].copy_from_slice(&3_045_000u32.to_be_bytes());
        // Interior table pages 1..=LEVELS: 60 cells and the right-most pointer, all to the next page.
        for level in 1..=LEVELS {
            let page = &mut file[(level - 1) * PAGE..level * PAGE];
            let at = if level == 1 { 100 } else { 0 };
            let cells = 60usize;
            let content = PAGE - cells * 5;
            page[at] = 0x05;
            page[at + 3..at + 5].copy_from_slice(&(cells as u16).to_be_bytes());
            page[at + 5..at + 7].copy_from_slice(&(content as u16).to_be_bytes());
            page[at + 8..at + 12].copy_from_slice(&((level + 1) as u32).to_be_bytes());
            for i in 0..cells {
                let cell = content + i * 5;
                page[at + 12 + 2 * i..at + 14 + 2 * i].copy_from_slice(&(cell as u16).to_be_bytes());
                page[cell..cell + 4].copy_from_slice(&((level + 1) as u32).to_be_bytes());
                page[cell + 4] = 1; // rowid key 1
            }
        }
        // The leaf: one schema row naming Packages, rooted at the last page (an empty leaf).
        let sql = b"CREATE TABLE Packages (hnum INTEGER PRIMARY KEY, blob BLOB)";
        let (ty, name) = (b"table", b"Packages");
        let mut record =
            vec![7, (13 + 2 * ty.len()) as u8, (13 + 2 * name.len()) as u8, (13 + 2 * name.len()) as u8, 1];
        record.extend_from_slice(&[0x80 | ((13 + 2 * sql.len()) >> 7) as u8, ((13 + 2 * sql.len()) & 0x7f) as u8]);
        record.extend_from_slice(ty);
        record.extend_from_slice(name);
        record.extend_from_slice(name);
        record.push(packages as u8);
        record.extend_from_slice(sql);
        let mut cell = vec![record.len() as u8, 1];
        cell.extend_from_slice(&record);
        let page = &mut file[(leaf - 1) * PAGE..leaf * PAGE];
        let content = PAGE - cell.len();
        page[0] = 0x0d;
        page[3..5].copy_from_slice(&1u16.to_be_bytes());
        page[5..7].copy_from_slice(&(content as u16).to_be_bytes());
        page[8..10].copy_from_slice(&(content as u16).to_be_bytes());
        page[content..].copy_from_slice(&cell);
        let page = &mut file[(packages - 1) * PAGE..];
        page[0] = 0x0d;
        page[5..7].copy_from_slice(&(PAGE as u16).to_be_bytes());

        // Python's sqlite3, with no deadline, takes 8 s to load this schema here and then calls it malformed.
        let start = std::time::Instant::now();
        let mut work = Work::new(file.len(), Some(start + std::time::Duration::from_millis(200)));
        let (pkgs, errs) = read_sqlite_within(&file, &mut work);
        let took = start.elapsed();
        assert!(pkgs.is_empty());
        assert!(errs.len() == 1 && errs[0].contains("wall time"), "{errs:?}");
        assert!(took < std::time::Duration::from_secs(3), "the schema took {took:?} to give up on");
    }

    /// FTS5 says its virtual tables are of type "table", and its module
    /// would read shadow tables the file wrote: refused before any query.
    #[test]
    fn a_virtual_packages_table_is_refused() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE VIRTUAL TABLE Packages USING fts5(hnum, blob)").unwrap();
        let bytes = conn.serialize(MAIN_DB).unwrap().to_vec();
        let (pkgs, errs) = read_sqlite(&bytes);
        assert!(pkgs.is_empty());
        assert!(errs.len() == 1 && errs[0].contains("not a plain table"), "{errs:?}");
    }

    /// The header's suggested cache size (bytes 48..52) would keep up to every
    /// page read in memory; ours is 2 MiB whatever the file says.
    #[test]
    fn the_files_cache_size_is_not_ours() {
        let mut bytes = db_bytes(RPM_SCHEMA, &[(1, Some(package_blob("a", None, "1", &[])))]);
        bytes[48..52].copy_from_slice(&0x7fff_ffffu32.to_be_bytes());
        let conn = open(Box::new(bytes), None).unwrap();
        check_schema(&conn).unwrap();
        let size: i64 = conn.pragma_query_value(None, "cache_size", |r| r.get(0)).unwrap();
        assert_eq!(size, -2048);
    }

    /// Files that are not an rpm database at all: no packages, one error.
    #[test]
    fn unreadable_files_give_one_clear_error() {
        let good =
            db_bytes(RPM_SCHEMA, &(1..200).map(|i| (i, Some(package_blob("p", None, "1", &[])))).collect::<Vec<_>>());
        let mut garbage = MAGIC.to_vec();
        garbage.resize(4096, 0xa5);
        let mut zeros = MAGIC.to_vec();
        zeros.resize(4096, 0);
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            ("empty", Vec::new(), "not an SQLite database"),
            ("text", b"hello, world".to_vec(), "not an SQLite database"),
            ("magic then garbage", garbage, "rpmdb.sqlite: "),
            ("magic then zeros (a sparse file)", zeros, "its header's page size is 0"),
            ("truncated to two pages", good[..8192].to_vec(), "rpmdb.sqlite: "),
            (
                "no Packages table",
                db_bytes("CREATE TABLE Other (x); CREATE TABLE Packages2 (hnum, blob);", &[]),
                "no Packages table",
            ),
            (
                "Packages is a view",
                db_bytes(
                    "CREATE TABLE t (hnum, blob); CREATE VIEW Packages AS WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x AS hnum, zeroblob(100000000) AS blob FROM c;",
                    &[],
                ),
                "Packages is a view",
            ),
            (
                "a generated blob column",
                db_bytes("CREATE TABLE Packages (hnum INTEGER PRIMARY KEY, blob AS (zeroblob(1000000000)));", &[]),
                "Packages.blob is a generated or hidden column",
            ),
            (
                "no blob column",
                db_bytes("CREATE TABLE Packages (hnum INTEGER PRIMARY KEY, data BLOB);", &[]),
                "Packages has no blob column",
            ),
        ];
        for (what, bytes, needle) in cases {
            let (pkgs, errs) = read_sqlite(&bytes);
            assert!(pkgs.is_empty(), "{what}: {pkgs:?}");
            assert_eq!(errs.len(), 1, "{what}: {errs:?}");
            assert!(errs[0].contains(needle), "{what}: {:?} does not contain {needle:?}", errs[0]);
        }
    }

    /// Rows shorter than the table take their blob from the column's DEFAULT:
    /// one stored blob, parsed once per row (a 16 MB file meant a million
    /// 67 ms parses). The headers parsed may add up to the file's length only.
    #[test]
    fn a_blob_shared_by_every_row_is_parsed_no_more_than_the_file_holds() {
        use crate::collectors::rpm::testutil::{fat_package_blob, sqlite_default_bomb};
        let blob = fat_package_blob(2000, 20);
        let bytes = sqlite_default_bomb(&blob, 2000);
        assert!(bytes.len() < 200_000, "{}", bytes.len());
        let mut work = Work::new(bytes.len(), None);
        let (pkgs, errs) = read_sqlite_within(&bytes, &mut work);
        let bound = (bytes.len() as u64 + crate::collectors::rpm::SLACK) / blob.len() as u64;
        assert!(work.headers <= bound, "{} headers parsed from a {}-byte file", work.headers, bytes.len());
        assert!(pkgs.len() as u64 >= work.headers - 1, "{} of {}", pkgs.len(), work.headers);
        assert!(errs.iter().any(|e| e.contains("bytes per database")), "{errs:?}");
    }

    /// The review's sort bomb: `hnum` is not the table's key, so `ORDER BY
    /// hnum` made SQLite copy each row's 1 MiB DEFAULT blob into a sorter
    /// (gigabytes of temporary files, all before the first row and the work
    /// budget) until the deadline. Read in the table's order, the first rows
    /// come back at once and the header budget stops the rest.
    #[test]
    fn a_table_whose_hnum_is_not_its_key_is_not_sorted_by_sqlite() {
        use crate::collectors::rpm::testutil::{package_blob, sqlite_default_bomb_keyed};
        let mut blob = package_blob("p", None, "1", &["/a"]);
        blob.resize(1 << 20, 0);
        let bytes = sqlite_default_bomb_keyed(&blob, 4000, "INTEGER");
        let started = std::time::Instant::now();
        let mut work = Work::new(bytes.len(), Some(started + std::time::Duration::from_secs(5)));
        let (pkgs, errs) = read_sqlite_within(&bytes, &mut work);
        assert!(!errs.iter().any(|e| e.contains("wall time")), "{errs:?}");
        assert!(errs.iter().any(|e| e.contains("bytes per database")), "{errs:?}");
        assert!(!pkgs.is_empty() && work.headers <= 3, "{} packages, {} headers", pkgs.len(), work.headers);
        assert!(started.elapsed().as_secs() < 5, "{:?}", started.elapsed());
    }

    /// Past the scope's deadline no header is parsed: a scope that was given
    /// up stops costing CPU (the parse loop used to run on, unwatched).
    #[test]
    fn no_header_is_parsed_past_the_deadline() {
        let rows: Vec<_> = (1..50).map(|i| (i, Some(package_blob("p", None, "1", &["/a"])))).collect();
        let bytes = db_bytes(RPM_SCHEMA, &rows);
        let past = std::time::Instant::now();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let mut work = Work::new(bytes.len(), Some(past));
        let (pkgs, errs) = read_sqlite_within(&bytes, &mut work);
        assert_eq!((pkgs.len(), work.headers), (0, 0));
        assert!(errs.iter().any(|e| e.contains("wall time")), "{errs:?}");
        // Without a deadline the same file reads in full.
        assert_eq!(read_sqlite(&bytes).0.len(), 49);
    }

    /// Damaged files must come back as packages and errors, never a panic.
    #[test]
    fn truncations_and_corruptions_never_panic() {
        let bytes = db_bytes(
            RPM_SCHEMA,
            &(1..40).map(|i| (i, Some(package_blob("p", Some(1), "1", &["/a/b"])))).collect::<Vec<_>>(),
        );
        for n in (0..bytes.len()).step_by(211) {
            let _ = read_sqlite(&bytes[..n]);
        }
        for i in (0..bytes.len()).step_by(53) {
            let mut b = bytes.clone();
            b[i] ^= 0x5a;
            let (pkgs, errs) = read_sqlite(&b);
            assert!(pkgs.len() + errs.len() >= 1);
        }
    }
}
