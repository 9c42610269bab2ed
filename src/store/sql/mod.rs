//! The storage logic, written once over sqlx and instantiated per backend.
//!
//! Both schemas store ids as UUIDs and times as microseconds in a 64-bit
//! integer, so the statements are plain SQL both engines accept; the few
//! real differences (substring search, error codes, notifications) go
//! through [`Dialect`]. The sqlx capabilities the statements need are stated
//! once, on the blanket impls of [`Exec`] and [`Record`]; code generic over a
//! [`Dialect`] needs no other bound.
//!
//! One file per aggregate: `sessions`, `messages` (and their events),
//! `reads`, `presence`, `tickets`, plus the notice `bus`.

mod appends;
mod bus;
mod messages;
mod presence;
mod reads;
mod sessions;
mod tickets;
mod webhooks;

use super::breaker::Breaker;
use super::{CommitOutcome, Store, StoreError, StoreStats};
use crate::domain::event::{Notice, SessionChange};
use crate::domain::ids::{MessageId, SessionId, TenantId, UserId};
use crate::domain::message::{Message, SearchTerm};
use crate::domain::page::{Page, PagePlan, Paged, Scan};
use crate::domain::session::{Session, SessionStatus};
use crate::domain::time::Timestamp;
use crate::domain::webhook::{EventType, OutboxEvent};
use crate::metrics::{ErrorLabels, Metrics};
use async_trait::async_trait;
use futures_util::future::BoxFuture;
use sqlx::error::DatabaseError;
use sqlx::pool::PoolConnection;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Row, Type};
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::{Mutex, PoisonError};
use tokio::sync::broadcast;
use uuid::Uuid;

pub(super) use messages::message_scan;

/// What differs between the SQL engines.
pub trait Dialect: Exec + Database<Row: Record> {
    /// Writes the placeholder of the `n`th (1-based) bound value.
    fn placeholder(n: usize, out: &mut String);

    /// Adds `AND <folded text contains term>` using the engine's substring index.
    fn push_term_filter(qb: &mut QueryBuilder<Self>, term: &SearchTerm);

    /// The function giving the position of a substring (`instr`, `strpos`).
    const SUBSTRING_POSITION: &'static str;

    /// Writer tasks committing batches of messages (sessions spread over them).
    const WRITERS: usize;

    /// Appended to a `SELECT` that must lock the rows it reads until commit.
    const LOCK_ROWS: &'static str;

    /// Whether a term search should first test the session's own rows
    /// before using the substring index (`false`: the engine's planner
    /// weighs the index against the session's rows itself).
    const WINDOWED_SEARCH: bool;

    /// Whether a database error is a violation of this constraint (by its
    /// name, never "any unique violation").
    fn violates(err: &dyn DatabaseError, constraint: Constraint) -> bool;

    /// Whether a database error means "try again later" rather than a bug.
    fn is_transient(err: &dyn DatabaseError) -> bool;

    /// Whether a (transient) database error means the database itself is
    /// unreachable, so other requests should not even try for a moment.
    fn is_outage(err: &dyn DatabaseError) -> bool;

    /// The `LISTEN/NOTIFY` channel, on engines that carry notices between
    /// nodes; notices are then sent inside the transaction (delivered on
    /// commit only). `None`: in-process delivery after commit.
    const NOTIFY_CHANNEL: Option<&'static str>;

    /// Whether a connection-pool timeout means the server is unreachable
    /// (rather than every connection being busy).
    const POOL_TIMEOUT_IS_OUTAGE: bool;

    /// How to ask for a query plan: the statement prefix, settings for the
    /// same transaction, and the column holding the plan's lines.
    const EXPLAIN: Explain;

    /// On engines where a COMMIT can be sent and its answer lost (a server
    /// across a network): the statement that names the current transaction
    /// (column `xid`), and the function that tells what became of one.
    /// `None` for a local file, whose COMMIT either succeeds or fails and
    /// rolls back, never in between.
    const TRANSACTION_IDS: Option<TransactionIds>;

    /// What the webhook outbox and delivery claims need from the engine.
    const WEBHOOKS: WebhookSql;
}

/// How an engine names transactions and reports their outcome.
pub struct TransactionIds {
    /// Returns the current transaction's id as `xid`.
    pub current: &'static str,
    /// A function of that id returning `committed`, `aborted` or `in progress`.
    pub status_function: &'static str,
}

