//! The manifests are the test: the agent DaemonSet and the server StatefulSet
//! in deploy/k8s are read (PyYAML turns them into JSON), their pod specs are
//! translated field by field into `docker run` options — host PID,
//! capabilities, privilege escalation, read-only root, user, mounts,
//! environment, resource limits, arguments — and both run on this machine's
//! Docker Engine from the images scripts/images.sh builds. A field the
//! translation does not know fails the test rather than being dropped, so
//! what runs here is what a cluster would run. Kubernetes itself cannot run
//! here; its kubelet's part (downward API, Secrets, the Service's name, a
//! persistent volume) is played by plain values, named below.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::Value;

/// The Docker tests of this file, one at a time: each lists what the engine
/// holds and expects its agent to crawl exactly that.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// On every container these tests start: a run killed before its cleanup leaves nothing the next one keeps.
const LABEL: &str = "periscope-test=deploy";

/// Removes what an earlier run killed mid-way left behind.
fn sweep() {
    let ids = Command::new("docker").args(["ps", "-aq", "--filter", &format!("label={LABEL}")]).output().unwrap();
    for id in String::from_utf8_lossy(&ids.stdout).split_whitespace() {
        let _ = Command::new("docker").args(["rm", "-f", id]).output();
    }
}

/// The Secret's values for this run (the kustomization's are placeholders).
const ENROLL_SECRET: &str = "deploy-test-enroll-secret";
const SQL_USER: &str = "auditor";
const SQL_PASSWORD: &str = "deploy-test-password";

/// Every object of deploy/k8s's YAML files, as JSON.
fn k8s_objects(py: &str) -> Vec<Value> {
    let dir = repo_root().join("deploy/k8s");
    let script = "import sys, json, yaml\n\
        out = []\n\
        for p in sys.argv[1:]:\n\
        \x20   out += [d for d in yaml.safe_load_all(open(p)) if d]\n\
        print(json.dumps(out))";
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension().is_some_and(|x| x == "yaml") && p.file_name().is_some_and(|n| n != "kustomization.yaml")
        })
        .collect();
    files.sort();
    let out = Command::new(py).args(["-c", script]).args(&files).output().unwrap();
    assert!(out.status.success(), "reading {files:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn find<'a>(objs: &'a [Value], kind: &str) -> &'a Value {
    let found: Vec<&Value> = objs.iter().filter(|o| o["kind"] == kind).collect();
    assert_eq!(found.len(), 1, "one {kind} in deploy/k8s");
    found[0]
}

fn str_of<'a>(v: &'a Value, what: &str) -> &'a str {
    v.as_str().unwrap_or_else(|| panic!("{what}: expected a string, got {v}"))
}

/// Fails on a key the translation does not handle: a new field in a manifest
/// must be taught to the test, not silently left out of what runs.
fn known(v: &Value, what: &str, keys: &[&str]) {
    if let Some(m) = v.as_object() {
        let unknown: Vec<&String> = m.keys().filter(|k| !keys.contains(&k.as_str())).collect();
        assert!(
            unknown.is_empty(),
            "{what}: the test does not translate {unknown:?}; teach it (server/tests/deploy.rs)"
        );
    }
}

/// What the kubelet would give the pod that Docker cannot read from the manifest.
struct Kubelet {
    node_name: String,
    secrets: BTreeMap<(String, String), String>,
    network: String,
    /// A writable directory per persistent volume claim or writable hostPath.
    scratch: PathBuf,
}

