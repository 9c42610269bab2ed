//! Webhooks: subscriptions, the transactional outbox, and deliveries.
//!
//! The outbox row of a change is written by [`SqlStore::record_outbox`],
//! inside the change's own transaction. The worker then fans rows out into
//! deliveries and claims due ones in one transaction (`dispatch_and_claim`),
//! and records outcomes in batches, claiming the next due ones in the same
//! transaction (`record_attempts`), so the single SQLite
//! writer sees a few short transactions however many receivers there are.
//!
//! Order: for one subscription and one session, at most one delivery is
//! pending, in flight or held (the head); later ones wait as `queued` and the
//! head's end (delivered or given up) promotes the next. Fan-out and the
//! recording of an outcome both lock the subscription's row first, so on
//! PostgreSQL a node fanning out and another recording an outcome cannot
//! both miss each other and leave a queued delivery without a head.

use super::sessions::keyset;
use super::{Dialect, QueryBuilder, Record, SqlStore, corrupt, tenant};
use crate::domain::ids::SessionId;
use crate::domain::page::Scan;
use crate::domain::time::Timestamp;
use crate::domain::webhook::{
    AttemptOutcome, AttemptResult, ClaimedDelivery, Delivery, DeliveryKey, DeliveryState, EventType, EventTypes,
    OutboxEvent, Owner, SigningSecret, Webhook, WebhookPatch, WebhookState, WebhookUrl,
};
use crate::store::{ClaimRequest, StoreError, WebhookStore};
use async_trait::async_trait;
use std::collections::{BTreeSet, HashMap};
use uuid::Uuid;

const WEBHOOK_COLUMNS: &str = "tenant_id, id, url, events, state, paused_reason, description, secret, \
    previous_secret, previous_secret_until, consecutive_failures, created_by, created_at, updated_at";

const DELIVERY_COLUMNS: [&str; 19] = [
    "tenant_id",
    "webhook_id",
    "id",
    "event_id",
    "event_type",
    "event_tenant_id",
    "session_id",
    "seq",
    "event_at",
    "state",
    "attempts",
    "next_attempt_at",
    "last_attempt_at",
    "response_status",
    "last_error",
    "duration_ms",
    "delivered_at",
    "redelivery_of",
    "created_at",
];

/// The delivery columns, each prefixed with `alias.` if given.
fn delivery_columns(alias: &str) -> String {
    DELIVERY_COLUMNS.iter().map(|c| format!("{alias}{c}")).collect::<Vec<_>>().join(", ")
}

/// States of a chain's waiting or active members (everything not finished).
const UNFINISHED: &str = "('queued', 'pending', 'inflight', 'held')";

fn owner(row: &impl Record, column: &str) -> Result<Owner, sqlx::Error> {
    Owner::from_key(row.int(column)?).ok_or_else(|| corrupt(column))
}

fn webhook_from_row(row: &impl Record) -> Result<Webhook, sqlx::Error> {
    let previous = match (row.opt_text("previous_secret")?, row.opt_int("previous_secret_until")?) {
        (Some(secret), Some(until)) => Some((SigningSecret::from_stored(secret), Timestamp::from_micros(until))),
        _ => None,
    };
    Ok(Webhook {
        owner: owner(row, "tenant_id")?,
        id: row.uuid("id")?,
        url: WebhookUrl::from_stored(row.text("url")?),
        events: EventTypes::decode(&row.text("events")?).ok_or_else(|| corrupt("events"))?,
        state: WebhookState::parse(&row.text("state")?).ok_or_else(|| corrupt("state"))?,
        paused_reason: row.opt_text("paused_reason")?,
        description: row.opt_text("description")?,
        secret: SigningSecret::from_stored(row.text("secret")?),
        previous_secret: previous,
        consecutive_failures: row.int("consecutive_failures")?,
        created_by: row.int("created_by")?,
        created_at: Timestamp::from_micros(row.int("created_at")?),
        updated_at: Timestamp::from_micros(row.int("updated_at")?),
    })
}

fn event_from_row(
    row: &impl Record,
    id: &str,
    kind: &str,
    tenant_column: &str,
    at: &str,
) -> Result<OutboxEvent, sqlx::Error> {
    Ok(OutboxEvent {
        id: row.uuid(id)?,
        kind: EventType::parse(&row.text(kind)?).ok_or_else(|| corrupt(kind))?,
        tenant_id: tenant(row, tenant_column)?,
        session_id: SessionId::from_uuid(row.uuid("session_id")?),
        seq: row.int("seq")?,
        at: Timestamp::from_micros(row.int(at)?),
    })
}

