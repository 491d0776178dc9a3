//! Crawls one scope: runs every collector over its root and finishes with the
//! `crawls` row that marks the crawl complete.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use arrow_array::RecordBatch;
use periscope_proto::tables::{self, Table, scope};

use crate::collectors::{COLLECTORS, Collector, CollectorConfig, Scope, Sink};
use crate::encode::Common;
use crate::rootfs::{Budgets, DEFAULT_MAX_FILE_BYTES, Root, RootError};
use crate::rows::Rows;

pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");

#[derive(Debug, Clone)]
pub struct CrawlOptions {
    /// Root directory of the scope on this machine.
    pub root: PathBuf,
    /// Host name stamped on rows; this machine's name when None.
    pub host: Option<String>,
    /// host | container | image.
    pub scope: String,
    /// Scope identity; derived from the root when None.
    pub scope_id: Option<String>,
    pub max_file_bytes: u64,
    /// Other per-scope budgets (max_file_bytes above wins over budgets.max_file_bytes).
    pub budgets: Budgets,
    pub config: CollectorConfig,
    /// Collectors to run, by name; all when None.
    pub collectors: Option<Vec<String>>,
    /// Docker discovery (containers, images), for [`crawl_async`].
    pub docker: RuntimeMode,
    /// containerd discovery (containers and tasks of every namespace), for [`crawl_async`].
    pub containerd: RuntimeMode,
    /// Let containers share with their image what they did not change
    /// (see [`crate::inherit`]): `inherited` rows instead of re-read tables,
    /// which only a server turns back into rows. Off for printed crawls.
    pub inherit: bool,
    /// Fingerprints of the last spooled crawl of each scope (the daemon's):
    /// a collector whose inputs' fingerprint is the same is not run, its
    /// tables reported `unread` (see [`crate::fingerprint`]). None: always read.
    pub fingerprints: Option<crate::fingerprint::Known>,
    /// Read FUSE and network filesystems mounted below a scope's root too
    /// (`--read-network-fs`); by default they are refused (see [`crate::mounts`]).
    pub read_network_fs: bool,
    /// With [`CrawlOptions::fingerprints`]: a collector whose inputs are too
    /// large to fingerprint (a walk of a host's whole tree) runs at most once
    /// per this period and scope, its tables `unread` in between (see
    /// [`crate::fingerprint::window`]). Zero: it runs every crawl.
    pub rewalk_large: std::time::Duration,
}

impl Default for CrawlOptions {
    fn default() -> Self {
        CrawlOptions {
            root: PathBuf::from("/"),
            host: None,
            scope: scope::HOST.to_string(),
            scope_id: None,
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
            budgets: Budgets::default(),
            config: CollectorConfig::default(),
            collectors: None,
            docker: RuntimeMode::Auto,
            containerd: RuntimeMode::Auto,
            inherit: false,
            fingerprints: None,
            read_network_fs: false,
            rewalk_large: std::time::Duration::ZERO,
        }
    }
}

/// The result of crawling one scope: its tables' batches (past a few MiB
/// waiting on disk, see [`Rows`]), the `crawls` batch last.
#[derive(Debug)]
pub struct Crawl {
    pub batches: Rows,
    pub rows: usize,
    pub errors: usize,
    pub common: Common,
    /// Whether the collectors ran to the end (not given up by the watchdog, not refused a root).
    pub complete: bool,
    /// Root the scope was read through, as the `crawls` row names it.
    pub root: String,
    pub duration_ms: i64,
    /// Fingerprints taken this crawl, per collector that ran or was skipped without errors.
    pub fingerprints: Vec<(&'static str, crate::fingerprint::Fingerprint)>,
    /// Tables of collectors not run because their inputs' fingerprint did not change.
    pub unread: Vec<&'static Table>,
}

/// Whether `path` is this machine's own root mounted elsewhere (a DaemonSet's
/// hostPath of `/` at /host, with the host's PID namespace): it is PID 1's
/// root directory, or, where PID 1 may not be inspected (a sandbox's init),
/// its `proc` is a proc filesystem of the agent's own PID namespace.
fn is_init_root(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    if let (Ok(a), Ok(b)) = (std::fs::metadata(path), std::fs::metadata("/proc/1/root")) {
        return a.dev() == b.dev() && a.ino() == b.ino();
    }
    // `proc` itself, never through a symlink an untrusted tree could plant: a proc filesystem (not a
    // directory an image could fill) whose `self` names this process in this PID namespace.
    use rustix::fs::{Mode, OFlags};
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let Ok(root) = rustix::fs::open(path, flags, Mode::empty()) else { return false };
    let Ok(proc) = rustix::fs::openat(&root, "proc", flags, Mode::empty()) else { return false };
    let is_proc = rustix::fs::fstatfs(&proc).is_ok_and(|st| st.f_type == libc::PROC_SUPER_MAGIC);
    is_proc
        && rustix::fs::readlinkat(&proc, "self", Vec::new())
            .is_ok_and(|l| l.as_bytes() == std::process::id().to_string().as_bytes())
}

/// This machine's host name.
pub fn hostname() -> String {
    gethostname::gethostname().to_string_lossy().into_owned()
}

fn now_us() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or(0)
}

/// The scope id: the root's /etc/machine-id when it has one, otherwise the host
/// name for `/` and the root's path for any other directory.
fn derive_scope_id(root: &Root, path: &Path, host: &str) -> String {
    if let Ok(b) = root.read_limited("/etc/machine-id", 256) {
        let id = String::from_utf8_lossy(&b).trim().to_string();
        if !id.is_empty() && id.chars().all(|c| c.is_ascii_hexdigit()) {
            return id;
        }
    }
    if path == Path::new("/") || is_init_root(path) {
        host.to_string()
    } else {
        std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf()).display().to_string()
    }
}

/// Whether to ask a container runtime's API (Docker Engine, containerd) what it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum RuntimeMode {
    /// When crawling the host's own `/` and the runtime's socket is there
    /// (Docker: DOCKER_HOST or /var/run/docker.sock; containerd: CONTAINERD_ADDRESS or its usual sockets).
    #[default]
    Auto,
    /// Always; an unreachable runtime is a crawl_errors row.
    On,
    Off,
}

