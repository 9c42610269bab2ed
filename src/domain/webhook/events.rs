//! The event catalogue a subscription picks from: [`EventType`] and the
//! non-empty set [`EventTypes`] a subscription stores.

use crate::domain::event::SessionChange;
use std::fmt;

/// The events a subscription can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    /// A message was sent.
    MessageCreated,
    /// A session was opened.
    SessionOpened,
    /// A session was assigned to an agent (claim, transfer, routing).
    SessionAssigned,
    /// A session was closed.
    SessionClosed,
}

impl EventType {
    /// Every event type, in catalogue order.
    pub const ALL: [Self; 4] = [Self::MessageCreated, Self::SessionOpened, Self::SessionAssigned, Self::SessionClosed];

    /// Wire and storage spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::MessageCreated => "message.created",
            Self::SessionOpened => "session.opened",
            Self::SessionAssigned => "session.assigned",
            Self::SessionClosed => "session.closed",
        }
    }

    /// Parses the wire spelling.
    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.as_str() == raw)
    }

    /// The event a session change emits.
    pub const fn of_change(change: SessionChange) -> Self {
        match change {
            SessionChange::Opened => Self::SessionOpened,
            SessionChange::Assigned => Self::SessionAssigned,
            SessionChange::Closed => Self::SessionClosed,
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A non-empty set of event types, in catalogue order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventTypes(Vec<EventType>);

impl EventTypes {
    /// Parses a list of wire names; unknown or no names are refused.
    pub fn parse<S: AsRef<str>>(raw: &[S]) -> Result<Self, String> {
        let mut types = Vec::with_capacity(raw.len());
        for name in raw {
            let name = name.as_ref();
            let event = EventType::parse(name).ok_or_else(|| {
                let known: Vec<&str> = EventType::ALL.iter().map(|e| e.as_str()).collect();
                format!("unknown event type {name:?} (known: {})", known.join(", "))
            })?;
            types.push(event);
        }
        if types.is_empty() {
            return Err("must list at least one event type".to_owned());
        }
        types.sort();
        types.dedup();
        Ok(Self(types))
    }

    /// Decodes the storage form (`a,b`).
    pub fn decode(raw: &str) -> Option<Self> {
        let names: Vec<&str> = raw.split(',').filter(|s| !s.is_empty()).collect();
        Self::parse(&names).ok()
    }

    /// The storage form.
    pub fn encode(&self) -> String {
        self.0.iter().map(|e| e.as_str()).collect::<Vec<_>>().join(",")
    }

    /// Whether `event` is wanted.
    pub fn contains(&self, event: EventType) -> bool {
        self.0.contains(&event)
    }

    /// The types, in catalogue order.
    pub fn iter(&self) -> impl Iterator<Item = EventType> + '_ {
        self.0.iter().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_lists_are_checked_sorted_and_deduplicated() {
        let events = EventTypes::parse(&["session.closed", "message.created", "session.closed"]).unwrap();
        assert_eq!(events.encode(), "message.created,session.closed");
        assert_eq!(EventTypes::decode(&events.encode()), Some(events));
        assert!(EventTypes::parse::<&str>(&[]).is_err());
        assert!(EventTypes::parse(&["message.deleted"]).is_err());
    }
}
