//! Health, readiness and Prometheus metrics of a long-running Periscope
//! process (`periscope-agent run`, `periscope serve`), served over plain
//! HTTP on their own port (`--metrics-listen`), apart from gRPC and SQL:
//!
//! - `GET /healthz`: 200 while the process serves at all (a liveness probe);
//! - `GET /readyz`: 200 once the process said it is ready, 503 before (a readiness probe);
//! - `GET /metrics`: every registered metric in the OpenMetrics text format,
//!   which Prometheus scrapes (encoded by the Prometheus project's own client).
//!
//! Each crate declares its metrics where they are counted and registers them
//! into the one [`Registry`] its binary builds at start; gauges that are
//! cheaper to read than to keep current are read by a refresh callback just
//! before each scrape.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
pub use prometheus_client;
use prometheus_client::encoding::text::encode;
pub use prometheus_client::registry::Registry;

/// The media type of the OpenMetrics text exposition.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What the endpoint serves: the metrics, readiness, and what to read just before a scrape.
pub struct Telemetry {
    registry: Registry,
    ready: AtomicBool,
    refresh: Box<dyn Fn() + Send + Sync>,
    /// Asked at each `/readyz` too, when set: readiness the process can lose (a failed store).
    check: Option<Box<dyn Fn() -> bool + Send + Sync>>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry").field("ready", &self.is_ready()).finish_non_exhaustive()
    }
}

impl Telemetry {
    /// `registry` with every metric registered; `refresh` runs before each scrape.
    pub fn new(registry: Registry, refresh: impl Fn() + Send + Sync + 'static) -> Arc<Telemetry> {
        Arc::new(Telemetry { registry, ready: AtomicBool::new(false), refresh: Box::new(refresh), check: None })
    }

    /// [`Telemetry::new`], ready while `check` says so (and [`Telemetry::set_ready`] did).
    pub fn with_check(
        registry: Registry,
        refresh: impl Fn() + Send + Sync + 'static,
        check: impl Fn() -> bool + Send + Sync + 'static,
    ) -> Arc<Telemetry> {
        Arc::new(Telemetry {
            registry,
            ready: AtomicBool::new(false),
            refresh: Box::new(refresh),
            check: Some(Box::new(check)),
        })
    }

    /// Says whether `/readyz` answers 200.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed) && self.check.as_ref().is_none_or(|c| c())
    }

    /// The metrics as `/metrics` serves them.
    pub fn render(&self) -> String {
        (self.refresh)();
        let mut text = String::new();
        // Writing to a String cannot fail; a metric that fails to encode is a bug worth seeing.
        if let Err(e) = encode(&mut text, &self.registry) {
            tracing::error!("encoding metrics: {e}");
        }
        text
    }
}

/// Logs to stderr at the level PERISCOPE_LOG names (an `EnvFilter`: `info`,
/// `periscope_agent=debug`, …; `default` otherwise), as text, or as one JSON
/// object per line (time, level, target, message and each field: `collector`,
/// `scope_id`, `path`, …) when PERISCOPE_LOG_FORMAT=json, for log pipelines.
pub fn init_logs(default: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("PERISCOPE_LOG").unwrap_or_else(|_| default.into());
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match std::env::var("PERISCOPE_LOG_FORMAT").as_deref() {
        Ok("json") => logs.json().flatten_event(true).with_current_span(true).init(),
        _ => logs.init(),
    }
}

/// Binds `addr` (`host:port`) and serves `t` there until the process ends.
/// Returns the bound address (port 0 picks one).
pub async fn serve(addr: &str, t: Arc<Telemetry>) -> std::io::Result<std::net::SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("--metrics-listen {addr}: {e}")))?;
    let bound = listener.local_addr()?;
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(t);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!("metrics endpoint stopped: {e}");
        }
    });
    Ok(bound)
}

async fn readyz(State(t): State<Arc<Telemetry>>) -> Response {
    if t.is_ready() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
    }
}

async fn metrics(State(t): State<Arc<Telemetry>>) -> Response {
    // Encoding reads atomics only, but a refresh may read files (/proc): off the async workers.
    match tokio::task::spawn_blocking(move || t.render()).await {
        Ok(text) => ([(header::CONTENT_TYPE, OPENMETRICS)], text).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::counter::Counter;

    #[test]
    fn a_registered_counter_is_rendered_after_the_refresh() {
        let mut r = Registry::default();
        let c: Counter = Counter::default();
        r.register("periscope_test_things", "Things counted", c.clone());
        let seen = Counter::<u64>::default();
        let s = seen.clone();
        let t = Telemetry::new(r, move || {
            s.inc();
        });
        c.inc_by(3);
        let text = t.render();
        assert!(text.contains("periscope_test_things_total 3\n"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
        assert_eq!(seen.get(), 1);
    }
}
