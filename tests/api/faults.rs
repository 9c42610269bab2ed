//! Faults between the server and PostgreSQL (docs/API.md §16): a commit
//! whose answer is lost, a connection cut before its commit, a database that
//! stops answering. Every request is answered within its deadline, and the
//! answer says what was stored.

use crate::helpers::{Backend, TestApp, TestDb, TestOptions, User, pg_admin_url};
use crate::pgproxy::{Fault, PgProxy};
use serde_json::json;
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(2);

/// A server whose every database connection goes through a fault-injecting proxy.
async fn app_behind_proxy() -> (TestApp, PgProxy) {
    app_behind_proxy_with(|_| {}).await
}

async fn app_behind_proxy_with(before_start: impl FnOnce(&PgProxy)) -> (TestApp, PgProxy) {
    let db = TestDb::create(Backend::Postgres).await;
    let admin = pg_admin_url();
    let host = admin.split_once("://").unwrap().1;
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    let upstream = tokio::net::lookup_host(host.split_once('/').unwrap().0).await.unwrap().next().unwrap();
    let proxy = PgProxy::start(upstream).await;
    before_start(&proxy);
    let url = proxy.url_for(db.url());
    let options = TestOptions { request_timeout: DEADLINE, ..TestOptions::default() };
    (TestApp::spawn_on(db, &url, options).await, proxy)
}

async fn texts(app: &TestApp, session: &str, user: &User) -> Vec<(String, String)> {
    let r = app.get(&format!("/sessions/{session}/messages?limit=100"), user, 12).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.data()
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["id"].as_str().unwrap().to_owned(), m["message"].as_str().unwrap().to_owned()))
        .collect()
}

async fn send(app: &TestApp, session: &str, user: &User, text: &str) -> crate::helpers::Resp {
    app.post(&format!("/sessions/{session}/messages"), user, 12, Some(json!({ "message": text }))).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_whose_commit_answer_is_lost_is_a_201_for_the_message_stored_once() {
    let (app, proxy) = app_behind_proxy().await;
    let user = User::member(100, 12);
    let session = app.open_session(&user, 12).await;
    proxy.arm(Fault::CutAfterCommit);
    let r = send(&app, &session, &user, "terkirim?").await;
    assert_eq!(r.status, 201, "the commit happened, so the send succeeded: {}", r.body);
    let stored = texts(&app, &session, &user).await;
    assert_eq!(stored, vec![(r.id(), "terkirim?".to_owned())], "stored exactly once, under the answered id");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_cut_before_its_commit_is_a_503_and_nothing_is_stored() {
    let (app, proxy) = app_behind_proxy().await;
    let user = User::member(100, 12);
    let session = app.open_session(&user, 12).await;
    proxy.arm(Fault::CutBeforeCommit);
    let r = send(&app, &session, &user, "hilang").await;
    r.assert_error(503, "storage_unavailable");
    assert!(texts(&app, &session, &user).await.is_empty(), "a 503 on a write means it was not stored");
    // So a plain retry is safe: one message.
    assert_eq!(send(&app, &session, &user, "hilang").await.status, 201);
    assert_eq!(texts(&app, &session, &user).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_database_never_hangs_a_request_and_a_called_off_write_stores_nothing() {
    let (app, proxy) = app_behind_proxy().await;
    let user = User::member(100, 12);
    let session = app.open_session(&user, 12).await;
    proxy.freeze(true);
    let started = Instant::now();
    let list = format!("/sessions/{session}/messages");
    let (write, read) = tokio::join!(send(&app, &session, &user, "beku"), app.get(&list, &user, 12));
    let took = started.elapsed();
    write.assert_error(503, "storage_unavailable");
    read.assert_error(503, "storage_unavailable");
    assert!(took < DEADLINE + Duration::from_secs(1), "answered after {took:?}");
    proxy.freeze(false);
    // The write was called off before its commit: once the database answers again, it is not there.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = app.get(&format!("/sessions/{session}/messages"), &user, 12).await;
        if r.status == 200 {
            assert!(r.data().as_array().unwrap().is_empty(), "{}", r.body);
            break;
        }
        assert!(Instant::now() < deadline, "the database never came back: {}", r.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_that_cannot_be_confirmed_in_time_is_outcome_unknown_with_the_message_id() {
    let (app, proxy) = app_behind_proxy().await;
    let user = User::member(100, 12);
    let session = app.open_session(&user, 12).await;
    proxy.arm(Fault::FreezeAfterCommit);
    let started = Instant::now();
    let r = send(&app, &session, &user, "entah").await;
    assert!(started.elapsed() < DEADLINE + Duration::from_secs(1), "answered after {:?}", started.elapsed());
    r.assert_error(504, "outcome_unknown");
    let id = r.field_errors("message_id");
    assert_eq!(id.len(), 1, "{}", r.body);
    assert!(r.header("retry-after").is_none(), "not a plain \"retry me\"");
    proxy.freeze(false);
    // It did commit: the id the answer named is the message stored.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = app.get(&format!("/sessions/{session}/messages"), &user, 12).await;
        if r.status == 200 {
            assert_eq!(r.data()[0]["id"], id[0].as_str(), "{}", r.body);
            break;
        }
        assert!(Instant::now() < deadline, "the database never came back: {}", r.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notification_listener_cut_off_without_a_word_is_noticed_and_streams_catch_up() {
    let (app, _proxy) = app_behind_proxy_with(PgProxy::silence_next_listener).await;
    let user = User::member(100, 12);
    let session = app.open_session(&user, 12).await;
    let mut ws = crate::stream::Ws::connect(&app, &user, 12).await;
    ws.subscribe(&session, None, None).await;
    // Sent while the listener hears nothing: the stream must still get it, once the
    // listener finds itself silent, reconnects, and tells every stream to re-read.
    let sent = send(&app, &session, &user, "lewat jalur lain").await.id();
    let started = Instant::now();
    let got = loop {
        assert!(started.elapsed() < Duration::from_secs(30), "never delivered");
        if let crate::stream::Frame::Json(frame) = ws.next_within(Duration::from_secs(30)).await {
            if frame["event"] == "message.created" {
                break frame;
            }
        }
    };
    assert_eq!(got["id"], sent.as_str());
}
