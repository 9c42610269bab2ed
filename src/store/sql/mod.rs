//! The storage logic, written once over sqlx and instantiated per backend.
//!
//! Both schemas store ids as UUIDs and times as microseconds in a 64-bit
//! integer, so the statements are plain SQL both engines accept; the few
//! real differences (substring search, error codes, notifications) go
//! through [`Dialect`]. The sqlx capabilities the statements need are stated
//! once, on the blanket impls of [`Exec`] and [`Record`]; code generic over a
//! [`Dialect`] needs no other bound.
//!
//! Here: [`SqlStore`], the [`Append`] a group-commit writer takes, and the
//! helpers that run a statement on a read or write connection or inside a
//! transaction, and read a page. Beside it:
//! - the machinery: `dialect` ([`Dialect`] and what it hands over), `query`
//!   ([`QueryBuilder`], [`Value`](query::Value), [`Exec`], [`Record`], the
//!   keyset of a scan), `db` ([`Db`]: the pools, the breaker's admission,
//!   error classification), `rows` (session and message decoders), `commit`
//!   (the shared write path: sequence bump, session event, commit with
//!   announcements), `lifecycle` (the [`Store`](crate::store::Store)
//!   lifecycle and the plans of a term search);
//! - one file per aggregate: `sessions`, `messages` (and their events),
//!   `appends` (the group-commit writers of messages), `reads`, `presence`,
//!   `tickets`, `webhooks` (subscriptions, outbox, deliveries), plus the
//!   notice `bus`.

mod appends;
mod bus;
mod commit;
mod db;
mod dialect;
mod lifecycle;
mod messages;
mod presence;
mod query;
mod reads;
mod rows;
mod sessions;
mod tickets;
mod webhooks;

// This file holds the store and the statement helpers every aggregate
// file uses; the aggregate files import from here and from their
// siblings, and nothing here imports from them but these re-exports.
pub use db::Db;
pub use dialect::{Constraint, Dialect, Explain, TransactionIds, WebhookSql};
pub(super) use lifecycle::{explain, explain_keys};
pub use query::{Exec, Placeholders, QueryBuilder, Record};

use super::StoreError;
use super::commit_gate::CommitGate;
use crate::domain::event::Notice;
use crate::domain::message::{Appended, NewMessage};
use crate::domain::page::{Page, PagePlan, Paged, Scan};
use crate::metrics::Metrics;
use sqlx::Database;
use std::sync::{Arc, Mutex, OnceLock};
use tokio::sync::{broadcast, mpsc, oneshot};

/// One send waiting for its group-commit batch (see `appends`).
pub struct Append {
    pub(super) new: NewMessage,
    /// The request's gate: a send called off before its batch commits is left out.
    pub(super) gate: Option<CommitGate>,
    pub(super) reply: oneshot::Sender<Result<Appended, StoreError>>,
}

/// A store over one SQL engine.
pub struct SqlStore<DB: Database> {
    pub(super) db: Db<DB>,
    /// Notices received on this node (fed by the listener on PostgreSQL).
    pub(super) notices: broadcast::Sender<Notice>,
    /// Background tasks to stop at shutdown (the PostgreSQL listener).
    pub(super) tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// Rows of a session a term search tests itself first, on engines that window.
    pub(super) search_window: u32,
    /// The group-commit writers' queues, once started.
    pub(super) appends: OnceLock<Vec<mpsc::Sender<Append>>>,
}

/// How many notices a slow node-local consumer may fall behind before it
/// is told to resynchronise.
pub const NOTICE_BUFFER: usize = 4096;

impl<DB: Dialect> SqlStore<DB> {
    /// Wraps the pools.
    pub fn new(db: Db<DB>) -> Self {
        Self {
            db,
            notices: broadcast::channel(NOTICE_BUFFER).0,
            tasks: Mutex::default(),
            search_window: 5_000,
            appends: OnceLock::new(),
        }
    }

