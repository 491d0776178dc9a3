//! Running SQL over a data directory, locally or on behalf of a remote client.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use datafusion::error::DataFusionError;
use datafusion::execution::context::SQLOptions;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::{MemoryLimit, MemoryPool, MemoryReservation};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::prelude::SessionContext;
use futures::StreamExt;
use periscope_proto::ipc;
use periscope_proto::v1::query_client::QueryClient;
use periscope_proto::v1::{SbomRequest, SqlRequest};

use crate::catalog;
use periscope_store::store::{Snapshot, Store};

/// Who is asking: remote users may only read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    ReadOnly,
    Local,
}

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("{0}")]
    Store(String),
    #[error("refused: {0}")]
    Limit(String),
    #[error("{0}")]
    Sql(#[from] datafusion::error::DataFusionError),
    #[error("cannot reach server at {url}: {message}")]
    Unreachable { url: String, message: String },
    #[error("server at {url}: {message}")]
    Server { url: String, message: String },
    #[error("bad result from server at {url}: {message}")]
    Decode { url: String, message: String },
    #[error("the query failed inside the engine ({0}); nothing of it was kept, and the server goes on")]
    Failed(String),
}

/// Runs `work`, turning a panic inside it into [`QueryError::Failed`].
/// DataFusion resumes a panic of any of a plan's tasks in the task polling
/// the plan's stream; unguarded, that task died, its channel closed, and the
/// gRPC front sent the client a successful answer with no rows
/// (`string_agg` of a constant past 2 GiB panicked on an Arrow offset
/// overflow). Every front polls its plans through this.
pub async fn unpanicked<T>(work: impl std::future::Future<Output = T>) -> Result<T, QueryError> {
    use futures::FutureExt;
    std::panic::AssertUnwindSafe(work).catch_unwind().await.map_err(|panic| {
        let why = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".into());
        QueryError::Failed(why)
    })
}

/// The sandbox every remote query runs in: a memory pool (no spilling to
/// disk) that also caps the result, and a time limit after which the query is
/// cancelled. The pools of all remote queries draw on one server-wide budget,
/// `shared`, so however many clients connect, SQL holds at most that much.
#[derive(Debug, Clone)]
pub struct Limits {
    pub memory_bytes: usize,
    pub timeout: Duration,
    pub shared: Option<Arc<SqlMemory>>,
    /// The hosts the user may read (None: all of them).
    pub scope: Option<Arc<crate::scope::ReadScope>>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { memory_bytes: 1 << 30, timeout: Duration::from_secs(60), shared: None, scope: None }
    }
}

impl Limits {
    /// No limits: the local CLI over a data directory, the user's own process.
    pub fn none() -> Limits {
        Limits { memory_bytes: usize::MAX, timeout: Duration::from_secs(u32::MAX as u64), shared: None, scope: None }
    }

    /// These limits for a user who may read only `scope` (None: everything).
    pub fn scoped(&self, scope: Option<Arc<crate::scope::ReadScope>>) -> Limits {
        Limits { scope, ..self.clone() }
    }

    /// These limits, drawing on a server-wide budget of `bytes` for all queries at once.
    pub fn sharing(self, bytes: usize) -> Limits {
        // Pools draw on `bytes`; what queries hold in all, outside their pools too, on twice that.
        crate::account::set_total_limit(bytes.saturating_mul(2));
        Limits { shared: Some(Arc::new(SqlMemory::new(bytes))), ..self }
    }

    pub fn runtime(&self) -> Result<Option<Arc<RuntimeEnv>>, QueryError> {
        if self.memory_bytes == usize::MAX {
            return Ok(None);
        }
        // On a query's own thread: what it holds outside the pool counts too.
        crate::account::start_query(self.memory_bytes.saturating_mul(2));
        let pool = QueryPool {
            limit: self.memory_bytes,
            used: AtomicUsize::new(0),
            shared: self.shared.clone(),
            refused: std::sync::Mutex::new(None),
        };
        let rt = RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::new(pool))
            .with_disk_manager_builder(DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled))
            .with_cache_manager(catalog::cache_config())
            .build_arc()?;
        Ok(Some(rt))
    }
}

