//! Every table Periscope stores, declared once.
//!
//! The agent builds its Arrow batches from these declarations, the server
//! registers tables and checks incoming batches against them, and column
//! descriptions travel as Arrow field metadata (key `description`) so SQL
//! fronts can show them. Adding a column is a change to this file only.

use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// Field metadata key under which a column's description is stored.
pub const DESCRIPTION_KEY: &str = "description";

/// The Arrow type of a column, in the few shapes Periscope uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    Utf8,
    Int64,
    Boolean,
    /// Microseconds since the epoch, UTC.
    Timestamp,
}

impl ColumnType {
    pub fn data_type(self) -> DataType {
        match self {
            ColumnType::Utf8 => DataType::Utf8,
            ColumnType::Int64 => DataType::Int64,
            ColumnType::Boolean => DataType::Boolean,
            ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())),
        }
    }
}

#[derive(Debug)]
pub struct Column {
    pub name: &'static str,
    pub ty: ColumnType,
    pub description: &'static str,
}

#[derive(Debug)]
pub struct Table {
    pub name: &'static str,
    pub description: &'static str,
    /// Table-specific columns; `COMMON_COLUMNS` come first in every schema.
    pub columns: &'static [Column],
}

const fn col(name: &'static str, ty: ColumnType, description: &'static str) -> Column {
    Column { name, ty, description }
}

use ColumnType::{Boolean, Int64, Timestamp, Utf8};

/// Columns every row carries, in this order, never null.
pub const COMMON_COLUMNS: &[Column] = &[
    col("host", Utf8, "Host name of the machine whose agent produced the row."),
    col("scope", Utf8, "What was crawled: host, container or image."),
    col("scope_id", Utf8, "Identity of the scope: machine id for a host, container id, or image id."),
    col("crawl_time", Timestamp, "When the crawl that produced the row started (UTC)."),
];

/// Values of the `scope` column.
pub mod scope {
    pub const HOST: &str = "host";
    pub const CONTAINER: &str = "container";
    pub const IMAGE: &str = "image";
}

pub const OS: Table = Table {
    name: "os",
    description: "Operating system identity of a scope, from os-release.",
    columns: &[
        col("id", Utf8, "os-release ID, e.g. debian, alpine, rhel."),
        col("id_like", Utf8, "os-release ID_LIKE: space-separated related distributions."),
        col("name", Utf8, "os-release NAME."),
        col("version", Utf8, "os-release VERSION."),
        col("version_id", Utf8, "os-release VERSION_ID."),
        col("version_codename", Utf8, "os-release VERSION_CODENAME."),
        col("pretty_name", Utf8, "os-release PRETTY_NAME."),
        col("source_path", Utf8, "File the identity was read from, inside the scope."),
        col(
            "release",
            Utf8,
            "First line of the distribution's own release file (/etc/alpine-release, /etc/redhat-release, /etc/debian_version, ...).",
        ),
        col(
            "busybox",
            Boolean,
            "True when /bin/busybox is present: a busybox-based root, identified even without os-release.",
        ),
    ],
};

pub const PACKAGES: Table = Table {
    name: "packages",
    description: "Installed packages of a scope: operating-system packages and application (language) packages.",
    columns: &[
        col(
            "manager",
            Utf8,
            "Package manager or ecosystem that describes the package: dpkg, apk, rpm; pypi, npm, maven, golang, cargo, gem, composer, nuget.",
        ),
        col("name", Utf8, "Package name."),
        col(
            "version",
            Utf8,
            "Full version string as the package manager orders it (deb: [epoch:]upstream[-revision]).",
        ),
        col("architecture", Utf8, "Architecture, e.g. amd64, all, x86_64, noarch."),
        col("source", Utf8, "Source package name (defaults to the package name when the database names none)."),
        col("source_version", Utf8, "Source package version (defaults to the package version)."),
        col("status", Utf8, "Package manager status, e.g. dpkg 'install ok installed'."),
        col("maintainer", Utf8, "Maintainer or packager."),
        col("installed_size", Int64, "Installed size in bytes, as the database records it."),
        col("epoch", Int64, "rpm epoch; null when the package has none (which rpm orders apart from epoch 0)."),
        col("release", Utf8, "rpm release (the part of version after the last '-')."),
        col("license", Utf8, "License as the database records it (apk L, rpm LICENSE)."),
        col("vendor", Utf8, "rpm vendor."),
        col(
            "install_time",
            Timestamp,
            "When the package was installed, where the database records it (rpm INSTALLTIME).",
        ),
        col("db_path", Utf8, "Database file the package was read from, inside the scope."),
        col("description", Utf8, "One-line description (dpkg Description's first line, apk T)."),
        col("url", Utf8, "Project home page (dpkg Homepage, apk U)."),
        col("commit", Utf8, "Build recipe commit, where recorded (apk c)."),
        col("package_size", Int64, "Size of the package archive in bytes, where recorded (apk S)."),
        col(
            "location",
            Utf8,
            "File the package was read from, inside the scope (a package database, a dist-info METADATA, a package.json, a jar, a binary).",
        ),
        col(
            "purl",
            Utf8,
            "Package URL (https://github.com/package-url/purl-spec), as other tools write it; null where none is made yet.",
        ),
        col(
            "owner_package",
            Utf8,
            "For an application package: the OS package whose files include `location` (Debian's python3-requests is then one package seen twice); null when no OS package owns it.",
        ),
    ],
};

