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
//!
//! Here: the column lists, row decoders and key clauses the files share.
//! `subscriptions`: [`WebhookStore`](crate::store::WebhookStore), the CRUD
//! of subscriptions; `outbox`: recording and fanning out outbox rows;
//! `deliveries`: [`DeliveryStore`](crate::store::DeliveryStore), claims,
//! outcomes, redelivery, the delivery log and its pruning.

mod deliveries;
mod outbox;
mod subscriptions;

use super::SqlStore;
use super::dialect::Dialect;
use super::query::keyset;
use super::query::{QueryBuilder, Record};
use super::rows::{corrupt, tenant};
use crate::domain::ids::SessionId;
use crate::domain::page::Scan;
use crate::domain::time::Timestamp;
use crate::domain::webhook::{
    Delivery, DeliveryKey, DeliveryState, EventType, EventTypes, OutboxEvent, Owner, SigningSecret, Webhook,
    WebhookState, WebhookUrl,
};
use crate::store::StoreError;
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
