//! The agent's Prometheus metrics, counted where the work happens and served
//! by `periscope-agent run --metrics-listen` (see `periscope-telemetry`).
//! Names follow `periscope_agent_<noun>_<unit>[_total]`; label values come
//! from the agent's own code (collector names, crawl kinds), never from a
//! crawled root, so their number is bounded.

use std::sync::LazyLock;
use std::time::Duration;

use periscope_telemetry::Registry;
use periscope_telemetry::prometheus_client::metrics::counter::Counter;
use periscope_telemetry::prometheus_client::metrics::family::Family;
use periscope_telemetry::prometheus_client::metrics::gauge::Gauge;
use periscope_telemetry::prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

type Labels = Vec<(&'static str, String)>;

/// Every metric of the agent.
pub struct Metrics {
    crawls: Family<Labels, Counter>,
    crawl_seconds: Family<Labels, Histogram>,
    collector_seconds: Family<Labels, Histogram>,
    crawl_errors: Family<Labels, Counter>,
    sent_rows: Counter,
    sent_bytes: Counter,
    acked_batches: Counter,
    send_failures: Counter,
    pub spool_batches: Gauge,
    pub spool_evicted: Gauge,
    pub resident_bytes: Gauge,
    pub degraded: Gauge,
}

/// 1 ms to about 9 minutes.
fn seconds() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 4.0, 10))
}

pub static METRICS: LazyLock<Metrics> = LazyLock::new(|| Metrics {
    crawls: Family::default(),
    crawl_seconds: Family::new_with_constructor(seconds),
    collector_seconds: Family::new_with_constructor(seconds),
    crawl_errors: Family::default(),
    sent_rows: Counter::default(),
    sent_bytes: Counter::default(),
    acked_batches: Counter::default(),
    send_failures: Counter::default(),
    spool_batches: Gauge::default(),
    spool_evicted: Gauge::default(),
    resident_bytes: Gauge::default(),
    degraded: Gauge::default(),
});

/// Registers every agent metric into `r`.
pub fn register(r: &mut Registry) {
    let m = &*METRICS;
    r.register("periscope_agent_crawls", "Crawls sent, by kind (full, event)", m.crawls.clone());
    r.register(
        "periscope_agent_crawl_duration_seconds",
        "Wall time of a crawl from discovery to its rows being spooled and sent (or left in the spool), by kind",
        m.crawl_seconds.clone(),
    );
    r.register(
        "periscope_agent_collector_duration_seconds",
        "Wall time of one collector over one scope, by collector",
        m.collector_seconds.clone(),
    );
    r.register("periscope_agent_crawl_errors", "crawl_errors rows made, by collector", m.crawl_errors.clone());
    r.register("periscope_agent_sent_rows", "Rows spooled for the server", m.sent_rows.clone());
    r.register("periscope_agent_sent_bytes", "Bytes of encoded batches spooled for the server", m.sent_bytes.clone());
    r.register(
        "periscope_agent_acknowledged_batches",
        "Batches the server acknowledged (stored durably)",
        m.acked_batches.clone(),
    );
    r.register(
        "periscope_agent_send_failures",
        "Deliveries that failed and left batches in the spool",
        m.send_failures.clone(),
    );
    r.register(
        "periscope_agent_spool_batches",
        "Batches waiting in the spool for an acknowledgement",
        m.spool_batches.clone(),
    );
    r.register(
        "periscope_agent_spool_evicted_batches",
        "Batches evicted from a full spool since start",
        m.spool_evicted.clone(),
    );
    r.register(
        "periscope_agent_resident_memory_bytes",
        "Resident memory after the last full crawl",
        m.resident_bytes.clone(),
    );
    r.register(
        "periscope_agent_degraded",
        "1 while over the memory ceiling (optional collectors skipped), else 0",
        m.degraded.clone(),
    );
}

pub fn crawled(kind: &'static str, took: Duration) {
    let l = vec![("kind", kind.to_string())];
    METRICS.crawls.get_or_create(&l).inc();
    METRICS.crawl_seconds.get_or_create(&l).observe(took.as_secs_f64());
}

pub fn collector_ran(collector: &'static str, took: Duration) {
    METRICS.collector_seconds.get_or_create(&vec![("collector", collector.to_string())]).observe(took.as_secs_f64());
}

pub fn crawl_error(collector: &str) {
    METRICS.crawl_errors.get_or_create(&vec![("collector", collector.to_string())]).inc();
}

pub fn sent(rows: usize, bytes: usize) {
    METRICS.sent_rows.inc_by(rows as u64);
    METRICS.sent_bytes.inc_by(bytes as u64);
}

pub fn acknowledged(batches: usize) {
    METRICS.acked_batches.inc_by(batches as u64);
}

pub fn send_failed() {
    METRICS.send_failures.inc();
}