pub const PACKAGES_NOT_INSTALLED: Table = Table {
    name: "packages_not_installed",
    description: "Packages the database still lists but whose files are gone or never arrived (dpkg config-files, not-installed), kept apart from packages.",
    columns: &[
        col("manager", Utf8, "Package manager: dpkg."),
        col("name", Utf8, "Package name."),
        col("version", Utf8, "Version the database records, if any."),
        col("architecture", Utf8, "Architecture."),
        col("status", Utf8, "Package manager status, e.g. 'deinstall ok config-files'."),
        col("db_path", Utf8, "Database file the entry was read from, inside the scope."),
    ],
};

pub const PACKAGE_FILES: Table = Table {
    name: "package_files",
    description: "Which package owns which path, from the package managers' own file lists.",
    columns: &[
        col("manager", Utf8, "dpkg, apk or rpm."),
        col("package", Utf8, "Owning package name."),
        col("path", Utf8, "Absolute path inside the scope, as the package database records it."),
    ],
};

pub const USERS: Table = Table {
    name: "users",
    description: "Local accounts from /etc/passwd, with password state from /etc/shadow (never the hash).",
    columns: &[
        col("name", Utf8, "Login name."),
        col("uid", Int64, "User id."),
        col("gid", Int64, "Primary group id."),
        col("gecos", Utf8, "GECOS (full name) field."),
        col("home", Utf8, "Home directory."),
        col("shell", Utf8, "Login shell."),
        col(
            "password_set",
            Boolean,
            "True when /etc/shadow holds a usable password hash; null without a shadow entry.",
        ),
        col("empty_password", Boolean, "True when the shadow password field is empty: login needs no password."),
        col("locked", Boolean, "True when the shadow password is locked ('!' prefix)."),
    ],
};

pub const GROUPS: Table = Table {
    name: "groups",
    description: "Local groups from /etc/group.",
    columns: &[
        col("name", Utf8, "Group name."),
        col("gid", Int64, "Group id."),
        col("members", Utf8, "Comma-separated member logins."),
    ],
};

pub const FILES: Table = Table {
    name: "files",
    description: "Metadata of files matching the configured globs, with owning package.",
    columns: &[
        col("path", Utf8, "Absolute path inside the scope (non-UTF-8 bytes as \\xNN)."),
        col("type", Utf8, "regular file, directory, symlink, fifo, socket, character device or block device."),
        col("size", Int64, "Size in bytes."),
        col("mode", Utf8, "Permission bits in octal, e.g. 4755."),
        col("uid", Int64, "Owner user id."),
        col("gid", Int64, "Owner group id."),
        col("mtime", Timestamp, "Last modification time."),
        col("symlink_target", Utf8, "Target of a symlink, as stored (not followed)."),
        col("setuid", Boolean, "Set-user-id bit."),
        col("setgid", Boolean, "Set-group-id bit."),
        col("sha256", Utf8, "SHA-256 of a regular file's content, when under the hashing size cap."),
        col("package", Utf8, "Package that owns the path, from package_files; null when none does."),
        col(
            "links",
            Int64,
            "Hard links to the file (st_nlink). Above 1 for a regular file, its other names may lie outside this scope's tree: it is read as the scope presents it.",
        ),
    ],
};

pub const CONFIGS: Table = Table {
    name: "configs",
    description: "Contents of selected configuration files (sshd_config, sudoers, daemon.json, ...), size-capped.",
    columns: &[
        col("path", Utf8, "Absolute path inside the scope."),
        col("size", Int64, "File size in bytes."),
        col("content", Utf8, "File content up to the cap (invalid UTF-8 replaced)."),
        col("truncated", Boolean, "True when the file is longer than the cap."),
    ],
};