/// Constraints whose violation means something to the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Constraint {
    /// `sessions_one_open_per_tenant`: the tenant already has an OPEN session.
    OneOpenSessionPerTenant,
}

/// How an engine serves the webhook worker (see [`Dialect::WEBHOOKS`]).
pub struct WebhookSql {
    /// Row locks (`FOR UPDATE`, `SKIP LOCKED`) exist: several nodes share the
    /// database. Without them (SQLite) one writer serialises everything anyway.
    pub row_locks: bool,
    /// The outbox column in insertion order.
    pub outbox_order: &'static str,
    /// A statement answering `locked` = 1 if this transaction may fan the
    /// outbox out (one node at a time, so a session's events keep their
    /// order); `None` where transactions are serialised anyway.
    pub dispatch_lock: Option<&'static str>,
}

/// How an engine explains a query (see [`Dialect::EXPLAIN`]).
pub struct Explain {
    /// Put before the statement.
    pub prefix: &'static str,
    /// Run first, in the same transaction.
    pub setup: &'static [&'static str],
    /// The column of each plan line.
    pub column: &'static str,
}

/// Runs a built statement on a connection. Implemented once for every
/// sqlx database that can bind the values of [`Value`].
pub trait Exec: Database {
    /// Every row.
    fn fetch_all<'c>(
        conn: &'c mut Self::Connection,
        qb: &'c QueryBuilder<Self>,
    ) -> BoxFuture<'c, Result<Vec<Self::Row>, sqlx::Error>>;

    /// The first row, if any.
    fn fetch_optional<'c>(
        conn: &'c mut Self::Connection,
        qb: &'c QueryBuilder<Self>,
    ) -> BoxFuture<'c, Result<Option<Self::Row>, sqlx::Error>>;

    /// Runs it for its effect.
    fn execute<'c>(
        conn: &'c mut Self::Connection,
        qb: &'c QueryBuilder<Self>,
    ) -> BoxFuture<'c, Result<(), sqlx::Error>>;
}

impl<DB> Exec for DB
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB> + Type<DB>,
    for<'q> Uuid: Encode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
{
    fn fetch_all<'c>(
        conn: &'c mut Self::Connection,
        qb: &'c QueryBuilder<Self>,
    ) -> BoxFuture<'c, Result<Vec<Self::Row>, sqlx::Error>> {
        Box::pin(bind(qb).fetch_all(conn))
    }

    fn fetch_optional<'c>(
        conn: &'c mut Self::Connection,
        qb: &'c QueryBuilder<Self>,
    ) -> BoxFuture<'c, Result<Option<Self::Row>, sqlx::Error>> {
        Box::pin(bind(qb).fetch_optional(conn))
    }

    fn execute<'c>(
        conn: &'c mut Self::Connection,
        qb: &'c QueryBuilder<Self>,
    ) -> BoxFuture<'c, Result<(), sqlx::Error>> {
        let run = bind(qb).execute(conn);
        Box::pin(async move { run.await.map(drop) })
    }
}

/// The executable query: the text with every value bound in order.
fn bind<DB>(qb: &QueryBuilder<DB>) -> sqlx::query::Query<'_, DB, DB::Arguments<'_>>
where
    DB: Database,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB> + Type<DB>,
    for<'q> Uuid: Encode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
{
    let mut q = sqlx::query::<DB>(&qb.text);
    for v in &qb.values {
        q = match v.clone() {
            Value::I64(x) => q.bind(x),
            Value::OptI64(x) => q.bind(x),
            Value::Text(x) => q.bind(x),
            Value::Uuid(x) => q.bind(x),
        };
    }
    q
}

/// A result row read by column name. Implemented once for every sqlx row
/// type that decodes the column types the schemas use.
pub trait Record {
    /// A non-null integer.
    fn int(&self, column: &str) -> Result<i64, sqlx::Error>;
    /// A nullable integer.
    fn opt_int(&self, column: &str) -> Result<Option<i64>, sqlx::Error>;
    /// Text.
    fn text(&self, column: &str) -> Result<String, sqlx::Error>;
    /// Nullable text.
    fn opt_text(&self, column: &str) -> Result<Option<String>, sqlx::Error>;
    /// A UUID.
    fn uuid(&self, column: &str) -> Result<Uuid, sqlx::Error>;
}

