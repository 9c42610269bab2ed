//! What each fuzz target runs: raw client input fed to the server's own
//! parsing functions (`livechat::http::input` and the domain parsers behind
//! it), with a property checked wherever one is cheap. A target fails by
//! panicking, so a failed property and a crash look the same to libFuzzer.
//!
//! The fuzz targets (`fuzz_targets/*.rs`) call these functions, and so does
//! the server's test suite (`tests/api/fuzz_corpus.rs` includes this file),
//! which replays the committed corpus without the fuzzer.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use livechat::auth::{AuthConfig, KeySource, Secret, Verifier};
use livechat::domain::ids::{MessageId, SessionId, TenantId};
use livechat::domain::message::{DEFAULT_MAX_MESSAGE_CHARS, MessageText};
use livechat::domain::page::MAX_LIMIT;
use livechat::domain::time::Timestamp;
use livechat::domain::webhook::{EventTypes, Host, UrlRules, WebhookUrl, forbidden_address, parse_description};
use livechat::http::error::ApiError;
use livechat::http::input::HeaderValue;
use livechat::http::input::{
    self, CreateWebhookRequest, InboxQuery, ListMessagesQuery, ListSessionsQuery, MarkReadRequest, PresenceRequest,
    SendMessageRequest, StartSessionRequest, StreamQuery, TransferRequest, UpdateWebhookRequest, WebhookListQuery,
};
use livechat::service::{Error, PageRequest, WebhookInput, parse_event_id, ticket_tenant};
use livechat::wire::stream::ClientMessage;
use serde::de::DeserializeOwned;
use std::sync::OnceLock;

/// What a target runs on one input.
pub type Target = fn(&[u8]);

/// Every target: its name (the corpus folder `fuzz/corpus/<name>`) and what it runs.
pub const TARGETS: [(&str, Target); 5] =
    [("body", body), ("query", query), ("headers", headers), ("token", token), ("ws_frame", ws_frame)];

/// The verification key of the `token` target (fixed, so seeds can be signed with it).
pub const TOKEN_SECRET: &str = "fuzz-secret-0123456789abcdef0123456789";

/// A rejection of client input must name at least one field, each with a message.
pub fn assert_names_fields(err: &ApiError, input: &dyn std::fmt::Debug) {
    match err {
        ApiError::Service(err) => assert_service_names_fields(err, input),
        other => panic!("input {input:?} was refused without naming a field: {other:?}"),
    }
}

fn assert_service_names_fields(err: &Error, input: &dyn std::fmt::Debug) {
    let Error::Validation(fields) = err else {
        panic!("input {input:?} was refused with {err:?}, not a validation error");
    };
    assert!(!fields.is_empty(), "input {input:?}: a validation error without fields");
    for (field, messages) in fields {
        assert!(!field.is_empty(), "input {input:?}: a validation error with an empty field name");
        assert!(messages.iter().all(|m| !m.is_empty()), "input {input:?}: field {field} has an empty message");
    }
}

/// Parses `data` as the body `T` of an endpoint with a JSON content type;
/// checks that refusals name a field and that only well-formed JSON (an
/// object) gets through.
fn parse_body<T: DeserializeOwned>(data: &[u8]) -> Option<T> {
    match input::json_body::<T>(Some("application/json"), data) {
        Ok(None) => {
            assert!(data.is_empty(), "a non-empty body read as absent");
            None
        }
        Ok(Some(body)) => {
            // The JSON grammar, as serde_json reads it without decoding
            // strings: a lone surrogate escape (`"\ude00"`) in a field the
            // server ignores is grammatical JSON (RFC 8259 section 8.2).
            let grammatical = serde_json::from_slice::<serde::de::IgnoredAny>(data);
            assert!(grammatical.is_ok(), "accepted a body that is not JSON: {:?}", String::from_utf8_lossy(data));
            // An object, not an array read as the struct's fields (the
            // grammar check above already holds; a full `Value` parse would
            // refuse a lone surrogate in an ignored field, which is fine).
            assert!(
                starts_an_object(data),
                "accepted a body that is not a JSON object: {:?}",
                String::from_utf8_lossy(data)
            );
            Some(body)
        }
        Err(err) => {
            assert_names_fields(&err, &String::from_utf8_lossy(data));
            None
        }
    }
}

