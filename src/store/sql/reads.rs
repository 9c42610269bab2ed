//! Read marks: each participant's last read message per session.

use super::SqlStore;
use super::dialect::Dialect;
use super::query::{QueryBuilder, Record};
use crate::domain::event::ReadMark;
use crate::domain::ids::{MessageId, SessionId, TenantId, UserId};
use crate::domain::time::Timestamp;
use crate::store::{MessageStore, ReadMarkStore, StoreError};
use async_trait::async_trait;

#[async_trait]
impl<DB: Dialect> ReadMarkStore for SqlStore<DB> {
    async fn mark_read(
        &self,
        tenant: TenantId,
        session: SessionId,
        user: UserId,
        message: MessageId,
        at: Timestamp,
    ) -> Result<(ReadMark, bool), StoreError> {
        let seq = self.message_seq(tenant, session, message).await?.ok_or(StoreError::MessageNotFound)?;
        let mut tx = self.db.begin().await?;
        let mut qb = QueryBuilder::<DB>::new(
            "INSERT INTO read_state (tenant_id, session_id, user_id, seq, message_id, at) VALUES ",
        );
        qb.push_values(vec![
            tenant.get().into(),
            session.uuid().into(),
            user.get().into(),
            seq.into(),
            message.uuid().into(),
            at.micros().into(),
        ]);
        qb.push(" ON CONFLICT (tenant_id, session_id, user_id) DO UPDATE SET seq = excluded.seq,");
        qb.push(" message_id = excluded.message_id, at = excluded.at WHERE read_state.seq < excluded.seq");
        qb.push(" RETURNING seq");
        let moved = self.tx_one(&mut tx, &qb).await?.is_some();
        let mut qb = QueryBuilder::<DB>::new("SELECT seq, message_id, at FROM read_state WHERE tenant_id = ");
        qb.push_bind(tenant.get()).push(" AND session_id = ").push_bind(session.uuid());
        qb.push(" AND user_id = ").push_bind(user.get());
        let row = self.tx_one(&mut tx, &qb).await?.ok_or(StoreError::Internal(sqlx::Error::RowNotFound))?;
        self.commit_announcing(tx, &[]).await?;
        let mark = ReadMark {
            tenant_id: tenant,
            session_id: session,
            user_id: user,
            message_id: MessageId::from_uuid(row.uuid("message_id").map_err(StoreError::Internal)?),
            seq: row.int("seq").map_err(StoreError::Internal)?,
            at: Timestamp::from_micros(row.int("at").map_err(StoreError::Internal)?),
        };
        Ok((mark, moved))
    }
}