/// The memory all remote queries may hold at once (`--sql-memory-bytes`).
#[derive(Debug)]
pub struct SqlMemory {
    limit: usize,
    used: AtomicUsize,
}

impl SqlMemory {
    pub fn new(limit: usize) -> SqlMemory {
        SqlMemory { limit, used: AtomicUsize::new(0) }
    }

    /// Bytes held by the queries running now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }
}

/// One query's (or Postgres session's) pool: at most `limit` bytes, each of
/// them also taken from the server-wide budget when there is one.
#[derive(Debug)]
struct QueryPool {
    limit: usize,
    used: AtomicUsize,
    shared: Option<Arc<SqlMemory>>,
    /// Why memory was last refused: operators that cannot spill report
    /// their own error, which does not say which limit it was.
    refused: std::sync::Mutex<Option<String>>,
}

impl QueryPool {
    fn refuse(&self, why: String) -> DataFusionError {
        *self.refused.lock().unwrap_or_else(|e| e.into_inner()) = Some(why.clone());
        DataFusionError::ResourcesExhausted(why)
    }
}

impl std::fmt::Display for QueryPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "query pool of {} bytes", self.limit)
    }
}

/// Adds `n` to `used` unless that passes `limit`; on refusal, what was in use.
fn take(used: &AtomicUsize, limit: usize, n: usize) -> Result<(), usize> {
    used.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| u.checked_add(n).filter(|&x| x <= limit)).map(drop)
}

impl MemoryPool for QueryPool {
    fn name(&self) -> &str {
        "periscope-query"
    }

    fn grow(&self, _: &MemoryReservation, additional: usize) {
        self.used.fetch_add(additional, Ordering::Relaxed);
        if let Some(s) = &self.shared {
            s.used.fetch_add(additional, Ordering::Relaxed);
        }
    }

    fn shrink(&self, _: &MemoryReservation, shrink: usize) {
        self.used.fetch_sub(shrink, Ordering::Relaxed);
        if let Some(s) = &self.shared {
            s.used.fetch_sub(shrink, Ordering::Relaxed);
        }
    }

    fn try_grow(&self, r: &MemoryReservation, additional: usize) -> datafusion::error::Result<()> {
        let consumer = r.consumer().name();
        if let Some(why) = crate::account::over() {
            return Err(self.refuse(why));
        }
        if let Err(used) = take(&self.used, self.limit, additional) {
            return Err(self.refuse(format!(
                "query needs more memory than a query may use ({} bytes, --query-memory-bytes): \
                 {consumer} asked for {additional} more with {used} in use",
                self.limit
            )));
        }
        if let Some(s) = &self.shared
            && let Err(used) = take(&s.used, s.limit, additional)
        {
            self.used.fetch_sub(additional, Ordering::Relaxed);
            return Err(self.refuse(format!(
                "the server's memory for SQL ({} bytes, --sql-memory-bytes) is held by the queries running \
                 now ({used} bytes); {consumer} asked for {additional} more: retry later",
                s.limit
            )));
        }
        Ok(())
    }

    fn reserved(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    fn memory_limit(&self) -> MemoryLimit {
        MemoryLimit::Finite(self.limit)
    }
}

/// Niceness of query threads: the lowest, so CPU-bound queries (each on a
/// thread of its own, up to 64 of them plus the Postgres connections) yield
/// the cores to acknowledging agents: at nice 19 a thread weighs 15 against an
/// ingest worker's 1024.
const QUERY_NICE: i32 = 19;

/// The runtime remote SQL runs on (the Postgres and Flight SQL fronts, the gRPC
/// query service's work, scheduled reports): apart from the one serving agents,
/// so a query that computes without yielding (constant folding, a long
/// function) holds its own workers, never ingest's, and at a lower priority.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(std::thread::available_parallelism().map_or(2, |n| n.get()))
            .thread_name("periscope-query")
            .on_thread_start(nice)
            .enable_all()
            .build()
            .expect("the query runtime starts")
    })
}

