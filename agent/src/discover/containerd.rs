//! containerd discovery: containers and their tasks in every namespace
//! (Kubernetes uses `k8s.io`, Docker `moby`, nerdctl `default`), so nodes
//! without Docker are covered. Read-only calls only: list namespaces,
//! containers and tasks, and ask the snapshotter where a container's snapshot
//! lives (its mounts) so a container without a running task is crawled
//! through its layer directories, like a stopped Docker container.
//!
//! Settings come from the container's OCI runtime spec, which containerd
//! stores with it: the same columns `docker inspect` fills.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use periscope_proto::tables::{CONTAINER_MOUNTS, CONTAINERS};
use serde_json::Value as Json;

use crate::collectors::Sink;
use crate::encode::Value;
use crate::layers::Markers;

const C: &str = "containerd";

#[allow(clippy::all)]
mod api {
    pub mod namespaces {
        tonic::include_proto!("containerd.services.namespaces.v1");
    }
    pub mod containers {
        tonic::include_proto!("containerd.services.containers.v1");
    }
    pub mod tasks {
        tonic::include_proto!("containerd.services.tasks.v1");
    }
    pub mod snapshots {
        tonic::include_proto!("containerd.services.snapshots.v1");
    }
}
use api::tasks::Status;

/// Where containerd listens on common installs: its own package, k3s/RKE2,
/// and the one dockerd starts for itself.
pub const DEFAULT_SOCKETS: &[&str] = &[
    "/run/containerd/containerd.sock",
    "/run/k3s/containerd/containerd.sock",
    "/var/run/docker/containerd/containerd.sock",
];

/// The sockets to ask: `CONTAINERD_ADDRESS` when set, else every default
/// socket that exists (one per real path: /var/run is often /run).
pub fn sockets() -> Vec<PathBuf> {
    if let Some(a) = std::env::var_os("CONTAINERD_ADDRESS") {
        let a = PathBuf::from(a);
        let a = a.strip_prefix("unix://").map(Path::to_path_buf).unwrap_or(a);
        return vec![a];
    }
    let mut seen = BTreeSet::new();
    DEFAULT_SOCKETS
        .iter()
        .map(PathBuf::from)
        .filter(|p| p.exists())
        .filter(|p| seen.insert(std::fs::canonicalize(p).unwrap_or_else(|_| p.clone())))
        .collect()
}

/// One container as containerd knows it, with its task when it has one.
#[derive(Debug, Clone)]
pub struct Container {
    pub socket: String,
    pub namespace: String,
    pub meta: api::containers::Container,
    pub task: Option<api::tasks::Process>,
    /// Snapshot mounts, fetched for containers without a running task.
    pub mounts: Option<Result<Vec<api::snapshots::Mount>, String>>,
}

impl Container {
    pub fn running_pid(&self) -> Option<i64> {
        let t = self.task.as_ref()?;
        (t.status() == Status::Running && t.pid > 0).then_some(t.pid as i64)
    }

    /// The OCI runtime spec stored with the container, parsed; Null when absent or unreadable.
    fn spec(&self) -> Json {
        self.meta.spec.as_ref().and_then(|a| serde_json::from_slice(&a.value).ok()).unwrap_or(Json::Null)
    }
}

#[derive(Debug, Default)]
pub struct Inventory {
    pub containers: Vec<Container>,
    /// (what, message) for things that could not be read; each becomes a crawl_errors row.
    pub errors: Vec<(String, String)>,
}

async fn channel(socket: &Path, timeout: Duration) -> Result<tonic::transport::Channel, String> {
    let path = socket.to_path_buf();
    // The URI is required by the API but unused: every connection goes to the socket.
    tonic::transport::Endpoint::from_static("http://containerd.invalid")
        .connect_timeout(timeout)
        .timeout(timeout)
        .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
            let path = path.clone();
            async move {
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tokio::net::UnixStream::connect(path).await?))
            }
        }))
        .await
        .map_err(|e| format!("cannot connect to containerd at {}: {e}", socket.display()))
}

fn in_namespace<T>(ns: &str, msg: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    if let Ok(v) = ns.parse() {
        r.metadata_mut().insert("containerd-namespace", v);
    }
    r
}

/// Lists every container of every namespace at each socket. A socket that does
/// not answer is an error row; the others still count.
pub async fn inventory(sockets: &[PathBuf], timeout: Duration) -> Inventory {
    let mut inv = Inventory::default();
    for s in sockets {
        if let Err(e) = from_socket(s, timeout, &mut inv).await {
            inv.errors.push((s.display().to_string(), e));
        }
    }
    inv
}

