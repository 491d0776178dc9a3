//! The stored advisory tables: Parquet files with a Delta log each, beside the
//! fleet's tables (`<data>/tables/advisories`, `<data>/tables/advisory_affected`),
//! so DuckDB, Spark and `deltalake` read them as they read the rest.
//!
//! Every import appends the records that are new or whose `modified` time is
//! newer than the stored one, stamped with the import's time: the files are
//! the history (`advisories_history`), and the current record of an id is its
//! newest `modified` (the newest import on a tie). The directory is the truth:
//! each import first brings both logs to the files present (a crash between a
//! file's rename and its commit only delays the commit).

use std::collections::HashMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};

use arrow_array::builder::{Float64Builder, ListBuilder, StringBuilder, TimestampMicrosecondBuilder};
use arrow_array::cast::AsArray;
use arrow_array::types::TimestampMicrosecondType;
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use periscope_store::delta::{DeltaLog, Meta};

pub const ADVISORIES: &str = "advisories";
pub const AFFECTED: &str = "advisory_affected";

fn ts() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into()))
}

fn list() -> DataType {
    DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)))
}

fn field(name: &str, ty: DataType, description: &str) -> Field {
    let mut f = Field::new(name, ty, name != "id" && name != "advisory_id");
    f.set_metadata([(periscope_proto::tables::DESCRIPTION_KEY.to_string(), description.to_string())].into());
    f
}

pub static ADVISORIES_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        field("id", DataType::Utf8, "Advisory id (GHSA-…, PYSEC-…, GO-…, RUSTSEC-…, DSA-…, CVE-…)."),
        field("modified", ts(), "When the advisory was last modified, as its record says."),
        field("published", ts(), "When the advisory was published."),
        field(
            "withdrawn",
            ts(),
            "When the advisory was withdrawn; null while it stands. Withdrawn advisories match nothing.",
        ),
        field("aliases", list(), "Other ids of the same vulnerability (CVE ids among them)."),
        field("summary", DataType::Utf8, "One-line summary."),
        field("details", DataType::Utf8, "Full description."),
        field(
            "severity",
            DataType::Utf8,
            "CRITICAL, HIGH, MEDIUM, LOW or NONE: from the CVSS base score, else the database's own rating.",
        ),
        field("cvss_vector", DataType::Utf8, "The CVSS vector scored (the newest CVSS version the record gives)."),
        field("cvss_score", DataType::Float64, "CVSS base score computed from cvss_vector."),
        field(
            "database_severity",
            DataType::Utf8,
            "The database's own rating, where it gives one (GitHub's, Ubuntu's).",
        ),
        field("source", DataType::Utf8, "File the record was imported from (archive:member for a zip)."),
        field("imported", ts(), "When the import that stored this version of the record ran."),
    ]))
});

pub static AFFECTED_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        field("advisory_id", DataType::Utf8, "The advisory (advisories.id)."),
        field("modified", ts(), "The advisory version's modified time: the row belongs to that version."),
        field("imported", ts(), "When the import that stored the row ran."),
        field("ecosystem", DataType::Utf8, "OSV ecosystem as published (PyPI, Debian:12, Ubuntu:22.04:LTS, ...)."),
        field(
            "ecosystem_key",
            DataType::Utf8,
            "The ecosystem as packages are matched to it; null for an ecosystem Periscope has no packages of.",
        ),
        field("package", DataType::Utf8, "Package name as published (a source package for Debian, Ubuntu and Alpine)."),
        field(
            "package_key",
            DataType::Utf8,
            "The name as its ecosystem compares names (PyPI normalized, Packagist lower case).",
        ),
        field("purl", DataType::Utf8, "Package URL, where the record gives one."),
        field("ranges", DataType::Utf8, "The affected ranges with their events, as published (OSV JSON)."),
        field("versions", list(), "The explicit list of affected versions, as published."),
        field(
            "unmatched",
            DataType::Utf8,
            "What of the entry is not matched, and why (GIT ranges, unknown ecosystem, unreadable versions); null when all is.",
        ),
    ]))
});

/// Where a table's files are.
pub fn table_dir(data: &Path, table: &str) -> PathBuf {
    data.join("tables").join(table)
}

