//! One collector per table. Each reads a scope through its [`Root`] and fills
//! rows into a [`Sink`]; problems become `crawl_errors` rows, never aborts.
//! Host, container and image are all just roots.

pub mod accounts;
pub mod apk;
pub mod app_files;
pub mod binaries;
pub mod composer;
pub mod configs;
pub mod dpkg;
pub mod embedded;
pub mod files;
pub mod gem;
pub mod groups;
pub mod java;
pub mod json;
pub mod npm;
pub mod nuget;
pub mod os;
pub mod owners;
pub mod packages;
pub mod parse;
pub mod python;
pub mod rpm;
pub mod unowned;
pub mod users;
pub mod zip;

use std::collections::HashMap;

use periscope_proto::tables::{self, Table};

use crate::encode::{Common, TableBuilder, Value};
use crate::rootfs::{Budgets, Entry, ReadError, Root};

/// What the configurable collectors look at.
#[derive(Debug, Clone)]
pub struct CollectorConfig {
    /// Globs (absolute, `*` within a name, `**` across directories) whose matches `files` reports.
    pub file_globs: Vec<String>,
    /// Files whose contents `configs` reports.
    pub config_files: Vec<String>,
    /// Bytes kept per config file.
    pub config_max_bytes: u64,
    /// Regular files up to this size get a sha256.
    pub hash_max_bytes: u64,
}

impl Default for CollectorConfig {
    fn default() -> Self {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect();
        CollectorConfig {
            file_globs: s(&[
                "/etc/passwd",
                "/etc/shadow",
                "/etc/group",
                "/etc/sudoers",
                "/etc/sudoers.d/*",
                "/etc/ld.so.preload",
                "/etc/ssh/**",
                "/etc/cron*/**",
                "/etc/docker/**",
                "/root/.ssh/**",
                "/home/*/.ssh/**",
                "/usr/local/bin/*",
                "/usr/local/sbin/*",
            ]),
            config_files: s(&[
                "/etc/ssh/sshd_config",
                "/etc/sudoers",
                "/etc/docker/daemon.json",
                "/etc/login.defs",
                "/etc/resolv.conf",
                "/etc/hosts",
            ]),
            config_max_bytes: 64 << 10,
            hash_max_bytes: 16 << 20,
        }
    }
}

/// What one crawl reads: a root, the identity stamped on its rows, and what to look at.
pub struct Scope {
    pub common: Common,
    pub root: Root,
    pub config: CollectorConfig,
    /// The application files one walk of the root found (see [`app_files`]), once a collector asked.
    pub app_files: std::cell::RefCell<Option<app_files::AppFiles>>,
}

/// Rows of every table produced while crawling one scope, plus facts that
/// later collectors use (which package owns which path).
///
/// What a scope can put here is bounded whatever its files say: rows and
/// string bytes per table and bytes per value (the [`Budgets`] row limits);
/// past a limit rows are dropped, values cut, and one `crawl_errors` row per
/// table and limit names it. Tables are finished into batches as they fill
/// ([`BATCH_BYTES`], [`BATCH_ROWS`]), so no Arrow string column nears its
/// 2 GiB offset limit and no builder doubles its buffers past a batch.
pub struct Sink {
    common: Common,
    builders: Vec<TableBuilder>,
    /// Batches already finished, in the order they filled (past a few MiB, on disk).
    done: crate::rows::Rows,
    /// Per table: rows and string bytes taken, and which limits it hit (reported once each).
    taken: HashMap<&'static str, Taken>,
    limits: Budgets,
    errors: usize,
    /// Errors that cut a collector short (a budget spent, a panic), not a path's own problem.
    cuts: usize,
    /// The collector running now, named on limit errors.
    collector: &'static str,
    /// Path → owning OS package, filled by `packages`, read by `files` and `unowned_files`,
    /// and by the application collectors for `owner_package`.
    pub owners: owners::Owners,
    /// Path → the Python distribution whose own file list names it (pip's
    /// `RECORD`), filled by `python`: owned for `unowned_files` and `files`,
    /// never an `owner_package` (see [`Sink::any_owner`]).
    pub app_owners: owners::Owners,
    /// ELF files `unowned_files` read and scanned, left for `embedded_libraries` (see [`embedded`]).
    pub elf_scans: embedded::KeptScans,
}

