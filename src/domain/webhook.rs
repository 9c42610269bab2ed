//! Webhooks: subscriptions, their events and target URLs, deliveries and
//! the retry rules, free of HTTP and SQL. (docs/API.md §14; the worker
//! that sends them is `crate::webhooks`.)

use super::event::SessionChange;
use super::ids::{SessionId, TenantId};
use super::time::Timestamp;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;
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

/// Which targets are allowed: the SSRF rules of a deployment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UrlRules {
    /// Plain http and loopback / private / link-local targets are allowed
    /// (development and tests only).
    pub allow_private: bool,
    /// Hosts that may be reached over plain http (still never a private address
    /// unless `allow_private`).
    pub http_hosts: Vec<String>,
}

/// A subscription's target, checked against the [`UrlRules`] without any
/// network access (the addresses a name resolves to are checked separately,
/// at subscription and again at every delivery).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl(String);

/// The host part of a target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// An address literal.
    Ip(IpAddr),
    /// A name to resolve.
    Name(String),
}

/// Longest accepted URL.
pub const MAX_URL_CHARS: usize = 2_000;

impl WebhookUrl {
    /// Parses and checks a target URL.
    pub fn parse(raw: &str, rules: &UrlRules) -> Result<Self, String> {
        let raw = raw.trim();
        if raw.chars().count() > MAX_URL_CHARS {
            return Err(format!("must be at most {MAX_URL_CHARS} characters"));
        }
        if raw.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err("must not contain spaces or control characters".to_owned());
        }
        let (scheme, rest) = raw.split_once("://").ok_or("must be an absolute http(s) URL")?;
        let scheme = scheme.to_ascii_lowercase();
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if authority.contains('@') {
            return Err("must not carry credentials (the signature authenticates the sender)".to_owned());
        }
        let host = Self::host_of(authority).ok_or("must name a host")?;
        match scheme.as_str() {
            "https" => {}
            "http" if rules.allow_private || Self::http_allowed(&host, rules) => {}
            "http" => return Err("must use https (plain http is not allowed for this host)".to_owned()),
            _ => return Err("must be an http(s) URL".to_owned()),
        }
        if !rules.allow_private {
            match &host {
                Host::Ip(ip) => {
                    if let Some(why) = forbidden_address(*ip) {
                        return Err(format!("must not target a {why} address (SSRF protection)"));
                    }
                }
                Host::Name(name) if is_local_name(name) => {
                    return Err("must not target a local host name (SSRF protection)".to_owned());
                }
                Host::Name(_) => {}
            }
        }
        Ok(Self(format!("{scheme}://{rest}")))
    }

    /// Wraps a stored URL (checked when it was stored).
    pub fn from_stored(raw: String) -> Self {
        Self(raw)
    }

    /// The URL.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether it is plain http.
    pub fn is_plain_http(&self) -> bool {
        self.0.starts_with("http://")
    }

    /// The host to connect to.
    pub fn host(&self) -> Option<Host> {
        let rest = self.0.split_once("://")?.1;
        Self::host_of(rest.split(['/', '?', '#']).next().unwrap_or_default())
    }

    fn host_of(authority: &str) -> Option<Host> {
        let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let host = if let Some(v6) = authority.strip_prefix('[') {
            let (inner, _) = v6.split_once(']')?;
            return inner.parse::<Ipv6Addr>().ok().map(|ip| Host::Ip(IpAddr::V6(ip)));
        } else {
            authority
                .rsplit_once(':')
                .map_or(authority, |(h, port)| if port.bytes().all(|b| b.is_ascii_digit()) { h } else { authority })
        };
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        if host.is_empty() {
            return None;
        }
        if let Ok(ip) = host.parse::<Ipv4Addr>() {
            return Some(Host::Ip(IpAddr::V4(ip)));
        }
        let valid = host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
        // A name made only of digits and dots that is not an IPv4 address
        // (e.g. `2130706433`, `0x7f.1`) is refused: resolvers read such forms as addresses.
        let numeric = host.bytes().all(|b| b.is_ascii_digit() || b == b'.') || host.starts_with("0x");
        (valid && !numeric).then_some(Host::Name(host))
    }

    fn http_allowed(host: &Host, rules: &UrlRules) -> bool {
        let name = match host {
            Host::Ip(ip) => ip.to_string(),
            Host::Name(n) => n.clone(),
        };
        rules.http_hosts.iter().any(|h| h.trim().trim_end_matches('.').eq_ignore_ascii_case(&name))
    }
}

