//! `--print`: rows as JSON lines, one object per row, with a `table` key.

use std::io::Write;

use arrow_array::RecordBatch;
use arrow_json::writer::{JsonArray, WriterBuilder};

use crate::crawl::table_of;

pub fn print_json_lines(batches: &[RecordBatch], out: &mut impl Write) -> anyhow::Result<()> {
    for b in batches {
        print_batch(b, out)?;
    }
    out.flush()?;
    Ok(())
}

/// Every crawl's rows, read back one batch at a time (see [`crate::rows::Rows`]).
pub fn print_crawls(crawls: &[crate::crawl::Crawl], out: &mut impl Write) -> anyhow::Result<()> {
    for c in crawls {
        for b in c.batches.iter() {
            print_batch(&b?, out)?;
        }
    }
    out.flush()?;
    Ok(())
}

/// Rows made JSON at a time: a whole batch (up to
/// [`crate::collectors::BATCH_ROWS`] rows) as JSON values cost 100 MB of heap…
const PRINT_ROWS: usize = 1024;
/// …and of long rows, fewer: about this many bytes of the batch at a time
/// (a thousand rows of 15 KB paths, or 61 KB of escaped 0xff names, cost
/// hundreds of MB as JSON values).
const PRINT_BYTES: usize = 1 << 20;

fn print_batch(b: &RecordBatch, out: &mut impl Write) -> anyhow::Result<()> {
    let table = table_of(b).name;
    let mut buf = Vec::new();
    let row_bytes = b.get_array_memory_size() / b.num_rows().max(1);
    let step = (PRINT_BYTES / row_bytes.max(1)).clamp(1, PRINT_ROWS);
    for at in (0..b.num_rows()).step_by(step) {
        let part = b.slice(at, step.min(b.num_rows() - at));
        buf.clear();
        let mut w = WriterBuilder::new().with_explicit_nulls(true).build::<_, JsonArray>(&mut buf);
        w.write(&part)?;
        w.finish()?;
        drop(w);
        let rows: Vec<serde_json::Map<String, serde_json::Value>> = serde_json::from_slice(&buf)?;
        for row in rows {
            let mut obj = serde_json::Map::with_capacity(row.len() + 1);
            obj.insert("table".into(), table.into());
            obj.extend(row);
            serde_json::to_writer(&mut *out, &obj)?;
            out.write_all(b"\n")?;
        }
    }
    Ok(())
}
