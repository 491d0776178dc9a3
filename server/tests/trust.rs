//! Trust boundaries (issue 18), tried from outside against a real server:
//! each test makes a write a node must not be able to make, or opens a
//! connection a user must not be able to hold, and checks that it is refused
//! and that nothing it must not touch changed.

mod common;

use std::io::Read;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arrow_array::RecordBatch;
use common::*;
use periscope_agent::encode::{Common, TableBuilder, Value};
use periscope_proto::tables::{self, Table};
use periscope_proto::v1::ingest_client::IngestClient;
use periscope_proto::v1::{Batch, Compression, EnrollRequest, ImagesRequest};

fn now_us() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_micros() as i64
}

/// A node as a compromised agent would act: it sends whatever rows it likes over gRPC.
struct Node {
    url: String,
    host: String,
    key: Option<String>,
    seq: u64,
}

impl Node {
    async fn enroll(url: &str, host: &str, secret: Option<&str>) -> Node {
        let key = match secret {
            Some(s) => {
                let mut c = IngestClient::connect(url.to_string()).await.unwrap();
                let r = EnrollRequest { host: host.into(), enroll_secret: s.into() };
                Some(c.enroll(r).await.unwrap().into_inner().node_key)
            }
            None => None,
        };
        Node { url: url.into(), host: host.into(), key, seq: 0 }
    }

    fn request<T>(&self, msg: T) -> tonic::Request<T> {
        let mut r = tonic::Request::new(msg);
        if let Some(k) = &self.key {
            r.metadata_mut().insert("authorization", format!("Bearer {k}").parse().unwrap());
        }
        r
    }

    /// Sends one batch; the server's acknowledgement or refusal.
    async fn send(&mut self, table: &'static Table, batch: RecordBatch) -> Result<u64, tonic::Status> {
        self.seq += 1;
        let b = Batch {
            contract_version: periscope_proto::CONTRACT_VERSION,
            agent_id: self.host.clone(),
            boot_epoch: 1,
            seq: self.seq,
            table: table.name.into(),
            arrow_ipc: periscope_proto::ipc::encode_wire(&table.schema(), &[batch]).unwrap(),
            compression: Compression::Zstd as i32,
            ..Default::default()
        };
        let mut c = IngestClient::connect(self.url.clone()).await.unwrap();
        let mut acks = c.send(self.request(futures::stream::iter(vec![b]))).await?.into_inner();
        let ack = futures::StreamExt::next(&mut acks).await.expect("an answer")?;
        Ok(ack.rows)
    }

    /// One crawl of a scope: `rows` of `table`, then its `crawls` row.
    async fn crawl(
        &mut self,
        scope: &str,
        id: &str,
        t: i64,
        table: &'static Table,
        rows: &[&[(&str, Value<'_>)]],
    ) -> Result<(), tonic::Status> {
        self.crawl_tables(scope, id, t, &[(table, rows)]).await
    }

    /// One crawl of a scope with rows of several tables, then its `crawls` row.
    async fn crawl_tables(
        &mut self,
        scope: &str,
        id: &str,
        t: i64,
        tables: &[(&'static Table, &[&[(&str, Value<'_>)]])],
    ) -> Result<(), tonic::Status> {
        let common = Common { host: self.host.clone(), scope: scope.into(), scope_id: id.into(), crawl_time_us: t };
        for (table, rows) in tables {
            let mut b = TableBuilder::new(table);
            for r in rows.iter() {
                b.push(&common, r);
            }
            self.send(table, b.finish()).await?;
        }
        let n: usize = tables.iter().map(|(_, r)| r.len()).sum();
        let names: Vec<&str> = tables.iter().map(|(t, _)| t.name).collect();
        let mut c = TableBuilder::new(&tables::CRAWLS);
        c.push(&common, &[("rows", (n as i64).into()), ("tables", names.join(",").as_str().into())]);
        self.send(&tables::CRAWLS, c.finish()).await.map(drop)
    }

    async fn stored_images(&self, ids: &[&str]) -> Vec<String> {
        let mut c = IngestClient::connect(self.url.clone()).await.unwrap();
        let r = ImagesRequest { agent_id: self.host.clone(), image_ids: ids.iter().map(|s| s.to_string()).collect() };
        c.images(self.request(r)).await.unwrap().into_inner().stored
    }
}

const IMAGE: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