impl<R> Record for R
where
    R: Row,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Uuid: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'a> &'a str: ColumnIndex<R>,
{
    fn int(&self, column: &str) -> Result<i64, sqlx::Error> {
        self.try_get(column)
    }
    fn opt_int(&self, column: &str) -> Result<Option<i64>, sqlx::Error> {
        self.try_get(column)
    }
    fn text(&self, column: &str) -> Result<String, sqlx::Error> {
        self.try_get(column)
    }
    fn opt_text(&self, column: &str) -> Result<Option<String>, sqlx::Error> {
        self.try_get(column)
    }
    fn uuid(&self, column: &str) -> Result<Uuid, sqlx::Error> {
        self.try_get(column)
    }
}

/// A value bound to a statement.
#[derive(Debug, Clone)]
pub enum Value {
    /// An integer.
    I64(i64),
    /// A nullable integer.
    OptI64(Option<i64>),
    /// Text.
    Text(String),
    /// A UUID.
    Uuid(Uuid),
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Self::I64(v)
    }
}
impl From<Option<i64>> for Value {
    fn from(v: Option<i64>) -> Self {
        Self::OptI64(v)
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Self::Text(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Self::Text(v.to_owned())
    }
}
impl From<Uuid> for Value {
    fn from(v: Uuid) -> Self {
        Self::Uuid(v)
    }
}

/// Statement text with its bound values, placeholders written per dialect.
/// (sqlx's own builder cannot be executed from code generic over the database.)
pub struct QueryBuilder<DB> {
    text: String,
    values: Vec<Value>,
    /// Whose placeholders; a function pointer so the builder is `Send + Sync` whatever `DB` is.
    db: PhantomData<fn() -> DB>,
}

impl<DB: Dialect> QueryBuilder<DB> {
    /// Starts a statement.
    pub fn new(text: &str) -> Self {
        Self { text: text.to_owned(), values: Vec::new(), db: PhantomData }
    }

    /// Appends SQL text.
    pub fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// Appends a placeholder bound to `value`.
    pub fn push_bind(&mut self, value: impl Into<Value>) -> &mut Self {
        self.values.push(value.into());
        DB::placeholder(self.values.len(), &mut self.text);
        self
    }

    /// Appends `(v1, v2, …)`.
    pub fn push_values(&mut self, values: Vec<Value>) -> &mut Self {
        self.push("(");
        for (i, v) in values.into_iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.push_bind(v);
        }
        self.push(")")
    }

    /// Prefixes the statement (for `EXPLAIN`).
    pub fn prefix(&mut self, text: &str) -> &mut Self {
        self.text.insert_str(0, text);
        self
    }
}

/// The way to the database: every call acquires a connection or begins a
/// transaction here, behind the breaker, and every error is classified
/// here, so an outage found by any call makes the others fail fast.
pub struct Db<DB: Database> {
    /// Where errors are counted.
    metrics: Arc<Metrics>,
    /// Connections for reads.
    reader: sqlx::Pool<DB>,
    /// Connections for writes: a separate single-connection pool on SQLite
    /// (one writer at a time, so no lock upgrades fail), the same pool as
    /// `reader` on PostgreSQL.
    writer: sqlx::Pool<DB>,
    /// Whether `writer` is `reader` (one pool).
    shared: bool,
    breaker: Breaker,
}

impl<DB: Dialect> Db<DB> {
    /// Separate pools for reads and writes.
    pub fn new(reader: sqlx::Pool<DB>, writer: sqlx::Pool<DB>, retry_interval: std::time::Duration) -> Self {
        Self { metrics: Arc::default(), reader, writer, shared: false, breaker: Breaker::new(retry_interval) }
    }

    /// One pool for reads and writes.
    pub fn shared(pool: sqlx::Pool<DB>, retry_interval: std::time::Duration) -> Self {
        Self { shared: true, ..Self::new(pool.clone(), pool, retry_interval) }
    }

    /// A connection for reading.
    pub async fn read(&self) -> Result<PoolConnection<DB>, StoreError> {
        self.admitted(self.reader.acquire()).await
    }

