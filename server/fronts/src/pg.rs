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
//!   `--query-timeout-secs`, rows streamed so far included;
//! - connections: a connection takes one of `MAX_CONNECTIONS` slots only once
//!   it has logged in (beyond them, login says "too many connections"); at most
//!   `MAX_HANDSHAKES` may be logging in at once, each for `HANDSHAKE_TIMEOUT`;
//!   wrong passwords from one address back off (see [`crate::throttle`]);
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

use crate::sqlauth::SqlUsers;
use crate::tls::TlsFiles;
use periscope_query::query::Limits;
use periscope_store::store::Store;

fn user_error(code: &str, message: String) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new("ERROR".into(), code.into(), message)))
}

/// Session settings a remote user may change: what psql, JDBC, Grafana and
/// Metabase send on connect. Each is handled by the session itself (time
/// zone, output formats) or ignored; none reaches DataFusion's own options,
/// which include the session's memory pool and its spill directory.
const SETTABLE: &[&str] = &[
    "application_name",
    "bytea_output",
    "client_encoding",
    "client_min_messages",
    "datestyle",
    "extra_float_digits",
    "intervalstyle",
    "search_path",
    "standard_conforming_strings",
    "statement_timeout",
    "timezone",
];

/// A setting's name as Postgres resolves it: identifiers joined by dots,
/// quotes removed and case folded, so `"DataFusion".runtime.x` is `datafusion.runtime.x`.
fn setting_name(name: &datafusion::sql::sqlparser::ast::ObjectName) -> String {
    let parts: Vec<String> = name
        .0
        .iter()
        .map(|p| match p.as_ident() {
            Some(i) => i.value.to_lowercase(),
            None => p.to_string().to_lowercase(),
        })
        .collect();
    parts.join(".")
}

fn refuse_setting(name: &str) -> Option<String> {
    (!SETTABLE.contains(&name)).then(|| {
        format!("SET {name} is refused: a remote session may set only {} (and the time zone)", SETTABLE.join(", "))
    })
}

/// Whether a query only reads: no `SELECT … INTO` (which creates a table)
/// and no data-modifying statement in its body or its CTEs.
fn query_refusal(q: &datafusion::sql::sqlparser::ast::Query) -> Option<String> {
    use datafusion::sql::sqlparser::ast::SetExpr;
    fn body(e: &SetExpr) -> Option<String> {
        match e {
            SetExpr::Select(s) if s.into.is_some() => {
                Some("SELECT … INTO creates a table: Periscope is read-only over Postgres".into())
            }
            SetExpr::Select(_) | SetExpr::Values(_) | SetExpr::Table(_) => None,
            SetExpr::Query(q) => query_refusal(q),
            SetExpr::SetOperation { left, right, .. } => body(left).or_else(|| body(right)),
            SetExpr::Insert(_) | SetExpr::Update(_) | SetExpr::Delete(_) | SetExpr::Merge(_) => {
                Some("a data-modifying statement is refused: Periscope is read-only over Postgres".into())
            }
        }
    }
    let ctes = q.with.iter().flat_map(|w| w.cte_tables.iter());
    ctes.map(|c| query_refusal(&c.query)).find_map(|r| r).or_else(|| body(&q.body))
}

/// Whether a statement is a read a remote user may run; otherwise why not.
/// Decided on the parsed statement, never on its text.
fn refusal(statement: &Statement) -> Option<String> {
    use datafusion::sql::sqlparser::ast::Set;
    match statement {
        Statement::Query(q) => query_refusal(q),
        // EXPLAIN ANALYZE runs the statement it explains.
        Statement::Explain { statement, .. } => refusal(statement),
        Statement::Declare { stmts } => stmts.iter().filter_map(|d| d.for_query.as_deref()).find_map(query_refusal),
        Statement::ExplainTable { .. }
        | Statement::ShowVariable { .. }
        | Statement::ShowVariables { .. }
        | Statement::StartTransaction { .. }
        | Statement::Commit { .. }
        | Statement::Rollback { .. }
        | Statement::Fetch { .. }
        | Statement::Close { .. } => None,
        Statement::Set(set) => match set {
            Set::SetTimeZone { .. } | Set::SetNames { .. } | Set::SetNamesDefault {} | Set::SetTransaction { .. } => {
                None
            }
            Set::SingleAssignment { variable, hivevar: false, .. } => refuse_setting(&setting_name(variable)),
            Set::MultipleAssignments { assignments } => {
                assignments.iter().find_map(|a| refuse_setting(&setting_name(&a.name)))
            }
            other => Some(format!("{other} is refused: a remote session may not change its role or authorization")),
        },
        other => {
            let text = other.to_string();
            let kind: String = text.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
            Some(format!("Periscope is read-only over Postgres: {kind} … is refused; run SELECT queries"))
        }
    }
}