/// Issue 18 item 1: the index kept each image's newest crawl from any host, so
/// one enrolled agent sending an image crawl dated in the future replaced what
/// every other host's containers of that image showed, and the image claims
/// then told the victims not to crawl it again.
#[test]
fn another_hosts_crawl_of_an_image_never_changes_what_this_hosts_containers_show() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_full(data.path(), "127.0.0.1:0", &["--enroll-secret", "fleet"], &[]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let now = now_us();
        let mut web = Node::enroll(&server.url, "web-1", Some("fleet")).await;
        let pkg = |v: &'static str| -> Vec<(&'static str, Value<'static>)> {
            vec![("manager", "dpkg".into()), ("name", "openssl".into()), ("version", v.into())]
        };
        let genuine = pkg("3.0.11-1~deb12u2");
        web.crawl("image", IMAGE, now - 60_000_000, &tables::PACKAGES, &[&genuine]).await.unwrap();
        let inherit: &[(&str, Value<'_>)] = &[("table_name", "packages".into()), ("image_id", IMAGE.into())];
        web.crawl("container", "c-web", now - 30_000_000, &tables::INHERITED, &[inherit]).await.unwrap();

        // A compromised node: the same image, with another openssl, dated as far ahead as the server allows
        // and far beyond it; and a container of its own inheriting from it.
        let mut evil = Node::enroll(&server.url, "evil", Some("fleet")).await;
        let forged = pkg("1.0.1-evil");
        let refused = evil.crawl("image", IMAGE, now + 365 * 86_400_000_000, &tables::PACKAGES, &[&forged]).await;
        let e = refused.unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert!(e.message().contains("ahead of the server's clock"), "{}", e.message());
        evil.crawl("image", IMAGE, now + 300_000_000, &tables::PACKAGES, &[&forged]).await.unwrap();
        evil.crawl("container", "c-evil", now + 300_000_000, &tables::INHERITED, &[inherit]).await.unwrap();

        // Each host's containers show that host's own crawl of the image.
        let target = ["--server", server.url.as_str()];
        let seen = sql(
            &target,
            "SELECT host, scope_id, version FROM packages WHERE name = 'openssl' AND scope = 'container' ORDER BY host",
        );
        let seen: Vec<String> =
            seen.iter().map(|r| format!("{} {} {}", s(r, "host"), s(r, "scope_id"), s(r, "version"))).collect();
        assert_eq!(seen, ["evil c-evil 1.0.1-evil", "web-1 c-web 3.0.11-1~deb12u2"]);
        // And so does history: what each container's crawls added.
        let changes = sql(
            &target,
            "SELECT host, version FROM package_changes \
             WHERE name = 'openssl' AND scope = 'container' AND action = 'added' ORDER BY host",
        );
        let changes: Vec<String> = changes.iter().map(|r| format!("{} {}", s(r, "host"), s(r, "version"))).collect();
        assert_eq!(changes, ["evil 1.0.1-evil", "web-1 3.0.11-1~deb12u2"]);

        // Only a host's own crawl of an image tells its agent to skip it.
        assert_eq!(web.stored_images(&[IMAGE]).await, [IMAGE]);
        let db = Node::enroll(&server.url, "db-1", Some("fleet")).await;
        assert!(db.stored_images(&[IMAGE]).await.is_empty(), "db-1 must crawl the image itself");
    });
}

/// Issue 18 items 2 and 4: `crawl_time` came from the agent unchecked. Rows
/// at i64::MAX and i64::MIN mapped to a nameless day partition and stopped
/// every later flush, across restarts; a date far ahead pinned a scope's state.
#[test]
fn crawl_times_the_server_cannot_file_or_must_not_trust_are_refused_and_ingest_goes_on() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let row: &[(&str, Value<'_>)] = &[("collector", "packages".into()), ("message", "x".into())];
    rt.block_on(async {
        let mut h = Node::enroll(&server.url, "h", None).await;
        for (t, why) in [
            (i64::MAX, "ahead of the server's clock"),
            (i64::MIN, "days before the server's clock"),
            (now_us() + 86_400_000_000, "ahead of the server's clock"),
            (-1, "days before the server's clock"),
            // Every day since 1970 a partition of its own: no.
            (now_us() - 91 * 86_400_000_000, "more than 90 days before the server's clock"),
        ] {
            let e = h.crawl("host", "m", t, &tables::CRAWL_ERRORS, &[row]).await.unwrap_err();
            assert_eq!(e.code(), tonic::Code::InvalidArgument, "{t}");
            assert!(e.message().contains(why), "{t}: {}", e.message());
        }
        h.crawl("host", "m", now_us(), &tables::CRAWL_ERRORS, &[row]).await.unwrap();
    });
    let count = |url: &str| s(&sql(&["--server", url], "SELECT count(*) AS n FROM crawl_errors")[0], "n");
    assert_eq!(count(&server.url), "1");
    server.stop();
    let server = Server::start(data.path());
    assert_eq!(count(&server.url), "1", "flushed and reopened");
}

/// Issue 18 item 11: without auth flags the server served any address, open, with only a warning.
#[test]
fn an_open_server_refuses_to_listen_beyond_loopback_unless_told_to() {
    let data = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(periscope_bin())
        .args(["serve", "--listen", "0.0.0.0:0", "--data"])
        .arg(data.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("refusing to listen on 0.0.0.0:") && err.contains("--insecure-open"), "{err}");
    // Agents authenticated but SQL open: still refused.
    let out = std::process::Command::new(periscope_bin())
        .args(["serve", "--listen", "0.0.0.0:0", "--enroll-secret", "s", "--data"])
        .arg(data.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("SQL users (--sql-user)"), "{err}");
    // The explicit opt-out serves, and says what it is doing.
    let server = Server::start_full(data.path(), "0.0.0.0:0", &["--insecure-open"], &[]);
    let url = server.url.replace("0.0.0.0", "127.0.0.1");
    assert_eq!(sql(&["--server", &url], "SELECT 1 AS one").len(), 1);
}

/// A server on `data` serving the Postgres and Flight SQL fronts beside gRPC, with `args` added:
/// (the server, the Postgres front's port, the Flight SQL front's address).
fn with_sql_fronts(data: &std::path::Path, args: &[&str]) -> (Server, String, String) {
    let (pg, flight) = (free_addr(), free_addr());
    let port = pg.rsplit(':').next().unwrap().to_string();
    let fronts = ["--pg-listen", pg.as_str(), "--flight-listen", flight.as_str()];
    let server = Server::start_full(data, "127.0.0.1:0", &[&fronts[..], args].concat(), &[]);
    (server, port, flight)
}

/// psql as user `u` with `password` on the Postgres front at `port`: (success, stdout, stderr).
fn psql(port: &str, password: &str, sql: &str) -> (bool, String, String) {
    psql_as(port, "u", password, sql)
}

/// psql as `user` with `password` on the Postgres front at `port`: (success, stdout, stderr).
fn psql_as(port: &str, user: &str, password: &str, sql: &str) -> (bool, String, String) {
    let out = std::process::Command::new("psql")
        .arg(format!("host=127.0.0.1 port={port} user={user} dbname=periscope sslmode=disable"))
        .args(["--no-psqlrc", "-X", "-A", "-t", "-c", sql])
        .env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "20")
        .output()
        .expect("psql (scripts/install-test-deps.sh installs postgresql-client)");
    let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
    (out.status.success(), text(out.stdout), text(out.stderr))
}