    /// A write transaction.
    pub async fn begin(&self) -> Result<sqlx::Transaction<'static, DB>, StoreError> {
        self.admitted(self.writer.begin()).await
    }

    /// A connection of the write pool outside a transaction.
    pub async fn write(&self) -> Result<PoolConnection<DB>, StoreError> {
        self.admitted(self.writer.acquire()).await
    }

    async fn admitted<T>(&self, connect: impl Future<Output = Result<T, sqlx::Error>>) -> Result<T, StoreError> {
        let admission = self.breaker.admit()?;
        match connect.await {
            Ok(conn) => {
                admission.passed();
                Ok(conn)
            }
            Err(err) => {
                let err = self.fail(err);
                // The database answered, even if with an error: not an outage.
                if !matches!(err, StoreError::Unreachable(_)) {
                    admission.passed();
                }
                Err(err)
            }
        }
    }

    /// Maps a sqlx error to its meaning; an outage opens the breaker.
    pub fn fail(&self, err: sqlx::Error) -> StoreError {
        let err = classify::<DB>(err);
        let kind = match &err {
            StoreError::Unreachable(cause) => {
                self.breaker.tripped(cause);
                "unreachable"
            }
            StoreError::Unavailable(_) => "unavailable",
            _ => "internal",
        };
        self.metrics.storage_errors.get_or_create(&ErrorLabels { kind }).inc();
        err
    }

    /// Connection use and breaker state.
    fn stats(&self) -> StoreStats {
        let (mut connections, mut idle) = (self.reader.size(), self.reader.num_idle());
        if !self.shared {
            connections += self.writer.size();
            idle += self.writer.num_idle();
        }
        StoreStats { connections, idle, failing_fast: self.breaker.is_open() }
    }

    /// Closes both pools.
    pub async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
    }
}

/// Maps a sqlx error to its meaning. Only losing the database is an
/// outage; a timed-out statement or a busy lock is retryable but says
/// nothing about other requests.
fn classify<DB: Dialect>(err: sqlx::Error) -> StoreError {
    match &err {
        sqlx::Error::PoolTimedOut if !DB::POOL_TIMEOUT_IS_OUTAGE => StoreError::Unavailable(err.into()),
        // A protocol or TLS failure is the link's, not the statement's (a
        // server dying mid-handshake answers half a message): an outage.
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_)
        | sqlx::Error::Tls(_) => StoreError::Unreachable(err.into()),
        sqlx::Error::Database(db) if DB::is_outage(db.as_ref()) => StoreError::Unreachable(err.into()),
        sqlx::Error::Database(db) if DB::is_transient(db.as_ref()) => StoreError::Unavailable(err.into()),
        _ => StoreError::Internal(err),
    }
}

/// A store over one SQL engine.
pub struct SqlStore<DB: Database> {
    pub(super) db: Db<DB>,
    /// Notices received on this node (fed by the listener on PostgreSQL).
    pub(super) notices: broadcast::Sender<Notice>,
    /// Background tasks to stop at shutdown (the PostgreSQL listener).
    pub(super) tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// Rows of a session a term search tests itself first, on engines that window.
    pub(super) search_window: u32,
    /// The group-commit writers' queues, once started.
    pub(super) appends: std::sync::OnceLock<Vec<tokio::sync::mpsc::Sender<appends::Append>>>,
}

/// How many notices a slow node-local consumer may fall behind before it
/// is told to resynchronise.
pub const NOTICE_BUFFER: usize = 4096;

impl<DB: Dialect> SqlStore<DB> {
    /// Wraps the pools.
    pub fn new(db: Db<DB>) -> Self {
        Self {
            db,
            notices: broadcast::channel(NOTICE_BUFFER).0,
            tasks: Mutex::default(),
            search_window: 5_000,
            appends: std::sync::OnceLock::new(),
        }
    }

