//! The envelope and the error catalogue on every path (docs/API.md §4, §6).

use crate::conformance;
use crate::helpers::{Backend, TestApp, TestOptions, User};
use livechat::http::PREFIXES;
use reqwest::Method;
use serde_json::json;

async fn every_route_answers_identically_under_both_prefixes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let agent = User::agent(1);
    let user = User::member(100, 12);
    let (a, b) = (app.with_prefix(PREFIXES[0]), app.with_prefix(PREFIXES[1]));
    // Open through one prefix, use through the other: one router, one world.
    let opened = a.call(Method::POST, "/sessions", &user, 12, None).await;
    assert_eq!(opened.status, 201);
    let id = opened.id();
    for (one, other) in [(&a, &b), (&b, &a)] {
        let sent = one
            .call(Method::POST, &format!("/sessions/{id}/messages"), &user, 12, Some(json!({ "message": "halo" })))
            .await;
        assert_eq!(sent.status, 201, "{}", sent.body);
        let listed = other.call(Method::GET, &format!("/sessions/{id}/messages"), &user, 12, None).await;
        assert_eq!(listed.status, 200);
        assert_eq!(listed.data()[0]["id"], sent.data()["id"]);
        let got = other.call(Method::GET, &format!("/sessions/{id}"), &agent, 12, None).await;
        assert_eq!(got.status, 200);
        let list = one.call(Method::GET, "/sessions", &agent, 12, None).await;
        assert_eq!(list.status, 200);
        assert_eq!(list.data()[0]["id"], id.as_str());
    }
    let closed = b.call(Method::POST, &format!("/sessions/{id}/close"), &agent, 12, None).await;
    assert_eq!(closed.status, 200);
    let again = a.call(Method::POST, &format!("/sessions/{id}/close"), &agent, 12, None).await;
    assert_eq!(again.data(), closed.data());
    for prefix in PREFIXES {
        let r = app.raw(app.client.get(format!("http://{}{prefix}/openapi.json", app.addr))).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.body["openapi"], "3.1.0");
    }
}

async fn unknown_routes_and_methods_answer_with_the_envelope(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for path in ["/api/livechat/nope", "/api/vendor/livechat/sessions/x/y/z", "/nothing-here", "/api/livechat"] {
        let r = app.raw(app.client.get(format!("http://{}{path}", app.addr))).await;
        r.assert_error(404, "not_found");
    }
    let id = uuid::Uuid::now_v7();
    for (method, path) in [
        (Method::DELETE, "/sessions".to_owned()),
        (Method::PUT, format!("/sessions/{id}")),
        (Method::GET, format!("/sessions/{id}/close")),
        (Method::PATCH, format!("/sessions/{id}/messages")),
    ] {
        let r = app.raw(app.client.request(method.clone(), app.url(&path))).await;
        r.assert_error(405, "method_not_allowed");
        assert!(r.header("allow").is_some(), "{method} {path} has no Allow header");
    }
}

