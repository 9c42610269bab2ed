//! Messages and the replayable event history of a session.

use super::SqlStore;
use super::dialect::Dialect;
use super::query::keyset;
use super::query::{QueryBuilder, Record};
use super::rows::{MESSAGE_COLUMNS, corrupt, message_from_row, opt_user, status, tenant, user};
use crate::domain::event::{SessionChange, SessionEvent, StoredEvent};
use crate::domain::ids::{MessageId, SessionId, TenantId};
use crate::domain::message::{Appended, Message, MessageFilter, NewMessage};
use crate::domain::page::{Page, PagePlan, PageRequest, Scan, Unlisted};
use crate::domain::session::{Session, SessionStatus};
use crate::domain::time::Timestamp;
use crate::store::{MessageStore, StoreError};
use async_trait::async_trait;
use uuid::Uuid;

/// How a scan tests `term`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TermMatch {
    /// Through the engine's substring index.
    Index,
    /// By testing each row it reads (for reads bounded by other means).
    Scan,
}

/// The page query of a session's messages: every filter narrows the
/// session's own rows (by its primary key or an index); `term` goes through
/// the engine's substring index or is tested row by row, and `within`
/// bounds the sequence on the far side (`(" >= ", seq)`).
pub fn message_scan<DB: Dialect>(
    tenant: TenantId,
    session: SessionId,
    filter: &MessageFilter,
    scan: Scan<i64>,
    limit: u32,
) -> QueryBuilder<DB> {
    message_scan_with(tenant, session, filter, scan, limit, TermMatch::Index, None)
}

fn message_scan_with<DB: Dialect>(
    tenant: TenantId,
    session: SessionId,
    filter: &MessageFilter,
    scan: Scan<i64>,
    limit: u32,
    term_match: TermMatch,
    within: Option<(&str, i64)>,
) -> QueryBuilder<DB> {
    message_scan_from(tenant, session, filter, scan, None, limit, term_match, within)
}

/// The page query, its position given as a message of the session (looked
/// up inside the query) when `from` is set and the scan has none.
#[expect(clippy::too_many_arguments, reason = "one query's every part; a struct would only rename them")]
fn message_scan_from<DB: Dialect>(
    tenant: TenantId,
    session: SessionId,
    filter: &MessageFilter,
    scan: Scan<i64>,
    from: Option<MessageId>,
    limit: u32,
    term_match: TermMatch,
    within: Option<(&str, i64)>,
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
    match (&filter.term, term_match) {
        (Some(term), TermMatch::Index) => DB::push_term_filter(&mut qb, term),
        (Some(term), TermMatch::Scan) => {
            qb.push(" AND ").push(DB::SUBSTRING_POSITION).push("(message_folded, ");
            qb.push_bind(term.folded().to_owned()).push(") > 0");
        }
        (None, _) => {}
    }
    let (at, cmp, order) = keyset(scan);
    match (at, from) {
        (Some(at), _) => {
            qb.push(" AND seq").push(cmp).push_bind(at);
        }
        (None, Some(message)) => {
            qb.push(" AND seq").push(cmp).push("(SELECT seq FROM messages WHERE tenant_id = ").push_bind(tenant.get());
            qb.push(" AND session_id = ").push_bind(session.uuid()).push(" AND id = ").push_bind(message.uuid());
            qb.push(")");
        }
        (None, None) => {}
    }
    if let Some((cmp, bound)) = within {
        qb.push(" AND seq").push(cmp).push_bind(bound);
    }
    qb.push(" ORDER BY seq").push(order).push(" LIMIT ").push_bind(i64::from(limit));
    qb
}

