//! The [`Store`] lifecycle of a SQL store (ping, commit outcome, shutdown,
//! statistics) and the plans of a term search (`livechat explain`).

use super::SqlStore;
use super::dialect::Dialect;
use super::messages::message_scan;
use super::query::{QueryBuilder, Record};
use super::rows::corrupt;
use crate::domain::ids::{SessionId, TenantId, UserId};
use crate::domain::message::SearchTerm;
use crate::domain::page::Scan;
use crate::store::{CommitOutcome, Store, StoreError, StoreStats, TermSearchPlans};
use async_trait::async_trait;
use std::sync::PoisonError;

impl<DB: Dialect> SqlStore<DB> {
    /// The plans of a term search: the page query of one session, and the
    /// term predicate alone over the whole table.
    pub async fn explain_term_search(&self, term: &SearchTerm) -> anyhow::Result<TermSearchPlans> {
        let filter = crate::domain::message::MessageFilter { term: Some(term.clone()), ..Default::default() };
        let (tenant, session) = (TenantId::new(1)?, SessionId::generate());
        let in_session = message_scan::<DB>(tenant, session, &filter, Scan::Older(None), 10);
        let mut predicate = QueryBuilder::<DB>::new("SELECT id FROM messages WHERE true");
        DB::push_term_filter(&mut predicate, term);
        Ok(TermSearchPlans { in_session: self.explain(in_session).await?, predicate: self.explain(predicate).await? })
    }

    async fn explain(&self, mut qb: QueryBuilder<DB>) -> anyhow::Result<Vec<String>> {
        qb.prefix(DB::EXPLAIN.prefix);
        let mut tx = self.db.begin().await?;
        for statement in DB::EXPLAIN.setup {
            DB::execute(&mut tx, &QueryBuilder::new(statement)).await?;
        }
        let rows = DB::fetch_all(&mut tx, &qb).await?;
        Ok(rows.iter().map(|r| r.text(DB::EXPLAIN.column)).collect::<Result<_, _>>()?)
    }
}

#[async_trait]
impl<DB: Dialect> Store for SqlStore<DB> {
    async fn ping(&self) -> Result<(), StoreError> {
        self.read_one(&QueryBuilder::new("SELECT 1")).await.map(drop)
    }

    async fn commit_outcome(&self, transaction: i64) -> Result<CommitOutcome, StoreError> {
        let Some(ids) = &DB::TRANSACTION_IDS else {
            // Never asked: a local commit is never in doubt.
            return Ok(CommitOutcome::RolledBack);
        };
        let mut qb = QueryBuilder::<DB>::new("SELECT CAST(");
        qb.push(ids.status_function).push("(").push_bind(transaction).push(") AS TEXT) AS status");
        let row = self.read_one(&qb).await?.ok_or(StoreError::Internal(sqlx::Error::RowNotFound))?;
        let status: Option<String> = row.opt_text("status").map_err(StoreError::Internal)?;
        match status.as_deref() {
            Some("committed") => Ok(CommitOutcome::Committed),
            Some("aborted") => Ok(CommitOutcome::RolledBack),
            Some("in progress") => Ok(CommitOutcome::InProgress),
            _ => Err(StoreError::Internal(corrupt("transaction status"))),
        }
    }

    async fn shutdown(&self) {
        for task in self.tasks.lock().unwrap_or_else(PoisonError::into_inner).drain(..) {
            task.abort();
        }
        self.db.close().await;
    }

    fn stats(&self) -> StoreStats {
        self.db.stats()
    }
}

/// Explains a term search on a store opened for it, then closes the store.
pub(in crate::store) async fn explain<DB: Dialect>(
    store: SqlStore<DB>,
    term: &SearchTerm,
) -> anyhow::Result<TermSearchPlans> {
    let plan = store.explain_term_search(term).await;
    store.shutdown().await;
    plan
}

/// Explains the batch's idempotency-key lookup (two keys) on a store opened
/// for it, then closes the store.
pub(in crate::store) async fn explain_keys<DB: Dialect>(store: SqlStore<DB>) -> anyhow::Result<Vec<String>> {
    let (tenant, session, sender) = (TenantId::new(1)?, SessionId::generate(), UserId::new(100)?);
    let lookup =
        super::appends::key_lookup::<DB>(&[(tenant, session, sender, "key-1"), (tenant, session, sender, "key-2")]);
    let plan = store.explain(lookup).await;
    store.shutdown().await;
    plan
}