/// The most queries running on threads of their own at once ([`own_thread`]).
pub const MAX_QUERY_THREADS: usize = 64;

static QUERY_THREADS: AtomicUsize = AtomicUsize::new(0);

/// Runs `work` on a thread of its own, at the query runtime's lower priority,
/// with a runtime of its own (DataFusion spawns a plan's partitions on the
/// runtime that executes it, so they stay there too). An operator that
/// computes for a long time without yielding (a nested-loop join's batch, a
/// long function) holds only that thread: the OS shares the cores between it
/// and every other query, where before two such queries held both workers of
/// the query runtime and `SELECT 1` waited 116 s behind them (issue 18 item
/// 7). The caller's clock goes on meanwhile; dropping the returned future
/// cancels `work` at its next yield. At most [`MAX_QUERY_THREADS`] at once.
pub fn own_thread<T: Send + 'static>(
    work: impl std::future::Future<Output = Result<T, QueryError>> + Send + 'static,
) -> impl std::future::Future<Output = Result<T, QueryError>> + Send {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let started = spawn_own_thread(true, async move {
        let mut tx = tx;
        let answer = tokio::select! {
            r = unpanicked(work) => Some(r.and_then(|r| r)),
            // The caller gave up (time limit, client gone): stop at once.
            _ = tx.closed() => None,
        };
        if let Some(r) = answer {
            let _ = tx.send(r);
        }
    });
    async move {
        started?;
        rx.await.map_err(|_| QueryError::Failed("the query's thread ended without an answer".into()))?
    }
}

