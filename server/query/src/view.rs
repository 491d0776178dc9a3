//! The operator under every current-state view: it passes the history rows
//! that are current state and adds the `container` column ([`Mode::Own`]), or
//! turns an image's current rows into one row per live container sharing them
//! ([`Mode::Inherit`]). Each row is checked against the index
//! ([`periscope_store::current::Current`]), so a query costs what its filtered history
//! rows cost, not what the fleet's 500,000 live scopes would cost as join keys.

use std::fmt;
use std::sync::Arc;

use arrow_array::builder::{StringBuilder, TimestampMicrosecondBuilder, UInt32Builder};
use arrow_array::cast::AsArray;
use arrow_array::types::TimestampMicrosecondType;
use arrow_array::{Array, ArrayRef, BooleanArray, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, PlanProperties, SendableRecordBatchStream,
};
use futures::StreamExt;
use periscope_proto::tables::{COMMON_COLUMNS, Table, scope};

use periscope_store::current::{Current, Heir, Index, KeyFilter};

/// The output columns of `plan` named `names`, in that order, as projection
/// expressions.
pub fn columns<'a>(
    plan: &Arc<dyn ExecutionPlan>,
    names: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<(Arc<dyn PhysicalExpr>, String)>> {
    let out = plan.schema();
    names
        .into_iter()
        .map(|name| {
            let at = out.index_of(name)?;
            let c: Arc<dyn PhysicalExpr> = Arc::new(datafusion::physical_expr::expressions::Column::new(name, at));
            Ok((c, name.to_string()))
        })
        .collect()
}

/// The one child of a single-input operator `name` being rebuilt.
pub fn only_child(name: &str, mut children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
    match children.len() {
        1 => Ok(children.swap_remove(0)),
        n => Err(DataFusionError::Internal(format!("{name} has one input, given {n}"))),
    }
}

/// What [`CurrentExec`] makes of its input rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Rows a scope's own crawls carried: kept when current.
    Own,
    /// An image's rows: one copy per live container sharing them, under the container's identity.
    Inherit,
}

/// See the module docs. Input: the common columns, then any of the table's
/// own; output: the same with `container` after the common columns.
#[derive(Debug)]
pub struct CurrentExec {
    input: Arc<dyn ExecutionPlan>,
    index: Index,
    table: &'static Table,
    cutoff: i64,
    only: KeyFilter,
    mode: Mode,
    props: Arc<PlanProperties>,
}

const N: usize = COMMON_COLUMNS.len();

impl CurrentExec {
    pub fn try_new(
        input: Arc<dyn ExecutionPlan>,
        index: Index,
        table: &'static Table,
        cutoff: i64,
        only: KeyFilter,
        mode: Mode,
    ) -> Result<CurrentExec> {
        let ins = input.schema();
        let common =
            COMMON_COLUMNS.iter().enumerate().all(|(i, c)| ins.fields().get(i).is_some_and(|f| f.name() == c.name));
        if !common {
            return Err(DataFusionError::Internal(format!(
                "{} view input lacks the common columns: {ins}",
                table.name
            )));
        }
        let view = table.view_schema();
        let container = view.field_with_name("container")?.clone();
        let mut fields: Vec<Field> = ins.fields()[..N].iter().map(|f| f.as_ref().clone()).collect();
        fields.push(container);
        fields.extend(ins.fields()[N..].iter().map(|f| f.as_ref().clone()));
        let schema = Arc::new(Schema::new(fields));
        let props = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(schema),
            datafusion::physical_plan::Partitioning::UnknownPartitioning(input.output_partitioning().partition_count()),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        Ok(CurrentExec { input, index, table, cutoff, only, mode, props })
    }
}

impl DisplayAs for CurrentExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "CurrentExec: table={} mode={:?}", self.table.name, self.mode)
    }
}

impl ExecutionPlan for CurrentExec {
    fn name(&self) -> &str {
        "CurrentExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.props
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        let s = &*self;
        Ok(Arc::new(CurrentExec::try_new(
            only_child(self.name(), children)?,
            s.index.clone(),
            s.table,
            s.cutoff,
            s.only.clone(),
            s.mode,
        )?))
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let input = self.input.execute(partition, context.clone())?;
        let schema = self.schema();
        let mut current = Current::new(self.index.clone(), self.table, self.cutoff, self.only.clone());
        let out = schema.clone();
        let stream: SendableRecordBatchStream = match self.mode {
            Mode::Own => Box::pin(RecordBatchStreamAdapter::new(
                schema,
                input
                    .map(move |b| own(&mut current, &out, &b?))
                    .filter(|b| futures::future::ready(b.as_ref().map_or(true, |b| b.num_rows() > 0))),
            )),
            Mode::Inherit => {
                let size = context.session_config().batch_size().max(1);
                Box::pin(RecordBatchStreamAdapter::new(
                    schema,
                    input.flat_map(move |b| {
                        let chunks: Box<dyn Iterator<Item = Result<RecordBatch>> + Send> = match b {
                            Ok(b) => match Expand::new(&mut current, out.clone(), b, size) {
                                Ok(e) => Box::new(e),
                                Err(e) => Box::new(std::iter::once(Err(e))),
                            },
                            Err(e) => Box::new(std::iter::once(Err(e))),
                        };
                        futures::stream::iter(chunks)
                    }),
                ))
            }
        };
        Ok(stream)
    }
}

/// The common columns of an input batch, as UTF-8 strings and microseconds.
struct Common {
    host: StringArray,
    scope: StringArray,
    scope_id: StringArray,
    time: arrow_array::PrimitiveArray<TimestampMicrosecondType>,
}

