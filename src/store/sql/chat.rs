//! Sessions, messages, their events and read marks.

use super::{
    Dialect, MESSAGE_COLUMNS, QueryBuilder, SESSION_COLUMNS, SqlStore, classify, corrupt, message_from_row,
    session_from_row, unread_column,
};
use crate::domain::access::AgentScope;
use crate::domain::event::{Notice, ReadMark, SessionChange, SessionEvent, StoredEvent};
use crate::domain::ids::{MessageId, SessionId, TenantId, UserId};
use crate::domain::message::{Appended, Idempotency, Message, MessageFilter, NewMessage};
use crate::domain::page::Scan;
use crate::domain::session::{InboxPosition, NewSession, Session, SessionFilter, SessionPosition, SessionStatus};
use crate::domain::time::Timestamp;
use crate::store::{Store, StoreError};
use async_trait::async_trait;
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Row, Type};
use uuid::Uuid;

/// A scan as SQL: the position, the comparison past it, and the order.
fn keyset<P>(scan: Scan<P>) -> (Option<P>, &'static str, &'static str) {
    match scan {
        Scan::Older(at) => (at, " < ", " DESC"),
        Scan::Newer(at) => (at, " > ", " ASC"),
    }
}

/// The page query of a session's messages: every filter narrows the
/// session's own rows (by its primary key or an index), `term` goes through
/// the engine's substring index.
fn message_scan<DB: Dialect>(
    tenant: TenantId,
    session: SessionId,
    filter: &MessageFilter,
    scan: Scan<i64>,
    limit: u32,
) -> QueryBuilder<DB> {
    let mut qb = QueryBuilder::<DB>::new("SELECT ");
    qb.push(MESSAGE_COLUMNS).push(" FROM messages WHERE tenant_id = ");
    qb.push_bind(tenant.get()).push(" AND session_id = ").push_bind(session.uuid());
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
    let (at, cmp, order) = keyset(scan);
    if let Some(at) = at {
        qb.push(" AND seq").push(cmp).push_bind(at);
    }
    qb.push(" ORDER BY seq").push(order).push(" LIMIT ").push_bind(i64::from(limit));
    qb
}

/// Finds the message an idempotency key was first used for, with the body fingerprint.
fn idempotency_lookup<DB: Dialect>(new: &NewMessage, idem: &Idempotency) -> QueryBuilder<DB> {
    let mut qb = QueryBuilder::<DB>::new("SELECT k.fingerprint, ");
    qb.push("m.id, m.tenant_id, m.session_id, m.seq, m.sender_id, m.message, m.created_at");
    qb.push(" FROM idempotency_keys k JOIN messages m ON m.tenant_id = k.tenant_id");
    qb.push(" AND m.session_id = k.session_id AND m.seq = k.message_seq WHERE k.tenant_id = ");
    qb.push_bind(new.tenant_id.get()).push(" AND k.session_id = ").push_bind(new.session_id.uuid());
    qb.push(" AND k.sender_id = ").push_bind(new.sender_id.get());
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
    message_from_row(row).map(Appended::Replayed).map_err(StoreError::Internal)
}

/// A session list row: the session plus its unread count.
fn listed_session<R: Row>(row: &R) -> Result<Session, sqlx::Error>
where
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Uuid: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'a> &'a str: ColumnIndex<R>,
{
    let mut session = session_from_row(row)?;
    session.unread_count = Some(row.try_get("unread_count")?);
    Ok(session)
}

