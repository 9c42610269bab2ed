//! Deliveries: the [`OutboxEvent`] a committed change records, a
//! [`Delivery`] of it to one subscription and its [`DeliveryState`], a claim
//! and the outcome of an attempt, and the [`RetrySchedule`].

use super::{EventType, Owner, SigningSecret, WebhookUrl};
use crate::domain::ids::{SessionId, TenantId};
use crate::domain::time::Timestamp;
use std::time::Duration;
use uuid::Uuid;

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    /// Waiting for an earlier delivery of the same session to this subscription.
    Queued,
    /// Due at its next attempt time.
    Pending,
    /// Being sent by a node.
    Inflight,
    /// Kept while the subscription is paused or disabled.
    Held,
    /// The receiver answered 2xx.
    Delivered,
    /// Given up after the last retry.
    Failed,
}

impl DeliveryState {
    /// Storage spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Pending => "pending",
            Self::Inflight => "inflight",
            Self::Held => "held",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }

    /// Parses the storage spelling.
    pub fn parse(raw: &str) -> Option<Self> {
        [Self::Queued, Self::Pending, Self::Inflight, Self::Held, Self::Delivered, Self::Failed]
            .into_iter()
            .find(|s| s.as_str() == raw)
    }

    /// The API spelling (`sending` reads better than `inflight` in a log).
    pub const fn api_name(self) -> &'static str {
        match self {
            Self::Inflight => "sending",
            other => other.as_str(),
        }
    }
}

/// One event for one subscription, as the delivery log shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The subscription's owner.
    pub owner: Owner,
    /// The subscription.
    pub webhook_id: Uuid,
    /// UUIDv7 of this delivery.
    pub id: Uuid,
    /// The event: its id is the `webhook-id` header, the same on every attempt.
    pub event: OutboxEvent,
    /// Where it stands.
    pub state: DeliveryState,
    /// Attempts made so far.
    pub attempts: i64,
    /// When the next attempt is due (pending) or the lease ends (sending).
    pub next_attempt_at: Option<Timestamp>,
    /// When the last attempt started.
    pub last_attempt_at: Option<Timestamp>,
    /// The receiver's last HTTP status.
    pub response_status: Option<i64>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// How long the last attempt took.
    pub duration_ms: Option<i64>,
    /// When the receiver accepted it.
    pub delivered_at: Option<Timestamp>,
    /// The delivery this one re-sends, if it is a redelivery.
    pub redelivery_of: Option<Uuid>,
    /// When the delivery was created.
    pub created_at: Timestamp,
}

/// A committed change, as the outbox records it: what happened, where, and
/// its place in the session's sequence (the payload is read from the rows
/// themselves when it is sent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboxEvent {
    /// The event id (the `webhook-id`).
    pub id: Uuid,
    /// What happened.
    pub kind: EventType,
    /// The session's tenant.
    pub tenant_id: TenantId,
    /// The session.
    pub session_id: SessionId,
    /// Its sequence number in the session.
    pub seq: i64,
    /// When it happened.
    pub at: Timestamp,
}

/// A delivery claimed by this node for one attempt.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    /// Which delivery.
    pub key: DeliveryKey,
    /// This attempt's number (1-based); also the claim's token.
    pub attempt: i64,
    /// The event to send.
    pub event: OutboxEvent,
    /// The target.
    pub url: WebhookUrl,
    /// The secrets to sign with.
    pub secrets: Vec<SigningSecret>,
}

/// The key of a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeliveryKey {
    /// The subscription's owner.
    pub owner: Owner,
    /// The subscription.
    pub webhook_id: Uuid,
    /// The delivery.
    pub id: Uuid,
}

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptOutcome {
    /// Which delivery.
    pub key: DeliveryKey,
    /// The attempt's number, as claimed.
    pub attempt: i64,
    /// The receiver's status, if it answered.
    pub status: Option<i64>,
    /// How long it took.
    pub duration_ms: i64,
    /// Accepted, retry later, give up — or not attempted at all (released at shutdown).
    pub result: AttemptResult,
}

/// The verdict on an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptResult {
    /// 2xx.
    Delivered,
    /// Failed; try again at this time.
    Retry {
        /// Why it failed.
        error: String,
        /// When to try again.
        at: Timestamp,
    },
    /// Failed for the last time.
    GiveUp {
        /// Why it failed.
        error: String,
    },
    /// Not sent (the node is stopping): due again at once, attempt not counted.
    Released,
}

/// Delays between attempts: the n-th entry is the wait after the n-th failed
/// attempt; after the last one the delivery is given up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrySchedule(Vec<Duration>);

impl Default for RetrySchedule {
    /// 5 s, 30 s, 2 min, 10 min, 30 min, 1 h, 2 h, 4 h, 8 h, 8 h: eleven attempts
    /// over about 24 hours.
    fn default() -> Self {
        let m = 60;
        Self(
            [5, 30, 2 * m, 10 * m, 30 * m, 60 * m, 120 * m, 240 * m, 480 * m, 480 * m]
                .into_iter()
                .map(Duration::from_secs)
                .collect(),
        )
    }
}

impl RetrySchedule {
    /// A schedule of these delays (at least one).
    pub fn new(delays: Vec<Duration>) -> Result<Self, String> {
        if delays.is_empty() || delays.iter().any(Duration::is_zero) {
            return Err("the retry schedule needs at least one delay, none of them zero".to_owned());
        }
        Ok(Self(delays))
    }

    /// The delays.
    pub fn delays(&self) -> &[Duration] {
        &self.0
    }

    /// The nominal wait after attempt number `attempt` failed, or `None` to give up.
    pub fn delay_after(&self, attempt: i64) -> Option<Duration> {
        let index = usize::try_from(attempt.checked_sub(1)?).ok()?;
        self.0.get(index).copied()
    }

    /// The verdict on failed attempt number `attempt` at `now`, with the wait
    /// spread by ±20 % (`unit` a uniform draw in [0, 1)) so receivers that
    /// came back are not hit by every retry at once.
    pub fn after_failure(&self, attempt: i64, now: Timestamp, error: String, unit: f64) -> AttemptResult {
        match self.delay_after(attempt) {
            Some(delay) => {
                let factor = 0.8 + 0.4 * unit.clamp(0.0, 1.0);
                AttemptResult::Retry { error, at: now.plus(delay.mul_f64(factor)) }
            }
            None => AttemptResult::GiveUp { error },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_schedule_spans_about_a_day_then_gives_up() {
        let schedule = RetrySchedule::default();
        let total: Duration = schedule.delays().iter().sum();
        assert!(total > Duration::from_secs(22 * 3600) && total < Duration::from_secs(26 * 3600), "{total:?}");
        let now = Timestamp::from_micros(0);
        match schedule.after_failure(1, now, "x".into(), 0.5) {
            AttemptResult::Retry { at, .. } => assert_eq!(at.micros(), 5_000_000),
            other => panic!("{other:?}"),
        }
        match schedule.after_failure(1, now, "x".into(), 0.0) {
            AttemptResult::Retry { at, .. } => assert_eq!(at.micros(), 4_000_000),
            other => panic!("{other:?}"),
        }
        assert!(matches!(schedule.after_failure(11, now, "x".into(), 0.5), AttemptResult::GiveUp { .. }));
    }
}