/// `docker run` options (up to and including the image) and arguments for
/// the pod's one container, exactly as its spec says.
fn docker_run(pod: &Value, claims: &[Value], k: &Kubelet, name: &str, image_tag: &str) -> Vec<String> {
    known(
        pod,
        "pod spec",
        &[
            "hostPID",
            "containers",
            "volumes",
            "securityContext",
            "serviceAccountName",
            "automountServiceAccountToken",
            "tolerations",
            "priorityClassName",
            "terminationGracePeriodSeconds",
            "enableServiceLinks",
            "nodeSelector",
        ],
    );
    let containers = pod["containers"].as_array().expect("containers");
    assert_eq!(containers.len(), 1, "one container per pod");
    let c = &containers[0];
    known(
        c,
        "container",
        &[
            "name",
            "image",
            "imagePullPolicy",
            "args",
            "env",
            "ports",
            "resources",
            "securityContext",
            "volumeMounts",
            "livenessProbe",
            "readinessProbe",
            "startupProbe",
        ],
    );
    let mut run: Vec<String> =
        vec!["run".into(), "-d".into(), "--name".into(), name.into(), "--label".into(), LABEL.into()];
    fn opt(run: &mut Vec<String>, a: &str, b: String) {
        run.push(a.into());
        run.push(b);
    }
    if pod["hostPID"] == true {
        opt(&mut run, "--pid", "host".into());
    }
    opt(&mut run, "--network", k.network.clone());
    for p in c["ports"].as_array().into_iter().flatten() {
        // A hostPort would bind the node's own address: not translated, so not allowed unnoticed.
        known(p, "container port", &["name", "containerPort", "protocol"]);
    }
    // The pod's and then the container's security context, the container's winning.
    let (ps, cs) = (&pod["securityContext"], &c["securityContext"]);
    // fsGroupChangePolicy: how the kubelet chowns a volume, which the claim's directory here already is.
    known(
        ps,
        "pod securityContext",
        &["runAsUser", "runAsGroup", "runAsNonRoot", "fsGroup", "fsGroupChangePolicy", "seccompProfile"],
    );
    known(
        cs,
        "container securityContext",
        &[
            "runAsUser",
            "runAsGroup",
            "runAsNonRoot",
            "capabilities",
            "allowPrivilegeEscalation",
            "readOnlyRootFilesystem",
            "privileged",
            "seccompProfile",
        ],
    );
    let field = |f: &str| if cs[f].is_null() { &ps[f] } else { &cs[f] };
    if let Some(u) = field("runAsUser").as_u64() {
        let g = field("runAsGroup").as_u64().unwrap_or(u);
        opt(&mut run, "--user", format!("{u}:{g}"));
        if field("runAsNonRoot") == true {
            assert_ne!(u, 0, "runAsNonRoot with runAsUser 0 would not start");
        }
    } else {
        assert_ne!(field("runAsNonRoot"), true, "runAsNonRoot needs a numeric runAsUser for a scratch image");
    }
    if let Some(g) = ps["fsGroup"].as_u64() {
        opt(&mut run, "--group-add", g.to_string());
    }
    match field("seccompProfile")["type"].as_str() {
        None | Some("RuntimeDefault") => {} // Docker's default profile
        Some("Unconfined") => opt(&mut run, "--security-opt", "seccomp=unconfined".into()),
        Some(other) => panic!("seccompProfile {other}: not translated"),
    }
    let caps = &cs["capabilities"];
    known(caps, "capabilities", &["drop", "add"]);
    for (key, flag) in [("drop", "--cap-drop"), ("add", "--cap-add")] {
        for cap in caps[key].as_array().into_iter().flatten() {
            opt(&mut run, flag, str_of(cap, "capability").into());
        }
    }
    if cs["allowPrivilegeEscalation"] == false {
        opt(&mut run, "--security-opt", "no-new-privileges".into());
    }
    if cs["readOnlyRootFilesystem"] == true {
        run.push("--read-only".into());
    }
    if cs["privileged"] == true {
        run.push("--privileged".into());
    }
    // Volumes, by name: hostPath (as on the node), emptyDir (tmpfs), claims (a directory here).
    let volumes: BTreeMap<String, &Value> = pod["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| (str_of(&v["name"], "volume name").to_string(), v))
        .chain(claims.iter().map(|v| (str_of(&v["metadata"]["name"], "claim name").to_string(), v)))
        .collect();
    for m in c["volumeMounts"].as_array().into_iter().flatten() {
        known(m, "volumeMount", &["name", "mountPath", "readOnly", "mountPropagation", "recursiveReadOnly"]);
        match m["recursiveReadOnly"].as_str() {
            // What a runtime without recursive read-only mounts does (Docker 20.10 here has none).
            None | Some("Disabled") | Some("IfPossible") => {}
            Some(other) => panic!("recursiveReadOnly {other}: this engine cannot make a mount read-only below"),
        }
        let name = str_of(&m["name"], "volumeMount name");
        let dst = str_of(&m["mountPath"], "mountPath");
        let ro = m["readOnly"] == true;
        let v = volumes.get(name).unwrap_or_else(|| panic!("volumeMount {name}: no such volume"));
        let mount = |src: &Path| {
            let mut spec = format!("type=bind,src={},dst={dst}", src.display());
            if ro {
                spec.push_str(",readonly");
            }
            if let Some(p) = m["mountPropagation"].as_str() {
                spec.push_str(match p {
                    "HostToContainer" => ",bind-propagation=rslave",
                    "None" => ",bind-propagation=rprivate",
                    other => panic!("mountPropagation {other}: not translated"),
                });
            }
            spec
        };
        if let Some(h) = v.get("hostPath") {
            known(v, "volume", &["name", "hostPath"]);
            known(h, "hostPath", &["path", "type"]);
            let path = Path::new(str_of(&h["path"], "hostPath path"));
            let kind = h["type"].as_str().unwrap_or("");
            if ro {
                match kind {
                    "Directory" => assert!(path.is_dir(), "hostPath {}: not a directory on this host", path.display()),
                    "Socket" => {
                        use std::os::unix::fs::FileTypeExt;
                        let t = std::fs::metadata(path).map(|m| m.file_type());
                        assert!(
                            t.is_ok_and(|t| t.is_socket()),
                            "hostPath {}: not a socket on this host",
                            path.display()
                        );
                    }
                    // DirectoryOrCreate and untyped: absent here, the kubelet would make an empty directory.
                    _ if !path.exists() => {
                        eprintln!(
                            "deploy: hostPath {} is not on this host: an empty directory stands in",
                            path.display()
                        );
                        let empty = k.scratch.join(format!("absent-{name}"));
                        std::fs::create_dir_all(&empty).unwrap();
                        opt(&mut run, "--mount", mount(&empty));
                        continue;
                    }
                    _ => {}
                }
                opt(&mut run, "--mount", mount(path));
            } else {
                // The agent's own state: a directory of this test stands in for the node's,
                // so a run here never writes into this machine's /var/lib.
                assert_eq!(kind, "DirectoryOrCreate", "writable hostPath {}", path.display());
                let own = k.scratch.join(format!("hostpath-{name}"));
                std::fs::create_dir_all(&own).unwrap();
                opt(&mut run, "--mount", mount(&own));
            }
        } else if let Some(e) = v.get("emptyDir") {
            known(e, "emptyDir", &["medium", "sizeLimit"]);
            let size = e["sizeLimit"].as_str().map(quantity_bytes).map(|b| format!(",size={b}")).unwrap_or_default();
            opt(&mut run, "--tmpfs", format!("{dst}:rw,noexec,nosuid{size}"));
        } else if v.get("spec").is_some() {
            // A volumeClaimTemplate: the persistent volume is a directory here, owned by the fsGroup.
            let own = k.scratch.join(format!("claim-{name}"));
            std::fs::create_dir_all(&own).unwrap();
            if let Some(g) = ps["fsGroup"].as_u64() {
                let u = field("runAsUser").as_u64().unwrap_or(0);
                std::os::unix::fs::chown(&own, Some(u as u32), Some(g as u32)).unwrap();
            }
            opt(&mut run, "--mount", mount(&own));
        } else {
            panic!("volume {name}: {v} is not translated");
        }
    }
    for e in c["env"].as_array().into_iter().flatten() {
        known(e, "env", &["name", "value", "valueFrom"]);
        let name = str_of(&e["name"], "env name");
        let value = if let Some(v) = e["value"].as_str() {
            v.to_string()
        } else if let Some(f) = e["valueFrom"].get("fieldRef") {
            match str_of(&f["fieldPath"], "fieldPath") {
                "spec.nodeName" => k.node_name.clone(),
                other => panic!("env {name}: fieldRef {other} is not translated"),
            }
        } else if let Some(r) = e["valueFrom"].get("resourceFieldRef") {
            // The kubelet's rendering: the container's own limit, in bytes (divisor 1).
            known(r, "resourceFieldRef", &["containerName", "resource"]);
            let res = str_of(&r["resource"], "resource");
            let (kind, which) = res.split_once('.').unwrap_or_else(|| panic!("resource {res}"));
            let q = str_of(&c["resources"][kind][which], res);
            match which {
                "memory" => quantity_bytes(q).to_string(),
                other => panic!("env {name}: resourceFieldRef {other} is not translated"),
            }
        } else if let Some(s) = e["valueFrom"].get("secretKeyRef") {
            let key = (str_of(&s["name"], "secret name").to_string(), str_of(&s["key"], "secret key").to_string());
            k.secrets.get(&key).unwrap_or_else(|| panic!("env {name}: no test value for secret {key:?}")).clone()
        } else {
            panic!("env {name}: {e} is not translated")
        };
        opt(&mut run, "-e", format!("{name}={value}"));
    }
    let limits = &c["resources"]["limits"];
    known(limits, "resources.limits", &["cpu", "memory"]);
    if let Some(m) = limits["memory"].as_str() {
        opt(&mut run, "--memory", quantity_bytes(m).to_string());
    }
    if let Some(cpu) = limits["cpu"].as_str() {
        opt(&mut run, "--cpus", format!("{}", cpu_cores(cpu)));
    }
    // The image the manifest names, at the tag built for this test (kustomize's `images:` does as much).
    let image = str_of(&c["image"], "image");
    let repo = image.rsplit_once(':').map_or(image, |(r, _)| r);
    run.push(format!("{repo}:{image_tag}"));
    for a in c["args"].as_array().into_iter().flatten() {
        run.push(str_of(a, "arg").into());
    }
    run
}

/// A Kubernetes quantity ("256Mi", "1G", "1000") in bytes.
fn quantity_bytes(q: &str) -> u64 {
    let units =
        [("Ki", 1u64 << 10), ("Mi", 1 << 20), ("Gi", 1 << 30), ("k", 1000), ("M", 1_000_000), ("G", 1_000_000_000)];
    for (suffix, n) in units {
        if let Some(v) = q.strip_suffix(suffix) {
            return v.parse::<u64>().unwrap_or_else(|_| panic!("quantity {q}")) * n;
        }
    }
    q.parse().unwrap_or_else(|_| panic!("quantity {q}"))
}

fn cpu_cores(q: &str) -> f64 {
    match q.strip_suffix('m') {
        Some(m) => m.parse::<f64>().unwrap() / 1000.0,
        None => q.parse().unwrap(),
    }
}

/// The number of the container's port called `name`.
fn port_named(c: &Value, name: &str) -> Option<u64> {
    c["ports"].as_array().into_iter().flatten().find(|p| p["name"] == name).and_then(|p| p["containerPort"].as_u64())
}

/// The (port, path) of a container's probe.
fn probe(c: &Value, which: &str) -> (u16, String) {
    let get = &c[which]["httpGet"];
    assert!(get.is_object(), "{which}: an httpGet probe (the images hold no shell for exec probes)");
    let port = match &get["port"] {
        Value::Number(n) => n.as_u64().unwrap() as u16,
        Value::String(name) => c["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["name"] == name.as_str())
            .and_then(|p| p["containerPort"].as_u64())
            .unwrap_or_else(|| panic!("{which}: no port named {name}")) as u16,
        other => panic!("{which}: port {other}"),
    };
    (port, str_of(&get["path"], "probe path").to_string())
}

/// HTTP GET `url`: (status, body), or None when nothing answers.
fn http_get(url: &str) -> Option<(u16, String)> {
    let out = Command::new("curl").args(["-s", "-m", "5", "-w", "\n%{http_code}", url]).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n')?;
    let code: u16 = code.trim().parse().ok()?;
    (code != 0).then(|| (code, body.to_string()))
}

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().unwrap();
    assert!(out.status.success(), "docker {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Containers and the network of this test, removed when it ends (their logs printed first).
struct Cleanup {
    containers: Vec<String>,
    network: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        // The agent first: the server it sends to stays until the agent is gone.
        for c in self.containers.iter().rev() {
            if std::thread::panicking() {
                let logs = Command::new("docker").args(["logs", "--tail", "40", c]).output();
                if let Ok(l) = logs {
                    eprintln!(
                        "--- docker logs {c}:\n{}{}",
                        String::from_utf8_lossy(&l.stdout),
                        String::from_utf8_lossy(&l.stderr)
                    );
                }
            }
            let _ = Command::new("docker").args(["rm", "-f", c]).output();
        }
        let _ = Command::new("docker").args(["network", "rm", &self.network]).output();
    }
}

/// Rows of `query` asked of the server as the Secret's SQL user.
fn ask(server: &str, query: &str) -> Vec<serde_json::Map<String, Value>> {
    let out = Command::new(periscope_bin())
        .args(["sql", "--server", server, "--format", "json", query])
        .env("PERISCOPE_USER", SQL_USER)
        .env("PERISCOPE_PASSWORD", SQL_PASSWORD)
        .output()
        .unwrap();
    assert!(out.status.success(), "periscope sql {query:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// Metric families of an OpenMetrics text, parsed by the Prometheus project's
/// own Python parser: {family: [(labels, value)]}.
fn scrape(py: &str, url: &str) -> BTreeMap<String, Vec<(BTreeMap<String, String>, f64)>> {
    let (code, text) = http_get(url).unwrap_or_else(|| panic!("{url}: no answer"));
    assert_eq!(code, 200, "{url}: {text}");
    let script = "import sys, json\n\
        from prometheus_client.openmetrics.parser import text_string_to_metric_families\n\
        out = {}\n\
        for f in text_string_to_metric_families(sys.stdin.read()):\n\
        \x20   out[f.name] = [[s.labels, s.value] for s in f.samples]\n\
        print(json.dumps(out))";
    let mut child = Command::new(py)
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the OpenMetrics parser refused {url}: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn sample(m: &BTreeMap<String, Vec<(BTreeMap<String, String>, f64)>>, family: &str, labels: &[(&str, &str)]) -> f64 {
    m.get(family)
        .unwrap_or_else(|| panic!("no metric family {family} in {:?}", m.keys().collect::<Vec<_>>()))
        .iter()
        .filter(|(l, _)| labels.iter().all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v)))
        .map(|(_, v)| *v)
        .sum()
}

/// The agent DaemonSet and the server StatefulSet, run as their manifests
/// say, crawl this host: every container and image the engine knows arrives
/// with packages, no crawl has an error, the probes answer, and both
/// /metrics parse as OpenMetrics.
#[test]
fn the_daemonset_and_statefulset_run_as_written_crawl_this_host_without_errors() {
    const TEST: &str = "the_daemonset_and_statefulset_run_as_written_crawl_this_host_without_errors";
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    if !docker_available(TEST) {
        return;
    }
    let Some(py) = python() else { return };
    let objs = k8s_objects(&py);
    let daemonset = find(&objs, "DaemonSet");
    let statefulset = find(&objs, "StatefulSet");
    let service = find(&objs, "Service");
    for o in [daemonset, statefulset] {
        // Annotations could carry runtime settings (an AppArmor profile) the translation would not see.
        known(&o["spec"]["template"]["metadata"], "pod template metadata", &["labels"]);
    }
    // The Secret the pods read is the one the kustomization generates, with those keys.
    let kustomization = {
        let script = "import sys, json, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))";
        let path = repo_root().join("deploy/k8s/kustomization.yaml");
        let out = Command::new(&py).args(["-c", script]).arg(&path).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let generated: BTreeSet<(String, String)> =
        kustomization["secretGenerator"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| {
                let name = str_of(&g["name"], "secretGenerator name").to_string();
                g["literals"].as_array().into_iter().flatten().map(move |l| {
                    (name.clone(), str_of(l, "literal").split_once('=').expect("KEY=VALUE").0.to_string())
                })
            })
            .collect();

    sweep();
    // The images, from the binaries these tests run, under a tag of this run.
    let tag = format!("test{}", std::process::id());
    struct Images(String);
    impl Drop for Images {
        fn drop(&mut self) {
            for i in ["periscope-agent", "periscope-server"] {
                let _ = Command::new("docker").args(["rmi", &format!("{i}:{}", self.0)]).output();
            }
        }
    }
    let _images = Images(tag.clone());
    let agent_bin = agent_bin();
    let out = Command::new(repo_root().join("scripts/images.sh"))
        .args(["--agent", agent_bin.to_str().unwrap(), "--server", periscope_bin().to_str().unwrap(), "--tag", &tag])
        .output()
        .unwrap();
    assert!(out.status.success(), "scripts/images.sh: {}", String::from_utf8_lossy(&out.stderr));
    // Printed for the CI log, past the harness's capture of passing tests' output: sizes of images
    // holding debug binaries (deploy/README.md has release sizes).
    use std::io::Write;
    let _ = std::io::stderr().write_all(&out.stdout);

    let scratch = tempfile::tempdir().unwrap();
    let network = format!("periscope-deploy-{}", std::process::id());
    docker(&["network", "create", &network]);
    let mut cleanup = Cleanup { containers: Vec::new(), network: network.clone() };
    let node_name = format!("deploy-node-{}", std::process::id());
    let mut secrets = BTreeMap::new();
    for e in [&statefulset, &daemonset]
        .iter()
        .flat_map(|o| o["spec"]["template"]["spec"]["containers"][0]["env"].as_array())
        .flatten()
    {
        if let Some(s) = e["valueFrom"].get("secretKeyRef") {
            let value = match str_of(&e["name"], "env") {
                "PERISCOPE_ENROLL_SECRET" => ENROLL_SECRET.to_string(),
                "PERISCOPE_SQL_USERS" => format!("{SQL_USER}:{SQL_PASSWORD}"),
                other => panic!("secret env {other}: no test value"),
            };
            let key = (str_of(&s["name"], "secret").to_string(), str_of(&s["key"], "key").to_string());
            assert!(generated.contains(&key), "secret {key:?} is not one the kustomization generates: {generated:?}");
            secrets.insert(key, value);
        }
    }
    let kubelet =
        Kubelet { node_name: node_name.clone(), secrets, network: network.clone(), scratch: scratch.path().into() };

    // The server, reachable from the agent by its Service's name.
    let server_name = format!("periscope-server-{}", std::process::id());
    let claims = statefulset["spec"]["volumeClaimTemplates"].as_array().cloned().unwrap_or_default();
    let mut run = docker_run(&statefulset["spec"]["template"]["spec"], &claims, &kubelet, &server_name, &tag);
    let service_name = str_of(&service["metadata"]["name"], "service name");
    run.insert(1, format!("--network-alias={service_name}"));
    let args: Vec<&str> = run.iter().map(String::as_str).collect();
    // Named before it runs: a run that fails after creating the container still has it removed.
    cleanup.containers.push(server_name.clone());
    docker(&args);
    let server_ip =
        docker(&["inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", &server_name]);
    let server_c = &statefulset["spec"]["template"]["spec"]["containers"][0];
    let (ready_port, ready_path) = probe(server_c, "readinessProbe");
    wait_for("the server's readiness probe", Duration::from_secs(60), || {
        http_get(&format!("http://{server_ip}:{ready_port}{ready_path}")).is_some_and(|(c, _)| c == 200)
    });
    let (live_port, live_path) = probe(server_c, "livenessProbe");
    assert_eq!(http_get(&format!("http://{server_ip}:{live_port}{live_path}")).map(|r| r.0), Some(200));
    // Every Service port reaches a port the server's container declares, by name or number.
    for p in service["spec"]["ports"].as_array().expect("Service ports") {
        let target = &p["targetPort"];
        let declared = server_c["ports"].as_array().into_iter().flatten().any(|c| match target {
            Value::String(name) => c["name"] == name.as_str(),
            Value::Number(_) => c["containerPort"] == *target,
            _ => c["containerPort"] == p["port"],
        });
        assert!(declared, "Service port {p}: no such port on the server container");
    }
    let grpc_port = service["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "grpc")
        .and_then(|p| match &p["targetPort"] {
            Value::String(name) => port_named(server_c, name),
            other => other.as_u64().or(p["port"].as_u64()),
        })
        .expect("a grpc port on the Service");
    let server = format!("http://{server_ip}:{grpc_port}");

    // What the engine holds before the agent starts (the agent's own container comes after).
    let want_containers: BTreeSet<String> = docker(&["ps", "-aq", "--no-trunc"]).lines().map(str::to_string).collect();
    let want_images: BTreeSet<String> = docker(&["images", "-q", "--no-trunc"]).lines().map(str::to_string).collect();

    let agent_name = format!("periscope-agent-{}", std::process::id());
    let run = docker_run(&daemonset["spec"]["template"]["spec"], &[], &kubelet, &agent_name, &tag);
    let args: Vec<&str> = run.iter().map(String::as_str).collect();
    cleanup.containers.push(agent_name.clone());
    docker(&args);
    let agent_ip = docker(&["inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", &agent_name]);
    let agent_c = &daemonset["spec"]["template"]["spec"]["containers"][0];
    let (live_port, live_path) = probe(agent_c, "livenessProbe");
    wait_for("the agent's liveness probe", Duration::from_secs(60), || {
        http_get(&format!("http://{agent_ip}:{live_port}{live_path}")).is_some_and(|(c, _)| c == 200)
    });
    let (ready_port, ready_path) = probe(agent_c, "readinessProbe");
    wait_for("the agent's first crawl (its readiness probe)", Duration::from_secs(600), || {
        let state = docker(&["inspect", "-f", "{{.State.Status}}", &agent_name]);
        assert_eq!(state, "running", "the agent container stopped");
        http_get(&format!("http://{agent_ip}:{ready_port}{ready_path}")).is_some_and(|(c, _)| c == 200)
    });
    let host = format!("host = '{node_name}'");
    wait_for("the first crawl at the server", Duration::from_secs(120), || {
        ask(&server, &format!("SELECT count(*) AS n FROM agents WHERE {host}"))[0]["n"] == 1
    });

    // Every container and image of this host, each crawled with its packages.
    let got: BTreeSet<String> = ask(&server, &format!("SELECT container_id FROM containers WHERE {host}"))
        .iter()
        .map(|r| s(r, "container_id"))
        .collect();
    let missing: Vec<_> = want_containers.difference(&got).collect();
    assert!(missing.is_empty(), "containers the engine knows but SQL does not: {missing:?}");
    let got: BTreeSet<String> =
        ask(&server, &format!("SELECT image_id FROM images WHERE {host}")).iter().map(|r| s(r, "image_id")).collect();
    let missing: Vec<_> = want_images.difference(&got).collect();
    assert!(missing.is_empty(), "images the engine knows but SQL does not: {missing:?}");
    let crawled: BTreeSet<String> = ask(
        &server,
        &format!("SELECT DISTINCT scope_id FROM packages WHERE {host} AND scope IN ('container', 'image')"),
    )
    .iter()
    .map(|r| s(r, "scope_id"))
    .collect();
    let test_image = docker(&["image", "inspect", "-f", "{{.Id}}", &docker_test_image()]);
    if want_images.contains(&test_image) {
        assert!(crawled.contains(&test_image), "the Debian test image's packages: {crawled:?}");
    }
    let host_packages = ask(&server, &format!("SELECT count(*) AS n FROM packages WHERE {host} AND scope = 'host'"));
    assert!(host_packages[0]["n"].as_u64().unwrap_or(0) > 0, "the node's own packages, read through /host");

    // No crawl has an error. What the capabilities leave unread is said, and only that.
    let errors = ask(&server, &format!("SELECT scope, scope_id, errors FROM crawls WHERE {host} AND errors > 0"));
    let detail =
        ask(&server, &format!("SELECT scope_id, collector, path, message FROM crawl_errors WHERE {host} LIMIT 40"));
    assert!(errors.is_empty(), "crawls with errors: {errors:?}\n{detail:?}");
    let caps: Vec<&str> = agent_c["securityContext"]["capabilities"]["add"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let hidden = ask(
        &server,
        &format!("SELECT count(*) AS n FROM crawl_errors WHERE {host} AND message LIKE '%CAP_SYS_ADMIN%'"),
    );
    if caps.iter().any(|c| *c == "SYS_ADMIN" || *c == "CAP_SYS_ADMIN") {
        assert_eq!(hidden[0]["n"], 0, "with SYS_ADMIN every overlay attribute is read");
    } else if !want_images.is_empty() {
        assert!(
            hidden[0]["n"].as_u64().unwrap_or(0) > 0,
            "without SYS_ADMIN, layered scopes say what they cannot read"
        );
    }

    // The containers' environments are there, and no secret of this deployment is, but as a hash.
    let secrets = ask(
        &server,
        &format!(
            "SELECT name, redacted FROM container_env WHERE {host} AND container_id = '{}' ORDER BY name",
            docker(&["inspect", "-f", "{{.Id}}", &server_name])
        ),
    );
    let redacted: BTreeMap<String, String> = secrets.iter().map(|r| (s(r, "name"), s(r, "redacted"))).collect();
    for name in ["PERISCOPE_ENROLL_SECRET", "PERISCOPE_SQL_USERS"] {
        assert_eq!(redacted.get(name).map(String::as_str), Some("true"), "{name} in {secrets:?}");
    }
    let leaked = ask(
        &server,
        &format!(
            "SELECT count(*) AS n FROM container_env WHERE value LIKE '%{SQL_PASSWORD}%' OR value LIKE '%{ENROLL_SECRET}%'"
        ),
    );
    assert_eq!(leaked[0]["n"], 0, "a secret stored in clear");

    // Both /metrics, as Prometheus would scrape them.
    let port = |c: &Value, name: &str| {
        c["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["name"] == name)
            .and_then(|p| p["containerPort"].as_u64())
    };
    let agent_metrics = port(agent_c, "metrics").expect("the agent's metrics port");
    let m = scrape(&py, &format!("http://{agent_ip}:{agent_metrics}/metrics"));
    assert!(sample(&m, "periscope_agent_crawls", &[("kind", "full")]) >= 1.0, "{m:?}");
    assert!(sample(&m, "periscope_agent_sent_rows", &[]) > 0.0);
    assert!(sample(&m, "periscope_agent_acknowledged_batches", &[]) > 0.0);
    assert!(sample(&m, "periscope_agent_collector_duration_seconds", &[("collector", "packages")]) > 0.0);
    let server_metrics = port(server_c, "metrics").expect("the server's metrics port");
    let m = scrape(&py, &format!("http://{server_ip}:{server_metrics}/metrics"));
    assert!(sample(&m, "periscope_server_ingest_rows", &[("table", "packages")]) > 0.0, "{m:?}");
    assert!(sample(&m, "periscope_server_queries", &[("front", "grpc"), ("outcome", "ok")]) >= 1.0);
    assert!(sample(&m, "periscope_server_index_scopes", &[]) >= 1.0);
}

/// The deployment files validate with the tools that consume them
/// (scripts/deploy-check.sh): the rendered kustomization against Kubernetes'
/// schemas (kubernetes-validate, strict), both systemd units
/// (`systemd-analyze verify`, and their exposure scores no worse than
/// deploy/README.md records), and the compose file (`docker-compose config`).
#[test]
fn the_manifests_units_and_compose_file_validate() {
    let Some(py) = python() else { return };
    let out = Command::new(repo_root().join("scripts/deploy-check.sh")).env("PERISCOPE_PYTHON", &py).output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    eprint!("{stdout}");
    assert!(out.status.success(), "scripts/deploy-check.sh failed:\n{stdout}\n{stderr}");
    // Each kind of file was checked, not skipped.
    for what in ["kubernetes-validate", "systemd-analyze verify", "systemd-analyze security", "compose"] {
        assert!(stdout.lines().any(|l| l.contains("ok:") && l.contains(what)), "no passing {what} check:\n{stdout}");
    }
}

/// deploy/compose.yaml on this Docker host: the server and the agent it
/// starts (images of the binaries under test) deliver this host's crawl,
/// which psql reads on the published Postgres port.
#[test]
fn the_compose_file_starts_a_server_and_an_agent_that_crawls_this_host() {
    const TEST: &str = "the_compose_file_starts_a_server_and_an_agent_that_crawls_this_host";
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    if !docker_available(TEST) {
        return;
    }
    let tag = format!("compose{}", std::process::id());
    let project = format!("periscope-compose-{}", std::process::id());
    let compose = |args: &[&str]| {
        Command::new("docker-compose")
            .args(["-p", &project, "-f", repo_root().join("deploy/compose.yaml").to_str().unwrap()])
            .args(args)
            .env("PERISCOPE_TAG", &tag)
            .env("PERISCOPE_ENROLL_SECRET", ENROLL_SECRET)
            .env("PERISCOPE_SQL_USERS", format!("{SQL_USER}:{SQL_PASSWORD}"))
            .output()
            .unwrap()
    };
    struct Down<'a>(&'a dyn Fn(&[&str]) -> std::process::Output, String);
    impl Drop for Down<'_> {
        fn drop(&mut self) {
            if std::thread::panicking() {
                let logs = (self.0)(&["logs", "--tail", "30"]);
                eprintln!("{}", String::from_utf8_lossy(&logs.stdout));
            }
            let _ = (self.0)(&["down", "-v", "--remove-orphans"]);
            for i in ["periscope-agent", "periscope-server"] {
                let _ = Command::new("docker").args(["rmi", &format!("{i}:{}", self.1)]).output();
            }
        }
    }
    let _down = Down(&compose, tag.clone());
    let out = Command::new(repo_root().join("scripts/images.sh"))
        .args(["--agent", agent_bin().to_str().unwrap(), "--server", periscope_bin().to_str().unwrap(), "--tag", &tag])
        .output()
        .unwrap();
    assert!(out.status.success(), "scripts/images.sh: {}", String::from_utf8_lossy(&out.stderr));
    let up = compose(&["up", "-d"]);
    assert!(up.status.success(), "docker-compose up: {}", String::from_utf8_lossy(&up.stderr));
    let host = std::fs::read_to_string("/etc/hostname").unwrap().trim().to_string();
    let psql = |query: &str| -> Option<String> {
        let out = Command::new("psql")
            .args(["-h", "127.0.0.1", "-p", "5433", "-U", SQL_USER, "-d", "periscope", "-Atc", query])
            .env("PGPASSWORD", SQL_PASSWORD)
            .env("PGCONNECT_TIMEOUT", "5")
            .output()
            .ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    let scopes = format!("SELECT count(*) FROM crawls WHERE host = '{host}' AND scope = 'host'");
    wait_for("the agent's crawl of this host, through psql", Duration::from_secs(600), || {
        psql(&scopes).is_some_and(|n| n == "1")
    });
    let packages = psql(&format!("SELECT count(*) FROM packages WHERE host = '{host}' AND scope = 'host'")).unwrap();
    assert!(packages.parse::<u64>().unwrap() > 0, "this host's packages: {packages}");
    let errors = psql(&format!("SELECT coalesce(sum(errors), 0) FROM crawls WHERE host = '{host}'")).unwrap();
    assert_eq!(errors, "0", "{:?}", psql(&format!("SELECT scope_id, message FROM crawl_errors WHERE host = '{host}'")));
}
