//! Fleet query benchmark: a synthetic fleet written through Periscope's own
//! store (write-ahead log, then Parquet), then the canonical fleet questions
//! answered by Periscope (a server's path: the store open, its current-state
//! index maintained, a fresh catalog per query) and by DuckDB over the same
//! Parquet files, side by side. Run it with `benches/fleet-query.sh` (release
//! build).
//!
//! Fleet: HOSTS hosts, each with CONTAINERS containers (image drawn from
//! IMAGES images, skewed so some images are common), HOST_PACKAGES dpkg
//! packages on the host, and two crawls a day apart, between which 1 host in
//! 50 upgraded two packages. Rows are what agents send: each image's packages
//! (IMAGE_PACKAGES) and os-release once per host that runs it, as that host's
//! image scope (image rows are trusted per host); each container
//! its own crawl, which shares os and packages with its image (`inherited`
//! rows) — except 1 container in 20, whose package database differs from its
//! image's (one package more) and so carries its own packages; a host's second
//! crawl marks its unchanged tables `unchanged`. Docker socket mounts on 1
//! container in 200.
//!
//! DuckDB reads the same files through views that compute the same current
//! state (latest crawl per scope, `unchanged`, `inherited`, the hosts'
//! listings) from history at each query, as Periscope did before it kept an
//! incremental index.
//!
//! `FLEET_DATA=DIR` keeps the data directory; run again with the same DIR and
//! the fleet already there is queried instead of written anew (its sizes are
//! then those it was written with). `DUCKDB=0` leaves DuckDB out (about four
//! minutes at 10,000 hosts, where it hits its budget on four questions).

use std::alloc::{GlobalAlloc, Layout};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use arrow_array::RecordBatch;
use periscope_agent::collectors::Sink;
use periscope_agent::encode::{Common, Value};
use periscope_proto::tables::{CONTAINER_MOUNTS, CONTAINERS, CRAWLS, INHERITED, OS, PACKAGES, Table, UNCHANGED};
use periscope_query::query::{self, Access};
use periscope_store::store::{Store, StoreConfig};

/// The server's allocator (jemalloc, as `periscope` uses), counting the bytes
/// live: what the store holds once opened (its current-state index, mostly)
/// is the difference across the open.
struct Counting;

const INNER: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

