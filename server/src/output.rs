//! Formats query results for people and pipes: aligned table, CSV or JSON lines.

use std::io::Write;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned table with a header row.
    Table,
    /// RFC 4180 CSV with a header row.
    Csv,
    /// One JSON object per row (JSON lines).
    Json,
}

pub fn write(format: Format, schema: &SchemaRef, batches: &[RecordBatch], out: &mut impl Write) -> anyhow::Result<()> {
    match format {
        Format::Table => {
            let t = arrow_cast::pretty::pretty_format_batches_with_schema(schema.clone(), batches)?;
            writeln!(out, "{t}")?;
            let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
            writeln!(out, "({rows} row{})", if rows == 1 { "" } else { "s" })?;
        }
        Format::Csv => {
            let mut w = arrow_csv::WriterBuilder::new().with_header(true).build(&mut *out);
            if batches.is_empty() {
                w.write(&RecordBatch::new_empty(schema.clone()))?;
            }
            for b in batches {
                w.write(b)?;
            }
        }
        Format::Json => {
            let mut w = arrow_json::LineDelimitedWriter::new(&mut *out);
            for b in batches {
                w.write(b)?;
            }
            w.finish()?;
        }
    }
    out.flush()?;
    Ok(())
}

/// What a long query against a server shows on a terminal while it runs:
/// rows received so far and the time taken, from one second on (a quick query
/// shows nothing), on stderr, and only when stderr is a terminal.
pub struct Progress {
    bar: indicatif::ProgressBar,
    started: std::time::Instant,
}

/// Quiet time before progress shows.
const PROGRESS_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

impl Progress {
    pub fn start() -> Progress {
        let bar = indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::hidden());
        let style = indicatif::ProgressStyle::with_template("{spinner} {elapsed} {human_pos} rows received")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner());
        bar.set_style(style);
        let shown = bar.clone();
        // Shown only if the query is still running after PROGRESS_AFTER; ticks keep the spinner and clock going.
        tokio::spawn(async move {
            tokio::time::sleep(PROGRESS_AFTER).await;
            if !shown.is_finished() {
                shown.set_draw_target(indicatif::ProgressDrawTarget::stderr());
                shown.enable_steady_tick(std::time::Duration::from_millis(100));
            }
        });
        Progress { bar, started: std::time::Instant::now() }
    }

    pub fn rows(&self, rows: u64) {
        self.bar.set_position(rows);
    }

    /// Clears the bar; a query that showed progress leaves a summary line.
    pub fn finish(self) {
        let shown = !self.bar.is_hidden();
        let rows = self.bar.position();
        self.bar.finish_and_clear();
        if shown {
            eprintln!("periscope: {rows} rows received in {:.1} s", self.started.elapsed().as_secs_f64());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        let b = periscope_store::testutil::crawl_error_batch(2);
        let s = b.schema();
        let mut t = Vec::new();
        write(Format::Table, &s, &[b.clone()], &mut t).unwrap();
        let t = String::from_utf8(t).unwrap();
        assert!(t.contains("| host") && t.contains("(2 rows)"), "{t}");
        let mut c = Vec::new();
        write(Format::Csv, &s, &[b.clone()], &mut c).unwrap();
        let c = String::from_utf8(c).unwrap();
        assert_eq!(c.lines().count(), 3, "{c}");
        assert!(c.starts_with("host,scope,scope_id,crawl_time,collector,path,message"), "{c}");
        let mut j = Vec::new();
        write(Format::Json, &s, &[b], &mut j).unwrap();
        let first: serde_json::Value =
            serde_json::from_str(String::from_utf8(j).unwrap().lines().next().unwrap()).unwrap();
        assert_eq!(first["collector"], "packages");
        let mut e = Vec::new();
        write(Format::Csv, &s, &[], &mut e).unwrap();
        assert_eq!(String::from_utf8(e).unwrap().lines().count(), 1);
    }
}
