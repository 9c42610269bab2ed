//! The write path every aggregate shares: bumping a session's sequence under
//! its row lock, recording a session event (and its outbox row), and
//! committing with the announcements of the change.

use super::SqlStore;
use super::dialect::Dialect;
use super::query::{QueryBuilder, Record};
use super::rows::{SESSION_COLUMNS, session_from_row};
use crate::domain::event::{Notice, SessionChange};
use crate::domain::ids::{SessionId, TenantId, UserId};
use crate::domain::session::{Session, SessionStatus};
use crate::domain::time::Timestamp;
use crate::domain::webhook::{EventType, OutboxEvent};
use crate::store::StoreError;
use uuid::Uuid;

/// Statements every aggregate shares: session events and the announcements
/// that go with commits.
impl<DB: Dialect> SqlStore<DB> {
    /// Records a session event at `seq`; returns the notice to commit with it.
    pub(super) async fn record_event(
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
    pub(super) async fn commit_announcing(
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
        if !crate::store::commit_gate::pass() {
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
    pub(super) async fn bump_session(
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
pub(super) fn notify_statement<DB: Dialect>(channel: &str, notice: &Notice) -> Result<QueryBuilder<DB>, StoreError> {
    let payload = serde_json::to_string(notice).map_err(|e| StoreError::Internal(sqlx::Error::Encode(e.into())))?;
    let mut qb = QueryBuilder::<DB>::new("SELECT pg_notify(");
    qb.push_bind(channel).push(", ").push_bind(payload).push(")");
    Ok(qb)
}