impl fmt::Display for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Names that always mean this machine or its network.
fn is_local_name(name: &str) -> bool {
    name == "localhost" || name.ends_with(".localhost") || name.ends_with(".local") || name.ends_with(".internal")
}

/// Why a receiver may not be at `ip`, if it may not: everything that is not
/// a public unicast address. A webhook makes the server send requests where
/// a tenant says; without this, a tenant could make it reach the cloud
/// metadata service, the database or an admin port on the private network
/// (server-side request forgery).
pub fn forbidden_address(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => {
            if v6.is_loopback() {
                return Some("loopback");
            }
            if v6.is_unspecified() {
                return Some("unspecified");
            }
            if v6.is_multicast() {
                return Some("multicast");
            }
            let s = v6.segments();
            // IPv4-mapped (::ffff:a.b.c.d) and IPv4-compatible (::a.b.c.d):
            // refused whatever the embedded address, so no IPv4 rule can be bypassed.
            if s[..5] == [0; 5] && (s[5] == 0xffff || s[5] == 0) {
                return Some("IPv4-mapped");
            }
            match s[0] {
                0xfc00..=0xfdff => Some("private (unique local)"),
                0xfe80..=0xfebf => Some("link-local"),
                0xfec0..=0xfeff => Some("site-local"),
                // NAT64 (64:ff9b::/96, 64:ff9b:1::/48), 6to4 (2002::/16) and Teredo
                // (2001::/32) carry IPv4 addresses inside; documentation 2001:db8::/32.
                0x0064 if s[1] == 0xff9b => Some("NAT64"),
                0x2002 => Some("6to4"),
                0x2001 if s[1] == 0 => Some("Teredo"),
                0x2001 if s[1] == 0x0db8 => Some("documentation"),
                _ => None,
            }
        }
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_private() {
        Some("private")
    } else if ip.is_link_local() {
        Some("link-local")
    } else if ip.is_unspecified() || a == 0 {
        Some("unspecified")
    } else if ip.is_multicast() {
        Some("multicast")
    } else if ip.is_broadcast() || a >= 240 {
        Some("reserved")
    } else if a == 100 && (64..128).contains(&b) {
        Some("shared (CGNAT)")
    } else if a == 192 && b == 0 && c == 0 {
        Some("IETF protocol")
    } else if a == 198 && (b == 18 || b == 19) {
        Some("benchmarking")
    } else if ip.is_documentation() {
        Some("documentation")
    } else {
        None
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

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    /// Waiting for an earlier delivery of the same session to this subscription.
    Queued,
    /// Due at its next attempt time.
    Pending,
    /// Being sent by a node.
    Inflight,
    /// Kept while the subscription is paused or disabled.
    Held,
    /// The receiver answered 2xx.
    Delivered,
    /// Given up after the last retry.
    Failed,
}

impl DeliveryState {
    /// Storage spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Pending => "pending",
            Self::Inflight => "inflight",
            Self::Held => "held",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }

    /// Parses the storage spelling.
    pub fn parse(raw: &str) -> Option<Self> {
        [Self::Queued, Self::Pending, Self::Inflight, Self::Held, Self::Delivered, Self::Failed]
            .into_iter()
            .find(|s| s.as_str() == raw)
    }

    /// The API spelling (`sending` reads better than `inflight` in a log).
    pub const fn api_name(self) -> &'static str {
        match self {
            Self::Inflight => "sending",
            other => other.as_str(),
        }
    }
}

/// One event for one subscription, as the delivery log shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The subscription's owner.
    pub owner: Owner,
    /// The subscription.
    pub webhook_id: Uuid,
    /// UUIDv7 of this delivery.
    pub id: Uuid,
    /// The event: its id is the `webhook-id` header, the same on every attempt.
    pub event: OutboxEvent,
    /// Where it stands.
    pub state: DeliveryState,
    /// Attempts made so far.
    pub attempts: i64,
    /// When the next attempt is due (pending) or the lease ends (sending).
    pub next_attempt_at: Option<Timestamp>,
    /// When the last attempt started.
    pub last_attempt_at: Option<Timestamp>,
    /// The receiver's last HTTP status.
    pub response_status: Option<i64>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// How long the last attempt took.
    pub duration_ms: Option<i64>,
    /// When the receiver accepted it.
    pub delivered_at: Option<Timestamp>,
    /// The delivery this one re-sends, if it is a redelivery.
    pub redelivery_of: Option<Uuid>,
    /// When the delivery was created.
    pub created_at: Timestamp,
}

