//! Storage: one trait per aggregate (sessions, messages and their events,
//! read marks, presence, tickets, webhook subscriptions and deliveries) plus
//! the notice bus, implemented once over SQL and instantiated for each
//! backend (SQLite, the embedded default, and PostgreSQL, for several nodes).
//!
//! The domain rules (validation, timestamps, pagination) live in
//! [`crate::domain`]; this layer only keeps data and the invariants the
//! database must hold under concurrency (one open session per tenant,
//! commit-ordered message sequence, unique idempotency keys).
//!
//! Every call reaches the database through one place (acquiring a
//! connection or beginning a transaction, see `sql::Db`), which is where the
//! fail-fast [`breaker`] sits, so it covers every trait below.
//!
//! - `traits`: the storage traits, [`Store`], and the values they trade in
//!   ([`ClaimRequest`], [`StoreStats`], [`Ticket`]);
//! - `error`: [`StoreError`] and [`CommitOutcome`];
//! - `config`: [`StoreConfig`], [`DatabaseUrl`], [`Backend`];
//! - `connect`: [`connect()`], [`migrate`], [`explain_term_search`], [`explain_key_lookup`];
//! - `sql`: the implementation, generic over a dialect; `sqlite` and
//!   `postgres`: the two dialects and how to open them; `migrations`: the
//!   embedded schema of each; [`commit_gate`]: the deadline check before a
//!   COMMIT; `breaker`: failing fast while the database is unreachable.

mod breaker;
pub mod commit_gate;
mod config;
mod connect;
mod error;
mod migrations;
mod postgres;
mod sql;
mod sqlite;
mod traits;

pub use config::{Backend, DatabaseUrl, StoreConfig};
pub use connect::{TermSearchPlans, connect, explain_key_lookup, explain_term_search, migrate};
pub use error::{CommitOutcome, StoreError};
pub use traits::{
    ClaimRequest, DeliveryStore, MessageStore, NoticeBus, PresenceStore, ReadMarkStore, SessionStore, Store,
    StoreStats, Ticket, TicketStore, WebhookStore,
};
