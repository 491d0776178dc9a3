//! Arrow Flight SQL front (`periscope serve --flight-listen`): read-only SQL
//! for Flight SQL clients — the ADBC driver, JDBC, DBeaver — with results as
//! Arrow. Clients authenticate with a SQL user's name and password (Basic, in
//! the handshake or on each call) and get a bearer token; catalog metadata
//! (catalogs, schemas, tables with their Arrow schemas, table types) and
//! SqlInfo let them browse. Queries run under the same sandbox as every remote
//! query ([`periscope_query::query::Limits`]).

use std::pin::Pin;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::sql::metadata::{SqlInfoData, SqlInfoDataBuilder};
use arrow_flight::sql::server::FlightSqlService;
use arrow_flight::sql::{
    CommandGetCatalogs, CommandGetDbSchemas, CommandGetSqlInfo, CommandGetTableTypes, CommandGetTables,
    CommandStatementQuery, ProstMessageExt, SqlInfo, TicketStatementQuery,
};
use arrow_flight::{FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest, HandshakeResponse, Ticket};
use arrow_schema::SchemaRef;
use futures::{Stream, TryStreamExt};
use prost::Message;
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status, Streaming};

use crate::sqlauth::SqlUsers;
use periscope_query::query::{self, Limits};
use periscope_store::store::Store;

pub const CATALOG: &str = "periscope";

pub struct FlightSql {
    pub store: Arc<Store>,
    pub users: Arc<SqlUsers>,
    pub limits: Limits,
}

type DoGetStream = Pin<Box<dyn Stream<Item = Result<arrow_flight::FlightData, Status>> + Send + 'static>>;

fn sql_info() -> &'static SqlInfoData {
    static INFO: std::sync::OnceLock<SqlInfoData> = std::sync::OnceLock::new();
    INFO.get_or_init(|| {
        let mut b = SqlInfoDataBuilder::new();
        b.append(SqlInfo::FlightSqlServerName, "Periscope");
        b.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
        b.append(SqlInfo::FlightSqlServerArrowVersion, "1.3");
        b.append(SqlInfo::FlightSqlServerReadOnly, true);
        b.append(SqlInfo::FlightSqlServerSql, true);
        b.append(SqlInfo::FlightSqlServerSubstrait, false);
        b.build().expect("static SqlInfo")
    })
}

fn internal(e: impl std::fmt::Display) -> Status {
    Status::internal(e.to_string())
}

/// A FlightInfo whose single endpoint (no location: "this server") redeems `ticket`.
fn info(schema: &arrow_schema::Schema, ticket: Vec<u8>, descriptor: FlightDescriptor) -> Result<FlightInfo, Status> {
    Ok(FlightInfo::new()
        .try_with_schema(schema)
        .map_err(internal)?
        .with_endpoint(FlightEndpoint::new().with_ticket(Ticket::new(ticket)))
        .with_descriptor(descriptor))
}

fn stream(schema: SchemaRef, batches: Vec<RecordBatch>) -> Response<DoGetStream> {
    let batches = futures::stream::iter(batches.into_iter().map(Ok::<_, FlightError>));
    let s = FlightDataEncoderBuilder::new().with_schema(schema).build(batches).map_err(Status::from);
    Response::new(Box::pin(s))
}

impl FlightSql {
    fn user<T>(&self, request: &Request<T>) -> Result<String, Status> {
        self.users.identify(request.metadata(), request.remote_addr().map(|a| a.ip()))
    }

    /// The sandbox of the request's user: the server's limits, and the hosts it may read.
    fn limits<T>(&self, request: &Request<T>) -> Result<query::Limits, Status> {
        let user = self.user(request)?;
        Ok(self.limits.scoped(self.users.scope(&user)))
    }

    /// Every table and view the SQL catalog holds: (schema, name, type, Arrow schema).
    async fn tables(&self, limits: &query::Limits) -> Result<Vec<(String, String, String, SchemaRef)>, Status> {
        let (_, batches) = query::run_on(
            self.store.snapshot(),
            "SELECT table_schema, table_name, table_type FROM information_schema.tables \
             ORDER BY table_schema, table_name",
            query::Access::ReadOnly,
            limits,
        )
        .await
        .map_err(internal)?;
        let ctx = periscope_query::catalog::context_with(self.store.snapshot(), None, limits.scope.as_ref())
            .await
            .map_err(internal)?;
        let mut out = Vec::new();
        for b in &batches {
            let col = |i| arrow_array::cast::AsArray::as_string::<i32>(b.column(i)).clone();
            let (schemas, names, types) = (col(0), col(1), col(2));
            for i in 0..b.num_rows() {
                let (schema, name) = (schemas.value(i), names.value(i));
                let provider = ctx
                    .table_provider(datafusion::common::TableReference::partial(schema, name))
                    .await
                    .map_err(internal)?;
                let kind = if types.value(i) == "VIEW" { "VIEW" } else { "TABLE" };
                out.push((schema.to_string(), name.to_string(), kind.to_string(), provider.schema()));
            }
        }
        Ok(out)
    }
}

#[tonic::async_trait]
impl FlightSqlService for FlightSql {
    type FlightService = FlightSql;

