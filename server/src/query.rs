//! Running SQL over a data directory, locally or on behalf of a remote client.

use std::path::Path;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use datafusion::execution::context::SQLOptions;
use futures::StreamExt;
use periscope_proto::ipc;
use periscope_proto::v1::SqlRequest;
use periscope_proto::v1::query_client::QueryClient;

use crate::catalog;

/// Who is asking: remote users may only read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    ReadOnly,
    Local,
}

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("{0}")]
    Sql(#[from] datafusion::error::DataFusionError),
    #[error("cannot reach server at {url}: {message}")]
    Unreachable { url: String, message: String },
    #[error("server at {url}: {message}")]
    Server { url: String, message: String },
    #[error("bad result from server at {url}: {message}")]
    Decode { url: String, message: String },
}

/// Runs `sql` against the files under `data`.
pub async fn run(data: &Path, sql: &str, access: Access) -> Result<(SchemaRef, Vec<RecordBatch>), QueryError> {
    let ctx = catalog::context(data).await?;
    let options = match access {
        // Remote users read; DDL, DML and SET are refused before planning.
        Access::ReadOnly => SQLOptions::new().with_allow_ddl(false).with_allow_dml(false).with_allow_statements(false),
        Access::Local => SQLOptions::new(),
    };
    let df = ctx.sql_with_options(sql, options).await?;
    let schema = df.schema().inner().clone();
    let batches = df.collect().await?;
    Ok((schema, batches))
}

/// Runs `sql` on the server at `url`.
pub async fn remote(url: &str, sql: &str) -> Result<(SchemaRef, Vec<RecordBatch>), QueryError> {
    let unreachable = |m: String| QueryError::Unreachable { url: url.to_string(), message: m };
    let endpoint = tonic::transport::Endpoint::from_shared(url.to_string()).map_err(|e| unreachable(e.to_string()))?;
    let channel = endpoint.connect().await.map_err(|e| {
        let mut m = e.to_string();
        if let Some(s) = std::error::Error::source(&e) {
            m = format!("{m}: {s}");
        }
        unreachable(m)
    })?;
    let mut client = QueryClient::new(channel).max_decoding_message_size(crate::service::MAX_MESSAGE_BYTES);
    let server = |s: tonic::Status| QueryError::Server { url: url.to_string(), message: s.message().to_string() };
    let mut stream = client.sql(SqlRequest { sql: sql.to_string() }).await.map_err(server)?.into_inner();
    let mut schema = None;
    let mut batches = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(server)?;
        let (s, b) = ipc::decode(&chunk.arrow_ipc)
            .map_err(|e| QueryError::Decode { url: url.to_string(), message: e.to_string() })?;
        schema.get_or_insert(s);
        batches.extend(b);
    }
    let schema =
        schema.ok_or_else(|| QueryError::Decode { url: url.to_string(), message: "no schema in result".into() })?;
    Ok((schema, batches))
}