impl RuntimeMode {
    /// Whether to ask the runtime: `live` when crawling the host's own /,
    /// `present` when its socket is there.
    pub fn wanted(self, live: bool, present: bool) -> bool {
        match self {
            RuntimeMode::Off => false,
            RuntimeMode::On => true,
            RuntimeMode::Auto => live && present,
        }
    }
}

impl CrawlOptions {
    /// Crawling the agent's own machine (scope host, root /): live state and runtime discovery belong here.
    /// Also when the root is the host's `/` mounted into the agent's container
    /// (a DaemonSet's read-only hostPath at /host, with the host's PID namespace).
    pub fn is_live(&self) -> bool {
        self.scope == scope::HOST && (self.root == Path::new("/") || is_init_root(&self.root))
    }

    /// The host name rows are stamped with: `--host` (PERISCOPE_HOST), else for
    /// a host's root mounted into the agent's container that root's
    /// /etc/hostname (the container's own name is not the host's), else this machine's.
    pub fn host_name(&self) -> String {
        if let Some(h) = &self.host {
            return h.clone();
        }
        if self.root != Path::new("/") && self.is_live() {
            let named = Root::open(&self.root).ok().and_then(|r| r.read_limited("/etc/hostname", 256).ok());
            let name = named.map(|b| String::from_utf8_lossy(&b).trim().to_string()).unwrap_or_default();
            if !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.') {
                return name;
            }
        }
        hostname()
    }
}

/// Crawls one scope, with runtime discovery rows in it when `opts.docker` and
/// `opts.containerd` say so. When discovery ran, every container and image it
/// found is crawled too, as its own scope: running containers through their
/// `/proc/<pid>/root`, stopped and never-started ones and images through
/// their layer directories. The first crawl is `opts`'s scope.
pub async fn crawl_async(opts: CrawlOptions) -> Result<Vec<Crawl>, RootError> {
    let d = discover(&opts).await;
    crawl_discovered(opts, d, &Default::default(), &Default::default()).await
}

/// What the container runtimes reported, before any filesystem is read.
#[derive(Debug)]
pub struct Discovery {
    live: bool,
    docker: Option<Result<crate::discover::docker::Inventory, String>>,
    containerd: Option<crate::discover::containerd::Inventory>,
    snapshot_layers: std::collections::HashMap<String, Result<(Vec<PathBuf>, crate::layers::Markers), String>>,
}

impl Discovery {
    /// Ids of the images found, whose filesystems a crawl would read.
    pub fn image_ids(&self) -> Vec<String> {
        match &self.docker {
            Some(Ok(inv)) => inv.images.iter().filter_map(|(i, _)| i.id.clone()).collect(),
            _ => Vec::new(),
        }
    }

    /// Containers that are not running, each with a key that changes whenever
    /// its filesystem may have: a stopped container's layers change only by
    /// running it again, which moves its start and finish times.
    pub fn stopped_keys(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if let Some(Ok(inv)) = &self.docker {
            for c in &inv.containers {
                let st = c.state.clone().unwrap_or_default();
                if st.pid.unwrap_or(0) <= 0 {
                    let key = format!("{:?}|{:?}|{:?}", st.status, st.started_at, st.finished_at);
                    out.extend(c.id.clone().map(|id| (id, key)));
                }
            }
        }
        for c in self.containerd.iter().flat_map(|i| &i.containers).filter(|c| c.running_pid().is_none()) {
            let t = c.task.as_ref();
            let key = format!(
                "{:?}|{:?}|{:?}",
                c.meta.updated_at.as_ref().map(|t| (t.seconds, t.nanos)),
                t.map(|t| t.status),
                t.and_then(|t| t.exited_at.as_ref()).map(|t| (t.seconds, t.nanos))
            );
            out.push((c.meta.id.clone(), key));
        }
        out
    }
}

/// Asks the runtimes `opts` enables what this host runs.
pub async fn discover(opts: &CrawlOptions) -> Discovery {
    use crate::discover::{containerd, docker};
    // Live state belongs to the machine the agent runs on: only when crawling its own /.
    let live = opts.is_live();
    let timeout = std::time::Duration::from_secs(30);
    let inventory =
        if opts.docker.wanted(live, docker::configured()) { Some(docker::inventory(timeout).await) } else { None };
    let sockets = containerd::sockets();
    let ctrd = if opts.containerd.wanted(live, !sockets.is_empty()) {
        let mut inv = containerd::inventory(&sockets, timeout).await;
        if sockets.is_empty() {
            inv.errors.push(("containerd".into(), "no containerd socket found; set CONTAINERD_ADDRESS".into()));
        }
        Some(inv)
    } else {
        None
    };
    // Docker on the containerd image store reports no layer directories for
    // its containers: their filesystems are containerd snapshots (namespace
    // moby, key = container id, snapshotter = the driver name it reports).
    let mut snapshot_layers: std::collections::HashMap<String, Result<(Vec<PathBuf>, crate::layers::Markers), String>> =
        Default::default();
    if let Some(Ok(inv)) = &inventory {
        for c in &inv.containers {
            let (Some(id), Some(gd)) = (&c.id, &c.graph_driver) else { continue };
            let stopped = c.state.as_ref().and_then(|s| s.pid).unwrap_or(0) <= 0;
            if stopped && docker::layer_dirs(&gd.data).is_empty() && !sockets.is_empty() {
                let mounts = containerd::snapshot_mounts(&sockets, "moby", &gd.name, id, timeout).await;
                snapshot_layers.insert(id.clone(), mounts.and_then(|m| containerd::snapshot_layers(&m)));
            }
        }
    }
    Discovery { live, docker: inventory, containerd: ctrd, snapshot_layers }
}