pub const UNOWNED_FILES: Table = Table {
    name: "unowned_files",
    description: "Executables and shared libraries under /usr, /opt, /bin, /sbin and /lib that no package owns (e.g. software compiled into /usr/local).",
    columns: &[
        col("path", Utf8, "Absolute path inside the scope."),
        col("kind", Utf8, "executable or shared_library."),
        col("size", Int64, "Size in bytes."),
        col("mode", Utf8, "Permission bits in octal."),
        col("mtime", Timestamp, "Last modification time."),
        col("sha256", Utf8, "SHA-256 of the content, when under the hashing size cap."),
        col(
            "identified",
            Utf8,
            "What identifies the file, '; '-separated: its Go main module (golang:example.com/app@v1.2.3, or golang:go1.22.1 without one), its cargo-auditable root crates (cargo:uv@0.13.9; at most 4, each at most 256 bytes, then 'cargo:… and N more root crates'), each library embedded in it (openssl 3.0.11; sqlite, by name alone when its version is unknown: see embedded_libraries). Null when nothing does, or when the file was not read for it: see examined.",
        ),
        col(
            "examined",
            Utf8,
            "How much of the file was read for identified: elf (an ELF file read whole: a null identified means nothing identifies it), elf_prefix (an ELF file read up to the per-file budget only), elf_headers (an ELF file over the hashing size cap: only its headers, for Go and Rust build info; its libraries are in embedded_libraries), not_elf (not an ELF file, e.g. a script: nothing is looked for). Null when it could not be read (see crawl_errors).",
        ),
    ],
};

pub const EMBEDDED_LIBRARIES: Table = Table {
    name: "embedded_libraries",
    description: "Well-known C libraries copied or statically linked into ELF executables and shared objects (OpenSSL, LibreSSL, BoringSSL, zlib, libcurl, SQLite, libpng, libxml2, expat, BusyBox, glibc, musl), identified by the version banners of their own code: each ELF file under /usr, /opt, /bin, /sbin, /lib*, /app, /srv and /var/www that no package owns, and each package-owned one named like one of these libraries (libcrypto.so.3, libc.so.6, busybox).",
    columns: &[
        col("path", Utf8, "The ELF file, absolute inside the scope."),
        col(
            "library",
            Utf8,
            "openssl, libressl, boringssl, zlib, libcurl, sqlite, libpng, libxml2, expat, busybox, glibc or musl.",
        ),
        col(
            "version",
            Utf8,
            "The version the evidence states, as written (libxml2's 20914 as 2.9.14; quictls' 3.0.13+quic; 1.1.1k of Red Hat's 'OpenSSL 1.1.1k  FIPS 25 Mar 2021'). Null when it is unknown: the library has none (BoringSSL), the banner's version does not parse, the file names two versions of it or more banners than are kept, no single bare version string stands beside its marker (SQLite, libxml2, musl), or the file was read only up to the per-file budget (crawl_errors says so).",
        ),
        col(
            "evidence",
            Utf8,
            "The string found, as a person can look it up in the file: printable ASCII as it is, a backslash as \\\\, other bytes as \\xNN (at most 256 bytes).",
        ),
        col("evidence_offset", Int64, "Byte offset of the evidence in the file."),
        col("owner_package", Utf8, "The OS package that owns the file, if any."),
    ],
};

