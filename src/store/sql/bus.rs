//! Notices between nodes: `pg_notify` on PostgreSQL, in process on SQLite.

use super::{Dialect, QueryBuilder, SqlStore, classify};
use crate::domain::event::Notice;
use crate::store::{Bus, StoreError};
use async_trait::async_trait;
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Type};
use tokio::sync::broadcast;
use uuid::Uuid;

#[async_trait]
impl<DB> Bus for SqlStore<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB> + Type<DB>,
    for<'q> Uuid: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'a> &'a str: ColumnIndex<DB::Row>,
{
    async fn publish(&self, notice: &Notice) -> Result<(), StoreError> {
        match DB::NOTIFY_CHANNEL {
            Some(channel) => {
                let payload =
                    serde_json::to_string(notice).map_err(|e| StoreError::Internal(sqlx::Error::Encode(e.into())))?;
                let mut qb = QueryBuilder::<DB>::new("SELECT pg_notify(");
                qb.push_bind(channel).push(", ").push_bind(payload).push(")");
                qb.build().execute(&self.writer).await.map_err(classify::<DB>)?;
            }
            None => {
                let _ = self.notices.send(notice.clone());
            }
        }
        Ok(())
    }

    fn notices(&self) -> broadcast::Receiver<Notice> {
        self.notices.subscribe()
    }
}
