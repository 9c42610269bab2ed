//! The storage logic, written once over sqlx and instantiated per backend.
//!
//! Both schemas store ids as UUIDs and times as microseconds in a 64-bit
//! integer, so the statements below are plain SQL both engines accept; the
//! few real differences (substring search, error codes) go through [`Dialect`].

use super::{Store, StoreError};
use crate::domain::ids::{MessageId, SessionId, TenantId, UserId};
use crate::domain::message::{
    Appended, Idempotency, Message, MessageFilter, NewMessage, SearchTerm,
};
use crate::domain::page::Scan;
use crate::domain::session::{NewSession, Session, SessionFilter, SessionPosition, SessionStatus};
use crate::domain::time::Timestamp;
use async_trait::async_trait;
use sqlx::error::DatabaseError;
use sqlx::query::Query;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Row, Type};
use std::marker::PhantomData;
use uuid::Uuid;

/// What differs between the SQL engines.
pub trait Dialect: Database {
    /// Writes the placeholder of the `n`th (1-based) bound value.
    fn placeholder(n: usize, out: &mut String);

    /// Adds `AND <folded text contains term>` using the engine's substring index.
    fn push_term_filter(qb: &mut QueryBuilder<Self>, term: &SearchTerm);

    /// Whether a database error means "try again later" rather than a bug.
    fn is_transient(err: &dyn DatabaseError) -> bool;
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
        Self {
            text: text.to_owned(),
            values: Vec::new(),
            db: PhantomData,
        }
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
    pub(super) reader: Pool<DB>,
    pub(super) writer: Pool<DB>,
}

const SESSION_COLUMNS: &str =
    "id, tenant_id, agent_id, status, opened_by, created_at, updated_at, closed_at";
const MESSAGE_COLUMNS: &str = "id, tenant_id, session_id, seq, sender_id, message, created_at";

