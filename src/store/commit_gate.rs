//! The point of no return of a write: COMMIT.
//!
//! A write that runs past its request's deadline must answer without
//! guessing. Before COMMIT is sent, it can still be called off, and then
//! nothing is stored, for certain. Once COMMIT is on its way, only the
//! database knows; the caller must ask it ([`super::Store::commit_outcome`]).
//! The gate records which side of that line a write is on: the write passes
//! it just before sending COMMIT, the caller closes it when the deadline
//! comes, and exactly one of the two wins.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

const OPEN: u8 = 0;
const COMMITTING: u8 = 1;
const CALLED_OFF: u8 = 2;

/// Shared between a write and the request waiting for it.
#[derive(Debug, Clone, Default)]
pub struct CommitGate(Arc<AtomicU8>);

tokio::task_local! {
    static GATE: CommitGate;
}

impl CommitGate {
    /// An open gate.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs a write under this gate: its commit goes through only if the
    /// gate was not closed first.
    pub async fn guard<F: Future>(self, write: F) -> F::Output {
        GATE.scope(self, write).await
    }

    /// Called off before COMMIT was sent: `true` means nothing will be
    /// stored; `false` means COMMIT is already on its way.
    pub fn call_off(&self) -> bool {
        self.0.compare_exchange(OPEN, CALLED_OFF, Ordering::SeqCst, Ordering::SeqCst).is_ok()
    }

    /// Whether COMMIT was sent (the outcome is then the database's to tell).
    pub fn committing(&self) -> bool {
        self.0.load(Ordering::SeqCst) == COMMITTING
    }
}

/// Passes the current write's gate, if it runs under one: `false` if the
/// write was called off and must roll back instead of committing.
pub(super) fn pass() -> bool {
    GATE.try_with(|gate| gate.0.compare_exchange(OPEN, COMMITTING, Ordering::SeqCst, Ordering::SeqCst).is_ok())
        .unwrap_or(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn exactly_one_of_the_write_and_the_deadline_wins() {
        let gate = CommitGate::new();
        assert!(gate.clone().guard(async { pass() }).await, "an open gate lets the commit through");
        assert!(gate.committing());
        assert!(!gate.call_off(), "too late to call off");

        let gate = CommitGate::new();
        assert!(gate.call_off());
        assert!(!gate.clone().guard(async { pass() }).await, "a called-off write does not commit");
        assert!(!gate.committing());
        assert!(pass(), "writes outside any gate are not held");
    }
}
