//! One corpus of real responses for every check that compares the server with
//! a description of it (the OpenAPI document, the frontend's TypeScript types).
//! A server is driven once per test run to every response its routes can give,
//! and each check picks the responses it needs by name, so a new response shape
//! is exercised once and seen by every check.

use crate::helpers::{Backend, Resp, TestApp, User};
use livechat::http::PREFIXES;
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use tokio::sync::OnceCell;

pub const JSON: &str = "application/json";

pub const SESSIONS: &str = "/sessions";
pub const SESSION: &str = "/sessions/{id}";
pub const CLOSE: &str = "/sessions/{id}/close";
pub const CLAIM: &str = "/sessions/{id}/claim";
pub const TRANSFER: &str = "/sessions/{id}/transfer";
pub const MESSAGES: &str = "/sessions/{id}/messages";
pub const READ: &str = "/sessions/{id}/read";
pub const INBOX: &str = "/agent/sessions";
pub const PRESENCE: &str = "/agents/me/presence";
pub const TICKETS: &str = "/realtime/tickets";

/// One operation of the API as the server implements it.
pub struct Operation {
    pub path: &'static str,
    pub method: &'static str,
    /// Whether the handler refuses a request without `X-Tenant-ID`.
    pub tenant_required: bool,
    /// Every status the handler can answer with (server failures aside), read
    /// from the handler, its extractors and its use case. An operation that
    /// reads a JSON body can answer 413 and 415 whatever the body means.
    pub statuses: &'static [u16],
}

const fn op(path: &'static str, method: &'static str, tenant_required: bool, statuses: &'static [u16]) -> Operation {
    Operation { path, method, tenant_required, statuses }
}

pub const OPERATIONS: [Operation; 12] = [
    op(SESSIONS, "get", true, &[200, 400, 401, 403]),
    op(SESSIONS, "post", true, &[201, 400, 401, 403, 413, 415]),
    op(SESSION, "get", true, &[200, 400, 401, 403, 404]),
    op(CLOSE, "post", true, &[200, 400, 401, 403, 404]),
    op(CLAIM, "post", true, &[200, 400, 401, 403, 404, 409]),
    op(TRANSFER, "post", true, &[200, 400, 401, 403, 404, 413, 415]),
    op(MESSAGES, "get", true, &[200, 400, 401, 403, 404]),
    op(MESSAGES, "post", true, &[201, 400, 401, 403, 404, 413, 415, 422]),
    op(READ, "post", true, &[200, 400, 401, 403, 404, 413, 415]),
    op(INBOX, "get", false, &[200, 400, 401, 403]),
    op(PRESENCE, "put", false, &[200, 400, 401, 403, 413, 415]),
    op(TICKETS, "post", true, &[201, 400, 401, 403]),
];

// Responses the checks pick by name (the rest they take as they come).
pub const QUEUED_SESSION: &str = "a tenant user opens a queued session";
pub const SESSION_ALREADY_ACTIVE: &str = "a second open session of the tenant";
pub const AGENT_SESSION: &str = "an agent opens a session assigned to itself";
pub const CLOSED_SESSION: &str = "an agent closes a session";
pub const MEMBER_CLOSES: &str = "a tenant user closes a session";
pub const OPEN_SESSION_BY_ID: &str = "an open session by id";
pub const SESSIONS_PAGE: &str = "a first page of sessions";
pub const SECOND_SESSIONS_PAGE: &str = "a second page of sessions";
pub const NO_SESSIONS: &str = "no sessions";
pub const TWO_BAD_PARAMETERS: &str = "two bad query parameters";
pub const MESSAGE_SENT: &str = "a tenant user sends a message";
pub const MESSAGES_PAGE: &str = "a first page of messages";
pub const OLDER_MESSAGES_PAGE: &str = "an older page of messages";
pub const MESSAGES_BY_TERM: &str = "messages found by a term";
pub const BLANK_MESSAGE: &str = "a blank message";
pub const KEY_REUSED: &str = "an idempotency key reused with another text";
pub const READ_MARK: &str = "a tenant user marks a message read";
pub const INBOX_PAGE: &str = "the inbox across tenants";
pub const TICKET: &str = "a stream ticket";
pub const NO_TOKEN: &str = "no token";
pub const OUTSIDE_ROLE: &str = "a role outside the allowlist";
pub const UNKNOWN_SESSION: &str = "an unknown session";
pub const TOO_BIG: &str = "a body over the limit";
pub const PLAIN_TEXT: &str = "a text/plain body";
pub const WRONG_METHOD: &str = "a method the path does not serve";