static LIVE: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size(), Ordering::Relaxed);
        unsafe { INNER.alloc(l) }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size(), Ordering::Relaxed);
        unsafe { INNER.alloc_zeroed(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        unsafe { INNER.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, size: usize) -> *mut u8 {
        LIVE.fetch_add(size, Ordering::Relaxed);
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        unsafe { INNER.realloc(p, l, size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// The process's resident set, from /proc.
fn rss_bytes() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.trim().strip_suffix("kB"));
    kb.and_then(|k| k.trim().parse::<usize>().ok()).unwrap_or(0) * 1024
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

const DAY_US: i64 = 86_400_000_000;

/// Today's crawl, an hour ago (hosts stay within the host expiry).
fn t1() -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as i64;
    now - 3_600_000_000
}

/// Yesterday's crawl.
fn t0() -> i64 {
    t1() - DAY_US
}

#[path = "shared/names.rs"]
mod names;
#[path = "shared/package.rs"]
mod package;
use names::NAMES;

fn package_version(i: usize, bump: usize) -> String {
    format!("{}.{}.{}-{}+deb12u{}", 1 + i % 7, i % 13, i % 29, 1 + i % 3, i % 5 + bump)
}

fn push_packages(sink: &mut Sink, n: usize, salt: usize, bumped: &[usize]) {
    for i in 0..n {
        let k = (i * 7 + salt) % (n * 3);
        let name = if i < NAMES.len() { NAMES[i].to_string() } else { format!("{}-{}", NAMES[k % NAMES.len()], k) };
        let version = package_version(i + salt % 5, bumped.iter().filter(|&&b| b == i).count());
        package::push(sink, i, &name, &version, "install ok installed", None);
    }
}

fn crawls_row(sink: &mut Sink, rows: usize, tables: &str) {
    sink.row(
        &CRAWLS,
        &[("agent_version", "bench".into()), ("rows", Value::Int(rows as i64)), ("tables", tables.into())],
    );
}

/// Host `h`'s crawl of image `i`: its packages and os-release.
fn image(h: usize, i: usize, packages: usize) -> Vec<RecordBatch> {
    let common = Common {
        host: format!("host-{h:05}"),
        scope: "image".into(),
        scope_id: format!("sha256:{i:064x}"),
        crawl_time_us: t0() - 1000,
    };
    let mut sink = Sink::new(common);
    push_packages(&mut sink, packages, i, &[]);
    let (id, ver) = if i % 5 == 0 { ("alpine", "3.20") } else { ("debian", if i % 3 == 0 { "11" } else { "12" }) };
    let pretty = format!("{id} {ver}");
    sink.row(&OS, &[("id", id.into()), ("version_id", ver.into()), ("pretty_name", pretty.as_str().into())]);
    crawls_row(&mut sink, packages + 1, "packages,os");
    sink.finish()
}

/// Skewed image choice: a few base images run everywhere, a long tail elsewhere.
fn pick_image(host: usize, c: usize, images: usize) -> usize {
    let x = (host * 2_654_435_761 + c * 40_503) % 1_000_003;
    if x % 3 == 0 { x % 10.min(images) } else { x % images }
}

fn container_id(h: usize, c: usize) -> String {
    format!("{h:08x}{c:056x}")
}

/// Whether a container's package database differs from its image's.
fn own_packages(h: usize, c: usize) -> bool {
    (h * 31 + c) % 20 == 0
}

/// One host crawl at `t`: host packages, containers and their mounts; on the
/// second day, tables the host did not change are marked unchanged.
fn host_crawl(h: usize, t: i64, args: &Args) -> Vec<RecordBatch> {
    let host = format!("host-{h:05}");
    let common =
        Common { host: host.clone(), scope: "host".into(), scope_id: format!("machine-{h:05}"), crawl_time_us: t };
    let mut sink = Sink::new(common);
    let second = t > t0() + DAY_US / 2;
    let upgraded = second && h % 50 == 7;
    let mut tables = vec!["containers", "container_mounts"];
    if second && !upgraded {
        sink.row(&UNCHANGED, &[("table_name", "packages".into()), ("since", Value::Int(t0()))]);
    } else {
        let bumped: &[usize] = if upgraded { &[3, 11] } else { &[] };
        push_packages(&mut sink, args.host_packages, h % 4, bumped);
    }
    tables.push("packages");
    for c in 0..args.containers {
        let id = container_id(h, c);
        let img = pick_image(h, c, args.images);
        let name = format!("svc-{c}");
        let image_ref = format!("registry.example/app-{img}:1.{}", img % 9);
        let image_id = format!("sha256:{img:064x}");
        sink.row(
            &CONTAINERS,
            &[
                ("container_id", id.as_str().into()),
                ("name", name.as_str().into()),
                ("image", image_ref.as_str().into()),
                ("image_id", image_id.as_str().into()),
                ("runtime", "runc".into()),
                ("engine", "docker".into()),
                ("state", "running".into()),
                ("command", "/app/server --port 8080".into()),
                ("user", if c % 4 == 0 { "".into() } else { "1000".into() }),
                ("privileged", Value::Bool(c % 97 == 0)),
                ("network_mode", if c % 50 == 0 { "host".into() } else { "bridge".into() }),
                ("memory_limit", Value::Int(if c % 3 == 0 { 0 } else { 512 << 20 })),
            ],
        );
        sink.row(
            &CONTAINER_MOUNTS,
            &[
                ("container_id", id.as_str().into()),
                ("type", "volume".into()),
                ("source", "/var/lib/docker/volumes/data/_data".into()),
                ("destination", "/data".into()),
                ("rw", Value::Bool(true)),
            ],
        );
        if (h * args.containers + c) % 200 == 0 {
            sink.row(
                &CONTAINER_MOUNTS,
                &[
                    ("container_id", id.as_str().into()),
                    ("type", "bind".into()),
                    ("source", "/var/run/docker.sock".into()),
                    ("destination", "/var/run/docker.sock".into()),
                    ("rw", Value::Bool(true)),
                ],
            );
        }
    }
    crawls_row(&mut sink, args.host_packages + args.containers * 2, &tables.join(","));
    sink.finish()
}

/// One container's crawl at `t`: it shares os (and, mostly, packages) with its image.
fn container_crawl(h: usize, c: usize, t: i64, args: &Args) -> Vec<RecordBatch> {
    let img = pick_image(h, c, args.images);
    let image_id = format!("sha256:{img:064x}");
    let common = Common {
        host: format!("host-{h:05}"),
        scope: "container".into(),
        scope_id: container_id(h, c),
        crawl_time_us: t + 1 + c as i64,
    };
    let mut sink = Sink::new(common);
    let mut tables = vec!["inherited"];
    let mut shared = vec!["os"];
    if own_packages(h, c) {
        push_packages(&mut sink, args.image_packages, img, &[]);
        sink.row(&PACKAGES, &[("manager", "dpkg".into()), ("name", "vim".into()), ("version", "2:9.0.1378-2".into())]);
        tables.push("packages");
    } else {
        shared.push("packages");
    }
    for table in shared {
        sink.row(&INHERITED, &[("table_name", table.into()), ("image_id", image_id.as_str().into())]);
    }
    crawls_row(&mut sink, 2, &tables.join(","));
    sink.finish()
}

struct Args {
    hosts: usize,
    containers: usize,
    images: usize,
    image_packages: usize,
    host_packages: usize,
    runs: usize,
    /// Longest one DuckDB run may take before it is interrupted (and reported as over the budget).
    budget_secs: usize,
}

async fn generate(store: &Store, args: &Args) -> u64 {
    let mut rows = 0u64;
    let mut seq = 0u64;
    let mut send = |batches: Vec<RecordBatch>, agent: String| {
        seq += 1;
        let s = seq;
        async move {
            let mut n = 0;
            for (i, b) in batches.into_iter().enumerate() {
                let table: &'static Table = periscope_agent::crawl::table_of(&b);
                n += store.apply(table, &[b], &agent, 1, s * 100 + i as u64).await.unwrap();
            }
            n
        }
    };
    let (t0, t1) = (t0(), t1());
    for t in [t0, t1] {
        for h in 0..args.hosts {
            let mut batches = Vec::new();
            // Each host crawls the images it runs once, on its first crawl.
            if t == t0 {
                let mut imgs: Vec<usize> = (0..args.containers).map(|c| pick_image(h, c, args.images)).collect();
                imgs.sort_unstable();
                imgs.dedup();
                for i in imgs {
                    batches.extend(image(h, i, args.image_packages));
                }
            }
            batches.extend(host_crawl(h, t, args));
            for c in 0..args.containers {
                batches.extend(container_crawl(h, c, t, args));
            }
            // One agent's send: the tables coalesced, crawls rows last.
            rows += send(periscope_agent::changes::coalesce(batches), format!("host-{h:05}")).await;
        }
    }
    rows
}

/// The canonical questions: (name, SQL), the same text for Periscope and DuckDB.
fn questions(version_floor: &str) -> Vec<(&'static str, String, String)> {
    vec![
        (
            "containers with openssl below a version",
            format!(
                "SELECT host, container, version FROM packages \
                 WHERE scope = 'container' AND name = 'openssl' AND version_lt(version, '{version_floor}')"
            ),
            // DuckDB has no Debian version ordering: plain string comparison (cheaper, not the same semantics).
            format!(
                "SELECT host, container, version FROM packages \
                 WHERE scope = 'container' AND name = 'openssl' AND version < '{version_floor}'"
            ),
        ),
        (
            "containers per image and base OS",
            "SELECT c.image, o.pretty_name, count(*) AS n FROM containers c \
             JOIN os o ON o.host = c.host AND o.scope = 'container' AND o.scope_id = c.container_id \
             GROUP BY c.image, o.pretty_name ORDER BY n DESC, c.image LIMIT 20"
                .into(),
            String::new(),
        ),
        (
            "containers with docker.sock mounted",
            "SELECT m.host, c.name FROM container_mounts m JOIN containers c \
             ON c.host = m.host AND c.container_id = m.container_id WHERE m.source LIKE '%docker.sock'"
                .into(),
            String::new(),
        ),
        (
            "what changed on one host in the last day",
            "SELECT action, name, version FROM package_changes \
             WHERE host = 'host-00007' AND scope = 'host' AND crawl_time > now() - INTERVAL '1 day' \
             ORDER BY action, name, version"
                .into(),
            String::new(),
        ),
        (
            "running containers exposed to one advisory",
            "SELECT host, container, package, version FROM vulnerabilities \
             WHERE advisory = 'BENCH-00000' AND container_state = 'running'"
                .into(),
            // DuckDB: the view below (plain string comparison of versions, the synthetic records' one range).
            String::new(),
        ),
        (
            "top 10 advisories by running containers",
            "SELECT advisory, count(*) AS containers FROM vulnerabilities WHERE container_state = 'running' \
             GROUP BY advisory ORDER BY containers DESC, advisory LIMIT 10"
                .into(),
            String::new(),
        ),
        (
            "top images by number of hosts",
            "SELECT image, count(DISTINCT host) AS hosts FROM containers GROUP BY image ORDER BY hosts DESC, image LIMIT 10"
                .into(),
            String::new(),
        ),
    ]
    .into_iter()
    .map(|(n, ours, theirs)| {
        let theirs = if theirs.is_empty() { ours.clone() } else { theirs };
        (n, ours, theirs)
    })
    .collect()
}

/// DuckDB views that compute Periscope's current state from the files at
/// each query: `<t>_history` over the files, the live scopes' latest crawls
/// (with the hosts' container listings), and per table the rows of each
/// live scope's latest crawl, following `unchanged` and `inherited`.
fn duckdb_views(data: &std::path::Path) -> String {
    let mut sql = String::new();
    let files = |t: &str| {
        format!(
            "read_parquet('{}/tables/{t}/*/*.parquet', union_by_name = true, hive_partitioning = false)",
            data.display()
        )
    };
    sql += &format!("CREATE VIEW crawls AS SELECT * FROM {};\n", files("crawls"));
    for t in ["packages", "containers", "container_mounts", "os", "unchanged", "inherited"] {
        sql += &format!("CREATE VIEW {t}_history AS SELECT * FROM {};\n", files(t));
    }
    sql += "CREATE VIEW latest AS SELECT host, scope, scope_id, max(crawl_time) AS crawl_time FROM crawls \
            GROUP BY host, scope, scope_id;\n";
    sql += "CREATE VIEW hosts AS SELECT l.host, l.crawl_time, COALESCE(u.since, l.crawl_time) AS listed_at \
            FROM latest l LEFT JOIN unchanged_history u ON u.host = l.host AND u.scope = l.scope \
            AND u.scope_id = l.scope_id AND u.crawl_time = l.crawl_time AND u.table_name = 'containers' \
            WHERE l.scope = 'host';\n";
    sql += "CREATE VIEW listing AS SELECT c.host, c.container_id, c.name FROM containers_history c \
            JOIN hosts h ON c.host = h.host AND c.scope = 'host' AND c.crawl_time = h.listed_at;\n";
    sql += "CREATE VIEW live AS SELECT l.host, l.scope, l.scope_id, l.crawl_time, li.name AS container \
            FROM latest l LEFT JOIN hosts h ON h.host = l.host \
            LEFT JOIN listing li ON li.host = l.host AND li.container_id = l.scope_id AND l.scope = 'container' \
            WHERE l.scope <> 'container' OR h.host IS NULL OR li.container_id IS NOT NULL OR l.crawl_time > h.crawl_time;\n";
    sql += "CREATE VIEW image_latest AS SELECT host, scope_id AS image_id, max(crawl_time) AS crawl_time \
            FROM crawls WHERE scope = 'image' GROUP BY host, scope_id;\n";
    for t in ["packages", "containers", "container_mounts", "os"] {
        sql += &format!(
            "CREATE VIEW {t} AS \
             SELECT t.* EXCLUDE (host, scope, scope_id, crawl_time), k.host, k.scope, k.scope_id, t.crawl_time, k.container \
             FROM {t}_history t JOIN ( \
               SELECT v.host, v.scope, v.scope_id, v.container, COALESCE(u.since, v.crawl_time) AS data_time \
               FROM live v LEFT JOIN unchanged_history u ON u.host = v.host AND u.scope = v.scope \
               AND u.scope_id = v.scope_id AND u.crawl_time = v.crawl_time AND u.table_name = '{t}') k \
             ON t.host = k.host AND t.scope = k.scope AND t.scope_id = k.scope_id AND t.crawl_time = k.data_time \
             UNION ALL \
             SELECT t.* EXCLUDE (host, scope, scope_id, crawl_time), v.host, v.scope, v.scope_id, v.crawl_time, v.container \
             FROM live v JOIN inherited_history i ON i.host = v.host AND i.scope = v.scope \
               AND i.scope_id = v.scope_id AND i.crawl_time = v.crawl_time AND i.table_name = '{t}' \
             JOIN image_latest il ON il.host = v.host AND il.image_id = i.image_id \
             JOIN {t}_history t ON t.host = il.host AND t.scope = 'image' AND t.scope_id = i.image_id \
               AND t.crawl_time = il.crawl_time;\n"
        );
    }
    // The package_changes view, as Periscope defines it.
    sql += &format!("{};\n", periscope_query::catalog::PACKAGE_CHANGES);
    // Vulnerabilities over the same advisory files. DuckDB has no Debian version
    // order: versions compare as strings (not the same semantics), and only the
    // synthetic records' one shape is read (introduced 0, then one fix).
    for t in ["advisories", "advisory_affected"] {
        sql += &format!("CREATE VIEW {t} AS SELECT * FROM {};\n", files(t));
    }
    sql += "CREATE VIEW vulnerabilities AS \
            SELECT p.host, p.scope, p.scope_id, p.container, c.state AS container_state, p.name AS package, \
                   p.version, f.advisory_id AS advisory \
            FROM packages p JOIN os o ON o.host = p.host AND o.scope = p.scope AND o.scope_id = p.scope_id \
            JOIN advisory_affected f ON f.ecosystem_key = 'Debian:' || o.version_id \
              AND f.package_key = COALESCE(p.source, p.name) \
            LEFT JOIN containers c ON p.scope = 'container' AND c.host = p.host AND c.container_id = p.scope_id \
            WHERE p.version < json_extract_string(f.ranges, '$[0].events[1].fixed');\n";
    sql
}

/// `ADVISORIES` synthetic OSV records (default 30,000), imported as
/// `periscope vulns import` would: 2% name packages the fleet holds (about
/// 300 exposures per image, as scanners report for a Debian image), the rest
/// packages it does not, as most of a distribution's advisories do.
fn import_advisories(data: &std::path::Path, n: usize, image_packages: usize) -> std::time::Duration {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let zip_path = dir.path().join("all.zip");
    let mut z = zip::ZipWriter::new(std::fs::File::create(&zip_path).unwrap());
    let opts = zip::write::SimpleFileOptions::default();
    let installed = n / 50;
    for r in 0..n {
        let name = if r >= installed {
            format!("absent-{r}")
        } else if r < NAMES.len() * 4 {
            NAMES[r % NAMES.len()].to_string()
        } else {
            let k = r % (image_packages * 3);
            format!("{}-{}", NAMES[k % NAMES.len()], k)
        };
        let x = r % 40 + 1;
        // BENCH-00000, the one-advisory question's, affects bash wherever Debian 12 runs it.
        let fixed = if r == 0 { "9.0-1".to_string() } else { format!("{}.{}.{}-1+deb12u3", 1 + x % 7, x % 13, x % 29) };
        let eco = if r % 3 == 2 { "Debian:11" } else { "Debian:12" };
        let mut rec = serde_json::json!({"id": format!("BENCH-{r:05}"), "modified": "2026-01-01T00:00:00Z",
            "published": "2025-06-01T00:00:00Z", "aliases": [format!("CVE-2025-{r:05}")],
            "summary": format!("{name}: synthetic advisory {r}"),
            "details": "A synthetic advisory of the fleet benchmark, as long as a short real one. ".repeat(4),
            "affected": [{"package": {"ecosystem": eco, "name": name},
                          "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": fixed}]}]}]});
        if r % 10 == 0 {
            rec["severity"] =
                serde_json::json!([{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}]);
        }
        z.start_file(format!("BENCH-{r:05}.json"), opts).unwrap();
        z.write_all(rec.to_string().as_bytes()).unwrap();
    }
    z.finish().unwrap();
    let t = Instant::now();
    let s = periscope_vulns::import::import(data, &[zip_path]).unwrap();
    assert_eq!((s.new as usize, s.errors.len()), (n, 0), "{:?}", s.errors);
    t.elapsed()
}