    /// Counts storage errors in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.db.metrics = metrics;
        self
    }

    /// Runs `qb` on a read connection and returns every row.
    async fn read_all(&self, qb: &QueryBuilder<DB>) -> Result<Vec<DB::Row>, StoreError> {
        let mut conn = self.db.read().await?;
        DB::fetch_all(&mut conn, qb).await.map_err(|e| self.db.fail(e))
    }

    /// Runs `qb` on a read connection and returns the first row.
    async fn read_one(&self, qb: &QueryBuilder<DB>) -> Result<Option<DB::Row>, StoreError> {
        let mut conn = self.db.read().await?;
        DB::fetch_optional(&mut conn, qb).await.map_err(|e| self.db.fail(e))
    }

    /// Runs `qb` on the write pool, outside a transaction, and returns the first row.
    async fn write_one(&self, qb: &QueryBuilder<DB>) -> Result<Option<DB::Row>, StoreError> {
        let mut conn = self.db.write().await?;
        DB::fetch_optional(&mut conn, qb).await.map_err(|e| self.db.fail(e))
    }

    /// Runs `qb` on the write pool, outside a transaction, for its effect.
    async fn write_run(&self, qb: &QueryBuilder<DB>) -> Result<(), StoreError> {
        let mut conn = self.db.write().await?;
        DB::execute(&mut conn, qb).await.map_err(|e| self.db.fail(e))
    }

    /// Reads one page on `conn`: the main scan, then (when its answer is not
    /// already known) an `EXISTS` probe past the page's far side.
    async fn read_page<T, F>(
        &self,
        conn: &mut DB::Connection,
        plan: PagePlan<T::Pos>,
        scan: F,
        decode: fn(&DB::Row) -> Result<T, sqlx::Error>,
    ) -> Result<Page<T>, StoreError>
    where
        T: Paged,
        F: Fn(Scan<T::Pos>, u32) -> QueryBuilder<DB>,
    {
        let (main, take) = plan.main_scan();
        let rows = self.tx_all(conn, &scan(main, take)).await?;
        let items = rows.iter().map(decode).collect::<Result<Vec<T>, _>>().map_err(StoreError::Internal)?;
        let found = match plan.probe(&items) {
            Some(probe) => self.exists(conn, scan(probe, 1)).await?,
            None => false,
        };
        Ok(plan.finish(items, found))
    }

    /// Whether `qb` returns a row, asked as `EXISTS` (no row is read whole).
    async fn exists(&self, conn: &mut DB::Connection, mut qb: QueryBuilder<DB>) -> Result<bool, StoreError> {
        qb.prefix("SELECT CAST(CASE WHEN EXISTS (").push(") THEN 1 ELSE 0 END AS BIGINT) AS found");
        let row = self.tx_one(conn, &qb).await?.ok_or(StoreError::Internal(sqlx::Error::RowNotFound))?;
        Ok(row.int("found").map_err(StoreError::Internal)? != 0)
    }

    /// Runs `qb` inside `tx` and returns every row.
    async fn tx_all(&self, tx: &mut DB::Connection, qb: &QueryBuilder<DB>) -> Result<Vec<DB::Row>, StoreError> {
        DB::fetch_all(tx, qb).await.map_err(|e| self.db.fail(e))
    }

    /// Runs `qb` inside `tx` and returns the first row.
    async fn tx_one(&self, tx: &mut DB::Connection, qb: &QueryBuilder<DB>) -> Result<Option<DB::Row>, StoreError> {
        DB::fetch_optional(tx, qb).await.map_err(|e| self.db.fail(e))
    }

    /// Runs `qb` inside `tx` for its effect.
    async fn tx_run(&self, tx: &mut DB::Connection, qb: &QueryBuilder<DB>) -> Result<(), StoreError> {
        DB::execute(tx, qb).await.map_err(|e| self.db.fail(e))
    }

    /// The plans of a term search: the page query of one session, and the
    /// term predicate alone over the whole table.
    pub async fn explain_term_search(&self, term: &SearchTerm) -> anyhow::Result<super::TermSearchPlans> {
        let filter = crate::domain::message::MessageFilter { term: Some(term.clone()), ..Default::default() };
        let (tenant, session) = (TenantId::new(1)?, SessionId::generate());
        let in_session = message_scan::<DB>(tenant, session, &filter, Scan::Older(None), 10);
        let mut predicate = QueryBuilder::<DB>::new("SELECT id FROM messages WHERE true");
        DB::push_term_filter(&mut predicate, term);
        Ok(super::TermSearchPlans {
            in_session: self.explain(in_session).await?,
            predicate: self.explain(predicate).await?,
        })
    }

    async fn explain(&self, mut qb: QueryBuilder<DB>) -> anyhow::Result<Vec<String>> {
        qb.prefix(DB::EXPLAIN.prefix);
        let mut tx = self.db.begin().await?;
        for statement in DB::EXPLAIN.setup {
            DB::execute(&mut tx, &QueryBuilder::new(statement)).await?;
        }
        let rows = DB::fetch_all(&mut tx, &qb).await?;
        Ok(rows.iter().map(|r| r.text(DB::EXPLAIN.column)).collect::<Result<_, _>>()?)
    }
}

