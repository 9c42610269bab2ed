//! Sending messages and paging through them (docs/API.md §11).

use super::{Error, Livechat, Subject, listed};
use crate::domain::access::Caller;
use crate::domain::ids::{MessageId, SessionId};
use crate::domain::message::{
    Appended, Idempotency, IdempotencyKey, Message, MessageFilter, MessageText, NewMessage, body_fingerprint,
};
use crate::domain::page::{Page, PageRequest};
use crate::domain::time::Timestamp;

impl Livechat {
    /// Sends a message; returns it and whether it was a replay of an earlier send.
    pub async fn send_message(
        &self,
        caller: &Caller,
        session_id: SessionId,
        raw_message: &str,
        key: Option<IdempotencyKey>,
    ) -> Result<(Message, bool), Error> {
        let text =
            MessageText::parse(raw_message, self.limits().max_message_chars).map_err(|e| Error::field("message", e))?;
        let new = NewMessage {
            id: MessageId::generate(),
            tenant_id: caller.tenant_id,
            session_id,
            sender_id: caller.user_id,
            text,
            idempotency: key.map(|key| Idempotency { key, fingerprint: body_fingerprint(raw_message) }),
            now: Timestamp::now(),
        };
        let (store, tenant, id) = (self.store().clone(), new.tenant_id, new.id);
        let written = self.write(
            Subject::new("message_id", id),
            async move { store.append_message(&new).await },
            || async move {
                // Stored, as the database says: the message as it was committed.
                Ok(self.store().message(tenant, session_id, id).await?.map(Appended::Created))
            },
        );
        match written.await? {
            Appended::Created(m) => {
                self.metrics().messages_sent.inc();
                Ok((m, false))
            }
            Appended::Replayed(m) => Ok((m, true)),
        }
    }

    /// A page of a session's messages, newest first.
    pub async fn list_messages(
        &self,
        caller: &Caller,
        session_id: SessionId,
        filter: &MessageFilter,
        page: PageRequest<MessageId>,
    ) -> Result<Page<Message>, Error> {
        listed(self.store().page_messages(caller.tenant_id, session_id, filter, &page).await?)
    }
}