/// Whether JSON text is an object: its first byte past whitespace opens one.
fn starts_an_object(data: &[u8]) -> bool {
    data.iter().find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r')) == Some(&b'{')
}

/// A URL the rules accept is stable (parsing its stored form gives it back)
/// and never names a forbidden address literal (the SSRF guard).
fn check_url(raw: &str) {
    let rules = UrlRules::default();
    let Ok(url) = WebhookUrl::parse(raw, &rules) else { return };
    let again = WebhookUrl::parse(url.as_str(), &rules);
    assert_eq!(again.as_ref().map(WebhookUrl::as_str), Ok(url.as_str()), "{raw:?} is not stable");
    match url.host() {
        Some(Host::Ip(ip)) => assert!(forbidden_address(ip).is_none(), "{raw:?} accepted with forbidden {ip}"),
        Some(Host::Name(_)) => {}
        None => panic!("{raw:?} accepted without a host"),
    }
}

fn check_webhook_input(input: WebhookInput) {
    if let Some(url) = &input.url {
        check_url(url);
    }
    if let Some(names) = &input.events
        && let Ok(events) = EventTypes::parse(names)
    {
        // Stored as text and read back: the same list.
        let back = EventTypes::decode(&events.encode()).map(|e| e.iter().collect::<Vec<_>>());
        assert_eq!(back, Some(events.iter().collect()), "events {names:?} do not survive storage");
    }
    if let Some(description) = &input.description {
        let _ = parse_description(description);
    }
}

/// JSON bodies: the same bytes as the body of every endpoint that takes one.
pub fn body(data: &[u8]) {
    // The media-type check comes first: unlabelled bodies are refused whole.
    match input::json_body::<serde_json::Value>(None, data) {
        Ok(None) => assert!(data.is_empty()),
        Ok(Some(_)) => panic!("accepted a body without a JSON content type"),
        Err(err) => assert!(matches!(err, ApiError::UnsupportedMediaType), "{err:?}"),
    }
    if let Some(body) = parse_body::<StartSessionRequest>(data)
        && let Ok(Some(agent)) = body.agent()
    {
        assert!(agent.get() > 0);
    }
    if let Some(body) = parse_body::<SendMessageRequest>(data)
        && let Ok(text) = MessageText::parse(&body.message, DEFAULT_MAX_MESSAGE_CHARS)
    {
        // Round trip: the stored text, sent again, is accepted as itself.
        let again = serde_json::to_vec(&serde_json::json!({ "message": text.as_str() }))
            .map(|json| input::json_body::<SendMessageRequest>(Some("application/json"), &json));
        let again = match again {
            Ok(Ok(Some(body))) => MessageText::parse(&body.message, DEFAULT_MAX_MESSAGE_CHARS),
            other => panic!("{:?} did not read back: {other:?}", text.as_str()),
        };
        assert_eq!(again.as_ref(), Ok(&text));
    }
    if let Some(body) = parse_body::<MarkReadRequest>(data) {
        match body.message_id() {
            Ok(id) => assert_eq!(MessageId::parse(&id.to_string()), Ok(id)),
            Err(err) => assert_names_fields(&err, &body.message_id),
        }
    }
    if let Some(body) = parse_body::<TransferRequest>(data) {
        match body.agent() {
            Ok(agent) => assert_eq!(agent.get(), body.agent_id),
            Err(err) => assert_names_fields(&err, &body.agent_id),
        }
    }
    if let Some(body) = parse_body::<PresenceRequest>(data) {
        let _ = body.online();
    }
    if let Some(body) = parse_body::<CreateWebhookRequest>(data) {
        check_webhook_input(body.into());
    }
    if let Some(body) = parse_body::<UpdateWebhookRequest>(data) {
        check_webhook_input(body.into());
    }
}

/// A date that parses as a bound reads back as itself from its own
/// formatted form, and the two bounds differ only by sub-microsecond rounding.
fn check_date(raw: &str) {
    let (lower, upper) = (Timestamp::parse_lower_bound(raw), Timestamp::parse_upper_bound(raw));
    assert_eq!(lower.is_ok(), upper.is_ok(), "{raw:?}: the bounds disagree on validity");
    if let (Ok(lower), Ok(upper)) = (lower, upper) {
        assert!((0..=1).contains(&(lower.micros() - upper.micros())), "{raw:?}: bounds {lower:?} {upper:?}");
        let formatted = upper.to_rfc3339();
        assert_eq!(Timestamp::parse_upper_bound(&formatted), Ok(upper), "{raw:?} → {formatted}");
        assert_eq!(Timestamp::parse_lower_bound(&formatted), Ok(upper), "{raw:?} → {formatted}");
    }
}

fn check_page<C>(page: &PageRequest<C>) {
    assert!((1..=MAX_LIMIT).contains(&page.limit.get()), "limit {} out of range", page.limit.get());
}

/// Query strings: the same string as the query of every list and stream endpoint.
pub fn query(data: &[u8]) {
    // A URI's query is ASCII; anything else never reaches the extractor.
    let Ok(raw) = std::str::from_utf8(data) else { return };
    check_date(raw);
    fn each<T: DeserializeOwned, P>(raw: &str, parse: impl Fn(&T) -> Result<P, ApiError>) -> Option<P> {
        match input::query::<T>(raw) {
            Ok(q) => match parse(&q) {
                Ok(parsed) => Some(parsed),
                Err(err) => {
                    assert_names_fields(&err, &raw);
                    None
                }
            },
            Err(err) => {
                assert_names_fields(&err, &raw);
                None
            }
        }
    }
    if let Some((filter, page)) = each(raw, |q: &ListMessagesQuery| q.parse().map_err(ApiError::from)) {
        check_page(&page);
        assert!(filter.start.zip(filter.end).is_none_or(|(s, e)| s <= e), "{raw:?}: start after end accepted");
        if let Some(term) = &filter.term {
            assert!(!term.folded().is_empty());
        }
    }
    if let Some((_, page)) = each(raw, |q: &ListSessionsQuery| q.parse().map_err(ApiError::from)) {
        check_page(&page);
    }
    if let Some(page) = each(raw, |q: &InboxQuery| q.parse().map_err(ApiError::from)) {
        check_page(&page);
        // An inbox cursor is `<tenant>.<session>`: the one the server writes reads back.
        if let Some((tenant, session)) = page.cursor {
            let written = format!("{tenant}.{session}");
            assert_eq!(livechat::service::parse_inbox_cursor(&written), Some((tenant, session)));
        }
    }
    if let Some(page) = each(raw, |q: &WebhookListQuery| q.parse()) {
        check_page(&page);
    }
    if let Some((ticket, last_event_id)) = each(raw, |q: &StreamQuery| Ok((q.ticket.clone(), q.last_event_id.clone())))
    {
        if let Some(ticket) = &ticket {
            let _ = ticket_tenant(ticket);
        }
        if let Some(raw_id) = input::last_event_id(None, last_event_id.as_deref())
            && let Err(err) = parse_event_id(raw_id)
        {
            assert_service_names_fields(&err, &raw_id);
        }
    }
}

/// Header values: the input split at newlines into the values of one header,
/// read as `X-Tenant-ID`, and each value as every other header the server reads.
pub fn headers(data: &[u8]) {
    let values: Vec<HeaderValue> =
        data.split(|&b| b == b'\n').take(4).filter_map(|v| HeaderValue::from_bytes(v).ok()).collect();
    match input::tenant_id(values.iter()) {
        Ok(None) => assert!(values.is_empty()),
        Ok(Some(tenant)) => {
            assert_eq!(values.len(), 1, "X-Tenant-ID accepted when sent {} times", values.len());
            let sent = values.first().and_then(|v| v.to_str().ok()).map(str::trim);
            assert_eq!(sent, Some(tenant.to_string().as_str()), "X-Tenant-ID does not read back");
        }
        Err(err) => assert_names_fields(&err, &values),
    }
    for value in &values {
        let _ = input::tenant_id(std::iter::once(value)).map(|t| t.map(TenantId::get));
        match input::idempotency_key(Some(value)) {
            Ok(Some(key)) => assert_eq!(Some(key.as_str()), value.to_str().ok(), "the key is not what was sent"),
            Ok(None) => panic!("a sent Idempotency-Key read as absent"),
            Err(err) => assert_names_fields(&err, value),
        }
        if let Some(id) = input::request_id(Some(value)) {
            assert!((1..=128).contains(&id.len()), "request id of {} bytes accepted", id.len());
            assert!(HeaderValue::from_str(id).is_ok(), "request id {id:?} cannot be echoed");
        }
        if let Some(token) = input::bearer_token(Some(value)) {
            assert!(!token.is_empty() && token.trim() == token);
        }
        if let Some(raw) = input::last_event_id(Some(value), None) {
            match parse_event_id(raw) {
                Ok(id) => assert_eq!(parse_event_id(&id.to_string()).ok(), Some(id)),
                Err(err) => assert_service_names_fields(&err, &raw),
            }
        }
        if let Ok(text) = value.to_str() {
            let _ = input::is_json(text);
        }
    }
}

fn verifier() -> &'static Verifier {
    static VERIFIER: OnceLock<Verifier> = OnceLock::new();
    VERIFIER.get_or_init(|| {
        let config = AuthConfig {
            keys: KeySource::Hs256(Secret::new(TOKEN_SECRET.to_owned())),
            issuer: None,
            audience: None,
            leeway_secs: 0,
        };
        match Verifier::new(&config) {
            Ok(verifier) => verifier,
            Err(err) => panic!("the fixed HS256 key is refused: {err:#}"),
        }
    })
}

