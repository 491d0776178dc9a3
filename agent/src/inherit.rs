//! Containers share what they do not change with their image.
//!
//! An image's inventory is crawled once for the whole fleet. A container adds
//! to it only what its own layers (Docker's writable layer and init layer)
//! and its mounts put in front of the image. So before a container's
//! collectors run, the agent lists those changes — a walk of the container's
//! own layer directories (which hold only what the container wrote) plus,
//! while it runs, the mount points of its mount namespace — and a collector
//! none of whose inputs the changes touch is not run at all: the crawl says,
//! in one `inherited` row per table it fills, that the rows are the image's,
//! and the server shows the image's rows under the container.
//!
//! A change at a path touches an input when one is at or below the other
//! (each component matched as a glob, `**` matching the rest), with two
//! refinements: a plain directory in a layer (there because something in it
//! changed) touches only inputs at or above it, and inputs reached through a
//! symlink of the container's root are also checked at the symlink's target
//! (`/bin/busybox` at `/usr/bin/busybox` on merged-/usr roots). Whenever the
//! changes cannot be listed in full (a layer over budget, an unreadable
//! directory), every collector runs.

use std::path::PathBuf;

use globset::{GlobBuilder, GlobMatcher};
use rustix::fs::FileType;

use crate::collectors::{Collector, CollectorConfig};
use crate::layers::Markers;
use crate::rootfs::{Budgets, Entry, Root};

/// What a container puts in front of its image, where it runs or ran.
#[derive(Debug, Clone)]
pub struct Base {
    /// The image (sha256:...) whose crawl holds the shared rows.
    pub image_id: String,
    /// The container's own layer directories, top first: everything in its
    /// layer stack above the image's layers.
    pub own_layers: Vec<PathBuf>,
    pub markers: Markers,
    /// Host pid of the container's main process while it runs: its mount
    /// points shadow the image too.
    pub pid: Option<i64>,
}

/// Most entries of a container's own layers listed before giving up (and crawling everything).
pub const MAX_CHANGED_ENTRIES: u64 = 200_000;
/// Most bytes of changed paths kept before giving up the same way: long
/// paths (64 KiB of text for a deep non-UTF-8 one) must not make the list
/// cost more than the crawl it saves.
pub const MAX_CHANGED_BYTES: usize = 32 << 20;

/// One change the container made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub path: String,
    /// The path and everything under it are the container's (a file, a
    /// whiteout, an opaque directory, a mount point); false for a directory
    /// that merely holds changes.
    pub whole: bool,
}

/// The changes `base`'s own layers and mounts make; Err when they cannot be listed in full.
pub fn changes(base: &Base, budgets: &Budgets) -> Result<Vec<Change>, String> {
    let mut out = Vec::new();
    let budgets = Budgets { max_entries: budgets.max_entries.min(MAX_CHANGED_ENTRIES), ..*budgets };
    let mut bytes = 0usize;
    for layer in &base.own_layers {
        let root = Root::with_budgets(layer, budgets).map_err(|e| e.to_string())?;
        let mut failed: Option<String> = None;
        let walk = root.walk(
            "/",
            &mut |e: &Entry| {
                if bytes > MAX_CHANGED_BYTES {
                    return false;
                }
                let change = layer_change(&root, e, base.markers);
                bytes += change.path.len();
                out.push(change);
                true
            },
            &mut |e| {
                failed.get_or_insert(e.to_string());
            },
        );
        walk.map_err(|e| format!("{}: {e}", layer.display()))?;
        if bytes > MAX_CHANGED_BYTES {
            return Err(format!("{}: more than {MAX_CHANGED_BYTES} bytes of changed paths", layer.display()));
        }
        if let Some(e) = failed {
            return Err(format!("{}: {e}", layer.display()));
        }
    }
    if let Some(pid) = base.pid {
        let info = std::fs::read_to_string(format!("/proc/{pid}/mountinfo"))
            .map_err(|e| format!("/proc/{pid}/mountinfo: {e}"))?;
        for mount_point in mount_points(&info) {
            if mount_point != "/" {
                out.push(Change { path: mount_point, whole: true });
            }
        }
    }
    Ok(out)
}