/// Refuses writes and server-wide settings before any other hook or the planner sees them.
struct ReadOnly {
    /// The session's user is confined to some hosts: no EXPLAIN (see [`periscope_query::query::SCOPED_EXPLAIN`]).
    scoped: bool,
}

impl ReadOnly {
    fn refusal(&self, statement: &Statement) -> Option<String> {
        if self.scoped && matches!(statement, Statement::Explain { .. }) {
            return Some(periscope_query::query::SCOPED_EXPLAIN.into());
        }
        refusal(statement)
    }
}

#[async_trait]
impl QueryHook for ReadOnly {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        _ctx: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        self.refusal(statement).map(|m| Err(user_error("25006", m)))
    }

    async fn handle_extended_parse_query(
        &self,
        statement: &Statement,
        _ctx: &SessionContext,
        _client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        self.refusal(statement).map(|m| Err(user_error("25006", m)))
    }

    async fn handle_extended_query(
        &self,
        statement: &Statement,
        _plan: &LogicalPlan,
        _params: &ParamValues,
        _ctx: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        self.refusal(statement).map(|m| Err(user_error("25006", m)))
    }
}

/// A logged-in connection's session.
struct Session {
    inner: Arc<DfSessionService>,
    /// The session's context, whose memory pool says which limit refused a query.
    ctx: Arc<SessionContext>,
}

/// datafusion-postgres's query handling with a time limit over planning and
/// over the rows streamed back. The session is built at login, not at accept:
/// a socket that never logs in costs no catalog.
struct Sandboxed {
    session: Arc<std::sync::OnceLock<Session>>,
    /// The parser handed out before login (pgwire asks for one up front; no statement reaches it).
    parser: Arc<Parser>,
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
    match periscope_query::query::take_refusal(ctx) {
        Some(why) if exhausted => user_error("53200", why),
        _ => e,
    }
}

/// A statement whose engine panicked (see [`periscope_query::query::unpanicked`]): internal_error.
fn failed(e: periscope_query::query::QueryError) -> PgWireError {
    user_error("XX000", e.to_string())
}

impl Sandboxed {
    fn session(&self) -> PgWireResult<&Session> {
        self.session.get().ok_or_else(|| user_error("28000", "not logged in".into()))
    }

    /// Runs `work`, one statement of `session`, by `deadline`, every table it
    /// reads seeing one snapshot of the store.
    async fn statement<T>(
        &self,
        session: &Session,
        deadline: tokio::time::Instant,
        work: impl std::future::Future<Output = PgWireResult<T>>,
    ) -> PgWireResult<T> {
        // A refusal noted for an earlier statement is not this one's.
        periscope_query::query::take_refusal(&session.ctx);
        let pinned = Arc::new(self.store.snapshot());
        let work = periscope_query::catalog::PINNED.scope(pinned, periscope_query::query::unpanicked(work));
        let mut timed = periscope_query::metrics::Timed::start("pg");
        let done = tokio::time::timeout_at(deadline, work)
            .await
            .map_err(|_| cancelled(self.timeout))
            .and_then(|r| r.map_err(failed))
            .and_then(|r| r.map_err(|e| worded(e, &session.ctx)));
        timed.outcome = match &done {
            Ok(_) => "ok",
            // 57014: the time limit; 53200: a memory limit (see `cancelled`, `worded`).
            Err(PgWireError::UserError(info)) if info.code == "57014" || info.code == "53200" => "refused",
            Err(_) => "error",
        };
        done
    }

