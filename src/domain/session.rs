//! Chat sessions and the rules for opening them.

use super::access::{Caller, Role};
use super::ids::{SessionId, TenantId, UserId};
use super::page::Paged;
use super::time::Timestamp;

/// Whether a session still accepts messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionStatus {
    /// Accepting messages.
    Open,
    /// Closed by an agent; readable, no longer writable.
    Closed,
}

impl SessionStatus {
    /// The wire and storage spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Open => "OPEN",
            Self::Closed => "CLOSED",
        }
    }

    /// Parses the wire and storage spelling.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "OPEN" => Some(Self::Open),
            "CLOSED" => Some(Self::Closed),
            _ => None,
        }
    }
}

/// A conversation between one tenant and support.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Server-generated UUIDv7.
    pub id: SessionId,
    /// The tenant the session belongs to.
    pub tenant_id: TenantId,
    /// The assigned agent; `None` while queued.
    pub agent_id: Option<UserId>,
    /// Open or closed.
    pub status: SessionStatus,
    /// Who opened it.
    pub opened_by: UserId,
    /// When it was opened.
    pub created_at: Timestamp,
    /// Last change: opening, a message, closing.
    pub updated_at: Timestamp,
    /// When it was closed, if it was.
    pub closed_at: Option<Timestamp>,
    /// Messages from others after the viewer's read mark; only on lists.
    pub unread_count: Option<i64>,
    /// The sequence number of the session's latest event (where a live stream starts).
    pub last_seq: i64,
}

/// A session about to be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSession {
    /// Pre-generated id.
    pub id: SessionId,
    /// The tenant.
    pub tenant_id: TenantId,
    /// Assigned agent, if any.
    pub agent_id: Option<UserId>,
    /// The opener.
    pub opened_by: UserId,
    /// Creation time.
    pub created_at: Timestamp,
}

/// Why a session could not be opened as asked.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OpenRefused {
    /// Only agents may name an agent.
    #[error("only support agents may choose the agent of a session")]
    AgentChoiceForbidden,
}

/// Decides which agent a new session is assigned to, before presence is
/// consulted: an agent names another agent or gets it itself; a tenant user
/// names none and is routed (or queued).
pub fn initial_agent(caller: &Caller, requested: Option<UserId>) -> Result<Option<UserId>, OpenRefused> {
    match (caller.role, requested) {
        (Role::TenantUser, Some(_)) => Err(OpenRefused::AgentChoiceForbidden),
        (Role::TenantUser, None) => Ok(None),
        (Role::Agent, Some(agent)) => Ok(Some(agent)),
        (Role::Agent, None) => Ok(Some(caller.user_id)),
    }
}

/// Filters of the session list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionFilter {
    /// Only sessions in this status.
    pub status: Option<SessionStatus>,
    /// Only sessions assigned to this agent.
    pub agent_id: Option<UserId>,
}

/// Where a session sits in the newest-first list order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionPosition {
    /// Creation time, the primary order.
    pub created_at: Timestamp,
    /// Tie-breaker for sessions created in the same microsecond.
    pub id: SessionId,
}

/// Where a session sits in the agent inbox (newest activity first, across tenants).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InboxPosition {
    /// Last activity.
    pub updated_at: Timestamp,
    /// Tie-breakers.
    pub tenant_id: TenantId,
    /// Tie-breakers.
    pub id: SessionId,
}

impl Session {
    /// The session's place in the inbox order.
    pub fn inbox_position(&self) -> InboxPosition {
        InboxPosition { updated_at: self.updated_at, tenant_id: self.tenant_id, id: self.id }
    }

    /// The session's place in list order.
    pub fn position(&self) -> SessionPosition {
        SessionPosition { created_at: self.created_at, id: self.id }
    }
}

impl Paged for Session {
    type Pos = SessionPosition;
    fn pos(&self) -> SessionPosition {
        self.position()
    }
    fn cursor(&self) -> String {
        self.id.to_string()
    }
}

/// A session as listed in the agent inbox; its cursor names its tenant too.
#[derive(Debug, Clone)]
pub struct InboxItem(pub Session);

impl Paged for InboxItem {
    type Pos = InboxPosition;
    fn pos(&self) -> InboxPosition {
        self.0.inbox_position()
    }
    fn cursor(&self) -> String {
        format!("{}.{}", self.0.tenant_id, self.0.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(role: Role) -> Caller {
        Caller { user_id: UserId::new(5).unwrap(), tenant_id: TenantId::new(1).unwrap(), role }
    }

    #[test]
    fn agents_get_themselves_or_the_agent_they_name() {
        let other = UserId::new(9).unwrap();
        assert_eq!(initial_agent(&caller(Role::Agent), None), Ok(Some(UserId::new(5).unwrap())));
        assert_eq!(initial_agent(&caller(Role::Agent), Some(other)), Ok(Some(other)));
    }

    #[test]
    fn tenant_users_may_not_name_an_agent() {
        assert_eq!(initial_agent(&caller(Role::TenantUser), None), Ok(None));
        assert_eq!(
            initial_agent(&caller(Role::TenantUser), Some(UserId::new(9).unwrap())),
            Err(OpenRefused::AgentChoiceForbidden)
        );
    }
}