/// Crawls `opts`'s scope with the discovery rows, then every container and
/// image `d` found, except the images and stopped containers in `skip`
/// (their inventory is known already and cannot have changed: an image id
/// names fixed content, a stopped container changes only by running).
/// Images are crawled before containers: with `opts.inherit`, a Docker
/// container shares its image's rows when the image is one of `stored`
/// (the server has its inventory) or was crawled in full just now.
pub async fn crawl_discovered(
    opts: CrawlOptions,
    d: Discovery,
    skip: &std::collections::HashSet<String>,
    stored: &std::collections::HashSet<String>,
) -> Result<Vec<Crawl>, RootError> {
    use crate::discover::{containerd, docker};
    let Discovery { live, docker: inventory, containerd: ctrd, mut snapshot_layers } = d;
    let skip = skip.clone();
    let mut inheritable = stored.clone();
    let join = tokio::task::spawn_blocking(move || {
        // Docker's own containers also appear in containerd's `moby` namespace: Docker's report wins.
        let docker_ids: std::collections::BTreeSet<String> = match &inventory {
            Some(Ok(inv)) => inv.containers.iter().filter_map(|c| c.id.clone()).collect(),
            _ => Default::default(),
        };
        let ctrd_containers: Vec<&containerd::Container> =
            ctrd.iter().flat_map(|i| &i.containers).filter(|c| !docker_ids.contains(&c.meta.id)).collect();
        let mut running: Vec<(String, i64)> = match &inventory {
            Some(Ok(inv)) => docker::running(inv),
            _ => Vec::new(),
        };
        running.extend(ctrd_containers.iter().filter_map(|c| Some((c.meta.id.clone(), c.running_pid()?))));
        let host = crawl_with(&opts, |sink| {
            match &inventory {
                Some(Ok(inv)) => docker::fill(inv, sink),
                Some(Err(e)) => sink.error("docker", None, e),
                None => {}
            }
            if let Some(inv) = &ctrd {
                containerd::fill(inv, &docker_ids, sink);
            }
            crate::discover::cgroups::fill(&running, sink);
            if live {
                crate::discover::host::fill(sink);
                let attribution = crate::discover::processes::Attribution::new(&running);
                crate::discover::processes::fill(sink, &attribution);
                crate::discover::sockets::fill(sink, &attribution);
                crate::discover::netmount::fill_interfaces(sink);
                crate::discover::netmount::fill_mounts(sink);
            }
        })?;
        let mut crawls = vec![host];
        let host = crawls[0].common.host.clone();
        let mut known: std::collections::HashSet<String> = std::collections::HashSet::new();
        let mut bases = Default::default();
        if let Some(Ok(inv)) = &inventory {
            // Every image through its layers, first: containers may share its rows.
            for (id, layers, markers) in docker::image_layers(inv).into_iter().filter(|(id, ..)| !skip.contains(id)) {
                let c = crawl_layers(&opts, scope::IMAGE, &id, Ok((layers, markers)), &host, None);
                if c.complete {
                    inheritable.insert(id);
                }
                crawls.push(c);
            }
            let all = docker::bases(inv);
            crate::quarantine::read_through(all.iter().map(|(c, b)| read_through(&host, c, &b.image_id)), true);
            if opts.inherit {
                bases = all;
                bases.retain(|_, b: &mut crate::inherit::Base| inheritable.contains(&b.image_id));
            }
        }
        for (id, pid) in &running {
            known.insert(id.clone());
            let base = bases.get(id).cloned().map(|b| crate::inherit::Base { pid: Some(*pid), ..b });
            crawls.push(crawl_container(&opts, id, *pid, &host, base));
        }
        if let Some(Ok(inv)) = &inventory {
            // Stopped and never-started containers, through their layers.
            for (id, layers, markers) in docker::stopped(inv).into_iter().filter(|(id, ..)| !skip.contains(id)) {
                let (layers, base) = match snapshot_layers.remove(&id) {
                    Some(from_snapshot) => (from_snapshot, None),
                    None => (Ok((layers, markers)), bases.get(&id).cloned()),
                };
                crawls.push(crawl_layers(&opts, scope::CONTAINER, &id, layers, &host, base));
            }
        }
        // containerd containers without a running task, through their snapshot's layers.
        for c in ctrd_containers.iter().filter(|c| c.running_pid().is_none() && !skip.contains(&c.meta.id)) {
            let layers = match &c.mounts {
                Some(Ok(m)) => containerd::snapshot_layers(m),
                Some(Err(e)) => {
                    Err(format!("snapshotter {} has no mounts for {}: {e}", c.meta.snapshotter, c.meta.snapshot_key))
                }
                None => Err("the container has no snapshot (its root filesystem is not one containerd manages)".into()),
            };
            known.insert(c.meta.id.clone());
            crawls.push(crawl_layers(&opts, scope::CONTAINER, &c.meta.id, layers, &host, None));
        }
        // Runtime-agnostic fallback: containers only their processes' cgroups reveal.
        if live {
            for (id, pid) in crate::discover::processes::cgroup_containers() {
                if known.insert(id.clone()) {
                    crawls.push(crawl_container(&opts, &id, pid, &host, None));
                }
            }
        }
        Ok(crawls)
    });
    join.await.expect("crawl task panicked")
}

/// A container's scope key and that of the image it is read through (see [`crate::quarantine`]).
fn read_through(host: &str, container: &str, image: &str) -> (String, String) {
    (format!("{host}/{}/{container}", scope::CONTAINER), format!("{host}/{}/{image}", scope::IMAGE))
}

/// Crawls the one container or image a Docker event named, as its own scope:
/// running containers through /proc/<pid>/root, the others through their
/// layers. No host rows: the container's settings arrive with the next full
/// crawl. None when it is already gone or the engine did not answer (the
/// next full crawl reconciles).
pub async fn crawl_docker_change(
    opts: &CrawlOptions,
    docker: &bollard::Docker,
    change: &crate::discover::docker::Change,
    inheritable: &std::collections::HashSet<String>,
) -> Option<Crawl> {
    use crate::discover::docker::{Target, target};
    let (id, image) = change;
    let (id, found, base) = match target(docker, id, *image).await {
        Ok(Some(t)) => t,
        Ok(None) => return None,
        Err(e) => {
            tracing::warn!("cannot look up {id} after its event: {e}");
            return None;
        }
    };
    let opts = opts.clone();
    let kind = if *image { scope::IMAGE } else { scope::CONTAINER };
    let host = opts.host_name();
    if let (false, Some(b)) = (*image, &base) {
        crate::quarantine::read_through([read_through(&host, &id, &b.image_id)], false);
    }
    let base = base.filter(|b| opts.inherit && inheritable.contains(&b.image_id));
    let crawl = tokio::task::spawn_blocking(move || match found {
        Target::Running(pid, layers, markers) => {
            let budgets = Budgets { max_file_bytes: opts.max_file_bytes, ..opts.budgets };
            match crate::discover::docker::open_container_root(pid, &id, budgets, opts.read_network_fs) {
                Ok(root) => {
                    let base = base.map(|b| crate::inherit::Base { pid: Some(pid), ..b });
                    let (common, shown) = (container_common(&id, &host), format!("/proc/{pid}/root"));
                    run_collectors(&opts, root, common, shown, base, |_| {})
                }
                // It exited since the event (a short-lived container): its layers are still there.
                Err(_) => crawl_layers(&opts, kind, &id, Ok((layers, markers)), &host, base),
            }
        }
        Target::Layers(layers, markers) => crawl_layers(&opts, kind, &id, Ok((layers, markers)), &host, base),
    });
    crawl.await.ok()
}

