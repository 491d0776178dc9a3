//! What the store takes from an agent: a batch's wire bytes decoded under
//! the declared table ([`decode_batch`], [`conform`]), its rows checked
//! before they are logged ([`check_rows`]), and the server's receipt time
//! stamped on crawls ([`stamp_received`]). Knows the table declarations,
//! nothing of how rows are stored.

use std::sync::Arc;
use std::time::Duration;

use arrow_array::RecordBatch;
use periscope_proto::tables::Table;

/// Largest Arrow IPC stream one compressed batch may inflate to (the agent
/// coalesces a crawl's rows of a table into one batch, which for a large
/// host's first crawl can be hundreds of MB).
pub const MAX_INFLATED_BYTES: usize = 1 << 30;

/// Longest key the index keeps (a host, scope id, container or image id);
/// the store refuses rows with longer keys, and listings skip longer ids.
pub const MAX_KEY_BYTES: usize = 1024;

/// Longest agent id the store records with a batch (agents send their host
/// name); the ingest front refuses longer ones.
pub const MAX_AGENT_ID: usize = 1024;

/// Decodes an agent batch's wire bytes and checks them against the declared
/// table; the rows come back under the declared schema (with its column
/// descriptions, which the wire leaves out).
pub fn decode_batch(table: &str, zstd: bool, ipc: &[u8]) -> Result<(&'static Table, Vec<RecordBatch>), String> {
    let table = periscope_proto::tables::table(table).ok_or_else(|| format!("unknown table {table:?}"))?;
    let (schema, batches) = periscope_proto::ipc::decode_wire(ipc, zstd, MAX_INFLATED_BYTES)
        .map_err(|e| format!("{}: bad Arrow IPC: {e}", table.name))?;
    if !table.matches(&schema) {
        // Only a schema that conforms: a table's older form, without columns added since.
        conform(table, &arrow_array::RecordBatch::new_empty(schema.clone())).map_err(|_| {
            table.check(&schema).err().unwrap_or_else(|| format!("table {}: schema mismatch", table.name))
        })?;
    }
    let batches = batches.iter().map(|x| conform(table, x)).collect::<Result<Vec<_>, _>>()?;
    Ok((table, batches))
}

/// `b` under `table`'s declared schema: its columns taken by name, those it
/// lacks (columns added to the table since it was written: `crawls.received`)
/// null. A column of another type, or an undeclared one, is an error.
pub fn conform(table: &Table, b: &RecordBatch) -> Result<RecordBatch, String> {
    let want = table.schema();
    let have = b.schema();
    if let Some(f) = have.fields().iter().find(|f| want.field_with_name(f.name()).is_err()) {
        return Err(format!("table {}: no column {:?}", table.name, f.name()));
    }
    let mut cols = Vec::with_capacity(want.fields().len());
    for f in want.fields() {
        match have.index_of(f.name()) {
            Ok(i) if have.field(i).data_type() == f.data_type() => cols.push(b.column(i).clone()),
            Ok(i) => {
                return Err(format!(
                    "table {}: column {} is {}, declared {}",
                    table.name,
                    f.name(),
                    have.field(i).data_type(),
                    f.data_type()
                ));
            }
            Err(_) if f.is_nullable() => cols.push(arrow_array::new_null_array(f.data_type(), b.num_rows())),
            Err(_) => return Err(format!("table {}: no column {}", table.name, f.name())),
        }
    }
    RecordBatch::try_new(want, cols).map_err(|e| e.to_string())
}

/// How far ahead of the server's clock an agent may date a crawl. Rows dated
/// later are refused: `crawl_time` decides which day partition rows go to and
/// which crawl of a scope is current, so a date far ahead could name a
/// partition no date can, or pin its host's state. Spooled rows sent late are
/// dated in the past, so only the agent clock's skew counts against this.
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(600);

