//! Opening a store: [`connect`] to the backend a URL selects, [`migrate`]
//! it, and [`explain_term_search`] (the plans a `term` search gets).

use super::{Backend, Store, StoreConfig, postgres, sql, sqlite};
use crate::metrics::Metrics;
use std::sync::Arc;

/// Connects to the configured backend (running migrations if asked).
pub async fn connect(config: &StoreConfig, metrics: Arc<Metrics>) -> anyhow::Result<Arc<dyn Store>> {
    match config.url.backend() {
        Some(Backend::Sqlite) => Ok(started(sqlite::connect(config).await?.with_metrics(metrics))),
        Some(Backend::Postgres) => Ok(started(postgres::connect(config).await?.with_metrics(metrics))),
        None => anyhow::bail!("database URL must start with sqlite:// or postgres://"),
    }
}

/// A store shared and with its writers running.
fn started<DB: sql::Dialect>(store: sql::SqlStore<DB>) -> Arc<dyn Store> {
    let store = Arc::new(store);
    store.start_writers();
    store
}

/// Applies pending migrations, then disconnects.
pub async fn migrate(config: &StoreConfig) -> anyhow::Result<()> {
    let config = StoreConfig { migrate: true, ..config.clone() };
    connect(&config, Arc::default()).await?.shutdown().await;
    Ok(())
}

/// The query plans of a `term` search, one line per plan node each.
#[derive(Debug, Clone)]
pub struct TermSearchPlans {
    /// The page query of one session's messages with the term.
    pub in_session: Vec<String>,
    /// The term predicate alone, over every message.
    pub predicate: Vec<String>,
}

/// The plans the database chooses for a `term` search: for operators
/// checking that search is index-backed, and for the tests that prove it.
pub async fn explain_term_search(config: &StoreConfig, term: &str) -> anyhow::Result<TermSearchPlans> {
    let term = crate::domain::message::SearchTerm::parse(term)?;
    match config.url.backend() {
        Some(Backend::Sqlite) => sql::explain(sqlite::connect(config).await?, &term).await,
        Some(Backend::Postgres) => sql::explain(postgres::connect(config).await?, &term).await,
        None => anyhow::bail!("database URL must start with sqlite:// or postgres://"),
    }
}

/// The plan the database chooses for a send batch's idempotency-key lookup:
/// for the test that proves it probes the key index once per key.
pub async fn explain_key_lookup(config: &StoreConfig) -> anyhow::Result<Vec<String>> {
    match config.url.backend() {
        Some(Backend::Sqlite) => sql::explain_keys(sqlite::connect(config).await?).await,
        Some(Backend::Postgres) => sql::explain_keys(postgres::connect(config).await?).await,
        None => anyhow::bail!("database URL must start with sqlite:// or postgres://"),
    }
}