#[async_trait]
impl<DB: Dialect> Store for SqlStore<DB> {
    async fn ping(&self) -> Result<(), StoreError> {
        self.read_one(&QueryBuilder::new("SELECT 1")).await.map(drop)
    }

    async fn commit_outcome(&self, transaction: i64) -> Result<CommitOutcome, StoreError> {
        let Some(ids) = &DB::TRANSACTION_IDS else {
            // Never asked: a local commit is never in doubt.
            return Ok(CommitOutcome::RolledBack);
        };
        let mut qb = QueryBuilder::<DB>::new("SELECT CAST(");
        qb.push(ids.status_function).push("(").push_bind(transaction).push(") AS TEXT) AS status");
        let row = self.read_one(&qb).await?.ok_or(StoreError::Internal(sqlx::Error::RowNotFound))?;
        let status: Option<String> = row.opt_text("status").map_err(StoreError::Internal)?;
        match status.as_deref() {
            Some("committed") => Ok(CommitOutcome::Committed),
            Some("aborted") => Ok(CommitOutcome::RolledBack),
            Some("in progress") => Ok(CommitOutcome::InProgress),
            _ => Err(StoreError::Internal(corrupt("transaction status"))),
        }
    }

    async fn shutdown(&self) {
        for task in self.tasks.lock().unwrap_or_else(PoisonError::into_inner).drain(..) {
            task.abort();
        }
        self.db.close().await;
    }

    fn stats(&self) -> StoreStats {
        self.db.stats()
    }
}

const SESSION_COLUMNS: &str = "id, tenant_id, agent_id, status, opened_by, created_at, updated_at, closed_at, last_seq";
const MESSAGE_COLUMNS: &str = "id, tenant_id, session_id, seq, sender_id, message, created_at";

fn corrupt(what: &str) -> sqlx::Error {
    sqlx::Error::Decode(format!("stored {what} is out of range").into())
}

fn tenant(row: &impl Record, column: &str) -> Result<TenantId, sqlx::Error> {
    TenantId::new(row.int(column)?).map_err(|_| corrupt(column))
}

fn user(row: &impl Record, column: &str) -> Result<UserId, sqlx::Error> {
    UserId::new(row.int(column)?).map_err(|_| corrupt(column))
}

fn opt_user(row: &impl Record, column: &str) -> Result<Option<UserId>, sqlx::Error> {
    row.opt_int(column)?.map(UserId::new).transpose().map_err(|_| corrupt(column))
}

fn status(row: &impl Record) -> Result<SessionStatus, sqlx::Error> {
    SessionStatus::parse(&row.text("status")?).ok_or_else(|| corrupt("status"))
}

fn session_from_row(row: &impl Record) -> Result<Session, sqlx::Error> {
    Ok(Session {
        id: SessionId::from_uuid(row.uuid("id")?),
        tenant_id: tenant(row, "tenant_id")?,
        agent_id: opt_user(row, "agent_id")?,
        status: status(row)?,
        opened_by: user(row, "opened_by")?,
        created_at: Timestamp::from_micros(row.int("created_at")?),
        updated_at: Timestamp::from_micros(row.int("updated_at")?),
        closed_at: row.opt_int("closed_at")?.map(Timestamp::from_micros),
        unread_count: None,
        last_seq: row.int("last_seq")?,
    })
}

fn message_from_row(row: &impl Record) -> Result<Message, sqlx::Error> {
    Ok(Message {
        id: MessageId::from_uuid(row.uuid("id")?),
        tenant_id: tenant(row, "tenant_id")?,
        session_id: SessionId::from_uuid(row.uuid("session_id")?),
        seq: row.int("seq")?,
        sender_id: user(row, "sender_id")?,
        message: row.text("message")?,
        created_at: Timestamp::from_micros(row.int("created_at")?),
    })
}

