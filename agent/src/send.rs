//! Sends a crawl to the server over gRPC and waits until every batch is
//! acknowledged as durably stored.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arrow_array::RecordBatch;
use futures::StreamExt;
use periscope_proto::v1::Batch;
use periscope_proto::v1::ingest_client::IngestClient;
use periscope_proto::{CONTRACT_VERSION, ipc};
use tonic::transport::Endpoint;

use crate::crawl::table_of;

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("invalid server address {url:?}: {message}")]
    BadUrl { url: String, message: String },
    #[error("cannot reach server at {url}: {message}")]
    Unreachable { url: String, message: String },
    #[error("server at {url} refused the batches: {message}")]
    Refused { url: String, message: String },
    #[error("server at {url} did not accept this agent: {message}")]
    Unauthenticated { url: String, message: String },
    #[error("server at {url} acknowledged {acked} of {sent} batches before the stream ended")]
    Incomplete { url: String, acked: usize, sent: usize },
    #[error("internal error: cannot encode {table} as Arrow IPC: {message}")]
    Encode { table: &'static str, message: String },
}

/// What the server confirmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendReport {
    pub batches: usize,
    pub rows: u64,
    pub bytes: usize,
}

/// Renders an error and its sources on one line.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    with_causes(e.to_string(), e.source())
}

