//! The storage logic, written once over sqlx and instantiated per backend.
//!
//! Both schemas store ids as UUIDs and times as microseconds in a 64-bit
//! integer, so the statements below are plain SQL both engines accept; the
//! few real differences (substring search, error codes, notifications) go
//! through [`Dialect`].

mod bus;
mod chat;
mod presence;

use super::StoreError;
use crate::domain::event::{Notice, SessionChange};
use crate::domain::ids::{MessageId, SessionId, TenantId, UserId};
use crate::domain::message::{Message, SearchTerm};
use crate::domain::session::{Session, SessionStatus};
use crate::domain::time::Timestamp;
use sqlx::error::DatabaseError;
use sqlx::query::Query;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Row, Type};
use std::marker::PhantomData;
use tokio::sync::broadcast;
use uuid::Uuid;

/// What differs between the SQL engines.
pub trait Dialect: Database {
    /// Writes the placeholder of the `n`th (1-based) bound value.
    fn placeholder(n: usize, out: &mut String);

    /// Adds `AND <folded text contains term>` using the engine's substring index.
    fn push_term_filter(qb: &mut QueryBuilder<Self>, term: &SearchTerm);

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
    db: PhantomData<DB>,
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
}

impl<DB> QueryBuilder<DB>
where
    DB: Dialect,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB> + Type<DB>,
    for<'q> Uuid: Encode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
{
    /// The executable query.
    pub fn build(&self) -> Query<'_, DB, DB::Arguments<'_>> {
        let mut q = sqlx::query::<DB>(&self.text);
        for v in &self.values {
            q = match v.clone() {
                Value::I64(x) => q.bind(x),
                Value::OptI64(x) => q.bind(x),
                Value::Text(x) => q.bind(x),
                Value::Uuid(x) => q.bind(x),
            };
        }
        q
    }
}