/// Crawls a stopped container or an image by merging its layer directories
/// in userspace (nothing is mounted); missing layer data is an error row.
fn crawl_layers(
    opts: &CrawlOptions,
    kind: &str,
    id: &str,
    layers: Result<(Vec<PathBuf>, crate::layers::Markers), String>,
    host: &str,
    base: Option<crate::inherit::Base>,
) -> Crawl {
    let budgets = Budgets { max_file_bytes: opts.max_file_bytes, ..opts.budgets };
    let common =
        Common { host: host.to_string(), scope: kind.into(), scope_id: id.to_string(), crawl_time_us: now_us() };
    let shown = layers.as_ref().ok().and_then(|(l, _)| l.first()).map(|p| p.display().to_string()).unwrap_or_default();
    let root = match layers {
        Err(e) => Err(format!("{kind} {id}: {e}")),
        Ok((layers, _)) if layers.is_empty() => {
            Err(format!("{kind} {id}: the storage driver reports no layer directories"))
        }
        Ok((layers, markers)) => Root::from_layers(&layers, markers, &shown, budgets)
            // A container's top layer is its upper directory; an image has none.
            .map(|r| if kind == scope::CONTAINER { r.with_upper_layer() } else { r })
            .map_err(|e| e.to_string()),
    };
    match root {
        Ok(root) => run_collectors(opts, root, common, shown, base, |_| {}),
        Err(e) => {
            let mut sink = Sink::new(common.clone());
            sink.error(kind, None, &e);
            incomplete(seal(sink, common, shown, Instant::now()))
        }
    }
}

fn incomplete(mut c: Crawl) -> Crawl {
    c.complete = false;
    c
}

/// Crawls one running container; a container that cannot be opened (it
/// stopped, or its pid was reused) yields a crawl with that error row.
fn crawl_container(opts: &CrawlOptions, id: &str, pid: i64, host: &str, base: Option<crate::inherit::Base>) -> Crawl {
    let budgets = Budgets { max_file_bytes: opts.max_file_bytes, ..opts.budgets };
    let common = container_common(id, host);
    match crate::discover::docker::open_container_root(pid, id, budgets, opts.read_network_fs) {
        Ok(root) => run_collectors(opts, root, common, format!("/proc/{pid}/root"), base, |_| {}),
        Err(e) => {
            let mut sink = Sink::new(common.clone());
            sink.error("container", None, &e);
            incomplete(seal(sink, common, format!("/proc/{pid}/root"), Instant::now()))
        }
    }
}

fn container_common(id: &str, host: &str) -> Common {
    Common { host: host.to_string(), scope: scope::CONTAINER.into(), scope_id: id.to_string(), crawl_time_us: now_us() }
}

pub fn crawl(opts: &CrawlOptions) -> Result<Crawl, RootError> {
    crawl_with(opts, |_| {})
}

/// Crawls one scope; `extra` adds rows gathered elsewhere (runtime APIs) before the crawl is sealed.
pub fn crawl_with(opts: &CrawlOptions, extra: impl FnOnce(&mut Sink)) -> Result<Crawl, RootError> {
    let budgets = Budgets { max_file_bytes: opts.max_file_bytes, ..opts.budgets };
    let mut root = Root::with_budgets(&opts.root, budgets)?;
    if !opts.read_network_fs {
        root = root.refuse_mounts(crate::mounts::MountTable::below_dir(&opts.root));
    }
    let host = opts.host_name();
    let scope_id = opts.scope_id.clone().unwrap_or_else(|| derive_scope_id(&root, &opts.root, &host));
    let common = Common { host, scope: opts.scope.clone(), scope_id, crawl_time_us: now_us() };
    Ok(run_collectors(opts, root, common, opts.root.display().to_string(), None, extra))
}

fn run_collectors(
    opts: &CrawlOptions,
    root: Root,
    common: Common,
    shown: String,
    base: Option<crate::inherit::Base>,
    extra: impl FnOnce(&mut Sink),
) -> Crawl {
    let collectors: Vec<&'static Collector> =
        COLLECTORS.iter().filter(|c| opts.collectors.as_ref().is_none_or(|w| w.iter().any(|w| w == c.name))).collect();
    run_these(opts, collectors, root, common, shown, base, extra)
}

