//! Docker Engine discovery: every container (running, exited, created and
//! never started) and every image, with the settings security and platform
//! teams ask about. Talks to the engine API through bollard, negotiating the
//! engine's API version so Docker 20.10 (API 1.41) and current engines work.

use std::collections::BTreeMap;
use std::time::Duration;

use bollard::Docker;
use bollard::models::{ContainerInspectResponse, HealthConfig, ImageHistoryResponseItem, ImageInspect, SystemInfo};
use bollard::query_parameters::{ListContainersOptions, ListImagesOptions};
use periscope_proto::tables::{CONTAINER_MOUNTS, CONTAINER_PORTS, CONTAINERS, IMAGE_HISTORY, IMAGES};

use crate::collectors::Sink;
use crate::encode::Value;
use crate::layers::Markers;

const C: &str = "docker";

/// What the engine reported, fetched before rows are built.
#[derive(Debug, Default)]
pub struct Inventory {
    pub endpoint: String,
    pub containers: Vec<ContainerInspectResponse>,
    pub images: Vec<(ImageInspect, Vec<ImageHistoryResponseItem>)>,
    /// The engine mounts overlay layers with `userxattr` (see [`overlay_userxattr`]).
    pub userxattr: bool,
    /// (what, message) for things that could not be read; each becomes a crawl_errors row.
    pub errors: Vec<(String, String)>,
}

/// Whether the engine mounts its overlay2 layers with the `userxattr`
/// option, so that their opaque directories, redirects and xattr whiteouts
/// are `user.overlay.*` attributes (and redirects are never followed): a
/// rootless engine does on Linux 5.11 and later, where an unprivileged
/// mount needs it. The overlay2 driver says so in its status (a `userxattr`
/// row); an engine that reports no such row is judged as it judges itself:
/// rootless (`name=rootless` among its security options) on a kernel of 5.11
/// or later.
pub fn overlay_userxattr(info: &SystemInfo) -> bool {
    let row = info.driver_status.iter().flatten().find(|r| r.first().is_some_and(|k| k == "userxattr"));
    if let Some(row) = row {
        return row.get(1).is_some_and(|v| v == "true");
    }
    let rootless = info.security_options.iter().flatten().any(|o| o.split(',').any(|kv| kv == "name=rootless"));
    let kernel = info.kernel_version.as_deref().and_then(|v| {
        let mut parts = v.split(|c: char| !c.is_ascii_digit());
        Some((parts.next()?.parse::<u32>().ok()?, parts.next()?.parse::<u32>().ok()?))
    });
    rootless && kernel.is_some_and(|k| k >= (5, 11))
}

/// The overlay rules of the layers a graph driver named `driver` writes,
/// given whether the engine mounts overlay layers with `userxattr`.
pub fn markers(driver: &str, userxattr: bool) -> Markers {
    match driver {
        "overlay2" | "overlay" if userxattr => Markers::KernelUserXattr,
        _ => Markers::for_driver(driver),
    }
}

/// [`overlay_userxattr`] of the engine behind `docker`; an engine that does
/// not answer is taken as not rootless (the error says so).
async fn engine_userxattr(docker: &Docker) -> Result<bool, String> {
    docker.info().await.map(|i| overlay_userxattr(&i)).map_err(|e| format!("engine info: {e}"))
}

/// Whether a Docker endpoint is configured here: DOCKER_HOST, or the default socket.
pub fn configured() -> bool {
    std::env::var_os("DOCKER_HOST").is_some() || std::path::Path::new("/var/run/docker.sock").exists()
}

