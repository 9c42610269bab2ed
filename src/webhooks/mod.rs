//! The webhook delivery worker (docs/API.md §14, `docs/WEBHOOKS.md`): one per node, beside
//! the API, never in a request's path.
//!
//! It wakes on the node's commit notices (so delivery follows a commit within
//! milliseconds) and on a periodic tick (retries coming due, notices missed),
//! and then, in one transaction, fans new outbox rows out into deliveries and
//! claims due ones (`FOR UPDATE SKIP LOCKED` on PostgreSQL, so each attempt
//! belongs to one node). Each claimed attempt runs as its own task under two
//! bounds, one for the node and one per subscription, so a slow or dead
//! receiver holds at most its own slots. Outcomes are recorded in batches.
//! A claim is a lease: if a node dies mid-attempt, another takes the delivery
//! over when the lease ends (at least once). At shutdown the worker stops
//! claiming, lets attempts in flight finish for a moment, and releases the rest.
//!
//! It depends on the service layer (storage steps, the event rows), the wire
//! types (payloads) and the domain rules; nothing depends on it but the app.

mod client;
mod payload;
pub mod sign;

use crate::domain::event::Notice;
use crate::domain::time::Timestamp;
use crate::domain::webhook::{AttemptOutcome, AttemptResult, ClaimedDelivery, DeliveryKey, RetrySchedule};
use crate::service::{Livechat, WebhookRules};
use crate::store::ClaimRequest;
use client::Sender;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;
use tokio::task::JoinSet;
use uuid::Uuid;

/// Tunables of webhook delivery.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// Which targets may be subscribed, the secret overlap, the subscription limit.
    pub rules: WebhookRules,
    /// Longest one attempt may take (connect, send, response).
    pub timeout: Duration,
    /// Waits between attempts; after the last, the delivery is given up.
    pub schedule: RetrySchedule,
    /// Consecutive failed attempts after which a subscription is paused.
    pub pause_after: u32,
    /// Attempts this node runs at once.
    pub concurrency: usize,
    /// Attempts this node runs at once for one subscription.
    pub per_endpoint: usize,
    /// Finished deliveries are deleted this long after they were created.
    pub retention: Duration,
    /// How often the worker looks for due retries without being woken.
    pub poll_interval: Duration,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            rules: WebhookRules::default(),
            timeout: Duration::from_secs(10),
            schedule: RetrySchedule::default(),
            pause_after: 15,
            concurrency: 32,
            per_endpoint: 4,
            retention: Duration::from_secs(7 * 24 * 3600),
            poll_interval: Duration::from_secs(1),
        }
    }
}

impl WebhookSettings {
    /// How long a claim holds: longer than any attempt can take, so only a
    /// dead node's claims run out.
    fn lease(&self) -> Duration {
        self.timeout * 2 + Duration::from_secs(2)
    }
}

/// Outbox rows fanned out per transaction.
const DISPATCH_BATCH: u32 = 200;
/// Deliveries claimed per transaction.
const CLAIM_BATCH: usize = 64;
/// Finished deliveries deleted per transaction when pruning.
const PRUNE_BATCH: u32 = 1_000;
/// Claim rounds per wake-up (each claims up to [`CLAIM_BATCH`]).
const ROUNDS_PER_WAKE: usize = 8;
/// How long attempts in flight may finish at shutdown before they are released.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Starts the worker; it runs until `stop` resolves.
pub fn start(
    chat: Livechat,
    settings: WebhookSettings,
    stop: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let sender = Sender::new(settings.rules.urls.clone(), settings.timeout)?;
    let notices = chat.notices();
    let worker = Worker {
        chat,
        settings: Arc::new(settings),
        sender: Arc::new(sender),
        running: HashMap::new(),
        per_webhook: HashMap::new(),
        tasks: JoinSet::new(),
        failing: false,
    };
    Ok(tokio::spawn(worker.run(notices, stop)))
}

struct Worker {
    chat: Livechat,
    settings: Arc<WebhookSettings>,
    sender: Arc<Sender>,
    /// Attempts in flight: delivery → attempt number.
    running: HashMap<DeliveryKey, i64>,
    /// Attempts in flight per subscription.
    per_webhook: HashMap<Uuid, u32>,
    tasks: JoinSet<AttemptOutcome>,
    /// Storage failed last time: log once until it recovers.
    failing: bool,
}

