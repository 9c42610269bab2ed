//! Writes with a deadline and an honest answer.
//!
//! A write runs detached from the request (so its commit and notice are
//! never separated) under a [`CommitGate`]. At the request's deadline, a
//! write that has not sent COMMIT is called off: nothing is stored, and the
//! answer says so (503). A write whose COMMIT was sent but not answered (the
//! connection broke, or the database stalled mid-commit) is settled by
//! asking the database what became of the transaction, until the deadline;
//! only if it cannot tell in time is the answer "outcome unknown", with the
//! id of what was being written.

use super::{Error, Livechat};
use crate::store::commit_gate::CommitGate;
use crate::store::{CommitOutcome, StoreError};
use std::time::Duration;
use tokio::time::Instant;
use tracing::Instrument;

tokio::task_local! {
    /// When the current request must be answered by.
    static DEADLINE: Instant;
}

/// Runs `work` (one request) with `deadline` as its deadline.
pub async fn within<F: Future>(deadline: Instant, work: F) -> F::Output {
    DEADLINE.scope(deadline, work).await
}

/// How often an unsettled commit is asked about.
const ASK_EVERY: Duration = Duration::from_millis(50);

/// What a write is about, named in an "outcome unknown" answer.
#[derive(Debug, Clone)]
pub struct Subject {
    /// The field naming it, e.g. `message_id`.
    pub field: &'static str,
    /// Its id.
    pub id: String,
}

impl Subject {
    /// A subject named by `field`.
    pub fn new(field: &'static str, id: impl ToString) -> Self {
        Self { field, id: id.to_string() }
    }
}

impl Livechat {
    /// Runs `write` to an answer within the request's deadline. `read_back`
    /// fetches what the write stored, for when its commit was not answered
    /// but the database says it happened.
    pub(super) async fn write<T, W, R, RF>(&self, subject: Subject, write: W, read_back: R) -> Result<T, Error>
    where
        T: Send + 'static,
        W: Future<Output = Result<T, StoreError>> + Send + 'static,
        R: Fn() -> RF,
        RF: Future<Output = Result<Option<T>, StoreError>>,
    {
        let timeout = self.limits().request_timeout;
        let deadline = DEADLINE.try_with(|d| *d).unwrap_or_else(|_| Instant::now() + timeout);
        // Time kept back to settle a commit that was sent but not answered.
        let commit_by = deadline - (timeout / 3).min(Duration::from_secs(2));
        let gate = CommitGate::new();
        let mut task = tokio::spawn(gate.clone().guard(write).in_current_span());
        let unanswered = match tokio::time::timeout_at(commit_by, &mut task).await {
            Ok(finished) => match joined(finished)? {
                Ok(value) => return Ok(value),
                Err(StoreError::CommitUnknown { transaction, cause }) => {
                    tracing::warn!(error = %cause, transaction, "commit not answered; asking the database");
                    Some(transaction)
                }
                Err(err) => return Err(err.into()),
            },
            Err(_) if gate.call_off() => {
                return Err(Error::Unavailable(anyhow::anyhow!("deadline reached before commit; nothing was written")));
            }
            // COMMIT is on its way: wait for its answer below.
            Err(_) => None,
        };
        let transaction = match unanswered {
            Some(transaction) => transaction,
            None => match tokio::time::timeout_at(deadline, &mut task).await {
                Ok(finished) => match joined(finished)? {
                    Ok(value) => return Ok(value),
                    Err(StoreError::CommitUnknown { transaction, .. }) => transaction,
                    Err(err) => return Err(err.into()),
                },
                Err(_) => return Err(Error::OutcomeUnknown(subject)),
            },
        };
        loop {
            let asked = tokio::time::timeout_at(deadline, self.store().commit_outcome(transaction)).await;
            match asked {
                Err(_) => return Err(Error::OutcomeUnknown(subject)),
                Ok(Ok(CommitOutcome::Committed)) => {
                    let stored = tokio::time::timeout_at(deadline, read_back()).await;
                    return match stored {
                        Ok(Ok(Some(value))) => Ok(value),
                        // PostgreSQL hands out again, after a crash, transaction ids whose
                        // records never reached its log: "committed" is then another
                        // transaction's. What this write stored would be found by its own
                        // id, and is not there, so it was lost with the crash.
                        Ok(Ok(None)) => {
                            tracing::warn!(
                                transaction,
                                "the transaction id reads as committed but the write is absent: reused after a crash"
                            );
                            Err(Error::Unavailable(anyhow::anyhow!("the write did not survive the database's crash")))
                        }
                        Ok(Err(_)) | Err(_) => Err(Error::OutcomeUnknown(subject)),
                    };
                }
                Ok(Ok(CommitOutcome::RolledBack)) => {
                    return Err(Error::Unavailable(anyhow::anyhow!("commit not answered and rolled back")));
                }
                // Still committing, or the database is not answering yet: ask again.
                Ok(Ok(CommitOutcome::InProgress) | Err(_)) => {}
            }
            if Instant::now() + ASK_EVERY >= deadline {
                return Err(Error::OutcomeUnknown(subject));
            }
            tokio::time::sleep(ASK_EVERY).await;
        }
    }
}

fn joined<T>(finished: Result<T, tokio::task::JoinError>) -> Result<T, Error> {
    finished.map_err(|err| Error::Internal(anyhow::anyhow!("write task failed: {err}")))
}
