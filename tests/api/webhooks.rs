//! Webhooks (docs/API.md §14, docs/WEBHOOKS.md) against a real HTTP receiver on loopback:
//! subscriptions and access, Standard Webhooks signatures checked by a
//! verifier written here from the specification (and by the `standardwebhooks`
//! library itself when it can be installed), retries, pausing, redelivery,
//! de-duplication, order, SSRF refusals, secret rotation, isolation from slow
//! receivers, retention, a crash between commit and delivery, and two nodes.

use crate::helpers::{Backend, Resp, TestApp, TestDb, TestOptions, User, read, settings};
use crate::node::Node;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine;
use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::Sha256;
use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

// ---------------------------------------------------------------------------
// A receiver on loopback.

/// How the receiver answers one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// 204, and the event's effect is applied (once per `webhook-id`).
    Ok,
    /// This status, nothing applied.
    Status(u16),
    /// Answer 200 only after this long (longer than the server waits).
    Hang(Duration),
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct Hit {
    pub id: String,
    pub timestamp: String,
    pub signature: String,
    pub body: Vec<u8>,
    pub json: Value,
    pub at: Instant,
}

#[derive(Default)]
struct ReceiverState {
    hits: Vec<Hit>,
    script: VecDeque<Reply>,
    default: Option<Reply>,
    /// `webhook-id`s whose effect was applied: a receiver that de-duplicates.
    applied: HashSet<String>,
    effects: Vec<String>,
}

struct ReceiverInner {
    state: Mutex<ReceiverState>,
    changed: Notify,
}

/// An HTTP receiver that records every request and answers as scripted.
#[derive(Clone)]
pub struct Receiver {
    pub addr: SocketAddr,
    inner: Arc<ReceiverInner>,
}

async fn receive(State(inner): State<Arc<ReceiverInner>>, headers: HeaderMap, body: axum::body::Bytes) -> StatusCode {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let hit = Hit {
        id: header("webhook-id"),
        timestamp: header("webhook-timestamp"),
        signature: header("webhook-signature"),
        json: serde_json::from_slice(&body).unwrap_or(Value::Null),
        body: body.to_vec(),
        at: Instant::now(),
    };
    let id = hit.id.clone();
    let reply = {
        let mut state = inner.state.lock().unwrap();
        state.hits.push(hit);
        state.script.pop_front().or(state.default).unwrap_or(Reply::Ok)
    };
    inner.changed.notify_waiters();
    match reply {
        Reply::Ok => {
            let mut state = inner.state.lock().unwrap();
            if state.applied.insert(id.clone()) {
                state.effects.push(id);
            }
            StatusCode::NO_CONTENT
        }
        Reply::Status(code) => StatusCode::from_u16(code).unwrap(),
        Reply::Hang(d) => {
            tokio::time::sleep(d).await;
            StatusCode::OK
        }
    }
}

impl Receiver {
    pub async fn start() -> Self {
        let inner = Arc::new(ReceiverInner { state: Mutex::default(), changed: Notify::new() });
        let app = axum::Router::new().route("/hook", axum::routing::post(receive)).with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, inner }
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// The next replies, in order; then the default.
    pub fn script(&self, replies: &[Reply]) {
        self.inner.state.lock().unwrap().script.extend(replies.iter().copied());
    }

    pub fn set_default(&self, reply: Reply) {
        self.inner.state.lock().unwrap().default = Some(reply);
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.inner.state.lock().unwrap().hits.clone()
    }

    pub fn effects(&self) -> Vec<String> {
        self.inner.state.lock().unwrap().effects.clone()
    }

    /// Waits until at least `n` requests arrived.
    pub async fn wait_hits(&self, n: usize, within: Duration) -> Vec<Hit> {
        let deadline = Instant::now() + within;
        loop {
            let changed = self.inner.changed.notified();
            let hits = self.hits();
            if hits.len() >= n {
                return hits;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "expected {n} webhook requests within {within:?}, got {}: {:?}",
                hits.len(),
                types(&hits)
            );
            let _ = tokio::time::timeout(left.min(Duration::from_millis(200)), changed).await;
        }
    }