/// Fetches the inventory. An engine that cannot be reached is an error; a
/// container or image that vanishes mid-listing is skipped.
pub async fn inventory(timeout: Duration) -> Result<Inventory, String> {
    let endpoint = std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into());
    let docker = connect(timeout).await?;
    let mut inv = Inventory { endpoint: endpoint.clone(), ..Default::default() };
    match engine_userxattr(&docker).await {
        Ok(u) => inv.userxattr = u,
        Err(e) => {
            inv.errors.push(("engine".into(), format!("{e}; its overlay layers are read as mounted without userxattr")))
        }
    }

    let list = docker
        .list_containers(Some(ListContainersOptions { all: true, ..Default::default() }))
        .await
        .map_err(|e| format!("listing containers at {endpoint}: {e}"))?;
    for c in list {
        let Some(id) = c.id else { continue };
        match docker.inspect_container(&id, None).await {
            Ok(i) => inv.containers.push(i),
            Err(e) if is_not_found(&e) => {}
            Err(e) => inv.errors.push((format!("container {id}"), e.to_string())),
        }
    }
    let images = docker
        .list_images(Some(ListImagesOptions { all: false, ..Default::default() }))
        .await
        .map_err(|e| format!("listing images at {endpoint}: {e}"))?;
    for img in images {
        let id = img.id;
        let inspect = match docker.inspect_image(&id).await {
            Ok(i) => i,
            Err(e) if is_not_found(&e) => continue,
            Err(e) => {
                inv.errors.push((format!("image {id}"), e.to_string()));
                continue;
            }
        };
        let history = match docker.image_history(&id).await {
            Ok(h) => h,
            Err(e) => {
                inv.errors.push((format!("image {id} history"), e.to_string()));
                Vec::new()
            }
        };
        inv.images.push((inspect, history));
    }
    Ok(inv)
}

/// Where one container's or image's filesystem is, for a crawl of it alone.
#[derive(Debug)]
pub enum Target {
    /// A running container: its main process's host pid, and its layers for
    /// when the process is gone by the time it is opened.
    Running(i64, Vec<std::path::PathBuf>, Markers),
    /// A stopped container or an image: its layer directories, top first.
    Layers(Vec<std::path::PathBuf>, Markers),
}

/// An engine connection with its API version negotiated.
pub async fn connect(timeout: Duration) -> Result<Docker, String> {
    let endpoint = std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into());
    let docker = Docker::connect_with_local_defaults()
        .map_err(|e| format!("cannot connect to Docker at {endpoint}: {e}"))?
        .with_timeout(timeout);
    docker.negotiate_version().await.map_err(|e| format!("Docker at {endpoint} did not answer: {e}"))
}

/// Looks one container (`image` false) or image up by id or name: its full
/// id (the scope id a full crawl gives it) and where its filesystem is. None
/// when it is gone.
pub async fn target(
    docker: &Docker,
    id: &str,
    image: bool,
) -> Result<Option<(String, Target, Option<crate::inherit::Base>)>, String> {
    let mut image_id = None;
    let (full, gd, pid) = if image {
        match docker.inspect_image(id).await {
            Ok(i) => (i.id, i.graph_driver, None),
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(format!("image {id}: {e}")),
        }
    } else {
        match docker.inspect_container(id, None).await {
            Ok(c) => {
                let st = c.state.unwrap_or_default();
                let pid = st.pid.filter(|p| *p > 0 && !st.paused.unwrap_or(false));
                // A stopped --rm container's layers are being deleted: what it
                // held was read while it ran, a read now would be a torn one.
                if pid.is_none() && c.host_config.as_ref().and_then(|h| h.auto_remove).unwrap_or(false) {
                    return Ok(None);
                }
                image_id = c.image.clone();
                (c.id, c.graph_driver, pid)
            }
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(format!("container {id}: {e}")),
        }
    };
    let userxattr = engine_userxattr(docker).await.unwrap_or_else(|e| {
        tracing::warn!("{e}; its overlay layers are read as mounted without userxattr");
        false
    });
    let (layers, markers) = match gd {
        Some(gd) => (layer_dirs(&gd.data), markers(&gd.name, userxattr)),
        None => (Vec::new(), Markers::KERNEL_OVERLAY),
    };
    // A container's image, for what the container shares with it.
    let mut base = None;
    if let Some(image_id) = image_id {
        let img = docker.inspect_image(&image_id).await.ok();
        let img_layers = img.and_then(|i| i.graph_driver).map(|g| layer_dirs(&g.data)).unwrap_or_default();
        if let Some(own) = own_layers(&layers, &img_layers) {
            base = Some(crate::inherit::Base { image_id, own_layers: own, markers, pid: None });
        }
    }
    let target = match pid {
        Some(pid) => Target::Running(pid, layers, markers),
        None => Target::Layers(layers, markers),
    };
    Ok(Some((full.unwrap_or_else(|| id.to_string()), target, base)))
}