pub const CONTAINERS: Table = Table {
    name: "containers",
    description: "Every container the host's runtime knows, running or not, with its security-relevant settings (docker inspect).",
    columns: &[
        col("container_id", Utf8, "Full container id."),
        col("name", Utf8, "Container name, without the leading '/'."),
        col("image", Utf8, "Image reference the container was created from."),
        col("image_id", Utf8, "Image id (sha256:...)."),
        col("runtime", Utf8, "Container runtime, e.g. runc or io.containerd.runc.v2."),
        col("engine", Utf8, "The API that reported the container: docker or containerd."),
        col("namespace", Utf8, "containerd namespace (k8s.io for Kubernetes); null for Docker."),
        col(
            "state",
            Utf8,
            "created, running, paused, restarting, removing, exited or dead; stopped for a containerd container without a task.",
        ),
        col("exit_code", Int64, "Exit code of the last run."),
        col("oom_killed", Boolean, "True when the last run was killed for running out of memory."),
        col("restart_count", Int64, "Restarts by the restart policy."),
        col("created", Timestamp, "When the container was created."),
        col("started_at", Timestamp, "When it last started; null when never started."),
        col("finished_at", Timestamp, "When it last stopped; null when it never stopped."),
        col("pid", Int64, "Host pid of the main process; null when not running."),
        col("command", Utf8, "Entrypoint and arguments, space-joined."),
        col("user", Utf8, "User the process runs as (empty: the image's user, root by default)."),
        col("privileged", Boolean, "Runs with --privileged."),
        col("cap_add", Utf8, "Capabilities added, comma-separated."),
        col("cap_drop", Utf8, "Capabilities dropped, comma-separated."),
        col("devices", Utf8, "Host devices passed in, comma-separated host:container paths."),
        col("network_mode", Utf8, "Network mode, e.g. bridge, host, container:<id>."),
        col("pid_mode", Utf8, "PID namespace mode; 'host' shares the host's."),
        col("ipc_mode", Utf8, "IPC namespace mode; 'host' shares the host's."),
        col("uts_mode", Utf8, "UTS namespace mode; 'host' shares the host's."),
        col("userns_mode", Utf8, "User namespace mode; empty when the daemon default applies."),
        col("read_only_rootfs", Boolean, "Root filesystem mounted read-only."),
        col("memory_limit", Int64, "Memory limit in bytes; 0 means none."),
        col("nano_cpus", Int64, "CPU limit in 1e-9 CPUs (--cpus); 0 means none."),
        col("cpu_quota", Int64, "CFS quota in microseconds per period; 0 means none."),
        col("cpu_shares", Int64, "Relative CPU weight; 0 means the default."),
        col("pids_limit", Int64, "Maximum processes; null, 0 or -1 means none."),
        col("security_opt", Utf8, "Security options, comma-separated."),
        col("seccomp_profile", Utf8, "seccomp profile: 'unconfined' when disabled, else the profile or 'default'."),
        col("apparmor_profile", Utf8, "AppArmor profile applied; 'unconfined' when disabled."),
        col("no_new_privileges", Boolean, "no-new-privileges security option set."),
        col("healthcheck", Utf8, "Healthcheck test (container's, else the image's), space-joined; null when none."),
        col("restart_policy", Utf8, "Restart policy name: no, always, unless-stopped, on-failure."),
        col("restart_max_retries", Int64, "Maximum retries for on-failure."),
        col("labels", Utf8, "All labels as a JSON object."),
        col("k8s_pod", Utf8, "Kubernetes pod name (io.kubernetes.pod.name label)."),
        col("k8s_namespace", Utf8, "Kubernetes namespace (io.kubernetes.pod.namespace label)."),
        col("k8s_container", Utf8, "Kubernetes container name (io.kubernetes.container.name label)."),
        col("storage_driver", Utf8, "Storage driver holding the container's filesystem, e.g. overlay2."),
        col("upper_dir", Utf8, "Host path of the container's writable layer, when the driver reports one."),
        col("lower_dirs", Utf8, "Host paths of the image layers under it, top first, colon-separated."),
        col("snapshot_key", Utf8, "containerd snapshot key of the root filesystem (containerd containers)."),
        col(
            "health_status",
            Utf8,
            "The health check's verdict: starting, healthy or unhealthy; null without a health check (Docker).",
        ),
        col("health_failing_streak", Int64, "Health checks failed in a row (Docker)."),
        col(
            "health_output",
            Utf8,
            "What the latest health check printed, its exit code first ('exit 1: ...'); Docker keeps 4 KiB of it.",
        ),
        col(
            "error",
            Utf8,
            "Why the engine last failed to start or run it, e.g. 'exec: \"x\": executable file not found' (Docker's State.Error); null when none.",
        ),
    ],
};

pub const CONTAINER_MOUNTS: Table = Table {
    name: "container_mounts",
    description: "Mounts of every container: binds, volumes, tmpfs. WHERE source LIKE '%docker.sock' finds socket mounts.",
    columns: &[
        col("container_id", Utf8, "Container id."),
        col("type", Utf8, "bind, volume, tmpfs, npipe or cluster."),
        col("source", Utf8, "Host path (bind) or volume path."),
        col("destination", Utf8, "Path inside the container."),
        col("name", Utf8, "Volume name, for volumes."),
        col("mode", Utf8, "Mount mode string as given, e.g. ro,Z."),
        col("rw", Boolean, "Mounted read-write."),
        col("propagation", Utf8, "Mount propagation, e.g. rprivate."),
    ],
};

pub const CONTAINER_ENV: Table = Table {
    name: "container_env",
    description: "Environment variables each container is configured with (docker inspect's Config.Env, the containerd spec's process.env). A value whose name looks secret (holding PASS, TOKEN, SECRET, KEY, CREDENTIAL, AUTH or PRIVATE, in any case; PERISCOPE_SQL_USERS) or that is a URL with a password is never stored: 'sha256:' and 16 hex digits of its SHA-256 stand in for it, so equal secrets show as equal (a short or guessable one can still be guessed from it).",
    columns: &[
        col("container_id", Utf8, "Container id."),
        col("name", Utf8, "Variable name."),
        col("value", Utf8, "Value, or its hash when the name looks secret (see `redacted`)."),
        col("redacted", Boolean, "True when the value was replaced by its hash."),
    ],
};

pub const CONTAINER_PORTS: Table = Table {
    name: "container_ports",
    description: "Ports each container exposes and where they are published on the host.",
    columns: &[
        col("container_id", Utf8, "Container id."),
        col("container_port", Int64, "Port inside the container."),
        col("protocol", Utf8, "tcp, udp or sctp."),
        col(
            "host_ip",
            Utf8,
            "Host address it is published on ('0.0.0.0' or '::' means all interfaces); null when not published.",
        ),
        col("host_port", Int64, "Host port; null when not published."),
    ],
};

