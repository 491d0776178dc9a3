//! Query metrics, counted for every front (gRPC, Flight SQL, Postgres wire)
//! and served by `periscope serve --metrics-listen` (see `periscope-telemetry`).

use std::sync::LazyLock;
use std::time::Duration;

use periscope_telemetry::Registry;
use periscope_telemetry::prometheus_client::metrics::counter::Counter;
use periscope_telemetry::prometheus_client::metrics::family::Family;
use periscope_telemetry::prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

/// How a query ended: `ok`, `refused` (a limit: memory, time, result size, a
/// confined user's plan) or `error` (the query's own mistake, or a failure).
pub type Outcome = &'static str;

type Labels = Vec<(&'static str, &'static str)>;

struct Metrics {
    queries: Family<Labels, Counter>,
    seconds: Family<Labels, Histogram>,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| Metrics {
    queries: Family::default(),
    // 1 ms to about 4.5 minutes.
    seconds: Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.001, 4.0, 10))),
});

pub fn register(r: &mut Registry) {
    r.register(
        "periscope_server_queries",
        "SQL queries run, by front (grpc, flight, pg) and outcome (ok, refused, error)",
        METRICS.queries.clone(),
    );
    r.register(
        "periscope_server_query_duration_seconds",
        "Wall time of a query from planning to its last row, by front",
        METRICS.seconds.clone(),
    );
}

/// A query of `front` ended with `outcome` after `took`.
pub fn finished(front: &'static str, outcome: Outcome, took: Duration) {
    METRICS.queries.get_or_create(&vec![("front", front), ("outcome", outcome)]).inc();
    METRICS.seconds.get_or_create(&vec![("front", front)]).observe(took.as_secs_f64());
}

/// The outcome of a query that returned `r`.
pub fn outcome<T>(r: &Result<T, crate::query::QueryError>) -> Outcome {
    match r {
        Ok(_) => "ok",
        Err(crate::query::QueryError::Limit(_)) => "refused",
        Err(_) => "error",
    }
}

/// Records its query when dropped: a streamed query ends when its stream
/// does, drained, failed or cancelled by the client.
pub struct Timed {
    front: &'static str,
    started: std::time::Instant,
    pub outcome: Outcome,
}

impl Timed {
    pub fn start(front: &'static str) -> Timed {
        Timed { front, started: std::time::Instant::now(), outcome: "ok" }
    }
}

impl Drop for Timed {
    fn drop(&mut self) {
        // Dropped by a panic unwinding through the query's work: it failed.
        let outcome = if std::thread::panicking() { "error" } else { self.outcome };
        finished(self.front, outcome, self.started.elapsed());
    }
}
