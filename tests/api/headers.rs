//! Security headers on every response, and CORS preflights answered for the
//! headers the frontend sends (docs/API.md §3). Backend-independent.

use crate::helpers::{Backend, TestApp, TestOptions, User};
use reqwest::Method;
use reqwest::header::HeaderValue;

const ALLOWED: &str = "http://localhost:5173";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_response_carries_the_security_headers() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let agent = User::agent(1);
    let base = format!("http://{}", app.addr);
    let responses = [
        app.client.get(app.url("/sessions")).bearer_auth(agent.token()).header("X-Tenant-ID", "12"),
        app.client.get(app.url("/sessions")),
        app.client.get(format!("{base}/nothing/here")),
        app.client.delete(app.url("/sessions")).bearer_auth(agent.token()).header("X-Tenant-ID", "12"),
        app.client.get(format!("{base}/healthz")),
        app.client.get(app.url("/openapi.json")),
    ];
    for req in responses {
        let r = req.send().await.unwrap();
        let what = format!("{} {}", r.status(), r.url());
        let h = r.headers();
        assert_eq!(h.get("x-content-type-options").and_then(|v| v.to_str().ok()), Some("nosniff"), "{what}");
        assert_eq!(h.get("referrer-policy").and_then(|v| v.to_str().ok()), Some("no-referrer"), "{what}");
        assert_eq!(h.get("cache-control").and_then(|v| v.to_str().ok()), Some("no-store"), "{what}");
        let csp = h.get("content-security-policy").and_then(|v| v.to_str().ok()).unwrap_or_default();
        assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"), "{what}: {csp}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflights_from_an_allowed_origin_are_answered_and_others_get_no_cors_headers() {
    let options = TestOptions { cors_origins: vec![HeaderValue::from_static(ALLOWED)], ..TestOptions::default() };
    let app = TestApp::spawn_with(Backend::Sqlite, options).await;
    let preflight = |origin: &str| {
        app.client
            .request(Method::OPTIONS, app.url("/sessions/x/messages"))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .header(
                "Access-Control-Request-Headers",
                "authorization, x-tenant-id, content-type, idempotency-key, x-request-id",
            )
            .send()
    };
    let r = preflight(ALLOWED).await.unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let h = r.headers();
    assert_eq!(h.get("access-control-allow-origin").unwrap(), ALLOWED);
    let allowed = h.get("access-control-allow-headers").unwrap().to_str().unwrap().to_ascii_lowercase();
    for name in ["authorization", "x-tenant-id", "content-type", "idempotency-key", "x-request-id"] {
        assert!(allowed.contains(name), "{name} not in {allowed}");
    }
    assert!(h.get("access-control-allow-methods").unwrap().to_str().unwrap().contains("POST"));
    // The answer itself exposes the headers a script needs.
    let r = app
        .client
        .get(app.url("/sessions"))
        .bearer_auth(User::agent(1).token())
        .header("X-Tenant-ID", "12")
        .header("Origin", ALLOWED)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers().get("access-control-allow-origin").unwrap(), ALLOWED);
    let exposed = r.headers().get("access-control-expose-headers").unwrap().to_str().unwrap().to_ascii_lowercase();
    for name in ["x-request-id", "retry-after", "idempotent-replayed"] {
        assert!(exposed.contains(name), "{name} not in {exposed}");
    }
    // Any other origin: no CORS headers, so the browser keeps its same-origin rule.
    let r = preflight("http://evil.example").await.unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quotas_answer_429_with_ratelimit_headers_per_user_and_per_tenant() {
    let quotas = livechat::service::QuotaSettings::parse("send=12/18,ticket=6/600").unwrap();
    let app = TestApp::spawn_with(Backend::Sqlite, TestOptions { quotas, ..TestOptions::default() }).await;
    let (a, b, c) = (User::member(100, 12), User::member(101, 12), User::member(102, 12));
    let session = app.open_session(&a, 12).await;
    let path = format!("/sessions/{session}/messages");
    let body = || Some(serde_json::json!({ "message": "halo" }));
    // Bursts of ten seconds' worth: 2 per user, 3 per tenant.
    let first = app.post(&path, &a, 12, body()).await;
    assert_eq!(first.status, 201);
    assert_eq!(first.header("ratelimit-policy"), Some("\"send-user\";q=12;w=60"));
    assert!(
        first.header("ratelimit").is_some_and(|v| v.starts_with("\"send-user\";r=1;")),
        "{:?}",
        first.header("ratelimit")
    );
    assert_eq!(app.post(&path, &a, 12, body()).await.status, 201);
    let refused = app.post(&path, &a, 12, body()).await;
    refused.assert_error(429, "rate_limited");
    assert!(refused.header("retry-after").and_then(|v| v.parse::<u64>().ok()).is_some_and(|s| s >= 1));
    assert!(refused.header("ratelimit").is_some_and(|v| v.starts_with("\"send-user\";r=0;")));
    // Another user of the tenant still may, until the tenant's allowance runs out.
    assert_eq!(app.post(&path, &b, 12, body()).await.status, 201);
    let tenant = app.post(&path, &c, 12, body()).await;
    tenant.assert_error(429, "rate_limited");
    assert!(
        tenant.header("ratelimit").is_some_and(|v| v.starts_with("\"send-tenant\";r=0;")),
        "{:?}",
        tenant.header("ratelimit")
    );
    // Refused sends stored nothing.
    let listed = app.get(&path, &a, 12).await;
    assert_eq!(listed.data().as_array().unwrap().len(), 3);
    // Tickets have their own quota.
    assert_eq!(app.post("/realtime/tickets", &a, 12, None).await.status, 201);
    app.post("/realtime/tickets", &a, 12, None).await.assert_error(429, "rate_limited");
}
