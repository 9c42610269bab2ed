//! The one error type of the use cases: domain meanings only, and the one
//! table of how each is told to a client ([`Error::public`]), which every
//! transport uses (HTTP in `http::error`, streams in `realtime::actor`). The
//! table is printed in docs/API.md §6.

use crate::domain::ids::{SessionId, UserId};
use crate::store::StoreError;
use std::collections::BTreeMap;

/// Per-field human-readable problems, as sent in `errors`.
pub type FieldErrors = BTreeMap<String, Vec<String>>;

/// Everything a use case can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The input is invalid; per-field messages.
    #[error("validation failed")]
    Validation(FieldErrors),
    /// No usable proof of identity (token or ticket).
    #[error("unauthorized")]
    Unauthorized,
    /// Not allowed here.
    #[error("forbidden")]
    Forbidden,
    /// No such resource (or another tenant's).
    #[error("not found")]
    NotFound,
    /// The tenant already has this OPEN session.
    #[error("session already active")]
    SessionAlreadyActive(SessionId),
    /// The named agent is offline.
    #[error("agent offline")]
    AgentOffline,
    /// Another agent claimed the session first (it holds it now).
    #[error("session already assigned")]
    AlreadyAssigned(Option<UserId>),
    /// The tenant's open session kept changing while opening one (other
    /// requests opened and closed sessions faster than the open settled).
    #[error("session conflict")]
    SessionConflict,
    /// An idempotency key reused with a different body.
    #[error("idempotency key reused")]
    IdempotencyKeyReused,
    /// A write's commit was sent and its outcome could not be learnt
    /// before the deadline: it may or may not be stored.
    #[error("outcome unknown")]
    OutcomeUnknown(super::Subject),
    /// Over a quota (or the request rate); retry after this many seconds.
    #[error("rate limited")]
    RateLimited {
        /// Seconds until a retry can succeed.
        retry_after: u64,
        /// The quota that refused, if it was one.
        quota: Option<super::QuotaState>,
    },
    /// Storage unreachable or saturated; retryable, nothing written.
    #[error("storage unavailable")]
    Unavailable(#[source] anyhow::Error),
    /// A bug or an unexpected failure; details go to the log only.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

/// How an error is told to a client: the same on every transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Public {
    /// The HTTP status.
    pub status: u16,
    /// The stable snake_case code: the envelope's `message` over HTTP.
    pub code: &'static str,
    /// The `code` of a stream `error` frame. It differs from `code` only for
    /// validation, where streams have always said `invalid_message` (one
    /// code for every unusable client frame).
    pub stream_code: &'static str,
    /// A short English sentence for people (stream frames carry it).
    pub message: &'static str,
}

impl Public {
    const fn new(status: u16, code: &'static str, message: &'static str) -> Self {
        Self { status, code, stream_code: code, message }
    }
}

impl Error {
    /// A validation error with one message for one field.
    pub fn field(field: &str, message: impl ToString) -> Self {
        Self::Validation(BTreeMap::from([(field.to_owned(), vec![message.to_string()])]))
    }

    /// The error table: status, code and message of each variant, decided
    /// here once. No catch-all, so a new variant does not compile unmapped.
    pub const fn public(&self) -> Public {
        match self {
            Self::Validation(_) => Public {
                stream_code: "invalid_message",
                ..Public::new(400, "validation_error", "the request is invalid")
            },
            Self::Unauthorized => Public::new(401, "unauthorized", "no valid token or ticket"),
            Self::Forbidden => Public::new(403, "forbidden", "not allowed in this tenant"),
            Self::NotFound => Public::new(404, "not_found", "no such session in this tenant"),
            Self::SessionAlreadyActive(_) => {
                Public::new(400, "session_already_active", "the tenant already has an open session")
            }
            Self::AgentOffline => Public::new(400, "agent_offline", "the agent is offline"),
            Self::AlreadyAssigned(_) => Public::new(409, "session_already_assigned", "another agent holds the session"),
            Self::SessionConflict => {
                Public::new(409, "session_conflict", "the tenant's sessions kept changing while opening one; retry")
            }
            Self::IdempotencyKeyReused => {
                Public::new(422, "idempotency_key_reused", "the Idempotency-Key was already used with a different body")
            }
            Self::RateLimited { .. } => Public::new(429, "rate_limited", "too many requests; retry later"),
            Self::Unavailable(_) => Public::new(503, "storage_unavailable", "storage unavailable; retry"),
            // Not a 503: retrying blindly could store it twice.
            Self::OutcomeUnknown(_) => Public::new(504, "outcome_unknown", "the write may or may not be stored"),
            Self::Internal(_) => Public::new(500, "internal_error", "internal error"),
        }
    }