    async fn do_handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>>, Status> {
        let header =
            request.metadata().get("authorization").and_then(|v| v.to_str().ok()).ok_or_else(|| {
                Status::unauthenticated("handshake needs Basic credentials (a SQL user and password)")
            })?;
        let user = self.users.check_basic(header, request.remote_addr().map(|a| a.ip()))?;
        let token = self.users.issue(&user);
        let reply = HandshakeResponse { protocol_version: 0, payload: token.clone().into_bytes().into() };
        let mut response: Response<Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>> =
            Response::new(Box::pin(futures::stream::iter([Ok(reply)])));
        let bearer: MetadataValue<_> = format!("Bearer {token}").parse().map_err(internal)?;
        response.metadata_mut().insert("authorization", bearer);
        Ok(response)
    }

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let limits = self.limits(&request)?;
        // Planned here only for its result schema (refusals come back now, not at DoGet).
        let (snapshot, sql, l) = (self.store.snapshot(), query.query.clone(), limits.clone());
        let schema = on_time(&limits, query::own_thread(async move { query::plan_schema(snapshot, &sql, &l).await }))
            .await
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let ticket = TicketStatementQuery { statement_handle: query.query.into_bytes().into() };
        Ok(Response::new(info(&schema, ticket.as_any().encode_to_vec(), request.into_inner())?))
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let limits = self.limits(&request)?;
        let sql = String::from_utf8(ticket.statement_handle.to_vec())
            .map_err(|_| Status::invalid_argument("statement handle is not a query"))?;
        let snapshot = self.store.snapshot();
        let l = limits.clone();
        let run = async move { query::run_on(snapshot, &sql, query::Access::ReadOnly, &l).await };
        let mut timed = periscope_query::metrics::Timed::start("flight");
        let ran = on_time(&limits, query::own_thread(run)).await;
        timed.outcome = periscope_query::metrics::outcome(&ran);
        drop(timed);
        let (schema, batches) = ran.map_err(|e| Status::invalid_argument(e.to_string()))?;
        Ok(stream(schema, batches))
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.user(&request)?;
        let schema = query.into_builder().schema();
        Ok(Response::new(info(&schema, query.as_any().encode_to_vec(), request.into_inner())?))
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.user(&request)?;
        let mut b = query.into_builder();
        b.append(CATALOG);
        let schema = b.schema();
        Ok(stream(schema, vec![b.build().map_err(internal)?]))
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.user(&request)?;
        let schema = query.clone().into_builder().schema();
        Ok(Response::new(info(&schema, query.as_any().encode_to_vec(), request.into_inner())?))
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.user(&request)?;
        let mut b = query.into_builder();
        for s in ["information_schema", "public"] {
            b.append(CATALOG, s);
        }
        let schema = b.schema();
        Ok(stream(schema, vec![b.build().map_err(internal)?]))
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.user(&request)?;
        let schema = query.clone().into_builder().schema();
        Ok(Response::new(info(&schema, query.as_any().encode_to_vec(), request.into_inner())?))
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let limits = self.limits(&request)?;
        let mut b = query.into_builder();
        for (schema, name, kind, arrow) in self.tables(&limits).await? {
            b.append(CATALOG, &schema, &name, &kind, &arrow).map_err(internal)?;
        }
        let schema = b.schema();
        Ok(stream(schema, vec![b.build().map_err(internal)?]))
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.user(&request)?;
        Ok(Response::new(info(&table_types().schema(), query.as_any().encode_to_vec(), request.into_inner())?))
    }

    async fn do_get_table_types(
        &self,
        _query: CommandGetTableTypes,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.user(&request)?;
        let batch = table_types();
        Ok(stream(batch.schema(), vec![batch]))
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.user(&request)?;
        let schema = query.clone().into_builder(sql_info()).schema();
        Ok(Response::new(info(&schema, query.as_any().encode_to_vec(), request.into_inner())?))
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.user(&request)?;
        let b = query.into_builder(sql_info());
        let schema = b.schema();
        Ok(stream(schema, vec![b.build().map_err(internal)?]))
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}

fn table_types() -> RecordBatch {
    let schema = Arc::new(arrow_schema::Schema::new(vec![arrow_schema::Field::new(
        "table_type",
        arrow_schema::DataType::Utf8,
        false,
    )]));
    let types = arrow_array::StringArray::from(vec!["TABLE", "VIEW"]);
    RecordBatch::try_new(schema, vec![Arc::new(types)]).expect("static batch")
}

/// Serves Flight SQL on `listener` until `shutdown` completes.
pub async fn serve(
    flight: FlightSql,
    listener: tokio::net::TcpListener,
    tls: Option<crate::tls::TlsFiles>,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let mut builder = tonic::transport::Server::builder();
    if let Some(t) = tls {
        use tonic::transport::{Identity, ServerTlsConfig};
        builder = builder.tls_config(ServerTlsConfig::new().identity(Identity::from_pem(t.cert, t.key)))?;
    }
    builder
        .add_service(arrow_flight::flight_service_server::FlightServiceServer::new(flight))
        .serve_with_incoming_shutdown(tonic::transport::server::TcpIncoming::from(listener), shutdown)
        .await?;
    Ok(())
}
/// `work`'s answer, or a time-limit refusal when `limits` runs out first: the
/// query's own clock fires only when its work yields; this one answers on time
/// (dropping `work` stops the query at its next yield).
async fn on_time<T>(
    limits: &Limits,
    work: impl std::future::Future<Output = Result<T, query::QueryError>>,
) -> Result<T, query::QueryError> {
    tokio::time::timeout(limits.timeout, work).await.map_err(|_| {
        query::QueryError::Limit(format!(
            "query cancelled after {} s, the time limit for a query (--query-timeout-secs)",
            limits.timeout.as_secs()
        ))
    })?
}
