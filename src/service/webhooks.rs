//! Webhook subscriptions and their delivery log (docs/API.md §14), and
//! the storage steps the delivery worker (`crate::webhooks`) runs.

use super::{Error, Livechat, PageRequest, Problems, bad_cursor, read_page};
use crate::domain::access::{Caller, Identity, SUPPORT_AGENT};
use crate::domain::event::StoredEvent;
use crate::domain::ids::{SessionId, TenantId, UserId};
use crate::domain::page::{Page, Paged};
use crate::domain::time::Timestamp;
use crate::domain::webhook::{
    AttemptOutcome, ClaimedDelivery, Delivery, EventTypes, Host, Owner, SigningSecret, UrlRules, Webhook, WebhookPatch,
    WebhookState, WebhookUrl, forbidden_address, parse_description,
};
use crate::store::{ClaimRequest, StoreError};
use std::net::SocketAddr;
use std::time::Duration;
use uuid::Uuid;

/// How a deployment lets its users subscribe.
#[derive(Debug, Clone)]
pub struct WebhookRules {
    /// Which targets are allowed.
    pub urls: UrlRules,
    /// How long the previous secret keeps signing after a rotation.
    pub secret_overlap: Duration,
    /// Most subscriptions per tenant (and for the platform).
    pub max_per_owner: usize,
}

impl Default for WebhookRules {
    fn default() -> Self {
        Self { urls: UrlRules::default(), secret_overlap: Duration::from_secs(24 * 3600), max_per_owner: 20 }
    }
}

/// How long resolving a subscription's host name may take when it is checked.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(3);

/// Resolves `host` and refuses it if any address it has is not public (unless
/// `allow_private`): the same check guards subscriptions and every delivery
/// (after DNS resolution, so a name that later resolves elsewhere is caught).
pub async fn resolve_allowed(host: &str, port: u16, allow_private: bool) -> Result<Vec<SocketAddr>, String> {
    let lookup = tokio::net::lookup_host((host, port));
    let addrs: Vec<SocketAddr> = match tokio::time::timeout(RESOLVE_TIMEOUT, lookup).await {
        Ok(Ok(addrs)) => addrs.collect(),
        Ok(Err(err)) => return Err(format!("cannot resolve {host}: {err}")),
        Err(_) => return Err(format!("resolving {host} timed out")),
    };
    if addrs.is_empty() {
        return Err(format!("{host} has no address"));
    }
    if !allow_private {
        // One bad address refuses the name: a name that answers with both a
        // public and a private address is not one to trust with requests.
        if let Some((addr, why)) = addrs.iter().find_map(|a| forbidden_address(a.ip()).map(|why| (a, why))) {
            return Err(format!("{host} resolves to {why} address {} (SSRF protection)", addr.ip()));
        }
    }
    Ok(addrs)
}

/// The input of `POST /webhooks`, before it is checked.
#[derive(Debug, Clone, Default)]
pub struct WebhookInput {
    /// Target URL.
    pub url: Option<String>,
    /// Event type names.
    pub events: Option<Vec<String>>,
    /// Start active (default) or disabled.
    pub active: Option<bool>,
    /// Free text.
    pub description: Option<String>,
}

impl Paged for Webhook {
    type Pos = Uuid;
    fn pos(&self) -> Uuid {
        self.id
    }
    fn cursor(&self) -> String {
        self.id.to_string()
    }
}

impl Paged for Delivery {
    type Pos = Uuid;
    fn pos(&self) -> Uuid {
        self.id
    }
    fn cursor(&self) -> String {
        self.id.to_string()
    }
}

fn has_role(identity: &Identity, tenant: TenantId, wanted: impl Fn(&str) -> bool) -> bool {
    identity.tenants.get(&tenant.to_string()).is_some_and(|roles| roles.iter().any(|r| wanted(r)))
}

impl Livechat {
    fn webhook_rules(&self) -> &WebhookRules {
        &self.0.webhooks
    }

