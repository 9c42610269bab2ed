//! Subscription CRUD ([`WebhookStore`]): create, read, list, update,
//! rotate the secret, delete; enabling or disabling one resumes or holds its
//! deliveries in the same transaction.

use super::{
    Dialect, QueryBuilder, SqlStore, WEBHOOK_COLUMNS, internal, keyset_uuid, push_opt_text, webhook_from_row,
    webhook_key,
};
use crate::domain::page::Scan;
use crate::domain::time::Timestamp;
use crate::domain::webhook::{Owner, SigningSecret, Webhook, WebhookPatch, WebhookState};
use crate::store::{StoreError, WebhookStore};
use async_trait::async_trait;
use uuid::Uuid;

impl<DB: Dialect> SqlStore<DB> {
    /// Holds every pending delivery of a subscription (paused or disabled).
    pub(super) async fn hold_pending(
        &self,
        tx: &mut DB::Connection,
        owner: Owner,
        webhook: Uuid,
    ) -> Result<(), StoreError> {
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

    pub(super) async fn webhook_in_tx(
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
}
