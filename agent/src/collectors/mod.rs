//! One collector per table. Each reads a scope through its [`Root`] and fills
//! rows into a [`Sink`]; problems become `crawl_errors` rows, never aborts.
//! Host, container and image are all just roots.

pub mod accounts;
pub mod apk;
pub mod configs;
pub mod dpkg;
pub mod files;
pub mod groups;
pub mod os;
pub mod packages;
pub mod parse;
pub mod rpm;
pub mod unowned;
pub mod users;

use std::collections::HashMap;

use periscope_proto::tables::{self, Table};

use crate::encode::{Common, TableBuilder, Value};
use crate::rootfs::{ReadError, Root};

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
}

/// Rows of every table produced while crawling one scope, plus facts that
/// later collectors use (which package owns which path).
pub struct Sink {
    common: Common,
    builders: Vec<TableBuilder>,
    errors: usize,
    /// Path → owning package, filled by `packages`, read by `files` and `unowned_files`.
    pub owners: HashMap<String, String>,
}

impl Sink {
    pub fn new(common: Common) -> Self {
        Sink { common, builders: Vec::new(), errors: 0, owners: HashMap::new() }
    }

    /// Appends a row to `table`.
    pub fn row(&mut self, table: &'static Table, values: &[(&str, Value<'_>)]) {
        let i = match self.builders.iter().position(|b| b.table().name == table.name) {
            Some(i) => i,
            None => {
                self.builders.push(TableBuilder::new(table));
                self.builders.len() - 1
            }
        };
        self.builders[i].push(&self.common, values);
    }

    /// Records a problem as a `crawl_errors` row.
    pub fn error(&mut self, collector: &str, path: Option<&str>, message: &str) {
        tracing::warn!(collector, path, scope_id = %self.common.scope_id, "{message}");
        self.errors += 1;
        self.row(
            &tables::CRAWL_ERRORS,
            &[("collector", collector.into()), ("path", path.into()), ("message", message.into())],
        );
    }

    /// Records a read problem; the error text already names the path.
    pub fn read_error(&mut self, collector: &str, path: &str, e: &ReadError) {
        self.error(collector, Some(path), &e.to_string());
    }

    pub fn errors(&self) -> usize {
        self.errors
    }

    pub fn common(&self) -> &Common {
        &self.common
    }

    /// Finishes every table that received rows.
    pub fn finish(mut self) -> Vec<arrow_array::RecordBatch> {
        self.builders.iter_mut().filter(|b| !b.is_empty()).map(TableBuilder::finish).collect()
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
pub fn sha256_entry(root: &Root, e: &crate::rootfs::Entry, cap: u64) -> Result<Option<String>, ReadError> {
    use std::os::unix::ffi::OsStrExt;
    sha256_expecting(root, std::ffi::OsStr::from_bytes(&e.raw), Some((e.dev, e.ino)), cap)
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