/// Signs `payload` (the claims, as bytes) with [`TOKEN_SECRET`], as an HS256 compact JWS.
pub fn sign(payload: &[u8]) -> String {
    let head = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let signing_input = format!("{head}.{}", URL_SAFE_NO_PAD.encode(payload));
    let mut mac = match Hmac::<sha2::Sha256>::new_from_slice(TOKEN_SECRET.as_bytes()) {
        Ok(mac) => mac,
        Err(err) => panic!("HMAC refused its key: {err}"),
    };
    mac.update(signing_input.as_bytes());
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
}

/// Tokens: the input as a bearer token, and as the claims of a token signed
/// with the server's key (which the fuzzer could never forge), both through
/// the server's verification.
pub fn token(data: &[u8]) {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    if let Ok(raw) = std::str::from_utf8(data)
        && let Ok(identity) = verifier().verify(raw)
    {
        // Mutations of a signed seed: still a positive user and an unexpired token.
        assert!(identity.user_id.get() > 0);
        assert!(identity.expires_at >= now, "an expired token verified: exp {}", identity.expires_at);
    }
    if let Ok(identity) = verifier().verify(&sign(data)) {
        assert!(identity.user_id.get() > 0);
        assert!(identity.expires_at >= now, "an expired token verified: exp {}", identity.expires_at);
        // The token library skips unknown claims without checking their
        // strings' UTF-8 (found by this target); only the key's holder can
        // sign claims, so the property allows that and nothing else.
        let claims = serde_json::from_str::<serde_json::Value>(&String::from_utf8_lossy(data));
        assert!(claims.is_ok_and(|c| c.is_object()), "claims that are not a JSON object verified");
    }
}