/// One real response and the route that gave it.
#[derive(Debug, Clone)]
pub struct Response {
    pub name: &'static str,
    pub route: &'static str,
    pub method: Method,
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Value,
    /// A response a description may leave out (405 on any path, 5xx).
    pub probe: bool,
}

/// The served OpenAPI document and every real response, from one server.
pub struct Corpus {
    pub document: Value,
    pub responses: Vec<Response>,
}

impl Corpus {
    /// The response recorded as `name` for `method route`.
    #[track_caller]
    pub fn get(&self, method: &Method, route: &str, name: &str) -> &Response {
        self.responses
            .iter()
            .find(|r| r.method == method && r.route == route && r.name == name)
            .unwrap_or_else(|| panic!("no real response {name:?} for {method} {route}"))
    }

    /// The one response recorded as `name`; the name must be used once.
    #[track_caller]
    pub fn named(&self, name: &str) -> &Response {
        let mut found = self.responses.iter().filter(|r| r.name == name);
        let first = found.next().unwrap_or_else(|| panic!("no real response named {name:?}"));
        assert!(found.next().is_none(), "{name:?} names several real responses: pick one by route");
        first
    }
}

/// The corpus, collected by the first test that asks. Tests run in parallel
/// on runtimes of their own; the corpus is plain data, so it outlives the
/// server that produced it.
pub async fn shared() -> &'static Corpus {
    static CORPUS: OnceCell<Corpus> = OnceCell::const_new();
    CORPUS
        .get_or_init(|| async {
            let app = TestApp::spawn(Backend::Sqlite).await;
            let document = fetch_document(&app, PREFIXES[0]).await;
            let responses = collect(&app).await;
            app.stop().await;
            Corpus { document, responses }
        })
        .await
}

pub async fn fetch_document(app: &TestApp, prefix: &str) -> Value {
    let url = format!("http://{}{prefix}/openapi.json", app.addr);
    let r = app.raw(app.client.get(url)).await;
    assert_eq!(r.status, 200, "{prefix}/openapi.json: {}", r.body);
    assert_eq!(r.header("content-type"), Some(JSON));
    r.body
}

#[derive(Default)]
struct Responses(Vec<Response>);

impl Responses {
    fn push(&mut self, name: &'static str, route: &'static str, method: Method, resp: &Resp, probe: bool) {
        self.0.push(Response {
            name,
            route,
            method,
            status: resp.status,
            content_type: resp.header("content-type").map(str::to_owned),
            body: resp.body.clone(),
            probe,
        });
    }

    #[track_caller]
    fn ok(&mut self, name: &'static str, route: &'static str, method: Method, resp: &Resp, status: u16) {
        assert_eq!(resp.status, status, "{name}: {}", resp.body);
        assert_eq!(resp.body["success"], true, "{name}: {}", resp.body);
        self.push(name, route, method, resp, false);
    }

    #[track_caller]
    fn error(&mut self, name: &'static str, route: &'static str, method: Method, resp: &Resp, status: u16, code: &str) {
        resp.assert_error(status, code);
        self.push(name, route, method, resp, false);
    }

    /// A response a description may leave out.
    #[track_caller]
    fn probe(&mut self, name: &'static str, route: &'static str, method: Method, resp: &Resp, code: &str) {
        resp.assert_error(resp.status, code);
        self.push(name, route, method, resp, true);
    }
}

