//! One walk of the whole root for the collectors whose files are known by
//! name alone wherever they lie: Python metadata (`python`), installed
//! package.json (`npm`), Java archives (`java`), gem specifications (`gem`),
//! Composer's installed.json (`composer`) and .NET deps.json (`nuget`). The
//! first of them to run walks the root once and keeps what all six look for;
//! the others take their part. A scope pays for one walk, not six.
//!
//! No symlink is followed; the kernel's pseudo-filesystems and the container
//! runtimes' storage (crawled as scopes of their own) are skipped. Problems
//! with single entries are reported once, by the collector that walked; a
//! walk cut short by a budget is reported by each collector, since each may
//! miss files past the cut. The walk is its collector's first, and each
//! collector starts with a fresh entry budget (see
//! [`crate::rootfs::Root::fresh_budgets`]), so where a budget cuts it
//! depends on the root alone, not on which collectors ran before: an
//! unchanged root gives the same rows every crawl.

use rustix::fs::FileType;

use super::{Scope, Sink, WalkErrors};
use crate::rootfs::Entry;

/// Top-level directories not walked.
pub const SKIP: &[&str] = &[
    "/proc",
    "/sys",
    "/dev",
    "/run",
    "/var/lib/docker",
    "/var/lib/containerd",
    "/var/lib/containers",
    "/var/lib/kubelet",
];

/// Files kept per collector: each costs about 200 bytes until its collector
/// reads it, and a layer of a few MB can hold a million hard links to one
/// empty `x.egg-info` (220 MB when all were kept). A large Node.js image
/// installs a few thousand package.json.
pub const MAX_MATCHES: usize = 50_000;

/// One collector's files, at most [`MAX_MATCHES`], and how many more matched.
#[derive(Default)]
pub struct Found {
    pub entries: Vec<Entry>,
    pub dropped: u64,
}

impl Found {
    fn push(&mut self, e: &Entry) {
        if self.entries.len() < MAX_MATCHES {
            self.entries.push(e.clone());
        } else {
            self.dropped += 1;
        }
    }
}

/// What the walk found, per collector.
#[derive(Default)]
pub struct AppFiles {
    pub python: Found,
    pub npm: Found,
    pub java: Found,
    pub gem: Found,
    pub composer: Found,
    pub nuget: Found,
    /// Why the walk stopped early, if it did.
    pub cut: Option<String>,
}

/// Whether a walked file is an installed gem specification
/// (`specifications/*.gemspec`, `specifications/default/*.gemspec`).
fn is_gemspec(e: &Entry) -> bool {
    let name = e.path.name();
    if name.len() <= 8 || !name.ends_with(b".gemspec") {
        return false;
    }
    let Some(dir) = e.path.parent() else { return false };
    dir.name() == b"specifications"
        || (dir.name() == b"default" && dir.parent().is_some_and(|d| d.name() == b"specifications"))
}

fn walk(scope: &Scope, out: &mut Sink, collector: &str) -> AppFiles {
    let mut found = AppFiles::default();
    let mut errors = WalkErrors::default();
    let walked = scope.root.walk(
        "/",
        &mut |e: &Entry| {
            if e.kind == FileType::Directory {
                // Whole paths are made only where they decide: the skipped trees lie at most three levels down.
                return e.depth > 3 || !SKIP.contains(&e.path.shown().as_str());
            }
            if e.kind != FileType::RegularFile {
                return false;
            }
            let name = e.path.name();
            if super::python::is_metadata(e) {
                found.python.push(e);
            } else if name == b"package.json" {
                if super::npm::is_installed_manifest(&e.path.shown()) {
                    found.npm.push(e);
                }
            } else if e.size >= 22 && super::java::is_archive_name(name) {
                found.java.push(e);
            } else if is_gemspec(e) {
                found.gem.push(e);
            } else if name == b"installed.json" && e.path.parent().is_some_and(|d| d.name() == b"composer") {
                found.composer.push(e);
            } else if name.len() > 10 && name.ends_with(b".deps.json") {
                found.nuget.push(e);
            }
            false
        },
        &mut |e| errors.push(e),
    );
    errors.report(out, collector);
    found.cut = walked.err().map(|e| e.to_string());
    found
}

/// The files `collector` looks for, walking the root if no collector of the scope has yet.
pub fn take(scope: &Scope, out: &mut Sink, collector: &str, part: fn(&mut AppFiles) -> &mut Found) -> Vec<Entry> {
    let mut cell = scope.app_files.borrow_mut();
    let files = cell.get_or_insert_with(|| walk(scope, out, collector));
    if let Some(why) = &files.cut {
        out.mark_cut();
        out.error(
            collector,
            Some("/"),
            &format!("walk of the root cut short, files past this point are not read: {why}"),
        );
    }
    let found = std::mem::take(part(files));
    if found.dropped > 0 {
        out.mark_cut();
        let msg = format!(
            "{} more files than the {MAX_MATCHES} this collector reads per scope matched; they are not read (budget: files per collector)",
            found.dropped
        );
        out.error(collector, Some("/"), &msg);
    }
    found.entries
}

/// The items a manifest's parser kept, and how many more it listed past its
/// collector's cap (each parser keeps a bounded list, whatever the file says).
#[derive(Debug, Default)]
pub struct Kept<T> {
    pub items: Vec<T>,
    pub dropped: u64,
}