pub const IMAGES: Table = Table {
    name: "images",
    description: "Images present on the host, used by a container or not (docker image inspect).",
    columns: &[
        col("image_id", Utf8, "Image id (sha256:...)."),
        col("repo_tags", Utf8, "Tags, comma-separated."),
        col("repo_digests", Utf8, "Registry digests, comma-separated."),
        col("created", Timestamp, "When the image was built."),
        col("size", Int64, "Size in bytes."),
        col("architecture", Utf8, "CPU architecture."),
        col("os", Utf8, "Operating system."),
        col("layers", Utf8, "Layer diff ids, bottom first, comma-separated."),
        col("config_user", Utf8, "User the image runs as by default (empty: root)."),
        col("healthcheck", Utf8, "Healthcheck test, space-joined; null when none."),
        col("exposed_ports", Utf8, "Ports the image declares, comma-separated, e.g. 80/tcp."),
    ],
};

pub const IMAGE_HISTORY: Table = Table {
    name: "image_history",
    description: "How each image was built: one row per history entry (docker history).",
    columns: &[
        col("image_id", Utf8, "Image id."),
        col("position", Int64, "0 for the newest entry, counting down the stack."),
        col("layer_id", Utf8, "Id of the image at this step, when known locally."),
        col("created", Timestamp, "When the step ran."),
        col("created_by", Utf8, "The build instruction."),
        col("size", Int64, "Bytes the step added."),
        col("comment", Utf8, "Comment."),
        col("tags", Utf8, "Tags of the image at this step, comma-separated."),
    ],
};

pub const CONTAINER_METRICS: Table = Table {
    name: "container_metrics",
    description: "Resource figures of each running container from its cgroups (v1 or v2).",
    columns: &[
        col("container_id", Utf8, "Container id."),
        col("cgroup_version", Int64, "1 or 2."),
        col("memory_current_bytes", Int64, "Memory in use."),
        col("memory_limit_bytes", Int64, "Memory limit; null when unlimited."),
        col("memory_peak_bytes", Int64, "Highest memory use recorded."),
        col("oom_events", Int64, "Times the limit was hit (v2 memory.events oom; v1 memory.failcnt)."),
        col("oom_kills", Int64, "Processes killed by the OOM killer in this cgroup."),
        col("cpu_usage_ns", Int64, "CPU time consumed, nanoseconds."),
        col("cpu_periods", Int64, "CFS enforcement periods elapsed."),
        col("cpu_throttled_periods", Int64, "Periods in which the cgroup was throttled."),
        col("cpu_throttled_ns", Int64, "Time spent throttled, nanoseconds."),
        col("pids_current", Int64, "Processes and threads in the cgroup."),
        col("pids_limit", Int64, "pids limit; null when unlimited."),
    ],
};

pub const LISTENING_PORTS: Table = Table {
    name: "listening_ports",
    description: "Sockets accepting connections (TCP LISTEN, bound UDP), read once per network namespace.",
    columns: &[
        col("protocol", Utf8, "tcp, tcp6, udp or udp6."),
        col("address", Utf8, "Local address; 0.0.0.0 or :: means all interfaces."),
        col("port", Int64, "Local port."),
        col("net_ns", Int64, "Network namespace inode."),
        col("pid", Int64, "Process holding the socket, when found."),
        col("process", Utf8, "That process's name."),
        col("container_id", Utf8, "Container of that process (or of the namespace), when it has one."),
    ],
};

pub const CONNECTIONS: Table = Table {
    name: "connections",
    description: "TCP and UDP sockets that are not listening, read once per network namespace.",
    columns: &[
        col("protocol", Utf8, "tcp, tcp6, udp or udp6."),
        col("local_address", Utf8, "Local address."),
        col("local_port", Int64, "Local port."),
        col("remote_address", Utf8, "Remote address."),
        col("remote_port", Int64, "Remote port."),
        col("state", Utf8, "TCP state, e.g. ESTABLISHED, TIME_WAIT."),
        col("net_ns", Int64, "Network namespace inode."),
        col("pid", Int64, "Process holding the socket, when found."),
        col("container_id", Utf8, "Container of that process (or of the namespace), when it has one."),
    ],
};

