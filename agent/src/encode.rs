//! Builds Arrow record batches straight from the table declarations in
//! `periscope-proto`: collectors name columns, this fills the builders.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::builder::{BooleanBuilder, Int64Builder, StringBuilder, TimestampMicrosecondBuilder};
use arrow_array::{ArrayRef, RecordBatch};
use periscope_proto::tables::{COMMON_COLUMNS, ColumnType, Table};

/// One cell value as a collector hands it over.
#[derive(Debug, Clone, Copy)]
pub enum Value<'a> {
    Str(&'a str),
    Int(i64),
    Bool(bool),
    Null,
}

impl<'a> From<&'a str> for Value<'a> {
    fn from(s: &'a str) -> Self {
        Value::Str(s)
    }
}
impl<'a> From<&'a String> for Value<'a> {
    fn from(s: &'a String) -> Self {
        Value::Str(s)
    }
}
impl<'a, T: Into<Value<'a>>> From<Option<T>> for Value<'a> {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}
impl From<i64> for Value<'_> {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}
impl From<bool> for Value<'_> {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}

/// The values of the common columns for every row of one scope's crawl.
#[derive(Debug, Clone)]
pub struct Common {
    pub host: String,
    pub scope: String,
    pub scope_id: String,
    /// Microseconds since the Unix epoch.
    pub crawl_time_us: i64,
}

enum Col {
    Utf8(StringBuilder),
    Int64(Int64Builder),
    Bool(BooleanBuilder),
    Ts(TimestampMicrosecondBuilder),
}

impl Col {
    fn new(ty: ColumnType) -> Col {
        match ty {
            ColumnType::Utf8 => Col::Utf8(StringBuilder::new()),
            ColumnType::Int64 => Col::Int64(Int64Builder::new()),
            ColumnType::Boolean => Col::Bool(BooleanBuilder::new()),
            ColumnType::Timestamp => Col::Ts(TimestampMicrosecondBuilder::new().with_timezone("+00:00")),
        }
    }

    fn push(&mut self, v: Value<'_>, table: &str, column: &str) {
        match (self, v) {
            (Col::Utf8(b), Value::Str(s)) => b.append_value(s),
            (Col::Utf8(b), Value::Null) => b.append_null(),
            (Col::Int64(b), Value::Int(i)) => b.append_value(i),
            (Col::Int64(b), Value::Null) => b.append_null(),
            (Col::Bool(b), Value::Bool(x)) => b.append_value(x),
            (Col::Bool(b), Value::Null) => b.append_null(),
            (Col::Ts(b), Value::Int(i)) => b.append_value(i),
            (Col::Ts(b), Value::Null) => b.append_null(),
            (_, v) => panic!("internal error: {table}.{column} given a value of the wrong type: {v:?}"),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Col::Utf8(b) => Arc::new(b.finish()),
            Col::Int64(b) => Arc::new(b.finish()),
            Col::Bool(b) => Arc::new(b.finish()),
            Col::Ts(b) => Arc::new(b.finish()),
        }
    }
}

/// Accumulates rows of one declared table.
pub struct TableBuilder {
    table: &'static Table,
    cols: Vec<Col>,
    index: HashMap<&'static str, usize>,
    rows: usize,
    /// String bytes appended since the last [`TableBuilder::finish`].
    bytes: usize,
    /// Per column, whether the row being pushed names it.
    scratch: Vec<bool>,
    /// Per value of the row being pushed, its column.
    positions: Vec<usize>,
}

impl TableBuilder {
    pub fn new(table: &'static Table) -> Self {
        let cols: Vec<Col> = table.all_columns().map(|c| Col::new(c.ty)).collect();
        let index = table.all_columns().enumerate().map(|(i, c)| (c.name, i)).collect();
        let n = cols.len();
        TableBuilder { table, cols, index, rows: 0, bytes: 0, scratch: vec![false; n], positions: Vec::new() }
    }