async fn from_socket(socket: &Path, timeout: Duration, inv: &mut Inventory) -> Result<(), String> {
    use api::containers::containers_client::ContainersClient;
    use api::namespaces::namespaces_client::NamespacesClient;
    use api::snapshots::snapshots_client::SnapshotsClient;
    use api::tasks::tasks_client::TasksClient;
    let ch = channel(socket, timeout).await?;
    let shown = socket.display().to_string();
    let namespaces = NamespacesClient::new(ch.clone())
        .list(api::namespaces::ListNamespacesRequest::default())
        .await
        .map_err(|e| format!("listing namespaces at {shown}: {}", e.message()))?
        .into_inner()
        .namespaces;
    for ns in namespaces.into_iter().map(|n| n.name) {
        let containers = match ContainersClient::new(ch.clone())
            .list(in_namespace(&ns, api::containers::ListContainersRequest::default()))
            .await
        {
            Ok(r) => r.into_inner().containers,
            Err(e) => {
                inv.errors.push((format!("namespace {ns}"), format!("listing containers: {}", e.message())));
                continue;
            }
        };
        let tasks: BTreeMap<String, api::tasks::Process> =
            match TasksClient::new(ch.clone()).list(in_namespace(&ns, api::tasks::ListTasksRequest::default())).await {
                // containerd fills `id` (the task's id, the container's) and may leave container_id empty.
                Ok(r) => r
                    .into_inner()
                    .tasks
                    .into_iter()
                    .map(|t| (if t.container_id.is_empty() { t.id.clone() } else { t.container_id.clone() }, t))
                    .collect(),
                Err(e) => {
                    inv.errors.push((format!("namespace {ns}"), format!("listing tasks: {}", e.message())));
                    BTreeMap::new()
                }
            };
        for meta in containers {
            let task = tasks.get(&meta.id).cloned();
            let mut c = Container { socket: shown.clone(), namespace: ns.clone(), meta, task, mounts: None };
            if c.running_pid().is_none() && !c.meta.snapshot_key.is_empty() {
                let req = api::snapshots::MountsRequest {
                    snapshotter: c.meta.snapshotter.clone(),
                    key: c.meta.snapshot_key.clone(),
                };
                c.mounts = Some(
                    SnapshotsClient::new(ch.clone())
                        .mounts(in_namespace(&ns, req))
                        .await
                        .map(|r| r.into_inner().mounts)
                        .map_err(|e| e.message().to_string()),
                );
            }
            inv.containers.push(c);
        }
    }
    Ok(())
}

/// One snapshot's mounts, from the first socket that knows it. Docker with
/// the containerd image store reports no GraphDriver directories: its
/// containers' filesystems are snapshots in the `moby` namespace, keyed by
/// container id.
pub async fn snapshot_mounts(
    sockets: &[PathBuf],
    namespace: &str,
    snapshotter: &str,
    key: &str,
    timeout: Duration,
) -> Result<Vec<api::snapshots::Mount>, String> {
    use api::snapshots::snapshots_client::SnapshotsClient;
    let mut last = format!("no containerd socket to ask for snapshot {key}");
    for s in sockets {
        let ch = match channel(s, timeout).await {
            Ok(ch) => ch,
            Err(e) => {
                last = e;
                continue;
            }
        };
        let req = api::snapshots::MountsRequest { snapshotter: snapshotter.into(), key: key.into() };
        match SnapshotsClient::new(ch).mounts(in_namespace(namespace, req)).await {
            Ok(r) => return Ok(r.into_inner().mounts),
            Err(e) => last = format!("snapshot {key} ({snapshotter}, namespace {namespace}): {}", e.message()),
        }
    }
    Err(last)
}

