//! Messages and the replayable event history of a session.

use super::sessions::keyset;
use super::{
    Dialect, MESSAGE_COLUMNS, QueryBuilder, Record, SqlStore, corrupt, message_from_row, opt_user, status, tenant, user,
};
use crate::domain::event::{Notice, SessionChange, SessionEvent, StoredEvent};
use crate::domain::ids::{MessageId, SessionId, TenantId};
use crate::domain::message::{Appended, Idempotency, Message, MessageFilter, NewMessage};
use crate::domain::page::Scan;
use crate::domain::session::{Session, SessionStatus};
use crate::domain::time::Timestamp;
use crate::store::{MessageStore, StoreError};
use async_trait::async_trait;
use uuid::Uuid;

/// The page query of a session's messages: every filter narrows the
/// session's own rows (by its primary key or an index), `term` goes through
/// the engine's substring index.
pub fn message_scan<DB: Dialect>(
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
fn replay(row: &impl Record, idem: &Idempotency) -> Result<Appended, StoreError> {
    let fingerprint = row.text("fingerprint").map_err(StoreError::Internal)?;
    if fingerprint != idem.fingerprint {
        return Err(StoreError::IdempotencyKeyReused);
    }
    message_from_row(row).map(Appended::Replayed).map_err(StoreError::Internal)
}

/// A `session_events` row (`id` the event's, `s_created_at` the session's)
/// joined with its session, as the session looked after the event.
fn session_event_from_row(row: &impl Record) -> Result<SessionEvent, sqlx::Error> {
    let change = SessionChange::parse(&row.text("kind")?).ok_or_else(|| corrupt("kind"))?;
    let status = status(row)?;
    let at = Timestamp::from_micros(row.int("at")?);
    Ok(SessionEvent {
        id: row.uuid("id")?,
        seq: row.int("seq")?,
        change,
        session: Session {
            id: SessionId::from_uuid(row.uuid("session_id")?),
            tenant_id: tenant(row, "tenant_id")?,
            agent_id: opt_user(row, "agent_id")?,
            status,
            opened_by: user(row, "opened_by")?,
            created_at: Timestamp::from_micros(row.int("s_created_at")?),
            updated_at: at,
            closed_at: (status == SessionStatus::Closed).then_some(at),
            unread_count: None,
            last_seq: row.int("seq")?,
        },
    })
}

#[async_trait]
impl<DB: Dialect> MessageStore for SqlStore<DB> {
    async fn append_message(&self, new: &NewMessage) -> Result<Appended, StoreError> {
        // A retry of a committed send replays it, even if the session has
        // closed since; no lock is needed to read a committed key.
        if let Some(idem) = &new.idempotency {
            if let Some(row) = self.read_one(&idempotency_lookup::<DB>(new, idem)).await? {
                return replay(&row, idem);
            }
        }
        let mut tx = self.db.begin().await?;

        // Taking the next sequence number locks the session row until commit,
        // which makes sequence order equal to commit order.
        let mut qb = QueryBuilder::<DB>::new("UPDATE sessions SET last_seq = last_seq + 1 WHERE tenant_id = ");
        qb.push_bind(new.tenant_id.get()).push(" AND id = ").push_bind(new.session_id.uuid());
        qb.push(" AND status = ").push_bind(SessionStatus::Open.as_str());
        qb.push(" RETURNING last_seq, last_message_at");
        let Some(row) = self.tx_one(&mut tx, &qb).await? else {
            return Err(StoreError::SessionNotOpen);
        };
        let seq = row.int("last_seq").map_err(StoreError::Internal)?;
        let previous = row.opt_int("last_message_at").map_err(StoreError::Internal)?;

        // Checked again under the session lock: a concurrent retry with the
        // same key may have committed since the first look.
        if let Some(idem) = &new.idempotency {
            if let Some(row) = self.tx_one(&mut tx, &idempotency_lookup::<DB>(new, idem)).await? {
                // Dropping the transaction rolls back the sequence bump.
                return replay(&row, idem);
            }
        }

        let created_at = Timestamp::next_after(previous.map(Timestamp::from_micros), new.now);
        let mut qb = QueryBuilder::<DB>::new("UPDATE sessions SET last_message_at = ");
        qb.push_bind(created_at.micros()).push(", updated_at = ").push_bind(created_at.micros());
        qb.push(" WHERE tenant_id = ").push_bind(new.tenant_id.get());
        qb.push(" AND id = ").push_bind(new.session_id.uuid());
        self.tx_run(&mut tx, &qb).await?;

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
        self.tx_run(&mut tx, &qb).await?;

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
            self.tx_run(&mut tx, &qb).await?;
        }

        let notice = Notice::Committed { tenant: new.tenant_id, session: new.session_id, seq, session_change: false };
        self.commit_announcing(tx, &[notice]).await?;
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

    async fn message(
        &self,
        tenant: TenantId,
        session: SessionId,
        id: MessageId,
    ) -> Result<Option<Message>, StoreError> {
        let mut qb = QueryBuilder::<DB>::new("SELECT ");
        qb.push(MESSAGE_COLUMNS).push(" FROM messages WHERE tenant_id = ");
        qb.push_bind(tenant.get()).push(" AND session_id = ").push_bind(session.uuid());
        qb.push(" AND id = ").push_bind(id.uuid());
        let row = self.read_one(&qb).await?;
        row.map(|r| message_from_row(&r)).transpose().map_err(StoreError::Internal)
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
        let row = self.read_one(&qb).await?;
        row.map(|r| r.int("seq")).transpose().map_err(StoreError::Internal)
    }

    async fn scan_messages(
        &self,
        tenant: TenantId,
        session: SessionId,
        filter: &MessageFilter,
        scan: Scan<i64>,
        limit: u32,
    ) -> Result<Vec<Message>, StoreError> {
        let rows = self.read_all(&message_scan::<DB>(tenant, session, filter, scan, limit)).await?;
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
             CAST(NULL AS BIGINT) AS sender_id, CAST(NULL AS TEXT) AS message, CAST(NULL AS BIGINT) AS created_at, \
             e.kind, e.agent_id, e.status, e.at, s.opened_by, s.created_at AS s_created_at \
             FROM session_events e JOIN sessions s ON s.tenant_id = e.tenant_id AND s.id = e.session_id \
             WHERE e.tenant_id = ",
        );
        qb.push_bind(tenant.get()).push(" AND e.session_id = ").push_bind(session.uuid());
        qb.push(" AND e.seq > ").push_bind(after).push(" ORDER BY e.seq LIMIT ").push_bind(i64::from(limit));
        qb.push(") eb) u ORDER BY seq LIMIT ").push_bind(i64::from(limit));
        let rows = self.read_all(&qb).await?;
        rows.iter()
            .map(|row| {
                Ok(if row.text("src")? == "m" {
                    StoredEvent::Message(message_from_row(row)?)
                } else {
                    StoredEvent::Session(session_event_from_row(row)?)
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::Internal)
    }

    async fn event_seq(&self, tenant: TenantId, session: SessionId, id: Uuid) -> Result<Option<i64>, StoreError> {
        let mut qb = QueryBuilder::<DB>::new("SELECT seq FROM messages WHERE tenant_id = ");
        qb.push_bind(tenant.get()).push(" AND session_id = ").push_bind(session.uuid());
        qb.push(" AND id = ").push_bind(id);
        qb.push(" UNION ALL SELECT seq FROM session_events WHERE tenant_id = ").push_bind(tenant.get());
        qb.push(" AND session_id = ").push_bind(session.uuid()).push(" AND id = ").push_bind(id);
        let row = self.read_one(&qb).await?;
        row.map(|r| r.int("seq")).transpose().map_err(StoreError::Internal)
    }
}
