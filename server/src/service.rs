//! gRPC fronts: `Ingest` (agents stream batches in; each is acknowledged only
//! once durable) and `Query` (read-only SQL, results as Arrow IPC).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use arrow_array::RecordBatch;
use futures::{Stream, StreamExt};
use periscope_proto::v1::ingest_server::{Ingest, IngestServer};
use periscope_proto::v1::query_server::{Query, QueryServer};
use periscope_proto::v1::{
    Ack, Batch, EnrollRequest, EnrollResponse, ImagesRequest, ImagesResponse, SqlChunk, SqlRequest,
};
use periscope_proto::{CONTRACT_VERSION, ipc, tables};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status, Streaming};

use crate::auth::{Auth, AuthConfig, Identity};
use crate::query;
use crate::store::Store;

/// Largest message accepted from an agent.
pub const MAX_MESSAGE_BYTES: usize = 256 << 20;
/// Largest Arrow IPC stream one compressed batch may inflate to.
pub const MAX_INFLATED_BYTES: usize = 1 << 30;

pub struct IngestService {
    store: Arc<Store>,
    auth: Arc<Auth>,
    images: Arc<StoredImages>,
    /// Image id -> (agent crawling it, since when): see [`Ingest::images`].
    claims: std::sync::Mutex<std::collections::HashMap<String, (String, std::time::Instant)>>,
}

/// How long an agent's claim to crawl an image holds before another may take it over.
pub const IMAGE_CLAIM_TTL: std::time::Duration = std::time::Duration::from_secs(600);

/// Image ids with a completed crawl in the store, from any host: read from
/// the store once, then kept current by ingest, so the per-crawl `Images`
/// call of every agent costs a set lookup, not a query.
#[derive(Default)]
pub struct StoredImages(tokio::sync::Mutex<Option<std::collections::HashSet<String>>>);

impl StoredImages {
    async fn get(&self, data: &std::path::Path) -> Result<std::collections::HashSet<String>, Status> {
        let mut known = self.0.lock().await;
        if known.is_none() {
            let (_, batches) =
                query::run(data, "SELECT DISTINCT scope_id FROM crawls WHERE scope = 'image'", query::Access::ReadOnly)
                    .await
                    .map_err(|e| Status::internal(format!("reading stored images: {e}")))?;
            let mut out = std::collections::HashSet::new();
            for b in &batches {
                let col = arrow_array::cast::AsArray::as_string::<i32>(b.column(0));
                out.extend(col.iter().flatten().map(str::to_string));
            }
            *known = Some(out);
        }
        Ok(known.clone().unwrap_or_default())
    }

    /// Notes the image crawls a stored `crawls` batch completes.
    async fn note(&self, batches: &[RecordBatch]) {
        let mut known = self.0.lock().await;
        let Some(known) = known.as_mut() else { return };
        for b in batches {
            let (scope, id) = (b.column(1), b.column(2));
            let scope = arrow_array::cast::AsArray::as_string::<i32>(scope);
            let id = arrow_array::cast::AsArray::as_string::<i32>(id);
            for (s, i) in scope.iter().zip(id.iter()) {
                if let (Some(tables::scope::IMAGE), Some(i)) = (s, i) {
                    known.insert(i.to_string());
                }
            }
        }
    }
}