const DUCKDB: &str = r#"
import duckdb, json, sys, threading, time
setup, runs, budget = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
queries = json.loads(sys.stdin.read())
con = duckdb.connect()
con.execute("SET threads = 2")
con.execute("SET enable_progress_bar = false")
for stmt in setup.split(";\n"):
    if stmt.strip():
        con.execute(stmt)
out = []
for q in queries:
    times, rows = [], 0
    for i in range(runs + 1):
        # A run over the budget is interrupted and ends the question's runs.
        timer = threading.Timer(budget, con.interrupt)
        timer.start()
        t = time.perf_counter()
        try:
            rows = len(con.execute(q).fetchall())
        except duckdb.InterruptException:
            times.append(None)
            break
        finally:
            timer.cancel()
        if i:
            times.append(time.perf_counter() - t)
    out.append({"times": times, "rows": rows})
    print(json.dumps(out[-1]), file=sys.stderr, flush=True)
print(json.dumps(out))
"#;

fn percentile(mut v: Vec<f64>, p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn dir_bytes(dir: &std::path::Path) -> u64 {
    let mut n = 0;
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let m = e.metadata().unwrap();
        n += if m.is_dir() {
            dir_bytes(&e.path())
        } else if e.path().extension().is_some_and(|x| x == "parquet") {
            m.len()
        } else {
            0
        };
    }
    n
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let args = Args {
        hosts: env("HOSTS", 10_000),
        containers: env("CONTAINERS", 50),
        images: env("IMAGES", 300),
        image_packages: env("IMAGE_PACKAGES", 150),
        host_packages: env("HOST_PACKAGES", 300),
        runs: env("RUNS", 7),
        budget_secs: env("BUDGET_SECS", 60),
    };
    periscope_vulns::install();
    let python =
        std::env::var("PERISCOPE_PYTHON").expect("PERISCOPE_PYTHON: a python with duckdb (scripts/python-clients.sh)");
    let keep = std::env::var("FLEET_DATA").ok();
    let tmp = tempfile::tempdir().unwrap();
    let data = keep.map(std::path::PathBuf::from).unwrap_or_else(|| tmp.path().to_path_buf());

    let reuse = data.join("tables").is_dir();
    let start = Instant::now();
    let rows = if reuse {
        println!("fleet: reusing the fleet already written in {}", data.display());
        0
    } else {
        let store = Store::open_with(&data, StoreConfig { flush_bytes: 1 << 30, ..Default::default() }).unwrap();
        let rows = generate(&store, &args).await;
        store.close().unwrap();
        rows
    };
    let written = start.elapsed();
    let advisories: usize = env("ADVISORIES", 30_000);
    if !data.join("tables/advisories").is_dir() {
        let took = import_advisories(&data, advisories, args.image_packages);
        println!("advisories: {advisories} synthetic OSV records imported in {:.1} s", took.as_secs_f64());
    }
    // A server opening the directory rebuilds its current-state index from the stored rows.
    let (live_before, opened) = (LIVE.load(Ordering::Relaxed), Instant::now());
    let store = Store::open(&data).unwrap();
    let opened = opened.elapsed();
    let held = LIVE.load(Ordering::Relaxed).saturating_sub(live_before);
    let bytes = dir_bytes(&data.join("tables"));
    println!(
        "fleet: {} hosts x {} containers, {} images ({} packages each), {} host packages, two crawls a day apart",
        args.hosts, args.containers, args.images, args.image_packages, args.host_packages
    );
    if !reuse {
        println!(
            "  {rows} stored rows written through the store in {:.1} s; {:.1} MB of Parquet = {:.1} bytes per stored row",
            written.as_secs_f64(),
            bytes as f64 / 1e6,
            bytes as f64 / rows as f64
        );
    }
    let scopes = store.index().len();
    println!(
        "  reopened in {:.2} s, current-state index rebuilt from the stored rows: {scopes} scopes; \
         the open store holds {:.1} MB of heap ({:.0} bytes per scope), process RSS {:.0} MB",
        opened.as_secs_f64(),
        held as f64 / 1e6,
        held as f64 / scopes.max(1) as f64,
        rss_bytes() as f64 / 1e6
    );
    let limits =
        query::Limits { timeout: std::time::Duration::from_secs(args.budget_secs as u64), ..query::Limits::none() };
    let run = |q: String| {
        let (snapshot, limits) = (store.snapshot(), limits.clone());
        async move { query::run_on(snapshot, &q, Access::Local, &limits).await }
    };
    let visible = run("SELECT (SELECT count(*) FROM packages) + (SELECT count(*) FROM containers) \
        + (SELECT count(*) FROM container_mounts) AS n"
        .into())
    .await
    .unwrap();
    let visible =
        arrow_array::cast::AsArray::as_primitive::<arrow_array::types::Int64Type>(visible.1[0].column(0)).value(0);
    println!(
        "  {visible} rows in the current-state views = {:.1} bytes on disk per user-visible row",
        bytes as f64 / visible as f64
    );

    let qs = questions("3.0.0");
    let theirs: Vec<&str> = qs.iter().map(|q| q.2.as_str()).collect();
    let with_duckdb = std::env::var("DUCKDB").map_or(true, |v| v != "0");
    let duck: Vec<serde_json::Value> = if !with_duckdb {
        qs.iter().map(|_| serde_json::json!({"skipped": true})).collect()
    } else {
        let out = Command::new(&python)
            .args(["-c", DUCKDB, &duckdb_views(&data), &args.runs.to_string(), &args.budget_secs.to_string()])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write;
                child.stdin.take().unwrap().write_all(serde_json::to_string(&theirs).unwrap().as_bytes())?;
                child.wait_with_output()
            })
            .expect("run duckdb");
        assert!(out.status.success(), "duckdb failed");
        serde_json::from_slice(&out.stdout).unwrap()
    };

    if std::env::var("PHASES").is_ok_and(|v| v == "1") {
        phases(&store, &qs, args.runs).await;
        if std::env::var("PHASES_Q").is_ok() {
            return;
        }
    }

    // The peer is named with its version: the one PERISCOPE_PYTHON imports.
    let duckdb = Command::new(&python)
        .args(["-c", "import duckdb; print(duckdb.__version__)"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| format!("DuckDB {}", String::from_utf8_lossy(&o.stdout).trim()))
        .unwrap_or_else(|| "DuckDB".into());
    println!("\n| question | rows | Periscope p50 | p95 | {duckdb} p50 | p95 |");
    println!("|---|---|---|---|---|---|");
    for ((name, ours, _), d) in qs.iter().zip(&duck) {
        let mut times = Vec::new();
        let mut n = 0;
        let mut over = false;
        for i in 0..=args.runs {
            let t = Instant::now();
            match run(ours.clone()).await {
                Ok((_, batches)) => n = batches.iter().map(RecordBatch::num_rows).sum::<usize>(),
                Err(query::QueryError::Limit(_)) => {
                    over = true;
                    break;
                }
                Err(e) => panic!("{name}: {e}"),
            }
            if i > 0 {
                times.push(t.elapsed().as_secs_f64());
            }
        }
        let (ours50, ours95) = if over {
            (format!("> {} s", args.budget_secs), format!("> {} s", args.budget_secs))
        } else {
            (format!("{:.3} s", percentile(times.clone(), 0.5)), format!("{:.3} s", percentile(times, 0.95)))
        };
        if d.get("skipped").is_some() {
            println!("| {name} | {n} | {ours50} | {ours95} | not run | not run |");
            continue;
        }
        let dt: Vec<Option<f64>> = d["times"].as_array().unwrap().iter().map(|x| x.as_f64()).collect();
        let (duck50, duck95) = if dt.iter().any(Option::is_none) || dt.is_empty() {
            let over = format!("> {} s", args.budget_secs);
            (over.clone(), over)
        } else {
            let dt: Vec<f64> = dt.into_iter().flatten().collect();
            (format!("{:.3} s", percentile(dt.clone(), 0.5)), format!("{:.3} s", percentile(dt, 0.95)))
        };
        let drows = d["rows"].as_u64().unwrap();
        let rows =
            if drows == n as u64 || duck50.starts_with('>') { format!("{n}") } else { format!("{n} (DuckDB {drows})") };
        println!("| {name} | {rows} | {ours50} | {ours95} | {duck50} | {duck95} |");
    }
}