/// What one entry of a container's own layer means for the merged view.
fn layer_change(root: &Root, e: &Entry, markers: Markers) -> Change {
    let path = e.path.shown();
    let name = path.rsplit('/').next().unwrap_or("");
    let parent = &path[..path.len() - name.len()];
    if markers.aufs_files() {
        // aufs-style markers: `.wh..wh..opq` makes its directory opaque, `.wh.<name>` deletes <name>.
        if name == ".wh..wh..opq" {
            return Change { path: parent.trim_end_matches('/').to_string(), whole: true };
        }
        if let Some(hidden) = name.strip_prefix(".wh.") {
            return Change { path: format!("{parent}{hidden}"), whole: true };
        }
    }
    // A directory redirected to other lower directories changes everything below it, as an opaque one does.
    let whole = e.kind != FileType::Directory || root.dir_hides_lower(&e.path.raw(), markers);
    Change { path, whole }
}

/// Mount points of a mountinfo file, as its process sees them (octal escapes undone).
pub fn mount_points(mountinfo: &str) -> Vec<String> {
    crate::mounts::parse_mountinfo(mountinfo.as_bytes())
        .into_iter()
        .map(|m| String::from_utf8_lossy(&m.mount_point).into_owned())
        .collect()
}

fn components(p: &str) -> Vec<&str> {
    p.split('/').filter(|c| !c.is_empty()).collect()
}

/// An input pattern, compiled component by component.
struct Pattern {
    parts: Vec<Part>,
}

enum Part {
    Any,
    Literal(String),
    Glob(GlobMatcher),
}

impl Pattern {
    fn new(pattern: &str) -> Pattern {
        let parts = components(pattern)
            .into_iter()
            .map(|c| {
                if c == "**" {
                    Part::Any
                } else if c.contains(['*', '?', '[', '{']) {
                    match GlobBuilder::new(c).literal_separator(true).build() {
                        Ok(g) => Part::Glob(g.compile_matcher()),
                        // An invalid glob reads nothing (the files collector reports it): match anything, to be safe.
                        Err(_) => Part::Any,
                    }
                } else {
                    Part::Literal(c.to_string())
                }
            })
            .collect();
        Pattern { parts }
    }

    /// Whether a change at `path` touches what this pattern names. A `**`
    /// before other components matches any number of them. A whole change
    /// above the pattern touches it — but past such an inner `**` (an input
    /// anywhere in the root, read by a walk that follows no symlink) only
    /// where `may_hold` says the path holds a directory now. A whiteout, file
    /// or symlink a container puts over a directory of its image hides what
    /// was below it; the image's view is not known here, so that change alone
    /// is missed, and the container shows the image's rows from under it (an
    /// over-report: what the container adds below such a pattern is seen).
    fn touched_by(&self, change: &Change, may_hold: &dyn Fn(&str) -> bool) -> bool {
        fn from(parts: &[Part], comps: &[&str], deep: bool, change: &Change, may_hold: &dyn Fn(&str) -> bool) -> bool {
            let Some(part) = parts.first() else {
                // At or below the pattern.
                return true;
            };
            if let Part::Any = part {
                return parts.len() == 1
                    || (0..=comps.len()).any(|k| from(&parts[1..], &comps[k..], true, change, may_hold));
            }
            let Some(c) = comps.first() else {
                // The change is above the pattern: only a change of the whole subtree reaches it.
                return change.whole && (!deep || may_hold(&change.path));
            };
            let matched = match part {
                Part::Literal(l) => l == c,
                Part::Glob(g) => g.is_match(c),
                Part::Any => unreachable!("handled above"),
            };
            matched && from(&parts[1..], &comps[1..], deep, change, may_hold)
        }
        from(&self.parts, &components(&change.path), false, change, may_hold)
    }