/// `sql` over Flight SQL at `flight` through the ADBC driver as `user`: each
/// row's first column on a line of stdout, or the driver's error on stderr.
fn flight_sql(py: &str, flight: &str, (user, password): (&str, &str), sql: &str) -> std::process::Output {
    let client = "import sys, adbc_driver_flightsql.dbapi as f\n\
        c = f.connect(sys.argv[1], db_kwargs={'username': sys.argv[2], 'password': sys.argv[3]}, autocommit=True)\n\
        cur = c.cursor(); cur.execute(sys.argv[4]); print('\\n'.join(str(r[0]) for r in cur.fetchall()))";
    std::process::Command::new(py)
        .args(["-c", client, &format!("grpc://{flight}"), user, password, sql])
        .output()
        .expect("run the ADBC Flight SQL client")
}

/// A TCP connection to `to` from the loopback address `src` (127.0.0.0/8 is all this machine's).
fn connect_from(src: &str, to: &str) -> std::net::TcpStream {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let s = rt.block_on(async {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind(format!("{src}:0").parse().unwrap()).unwrap();
        sock.connect(to.parse().unwrap()).await.unwrap()
    });
    let s = s.into_std().unwrap();
    s.set_nonblocking(false).unwrap();
    s
}

/// Whether the server closed `s` (end of stream or reset) within `wait`.
fn closed_within(s: &mut std::net::TcpStream, wait: Duration) -> bool {
    s.set_read_timeout(Some(wait)).unwrap();
    let mut buf = [0u8; 1];
    match s.read(&mut buf) {
        Ok(0) => true,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        Ok(_) => false,
    }
}

/// Issue 18 item 9: connection slots were taken before authentication, so 32
/// idle sockets locked psql out; now sockets take a slot only at login, one
/// address may hold only a few logins in progress, and those time out.
#[test]
fn idle_sockets_that_never_log_in_cannot_lock_psql_out() {
    let data = tempfile::tempdir().unwrap();
    let pg = free_addr();
    let port = pg.rsplit(':').next().unwrap().to_string();
    let _server = Server::start_full(data.path(), "127.0.0.1:0", &["--pg-listen", &pg, "--sql-user", "u:pw"], &[]);
    // More idle sockets than there are connection slots (32), from five addresses, 8 each.
    // One address trying for more gets its extra sockets closed at once. Once the handshake
    // time (10 s) is up, the server closes the first eight and takes new ones: on a machine
    // so loaded that the attempt outlasts it, it is made again with fresh sockets.
    let mut idle = Vec::new();
    for attempt in 1.. {
        let start = std::time::Instant::now();
        idle = (2..7)
            .flat_map(|a| (0..8).map(move |_| a))
            .map(|a| connect_from(&format!("127.0.0.{a}"), &pg))
            .collect::<Vec<std::net::TcpStream>>();
        let mut extra: Vec<std::net::TcpStream> = (0..3).map(|_| connect_from("127.0.0.2", &pg)).collect();
        if extra.iter_mut().all(|s| closed_within(s, Duration::from_secs(5))) {
            break;
        }
        assert!(start.elapsed() > Duration::from_secs(9) && attempt < 3, "a ninth login from one address");
        idle.clear();
        std::thread::sleep(Duration::from_secs(11));
    }
    let (ok, out, err) = psql(&port, "pw", "SELECT 6 * 7");
    assert!(ok, "psql locked out by idle sockets: {err}");
    assert_eq!(out.trim(), "42");
    // The server closes the idle ones once the handshake time (10 s) is up.
    assert!(closed_within(&mut idle[0], Duration::from_secs(30)), "an idle handshake is closed by the server");
}

/// Issue 18 item 10: 1,000 wrong passwords took 1.3 s.
#[test]
fn password_guessing_is_slowed_on_every_front() {
    let data = tempfile::tempdir().unwrap();
    let pg = free_addr();
    let port = pg.rsplit(':').next().unwrap().to_string();
    let server = Server::start_full(data.path(), "127.0.0.1:0", &["--pg-listen", &pg, "--sql-user", "u:right"], &[]);
    for _ in 0..10 {
        let (ok, ..) = psql(&port, "guess", "SELECT 1");
        assert!(!ok);
    }
    let (ok, _, err) = psql(&port, "right", "SELECT 1");
    assert!(!ok && err.contains("too many failed logins from 127.0.0.1"), "{err}");
    // The gRPC front shares the backoff: the same address is refused there too.
    let err = sql_refused(
        &["--server", &server.url],
        "SELECT 1",
        &[("PERISCOPE_USER", "u"), ("PERISCOPE_PASSWORD", "right")],
    );
    assert!(err.contains("too many failed logins"), "{err}");
}