/// A store over one SQL engine. `writer` is a separate single-connection pool
/// on SQLite (one writer at a time, so no lock upgrades fail) and the same
/// pool as `reader` on PostgreSQL.
pub struct SqlStore<DB: Database> {
    pub(super) reader: sqlx::Pool<DB>,
    pub(super) writer: sqlx::Pool<DB>,
    /// Notices received on this node (fed by the listener on PostgreSQL).
    pub(super) notices: broadcast::Sender<Notice>,
    /// Background tasks to stop at shutdown (the PostgreSQL listener).
    pub(super) tasks: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

/// How many notices a slow node-local consumer may fall behind before it
/// is told to resynchronise.
pub const NOTICE_BUFFER: usize = 4096;

impl<DB: Database> SqlStore<DB> {
    /// Wraps the pools.
    pub fn new(reader: sqlx::Pool<DB>, writer: sqlx::Pool<DB>) -> Self {
        Self { reader, writer, notices: broadcast::channel(NOTICE_BUFFER).0, tasks: Default::default() }
    }
}

const SESSION_COLUMNS: &str = "id, tenant_id, agent_id, status, opened_by, created_at, updated_at, closed_at, last_seq";
const MESSAGE_COLUMNS: &str = "id, tenant_id, session_id, seq, sender_id, message, created_at";

/// The unread count of `viewer` per session row `s` (messages from others after the read mark).
fn unread_column<DB: Dialect>(qb: &mut QueryBuilder<DB>, viewer: UserId) {
    qb.push(", (SELECT count(*) FROM messages m WHERE m.tenant_id = s.tenant_id AND m.session_id = s.id");
    qb.push(" AND m.sender_id <> ").push_bind(viewer.get());
    qb.push(" AND m.seq > COALESCE((SELECT r.seq FROM read_state r WHERE r.tenant_id = s.tenant_id");
    qb.push(" AND r.session_id = s.id AND r.user_id = ").push_bind(viewer.get());
    qb.push("), 0)) AS unread_count");
}

/// Maps a sqlx error to its meaning. Only losing the database is an
/// outage; a timed-out statement or a busy lock is retryable but says
/// nothing about other requests.
pub(super) fn classify<DB: Dialect>(err: sqlx::Error) -> StoreError {
    match &err {
        sqlx::Error::PoolTimedOut if !DB::POOL_TIMEOUT_IS_OUTAGE => StoreError::Unavailable(err.into()),
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::WorkerCrashed => {
            StoreError::Unreachable(err.into())
        }
        sqlx::Error::Database(db) if DB::is_outage(db.as_ref()) => StoreError::Unreachable(err.into()),
        sqlx::Error::Database(db) if DB::is_transient(db.as_ref()) => StoreError::Unavailable(err.into()),
        _ => StoreError::Internal(err),
    }
}

fn corrupt(what: &str) -> sqlx::Error {
    sqlx::Error::Decode(format!("stored {what} is out of range").into())
}

fn session_from_row<R: Row>(row: &R) -> Result<Session, sqlx::Error>
where
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Uuid: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'a> &'a str: ColumnIndex<R>,
{
    let status: String = row.try_get("status")?;
    let agent: Option<i64> = row.try_get("agent_id")?;
    let closed: Option<i64> = row.try_get("closed_at")?;
    Ok(Session {
        id: SessionId::from_uuid(row.try_get("id")?),
        tenant_id: TenantId::new(row.try_get("tenant_id")?).map_err(|_| corrupt("tenant_id"))?,
        agent_id: agent.map(UserId::new).transpose().map_err(|_| corrupt("agent_id"))?,
        status: SessionStatus::parse(&status).ok_or_else(|| corrupt("status"))?,
        opened_by: UserId::new(row.try_get("opened_by")?).map_err(|_| corrupt("opened_by"))?,
        created_at: Timestamp::from_micros(row.try_get("created_at")?),
        updated_at: Timestamp::from_micros(row.try_get("updated_at")?),
        closed_at: closed.map(Timestamp::from_micros),
        unread_count: None,
        last_seq: row.try_get("last_seq")?,
    })
}

fn message_from_row<R: Row>(row: &R) -> Result<Message, sqlx::Error>
where
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Uuid: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'a> &'a str: ColumnIndex<R>,
{
    Ok(Message {
        id: MessageId::from_uuid(row.try_get("id")?),
        tenant_id: TenantId::new(row.try_get("tenant_id")?).map_err(|_| corrupt("tenant_id"))?,
        session_id: SessionId::from_uuid(row.try_get("session_id")?),
        seq: row.try_get("seq")?,
        sender_id: UserId::new(row.try_get("sender_id")?).map_err(|_| corrupt("sender_id"))?,
        message: row.try_get("message")?,
        created_at: Timestamp::from_micros(row.try_get("created_at")?),
    })
}

/// Statements shared by the store's faces: session events and the
/// announcements that go with commits.
impl<DB> SqlStore<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB> + Type<DB>,
    for<'q> Uuid: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'a> &'a str: ColumnIndex<DB::Row>,
{
    /// Records a session event at `seq`; returns the notice to commit with it.
    pub(super) async fn record_event(
        tx: &mut DB::Connection,
        session: &Session,
        seq: i64,
        change: SessionChange,
        at: Timestamp,
    ) -> Result<Notice, StoreError> {
        let mut qb = QueryBuilder::<DB>::new(
            "INSERT INTO session_events (tenant_id, session_id, seq, id, kind, agent_id, status, at) VALUES ",
        );
        qb.push_values(vec![
            session.tenant_id.get().into(),
            session.id.uuid().into(),
            seq.into(),
            Uuid::now_v7().into(),
            change.as_str().into(),
            session.agent_id.map(UserId::get).into(),
            session.status.as_str().into(),
            at.micros().into(),
        ]);
        qb.build().execute(&mut *tx).await.map_err(classify::<DB>)?;
        Ok(Notice::Committed { t: session.tenant_id, s: session.id, q: seq, c: true })
    }

    /// Commits `tx` and announces `notices` on the bus: with `NOTIFY`, inside
    /// the transaction (sent on commit, dropped on rollback, in commit
    /// order); otherwise in process right after the commit.
    pub(super) async fn commit_announcing(
        &self,
        mut tx: sqlx::Transaction<'static, DB>,
        notices: &[Notice],
    ) -> Result<(), StoreError> {
        for notice in notices {
            Self::notify_in_tx(&mut tx, notice).await?;
        }
        tx.commit().await.map_err(classify::<DB>)?;
        for notice in notices {
            self.notify_after_commit(notice.clone());
        }
        Ok(())
    }

    /// `pg_notify` inside the transaction: sent on commit, dropped on rollback.
    async fn notify_in_tx(tx: &mut DB::Connection, notice: &Notice) -> Result<(), StoreError> {
        if let Some(channel) = DB::NOTIFY_CHANNEL {
            let payload =
                serde_json::to_string(notice).map_err(|e| StoreError::Internal(sqlx::Error::Encode(e.into())))?;
            let mut qb = QueryBuilder::<DB>::new("SELECT pg_notify(");
            qb.push_bind(channel).push(", ").push_bind(payload).push(")");
            qb.build().execute(&mut *tx).await.map_err(classify::<DB>)?;
        }
        Ok(())
    }

    /// In-process delivery after commit, on engines without `NOTIFY`.
    fn notify_after_commit(&self, notice: Notice) {
        if DB::NOTIFY_CHANNEL.is_none() {
            // No receiver yet is fine: nobody is listening.
            let _ = self.notices.send(notice);
        }
    }

    /// Bumps the session's sequence under its row lock, applying `set` to an OPEN session.
    /// Returns the session after the change and the new sequence number.
    pub(super) async fn bump_session(
        tx: &mut DB::Connection,
        tenant: TenantId,
        id: SessionId,
        set: impl FnOnce(&mut QueryBuilder<DB>),
        extra_where: &str,
    ) -> Result<Option<(Session, i64)>, StoreError> {
        let mut qb = QueryBuilder::<DB>::new("UPDATE sessions SET last_seq = last_seq + 1");
        set(&mut qb);
        qb.push(" WHERE tenant_id = ").push_bind(tenant.get());
        qb.push(" AND id = ").push_bind(id.uuid());
        qb.push(" AND status = ").push_bind(SessionStatus::Open.as_str());
        qb.push(extra_where);
        qb.push(" RETURNING ").push(SESSION_COLUMNS);
        let row = qb.build().fetch_optional(&mut *tx).await.map_err(classify::<DB>)?;
        let session = row.map(|row| session_from_row(&row)).transpose().map_err(StoreError::Internal)?;
        Ok(session.map(|s| {
            let seq = s.last_seq;
            (s, seq)
        }))
    }

    /// Deletes expired sources (and all of `source`'s, if given), then marks
    /// offline, and announces, every agent left without a live source.
    pub(super) async fn remove_sources(&self, source: Option<&str>, now: Timestamp) -> Result<Vec<UserId>, StoreError> {
        let mut tx = self.writer.begin().await.map_err(classify::<DB>)?;
        let mut qb = QueryBuilder::<DB>::new("DELETE FROM agent_presence WHERE expires_at <= ");
        qb.push_bind(now.micros());
        if let Some(source) = source {
            qb.push(" OR source = ").push_bind(source);
        }
        qb.build().execute(&mut *tx).await.map_err(classify::<DB>)?;
        let mut qb = QueryBuilder::<DB>::new("UPDATE agent_status SET online = 0, changed_at = ");
        qb.push_bind(now.micros());
        qb.push(" WHERE online = 1 AND NOT EXISTS (SELECT 1 FROM agent_presence p");
        qb.push(" WHERE p.agent_id = agent_status.agent_id AND p.expires_at > ").push_bind(now.micros());
        qb.push(") RETURNING agent_id");
        let rows = qb.build().fetch_all(&mut *tx).await.map_err(classify::<DB>)?;
        let gone = rows
            .iter()
            .map(|r| {
                let id: i64 = r.try_get("agent_id").map_err(StoreError::Internal)?;
                UserId::new(id).map_err(|_| StoreError::Internal(corrupt("agent_id")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let notices: Vec<Notice> = gone.iter().map(|a| Notice::Presence { a: *a, on: false }).collect();
        self.commit_announcing(tx, &notices).await?;
        Ok(gone)
    }
}
