//! The transactional outbox: the rows a change writes inside its own
//! transaction ([`SqlStore::record_outbox`]), and their fan-out into one
//! delivery per matching subscription (`dispatch`), in session order.

use super::{
    Dialect, QueryBuilder, Record, SqlStore, UNFINISHED, corrupt, event_from_row, insert_delivery, internal, owner,
};
use crate::domain::time::Timestamp;
use crate::domain::webhook::{DeliveryState, EventTypes, OutboxEvent, WebhookState};
use crate::store::StoreError;
use std::collections::BTreeSet;
use uuid::Uuid;

impl<DB: Dialect> SqlStore<DB> {
    /// Records a committed change in the outbox, inside the change's own
    /// transaction `tx` (so the row exists if and only if the change
    /// commits). Nothing is written for a tenant without a subscription of
    /// its own or of the platform, which keeps the message path free of
    /// webhook cost for everyone else. One statement, so a batch of writes
    /// can call it once per change.
    pub(in crate::store::sql) async fn record_outbox(
        &self,
        tx: &mut DB::Connection,
        event: &OutboxEvent,
    ) -> Result<(), StoreError> {
        self.record_outbox_many(tx, std::slice::from_ref(event)).await
    }

    /// [`Self::record_outbox`] for several changes in one statement (a
    /// batch of messages), each kept only where its tenant (or the
    /// platform) has a live subscription.
    pub(in crate::store::sql) async fn record_outbox_many(
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
    pub(super) async fn dispatch(
        &self,
        tx: &mut DB::Connection,
        now: Timestamp,
        batch: u32,
    ) -> Result<usize, StoreError> {
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
}