/// A container's own layers (its writable layer, Docker's init layer): those
/// of its layer directories above its image's, when what lies below is
/// exactly the image's layers.
pub fn own_layers(container: &[std::path::PathBuf], image: &[std::path::PathBuf]) -> Option<Vec<std::path::PathBuf>> {
    let n = container.len().checked_sub(image.len())?;
    (n > 0 && !image.is_empty() && container[n..] == *image).then(|| container[..n].to_vec())
}

/// For each container whose image is on this host: what it puts in front of its image.
pub fn bases(inv: &Inventory) -> std::collections::HashMap<String, crate::inherit::Base> {
    let images: std::collections::HashMap<&str, Vec<std::path::PathBuf>> = inv
        .images
        .iter()
        .filter_map(|(i, _)| Some((i.id.as_deref()?, layer_dirs(&i.graph_driver.as_ref()?.data))))
        .collect();
    let mut out = std::collections::HashMap::new();
    for c in &inv.containers {
        let (Some(id), Some(image_id), Some(gd)) = (&c.id, &c.image, &c.graph_driver) else { continue };
        let Some(img) = images.get(image_id.as_str()) else { continue };
        if let Some(own) = own_layers(&layer_dirs(&gd.data), img) {
            let markers = markers(&gd.name, inv.userxattr);
            out.insert(
                id.clone(),
                crate::inherit::Base { image_id: image_id.clone(), own_layers: own, markers, pid: None },
            );
        }
    }
    out
}

/// What an engine event asks to crawl: (id, is an image).
pub type Change = (String, bool);

/// Engine events that change what a scope holds: a container started or
/// died (its filesystem is still there to read, even if it is removed soon
/// after), an image pulled, loaded, imported, tagged or committed.
pub fn events(docker: &Docker) -> impl futures::Stream<Item = Result<Change, String>> + use<> {
    use futures::StreamExt;
    let mut filters = std::collections::HashMap::new();
    filters.insert("type".to_string(), vec!["container".to_string(), "image".to_string()]);
    filters.insert(
        "event".to_string(),
        ["start", "die", "pull", "load", "import", "tag", "commit"].map(String::from).to_vec(),
    );
    let opts = bollard::query_parameters::EventsOptions { filters: Some(filters), ..Default::default() };
    // Long-lived: the stream ends only when the engine goes away.
    let docker = docker.clone().with_timeout(Duration::from_secs(10 * 365 * 86400));
    docker.events(Some(opts)).filter_map(|e| async move {
        match e {
            Err(e) => Some(Err(e.to_string())),
            Ok(m) => {
                let image = matches!(m.typ, Some(bollard::models::EventMessageTypeEnum::IMAGE));
                let id = m.actor.and_then(|a| a.id).filter(|i| !i.is_empty())?;
                Some(Ok((id, image)))
            }
        }
    })
}

fn is_not_found(e: &bollard::errors::Error) -> bool {
    matches!(e, bollard::errors::Error::DockerResponseServerError { status_code: 404, .. })
}

/// Microseconds since the epoch from an RFC 3339 time; Docker's zero time
/// (0001-01-01) means "never" and becomes None.
fn rfc3339_us(s: &str) -> Option<i64> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    (t.year() > 1).then(|| (t.unix_timestamp_nanos() / 1000) as i64)
}

fn odt_us(t: &time::OffsetDateTime) -> Option<i64> {
    (t.year() > 1).then(|| (t.unix_timestamp_nanos() / 1000) as i64)
}

fn join(v: Option<&Vec<String>>, sep: &str) -> Option<String> {
    v.filter(|v| !v.is_empty()).map(|v| v.join(sep))
}

fn health(h: Option<&HealthConfig>) -> Option<String> {
    let test = h?.test.as_ref()?;
    // ["NONE"] disables an inherited healthcheck.
    match test.first().map(String::as_str) {
        None | Some("NONE") => None,
        Some("CMD") | Some("CMD-SHELL") => Some(test[1..].join(" ")),
        Some(_) => Some(test.join(" ")),
    }
}

/// The profile named by a security option like `seccomp=unconfined` or `apparmor:x`.
fn security_value<'a>(opts: &'a [String], key: &str) -> Option<&'a str> {
    opts.iter().find_map(|o| o.strip_prefix(key).and_then(|r| r.strip_prefix(['=', ':'])))
}