fn description(table: &str) -> &'static str {
    if table == ADVISORIES {
        "Vulnerability advisories imported from OSV records, one row per imported version of each record."
    } else {
        "The packages and versions each imported advisory version affects."
    }
}

fn delta_type(t: &DataType) -> serde_json::Value {
    match t {
        DataType::Utf8 => "string".into(),
        DataType::Float64 => "double".into(),
        DataType::Int64 => "long".into(),
        DataType::Timestamp(..) => "timestamp".into(),
        DataType::List(_) => serde_json::json!({"type": "array", "elementType": "string", "containsNull": true}),
        other => unreachable!("no advisory column is {other}"),
    }
}

fn meta(table: &'static str) -> Meta {
    let schema = if table == ADVISORIES { &*ADVISORIES_SCHEMA } else { &*AFFECTED_SCHEMA };
    let mut fields: Vec<serde_json::Value> = schema
        .fields()
        .iter()
        .map(|f| {
            let comment = f.metadata().get(periscope_proto::tables::DESCRIPTION_KEY).cloned().unwrap_or_default();
            serde_json::json!({"name": f.name(), "type": delta_type(f.data_type()), "nullable": f.is_nullable(),
                               "metadata": {"comment": comment}})
        })
        .collect();
    fields.push(serde_json::json!({"name": periscope_store::delta::PARTITION, "type": "date", "nullable": true,
                       "metadata": {"comment": "UTC day of the import: the directory the file is in."}}));
    Meta {
        name: table,
        description: description(table),
        schema: serde_json::json!({"type": "struct", "fields": fields}).to_string(),
    }
}

/// The committed files of `table`, as its Delta log holds them.
pub fn committed(data: &Path, table: &'static str) -> Result<Vec<PathBuf>, String> {
    let dir = table_dir(data, table);
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let log = DeltaLog::open_as(&dir, meta(table))?;
    Ok(log.files().map(|rel| dir.join(rel)).collect())
}

/// The Parquet files under `dir`'s day directories (not temporary ones).
fn present(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for day in fs::read_dir(dir).into_iter().flatten().flatten() {
        if !day.file_name().to_string_lossy().starts_with("day=") {
            continue;
        }
        for f in fs::read_dir(day.path()).into_iter().flatten().flatten() {
            let name = f.file_name().to_string_lossy().into_owned();
            if name.ends_with(".parquet") && !name.starts_with('.') {
                out.push(f.path());
            }
        }
    }
    out.sort();
    out
}

/// Holds the import lock of a data directory while alive.
pub struct Writer {
    data: PathBuf,
    _lock: File,
}

impl Writer {
    /// Takes the import lock (waiting for another import to finish) and brings
    /// both logs to the files present.
    pub fn open(data: &Path) -> Result<Writer, String> {
        let tables = data.join("tables");
        fs::create_dir_all(&tables).map_err(|e| format!("{}: {e}", tables.display()))?;
        let path = tables.join(".advisories.lock");
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        lock.lock().map_err(|e| format!("{}: {e}", path.display()))?;
        let w = Writer { data: data.to_path_buf(), _lock: lock };
        for t in [AFFECTED, ADVISORIES] {
            w.sync(t)?;
        }
        Ok(w)
    }

    fn sync(&self, table: &'static str) -> Result<(), String> {
        let dir = table_dir(&self.data, table);
        let mut log = DeltaLog::open_as(&dir, meta(table))?;
        log.sync(&dir, &present(&dir), true)
    }

    /// The stored `modified` time of every id, and the newest import time.
    pub fn stored(&self) -> Result<(HashMap<String, i64>, i64), String> {
        let mut out: HashMap<String, i64> = HashMap::new();
        let mut newest = i64::MIN;
        for f in committed(&self.data, ADVISORIES)? {
            let file = File::open(&f).map_err(|e| format!("{}: {e}", f.display()))?;
            let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
                .map_err(|e| format!("{}: {e}", f.display()))?;
            let mask =
                parquet::arrow::ProjectionMask::columns(builder.parquet_schema(), ["id", "modified", "imported"]);
            for batch in builder.with_projection(mask).build().map_err(|e| format!("{}: {e}", f.display()))? {
                let batch = batch.map_err(|e| format!("{}: {e}", f.display()))?;
                let ids = batch.column_by_name("id").ok_or("no id column")?.as_string::<i32>();
                let modified = batch.column_by_name("modified").ok_or("no modified column")?;
                let modified = modified.as_primitive::<TimestampMicrosecondType>();
                let imported = batch.column_by_name("imported").ok_or("no imported column")?;
                let imported = imported.as_primitive::<TimestampMicrosecondType>();
                for i in 0..batch.num_rows() {
                    let m = modified.value(i);
                    let e = out.entry(ids.value(i).to_string()).or_insert(m);
                    *e = (*e).max(m);
                    newest = newest.max(imported.value(i));
                }
            }
        }
        Ok((out, newest))
    }