/// Reads each file of `found` (up to `max` bytes), parses it with `parse`,
/// and hands every item to `row` with the file's path and the OS package
/// that owns it. A file that cannot be read or parsed is a crawl error saying
/// it is not `what`, and so are the items past the parser's cap; a spent
/// scope budget ends the loop.
pub fn each_manifest<T, E: std::fmt::Display>(
    scope: &Scope,
    out: &mut Sink,
    collector: &'static str,
    found: Vec<Entry>,
    (max, what): (u64, &str),
    parse: impl Fn(&[u8]) -> Result<Kept<T>, E>,
    mut row: impl FnMut(&mut Sink, T, &str, Option<&str>),
) {
    use std::os::unix::ffi::OsStrExt;
    let aliases = super::usrmerge_aliases(&scope.root);
    for e in found {
        let (path, raw) = (e.path.shown(), e.path.raw());
        let bytes = match scope.root.read_limited(std::ffi::OsStr::from_bytes(&raw), max) {
            Ok(b) => b,
            Err(err) => {
                out.read_error(collector, &path, &err);
                if err.is_budget() {
                    return;
                }
                continue;
            }
        };
        let kept = match parse(&bytes) {
            Ok(kept) => kept,
            Err(err) => {
                out.error(collector, Some(&path), &format!("{path}: not {what}: {err}"));
                continue;
            }
        };
        drop(bytes);
        let owner = out.owner(&path, &aliases).cloned();
        if kept.dropped > 0 {
            let (n, more) = (kept.items.len(), kept.dropped);
            out.error(collector, Some(&path), &format!("{path}: {more} entries past the first {n} are not read"));
        }
        for item in kept.items {
            row(out, item, &path, owner.as_deref());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rootfs::{Budgets, Root};

    /// The four collectors share one walk: with an entry budget that one walk
    /// of the root fits and two do not, each still finds its files and none
    /// reports a cut walk.
    #[test]
    fn four_collectors_one_walk() {
        let tmp = tempfile::tempdir().unwrap();
        let r = tmp.path();
        for i in 0..1000 {
            std::fs::create_dir_all(r.join(format!("srv/d{}", i % 10))).unwrap();
            std::fs::write(r.join(format!("srv/d{}/f{i}", i % 10)), "x").unwrap();
        }
        let pom = b"groupId=g\nartifactId=a\nversion=1\n";
        std::fs::create_dir_all(r.join("app/vendor/composer")).unwrap();
        std::fs::create_dir_all(r.join("gems/specifications")).unwrap();
        std::fs::write(
            r.join("app/a.jar"),
            super::super::zip::tests::build(&[("META-INF/maven/g/a/pom.properties", pom, true)], b""),
        )
        .unwrap();
        std::fs::write(r.join("app/vendor/composer/installed.json"), r#"[{"name":"psr/log","version":"1.1.4"}]"#)
            .unwrap();
        std::fs::write(r.join("gems/specifications/rake-13.0.6.gemspec"), "# stub: rake 13.0.6 ruby lib\n").unwrap();
        std::fs::write(r.join("app/x.deps.json"), r#"{"libraries":{"A/1.0":{"type":"package"}}}"#).unwrap();
        let common =
            crate::encode::Common { host: "h".into(), scope: "image".into(), scope_id: "x".into(), crawl_time_us: 0 };
        let root = Root::with_budgets(r, Budgets { max_entries: 1500, ..Budgets::default() }).unwrap();
        let scope = Scope { common: common.clone(), root, config: Default::default(), app_files: Default::default() };
        let mut sink = Sink::new(common);
        for c in [
            super::super::java::collect,
            super::super::gem::collect,
            super::super::composer::collect,
            super::super::nuget::collect,
        ] {
            c(&scope, &mut sink);
        }
        assert_eq!(sink.errors(), 0);
        let mut text = Vec::new();
        crate::print::print_json_lines(&sink.finish(), &mut text).unwrap();
        let text = String::from_utf8(text).unwrap();
        for m in ["\"maven\"", "\"gem\"", "\"composer\"", "\"nuget\""] {
            assert!(text.contains(m), "{m}: {text}");
        }
    }
}

#[cfg(test)]
mod inherit_tests {
    use crate::inherit::{Change, Plan};

    /// What Docker changes in every running container leaves the four
    /// collectors' rows to the image; a change that can hold their files does not.
    #[test]
    fn docker_own_changes_leave_application_files_to_the_image() {
        let tmp = tempfile::tempdir().unwrap();
        let root = crate::rootfs::Root::open(tmp.path()).unwrap();
        let config = Default::default();
        let docker = [
            ("/etc", false),
            ("/etc/hosts", true),
            ("/etc/resolv.conf", true),
            ("/etc/hostname", true),
            ("/etc/mtab", true),
            ("/dev", true),
            ("/proc", true),
            ("/sys", true),
            ("/.dockerenv", true),
            ("/run/secrets", true),
        ];
        for (name, theirs) in [
            ("java", "/app/lib/log4j-core-2.14.1.jar"),
            ("gem", "/usr/local/bundle/specifications/rack-2.2.3.gemspec"),
            ("composer", "/var/www/html/vendor/composer/installed.json"),
            ("nuget", "/app/App.deps.json"),
        ] {
            let col = crate::collectors::collector(name).unwrap();
            let inherits = |changes: &[(&str, bool)]| {
                let changes = changes.iter().map(|(p, w)| Change { path: p.to_string(), whole: *w }).collect();
                Plan::new("sha256:x".into(), changes).inherits(col, &root, &config)
            };
            assert!(inherits(&docker), "{name}");
            assert!(!inherits(&[(theirs, true)]), "{name}: {theirs}");
            assert!(!inherits(&[("/app", true)]), "{name}: a whole /app replaced");
        }
    }
}
