//! Sessions and the agent inbox.

use super::{Constraint, Dialect, QueryBuilder, Record, SESSION_COLUMNS, SqlStore, session_from_row};
use crate::domain::access::AgentScope;
use crate::domain::event::SessionChange;
use crate::domain::ids::{SessionId, TenantId, UserId};
use crate::domain::page::Scan;
use crate::domain::session::{InboxPosition, NewSession, Session, SessionFilter, SessionPosition, SessionStatus};
use crate::domain::time::Timestamp;
use crate::store::{SessionStore, StoreError};
use async_trait::async_trait;

/// A scan as SQL: the position, the comparison past it, and the order.
pub(super) fn keyset<P>(scan: Scan<P>) -> (Option<P>, &'static str, &'static str) {
    match scan {
        Scan::Older(at) => (at, " < ", " DESC"),
        Scan::Newer(at) => (at, " > ", " ASC"),
    }
}

/// The unread count of `viewer` per session row `s` (messages from others after the read mark).
fn unread_column<DB: Dialect>(qb: &mut QueryBuilder<DB>, viewer: UserId) {
    qb.push(", (SELECT count(*) FROM messages m WHERE m.tenant_id = s.tenant_id AND m.session_id = s.id");
    qb.push(" AND m.sender_id <> ").push_bind(viewer.get());
    qb.push(" AND m.seq > COALESCE((SELECT r.seq FROM read_state r WHERE r.tenant_id = s.tenant_id");
    qb.push(" AND r.session_id = s.id AND r.user_id = ").push_bind(viewer.get());
    qb.push("), 0)) AS unread_count");
}

/// A session list row: the session plus its unread count.
fn listed_session(row: &impl Record) -> Result<Session, sqlx::Error> {
    let mut session = session_from_row(row)?;
    session.unread_count = Some(row.int("unread_count")?);
    Ok(session)
}

/// How many times opening a session is tried while other requests keep
/// opening and closing the tenant's session.
const OPEN_ATTEMPTS: usize = 16;

impl<DB: Dialect> SqlStore<DB> {
    /// Inserts the session with its `opened` event; `None` if the tenant
    /// already has an OPEN session (the partial unique index fired).
    async fn insert_session(&self, new: &NewSession) -> Result<Option<Session>, StoreError> {
        let mut tx = self.db.begin().await?;
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
        let row = match DB::fetch_optional(&mut tx, &qb).await {
            Ok(row) => row.ok_or(StoreError::Internal(sqlx::Error::RowNotFound))?,
            Err(sqlx::Error::Database(db)) if DB::violates(db.as_ref(), Constraint::OneOpenSessionPerTenant) => {
                return Ok(None);
            }
            Err(err) => return Err(self.db.fail(err)),
        };
        let session = session_from_row(&row).map_err(StoreError::Internal)?;
        let notice = self.record_event(&mut tx, &session, 1, SessionChange::Opened, new.created_at).await?;
        self.commit_announcing(tx, &[notice]).await?;
        Ok(Some(session))
    }

    async fn scan_listed(&self, qb: &QueryBuilder<DB>) -> Result<Vec<Session>, StoreError> {
        let rows = self.read_all(qb).await?;
        rows.iter().map(listed_session).collect::<Result<_, _>>().map_err(StoreError::Internal)
    }

    /// The tenant's OPEN session, if any.
    async fn open_session_of(&self, tenant: TenantId) -> Result<Option<SessionId>, StoreError> {
        let mut qb = QueryBuilder::<DB>::new("SELECT id FROM sessions WHERE tenant_id = ");
        qb.push_bind(tenant.get()).push(" AND status = ").push_bind(SessionStatus::Open.as_str());
        let row = self.write_one(&qb).await?;
        row.map(|r| r.uuid("id").map(SessionId::from_uuid)).transpose().map_err(StoreError::Internal)
    }
}

#[async_trait]
impl<DB: Dialect> SessionStore for SqlStore<DB> {
    async fn create_session(&self, new: &NewSession) -> Result<Session, StoreError> {
        // The one-open-session index decides a race; a loser reports the
        // winner. If the winner was closed before the loser could read it,
        // the tenant has no open session any more: the insert is simply tried
        // again (each retry means another request opened or closed meanwhile).
        for _ in 0..OPEN_ATTEMPTS {
            match self.insert_session(new).await? {
                Some(session) => return Ok(session),
                None => {
                    if let Some(id) = self.open_session_of(new.tenant_id).await? {
                        return Err(StoreError::SessionAlreadyActive(id));
                    }
                }
            }
        }
        Err(StoreError::Unavailable(anyhow::anyhow!(
            "the tenant's open session changed {OPEN_ATTEMPTS} times while opening one"
        )))
    }

    async fn get_session(&self, tenant: TenantId, id: SessionId) -> Result<Option<Session>, StoreError> {
        let mut qb = QueryBuilder::<DB>::new("SELECT ");
        qb.push(SESSION_COLUMNS).push(" FROM sessions WHERE tenant_id = ");
        qb.push_bind(tenant.get()).push(" AND id = ").push_bind(id.uuid());
        let row = self.read_one(&qb).await?;
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
        self.scan_listed(&qb).await
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
        self.scan_listed(&qb).await
    }

    async fn close_session(
        &self,
        tenant: TenantId,
        id: SessionId,
        at: Timestamp,
    ) -> Result<Option<Session>, StoreError> {
        let mut tx = self.db.begin().await?;
        let set = |qb: &mut QueryBuilder<DB>| {
            qb.push(", status = ").push_bind(SessionStatus::Closed.as_str());
            qb.push(", updated_at = ").push_bind(at.micros());
            qb.push(", closed_at = ").push_bind(at.micros());
        };
        match self.bump_session(&mut tx, tenant, id, set, "").await? {
            Some(session) => {
                let notice = self.record_event(&mut tx, &session, session.last_seq, SessionChange::Closed, at).await?;
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
        let mut tx = self.db.begin().await?;
        let extra = if only_if_queued { " AND agent_id IS NULL" } else { "" };
        let set = |qb: &mut QueryBuilder<DB>| {
            qb.push(", agent_id = ").push_bind(agent.get());
            qb.push(", updated_at = ").push_bind(at.micros());
        };
        match self.bump_session(&mut tx, tenant, id, set, extra).await? {
            Some(session) => {
                let notice =
                    self.record_event(&mut tx, &session, session.last_seq, SessionChange::Assigned, at).await?;
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
}
