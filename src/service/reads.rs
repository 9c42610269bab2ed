//! Read marks ("seen").

use super::{Error, Livechat, Subject};
use crate::domain::access::Caller;
use crate::domain::event::{Notice, ReadMark};
use crate::domain::ids::{MessageId, SessionId};
use crate::domain::time::Timestamp;

impl Livechat {
    /// Moves the caller's read mark forward and tells the session's subscribers.
    pub async fn mark_read(&self, caller: &Caller, id: SessionId, message: MessageId) -> Result<ReadMark, Error> {
        self.get_session(caller, id).await?;
        let now = Timestamp::now();
        let store = self.store().clone();
        let (tenant, user) = (caller.tenant_id, caller.user_id);
        // The notice goes out with the write, even if the client leaves meanwhile.
        let marking = async move {
            let (mark, moved) = store.mark_read(tenant, id, user, message, now).await?;
            if moved {
                if let Err(err) = store.publish(&Notice::Read(mark)).await {
                    tracing::warn!(error = %err, "read notice not delivered");
                }
            }
            Ok(mark)
        };
        // Marks only move forward: marking again returns the mark as stored.
        let read_back = || async move { Ok(Some(self.store().mark_read(tenant, id, user, message, now).await?.0)) };
        self.write(Subject::new("message_id", message), marking, read_back).await
    }
}
