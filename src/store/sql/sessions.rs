//! Sessions and the agent inbox.

use super::SqlStore;
use super::dialect::{Constraint, Dialect};
use super::query::{QueryBuilder, Record, keyset};
use super::rows::{SESSION_COLUMNS, session_from_row};
use crate::domain::access::AgentScope;
use crate::domain::event::SessionChange;
use crate::domain::ids::{SessionId, TenantId, UserId};
use crate::domain::page::{Page, PagePlan, PageRequest, Scan, Unlisted};
use crate::domain::session::{
    InboxItem, InboxPosition, NewSession, Session, SessionFilter, SessionPosition, SessionStatus,
};
use crate::domain::time::Timestamp;
use crate::store::{SessionStore, StoreError};
use async_trait::async_trait;

/// The session with this id in this tenant.
fn session_by_id<DB: Dialect>(tenant: TenantId, id: SessionId) -> QueryBuilder<DB> {
    let mut qb = QueryBuilder::<DB>::new("SELECT ");
    qb.push(SESSION_COLUMNS).push(" FROM sessions WHERE tenant_id = ");
    qb.push_bind(tenant.get()).push(" AND id = ").push_bind(id.uuid());
    qb
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
    /// A session of the tenant, read on `conn` (to place a cursor).
    async fn position(
        &self,
        conn: &mut DB::Connection,
        tenant: TenantId,
        id: SessionId,
    ) -> Result<Option<Session>, StoreError> {
        let row = self.tx_one(conn, &session_by_id::<DB>(tenant, id)).await?;
        row.map(|r| session_from_row(&r)).transpose().map_err(StoreError::Internal)
    }

    /// Inserts the session with its `opened` event, or names the tenant's
    /// OPEN session, in one write transaction. On SQLite that transaction
    /// holds the one writer, so the session that stopped the insert is the
    /// one read after it. On PostgreSQL (read committed) it may be closed
    /// between the two statements; the insert is then tried again in the
    /// same transaction, each try meaning another request opened or closed.
    async fn insert_session(&self, new: &NewSession) -> Result<Session, StoreError> {
        let mut tx = self.db.begin().await?;
        for _ in 0..OPEN_ATTEMPTS {
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
            // The conflict target is the partial index `sessions_one_open_per_tenant`.
            qb.push(" ON CONFLICT (tenant_id) WHERE status = 'OPEN' DO NOTHING RETURNING ").push(SESSION_COLUMNS);
            let row = match DB::fetch_optional(&mut tx, &qb).await {
                Ok(row) => row,
                Err(sqlx::Error::Database(db)) if DB::violates(db.as_ref(), Constraint::OneOpenSessionPerTenant) => {
                    None
                }
                Err(err) => return Err(self.db.fail(err)),
            };
            if let Some(row) = row {
                let session = session_from_row(&row).map_err(StoreError::Internal)?;
                let notice = self.record_event(&mut tx, &session, 1, SessionChange::Opened, new.created_at).await?;
                self.commit_announcing(tx, &[notice]).await?;
                return Ok(session);
            }
            let mut qb = QueryBuilder::<DB>::new("SELECT id FROM sessions WHERE tenant_id = ");
            qb.push_bind(new.tenant_id.get()).push(" AND status = ").push_bind(SessionStatus::Open.as_str());
            let open = DB::fetch_optional(&mut tx, &qb).await.map_err(|err| self.db.fail(err))?;
            if let Some(row) = open {
                let id = row.uuid("id").map(SessionId::from_uuid).map_err(StoreError::Internal)?;
                return Err(StoreError::SessionAlreadyActive(id));
            }
        }
        Err(StoreError::SessionConflict)
    }
}

#[async_trait]
impl<DB: Dialect> SessionStore for SqlStore<DB> {
    async fn create_session(&self, new: &NewSession) -> Result<Session, StoreError> {
        // The one-open-session index decides a race; a loser names the winner.
        self.insert_session(new).await
    }

    async fn get_session(&self, tenant: TenantId, id: SessionId) -> Result<Option<Session>, StoreError> {
        let row = self.read_one(&session_by_id::<DB>(tenant, id)).await?;
        row.map(|r| session_from_row(&r)).transpose().map_err(StoreError::Internal)
    }

    async fn page_sessions(
        &self,
        tenant: TenantId,
        viewer: UserId,
        filter: &SessionFilter,
        page: &PageRequest<SessionId>,
    ) -> Result<Result<Page<Session>, Unlisted>, StoreError> {
        let mut conn = self.db.read().await?;
        let cursor = match page.cursor {
            Some(id) => match self.position(&mut conn, tenant, id).await? {
                Some(s) => Some((s.position(), id.to_string())),
                None => return Ok(Err(Unlisted::BadCursor)),
            },
            None => None,
        };
        let plan = PagePlan::new(page.limit, page.direction, cursor);
        let scan = |scan: Scan<SessionPosition>, limit: u32| {
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
            qb
        };
        self.read_page(&mut conn, plan, scan, listed_session).await.map(Ok)
    }

    async fn page_inbox(
        &self,
        agent: UserId,
        scope: &AgentScope,
        page: &PageRequest<(TenantId, SessionId)>,
    ) -> Result<Result<Page<InboxItem>, Unlisted>, StoreError> {
        let mut conn = self.db.read().await?;
        let cursor = match page.cursor {
            Some((tenant, id)) if scope.covers(tenant) => match self.position(&mut conn, tenant, id).await? {
                Some(s) => Some((s.inbox_position(), format!("{tenant}.{id}"))),
                None => return Ok(Err(Unlisted::BadCursor)),
            },
            Some(_) => return Ok(Err(Unlisted::BadCursor)),
            None => None,
        };
        let plan = PagePlan::new(page.limit, page.direction, cursor);
        let scan = |scan: Scan<InboxPosition>, limit: u32| {
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
            qb
        };
        let decode = |row: &DB::Row| listed_session(row).map(InboxItem);
        self.read_page(&mut conn, plan, scan, decode).await.map(Ok)
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