/// A table's batch is finished once its string bytes reach this…
pub const BATCH_BYTES: usize = 8 << 20;
/// …or its rows this.
pub const BATCH_ROWS: usize = 64 * 1024;

/// `crawl_errors` rows kept per scope (all are counted in `crawls.errors`):
/// past a few thousand, more say nothing new and cost what a row bomb does.
pub const MAX_ERROR_ROWS: u64 = 10_000;
/// Bytes of a path or message an error row quotes.
pub const MAX_ERROR_QUOTE: usize = 4096;

#[derive(Default)]
struct Taken {
    rows: u64,
    bytes: u64,
    full: bool,
    cut: bool,
}

impl Sink {
    /// A sink with the default row limits.
    pub fn new(common: Common) -> Self {
        Self::with_budgets(common, &Budgets::default())
    }

    /// A sink whose tables are bounded by `budgets`' row limits.
    pub fn with_budgets(common: Common, budgets: &Budgets) -> Self {
        Sink {
            common,
            builders: Vec::new(),
            done: crate::rows::Rows::new(),
            taken: HashMap::new(),
            limits: *budgets,
            errors: 0,
            cuts: 0,
            collector: "crawl",
            owners: owners::Owners::default(),
            app_owners: owners::Owners::default(),
            elf_scans: embedded::KeptScans::default(),
        }
    }

    /// Names the collector whose rows come next (for limit errors).
    pub fn set_collector(&mut self, name: &'static str) {
        self.collector = name;
    }