/// Maps a sqlx error to its meaning.
pub(super) fn classify<DB: Dialect>(err: sqlx::Error) -> StoreError {
    match &err {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(err.into()),
        sqlx::Error::Database(db) if DB::is_transient(db.as_ref()) => {
            StoreError::Unavailable(err.into())
        }
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
        agent_id: agent
            .map(UserId::new)
            .transpose()
            .map_err(|_| corrupt("agent_id"))?,
        status: SessionStatus::parse(&status).ok_or_else(|| corrupt("status"))?,
        opened_by: UserId::new(row.try_get("opened_by")?).map_err(|_| corrupt("opened_by"))?,
        created_at: Timestamp::from_micros(row.try_get("created_at")?),
        updated_at: Timestamp::from_micros(row.try_get("updated_at")?),
        closed_at: closed.map(Timestamp::from_micros),
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

/// Finds the message an idempotency key was first used for, with the body fingerprint.
fn idempotency_lookup<DB: Dialect>(new: &NewMessage, idem: &Idempotency) -> QueryBuilder<DB> {
    let mut qb = QueryBuilder::<DB>::new("SELECT k.fingerprint, ");
    qb.push("m.id, m.tenant_id, m.session_id, m.seq, m.sender_id, m.message, m.created_at");
    qb.push(" FROM idempotency_keys k JOIN messages m ON m.tenant_id = k.tenant_id");
    qb.push(" AND m.session_id = k.session_id AND m.seq = k.message_seq WHERE k.tenant_id = ");
    qb.push_bind(new.tenant_id.get())
        .push(" AND k.session_id = ")
        .push_bind(new.session_id.uuid());
    qb.push(" AND k.sender_id = ")
        .push_bind(new.sender_id.get());
    qb.push(" AND k.idem_key = ").push_bind(idem.key.as_str());
    qb
}

/// The original message for a repeated key, or the reuse error if the body differs.
fn replay<R: Row>(row: &R, idem: &Idempotency) -> Result<Appended, StoreError>
where
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Uuid: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'a> &'a str: ColumnIndex<R>,
{
    let fingerprint: String = row.try_get("fingerprint").map_err(StoreError::Internal)?;
    if fingerprint != idem.fingerprint {
        return Err(StoreError::IdempotencyKeyReused);
    }
    message_from_row(row)
        .map(Appended::Replayed)
        .map_err(StoreError::Internal)
}

#[async_trait]
impl<DB> Store for SqlStore<DB>
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
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.reader)
            .await
            .map_err(classify::<DB>)?;
        Ok(())
    }

    async fn create_session(&self, new: &NewSession) -> Result<Session, StoreError> {
        let mut qb = QueryBuilder::<DB>::new("INSERT INTO sessions (");
        qb.push(SESSION_COLUMNS).push(", last_seq) VALUES ");
        qb.push_values(vec![
            new.id.uuid().into(),
            new.tenant_id.get().into(),
            new.agent_id.map(UserId::get).into(),
            SessionStatus::Open.as_str().into(),
            new.opened_by.get().into(),
            new.created_at.micros().into(),
            new.created_at.micros().into(),
            None::<i64>.into(),
            0_i64.into(),
        ]);
        qb.push(" RETURNING ").push(SESSION_COLUMNS);
        let inserted = qb.build().fetch_one(&self.writer).await;
        match inserted {
            Ok(row) => session_from_row(&row).map_err(StoreError::Internal),
            Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
                // The one-open-session index decided; report which session won.
                let mut qb = QueryBuilder::<DB>::new("SELECT id FROM sessions WHERE tenant_id = ");
                qb.push_bind(new.tenant_id.get()).push(" AND status = ");
                qb.push_bind(SessionStatus::Open.as_str());
                let row = qb
                    .build()
                    .fetch_optional(&self.writer)
                    .await
                    .map_err(classify::<DB>)?;
                match row {
                    Some(row) => {
                        let id: Uuid = row.try_get("id").map_err(StoreError::Internal)?;
                        Err(StoreError::SessionAlreadyActive(SessionId::from_uuid(id)))
                    }
                    // Closed between our insert and this read: the client may simply retry.
                    None => Err(StoreError::Unavailable(sqlx::Error::Database(db).into())),
                }
            }
            Err(err) => Err(classify::<DB>(err)),
        }
    }

    async fn get_session(
        &self,
        tenant: TenantId,
        id: SessionId,
    ) -> Result<Option<Session>, StoreError> {
        let mut qb = QueryBuilder::<DB>::new("SELECT ");
        qb.push(SESSION_COLUMNS)
            .push(" FROM sessions WHERE tenant_id = ");
        qb.push_bind(tenant.get())
            .push(" AND id = ")
            .push_bind(id.uuid());
        let row = qb
            .build()
            .fetch_optional(&self.reader)
            .await
            .map_err(classify::<DB>)?;
        row.map(|r| session_from_row(&r))
            .transpose()
            .map_err(StoreError::Internal)
    }

    async fn scan_sessions(
        &self,
        tenant: TenantId,
        filter: &SessionFilter,
        scan: Scan<SessionPosition>,
        limit: u32,
    ) -> Result<Vec<Session>, StoreError> {
        let mut qb = QueryBuilder::<DB>::new("SELECT ");
        qb.push(SESSION_COLUMNS)
            .push(" FROM sessions WHERE tenant_id = ");
        qb.push_bind(tenant.get());
        if let Some(status) = filter.status {
            qb.push(" AND status = ").push_bind(status.as_str());
        }
        if let Some(agent) = filter.agent_id {
            qb.push(" AND agent_id = ").push_bind(agent.get());
        }
        let (at, cmp, order) = match scan {
            Scan::Older(at) => (at, " < ", " DESC"),
            Scan::Newer(at) => (at, " > ", " ASC"),
        };
        if let Some(at) = at {
            qb.push(" AND (created_at")
                .push(cmp)
                .push_bind(at.created_at.micros());
            qb.push(" OR (created_at = ")
                .push_bind(at.created_at.micros());
            qb.push(" AND id")
                .push(cmp)
                .push_bind(at.id.uuid())
                .push("))");
        }
        qb.push(" ORDER BY created_at")
            .push(order)
            .push(", id")
            .push(order);
        qb.push(" LIMIT ").push_bind(i64::from(limit));
        let rows = qb
            .build()
            .fetch_all(&self.reader)
            .await
            .map_err(classify::<DB>)?;
        rows.iter()
            .map(session_from_row)
            .collect::<Result<_, _>>()
            .map_err(StoreError::Internal)
    }

    async fn close_session(
        &self,
        tenant: TenantId,
        id: SessionId,
        at: Timestamp,
    ) -> Result<Option<Session>, StoreError> {
        let mut qb = QueryBuilder::<DB>::new("UPDATE sessions SET status = ");
        qb.push_bind(SessionStatus::Closed.as_str());
        qb.push(", updated_at = ").push_bind(at.micros());
        qb.push(", closed_at = ").push_bind(at.micros());
        qb.push(" WHERE tenant_id = ").push_bind(tenant.get());
        qb.push(" AND id = ").push_bind(id.uuid());
        qb.push(" AND status = ")
            .push_bind(SessionStatus::Open.as_str());
        qb.push(" RETURNING ").push(SESSION_COLUMNS);
        let row = qb
            .build()
            .fetch_optional(&self.writer)
            .await
            .map_err(classify::<DB>)?;
        match row {
            Some(row) => session_from_row(&row)
                .map(Some)
                .map_err(StoreError::Internal),
            // Already closed (idempotent) or absent.
            None => self.get_session(tenant, id).await,
        }
    }

    async fn append_message(&self, new: &NewMessage) -> Result<Appended, StoreError> {
        // A retry of a committed send replays it, even if the session has
        // closed since; no lock is needed to read a committed key.
        if let Some(idem) = &new.idempotency {
            let query = idempotency_lookup::<DB>(new, idem);
            let row = query
                .build()
                .fetch_optional(&self.reader)
                .await
                .map_err(classify::<DB>)?;
            if let Some(row) = row {
                return replay(&row, idem);
            }
        }
        let mut tx = self.writer.begin().await.map_err(classify::<DB>)?;

        // Taking the next sequence number locks the session row until commit,
        // which makes sequence order equal to commit order.
        let mut qb = QueryBuilder::<DB>::new(
            "UPDATE sessions SET last_seq = last_seq + 1 WHERE tenant_id = ",
        );
        qb.push_bind(new.tenant_id.get())
            .push(" AND id = ")
            .push_bind(new.session_id.uuid());
        qb.push(" AND status = ")
            .push_bind(SessionStatus::Open.as_str());
        qb.push(" RETURNING last_seq, last_message_at");
        let Some(row) = qb
            .build()
            .fetch_optional(&mut *tx)
            .await
            .map_err(classify::<DB>)?
        else {
            return Err(StoreError::SessionNotOpen);
        };
        let seq: i64 = row.try_get("last_seq").map_err(StoreError::Internal)?;
        let previous: Option<i64> = row
            .try_get("last_message_at")
            .map_err(StoreError::Internal)?;

        // Checked again under the session lock: a concurrent retry with the
        // same key may have committed since the first look.
        if let Some(idem) = &new.idempotency {
            let query = idempotency_lookup::<DB>(new, idem);
            let row = query
                .build()
                .fetch_optional(&mut *tx)
                .await
                .map_err(classify::<DB>)?;
            if let Some(row) = row {
                // Dropping the transaction rolls back the sequence bump.
                return replay(&row, idem);
            }
        }

        let created_at = Timestamp::next_after(previous.map(Timestamp::from_micros), new.now);
        let mut qb = QueryBuilder::<DB>::new("UPDATE sessions SET last_message_at = ");
        qb.push_bind(created_at.micros())
            .push(", updated_at = ")
            .push_bind(created_at.micros());
        qb.push(" WHERE tenant_id = ")
            .push_bind(new.tenant_id.get());
        qb.push(" AND id = ").push_bind(new.session_id.uuid());
        qb.build().execute(&mut *tx).await.map_err(classify::<DB>)?;

        let mut qb = QueryBuilder::<DB>::new("INSERT INTO messages (");
        qb.push(MESSAGE_COLUMNS).push(", message_folded) VALUES ");
        qb.push_values(vec![
            new.id.uuid().into(),
            new.tenant_id.get().into(),
            new.session_id.uuid().into(),
            seq.into(),
            new.sender_id.get().into(),
            new.text.as_str().into(),
            created_at.micros().into(),
            new.text.folded().into(),
        ]);
        qb.build().execute(&mut *tx).await.map_err(classify::<DB>)?;

        if let Some(idem) = &new.idempotency {
            let mut qb = QueryBuilder::<DB>::new(
                "INSERT INTO idempotency_keys (tenant_id, session_id, sender_id, idem_key, fingerprint, message_seq, created_at) VALUES ",
            );
            qb.push_values(vec![
                new.tenant_id.get().into(),
                new.session_id.uuid().into(),
                new.sender_id.get().into(),
                idem.key.as_str().into(),
                idem.fingerprint.clone().into(),
                seq.into(),
                created_at.micros().into(),
            ]);
            qb.build().execute(&mut *tx).await.map_err(classify::<DB>)?;
        }

        tx.commit().await.map_err(classify::<DB>)?;
        Ok(Appended::Created(Message {
            id: new.id,
            tenant_id: new.tenant_id,
            session_id: new.session_id,
            seq,
            sender_id: new.sender_id,
            message: new.text.as_str().to_owned(),
            created_at,
        }))
    }

    async fn message_seq(
        &self,
        tenant: TenantId,
        session: SessionId,
        id: MessageId,
    ) -> Result<Option<i64>, StoreError> {
        let mut qb = QueryBuilder::<DB>::new("SELECT seq FROM messages WHERE tenant_id = ");
        qb.push_bind(tenant.get())
            .push(" AND session_id = ")
            .push_bind(session.uuid());
        qb.push(" AND id = ").push_bind(id.uuid());
        let row = qb
            .build()
            .fetch_optional(&self.reader)
            .await
            .map_err(classify::<DB>)?;
        row.map(|r| r.try_get("seq"))
            .transpose()
            .map_err(StoreError::Internal)
    }

    async fn scan_messages(
        &self,
        tenant: TenantId,
        session: SessionId,
        filter: &MessageFilter,
        scan: Scan<i64>,
        limit: u32,
    ) -> Result<Vec<Message>, StoreError> {
        let mut qb = QueryBuilder::<DB>::new("SELECT ");
        qb.push(MESSAGE_COLUMNS)
            .push(" FROM messages WHERE tenant_id = ");
        qb.push_bind(tenant.get())
            .push(" AND session_id = ")
            .push_bind(session.uuid());
        if let Some(sender) = filter.sender_id {
            qb.push(" AND sender_id = ").push_bind(sender.get());
        }
        if let Some(start) = filter.start {
            qb.push(" AND created_at >= ").push_bind(start.micros());
        }
        if let Some(end) = filter.end {
            qb.push(" AND created_at <= ").push_bind(end.micros());
        }
        if let Some(term) = &filter.term {
            DB::push_term_filter(&mut qb, term);
        }
        let (at, cmp, order) = match scan {
            Scan::Older(at) => (at, " < ", " DESC"),
            Scan::Newer(at) => (at, " > ", " ASC"),
        };
        if let Some(at) = at {
            qb.push(" AND seq").push(cmp).push_bind(at);
        }
        qb.push(" ORDER BY seq")
            .push(order)
            .push(" LIMIT ")
            .push_bind(i64::from(limit));
        let rows = qb
            .build()
            .fetch_all(&self.reader)
            .await
            .map_err(classify::<DB>)?;
        rows.iter()
            .map(message_from_row)
            .collect::<Result<_, _>>()
            .map_err(StoreError::Internal)
    }

    async fn shutdown(&self) {
        self.writer.close().await;
        self.reader.close().await;
    }
}
