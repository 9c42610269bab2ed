//! Notices between nodes: `pg_notify` on PostgreSQL, in process on SQLite.

use super::SqlStore;
use super::commit::notify_statement;
use super::dialect::Dialect;
use crate::domain::event::Notice;
use crate::store::{NoticeBus, StoreError};
use async_trait::async_trait;
use tokio::sync::broadcast;

#[async_trait]
impl<DB: Dialect> NoticeBus for SqlStore<DB> {
    async fn publish(&self, notice: &Notice) -> Result<(), StoreError> {
        match DB::NOTIFY_CHANNEL {
            Some(channel) => {
                let qb = notify_statement::<DB>(channel, notice)?;
                self.write_run(&qb).await
            }
            None => {
                let _ = self.notices.send(notice.clone());
                Ok(())
            }
        }
    }

    fn notices(&self) -> broadcast::Receiver<Notice> {
        self.notices.subscribe()
    }
}