    /// Appends a row to `table` (dropped past the table's limits, see [`Sink::try_row`]).
    pub fn row(&mut self, table: &'static Table, values: &[(&str, Value<'_>)]) {
        self.try_row(table, values);
    }

    /// Appends a row to `table`; false when the table is over its limits and
    /// the row was dropped (reported once per table).
    pub fn try_row(&mut self, table: &'static Table, values: &[(&str, Value<'_>)]) -> bool {
        let max = self.limits.max_field_bytes;
        let long = values.iter().any(|(_, v)| matches!(v, Value::Str(s) if s.len() > max));
        let cut_values: Vec<(&str, Value<'_>)>;
        let values = if long {
            cut_values = values
                .iter()
                .map(|&(n, v)| match v {
                    Value::Str(s) => (n, Value::Str(parse::cut(s, max))),
                    v => (n, v),
                })
                .collect();
            &cut_values[..]
        } else {
            values
        };
        let bytes: u64 = values.iter().map(|(_, v)| if let Value::Str(s) = v { s.len() as u64 } else { 0 }).sum();
        let max_rows = self.max_rows(table);
        let is_errors = table.name == tables::CRAWL_ERRORS.name;
        let t = self.taken.entry(table.name).or_default();
        if t.rows >= max_rows || t.bytes + bytes > self.limits.max_table_bytes {
            if !std::mem::replace(&mut t.full, true) {
                let what = if t.rows >= max_rows {
                    format!("more than {max_rows} rows (budget max_rows_per_table)")
                } else {
                    format!("more than {} bytes of strings (budget max_table_bytes)", self.limits.max_table_bytes)
                };
                let message = format!("table {}: {what} in this scope; the rest of its rows are dropped", table.name);
                self.limit_error(&message);
            }
            return false;
        }
        t.rows += 1;
        t.bytes += bytes;
        if long && !std::mem::replace(&mut t.cut, true) && !is_errors {
            let message = format!(
                "table {}: a value longer than {max} bytes was cut to {max} (budget max_field_bytes); later ones are cut silently",
                table.name
            );
            self.limit_error(&message);
        }
        self.push(table, values);
        true
    }

    /// A limit's `crawl_errors` row, past any limit of that table itself.
    fn limit_error(&mut self, message: &str) {
        tracing::warn!(collector = self.collector, scope_id = %self.common.scope_id, "{message}");
        self.errors += 1;
        crate::metrics::crawl_error(self.collector);
        let values = [("collector", self.collector.into()), ("path", Value::Null), ("message", message.into())];
        self.push(&tables::CRAWL_ERRORS, &values);
    }

    fn push(&mut self, table: &'static Table, values: &[(&str, Value<'_>)]) {
        let i = match self.builders.iter().position(|b| b.table().name == table.name) {
            Some(i) => i,
            None => {
                self.builders.push(TableBuilder::new(table));
                self.builders.len() - 1
            }
        };
        let b = &mut self.builders[i];
        b.push(&self.common, values);
        if b.bytes() >= BATCH_BYTES || b.len() >= BATCH_ROWS {
            self.done.push(b.finish());
        }
    }

    /// Whether `table` has hit a limit (its later rows are dropped).
    pub fn is_full(&self, table: &'static Table) -> bool {
        self.taken.get(table.name).is_some_and(|t| t.full)
    }

    /// The rows and string bytes `table` may still take in this scope (none once it is full).
    pub fn room(&self, table: &'static Table) -> (u64, u64) {
        match self.taken.get(table.name) {
            Some(t) if t.full => (0, 0),
            Some(t) => {
                (self.max_rows(table).saturating_sub(t.rows), self.limits.max_table_bytes.saturating_sub(t.bytes))
            }
            None => (self.max_rows(table), self.limits.max_table_bytes),
        }
    }

    fn max_rows(&self, table: &'static Table) -> u64 {
        let max = self.limits.max_rows_per_table;
        if table.name == tables::CRAWL_ERRORS.name { max.min(MAX_ERROR_ROWS) } else { max }
    }

    /// Records a problem as a `crawl_errors` row.
    /// Path and message are quoted up to [`MAX_ERROR_QUOTE`] bytes each; a
    /// longer message loses its middle, so that what went wrong (said last,
    /// after the path) is kept.
    pub fn error(&mut self, collector: &str, path: Option<&str>, message: &str) {
        let path = path.map(|p| parse::cut(p, MAX_ERROR_QUOTE));
        let message = parse::cut_middle(message, MAX_ERROR_QUOTE, MAX_ERROR_QUOTE / 4);
        let message = &*message;
        tracing::warn!(collector, path, scope_id = %self.common.scope_id, "{message}");
        self.errors += 1;
        crate::metrics::crawl_error(collector);
        self.row(
            &tables::CRAWL_ERRORS,
            &[("collector", collector.into()), ("path", path.into()), ("message", message.into())],
        );
    }

    /// Says, as a `crawl_errors` row, what the agent left unread by its
    /// configuration (a refused FUSE or network filesystem): not a problem of
    /// the scope, so not counted in `crawls.errors` and not degrading the crawl.
    pub fn not_read(&mut self, collector: &str, path: &str, message: &str) {
        self.said(collector, Some(path), message);
    }

    /// Says, as a `crawl_errors` row, what the scope does not hold that a
    /// reader might look for (no os-release in an image built FROM scratch):
    /// a fact about the scope, not a failure to read it, so not counted in
    /// `crawls.errors`.
    pub fn absent(&mut self, collector: &str, path: Option<&str>, message: &str) {
        self.said(collector, path, message);
    }

    /// A `crawl_errors` row not counted in `crawls.errors` ([`Sink::not_read`], [`Sink::absent`]).
    fn said(&mut self, collector: &str, path: Option<&str>, message: &str) {
        let path = path.map(|p| parse::cut(p, MAX_ERROR_QUOTE));
        let message = parse::cut(message, MAX_ERROR_QUOTE);
        tracing::info!(collector, path, scope_id = %self.common.scope_id, "{message}");
        self.row(
            &tables::CRAWL_ERRORS,
            &[("collector", collector.into()), ("path", path.into()), ("message", message.into())],
        );
    }

    /// Records a read problem; the error text already names the path. A path
    /// on a refused filesystem is what the configuration asked for ([`Sink::not_read`]).
    pub fn read_error(&mut self, collector: &str, path: &str, e: &ReadError) {
        if e.is_budget() {
            self.cuts += 1;
        }
        match e {
            ReadError::RefusedMount { .. } => self.not_read(collector, path, &e.to_string()),
            _ => self.error(collector, Some(path), &e.to_string()),
        }
    }

    pub fn errors(&self) -> usize {
        self.errors
    }

    /// Errors so far that cut a collector short: a budget spent ([`Sink::read_error`]), a panic.
    pub fn cuts(&self) -> usize {
        self.cuts
    }

    /// Counts an error reported otherwise as one that cut a collector short.
    pub fn mark_cut(&mut self) {
        self.cuts += 1;
    }

    /// The OS package owning `path`, found under it or under the path a
    /// merged-/usr alias (/bin -> usr/bin, see [`usrmerge_aliases`]) makes of it.
    pub fn owner(&self, path: &str, aliases: &[(String, String)]) -> Option<&std::sync::Arc<str>> {
        self.owners.get(path, aliases)
    }

    /// [`Sink::owner`], else the Python distribution pip's file list gives `path` to.
    pub fn any_owner(&self, path: &str, aliases: &[(String, String)]) -> Option<&std::sync::Arc<str>> {
        self.owners.get(path, aliases).or_else(|| self.app_owners.get(path, aliases))
    }

    pub fn common(&self) -> &Common {
        &self.common
    }

    /// Every batch of the tables that received rows, all in memory (for a few rows: see [`Sink::finish_rows`]).
    pub fn finish(self) -> Vec<arrow_array::RecordBatch> {
        self.finish_rows().to_vec()
    }

    /// Every batch of the tables that received rows, as a crawl holds them
    /// (past a few MiB, on disk).
    pub fn finish_rows(mut self) -> crate::rows::Rows {
        let mut out = std::mem::take(&mut self.done);
        for b in self.builders.iter_mut().filter(|b| !b.is_empty()) {
            out.push(b.finish());
        }
        out
    }
}