    /// Counts storage errors in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.db.metrics = metrics;
        self
    }

    /// Runs `qb` on a read connection and returns every row.
    async fn read_all(&self, qb: &QueryBuilder<DB>) -> Result<Vec<DB::Row>, StoreError> {
        let mut conn = self.db.read().await?;
        DB::fetch_all(&mut conn, qb).await.map_err(|e| self.db.fail(e))
    }

    /// Runs `qb` on a read connection and returns the first row.
    async fn read_one(&self, qb: &QueryBuilder<DB>) -> Result<Option<DB::Row>, StoreError> {
        let mut conn = self.db.read().await?;
        DB::fetch_optional(&mut conn, qb).await.map_err(|e| self.db.fail(e))
    }

    /// Runs `qb` on the write pool, outside a transaction, and returns the first row.
    async fn write_one(&self, qb: &QueryBuilder<DB>) -> Result<Option<DB::Row>, StoreError> {
        let mut conn = self.db.write().await?;
        DB::fetch_optional(&mut conn, qb).await.map_err(|e| self.db.fail(e))
    }

    /// Runs `qb` on the write pool, outside a transaction, for its effect.
    async fn write_run(&self, qb: &QueryBuilder<DB>) -> Result<(), StoreError> {
        let mut conn = self.db.write().await?;
        DB::execute(&mut conn, qb).await.map_err(|e| self.db.fail(e))
    }

    /// Reads one page on `conn`: the main scan, then (when its answer is not
    /// already known) an `EXISTS` probe past the page's far side.
    async fn read_page<T, F>(
        &self,
        conn: &mut DB::Connection,
        plan: PagePlan<T::Pos>,
        scan: F,
        decode: fn(&DB::Row) -> Result<T, sqlx::Error>,
    ) -> Result<Page<T>, StoreError>
    where
        T: Paged,
        F: Fn(Scan<T::Pos>, u32) -> QueryBuilder<DB>,
    {
        let (main, take) = plan.main_scan();
        let rows = self.tx_all(conn, &scan(main, take)).await?;
        let items = rows.iter().map(decode).collect::<Result<Vec<T>, _>>().map_err(StoreError::Internal)?;
        let found = match plan.probe(&items) {
            Some(probe) => self.exists(conn, scan(probe, 1)).await?,
            None => false,
        };
        Ok(plan.finish(items, found))
    }

    /// Whether `qb` returns a row, asked as `EXISTS` (no row is read whole).
    async fn exists(&self, conn: &mut DB::Connection, mut qb: QueryBuilder<DB>) -> Result<bool, StoreError> {
        qb.prefix("SELECT CAST(CASE WHEN EXISTS (").push(") THEN 1 ELSE 0 END AS BIGINT) AS found");
        let row = self.tx_one(conn, &qb).await?.ok_or(StoreError::Internal(sqlx::Error::RowNotFound))?;
        Ok(row.int("found").map_err(StoreError::Internal)? != 0)
    }

    /// Runs `qb` inside `tx` and returns every row.
    async fn tx_all(&self, tx: &mut DB::Connection, qb: &QueryBuilder<DB>) -> Result<Vec<DB::Row>, StoreError> {
        DB::fetch_all(tx, qb).await.map_err(|e| self.db.fail(e))
    }

    /// Runs `qb` inside `tx` and returns the first row.
    async fn tx_one(&self, tx: &mut DB::Connection, qb: &QueryBuilder<DB>) -> Result<Option<DB::Row>, StoreError> {
        DB::fetch_optional(tx, qb).await.map_err(|e| self.db.fail(e))
    }

    /// Runs `qb` inside `tx` for its effect.
    async fn tx_run(&self, tx: &mut DB::Connection, qb: &QueryBuilder<DB>) -> Result<(), StoreError> {
        DB::execute(tx, qb).await.map_err(|e| self.db.fail(e))
    }
}
