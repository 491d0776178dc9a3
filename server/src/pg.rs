//! Postgres wire front (`periscope serve --pg-listen`): psql, Grafana,
//! Metabase and other Postgres clients query the fleet read-only.
//!
//! Built on datafusion-postgres (pgwire, DataFusion's pg_catalog emulation,
//! the extended query protocol) with Periscope's own pieces around it:
//! - login: a SQL user's password (cleartext password message; use TLS off loopback);
//! - read-only: anything but queries, EXPLAIN, SHOW, cursors, transactions and
//!   harmless session `SET`s is refused, and so is `SET datafusion.*`;
//! - limits: each connection has its own session, so its own memory pool of
//!   `--query-memory-bytes` without spilling (a connection runs one statement
//!   at a time, so this is a per-query limit; a refusal names the limit, and
//!   all sessions draw on `--sql-memory-bytes`) and its own session settings
//!   (`SET TIME ZONE` is the client's alone); each query is cancelled after
//!   `--query-timeout-secs`, rows streamed so far included; at most
//!   `MAX_CONNECTIONS` connections are served at once, later ones wait;
//! - each statement reads one snapshot of the store (pinned around its
//!   planning, where the tables are scanned), so a long-lived connection sees
//!   new crawls and no statement sees half of one.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use datafusion::common::ParamValues;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::Statement;
use datafusion_postgres::hooks::cursor::CursorStatementHook;
use datafusion_postgres::hooks::set_show::SetShowHook;
use datafusion_postgres::hooks::transactions::TransactionStatementHook;
use datafusion_postgres::hooks::{HookClient, QueryHook};
use datafusion_postgres::pgwire;
use datafusion_postgres::{DfSessionService, Parser};
use futures::{Sink, SinkExt, StreamExt};
use pgwire::api::auth::{
    DefaultServerParameterProvider, LoginInfo, StartupHandler, finish_authentication, protocol_negotiation,
    save_startup_parameters_to_metadata,
};
use pgwire::api::portal::Portal;
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::Response;
use pgwire::api::store::PortalStore;
use pgwire::api::{
    ClientInfo, ClientPortalStore, PgWireConnectionState, PgWireServerHandlers, PidSecretKeyGenerator,
    RandomPidSecretKeyGenerator,
};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::startup::Authentication;
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};

use crate::query::Limits;
use crate::service::TlsFiles;
use crate::sqlauth::SqlUsers;
use crate::store::Store;

fn user_error(code: &str, message: String) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new("ERROR".into(), code.into(), message)))
}

/// Whether a statement is a read a remote user may run; otherwise why not.
fn refusal(statement: &Statement) -> Option<String> {
    use datafusion::sql::sqlparser::ast::Set;
    match statement {
        Statement::Query(_)
        | Statement::Explain { .. }
        | Statement::ExplainTable { .. }
        | Statement::ShowVariable { .. }
        | Statement::ShowVariables { .. }
        | Statement::StartTransaction { .. }
        | Statement::Commit { .. }
        | Statement::Rollback { .. }
        | Statement::Declare { .. }
        | Statement::Fetch { .. }
        | Statement::Close { .. } => None,
        Statement::Set(set) => {
            let text = set.to_string().to_lowercase();
            let runtime = matches!(set, Set::SingleAssignment { .. } | Set::MultipleAssignments { .. })
                && text.contains("datafusion.");
            runtime.then(|| "SET of datafusion.* settings is refused: they apply to the whole server".to_string())
        }
        other => {
            let text = other.to_string();
            let kind: String = text.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
            Some(format!("Periscope is read-only over Postgres: {kind} … is refused; run SELECT queries"))
        }
    }
}

/// Refuses writes and server-wide settings before any other hook or the planner sees them.
struct ReadOnly;

#[async_trait]
impl QueryHook for ReadOnly {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        _ctx: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        refusal(statement).map(|m| Err(user_error("25006", m)))
    }

    async fn handle_extended_parse_query(
        &self,
        statement: &Statement,
        _ctx: &SessionContext,
        _client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        refusal(statement).map(|m| Err(user_error("25006", m)))
    }

    async fn handle_extended_query(
        &self,
        statement: &Statement,
        _plan: &LogicalPlan,
        _params: &ParamValues,
        _ctx: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        refusal(statement).map(|m| Err(user_error("25006", m)))
    }
}