    /// Whose subscriptions a request manages: with `X-Tenant-ID`, that
    /// tenant's (its agents and its admins, e.g. `koperasi_admin`); without,
    /// the platform's (platform agents only).
    pub fn webhook_owner(&self, identity: &Identity, caller: Option<&Caller>) -> Result<Owner, Error> {
        match caller {
            Some(caller) => {
                let allowed: Vec<&str> = self.0.policy.allowed_roles().collect();
                let admin = has_role(identity, caller.tenant_id, |r| r.ends_with("_admin") && allowed.contains(&r));
                if caller.is_agent() || admin { Ok(Owner::Tenant(caller.tenant_id)) } else { Err(Error::Forbidden) }
            }
            None if identity.roles.iter().any(|r| r == SUPPORT_AGENT) => Ok(Owner::Platform),
            None => {
                Err(Error::field("X-Tenant-ID", "is required (only platform agents manage platform-wide webhooks)"))
            }
        }
    }

    /// Checks a target: the URL rules, then the addresses its host resolves to.
    async fn check_url(&self, raw: &str) -> Result<WebhookUrl, String> {
        let rules = &self.webhook_rules().urls;
        let url = WebhookUrl::parse(raw, rules)?;
        if let (Some(Host::Name(name)), false) = (url.host(), rules.allow_private) {
            // A name that does not resolve yet is accepted (DNS may come
            // later); one that resolves to a private address is not.
            if let Err(err) = resolve_allowed(&name, 443, false).await {
                if err.contains("SSRF") {
                    return Err(format!("must not target a private address: {err}"));
                }
            }
        }
        Ok(url)
    }

    /// Creates a subscription; the returned one carries its secret, shown this once.
    pub async fn create_webhook(&self, owner: Owner, by: UserId, input: WebhookInput) -> Result<Webhook, Error> {
        let mut problems = Problems::default();
        let url = match input.url.as_deref() {
            Some(raw) => problems.check("url", self.check_url(raw).await),
            None => {
                problems.add("url", "is required");
                None
            }
        };
        let events = match &input.events {
            Some(names) => problems.check("events", EventTypes::parse(names)),
            None => {
                problems.add("events", "is required");
                None
            }
        };
        let description = problems.optional("description", input.description.as_deref(), parse_description);
        problems.finish()?;
        let (Some(url), Some(events)) = (url, events) else {
            return Err(Error::Internal(anyhow::anyhow!("checked webhook input went missing")));
        };
        let existing = self.store().scan_webhooks(owner, crate::domain::page::Scan::Older(None), 1_000).await?;
        if existing.len() >= self.webhook_rules().max_per_owner {
            return Err(Error::field(
                "webhooks",
                format!("at most {} subscriptions per tenant", self.webhook_rules().max_per_owner),
            ));
        }
        let now = Timestamp::now();
        let hook = Webhook {
            owner,
            id: Uuid::now_v7(),
            url,
            events,
            state: if input.active == Some(false) { WebhookState::Disabled } else { WebhookState::Active },
            paused_reason: None,
            description: description.flatten(),
            secret: SigningSecret::generate(),
            previous_secret: None,
            consecutive_failures: 0,
            created_by: by.get(),
            created_at: now,
            updated_at: now,
        };
        self.store().create_webhook(&hook).await?;
        Ok(hook)
    }

    /// The owner's subscriptions, newest first.
    pub async fn list_webhooks(&self, owner: Owner, page: PageRequest<Uuid>) -> Result<Page<Webhook>, Error> {
        let store = self.store();
        let cursor = match page.cursor {
            Some(id) => {
                store.get_webhook(owner, id).await?.ok_or_else(bad_cursor)?;
                Some((id, id.to_string()))
            }
            None => None,
        };
        read_page(page.limit, page.direction, cursor, |scan, take| store.scan_webhooks(owner, scan, take)).await
    }

    /// One subscription of the owner.
    pub async fn get_webhook(&self, owner: Owner, id: Uuid) -> Result<Webhook, Error> {
        self.store().get_webhook(owner, id).await?.ok_or(Error::NotFound)
    }