/// A snapshot's mounts as layer directories (top first) and the markers its
/// snapshotter writes; nothing is mounted. Overlay mounts list upperdir and
/// lowerdir; a single bind mount (native snapshotter, or a one-layer
/// overlay snapshot) is the root directory itself.
pub fn snapshot_layers(mounts: &[api::snapshots::Mount]) -> Result<(Vec<PathBuf>, Markers), String> {
    let [m] = mounts else {
        return Err(format!("snapshot has {} mounts; one was expected", mounts.len()));
    };
    let opt = |k: &str| m.options.iter().find_map(|o| o.strip_prefix(k)?.strip_prefix('='));
    match m.r#type.as_str() {
        "bind" | "rbind" => Ok((vec![PathBuf::from(&m.source)], Markers::KERNEL_OVERLAY)),
        t @ ("overlay" | "fuse3.fuse-overlayfs" | "fuse.fuse-overlayfs") => {
            let mut dirs: Vec<PathBuf> = opt("upperdir").into_iter().map(PathBuf::from).collect();
            dirs.extend(opt("lowerdir").unwrap_or("").split(':').filter(|p| !p.is_empty()).map(PathBuf::from));
            if dirs.is_empty() {
                return Err(format!("{t} mount without upperdir or lowerdir"));
            }
            let markers = match t {
                // Unprivileged and rootless overlay mounts keep their markers in user.overlay.* xattrs.
                "overlay" if m.options.iter().any(|o| o == "userxattr") => Markers::KernelUserXattr,
                "overlay" => Markers::KERNEL_OVERLAY,
                _ => Markers::FUSE_OVERLAYFS,
            };
            Ok((dirs, markers))
        }
        t => Err(format!("snapshot mount type {t} is not one Periscope reads in userspace")),
    }
}

/// The capabilities Docker and containerd grant by default; additions and
/// drops are reported against this set, as `docker inspect` reports them.
const DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

fn strs(v: &Json) -> Vec<String> {
    v.as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect()).unwrap_or_default()
}

fn ts_us(t: Option<&api::containers::Timestamp>) -> Value<'static> {
    t.filter(|t| t.seconds > 0).map_or(Value::Null, |t| Value::Int(t.seconds * 1_000_000 + t.nanos as i64 / 1000))
}

/// How a namespace of `kind` is set up in the spec: "host" when the container
/// does not get its own (the runtime leaves it shared), the joined path when
/// it enters an existing one (a pod's sandbox), "private" otherwise.
fn ns_mode(spec: &Json, kind: &str) -> String {
    let nss = spec.pointer("/linux/namespaces").and_then(Json::as_array);
    match nss.and_then(|a| a.iter().find(|n| n["type"] == kind)) {
        None => "host".into(),
        Some(n) => n["path"].as_str().filter(|p| !p.is_empty()).map_or("private".into(), |p| format!("ns:{p}")),
    }
}

fn state(c: &Container) -> &'static str {
    match c.task.as_ref().map(|t| t.status()) {
        Some(Status::Running) => "running",
        Some(Status::Created) => "created",
        Some(Status::Stopped) => "exited",
        Some(Status::Paused | Status::Pausing) => "paused",
        Some(Status::Unknown) => "unknown",
        // No task: never started, or its task was deleted after it exited
        // (what the Kubernetes CRI does); the filesystem is still there.
        None => "stopped",
    }
}

/// Fills `containers` and `container_mounts` for every container not in
/// `skip` (ids another runtime API already reported, e.g. Docker's own
/// containers in the `moby` namespace).
pub fn fill(inv: &Inventory, skip: &BTreeSet<String>, out: &mut Sink) {
    for (what, message) in &inv.errors {
        out.error(C, Some(what), message);
    }
    for c in inv.containers.iter().filter(|c| !skip.contains(&c.meta.id)) {
        container_rows(c, out);
    }
}

