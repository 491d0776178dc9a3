//! gRPC fronts: `Ingest` (agents stream batches in; each is acknowledged only
//! once durable) and `Query` (read-only SQL, results as Arrow IPC; SBOMs of
//! one scope, made by `periscope-sbom` within the same limits).

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use periscope_proto::v1::ingest_server::{Ingest, IngestServer};
use periscope_proto::v1::query_server::{Query, QueryServer};
use periscope_proto::v1::{
    Ack, Batch, EnrollRequest, EnrollResponse, ImagesRequest, ImagesResponse, SbomChunk, SbomRequest, SqlChunk,
    SqlRequest,
};
use periscope_proto::{CONTRACT_VERSION, MAX_MESSAGE_BYTES, ipc, tables};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::Router;
use tonic::{Request, Response, Status, Streaming};

use crate::auth::{Auth, Identity};
use crate::sqlauth::SqlUsers;
use crate::tls::TlsFiles;
use periscope_query::query;
use periscope_store::store::Store;

pub use periscope_store::rows::MAX_AGENT_ID;

pub struct IngestService {
    store: Arc<Store>,
    auth: Arc<Auth>,
}

/// Validates one batch and hands it to the store. The receiver answers with
/// the stored row count once the batch is durable.
async fn submit(store: &Store, who: &Identity, b: Batch) -> Result<Receiver, Status> {
    if b.agent_id.is_empty() || b.agent_id.len() > MAX_AGENT_ID {
        return Err(Status::invalid_argument(format!(
            "agent id must be 1 to {MAX_AGENT_ID} bytes, got {}",
            b.agent_id.len()
        )));
    }
    who.may_write(&b.agent_id)?;
    if b.contract_version != CONTRACT_VERSION {
        return Err(Status::failed_precondition(format!(
            "agent {} speaks contract version {}, this server speaks {CONTRACT_VERSION}; upgrade the older side",
            b.agent_id, b.contract_version
        )));
    }
    let zstd = match b.compression() {
        periscope_proto::v1::Compression::None => false,
        periscope_proto::v1::Compression::Zstd => true,
    };
    let (table, batches, arrow_ipc) = decode(b.table.clone(), zstd, b.arrow_ipc)
        .await
        .map_err(|e| Status::invalid_argument(format!("batch {}: {e}", b.seq)))?;
    let now_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
    // Strictly increasing, should the server's clock step back: a crawl received later is stamped later.
    let received_us = {
        use std::sync::atomic::{AtomicI64, Ordering};
        static LAST: AtomicI64 = AtomicI64::new(i64::MIN);
        let prev = LAST.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |l| Some(now_us.max(l.saturating_add(1))));
        now_us.max(prev.unwrap_or(i64::MIN).saturating_add(1))
    };
    periscope_store::rows::check_rows(table, &batches, now_us)
        .map_err(|e| Status::invalid_argument(format!("batch {}: {e}", b.seq)))?;
    if *who != Identity::Open {
        for x in &batches {
            let hosts = arrow_array::cast::AsArray::as_string::<i32>(x.column(0));
            for h in hosts.iter() {
                who.may_write(h.unwrap_or(""))?;
            }
        }
    }
    let reserved = store.admit_scopes(table, &batches).map_err(Status::resource_exhausted)?;
    let (mut zstd, mut ipc) = (zstd, arrow_ipc);
    // A crawl's place among its scope's crawls is when the server received
    // it, by the server's clock: stamped here, before the log, so a replay
    // orders crawls as they arrived.
    let mut batches = batches;
    if table.name == tables::CRAWLS.name {
        batches = batches
            .iter()
            .map(|x| periscope_store::rows::stamp_received(x, received_us))
            .collect::<Result<_, _>>()
            .map_err(Status::internal)?;
        ipc = ipc::encode_wire(&table.schema(), &batches).map_err(|e| Status::internal(e.to_string()))?;
        zstd = true;
    }
    crate::metrics::received(table.name, batches.iter().map(|x| x.num_rows()).sum(), ipc.len());
    let record =
        periscope_store::wal::Record { table: b.table, agent: b.agent_id, epoch: b.boot_epoch, seq: b.seq, zstd, ipc };
    Ok(store.submit(record, table, batches, reserved).await)
}

