//! PostgreSQL, for several server nodes on one database.

use super::StoreConfig;
use super::migrations;
use super::sql::{Dialect, QueryBuilder, SqlStore};
use crate::domain::message::SearchTerm;
use anyhow::Context;
use sqlx::Postgres;
use sqlx::error::DatabaseError;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::str::FromStr;

impl Dialect for Postgres {
    fn placeholder(n: usize, out: &mut String) {
        out.push('$');
        out.push_str(&n.to_string());
    }

    fn push_term_filter(qb: &mut QueryBuilder<Self>, term: &SearchTerm) {
        // LIKE with every wildcard escaped is a literal substring test the
        // pg_trgm GIN index can serve.
        let mut pattern = String::with_capacity(term.folded().len() + 2);
        pattern.push('%');
        for c in term.folded().chars() {
            if matches!(c, '%' | '_' | '\\') {
                pattern.push('\\');
            }
            pattern.push(c);
        }
        pattern.push('%');
        qb.push(" AND message_folded LIKE ")
            .push_bind(pattern)
            .push(" ESCAPE '\\'");
    }

    fn is_transient(err: &dyn DatabaseError) -> bool {
        // Class 08 (connection), 53 (resources), 57 (operator intervention,
        // including statement timeout and shutdown), 40001/40P01 (retry).
        err.code().is_some_and(|c| {
            c.starts_with("08")
                || c.starts_with("53")
                || c.starts_with("57")
                || c == "40001"
                || c == "40P01"
        })
    }
}

/// Connects a pool and applies migrations if asked.
pub async fn connect(config: &StoreConfig) -> anyhow::Result<SqlStore<Postgres>> {
    let timeout_ms = config.statement_timeout.as_millis().to_string();
    let options = PgConnectOptions::from_str(&config.url)
        .context("invalid PostgreSQL URL")?
        .application_name("livechat")
        .options([("statement_timeout", timeout_ms.as_str())]);
    let pool = PgPoolOptions::new()
        .max_connections(config.max_connections.max(1))
        .acquire_timeout(config.acquire_timeout)
        // A connection broken by a database restart is noticed and replaced
        // before a request gets it.
        .test_before_acquire(true)
        .connect_with(options)
        .await
        .context("cannot connect to PostgreSQL")?;
    if config.migrate {
        let migrator = migrations::migrator(migrations::POSTGRES).await?;
        migrator
            .run(&pool)
            .await
            .context("applying PostgreSQL migrations")?;
    }
    Ok(SqlStore {
        reader: pool.clone(),
        writer: pool,
    })
}