    /// Whether a change is at or below what this pattern names.
    fn covers(&self, change: &Change) -> bool {
        let changed = Change { path: change.path.clone(), whole: false };
        self.touched_by(&changed, &|_| false)
    }
}

/// The literal leading components of a pattern, as a path.
fn literal_prefix(pattern: &str) -> Vec<&str> {
    components(pattern).into_iter().take_while(|c| !c.contains(['*', '?', '[', '{'])).collect()
}

/// `pattern`, plus the same pattern at the target of every symlink among its
/// literal leading components in `root` (followed a few hops).
pub fn expand(root: &Root, pattern: &str) -> Vec<String> {
    let mut out = vec![pattern.to_string()];
    let mut i = 0;
    while i < out.len() && out.len() < 16 {
        let p = out[i].clone();
        i += 1;
        let lit = literal_prefix(&p);
        for n in 1..=lit.len() {
            let at = format!("/{}", lit[..n].join("/"));
            let Ok(target) = root.read_link(&at) else { continue };
            let base = if target.starts_with('/') { String::new() } else { format!("/{}", lit[..n - 1].join("/")) };
            let Some(resolved) = normalize(&format!("{base}/{target}")) else { continue };
            let rest: Vec<&str> = components(&p)[n..].to_vec();
            let q = if rest.is_empty() {
                resolved
            } else {
                format!("{}/{}", resolved.trim_end_matches('/'), rest.join("/"))
            };
            if !out.contains(&q) {
                out.push(q);
            }
            break;
        }
    }
    out
}