    /// Waits until at least `n` effects were applied.
    pub async fn wait_effects(&self, n: usize, within: Duration) -> Vec<String> {
        let deadline = Instant::now() + within;
        loop {
            let effects = self.effects();
            if effects.len() >= n {
                return effects;
            }
            assert!(Instant::now() < deadline, "expected {n} effects within {within:?}, got {}", effects.len());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn types(hits: &[Hit]) -> Vec<String> {
    hits.iter().map(|h| h.json["type"].as_str().unwrap_or("?").to_owned()).collect()
}

// ---------------------------------------------------------------------------
// A verifier written from the Standard Webhooks specification.

/// Checks a request the way the specification tells a receiver to: the
/// timestamp within five minutes, and one `v1` signature equal to
/// base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")), the key being the
/// base64 after `whsec_`.
pub fn verify(secret: &str, hit: &Hit) -> Result<(), String> {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_").ok_or("secret without whsec_")?)
        .map_err(|e| format!("secret is not base64: {e}"))?;
    let ts: i64 = hit.timestamp.parse().map_err(|_| format!("bad timestamp {:?}", hit.timestamp))?;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    if (now - ts).abs() > 300 {
        return Err(format!("timestamp {ts} too far from now {now}"));
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{}.{}.", hit.id, hit.timestamp).as_bytes());
    mac.update(&hit.body);
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    let found = hit.signature.split(' ').filter_map(|s| s.strip_prefix("v1,")).any(|s| s == expected);
    if found { Ok(()) } else { Err(format!("no signature matches in {:?}", hit.signature)) }
}

// ---------------------------------------------------------------------------
// Calling the webhook routes.

/// A request with an optional `X-Tenant-ID` (none: platform scope).
async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    user: &User,
    tenant: Option<i64>,
    body: Option<Value>,
) -> Resp {
    let mut req = app.client.request(method, app.url(path)).bearer_auth(user.token());
    if let Some(t) = tenant {
        req = req.header("X-Tenant-ID", t.to_string());
    }
    if let Some(body) = body {
        req = req.json(&body);
    }
    read(req.send().await.expect("request sent")).await
}

/// Creates a subscription and returns its `data` (with the secret).
async fn subscribe(app: &TestApp, user: &User, tenant: Option<i64>, url: &str, events: &[&str]) -> Value {
    let r = call(app, Method::POST, "/webhooks", user, tenant, Some(json!({ "url": url, "events": events }))).await;
    assert_eq!(r.status, 201, "create webhook: {}", r.body);
    r.data().clone()
}

const ALL_EVENTS: [&str; 4] = ["message.created", "session.opened", "session.assigned", "session.closed"];

async fn deliveries(app: &TestApp, user: &User, tenant: Option<i64>, hook: &str) -> Vec<Value> {
    let r = call(app, Method::GET, &format!("/webhooks/{hook}/deliveries?limit=100"), user, tenant, None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.data().as_array().unwrap().clone()
}

/// Waits until the delivery log satisfies `done`.
async fn wait_log(
    app: &TestApp,
    user: &User,
    tenant: Option<i64>,
    hook: &str,
    within: Duration,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + within;
    loop {
        let log = deliveries(app, user, tenant, hook).await;
        if done(&log) {
            return log;
        }
        assert!(Instant::now() < deadline, "delivery log not as expected within {within:?}: {log:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn hook_state(app: &TestApp, user: &User, tenant: Option<i64>, hook: &str) -> Value {
    let r = call(app, Method::GET, &format!("/webhooks/{hook}"), user, tenant, None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.data().clone()
}

fn with_webhooks(change: impl FnOnce(&mut livechat::webhooks::WebhookSettings)) -> TestOptions {
    let mut options = TestOptions::default();
    change(&mut options.webhooks);
    options
}

// ---------------------------------------------------------------------------
// The conformance tests (SQLite and PostgreSQL).

async fn subscriptions_are_managed_per_tenant_and_platform_with_isolation(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let agent = User::agent(1);
    let admin = User::with_tenant_role(50, 12, "koperasi_admin");
    let member = User::member(100, 12);
    let other_admin = User::with_tenant_role(60, 13, "umkm_admin");
    let url = "http://127.0.0.1:9/hook";

    let created = subscribe(&app, &admin, Some(12), url, &["session.closed", "message.created"]).await;
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["scope"], "tenant");
    assert_eq!(created["tenant_id"], 12);
    assert_eq!(created["events"], json!(["message.created", "session.closed"]));
    assert_eq!(created["active"], true);
    let secret = created["secret"].as_str().unwrap();
    assert!(secret.starts_with("whsec_"), "{created}");
    let key = base64::engine::general_purpose::STANDARD.decode(&secret[6..]).unwrap();
    assert_eq!(key.len(), 32);

    // The secret is shown once; reads never carry it.
    let got = hook_state(&app, &admin, Some(12), &id).await;
    assert!(got.get("secret").is_none(), "{got}");
    // Agents of the tenant manage it too, under both prefixes.
    let vendor = app
        .raw(
            app.client
                .get(format!("http://{}/api/vendor/livechat/webhooks/{id}", app.addr))
                .bearer_auth(agent.token())
                .header("X-Tenant-ID", "12"),
        )
        .await;
    assert_eq!(vendor.status, 200, "{}", vendor.body);

    // Tenant users who are not admins may not; other tenants see nothing.
    call(&app, Method::GET, "/webhooks", &member, Some(12), None).await.assert_error(403, "forbidden");
    call(&app, Method::GET, &format!("/webhooks/{id}"), &other_admin, Some(13), None)
        .await
        .assert_error(404, "not_found");
    call(&app, Method::DELETE, &format!("/webhooks/{id}"), &other_admin, Some(13), None)
        .await
        .assert_error(404, "not_found");
    call(&app, Method::GET, &format!("/webhooks/{id}/deliveries"), &other_admin, Some(13), None)
        .await
        .assert_error(404, "not_found");
    let listed = call(&app, Method::GET, "/webhooks", &other_admin, Some(13), None).await;
    assert_eq!(listed.data(), &json!([]));
    // Without X-Tenant-ID: the platform's own subscriptions, platform agents only.
    call(&app, Method::GET, "/webhooks", &admin, None, None).await.assert_error(400, "validation_error");
    let platform = subscribe(&app, &agent, None, url, &["session.opened"]).await;
    assert_eq!(platform["scope"], "platform");
    assert!(platform.get("tenant_id").is_none());
    let pid = platform["id"].as_str().unwrap();
    call(&app, Method::GET, &format!("/webhooks/{pid}"), &agent, Some(12), None).await.assert_error(404, "not_found");
    call(&app, Method::GET, &format!("/webhooks/{id}"), &agent, None, None).await.assert_error(404, "not_found");

    // Validation names the fields.
    let r = call(
        &app,
        Method::POST,
        "/webhooks",
        &admin,
        Some(12),
        Some(json!({ "url": url, "events": ["message.deleted"] })),
    )
    .await;
    r.assert_error(400, "validation_error");
    assert!(!r.field_errors("events").is_empty(), "{}", r.body);
    let r =
        call(&app, Method::POST, "/webhooks", &admin, Some(12), Some(json!({ "events": ["message.created"] }))).await;
    assert!(!r.field_errors("url").is_empty(), "{}", r.body);

    // Pagination, newest first.
    let second = subscribe(&app, &admin, Some(12), url, &["session.opened"]).await;
    let page = call(&app, Method::GET, "/webhooks?limit=1", &admin, Some(12), None).await;
    assert_eq!(page.data()[0]["id"], second["id"]);
    assert_eq!(page.body["meta"]["pagination"]["has_next"], true);
    let cursor = page.body["meta"]["pagination"]["next_cursor"].as_str().unwrap();
    let next = call(&app, Method::GET, &format!("/webhooks?limit=1&cursor={cursor}"), &admin, Some(12), None).await;
    assert_eq!(next.data()[0]["id"], created["id"]);

    // PATCH and DELETE.
    let r = call(
        &app,
        Method::PATCH,
        &format!("/webhooks/{id}"),
        &admin,
        Some(12),
        Some(json!({ "active": false, "description": "CRM", "events": ["session.opened"] })),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.data()["active"], false);
    assert_eq!(r.data()["status"], "disabled");
    assert_eq!(r.data()["description"], "CRM");
    assert_eq!(r.data()["events"], json!(["session.opened"]));
    let r = call(&app, Method::DELETE, &format!("/webhooks/{id}"), &admin, Some(12), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    call(&app, Method::GET, &format!("/webhooks/{id}"), &admin, Some(12), None).await.assert_error(404, "not_found");
    app.stop().await;
}

async fn deliveries_are_signed_ordered_and_carry_the_guide_types(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let receiver = Receiver::start().await;
    let platform_receiver = Receiver::start().await;
    let agent = User::agent(1);
    let admin = User::with_tenant_role(50, 12, "koperasi_admin");
    let member = User::member(100, 12);
    let hook = subscribe(&app, &admin, Some(12), &receiver.url(), &ALL_EVENTS).await;
    let secret = hook["secret"].as_str().unwrap().to_owned();
    let platform = subscribe(&app, &agent, None, &platform_receiver.url(), &["session.opened"]).await;
    // Another tenant's events never reach tenant 12's subscription.
    app.open_session(&User::member(200, 13), 13).await;

    let session = app.open_session(&member, 12).await;
    let m1 = app.send(&session, &member, 12, "halo").await;
    let m2 = app.send(&session, &agent, 12, "siap").await;
    let r = app.post(&format!("/sessions/{session}/claim"), &agent, 12, None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let closed = app.post(&format!("/sessions/{session}/close"), &agent, 12, None).await;
    assert_eq!(closed.status, 200);

    let hits = receiver.wait_hits(5, Duration::from_secs(15)).await;
    assert_eq!(
        types(&hits),
        ["session.opened", "message.created", "message.created", "session.assigned", "session.closed"],
        "one subscription's events of one session arrive in commit order"
    );
    for hit in &hits {
        verify(&secret, hit).unwrap_or_else(|e| panic!("{e}: {hit:?}"));
        assert!(verify(platform["secret"].as_str().unwrap(), hit).is_err(), "another secret must not verify");
        let ts: i64 = hit.timestamp.parse().unwrap();
        assert!((time::OffsetDateTime::now_utc().unix_timestamp() - ts).abs() < 60);
    }
    // A body changed in transit no longer verifies.
    let mut tampered = hits[1].clone();
    tampered.body = tampered.body.iter().map(|b| if *b == b'h' { b'H' } else { *b }).collect();
    assert!(verify(&secret, &tampered).is_err());

    // The payload: type, timestamp, data = the guide's type plus tenant_id and seq.
    let message = &hits[1].json;
    assert_eq!(hits[1].id, m1.id(), "message.created carries the message id as webhook-id");
    assert_eq!(message["type"], "message.created");
    assert_eq!(message["timestamp"], m1.data()["created_at"]);
    for field in ["id", "session_id", "sender_id", "message", "created_at"] {
        assert_eq!(message["data"][field], m1.data()[field], "{field}");
    }
    assert_eq!(message["data"]["tenant_id"], 12);
    assert_eq!(hits[2].json["data"]["id"], m2.data()["id"]);
    let seqs: Vec<i64> = hits.iter().map(|h| h.json["data"]["seq"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    let opened = &hits[0].json["data"];
    assert_eq!(opened["id"], session.as_str());
    assert_eq!(opened["tenant_id"], 12);
    assert_eq!(opened["status"], "OPEN");
    assert_eq!(hits[3].json["data"]["agent_id"], 1);
    assert_eq!(hits[4].json["data"]["status"], "CLOSED");
    assert_eq!(hits[4].json["data"]["closed_at"], closed.data()["closed_at"]);
    let ids: HashSet<&str> = hits.iter().map(|h| h.id.as_str()).collect();
    assert_eq!(ids.len(), 5, "each event its own webhook-id");

    // The platform-wide subscription hears both tenants' openings, nothing else.
    let platform_hits = platform_receiver.wait_hits(2, Duration::from_secs(15)).await;
    let tenants: HashSet<i64> = platform_hits.iter().map(|h| h.json["data"]["tenant_id"].as_i64().unwrap()).collect();
    assert_eq!(tenants, HashSet::from([12, 13]));
    assert!(platform_hits.iter().all(|h| h.json["type"] == "session.opened"));

    // The delivery log.
    let hook_id = hook["id"].as_str().unwrap();
    let log = wait_log(&app, &admin, Some(12), hook_id, Duration::from_secs(10), |log| {
        log.len() == 5 && log.iter().all(|d| d["status"] == "delivered")
    })
    .await;
    let d = &log[0];
    assert_eq!(d["event_type"], "session.closed");
    assert_eq!(d["attempts"], 1);
    assert_eq!(d["response_status"], 204);
    assert!(d["duration_ms"].is_i64() && d["delivered_at"].is_string(), "{d}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.hits().len(), 5, "nothing delivered twice");
    app.stop().await;
}

async fn failed_attempts_are_retried_after_500s_and_timeouts(backend: Backend) {
    let options = with_webhooks(|w| w.timeout = Duration::from_millis(500));
    let app = TestApp::spawn_with(backend, options).await;
    let receiver = Receiver::start().await;
    let admin = User::with_tenant_role(50, 12, "koperasi_admin");
    let hook = subscribe(&app, &admin, Some(12), &receiver.url(), &["session.opened"]).await;
    receiver.script(&[Reply::Status(500), Reply::Status(503), Reply::Hang(Duration::from_secs(2))]);
    let started = Instant::now();
    app.open_session(&User::member(100, 12), 12).await;
    let hits = receiver.wait_hits(4, Duration::from_secs(15)).await;
    assert!(hits.iter().all(|h| h.id == hits[0].id), "every attempt carries the same webhook-id");
    // Waits grow: 100 ms, 200 ms, 300 ms (±20 %), the third after a 500 ms timeout.
    let gaps: Vec<Duration> = hits.windows(2).map(|w| w[1].at - w[0].at).collect();
    assert!(gaps[0] >= Duration::from_millis(70), "{gaps:?}");
    assert!(gaps[1] >= Duration::from_millis(150), "{gaps:?}");
    assert!(gaps[2] >= Duration::from_millis(500 + 220), "the timed-out attempt waited for the timeout: {gaps:?}");
    let log = wait_log(&app, &admin, Some(12), hook["id"].as_str().unwrap(), Duration::from_secs(10), |log| {
        log.first().is_some_and(|d| d["status"] == "delivered")
    })
    .await;
    assert_eq!(log[0]["attempts"], 4, "{log:?}");
    assert!(started.elapsed() < Duration::from_secs(10));

    // A receiver that never answers 2xx: given up after the last retry.
    receiver.set_default(Reply::Status(500));
    app.post("/sessions", &User::member(101, 14), 14, None).await;
    let hook14 =
        subscribe(&app, &User::with_tenant_role(51, 14, "umkm_admin"), Some(14), &receiver.url(), &["session.closed"])
            .await;
    let session = {
        let r = app.get("/sessions?status=OPEN", &User::agent(1), 14).await;
        r.data()[0]["id"].as_str().unwrap().to_owned()
    };
    app.post(&format!("/sessions/{session}/close"), &User::agent(1), 14, None).await;
    let log =
        wait_log(&app, &User::agent(1), Some(14), hook14["id"].as_str().unwrap(), Duration::from_secs(10), |log| {
            log.first().is_some_and(|d| d["status"] == "failed")
        })
        .await;
    assert_eq!(log[0]["attempts"], 4, "one attempt and three retries: {log:?}");
    assert_eq!(log[0]["response_status"], 500);
    assert_eq!(log[0]["last_error"], "HTTP 500");
    app.stop().await;
}

async fn a_subscription_that_keeps_failing_is_paused_and_can_be_resumed(backend: Backend) {
    let options = with_webhooks(|w| {
        w.pause_after = 3;
        w.schedule = livechat::domain::webhook::RetrySchedule::new(vec![Duration::from_millis(100); 10]).unwrap();
    });
    let app = TestApp::spawn_with(backend, options).await;
    let receiver = Receiver::start().await;
    receiver.set_default(Reply::Status(500));
    let admin = User::with_tenant_role(50, 12, "koperasi_admin");
    let member = User::member(100, 12);
    let hook = subscribe(&app, &admin, Some(12), &receiver.url(), &["message.created"]).await;
    let id = hook["id"].as_str().unwrap();
    let session = app.open_session(&member, 12).await;
    app.send(&session, &member, 12, "satu").await;

    let deadline = Instant::now() + Duration::from_secs(10);
    let paused = loop {
        let state = hook_state(&app, &admin, Some(12), id).await;
        if state["status"] == "paused" {
            break state;
        }
        assert!(Instant::now() < deadline, "not paused: {state}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(paused["active"], false);
    let reason = paused["paused_reason"].as_str().unwrap();
    assert!(reason.contains("3 consecutive failed attempts") && reason.contains("HTTP 500"), "{reason}");
    let attempts = receiver.hits().len();
    assert_eq!(attempts, 3);

    // While paused nothing is sent; new events are kept.
    app.send(&session, &member, 12, "dua").await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(receiver.hits().len(), attempts, "a paused subscription is not sent to");
    let log = deliveries(&app, &admin, Some(12), id).await;
    let states: Vec<&str> = log.iter().map(|d| d["status"].as_str().unwrap()).collect();
    assert_eq!(states, ["queued", "held"], "{log:?}");

    // Re-enabled: the held delivery goes, then the next of the session.
    receiver.set_default(Reply::Ok);
    let r =
        call(&app, Method::PATCH, &format!("/webhooks/{id}"), &admin, Some(12), Some(json!({ "active": true }))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.data()["status"], "active");
    assert!(r.data().get("paused_reason").is_none());
    assert_eq!(r.data()["consecutive_failures"], 0);
    let effects = receiver.wait_effects(2, Duration::from_secs(10)).await;
    let texts: Vec<String> = receiver
        .hits()
        .iter()
        .filter(|h| effects.contains(&h.id))
        .map(|h| h.json["data"]["message"].as_str().unwrap().to_owned())
        .collect::<Vec<_>>();
    assert_eq!(texts.first().map(String::as_str), Some("satu"));
    assert_eq!(texts.last().map(String::as_str), Some("dua"));
    app.stop().await;
}

async fn redelivery_resends_the_same_event_and_a_deduplicating_receiver_applies_it_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let receiver = Receiver::start().await;
    let admin = User::with_tenant_role(50, 12, "koperasi_admin");
    let member = User::member(100, 12);
    let hook = subscribe(&app, &admin, Some(12), &receiver.url(), &["message.created"]).await;
    let id = hook["id"].as_str().unwrap();
    let session = app.open_session(&member, 12).await;
    // The first attempt fails, so the receiver sees the event twice on its own.
    receiver.script(&[Reply::Status(502)]);
    for text in ["a", "b", "c"] {
        app.send(&session, &member, 12, text).await;
    }
    receiver.wait_effects(3, Duration::from_secs(10)).await;
    let log = wait_log(&app, &admin, Some(12), id, Duration::from_secs(10), |l| {
        l.len() == 3 && l.iter().all(|d| d["status"] == "delivered")
    })
    .await;

    // Redeliver every one of them, twice.
    for _ in 0..2 {
        for d in &log {
            let r = call(
                &app,
                Method::POST,
                &format!("/webhooks/{id}/deliveries/{}/redeliver", d["id"].as_str().unwrap()),
                &admin,
                Some(12),
                None,
            )
            .await;
            assert_eq!(r.status, 202, "{}", r.body);
            assert_eq!(r.data()["event_id"], d["event_id"]);
            assert_eq!(r.data()["redelivery_of"], d["id"]);
        }
    }
    let hits = receiver.wait_hits(4 + 6, Duration::from_secs(10)).await;
    let mut per_id: HashMap<&str, usize> = HashMap::new();
    for h in &hits {
        *per_id.entry(h.id.as_str()).or_default() += 1;
    }
    assert_eq!(per_id.len(), 3, "redeliveries reuse the webhook-id: {per_id:?}");
    let effects = receiver.effects();
    assert_eq!(effects.len(), 3, "de-duplicating on webhook-id, each event takes effect once");
    assert_eq!(effects.iter().collect::<HashSet<_>>().len(), 3);

    // Unknown deliveries and other tenants' are 404.
    let unknown = uuid::Uuid::now_v7();
    call(&app, Method::POST, &format!("/webhooks/{id}/deliveries/{unknown}/redeliver"), &admin, Some(12), None)
        .await
        .assert_error(404, "not_found");
    let d0 = log[0]["id"].as_str().unwrap();
    call(
        &app,
        Method::POST,
        &format!("/webhooks/{id}/deliveries/{d0}/redeliver"),
        &User::with_tenant_role(60, 13, "umkm_admin"),
        Some(13),
        None,
    )
    .await
    .assert_error(404, "not_found");
    app.stop().await;
}

async fn a_session_keeps_its_order_while_an_earlier_delivery_is_retried(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let receiver = Receiver::start().await;
    let admin = User::with_tenant_role(50, 12, "koperasi_admin");
    let member = User::member(100, 12);
    subscribe(&app, &admin, Some(12), &receiver.url(), &["message.created"]).await;
    let session = app.open_session(&member, 12).await;
    receiver.script(&[Reply::Status(500), Reply::Status(500)]);
    let mut sent = Vec::new();
    for i in 0..8 {
        sent.push(app.send(&session, &member, 12, &format!("m{i}")).await.id());
    }
    let effects = receiver.wait_effects(8, Duration::from_secs(15)).await;
    assert_eq!(effects, sent, "a receiver processing one request at a time sees commit order");
    let hits = receiver.hits();
    assert_eq!(hits.len(), 10);
    assert!(hits[..3].iter().all(|h| h.id == sent[0]), "later messages wait for the first: {:?}", types(&hits));
    app.stop().await;
}

async fn events_exist_only_for_committed_changes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let receiver = Receiver::start().await;
    let admin = User::with_tenant_role(50, 12, "koperasi_admin");
    let member = User::member(100, 12);
    let agent = User::agent(1);
    let hook = subscribe(&app, &admin, Some(12), &receiver.url(), &ALL_EVENTS).await;
    let session = app.open_session(&member, 12).await;
    // Refused changes commit nothing and emit nothing.
    app.post("/sessions", &member, 12, None).await.assert_error(400, "session_already_active");
    let r = app.post(&format!("/sessions/{session}/messages"), &member, 12, Some(json!({ "message": "   " }))).await;
    r.assert_error(400, "validation_error");
    app.post(&format!("/sessions/{session}/close"), &agent, 12, None).await;
    app.post(&format!("/sessions/{session}/close"), &agent, 12, None).await; // idempotent: no second event
    app.post(&format!("/sessions/{session}/messages"), &member, 12, Some(json!({ "message": "late" })))
        .await
        .assert_error(404, "not_found");
    // An idempotent replay is the same message: no second event.
    let s2 = app.open_session(&member, 12).await;
    for _ in 0..2 {
        let req = app
            .client
            .post(app.url(&format!("/sessions/{s2}/messages")))
            .bearer_auth(member.token())
            .header("X-Tenant-ID", "12")
            .header("Idempotency-Key", "k-1")
            .json(&json!({ "message": "sekali" }));
        assert_eq!(app.raw(req).await.status, 201);
    }
    let hits = receiver.wait_hits(4, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let hits_after = receiver.hits();
    assert_eq!(hits_after.len(), hits.len(), "{:?}", types(&hits_after));
    // Sessions go in parallel; within each, commit order.
    let of = |session: &str| {
        let mine: Vec<Hit> = hits_after
            .iter()
            .filter(|h| h.json["data"]["session_id"] == session || h.json["data"]["id"] == session)
            .cloned()
            .collect();
        types(&mine)
    };
    assert_eq!(of(&session), ["session.opened", "session.closed"]);
    assert_eq!(of(&s2), ["session.opened", "message.created"]);
    let log = deliveries(&app, &admin, Some(12), hook["id"].as_str().unwrap()).await;
    assert_eq!(log.len(), 4);
    app.stop().await;
}

async fn targets_on_private_networks_are_refused(backend: Backend) {
    let options = with_webhooks(|w| w.rules.urls = livechat::domain::webhook::UrlRules::default());
    let app = TestApp::spawn_with(backend, options).await;
    let admin = User::with_tenant_role(50, 12, "koperasi_admin");
    for url in [
        "http://hooks.example.com/in",
        "https://127.0.0.1/hook",
        "https://localhost:8443/hook",
        "https://10.0.0.7/hook",
        "https://192.168.1.10/hook",
        "https://169.254.169.254/latest/meta-data/",
        "https://[::1]/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://[fd12::1]/hook",
        "https://100.64.1.1/hook",
        "https://2130706433/hook",
        "ftp://files.example.com/",
    ] {
        let r = call(
            &app,
            Method::POST,
            "/webhooks",
            &admin,
            Some(12),
            Some(json!({ "url": url, "events": ["message.created"] })),
        )
        .await;
        r.assert_error(400, "validation_error");
        assert!(!r.field_errors("url").is_empty(), "{url}: {}", r.body);
    }
    // A public https address is accepted (disabled: nothing is ever sent to it from a test).
    let r = call(
        &app,
        Method::POST,
        "/webhooks",
        &admin,
        Some(12),
        Some(json!({ "url": "https://1.1.1.1/hook", "events": ["message.created"], "active": false })),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.id();
    let r = call(
        &app,
        Method::PATCH,
        &format!("/webhooks/{id}"),
        &admin,
        Some(12),
        Some(json!({ "url": "https://127.0.0.2/" })),
    )
    .await;
    assert!(!r.field_errors("url").is_empty(), "PATCH is checked too: {}", r.body);
    app.stop().await;
}

async fn a_rotated_secret_overlaps_with_the_previous_one(backend: Backend) {
    let options = with_webhooks(|w| w.rules.secret_overlap = Duration::from_secs(2));
    let app = TestApp::spawn_with(backend, options).await;
    let receiver = Receiver::start().await;
    let admin = User::with_tenant_role(50, 12, "koperasi_admin");
    let member = User::member(100, 12);
    let hook = subscribe(&app, &admin, Some(12), &receiver.url(), &["message.created"]).await;
    let id = hook["id"].as_str().unwrap();
    let old = hook["secret"].as_str().unwrap().to_owned();
    let session = app.open_session(&member, 12).await;
    app.send(&session, &member, 12, "before").await;
    let first = receiver.wait_hits(1, Duration::from_secs(10)).await;
    assert_eq!(first[0].signature.split(' ').count(), 1);

    let r = call(&app, Method::POST, &format!("/webhooks/{id}/rotate-secret"), &admin, Some(12), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let new = r.data()["secret"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    assert!(r.data()["previous_secret_expires_at"].is_string(), "{}", r.body);

    app.send(&session, &member, 12, "during").await;
    let during = receiver.wait_hits(2, Duration::from_secs(10)).await[1].clone();
    assert_eq!(during.signature.split(' ').count(), 2, "two signatures during the overlap");
    verify(&old, &during).expect("the old secret still verifies");
    verify(&new, &during).expect("the new secret verifies");

    tokio::time::sleep(Duration::from_millis(2_200)).await;
    app.send(&session, &member, 12, "after").await;
    let after = receiver.wait_hits(3, Duration::from_secs(10)).await[2].clone();
    assert_eq!(after.signature.split(' ').count(), 1);
    verify(&new, &after).expect("the new secret verifies");
    assert!(verify(&old, &after).is_err(), "the old secret no longer signs");
    let state = hook_state(&app, &admin, Some(12), id).await;
    assert!(state.get("previous_secret_expires_at").is_none(), "{state}");
    app.stop().await;
}

async fn a_dead_receiver_slows_neither_the_api_nor_other_receivers(backend: Backend) {
    let options = with_webhooks(|w| {
        w.timeout = Duration::from_secs(5);
        w.per_endpoint = 2;
    });
    let app = TestApp::spawn_with(backend, options).await;
    let dead = Receiver::start().await;
    dead.set_default(Reply::Hang(Duration::from_secs(6)));
    let healthy = Receiver::start().await;
    let agent = User::agent(1);
    subscribe(&app, &agent, None, &dead.url(), &["message.created"]).await;
    subscribe(&app, &agent, None, &healthy.url(), &["message.created"]).await;
    // Many sessions, so the dead receiver has many deliveries due at once.
    let mut sessions = Vec::new();
    for t in 0..10 {
        sessions.push((100 + t, app.open_session(&User::member(500 + t, 100 + t), 100 + t).await));
    }
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    for round in 0..3 {
        for (tenant, session) in &sessions {
            let t0 = Instant::now();
            app.send(session, &User::member(500 + tenant - 100, *tenant), *tenant, &format!("r{round}")).await;
            slowest = slowest.max(t0.elapsed());
        }
    }
    let healthy_done = healthy.wait_effects(30, Duration::from_secs(5)).await;
    assert_eq!(healthy_done.len(), 30);
    assert!(started.elapsed() < Duration::from_secs(5), "the healthy receiver got everything while the dead one hung");
    assert!(slowest < Duration::from_secs(1), "sending stayed fast: slowest {slowest:?}");
    // The dead receiver holds at most its own two slots on this node.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(dead.hits().len() <= 2, "at most per_endpoint attempts at once: {}", dead.hits().len());
    app.stop().await;
}

async fn finished_deliveries_are_pruned_after_the_retention(backend: Backend) {
    let options = with_webhooks(|w| w.retention = Duration::from_secs(1));
    let app = TestApp::spawn_with(backend, options).await;
    let receiver = Receiver::start().await;
    let admin = User::with_tenant_role(50, 12, "koperasi_admin");
    let hook = subscribe(&app, &admin, Some(12), &receiver.url(), &["session.opened"]).await;
    let id = hook["id"].as_str().unwrap();
    app.open_session(&User::member(100, 12), 12).await;
    receiver.wait_effects(1, Duration::from_secs(10)).await;
    wait_log(&app, &admin, Some(12), id, Duration::from_secs(5), |l| l.len() == 1).await;
    wait_log(&app, &admin, Some(12), id, Duration::from_secs(10), |l| l.is_empty()).await;
    app.stop().await;
}

crate::conformance!(
    subscriptions_are_managed_per_tenant_and_platform_with_isolation,
    deliveries_are_signed_ordered_and_carry_the_guide_types,
    failed_attempts_are_retried_after_500s_and_timeouts,
    a_subscription_that_keeps_failing_is_paused_and_can_be_resumed,
    redelivery_resends_the_same_event_and_a_deduplicating_receiver_applies_it_once,
    a_session_keeps_its_order_while_an_earlier_delivery_is_retried,
    events_exist_only_for_committed_changes,
    targets_on_private_networks_are_refused,
    a_rotated_secret_overlaps_with_the_previous_one,
    a_dead_receiver_slows_neither_the_api_nor_other_receivers,
    finished_deliveries_are_pruned_after_the_retention,
);

// ---------------------------------------------------------------------------
// One backend is enough for these.

/// A subscription made while private targets were allowed is refused at
/// delivery once they are not: the check runs again at every attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_address_is_checked_again_at_delivery() {
    let receiver = Receiver::start().await;
    let db = TestDb::create(Backend::Sqlite).await;
    let admin = User::with_tenant_role(50, 12, "koperasi_admin");
    let lenient = livechat::app::Application::build(settings(db.url(), &TestOptions::default())).await.unwrap();
    let addr = lenient.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(lenient.run_until(async move {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    let r = read(
        client
            .post(format!("http://{addr}/api/livechat/webhooks"))
            .bearer_auth(admin.token())
            .header("X-Tenant-ID", "12")
            .json(&json!({ "url": receiver.url(), "events": ["session.opened"] }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.id();
    let _ = stop.send(());
    let _ = server.await;

    let mut strict = TestOptions::default();
    // Plain http stays allowed for this host, so what refuses is the address rule.
    strict.webhooks.rules.urls =
        livechat::domain::webhook::UrlRules { allow_private: false, http_hosts: vec!["127.0.0.1".into()] };
    let app = livechat::app::Application::build(settings(db.url(), &strict)).await.unwrap();
    let addr = app.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));
    let r = read(
        client
            .post(format!("http://{addr}/api/livechat/sessions"))
            .bearer_auth(User::member(100, 12).token())
            .header("X-Tenant-ID", "12")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 201);
    let deadline = Instant::now() + Duration::from_secs(10);
    let delivery = loop {
        let r = read(
            client
                .get(format!("http://{addr}/api/livechat/webhooks/{id}/deliveries"))
                .bearer_auth(admin.token())
                .header("X-Tenant-ID", "12")
                .send()
                .await
                .unwrap(),
        )
        .await;
        if let Some(d) = r.data().as_array().and_then(|a| a.first()).filter(|d| d["attempts"].as_i64() > Some(0)) {
            break d.clone();
        }
        assert!(Instant::now() < deadline, "no attempt recorded: {}", r.body);
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let error = delivery["last_error"].as_str().unwrap_or_default();
    assert!(error.starts_with("refused:") && error.contains("SSRF"), "{delivery}");
    assert!(receiver.hits().is_empty(), "nothing reached the loopback receiver");
    let _ = stop.send(());
    let _ = server.await;
}

/// Where the `standardwebhooks` package is installed for the check below
/// (ignored by git: under `target/`).
fn venv_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target").join("standardwebhooks-venv")
}

/// Runs a command with a time limit; `None` if it failed or ran out of time.
fn run_bounded(cmd: &mut std::process::Command, limit: Duration) -> Option<std::process::Output> {
    let mut child = cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().ok()?;
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => return child.wait_with_output().ok(),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}

/// The Python interpreter of a venv with `standardwebhooks`, installed on first use.
fn standardwebhooks_python() -> Result<std::path::PathBuf, String> {
    let dir = venv_dir();
    let python = dir.join("bin").join("python");
    let has = |python: &std::path::Path| {
        run_bounded(std::process::Command::new(python).args(["-c", "import standardwebhooks"]), Duration::from_secs(30))
            .is_some_and(|o| o.status.success())
    };
    if python.exists() && has(&python) {
        return Ok(python);
    }
    let made =
        run_bounded(std::process::Command::new("python3").args(["-m", "venv"]).arg(&dir), Duration::from_secs(120));
    if !made.is_some_and(|o| o.status.success()) {
        return Err("python3 -m venv failed".into());
    }
    let pip = run_bounded(
        std::process::Command::new(dir.join("bin").join("pip")).args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--timeout",
            "30",
            "standardwebhooks",
        ]),
        Duration::from_secs(240),
    );
    match pip {
        Some(o) if o.status.success() && has(&python) => Ok(python),
        Some(o) => Err(format!("pip install standardwebhooks failed: {}", String::from_utf8_lossy(&o.stderr))),
        None => Err("pip install standardwebhooks did not finish in time".into()),
    }
}

const PY_VERIFY: &str = r#"
import base64, json, sys
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
cases = json.load(open(sys.argv[1]))
verified = 0
for case in cases:
    wh = Webhook(case["secret"])
    body = base64.b64decode(case["body"])
    try:
        wh.verify(body, case["headers"])
        ok = True
    except WebhookVerificationError:
        ok = False
    if ok != case["valid"]:
        print("mismatch", case["headers"], ok)
        sys.exit(1)
    verified += 1
print(verified)
"#;

/// The off-the-shelf `standardwebhooks` library (Python) verifies real deliveries,
/// including the two-signature ones of a rotation, and rejects forged ones. If
/// the package cannot be installed here, the test says so and the verifier
/// written from the specification (every other test) still ran.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_standardwebhooks_library_verifies_real_deliveries() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let receiver = Receiver::start().await;
    let admin = User::with_tenant_role(50, 12, "koperasi_admin");
    let member = User::member(100, 12);
    let hook = subscribe(&app, &admin, Some(12), &receiver.url(), &ALL_EVENTS).await;
    let (id, old) = (hook["id"].as_str().unwrap().to_owned(), hook["secret"].as_str().unwrap().to_owned());
    let session = app.open_session(&member, 12).await;
    app.send(&session, &member, 12, "Halo, stok pupuk kami habis ✓").await;
    receiver.wait_hits(2, Duration::from_secs(10)).await;
    let r = call(&app, Method::POST, &format!("/webhooks/{id}/rotate-secret"), &admin, Some(12), None).await;
    let new = r.data()["secret"].as_str().unwrap().to_owned();
    app.send(&session, &member, 12, "after rotation").await;
    let hits = receiver.wait_hits(3, Duration::from_secs(10)).await;
    app.stop().await;

    let case = |hit: &Hit, secret: &str, valid: bool| {
        json!({
            "secret": secret,
            "body": base64::engine::general_purpose::STANDARD.encode(&hit.body),
            "headers": { "webhook-id": hit.id, "webhook-timestamp": hit.timestamp, "webhook-signature": hit.signature },
            "valid": valid,
        })
    };
    let mut cases = vec![case(&hits[0], &old, true), case(&hits[1], &old, true), case(&hits[2], &old, true)];
    cases.push(case(&hits[2], &new, true));
    cases.push(case(&hits[0], &new, false));
    let mut forged = hits[1].clone();
    forged.body = br#"{"type":"message.created","data":{}}"#.to_vec();
    cases.push(case(&forged, &old, false));
    for (hit, secret) in [(&hits[0], &old), (&hits[1], &old), (&hits[2], &new)] {
        verify(secret, hit).expect("the reference verifier agrees");
    }

    let outcome = tokio::task::spawn_blocking(move || -> Result<String, String> {
        let python = standardwebhooks_python()?;
        let dir = crate::helpers::temp_dir();
        let file = dir.path().join("cases.json");
        std::fs::write(&file, serde_json::to_vec(&cases).unwrap()).unwrap();
        let out =
            run_bounded(std::process::Command::new(python).args(["-c", PY_VERIFY]).arg(&file), Duration::from_secs(60))
                .ok_or("the Python verifier did not finish")?;
        assert!(
            out.status.success(),
            "standardwebhooks disagrees: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    })
    .await
    .unwrap();
    match outcome {
        Ok(n) => println!("standardwebhooks (Python) checked {n} cases: real deliveries verify, forged ones do not"),
        Err(why) => {
            println!("standardwebhooks not available ({why}); the Rust verifier written from the specification ran")
        }
    }
}

/// SIGKILL right after a commit: the event was committed with its change,
/// so the restarted node still delivers it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_between_commit_and_delivery_delivers_after_restart() {
    let db = TestDb::create(Backend::Sqlite).await;
    let receiver = Receiver::start().await;
    // The receiver hangs at first, so the node is killed with the attempt in flight (or not yet claimed).
    receiver.set_default(Reply::Hang(Duration::from_secs(3)));
    let env = [
        ("LIVECHAT_WEBHOOK_ALLOW_PRIVATE", "true"),
        ("LIVECHAT_WEBHOOK_TIMEOUT", "1s"),
        ("LIVECHAT_WEBHOOK_RETRY_SCHEDULE", "100ms,200ms"),
        ("LIVECHAT_WEBHOOK_POLL_INTERVAL", "100ms"),
    ];
    let node = Node::start(db.url(), &env).await;
    let admin = User::with_tenant_role(50, 12, "koperasi_admin");
    let r =
        node.post("/webhooks", &admin, 12, Some(json!({ "url": receiver.url(), "events": ["message.created"] }))).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let member = User::member(100, 12);
    let session = node.post("/sessions", &member, 12, None).await.id();
    let mut sent = Vec::new();
    for i in 0..5 {
        let r = node
            .post(&format!("/sessions/{session}/messages"), &member, 12, Some(json!({ "message": format!("m{i}") })))
            .await;
        assert_eq!(r.status, 201);
        sent.push(r.id());
    }
    let mut child = node.child;
    child.start_kill().unwrap();
    let _ = child.wait().await;
    let before = receiver.effects().len();
    assert_eq!(before, 0, "nothing was acknowledged before the kill");

    receiver.set_default(Reply::Ok);
    let node = Node::start(db.url(), &env).await;
    let effects = receiver.wait_effects(5, Duration::from_secs(30)).await;
    assert_eq!(effects, sent, "every committed message delivered after the restart, in order");
    let (status, _) = node.terminate().await;
    assert!(status.success());
}

/// SIGTERM while an attempt hangs: the node stops within its drain time and
/// releases the claim, so the next node sends at once instead of waiting for
/// the lease (here 2 × 10 s + 2 s) to run out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_node_releases_attempts_in_flight() {
    let db = TestDb::create(Backend::Sqlite).await;
    let receiver = Receiver::start().await;
    receiver.set_default(Reply::Hang(Duration::from_secs(30)));
    let env = [
        ("LIVECHAT_WEBHOOK_ALLOW_PRIVATE", "true"),
        ("LIVECHAT_WEBHOOK_TIMEOUT", "10s"),
        ("LIVECHAT_WEBHOOK_POLL_INTERVAL", "100ms"),
        ("LIVECHAT_SHUTDOWN_TIMEOUT", "2s"),
    ];
    let node = Node::start(db.url(), &env).await;
    let admin = User::with_tenant_role(50, 12, "koperasi_admin");
    let r =
        node.post("/webhooks", &admin, 12, Some(json!({ "url": receiver.url(), "events": ["session.opened"] }))).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let session = node.post("/sessions", &User::member(100, 12), 12, None).await.id();
    receiver.wait_hits(1, Duration::from_secs(10)).await;
    let stopping = Instant::now();
    let (status, _) = node.terminate().await;
    assert!(status.success());
    assert!(stopping.elapsed() < Duration::from_secs(10), "stopped in {:?}", stopping.elapsed());

    receiver.set_default(Reply::Ok);
    let restarted = Instant::now();
    let node = Node::start(db.url(), &env).await;
    let effects = receiver.wait_effects(1, Duration::from_secs(10)).await;
    assert!(restarted.elapsed() < Duration::from_secs(10), "released, not left to its lease");
    let hits = receiver.hits();
    assert_eq!(hits.last().unwrap().json["data"]["id"], session.as_str());
    assert_eq!(effects.len(), 1);
    let (status, _) = node.terminate().await;
    assert!(status.success());
}

/// Two nodes on one PostgreSQL database share the outbox: each event is
/// delivered once (no crash, so no duplicate), in order per session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_deliver_each_event_once() {
    let db = TestDb::create(Backend::Postgres).await;
    let receiver = Receiver::start().await;
    let env = [("LIVECHAT_WEBHOOK_ALLOW_PRIVATE", "true"), ("LIVECHAT_WEBHOOK_POLL_INTERVAL", "50ms")];
    let (a, b) = tokio::join!(Node::start(db.url(), &env), Node::start(db.url(), &env));
    let agent = User::agent(1);
    let r = a
        .client
        .post(a.url("/webhooks"))
        .bearer_auth(agent.token())
        .json(&json!({ "url": receiver.url(), "events": ["message.created", "session.opened"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let mut sessions = Vec::new();
    for t in 0..4 {
        let node = if t % 2 == 0 { &a } else { &b };
        sessions.push((20 + t, node.post("/sessions", &User::member(300 + t, 20 + t), 20 + t, None).await.id()));
    }
    let writers = futures::future::join_all(sessions.iter().enumerate().map(|(w, (tenant, session))| {
        let (a, b) = (&a, &b);
        async move {
            let mut ids = Vec::new();
            for i in 0..15 {
                let node = if (w + i) % 2 == 0 { a } else { b };
                let r = node
                    .post(
                        &format!("/sessions/{session}/messages"),
                        &User::member(300 + tenant - 20, *tenant),
                        *tenant,
                        Some(json!({ "message": format!("{w}-{i}") })),
                    )
                    .await;
                assert_eq!(r.status, 201);
                ids.push(r.id());
            }
            (session.clone(), ids)
        }
    }))
    .await;
    let total = 4 + 4 * 15;
    let hits = receiver.wait_hits(total, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let hits = receiver.hits().len().max(hits.len());
    assert_eq!(hits, total, "no event delivered twice");
    let all = receiver.hits();
    let unique: HashSet<&str> = all.iter().map(|h| h.id.as_str()).collect();
    assert_eq!(unique.len(), total);
    for (session, ids) in writers {
        let got: Vec<String> = all
            .iter()
            .filter(|h| h.json["type"] == "message.created" && h.json["data"]["session_id"] == session.as_str())
            .map(|h| h.id.clone())
            .collect();
        assert_eq!(got, ids, "per-session commit order across nodes");
    }
    let (sa, _) = a.terminate().await;
    let (sb, _) = b.terminate().await;
    assert!(sa.success() && sb.success());
}

// ---------------------------------------------------------------------------
// Measured, not asserted.

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Commit → receiver latency and throughput on loopback. Run with:
/// `cargo test --release --test api -- --ignored --nocapture webhook_delivery_latency`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run explicitly with --ignored --nocapture"]
async fn webhook_delivery_latency_and_throughput() {
    const ROUNDS: usize = 300;
    const BURST: usize = 2_000;
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let app = TestApp::spawn(backend).await;
        let receiver = Receiver::start().await;
        let agent = User::agent(1);
        subscribe(&app, &agent, None, &receiver.url(), &["message.created"]).await;
        let member = User::member(100, 12);
        let session = app.open_session(&member, 12).await;
        let mut latency = Vec::with_capacity(ROUNDS);
        for i in 0..ROUNDS {
            let r = app.send(&session, &member, 12, &format!("ping {i}")).await;
            // The 201 is sent after the commit: measure from there.
            let committed = Instant::now();
            let hits = receiver.wait_hits(i + 1, Duration::from_secs(10)).await;
            assert_eq!(hits[i].id, r.id());
            latency.push(hits[i].at.saturating_duration_since(committed));
        }
        latency.sort();
        println!(
            "{backend:?}: commit → receiver, n={ROUNDS}: p50={:?} p95={:?} p99={:?} max={:?}",
            percentile(&latency, 0.5),
            percentile(&latency, 0.95),
            percentile(&latency, 0.99),
            latency[latency.len() - 1]
        );

        // Throughput: many sessions written at once, drained by the worker.
        let shared = &app;
        let sessions: Vec<(i64, String)> = futures::future::join_all((0..20).map(|t| async move {
            (1_000 + t, shared.open_session(&User::member(2_000 + t, 1_000 + t), 1_000 + t).await)
        }))
        .await;
        let base = receiver.hits().len();
        let started = Instant::now();
        futures::future::join_all(sessions.iter().map(|(tenant, session)| async move {
            let user = User::member(2_000 + tenant - 1_000, *tenant);
            for i in 0..BURST / 20 {
                shared.send(session, &user, *tenant, &format!("b{i}")).await;
            }
        }))
        .await;
        let written = started.elapsed();
        receiver.wait_hits(base + BURST, Duration::from_secs(120)).await;
        let drained = started.elapsed();
        println!(
            "{backend:?}: {BURST} messages in 20 sessions written in {written:?} ({:.0}/s), all delivered after {drained:?} ({:.0} deliveries/s)",
            BURST as f64 / written.as_secs_f64(),
            BURST as f64 / drained.as_secs_f64()
        );
        app.stop().await;
    }
}
