//! Subscriptions: whose ([`Owner`]), their signing secrets, state, the
//! stored [`Webhook`], a description's rules, and a [`WebhookPatch`].

use super::{EventTypes, WebhookUrl};
use crate::domain::ids::TenantId;
use crate::domain::time::Timestamp;
use std::fmt;
use uuid::Uuid;

/// Whose subscription: one tenant's, or the platform's (every tenant).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Owner {
    /// A tenant's own integrations.
    Tenant(TenantId),
    /// The platform's: receives the events of every tenant.
    Platform,
}

impl Owner {
    /// Storage key: the tenant id, or 0 for the platform (tenants are positive).
    pub fn key(self) -> i64 {
        match self {
            Self::Tenant(t) => t.get(),
            Self::Platform => 0,
        }
    }

    /// The owner stored under `key`.
    pub fn from_key(key: i64) -> Option<Self> {
        if key == 0 { Some(Self::Platform) } else { TenantId::new(key).ok().map(Self::Tenant) }
    }

    /// Whether an event of `tenant` concerns this owner's subscriptions.
    pub fn sees(self, tenant: TenantId) -> bool {
        match self {
            Self::Tenant(t) => t == tenant,
            Self::Platform => true,
        }
    }
}

/// A signing secret as Standard Webhooks writes it: `whsec_` and base64 of
/// random bytes. Never printed by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningSecret(String);

/// The prefix of every signing secret.
pub const SECRET_PREFIX: &str = "whsec_";

impl SigningSecret {
    /// A fresh secret of 32 random bytes.
    pub fn generate() -> Self {
        use base64::Engine;
        let bytes: [u8; 32] = rand::random();
        Self(format!("{SECRET_PREFIX}{}", base64::engine::general_purpose::STANDARD.encode(bytes)))
    }

    /// Wraps a stored secret.
    pub fn from_stored(raw: String) -> Self {
        Self(raw)
    }

    /// The secret as shown to its owner and stored.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The key bytes HMAC uses (the base64 after the prefix).
    pub fn key(&self) -> Option<Vec<u8>> {
        use base64::Engine;
        let b64 = self.0.strip_prefix(SECRET_PREFIX).unwrap_or(&self.0);
        base64::engine::general_purpose::STANDARD.decode(b64).ok()
    }
}

impl fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("whsec_***")
    }
}

/// Whether a subscription is sent to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookState {
    /// Deliveries are sent.
    Active,
    /// Paused by the server after repeated failures; new events are kept
    /// (held) and sent once it is re-enabled.
    Paused,
    /// Disabled by a user; new events are not recorded for it.
    Disabled,
}

impl WebhookState {
    /// Storage spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Paused => "paused",
            Self::Disabled => "disabled",
        }
    }

    /// Parses the storage spelling.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "active" => Some(Self::Active),
            "paused" => Some(Self::Paused),
            "disabled" => Some(Self::Disabled),
            _ => None,
        }
    }
}

/// A subscription as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    /// Whose.
    pub owner: Owner,
    /// UUIDv7.
    pub id: Uuid,
    /// Where deliveries go.
    pub url: WebhookUrl,
    /// What is sent.
    pub events: EventTypes,
    /// Active, paused or disabled.
    pub state: WebhookState,
    /// Why the server paused it.
    pub paused_reason: Option<String>,
    /// Free text for its owner.
    pub description: Option<String>,
    /// The current signing secret.
    pub secret: SigningSecret,
    /// The secret before the last rotation, and until when it still signs.
    pub previous_secret: Option<(SigningSecret, Timestamp)>,
    /// Failed attempts since the last success.
    pub consecutive_failures: i64,
    /// Who created it.
    pub created_by: i64,
    /// When.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
}

impl Webhook {
    /// The secrets that sign a delivery at `now`: the current one, and the
    /// previous one during its overlap window.
    pub fn signing_secrets(&self, now: Timestamp) -> Vec<SigningSecret> {
        let mut secrets = vec![self.secret.clone()];
        if let Some((previous, until)) = &self.previous_secret {
            if *until > now {
                secrets.push(previous.clone());
            }
        }
        secrets
    }
}

/// Longest description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 500;

/// Checks a description: trimmed, at most [`MAX_DESCRIPTION_CHARS`]; empty means none.
pub fn parse_description(raw: &str) -> Result<Option<String>, String> {
    let trimmed = raw.trim();
    if trimmed.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(format!("must be at most {MAX_DESCRIPTION_CHARS} characters"));
    }
    Ok((!trimmed.is_empty()).then(|| trimmed.to_owned()))
}

/// A change to a subscription; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebhookPatch {
    /// New target.
    pub url: Option<WebhookUrl>,
    /// New event list.
    pub events: Option<EventTypes>,
    /// Enable (also un-pauses) or disable.
    pub active: Option<bool>,
    /// New description (`Some(None)` clears it).
    pub description: Option<Option<String>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_whsec_base64_of_32_bytes_and_never_print() {
        let s = SigningSecret::generate();
        assert!(s.expose().starts_with("whsec_"));
        assert_eq!(s.key().map(|k| k.len()), Some(32));
        assert_eq!(format!("{s:?}"), "whsec_***");
        assert_ne!(s, SigningSecret::generate());
    }

    #[test]
    fn the_previous_secret_signs_only_during_its_overlap() {
        let t = Timestamp::from_micros(1_000);
        let hook = Webhook {
            owner: Owner::Platform,
            id: Uuid::now_v7(),
            url: WebhookUrl::from_stored("https://a.example/".into()),
            events: EventTypes::parse(&["message.created"]).unwrap(),
            state: WebhookState::Active,
            paused_reason: None,
            description: None,
            secret: SigningSecret::generate(),
            previous_secret: Some((SigningSecret::generate(), t)),
            consecutive_failures: 0,
            created_by: 1,
            created_at: t,
            updated_at: t,
        };
        assert_eq!(hook.signing_secrets(Timestamp::from_micros(999)).len(), 2);
        assert_eq!(hook.signing_secrets(t).len(), 1);
    }
}
