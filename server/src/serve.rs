//! `periscope serve`: opens the store and starts each front beside the
//! others (gRPC ingest and query, Flight SQL, Postgres) and the report
//! scheduler, then closes the store cleanly once they have stopped.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;

use periscope_fronts::auth::{Auth, AuthConfig};
use periscope_fronts::sqlauth::SqlUsers;
use periscope_fronts::tls::TlsFiles;
use periscope_fronts::{flight, pg, service};
use periscope_query::query;
use periscope_report::schedule;
use periscope_store::store::{Store, StoreConfig};
use periscope_telemetry::prometheus_client::metrics::gauge::Gauge;
use periscope_telemetry::{Registry, Telemetry};

/// Binds `addr` for the server. Kept apart from [`serve`] so callers can learn the port first.
pub async fn bind(addr: &str) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Runs an open server (no enrollment) on `listener` until `shutdown` completes.
pub async fn serve(
    data: PathBuf,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    periscope_report::install();
    periscope_vulns::install();
    serve_with(data, listener, ServeOptions::default(), shutdown).await
}

/// How `periscope serve` runs, beyond its data directory and gRPC listener.
#[derive(Default)]
pub struct ServeOptions {
    /// Agent enrollment.
    pub auth: AuthConfig,
    /// TLS for the gRPC port (and the Flight SQL port).
    pub tls: Option<TlsFiles>,
    pub store: StoreConfig,
    /// The sandbox for remote queries.
    pub limits: query::Limits,
    /// SQL users; when there are any, remote SQL needs one's credentials.
    pub sql_users: Arc<SqlUsers>,
    /// Where to serve Flight SQL, if at all (needs SQL users).
    pub flight: Option<TcpListener>,
    /// Where to serve the Postgres wire protocol, if at all (needs SQL users).
    pub pg: Option<TcpListener>,
    /// Run query packs on their schedules, if at all.
    pub reports: Option<schedule::ScheduleOptions>,
    /// Import advisories from these sources now and at this interval, if at all.
    pub vulns: Option<(Vec<String>, std::time::Duration)>,
    /// Where to serve /healthz, /readyz and /metrics, if at all.
    pub metrics: Option<String>,
}

/// The store's own gauges, read at each scrape (see [`periscope_store::store::Store::stats`]).
struct StoreGauges {
    unflushed_bytes: Gauge,
    unflushed_age: Gauge<f64, std::sync::atomic::AtomicU64>,
    scopes: Gauge,
    failed: Gauge,
}

/// Binds `addr` and serves the server's metrics and health there; ready from the start
/// (it is called once the store is open and every front is bound).
async fn telemetry(addr: &str, store: Arc<Store>) -> anyhow::Result<()> {
    let mut r = Registry::default();
    periscope_fronts::metrics::register(&mut r);
    periscope_query::metrics::register(&mut r);
    let g = StoreGauges {
        unflushed_bytes: Gauge::default(),
        unflushed_age: Gauge::default(),
        scopes: Gauge::default(),
        failed: Gauge::default(),
    };
    r.register(
        "periscope_server_unflushed_bytes",
        "Acknowledged rows held in the write-ahead log and memory, not yet in Parquet",
        g.unflushed_bytes.clone(),
    );
    r.register(
        "periscope_server_flush_lag_seconds",
        "How long the oldest row not yet in Parquet has waited",
        g.unflushed_age.clone(),
    );
    r.register(
        "periscope_server_index_scopes",
        "Scopes (hosts, containers, images) in the current-state index",
        g.scopes.clone(),
    );
    r.register(
        "periscope_server_store_failed",
        "1 once the store stopped accepting rows after a failure",
        g.failed.clone(),
    );
    // Weak: the endpoint outlives `serve_with`, which must be able to close the store and free its directory.
    let (weak, weak2) = (Arc::downgrade(&store), Arc::downgrade(&store));
    let refresh = move || {
        let s = weak.upgrade().map(|s| s.stats()).unwrap_or_default();
        g.unflushed_bytes.set(s.unflushed_bytes as i64);
        g.unflushed_age.set(s.unflushed_age.as_secs_f64());
        g.scopes.set(s.scopes as i64);
        g.failed.set(s.failed as i64);
    };
    // Not ready once the store stopped accepting rows (or is closed): ingest must go elsewhere.
    let t = Telemetry::with_check(r, refresh, move || weak2.upgrade().is_some_and(|s| !s.stats().failed));
    t.set_ready(true);
    let bound = periscope_telemetry::serve(addr, t).await?;
    eprintln!("periscope: /healthz, /readyz and /metrics on http://{bound}");
    Ok(())
}

/// Runs the server on `listener` until `shutdown` completes.
pub async fn serve_with(
    data: PathBuf,
    listener: TcpListener,
    opts: ServeOptions,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    if opts.flight.is_some() && opts.sql_users.is_empty() {
        anyhow::bail!("Flight SQL needs at least one SQL user (--sql-user NAME:PASSWORD)");
    }
    if opts.pg.is_some() && opts.sql_users.is_empty() {
        anyhow::bail!("the Postgres front needs at least one SQL user (--sql-user NAME:PASSWORD)");
    }
    let store = Arc::new(Store::open_with(&data, opts.store)?);
    let auth = Arc::new(Auth::open(&data, opts.auth)?);
    let router = service::router(store.clone(), auth, opts.limits.clone(), opts.sql_users.clone(), opts.tls.clone())?;
    if let Some(addr) = &opts.metrics {
        telemetry(addr, store.clone()).await?;
    }
    let addr: SocketAddr = listener.local_addr()?;
    tracing::info!(%addr, data = %data.display(), "periscope server listening");
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let flight = opts.flight.map(|l| {
        let f = flight::FlightSql { store: store.clone(), users: opts.sql_users.clone(), limits: opts.limits.clone() };
        let tls = opts.tls.clone().map(|t| TlsFiles { client_ca: None, ..t });
        query::runtime().spawn(flight::serve(f, l, tls, stopped(stop_rx.clone())))
    });
    let pg = opts.pg.map(|l| {
        let tls = opts.tls.clone().map(|t| TlsFiles { client_ca: None, ..t });
        let (store, users, limits) = (store.clone(), opts.sql_users.clone(), opts.limits.clone());
        query::runtime().spawn(pg::serve(store, users, limits, l, tls, stopped(stop_rx.clone())))
    });
    let scheduler = opts.reports.map(|r| query::runtime().spawn(schedule::run(store.clone(), r, stop_rx.clone())));
    let vulns = opts.vulns.map(|(sources, every)| {
        tokio::spawn(periscope_vulns::source::run(data.clone(), sources, every, stop_rx.clone()))
    });
    let grpc = router.serve_with_incoming_shutdown(TcpIncoming::from(listener), stopped(stop_rx));
    let shutdown = async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    };
    let (served, ()) = tokio::join!(grpc, shutdown);
    served?;
    for front in [flight, pg].into_iter().flatten() {
        front.await??;
    }
    if let Some(s) = scheduler {
        s.await?;
    }
    if let Some(v) = vulns {
        v.await?;
    }
    // Whatever is buffered goes to Parquet before a clean exit.
    let closing = store.clone();
    tokio::task::spawn_blocking(move || closing.close()).await??;
    Ok(())
}