impl Worker {
    async fn run(mut self, mut notices: broadcast::Receiver<Notice>, stop: impl Future<Output = ()> + Send) {
        tokio::pin!(stop);
        let mut tick = tokio::time::interval(self.settings.poll_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let prune_every = (self.settings.retention / 10).clamp(Duration::from_secs(1), Duration::from_secs(600));
        let mut prune = tokio::time::interval(prune_every);
        prune.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut wanted = true;
        loop {
            if wanted {
                self.fill().await;
                wanted = false;
            }
            tokio::select! {
                () = &mut stop => break,
                Some(done) = self.tasks.join_next(), if !self.tasks.is_empty() => {
                    let mut outcomes = Vec::new();
                    self.finished(done, &mut outcomes);
                    // Everything else already done goes into the same transaction.
                    while let Some(done) = self.tasks.try_join_next() {
                        self.finished(done, &mut outcomes);
                    }
                    // Recording claims the next due deliveries in the same transaction;
                    // only if that filled every free slot is there more to look for.
                    wanted = self.record(&outcomes, true).await;
                }
                notice = notices.recv() => {
                    wanted = matches!(
                        notice,
                        Ok(Notice::Committed { .. } | Notice::Resync) | Err(broadcast::error::RecvError::Lagged(_))
                    );
                    if matches!(notice, Err(broadcast::error::RecvError::Closed)) {
                        break;
                    }
                    // A burst of commits is one wake-up.
                    while notices.try_recv().is_ok() {}
                }
                _ = tick.tick() => wanted = true,
                _ = prune.tick() => self.prune().await,
            }
        }
        self.shut_down().await;
    }

    /// Claims as much as this node may take on and starts the attempts.
    async fn fill(&mut self) {
        for _ in 0..ROUNDS_PER_WAKE {
            let free = self.settings.concurrency.saturating_sub(self.running.len()).min(CLAIM_BATCH);
            if free == 0 {
                return;
            }
            let now = Timestamp::now();
            match self.chat.webhook_work(now).await {
                Ok(true) => {}
                Ok(false) => return,
                Err(err) => return self.storage_failed(&err),
            }
            let request = self.claim_request(free);
            let claimed = match self.chat.claim_deliveries(now, &request).await {
                Ok(claimed) => claimed,
                Err(err) => return self.storage_failed(&err),
            };
            self.failing = false;
            let full = claimed.len() == free;
            for delivery in claimed {
                self.spawn(delivery);
            }
            if !full {
                // Either everything due is claimed, or the rest is another
                // node's or over a limit: more rounds would find the same.
                // (A fan-out that left outbox rows is picked up next wake-up.)
                return;
            }
        }
    }

    /// What this node can take on now: `free` attempts, within each subscription's limit.
    fn claim_request(&self, free: usize) -> ClaimRequest {
        ClaimRequest {
            dispatch_batch: DISPATCH_BATCH,
            max: u32::try_from(free).unwrap_or(u32::MAX),
            per_webhook: u32::try_from(self.settings.per_endpoint).unwrap_or(u32::MAX),
            in_flight: self.per_webhook.clone(),
            lease: self.settings.lease(),
        }
    }

    fn spawn(&mut self, delivery: ClaimedDelivery) {
        self.running.insert(delivery.key, delivery.attempt);
        *self.per_webhook.entry(delivery.key.webhook_id).or_default() += 1;
        let (chat, sender, settings) = (self.chat.clone(), self.sender.clone(), self.settings.clone());
        self.tasks.spawn(attempt(chat, sender, settings, delivery));
    }

    fn finished(&mut self, done: Result<AttemptOutcome, tokio::task::JoinError>, outcomes: &mut Vec<AttemptOutcome>) {
        match done {
            Ok(outcome) => {
                self.forget(&outcome.key);
                outcomes.push(outcome);
            }
            // A panicked attempt: its claim runs out and another attempt follows.
            Err(err) => tracing::error!(error = %err, "webhook attempt task failed"),
        }
    }

    fn forget(&mut self, key: &DeliveryKey) {
        self.running.remove(key);
        if let Some(n) = self.per_webhook.get_mut(&key.webhook_id) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_webhook.remove(&key.webhook_id);
            }
        }
    }

    /// Records outcomes and, if `claim`, claims into the free slots in the
    /// same transaction; returns whether the claim filled them (more may be due).
    async fn record(&mut self, outcomes: &[AttemptOutcome], claim: bool) -> bool {
        let pause_after = i64::from(self.settings.pause_after);
        let free =
            if claim { self.settings.concurrency.saturating_sub(self.running.len()).min(CLAIM_BATCH) } else { 0 };
        let request = self.claim_request(free);
        match self.chat.record_attempts(outcomes, pause_after, Timestamp::now(), &request).await {
            Ok(claimed) => {
                let full = free > 0 && claimed.len() == free;
                for delivery in claimed {
                    self.spawn(delivery);
                }
                full
            }
            Err(err) => {
                // Not recorded: the claims run out and the deliveries are tried again.
                tracing::warn!(error = %err, count = outcomes.len(), "could not record webhook attempts");
                true
            }
        }
    }

    async fn prune(&mut self) {
        let retention = i64::try_from(self.settings.retention.as_micros()).unwrap_or(i64::MAX);
        let cutoff = Timestamp::from_micros(Timestamp::now().micros().saturating_sub(retention));
        for _ in 0..10 {
            match self.chat.prune_deliveries(cutoff, PRUNE_BATCH).await {
                Ok(n) if n < u64::from(PRUNE_BATCH) => return,
                Ok(_) => {}
                Err(err) => return tracing::debug!(error = %err, "pruning webhook deliveries failed"),
            }
        }
    }

    fn storage_failed(&mut self, err: &crate::store::StoreError) {
        if !self.failing {
            tracing::warn!(error = %err, "webhook worker cannot reach storage; retrying");
            self.failing = true;
        }
    }

    /// Stops claiming; attempts in flight get a moment, the rest are released
    /// (due again at once, on any node, without counting as an attempt).
    async fn shut_down(mut self) {
        let grace = tokio::time::Instant::now() + SHUTDOWN_GRACE;
        let mut outcomes = Vec::new();
        while !self.tasks.is_empty() {
            match tokio::time::timeout_at(grace, self.tasks.join_next()).await {
                Ok(Some(done)) => self.finished(done, &mut outcomes),
                Ok(None) | Err(_) => break,
            }
        }
        self.tasks.abort_all();
        for (key, attempt) in self.running.drain() {
            outcomes.push(AttemptOutcome {
                key,
                attempt,
                status: None,
                duration_ms: 0,
                result: AttemptResult::Released,
            });
        }
        if !outcomes.is_empty() {
            self.record(&outcomes, false).await;
        }
    }
}