fn run_these(
    opts: &CrawlOptions,
    collectors: Vec<&'static Collector>,
    root: Root,
    common: Common,
    shown: String,
    base: Option<crate::inherit::Base>,
    extra: impl FnOnce(&mut Sink),
) -> Crawl {
    let started = Instant::now();
    let scope = Scope { common: common.clone(), root, config: opts.config.clone(), app_files: Default::default() };
    let budgets = Budgets { max_file_bytes: opts.max_file_bytes, ..opts.budgets };
    let known = opts.fingerprints.clone();
    let rewalk_large = opts.rewalk_large;
    // The filesystem is read on a thread of its own, watched: a read that never
    // returns (a hung FUSE or NFS mount inside the scope) cannot be interrupted,
    // so past its wall budget plus a grace period the scope is given up — an
    // error row, the rest of the crawl goes on — and the thread is abandoned.
    let limit = opts.budgets.max_wall + WATCHDOG_GRACE;
    let key = format!("{}/{}/{}", common.host, common.scope, common.scope_id);
    // A container is read through its image: see [`crate::quarantine`].
    let image_key = base
        .as_ref()
        .map(|b| format!("{}/{}/{}", common.host, scope::IMAGE, b.image_id))
        .or_else(|| crate::quarantine::image_of(&key));
    let still_hung = {
        let mut hung = HUNG.lock().unwrap_or_else(|e| e.into_inner());
        hung.retain(|_, returned| !returned.load(Ordering::SeqCst));
        hung.contains_key(&key)
    };
    let (tx, rx) = std::sync::mpsc::channel();
    let c = common.clone();
    let done = Arc::new(AtomicBool::new(false));
    let finished = done.clone();
    let tid = Arc::new(std::sync::atomic::AtomicI64::new(0));
    let thread_id = tid.clone();
    let spawned = if still_hung {
        // The thread given up on last time is still blocked: do not pile another one on it.
        Err("cannot start its crawl thread: a previous crawl of it is still blocked".to_string())
    } else if let Some(why) = crate::quarantine::held(&key, image_key.as_deref()) {
        Err(why)
    } else {
        // While the thread runs the scope is marked: a run it kills leaves the mark (see [`crate::quarantine`]).
        // The thread owns the mark, so a thread given up on by the watchdog but still running keeps it.
        let marker = crate::quarantine::crawling(&key, image_key.as_deref());
        std::thread::Builder::new()
            .name(format!("crawl {}", common.scope_id))
            .spawn(move || {
                let _marker = marker;
                // Set however the thread ends, a panic included.
                let _finished = SetOnDrop(finished);
                thread_id.store(own_tid().unwrap_or(0), Ordering::SeqCst);
                let mut sink = Sink::with_budgets(c.clone(), &budgets);
                if let Some(e) = &scope.root.mount_report().unreadable {
                    let msg = format!("cannot read the scope's mount table ({e}): FUSE and network filesystems below its root are not refused");
                    sink.error("rootfs", None, &msg);
                }
                // What the container put in front of its image decides which collectors it leaves to the image.
                let plan = base.and_then(|b| match crate::inherit::changes(&b, &budgets) {
                    Ok(changes) => Some(crate::inherit::Plan::new(b.image_id, changes)),
                    Err(e) => {
                        tracing::info!(scope_id = %c.scope_id, "reading every table of the container: its changes cannot be listed: {e}");
                        None
                    }
                });
                let mut inherited: Vec<&'static Table> = Vec::new();
                let (mut fingerprints, mut unread) = (Vec::new(), Vec::<&'static Table>::new());
                let scope_key = crate::fingerprint::scope_key(&c);
                // Only a host's: a container or image large enough has its collectors run each crawl.
                let host_rewalk = if c.scope == scope::HOST { rewalk_large } else { std::time::Duration::ZERO };
                // Decided for every collector before any runs: a table several collectors fill is
                // inherited or left unread only when all of them leave it (see [`couple_shared_tables`]).
                let mut steps: Vec<(Step, Option<crate::fingerprint::Fingerprint>)> = collectors
                    .iter()
                    .map(|col| {
                        if plan.as_ref().is_some_and(|p| p.inherits(col, &scope.root, &scope.config)) {
                            return (Step::Inherit, None);
                        }
                        // A host's inputs too large to fingerprint: not walked again within their period.
                        let window = crate::fingerprint::window(&scope_key, col.name, host_rewalk);
                        if let (Some(k), Some(w)) = (&known, window)
                            && k.get(&(scope_key.clone(), col.name)) == Some(&Some(w))
                        {
                            return (Step::Unread, Some(Some(w)));
                        }
                        // Inputs whose stat did not change since the last spooled crawl: not read again.
                        let fp = known.as_ref().map(|k| match k.get(&(scope_key.clone(), col.name)) {
                            Some(None) => None,
                            _ => {
                                let mut inputs = (col.inputs)(&scope.config);
                                if col.needs_owners {
                                    inputs.extend(collectors.iter().filter(|x| x.name == "packages").flat_map(|p| (p.inputs)(&scope.config)));
                                }
                                match crate::fingerprint::of_inputs(&scope.root, &inputs) {
                                    crate::fingerprint::Taken::Of(f) => Some(f),
                                    crate::fingerprint::Taken::TooLarge => window,
                                    crate::fingerprint::Taken::Failed => None,
                                }
                            }
                        });
                        if let (Some(k), Some(Some(f))) = (&known, fp) {
                            if k.get(&(scope_key.clone(), col.name)) == Some(&Some(f)) {
                                return (Step::Unread, fp);
                            }
                        }
                        (Step::Run, fp)
                    })
                    .collect();
                couple_shared_tables(&collectors, &mut steps);
                for (col, (step, fp)) in collectors.iter().zip(steps) {
                    let _span = tracing::info_span!("collector", name = col.name, scope_id = %c.scope_id).entered();
                    let add = |to: &mut Vec<&'static Table>| {
                        for t in col.tables {
                            if !to.iter().any(|x| x.name == t.name) {
                                to.push(t);
                            }
                        }
                    };
                    match step {
                        Step::Inherit => {
                            add(&mut inherited);
                            continue;
                        }
                        Step::Unread => {
                            add(&mut unread);
                            fingerprints.push((col.name, fp.flatten()));
                            continue;
                        }
                        Step::Run => {}
                    }
                    sink.set_collector(col.name);
                    let (errors_before, cuts_before) = (sink.errors(), sink.cuts());
                    let packages_not_read = inherited.iter().chain(&unread).any(|t| t.name == tables::PACKAGES.name);
                    if col.needs_owners && sink.owners.is_empty() && packages_not_read {
                        // The package databases are the image's, but this collector names owners: read them, keep only the owners
                        // (pip's file lists own files too).
                        let mut scratch = Sink::with_budgets(c.clone(), &budgets);
                        for p in collectors.iter().filter(|x| x.name == "packages" || x.name == "python") {
                            guarded(p, &scope, &mut scratch);
                        }
                        sink.owners = std::mem::take(&mut scratch.owners);
                        sink.app_owners = std::mem::take(&mut scratch.app_owners);
                    }
                    let ran = std::time::Instant::now();
                    guarded(col, &scope, &mut sink);
                    crate::metrics::collector_ran(col.name, ran.elapsed());
                    // Errors make a collector run again next crawl, except where its inputs are too large
                    // to fingerprint: a walk of a host's tree that meets the same unreadable file each
                    // time runs again when its period ends.
                    let window = crate::fingerprint::window(&scope_key, col.name, host_rewalk);
                    let kept = |f: &crate::fingerprint::Fingerprint| {
                        sink.errors() == errors_before
                            || (window.is_some() && *f == window && sink.cuts() == cuts_before)
                    };
                    if let Some(fp) = fp.filter(kept) {
                        fingerprints.push((col.name, fp));
                    }
                }
                // What the overlay merge refused (an attribute the driver would not follow as read here).
                for (path, e) in scope.root.take_layer_anomalies() {
                    match &e {
                        // A capability the deployment did not grant: said once per scope, not an error of it.
                        // Matched whole, at /: no name or attribute value of the image can be taken for it.
                        crate::rootfs::ReadError::Refused { path: at, why } if at == "/" && why == crate::layers::UNPRIVILEGED => {
                            sink.not_read("layers", &path, &e.to_string())
                        }
                        _ => sink.read_error("layers", &path, &e),
                    }
                }
                // The FUSE and network mounts the collectors met and did not read, once each.
                for (mount, fs) in scope.root.take_refused_mounts_met() {
                    let msg = format!("not read: {fs} filesystem mounted at {mount} (--read-network-fs reads it)");
                    sink.not_read("rootfs", &mount, &msg);
                }
                if let Some(p) = &plan {
                    for t in inherited {
                        sink.row(&tables::INHERITED, &[("table_name", t.name.into()), ("image_id", p.image_id.as_str().into())]);
                    }
                }
                let _ = tx.send((sink, fingerprints, unread));
            })
            .map_err(|e| format!("cannot start its crawl thread: {e}"))
    };
    let mut complete = true;
    let (mut fingerprints, mut unread) = (Vec::new(), Vec::new());
    let received = spawned.and_then(|_| {
        rx.recv_timeout(limit).map_err(|e| match e {
            std::sync::mpsc::RecvTimeoutError::Timeout => {
                HUNG.lock().unwrap_or_else(|e| e.into_inner()).insert(key.clone(), done.clone());
                match task_state(tid.load(Ordering::SeqCst)) {
                    // Computing, not waiting: a loop that does not look at the deadline. Our bug, not the mount's.
                    Some((state, cpu)) if state == 'R' || cpu.as_secs_f64() >= limit.as_secs_f64() / 2.0 => format!(
                        "internal error: gave up on this scope after {} s: its crawl thread is still computing ({:.1} s of CPU), a loop that does not stop at the deadline",
                        limit.as_secs(),
                        cpu.as_secs_f64()
                    ),
                    _ => format!(
                        "gave up on this scope's filesystem after {} s: a read did not return; a hung FUSE or NFS mount inside it?",
                        limit.as_secs()
                    ),
                }
            }
            // Collectors' panics are caught one by one: this is a bug outside them, and nothing is left blocked.
            std::sync::mpsc::RecvTimeoutError::Disconnected => {
                "internal error: the scope's crawl thread ended without its rows".to_string()
            }
        })
    });
    let mut sink = match received {
        Ok((sink, f, u)) => {
            (fingerprints, unread) = (f, u);
            sink
        }
        Err(msg) => {
            complete = false;
            let mut sink = Sink::new(common.clone());
            sink.error("watchdog", Some(&shown), &msg);
            sink
        }
    };
    // Runtime discovery rows: a panic there costs those rows, not the agent.
    if let Err(panic) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| extra(&mut sink))) {
        let msg = format!("internal error: discovery panicked and was stopped: {}", panic_message(&*panic));
        sink.error("discovery", None, &msg);
    }
    let mut crawl = seal(sink, common, shown, started);
    crawl.complete = complete;
    crawl.fingerprints = fingerprints;
    crawl.unread = unread;
    crawl
}

