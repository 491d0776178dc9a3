//! One collector per table. Each reads a scope through its [`Root`] and fills
//! rows into a [`Sink`]; problems become `crawl_errors` rows, never aborts.
//! Host, container and image are all just roots.

pub mod accounts;
pub mod apk;
pub mod dpkg;
pub mod os;
pub mod packages;
pub mod rpm;

use periscope_proto::tables::{self, Table};

use crate::encode::{Common, TableBuilder, Value};
use crate::rootfs::Root;

/// What one crawl reads: a root and the identity stamped on its rows.
pub struct Scope {
    pub common: Common,
    pub root: Root,
}

/// Rows of every table produced while crawling one scope.
pub struct Sink {
    common: Common,
    builders: Vec<TableBuilder>,
    errors: usize,
}

impl Sink {
    pub fn new(common: Common) -> Self {
        Sink { common, builders: Vec::new(), errors: 0 }
    }

    /// Appends a row to `table`.
    pub fn row(&mut self, table: &'static Table, values: &[(&str, Value<'_>)]) {
        let i = match self.builders.iter().position(|b| b.table().name == table.name) {
            Some(i) => i,
            None => {
                self.builders.push(TableBuilder::new(table));
                self.builders.len() - 1
            }
        };
        self.builders[i].push(&self.common, values);
    }

    /// Records a problem as a `crawl_errors` row.
    pub fn error(&mut self, collector: &str, path: Option<&str>, message: &str) {
        tracing::warn!(collector, path, scope_id = %self.common.scope_id, "{message}");
        self.errors += 1;
        self.row(
            &tables::CRAWL_ERRORS,
            &[("collector", collector.into()), ("path", path.into()), ("message", message.into())],
        );
    }

    pub fn errors(&self) -> usize {
        self.errors
    }

    pub fn common(&self) -> &Common {
        &self.common
    }

    /// Finishes every table that received rows.
    pub fn finish(mut self) -> Vec<arrow_array::RecordBatch> {
        self.builders.iter_mut().filter(|b| !b.is_empty()).map(TableBuilder::finish).collect()
    }
}

/// A collector: fills rows for its table(s) from one scope.
pub type CollectFn = fn(&Scope, &mut Sink);

/// Every collector, in the order they run.
pub const COLLECTORS: &[(&str, CollectFn)] = &[("os", os::collect), ("packages", packages::collect)];