/// datafusion-postgres's query handling with a time limit over planning and
/// over the rows streamed back.
struct Sandboxed {
    inner: Arc<DfSessionService>,
    /// The session's context, whose memory pool says which limit refused a query.
    ctx: Arc<SessionContext>,
    timeout: Duration,
    store: Arc<Store>,
}

fn cancelled(timeout: Duration) -> PgWireError {
    user_error(
        "57014",
        format!("query cancelled after {} s, the time limit for a query (--query-timeout-secs)", timeout.as_secs()),
    )
}

/// A query refused memory, in the words of the pool that refused it (which
/// limit, how much): DataFusion's own message names only the operator.
fn worded(e: PgWireError, ctx: &SessionContext) -> PgWireError {
    let exhausted = match &e {
        PgWireError::UserError(info) => info.message.contains("Resources exhausted"),
        other => other.to_string().contains("Resources exhausted"),
    };
    match crate::query::take_refusal(ctx) {
        Some(why) if exhausted => user_error("53200", why),
        _ => e,
    }
}

impl Sandboxed {
    fn bounded(&self, response: Response, deadline: tokio::time::Instant) -> Response {
        let Response::Query(mut q) = response else { return response };
        let timeout = self.timeout;
        let ctx = self.ctx.clone();
        let rows = std::mem::replace(&mut q.data_rows, Box::pin(futures::stream::empty()));
        q.data_rows = Box::pin(futures::stream::unfold(Some(rows), move |rows| {
            let ctx = ctx.clone();
            async move {
                let mut rows = rows?;
                match tokio::time::timeout_at(deadline, rows.next()).await {
                    Ok(Some(item)) => Some((item.map_err(|e| worded(e, &ctx)), Some(rows))),
                    Ok(None) => None,
                    // Dropping the rows stream cancels the query's execution.
                    Err(_) => Some((Err(cancelled(timeout)), None)),
                }
            }
        }));
        Response::Query(q)
    }
}

#[async_trait]
impl SimpleQueryHandler for Sandboxed {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let deadline = tokio::time::Instant::now() + self.timeout;
        // A refusal noted for an earlier statement is not this one's.
        crate::query::take_refusal(&self.ctx);
        // Every table of the statement reads one snapshot of the store.
        let pinned = Arc::new(self.store.snapshot());
        let work = crate::catalog::PINNED.scope(pinned, SimpleQueryHandler::do_query(&*self.inner, client, query));
        let responses = tokio::time::timeout_at(deadline, work)
            .await
            .map_err(|_| cancelled(self.timeout))?
            .map_err(|e| worded(e, &self.ctx))?;
        Ok(responses.into_iter().map(|r| self.bounded(r, deadline)).collect())
    }
}

#[async_trait]
impl ExtendedQueryHandler for Sandboxed {
    type Statement = <DfSessionService as ExtendedQueryHandler>::Statement;
    type QueryParser = Parser;

    fn query_parser(&self) -> Arc<Self::QueryParser> {
        self.inner.query_parser()
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Self::Statement>,
        max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let deadline = tokio::time::Instant::now() + self.timeout;
        crate::query::take_refusal(&self.ctx);
        let pinned = Arc::new(self.store.snapshot());
        let work = crate::catalog::PINNED
            .scope(pinned, ExtendedQueryHandler::do_query(&*self.inner, client, portal, max_rows));
        let response = tokio::time::timeout_at(deadline, work)
            .await
            .map_err(|_| cancelled(self.timeout))?
            .map_err(|e| worded(e, &self.ctx))?;
        Ok(self.bounded(response, deadline))
    }
}

/// Password login for SQL users (Postgres cleartext password exchange).
struct PasswordLogin {
    users: Arc<SqlUsers>,
    parameters: DefaultServerParameterProvider,
    keys: RandomPidSecretKeyGenerator,
}

