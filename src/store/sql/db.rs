//! The way to the database: [`Db`], its read and write pools behind the
//! fail-fast breaker, and the classification of every sqlx error into a
//! [`StoreError`] (outage, retryable, or a bug).

use super::dialect::Dialect;
use crate::metrics::{ErrorLabels, Metrics};
use crate::store::breaker::Breaker;
use crate::store::{StoreError, StoreStats};
use sqlx::Database;
use sqlx::pool::PoolConnection;
use std::sync::Arc;

/// The way to the database: every call acquires a connection or begins a
/// transaction here, behind the breaker, and every error is classified
/// here, so an outage found by any call makes the others fail fast.
pub struct Db<DB: Database> {
    /// Where errors are counted.
    pub(super) metrics: Arc<Metrics>,
    /// Connections for reads.
    reader: sqlx::Pool<DB>,
    /// Connections for writes: a separate single-connection pool on SQLite
    /// (one writer at a time, so no lock upgrades fail), the same pool as
    /// `reader` on PostgreSQL.
    writer: sqlx::Pool<DB>,
    /// Whether `writer` is `reader` (one pool).
    shared: bool,
    breaker: Breaker,
}

impl<DB: Dialect> Db<DB> {
    /// Separate pools for reads and writes.
    pub fn new(reader: sqlx::Pool<DB>, writer: sqlx::Pool<DB>, retry_interval: std::time::Duration) -> Self {
        Self { metrics: Arc::default(), reader, writer, shared: false, breaker: Breaker::new(retry_interval) }
    }

    /// One pool for reads and writes.
    pub fn shared(pool: sqlx::Pool<DB>, retry_interval: std::time::Duration) -> Self {
        Self { shared: true, ..Self::new(pool.clone(), pool, retry_interval) }
    }

    /// A connection for reading.
    pub async fn read(&self) -> Result<PoolConnection<DB>, StoreError> {
        self.admitted(self.reader.acquire()).await
    }

    /// A write transaction.
    pub async fn begin(&self) -> Result<sqlx::Transaction<'static, DB>, StoreError> {
        self.admitted(self.writer.begin()).await
    }

    /// A connection of the write pool outside a transaction.
    pub async fn write(&self) -> Result<PoolConnection<DB>, StoreError> {
        self.admitted(self.writer.acquire()).await
    }

    async fn admitted<T>(&self, connect: impl Future<Output = Result<T, sqlx::Error>>) -> Result<T, StoreError> {
        let admission = self.breaker.admit()?;
        match connect.await {
            Ok(conn) => {
                admission.passed();
                Ok(conn)
            }
            Err(err) => {
                let err = self.fail(err);
                // The database answered, even if with an error: not an outage.
                if !matches!(err, StoreError::Unreachable(_)) {
                    admission.passed();
                }
                Err(err)
            }
        }
    }

    /// Maps a sqlx error to its meaning; an outage opens the breaker.
    pub fn fail(&self, err: sqlx::Error) -> StoreError {
        let err = classify::<DB>(err);
        let kind = match &err {
            StoreError::Unreachable(cause) => {
                self.breaker.tripped(cause);
                "unreachable"
            }
            StoreError::Unavailable(_) => "unavailable",
            _ => "internal",
        };
        self.metrics.storage_errors.get_or_create(&ErrorLabels { kind }).inc();
        err
    }

    /// Connection use and breaker state.
    pub(super) fn stats(&self) -> StoreStats {
        let (mut connections, mut idle) = (self.reader.size(), self.reader.num_idle());
        if !self.shared {
            connections += self.writer.size();
            idle += self.writer.num_idle();
        }
        StoreStats { connections, idle, failing_fast: self.breaker.is_open() }
    }

    /// Closes both pools.
    pub async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
    }
}

/// Maps a sqlx error to its meaning. Only losing the database is an
/// outage; a timed-out statement or a busy lock is retryable but says
/// nothing about other requests.
fn classify<DB: Dialect>(err: sqlx::Error) -> StoreError {
    match &err {
        sqlx::Error::PoolTimedOut if !DB::POOL_TIMEOUT_IS_OUTAGE => StoreError::Unavailable(err.into()),
        // A protocol or TLS failure is the link's, not the statement's (a
        // server dying mid-handshake answers half a message): an outage.
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_)
        | sqlx::Error::Tls(_) => StoreError::Unreachable(err.into()),
        sqlx::Error::Database(db) if DB::is_outage(db.as_ref()) => StoreError::Unreachable(err.into()),
        sqlx::Error::Database(db) if DB::is_transient(db.as_ref()) => StoreError::Unavailable(err.into()),
        _ => StoreError::Internal(err),
    }
}