/// Drives the server to every response the routes can give.
async fn collect(app: &TestApp) -> Vec<Response> {
    let agent = User::agent(1);
    let member = User::member(100, 12);
    let outsider = User::outsider(300, 12);
    let unknown = uuid::Uuid::now_v7();
    let expired = agent.token_with(|c| {
        c.iat -= 120;
        c.exp = c.iat + 60;
    });
    let big = "x".repeat(20 * 1024);
    let mut c = Responses::default();

    // POST /sessions.
    let r = app.post(SESSIONS, &member, 12, None).await;
    assert!(r.data().get("agent_id").is_none(), "{}", r.body);
    c.ok(QUEUED_SESSION, SESSIONS, Method::POST, &r, 201);
    let queued = r.id();
    let r = app.post(SESSIONS, &member, 12, None).await;
    c.error(SESSION_ALREADY_ACTIVE, SESSIONS, Method::POST, &r, 400, "session_already_active");
    assert!(!r.field_errors("session_id").is_empty(), "{}", r.body);
    let r = app.post(SESSIONS, &agent, 14, Some(json!({ "agent_id": "seven" }))).await;
    let name = "agent_id of the wrong type";
    c.error(name, SESSIONS, Method::POST, &r, 400, "validation_error");
    let r = app.post(SESSIONS, &agent, 14, Some(json!({ "agent_id": 0 }))).await;
    c.error("agent_id zero", SESSIONS, Method::POST, &r, 400, "validation_error");
    let req = app.client.post(app.url(SESSIONS)).header("X-Tenant-ID", "12");
    let r = app.raw(req).await;
    c.error(NO_TOKEN, SESSIONS, Method::POST, &r, 401, "unauthorized");
    let r = app.post(SESSIONS, &outsider, 12, None).await;
    c.error(OUTSIDE_ROLE, SESSIONS, Method::POST, &r, 403, "forbidden");
    let r = app.post(SESSIONS, &User::member(101, 15), 15, Some(json!({ "agent_id": 1 }))).await;
    let name = "a tenant user naming an agent";
    c.error(name, SESSIONS, Method::POST, &r, 403, "forbidden");
    let r = app.post(SESSIONS, &agent, 21, Some(json!({ "agent_id": 3 }))).await;
    let name = "an agent naming an offline agent";
    c.error(name, SESSIONS, Method::POST, &r, 400, "agent_offline");
    let r = app.post(SESSIONS, &agent, 16, Some(json!({ "note": big }))).await;
    c.error(TOO_BIG, SESSIONS, Method::POST, &r, 413, "payload_too_large");
    let req = app
        .client
        .post(app.url(SESSIONS))
        .bearer_auth(agent.token())
        .header("X-Tenant-ID", "16")
        .header("Content-Type", "text/plain")
        .body("{}");
    let r = app.raw(req).await;
    c.error(PLAIN_TEXT, SESSIONS, Method::POST, &r, 415, "unsupported_media_type");

    // POST /sessions/{id}/close.
    let close = format!("/sessions/{queued}/close");
    let r = app.post(&close, &agent, 12, None).await;
    assert!(r.data()["closed_at"].is_string(), "{}", r.body);
    assert_eq!(r.data()["status"], "CLOSED", "{}", r.body);
    c.ok(CLOSED_SESSION, CLOSE, Method::POST, &r, 200);
    let r = app.post(&close, &agent, 12, None).await;
    c.ok("an agent closes it again", CLOSE, Method::POST, &r, 200);
    let r = app.post("/sessions/not-a-uuid/close", &agent, 12, None).await;
    c.error("a malformed id", CLOSE, Method::POST, &r, 400, "validation_error");
    let req = app.client.post(app.url(&close)).header("Authorization", "Bearer not-a-jwt").header("X-Tenant-ID", "12");
    let r = app.raw(req).await;
    c.error("a malformed token", CLOSE, Method::POST, &r, 401, "unauthorized");
    let r = app.post(&close, &member, 12, None).await;
    c.error(MEMBER_CLOSES, CLOSE, Method::POST, &r, 403, "forbidden");
    let r = app.post(&format!("/sessions/{unknown}/close"), &agent, 12, None).await;
    c.error(UNKNOWN_SESSION, CLOSE, Method::POST, &r, 404, "not_found");

    // GET /sessions/{id}.
    let r = app.post(SESSIONS, &agent, 12, Some(json!({}))).await;
    assert_eq!(r.data()["agent_id"], 1, "{}", r.body);
    c.ok(AGENT_SESSION, SESSIONS, Method::POST, &r, 201);
    let session = r.id();
    let one = format!("/sessions/{session}");
    let r = app.get(&one, &member, 12).await;
    c.ok(OPEN_SESSION_BY_ID, SESSION, Method::GET, &r, 200);
    let r = app.get(&format!("/sessions/{queued}"), &agent, 12).await;
    c.ok("a closed session by id", SESSION, Method::GET, &r, 200);
    let r = app.get("/sessions/not-a-uuid", &agent, 12).await;
    c.error("a malformed id", SESSION, Method::GET, &r, 400, "validation_error");
    let req = app.client.get(app.url(&one)).bearer_auth(&expired).header("X-Tenant-ID", "12");
    let r = app.raw(req).await;
    c.error("an expired token", SESSION, Method::GET, &r, 401, "unauthorized");
    let r = app.get(&one, &outsider, 12).await;
    c.error(OUTSIDE_ROLE, SESSION, Method::GET, &r, 403, "forbidden");
    let r = app.get(&format!("/sessions/{unknown}"), &agent, 12).await;
    c.error(UNKNOWN_SESSION, SESSION, Method::GET, &r, 404, "not_found");
    let r = app.get(&one, &agent, 13).await;
    c.error("another tenant's session", SESSION, Method::GET, &r, 404, "not_found");

    // GET /sessions.
    let r = app.get("/sessions?limit=1", &agent, 12).await;
    let next = r.body["meta"]["pagination"]["next_cursor"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("two sessions, limit 1: no next_cursor in {}", r.body));
    c.ok(SESSIONS_PAGE, SESSIONS, Method::GET, &r, 200);
    let r = app.get(&format!("/sessions?limit=1&cursor={next}"), &agent, 12).await;
    assert!(r.body["meta"]["pagination"]["prev_cursor"].is_string(), "{}", r.body);
    c.ok(SECOND_SESSIONS_PAGE, SESSIONS, Method::GET, &r, 200);
    let r = app.get("/sessions?status=CLOSED", &agent, 12).await;
    c.ok("closed sessions", SESSIONS, Method::GET, &r, 200);
    let r = app.get(SESSIONS, &User::member(101, 17), 17).await;
    assert_eq!(r.data(), &json!([]), "{}", r.body);
    c.ok(NO_SESSIONS, SESSIONS, Method::GET, &r, 200);
    let r = app.get("/sessions?limit=0&direction=sideways", &agent, 12).await;
    c.error(TWO_BAD_PARAMETERS, SESSIONS, Method::GET, &r, 400, "validation_error");
    let req = app.client.get(app.url(SESSIONS)).bearer_auth(agent.token());
    let r = app.raw(req).await;
    let name = "no X-Tenant-ID header";
    c.error(name, SESSIONS, Method::GET, &r, 400, "validation_error");
    let req = app.client.get(app.url(SESSIONS)).header("X-Tenant-ID", "12");
    let r = app.raw(req).await;
    c.error(NO_TOKEN, SESSIONS, Method::GET, &r, 401, "unauthorized");
    let r = app.get(SESSIONS, &outsider, 12).await;
    c.error(OUTSIDE_ROLE, SESSIONS, Method::GET, &r, 403, "forbidden");

    // POST /sessions/{id}/messages.
    let messages = format!("/sessions/{session}/messages");
    let r = app.send(&session, &member, 12, "Halo, saya butuh bantuan").await;
    c.ok(MESSAGE_SENT, MESSAGES, Method::POST, &r, 201);
    let first_message = r.id();
    let r = app.send(&session, &agent, 12, "Halo! Ada yang bisa dibantu?").await;
    c.ok("an agent replies", MESSAGES, Method::POST, &r, 201);
    app.send(&session, &member, 12, "Saldo simpanan saya tidak muncul").await;
    let keyed = |key: &str, text: &str| {
        app.client
            .post(app.url(&messages))
            .bearer_auth(member.token())
            .header("X-Tenant-ID", "12")
            .header("Idempotency-Key", key)
            .json(&json!({ "message": text }))
    };
    let r = app.raw(keyed("retry-1", "Sudah saya cek")).await;
    let name = "a message with an idempotency key";
    c.ok(name, MESSAGES, Method::POST, &r, 201);
    let r = app.raw(keyed("retry-1", "Sudah saya cek")).await;
    assert_eq!(r.header("idempotent-replayed"), Some("true"));
    c.ok("a replayed retry", MESSAGES, Method::POST, &r, 201);
    let r = app.raw(keyed("retry-1", "Lain")).await;
    c.error(KEY_REUSED, MESSAGES, Method::POST, &r, 422, "idempotency_key_reused");
    let r = app.raw(keyed(&"k".repeat(256), "Terlalu panjang")).await;
    let name = "an idempotency key too long";
    c.error(name, MESSAGES, Method::POST, &r, 400, "validation_error");
    let r = app.post(&messages, &member, 12, Some(json!({ "message": "   " }))).await;
    c.error(BLANK_MESSAGE, MESSAGES, Method::POST, &r, 400, "validation_error");
    assert!(!r.field_errors("message").is_empty(), "{}", r.body);
    let r = app.post(&messages, &member, 12, None).await;
    c.error("no body", MESSAGES, Method::POST, &r, 400, "validation_error");
    let r = app.post(&messages, &member, 12, Some(json!({ "message": 5 }))).await;
    let name = "a message of the wrong type";
    c.error(name, MESSAGES, Method::POST, &r, 400, "validation_error");
    let r = app.post("/sessions/not-a-uuid/messages", &member, 12, Some(json!({ "message": "halo" }))).await;
    c.error("a malformed id", MESSAGES, Method::POST, &r, 400, "validation_error");
    let req = app.client.post(app.url(&messages)).header("X-Tenant-ID", "12").json(&json!({ "message": "halo" }));
    let r = app.raw(req).await;
    c.error(NO_TOKEN, MESSAGES, Method::POST, &r, 401, "unauthorized");
    let r = app.post(&messages, &outsider, 12, Some(json!({ "message": "halo" }))).await;
    c.error(OUTSIDE_ROLE, MESSAGES, Method::POST, &r, 403, "forbidden");
    let r = app.post(&format!("/sessions/{unknown}/messages"), &member, 12, Some(json!({ "message": "halo" }))).await;
    c.error(UNKNOWN_SESSION, MESSAGES, Method::POST, &r, 404, "not_found");
    let r = app.post(&format!("/sessions/{queued}/messages"), &member, 12, Some(json!({ "message": "halo" }))).await;
    c.error("a CLOSED session", MESSAGES, Method::POST, &r, 404, "not_found");
    let r = app.post(&messages, &member, 12, Some(json!({ "message": big }))).await;
    c.error(TOO_BIG, MESSAGES, Method::POST, &r, 413, "payload_too_large");
    let req = app
        .client
        .post(app.url(&messages))
        .bearer_auth(member.token())
        .header("X-Tenant-ID", "12")
        .header("Content-Type", "text/plain")
        .body("Halo");
    let r = app.raw(req).await;
    c.error(PLAIN_TEXT, MESSAGES, Method::POST, &r, 415, "unsupported_media_type");

    // GET /sessions/{id}/messages.
    let r = app.get(&format!("{messages}?limit=2"), &member, 12).await;
    let next = r.body["meta"]["pagination"]["next_cursor"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("four messages, limit 2: no next_cursor in {}", r.body));
    c.ok(MESSAGES_PAGE, MESSAGES, Method::GET, &r, 200);
    let r = app.get(&format!("{messages}?limit=2&cursor={next}&direction=before"), &member, 12).await;
    assert!(r.body["meta"]["pagination"]["prev_cursor"].is_string(), "{}", r.body);
    c.ok(OLDER_MESSAGES_PAGE, MESSAGES, Method::GET, &r, 200);
    let r = app.get(&format!("{messages}?term=saldo"), &agent, 12).await;
    c.ok(MESSAGES_BY_TERM, MESSAGES, Method::GET, &r, 200);
    let r = app.get(&format!("/sessions/{queued}/messages"), &agent, 12).await;
    assert_eq!(r.data(), &json!([]), "{}", r.body);
    c.ok("no messages", MESSAGES, Method::GET, &r, 200);
    let r = app.get(&format!("{messages}?start_date=yesterday"), &agent, 12).await;
    c.error("a bad start_date", MESSAGES, Method::GET, &r, 400, "validation_error");
    let req = app.client.get(app.url(&messages)).header("X-Tenant-ID", "12");
    let r = app.raw(req).await;
    c.error(NO_TOKEN, MESSAGES, Method::GET, &r, 401, "unauthorized");
    let r = app.get(&messages, &outsider, 12).await;
    c.error(OUTSIDE_ROLE, MESSAGES, Method::GET, &r, 403, "forbidden");
    let r = app.get(&format!("/sessions/{unknown}/messages"), &agent, 12).await;
    c.error(UNKNOWN_SESSION, MESSAGES, Method::GET, &r, 404, "not_found");

    // POST /sessions/{id}/read.
    let read = format!("/sessions/{session}/read");
    let mark = json!({ "message_id": first_message });
    let r = app.post(&read, &member, 12, Some(mark.clone())).await;
    c.ok(READ_MARK, READ, Method::POST, &r, 200);
    let r = app.post(&read, &member, 12, Some(mark.clone())).await;
    c.ok("a read mark that does not move", READ, Method::POST, &r, 200);
    let r = app.post(&read, &member, 12, Some(json!({ "message_id": "first" }))).await;
    c.error("a malformed message_id", READ, Method::POST, &r, 400, "validation_error");
    let r = app.post(&read, &member, 12, Some(json!({ "message_id": unknown }))).await;
    let name = "a message of another session";
    c.error(name, READ, Method::POST, &r, 400, "validation_error");
    let r = app.post(&read, &member, 12, None).await;
    c.error("no body", READ, Method::POST, &r, 400, "validation_error");
    let r = app.raw(anonymous(app, Method::POST, &read).json(&mark)).await;
    c.error(NO_TOKEN, READ, Method::POST, &r, 401, "unauthorized");
    let r = app.post(&read, &outsider, 12, Some(mark.clone())).await;
    c.error(OUTSIDE_ROLE, READ, Method::POST, &r, 403, "forbidden");
    let r = app.post(&format!("/sessions/{unknown}/read"), &member, 12, Some(mark)).await;
    c.error(UNKNOWN_SESSION, READ, Method::POST, &r, 404, "not_found");
    let r = app.post(&read, &member, 12, Some(json!({ "message_id": big }))).await;
    c.error(TOO_BIG, READ, Method::POST, &r, 413, "payload_too_large");
    let r = app.raw(plain_text(app, Method::POST, &read, &member, 12)).await;
    c.error(PLAIN_TEXT, READ, Method::POST, &r, 415, "unsupported_media_type");

    // GET /agent/sessions: X-Tenant-ID is optional.
    let inbox = |user: &User| app.client.get(app.url(INBOX)).bearer_auth(user.token());
    let r = app.raw(inbox(&agent)).await;
    assert!(r.data().as_array().is_some_and(|a| !a.is_empty()), "the agent's open session is in its inbox: {}", r.body);
    c.ok(INBOX_PAGE, INBOX, Method::GET, &r, 200);
    let r = app.raw(inbox(&agent).query(&[("limit", "1")])).await;
    c.ok("a first page of the inbox", INBOX, Method::GET, &r, 200);
    let r = app.get(INBOX, &agent, 12).await;
    c.ok("the inbox in one tenant", INBOX, Method::GET, &r, 200);
    let r = app.raw(inbox(&agent).query(&[("limit", "0")])).await;
    c.error("a bad limit", INBOX, Method::GET, &r, 400, "validation_error");
    let r = app.raw(anonymous(app, Method::GET, INBOX)).await;
    c.error(NO_TOKEN, INBOX, Method::GET, &r, 401, "unauthorized");
    let r = app.raw(inbox(&member)).await;
    c.error("a tenant user", INBOX, Method::GET, &r, 403, "forbidden");

    // A queued session to claim, opened while no agent is online.
    let r = app.post(SESSIONS, &User::member(102, 20), 20, None).await;
    assert!(r.data().get("agent_id").is_none(), "{}", r.body);
    let waiting = r.id();

    // PUT /agents/me/presence: X-Tenant-ID is optional.
    let presence = |user: &User, body: Value| app.client.put(app.url(PRESENCE)).bearer_auth(user.token()).json(&body);
    let other_agent = User::agent(2);
    let r = app.raw(presence(&other_agent, json!({ "status": "online" }))).await;
    assert!(r.data()["expires_at"].is_string(), "{}", r.body);
    c.ok("an agent goes online", PRESENCE, Method::PUT, &r, 200);
    let r = app.raw(presence(&other_agent, json!({ "status": "away" }))).await;
    c.error("an unknown status", PRESENCE, Method::PUT, &r, 400, "validation_error");
    let req = app.client.put(app.url(PRESENCE)).bearer_auth(other_agent.token());
    let r = app.raw(req).await;
    c.error("no body", PRESENCE, Method::PUT, &r, 400, "validation_error");
    let r = app.raw(anonymous(app, Method::PUT, PRESENCE).json(&json!({ "status": "online" }))).await;
    c.error(NO_TOKEN, PRESENCE, Method::PUT, &r, 401, "unauthorized");
    let r = app.call(Method::PUT, PRESENCE, &member, 12, Some(json!({ "status": "online" }))).await;
    c.error("a tenant user", PRESENCE, Method::PUT, &r, 403, "forbidden");
    let r = app.raw(presence(&other_agent, json!({ "status": big }))).await;
    c.error(TOO_BIG, PRESENCE, Method::PUT, &r, 413, "payload_too_large");
    let r = app.raw(plain_text(app, Method::PUT, PRESENCE, &other_agent, 12)).await;
    c.error(PLAIN_TEXT, PRESENCE, Method::PUT, &r, 415, "unsupported_media_type");

    // POST /sessions/{id}/claim.
    let claim = format!("/sessions/{waiting}/claim");
    let r = app.post(&claim, &agent, 20, None).await;
    assert_eq!(r.data()["agent_id"], 1, "{}", r.body);
    c.ok("an agent claims a queued session", CLAIM, Method::POST, &r, 200);
    let r = app.post(&claim, &agent, 20, None).await;
    c.ok("an agent claims it again", CLAIM, Method::POST, &r, 200);
    let r = app.post("/sessions/not-a-uuid/claim", &agent, 20, None).await;
    c.error("a malformed id", CLAIM, Method::POST, &r, 400, "validation_error");
    let r = app.raw(anonymous(app, Method::POST, &claim)).await;
    c.error(NO_TOKEN, CLAIM, Method::POST, &r, 401, "unauthorized");
    let r = app.post(&claim, &User::member(102, 20), 20, None).await;
    c.error("a tenant user", CLAIM, Method::POST, &r, 403, "forbidden");
    let r = app.post(&format!("/sessions/{queued}/claim"), &agent, 12, None).await;
    c.error("a CLOSED session", CLAIM, Method::POST, &r, 404, "not_found");
    let r = app.post(&claim, &other_agent, 20, None).await;
    let name = "a session another agent holds";
    c.error(name, CLAIM, Method::POST, &r, 409, "session_already_assigned");

    // POST /sessions/{id}/transfer.
    let transfer = format!("/sessions/{waiting}/transfer");
    let r = app.post(&transfer, &agent, 20, Some(json!({ "agent_id": 2 }))).await;
    assert_eq!(r.data()["agent_id"], 2, "{}", r.body);
    c.ok("a session handed to an online agent", TRANSFER, Method::POST, &r, 200);
    let r = app.post(&transfer, &agent, 20, Some(json!({ "agent_id": 3 }))).await;
    c.error("an offline agent", TRANSFER, Method::POST, &r, 400, "agent_offline");
    let r = app.post(&transfer, &agent, 20, Some(json!({ "agent_id": "two" }))).await;
    let name = "agent_id of the wrong type";
    c.error(name, TRANSFER, Method::POST, &r, 400, "validation_error");
    let r = app.post(&transfer, &agent, 20, None).await;
    c.error("no body", TRANSFER, Method::POST, &r, 400, "validation_error");
    let r = app.raw(anonymous(app, Method::POST, &transfer).json(&json!({ "agent_id": 2 }))).await;
    c.error(NO_TOKEN, TRANSFER, Method::POST, &r, 401, "unauthorized");
    let r = app.post(&transfer, &User::member(102, 20), 20, Some(json!({ "agent_id": 2 }))).await;
    c.error("a tenant user", TRANSFER, Method::POST, &r, 403, "forbidden");
    let r = app.post(&format!("/sessions/{unknown}/transfer"), &agent, 20, Some(json!({ "agent_id": 2 }))).await;
    c.error(UNKNOWN_SESSION, TRANSFER, Method::POST, &r, 404, "not_found");
    let r = app.post(&transfer, &agent, 20, Some(json!({ "agent_id": 2, "note": big }))).await;
    c.error(TOO_BIG, TRANSFER, Method::POST, &r, 413, "payload_too_large");
    let r = app.raw(plain_text(app, Method::POST, &transfer, &agent, 20)).await;
    c.error(PLAIN_TEXT, TRANSFER, Method::POST, &r, 415, "unsupported_media_type");

    let r = app.raw(presence(&other_agent, json!({ "status": "offline" }))).await;
    assert!(r.data().get("expires_at").is_none(), "{}", r.body);
    c.ok("an agent goes offline", PRESENCE, Method::PUT, &r, 200);

    // POST /realtime/tickets.
    let r = app.post(TICKETS, &agent, 12, None).await;
    c.ok(TICKET, TICKETS, Method::POST, &r, 201);
    let r = app.raw(app.client.post(app.url(TICKETS)).bearer_auth(agent.token())).await;
    let name = "no X-Tenant-ID header";
    c.error(name, TICKETS, Method::POST, &r, 400, "validation_error");
    let r = app.raw(anonymous(app, Method::POST, TICKETS)).await;
    c.error(NO_TOKEN, TICKETS, Method::POST, &r, 401, "unauthorized");
    let r = app.post(TICKETS, &outsider, 12, None).await;
    c.error(OUTSIDE_ROLE, TICKETS, Method::POST, &r, 403, "forbidden");

    // 405 on every path, then 5xx on every operation once storage is gone:
    // validated only where the document lists them.
    let concrete = |route: &str| route.replace("{id}", &session);
    let paths: BTreeSet<&'static str> = OPERATIONS.iter().map(|o| o.path).collect();
    for route in paths {
        let r = app.call(Method::DELETE, &concrete(route), &agent, 12, None).await;
        assert_eq!(r.status, 405, "DELETE {route}: {}", r.body);
        c.probe(WRONG_METHOD, route, Method::DELETE, &r, "method_not_allowed");
    }
    break_storage(app).await;
    for Operation { path: route, method, .. } in OPERATIONS {
        let path = concrete(route);
        let body = match (route, method) {
            (SESSIONS, "post") => Some(json!({})),
            (PRESENCE, _) => Some(json!({ "status": "online" })),
            (TRANSFER, _) => Some(json!({ "agent_id": 2 })),
            (MESSAGES, "post") => Some(json!({ "message": "halo" })),
            (READ, _) => Some(json!({ "message_id": unknown })),
            _ => None,
        };
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).expect("an HTTP method");
        let r = app.call(method.clone(), &path, &agent, 12, body).await;
        let code = match r.status {
            500 => "internal_error",
            503 => "storage_unavailable",
            other => panic!("{method} {path} without storage answered {other}: {}", r.body),
        };
        c.probe("storage gone", route, method, &r, code);
    }
    c.0
}

/// A request without a token.
fn anonymous(app: &TestApp, method: Method, path: &str) -> reqwest::RequestBuilder {
    app.client.request(method, app.url(path)).header("X-Tenant-ID", "12")
}

/// A request whose body is labelled `text/plain`.
fn plain_text(app: &TestApp, method: Method, path: &str, user: &User, tenant: i64) -> reqwest::RequestBuilder {
    app.client
        .request(method, app.url(path))
        .bearer_auth(user.token())
        .header("X-Tenant-ID", tenant.to_string())
        .header("Content-Type", "text/plain")
        .body("{}")
}

/// Drops every table under the running server.
async fn break_storage(app: &TestApp) {
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(app.db.url()).await.expect("open the test database");
    let tables: Vec<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
            .fetch_all(&mut conn)
            .await
            .expect("list tables");
    sqlx::Executor::execute(&mut conn, "PRAGMA foreign_keys = OFF").await.expect("foreign keys off");
    for table in tables {
        sqlx::Executor::execute(&mut conn, format!("DROP TABLE IF EXISTS \"{table}\"").as_str())
            .await
            .expect("drop table");
    }
}
