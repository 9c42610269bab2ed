//! Row decoders shared by the aggregates: the column lists of sessions and
//! messages, their decoders, and the checked ids and states inside them
//! (a stored value out of range is [`corrupt`], never a panic).

use super::query::Record;
use crate::domain::ids::{MessageId, SessionId, TenantId, UserId};
use crate::domain::message::Message;
use crate::domain::session::{Session, SessionStatus};
use crate::domain::time::Timestamp;

pub(super) const SESSION_COLUMNS: &str =
    "id, tenant_id, agent_id, status, opened_by, created_at, updated_at, closed_at, last_seq";
pub(super) const MESSAGE_COLUMNS: &str = "id, tenant_id, session_id, seq, sender_id, message, created_at";

pub(super) fn corrupt(what: &str) -> sqlx::Error {
    sqlx::Error::Decode(format!("stored {what} is out of range").into())
}

pub(super) fn tenant(row: &impl Record, column: &str) -> Result<TenantId, sqlx::Error> {
    TenantId::new(row.int(column)?).map_err(|_| corrupt(column))
}

pub(super) fn user(row: &impl Record, column: &str) -> Result<UserId, sqlx::Error> {
    UserId::new(row.int(column)?).map_err(|_| corrupt(column))
}

pub(super) fn opt_user(row: &impl Record, column: &str) -> Result<Option<UserId>, sqlx::Error> {
    row.opt_int(column)?.map(UserId::new).transpose().map_err(|_| corrupt(column))
}

pub(super) fn status(row: &impl Record) -> Result<SessionStatus, sqlx::Error> {
    SessionStatus::parse(&row.text("status")?).ok_or_else(|| corrupt("status"))
}

pub(super) fn session_from_row(row: &impl Record) -> Result<Session, sqlx::Error> {
    Ok(Session {
        id: SessionId::from_uuid(row.uuid("id")?),
        tenant_id: tenant(row, "tenant_id")?,
        agent_id: opt_user(row, "agent_id")?,
        status: status(row)?,
        opened_by: user(row, "opened_by")?,
        created_at: Timestamp::from_micros(row.int("created_at")?),
        updated_at: Timestamp::from_micros(row.int("updated_at")?),
        closed_at: row.opt_int("closed_at")?.map(Timestamp::from_micros),
        unread_count: None,
        last_seq: row.int("last_seq")?,
    })
}

pub(super) fn message_from_row(row: &impl Record) -> Result<Message, sqlx::Error> {
    Ok(Message {
        id: MessageId::from_uuid(row.uuid("id")?),
        tenant_id: tenant(row, "tenant_id")?,
        session_id: SessionId::from_uuid(row.uuid("session_id")?),
        seq: row.int("seq")?,
        sender_id: user(row, "sender_id")?,
        message: row.text("message")?,
        created_at: Timestamp::from_micros(row.int("created_at")?),
    })
}