    fn bounded(&self, response: Response, deadline: tokio::time::Instant) -> PgWireResult<Response> {
        let Response::Query(mut q) = response else { return Ok(response) };
        let timeout = self.timeout;
        let ctx = self.session()?.ctx.clone();
        let rows = std::mem::replace(&mut q.data_rows, Box::pin(futures::stream::empty()));
        q.data_rows = Box::pin(futures::stream::unfold(Some(rows), move |rows| {
            let ctx = ctx.clone();
            async move {
                let mut rows = rows?;
                match tokio::time::timeout_at(deadline, periscope_query::query::unpanicked(rows.next())).await {
                    Ok(Ok(Some(item))) => Some((item.map_err(|e| worded(e, &ctx)), Some(rows))),
                    Ok(Ok(None)) => None,
                    Ok(Err(e)) => Some((Err(failed(e)), None)),
                    // Dropping the rows stream cancels the query's execution.
                    Err(_) => Some((Err(cancelled(timeout)), None)),
                }
            }
        }));
        Ok(Response::Query(q))
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
        let session = self.session()?;
        let work = SimpleQueryHandler::do_query(&*session.inner, client, query);
        let responses = self.statement(session, deadline, work).await?;
        responses.into_iter().map(|r| self.bounded(r, deadline)).collect()
    }
}

#[async_trait]
impl ExtendedQueryHandler for Sandboxed {
    type Statement = <DfSessionService as ExtendedQueryHandler>::Statement;
    type QueryParser = Parser;

    fn query_parser(&self) -> Arc<Self::QueryParser> {
        match self.session.get() {
            Some(s) => s.inner.query_parser(),
            None => self.parser.clone(),
        }
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
        let session = self.session()?;
        let work = ExtendedQueryHandler::do_query(&*session.inner, client, portal, max_rows);
        let response = self.statement(session, deadline, work).await?;
        self.bounded(response, deadline)
    }
}

/// What every connection's login shares: the users, the server parameters,
/// the connection slots, and what a session is built from.
struct Login {
    users: Arc<SqlUsers>,
    parameters: DefaultServerParameterProvider,
    keys: RandomPidSecretKeyGenerator,
    /// Authenticated connections served at once ([`MAX_CONNECTIONS`]).
    slots: Arc<tokio::sync::Semaphore>,
    store: Arc<Store>,
    limits: Limits,
}

/// Connections logging in: at most [`MAX_HANDSHAKES`] in all and
/// [`MAX_HANDSHAKES_PER_SOURCE`] from one address, so one client holding
/// sockets open cannot keep the others from logging in.
#[derive(Default)]
struct Handshakes(std::sync::Mutex<(usize, std::collections::HashMap<std::net::IpAddr, usize>)>);

/// A handshake in progress, counted until dropped.
struct Handshake {
    all: Arc<Handshakes>,
    from: std::net::IpAddr,
}

impl Handshakes {
    fn enter(self: &Arc<Self>, from: std::net::IpAddr) -> Option<Handshake> {
        let mut g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let mine = g.1.get(&from).copied().unwrap_or(0);
        if g.0 >= MAX_HANDSHAKES || mine >= MAX_HANDSHAKES_PER_SOURCE {
            return None;
        }
        g.0 += 1;
        g.1.insert(from, mine + 1);
        Some(Handshake { all: self.clone(), from })
    }
}

impl Drop for Handshake {
    fn drop(&mut self) {
        let mut g = self.all.0.lock().unwrap_or_else(|e| e.into_inner());
        g.0 -= 1;
        if let Some(n) = g.1.get_mut(&self.from) {
            *n -= 1;
            if *n == 0 {
                g.1.remove(&self.from);
            }
        }
    }
}

/// One connection's password login (Postgres cleartext password exchange).
/// It takes a connection slot only once the password is right, so sockets
/// that never log in cannot lock users out.
struct PasswordLogin {
    shared: Arc<Login>,
    /// The connection's slot once it logged in; given back when the connection ends.
    slot: std::sync::Mutex<Option<tokio::sync::OwnedSemaphorePermit>>,
    /// The handshake's place ([`Handshakes`]), given back at login.
    handshake: std::sync::Mutex<Option<Handshake>>,
    /// The session, built once the password is right.
    session: Arc<std::sync::OnceLock<Session>>,
}