/// A committed change, as the outbox records it: what happened, where, and
/// its place in the session's sequence (the payload is read from the rows
/// themselves when it is sent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboxEvent {
    /// The event id (the `webhook-id`).
    pub id: Uuid,
    /// What happened.
    pub kind: EventType,
    /// The session's tenant.
    pub tenant_id: TenantId,
    /// The session.
    pub session_id: SessionId,
    /// Its sequence number in the session.
    pub seq: i64,
    /// When it happened.
    pub at: Timestamp,
}

/// A delivery claimed by this node for one attempt.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    /// Which delivery.
    pub key: DeliveryKey,
    /// This attempt's number (1-based); also the claim's token.
    pub attempt: i64,
    /// The event to send.
    pub event: OutboxEvent,
    /// The target.
    pub url: WebhookUrl,
    /// The secrets to sign with.
    pub secrets: Vec<SigningSecret>,
}

/// The key of a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeliveryKey {
    /// The subscription's owner.
    pub owner: Owner,
    /// The subscription.
    pub webhook_id: Uuid,
    /// The delivery.
    pub id: Uuid,
}

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptOutcome {
    /// Which delivery.
    pub key: DeliveryKey,
    /// The attempt's number, as claimed.
    pub attempt: i64,
    /// The receiver's status, if it answered.
    pub status: Option<i64>,
    /// How long it took.
    pub duration_ms: i64,
    /// Accepted, retry later, give up — or not attempted at all (released at shutdown).
    pub result: AttemptResult,
}

/// The verdict on an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptResult {
    /// 2xx.
    Delivered,
    /// Failed; try again at this time.
    Retry {
        /// Why it failed.
        error: String,
        /// When to try again.
        at: Timestamp,
    },
    /// Failed for the last time.
    GiveUp {
        /// Why it failed.
        error: String,
    },
    /// Not sent (the node is stopping): due again at once, attempt not counted.
    Released,
}

/// Delays between attempts: the n-th entry is the wait after the n-th failed
/// attempt; after the last one the delivery is given up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrySchedule(Vec<Duration>);

impl Default for RetrySchedule {
    /// 5 s, 30 s, 2 min, 10 min, 30 min, 1 h, 2 h, 4 h, 8 h, 8 h: eleven attempts
    /// over about 24 hours.
    fn default() -> Self {
        let m = 60;
        Self(
            [5, 30, 2 * m, 10 * m, 30 * m, 60 * m, 120 * m, 240 * m, 480 * m, 480 * m]
                .into_iter()
                .map(Duration::from_secs)
                .collect(),
        )
    }
}

impl RetrySchedule {
    /// A schedule of these delays (at least one).
    pub fn new(delays: Vec<Duration>) -> Result<Self, String> {
        if delays.is_empty() || delays.iter().any(Duration::is_zero) {
            return Err("the retry schedule needs at least one delay, none of them zero".to_owned());
        }
        Ok(Self(delays))
    }

    /// The delays.
    pub fn delays(&self) -> &[Duration] {
        &self.0
    }

    /// The nominal wait after attempt number `attempt` failed, or `None` to give up.
    pub fn delay_after(&self, attempt: i64) -> Option<Duration> {
        let index = usize::try_from(attempt.checked_sub(1)?).ok()?;
        self.0.get(index).copied()
    }