/// One attempt: render the payload from the stored event, send it signed, judge the answer.
async fn attempt(
    chat: Livechat,
    sender: Arc<Sender>,
    settings: Arc<WebhookSettings>,
    delivery: ClaimedDelivery,
) -> AttemptOutcome {
    let event = delivery.event;
    let body = match chat.event_at(event.tenant_id, event.session_id, event.seq).await {
        Ok(Some(stored)) => payload::render(&event, stored),
        Ok(None) => Err(format!("event {} is no longer stored", event.id)),
        Err(err) => {
            // Storage trouble is not the receiver's fault: try again soon, unrecorded as a failure.
            tracing::debug!(error = %err, "cannot read a webhook event");
            return AttemptOutcome {
                key: delivery.key,
                attempt: delivery.attempt,
                status: None,
                duration_ms: 0,
                result: AttemptResult::Released,
            };
        }
    };
    let sent = match body {
        Ok(body) => sender.send(&delivery.url, &event.id.to_string(), body, &delivery.secrets).await,
        Err(error) => client::Sent { status: None, error: Some(error), duration: Duration::ZERO },
    };
    let result = match sent.error {
        None => AttemptResult::Delivered,
        Some(error) => settings.schedule.after_failure(delivery.attempt, Timestamp::now(), error, rand::random()),
    };
    match &result {
        AttemptResult::Delivered => tracing::debug!(delivery = %delivery.key.id, "webhook delivered"),
        AttemptResult::Retry { error, .. } | AttemptResult::GiveUp { error } => {
            tracing::info!(delivery = %delivery.key.id, webhook = %delivery.key.webhook_id, attempt = delivery.attempt, %error, "webhook attempt failed");
        }
        AttemptResult::Released => {}
    }
    AttemptOutcome {
        key: delivery.key,
        attempt: delivery.attempt,
        status: sent.status.map(i64::from),
        duration_ms: i64::try_from(sent.duration.as_millis()).unwrap_or(i64::MAX),
        result,
    }
}