/// Running containers as (container id, host pid of the main process).
/// Paused containers are left out: a FUSE daemon frozen inside one would
/// hang any read of its filesystem.
pub fn running(inv: &Inventory) -> Vec<(String, i64)> {
    inv.containers
        .iter()
        .filter(|c| !c.state.as_ref().and_then(|s| s.paused).unwrap_or(false))
        .filter_map(|c| Some((c.id.clone()?, c.state.as_ref()?.pid.filter(|p| *p > 0)?)))
        .collect()
}

/// Host directories of an overlay-style graph driver's layers, top first:
/// UpperDir, then LowerDir's colon-separated list. Empty when the driver
/// reports no layer directories (e.g. the containerd image store).
pub fn layer_dirs(data: &std::collections::HashMap<String, String>) -> Vec<std::path::PathBuf> {
    let mut out: Vec<std::path::PathBuf> = data.get("UpperDir").into_iter().map(Into::into).collect();
    if let Some(lower) = data.get("LowerDir") {
        out.extend(lower.split(':').filter(|p| !p.is_empty()).map(std::path::PathBuf::from));
    }
    out
}

/// A scope read through layers: id, layer directories (top first), and the markers its driver writes.
pub type LayeredScope = (String, Vec<std::path::PathBuf>, Markers);

/// Containers that are not running, with their layer directories.
pub fn stopped(inv: &Inventory) -> Vec<LayeredScope> {
    inv.containers
        .iter()
        .filter(|c| c.state.as_ref().and_then(|s| s.pid).unwrap_or(0) <= 0)
        .filter_map(|c| {
            let gd = c.graph_driver.as_ref()?;
            Some((c.id.clone()?, layer_dirs(&gd.data), markers(&gd.name, inv.userxattr)))
        })
        .collect()
}

/// Images with their layer directories.
pub fn image_layers(inv: &Inventory) -> Vec<LayeredScope> {
    inv.images
        .iter()
        .filter_map(|(i, _)| {
            let gd = i.graph_driver.as_ref()?;
            Some((i.id.clone()?, layer_dirs(&gd.data), markers(&gd.name, inv.userxattr)))
        })
        .collect()
}

/// Opens a running container's root filesystem through `/proc/<pid>/root`,
/// guarded against pid reuse: `/proc/<pid>` is opened once as a directory
/// handle, its `cgroup` must name the container, and `root` is opened relative
/// to that same handle, so both refer to one process even if the pid number
/// is recycled in between (a dead process's handle fails instead). Unless
/// `read_network_fs`, the FUSE and network filesystems that process's mount
/// table lists below its root are refused (see [`crate::mounts`]).
pub fn open_container_root(
    pid: i64,
    container_id: &str,
    budgets: crate::rootfs::Budgets,
    read_network_fs: bool,
) -> Result<crate::rootfs::Root, String> {
    use rustix::fs::{Mode, OFlags};
    let proc_path = format!("/proc/{pid}");
    let dir = rustix::fs::open(&proc_path, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| format!("{proc_path}: {e}"))?;
    let cg = rustix::fs::openat(&dir, "cgroup", OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| format!("{proc_path}/cgroup: {e}"))?;
    let mut text = String::new();
    std::io::Read::read_to_string(&mut std::io::Read::take(std::fs::File::from(cg), 64 << 10), &mut text)
        .map_err(|e| format!("{proc_path}/cgroup: {e}"))?;
    if !text.contains(container_id) {
        return Err(format!("pid {pid} no longer belongs to container {container_id} (its cgroup does not name it)"));
    }
    let root = rustix::fs::openat(&dir, "root", OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| format!("{proc_path}/root: {e}"))?;
    let root = crate::rootfs::Root::from_fd(root, format!("{proc_path}/root"), budgets);
    // The same process's mount table, read through the directory whose cgroup was checked.
    Ok(if read_network_fs { root } else { root.refuse_mounts(crate::mounts::MountTable::of_process(&dir)) })
}

/// Fills the discovery tables from `inv` into the host scope's sink.
pub fn fill(inv: &Inventory, out: &mut Sink) {
    for (what, message) in &inv.errors {
        out.error(C, Some(what), message);
    }
    let image_health: BTreeMap<&str, Option<String>> = inv
        .images
        .iter()
        .filter_map(|(i, _)| Some((i.id.as_deref()?, health(i.config.as_ref().and_then(|c| c.healthcheck.as_ref())))))
        .collect();
    for c in &inv.containers {
        container_rows(c, &image_health, out);
    }
    for (img, history) in &inv.images {
        image_rows(img, history, out);
    }
}