/// Problems met during a walk, kept until the walk is done (its visitor may
/// be borrowing the sink): at most [`MAX_ERROR_ROWS`], the rest only counted,
/// since a tree can hold millions of problems.
#[derive(Default)]
pub struct WalkErrors {
    kept: Vec<ReadError>,
    more: u64,
}

impl WalkErrors {
    pub fn push(&mut self, e: ReadError) {
        if (self.kept.len() as u64) < MAX_ERROR_ROWS {
            self.kept.push(e);
        } else {
            self.more += 1;
        }
    }

    /// Each kept problem as a `crawl_errors` row of `collector`, and one for the rest.
    pub fn report(self, out: &mut Sink, collector: &str) {
        for e in self.kept {
            out.error(collector, None, &e.to_string());
        }
        if self.more > 0 {
            out.error(collector, None, &format!("{} more problems in this walk were not recorded", self.more));
        }
    }
}

/// Walks each of `dirs` in turn, `visit` seeing every entry with the sink
/// (whether to descend, as [`Root::walk`]); a merged-/usr alias (/bin ->
/// usr/bin) is not walked, its files are met through /usr. The walks'
/// problems become `collector`'s rows ([`WalkErrors`]); a missing directory
/// is none; an exhausted budget ends the walks.
pub fn walk_dirs(
    scope: &Scope,
    out: &mut Sink,
    collector: &str,
    dirs: &[&str],
    visit: &mut dyn FnMut(&Entry, &mut Sink) -> bool,
) {
    for dir in dirs {
        if scope.root.read_link(dir).is_ok() {
            continue;
        }
        let mut errors = WalkErrors::default();
        let r = scope.root.walk(dir, &mut |e: &Entry| visit(e, out), &mut |e| errors.push(e));
        errors.report(out, collector);
        match r {
            Ok(()) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => {
                out.read_error(collector, dir, &e);
                if e.is_budget() {
                    return;
                }
            }
        }
    }
}

/// Read problems of named paths met while rows are being made, said after
/// problems found before them (as when everything was read first): at most
/// [`MAX_ERROR_ROWS`] kept, the rest only counted, as the sink would.
#[derive(Default)]
pub struct ReadErrors {
    /// Path and message as their row quotes them (a problem's own text can
    /// hold a path of 64 KiB), and whether it is a refused mount.
    kept: Vec<(String, String, bool)>,
    more: u64,
}

impl ReadErrors {
    pub fn push(&mut self, path: String, e: ReadError) {
        let refused = matches!(e, ReadError::RefusedMount { .. });
        if (self.kept.len() as u64) < MAX_ERROR_ROWS {
            let path = parse::cut(&path, MAX_ERROR_QUOTE).to_string();
            let message = e.to_string();
            let message = match refused {
                true => parse::cut(&message, MAX_ERROR_QUOTE).to_string(),
                false => parse::cut_middle(&message, MAX_ERROR_QUOTE, MAX_ERROR_QUOTE / 4).into_owned(),
            };
            self.kept.push((path, message, refused));
        } else if !refused {
            self.more += 1;
        }
    }