/// What a crawl does with one collector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Its tables are the image's (see [`crate::inherit`]).
    Inherit,
    /// Its inputs' fingerprint did not change: its tables are as last sent.
    Unread,
    Run,
}

/// A table several collectors fill (`packages`: the OS databases and each
/// language ecosystem) is one `inherited` or `unchanged` marker for all of
/// its rows, so it can be left to the image or the last crawl only when
/// every collector filling it is: any other is run, until that holds.
fn couple_shared_tables(
    collectors: &[&'static Collector],
    steps: &mut [(Step, Option<crate::fingerprint::Fingerprint>)],
) {
    let shares = |a: &Collector, b: &Collector| a.tables.iter().any(|t| b.tables.iter().any(|u| u.name == t.name));
    loop {
        let mut changed = false;
        for i in 0..collectors.len() {
            if steps[i].0 == Step::Run {
                continue;
            }
            let apart = (0..collectors.len())
                .any(|j| j != i && steps[j].0 != steps[i].0 && shares(collectors[i], collectors[j]));
            if apart {
                steps[i].0 = Step::Run;
                changed = true;
            }
        }
        if !changed {
            return;
        }
    }
}

/// Runs one collector; a panic in it (a bug, or a limit we missed) becomes
/// that collector's `crawl_errors` row, and the rows it made so far are kept.
fn guarded(col: &Collector, scope: &Scope, sink: &mut Sink) {
    scope.root.fresh_budgets();
    let run = std::panic::AssertUnwindSafe(|| (col.collect)(scope, sink));
    if let Err(panic) = std::panic::catch_unwind(run) {
        let msg = format!("internal error: the collector panicked and was stopped: {}", panic_message(&*panic));
        sink.mark_cut();
        sink.error(col.name, None, &msg);
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

/// The calling thread's kernel task id, from /proc/thread-self.
fn own_tid() -> Option<i64> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    stat.split_whitespace().next()?.parse().ok()
}

/// A task of this process: its scheduler state (R running, S sleeping, D in
/// an uninterruptible wait such as a hung FUSE read, …) and the CPU it used.
fn task_state(tid: i64) -> Option<(char, std::time::Duration)> {
    if tid <= 0 {
        return None;
    }
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).ok()?;
    // After the parenthesised command name: state, then utime and stime as fields 11 and 12.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some((state, std::time::Duration::from_secs_f64(ticks as f64 / procfs::ticks_per_second() as f64)))
}

struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Scopes whose crawl thread was given up on, with a flag it sets if it ever returns.
static HUNG: std::sync::Mutex<std::collections::BTreeMap<String, Arc<AtomicBool>>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

/// Time past a scope's wall budget before its crawl is given up on.
pub const WATCHDOG_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Finishes a scope's rows and appends the `crawls` row that marks it complete.
fn seal(sink: Sink, common: Common, root: String, started: Instant) -> Crawl {
    let errors = sink.errors();
    let mut crawl = Crawl {
        batches: sink.finish_rows(),
        rows: 0,
        errors,
        complete: true,
        common,
        root,
        duration_ms: started.elapsed().as_millis() as i64,
        fingerprints: Vec::new(),
        unread: Vec::new(),
    };
    crawl.add_rows(Vec::new());
    crawl
}

impl Crawl {
    /// Adds rows of this crawl's scope (gathered after its collectors ran,
    /// e.g. the agent's health) and renews the `crawls` row that comes last,
    /// so that it still counts and names every table the crawl has rows of.
    pub fn add_rows(&mut self, rows: Vec<RecordBatch>) {
        self.batches.remove_table(&tables::CRAWLS);
        for b in rows {
            self.batches.push(b);
        }
        self.rows = self.batches.num_rows();
        let names: Vec<&str> = self.batches.tables().iter().map(|t| t.name).collect();
        let listed = names.join(",");
        let mut marker = Sink::new(self.common.clone());
        marker.row(
            &tables::CRAWLS,
            &[
                ("agent_version", AGENT_VERSION.into()),
                ("root", self.root.as_str().into()),
                ("duration_ms", self.duration_ms.into()),
                ("rows", (self.rows as i64).into()),
                ("errors", (self.errors as i64).into()),
                ("degraded", (self.errors > 0).into()),
                ("tables", listed.as_str().into()),
            ],
        );
        for b in marker.finish() {
            self.batches.push(b);
        }
    }
}

/// The table a batch belongs to, from its schema (every declared schema is distinct).
pub fn table_of(batch: &RecordBatch) -> &'static tables::Table {
    tables::TABLES
        .iter()
        .copied()
        .find(|t| t.matches(batch.schema_ref()))
        .expect("internal error: batch of an undeclared table")
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::Array;
    use arrow_array::cast::AsArray;

    fn strings(batches: &[RecordBatch], table: &str, column: &str) -> Vec<String> {
        batches
            .iter()
            .filter(|b| table_of(b).name == table)
            .flat_map(|b| {
                let c = b.column_by_name(column).unwrap().as_string::<i32>();
                (0..c.len()).map(|i| c.value(i).to_string()).collect::<Vec<_>>()
            })
            .collect()
    }

    /// Where an entry budget cuts a collector's walk depends on the root
    /// alone: not on how many entries other collectors visited before it (the
    /// unchanged-host daemon test resent a host's whole `packages` table every
    /// crawl, because collectors skipped as unchanged left more budget to the
    /// walks after them), and the application collectors share one walk.
    #[test]
    fn an_entry_budget_cuts_each_collector_where_the_root_alone_decides() {
        let tmp = tempfile::tempdir().unwrap();
        let r = tmp.path();
        let write = |p: &str, text: &str, mode: u32| {
            use std::os::unix::fs::PermissionsExt;
            let p = r.join(p);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, text).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        };
        // 400 unowned executables that unowned_files and the binaries collector walk, 300 other files.
        for i in 0..400 {
            write(&format!("usr/bin/tool{i}"), "#!/bin/sh\n", 0o755);
        }
        for i in 0..300 {
            write(&format!("srv/data/f{i}"), "x", 0o644);
        }
        write(
            "srv/venv/lib/python3.11/site-packages/six-1.16.0.dist-info/METADATA",
            "Name: six\nVersion: 1.16.0\n\n",
            0o644,
        );
        write("srv/node_modules/ms/package.json", r#"{"name":"ms","version":"2.1.3"}"#, 0o644);
        // One walk of the whole root fits; the walks of several collectors together do not. Likewise
        // the bytes: unowned_files hashes 4,000, and npm (after it) reads 31 more.
        let budgets = Budgets { max_entries: 1000, max_total_bytes: 4010, ..Budgets::default() };
        let crawl = |collectors: Option<Vec<String>>| {
            let opts = CrawlOptions {
                root: r.into(),
                scope: scope::IMAGE.into(),
                scope_id: Some("budget".into()),
                budgets,
                collectors,
                docker: RuntimeMode::Off,
                containerd: RuntimeMode::Off,
                ..Default::default()
            };
            crawl(&opts).unwrap()
        };
        let all = crawl(None);
        let errors = strings(&all.batches.to_vec(), "crawl_errors", "message");
        assert!(errors.iter().all(|m| !m.contains("directory entries") && !m.contains("total bytes")), "{errors:?}");
        let mut names = strings(&all.batches.to_vec(), "packages", "name");
        names.sort();
        assert_eq!(names, ["ms", "six"], "{errors:?}");
        assert_eq!(strings(&all.batches.to_vec(), "unowned_files", "path").len(), 400);
        // The same rows when the collectors before them do not run.
        let alone = crawl(Some(vec!["python".into(), "npm".into()]));
        let mut alone_names = strings(&alone.batches.to_vec(), "packages", "name");
        alone_names.sort();
        assert_eq!(alone_names, names);
    }

    /// A table two collectors fill (packages: dpkg and pypi) is left to the
    /// image or the last crawl only when both leave it; a collector of other
    /// tables keeps its own decision.
    #[test]
    fn collectors_sharing_a_table_are_run_unless_all_of_them_may_be_skipped() {
        let [os, packages, python] = ["os", "packages", "python"].map(|n| crate::collectors::collector(n).unwrap());
        let cols = [os, packages, python];
        let run = |steps: [Step; 3]| {
            let mut s: Vec<_> = steps.iter().map(|s| (*s, None)).collect();
            couple_shared_tables(&cols, &mut s);
            s.iter().map(|(s, _)| *s).collect::<Vec<_>>()
        };
        use Step::*;
        assert_eq!(run([Unread, Unread, Run]), [Unread, Run, Run]);
        assert_eq!(run([Inherit, Run, Inherit]), [Inherit, Run, Run]);
        assert_eq!(run([Run, Inherit, Unread]), [Run, Run, Run]);
        assert_eq!(run([Run, Inherit, Inherit]), [Run, Inherit, Inherit]);
        assert_eq!(run([Run, Unread, Unread]), [Run, Unread, Unread]);
    }

    static PANICS: Collector = Collector {
        name: "panics",
        collect: |_, sink| {
            sink.row(&tables::OS, &[("id", "before-the-panic".into())]);
            panic!("a bug in one collector");
        },
        tables: &[&tables::OS],
        inputs: |_| Vec::new(),
        needs_owners: false,
    };

    static STOP_SPINNING: AtomicBool = AtomicBool::new(false);

    static SPINS: Collector = Collector {
        name: "spins",
        collect: |_, _| {
            while !STOP_SPINNING.load(Ordering::SeqCst) {
                std::thread::yield_now();
            }
        },
        tables: &[],
        inputs: |_| Vec::new(),
        needs_owners: false,
    };

    /// A scope given up while its thread computes (a parser loop that ignores
    /// the deadline, like the rpm sqlite bomb's) was blamed on a hung FUSE or
    /// NFS mount; the watchdog now tells the two apart.
    #[test]
    fn a_thread_given_up_while_computing_is_not_blamed_on_a_mount() {
        let tmp = tempfile::tempdir().unwrap();
        let mut opts = CrawlOptions { root: tmp.path().into(), ..Default::default() };
        opts.budgets.max_wall = std::time::Duration::ZERO;
        let common =
            Common { host: "h".into(), scope: scope::IMAGE.into(), scope_id: "spins".into(), crawl_time_us: 0 };
        let root = Root::open(tmp.path()).unwrap();
        let c = run_these(&opts, vec![&SPINS], root, common, "shown".into(), None, |_| {});
        STOP_SPINNING.store(true, Ordering::SeqCst);
        let messages = strings(&c.batches.to_vec(), "crawl_errors", "message");
        assert_eq!(strings(&c.batches.to_vec(), "crawl_errors", "collector"), ["watchdog"], "{messages:?}");
        assert!(messages[0].contains("still computing") && !messages[0].contains("FUSE"), "{messages:?}");
        assert!(!c.complete);
    }

    /// A collector that panics (e.g. an Arrow offset overflow) used to kill the
    /// scope's thread: the whole scope was lost, blamed on a hung mount, and
    /// every later crawl of it refused as "still blocked".
    #[test]
    fn a_panicking_collector_is_its_own_error_and_blocks_no_later_crawl() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("etc")).unwrap();
        std::fs::write(tmp.path().join("etc/os-release"), "ID=debian\n").unwrap();
        let opts = CrawlOptions { root: tmp.path().into(), scope_id: Some("panics".into()), ..Default::default() };
        for attempt in 0..3 {
            let root = Root::open(tmp.path()).unwrap();
            let common = Common {
                host: "h".into(),
                scope: scope::IMAGE.into(),
                scope_id: "panics".into(),
                crawl_time_us: attempt,
            };
            let these = vec![&PANICS, crate::collectors::collector("os").unwrap()];
            let c = run_these(&opts, these, root, common, "shown".into(), None, |_| panic!("a bug in discovery"));
            let collectors = strings(&c.batches.to_vec(), "crawl_errors", "collector");
            let messages = strings(&c.batches.to_vec(), "crawl_errors", "message");
            assert_eq!(collectors, ["panics", "discovery"], "attempt {attempt}: {messages:?}");
            assert!(messages[1].contains("a bug in discovery"), "{messages:?}");
            assert!(messages[0].contains("panicked") && messages[0].contains("a bug in one collector"), "{messages:?}");
            // The rows made before the panic and the next collector's rows still arrive.
            assert_eq!(strings(&c.batches.to_vec(), "os", "id"), ["before-the-panic", "debian"], "attempt {attempt}");
            assert!(c.complete, "attempt {attempt}");
        }
    }

    /// Issue 24, item 1: what the overlay merge refuses reaches the crawl as
    /// `crawl_errors` rows of the `layers` collector, naming the attribute,
    /// and the rest of the scope is still read.
    #[test]
    fn refused_overlay_entries_become_crawl_error_rows() {
        let t = tempfile::tempdir().unwrap();
        let (up, lo) = (t.path().join("up"), t.path().join("lo"));
        for l in [&up, &lo] {
            std::fs::create_dir_all(l.join("etc/cron.d")).unwrap();
        }
        std::fs::write(lo.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
        std::fs::write(lo.join("etc/group"), "root:x:0:\n").unwrap();
        std::fs::write(up.join("etc/passwd"), "").unwrap();
        let set = |p: PathBuf, name: &str, v: &[u8]| rustix::fs::lsetxattr(p, name, v, rustix::fs::XattrFlags::empty());
        if let Err(e) = set(up.join("etc/passwd"), "trusted.overlay.metacopy", b"") {
            println!("SKIPPED: cannot set trusted.* xattrs here ({e}); needs root");
            return;
        }
        set(up.join("etc/cron.d"), "trusted.overlay.redirect", b"../x").unwrap();
        let opts = CrawlOptions::default();
        let c = crawl_layers(
            &opts,
            scope::IMAGE,
            "sha256:x",
            Ok((vec![up, lo], crate::layers::Markers::KERNEL_OVERLAY)),
            "h",
            None,
        );
        let mut out = Vec::new();
        crate::print::print_json_lines(&c.batches.to_vec(), &mut out).unwrap();
        let rows: Vec<serde_json::Value> =
            String::from_utf8(out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        let layer_errors: Vec<(String, String)> = rows
            .iter()
            .filter(|r| r["table"] == "crawl_errors" && r["collector"] == "layers")
            .map(|r| (r["path"].as_str().unwrap().to_string(), r["message"].as_str().unwrap().to_string()))
            .collect();
        assert!(
            layer_errors.iter().any(|(p, m)| p == "/etc/passwd" && m.contains("trusted.overlay.metacopy")),
            "{layer_errors:?}"
        );
        assert!(
            layer_errors.iter().any(|(p, m)| p == "/etc/cron.d" && m.contains("trusted.overlay.redirect")),
            "{layer_errors:?}"
        );
        // The empty metadata-only copy is not read as /etc/passwd; the rest of the scope is.
        assert!(!rows.iter().any(|r| r["table"] == "users"), "users read from a refused file");
        assert!(rows.iter().any(|r| r["table"] == "groups" && r["name"] == "root"), "groups not read");
    }
}