impl PasswordLogin {
    fn logged_in(&self) -> bool {
        self.slot.lock().unwrap_or_else(|e| e.into_inner()).is_some()
    }
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
                let login = &self.shared;
                if let Err(e) = login.users.check(&user, &pwd.password, Some(client.socket_addr().ip())) {
                    return Err(match e.code() {
                        tonic::Code::Unavailable => user_error("53300", e.message().to_string()),
                        _ => PgWireError::InvalidPassword(user),
                    });
                }
                let slot = login.slots.clone().try_acquire_owned().map_err(|_| {
                    user_error(
                        "53300",
                        format!("too many connections: {MAX_CONNECTIONS} are being served; retry later"),
                    )
                })?;
                let session = session(&login.store, &login.limits.scoped(login.users.scope(&user)))
                    .await
                    .map_err(|e| user_error("XX000", format!("cannot build a session: {e}")))?;
                let _ = self.session.set(session);
                *self.slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(slot);
                self.handshake.lock().unwrap_or_else(|e| e.into_inner()).take();
                let (pid, key) = login.keys.generate(client);
                client.set_pid_and_secret_key(pid, key);
                finish_authentication(client, &login.parameters).await?;
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

/// Logged-in connections served at once; each holds a session with its own
/// memory pool. One more is refused at login ("too many connections").
pub const MAX_CONNECTIONS: usize = 32;
/// Connections in their login handshake at once; more are closed on accept.
pub const MAX_HANDSHAKES: usize = 64;
/// Connections in their login handshake at once from one address.
pub const MAX_HANDSHAKES_PER_SOURCE: usize = 8;
/// How long a connection may take to log in.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection's session: the live catalog with pg_catalog, the read-only
/// hook first, in a runtime with its own memory pool.
async fn session(store: &Arc<Store>, limits: &Limits) -> anyhow::Result<Session> {
    let keep_for = limits.timeout + Duration::from_secs(60);
    let ctx = periscope_query::catalog::live_context(store.clone(), limits.runtime()?, keep_for, limits.scope.as_ref())
        .await?;
    datafusion_postgres::datafusion_pg_catalog::pg_catalog::setup_pg_catalog(
        &ctx,
        periscope_query::catalog::CATALOG,
        datafusion_postgres::datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider,
    )
    .map_err(|e| anyhow::anyhow!("setting up pg_catalog: {e}"))?;
    let hooks: Vec<Arc<dyn QueryHook>> = vec![
        Arc::new(ReadOnly { scoped: limits.scope.is_some() }),
        Arc::new(CursorStatementHook),
        Arc::new(SetShowHook),
        Arc::new(TransactionStatementHook),
    ];
    let ctx = Arc::new(ctx);
    let inner = Arc::new(DfSessionService::new_with_hooks(ctx.clone(), hooks));
    // The session's own catalog aside, what its statements hold counts against the
    // query limit from here on, across statements: an open cursor's buffers stay charged.
    periscope_query::account::restart();
    Ok(Session { inner, ctx })
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
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    // One session is built now, so that a catalog problem stops the server at start, not at a client's first query.
    drop(session(&store, &limits).await?);
    let keys = RandomPidSecretKeyGenerator::default();
    let login = Arc::new(Login { users, parameters, keys, slots, store: store.clone(), limits: limits.clone() });
    let parser =
        DfSessionService::new_with_hooks(Arc::new(SessionContext::new()), vec![Arc::new(ReadOnly { scoped: true })])
            .query_parser();
    let handshakes = Arc::new(Handshakes::default());
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
                let Some(handshake) = handshakes.enter(addr.ip()) else {
                    tracing::warn!(%addr, "postgres front: too many logins in progress (from this address or all); closed");
                    continue;
                };
                let session = Arc::new(std::sync::OnceLock::new());
                let login = Arc::new(PasswordLogin {
                    shared: login.clone(),
                    slot: Default::default(),
                    handshake: std::sync::Mutex::new(Some(handshake)),
                    session: session.clone(),
                });
                let queries = Arc::new(Sandboxed { session, parser: parser.clone(), timeout: limits.timeout, store: store.clone() });
                let tls = tls.clone();
                // Each connection on a thread of its own: its queries' work too (see `own_thread`).
                let socket = match socket.into_std() {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!("postgres front: {e}");
                        continue;
                    }
                };
                let started = periscope_query::query::spawn_own_thread(false, async move {
                    let Ok(socket) = tokio::net::TcpStream::from_std(socket) else { return };
                    let handlers = Arc::new(Handlers { queries, login: login.clone() });
                    let conn = pgwire::tokio::process_socket(socket, tls, handlers);
                    tokio::pin!(conn);
                    // A connection that has not logged in when the handshake time is up is closed.
                    let ended = tokio::select! {
                        r = &mut conn => Some(r),
                        _ = tokio::time::sleep(HANDSHAKE_TIMEOUT) => None,
                    };
                    let ended = match ended {
                        Some(r) => r,
                        None if login.logged_in() => conn.await,
                        None => {
                            tracing::debug!(%addr, "postgres front: no login within {HANDSHAKE_TIMEOUT:?}; closed");
                            return;
                        }
                    };
                    if let Err(e) = ended {
                        tracing::debug!(%addr, "postgres front: connection ended: {e}");
                    }
                });
                if let Err(e) = started {
                    tracing::warn!(%addr, "postgres front: {e}");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser as SqlParser;

    use super::refusal;

    fn verdict(sql: &str) -> Option<String> {
        let mut parsed = SqlParser::parse_sql(&PostgreSqlDialect {}, sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        assert_eq!(parsed.len(), 1, "{sql}");
        refusal(&parsed.remove(0))
    }

    #[test]
    fn reads_and_the_settings_clients_send_pass() {
        for sql in [
            "SELECT 1",
            "WITH x AS (SELECT 1 AS a) SELECT a FROM x UNION SELECT 2",
            "EXPLAIN SELECT * FROM packages",
            "SHOW TIME ZONE",
            "BEGIN",
            "COMMIT",
            "SET TIME ZONE 'UTC'",
            "SET timezone TO 'UTC'",
            "SET extra_float_digits = 3",
            "SET application_name = 'PostgreSQL JDBC Driver'",
            "SET \"Application_Name\" = 'x'",
            "SET SESSION statement_timeout = 1000",
            "SET client_encoding TO 'UTF8'",
            "SET NAMES 'UTF8'",
            "SET TRANSACTION ISOLATION LEVEL READ COMMITTED",
            "DECLARE c CURSOR FOR SELECT 1",
        ] {
            assert_eq!(verdict(sql), None, "{sql}");
        }
    }

    /// Issue 18 items 6 and 8: the old check matched text, so quoting or
    /// spacing the name let a client replace its session's memory pool or
    /// spill directory, and `SELECT … INTO` created tables.
    #[test]
    fn settings_and_writes_are_refused_however_they_are_spelled() {
        for sql in [
            "SET datafusion.runtime.memory_limit = '8G'",
            "SET \"datafusion\".runtime.memory_limit = '8G'",
            "SET \"datafusion\".\"runtime\".\"temp_directory\" = '/tmp/x'",
            "SET DataFusion.Execution.target_partitions = 1000",
            "SET LOCAL datafusion.execution.batch_size = 1",
            "SET some_unknown_setting = 1",
            "SET ROLE postgres",
            "SET SESSION AUTHORIZATION postgres",
            "SELECT 1 INTO stolen",
            "SELECT * INTO stolen FROM packages",
            "WITH x AS (SELECT 1) SELECT * INTO stolen FROM x",
            "SELECT 1 UNION SELECT 2 INTO stolen",
            "EXPLAIN ANALYZE SELECT 1 INTO stolen",
            "EXPLAIN ANALYZE INSERT INTO crawls SELECT * FROM crawls",
            "DECLARE c CURSOR FOR SELECT 1 INTO stolen",
            "INSERT INTO crawls SELECT * FROM crawls",
            "CREATE TABLE t AS SELECT 1",
            "RESET ALL",
        ] {
            assert!(verdict(sql).is_some(), "{sql} was not refused");
        }
    }
}