/// Issue 18 item 3: every agent holds the fleet's secret, so any node could
/// enroll as any other host and write its rows.
#[test]
fn a_node_cannot_enroll_as_an_enrolled_host_and_tokens_enroll_one_host_once() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_full(data.path(), "127.0.0.1:0", &["--enroll-secret", "fleet", "--enroll-tokens"], &[]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let enroll = |host: &str, secret: &str| -> Result<String, tonic::Status> {
        rt.block_on(async {
            let mut c = IngestClient::connect(server.url.clone()).await.unwrap();
            let r = EnrollRequest { host: host.into(), enroll_secret: secret.into() };
            c.enroll(r).await.map(|r| r.into_inner().node_key)
        })
    };
    let genuine = enroll("web-1", "fleet").unwrap();
    // A compromised node knows the fleet's secret: it still cannot become web-1.
    let e = enroll("web-1", "fleet").unwrap_err();
    assert_eq!(e.code(), tonic::Code::AlreadyExists, "{e}");
    let admin = |args: &[&str]| {
        let out = std::process::Command::new(periscope_bin())
            .arg("agents")
            .args(args)
            .arg("--data")
            .arg(data.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    assert!(admin(&["list"]).starts_with("web-1\tenrolled "));
    // The operator revokes web-1 while the server runs: its key stops working at once, and it may enroll again.
    admin(&["revoke", "web-1"]);
    let mut old = rt.block_on(Node::enroll(&server.url, "web-1", None));
    old.key = Some(genuine);
    let row: &[(&str, Value<'_>)] = &[("collector", "packages".into()), ("message", "x".into())];
    let e = rt.block_on(old.crawl("host", "m", now_us(), &tables::CRAWL_ERRORS, &[row])).unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e}");
    enroll("web-1", "fleet").unwrap();
    // A per-host token enrolls that host once, and no other.
    let token = admin(&["token", "db-1"]).trim().to_string();
    assert_eq!(enroll("db-2", &token).unwrap_err().code(), tonic::Code::Unauthenticated);
    enroll("db-1", &token).unwrap();
    admin(&["revoke", "db-1"]);
    assert_eq!(enroll("db-1", &token).unwrap_err().code(), tonic::Code::Unauthenticated, "a token is used once");
}

/// Issue 18 item 7: scalar functions allocated outside the query's memory pool,
/// and constant folding ran them before the time limit started:
/// `length(repeat('x', 2e9))` held 11.6 GB for 24 s under a 64 MiB limit.
#[test]
fn functions_cannot_allocate_past_the_limits_on_any_front() {
    let data = tempfile::tempdir().unwrap();
    let (server, port, flight) =
        with_sql_fronts(data.path(), &["--sql-user", "u:pw", "--query-memory-bytes", "67108864"]);
    let bomb = "SELECT length(repeat('x', 2000000000)) AS n";
    let creds = [("PERISCOPE_USER", "u"), ("PERISCOPE_PASSWORD", "pw")];
    // Flight SQL's GetFlightInfo planned with no limits at all: the bomb was folded there.
    if let Some(py) = python() {
        let out = flight_sql(&py, &flight, ("u", "pw"), bomb);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains("more than one call may"), "{err}");
    }
    let err = sql_refused(&["--server", &server.url], bomb, &creds);
    assert!(err.contains("repeat: these arguments ask for 2000000000 bytes"), "{err}");
    let (ok, _, err) = psql(&port, "pw", bomb);
    assert!(!ok && err.contains("more than one call may"), "{err}");
    let (ok, out, err) = psql(&port, "pw", "SELECT length(repeat('x', 1000))");
    assert!(ok && out.trim() == "1000", "{err}");
    // Aggregates gathering more than one value may hold: array_agg of 1.5 GB held
    // 470 MB of server memory under this 64 MiB limit.
    let gather =
        "SELECT cardinality(array_agg(repeat(CAST(v AS VARCHAR), 1000))) AS n FROM generate_series(1, 300000) t(v)";
    let err = sql_refused(&["--server", &server.url], gather, &creds);
    let pool = err.contains("more memory than a query may use");
    assert!(pool || err.contains("array_agg: the values gathered into one result pass"), "{err}");
    // A folded constant repeated for every row: this one panicked in a plan's
    // task (an Arrow offset overflow), which ended the gRPC answer as a success
    // with no rows; the next asked for ~490 GB outside the pool. Both are now
    // refused before the copy.
    let overflow = "SELECT length(string_agg(repeat('x', 60000000), ',')) AS n FROM generate_series(1, 40)";
    // (Its length alone would be folded into one number while planning: the value itself is asked for.)
    let expand = "SELECT arrow_cast(repeat('x', 60000000), 'LargeUtf8') AS s FROM generate_series(1, 30000)";
    for sql in [overflow, expand] {
        let err = sql_refused(&["--server", &server.url], sql, &creds);
        assert!(err.contains("more than a query may build by repeating values"), "{err}");
        let (ok, _, err) = psql(&port, "pw", sql);
        assert!(!ok && err.contains("more than a query may build by repeating values"), "{err}");
        if let Some(py) = python() {
            let out = flight_sql(&py, &flight, ("u", "pw"), sql);
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success() && err.contains("by repeating values"), "{err}");
        }
    }
    assert!(!server.exited());
}

/// Issue 18 item 7, the class: many allocations that each pass their own cap
/// add up outside the memory pool. Each query below asked for gigabytes
/// under a 256 MiB query limit: a chain of `||` over a 32 KB constant grows
/// every batch by 262 MB per step; a hundred folded constants of 60 MB are
/// 6 GB before the query starts; a bounded window buffers the rows ahead of
/// each row. Each is refused on every front, and the server's peak memory
/// stays near the query's limit (twice --query-memory-bytes in all).
#[test]
fn many_allocations_add_up_to_a_refusal_on_every_front() {
    let data = tempfile::tempdir().unwrap();
    let limit: u64 = 256 << 20;
    let (server, port, flight) = with_sql_fronts(
        data.path(),
        &[
            "--sql-user",
            "u:pw",
            "--query-memory-bytes",
            &limit.to_string(),
            // Planning clones the folded constants of the second query once per optimizer pass: slow in a debug build.
            "--query-timeout-secs",
            "600",
        ],
    );
    let creds = [("PERISCOPE_USER", "u"), ("PERISCOPE_PASSWORD", "pw")];
    // (The 32 KB constant is folded from repeat: a literal that long would pass no command line.)
    let chain = format!(
        "SELECT max(length(s{})) AS n FROM (SELECT CAST(v AS VARCHAR) AS s FROM generate_series(1, 40000) t(v))",
        " || repeat('w', 32000)".repeat(30)
    );
    let folded = format!(
        "SELECT {}",
        (0..100).map(|i| format!("repeat('x', 60000000) || '{i}' AS c{i}")).collect::<Vec<_>>().join(", ")
    );
    let window = "SELECT max(length(s)) AS n, max(x) AS x FROM (SELECT s, sum(v) OVER (ROWS BETWEEN CURRENT ROW AND \
                  3000000 FOLLOWING) AS x FROM (SELECT v, repeat('y', 1000) || CAST(v AS VARCHAR) AS s \
                  FROM generate_series(1, 3000000) t(v)))";
    let refused =
        |err: &str| err.contains("more than a query may hold") || err.contains("more memory than a query may use");
    // The query's account holds it to 512 MiB; resident memory also keeps what jemalloc has freed
    // but not yet returned (its decay is 10 s) and one call's overshoot. Unguarded, each took 6 GB or more.
    let bound = 8 * limit;
    for (what, q) in [("chain", chain.as_str()), ("folded", folded.as_str()), ("window", window)] {
        server.reset_peak();
        let err = sql_refused(&["--server", &server.url], q, &creds);
        assert!(refused(&err), "{what}: {err}");
        let peak = server.peak_rss();
        eprintln!("{what}: gRPC refused at a peak of {} MB", peak >> 20);
        assert!(peak < bound, "{what}: the server peaked at {peak} bytes over gRPC");

        server.reset_peak();
        let (ok, _, err) = psql(&port, "pw", q);
        assert!(!ok && refused(&err), "{what}: {err}");
        let peak = server.peak_rss();
        eprintln!("{what}: Postgres refused at a peak of {} MB", peak >> 20);
        assert!(peak < bound, "{what}: the server peaked at {peak} bytes over Postgres");

        if let Some(py) = python() {
            server.reset_peak();
            let out = flight_sql(&py, &flight, ("u", "pw"), q);
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success() && refused(&err), "{what}: {err}");
            let peak = server.peak_rss();
            eprintln!("{what}: Flight SQL refused at a peak of {} MB", peak >> 20);
            assert!(peak < bound, "{what}: the server peaked at {peak} bytes over Flight SQL");
        }
    }
    // Queries within the limits still run.
    let (ok, out, err) = psql(&port, "pw", "SELECT count(*) FROM generate_series(1, 100000)");
    assert!(ok && out.trim() == "100000", "{err}");
    let out = std::process::Command::new(periscope_bin())
        .args(["sql", "--server", &server.url, "SELECT count(*) AS n FROM generate_series(1, 100000)"])
        .envs(creds)
        .output()
        .unwrap();
    assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).contains("100000"), "{out:?}");
    assert!(!server.exited());
}