    /// The fields at fault, if any (the envelope's `errors`).
    pub fn field_errors(&self) -> Option<FieldErrors> {
        let one = |field: &str, message: String| Some(BTreeMap::from([(field.to_owned(), vec![message])]));
        match self {
            Self::Validation(fields) => Some(fields.clone()),
            Self::SessionAlreadyActive(id) => one("session_id", id.to_string()),
            Self::AgentOffline => one("agent_id", "agent is offline".to_owned()),
            Self::OutcomeUnknown(subject) => one(subject.field, subject.id.clone()),
            Self::IdempotencyKeyReused => one("Idempotency-Key", "was already used with a different body".to_owned()),
            _ => None,
        }
    }

    /// The public message with what a client needs to act on it, in one
    /// line (for transports without an `errors` map, such as stream frames).
    pub fn detail(&self) -> String {
        match self {
            Self::Validation(fields) => {
                fields.iter().map(|(k, v)| format!("{k}: {}", v.join(", "))).collect::<Vec<_>>().join("; ")
            }
            Self::RateLimited { retry_after, .. } => format!("too many requests; retry in {retry_after} s"),
            Self::OutcomeUnknown(subject) => format!("{} {} may or may not be stored", subject.field, subject.id),
            Self::SessionAlreadyActive(id) => format!("{} ({id})", self.public().message),
            other => other.public().message.to_owned(),
        }
    }

    /// Logs a failure on the server's side, once, where a transport
    /// answers it; a client's mistake is not logged.
    pub fn log(&self, transport: &'static str) {
        match self {
            Self::Internal(cause) => tracing::error!(transport, error = ?cause, "request failed"),
            Self::Unavailable(cause) => tracing::warn!(transport, error = %cause, "storage unavailable"),
            Self::OutcomeUnknown(subject) => {
                tracing::error!(transport, field = subject.field, id = %subject.id, "commit outcome unknown at the deadline");
            }
            Self::SessionConflict => tracing::info!(transport, "open gave up: the tenant's open session kept changing"),
            _ => {}
        }
    }
}

impl From<StoreError> for Error {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::SessionAlreadyActive(id) => Self::SessionAlreadyActive(id),
            StoreError::SessionNotOpen => Self::NotFound,
            StoreError::AlreadyAssigned(holder) => Self::AlreadyAssigned(holder),
            StoreError::SessionConflict => Self::SessionConflict,
            StoreError::MessageNotFound => Self::field("message_id", "is not a message of this session"),
            StoreError::IdempotencyKeyReused => Self::IdempotencyKeyReused,
            StoreError::Unavailable(e) | StoreError::Unreachable(e) => Self::Unavailable(e),
            StoreError::CalledOff => {
                Self::Unavailable(anyhow::anyhow!("the request's deadline came before its commit"))
            }
            StoreError::CommitUnknown { cause, .. } => Self::Unavailable(cause),
            StoreError::Internal(e) => Self::Internal(e.into()),
        }
    }
}

/// Collects field errors while parsing several inputs, so a client learns
/// about every bad field at once.
#[derive(Debug, Default)]
pub struct Problems(FieldErrors);