fn container_rows(c: &Container, out: &mut Sink) {
    let id = c.meta.id.as_str();
    let spec = c.spec();
    let proc_ = &spec["process"];
    super::env_rows(id, proc_["env"].as_array().into_iter().flatten().filter_map(|v| v.as_str()), out);
    let label = |k: &str| c.meta.labels.get(k).map(String::as_str);
    let caps: BTreeSet<String> = strs(&proc_["capabilities"]["bounding"]).into_iter().collect();
    let have_spec = !spec.is_null();
    let cap_add: Vec<&str> = caps.iter().map(String::as_str).filter(|k| !DEFAULT_CAPS.contains(k)).collect();
    let cap_drop: Vec<&str> = DEFAULT_CAPS.iter().copied().filter(|k| have_spec && !caps.contains(*k)).collect();
    let short = |v: Vec<&str>| {
        (!v.is_empty()).then(|| v.iter().map(|k| k.trim_start_matches("CAP_")).collect::<Vec<_>>().join(","))
    };
    // --privileged grants every capability and the host's devices: here, the
    // full set of capabilities the kernel knows and CAP_SYS_ADMIN among them.
    let privileged = caps.contains("CAP_SYS_ADMIN") && caps.len() >= 38;
    let user = &proc_["user"];
    let user = user["username"].as_str().filter(|s| !s.is_empty()).map(str::to_string).or_else(|| {
        let uid = user["uid"].as_u64()?;
        Some(match user["gid"].as_u64() {
            Some(g) if g != 0 => format!("{uid}:{g}"),
            _ => uid.to_string(),
        })
    });
    let seccomp = if !have_spec {
        None
    } else if spec.pointer("/linux/seccomp").is_some_and(|s| !s.is_null()) {
        Some("default")
    } else {
        Some("unconfined")
    };
    let apparmor = proc_["apparmorProfile"].as_str().filter(|s| !s.is_empty());
    let res = spec.pointer("/linux/resources").cloned().unwrap_or(Json::Null);
    let devices: Vec<String> = spec
        .pointer("/linux/devices")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
        .filter_map(|d| d["path"].as_str().map(|p| format!("{p}:{p}")))
        .collect();
    let labels_json = serde_json::to_string(&c.meta.labels.iter().collect::<BTreeMap<_, _>>()).unwrap_or_default();
    let task = c.task.as_ref();
    let exited = task.filter(|t| t.status() == Status::Stopped);
    let layers = c.mounts.as_ref().and_then(|m| m.as_ref().ok()).and_then(|m| snapshot_layers(m).ok());
    let (upper, lower) = match &layers {
        Some((dirs, _)) if dirs.len() > 1 => (
            Some(dirs[0].display().to_string()),
            Some(dirs[1..].iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(":")),
        ),
        Some((dirs, _)) => (dirs.first().map(|d| d.display().to_string()), None),
        None => (None, None),
    };
    out.row(
        &CONTAINERS,
        &[
            ("container_id", id.into()),
            ("name", label("io.kubernetes.container.name").or(label("nerdctl/name")).unwrap_or(id).into()),
            ("image", Some(c.meta.image.as_str()).filter(|s| !s.is_empty()).into()),
            ("runtime", c.meta.runtime.as_ref().map(|r| r.name.as_str()).into()),
            ("engine", "containerd".into()),
            ("namespace", c.namespace.as_str().into()),
            ("state", state(c).into()),
            ("exit_code", exited.map(|t| t.exit_status as i64).into()),
            ("oom_killed", exited.map(|t| t.exit_reason() == api::tasks::ExitReason::Oomkilled).into()),
            ("created", ts_us(c.meta.created_at.as_ref())),
            (
                "finished_at",
                exited
                    .and_then(|t| t.exited_at.as_ref())
                    .filter(|t| t.seconds > 0)
                    .map_or(Value::Null, |t| Value::Int(t.seconds * 1_000_000 + t.nanos as i64 / 1000)),
            ),
            ("pid", c.running_pid().into()),
            ("command", Some(strs(&proc_["args"]).join(" ")).filter(|s| !s.is_empty()).as_ref().into()),
            ("user", user.as_ref().into()),
            ("privileged", have_spec.then_some(privileged).into()),
            ("cap_add", short(cap_add).as_ref().into()),
            ("cap_drop", short(cap_drop).as_ref().into()),
            ("devices", Some(devices.join(",")).filter(|s| !s.is_empty()).as_ref().into()),
            ("network_mode", have_spec.then(|| ns_mode(&spec, "network")).as_ref().into()),
            ("pid_mode", have_spec.then(|| ns_mode(&spec, "pid")).as_ref().into()),
            ("ipc_mode", have_spec.then(|| ns_mode(&spec, "ipc")).as_ref().into()),
            ("uts_mode", have_spec.then(|| ns_mode(&spec, "uts")).as_ref().into()),
            (
                "userns_mode",
                have_spec
                    .then(|| if ns_mode(&spec, "user") == "host" { String::new() } else { "private".into() })
                    .as_ref()
                    .into(),
            ),
            ("read_only_rootfs", spec.pointer("/root/readonly").and_then(Json::as_bool).into()),
            (
                "memory_limit",
                have_spec.then(|| res.pointer("/memory/limit").and_then(Json::as_i64).unwrap_or(0)).into(),
            ),
            ("cpu_quota", have_spec.then(|| res.pointer("/cpu/quota").and_then(Json::as_i64).unwrap_or(0)).into()),
            ("cpu_shares", have_spec.then(|| res.pointer("/cpu/shares").and_then(Json::as_i64).unwrap_or(0)).into()),
            ("pids_limit", res.pointer("/pids/limit").and_then(Json::as_i64).into()),
            ("seccomp_profile", seccomp.into()),
            ("apparmor_profile", apparmor.into()),
            ("no_new_privileges", proc_["noNewPrivileges"].as_bool().or(have_spec.then_some(false)).into()),
            ("labels", labels_json.as_str().into()),
            ("k8s_pod", label("io.kubernetes.pod.name").into()),
            ("k8s_namespace", label("io.kubernetes.pod.namespace").into()),
            ("k8s_container", label("io.kubernetes.container.name").into()),
            ("storage_driver", Some(c.meta.snapshotter.as_str()).filter(|s| !s.is_empty()).into()),
            ("upper_dir", upper.as_ref().into()),
            ("lower_dirs", lower.as_ref().into()),
            ("snapshot_key", Some(c.meta.snapshot_key.as_str()).filter(|s| !s.is_empty()).into()),
        ],
    );
    for m in spec["mounts"].as_array().into_iter().flatten() {
        let opts = strs(&m["options"]);
        let has = |o: &str| opts.iter().any(|x| x == o);
        let propagation = opts
            .iter()
            .find(|o| matches!(o.as_str(), "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave"));
        let typ = m["type"].as_str().unwrap_or("");
        // OCI specs give binds as type "bind" or as options on type "none".
        let typ = if typ == "none" && (has("bind") || has("rbind")) { "bind" } else { typ };
        out.row(
            &CONTAINER_MOUNTS,
            &[
                ("container_id", id.into()),
                ("type", Some(typ).filter(|t| !t.is_empty()).into()),
                ("source", m["source"].as_str().into()),
                ("destination", m["destination"].as_str().into()),
                ("mode", Some(opts.join(",")).filter(|s| !s.is_empty()).as_ref().into()),
                ("rw", (!has("ro")).into()),
                ("propagation", propagation.into()),
            ],
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use api::snapshots::Mount;

    fn mount(t: &str, src: &str, opts: &[&str]) -> Mount {
        Mount {
            r#type: t.into(),
            source: src.into(),
            target: String::new(),
            options: opts.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn snapshot_mounts_become_layers() {
        let (d, m) = snapshot_layers(&[mount("bind", "/s/1/fs", &["rbind", "rw"])]).unwrap();
        assert_eq!(d, vec![PathBuf::from("/s/1/fs")]);
        assert_eq!(m, Markers::KERNEL_OVERLAY);
        let (d, m) = snapshot_layers(&[mount(
            "overlay",
            "overlay",
            &["index=off", "workdir=/s/3/work", "upperdir=/s/3/fs", "lowerdir=/s/2/fs:/s/1/fs"],
        )])
        .unwrap();
        assert_eq!(d, ["/s/3/fs", "/s/2/fs", "/s/1/fs"].map(PathBuf::from).to_vec());
        assert_eq!(m, Markers::KERNEL_OVERLAY);
        // Rootless containerd mounts with userxattr: the markers are user.overlay.* there.
        let (_, m) =
            snapshot_layers(&[mount("overlay", "overlay", &["userxattr", "lowerdir=/s/2/fs:/s/1/fs"])]).unwrap();
        assert_eq!(m, Markers::KernelUserXattr);
        let (_, m) = snapshot_layers(&[mount("fuse3.fuse-overlayfs", "o", &["lowerdir=/a"])]).unwrap();
        assert_eq!(m, Markers::FUSE_OVERLAYFS);
        assert!(snapshot_layers(&[mount("btrfs", "/dev/x", &[])]).unwrap_err().contains("btrfs"));
        assert!(snapshot_layers(&[]).is_err());
        assert!(snapshot_layers(&[mount("overlay", "o", &["workdir=/w"])]).is_err());
    }

    #[test]
    fn namespace_modes() {
        let spec: Json = serde_json::json!({"linux": {"namespaces": [
            {"type": "pid"}, {"type": "network", "path": "/proc/7/ns/net"}, {"type": "mount"}
        ]}});
        assert_eq!(ns_mode(&spec, "pid"), "private");
        assert_eq!(ns_mode(&spec, "network"), "ns:/proc/7/ns/net");
        assert_eq!(ns_mode(&spec, "ipc"), "host");
    }
}