fn delivery_from_row(row: &impl Record) -> Result<Delivery, sqlx::Error> {
    let at = |column: &str| row.opt_int(column).map(|v| v.map(Timestamp::from_micros));
    Ok(Delivery {
        owner: owner(row, "tenant_id")?,
        webhook_id: row.uuid("webhook_id")?,
        id: row.uuid("id")?,
        event: event_from_row(row, "event_id", "event_type", "event_tenant_id", "event_at")?,
        state: DeliveryState::parse(&row.text("state")?).ok_or_else(|| corrupt("state"))?,
        attempts: row.int("attempts")?,
        next_attempt_at: at("next_attempt_at")?,
        last_attempt_at: at("last_attempt_at")?,
        response_status: row.opt_int("response_status")?,
        last_error: row.opt_text("last_error")?,
        duration_ms: row.opt_int("duration_ms")?,
        delivered_at: at("delivered_at")?,
        redelivery_of: row.opt_text("redelivery_of")?.and_then(|s| Uuid::parse_str(&s).ok()),
        created_at: Timestamp::from_micros(row.int("created_at")?),
    })
}

/// ` AND column <|> position ORDER BY column DESC|ASC LIMIT n`.
fn keyset_uuid<DB: Dialect>(qb: &mut QueryBuilder<DB>, column: &str, scan: Scan<Uuid>, limit: u32) {
    let (at, cmp, order) = keyset(scan);
    if let Some(at) = at {
        qb.push(" AND ").push(column).push(cmp).push_bind(at);
    }
    qb.push(" ORDER BY ").push(column).push(order).push(" LIMIT ").push_bind(i64::from(limit));
}

fn internal(err: sqlx::Error) -> StoreError {
    StoreError::Internal(err)
}

/// Binds `value`, or writes `NULL`.
fn push_opt_text<DB: Dialect>(qb: &mut QueryBuilder<DB>, value: Option<&str>) {
    match value {
        Some(v) => qb.push_bind(v),
        None => qb.push("NULL"),
    };
}

/// `WHERE tenant_id = … AND id = …` of a subscription.
fn webhook_key<DB: Dialect>(qb: &mut QueryBuilder<DB>, owner: Owner, id: Uuid) {
    qb.push(" WHERE tenant_id = ").push_bind(owner.key()).push(" AND id = ").push_bind(id);
}

/// `WHERE tenant_id = … AND webhook_id = … AND id = …` of a delivery.
fn delivery_key<DB: Dialect>(qb: &mut QueryBuilder<DB>, key: &DeliveryKey) {
    qb.push(" WHERE tenant_id = ").push_bind(key.owner.key());
    qb.push(" AND webhook_id = ").push_bind(key.webhook_id).push(" AND id = ").push_bind(key.id);
}

/// `INSERT INTO webhook_deliveries …` for a new delivery of `event`.
fn insert_delivery<DB: Dialect>(
    owner: Owner,
    webhook: Uuid,
    id: Uuid,
    event: &OutboxEvent,
    state: DeliveryState,
    now: Timestamp,
    redelivery_of: Option<Uuid>,
) -> QueryBuilder<DB> {
    let mut qb = QueryBuilder::<DB>::new("INSERT INTO webhook_deliveries (");
    qb.push(&delivery_columns("")).push(") VALUES (");
    qb.push_bind(owner.key()).push(", ").push_bind(webhook).push(", ").push_bind(id).push(", ");
    qb.push_bind(event.id).push(", ").push_bind(event.kind.as_str()).push(", ");
    qb.push_bind(event.tenant_id.get()).push(", ").push_bind(event.session_id.uuid()).push(", ");
    qb.push_bind(event.seq).push(", ").push_bind(event.at.micros()).push(", ");
    qb.push_bind(state.as_str()).push(", 0, ");
    if state == DeliveryState::Pending {
        qb.push_bind(now.micros());
    } else {
        qb.push("NULL");
    }
    qb.push(", NULL, NULL, NULL, NULL, NULL, ");
    push_opt_text(&mut qb, redelivery_of.map(|u| u.to_string()).as_deref());
    qb.push(", ").push_bind(now.micros()).push(")");
    qb
}

impl<DB: Dialect> SqlStore<DB> {
    /// Records a committed change in the outbox, inside the change's own
    /// transaction `tx` (so the row exists if and only if the change
    /// commits). Nothing is written for a tenant without a subscription of
    /// its own or of the platform, which keeps the message path free of
    /// webhook cost for everyone else. One statement, so a batch of writes
    /// can call it once per change.
    pub(super) async fn record_outbox(&self, tx: &mut DB::Connection, event: &OutboxEvent) -> Result<(), StoreError> {
        self.record_outbox_many(tx, std::slice::from_ref(event)).await
    }

