//! The delivery queue ([`DeliveryStore`]): claiming due deliveries for a
//! node under a lease, recording attempt outcomes (failure counts, pausing,
//! letting a session's next delivery go), redelivery, the delivery log and
//! its pruning.

use super::{
    Dialect, QueryBuilder, Record, SqlStore, corrupt, delivery_columns, delivery_from_row, delivery_key,
    insert_delivery, internal, keyset_uuid, webhook_key,
};
use crate::domain::page::Scan;
use crate::domain::time::Timestamp;
use crate::domain::webhook::{
    AttemptOutcome, AttemptResult, ClaimedDelivery, Delivery, DeliveryKey, DeliveryState, Owner, SigningSecret,
    WebhookState, WebhookUrl,
};
use crate::store::{ClaimRequest, DeliveryStore, StoreError};
use async_trait::async_trait;
use std::collections::HashMap;
use uuid::Uuid;

impl<DB: Dialect> SqlStore<DB> {
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
}

#[async_trait]
impl<DB: Dialect> DeliveryStore for SqlStore<DB> {
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