/// The query that reads `host` from every table and view that has one, as `user` sees them: which hosts it saw.
fn every_host_query(target: &[&str], env: &[(&str, &str)]) -> String {
    every_table_query(target, env, "host", "host")
}

/// The query that reads `expr` from every table and view that has column `having`, as the user of `env` sees them.
fn every_table_query(target: &[&str], env: &[(&str, &str)], having: &str, expr: &str) -> String {
    let out = std::process::Command::new(periscope_bin())
        .arg("sql")
        .args(target)
        .args([
            "--format",
            "csv",
            &format!(
                "SELECT DISTINCT table_name FROM information_schema.columns \
                 WHERE table_schema = 'public' AND column_name = '{having}' ORDER BY table_name"
            ),
        ])
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let tables: Vec<String> = String::from_utf8(out.stdout).unwrap().lines().skip(1).map(str::to_string).collect();
    assert!(tables.len() > 40, "every history table, view and key table: {tables:?}");
    let parts: Vec<String> = tables.iter().map(|t| format!("SELECT {expr} AS x FROM \"{t}\"")).collect();
    format!("SELECT DISTINCT x FROM ({}) x ORDER BY x", parts.join(" UNION ALL "))
}

/// Issue 18 item 12: every SQL user read every host. A user confined to some
/// hosts sees only their rows, through every table, view and join, on every front.
#[test]
fn scoped_users_see_only_their_hosts_on_every_front() {
    let data = tempfile::tempdir().unwrap();
    let (server, port, flight) = with_sql_fronts(
        data.path(),
        &[
            "--sql-user",
            "u:pw",
            "--sql-user",
            "team-a:pa",
            "--sql-user",
            "team-b:pb",
            "--sql-scope",
            "team-a=web-*",
            "--sql-scope",
            "team-b=db-?|nothing-*",
            "--sql-scope",
            "u=*",
        ],
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        for host in ["web-1", "db-1", "web_1"] {
            let mut n = Node::enroll(&server.url, host, None).await;
            let name = format!("pkg-{host}");
            let pkg: &[(&str, Value<'_>)] = &[("manager", "dpkg".into()), ("name", name.as_str().into())];
            n.crawl("host", "m", now_us(), &tables::PACKAGES, &[pkg]).await.unwrap();
            n.crawl("image", IMAGE, now_us(), &tables::PACKAGES, &[pkg]).await.unwrap();
        }
    });
    let target = ["--server", server.url.as_str()];
    let as_user = |u: &'static str, p: &'static str| [("PERISCOPE_USER", u), ("PERISCOPE_PASSWORD", p)];
    let (q, qa, qb) = (
        every_host_query(&target, &as_user("u", "pw")),
        every_host_query(&target, &as_user("team-a", "pa")),
        every_host_query(&target, &as_user("team-b", "pb")),
    );
    assert!(q.contains("report_results") && !qa.contains("report_") && !qb.contains("report_"), "{qa}");
    let hosts = |env: &[(&str, &str)], sql: &str| -> Vec<String> {
        let out = std::process::Command::new(periscope_bin())
            .arg("sql")
            .args(target)
            .args(["--format", "csv", sql])
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert!(out.status.success(), "{sql}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().lines().skip(1).map(str::to_string).collect()
    };
    // gRPC (the CLI): every table and view at once.
    assert_eq!(hosts(&as_user("u", "pw"), &q), ["db-1", "web-1", "web_1"], "an unconfined user");
    assert_eq!(hosts(&as_user("team-a", "pa"), &qa), ["web-1"], "team-a: web-*");
    assert_eq!(hosts(&as_user("team-b", "pb"), &qb), ["db-1"], "team-b");
    // A join of two tables, and the differential history view.
    let join = "SELECT DISTINCT p.host FROM packages_history p JOIN crawls c ON c.host <> p.host ORDER BY 1";
    assert!(hosts(&as_user("team-a", "pa"), join).is_empty(), "no other host's row to join with");
    assert_eq!(hosts(&as_user("team-b", "pb"), "SELECT DISTINCT host FROM package_changes"), ["db-1"]);
    // A user's expressions never run on another host's rows: each of these errors (quoting the row)
    // as soon as it meets one of db-1's, and must not for team-a.
    for sql in [
        "SELECT count(*) AS n FROM packages_history WHERE CASE WHEN name = 'pkg-db-1' THEN CAST(name AS BIGINT) END IS NULL",
        "SELECT count(*) AS n FROM packages WHERE CASE WHEN name = 'pkg-db-1' THEN CAST(name AS BIGINT) END IS NULL",
        "SELECT count(*) AS n FROM latest_crawls WHERE CASE WHEN host = 'db-1' THEN CAST(host AS BIGINT) END IS NULL",
    ] {
        let n = hosts(&as_user("team-a", "pa"), sql);
        assert_eq!(n.len(), 1, "{sql}: {n:?}");
        assert_ne!(n[0], "0", "{sql}: team-a's own rows are there");
    }
    // Plans describe every host's files and rows: no EXPLAIN for a confined user, on any front.
    for explain in ["EXPLAIN SELECT * FROM crawls", "EXPLAIN ANALYZE SELECT * FROM latest_crawls"] {
        let err = sql_refused(&target, explain, &as_user("team-a", "pa"));
        assert!(err.contains("EXPLAIN is refused to a user confined to some hosts"), "{err}");
    }
    // The fleet-wide report tables are not there for a confined user.
    let err = sql_refused(&target, "SELECT count(*) FROM report_runs", &as_user("team-a", "pa"));
    assert!(err.contains("report_runs"), "{err}");
    // Postgres.
    for (user, pw, q, want) in [("team-a", "pa", &qa, "web-1"), ("team-b", "pb", &qb, "db-1")] {
        let (ok, out, err) = psql_as(&port, user, pw, q);
        assert!(ok, "{user}: {err}");
        assert_eq!(out.lines().collect::<Vec<_>>(), [want], "{user}");
    }
    let (ok, _, err) = psql_as(&port, "team-a", "pa", "EXPLAIN ANALYZE SELECT * FROM latest_crawls");
    assert!(!ok && err.contains("EXPLAIN is refused"), "{err}");
    // Flight SQL, through the ADBC driver.
    if let Some(py) = python() {
        let out = flight_sql(&py, &flight, ("team-b", "pb"), &qb);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), "db-1");
    }
}