    /// Writes `advisories` and `affected` rows (same import) as one file each,
    /// named `name`, the affected rows first, and commits both.
    pub fn append(&self, stamp: i64, name: &str, advisories: RecordBatch, affected: RecordBatch) -> Result<(), String> {
        let day = chrono::DateTime::from_timestamp_micros(stamp).ok_or("import time out of range")?;
        let day = format!("day={}", day.format("%Y-%m-%d"));
        for (table, batch) in [(AFFECTED, affected), (ADVISORIES, advisories)] {
            if batch.num_rows() == 0 {
                continue;
            }
            let dir = table_dir(&self.data, table).join(&day);
            fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            let name = format!("{name}.parquet");
            let tmp = dir.join(format!(".{name}.tmp"));
            write(&tmp, &batch).map_err(|e| format!("{}: {e}", tmp.display()))?;
            fs::rename(&tmp, dir.join(&name)).map_err(|e| format!("{}: {e}", dir.display()))?;
            self.sync(table)?;
        }
        Ok(())
    }
}

fn write(path: &Path, batch: &RecordBatch) -> Result<(), Box<dyn std::error::Error>> {
    let props = parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::ZSTD(Default::default()))
        .build();
    let file = File::create(path)?;
    let mut w = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), Some(props))?;
    w.write(batch)?;
    w.into_inner()?.sync_all()?;
    Ok(())
}

/// Rows of one table being built.
pub struct Rows {
    schema: SchemaRef,
    columns: Vec<Col>,
}

enum Col {
    Text(StringBuilder),
    Time(TimestampMicrosecondBuilder),
    Float(Float64Builder),
    List(ListBuilder<StringBuilder>),
}

/// One value, for [`Rows::push`].
pub enum Val<'a> {
    Text(Option<&'a str>),
    Time(Option<i64>),
    Float(Option<f64>),
    List(&'a [String]),
}

impl Rows {
    pub fn new(schema: &SchemaRef) -> Rows {
        let columns = schema
            .fields()
            .iter()
            .map(|f| match f.data_type() {
                DataType::Utf8 => Col::Text(StringBuilder::new()),
                DataType::Float64 => Col::Float(Float64Builder::new()),
                DataType::List(_) => Col::List(ListBuilder::new(StringBuilder::new())),
                _ => Col::Time(TimestampMicrosecondBuilder::new().with_timezone("+00:00")),
            })
            .collect();
        Rows { schema: schema.clone(), columns }
    }

    /// Appends one row: a value per column, in the schema's order.
    pub fn push(&mut self, values: &[Val<'_>]) {
        assert_eq!(values.len(), self.columns.len(), "one value per column");
        for (c, v) in self.columns.iter_mut().zip(values) {
            match (c, v) {
                (Col::Text(b), Val::Text(v)) => b.append_option(*v),
                (Col::Time(b), Val::Time(v)) => b.append_option(*v),
                (Col::Float(b), Val::Float(v)) => b.append_option(*v),
                (Col::List(b), Val::List(v)) => {
                    for s in v.iter() {
                        b.values().append_value(s);
                    }
                    b.append(true);
                }
                _ => unreachable!("a value of the column's type"),
            }
        }
    }

    pub fn finish(mut self) -> RecordBatch {
        let arrays: Vec<ArrayRef> = self
            .columns
            .iter_mut()
            .map(|c| -> ArrayRef {
                match c {
                    Col::Text(b) => Arc::new(b.finish()),
                    Col::Time(b) => Arc::new(b.finish()),
                    Col::Float(b) => Arc::new(b.finish()),
                    Col::List(b) => Arc::new(b.finish()),
                }
            })
            .collect();
        RecordBatch::try_new(self.schema.clone(), arrays).expect("columns built from the schema")
    }
}