/// Validates one batch and stores it; returns the stored row count.
async fn apply(store: &Arc<Store>, images: &StoredImages, who: &Identity, b: Batch) -> Result<u64, Status> {
    who.may_write(&b.agent_id)?;
    if b.contract_version != CONTRACT_VERSION {
        return Err(Status::failed_precondition(format!(
            "agent {} speaks contract version {}, this server speaks {CONTRACT_VERSION}; upgrade the older side",
            b.agent_id, b.contract_version
        )));
    }
    let table = tables::table(&b.table)
        .ok_or_else(|| Status::invalid_argument(format!("batch {} names unknown table {:?}", b.seq, b.table)))?;
    let zstd = match b.compression() {
        periscope_proto::v1::Compression::None => false,
        periscope_proto::v1::Compression::Zstd => true,
    };
    let (schema, batches) = ipc::decode_wire(&b.arrow_ipc, zstd, MAX_INFLATED_BYTES)
        .map_err(|e| Status::invalid_argument(format!("batch {} for {}: bad Arrow IPC: {e}", b.seq, table.name)))?;
    table.check(&schema).map_err(|e| Status::invalid_argument(format!("batch {}: {e}", b.seq)))?;
    if *who != Identity::Open {
        for x in &batches {
            let hosts = arrow_array::cast::AsArray::as_string::<i32>(x.column(0));
            for h in hosts.iter() {
                who.may_write(h.unwrap_or(""))?;
            }
        }
    }
    // Stored under the declared schema, column descriptions included (the wire leaves them out).
    let batches = batches
        .into_iter()
        .map(|x| RecordBatch::try_new(table.schema(), x.columns().to_vec()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Status::invalid_argument(format!("batch {}: {e}", b.seq)))?;
    let store = store.clone();
    let (agent, epoch, seq) = (b.agent_id, b.boot_epoch, b.seq);
    let (rows, batches) = tokio::task::spawn_blocking(move || {
        let rows = store.apply(table, &batches, &agent, epoch, seq);
        crash_point();
        (rows, batches)
    })
    .await
    .map_err(|e| Status::internal(format!("internal error: store task failed: {e}")))?;
    let rows = rows.map_err(|e| {
        tracing::error!("store: {e}");
        Status::unavailable(format!("server could not store batch {seq}: {e}"))
    })?;
    if table.name == tables::CRAWLS.name {
        images.note(&batches).await;
    }
    Ok(rows)
}

/// Fault injection for crash tests: with PERISCOPE_CRASH_AFTER_BATCHES=N the
/// process aborts right after storing its Nth batch and before acknowledging
/// it — the one moment a random SIGKILL rarely hits, where a resent batch
/// must not be stored twice.
fn crash_point() {
    use std::sync::atomic::{AtomicU64, Ordering};
    static STORED: AtomicU64 = AtomicU64::new(0);
    static LIMIT: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    let limit = LIMIT.get_or_init(|| std::env::var("PERISCOPE_CRASH_AFTER_BATCHES").ok()?.parse().ok());
    if let Some(limit) = limit
        && STORED.fetch_add(1, Ordering::SeqCst) + 1 == *limit
    {
        eprintln!("periscope: PERISCOPE_CRASH_AFTER_BATCHES={limit} reached: aborting before the ack");
        std::process::abort();
    }
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl Ingest for IngestService {
    type SendStream = BoxStream<Ack>;

    async fn send(&self, request: Request<Streaming<Batch>>) -> Result<Response<Self::SendStream>, Status> {
        let who = self.auth.identify(&request)?;
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(16);
        let store = self.store.clone();
        let images = self.images.clone();
        tokio::spawn(async move {
            while let Some(msg) = inbound.next().await {
                let reply = match msg {
                    Ok(b) => {
                        let seq = b.seq;
                        apply(&store, &images, &who, b).await.map(|rows| Ack { seq, rows })
                    }
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
        let stored = self.images.get(self.store.dir()).await?;
        let now = std::time::Instant::now();
        let mut claims = self.claims.lock().unwrap_or_else(|e| e.into_inner());
        claims.retain(|id, (_, at)| now.duration_since(*at) < IMAGE_CLAIM_TTL && !stored.contains(id));
        let mut skip = Vec::new();
        for id in r.image_ids {
            if stored.contains(&id) {
                skip.push(id);
                continue;
            }
            match claims.get(&id) {
                Some((agent, _)) if *agent != r.agent_id => skip.push(id),
                _ => {
                    claims.insert(id, (r.agent_id.clone(), now));
                }
            }
        }
        Ok(Response::new(ImagesResponse { skip }))
    }

    async fn enroll(&self, request: Request<EnrollRequest>) -> Result<Response<EnrollResponse>, Status> {
        let r = request.into_inner();
        let node_key = self.auth.enroll(&r.host, &r.enroll_secret)?;
        Ok(Response::new(EnrollResponse { node_key }))
    }
}

pub struct QueryService {
    data: PathBuf,
}

#[tonic::async_trait]
impl Query for QueryService {
    type SqlStream = BoxStream<SqlChunk>;

    async fn sql(&self, request: Request<SqlRequest>) -> Result<Response<Self::SqlStream>, Status> {
        let sql = request.into_inner().sql;
        let (schema, batches) = query::run(&self.data, &sql, query::Access::ReadOnly)
            .await
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let mut chunks = vec![ipc::encode(&schema, &[]).map_err(|e| Status::internal(e.to_string()))?];
        for b in &batches {
            chunks.push(ipc::encode(&schema, std::slice::from_ref(b)).map_err(|e| Status::internal(e.to_string()))?);
        }
        Ok(Response::new(Box::pin(futures::stream::iter(chunks.into_iter().map(|c| Ok(SqlChunk { arrow_ipc: c }))))))
    }
}

/// Binds `addr` for the server. Kept apart from [`serve`] so callers can learn the port first.
pub async fn bind(addr: &str) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Runs an open server (no enrollment) on `listener` until `shutdown` completes.
pub async fn serve(
    data: PathBuf,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    serve_with(data, listener, AuthConfig::default(), None, shutdown).await
}

/// TLS for the gRPC port, PEM-encoded.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: Vec<u8>,
    pub key: Vec<u8>,
    /// When set, clients must present a certificate this CA signed (mTLS);
    /// its subject CN is the agent's host identity.
    pub client_ca: Option<Vec<u8>>,
}

/// Runs the server on `listener` until `shutdown` completes.
pub async fn serve_with(
    data: PathBuf,
    listener: TcpListener,
    auth: AuthConfig,
    tls: Option<TlsFiles>,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let store = Arc::new(Store::open(&data)?);
    let auth = Arc::new(Auth::open(&data, auth)?);
    let mut builder = tonic::transport::Server::builder();
    if let Some(t) = tls {
        use tonic::transport::{Certificate, Identity as TlsIdentity, ServerTlsConfig};
        let mut cfg = ServerTlsConfig::new().identity(TlsIdentity::from_pem(t.cert, t.key));
        if let Some(ca) = t.client_ca {
            cfg = cfg.client_ca_root(Certificate::from_pem(ca));
        }
        builder = builder.tls_config(cfg)?;
    }
    let addr: SocketAddr = listener.local_addr()?;
    tracing::info!(%addr, data = %data.display(), "periscope server listening");
    builder
        .add_service(
            IngestServer::new(IngestService { store, auth, images: Default::default(), claims: Default::default() })
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
        )
        .add_service(QueryServer::new(QueryService { data }).max_encoding_message_size(MAX_MESSAGE_BYTES))
        .serve_with_incoming_shutdown(TcpIncoming::from(listener), shutdown)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use periscope_agent::encode::{Common, TableBuilder};

    fn crawls_row(scope: &str, id: &str) -> RecordBatch {
        let common = Common { host: "h".into(), scope: scope.into(), scope_id: id.into(), crawl_time_us: 1 };
        let mut b = TableBuilder::new(&tables::CRAWLS);
        b.push(&common, &[("rows", 1i64.into())]);
        b.finish()
    }

    #[tokio::test]
    async fn stored_images_load_from_the_store_once_and_follow_ingest() {
        let data = tempfile::tempdir().unwrap();
        let store = Store::open(data.path()).unwrap();
        store.append(&tables::CRAWLS, &[crawls_row("image", "sha256:old")]).unwrap();
        let images = StoredImages::default();
        assert!(images.get(data.path()).await.unwrap().contains("sha256:old"));
        // Stored after the first load: known through ingest, not a new query.
        let later = [crawls_row("image", "sha256:new"), crawls_row("container", "c1")];
        store.append(&tables::CRAWLS, &later).unwrap();
        assert!(!images.get(data.path()).await.unwrap().contains("sha256:new"));
        images.note(&later).await;
        let known = images.get(data.path()).await.unwrap();
        assert!(known.contains("sha256:new") && !known.contains("c1"), "{known:?}");
    }
}