    pub fn table(&self) -> &'static Table {
        self.table
    }

    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// String bytes held since the last [`TableBuilder::finish`] (the size
    /// that Arrow's 32-bit string offsets must stay under).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Appends one row. Columns not named are null. Naming an undeclared column
    /// or the wrong type is a bug in the collector and panics with its name,
    /// before anything is appended: a caught panic never leaves a half row.
    pub fn push(&mut self, common: &Common, values: &[(&str, Value<'_>)]) {
        let t = self.table.name;
        self.scratch.iter_mut().for_each(|s| *s = false);
        self.positions.clear();
        for (name, v) in values {
            let Some(&i) = self.index.get(name) else {
                panic!("internal error: table {t} has no column {name}");
            };
            assert!(i >= COMMON_COLUMNS.len() && !self.scratch[i], "internal error: {t}.{name} set twice in one row");
            let fits = matches!(
                (&self.cols[i], v),
                (_, Value::Null)
                    | (Col::Utf8(_), Value::Str(_))
                    | (Col::Int64(_) | Col::Ts(_), Value::Int(_))
                    | (Col::Bool(_), Value::Bool(_))
            );
            assert!(fits, "internal error: {t}.{name} given a value of the wrong type: {v:?}");
            self.scratch[i] = true;
            self.positions.push(i);
        }
        self.cols[0].push(Value::Str(&common.host), t, "host");
        self.cols[1].push(Value::Str(&common.scope), t, "scope");
        self.cols[2].push(Value::Str(&common.scope_id), t, "scope_id");
        self.cols[3].push(Value::Int(common.crawl_time_us), t, "crawl_time");
        self.bytes += common.host.len() + common.scope.len() + common.scope_id.len();
        for (&i, (name, v)) in self.positions.iter().zip(values) {
            if let Value::Str(s) = v {
                self.bytes += s.len();
            }
            self.cols[i].push(*v, t, name);
        }
        for i in COMMON_COLUMNS.len()..self.cols.len() {
            if !self.scratch[i] {
                self.cols[i].push(Value::Null, t, "");
            }
        }
        self.rows += 1;
    }

    /// Takes the rows so far as one record batch, leaving the builder empty.
    pub fn finish(&mut self) -> RecordBatch {
        let arrays: Vec<ArrayRef> = self.cols.iter_mut().map(Col::finish).collect();
        self.rows = 0;
        self.bytes = 0;
        RecordBatch::try_new(self.table.schema(), arrays)
            .unwrap_or_else(|e| panic!("internal error: batch for {} does not match its schema: {e}", self.table.name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::cast::AsArray;
    use periscope_proto::tables::PACKAGES;

    #[test]
    fn unnamed_columns_are_null_and_common_columns_filled() {
        let common = Common { host: "h".into(), scope: "host".into(), scope_id: "id".into(), crawl_time_us: 7 };
        let mut b = TableBuilder::new(&PACKAGES);
        b.push(&common, &[("name", "bash".into()), ("installed_size", 1024i64.into())]);
        b.push(&common, &[("name", "zlib1g".into()), ("version", Value::Null)]);
        let batch = b.finish();
        assert_eq!(batch.num_rows(), 2);
        assert_eq!(batch.column_by_name("host").unwrap().as_string::<i32>().value(1), "h");
        assert_eq!(batch.column_by_name("name").unwrap().as_string::<i32>().value(0), "bash");
        assert!(batch.column_by_name("version").unwrap().is_null(0));
        assert!(batch.column_by_name("installed_size").unwrap().is_null(1));
        assert!(b.is_empty());
    }

    #[test]
    #[should_panic(expected = "table packages has no column nmae")]
    fn a_misspelt_column_is_a_loud_bug() {
        let common = Common { host: "h".into(), scope: "host".into(), scope_id: "id".into(), crawl_time_us: 0 };
        TableBuilder::new(&PACKAGES).push(&common, &[("nmae", "bash".into())]);
    }
}