/// How far back an agent may date a crawl: rows older than this are
/// refused, so no agent can make the store write a partition for every day
/// since 1970 (a spool that old holds nothing current anyway).
pub const MAX_CRAWL_AGE: Duration = Duration::from_secs(90 * 86_400);

/// Refuses rows the store cannot file or must not trust, before they are
/// logged: a `crawl_time` that is null, more than [`MAX_CRAWL_AGE`] old, or
/// more than [`MAX_CLOCK_SKEW`] ahead of `now_us` (the server's clock); a
/// scope that is not host, container or image; a key (host, scope id) longer
/// than [`MAX_KEY_BYTES`].
pub fn check_rows(table: &Table, batches: &[RecordBatch], now_us: i64) -> Result<(), String> {
    use arrow_array::Array;
    use arrow_array::cast::AsArray;
    use periscope_proto::tables::scope;
    let latest = now_us.saturating_add(MAX_CLOCK_SKEW.as_micros() as i64);
    let earliest = now_us.saturating_sub(MAX_CRAWL_AGE.as_micros() as i64).max(0);
    let max_key = MAX_KEY_BYTES;
    for b in batches {
        for (i, name) in [(0, "host"), (2, "scope_id")] {
            let c = b.column(i).as_string::<i32>();
            if c.null_count() > 0 {
                return Err(format!("{}: a row has no {name}", table.name));
            }
            if let Some(v) = c.iter().flatten().find(|v| v.len() > max_key) {
                return Err(format!("{}: a {name} of {} bytes, more than {max_key}", table.name, v.len()));
            }
        }
        let scopes = b.column(1).as_string::<i32>();
        if let Some(bad) = scopes.iter().find(|v| !matches!(*v, Some(scope::HOST | scope::CONTAINER | scope::IMAGE))) {
            let shown: String = bad.unwrap_or("null").chars().take(40).collect();
            return Err(format!("{}: scope {shown:?} is not host, container or image", table.name));
        }
        let t = b.column(3).as_primitive::<arrow_array::types::TimestampMicrosecondType>();
        if t.null_count() > 0 {
            return Err(format!("{}: a row has no crawl_time", table.name));
        }
        let (min, max) = t.values().iter().fold((i64::MAX, i64::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        if b.num_rows() == 0 {
            continue;
        }
        if min < earliest {
            return Err(format!(
                "{}: crawl_time {} is more than {} days before the server's clock ({}); fix the agent host's clock (NTP)",
                table.name,
                show_time(min),
                MAX_CRAWL_AGE.as_secs() / 86_400,
                show_time(now_us)
            ));
        }
        if max > latest {
            return Err(format!(
                "{}: crawl_time {} is more than {} s ahead of the server's clock ({}); fix the agent host's clock (NTP)",
                table.name,
                show_time(max),
                MAX_CLOCK_SKEW.as_secs(),
                show_time(now_us)
            ));
        }
    }
    Ok(())
}

/// A `crawls` batch with its `received` column set to `now_us` on every
/// row, whatever the agent put there.
pub fn stamp_received(b: &RecordBatch, now_us: i64) -> Result<RecordBatch, String> {
    let schema = b.schema();
    let i = schema.index_of("received").map_err(|e| format!("crawls: {e}"))?;
    let field = schema.field(i);
    let stamp = arrow_array::TimestampMicrosecondArray::from(vec![now_us; b.num_rows()]);
    let stamp = match field.data_type() {
        arrow_schema::DataType::Timestamp(_, tz) => stamp.with_timezone_opt(tz.clone()),
        other => return Err(format!("crawls.received is {other}, not a timestamp")),
    };
    let mut cols = b.columns().to_vec();
    cols[i] = Arc::new(stamp);
    RecordBatch::try_new(schema, cols).map_err(|e| format!("crawls: {e}"))
}

fn show_time(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us).map(|d| d.to_rfc3339()).unwrap_or_else(|| format!("{us} µs"))
}