    /// Each kept problem as a `crawl_errors` row of `collector` (as
    /// [`Sink::read_error`] makes it); the rest counted.
    pub fn report(self, out: &mut Sink, collector: &str) {
        for (path, message, refused) in self.kept {
            if refused {
                out.not_read(collector, &path, &message);
            } else {
                out.error(collector, Some(&path), &message);
            }
        }
        // Past the error rows' limit: counted in `crawls.errors`, as they were, but not kept.
        for _ in 0..self.more {
            out.error(collector, None, "a read problem");
        }
    }
}

/// A collector: fills rows for its table(s) from one scope.
pub type CollectFn = fn(&Scope, &mut Sink);

/// One collector, with what it reads and fills.
pub struct Collector {
    pub name: &'static str,
    pub collect: CollectFn,
    /// The tables it fills (crawl_errors aside).
    pub tables: &'static [&'static Table],
    /// Paths and globs of everything it reads: a container whose own layers
    /// and mounts touch none of them shares its rows with its image (see [`crate::inherit`]).
    pub inputs: fn(&CollectorConfig) -> Vec<String>,
    /// Reads [`Sink::owners`], which `packages` fills.
    pub needs_owners: bool,
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn package_inputs(_: &CollectorConfig) -> Vec<String> {
    let mut v =
        strings(&[packages::DPKG_STATUS, packages::DPKG_STATUS_D, packages::DPKG_INFO, packages::APK_INSTALLED]);
    v.extend(strings(packages::RPM_DIRS));
    v.extend(strings(binaries::DIRS));
    v
}

/// Every collector, in the order they run (`packages` before those that ask who owns a path).
pub const COLLECTORS: &[Collector] = &[
    Collector {
        name: "os",
        collect: os::collect,
        tables: &[&tables::OS],
        inputs: |_| [os::CANDIDATES, os::RELEASE_FILES, os::BUSYBOX].concat().iter().map(|s| s.to_string()).collect(),
        needs_owners: false,
    },
    Collector {
        name: "packages",
        collect: packages::collect,
        tables: &[&tables::PACKAGES, &tables::PACKAGES_NOT_INSTALLED, &tables::PACKAGE_FILES],
        inputs: package_inputs,
        needs_owners: false,
    },
    Collector {
        name: "python",
        collect: python::collect,
        tables: &[&tables::PACKAGES],
        inputs: python::inputs,
        needs_owners: true,
    },
    Collector {
        name: "users",
        collect: users::collect,
        tables: &[&tables::USERS],
        inputs: |_| strings(&[users::PASSWD, users::SHADOW]),
        needs_owners: false,
    },
    Collector {
        name: "groups",
        collect: groups::collect,
        tables: &[&tables::GROUPS],
        inputs: |_| strings(&[groups::GROUP]),
        needs_owners: false,
    },
    Collector {
        name: "configs",
        collect: configs::collect,
        tables: &[&tables::CONFIGS],
        inputs: |c| c.config_files.clone(),
        needs_owners: false,
    },
    Collector {
        name: "files",
        collect: files::collect,
        tables: &[&tables::FILES],
        inputs: |c| c.file_globs.clone(),
        needs_owners: true,
    },
    Collector {
        name: "unowned_files",
        collect: unowned::collect,
        tables: &[&tables::UNOWNED_FILES],
        inputs: |_| strings(unowned::DIRS),
        needs_owners: true,
    },
    // After unowned_files, whose reads of unowned binaries it takes over (see [`embedded`]).
    Collector {
        name: "embedded_libraries",
        collect: embedded::collect,
        tables: &[&tables::EMBEDDED_LIBRARIES],
        inputs: |_| strings(embedded::DIRS),
        needs_owners: true,
    },
    // Walks the whole root: last, so the scope's entry and time budgets go to the collectors above first.
    Collector {
        name: "npm",
        collect: npm::collect,
        tables: &[&tables::PACKAGES],
        inputs: |_| strings(npm::INPUTS),
        needs_owners: true,
    },
    // Walks the whole root too.
    Collector {
        name: "java",
        collect: java::collect,
        tables: &[&tables::PACKAGES],
        inputs: |_| strings(java::INPUTS),
        needs_owners: true,
    },
    Collector {
        name: "gem",
        collect: gem::collect,
        tables: &[&tables::PACKAGES],
        inputs: |_| strings(gem::INPUTS),
        needs_owners: true,
    },
    Collector {
        name: "composer",
        collect: composer::collect,
        tables: &[&tables::PACKAGES],
        inputs: |_| strings(composer::INPUTS),
        needs_owners: true,
    },
    Collector {
        name: "nuget",
        collect: nuget::collect,
        tables: &[&tables::PACKAGES],
        inputs: |_| strings(nuget::INPUTS),
        needs_owners: true,
    },
];

