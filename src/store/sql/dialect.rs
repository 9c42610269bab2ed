//! What differs between the SQL engines: the [`Dialect`] trait each backend
//! implements (placeholders, substring search, error codes, notifications,
//! transaction ids), and the small tables it hands over ([`Constraint`],
//! [`TransactionIds`], [`WebhookSql`], [`Explain`]).

use super::query::{Exec, Placeholders, QueryBuilder, Record};
use crate::domain::message::SearchTerm;
use sqlx::Database;
use sqlx::error::DatabaseError;

/// What differs between the SQL engines.
pub trait Dialect: Exec + Placeholders + Database<Row: Record> {
    /// Adds `AND <folded text contains term>` using the engine's substring index.
    fn push_term_filter(qb: &mut QueryBuilder<Self>, term: &SearchTerm);

    /// The function giving the position of a substring (`instr`, `strpos`).
    const SUBSTRING_POSITION: &'static str;

    /// Writer tasks committing batches of messages (sessions spread over them).
    const WRITERS: usize;

    /// Appended to a `SELECT` that must lock the rows it reads until commit.
    const LOCK_ROWS: &'static str;

    /// Whether a batch probes its idempotency keys through a `LATERAL`
    /// join. Given `IN (VALUES …)`, both engines scan the whole partial key
    /// index (PostgreSQL because its statistics say the index is nearly
    /// empty until the next analyse); the keys must drive the join, which
    /// SQLite's `CROSS JOIN` guarantees and PostgreSQL's needs `LATERAL` for.
    const LATERAL_KEY_LOOKUP: bool;

    /// Whether a term search should first test the session's own rows
    /// before using the substring index (`false`: the engine's planner
    /// weighs the index against the session's rows itself).
    const WINDOWED_SEARCH: bool;

    /// Whether a database error is a violation of this constraint (by its
    /// name, never "any unique violation").
    fn violates(err: &dyn DatabaseError, constraint: Constraint) -> bool;

    /// Whether a database error means "try again later" rather than a bug.
    fn is_transient(err: &dyn DatabaseError) -> bool;

    /// Whether a (transient) database error means the database itself is
    /// unreachable, so other requests should not even try for a moment.
    fn is_outage(err: &dyn DatabaseError) -> bool;

    /// The `LISTEN/NOTIFY` channel, on engines that carry notices between
    /// nodes; notices are then sent inside the transaction (delivered on
    /// commit only). `None`: in-process delivery after commit.
    const NOTIFY_CHANNEL: Option<&'static str>;

    /// Whether a connection-pool timeout means the server is unreachable
    /// (rather than every connection being busy).
    const POOL_TIMEOUT_IS_OUTAGE: bool;

    /// How to ask for a query plan: the statement prefix, settings for the
    /// same transaction, and the column holding the plan's lines.
    const EXPLAIN: Explain;

    /// On engines where a COMMIT can be sent and its answer lost (a server
    /// across a network): the statement that names the current transaction
    /// (column `xid`), and the function that tells what became of one.
    /// `None` for a local file, whose COMMIT either succeeds or fails and
    /// rolls back, never in between.
    const TRANSACTION_IDS: Option<TransactionIds>;

    /// What the webhook outbox and delivery claims need from the engine.
    const WEBHOOKS: WebhookSql;
}

/// How an engine names transactions and reports their outcome.
pub struct TransactionIds {
    /// Returns the current transaction's id as `xid`.
    pub current: &'static str,
    /// A function of that id returning `committed`, `aborted` or `in progress`.
    pub status_function: &'static str,
}

/// Constraints whose violation means something to the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Constraint {
    /// `sessions_one_open_per_tenant`: the tenant already has an OPEN session.
    OneOpenSessionPerTenant,
}

/// How an engine serves the webhook worker (see [`Dialect::WEBHOOKS`]).
pub struct WebhookSql {
    /// Row locks (`FOR UPDATE`, `SKIP LOCKED`) exist: several nodes share the
    /// database. Without them (SQLite) one writer serialises everything anyway.
    pub row_locks: bool,
    /// The outbox column in insertion order.
    pub outbox_order: &'static str,
    /// A statement answering `locked` = 1 if this transaction may fan the
    /// outbox out (one node at a time, so a session's events keep their
    /// order); `None` where transactions are serialised anyway.
    pub dispatch_lock: Option<&'static str>,
}

/// How an engine explains a query (see [`Dialect::EXPLAIN`]).
pub struct Explain {
    /// Put before the statement.
    pub prefix: &'static str,
    /// Run first, in the same transaction.
    pub setup: &'static [&'static str],
    /// The column of each plan line.
    pub column: &'static str,
}