/// WebSocket client frames: the text of one frame, then (when it names a
/// session) the session and tenant the connection would act on.
pub fn ws_frame(data: &[u8]) {
    // A text frame is UTF-8 (the WebSocket layer refuses anything else).
    let Ok(text) = std::str::from_utf8(data) else { return };
    let msg = match ClientMessage::parse(text) {
        Ok(msg) => msg,
        Err(why) => {
            assert!(why.starts_with("unreadable message"), "{why}");
            return;
        }
    };
    assert!(
        starts_an_object(text.as_bytes()) && serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok(),
        "accepted a frame that is not a JSON object: {text:?}"
    );
    let home = match TenantId::new(7) {
        Ok(home) => home,
        Err(err) => panic!("{err}"),
    };
    let named = match &msg {
        ClientMessage::Subscribe { session_id, tenant_id, .. }
        | ClientMessage::Unsubscribe { session_id, tenant_id }
        | ClientMessage::Typing { session_id, tenant_id } => Some((session_id, *tenant_id)),
        ClientMessage::WatchInbox | ClientMessage::Ping => None,
    };
    if let Some((session_id, tenant_id)) = named {
        match livechat::realtime::actor::target(session_id, tenant_id, home) {
            Ok((tenant, session)) => {
                assert_eq!(tenant.get(), tenant_id.unwrap_or(home.get()));
                assert_eq!(SessionId::parse(&session.to_string()), Ok(session));
            }
            Err(err) => assert_service_names_fields(&err, &text),
        }
    }
    if let ClientMessage::Subscribe { last_event_id: Some(raw), .. } = &msg
        && let Err(err) = parse_event_id(raw)
    {
        assert_service_names_fields(&err, raw);
    }
}
