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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        let b = crate::testutil::crawl_error_batch(2);
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