async fn bodies_must_be_json_and_within_the_size_limit(backend: Backend) {
    let app = TestApp::spawn_with(backend, TestOptions { max_body_bytes: 1024, ..TestOptions::default() }).await;
    let user = User::member(100, 12);
    let session = app.open_session(&user, 12).await;
    let url = app.url(&format!("/sessions/{session}/messages"));
    let base = || app.client.post(&url).bearer_auth(user.token()).header("X-Tenant-ID", "12");
    app.raw(base().header("content-type", "text/plain").body("halo")).await.assert_error(415, "unsupported_media_type");
    app.raw(base().body("{\"message\":\"no content type\"}")).await.assert_error(415, "unsupported_media_type");
    let big = json!({ "message": "x".repeat(2_000) }).to_string();
    app.raw(base().header("content-type", "application/json").body(big)).await.assert_error(413, "payload_too_large");
    let r = app.raw(base().header("content-type", "application/json").body("{\"message\": ")).await;
    r.assert_error(400, "validation_error");
    assert!(!r.field_errors("body").is_empty());
    let r =
        app.raw(base().header("content-type", "application/json; charset=utf-8").body("{\"message\":\"ok\"}")).await;
    assert_eq!(r.status, 201, "a charset parameter is fine");
    // Responses are JSON whatever Accept says.
    let r = app
        .raw(
            app.client
                .get(app.url("/sessions"))
                .header("accept", "text/html")
                .bearer_auth(user.token())
                .header("X-Tenant-ID", "12"),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
}

async fn request_ids_are_echoed_or_generated(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = User::member(100, 12);
    let r = app
        .raw(
            app.client
                .get(app.url("/sessions"))
                .bearer_auth(user.token())
                .header("X-Tenant-ID", "12")
                .header("X-Request-ID", "trace-abc.123_x"),
        )
        .await;
    assert_eq!(r.header("x-request-id"), Some("trace-abc.123_x"));
    assert_eq!(r.body["meta"]["request_id"], "trace-abc.123_x");
    let ts = r.body["meta"]["timestamp"].as_str().unwrap();
    assert!(ts.ends_with('Z') && ts.len() == 27, "{ts}");
    // An unacceptable id is replaced, on errors too.
    let r = app.raw(app.client.get(app.url("/sessions")).header("X-Request-ID", "bad id with spaces")).await;
    r.assert_error(401, "unauthorized");
    let generated = r.header("x-request-id").unwrap().to_owned();
    assert_ne!(generated, "bad id with spaces");
    assert_eq!(r.body["meta"]["request_id"], generated.as_str());
    let r = app.raw(app.client.get(format!("http://{}/nowhere", app.addr))).await;
    assert_eq!(r.body["meta"]["request_id"].as_str(), r.header("x-request-id"));
}

async fn internal_failures_are_500_without_internals(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = User::member(100, 12);
    let session = app.open_session(&user, 12).await;
    // Break storage underneath the running server.
    match backend {
        Backend::Sqlite => {
            use sqlx::Connection;
            let mut conn = sqlx::SqliteConnection::connect(app.db.url()).await.unwrap();
            sqlx::Executor::execute(&mut conn, "DROP TABLE messages").await.unwrap();
        }
        Backend::Postgres => {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(app.db.url()).await.unwrap();
            sqlx::Executor::execute(&mut conn, "DROP TABLE messages").await.unwrap();
        }
    }
    let r = app.get(&format!("/sessions/{session}/messages"), &user, 12).await;
    r.assert_error(500, "internal_error");
    assert!(r.body["errors"].is_null());
    let text = r.body.to_string().to_lowercase();
    for leak in ["messages", "table", "sql", "relation"] {
        assert!(!text.contains(leak), "500 body leaks {leak:?}: {text}");
    }
}

async fn health_and_readiness_answer_without_a_token(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let r = app.raw(app.client.get(format!("http://{}/healthz", app.addr))).await;
    assert_eq!(r.status, 200);
    let r = app.raw(app.client.get(format!("http://{}/readyz", app.addr))).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["storage"], "ok");
}

async fn callers_over_the_rate_limit_get_429_with_retry_after(backend: Backend) {
    let app = TestApp::spawn_with(backend, TestOptions { rate_limit: (1, 3), ..TestOptions::default() }).await;
    let busy = User::member(100, 12);
    for _ in 0..3 {
        assert_eq!(app.get("/sessions", &busy, 12).await.status, 200);
    }
    let r = app.get("/sessions", &busy, 12).await;
    r.assert_error(429, "rate_limited");
    let wait: u64 = r.header("retry-after").expect("Retry-After").parse().expect("seconds");
    assert!((1..=60).contains(&wait), "{wait}");
    // Per user: others are unaffected.
    assert_eq!(app.get("/sessions", &User::member(101, 12), 12).await.status, 200);
}

conformance!(
    callers_over_the_rate_limit_get_429_with_retry_after,
    every_route_answers_identically_under_both_prefixes,
    unknown_routes_and_methods_answer_with_the_envelope,
    bodies_must_be_json_and_within_the_size_limit,
    request_ids_are_echoed_or_generated,
    internal_failures_are_500_without_internals,
    health_and_readiness_answer_without_a_token,
);