/// `.` and `..` resolved lexically, clamped at the root (as in-root resolution does).
fn normalize(p: &str) -> Option<String> {
    let mut out: Vec<&str> = Vec::new();
    for c in components(p) {
        match c {
            "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    Some(format!("/{}", out.join("/")))
}

/// Which collectors a container can leave to its image.
pub struct Plan {
    pub image_id: String,
    changes: Vec<Change>,
}

impl Plan {
    pub fn new(image_id: String, changes: Vec<Change>) -> Plan {
        Plan { image_id, changes }
    }

    /// Whether the changes touch `inputs`. An input `!PATTERN` excludes
    /// changes at or below PATTERN (what the collector's walk skips, e.g. the
    /// /proc and /dev mount points every running container has).
    fn touched(&self, root: &Root, inputs: &[String]) -> bool {
        let (excluded, inputs): (Vec<&String>, Vec<&String>) = inputs.iter().partition(|i| i.starts_with('!'));
        let excluded: Vec<Pattern> = excluded.iter().map(|i| Pattern::new(&i[1..])).collect();
        let changes: Vec<&Change> = self.changes.iter().filter(|c| !excluded.iter().any(|x| x.covers(c))).collect();
        let may_hold = |p: &str| root.read_link(p).is_err() && root.stamp(p).is_ok_and(|(_, dir)| dir);
        inputs.iter().flat_map(|i| expand(root, i)).any(|p| {
            let pat = Pattern::new(&p);
            changes.iter().any(|c| pat.touched_by(c, &may_hold))
        })
    }

    /// Whether `c`'s rows in this container equal its image's: nothing it
    /// reads (nor, for collectors that name owning packages, the package
    /// databases) is touched by the container's changes.
    pub fn inherits(&self, c: &Collector, root: &Root, config: &CollectorConfig) -> bool {
        if self.touched(root, &(c.inputs)(config)) {
            return false;
        }
        let packages = crate::collectors::COLLECTORS.iter().find(|x| x.name == "packages");
        !(c.needs_owners && packages.is_some_and(|p| self.touched(root, &(p.inputs)(config))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ch(path: &str, whole: bool) -> Change {
        Change { path: path.into(), whole }
    }

    #[test]
    fn changes_touch_inputs_at_or_below_them_and_whole_subtrees_above() {
        let cases: &[(&str, Change, bool)] = &[
            ("/var/lib/dpkg", ch("/var/lib/dpkg/status", true), true),
            ("/var/lib/dpkg", ch("/var/lib/dpkg/info", false), true),
            ("/var/lib/dpkg", ch("/var/lib", false), false),
            ("/var/lib/dpkg", ch("/var", true), true),
            ("/var/lib/dpkg", ch("/var/lib/apt/lists/x", true), false),
            ("/etc/passwd", ch("/etc/hosts", true), false),
            ("/etc/passwd", ch("/etc", false), false),
            ("/etc/passwd", ch("/etc", true), true),
            ("/etc/cron*/**", ch("/etc/hosts", true), false),
            ("/etc/cron*/**", ch("/etc/cron.d/job", true), true),
            ("/etc/cron*/**", ch("/etc/crontab", true), true),
            ("/home/*/.ssh/**", ch("/home/alice/.ssh/authorized_keys", true), true),
            ("/home/*/.ssh/**", ch("/home/alice/notes", true), false),
            ("/usr/local/bin/*", ch("/usr/local/bin/tool", true), true),
            ("/usr/local/bin/*", ch("/usr/local/lib/x.so", true), false),
            ("/usr", ch("/usr/local/bin/tool", true), true),
            ("/", ch("/anything", true), true),
        ];
        for (pattern, change, want) in cases {
            assert_eq!(Pattern::new(pattern).touched_by(change, &|_| true), *want, "{pattern} vs {change:?}");
        }
    }

    /// A `**` inside a pattern matches any number of components; a whole
    /// change above it touches it only where the path can hold it (not a file).
    #[test]
    fn inner_double_stars_and_what_a_path_can_hold() {
        let dirs = |p: &str| !p.ends_with(".log") && p != "/etc/hosts";
        let cases: &[(&str, Change, bool)] = &[
            ("/**/node_modules/**", ch("/app/node_modules/ms/package.json", true), true),
            ("/**/node_modules/**", ch("/node_modules/x", true), true),
            ("/**/node_modules/**", ch("/a/b/node_modules", false), true),
            ("/**/node_modules/**", ch("/app", true), true),
            ("/**/node_modules/**", ch("/app", false), false),
            ("/**/node_modules/**", ch("/var/log/app.log", true), false),
            ("/**/node_modules/**", ch("/etc/hosts", true), false),
            // Above a pattern without an inner `**`: any whole change, as before.
            ("/var/lib/dpkg", ch("/var/log/app.log", true), false),
            ("/var/lib/dpkg", ch("/var.log", true), false),
            ("/a/b/c", ch("/a/x.log", true), false),
            ("/a/x.log/c", ch("/a/x.log", true), true),
            ("/**/node_modules/**", ch("/app/src/index.js", false), false),
            ("/usr/lib/*/nodejs/**", ch("/usr/lib/x86_64-linux-gnu/nodejs/a/package.json", true), true),
            ("/usr/lib/*/nodejs/**", ch("/usr/lib/x86_64-linux-gnu/libz.so", false), false),
            ("/etc/passwd", ch("/etc", true), true),
        ];
        for (pattern, change, want) in cases {
            assert_eq!(Pattern::new(pattern).touched_by(change, &dirs), *want, "{pattern} vs {change:?}");
        }
        let proc = Pattern::new("/proc/**");
        assert!(proc.covers(&ch("/proc", true)) && proc.covers(&ch("/proc/kcore", true)));
        assert!(!proc.covers(&ch("/", true)) && !proc.covers(&ch("/procs", true)));
    }

    /// Every running container has /proc, /dev and /sys mount points and
    /// /etc/hosts bind-mounted: a collector walking the whole root but those
    /// still leaves its table to the image; a node_modules of its own does not.
    #[test]
    fn excluded_inputs_and_file_mounts_leave_a_whole_root_walk_to_the_image() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("etc")).unwrap();
        std::fs::create_dir_all(tmp.path().join("proc")).unwrap();
        std::fs::write(tmp.path().join("etc/hosts"), "").unwrap();
        let root = Root::open(tmp.path()).unwrap();
        let npm = crate::collectors::collector("npm").unwrap();
        let config = CollectorConfig::default();
        std::os::unix::fs::symlink("/proc/mounts", tmp.path().join("etc/mtab")).unwrap();
        let mounts = vec![
            ch("/proc", true),
            ch("/proc/kcore", true),
            ch("/dev/shm", true),
            ch("/etc/hosts", true),
            ch("/etc/mtab", true),
            ch("/etc", false),
        ];
        assert!(Plan::new("i".into(), mounts.clone()).inherits(npm, &root, &config));
        let mut own = mounts;
        own.push(ch("/app/node_modules/x/package.json", true));
        assert!(!Plan::new("i".into(), own).inherits(npm, &root, &config));
        // A directory the container made opaque or mounted may hold node_modules.
        std::fs::create_dir_all(tmp.path().join("srv")).unwrap();
        assert!(!Plan::new("i".into(), vec![ch("/srv", true)]).inherits(npm, &root, &config));
        // A deleted file (a whiteout: gone) does not; nor, the one miss, a deleted directory above node_modules.
        assert!(Plan::new("i".into(), vec![ch("/etc/group", true)]).inherits(npm, &root, &config));
    }

    #[test]
    fn mountinfo_mount_points_unescape_octal() {
        let info = "22 1 0:21 / / rw - overlay overlay rw\n\
                    30 22 0:5 / /etc/resolv.conf rw - ext4 /dev/vda rw\n\
                    31 22 0:5 / /srv/with\\040space rw - ext4 /dev/vda rw\n";
        assert_eq!(mount_points(info), ["/", "/etc/resolv.conf", "/srv/with space"]);
    }

    #[test]
    fn inputs_behind_symlinks_are_checked_at_their_targets() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("usr/bin")).unwrap();
        std::os::unix::fs::symlink("usr/bin", tmp.path().join("bin")).unwrap();
        std::fs::create_dir_all(tmp.path().join("etc")).unwrap();
        std::os::unix::fs::symlink("../usr/lib/os-release", tmp.path().join("etc/os-release")).unwrap();
        // Hostile: a link that climbs out is clamped at the root.
        std::os::unix::fs::symlink("../../../../../data", tmp.path().join("etc/escape")).unwrap();
        let root = Root::open(tmp.path()).unwrap();
        assert_eq!(expand(&root, "/bin/busybox"), ["/bin/busybox", "/usr/bin/busybox"]);
        assert_eq!(expand(&root, "/etc/os-release"), ["/etc/os-release", "/usr/lib/os-release"]);
        assert_eq!(expand(&root, "/etc/escape/**"), ["/etc/escape/**", "/data/**"]);
        let plan = Plan::new("sha256:x".into(), vec![ch("/usr/bin/busybox", true)]);
        assert!(plan.touched(&root, &["/bin/busybox".into()]));
        assert!(!plan.touched(&root, &["/bin/sh".into()]));
    }

    /// Issue 24, item 2: a container leaves a collector to its image only when
    /// a direct crawl of the container would give the image's rows. Each case
    /// puts one overlay attribute in the container's own layer (a kernel
    /// overlay upper over the image's layers); for every collector the plan
    /// lets inherit, its rows from the container's merged root must equal its
    /// rows from the image's.
    #[test]
    fn inherited_rows_equal_a_direct_crawl_for_every_overlay_attribute() {
        use crate::collectors::{COLLECTORS, Scope, Sink};
        use crate::encode::Common;
        use rustix::fs::XattrFlags;
        let t = tempfile::tempdir().unwrap();
        let (img_top, img_bottom) = (t.path().join("img1"), t.path().join("img0"));
        let w = |p: std::path::PathBuf, c: &str| {
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, c).unwrap();
        };
        w(img_bottom.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n");
        w(img_bottom.join("etc/cron.d/job"), "0 * * * * root /bin/true\n");
        w(img_top.join("attack/evil"), "* * * * * root /usr/local/bin/miner\n");
        w(img_top.join("root/.ssh/authorized_keys"), "ssh-ed25519 OWNER\n");
        w(img_top.join("root/evil_ssh/authorized_keys"), "ssh-ed25519 ATTACKER\n");
        w(img_top.join("usr/local/bin/tool"), "tool");
        let set = |p: &std::path::Path, name: &str, v: &[u8]| rustix::fs::lsetxattr(p, name, v, XattrFlags::empty());
        if let Err(e) = set(&img_top, "trusted.overlay.probe", b"1") {
            println!("SKIPPED: cannot set trusted.* xattrs here ({e}); needs root");
            return;
        }
        type Case = (&'static str, fn(&std::path::Path));
        let cases: &[Case] = &[
            ("absolute redirect", |o| {
                std::fs::create_dir_all(o.join("etc/cron.d")).unwrap();
                xattr(&o.join("etc/cron.d"), "trusted.overlay.redirect", b"/attack");
            }),
            ("relative redirect", |o| {
                std::fs::create_dir_all(o.join("root/.ssh")).unwrap();
                xattr(&o.join("root/.ssh"), "trusted.overlay.redirect", b"evil_ssh");
            }),
            ("opaque y", |o| {
                std::fs::create_dir_all(o.join("etc/cron.d")).unwrap();
                xattr(&o.join("etc/cron.d"), "trusted.overlay.opaque", b"y");
            }),
            ("opaque y newline", |o| {
                std::fs::create_dir_all(o.join("etc/cron.d")).unwrap();
                xattr(&o.join("etc/cron.d"), "trusted.overlay.opaque", b"y\n");
            }),
            ("xattr whiteout", |o| {
                std::fs::create_dir_all(o.join("etc/cron.d")).unwrap();
                std::fs::write(o.join("etc/cron.d/job"), "").unwrap();
                xattr(&o.join("etc/cron.d/job"), "trusted.overlay.whiteout", b"");
                xattr(&o.join("etc/cron.d"), "trusted.overlay.opaque", b"x");
            }),
            ("device whiteout", |o| {
                std::fs::create_dir_all(o.join("usr/local/bin")).unwrap();
                rustix::fs::mknodat(
                    rustix::fs::CWD,
                    o.join("usr/local/bin/tool"),
                    FileType::CharacterDevice,
                    rustix::fs::Mode::empty(),
                    0,
                )
                .unwrap();
            }),
            ("metacopy", |o| {
                std::fs::create_dir_all(o.join("etc")).unwrap();
                std::fs::write(o.join("etc/passwd"), "").unwrap();
                xattr(&o.join("etc/passwd"), "trusted.overlay.metacopy", b"");
            }),
        ];
        fn xattr(p: &std::path::Path, name: &str, v: &[u8]) {
            rustix::fs::lsetxattr(p, name, v, rustix::fs::XattrFlags::empty()).unwrap();
        }
        let common = Common { host: "h".into(), scope: "s".into(), scope_id: "x".into(), crawl_time_us: 1 };
        let config = CollectorConfig::default();
        let rows = |layers: &[PathBuf], c: &Collector| {
            let root = Root::from_layers(layers, Markers::KERNEL_OVERLAY, "t", Budgets::default()).unwrap();
            let scope = Scope { common: common.clone(), root, config: config.clone(), app_files: Default::default() };
            let mut sink = Sink::new(common.clone());
            (c.collect)(&scope, &mut sink);
            sink.finish()
        };
        let image = [img_top.clone(), img_bottom.clone()];
        let mut differing = 0;
        for (i, (name, make)) in cases.iter().enumerate() {
            let own = t.path().join(format!("own{i}"));
            std::fs::create_dir_all(&own).unwrap();
            make(&own);
            let base = Base {
                image_id: "sha256:x".into(),
                own_layers: vec![own.clone()],
                markers: Markers::KERNEL_OVERLAY,
                pid: None,
            };
            let plan = Plan::new("sha256:x".into(), changes(&base, &Budgets::default()).unwrap());
            let container = [own.clone(), img_top.clone(), img_bottom.clone()];
            let croot = Root::from_layers(&container, Markers::KERNEL_OVERLAY, "t", Budgets::default()).unwrap();
            for c in COLLECTORS {
                let (mine, theirs) = (rows(&container, c), rows(&image, c));
                if plan.inherits(c, &croot, &config) {
                    assert!(mine == theirs, "{name}: {} inherited but a direct crawl differs", c.name);
                } else if mine != theirs {
                    differing += 1;
                }
            }
        }
        // The cases do change what collectors see (else the test proves nothing).
        assert!(differing >= 5, "only {differing} collector views changed");
    }

    #[test]
    fn own_layer_entries_become_changes_with_aufs_markers_where_the_driver_writes_them() {
        let tmp = tempfile::tempdir().unwrap();
        let l = tmp.path();
        std::fs::create_dir_all(l.join("var/lib/dpkg")).unwrap();
        std::fs::write(l.join("var/lib/dpkg/.wh.status"), b"").unwrap();
        std::fs::create_dir_all(l.join("opt/app")).unwrap();
        std::fs::write(l.join("opt/app/.wh..wh..opq"), b"").unwrap();
        std::fs::write(l.join("tmp-file"), b"x").unwrap();
        let base =
            |markers| Base { image_id: "sha256:x".into(), own_layers: vec![l.to_path_buf()], markers, pid: None };
        let got = changes(&base(Markers::FUSE_OVERLAYFS), &Budgets::default()).unwrap();
        assert!(got.contains(&ch("/var/lib/dpkg/status", true)), "{got:?}");
        assert!(got.contains(&ch("/opt/app", true)), "{got:?}");
        assert!(got.contains(&ch("/var/lib", false)), "{got:?}");
        assert!(got.contains(&ch("/tmp-file", true)), "{got:?}");
        // Kernel overlay writes no .wh. files: there they are plain names.
        let got = changes(&base(Markers::KERNEL_OVERLAY), &Budgets::default()).unwrap();
        assert!(got.contains(&ch("/var/lib/dpkg/.wh.status", true)), "{got:?}");
        // Over the entry budget: not listed in full, so the caller inherits nothing.
        let tight = Budgets { max_entries: 2, ..Budgets::default() };
        let err = changes(&base(Markers::FUSE_OVERLAYFS), &tight).unwrap_err();
        assert!(err.contains("directory entries"), "{err}");
    }

    /// Issue 24 item 6: a container's own layer of deep non-UTF-8 names
    /// made a change list of 61 KiB paths per entry (200,000 entries
    /// allowed: gigabytes). Past [`MAX_CHANGED_BYTES`] the list is given up
    /// like one over its entry budget: nothing inherited, the container read in full.
    #[test]
    fn a_change_list_of_long_paths_is_given_up_past_its_byte_budget() {
        use std::os::unix::ffi::OsStrExt;
        let tmp = tempfile::tempdir().unwrap();
        let name = std::ffi::OsStr::from_bytes(&[0xff; 255]);
        let mode = rustix::fs::Mode::from_raw_mode(0o755);
        let mut fd = rustix::fs::open(tmp.path(), rustix::fs::OFlags::DIRECTORY, rustix::fs::Mode::empty()).unwrap();
        for _ in 0..60 {
            rustix::fs::mkdirat(&fd, name, mode).unwrap();
            fd = rustix::fs::openat(&fd, name, rustix::fs::OFlags::DIRECTORY, rustix::fs::Mode::empty()).unwrap();
        }
        for i in 0..600 {
            rustix::fs::openat(
                &fd,
                format!("f{i}").as_str(),
                rustix::fs::OFlags::CREATE | rustix::fs::OFlags::WRONLY,
                mode,
            )
            .unwrap();
        }
        let base = Base {
            image_id: "sha256:x".into(),
            own_layers: vec![tmp.path().to_path_buf()],
            markers: Markers::KERNEL_OVERLAY,
            pid: None,
        };
        let err = changes(&base, &Budgets::default()).unwrap_err();
        assert!(err.contains("bytes of changed paths"), "{err}");
    }
}