/// `PHASES=1`: where each question's time goes (p50 of RUNS): building the
/// session (catalog and views), planning (SQL to optimized logical plan),
/// physical planning (file listing and pruning), running.
async fn phases(store: &Store, qs: &[(&'static str, String, String)], runs: usize) {
    use futures::StreamExt;
    println!("\n| question | session | plan | physical plan | run |");
    println!("|---|---|---|---|---|");
    // PHASES_Q=N: only the Nth question (1-based), e.g. to profile it.
    let only: Option<usize> = std::env::var("PHASES_Q").ok().and_then(|v| v.parse().ok());
    for (i, (name, sql, _)) in qs.iter().enumerate() {
        if only.is_some_and(|n| n != i + 1) {
            continue;
        }
        let mut t: [Vec<f64>; 4] = Default::default();
        for _ in 0..runs.max(1) {
            let mut at = Instant::now();
            let mut lap = |t: &mut Vec<f64>| {
                t.push(at.elapsed().as_secs_f64());
                at = Instant::now();
            };
            let ctx = periscope_query::catalog::context(store.snapshot()).await.unwrap();
            lap(&mut t[0]);
            let df = ctx.sql(sql).await.unwrap();
            let plan = df.into_optimized_plan().unwrap();
            lap(&mut t[1]);
            let physical = ctx.state().create_physical_plan(&plan).await.unwrap();
            lap(&mut t[2]);
            let mut stream = datafusion::physical_plan::execute_stream(physical, ctx.task_ctx()).unwrap();
            while let Some(b) = stream.next().await {
                b.unwrap();
            }
            lap(&mut t[3]);
        }
        let [a, b, c, d] = t.map(|v| format!("{:.3} s", percentile(v, 0.5)));
        println!("| {name} | {a} | {b} | {c} | {d} |");
    }
}