/// Issue 19: advisories are public, exposures are not. A confined user reads
/// every advisory, and the vulnerabilities of its own hosts only, on every front.
#[test]
fn confined_users_read_every_advisory_and_only_their_own_exposures() {
    let data = tempfile::tempdir().unwrap();
    let (server, port, _) = with_sql_fronts(
        data.path(),
        &["--sql-user", "u:pw", "--sql-user", "team-a:pa", "--sql-scope", "team-a=web-*", "--sql-scope", "u=*"],
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        for host in ["web-1", "db-1"] {
            let mut n = Node::enroll(&server.url, host, None).await;
            let pkg: &[(&str, Value<'_>)] =
                &[("manager", "pypi".into()), ("name", "urllib3".into()), ("version", "1.26.0".into())];
            n.crawl("host", "m", now_us(), &tables::PACKAGES, &[pkg]).await.unwrap();
        }
    });
    let records = tempfile::tempdir().unwrap();
    let record = serde_json::json!({"id": "TEST-URLLIB3", "modified": "2026-11-01T00:00:00Z",
        "affected": [{"package": {"ecosystem": "PyPI", "name": "urllib3"},
                      "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.2.2"}]}]}]});
    std::fs::write(records.path().join("r.json"), record.to_string()).unwrap();
    let out = std::process::Command::new(periscope_bin())
        .args(["vulns", "import", "--data", data.path().to_str().unwrap(), records.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let target = ["--server", server.url.as_str()];
    let rows = |(u, p): (&str, &str), sql: &str| -> Vec<String> {
        let out = std::process::Command::new(periscope_bin())
            .arg("sql")
            .args(target)
            .args(["--format", "csv", sql])
            .envs([("PERISCOPE_USER", u), ("PERISCOPE_PASSWORD", p)])
            .output()
            .unwrap();
        assert!(out.status.success(), "{sql}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().lines().skip(1).map(str::to_string).collect()
    };
    let exposed = "SELECT host || ' ' || package || ' ' || fixed_version FROM vulnerabilities ORDER BY 1";
    assert_eq!(rows(("u", "pw"), exposed), ["db-1 urllib3 2.2.2", "web-1 urllib3 2.2.2"]);
    assert_eq!(rows(("team-a", "pa"), exposed), ["web-1 urllib3 2.2.2"]);
    assert_eq!(rows(("team-a", "pa"), "SELECT id FROM advisories"), ["TEST-URLLIB3"]);
    let (ok, out, err) = psql_as(&port, "team-a", "pa", exposed);
    assert!(ok, "{err}");
    assert_eq!(out.lines().collect::<Vec<_>>(), ["web-1 urllib3 2.2.2"]);
}

/// Issue 19: no node's rows decide another host's exposures. The history
/// view once took each package version's source from any host's rows, so a
/// node naming libssl3's source `a` (or its source version `0`) hid (or
/// raised) every other host's openssl exposures.
#[test]
fn a_node_cannot_change_another_hosts_exposures() {
    let data = tempfile::tempdir().unwrap();
    let (server, _, _) = with_sql_fronts(data.path(), &["--sql-user", "u:pw"]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let os: &[(&str, Value<'_>)] = &[("id", "debian".into()), ("version_id", "12".into())];
        let pkg = |source: &'static str, sv: &'static str| -> Vec<(&'static str, Value<'static>)> {
            vec![
                ("manager", "dpkg".into()),
                ("name", "libssl3".into()),
                ("version", "3.0.11-1~deb12u2".into()),
                ("source", source.into()),
                ("source_version", sv.into()),
            ]
        };
        let (honest, crafted, lowered) = (pkg("openssl", "3.0.11-1~deb12u2"), pkg("a", "0"), pkg("openssl", "0"));
        let mut victim = Node::enroll(&server.url, "victim", None).await;
        let rows: &[&[(&str, Value<'_>)]] = &[&honest];
        victim.crawl_tables("host", "m", now_us(), &[(&tables::OS, &[os]), (&tables::PACKAGES, rows)]).await.unwrap();
        for (host, p) in [("attacker-1", &crafted), ("attacker-2", &lowered)] {
            let mut n = Node::enroll(&server.url, host, None).await;
            let rows: &[&[(&str, Value<'_>)]] = &[p];
            n.crawl_tables("host", "m", now_us(), &[(&tables::OS, &[os]), (&tables::PACKAGES, rows)]).await.unwrap();
        }
    });
    let records = tempfile::tempdir().unwrap();
    // Affects openssl below 3.0.13-1~deb12u1 only; an already-fixed one the lowered source version would match.
    for (id, fixed) in [("DSA-TEST-1", "3.0.13-1~deb12u1"), ("DSA-TEST-0", "3.0.9-1")] {
        let record = serde_json::json!({"id": id, "modified": "2026-11-01T00:00:00Z",
            "affected": [{"package": {"ecosystem": "Debian:12", "name": "openssl"},
                          "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": fixed}]}]}]});
        std::fs::write(records.path().join(format!("{id}.json")), record.to_string()).unwrap();
    }
    let out = std::process::Command::new(periscope_bin())
        .args(["vulns", "import", "--data", data.path().to_str().unwrap(), records.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let rows = |sql: &str| -> Vec<String> {
        let out = std::process::Command::new(periscope_bin())
            .args(["sql", "--server", &server.url, "--format", "csv", sql])
            .envs([("PERISCOPE_USER", "u"), ("PERISCOPE_PASSWORD", "pw")])
            .output()
            .unwrap();
        assert!(out.status.success(), "{sql}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().lines().skip(1).map(str::to_string).collect()
    };
    for view in ["vulnerabilities", "vulnerabilities_history"] {
        let q = format!("SELECT package || ' ' || advisory FROM {view} WHERE host = 'victim' ORDER BY 1");
        assert_eq!(rows(&q), ["libssl3 DSA-TEST-1"], "{view}");
    }
    // Each attacker's own rows follow what it said, and only its own.
    let q = "SELECT host || ' ' || advisory FROM vulnerabilities_history WHERE host LIKE 'attacker%' ORDER BY 1";
    assert_eq!(rows(q), ["attacker-2 DSA-TEST-0", "attacker-2 DSA-TEST-1"]);
}

/// Issue 18 item 12: read scopes by Kubernetes namespace and container label.
/// A team sees its containers' rows, the rows about them and their images'
/// rows, through every table and view, on every front, and nothing of the
/// hosts' own state or of other teams' containers; a node's claim about its
/// containers admits only that node's rows.
#[test]
fn namespace_and_label_scopes_see_only_their_containers_on_every_front() {
    let data = tempfile::tempdir().unwrap();
    let (server, port, flight) = with_sql_fronts(
        data.path(),
        &[
            "--sql-user",
            "team-a:pa",
            "--sql-user",
            "team-b:pb",
            "--sql-scope",
            "team-a=ns:team-a",
            "--sql-scope",
            "team-b=label:app=web*",
        ],
    );
    const IMAGE_A: &str = "sha256:aaaa";
    const IMAGE_B: &str = "sha256:bbbb";
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let container = |id: &'static str, ns: &'static str, labels: &'static str, image: &'static str| {
            vec![
                ("container_id", Value::from(id)),
                ("name", id.into()),
                ("image_id", image.into()),
                ("k8s_namespace", ns.into()),
                ("labels", labels.into()),
            ]
        };
        let pkg = |name: &'static str| vec![("manager", Value::from("dpkg")), ("name", name.into())];
        let t = now_us();
        let mut web = Node::enroll(&server.url, "web-1", None).await;
        let (ca, cb) =
            (container("c-a", "team-a", "{}", IMAGE_A), container("c-b", "team-b", r#"{"app":"web-front"}"#, IMAGE_B));
        // Another team's container of team-a's image on the same host (a pause sandbox, a sidecar):
        // sharing the image shares the image's rows, never the container's.
        let cc = container("c-c", "team-c", "{}", IMAGE_A);
        let host_pkg = pkg("pkg-host-web-1");
        let listing: &[&[(&str, Value<'_>)]] = &[&ca, &cb, &cc];
        let host_rows: &[&[(&str, Value<'_>)]] = &[&host_pkg];
        web.crawl_tables("host", "m", t, &[(&tables::CONTAINERS, listing), (&tables::PACKAGES, host_rows)])
            .await
            .unwrap();
        for (scope, id, name) in [
            ("container", "c-a", "pkg-c-a"),
            ("container", "c-b", "pkg-c-b"),
            ("container", "c-c", "pkg-c-c"),
            ("image", IMAGE_A, "pkg-img-a"),
            ("image", IMAGE_B, "pkg-img-b"),
        ] {
            web.crawl(scope, id, t, &tables::PACKAGES, &[&pkg(name)]).await.unwrap();
        }
        // db-1 says it runs a container with web-1's container id, labelled for team-b:
        // team-b may see db-1's own container, never web-1's c-a.
        let mut db = Node::enroll(&server.url, "db-1", None).await;
        let claimed = container("c-a", "team-b", r#"{"app":"web"}"#, IMAGE_A);
        db.crawl("host", "m2", t, &tables::CONTAINERS, &[&claimed]).await.unwrap();
        db.crawl("container", "c-a", t, &tables::PACKAGES, &[&pkg("pkg-db-c-a")]).await.unwrap();
    });
    let target = ["--server", server.url.as_str()];
    let as_user = |u: &'static str, p: &'static str| [("PERISCOPE_USER", u), ("PERISCOPE_PASSWORD", p)];
    let rows = |env: &[(&str, &str)], sql: &str| -> Vec<String> {
        let out = std::process::Command::new(periscope_bin())
            .arg("sql")
            .args(target)
            .args(["--format", "csv", sql])
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert!(out.status.success(), "{sql}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().lines().skip(1).map(str::to_string).collect()
    };
    let (a, b) = (as_user("team-a", "pa"), as_user("team-b", "pb"));
    let every =
        |env: &[(&str, &str)]| every_table_query(&target, env, "scope_id", "host || ' ' || scope || ' ' || scope_id");
    let (qa, qb) = (every(&a), every(&b));
    // Every table and view: the team's containers, their images, and the host rows about those containers.
    assert_eq!(rows(&a, &qa), ["web-1 container c-a", "web-1 host m", &format!("web-1 image {IMAGE_A}")]);
    assert_eq!(
        rows(&b, &qb),
        [
            "db-1 container c-a",
            "db-1 host m2",
            "web-1 container c-b",
            "web-1 host m",
            &format!("web-1 image {IMAGE_B}")
        ]
    );
    let names = "SELECT DISTINCT name FROM packages_history ORDER BY 1";
    assert_eq!(rows(&a, names), ["pkg-c-a", "pkg-img-a"], "no host package, no other team's");
    assert_eq!(rows(&b, names), ["pkg-c-b", "pkg-db-c-a", "pkg-img-b"], "db-1's claim admits db-1's rows only");
    let current = "SELECT DISTINCT host || ' ' || container_id FROM containers ORDER BY 1";
    assert_eq!(rows(&a, current), ["web-1 c-a"]);
    assert_eq!(rows(&b, current), ["db-1 c-a", "web-1 c-b"]);
    // The current-state view, which names each container from its host's listing.
    let inherited = "SELECT DISTINCT container || ' ' || name FROM packages WHERE scope = 'container' ORDER BY 1";
    assert_eq!(rows(&a, inherited), ["c-a pkg-c-a"]);
    // A user's expressions never run on rows it may not read.
    let bomb = "SELECT count(*) AS n FROM packages_history WHERE CASE WHEN name = 'pkg-c-b' THEN CAST(name AS BIGINT) END IS NULL";
    assert_eq!(rows(&a, bomb), ["2"]);
    // Postgres and Flight SQL answer alike.
    let (ok, out, err) = psql_as(&port, "team-a", "pa", names);
    assert!(ok, "{err}");
    assert_eq!(out.lines().collect::<Vec<_>>(), ["pkg-c-a", "pkg-img-a"]);
    let (ok, out, err) = psql_as(&port, "team-b", "pb", &qb);
    assert!(ok, "{err}");
    assert_eq!(out.lines().count(), 5, "{out}");
    if let Some(py) = python() {
        let out = flight_sql(&py, &flight, ("team-a", "pa"), names);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), "pkg-c-a\npkg-img-a");
    }
}

/// Issue 18 item 7: a query computing without yielding (one long function
/// call, a nested-loop join's batch) held a worker of the query runtime; two
/// held both, and `SELECT 1` waited 116 s behind them, past every time limit.
/// Each query now has a thread of its own: others are answered at once, and a
/// client is answered at its time limit whatever its query's work does.
#[test]
fn queries_that_compute_without_yielding_starve_neither_sql_nor_ingest() {
    let data = tempfile::tempdir().unwrap();
    let pg = free_addr();
    let port = pg.rsplit(':').next().unwrap().to_string();
    let server = Server::start_full(
        data.path(),
        "127.0.0.1:0",
        &["--pg-listen", &pg, "--sql-user", "u:pw", "--query-timeout-secs", "4"],
        &[],
    );
    let creds = [("PERISCOPE_USER", "u"), ("PERISCOPE_PASSWORD", "pw")];
    // Two calls, each under the function caps (the most one call may do), take seconds each in a
    // debug build, in one batch that never yields.
    let heavy = "SELECT levenshtein(repeat('a', 14900) || v, repeat('b', 15000)) AS d, \
                 levenshtein(repeat('c', 14900) || v, repeat('b', 15000)) AS e FROM generate_series(1, 1) t(v)";
    let started = Instant::now();
    let busy: Vec<std::process::Child> = (0..2)
        .map(|_| {
            std::process::Command::new(periscope_bin())
                .args(["sql", "--server", &server.url, heavy])
                .envs(creds)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    let timed = |what: &str, f: &mut dyn FnMut() -> bool| {
        let t = Instant::now();
        assert!(f(), "{what} failed");
        let took = t.elapsed();
        // Answered as an idle debug server answers, on a loaded CI machine: seconds at most,
        // where behind the busy queries it took their whole batch (13 s of CPU each here).
        assert!(took < Duration::from_secs(6), "{what} waited {took:?} behind queries computing");
    };
    timed("SELECT 1 over gRPC", &mut || {
        let out = std::process::Command::new(periscope_bin())
            .args(["sql", "--server", &server.url, "--format", "csv", "SELECT 1 AS one"])
            .envs(creds)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).lines().nth(1) == Some("1")
    });
    timed("SELECT 1 over Postgres", &mut || {
        let (ok, out, _) = psql(&port, "pw", "SELECT 1");
        ok && out.trim() == "1"
    });
    let rt = tokio::runtime::Runtime::new().unwrap();
    timed("an agent's batch", &mut || {
        rt.block_on(async {
            let mut n = Node::enroll(&server.url, "web-1", None).await;
            let pkg: &[(&str, Value<'_>)] = &[("manager", "dpkg".into()), ("name", "bash".into())];
            n.crawl("host", "m", now_us(), &tables::PACKAGES, &[pkg]).await.is_ok()
        })
    });
    // The busy queries' clients are answered at their time limit, not when the work ends.
    for c in busy {
        let out = c.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains("query cancelled after 4 s"), "{err}");
    }
    let took = started.elapsed();
    assert!(took < Duration::from_secs(12), "the busy queries were answered after {took:?}");
    assert!(!server.exited());
}
