//! The one error type of the use cases: domain meanings only. Each transport
//! maps it once (HTTP in `http::error`, streams in `realtime::conn`).

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

impl Error {
    /// A validation error with one message for one field.
    pub fn field(field: &str, message: impl ToString) -> Self {
        Self::Validation(BTreeMap::from([(field.to_owned(), vec![message.to_string()])]))
    }
}

impl From<StoreError> for Error {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::SessionAlreadyActive(id) => Self::SessionAlreadyActive(id),
            StoreError::SessionNotOpen => Self::NotFound,
            StoreError::AlreadyAssigned(holder) => Self::AlreadyAssigned(holder),
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