/// Runs `work` to its end on a new thread with a runtime of its own (see
/// [`own_thread`]); `counted` ones are refused past [`MAX_QUERY_THREADS`]
/// (a front bounding its own connections need not count them).
pub fn spawn_own_thread(
    counted: bool,
    work: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), QueryError> {
    if counted && take(&QUERY_THREADS, MAX_QUERY_THREADS, 1).is_err() {
        return Err(QueryError::Limit(format!(
            "{MAX_QUERY_THREADS} queries are running on this server; retry when one ends"
        )));
    }
    struct Done(bool);
    impl Drop for Done {
        fn drop(&mut self) {
            if self.0 {
                QUERY_THREADS.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }
    let done = Done(counted);
    let spawned = std::thread::Builder::new().name("periscope-query".into()).spawn(move || {
        let _done = done;
        nice();
        // What the thread and its runtime's blocking threads allocate is the query's (see `account`).
        let account = Arc::new(crate::account::Account::default());
        let _tag = crate::account::enter(&account);
        let blocking = account.clone();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .on_thread_start(move || {
                nice();
                crate::account::enter_for_good(&blocking);
            })
            .on_thread_stop(crate::account::leave_for_good)
            .build();
        match runtime {
            Ok(rt) => rt.block_on(work),
            Err(e) => eprintln!("periscope: cannot start a query thread's runtime: {e}"),
        }
    });
    spawned.map(drop).map_err(|e| QueryError::Failed(format!("cannot start a query thread: {e}")))
}

/// Lowers the calling thread's priority to the query runtime's.
fn nice() {
    // SAFETY: setpriority on this thread's own id (Linux: niceness is per thread); no memory involved.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, QUERY_NICE);
    }
}

fn options(access: Access) -> SQLOptions {
    match access {
        // Remote users read; DDL (CREATE EXTERNAL TABLE …), DML (INSERT, COPY … TO)
        // and statements (SET, transactions, PREPARE) are refused before planning.
        Access::ReadOnly => SQLOptions::new().with_allow_ddl(false).with_allow_dml(false).with_allow_statements(false),
        Access::Local => SQLOptions::new(),
    }
}

/// Refuses EXPLAIN to a user confined to some hosts: a plan, its statistics
/// and ANALYZE's row counts describe the tables below the scope, the whole fleet.
fn no_fleet_plans(df: &datafusion::dataframe::DataFrame, limits: &Limits) -> Result<(), QueryError> {
    use datafusion::logical_expr::LogicalPlan;
    if limits.scope.is_some() && matches!(df.logical_plan(), LogicalPlan::Explain(_) | LogicalPlan::Analyze(_)) {
        return Err(QueryError::Limit(SCOPED_EXPLAIN.into()));
    }
    Ok(())
}

/// Why a scoped user gets no EXPLAIN.
pub const SCOPED_EXPLAIN: &str =
    "EXPLAIN is refused to a user confined to some hosts: plans and their statistics describe the whole fleet";

/// Runs `sql` against a data directory from outside the server (which may be running).
pub async fn run(data: &Path, sql: &str, access: Access) -> Result<(SchemaRef, Vec<RecordBatch>), QueryError> {
    let snapshot = Store::read(data).map_err(|e| QueryError::Store(e.to_string()))?;
    run_on(snapshot, sql, access, &Limits::none()).await
}

/// Runs `sql` against a snapshot of the store within `limits`.
pub async fn run_on(
    snapshot: Snapshot,
    sql: &str,
    access: Access,
    limits: &Limits,
) -> Result<(SchemaRef, Vec<RecordBatch>), QueryError> {
    let ctx = catalog::context_with(snapshot, limits.runtime()?, limits.scope.as_ref()).await?;
    execute(&ctx, sql, access, limits).await
}

/// Runs `sql` in a session already built over a snapshot (several queries
/// seeing the same rows, as a report's checks do), within `limits`' result
/// size and time limit.
pub async fn execute(
    ctx: &SessionContext,
    sql: &str,
    access: Access,
    limits: &Limits,
) -> Result<(SchemaRef, Vec<RecordBatch>), QueryError> {
    let work = async {
        let df = ctx.sql_with_options(sql, options(access)).await?;
        no_fleet_plans(&df, limits)?;
        let mut stream = df.execute_stream().await?;
        // The batches' own schema: the logical plan's may say Utf8 where the
        // physical plan produces Utf8View (a CASE mixing literals and casts),
        // and an IPC stream written under the wrong schema cannot be read back.
        let schema = stream.schema();
        let (mut batches, mut bytes) = (Vec::new(), 0usize);
        while let Some(b) = stream.next().await {
            let b = b.map_err(|e| memory(e, ctx))?;
            bytes = bytes.saturating_add(periscope_store::store::batch_bytes(&b));
            if bytes > limits.memory_bytes {
                return Err(QueryError::Limit(format!(
                    "the result is larger than a query may use ({} bytes, --query-memory-bytes); \
                     add a LIMIT or aggregate",
                    limits.memory_bytes
                )));
            }
            // Returned to the caller's thread, which frees it; the result has a cap of its own (above).
            crate::account::handed_off(periscope_store::store::batch_bytes(&b));
            batches.push(b);
        }
        Ok((schema, batches))
    };
    // Dropping the query's stream on timeout cancels it (DataFusion's operators yield to tokio).
    match tokio::time::timeout(limits.timeout, unpanicked(work)).await {
        Ok(r) => r?,
        Err(_) => Err(QueryError::Limit(format!(
            "query cancelled after {} s, the time limit for a query (--query-timeout-secs)",
            limits.timeout.as_secs()
        ))),
    }
}

/// Rows of a query as they are produced.
pub type BatchStream = std::pin::Pin<Box<dyn futures::Stream<Item = Result<RecordBatch, QueryError>> + Send>>;

/// Runs `sql` against a snapshot within `limits`, yielding rows as they are
/// produced rather than collecting them: the result is not held in memory,
/// so it is not bounded by the memory limit, which still bounds the work. The
/// time limit covers planning and the whole stream; dropping the stream
/// cancels the query.
pub async fn stream_on(
    snapshot: Snapshot,
    sql: &str,
    access: Access,
    limits: &Limits,
) -> Result<(SchemaRef, BatchStream), QueryError> {
    let deadline = tokio::time::Instant::now() + limits.timeout;
    let cancelled = |limits: &Limits| {
        QueryError::Limit(format!(
            "query cancelled after {} s, the time limit for a query (--query-timeout-secs)",
            limits.timeout.as_secs()
        ))
    };
    let plan = async {
        let ctx = catalog::context_with(snapshot, limits.runtime()?, limits.scope.as_ref()).await?;
        let df = ctx.sql_with_options(sql, options(access)).await?;
        no_fleet_plans(&df, limits)?;
        Ok::<_, QueryError>((df.execute_stream().await?, ctx))
    };
    // The session goes along with the stream: its tables hold the snapshot,
    // and so the files the plan reads, which a compaction must not delete meanwhile.
    let (stream, ctx) =
        tokio::time::timeout_at(deadline, unpanicked(plan)).await.map_err(|_| cancelled(limits))???;
    // The batches' own schema (see `execute`).
    let schema = stream.schema();
    let limits = limits.clone();
    let rows = futures::stream::unfold(Some((stream, ctx)), move |state| {
        let limits = limits.clone();
        async move {
            let (mut stream, ctx) = state?;
            match tokio::time::timeout_at(deadline, unpanicked(stream.next())).await {
                Ok(Ok(Some(Ok(b)))) => Some((Ok(b), Some((stream, ctx)))),
                Ok(Ok(Some(Err(e)))) => Some((Err(memory(e, &ctx)), None)),
                Ok(Ok(None)) => None,
                Ok(Err(failed)) => Some((Err(failed), None)),
                Err(_) => Some((Err(cancelled(&limits)), None)),
            }
        }
    });
    Ok((schema, Box::pin(rows)))
}

/// Plans `sql` as a remote read and returns its result schema without running
/// it: the physical plan's, which is what [`execute`] streams (the logical
/// plan may say Utf8 where execution produces Utf8View).
pub async fn plan_schema(snapshot: Snapshot, sql: &str, limits: &Limits) -> Result<SchemaRef, QueryError> {
    // Planning alone can be work (constant folding runs functions): the same limits as running.
    let plan = async {
        let ctx = catalog::context_with(snapshot, limits.runtime()?, limits.scope.as_ref()).await?;
        let df = ctx.sql_with_options(sql, options(Access::ReadOnly)).await?;
        no_fleet_plans(&df, limits)?;
        Ok::<_, QueryError>(df.create_physical_plan().await?.schema())
    };
    tokio::time::timeout(limits.timeout, unpanicked(plan)).await.map_err(|_| {
        QueryError::Limit(format!(
            "query cancelled after {} s, the time limit for a query (--query-timeout-secs)",
            limits.timeout.as_secs()
        ))
    })??
}

/// A query refused memory: its pool's words (which limit, how much), else DataFusion's.
fn memory(e: DataFusionError, ctx: &SessionContext) -> QueryError {
    if let DataFusionError::ResourcesExhausted(why) = e.find_root() {
        let ours = take_refusal(ctx);
        return QueryError::Limit(ours.unwrap_or_else(|| format!("query needs more memory than it may use: {why}")));
    }
    QueryError::Sql(e)
}

/// Why the session's pool last refused memory, in its words (which limit,
/// how much), and forgets it. None when it refused nothing since it was last
/// asked, or when the session has no Periscope pool (no limits).
pub fn take_refusal(ctx: &SessionContext) -> Option<String> {
    let rt = ctx.runtime_env();
    let pool: &dyn std::any::Any = &*rt.memory_pool;
    pool.downcast_ref::<QueryPool>().and_then(|p| p.refused.lock().ok()?.take())
}

/// A client of the server's query service at `url`.
async fn connect(url: &str) -> Result<QueryClient<tonic::transport::Channel>, QueryError> {
    let unreachable = |m: String| QueryError::Unreachable { url: url.to_string(), message: m };
    let endpoint = tonic::transport::Endpoint::from_shared(url.to_string()).map_err(|e| unreachable(e.to_string()))?;
    let channel = endpoint.connect().await.map_err(|e| {
        let mut m = e.to_string();
        if let Some(s) = std::error::Error::source(&e) {
            m = format!("{m}: {s}");
        }
        unreachable(m)
    })?;
    Ok(QueryClient::new(channel).max_decoding_message_size(periscope_proto::MAX_MESSAGE_BYTES))
}

/// `message` as a request to the server at `url`, signed in as `credentials` (HTTP Basic) when given.
fn request<T>(url: &str, message: T, credentials: Option<&(String, String)>) -> Result<tonic::Request<T>, QueryError> {
    let mut request = tonic::Request::new(message);
    if let Some((user, password)) = credentials {
        use base64::Engine;
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        let value = format!("Basic {basic}").parse().map_err(|_| QueryError::Server {
            url: url.to_string(),
            message: "user name or password cannot be sent in a header".into(),
        })?;
        request.metadata_mut().insert("authorization", value);
    }
    Ok(request)
}

/// Runs `sql` on the server at `url`; `progress` hears the rows received so far as they stream in.
pub async fn remote(
    url: &str,
    sql: &str,
    credentials: Option<&(String, String)>,
    mut progress: impl FnMut(u64),
) -> Result<(SchemaRef, Vec<RecordBatch>), QueryError> {
    let mut client = connect(url).await?;
    let server = |s: tonic::Status| QueryError::Server { url: url.to_string(), message: s.message().to_string() };
    let request = request(url, SqlRequest { sql: sql.to_string() }, credentials)?;
    let mut stream = client.sql(request).await.map_err(server)?.into_inner();
    let mut schema = None;
    let mut batches = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(server)?;
        let (s, b) = ipc::decode(&chunk.arrow_ipc)
            .map_err(|e| QueryError::Decode { url: url.to_string(), message: e.to_string() })?;
        schema.get_or_insert(s);
        batches.extend(b);
        progress(batches.iter().map(|b| b.num_rows() as u64).sum());
    }
    let schema =
        schema.ok_or_else(|| QueryError::Decode { url: url.to_string(), message: "no schema in result".into() })?;
    Ok((schema, batches))
}