    /// The verdict on failed attempt number `attempt` at `now`, with the wait
    /// spread by ±20 % (`unit` a uniform draw in [0, 1)) so receivers that
    /// came back are not hit by every retry at once.
    pub fn after_failure(&self, attempt: i64, now: Timestamp, error: String, unit: f64) -> AttemptResult {
        match self.delay_after(attempt) {
            Some(delay) => {
                let factor = 0.8 + 0.4 * unit.clamp(0.0, 1.0);
                AttemptResult::Retry { error, at: now.plus(delay.mul_f64(factor)) }
            }
            None => AttemptResult::GiveUp { error },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strict() -> UrlRules {
        UrlRules::default()
    }

    #[test]
    fn https_urls_to_public_hosts_are_accepted() {
        let url = WebhookUrl::parse("https://hooks.example.com/livechat?x=1", &strict()).unwrap();
        assert_eq!(url.host(), Some(Host::Name("hooks.example.com".into())));
        let url = WebhookUrl::parse("HTTPS://1.1.1.1:8443/in", &strict()).unwrap();
        assert_eq!(url.as_str(), "https://1.1.1.1:8443/in");
        assert_eq!(url.host(), Some(Host::Ip("1.1.1.1".parse().unwrap())));
    }

    #[test]
    fn plain_http_needs_the_allow_list_or_private_mode() {
        assert!(WebhookUrl::parse("http://hooks.example.com/", &strict()).is_err());
        let rules = UrlRules { allow_private: false, http_hosts: vec!["hooks.example.com".into()] };
        assert!(WebhookUrl::parse("http://hooks.example.com:8080/", &rules).is_ok());
        assert!(WebhookUrl::parse("http://other.example.com/", &rules).is_err());
        let dev = UrlRules { allow_private: true, http_hosts: Vec::new() };
        assert!(WebhookUrl::parse("http://127.0.0.1:9000/hook", &dev).is_ok());
    }

    #[test]
    fn private_loopback_and_link_local_targets_are_refused() {
        for url in [
            "https://127.0.0.1/",
            "https://10.1.2.3/",
            "https://172.16.0.1/",
            "https://192.168.1.1/",
            "https://169.254.169.254/latest/meta-data",
            "https://100.64.0.1/",
            "https://0.0.0.0/",
            "https://[::1]/",
            "https://[::ffff:127.0.0.1]/",
            "https://[::ffff:a9fe:a9fe]/",
            "https://[fe80::1]/",
            "https://[fd00::1]/",
            "https://[64:ff9b::a00:1]/",
            "https://localhost/",
            "https://api.localhost/",
            "https://2130706433/",
            "https://0x7f.0.0.1/",
            "https://user:pass@hooks.example.com/",
            "ftp://hooks.example.com/",
            "hooks.example.com/x",
        ] {
            assert!(WebhookUrl::parse(url, &strict()).is_err(), "{url} must be refused");
        }
    }

    #[test]
    fn every_non_public_range_is_named() {
        for (ip, why) in [
            ("127.0.0.2", "loopback"),
            ("10.0.0.1", "private"),
            ("169.254.1.1", "link-local"),
            ("100.127.255.255", "shared (CGNAT)"),
            ("224.0.0.1", "multicast"),
            ("255.255.255.255", "reserved"),
            ("::", "unspecified"),
            ("::ffff:8.8.8.8", "IPv4-mapped"),
            ("fc00::1", "private (unique local)"),
        ] {
            assert_eq!(forbidden_address(ip.parse().unwrap()), Some(why), "{ip}");
        }
        for ip in ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "100.128.0.1"] {
            assert_eq!(forbidden_address(ip.parse().unwrap()), None, "{ip}");
        }
    }

    #[test]
    fn event_lists_are_checked_sorted_and_deduplicated() {
        let events = EventTypes::parse(&["session.closed", "message.created", "session.closed"]).unwrap();
        assert_eq!(events.encode(), "message.created,session.closed");
        assert_eq!(EventTypes::decode(&events.encode()), Some(events));
        assert!(EventTypes::parse::<&str>(&[]).is_err());
        assert!(EventTypes::parse(&["message.deleted"]).is_err());
    }

    #[test]
    fn secrets_are_whsec_base64_of_32_bytes_and_never_print() {
        let s = SigningSecret::generate();
        assert!(s.expose().starts_with("whsec_"));
        assert_eq!(s.key().map(|k| k.len()), Some(32));
        assert_eq!(format!("{s:?}"), "whsec_***");
        assert_ne!(s, SigningSecret::generate());
    }

    #[test]
    fn the_default_schedule_spans_about_a_day_then_gives_up() {
        let schedule = RetrySchedule::default();
        let total: Duration = schedule.delays().iter().sum();
        assert!(total > Duration::from_secs(22 * 3600) && total < Duration::from_secs(26 * 3600), "{total:?}");
        let now = Timestamp::from_micros(0);
        match schedule.after_failure(1, now, "x".into(), 0.5) {
            AttemptResult::Retry { at, .. } => assert_eq!(at.micros(), 5_000_000),
            other => panic!("{other:?}"),
        }
        match schedule.after_failure(1, now, "x".into(), 0.0) {
            AttemptResult::Retry { at, .. } => assert_eq!(at.micros(), 4_000_000),
            other => panic!("{other:?}"),
        }
        assert!(matches!(schedule.after_failure(11, now, "x".into(), 0.5), AttemptResult::GiveUp { .. }));
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