fn container_rows(c: &ContainerInspectResponse, image_health: &BTreeMap<&str, Option<String>>, out: &mut Sink) {
    let Some(id) = c.id.as_deref() else { return };
    let hc = c.host_config.clone().unwrap_or_default();
    let cfg = c.config.clone().unwrap_or_default();
    super::env_rows(id, cfg.env.iter().flatten().map(String::as_str), out);
    let st = c.state.clone().unwrap_or_default();
    let labels = cfg.labels.clone().unwrap_or_default();
    let label = |k: &str| labels.get(k).map(String::as_str);
    let sec = hc.security_opt.clone().unwrap_or_default();
    let seccomp = security_value(&sec, "seccomp").unwrap_or("default").to_string();
    let apparmor =
        security_value(&sec, "apparmor").map(str::to_string).or(c.app_armor_profile.clone()).filter(|s| !s.is_empty());
    let nnp =
        sec.iter().any(|o| o == "no-new-privileges" || o == "no-new-privileges:true" || o == "no-new-privileges=true");
    let command = std::iter::once(c.path.clone().unwrap_or_default())
        .chain(c.args.clone().unwrap_or_default())
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let devices: Vec<String> = hc
        .devices
        .iter()
        .flatten()
        .map(|d| {
            format!("{}:{}", d.path_on_host.as_deref().unwrap_or(""), d.path_in_container.as_deref().unwrap_or(""))
        })
        .collect();
    let healthcheck = health(cfg.healthcheck.as_ref()).or_else(|| {
        let own_none = cfg
            .healthcheck
            .as_ref()
            .and_then(|h| h.test.as_ref())
            .is_some_and(|t| t.first().is_some_and(|x| x == "NONE"));
        if own_none { None } else { c.image.as_deref().and_then(|i| image_health.get(i).cloned().flatten()) }
    });
    // A container without a health check reports none, or no health at all.
    let checked = st.health.as_ref().filter(|h| {
        !matches!(
            h.status,
            None | Some(bollard::models::HealthStatusEnum::NONE | bollard::models::HealthStatusEnum::EMPTY)
        )
    });
    let last_check = checked.and_then(|h| h.log.as_ref()?.last()).map(|r| {
        let output = r.output.as_deref().unwrap_or("").trim_end();
        match r.exit_code {
            Some(code) => format!("exit {code}: {output}"),
            None => output.to_string(),
        }
    });
    let gd = c.graph_driver.as_ref();
    let labels_json = serde_json::to_string(&labels.iter().collect::<BTreeMap<_, _>>()).unwrap_or_default();
    let restart = hc.restart_policy.as_ref();
    out.row(
        &CONTAINERS,
        &[
            ("container_id", id.into()),
            ("name", c.name.as_deref().map(|n| n.trim_start_matches('/')).into()),
            ("image", cfg.image.as_ref().into()),
            ("image_id", c.image.as_ref().into()),
            ("runtime", hc.runtime.as_ref().into()),
            ("engine", "docker".into()),
            ("state", st.status.map(|s| s.to_string()).as_ref().into()),
            ("exit_code", st.exit_code.into()),
            ("oom_killed", st.oom_killed.into()),
            ("restart_count", c.restart_count.into()),
            ("created", c.created.as_ref().and_then(odt_us).map_or(Value::Null, Value::Int)),
            ("started_at", st.started_at.as_deref().and_then(rfc3339_us).map_or(Value::Null, Value::Int)),
            ("finished_at", st.finished_at.as_deref().and_then(rfc3339_us).map_or(Value::Null, Value::Int)),
            ("pid", st.pid.filter(|p| *p > 0).into()),
            ("command", command.as_str().into()),
            ("user", cfg.user.as_ref().into()),
            ("privileged", hc.privileged.unwrap_or(false).into()),
            ("cap_add", join(hc.cap_add.as_ref(), ",").as_ref().into()),
            ("cap_drop", join(hc.cap_drop.as_ref(), ",").as_ref().into()),
            ("devices", join(Some(&devices), ",").as_ref().into()),
            ("network_mode", hc.network_mode.as_ref().into()),
            ("pid_mode", hc.pid_mode.as_ref().into()),
            ("ipc_mode", hc.ipc_mode.as_ref().into()),
            ("uts_mode", hc.uts_mode.as_ref().into()),
            ("userns_mode", hc.userns_mode.as_ref().into()),
            ("read_only_rootfs", hc.readonly_rootfs.unwrap_or(false).into()),
            ("memory_limit", hc.memory.unwrap_or(0).into()),
            ("nano_cpus", hc.nano_cpus.unwrap_or(0).into()),
            ("cpu_quota", hc.cpu_quota.unwrap_or(0).into()),
            ("cpu_shares", hc.cpu_shares.unwrap_or(0).into()),
            ("pids_limit", hc.pids_limit.into()),
            ("security_opt", join(Some(&sec), ",").as_ref().into()),
            ("seccomp_profile", seccomp.as_str().into()),
            ("apparmor_profile", apparmor.as_ref().into()),
            ("no_new_privileges", nnp.into()),
            ("healthcheck", healthcheck.as_ref().into()),
            ("restart_policy", restart.and_then(|r| r.name).map(|n| n.to_string()).as_ref().into()),
            ("restart_max_retries", restart.and_then(|r| r.maximum_retry_count).into()),
            ("labels", labels_json.as_str().into()),
            ("k8s_pod", label("io.kubernetes.pod.name").into()),
            ("k8s_namespace", label("io.kubernetes.pod.namespace").into()),
            ("k8s_container", label("io.kubernetes.container.name").into()),
            ("storage_driver", gd.map(|g| g.name.as_str()).into()),
            ("upper_dir", gd.and_then(|g| g.data.get("UpperDir")).into()),
            ("lower_dirs", gd.and_then(|g| g.data.get("LowerDir")).into()),
            (
                "health_status",
                checked.and_then(|h| h.status).map(|s| s.to_string()).filter(|s| !s.is_empty()).as_ref().into(),
            ),
            ("health_failing_streak", checked.and_then(|h| h.failing_streak).into()),
            ("health_output", last_check.as_ref().into()),
            ("error", st.error.as_ref().filter(|e| !e.is_empty()).into()),
        ],
    );
    for m in c.mounts.iter().flatten() {
        out.row(
            &CONTAINER_MOUNTS,
            &[
                ("container_id", id.into()),
                ("type", m.typ.as_ref().into()),
                ("source", m.source.as_ref().into()),
                ("destination", m.destination.as_ref().into()),
                ("name", m.name.as_ref().into()),
                ("mode", m.mode.as_ref().into()),
                ("rw", m.rw.into()),
                ("propagation", m.propagation.as_ref().filter(|p| !p.is_empty()).into()),
            ],
        );
    }
    // Published ports from the network settings; exposed-only ports with no binding.
    let mut seen = std::collections::BTreeSet::new();
    let published = c.network_settings.as_ref().and_then(|n| n.ports.clone()).unwrap_or_default();
    let exposed = cfg.exposed_ports.clone().unwrap_or_default();
    let bindings = hc.port_bindings.clone().unwrap_or_default();
    let all_keys: std::collections::BTreeSet<String> =
        published.keys().chain(bindings.keys()).cloned().chain(exposed.iter().cloned()).collect();
    for key in all_keys {
        let (port, proto) = key.split_once('/').unwrap_or((key.as_str(), "tcp"));
        let port: Option<i64> = port.parse().ok();
        let binds = published
            .get(&key)
            .cloned()
            .flatten()
            .filter(|b| !b.is_empty())
            .or_else(|| bindings.get(&key).cloned().flatten());
        match binds.filter(|b| !b.is_empty()) {
            Some(list) => {
                for b in list {
                    let host_ip = b.host_ip.clone().filter(|s| !s.is_empty()).unwrap_or_else(|| "0.0.0.0".into());
                    let host_port: Option<i64> = b.host_port.as_deref().and_then(|p| p.parse().ok());
                    if seen.insert((key.clone(), host_ip.clone(), host_port)) {
                        out.row(
                            &CONTAINER_PORTS,
                            &[
                                ("container_id", id.into()),
                                ("container_port", port.into()),
                                ("protocol", proto.into()),
                                ("host_ip", host_ip.as_str().into()),
                                ("host_port", host_port.into()),
                            ],
                        );
                    }
                }
            }
            None => out.row(
                &CONTAINER_PORTS,
                &[("container_id", id.into()), ("container_port", port.into()), ("protocol", proto.into())],
            ),
        }
    }
}