    /// Changes a subscription. Enabling a paused one clears the pause and
    /// sends what was held; disabling holds what is pending.
    pub async fn update_webhook(&self, owner: Owner, id: Uuid, input: WebhookInput) -> Result<Webhook, Error> {
        let mut problems = Problems::default();
        let url = match input.url.as_deref() {
            Some(raw) => problems.check("url", self.check_url(raw).await),
            None => None,
        };
        let events = input.events.as_ref().and_then(|names| problems.check("events", EventTypes::parse(names)));
        let description = problems.optional("description", input.description.as_deref(), parse_description);
        problems.finish()?;
        let patch = WebhookPatch { url, events, active: input.active, description };
        self.store().update_webhook(owner, id, &patch, Timestamp::now()).await?.ok_or(Error::NotFound)
    }

    /// Deletes a subscription and its delivery log.
    pub async fn delete_webhook(&self, owner: Owner, id: Uuid) -> Result<Webhook, Error> {
        self.store().delete_webhook(owner, id).await?.ok_or(Error::NotFound)
    }

    /// Replaces the signing secret; the old one keeps signing during the overlap.
    pub async fn rotate_webhook_secret(&self, owner: Owner, id: Uuid) -> Result<Webhook, Error> {
        let now = Timestamp::now();
        let until = now.plus(self.webhook_rules().secret_overlap);
        let secret = SigningSecret::generate();
        self.store().rotate_webhook_secret(owner, id, &secret, until, now).await?.ok_or(Error::NotFound)
    }

    /// A subscription's delivery log, newest first.
    pub async fn list_deliveries(
        &self,
        owner: Owner,
        webhook: Uuid,
        page: PageRequest<Uuid>,
    ) -> Result<Page<Delivery>, Error> {
        let store = self.store();
        self.get_webhook(owner, webhook).await?;
        let cursor = match page.cursor {
            Some(id) => {
                store.get_delivery(owner, webhook, id).await?.ok_or_else(bad_cursor)?;
                Some((id, id.to_string()))
            }
            None => None,
        };
        read_page(page.limit, page.direction, cursor, |scan, take| store.scan_deliveries(owner, webhook, scan, take))
            .await
    }

    /// Sends a delivery's event once more (same `webhook-id`), as a new delivery.
    pub async fn redeliver(&self, owner: Owner, webhook: Uuid, delivery: Uuid) -> Result<Delivery, Error> {
        let created = self.store().redeliver(owner, webhook, delivery, Uuid::now_v7(), Timestamp::now()).await?;
        created.ok_or(Error::NotFound)
    }

    /// Worker: whether anything is waiting (a read; an idle worker never writes).
    pub async fn webhook_work(&self, now: Timestamp) -> Result<bool, StoreError> {
        self.store().webhook_work(now).await
    }

    /// Worker: fans out the outbox and claims due deliveries.
    pub async fn claim_deliveries(
        &self,
        now: Timestamp,
        claim: &ClaimRequest,
    ) -> Result<Vec<ClaimedDelivery>, StoreError> {
        self.store().dispatch_and_claim(now, claim).await
    }

    /// Worker: records attempts, then claims what `then_claim` allows.
    pub async fn record_attempts(
        &self,
        outcomes: &[AttemptOutcome],
        pause_after: i64,
        now: Timestamp,
        then_claim: &ClaimRequest,
    ) -> Result<Vec<ClaimedDelivery>, StoreError> {
        self.store().record_attempts(outcomes, pause_after, now, then_claim).await
    }

    /// Worker: deletes finished deliveries created before `before`, a batch at a time.
    pub async fn prune_deliveries(&self, before: Timestamp, limit: u32) -> Result<u64, StoreError> {
        self.store().prune_deliveries(before, limit).await
    }

    /// Worker: the persisted event at `seq` of a session, which a delivery's payload is made of.
    pub async fn event_at(
        &self,
        tenant: TenantId,
        session: SessionId,
        seq: i64,
    ) -> Result<Option<StoredEvent>, StoreError> {
        let events = self.store().events_after(tenant, session, seq - 1, 1).await?;
        Ok(events.into_iter().next().filter(|e| e.seq() == seq))
    }
}