#[async_trait]
impl StartupHandler for PasswordLogin {
    async fn on_startup<C>(&self, client: &mut C, message: PgWireFrontendMessage) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match message {
            PgWireFrontendMessage::Startup(ref startup) => {
                protocol_negotiation(client, startup).await?;
                save_startup_parameters_to_metadata(client, startup);
                client.set_state(PgWireConnectionState::AuthenticationInProgress);
                client.send(PgWireBackendMessage::Authentication(Authentication::CleartextPassword)).await?;
            }
            PgWireFrontendMessage::PasswordMessageFamily(pwd) => {
                let pwd = pwd.into_password()?;
                let user = LoginInfo::from_client_info(client).user().unwrap_or_default().to_string();
                if self.users.check(&user, &pwd.password).is_err() {
                    return Err(PgWireError::InvalidPassword(user));
                }
                let (pid, key) = self.keys.generate(client);
                client.set_pid_and_secret_key(pid, key);
                finish_authentication(client, &self.parameters).await?;
            }
            _ => {}
        }
        Ok(())
    }
}

struct Handlers {
    queries: Arc<Sandboxed>,
    login: Arc<PasswordLogin>,
}

impl PgWireServerHandlers for Handlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.queries.clone()
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.queries.clone()
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        self.login.clone()
    }
}

fn tls_acceptor(t: &TlsFiles) -> anyhow::Result<tokio_rustls::TlsAcceptor> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_slice_iter(&t.cert).collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_slice(&t.key)?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Connections served at once; each holds a session with its own memory pool.
pub const MAX_CONNECTIONS: usize = 32;

/// A connection's session: the live catalog with pg_catalog, the read-only
/// hook first, in a runtime with its own memory pool.
async fn session(store: &Arc<Store>, limits: &Limits) -> anyhow::Result<Arc<Sandboxed>> {
    let keep_for = limits.timeout + Duration::from_secs(60);
    let ctx = crate::catalog::live_context(store.clone(), limits.runtime()?, keep_for).await?;
    datafusion_postgres::datafusion_pg_catalog::pg_catalog::setup_pg_catalog(
        &ctx,
        crate::catalog::CATALOG,
        datafusion_postgres::datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider,
    )
    .map_err(|e| anyhow::anyhow!("setting up pg_catalog: {e}"))?;
    let hooks: Vec<Arc<dyn QueryHook>> = vec![
        Arc::new(ReadOnly),
        Arc::new(CursorStatementHook),
        Arc::new(SetShowHook),
        Arc::new(TransactionStatementHook),
    ];
    let ctx = Arc::new(ctx);
    let inner = Arc::new(DfSessionService::new_with_hooks(ctx.clone(), hooks));
    Ok(Arc::new(Sandboxed { inner, ctx, timeout: limits.timeout, store: store.clone() }))
}

/// Serves the Postgres protocol on `listener` until `shutdown` completes.
pub async fn serve(
    store: Arc<Store>,
    users: Arc<SqlUsers>,
    limits: Limits,
    listener: tokio::net::TcpListener,
    tls: Option<TlsFiles>,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let mut parameters = DefaultServerParameterProvider::default();
    parameters.default_transaction_read_only = true;
    parameters.is_superuser = false;
    let login = Arc::new(PasswordLogin { users, parameters, keys: RandomPidSecretKeyGenerator::default() });
    // One session is built now, so that a catalog problem stops the server at start, not at a client's first query.
    drop(session(&store, &limits).await?);
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let tls = tls.as_ref().map(tls_acceptor).transpose()?;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => return Ok(()),
            accepted = listener.accept() => {
                let (socket, addr) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!("postgres front: accept: {e}");
                        continue;
                    }
                };
                let (store, limits, login, tls, slots) =
                    (store.clone(), limits.clone(), login.clone(), tls.clone(), slots.clone());
                tokio::spawn(async move {
                    let Ok(_slot) = slots.acquire_owned().await else { return };
                    let queries = match session(&store, &limits).await {
                        Ok(q) => q,
                        Err(e) => {
                            tracing::error!(%addr, "postgres front: cannot build a session: {e}");
                            return;
                        }
                    };
                    let handlers = Arc::new(Handlers { queries, login });
                    if let Err(e) = pgwire::tokio::process_socket(socket, tls, handlers).await {
                        tracing::debug!(%addr, "postgres front: connection ended: {e}");
                    }
                });
            }
        }
    }
}