    /// [`Self::record_outbox`] for several changes in one statement (a
    /// batch of messages), each kept only where its tenant (or the
    /// platform) has a live subscription.
    pub(super) async fn record_outbox_many(
        &self,
        tx: &mut DB::Connection,
        events: &[OutboxEvent],
    ) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let mut qb = QueryBuilder::<DB>::new(
            "INSERT INTO webhook_outbox (tenant_id, id, kind, session_id, seq, at) \
             SELECT v.column1, v.column2, v.column3, v.column4, v.column5, v.column6 FROM (VALUES ",
        );
        for (i, event) in events.iter().enumerate() {
            if i > 0 {
                qb.push(", ");
            }
            qb.push_values(vec![
                event.tenant_id.get().into(),
                event.id.into(),
                event.kind.as_str().into(),
                event.session_id.uuid().into(),
                event.seq.into(),
                event.at.micros().into(),
            ]);
        }
        qb.push(") AS v WHERE EXISTS (SELECT 1 FROM webhooks w WHERE w.tenant_id IN (0, v.column1) AND w.state <> ");
        qb.push_bind(WebhookState::Disabled.as_str()).push(")");
        self.tx_run(tx, &qb).await
    }

    /// Fans out up to `batch` outbox rows into deliveries; returns how many rows were taken.
    async fn dispatch(&self, tx: &mut DB::Connection, now: Timestamp, batch: u32) -> Result<usize, StoreError> {
        if let Some(lock) = DB::WEBHOOKS.dispatch_lock {
            let row = self.tx_one(tx, &QueryBuilder::new(lock)).await?;
            if row.map(|r| r.int("locked")).transpose().map_err(internal)? != Some(1) {
                return Ok(0);
            }
        }
        let mut qb =
            QueryBuilder::<DB>::new("SELECT tenant_id, id, kind, session_id, seq, at FROM webhook_outbox ORDER BY ");
        qb.push(DB::WEBHOOKS.outbox_order).push(" LIMIT ").push_bind(i64::from(batch));
        let rows = self.tx_all(tx, &qb).await?;
        let events: Vec<OutboxEvent> = rows
            .iter()
            .map(|r| event_from_row(r, "id", "kind", "tenant_id", "at"))
            .collect::<Result<_, _>>()
            .map_err(internal)?;
        if events.is_empty() {
            return Ok(0);
        }

        // The subscriptions that may want them, locked in key order (the
        // order `record_attempts` locks them in too).
        let tenants: BTreeSet<i64> = events.iter().map(|e| e.tenant_id.get()).collect();
        let mut qb = QueryBuilder::<DB>::new("SELECT tenant_id, id, events, state FROM webhooks WHERE tenant_id IN (0");
        for t in &tenants {
            qb.push(", ").push_bind(*t);
        }
        qb.push(") AND state <> ").push_bind(WebhookState::Disabled.as_str());
        qb.push(" ORDER BY tenant_id, id");
        if DB::WEBHOOKS.row_locks {
            qb.push(" FOR UPDATE");
        }
        let subscribers = self
            .tx_all(tx, &qb)
            .await?
            .iter()
            .map(|r| {
                let events = EventTypes::decode(&r.text("events")?).ok_or_else(|| corrupt("events"))?;
                let state = WebhookState::parse(&r.text("state")?).ok_or_else(|| corrupt("state"))?;
                Ok((owner(r, "tenant_id")?, r.uuid("id")?, events, state))
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .map_err(internal)?;

        for event in &events {
            for (owner, webhook, types, state) in &subscribers {
                if !owner.sees(event.tenant_id) || !types.contains(event.kind) {
                    continue;
                }
                let mut qb = QueryBuilder::<DB>::new("SELECT id FROM webhook_deliveries WHERE tenant_id = ");
                qb.push_bind(owner.key()).push(" AND webhook_id = ").push_bind(*webhook);
                qb.push(" AND session_id = ").push_bind(event.session_id.uuid());
                qb.push(" AND state IN ").push(UNFINISHED).push(" LIMIT 1");
                let busy = self.tx_one(tx, &qb).await?.is_some();
                let initial = match (busy, state) {
                    (true, _) => DeliveryState::Queued,
                    (false, WebhookState::Active) => DeliveryState::Pending,
                    (false, _) => DeliveryState::Held,
                };
                let qb = insert_delivery::<DB>(*owner, *webhook, Uuid::now_v7(), event, initial, now, None);
                self.tx_run(tx, &qb).await?;
            }
        }

        let mut qb = QueryBuilder::<DB>::new("DELETE FROM webhook_outbox WHERE (tenant_id, id) IN (");
        for (i, event) in events.iter().enumerate() {
            if i > 0 {
                qb.push(", ");
            }
            qb.push("(").push_bind(event.tenant_id.get()).push(", ").push_bind(event.id).push(")");
        }
        qb.push(")");
        self.tx_run(tx, &qb).await?;
        Ok(events.len())
    }

    /// Claims due deliveries for this node.
    async fn claim(
        &self,
        tx: &mut DB::Connection,
        now: Timestamp,
        req: &ClaimRequest,
    ) -> Result<Vec<ClaimedDelivery>, StoreError> {
        if req.max == 0 {
            return Ok(Vec::new());
        }
        let saturated: Vec<Uuid> =
            req.in_flight.iter().filter(|(_, n)| **n >= req.per_webhook).map(|(id, _)| *id).collect();
        let mut qb = QueryBuilder::<DB>::new("SELECT ");
        qb.push(&delivery_columns("d."));
        qb.push(", w.url, w.secret, w.previous_secret, w.previous_secret_until FROM webhook_deliveries d");
        qb.push(" JOIN webhooks w ON w.tenant_id = d.tenant_id AND w.id = d.webhook_id");
        qb.push(" WHERE d.state IN ('pending', 'inflight') AND d.next_attempt_at <= ").push_bind(now.micros());
        qb.push(" AND w.state = ").push_bind(WebhookState::Active.as_str());
        if !saturated.is_empty() {
            qb.push(" AND d.webhook_id NOT IN (");
            for (i, id) in saturated.iter().enumerate() {
                if i > 0 {
                    qb.push(", ");
                }
                qb.push_bind(*id);
            }
            qb.push(")");
        }
        qb.push(" ORDER BY d.next_attempt_at LIMIT ").push_bind(i64::from(req.max));
        if DB::WEBHOOKS.row_locks {
            qb.push(" FOR UPDATE OF d SKIP LOCKED");
        }
        let rows = self.tx_all(tx, &qb).await?;

        let mut taken: HashMap<Uuid, u32> = req.in_flight.clone();
        let mut claimed = Vec::new();
        for row in &rows {
            let delivery = delivery_from_row(row).map_err(internal)?;
            let count = taken.entry(delivery.webhook_id).or_default();
            if *count >= req.per_webhook {
                continue;
            }
            *count += 1;
            let mut secrets = vec![SigningSecret::from_stored(row.text("secret").map_err(internal)?)];
            let previous = row.opt_text("previous_secret").map_err(internal)?;
            let until = row.opt_int("previous_secret_until").map_err(internal)?;
            if let (Some(previous), Some(until)) = (previous, until) {
                if until > now.micros() {
                    secrets.push(SigningSecret::from_stored(previous));
                }
            }
            claimed.push(ClaimedDelivery {
                key: DeliveryKey { owner: delivery.owner, webhook_id: delivery.webhook_id, id: delivery.id },
                attempt: delivery.attempts + 1,
                event: delivery.event,
                secrets,
                url: WebhookUrl::from_stored(row.text("url").map_err(internal)?),
            });
        }
        if claimed.is_empty() {
            return Ok(claimed);
        }
        let lease_until = now.plus(req.lease);
        let mut qb =
            QueryBuilder::<DB>::new("UPDATE webhook_deliveries SET state = 'inflight', attempts = attempts + 1");
        qb.push(", last_attempt_at = ").push_bind(now.micros());
        qb.push(", next_attempt_at = ").push_bind(lease_until.micros());
        qb.push(" WHERE (tenant_id, webhook_id, id) IN (");
        for (i, c) in claimed.iter().enumerate() {
            if i > 0 {
                qb.push(", ");
            }
            qb.push("(").push_bind(c.key.owner.key()).push(", ").push_bind(c.key.webhook_id);
            qb.push(", ").push_bind(c.key.id).push(")");
        }
        qb.push(")");
        self.tx_run(tx, &qb).await?;
        Ok(claimed)
    }

    /// Lets the next queued delivery of the chain go, unless the chain still has a head.
    async fn promote_next(
        &self,
        tx: &mut DB::Connection,
        owner: Owner,
        webhook: Uuid,
        session: Uuid,
        active: bool,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let chain = |qb: &mut QueryBuilder<DB>| {
            qb.push(" WHERE tenant_id = ").push_bind(owner.key()).push(" AND webhook_id = ").push_bind(webhook);
            qb.push(" AND session_id = ").push_bind(session);
        };
        let mut qb = QueryBuilder::<DB>::new("SELECT id FROM webhook_deliveries");
        chain(&mut qb);
        qb.push(" AND state IN ('pending', 'inflight', 'held') LIMIT 1");
        if self.tx_one(tx, &qb).await?.is_some() {
            return Ok(());
        }
        let mut qb = QueryBuilder::<DB>::new("SELECT id FROM webhook_deliveries");
        chain(&mut qb);
        qb.push(" AND state = 'queued' ORDER BY seq, created_at LIMIT 1");
        let Some(next) = self.tx_one(tx, &qb).await? else {
            return Ok(());
        };
        let next = next.uuid("id").map_err(internal)?;
        let mut qb = QueryBuilder::<DB>::new("UPDATE webhook_deliveries SET state = ");
        if active {
            qb.push("'pending', next_attempt_at = ").push_bind(now.micros());
        } else {
            qb.push("'held', next_attempt_at = NULL");
        }
        delivery_key(&mut qb, &DeliveryKey { owner, webhook_id: webhook, id: next });
        self.tx_run(tx, &qb).await
    }

    /// Records one outcome inside `tx`.
    async fn record_one(
        &self,
        tx: &mut DB::Connection,
        outcome: &AttemptOutcome,
        pause_after: i64,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let key = &outcome.key;
        // The subscription's row first: it orders this against a fan-out of the same subscription.
        let failures = match outcome.result {
            AttemptResult::Delivered => "0",
            AttemptResult::Retry { .. } | AttemptResult::GiveUp { .. } => "consecutive_failures + 1",
            AttemptResult::Released => "consecutive_failures",
        };
        let mut qb = QueryBuilder::<DB>::new("UPDATE webhooks SET consecutive_failures = ");
        qb.push(failures);
        webhook_key(&mut qb, key.owner, key.webhook_id);
        qb.push(" RETURNING consecutive_failures, state");
        let Some(row) = self.tx_one(tx, &qb).await? else {
            return Ok(()); // deleted meanwhile
        };
        let failures = row.int("consecutive_failures").map_err(internal)?;
        let mut state =
            WebhookState::parse(&row.text("state").map_err(internal)?).ok_or_else(|| internal(corrupt("state")))?;

        let waiting = if state == WebhookState::Active { "'pending'" } else { "'held'" };
        let mut qb = QueryBuilder::<DB>::new("UPDATE webhook_deliveries SET ");
        let (error, finished) = match &outcome.result {
            AttemptResult::Delivered => {
                qb.push("state = 'delivered', next_attempt_at = NULL, last_error = NULL, delivered_at = ");
                qb.push_bind(now.micros());
                (None, true)
            }
            AttemptResult::Retry { error, at } => {
                qb.push("state = ").push(waiting).push(", next_attempt_at = ").push_bind(at.micros());
                qb.push(", last_error = ").push_bind(error.as_str());
                (Some(error), false)
            }
            AttemptResult::GiveUp { error } => {
                qb.push("state = 'failed', next_attempt_at = NULL, last_error = ").push_bind(error.as_str());
                (Some(error), true)
            }
            AttemptResult::Released => {
                qb.push("state = ").push(waiting).push(", attempts = attempts - 1, next_attempt_at = ");
                qb.push_bind(now.micros());
                (None, false)
            }
        };
        if outcome.result != AttemptResult::Released {
            qb.push(", response_status = ");
            match outcome.status {
                Some(s) => qb.push_bind(s),
                None => qb.push("NULL"),
            };
            qb.push(", duration_ms = ").push_bind(outcome.duration_ms);
        }
        delivery_key(&mut qb, key);
        qb.push(" AND state = 'inflight' AND attempts = ").push_bind(outcome.attempt);
        qb.push(" RETURNING session_id");
        let Some(row) = self.tx_one(tx, &qb).await? else {
            return Ok(()); // the lease ran out and another claim took over
        };
        let session = row.uuid("session_id").map_err(internal)?;

        if let Some(error) = error {
            if state == WebhookState::Active && failures >= pause_after {
                let reason = format!("paused after {failures} consecutive failed attempts; last error: {error}");
                let mut qb = QueryBuilder::<DB>::new("UPDATE webhooks SET state = ");
                qb.push_bind(WebhookState::Paused.as_str()).push(", paused_reason = ").push_bind(reason);
                qb.push(", updated_at = ").push_bind(now.micros());
                webhook_key(&mut qb, key.owner, key.webhook_id);
                self.tx_run(tx, &qb).await?;
                self.hold_pending(tx, key.owner, key.webhook_id).await?;
                state = WebhookState::Paused;
            }
        }
        if finished {
            self.promote_next(tx, key.owner, key.webhook_id, session, state == WebhookState::Active, now).await?;
        }
        Ok(())
    }

    /// Holds every pending delivery of a subscription (paused or disabled).
    async fn hold_pending(&self, tx: &mut DB::Connection, owner: Owner, webhook: Uuid) -> Result<(), StoreError> {
        let mut qb = QueryBuilder::<DB>::new("UPDATE webhook_deliveries SET state = 'held', next_attempt_at = NULL");
        qb.push(" WHERE tenant_id = ").push_bind(owner.key()).push(" AND webhook_id = ").push_bind(webhook);
        qb.push(" AND state = 'pending'");
        self.tx_run(tx, &qb).await
    }

    /// Makes every held delivery of a subscription due now (and takes back
    /// claims of a node that died while it was paused).
    async fn resume_held(
        &self,
        tx: &mut DB::Connection,
        owner: Owner,
        webhook: Uuid,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut qb = QueryBuilder::<DB>::new("UPDATE webhook_deliveries SET state = 'pending', next_attempt_at = ");
        qb.push_bind(now.micros());
        qb.push(" WHERE tenant_id = ").push_bind(owner.key()).push(" AND webhook_id = ").push_bind(webhook);
        qb.push(" AND (state = 'held' OR (state = 'inflight' AND next_attempt_at <= ").push_bind(now.micros());
        qb.push("))");
        self.tx_run(tx, &qb).await
    }

    async fn webhook_in_tx(
        &self,
        tx: &mut DB::Connection,
        owner: Owner,
        id: Uuid,
    ) -> Result<Option<Webhook>, StoreError> {
        let mut qb = QueryBuilder::<DB>::new("SELECT ");
        qb.push(WEBHOOK_COLUMNS).push(" FROM webhooks");
        webhook_key(&mut qb, owner, id);
        let row = self.tx_one(tx, &qb).await?;
        row.map(|r| webhook_from_row(&r)).transpose().map_err(internal)
    }
}

#[async_trait]
impl<DB: Dialect> WebhookStore for SqlStore<DB> {
    async fn create_webhook(&self, hook: &Webhook) -> Result<(), StoreError> {
        let mut qb = QueryBuilder::<DB>::new("INSERT INTO webhooks (");
        qb.push(WEBHOOK_COLUMNS).push(") VALUES (");
        qb.push_bind(hook.owner.key()).push(", ").push_bind(hook.id).push(", ");
        qb.push_bind(hook.url.as_str()).push(", ").push_bind(hook.events.encode()).push(", ");
        qb.push_bind(hook.state.as_str()).push(", ");
        push_opt_text(&mut qb, hook.paused_reason.as_deref());
        qb.push(", ");
        push_opt_text(&mut qb, hook.description.as_deref());
        qb.push(", ").push_bind(hook.secret.expose()).push(", NULL, NULL, 0, ");
        qb.push_bind(hook.created_by).push(", ").push_bind(hook.created_at.micros());
        qb.push(", ").push_bind(hook.updated_at.micros()).push(")");
        self.write_run(&qb).await
    }

    async fn get_webhook(&self, owner: Owner, id: Uuid) -> Result<Option<Webhook>, StoreError> {
        let mut qb = QueryBuilder::<DB>::new("SELECT ");
        qb.push(WEBHOOK_COLUMNS).push(" FROM webhooks");
        webhook_key(&mut qb, owner, id);
        let row = self.read_one(&qb).await?;
        row.map(|r| webhook_from_row(&r)).transpose().map_err(internal)
    }

    async fn scan_webhooks(&self, owner: Owner, scan: Scan<Uuid>, limit: u32) -> Result<Vec<Webhook>, StoreError> {
        let mut qb = QueryBuilder::<DB>::new("SELECT ");
        qb.push(WEBHOOK_COLUMNS).push(" FROM webhooks WHERE tenant_id = ").push_bind(owner.key());
        keyset_uuid(&mut qb, "id", scan, limit);
        let rows = self.read_all(&qb).await?;
        rows.iter().map(webhook_from_row).collect::<Result<_, _>>().map_err(internal)
    }

    async fn update_webhook(
        &self,
        owner: Owner,
        id: Uuid,
        patch: &WebhookPatch,
        now: Timestamp,
    ) -> Result<Option<Webhook>, StoreError> {
        let mut tx = self.db.begin().await?;
        let mut qb = QueryBuilder::<DB>::new("UPDATE webhooks SET updated_at = ");
        qb.push_bind(now.micros());
        if let Some(url) = &patch.url {
            qb.push(", url = ").push_bind(url.as_str());
        }
        if let Some(events) = &patch.events {
            qb.push(", events = ").push_bind(events.encode());
        }
        if let Some(description) = &patch.description {
            qb.push(", description = ");
            push_opt_text(&mut qb, description.as_deref());
        }
        match patch.active {
            Some(true) => {
                qb.push(", state = ").push_bind(WebhookState::Active.as_str());
                qb.push(", paused_reason = NULL, consecutive_failures = 0");
            }
            Some(false) => {
                qb.push(", state = ").push_bind(WebhookState::Disabled.as_str()).push(", paused_reason = NULL");
            }
            None => {}
        }
        webhook_key(&mut qb, owner, id);
        qb.push(" RETURNING id");
        if self.tx_one(&mut tx, &qb).await?.is_none() {
            return Ok(None);
        }
        match patch.active {
            Some(true) => self.resume_held(&mut tx, owner, id, now).await?,
            Some(false) => self.hold_pending(&mut tx, owner, id).await?,
            None => {}
        }
        let hook = self.webhook_in_tx(&mut tx, owner, id).await?;
        self.commit_announcing(tx, &[]).await?;
        Ok(hook)
    }

    async fn rotate_webhook_secret(
        &self,
        owner: Owner,
        id: Uuid,
        secret: &SigningSecret,
        previous_until: Timestamp,
        now: Timestamp,
    ) -> Result<Option<Webhook>, StoreError> {
        let mut tx = self.db.begin().await?;
        let mut qb = QueryBuilder::<DB>::new("UPDATE webhooks SET previous_secret = secret, previous_secret_until = ");
        qb.push_bind(previous_until.micros()).push(", secret = ").push_bind(secret.expose());
        qb.push(", updated_at = ").push_bind(now.micros());
        webhook_key(&mut qb, owner, id);
        qb.push(" RETURNING id");
        if self.tx_one(&mut tx, &qb).await?.is_none() {
            return Ok(None);
        }
        let hook = self.webhook_in_tx(&mut tx, owner, id).await?;
        self.commit_announcing(tx, &[]).await?;
        Ok(hook)
    }

    async fn delete_webhook(&self, owner: Owner, id: Uuid) -> Result<Option<Webhook>, StoreError> {
        let mut tx = self.db.begin().await?;
        let Some(hook) = self.webhook_in_tx(&mut tx, owner, id).await? else {
            return Ok(None);
        };
        let mut qb = QueryBuilder::<DB>::new("DELETE FROM webhook_deliveries WHERE tenant_id = ");
        qb.push_bind(owner.key()).push(" AND webhook_id = ").push_bind(id);
        self.tx_run(&mut tx, &qb).await?;
        let mut qb = QueryBuilder::<DB>::new("DELETE FROM webhooks");
        webhook_key(&mut qb, owner, id);
        self.tx_run(&mut tx, &qb).await?;
        self.commit_announcing(tx, &[]).await?;
        Ok(Some(hook))
    }

    async fn get_delivery(&self, owner: Owner, webhook: Uuid, id: Uuid) -> Result<Option<Delivery>, StoreError> {
        let mut qb = QueryBuilder::<DB>::new("SELECT ");
        qb.push(&delivery_columns("")).push(" FROM webhook_deliveries");
        delivery_key(&mut qb, &DeliveryKey { owner, webhook_id: webhook, id });
        let row = self.read_one(&qb).await?;
        row.map(|r| delivery_from_row(&r)).transpose().map_err(internal)
    }

    async fn scan_deliveries(
        &self,
        owner: Owner,
        webhook: Uuid,
        scan: Scan<Uuid>,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError> {
        let mut qb = QueryBuilder::<DB>::new("SELECT ");
        qb.push(&delivery_columns("")).push(" FROM webhook_deliveries WHERE tenant_id = ").push_bind(owner.key());
        qb.push(" AND webhook_id = ").push_bind(webhook);
        keyset_uuid(&mut qb, "id", scan, limit);
        let rows = self.read_all(&qb).await?;
        rows.iter().map(delivery_from_row).collect::<Result<_, _>>().map_err(internal)
    }

    async fn redeliver(
        &self,
        owner: Owner,
        webhook: Uuid,
        id: Uuid,
        new_id: Uuid,
        now: Timestamp,
    ) -> Result<Option<Delivery>, StoreError> {
        let mut tx = self.db.begin().await?;
        let Some(hook) = self.webhook_in_tx(&mut tx, owner, webhook).await? else {
            return Ok(None);
        };
        let mut qb = QueryBuilder::<DB>::new("SELECT ");
        qb.push(&delivery_columns("")).push(" FROM webhook_deliveries");
        delivery_key(&mut qb, &DeliveryKey { owner, webhook_id: webhook, id });
        let Some(row) = self.tx_one(&mut tx, &qb).await? else {
            return Ok(None);
        };
        let original = delivery_from_row(&row).map_err(internal)?;
        let state = if hook.state == WebhookState::Active { DeliveryState::Pending } else { DeliveryState::Held };
        let qb = insert_delivery::<DB>(owner, webhook, new_id, &original.event, state, now, Some(id));
        self.tx_run(&mut tx, &qb).await?;
        let mut qb = QueryBuilder::<DB>::new("SELECT ");
        qb.push(&delivery_columns("")).push(" FROM webhook_deliveries");
        delivery_key(&mut qb, &DeliveryKey { owner, webhook_id: webhook, id: new_id });
        let row = self.tx_one(&mut tx, &qb).await?;
        let created = row.map(|r| delivery_from_row(&r)).transpose().map_err(internal)?;
        self.commit_announcing(tx, &[]).await?;
        Ok(created)
    }

    async fn webhook_work(&self, now: Timestamp) -> Result<bool, StoreError> {
        let mut qb = QueryBuilder::<DB>::new("SELECT (SELECT count(*) FROM (SELECT 1 FROM webhook_outbox LIMIT 1) o)");
        qb.push(" + (SELECT count(*) FROM (SELECT 1 FROM webhook_deliveries WHERE state IN ('pending', 'inflight')");
        qb.push(" AND next_attempt_at <= ").push_bind(now.micros()).push(" LIMIT 1) d) AS work");
        let row = self.read_one(&qb).await?;
        Ok(row.map(|r| r.int("work")).transpose().map_err(internal)?.unwrap_or(0) > 0)
    }

    async fn dispatch_and_claim(
        &self,
        now: Timestamp,
        claim: &ClaimRequest,
    ) -> Result<Vec<ClaimedDelivery>, StoreError> {
        let mut tx = self.db.begin().await?;
        self.dispatch(&mut tx, now, claim.dispatch_batch).await?;
        let claimed = self.claim(&mut tx, now, claim).await?;
        self.commit_announcing(tx, &[]).await?;
        Ok(claimed)
    }

    async fn record_attempts(
        &self,
        outcomes: &[AttemptOutcome],
        pause_after: i64,
        now: Timestamp,
        then_claim: &ClaimRequest,
    ) -> Result<Vec<ClaimedDelivery>, StoreError> {
        if outcomes.is_empty() && then_claim.max == 0 {
            return Ok(Vec::new());
        }
        // Subscriptions are locked in the order `dispatch` locks them
        // (tenant_id, then id, the platform's 0 first), so the two never
        // deadlock; the claim after it waits for no lock (SKIP LOCKED).
        let mut sorted: Vec<&AttemptOutcome> = outcomes.iter().collect();
        sorted.sort_by_key(|o| (o.key.owner.key(), o.key.webhook_id, o.key.id));
        let mut tx = self.db.begin().await?;
        for outcome in sorted {
            self.record_one(&mut tx, outcome, pause_after, now).await?;
        }
        let claimed = self.claim(&mut tx, now, then_claim).await?;
        self.commit_announcing(tx, &[]).await?;
        Ok(claimed)
    }

    async fn prune_deliveries(&self, before: Timestamp, limit: u32) -> Result<u64, StoreError> {
        let mut qb = QueryBuilder::<DB>::new("DELETE FROM webhook_deliveries WHERE (tenant_id, webhook_id, id) IN (");
        qb.push("SELECT tenant_id, webhook_id, id FROM webhook_deliveries WHERE created_at < ")
            .push_bind(before.micros());
        qb.push(" AND state IN ('delivered', 'failed') LIMIT ").push_bind(i64::from(limit));
        qb.push(") RETURNING id");
        let mut tx = self.db.begin().await?;
        let rows = self.tx_all(&mut tx, &qb).await?;
        self.commit_announcing(tx, &[]).await?;
        Ok(rows.len() as u64)
    }
}
