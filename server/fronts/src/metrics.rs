//! Ingest metrics of the gRPC front, served by `periscope serve --metrics-listen`.
//! The table label is set only once a batch decoded as one of the contract's
//! tables, so an agent cannot mint label values.

use std::sync::LazyLock;

use periscope_telemetry::Registry;
use periscope_telemetry::prometheus_client::metrics::counter::Counter;
use periscope_telemetry::prometheus_client::metrics::family::Family;

type Labels = Vec<(&'static str, &'static str)>;

struct Metrics {
    rows: Family<Labels, Counter>,
    bytes: Family<Labels, Counter>,
    refused: Counter,
}

static METRICS: LazyLock<Metrics> =
    LazyLock::new(|| Metrics { rows: Family::default(), bytes: Family::default(), refused: Counter::default() });

pub fn register(r: &mut Registry) {
    r.register(
        "periscope_server_ingest_rows",
        "Rows received from agents and handed to the store, by table (resent batches it acknowledges again included)",
        METRICS.rows.clone(),
    );
    r.register(
        "periscope_server_ingest_bytes",
        "Bytes of Arrow IPC (as sent) received from agents, by table",
        METRICS.bytes.clone(),
    );
    r.register(
        "periscope_server_ingest_refused_batches",
        "Batches and streams refused before the store (authentication, contract version, malformed rows, quotas)",
        METRICS.refused.clone(),
    );
}

pub fn received(table: &'static str, rows: usize, bytes: usize) {
    let l = vec![("table", table)];
    METRICS.rows.get_or_create(&l).inc_by(rows as u64);
    METRICS.bytes.get_or_create(&l).inc_by(bytes as u64);
}

pub fn refused() {
    METRICS.refused.inc();
}