fn image_rows(img: &ImageInspect, history: &[ImageHistoryResponseItem], out: &mut Sink) {
    let Some(id) = img.id.as_deref() else { return };
    let cfg = img.config.clone().unwrap_or_default();
    out.row(
        &IMAGES,
        &[
            ("image_id", id.into()),
            ("repo_tags", join(img.repo_tags.as_ref(), ",").as_ref().into()),
            ("repo_digests", join(img.repo_digests.as_ref(), ",").as_ref().into()),
            ("created", img.created.as_ref().and_then(odt_us).map_or(Value::Null, Value::Int)),
            ("size", img.size.into()),
            ("architecture", img.architecture.as_ref().into()),
            ("os", img.os.as_ref().into()),
            ("layers", join(img.root_fs.as_ref().and_then(|r| r.layers.as_ref()), ",").as_ref().into()),
            ("config_user", cfg.user.as_ref().into()),
            ("healthcheck", health(cfg.healthcheck.as_ref()).as_ref().into()),
            ("exposed_ports", join(cfg.exposed_ports.as_ref(), ",").as_ref().into()),
        ],
    );
    for (i, h) in history.iter().enumerate() {
        let layer = (h.id != "<missing>" && !h.id.is_empty()).then_some(h.id.as_str());
        out.row(
            &IMAGE_HISTORY,
            &[
                ("image_id", id.into()),
                ("position", (i as i64).into()),
                ("layer_id", layer.into()),
                ("created", Value::Int(h.created.saturating_mul(1_000_000))),
                ("created_by", h.created_by.as_str().into()),
                ("size", h.size.into()),
                ("comment", h.comment.as_str().into()),
                ("tags", join(Some(&h.tags), ",").as_ref().into()),
            ],
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers() {
        assert_eq!(rfc3339_us("0001-01-01T00:00:00Z"), None);
        assert_eq!(rfc3339_us("2024-01-02T03:04:05.123456789Z"), Some(1_704_164_645_123_456));
        assert_eq!(rfc3339_us("garbage"), None);
        let sec = vec!["seccomp=unconfined".to_string(), "apparmor:docker-default".to_string()];
        assert_eq!(security_value(&sec, "seccomp"), Some("unconfined"));
        assert_eq!(security_value(&sec, "apparmor"), Some("docker-default"));
        assert_eq!(security_value(&sec, "label"), None);
        let hc =
            |t: &[&str]| HealthConfig { test: Some(t.iter().map(|s| s.to_string()).collect()), ..Default::default() };
        assert_eq!(health(Some(&hc(&["CMD-SHELL", "curl -f localhost"]))), Some("curl -f localhost".into()));
        assert_eq!(health(Some(&hc(&["NONE"]))), None);
        assert_eq!(health(None), None);
    }

    /// `GET /info` of a rootless overlay2 engine (the rows moby's overlay2
    /// driver and daemon write for one), and of this machine's rootful
    /// engine (Docker 20.10.24, fuse-overlayfs) as it answers.
    const ROOTLESS_INFO: &str = r#"{"Driver":"overlay2","DriverStatus":[["Backing Filesystem","extfs"],["Supports d_type","true"],["Using metacopy","false"],["Native Overlay Diff","false"],["userxattr","true"]],"KernelVersion":"6.8.0-45-generic","SecurityOptions":["name=seccomp,profile=builtin","name=rootless","name=cgroupns"]}"#;
    const ROOTFUL_INFO: &str = r#"{"Driver":"fuse-overlayfs","DriverStatus":null,"KernelVersion":"6.18.44-fc-v1300","SecurityOptions":["name=seccomp,profile=default"]}"#;

    fn info(json: &str) -> SystemInfo {
        serde_json::from_str(json).unwrap()
    }

    /// Issue 24: rootless Docker mounts its overlay2 layers with `userxattr`,
    /// so their opaque directories (and redirects, whiteouts) are
    /// `user.overlay.*` xattrs; the agent merged every overlay2 image by the
    /// `trusted.overlay.*` rules, and so showed, under a directory the image
    /// made opaque, what the layers below hold. The engine is asked now.
    /// No rootless engine runs here: the machine's engine is rootful, and a
    /// second, rootless dockerd needs a non-root user with subordinate ids,
    /// newuidmap and a network helper that the test host does not have; so
    /// the detection is tested from the info such an engine returns and the
    /// merge from layers written as it writes them.
    #[test]
    fn a_rootless_engines_layers_are_merged_by_their_user_overlay_xattrs() {
        let tmp = tempfile::tempdir().unwrap();
        let (upper, lower) = (tmp.path().join("top/diff"), tmp.path().join("base/diff"));
        std::fs::create_dir_all(upper.join("etc/cron.d")).unwrap();
        std::fs::create_dir_all(lower.join("etc/cron.d")).unwrap();
        std::fs::write(lower.join("etc/cron.d/miner"), "* * * * * root /tmp/m\n").unwrap();
        std::fs::write(upper.join("etc/cron.d/ok"), "").unwrap();
        rustix::fs::setxattr(upper.join("etc/cron.d"), "user.overlay.opaque", b"y", rustix::fs::XattrFlags::empty())
            .unwrap();
        let listing = |engine: &SystemInfo| -> Vec<String> {
            let image: ImageInspect = serde_json::from_value(serde_json::json!({
                "Id": "sha256:x",
                "GraphDriver": {"Name": "overlay2", "Data": {"UpperDir": upper, "LowerDir": lower}},
            }))
            .unwrap();
            let inv = Inventory {
                images: vec![(image, Vec::new())],
                userxattr: overlay_userxattr(engine),
                ..Default::default()
            };
            let (_, layers, markers) = image_layers(&inv).remove(0);
            let root = crate::rootfs::Root::from_layers(&layers, markers, "test", Default::default()).unwrap();
            let mut paths = Vec::new();
            root.walk(
                "/etc",
                &mut |e| {
                    paths.push(e.path.shown());
                    true
                },
                &mut |e| panic!("{e}"),
            )
            .unwrap();
            paths
        };
        // The rootless engine's mount hides the lower directory's contents…
        assert_eq!(listing(&info(ROOTLESS_INFO)), ["/etc/cron.d", "/etc/cron.d/ok"]);
        // …a rootful engine's mount reads no user.* xattr as a marker.
        let rootful = info(ROOTFUL_INFO.replace("fuse-overlayfs", "overlay2").as_str());
        assert_eq!(listing(&rootful), ["/etc/cron.d", "/etc/cron.d/miner", "/etc/cron.d/ok"]);
    }

    #[test]
    fn which_engines_mount_overlay_layers_with_userxattr() {
        let rootless_no_row = |kernel: &str| {
            let mut i = info(ROOTLESS_INFO);
            i.driver_status.as_mut().unwrap().retain(|r| r[0] != "userxattr");
            i.kernel_version = Some(kernel.into());
            i
        };
        let row_false = {
            let mut i = info(ROOTLESS_INFO);
            i.driver_status.as_mut().unwrap().last_mut().unwrap()[1] = "false".into();
            i
        };
        for (what, engine, userxattr) in [
            ("rootless, the driver says so", info(ROOTLESS_INFO), true),
            ("rootful (this machine's engine)", info(ROOTFUL_INFO), false),
            ("rootless, no status row, Linux 5.15", rootless_no_row("5.15.0-91-generic"), true),
            ("rootless, no status row, Linux 5.11", rootless_no_row("5.11.0"), true),
            ("rootless, no status row, Linux 5.10 (no userxattr there)", rootless_no_row("5.10.0-28-amd64"), false),
            ("rootless, no status row, kernel unknown", rootless_no_row(""), false),
            ("the driver says no", row_false, false),
        ] {
            assert_eq!(overlay_userxattr(&engine), userxattr, "{what}");
        }
        assert_eq!(markers("overlay2", true), Markers::KernelUserXattr);
        assert_eq!(markers("overlay2", false), Markers::KERNEL_OVERLAY);
        assert_eq!(markers("fuse-overlayfs", true), Markers::FUSE_OVERLAYFS);
    }
}