/// Statements every aggregate shares: session events and the announcements
/// that go with commits.
impl<DB: Dialect> SqlStore<DB> {
    /// Records a session event at `seq`; returns the notice to commit with it.
    async fn record_event(
        &self,
        tx: &mut DB::Connection,
        session: &Session,
        seq: i64,
        change: SessionChange,
        at: Timestamp,
    ) -> Result<Notice, StoreError> {
        let mut qb = QueryBuilder::<DB>::new(
            "INSERT INTO session_events (tenant_id, session_id, seq, id, kind, agent_id, status, at) VALUES ",
        );
        let event_id = Uuid::now_v7();
        qb.push_values(vec![
            session.tenant_id.get().into(),
            session.id.uuid().into(),
            seq.into(),
            event_id.into(),
            change.as_str().into(),
            session.agent_id.map(UserId::get).into(),
            session.status.as_str().into(),
            at.micros().into(),
        ]);
        self.tx_run(tx, &qb).await?;
        let event = OutboxEvent {
            id: event_id,
            kind: EventType::of_change(change),
            tenant_id: session.tenant_id,
            session_id: session.id,
            seq,
            at,
        };
        self.record_outbox(tx, &event).await?;
        Ok(Notice::Committed { tenant: session.tenant_id, session: session.id, seq, session_change: true })
    }

    /// Commits `tx` and announces `notices` on the bus: with `NOTIFY`, inside
    /// the transaction (sent on commit, dropped on rollback, in commit
    /// order); otherwise in process right after the commit.
    async fn commit_announcing(
        &self,
        mut tx: sqlx::Transaction<'static, DB>,
        notices: &[Notice],
    ) -> Result<(), StoreError> {
        if let Some(channel) = DB::NOTIFY_CHANNEL {
            for notice in notices {
                let qb = notify_statement::<DB>(channel, notice)?;
                self.tx_run(&mut tx, &qb).await?;
            }
        }
        let transaction = match &DB::TRANSACTION_IDS {
            Some(ids) => {
                let row = self.tx_one(&mut tx, &QueryBuilder::new(ids.current)).await?;
                Some(
                    row.ok_or(StoreError::Internal(sqlx::Error::RowNotFound))?
                        .int("xid")
                        .map_err(StoreError::Internal)?,
                )
            }
            None => None,
        };
        if !super::commit_gate::pass() {
            // Dropping the transaction rolls it back.
            return Err(StoreError::CalledOff);
        }
        if let Err(err) = tx.commit().await {
            // The database refusing the commit is an answer; a broken
            // connection is not: the commit may have happened.
            let answered = matches!(err, sqlx::Error::Database(_));
            let err = self.db.fail(err);
            return Err(match (transaction, answered) {
                (Some(transaction), false) => {
                    StoreError::CommitUnknown { transaction, cause: anyhow::anyhow!("{err}") }
                }
                _ => err,
            });
        }
        if DB::NOTIFY_CHANNEL.is_none() {
            for notice in notices {
                // No receiver yet is fine: nobody is listening.
                let _ = self.notices.send(notice.clone());
            }
        }
        Ok(())
    }

    /// Bumps the session's sequence under its row lock, applying `set` to an
    /// OPEN session. Returns the session after the change (its `last_seq` is
    /// the new sequence number).
    async fn bump_session(
        &self,
        tx: &mut DB::Connection,
        tenant: TenantId,
        id: SessionId,
        set: impl FnOnce(&mut QueryBuilder<DB>),
        extra_where: &str,
    ) -> Result<Option<Session>, StoreError> {
        let mut qb = QueryBuilder::<DB>::new("UPDATE sessions SET last_seq = last_seq + 1");
        set(&mut qb);
        qb.push(" WHERE tenant_id = ").push_bind(tenant.get());
        qb.push(" AND id = ").push_bind(id.uuid());
        qb.push(" AND status = ").push_bind(SessionStatus::Open.as_str());
        qb.push(extra_where);
        qb.push(" RETURNING ").push(SESSION_COLUMNS);
        let row = self.tx_one(tx, &qb).await?;
        row.map(|row| session_from_row(&row)).transpose().map_err(StoreError::Internal)
    }
}

/// `SELECT pg_notify(channel, notice)`.
fn notify_statement<DB: Dialect>(channel: &str, notice: &Notice) -> Result<QueryBuilder<DB>, StoreError> {
    let payload = serde_json::to_string(notice).map_err(|e| StoreError::Internal(sqlx::Error::Encode(e.into())))?;
    let mut qb = QueryBuilder::<DB>::new("SELECT pg_notify(");
    qb.push_bind(channel).push(", ").push_bind(payload).push(")");
    Ok(qb)
}

/// Explains a term search on a store opened for it, then closes the store.
pub(super) async fn explain<DB: Dialect>(
    store: SqlStore<DB>,
    term: &SearchTerm,
) -> anyhow::Result<super::TermSearchPlans> {
    let plan = store.explain_term_search(term).await;
    store.shutdown().await;
    plan
}
