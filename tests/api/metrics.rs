//! `GET /metrics`: Prometheus text with requests, messages, streams,
//! storage and fan-out, on the main listener or an address of its own.

use crate::helpers::{Backend, TestApp, TestOptions, User};
use crate::stream::Ws;

/// The value of the sample whose line starts with `prefix`, if any.
fn sample(text: &str, prefix: &str) -> Option<f64> {
    text.lines().find(|l| l.starts_with(prefix)).and_then(|l| l.rsplit(' ').next()).and_then(|v| v.parse().ok())
}

async fn scrape(app: &TestApp, addr: std::net::SocketAddr) -> String {
    let r = app.client.get(format!("http://{addr}/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    r.text().await.unwrap()
}

async fn metrics_count_requests_messages_streams_and_storage(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = User::member(100, 12);
    let session = app.open_session(&user, 12).await;
    let mut ws = Ws::connect(&app, &user, 12).await;
    ws.subscribe(&session, None, None).await;
    for text in ["satu", "dua", "tiga"] {
        app.send(&session, &user, 12, text).await;
    }
    ws.next_event("message.created").await;
    let text = scrape(&app, app.addr).await;
    assert_eq!(sample(&text, "livechat_messages_sent_total"), Some(3.0), "{text}");
    let sends =
        r#"livechat_http_requests_total{route="/api/livechat/sessions/{id}/messages",method="POST",status="201"}"#;
    assert_eq!(sample(&text, sends), Some(3.0), "{text}");
    assert!(sample(&text, r#"livechat_http_request_duration_seconds_count{route="/api/livechat/sessions""#).is_some());
    assert_eq!(sample(&text, "livechat_streams_open"), Some(1.0), "{text}");
    assert_eq!(sample(&text, "livechat_stream_subscriptions"), Some(1.0), "{text}");
    assert!(sample(&text, "livechat_db_connections ").is_some_and(|n| n >= 1.0), "{text}");
    assert_eq!(sample(&text, "livechat_storage_failing_fast"), Some(0.0), "{text}");
    assert!(sample(&text, "livechat_fanout_lag_seconds_count").is_some_and(|n| n >= 1.0), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_can_move_to_an_address_of_their_own() {
    let options = TestOptions { metrics_bind: Some("127.0.0.1:0".parse().unwrap()), ..TestOptions::default() };
    let app = TestApp::spawn_with(Backend::Sqlite, options).await;
    let own = app.metrics_addr.expect("a metrics address");
    assert!(scrape(&app, own).await.contains("livechat_messages_sent_total 0"));
    let main = app.client.get(format!("http://{}/metrics", app.addr)).send().await.unwrap();
    assert_eq!(main.status(), 404, "not on the main listener any more");
}

async fn the_node_reads_each_event_once_whatever_the_number_of_subscribers(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = User::member(100, 12);
    let session = app.open_session(&user, 12).await;
    let mut streams = Vec::new();
    for i in 0..20 {
        let mut ws = Ws::connect(&app, &User::member(200 + i, 12), 12).await;
        ws.subscribe(&session, None, None).await;
        // A new subscription reads storage once for its replay, after the
        // `subscribed` frame; the actor answers the next frame only after
        // that, so the pong puts the read before the measured window.
        ws.send(serde_json::json!({ "type": "ping" })).await;
        assert_eq!(ws.next_json().await["type"], "pong");
        streams.push(ws);
    }
    // Anything still arriving from before (the session's own `opened`
    // notice, late on a loaded machine) settles first: the reads counter
    // holds still for 200 ms (bounded: 3 s).
    let mut before = scrape(&app, app.addr).await;
    for _ in 0..15 {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let now = scrape(&app, app.addr).await;
        let settled = sample(&now, "livechat_stream_reads_total") == sample(&before, "livechat_stream_reads_total");
        before = now;
        if settled {
            break;
        }
    }
    for i in 0..10 {
        app.send(&session, &user, 12, &format!("pesan {i}")).await;
    }
    for ws in &mut streams {
        for _ in 0..10 {
            ws.next_event("message.created").await;
        }
    }
    let after = scrape(&app, app.addr).await;
    let delta = |name: &str| sample(&after, name).unwrap_or(0.0) - sample(&before, name).unwrap_or(0.0);
    assert!(
        delta("livechat_fanout_reads_total") <= 10.0,
        "at most one read per event: {}",
        delta("livechat_fanout_reads_total")
    );
    assert_eq!(delta("livechat_stream_reads_total"), 0.0, "no subscriber read storage itself");
}

crate::conformance!(
    metrics_count_requests_messages_streams_and_storage,
    the_node_reads_each_event_once_whatever_the_number_of_subscribers
);