pub const INTERFACES: Table = Table {
    name: "interfaces",
    description: "Network interfaces of every network namespace (the host's and each container's), with addresses and counters.",
    columns: &[
        col("net_ns", Int64, "Network namespace inode."),
        col("name", Utf8, "Interface name."),
        col("ipv4", Utf8, "IPv4 addresses, comma-separated."),
        col("ipv6", Utf8, "IPv6 addresses with prefix length, comma-separated."),
        col("rx_bytes", Int64, "Bytes received."),
        col("rx_packets", Int64, "Packets received."),
        col("rx_errors", Int64, "Receive errors."),
        col("rx_dropped", Int64, "Received packets dropped."),
        col("tx_bytes", Int64, "Bytes sent."),
        col("tx_packets", Int64, "Packets sent."),
        col("tx_errors", Int64, "Transmit errors."),
        col("tx_dropped", Int64, "Sent packets dropped."),
        col("container_id", Utf8, "Container whose namespace this is; null for the host's."),
    ],
};

pub const MOUNTS: Table = Table {
    name: "mounts",
    description: "Mounts of every mount namespace (the host's and each container's), from mountinfo.",
    columns: &[
        col("mnt_ns", Int64, "Mount namespace inode."),
        col("mount_id", Int64, "Mount id."),
        col("parent_id", Int64, "Parent mount id."),
        col("device", Utf8, "major:minor of the filesystem."),
        col("root", Utf8, "Path within the filesystem that is mounted."),
        col("mount_point", Utf8, "Where it is mounted, as that namespace sees it."),
        col("options", Utf8, "Per-mount options, e.g. rw,nosuid."),
        col("fs_type", Utf8, "Filesystem type, e.g. overlay, proc, tmpfs."),
        col("source", Utf8, "Mount source, e.g. a device or 'overlay'."),
        col("super_options", Utf8, "Per-superblock options."),
        col("container_id", Utf8, "Container whose namespace this is; null for the host's."),
    ],
};

pub const HOST_INFO: Table = Table {
    name: "host_info",
    description: "The machine itself: kernel, uptime, CPUs and memory (host scope only).",
    columns: &[
        col("hostname", Utf8, "Kernel host name (uname nodename)."),
        col("kernel_release", Utf8, "Kernel release, e.g. 6.1.0-18-amd64 (uname -r)."),
        col("kernel_version", Utf8, "Kernel build version string (uname -v)."),
        col("arch", Utf8, "Machine hardware name, e.g. x86_64."),
        col("boot_time", Timestamp, "When the machine booted."),
        col("uptime_seconds", Int64, "Seconds since boot."),
        col("cpu_count", Int64, "Online CPUs."),
        col("memory_total_bytes", Int64, "Physical memory (MemTotal)."),
        col("memory_available_bytes", Int64, "Memory available for new work (MemAvailable)."),
        col("cgroup_version", Int64, "1 or 2: the cgroup hierarchy this machine runs."),
    ],
};

pub const PROCESSES: Table = Table {
    name: "processes",
    description: "Processes running on the host, each attributed to its container (from its cgroup) when it has one.",
    columns: &[
        col("pid", Int64, "Process id in the host's pid namespace."),
        col("ns_pid", Int64, "Process id inside its own pid namespace (the container's view)."),
        col("ppid", Int64, "Parent process id (host namespace)."),
        col("name", Utf8, "Command name (comm)."),
        col("exe", Utf8, "Executable path as the process sees it; null when unreadable."),
        col("cmdline", Utf8, "Arguments, space-joined."),
        col("uid", Int64, "Real user id."),
        col("euid", Int64, "Effective user id."),
        col("user", Utf8, "Host user name for uid, for processes not in a container."),
        col("state", Utf8, "Process state letter, e.g. R, S, Z."),
        col("start_time", Timestamp, "When the process started."),
        col("rss_bytes", Int64, "Resident memory in bytes."),
        col("cpu_time_ms", Int64, "User plus system CPU time in milliseconds."),
        col("threads", Int64, "Number of threads."),
        col("cap_eff", Utf8, "Effective capability mask, hex."),
        col("no_new_privs", Boolean, "no_new_privs set."),
        col("seccomp", Utf8, "seccomp mode: disabled, strict or filter."),
        col("cgroup", Utf8, "cgroup path (the unified or first hierarchy's)."),
        col("pid_ns", Int64, "pid namespace inode."),
        col("net_ns", Int64, "network namespace inode."),
        col("mnt_ns", Int64, "mount namespace inode."),
        col("container_id", Utf8, "Container the process belongs to, from its cgroup path; null for host processes."),
    ],
};

pub const CRAWL_ERRORS: Table = Table {
    name: "crawl_errors",
    description: "Problems met while crawling: each is one row, and the rest of the crawl still arrives.",
    columns: &[
        col("collector", Utf8, "Collector that met the problem, e.g. packages."),
        col("path", Utf8, "Path inside the scope that caused it, when there is one."),
        col("message", Utf8, "What went wrong."),
    ],
};