/// Asks the server at `url` for the SBOM `sbom` describes; the document's bytes.
pub async fn remote_sbom(
    url: &str,
    sbom: SbomRequest,
    credentials: Option<&(String, String)>,
) -> Result<Vec<u8>, QueryError> {
    let mut client = connect(url).await?;
    let server = |s: tonic::Status| QueryError::Server { url: url.to_string(), message: s.message().to_string() };
    let mut stream = client.sbom(request(url, sbom, credentials)?).await.map_err(server)?.into_inner();
    let mut doc = Vec::new();
    while let Some(chunk) = stream.next().await {
        doc.extend_from_slice(&chunk.map_err(server)?.data);
    }
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::execution::memory_pool::MemoryConsumer;
    use periscope_proto::tables::CRAWL_ERRORS;
    use periscope_store::store::StoreConfig;

    /// A panic in a plan's task reached the fronts as a success with no rows
    /// (the string_agg offset overflow, now refused before it happens); every
    /// front polls through `unpanicked`, which makes it an error naming it.
    #[tokio::test]
    async fn a_panic_inside_a_query_becomes_its_error() {
        let work = async {
            let task = tokio::spawn(async { panic!("offset overflow") });
            match task.await {
                Ok(()) => 0,
                Err(e) => std::panic::resume_unwind(e.into_panic()),
            }
        };
        match unpanicked(work).await {
            Err(QueryError::Failed(why)) => assert_eq!(why, "offset overflow"),
            other => panic!("{other:?}"),
        }
        assert_eq!(unpanicked(async { 7 }).await.unwrap(), 7);
    }

    /// Queries draw on one server-wide budget: while another query's
    /// reservation holds most of it, a query that fits its own limit is
    /// refused, naming the budget; once that memory is given back it runs.
    #[tokio::test]
    async fn queries_share_the_servers_sql_memory() {
        let limits = Limits { memory_bytes: 256 << 20, ..Limits::default() }.sharing(64 << 20);
        let shared = limits.shared.clone().unwrap();
        let sql = "SELECT value % 200000 AS k, count(*) AS n FROM generate_series(1, 2000000) GROUP BY k ORDER BY k";
        let run = || run_on(Snapshot::empty(), sql, Access::ReadOnly, &limits);
        let (_, alone) = run().await.expect("fits the budget alone");
        assert_eq!(alone.iter().map(|b| b.num_rows()).sum::<usize>(), 200_000);
        assert_eq!(shared.used(), 0, "a finished query gives its memory back");

        let other = limits.runtime().unwrap().unwrap();
        let held = MemoryConsumer::new("another query").register(&other.memory_pool);
        held.try_grow(60 << 20).expect("within the other query's own limit and the budget");
        assert_eq!(shared.used(), 60 << 20);
        let err = run().await.expect_err("the budget is taken").to_string();
        assert!(err.contains("--sql-memory-bytes") && err.contains("retry later"), "{err}");
        assert!(held.try_grow(8 << 20).is_err(), "the held query cannot pass the budget either");

        held.free();
        // The refused query's tasks wind down (and give back what they held) as they are dropped.
        let start = std::time::Instant::now();
        while shared.used() != 0 && start.elapsed() < Duration::from_secs(5) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(shared.used(), 0, "every byte comes back");
        let (_, again) = run().await.expect("runs once the memory is back");
        assert_eq!(again.iter().map(|b| b.num_rows()).sum::<usize>(), 200_000);
    }

    /// Regression: a streamed query dropped its session once planned, so the
    /// snapshot went with it and a compaction deleted files the stream was
    /// still to read ("Object ... not found", seen by the fault test).
    #[tokio::test]
    async fn a_streamed_query_keeps_its_files_through_a_compaction() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = StoreConfig { compact_files: 3, flush_interval: Duration::from_secs(3600), ..Default::default() };
        let store = Store::open_with(tmp.path(), cfg).unwrap();
        let batch = periscope_store::testutil::crawl_error_batch(1000);
        for seq in 1..=2 {
            store.apply(&CRAWL_ERRORS, std::slice::from_ref(&batch), "a", 1, seq).await.unwrap();
            store.flush().unwrap();
        }
        let probe = store.snapshot();
        let held = || Arc::strong_count(&probe.files);
        let before = held();
        let (_, mut rows) =
            stream_on(store.snapshot(), "SELECT * FROM crawl_errors_history", Access::Local, &Limits::default())
                .await
                .unwrap();
        assert!(held() > before, "the stream holds the snapshot it was planned over");
        // The third flush merges the three files; the first two are deleted once no snapshot reads them.
        store.apply(&CRAWL_ERRORS, std::slice::from_ref(&batch), "a", 1, 3).await.unwrap();
        store.flush().unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut n = 0;
        while let Some(b) = rows.next().await {
            n += b.expect("the planned files are still there").num_rows();
        }
        assert_eq!(n, 2000);
        drop(rows);
        assert_eq!(held(), before - 1, "and lets it go with the stream (the store moved on to the merged files)");
    }
}