impl Problems {
    /// Keeps the value, or records the error under `field`.
    pub fn check<T, E: std::fmt::Display>(&mut self, field: &str, result: Result<T, E>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(e) => {
                self.add(field, e);
                None
            }
        }
    }

    /// Parses an optional raw value, recording a failure under `field`.
    pub fn optional<T, E: std::fmt::Display>(
        &mut self,
        field: &str,
        raw: Option<&str>,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Option<T> {
        raw.and_then(|raw| self.check(field, parse(raw)))
    }

    /// Records a problem with `field`.
    pub fn add(&mut self, field: &str, message: impl ToString) {
        self.0.entry(field.to_owned()).or_default().push(message.to_string());
    }

    /// `Err` with every recorded problem, if any.
    pub fn finish(self) -> Result<(), Error> {
        if self.0.is_empty() { Ok(()) } else { Err(Error::Validation(self.0)) }
    }
}

/// One error of each variant, for tests of the transports' mappings.
#[cfg(test)]
pub(crate) fn samples() -> Vec<Error> {
    vec![
        Error::field("message", "is required"),
        Error::Unauthorized,
        Error::Forbidden,
        Error::NotFound,
        Error::SessionAlreadyActive(SessionId::generate()),
        Error::AgentOffline,
        Error::AlreadyAssigned(None),
        Error::SessionConflict,
        Error::IdempotencyKeyReused,
        Error::OutcomeUnknown(crate::service::Subject::new("message_id", SessionId::generate())),
        Error::RateLimited { retry_after: 3, quota: None },
        Error::Unavailable(anyhow::anyhow!("down")),
        Error::Internal(anyhow::anyhow!("bug")),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// Position of each variant; exhaustive, so a new variant must be added
    /// here, and `samples` must then hold one of it for the test to pass.
    fn position(err: &Error) -> usize {
        match err {
            Error::Validation(_) => 0,
            Error::Unauthorized => 1,
            Error::Forbidden => 2,
            Error::NotFound => 3,
            Error::SessionAlreadyActive(_) => 4,
            Error::AgentOffline => 5,
            Error::AlreadyAssigned(_) => 6,
            Error::SessionConflict => 7,
            Error::IdempotencyKeyReused => 8,
            Error::OutcomeUnknown(_) => 9,
            Error::RateLimited { .. } => 10,
            Error::Unavailable(_) => 11,
            Error::Internal(_) => 12,
        }
    }
    const VARIANTS: usize = 13;

    #[test]
    fn every_variant_has_a_code_a_status_and_a_message() {
        let samples = samples();
        let positions: HashSet<usize> = samples.iter().map(position).collect();
        assert_eq!(positions, (0..VARIANTS).collect(), "one sample of each variant");
        let mut codes = HashSet::new();
        for err in &samples {
            let public = err.public();
            assert!((400..600).contains(&public.status), "{err:?}: {}", public.status);
            for code in [public.code, public.stream_code] {
                assert!(!code.is_empty() && code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'), "{code}");
            }
            assert!(codes.insert(public.code), "{} is used twice", public.code);
            assert!(!public.message.is_empty() && !err.detail().is_empty());
        }
    }

    #[test]
    fn only_a_bug_is_an_internal_error_on_either_transport() {
        for err in samples() {
            let public = err.public();
            let internal = matches!(err, Error::Internal(_));
            assert_eq!(public.code == "internal_error", internal, "{err:?}");
            assert_eq!(public.stream_code == "internal_error", internal, "{err:?}");
            assert_eq!(public.status == 500, internal, "{err:?}");
        }
    }

    #[test]
    fn the_stream_code_differs_only_for_validation() {
        for err in samples() {
            let public = err.public();
            let expected = if matches!(err, Error::Validation(_)) { "invalid_message" } else { public.code };
            assert_eq!(public.stream_code, expected);
        }
    }
}