pub const CRAWLS: Table = Table {
    name: "crawls",
    description: "One row per completed crawl of a scope; the latest row per scope defines current state.",
    columns: &[
        col("agent_version", Utf8, "Version of the agent that crawled."),
        col("root", Utf8, "Root directory the scope was read through, on the agent's host."),
        col("duration_ms", Int64, "Wall time of the crawl in milliseconds."),
        col("rows", Int64, "Rows produced across all tables, excluding this one."),
        col(
            "errors",
            Int64,
            "Rows written to crawl_errors, except those saying what was left unread by configuration (a refused FUSE or network filesystem; overlay attributes hidden from an agent without CAP_SYS_ADMIN).",
        ),
        col("degraded", Boolean, "True when any collector reported an error."),
        col(
            "tables",
            Utf8,
            "Tables this crawl has rows of, comma-separated, whether sent or marked unchanged (null: every table, for crawls stored before this column).",
        ),
        col(
            "received",
            Timestamp,
            "When the server received this row, by the server's clock (whatever the agent sent): of a scope's crawls, the one received last is current (null: crawls stored before this column, ordered by crawl_time).",
        ),
    ],
};

pub const AGENTS: Table = Table {
    name: "agents",
    description: "Health of each host's agent daemon, one row per full crawl (host scope): version, last crawl, sends, spool, self-limits.",
    columns: &[
        col("agent_version", Utf8, "Version of the agent."),
        col("started", Timestamp, "When the agent process started."),
        col("interval_seconds", Int64, "Configured time between full crawls."),
        col("crawls", Int64, "Full crawls since the agent started, this one included."),
        col("last_crawl_ms", Int64, "Wall time of the previous full crawl."),
        col("last_rows_sent", Int64, "Rows the previous full crawl sent (after change-only reduction)."),
        col("last_bytes_sent", Int64, "Compressed bytes the previous full crawl put on the wire."),
        col("spool_batches", Int64, "Batches waiting in the spool for an acknowledgement."),
        col("spool_bytes", Int64, "Bytes waiting in the spool."),
        col("spool_evicted", Int64, "Batches the full spool evicted since the agent started."),
        col("errors", Int64, "crawl_errors rows of the previous full crawl, all scopes."),
        col("rss_bytes", Int64, "The agent's resident memory after the previous full crawl."),
        col("memory_limit_bytes", Int64, "The memory ceiling the agent holds itself to."),
        col("nice", Int64, "The agent's CPU niceness."),
        col(
            "degraded",
            Boolean,
            "True when the agent skipped optional collectors (files, configs, unowned_files, embedded_libraries) to stay under its memory ceiling.",
        ),
    ],
};

pub const UNCHANGED: Table = Table {
    name: "unchanged",
    description: "Tables of a crawl whose rows equal an earlier crawl's of the same scope, so the agent did not resend them; the current-state views read them from that earlier crawl.",
    columns: &[
        col("table_name", Utf8, "The table whose rows did not change."),
        col("since", Timestamp, "crawl_time of the crawl whose rows are still current."),
    ],
};

pub const INHERITED: Table = Table {
    name: "inherited",
    description: "Tables of a container crawl whose rows are its image's: nothing the collectors read was touched by the container's own layers or mounts, so the rows were not read again; the current-state views show the image's rows under the container.",
    columns: &[
        col("table_name", Utf8, "The table whose rows the container shares with its image."),
        col("image_id", Utf8, "The image (sha256:...) whose crawl holds the rows."),
    ],
};

/// Columns the current-state views add after [`COMMON_COLUMNS`] (the
/// `_history` tables do not have them): resolved by the server from its
/// current state rather than sent with every row.
pub const VIEW_COLUMNS: &[Column] = &[col(
    "container",
    Utf8,
    "Name of the container the row belongs to (scope = 'container'), as its host lists it now; null for host and image rows.",
)];

/// Every declared table.
pub const TABLES: &[&Table] = &[
    &OS,
    &PACKAGES,
    &PACKAGES_NOT_INSTALLED,
    &PACKAGE_FILES,
    &USERS,
    &GROUPS,
    &FILES,
    &CONFIGS,
    &UNOWNED_FILES,
    &CONTAINERS,
    &CONTAINER_MOUNTS,
    &CONTAINER_PORTS,
    &IMAGES,
    &IMAGE_HISTORY,
    &CONTAINER_METRICS,
    &LISTENING_PORTS,
    &CONNECTIONS,
    &INTERFACES,
    &MOUNTS,
    &HOST_INFO,
    &PROCESSES,
    &CRAWL_ERRORS,
    &CRAWLS,
    &UNCHANGED,
    &AGENTS,
    &INHERITED,
    &EMBEDDED_LIBRARIES,
    // Appended: a table's place in this list is its bit in the index's table sets.
    &CONTAINER_ENV,
];

/// Looks a table up by name.
pub fn table(name: &str) -> Option<&'static Table> {
    TABLES.iter().copied().find(|t| t.name == name)
}