/// `s` followed by each cause not already in it.
fn with_causes(mut s: String, mut cur: Option<&(dyn std::error::Error + 'static)>) -> String {
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

/// Encodes and numbers `batches` for (agent, epoch): seq continues from
/// `*next_seq`. Bodies are Arrow IPC in one zstd frame.
pub fn number(
    agent_id: &str,
    epoch: u64,
    next_seq: &mut u64,
    batches: &[RecordBatch],
) -> Result<Vec<Batch>, SendError> {
    batches.iter().map(|b| number_one(agent_id, epoch, next_seq, b)).collect()
}

/// [`number`] of one batch.
pub fn number_one(agent_id: &str, epoch: u64, next_seq: &mut u64, b: &RecordBatch) -> Result<Batch, SendError> {
    let table = table_of(b);
    let arrow_ipc = ipc::encode_wire(b.schema_ref(), std::slice::from_ref(b))
        .map_err(|e| SendError::Encode { table: table.name, message: e.to_string() })?;
    *next_seq += 1;
    Ok(Batch {
        contract_version: CONTRACT_VERSION,
        agent_id: agent_id.to_string(),
        boot_epoch: epoch,
        seq: *next_seq,
        table: table.name.to_string(),
        rows: b.num_rows() as u64,
        arrow_ipc,
        compression: periscope_proto::v1::Compression::Zstd as i32,
    })
}

/// A fresh boot epoch: the start of this agent process's numbering.
pub fn new_epoch() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

/// Sends one crawl's batches and waits until every one is acknowledged.
pub async fn send(url: &str, agent_id: &str, batches: &[RecordBatch]) -> Result<SendReport, SendError> {
    let msgs = number(agent_id, new_epoch(), &mut 0, batches)?;
    send_numbered(url, None, msgs, |_| {}).await
}

/// Sends crawls' batches, encoding them one at a time as their rows are read
/// back (only the compressed bodies are held), and waits until every one is acknowledged.
pub async fn send_crawls(url: &str, agent_id: &str, crawls: &[crate::crawl::Crawl]) -> anyhow::Result<SendReport> {
    let (epoch, mut seq, mut msgs) = (new_epoch(), 0, Vec::new());
    for c in crawls {
        for b in c.batches.iter() {
            msgs.push(number_one(agent_id, epoch, &mut seq, &b?)?);
        }
    }
    Ok(send_numbered(url, None, msgs, |_| {}).await?)
}

/// `msg` as a request carrying the node key, when there is one.
fn authorized<T>(msg: T, node_key: Option<&str>) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    if let Some(v) = node_key.and_then(|k| format!("Bearer {k}").parse().ok()) {
        r.metadata_mut().insert("authorization", v);
    }
    r
}

fn status_error(url: &str, s: tonic::Status) -> SendError {
    // A bare "transport error" says little: add its causes (e.g. the TLS alert).
    let message = with_causes(s.message().to_string(), std::error::Error::source(&s));
    match s.code() {
        tonic::Code::Unavailable => SendError::Unreachable { url: url.into(), message },
        tonic::Code::Unauthenticated => SendError::Unauthenticated { url: url.into(), message },
        _ => SendError::Refused { url: url.into(), message },
    }
}

static TLS: std::sync::OnceLock<tonic::transport::ClientTlsConfig> = std::sync::OnceLock::new();

/// TLS for every connection this process makes to a server (https:// URLs):
/// the CA that signed the server's certificate, and for mTLS this agent's
/// certificate and key (its subject CN is the host it may write rows for).
/// PEM bytes. Call once, before sending.
pub fn use_tls(ca: Option<Vec<u8>>, identity: Option<(Vec<u8>, Vec<u8>)>) {
    use tonic::transport::{Certificate, ClientTlsConfig, Identity};
    let mut cfg = ClientTlsConfig::new();
    if let Some(ca) = ca {
        cfg = cfg.ca_certificate(Certificate::from_pem(ca));
    }
    if let Some((cert, key)) = identity {
        cfg = cfg.identity(Identity::from_pem(cert, key));
    }
    let _ = TLS.set(cfg);
}

async fn client(url: &str) -> Result<IngestClient<tonic::transport::Channel>, SendError> {
    let mut endpoint = Endpoint::from_shared(url.to_string())
        .map_err(|e| SendError::BadUrl { url: url.into(), message: chain(&e) })?
        .connect_timeout(Duration::from_secs(10));
    if let Some(tls) = TLS.get() {
        endpoint =
            endpoint.tls_config(tls.clone()).map_err(|e| SendError::BadUrl { url: url.into(), message: chain(&e) })?;
    }
    let channel =
        endpoint.connect().await.map_err(|e| SendError::Unreachable { url: url.into(), message: chain(&e) })?;
    Ok(IngestClient::new(channel)
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(periscope_proto::MAX_MESSAGE_BYTES))
}

/// Trades the enroll secret for a node key bound to `host`.
pub async fn enroll(url: &str, host: &str, secret: &str) -> Result<String, SendError> {
    let req = periscope_proto::v1::EnrollRequest { host: host.into(), enroll_secret: secret.into() };
    let r = client(url).await?.enroll(req).await.map_err(|s| status_error(url, s))?;
    Ok(r.into_inner().node_key)
}

/// Sends numbered batches over one stream, in order; `on_ack(i)` runs as
/// the i-th is acknowledged (durably stored by the server).
pub async fn send_numbered(
    url: &str,
    node_key: Option<&str>,
    msgs: Vec<Batch>,
    mut on_ack: impl FnMut(usize),
) -> Result<SendReport, SendError> {
    let mut client = client(url).await?;
    let bytes = msgs.iter().map(|m| m.arrow_ipc.len()).sum();
    let seqs: Vec<u64> = msgs.iter().map(|m| m.seq).collect();
    let sent = msgs.len();
    let refused = |s: tonic::Status| status_error(url, s);
    let mut acks = client.send(authorized(futures::stream::iter(msgs), node_key)).await.map_err(refused)?.into_inner();
    let mut acked = 0;
    let mut rows = 0;
    while let Some(ack) = acks.next().await {
        let ack = ack.map_err(refused)?;
        // The server answers in order, one ack per batch.
        if seqs.get(acked) != Some(&ack.seq) {
            return Err(SendError::Refused {
                url: url.into(),
                message: format!("acknowledged seq {} where {:?} was due", ack.seq, seqs.get(acked)),
            });
        }
        on_ack(acked);
        acked += 1;
        rows += ack.rows;
    }
    if acked != sent {
        return Err(SendError::Incomplete { url: url.into(), acked, sent });
    }
    Ok(SendReport { batches: sent, rows, bytes })
}

/// Of `image_ids`, the ones not to crawl: this host's crawl of them is on the
/// server already (another host's never counts: image rows are trusted per host).
pub async fn images_to_skip(
    url: &str,
    node_key: Option<&str>,
    agent_id: &str,
    image_ids: Vec<String>,
) -> Result<ImageAnswer, SendError> {
    let req = periscope_proto::v1::ImagesRequest { agent_id: agent_id.into(), image_ids };
    let r = client(url).await?.images(authorized(req, node_key)).await.map_err(|s| status_error(url, s))?.into_inner();
    Ok(ImageAnswer { skip: r.skip.into_iter().collect(), stored: r.stored.into_iter().collect() })
}

/// What the server said of a list of images.
#[derive(Debug, Default)]
pub struct ImageAnswer {
    /// Not to crawl: this host's crawl of them is stored.
    pub skip: std::collections::HashSet<String>,
    /// Stored: containers of these images may inherit from them.
    pub stored: std::collections::HashSet<String>,
}
