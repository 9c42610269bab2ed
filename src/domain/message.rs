//! Chat messages: what may be sent, what may be searched, and how a retry is recognised.

use super::ids::{MessageId, SessionId, TenantId, UserId};
use super::time::Timestamp;
use sha2::{Digest, Sha256};

/// Default maximum message length, in Unicode scalar values.
pub const DEFAULT_MAX_MESSAGE_CHARS: usize = 4_000;
/// Longest accepted search term, in characters, after trimming.
pub const MAX_TERM_CHARS: usize = 200;
/// Longest accepted `Idempotency-Key`.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// The text of a message: trimmed, non-empty, not over the configured length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageText(String);

/// Why a message text was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BadText {
    /// Nothing left after trimming.
    #[error("message must not be empty")]
    Empty,
    /// Longer than allowed.
    #[error("message must be at most {0} characters")]
    TooLong(usize),
    /// Holds a NUL character, which text columns cannot store.
    #[error("message must not contain NUL characters")]
    Nul,
}

impl MessageText {
    /// Trims `raw` and checks it against `max_chars`.
    pub fn parse(raw: &str, max_chars: usize) -> Result<Self, BadText> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(BadText::Empty);
        }
        if trimmed.chars().count() > max_chars {
            return Err(BadText::TooLong(max_chars));
        }
        if trimmed.contains('\0') {
            return Err(BadText::Nul);
        }
        Ok(Self(trimmed.to_owned()))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The case-folded form that search matches against.
    pub fn folded(&self) -> String {
        fold(&self.0)
    }
}

/// Case folding shared by stored text and search terms, so both backends
/// agree on what "case-insensitive" means (full Unicode lowercase, not only ASCII).
pub fn fold(text: &str) -> String {
    text.to_lowercase()
}

/// A search term: a literal, case-insensitive substring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchTerm {
    folded: String,
}

/// Why a search term was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("term must be 1 to {MAX_TERM_CHARS} characters after trimming, without NUL")]
pub struct BadTerm;

impl SearchTerm {
    /// Trims and folds `raw`.
    pub fn parse(raw: &str) -> Result<Self, BadTerm> {
        let trimmed = raw.trim();
        let len = trimmed.chars().count();
        if len == 0 || len > MAX_TERM_CHARS || trimmed.contains('\0') {
            return Err(BadTerm);
        }
        Ok(Self { folded: fold(trimmed) })
    }

    /// The folded term; match it against folded text as a plain substring.
    pub fn folded(&self) -> &str {
        &self.folded
    }

    /// Length in characters (trigram indexes need at least three).
    pub fn char_len(&self) -> usize {
        self.folded.chars().count()
    }
}

/// A client-chosen key that makes a send safe to retry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

/// Why an `Idempotency-Key` was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} visible ASCII characters")]
pub struct BadIdempotencyKey;

impl IdempotencyKey {
    /// Accepts 1..=255 visible ASCII characters.
    pub fn parse(raw: &str) -> Result<Self, BadIdempotencyKey> {
        let ok = !raw.is_empty()
            && raw.len() <= MAX_IDEMPOTENCY_KEY_LEN
            && raw.bytes().all(|b| b.is_ascii_graphic() || b == b' ');
        if ok { Ok(Self(raw.to_owned())) } else { Err(BadIdempotencyKey) }
    }

    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A digest of the request body a key was first used with; a retry must match it.
pub fn body_fingerprint(raw_message: &str) -> String {
    hex::encode(Sha256::digest(raw_message.as_bytes()))
}

/// A stored message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Server-generated UUIDv7.
    pub id: MessageId,
    /// Owning tenant.
    pub tenant_id: TenantId,
    /// Owning session.
    pub session_id: SessionId,
    /// Position in the session's commit order (1, 2, 3, …).
    pub seq: i64,
    /// The author's user id.
    pub sender_id: UserId,
    /// The text.
    pub message: String,
    /// Commit time; strictly increasing with `seq`.
    pub created_at: Timestamp,
}

/// The retry identity of a send: key plus body fingerprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idempotency {
    /// The client's key.
    pub key: IdempotencyKey,
    /// [`body_fingerprint`] of the raw message.
    pub fingerprint: String,
}

/// A message about to be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    /// Pre-generated id.
    pub id: MessageId,
    /// Tenant of the session.
    pub tenant_id: TenantId,
    /// Target session.
    pub session_id: SessionId,
    /// The author.
    pub sender_id: UserId,
    /// Validated text.
    pub text: MessageText,
    /// Present when the client sent an `Idempotency-Key`.
    pub idempotency: Option<Idempotency>,
    /// The wall clock at the request; the stored time may be later (see [`Timestamp::next_after`]).
    pub now: Timestamp,
}

/// What happened to a send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Appended {
    /// A new message was committed.
    Created(Message),
    /// The same key and body were seen before; this is the original message.
    Replayed(Message),
}

/// Filters of the message list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageFilter {
    /// Case-insensitive substring.
    pub term: Option<SearchTerm>,
    /// Only this author.
    pub sender_id: Option<UserId>,
    /// Inclusive lower bound on `created_at`.
    pub start: Option<Timestamp>,
    /// Inclusive upper bound on `created_at`.
    pub end: Option<Timestamp>,
}

impl super::page::Paged for Message {
    type Pos = i64;
    fn pos(&self) -> i64 {
        self.seq
    }
    fn cursor(&self) -> String {
        self.id.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_trimmed_and_bounded_in_characters_not_bytes() {
        assert_eq!(MessageText::parse("  halo  ", 10).unwrap().as_str(), "halo");
        assert_eq!(MessageText::parse(" \n\t ", 10), Err(BadText::Empty));
        assert!(MessageText::parse(&"é".repeat(10), 10).is_ok());
        assert_eq!(MessageText::parse(&"é".repeat(11), 10), Err(BadText::TooLong(10)));
        assert_eq!(MessageText::parse("a\0b", 10), Err(BadText::Nul));
    }

    #[test]
    fn terms_fold_case_beyond_ascii() {
        assert_eq!(SearchTerm::parse(" ÉTÉ ").unwrap().folded(), "été");
        assert_eq!(SearchTerm::parse("   "), Err(BadTerm));
        assert_eq!(SearchTerm::parse(&"a".repeat(201)), Err(BadTerm));
        assert_eq!(SearchTerm::parse("a\0"), Err(BadTerm));
    }

    #[test]
    fn idempotency_keys_are_bounded_visible_ascii() {
        assert!(IdempotencyKey::parse("retry-1").is_ok());
        assert!(IdempotencyKey::parse("").is_err());
        assert!(IdempotencyKey::parse(&"k".repeat(256)).is_err());
        assert!(IdempotencyKey::parse("tab\there").is_err());
    }

    #[test]
    fn fingerprints_distinguish_bodies() {
        assert_eq!(body_fingerprint("a"), body_fingerprint("a"));
        assert_ne!(body_fingerprint("a"), body_fingerprint("a "));
    }
}