impl Common {
    fn of(b: &RecordBatch) -> Result<Common> {
        let s = |i: usize| -> Result<StringArray> {
            let c = b.column(i);
            Ok(match c.data_type() {
                DataType::Utf8 => c.as_string::<i32>().clone(),
                _ => arrow_cast::cast(c, &DataType::Utf8)?.as_string::<i32>().clone(),
            })
        };
        let time = b.column(3).as_primitive_opt::<TimestampMicrosecondType>().cloned().ok_or_else(|| {
            DataFusionError::Internal(format!("crawl_time is {}, not microseconds", b.column(3).data_type()))
        })?;
        Ok(Common { host: s(0)?, scope: s(1)?, scope_id: s(2)?, time })
    }
}

/// The input rows that are current, with their container names.
fn own(current: &mut Current, schema: &SchemaRef, b: &RecordBatch) -> Result<RecordBatch> {
    let c = Common::of(b)?;
    let mut keep = arrow_array::builder::BooleanBuilder::with_capacity(b.num_rows());
    let mut names = StringBuilder::new();
    for i in 0..b.num_rows() {
        let now = current.own(c.host.value(i), c.scope.value(i), c.scope_id.value(i), c.time.value(i));
        keep.append_value(now.is_some());
        if let Some(name) = now {
            names.append_option(name.as_deref());
        }
    }
    let keep: BooleanArray = keep.finish();
    let kept = arrow_select::filter::filter_record_batch(b, &keep)?;
    let mut cols: Vec<ArrayRef> = kept.columns()[..N].to_vec();
    cols.push(Arc::new(names.finish()));
    cols.extend(kept.columns()[N..].iter().cloned());
    Ok(RecordBatch::try_new(schema.clone(), cols)?)
}

/// Output batches of [`Mode::Inherit`] for one input batch, made as they are pulled.
struct Expand {
    schema: SchemaRef,
    batch: RecordBatch,
    tz: Option<Arc<str>>,
    /// Input rows with their heirs, and where the next batch starts: (row, heir).
    rows: Vec<(u32, Arc<[Heir]>)>,
    at: (usize, usize),
    size: usize,
}

impl Expand {
    fn new(current: &mut Current, schema: SchemaRef, batch: RecordBatch, size: usize) -> Result<Expand> {
        let c = Common::of(&batch)?;
        let images: Vec<u32> =
            (0..batch.num_rows() as u32).filter(|&i| c.scope.value(i as usize) == scope::IMAGE).collect();
        let asked: Vec<(&str, &str, i64)> = images
            .iter()
            .map(|&i| (c.host.value(i as usize), c.scope_id.value(i as usize), c.time.value(i as usize)))
            .collect();
        let heirs = current.heirs_of(&asked);
        let rows: Vec<(u32, Arc<[Heir]>)> = images.into_iter().zip(heirs).filter_map(|(i, h)| Some((i, h?))).collect();
        let tz = match batch.schema().field(3).data_type() {
            DataType::Timestamp(_, tz) => tz.clone(),
            _ => None,
        };
        Ok(Expand { schema, batch, tz, rows, at: (0, 0), size })
    }
}

impl Iterator for Expand {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Result<RecordBatch>> {
        if self.at.0 >= self.rows.len() {
            return None;
        }
        let mut take = UInt32Builder::with_capacity(self.size);
        let mut host = StringBuilder::with_capacity(self.size, self.size * 12);
        let mut kind = StringBuilder::with_capacity(self.size, self.size * 9);
        let mut id = StringBuilder::with_capacity(self.size, self.size * 64);
        let mut time = TimestampMicrosecondBuilder::with_capacity(self.size);
        let mut name = StringBuilder::with_capacity(self.size, self.size * 16);
        let mut n = 0;
        while n < self.size && self.at.0 < self.rows.len() {
            let (row, heirs) = &self.rows[self.at.0];
            let end = heirs.len().min(self.at.1 + self.size - n);
            for h in &heirs[self.at.1..end] {
                take.append_value(*row);
                host.append_value(&h.host);
                kind.append_value(scope::CONTAINER);
                id.append_value(&h.scope_id);
                time.append_value(h.crawl_time);
                name.append_option(h.container.as_deref());
            }
            n += end - self.at.1;
            self.at = if end == heirs.len() { (self.at.0 + 1, 0) } else { (self.at.0, end) };
        }
        let take = take.finish();
        let mut cols: Vec<ArrayRef> = vec![
            Arc::new(host.finish()),
            Arc::new(kind.finish()),
            Arc::new(id.finish()),
            Arc::new(time.finish().with_timezone_opt(self.tz.clone())),
            Arc::new(name.finish()),
        ];
        for c in &self.batch.columns()[N..] {
            match arrow_select::take::take(c, &take, None) {
                Ok(c) => cols.push(c),
                Err(e) => return Some(Err(e.into())),
            }
        }
        // The common columns are rebuilt as the history's types (UTF-8), cast back where the input differs.
        let fields = self.schema.fields();
        for (i, f) in fields.iter().enumerate().take(N) {
            if cols[i].data_type() != f.data_type() {
                match arrow_cast::cast(&cols[i], f.data_type()) {
                    Ok(c) => cols[i] = c,
                    Err(e) => return Some(Err(e.into())),
                }
            }
        }
        Some(RecordBatch::try_new(self.schema.clone(), cols).map_err(Into::into))
    }
}