/// A `session_events` row (`id` the event's, `s_created_at` the session's)
/// joined with its session, as the session looked after the event.
fn session_event_from_row<R: Row>(row: &R) -> Result<SessionEvent, sqlx::Error>
where
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Uuid: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'a> &'a str: ColumnIndex<R>,
{
    let kind: String = row.try_get("kind")?;
    let status: String = row.try_get("status")?;
    let change = SessionChange::parse(&kind).ok_or_else(|| corrupt("kind"))?;
    let status = SessionStatus::parse(&status).ok_or_else(|| corrupt("status"))?;
    let agent: Option<i64> = row.try_get("agent_id")?;
    let at = Timestamp::from_micros(row.try_get("at")?);
    Ok(SessionEvent {
        id: row.try_get("id")?,
        seq: row.try_get("seq")?,
        change,
        session: Session {
            id: SessionId::from_uuid(row.try_get("session_id")?),
            tenant_id: TenantId::new(row.try_get("tenant_id")?).map_err(|_| corrupt("tenant_id"))?,
            agent_id: agent.map(UserId::new).transpose().map_err(|_| corrupt("agent_id"))?,
            status,
            opened_by: UserId::new(row.try_get("opened_by")?).map_err(|_| corrupt("opened_by"))?,
            created_at: Timestamp::from_micros(row.try_get("s_created_at")?),
            updated_at: at,
            closed_at: (status == SessionStatus::Closed).then_some(at),
            unread_count: None,
            last_seq: row.try_get("seq")?,
        },
    })
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
        sqlx::query("SELECT 1").execute(&self.reader).await.map_err(classify::<DB>)?;
        Ok(())
    }

    async fn create_session(&self, new: &NewSession) -> Result<Session, StoreError> {
        let mut tx = self.writer.begin().await.map_err(classify::<DB>)?;
        let mut qb = QueryBuilder::<DB>::new("INSERT INTO sessions (");
        qb.push(SESSION_COLUMNS).push(") VALUES ");
        qb.push_values(vec![
            new.id.uuid().into(),
            new.tenant_id.get().into(),
            new.agent_id.map(UserId::get).into(),
            SessionStatus::Open.as_str().into(),
            new.opened_by.get().into(),
            new.created_at.micros().into(),
            new.created_at.micros().into(),
            None::<i64>.into(),
            1_i64.into(),
        ]);
        qb.push(" RETURNING ").push(SESSION_COLUMNS);
        let inserted = qb.build().fetch_one(&mut *tx).await;
        match inserted {
            Ok(row) => {
                let session = session_from_row(&row).map_err(StoreError::Internal)?;
                let notice = Self::record_event(&mut tx, &session, 1, SessionChange::Opened, new.created_at).await?;
                self.commit_announcing(tx, &[notice]).await?;
                Ok(session)
            }
            Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
                drop(tx);
                // The one-open-session index decided; report which session won.
                let mut qb = QueryBuilder::<DB>::new("SELECT id FROM sessions WHERE tenant_id = ");
                qb.push_bind(new.tenant_id.get()).push(" AND status = ");
                qb.push_bind(SessionStatus::Open.as_str());
                let row = qb.build().fetch_optional(&self.writer).await.map_err(classify::<DB>)?;
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

    async fn get_session(&self, tenant: TenantId, id: SessionId) -> Result<Option<Session>, StoreError> {
        let mut qb = QueryBuilder::<DB>::new("SELECT ");
        qb.push(SESSION_COLUMNS).push(" FROM sessions WHERE tenant_id = ");
        qb.push_bind(tenant.get()).push(" AND id = ").push_bind(id.uuid());
        let row = qb.build().fetch_optional(&self.reader).await.map_err(classify::<DB>)?;
        row.map(|r| session_from_row(&r)).transpose().map_err(StoreError::Internal)
    }

    async fn scan_sessions(
        &self,
        tenant: TenantId,
        viewer: UserId,
        filter: &SessionFilter,
        scan: Scan<SessionPosition>,
        limit: u32,
    ) -> Result<Vec<Session>, StoreError> {
        let mut qb = QueryBuilder::<DB>::new("SELECT ");
        qb.push(SESSION_COLUMNS);
        unread_column(&mut qb, viewer);
        qb.push(" FROM sessions s WHERE tenant_id = ").push_bind(tenant.get());
        if let Some(status) = filter.status {
            qb.push(" AND status = ").push_bind(status.as_str());
        }
        if let Some(agent) = filter.agent_id {
            qb.push(" AND agent_id = ").push_bind(agent.get());
        }
        let (at, cmp, order) = keyset(scan);
        if let Some(at) = at {
            qb.push(" AND (created_at").push(cmp).push_bind(at.created_at.micros());
            qb.push(" OR (created_at = ").push_bind(at.created_at.micros());
            qb.push(" AND id").push(cmp).push_bind(at.id.uuid()).push("))");
        }
        qb.push(" ORDER BY created_at").push(order).push(", id").push(order);
        qb.push(" LIMIT ").push_bind(i64::from(limit));
        let rows = qb.build().fetch_all(&self.reader).await.map_err(classify::<DB>)?;
        rows.iter().map(listed_session).collect::<Result<_, _>>().map_err(StoreError::Internal)
    }

    async fn scan_inbox(
        &self,
        agent: UserId,
        scope: &AgentScope,
        scan: Scan<InboxPosition>,
        limit: u32,
    ) -> Result<Vec<Session>, StoreError> {
        let mut qb = QueryBuilder::<DB>::new("SELECT ");
        qb.push(SESSION_COLUMNS);
        unread_column(&mut qb, agent);
        qb.push(" FROM sessions s WHERE status = ").push_bind(SessionStatus::Open.as_str());
        qb.push(" AND (agent_id IS NULL OR agent_id = ").push_bind(agent.get()).push(")");
        if let AgentScope::Tenants(tenants) = scope {
            qb.push(" AND tenant_id IN (");
            for (i, t) in tenants.iter().enumerate() {
                if i > 0 {
                    qb.push(", ");
                }
                qb.push_bind(t.get());
            }
            qb.push(")");
        }
        let (at, cmp, order) = keyset(scan);
        if let Some(at) = at {
            let u = at.updated_at.micros();
            let t = at.tenant_id.get();
            qb.push(" AND (updated_at").push(cmp).push_bind(u);
            qb.push(" OR (updated_at = ").push_bind(u).push(" AND (tenant_id").push(cmp).push_bind(t);
            qb.push(" OR (tenant_id = ").push_bind(t).push(" AND id").push(cmp).push_bind(at.id.uuid());
            qb.push("))))");
        }
        qb.push(" ORDER BY updated_at").push(order).push(", tenant_id").push(order).push(", id").push(order);
        qb.push(" LIMIT ").push_bind(i64::from(limit));
        let rows = qb.build().fetch_all(&self.reader).await.map_err(classify::<DB>)?;
        rows.iter().map(listed_session).collect::<Result<_, _>>().map_err(StoreError::Internal)
    }

    async fn close_session(
        &self,
        tenant: TenantId,
        id: SessionId,
        at: Timestamp,
    ) -> Result<Option<Session>, StoreError> {
        let mut tx = self.writer.begin().await.map_err(classify::<DB>)?;
        let closed = Self::bump_session(
            &mut tx,
            tenant,
            id,
            |qb| {
                qb.push(", status = ").push_bind(SessionStatus::Closed.as_str());
                qb.push(", updated_at = ").push_bind(at.micros());
                qb.push(", closed_at = ").push_bind(at.micros());
            },
            "",
        )
        .await?;
        match closed {
            Some((session, seq)) => {
                let notice = Self::record_event(&mut tx, &session, seq, SessionChange::Closed, at).await?;
                self.commit_announcing(tx, &[notice]).await?;
                Ok(Some(session))
            }
            None => {
                drop(tx);
                // Already closed (idempotent) or absent.
                self.get_session(tenant, id).await
            }
        }
    }

    async fn assign_session(
        &self,
        tenant: TenantId,
        id: SessionId,
        agent: UserId,
        only_if_queued: bool,
        at: Timestamp,
    ) -> Result<Session, StoreError> {
        let mut tx = self.writer.begin().await.map_err(classify::<DB>)?;
        let extra = if only_if_queued { " AND agent_id IS NULL" } else { "" };
        let assigned = Self::bump_session(
            &mut tx,
            tenant,
            id,
            |qb| {
                qb.push(", agent_id = ").push_bind(agent.get());
                qb.push(", updated_at = ").push_bind(at.micros());
            },
            extra,
        )
        .await?;
        match assigned {
            Some((session, seq)) => {
                let notice = Self::record_event(&mut tx, &session, seq, SessionChange::Assigned, at).await?;
                self.commit_announcing(tx, &[notice]).await?;
                Ok(session)
            }
            None => {
                drop(tx);
                match self.get_session(tenant, id).await? {
                    Some(s) if s.status == SessionStatus::Open => Err(StoreError::AlreadyAssigned(s.agent_id)),
                    _ => Err(StoreError::SessionNotOpen),
                }
            }
        }
    }

    async fn append_message(&self, new: &NewMessage) -> Result<Appended, StoreError> {
        // A retry of a committed send replays it, even if the session has
        // closed since; no lock is needed to read a committed key.
        if let Some(idem) = &new.idempotency {
            let query = idempotency_lookup::<DB>(new, idem);
            let row = query.build().fetch_optional(&self.reader).await.map_err(classify::<DB>)?;
            if let Some(row) = row {
                return replay(&row, idem);
            }
        }
        let mut tx = self.writer.begin().await.map_err(classify::<DB>)?;

        // Taking the next sequence number locks the session row until commit,
        // which makes sequence order equal to commit order.
        let mut qb = QueryBuilder::<DB>::new("UPDATE sessions SET last_seq = last_seq + 1 WHERE tenant_id = ");
        qb.push_bind(new.tenant_id.get()).push(" AND id = ").push_bind(new.session_id.uuid());
        qb.push(" AND status = ").push_bind(SessionStatus::Open.as_str());
        qb.push(" RETURNING last_seq, last_message_at");
        let Some(row) = qb.build().fetch_optional(&mut *tx).await.map_err(classify::<DB>)? else {
            return Err(StoreError::SessionNotOpen);
        };
        let seq: i64 = row.try_get("last_seq").map_err(StoreError::Internal)?;
        let previous: Option<i64> = row.try_get("last_message_at").map_err(StoreError::Internal)?;

        // Checked again under the session lock: a concurrent retry with the
        // same key may have committed since the first look.
        if let Some(idem) = &new.idempotency {
            let query = idempotency_lookup::<DB>(new, idem);
            let row = query.build().fetch_optional(&mut *tx).await.map_err(classify::<DB>)?;
            if let Some(row) = row {
                // Dropping the transaction rolls back the sequence bump.
                return replay(&row, idem);
            }
        }

        let created_at = Timestamp::next_after(previous.map(Timestamp::from_micros), new.now);
        let mut qb = QueryBuilder::<DB>::new("UPDATE sessions SET last_message_at = ");
        qb.push_bind(created_at.micros()).push(", updated_at = ").push_bind(created_at.micros());
        qb.push(" WHERE tenant_id = ").push_bind(new.tenant_id.get());
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

        self.commit_announcing(tx, &[Notice::Committed { t: new.tenant_id, s: new.session_id, q: seq, c: false }])
            .await?;
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
        qb.push_bind(tenant.get()).push(" AND session_id = ").push_bind(session.uuid());
        qb.push(" AND id = ").push_bind(id.uuid());
        let row = qb.build().fetch_optional(&self.reader).await.map_err(classify::<DB>)?;
        row.map(|r| r.try_get("seq")).transpose().map_err(StoreError::Internal)
    }

    async fn scan_messages(
        &self,
        tenant: TenantId,
        session: SessionId,
        filter: &MessageFilter,
        scan: Scan<i64>,
        limit: u32,
    ) -> Result<Vec<Message>, StoreError> {
        let qb = message_scan::<DB>(tenant, session, filter, scan, limit);
        let rows = qb.build().fetch_all(&self.reader).await.map_err(classify::<DB>)?;
        rows.iter().map(message_from_row).collect::<Result<_, _>>().map_err(StoreError::Internal)
    }

    async fn events_after(
        &self,
        tenant: TenantId,
        session: SessionId,
        after: i64,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        // One statement, so one snapshot: reading the two tables separately
        // could see message 6 missing and event 7 present, and skip 6 for
        // good. Each branch is ordered and limited itself so both stay index
        // range reads however long the backlog.
        let mut qb = QueryBuilder::<DB>::new(
            "SELECT * FROM (SELECT * FROM (SELECT 'm' AS src, m.tenant_id, m.session_id, m.seq, m.id, m.sender_id, \
             m.message, m.created_at, CAST(NULL AS TEXT) AS kind, CAST(NULL AS BIGINT) AS agent_id, \
             CAST(NULL AS TEXT) AS status, CAST(NULL AS BIGINT) AS at, CAST(NULL AS BIGINT) AS opened_by, \
             CAST(NULL AS BIGINT) AS s_created_at FROM messages m WHERE m.tenant_id = ",
        );
        qb.push_bind(tenant.get()).push(" AND m.session_id = ").push_bind(session.uuid());
        qb.push(" AND m.seq > ").push_bind(after).push(" ORDER BY m.seq LIMIT ").push_bind(i64::from(limit));
        qb.push(
            ") mb UNION ALL SELECT * FROM (SELECT 'e' AS src, e.tenant_id, e.session_id, e.seq, e.id, \
             CAST(NULL AS BIGINT) AS sender_id, CAST(NULL AS TEXT) AS message, CAST(NULL AS BIGINT) AS created_at, e.kind, e.agent_id, e.status, e.at, s.opened_by, \
             s.created_at AS s_created_at FROM session_events e JOIN sessions s \
             ON s.tenant_id = e.tenant_id AND s.id = e.session_id WHERE e.tenant_id = ",
        );
        qb.push_bind(tenant.get()).push(" AND e.session_id = ").push_bind(session.uuid());
        qb.push(" AND e.seq > ").push_bind(after).push(" ORDER BY e.seq LIMIT ").push_bind(i64::from(limit));
        qb.push(") eb) u ORDER BY seq LIMIT ").push_bind(i64::from(limit));
        let rows = qb.build().fetch_all(&self.reader).await.map_err(classify::<DB>)?;
        let mut events = Vec::with_capacity(rows.len());
        for row in &rows {
            let src: String = row.try_get("src").map_err(StoreError::Internal)?;
            let event = if src == "m" {
                StoredEvent::Message(message_from_row(row).map_err(StoreError::Internal)?)
            } else {
                StoredEvent::Session(session_event_from_row(row).map_err(StoreError::Internal)?)
            };
            events.push(event);
        }
        Ok(events)
    }

    async fn event_seq(&self, tenant: TenantId, session: SessionId, id: Uuid) -> Result<Option<i64>, StoreError> {
        let mut qb = QueryBuilder::<DB>::new("SELECT seq FROM messages WHERE tenant_id = ");
        qb.push_bind(tenant.get()).push(" AND session_id = ").push_bind(session.uuid());
        qb.push(" AND id = ").push_bind(id);
        qb.push(" UNION ALL SELECT seq FROM session_events WHERE tenant_id = ").push_bind(tenant.get());
        qb.push(" AND session_id = ").push_bind(session.uuid()).push(" AND id = ").push_bind(id);
        let row = qb.build().fetch_optional(&self.reader).await.map_err(classify::<DB>)?;
        row.map(|r| r.try_get("seq")).transpose().map_err(StoreError::Internal)
    }

    async fn mark_read(
        &self,
        tenant: TenantId,
        session: SessionId,
        user: UserId,
        message: MessageId,
        at: Timestamp,
    ) -> Result<(ReadMark, bool), StoreError> {
        let seq = self.message_seq(tenant, session, message).await?.ok_or(StoreError::MessageNotFound)?;
        let mut tx = self.writer.begin().await.map_err(classify::<DB>)?;
        let mut qb = QueryBuilder::<DB>::new(
            "INSERT INTO read_state (tenant_id, session_id, user_id, seq, message_id, at) VALUES ",
        );
        qb.push_values(vec![
            tenant.get().into(),
            session.uuid().into(),
            user.get().into(),
            seq.into(),
            message.uuid().into(),
            at.micros().into(),
        ]);
        qb.push(" ON CONFLICT (tenant_id, session_id, user_id) DO UPDATE SET seq = excluded.seq,");
        qb.push(" message_id = excluded.message_id, at = excluded.at WHERE read_state.seq < excluded.seq");
        qb.push(" RETURNING seq");
        let moved = qb.build().fetch_optional(&mut *tx).await.map_err(classify::<DB>)?.is_some();
        let mut qb = QueryBuilder::<DB>::new("SELECT seq, message_id, at FROM read_state WHERE tenant_id = ");
        qb.push_bind(tenant.get()).push(" AND session_id = ").push_bind(session.uuid());
        qb.push(" AND user_id = ").push_bind(user.get());
        let row = qb.build().fetch_one(&mut *tx).await.map_err(classify::<DB>)?;
        tx.commit().await.map_err(classify::<DB>)?;
        let mark = ReadMark {
            tenant_id: tenant,
            session_id: session,
            user_id: user,
            message_id: MessageId::from_uuid(row.try_get("message_id").map_err(StoreError::Internal)?),
            seq: row.try_get("seq").map_err(StoreError::Internal)?,
            at: Timestamp::from_micros(row.try_get("at").map_err(StoreError::Internal)?),
        };
        Ok((mark, moved))
    }

    async fn shutdown(&self) {
        for task in self.tasks.lock().unwrap_or_else(std::sync::PoisonError::into_inner).drain(..) {
            task.abort();
        }
        self.writer.close().await;
        self.reader.close().await;
    }
}

#[cfg(test)]
mod query_plans {
    //! `term` search must be served by an index, not a scan of the table.

    use super::*;
    use crate::domain::message::SearchTerm;
    use crate::store::StoreConfig;
    use sqlx::{Connection, Postgres, Sqlite};
    use std::time::Duration;

    fn config(url: String) -> StoreConfig {
        StoreConfig {
            url,
            max_connections: 2,
            acquire_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(5),
            migrate: true,
            retry_interval: Duration::from_secs(1),
        }
    }

    fn filter(term: &str) -> MessageFilter {
        MessageFilter { term: Some(SearchTerm::parse(term).unwrap()), ..MessageFilter::default() }
    }

    #[tokio::test]
    async fn sqlite_term_search_goes_through_the_trigram_index() {
        let dir = std::env::temp_dir().join(format!("livechat-plan-{}", Uuid::now_v7().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let store =
            crate::store::sqlite::connect(&config(format!("sqlite://{}/plan.db", dir.display()))).await.unwrap();
        let (tenant, session) = (TenantId::new(1).unwrap(), SessionId::generate());
        let plan = |term: &str| {
            let mut qb = message_scan::<Sqlite>(tenant, session, &filter(term), Scan::Older(None), 10);
            qb.text.insert_str(0, "EXPLAIN QUERY PLAN ");
            qb
        };
        for (term, uses_fts) in [("kopi", true), ("ko", false)] {
            let qb = plan(term);
            let rows = qb.build().fetch_all(&store.reader).await.unwrap();
            let details: Vec<String> = rows.iter().map(|r| r.try_get::<String, _>("detail").unwrap()).collect();
            assert!(!details.iter().any(|d| d == "SCAN messages"), "{term}: full scan in {details:?}");
            assert_eq!(
                details.iter().any(|d| d.contains("messages_fts VIRTUAL TABLE INDEX")),
                uses_fts,
                "{term}: {details:?}"
            );
        }
        store.writer.close().await;
        store.reader.close().await;
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn postgres_term_predicate_is_served_by_the_trigram_index() {
        let admin = std::env::var("LIVECHAT_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
        let name = format!("livechat_plan_{}", Uuid::now_v7().simple());
        let mut conn = sqlx::PgConnection::connect(&admin).await.expect("PostgreSQL is required by the tests");
        conn.execute(format!("CREATE DATABASE {name}").as_str()).await.unwrap();
        let url = format!("{}/{name}", admin.rsplit_once('/').unwrap().0);
        let store = crate::store::postgres::connect(&config(url)).await.unwrap();
        let mut qb = QueryBuilder::<Postgres>::new("EXPLAIN SELECT id FROM messages WHERE true");
        Postgres::push_term_filter(&mut qb, &SearchTerm::parse("50% kopi_").unwrap());
        let mut tx = store.reader.begin().await.unwrap();
        // With sequential scans priced out, the plan shows whether an index can serve the predicate.
        tx.execute("SET LOCAL enable_seqscan = off").await.unwrap();
        let rows = qb.build().fetch_all(&mut *tx).await.unwrap();
        let plan: Vec<String> = rows.iter().map(|r| r.try_get::<String, _>(0).unwrap()).collect();
        drop(tx);
        store.shutdown().await;
        conn.execute(format!("DROP DATABASE {name} WITH (FORCE)").as_str()).await.unwrap();
        assert!(plan.iter().any(|l| l.contains("messages_folded_trgm")), "{plan:#?}");
    }
}