impl Table {
    /// All columns, common first.
    pub fn all_columns(&self) -> impl Iterator<Item = &'static Column> + '_ {
        COMMON_COLUMNS.iter().chain(self.columns.iter())
    }

    /// The table's Arrow schema: common columns (non-null) then the table's own (nullable).
    pub fn schema(&self) -> SchemaRef {
        let fields: Vec<Field> = COMMON_COLUMNS
            .iter()
            .map(|c| (c, false))
            .chain(self.columns.iter().map(|c| (c, true)))
            .map(|(c, nullable)| {
                Field::new(c.name, c.ty.data_type(), nullable)
                    .with_metadata([(DESCRIPTION_KEY.to_string(), c.description.to_string())].into())
            })
            .collect();
        Arc::new(
            Schema::new(fields).with_metadata([(DESCRIPTION_KEY.to_string(), self.description.to_string())].into()),
        )
    }

    /// The schema of the table's current-state view: the common columns, then
    /// [`VIEW_COLUMNS`], then the table's own.
    pub fn view_schema(&self) -> SchemaRef {
        let base = self.schema();
        let field = |c: &Column| {
            Field::new(c.name, c.ty.data_type(), true)
                .with_metadata([(DESCRIPTION_KEY.to_string(), c.description.to_string())].into())
        };
        let mut fields: Vec<Field> = base.fields()[..COMMON_COLUMNS.len()].iter().map(|f| f.as_ref().clone()).collect();
        fields.extend(VIEW_COLUMNS.iter().map(field));
        fields.extend(base.fields()[COMMON_COLUMNS.len()..].iter().map(|f| f.as_ref().clone()));
        Arc::new(Schema::new(fields).with_metadata(base.metadata().clone()))
    }

    /// Index of the table in [`TABLES`].
    pub fn index(&self) -> usize {
        TABLES.iter().position(|t| t.name == self.name).expect("a declared table")
    }

    /// Whether `schema` carries exactly this table's columns and types (no allocation: for telling tables apart).
    pub fn matches(&self, schema: &Schema) -> bool {
        let fields = schema.fields();
        fields.len() == COMMON_COLUMNS.len() + self.columns.len()
            && self
                .all_columns()
                .zip(fields.iter())
                .all(|(c, f)| f.name() == c.name && *f.data_type() == c.ty.data_type())
    }

    /// Checks that `schema` carries exactly this table's columns and types.
    pub fn check(&self, schema: &Schema) -> Result<(), String> {
        if self.matches(schema) {
            return Ok(());
        }
        let want = self.schema();
        let got: Vec<_> = schema.fields().iter().map(|f| (f.name().as_str(), f.data_type())).collect();
        let exp: Vec<_> = want.fields().iter().map(|f| (f.name().as_str(), f.data_type())).collect();
        if got == exp {
            Ok(())
        } else {
            Err(format!(
                "table {}: schema mismatch: expected columns {:?}, got {:?}",
                self.name,
                exp.iter().map(|(n, t)| format!("{n} {t}")).collect::<Vec<_>>(),
                got.iter().map(|(n, t)| format!("{n} {t}")).collect::<Vec<_>>()
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_descriptions_present() {
        let mut seen = std::collections::HashSet::new();
        for t in TABLES {
            assert!(seen.insert(t.name), "duplicate table {}", t.name);
            let mut cols = std::collections::HashSet::new();
            for c in t.all_columns() {
                assert!(cols.insert(c.name), "{}: duplicate column {}", t.name, c.name);
                assert!(!c.description.is_empty(), "{}.{} lacks a description", t.name, c.name);
            }
        }
    }

    #[test]
    fn schema_starts_with_common_columns_and_carries_descriptions() {
        let s = PACKAGES.schema();
        let names: Vec<_> = s.fields().iter().map(|f| f.name().clone()).collect();
        assert_eq!(&names[..5], &["host", "scope", "scope_id", "crawl_time", "manager"]);
        assert!(!s.field(0).is_nullable());
        assert!(s.field(4).is_nullable());
        assert_eq!(
            s.field_with_name("name").unwrap().metadata().get(DESCRIPTION_KEY).map(String::as_str),
            Some("Package name.")
        );
    }

    #[test]
    fn check_rejects_a_foreign_schema() {
        assert!(PACKAGES.check(&PACKAGES.schema()).is_ok());
        assert!(PACKAGES.matches(&PACKAGES.schema()) && !PACKAGES.matches(&OS.schema()));
        assert!(
            TABLES.iter().all(|t| TABLES.iter().filter(|u| u.matches(&t.schema())).count() == 1),
            "schemas are distinct"
        );
        let err = PACKAGES.check(&OS.schema()).unwrap_err();
        assert!(err.contains("table packages: schema mismatch"), "{err}");
    }
}