/// The collector named `name`.
pub fn collector(name: &str) -> Option<&'static Collector> {
    COLLECTORS.iter().find(|c| c.name == name)
}

/// Top-level directories that merged-/usr roots make symlinks into /usr, as
/// (alias prefix, real prefix) pairs, e.g. ("/bin/", "/usr/bin/").
pub fn usrmerge_aliases(root: &Root) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for d in ["bin", "sbin", "lib", "lib32", "lib64", "libx32"] {
        if let Ok(target) = root.read_link(format!("/{d}")) {
            let t = target.trim_end_matches('/');
            let real = if t.starts_with('/') { t.to_string() } else { format!("/{t}") };
            if real.starts_with("/usr/") && !real.contains("..") {
                out.push((format!("/{d}/"), format!("{real}/")));
            }
        }
    }
    out
}

/// The path with any merged-/usr alias prefix replaced by its real prefix.
pub fn unalias(path: &str, aliases: &[(String, String)]) -> Option<String> {
    aliases.iter().find(|(a, _)| path.starts_with(a.as_str())).map(|(a, r)| format!("{r}{}", &path[a.len()..]))
}

/// Octal rendering of permission bits, e.g. "4755".
pub fn mode_string(mode: u32) -> String {
    format!("{:04o}", mode & 0o7777)
}

/// Hex SHA-256 of a regular file, or None when it is over `cap` or unreadable
/// (an unreadable file is reported by the caller's collector).
pub fn sha256_file(root: &Root, path: impl AsRef<std::ffi::OsStr>, cap: u64) -> Result<Option<String>, ReadError> {
    sha256_expecting(root, path, None, cap)
}

/// [`sha256_file`] of a walked entry: refused if the path no longer names the inode the walk saw.
pub fn sha256_entry(root: &Root, e: &Entry, cap: u64) -> Result<Option<String>, ReadError> {
    use std::os::unix::ffi::OsStrExt;
    sha256_expecting(root, std::ffi::OsStr::from_bytes(&e.path.raw()), Some((e.dev, e.ino)), cap)
}

