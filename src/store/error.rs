//! What storage can answer besides a result: [`StoreError`], the outcomes a
//! caller must tell apart, and [`CommitOutcome`], what became of a
//! transaction whose commit went unanswered.

use crate::domain::ids::{SessionId, UserId};

/// Storage outcomes the caller must tell apart.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The tenant already has this OPEN session.
    #[error("tenant already has an open session {0}")]
    SessionAlreadyActive(SessionId),
    /// No such session in the tenant, or it is CLOSED.
    #[error("session not found or not open")]
    SessionNotOpen,
    /// A claim lost: the session is already assigned to this agent.
    #[error("session already assigned")]
    AlreadyAssigned(Option<UserId>),
    /// Opening gave up: each try met an open session that was closed
    /// before it could be named (other requests kept opening and closing).
    #[error("the tenant's open session kept changing while opening one")]
    SessionConflict,
    /// The message is not in this session.
    #[error("message not found in this session")]
    MessageNotFound,
    /// An idempotency key came back with a different body.
    #[error("idempotency key reused with a different body")]
    IdempotencyKeyReused,
    /// The database is busy or timed out: retryable, nothing written.
    #[error("storage unavailable: {0}")]
    Unavailable(#[source] anyhow::Error),
    /// The database cannot be reached: retryable, nothing written, and
    /// other requests fail fast for a moment (see the breaker).
    #[error("storage unreachable: {0}")]
    Unreachable(#[source] anyhow::Error),
    /// The write was called off at its deadline, before COMMIT: nothing stored.
    #[error("write called off before commit")]
    CalledOff,
    /// COMMIT was sent and the connection failed before its answer: the
    /// transaction may or may not have committed; ask with
    /// [`Store::commit_outcome`](super::Store::commit_outcome).
    #[error("commit outcome unknown (transaction {transaction}): {cause}")]
    CommitUnknown {
        /// The database's id of the transaction.
        transaction: i64,
        /// What broke.
        #[source]
        cause: anyhow::Error,
    },
    /// Anything else: a bug or corrupted data.
    #[error("storage failure: {0}")]
    Internal(#[source] sqlx::Error),
}

/// What became of a transaction, as the database tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitOutcome {
    /// It committed: its changes are stored.
    Committed,
    /// It rolled back (or never committed): nothing of it is stored.
    RolledBack,
    /// It is still committing: ask again.
    InProgress,
}
