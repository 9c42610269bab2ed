//! The closed sets of names the HTTP API sends or accepts, as enums, so the
//! OpenAPI document lists their values (a generated client gets a union of
//! literals, not `string`). Those the server sends are built from the domain
//! by exhaustive matches, so a new domain variant does not compile until it
//! has its name here; those it only reads stay strings in the request types
//! (the handlers' own refusals keep their messages) and name these enums as
//! their schema.

use crate::domain::webhook::{DeliveryState, EventType, Owner, WebhookState};
use serde::Serialize;
use utoipa::ToSchema;

/// Which way from the cursor a page goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Older than the cursor (the default).
    Before,
    /// Newer than the cursor.
    After,
}

/// A webhook event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub enum WebhookEvent {
    /// A message was sent.
    #[serde(rename = "message.created")]
    MessageCreated,
    /// A session was opened.
    #[serde(rename = "session.opened")]
    SessionOpened,
    /// A session was assigned to an agent (claim, transfer, routing).
    #[serde(rename = "session.assigned")]
    SessionAssigned,
    /// A session was closed.
    #[serde(rename = "session.closed")]
    SessionClosed,
}

impl From<EventType> for WebhookEvent {
    fn from(event: EventType) -> Self {
        match event {
            EventType::MessageCreated => Self::MessageCreated,
            EventType::SessionOpened => Self::SessionOpened,
            EventType::SessionAssigned => Self::SessionAssigned,
            EventType::SessionClosed => Self::SessionClosed,
        }
    }
}

/// Whose events a subscription receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum WebhookScope {
    /// One tenant's.
    Tenant,
    /// Every tenant's.
    Platform,
}

impl From<&Owner> for WebhookScope {
    fn from(owner: &Owner) -> Self {
        match owner {
            Owner::Tenant(_) => Self::Tenant,
            Owner::Platform => Self::Platform,
        }
    }
}

/// Whether a subscription is sent to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum WebhookStatus {
    /// Deliveries are sent.
    Active,
    /// Paused by the server after repeated failures.
    Paused,
    /// Disabled by a user.
    Disabled,
}

impl From<WebhookState> for WebhookStatus {
    fn from(state: WebhookState) -> Self {
        match state {
            WebhookState::Active => Self::Active,
            WebhookState::Paused => Self::Paused,
            WebhookState::Disabled => Self::Disabled,
        }
    }
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    /// Behind an earlier event of the same session.
    Queued,
    /// Due at its next attempt time.
    Pending,
    /// Being sent.
    Sending,
    /// Kept while the subscription is paused or disabled.
    Held,
    /// The receiver answered 2xx.
    Delivered,
    /// Given up after the last retry.
    Failed,
}

impl From<DeliveryState> for DeliveryStatus {
    fn from(state: DeliveryState) -> Self {
        match state {
            DeliveryState::Queued => Self::Queued,
            DeliveryState::Pending => Self::Pending,
            DeliveryState::Inflight => Self::Sending,
            DeliveryState::Held => Self::Held,
            DeliveryState::Delivered => Self::Delivered,
            DeliveryState::Failed => Self::Failed,
        }
    }
}

/// The `message` of an error body: one stable code per refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[cfg_attr(test, derive(serde::Deserialize))]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 400: a field, parameter or header is wrong (`errors` names them).
    ValidationError,
    /// 401: no valid bearer token.
    Unauthorized,
    /// 403: the caller may not do this.
    Forbidden,
    /// 404: no such route or item, or a CLOSED session where an OPEN one is needed.
    NotFound,
    /// 400: the tenant already has an OPEN session (`errors.session_id`).
    SessionAlreadyActive,
    /// 400: the agent named is offline (`errors.agent_id`).
    AgentOffline,
    /// 409: another agent holds the session.
    SessionAlreadyAssigned,
    /// 409: the session changed under the request; ask again.
    SessionConflict,
    /// 422: the `Idempotency-Key` was used with another body.
    IdempotencyKeyReused,
    /// 429: over the rate limit or a quota (`Retry-After`).
    RateLimited,
    /// 503: storage unreachable; nothing was written (`Retry-After`).
    StorageUnavailable,
    /// 504: a write's commit was not confirmed in time (`errors` names its id).
    OutcomeUnknown,
    /// 500: a bug on the server.
    InternalError,
    /// 405: the path exists, the method does not.
    MethodNotAllowed,
    /// 413: the body is over the limit.
    PayloadTooLarge,
    /// 415: a body that is not JSON.
    UnsupportedMediaType,
    /// 408: the body did not arrive in time.
    RequestTimeout,
    /// 503: the server is at its connection cap (`Retry-After`).
    ServerBusy,
}

#[cfg(test)]
mod tests {
    use super::{DeliveryStatus, WebhookEvent, WebhookStatus};
    use crate::domain::session::SessionStatus;
    use crate::domain::webhook::{DeliveryState, EventType, WebhookState};
    use crate::wire;

    fn name(value: impl serde::Serialize) -> String {
        serde_json::to_value(value).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
    }

    #[test]
    fn each_name_sent_is_the_spelling_the_domain_gives_it() {
        for e in EventType::ALL {
            assert_eq!(name(WebhookEvent::from(e)), e.as_str());
        }
        for s in [SessionStatus::Open, SessionStatus::Closed] {
            assert_eq!(name(wire::SessionStatus::from(s)), s.as_str());
        }
        for s in [WebhookState::Active, WebhookState::Paused, WebhookState::Disabled] {
            assert_eq!(name(WebhookStatus::from(s)), s.as_str());
        }
        let states = [
            DeliveryState::Queued,
            DeliveryState::Pending,
            DeliveryState::Inflight,
            DeliveryState::Held,
            DeliveryState::Delivered,
            DeliveryState::Failed,
        ];
        for s in states {
            assert_eq!(name(DeliveryStatus::from(s)), s.api_name());
        }
    }

    #[test]
    fn each_direction_named_is_one_the_server_reads() {
        use crate::domain::page::Direction as Read;
        for (named, read) in [(super::Direction::Before, Read::Before), (super::Direction::After, Read::After)] {
            assert_eq!(Read::parse(Some(&name(named))), Ok(read));
        }
    }
}