impl<DB: Dialect> SqlStore<DB> {
    /// Up to `take` messages matching `filter` past the scan position,
    /// nearest first. A search first tests the session's own next
    /// `search_window` rows: a common term fills a page there, and a
    /// session smaller than the window never touches the index shared with
    /// every other session (and tenant); only what lies beyond it goes
    /// through the substring index.
    async fn scan_messages_on(
        &self,
        conn: &mut DB::Connection,
        (tenant, session): (TenantId, SessionId),
        filter: &MessageFilter,
        scan: Scan<i64>,
        take: u32,
    ) -> Result<Vec<Message>, StoreError> {
        let decode = |rows: Vec<DB::Row>| {
            rows.iter().map(message_from_row).collect::<Result<Vec<_>, _>>().map_err(StoreError::Internal)
        };
        let window = self.search_window.max(1);
        let (Some(_), true) = (&filter.term, DB::WINDOWED_SEARCH) else {
            return decode(self.tx_all(conn, &message_scan::<DB>(tenant, session, filter, scan, take)).await?);
        };
        // Where the window ends: the `window`-th row past the position, if there is one.
        let (at, cmp, order) = keyset(scan);
        let mut qb = QueryBuilder::<DB>::new("SELECT seq FROM messages WHERE tenant_id = ");
        qb.push_bind(tenant.get()).push(" AND session_id = ").push_bind(session.uuid());
        if let Some(at) = at {
            qb.push(" AND seq").push(cmp).push_bind(at);
        }
        qb.push(" ORDER BY seq").push(order).push(" LIMIT 1 OFFSET ").push_bind(i64::from(window - 1));
        let edge = self.tx_one(conn, &qb).await?.map(|r| r.int("seq")).transpose().map_err(StoreError::Internal)?;
        let (inside, beyond) = match scan {
            Scan::Older(_) => (" >= ", Scan::Older(edge)),
            Scan::Newer(_) => (" <= ", Scan::Newer(edge)),
        };
        let windowed =
            message_scan_with::<DB>(tenant, session, filter, scan, take, TermMatch::Scan, edge.map(|e| (inside, e)));
        let mut found = decode(self.tx_all(conn, &windowed).await?)?;
        let missing = take.saturating_sub(u32::try_from(found.len()).unwrap_or(u32::MAX));
        if edge.is_some() && missing > 0 {
            let rest = message_scan::<DB>(tenant, session, filter, beyond, missing);
            found.extend(decode(self.tx_all(conn, &rest).await?)?);
        }
        Ok(found)
    }
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
        // Keys are looked up inside the batch, all at once, under the
        // sessions' locks (a retry replays even if its session has closed
        // since). A lookup before joining the batch cost a round trip per
        // send and spread the arrivals, so batches got smaller: keyed sends
        // ran at half the rate of plain ones on PostgreSQL.
        self.append_batched(new.clone()).await
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

    async fn page_messages(
        &self,
        tenant: TenantId,
        session: SessionId,
        filter: &MessageFilter,
        page: &PageRequest<MessageId>,
    ) -> Result<Result<Page<Message>, Unlisted>, StoreError> {
        let mut conn = self.db.read().await?;
        // Most pages are one statement: the page itself, the cursor looked up
        // inside it; rows mean the session and the cursor exist.
        let plan = PagePlan::unresolved(page.limit, page.direction, page.cursor.map(|c| c.to_string()));
        if filter.term.is_none() {
            let (main, take) = plan.main_scan();
            let qb = message_scan_from::<DB>(tenant, session, filter, main, page.cursor, take, TermMatch::Index, None);
            let rows = self.tx_all(&mut conn, &qb).await?;
            if !rows.is_empty() {
                let items = rows.iter().map(message_from_row).collect::<Result<Vec<_>, _>>();
                let items = items.map_err(StoreError::Internal)?;
                let found = match plan.probe(&items) {
                    Some(probe) => {
                        self.exists(&mut conn, message_scan::<DB>(tenant, session, filter, probe, 1)).await?
                    }
                    None => false,
                };
                return Ok(Ok(plan.finish(items, found)));
            }
        }
        // An empty page, or a search: the session and the cursor's place first.
        let mut qb = QueryBuilder::<DB>::new("SELECT CAST(CASE WHEN EXISTS (SELECT 1 FROM sessions WHERE tenant_id = ");
        qb.push_bind(tenant.get()).push(" AND id = ").push_bind(session.uuid());
        qb.push(") THEN 1 ELSE 0 END AS BIGINT) AS found");
        if let Some(cursor) = page.cursor {
            qb.push(", (SELECT seq FROM messages WHERE tenant_id = ").push_bind(tenant.get());
            qb.push(" AND session_id = ").push_bind(session.uuid()).push(" AND id = ").push_bind(cursor.uuid());
            qb.push(") AS cursor_seq");
        }
        let row = self.tx_one(&mut conn, &qb).await?.ok_or(StoreError::Internal(sqlx::Error::RowNotFound))?;
        if row.int("found").map_err(StoreError::Internal)? == 0 {
            return Ok(Err(Unlisted::NotFound));
        }
        let plan = match page.cursor {
            Some(_) => match row.opt_int("cursor_seq").map_err(StoreError::Internal)? {
                Some(seq) => plan.resolved(seq),
                None => return Ok(Err(Unlisted::BadCursor)),
            },
            None => plan,
        };
        if filter.term.is_none() {
            let scan = |scan, limit| message_scan::<DB>(tenant, session, filter, scan, limit);
            return self.read_page(&mut conn, plan, scan, message_from_row).await.map(Ok);
        }
        let key = (tenant, session);
        let (main, take) = plan.main_scan();
        let items = self.scan_messages_on(&mut conn, key, filter, main, take).await?;
        let found = match plan.probe(&items) {
            Some(probe) => !self.scan_messages_on(&mut conn, key, filter, probe, 1).await?.is_empty(),
            None => false,
        };
        Ok(Ok(plan.finish(items, found)))
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