fn sha256_expecting(
    root: &Root,
    path: impl AsRef<std::ffi::OsStr>,
    expect: Option<(u64, u64)>,
    cap: u64,
) -> Result<Option<String>, ReadError> {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    match root.stream_expecting(path, expect, cap, |chunk| h.update(chunk)) {
        Ok(_) => Ok(Some(format!("{:x}", h.finalize()))),
        Err(ReadError::TooLarge { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::Array;
    use arrow_array::RecordBatch;
    use arrow_array::cast::AsArray;

    fn common() -> Common {
        Common { host: "h".into(), scope: "image".into(), scope_id: "s".into(), crawl_time_us: 0 }
    }

    fn of<'a>(batches: &'a [RecordBatch], table: &'a Table) -> impl Iterator<Item = &'a RecordBatch> + 'a {
        batches.iter().filter(move |b| table.matches(b.schema_ref()))
    }

    fn messages(batches: &[RecordBatch]) -> Vec<String> {
        of(batches, &tables::CRAWL_ERRORS)
            .flat_map(|b| {
                let m = b.column_by_name("message").unwrap().as_string::<i32>();
                (0..m.len()).map(|i| m.value(i).to_string()).collect::<Vec<_>>()
            })
            .collect()
    }

    fn file(sink: &mut Sink, path: &str) -> bool {
        sink.try_row(
            &tables::PACKAGE_FILES,
            &[("manager", "dpkg".into()), ("package", "p".into()), ("path", path.into())],
        )
    }

    /// Rows per table per scope are capped; the cap is one crawl_errors row
    /// naming it, and other tables still take rows.
    #[test]
    fn rows_past_a_tables_limit_are_dropped_and_reported_once() {
        let b = Budgets { max_rows_per_table: 100, ..Budgets::default() };
        let mut sink = Sink::with_budgets(common(), &b);
        sink.set_collector("packages");
        assert_eq!(sink.room(&tables::PACKAGE_FILES), (100, b.max_table_bytes));
        assert!(file(&mut sink, "/f"));
        assert_eq!(sink.room(&tables::PACKAGE_FILES), (99, b.max_table_bytes - "dpkgp/f".len() as u64));
        let taken = 1 + (0..10_000).filter(|i| file(&mut sink, &format!("/f{i}"))).count();
        assert_eq!(taken, 100);
        assert!(sink.is_full(&tables::PACKAGE_FILES));
        assert_eq!(sink.room(&tables::PACKAGE_FILES), (0, 0));
        assert!(sink.try_row(&tables::OS, &[("id", "debian".into())]));
        let batches = sink.finish();
        assert_eq!(of(&batches, &tables::PACKAGE_FILES).map(RecordBatch::num_rows).sum::<usize>(), 100);
        let m = messages(&batches);
        assert_eq!(m.len(), 1, "{m:?}");
        assert!(m[0].contains("package_files") && m[0].contains("max_rows_per_table"), "{m:?}");
        assert_eq!(of(&batches, &tables::OS).count(), 1);
    }

    /// Long values are cut to the field limit, and a table's string bytes
    /// are capped: a few long names cannot make gigabytes of rows.
    #[test]
    fn long_values_are_cut_and_table_bytes_capped() {
        let b = Budgets { max_field_bytes: 1000, max_table_bytes: 100_000, ..Budgets::default() };
        let mut sink = Sink::with_budgets(common(), &b);
        let long = "é".repeat(10_000); // 20,000 bytes; cut at a char boundary
        let taken = (0..1000).filter(|_| file(&mut sink, &long)).count();
        let batches = sink.finish();
        let paths: Vec<usize> = of(&batches, &tables::PACKAGE_FILES)
            .flat_map(|b| {
                let p = b.column_by_name("path").unwrap().as_string::<i32>();
                (0..p.len()).map(|i| p.value(i).len()).collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(paths.len(), taken);
        assert!(paths.iter().all(|&n| n == 1000), "{:?}", &paths[..paths.len().min(3)]);
        assert!((90..=100).contains(&taken), "{taken}");
        let m = messages(&batches);
        assert_eq!(m.len(), 2, "{m:?}");
        assert!(m.iter().any(|m| m.contains("max_field_bytes")), "{m:?}");
        assert!(m.iter().any(|m| m.contains("max_table_bytes")), "{m:?}");
    }

    /// Error rows are capped lower than data rows (still counted), and quote
    /// bounded paths and messages.
    #[test]
    fn error_rows_are_capped_counted_and_quote_little() {
        let mut sink = Sink::new(common());
        let long = "p".repeat(100_000);
        for _ in 0..(MAX_ERROR_ROWS + 500) {
            sink.error("c", Some(&long), &long);
        }
        assert_eq!(sink.errors() as u64, MAX_ERROR_ROWS + 500 + 1);
        let batches = sink.finish();
        let m = messages(&batches);
        assert_eq!(m.len() as u64, MAX_ERROR_ROWS + 1);
        assert!(m.iter().take(MAX_ERROR_ROWS as usize).all(|m| m.len() == MAX_ERROR_QUOTE));
        assert!(
            m.last().unwrap().contains("crawl_errors") && m.last().unwrap().contains("max_rows_per_table"),
            "{:?}",
            m.last()
        );
        // A message naming a long path still says what went wrong.
        let mut sink = Sink::new(common());
        let path = "/d".repeat(40_000);
        sink.error("c", Some(&path), &format!("{path}: File name too long (os error 36)"));
        let m = messages(&sink.finish());
        assert!(m[0].len() <= MAX_ERROR_QUOTE && m[0].ends_with("/d/d: File name too long (os error 36)"), "{m:?}");
    }

    /// A table's rows are finished into batches as they fill, so no batch's
    /// string column nears Arrow's 2 GiB offset limit (which panicked).
    #[test]
    fn tables_are_split_into_bounded_batches() {
        let mut sink = Sink::new(common());
        let path = "x".repeat(64 << 10);
        for _ in 0..(3 * BATCH_BYTES / path.len() + 1) {
            assert!(file(&mut sink, &path));
        }
        let batches = sink.finish();
        assert!(batches.len() >= 3, "{} batches", batches.len());
        for b in &batches {
            let p = b.column_by_name("path").unwrap().as_string::<i32>();
            assert!(p.value_data().len() <= BATCH_BYTES, "{}", p.value_data().len());
        }
    }
}