/// A batch inflating beyond this is decoded on a blocking thread, with at
/// most [`MAX_INFLATING`] such decodes at once: a 33 KB zstd frame can declare
/// a gigabyte, and inflating it on an async worker stalled queries and acks.
const INLINE_INFLATE_BYTES: u64 = 4 << 20;
/// Large batches decoded at once, whichever agents send them.
const MAX_INFLATING: usize = 2;
static INFLATING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_INFLATING);

type Decoded = (&'static periscope_proto::tables::Table, Vec<arrow_array::RecordBatch>, Vec<u8>);

/// Decodes a batch's wire bytes, small ones at once, large ones off the async workers.
async fn decode(table: String, zstd: bool, ipc: Vec<u8>) -> Result<Decoded, String> {
    let small = ipc::inflated_size(&ipc, zstd).is_some_and(|n| n <= INLINE_INFLATE_BYTES);
    if small {
        let (t, b) = periscope_store::rows::decode_batch(&table, zstd, &ipc)?;
        return Ok((t, b, ipc));
    }
    let _permit = INFLATING.acquire().await.map_err(|e| e.to_string())?;
    tokio::task::spawn_blocking(move || {
        let (t, b) = periscope_store::rows::decode_batch(&table, zstd, &ipc)?;
        Ok((t, b, ipc))
    })
    .await
    .map_err(|e| format!("decoding panicked: {e}"))?
}

type Receiver = tokio::sync::oneshot::Receiver<Result<u64, String>>;
type Pending = Result<(u64, Receiver), Status>;

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl Ingest for IngestService {
    type SendStream = BoxStream<Ack>;

    async fn send(&self, request: Request<Streaming<Batch>>) -> Result<Response<Self::SendStream>, Status> {
        let who = self.auth.identify(&request).inspect_err(|_| crate::metrics::refused())?;
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(16);
        // Batches are validated and logged as they arrive, without waiting for
        // the previous one to be durable; acks follow in order as each becomes
        // durable, so one stream can fill a whole group commit.
        let (pending_tx, mut pending_rx) = mpsc::channel::<Pending>(256);
        let store = self.store.clone();
        tokio::spawn(async move {
            while let Some(msg) = inbound.next().await {
                let item = match msg {
                    Ok(b) => {
                        let seq = b.seq;
                        let submitted = submit(&store, &who, b).await.map(|rx| (seq, rx));
                        if submitted.is_err() {
                            crate::metrics::refused();
                        }
                        submitted
                    }
                    Err(s) => Err(s),
                };
                let stop = item.is_err();
                if pending_tx.send(item).await.is_err() || stop {
                    break;
                }
            }
        });
        tokio::spawn(async move {
            while let Some(item) = pending_rx.recv().await {
                let reply = match item {
                    Ok((seq, rx)) => match rx.await {
                        Ok(Ok(rows)) => Ok(Ack { seq, rows }),
                        Ok(Err(e)) => Err(Status::unavailable(format!("server could not store batch {seq}: {e}"))),
                        Err(_) => {
                            Err(Status::unavailable(format!("server could not store batch {seq}: shutting down")))
                        }
                    },
                    Err(s) => Err(s),
                };
                let stop = reply.is_err();
                if tx.send(reply).await.is_err() || stop {
                    break;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn images(&self, request: Request<ImagesRequest>) -> Result<Response<ImagesResponse>, Status> {
        let who = self.auth.identify(&request)?;
        let r = request.into_inner();
        who.may_write(&r.agent_id)?;
        // Only this host's own crawls count: a container inherits from its own
        // host's crawl of its image, never another host's (see `current::HostImage`).
        let host = match &who {
            Identity::Host(h) => h.as_str(),
            Identity::Open => r.agent_id.as_str(),
        };
        let index = self.store.index();
        let stored: Vec<String> = r.image_ids.into_iter().filter(|id| index.has_image(host, id)).collect();
        Ok(Response::new(ImagesResponse { skip: stored.clone(), stored }))
    }

    async fn enroll(&self, request: Request<EnrollRequest>) -> Result<Response<EnrollResponse>, Status> {
        let from = request.remote_addr().map(|a| a.ip());
        let r = request.into_inner();
        // Enrollment locks and fsyncs files: not on an async worker.
        let auth = self.auth.clone();
        let node_key = tokio::task::spawn_blocking(move || auth.enroll(&r.host, &r.enroll_secret, from))
            .await
            .map_err(|e| Status::internal(format!("enrollment panicked: {e}")))??;
        Ok(Response::new(EnrollResponse { node_key }))
    }
}

pub struct QueryService {
    store: Arc<Store>,
    limits: query::Limits,
    users: Arc<SqlUsers>,
}

impl QueryService {
    /// The hosts the request's SQL user may read (None: all of them, or no users configured).
    fn read_scope<T>(&self, request: &Request<T>) -> Result<Option<Arc<periscope_query::scope::ReadScope>>, Status> {
        if self.users.is_empty() {
            return Ok(None);
        }
        Ok(self.users.scope(&self.users.identify(request.metadata(), request.remote_addr().map(|a| a.ip()))?))
    }
}

/// The pieces an SBOM document travels in.
const SBOM_CHUNK: usize = 256 << 10;

#[tonic::async_trait]
impl Query for QueryService {
    type SqlStream = BoxStream<SqlChunk>;
    type SbomStream = BoxStream<SbomChunk>;

    async fn sbom(&self, request: Request<SbomRequest>) -> Result<Response<Self::SbomStream>, Status> {
        use periscope_sbom::inventory::{self, Selector, Source};
        let scope = self.read_scope(&request)?;
        let r = request.into_inner();
        let selector =
            Selector::named(Some(r.container), Some(r.image), Some(r.host)).map_err(Status::invalid_argument)?;
        let format = periscope_sbom::Format::parse(&r.format).map_err(Status::invalid_argument)?;
        let created = periscope_sbom::timestamp_at(r.created).map_err(Status::invalid_argument)?;
        let files = !r.no_files;
        let (snapshot, limits) = (self.store.snapshot(), self.limits.scoped(scope));
        let timeout = limits.timeout;
        let mut timed = periscope_query::metrics::Timed::start("grpc");
        // Its queries run on a thread of their own, as SQL does; the whole
        // document, not each query, within the user's time limit.
        let work = query::own_thread(async move {
            let source = Source::snapshot(snapshot, limits).await?;
            let inv = match inventory::read(&source, &selector, files).await {
                Ok(inv) => inv,
                Err(e) => return Ok(Err(e)),
            };
            let doc = periscope_sbom::render(format, &inv, &created);
            drop(inv);
            if let Err(e) = source.check() {
                return Ok(Err(e));
            }
            // Freed by the thread that sends it.
            periscope_query::account::handed_off(doc.capacity());
            Ok(Ok(doc))
        });
        let doc = match tokio::time::timeout(timeout, work).await {
            Ok(Ok(Ok(doc))) => doc,
            Ok(Ok(Err(e))) => {
                use inventory::Error;
                timed.outcome = if matches!(e, Error::Limit(_)) { "refused" } else { "error" };
                return Err(match e {
                    Error::NotFound(m) => Status::not_found(m),
                    Error::Ambiguous(m) => Status::failed_precondition(m),
                    Error::Query(m) | Error::Limit(m) => Status::invalid_argument(m),
                });
            }
            Ok(Err(e)) => {
                timed.outcome = if matches!(e, query::QueryError::Limit(_)) { "refused" } else { "error" };
                return Err(Status::invalid_argument(e.to_string()));
            }
            Err(_) => {
                timed.outcome = "refused";
                return Err(Status::invalid_argument(format!(
                    "SBOM cancelled after {} s, the time limit for a query (--query-timeout-secs)",
                    timeout.as_secs()
                )));
            }
        };
        // One piece copied at a time, as the client reads them.
        let chunks = futures::stream::unfold((doc.into_bytes(), 0), |(doc, at)| async move {
            let end = doc.len().min(at + SBOM_CHUNK);
            (at < doc.len()).then(|| (Ok(SbomChunk { data: doc[at..end].to_vec() }), (doc, end)))
        });
        Ok(Response::new(Box::pin(chunks)))
    }

    async fn sql(&self, request: Request<SqlRequest>) -> Result<Response<Self::SqlStream>, Status> {
        let scope = self.read_scope(&request)?;
        let sql = request.into_inner().sql;
        // Planned and run on a thread of its own; the chunks come back through a channel.
        let (snapshot, limits) = (self.store.snapshot(), self.limits.scoped(scope));
        let (timeout, deadline) = (limits.timeout, tokio::time::Instant::now() + limits.timeout);
        let (planned_tx, planned_rx) = tokio::sync::oneshot::channel();
        let (tx, rx) = mpsc::channel::<Result<SqlChunk, Status>>(4);
        let failed = tx.clone();
        let work = async move {
            // Counted when the work ends, however it ends (a dropped client included).
            let mut timed = periscope_query::metrics::Timed::start("grpc");
            let (schema, mut rows) = match query::stream_on(snapshot, &sql, query::Access::ReadOnly, &limits).await {
                Ok(s) => s,
                Err(e) => {
                    timed.outcome = if matches!(e, query::QueryError::Limit(_)) { "refused" } else { "error" };
                    let _ = planned_tx.send(Err(Status::invalid_argument(e.to_string())));
                    return;
                }
            };
            // The schema first, then each batch as the query produces it: the
            // client sees rows (and can show progress) before the query ends.
            let head = ipc::encode(&schema, &[]).map_err(|e| Status::internal(e.to_string()));
            if planned_tx.send(head.map(|arrow_ipc| SqlChunk { arrow_ipc })).is_err() {
                return;
            }
            while let Some(b) = rows.next().await {
                if let Err(e) = &b {
                    timed.outcome = if matches!(e, query::QueryError::Limit(_)) { "refused" } else { "error" };
                }
                let chunk = b.map_err(|e| Status::invalid_argument(e.to_string())).and_then(|b| {
                    let c = ipc::encode(&schema, std::slice::from_ref(&b)).map_err(|e| Status::internal(e.to_string()));
                    c.map(|arrow_ipc| SqlChunk { arrow_ipc })
                });
                let stop = chunk.is_err();
                // The chunk is freed by the thread that sends it to the client, not the query's.
                let sent = chunk.as_ref().map_or(0, |c| c.arrow_ipc.capacity());
                // A client gone, or one that stopped reading past the time limit (its
                // window full): dropping the rows cancels the query and frees its thread.
                match tokio::time::timeout_at(deadline, tx.send(chunk)).await {
                    Ok(Ok(())) if !stop => periscope_query::account::handed_off(sent),
                    Ok(_) => return,
                    // Past the time limit, with the client not reading: cancelled, as a limit.
                    Err(_) => {
                        timed.outcome = "refused";
                        return;
                    }
                }
            }
        };
        let started = query::spawn_own_thread(true, async move {
            // A worker that died mid-answer must not end the stream as if it were complete.
            if let Err(e) = query::unpanicked(work).await {
                let _ = tokio::time::timeout_at(deadline, failed.send(Err(Status::internal(e.to_string())))).await;
            }
        });
        started.map_err(|e| Status::resource_exhausted(e.to_string()))?;
        // The query's own clock runs on its thread and fires only when its work yields;
        // this one answers the client on time whatever that work does.
        let cancelled = move || {
            Status::invalid_argument(format!(
                "query cancelled after {} s, the time limit for a query (--query-timeout-secs)",
                timeout.as_secs()
            ))
        };
        let head = tokio::time::timeout_at(deadline, planned_rx)
            .await
            .map_err(|_| cancelled())?
            .map_err(|_| Status::internal("the query's task ended"))??;
        let chunks = futures::stream::unfold(Some(rx), move |rx| async move {
            let mut rx = rx?;
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(chunk)) => Some((chunk, Some(rx))),
                Ok(None) => None,
                // Dropping the receiver stops the query at its next yield.
                Err(_) => Some((Err(cancelled()), None)),
            }
        });
        let chunks = futures::stream::once(async move { Ok(head) }).chain(chunks);
        Ok(Response::new(Box::pin(chunks)))
    }
}

/// What protects a server's ports: whether agents must authenticate
/// (enrollment or mTLS) and whether SQL needs a user.
#[derive(Debug, Clone, Copy)]
pub struct Exposure {
    pub agents_authenticated: bool,
    pub sql_users: bool,
}

impl Exposure {
    /// Safe by default: a server listening beyond loopback must authenticate
    /// both its agents and its SQL users, or any machine that reaches it could
    /// write any host's rows or read the whole fleet. On loopback only local
    /// users reach it (a laptop, a test, quickstart).
    pub fn check(&self, addrs: &[SocketAddr]) -> Result<(), String> {
        let Some(exposed) = addrs.iter().find(|a| !a.ip().is_loopback()) else { return Ok(()) };
        let mut missing = Vec::new();
        if !self.agents_authenticated {
            missing.push("agent authentication (--enroll-secret or --client-ca)");
        }
        if !self.sql_users {
            missing.push("SQL users (--sql-user)");
        }
        if missing.is_empty() {
            return Ok(());
        }
        Err(format!(
            "refusing to listen on {exposed}, beyond loopback, without {}: anyone who reaches the port could \
             write or read any host's rows; configure them (see the README's production setup) or pass \
             --insecure-open",
            missing.join(" and ")
        ))
    }
}

/// The gRPC fronts, ingest and query, over `store`: TLS when `tls` is set,
/// agents admitted by `auth`, remote SQL within `limits` for `users`. The
/// caller serves the router on its listener.
pub fn router(
    store: Arc<Store>,
    auth: Arc<Auth>,
    limits: query::Limits,
    users: Arc<SqlUsers>,
    tls: Option<TlsFiles>,
) -> anyhow::Result<Router> {
    let mut builder = tonic::transport::Server::builder();
    if let Some(t) = tls {
        use tonic::transport::{Certificate, Identity as TlsIdentity, ServerTlsConfig};
        let mut cfg = ServerTlsConfig::new().identity(TlsIdentity::from_pem(t.cert, t.key));
        if let Some(ca) = t.client_ca {
            cfg = cfg.client_ca_root(Certificate::from_pem(ca));
        }
        builder = builder.tls_config(cfg)?;
    }
    Ok(builder
        .add_service(
            IngestServer::new(IngestService { store: store.clone(), auth })
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
        )
        .add_service(
            QueryServer::new(QueryService { store, limits, users }).max_encoding_message_size(MAX_MESSAGE_BYTES),
        ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 18 item 11: the server used to serve open on any address with only a warning.
    #[test]
    fn beyond_loopback_both_agents_and_sql_must_authenticate() {
        let lo: SocketAddr = "127.0.0.1:7700".parse().unwrap();
        let lo6: SocketAddr = "[::1]:7700".parse().unwrap();
        let any: SocketAddr = "0.0.0.0:7700".parse().unwrap();
        let lan: SocketAddr = "192.0.2.10:5433".parse().unwrap();
        let open = Exposure { agents_authenticated: false, sql_users: false };
        assert_eq!(open.check(&[lo, lo6]), Ok(()), "loopback may be open");
        let e = open.check(&[lo, any]).unwrap_err();
        assert!(e.contains("0.0.0.0:7700") && e.contains("--enroll-secret") && e.contains("--sql-user"), "{e}");
        let agents_only = Exposure { agents_authenticated: true, sql_users: false };
        let e = agents_only.check(&[lo, lan]).unwrap_err();
        assert!(e.contains("192.0.2.10:5433") && !e.contains("--enroll-secret") && e.contains("--sql-user"), "{e}");
        let sql_only = Exposure { agents_authenticated: false, sql_users: true };
        assert!(sql_only.check(&[any]).unwrap_err().contains("--client-ca"));
        let both = Exposure { agents_authenticated: true, sql_users: true };
        assert_eq!(both.check(&[any, lan]), Ok(()));
    }
}
