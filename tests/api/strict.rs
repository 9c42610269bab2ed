//! Strict input (docs/API.md §3.4) and connections a client can reuse
//! after any answer. Parsing does not depend on the backend: SQLite only.

use crate::helpers::{Backend, TestApp, TestOptions, User};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anything_after_the_json_value_is_refused_and_nothing_is_stored() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let user = User::member(100, 12);
    let session = app.open_session(&user, 12).await;
    let url = app.url(&format!("/sessions/{session}/messages"));
    for body in [r#"{"message":"x"} trailing"#, r#"{"message":"x"}{"message":"y"}"#, r#"{"message":"x"} 1"#] {
        let r = app
            .raw(
                app.client
                    .post(&url)
                    .bearer_auth(user.token())
                    .header("X-Tenant-ID", "12")
                    .header("Content-Type", "application/json")
                    .body(body),
            )
            .await;
        r.assert_error(400, "validation_error");
        assert!(!r.field_errors("body").is_empty(), "{body}: {}", r.body);
    }
    // Whitespace after the value is not "anything".
    let r = app
        .raw(
            app.client
                .post(&url)
                .bearer_auth(user.token())
                .header("X-Tenant-ID", "12")
                .header("Content-Type", "application/json")
                .body("{\"message\":\"ok\"}\n  "),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let list = app.get(&format!("/sessions/{session}/messages"), &user, 12).await;
    let texts: Vec<&str> = list.data().as_array().unwrap().iter().map(|m| m["message"].as_str().unwrap()).collect();
    assert_eq!(texts, vec!["ok"], "refused bodies stored nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_tenant_header_or_a_number_with_leading_zeros_is_a_400_naming_the_field() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let agent = User::agent(1);
    let twice = app
        .raw(
            app.client
                .get(app.url("/sessions"))
                .bearer_auth(agent.token())
                .header("X-Tenant-ID", "12")
                .header("X-Tenant-ID", "13"),
        )
        .await;
    twice.assert_error(400, "validation_error");
    assert!(!twice.field_errors("X-Tenant-ID").is_empty(), "{}", twice.body);
    let padded =
        app.raw(app.client.get(app.url("/sessions")).bearer_auth(agent.token()).header("X-Tenant-ID", "04242")).await;
    padded.assert_error(400, "validation_error");
    assert!(!padded.field_errors("X-Tenant-ID").is_empty(), "{}", padded.body);
    let session = app.open_session(&agent, 12).await;
    for (query, field) in
        [("limit=010", "limit"), ("sender_id=07", "sender_id"), ("limit=5&sender_id=0100", "sender_id")]
    {
        let r = app.get(&format!("/sessions/{session}/messages?{query}"), &agent, 12).await;
        r.assert_error(400, "validation_error");
        assert!(!r.field_errors(field).is_empty(), "{query}: {}", r.body);
    }
    let r = app.get("/sessions?agent_id=01", &agent, 12).await;
    r.assert_error(400, "validation_error");
    assert!(!r.field_errors("agent_id").is_empty(), "{}", r.body);
}

/// Reads one HTTP/1.1 response (headers and a `Content-Length` body) from `stream`.
async fn read_response(stream: &mut TcpStream, buf: &mut Vec<u8>) -> (u16, String, Value) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let len: usize = head
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned()))
                .and_then(|v| v.parse().ok())
                .expect("content-length");
            while buf.len() < end + 4 + len {
                read_more(stream, buf, deadline).await;
            }
            let body: Value = serde_json::from_slice(&buf[end + 4..end + 4 + len]).expect("JSON body");
            buf.drain(..end + 4 + len);
            let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("status");
            return (status, head, body);
        }
        read_more(stream, buf, deadline).await;
    }
}

async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>, deadline: tokio::time::Instant) {
    let mut chunk = [0u8; 4096];
    let n = tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await.expect("response in time").expect("read");
    assert!(n > 0, "the server closed a connection it had not said it would close");
    buf.extend_from_slice(&chunk[..n]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_stays_usable_after_refusals_that_never_looked_at_the_body() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let session = app.open_session(&User::member(100, 12), 12).await;
    let outsider = User::outsider(300, 12).token();
    let member = User::member(100, 12).token();
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    let mut buf = Vec::new();
    let body = r#"{"message":"masih di sini?"}"#;
    for round in 0..100 {
        // A refusal (403: the role is not allowed) decided from the headers alone, the body sent late.
        let head = format!(
            "POST {}/sessions/{session}/messages HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {outsider}\r\n\
             X-Tenant-ID: 12\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            app.prefix,
            body.len()
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        if round % 10 == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stream.write_all(body.as_bytes()).await.unwrap();
        // The next request follows at once on the same connection.
        let next = format!(
            "GET {}/sessions/{session}/messages?limit=1 HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {member}\r\n\
             X-Tenant-ID: 12\r\n\r\n",
            app.prefix
        );
        stream.write_all(next.as_bytes()).await.unwrap();
        let (status, _, refused) = read_response(&mut stream, &mut buf).await;
        assert_eq!((status, refused["message"].as_str()), (403, Some("forbidden")), "round {round}");
        let (status, _, page) = read_response(&mut stream, &mut buf).await;
        assert_eq!(status, 200, "round {round}: {page}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_is_not_read_whole_is_answered_with_connection_close() {
    let options = TestOptions { max_body_bytes: 1024, ..TestOptions::default() };
    let app = TestApp::spawn_with(Backend::Sqlite, options).await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    // Declared larger than the limit and never sent: refused from the headers.
    let head = format!(
        "POST {}/sessions HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {}\r\nX-Tenant-ID: 12\r\n\
         Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n",
        app.prefix,
        User::member(100, 12).token()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let (status, head, body) = read_response(&mut stream, &mut buf).await;
    assert_eq!((status, body["message"].as_str()), (413, Some("payload_too_large")));
    assert!(head.to_ascii_lowercase().contains("connection: close"), "{head}");
}

/// POSTs `body` as JSON text, as `user` in tenant 12.
async fn post_text(app: &TestApp, path: &str, user: &User, body: &str) -> crate::helpers::Resp {
    app.raw(
        app.client
            .post(app.url(path))
            .bearer_auth(user.token())
            .header("X-Tenant-ID", "12")
            .header("Content-Type", "application/json")
            .body(body.to_owned()),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_is_valid_json_but_not_an_object_is_a_400_naming_the_body() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let agent = User::agent(1);
    // `[]` and `[1]` were read as the struct's fields in order: `[]` opened a session.
    for body in ["[]", "[1]", " null", "1", "\"x\"", "true", "[] "] {
        let r = post_text(&app, "/sessions", &agent, body).await;
        r.assert_error(400, "validation_error");
        assert!(!r.field_errors("body").is_empty(), "{body}: {}", r.body);
    }
    let list = app.get("/sessions", &agent, 12).await;
    assert_eq!(list.data().as_array().map(Vec::len), Some(0), "nothing was opened: {}", list.body);
    let session = app.open_session(&agent, 12).await;
    for body in [r#"["hi"]"#, "null", r#""hi""#] {
        let r = post_text(&app, &format!("/sessions/{session}/messages"), &agent, body).await;
        r.assert_error(400, "validation_error");
        assert!(!r.field_errors("body").is_empty(), "{body}: {}", r.body);
    }
    let r = post_text(&app, &format!("/sessions/{session}/transfer"), &agent, "[1]").await;
    r.assert_error(400, "validation_error");
    assert!(!r.field_errors("body").is_empty(), "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_in_bodies_are_json_integers_kept_exact() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    // Above 2^53: a reader going through f64 would turn it into ...992.
    let big = 9_007_199_254_740_993_i64;
    let agent = User::agent(big);
    app.set_online(&agent).await;
    // Integral floats, exponents and ids past i64 are refused, never rounded or wrapped.
    for body in [
        r#"{"agent_id": 1.0}"#,
        r#"{"agent_id": 1e0}"#,
        r#"{"agent_id": 9007199254740993.0}"#,
        r#"{"agent_id": 9223372036854775808}"#,
        r#"{"agent_id": -1}"#,
        r#"{"agent_id": 0}"#,
    ] {
        let r = post_text(&app, "/sessions", &agent, body).await;
        r.assert_error(400, "validation_error");
        assert!(!r.field_errors("agent_id").is_empty(), "{body}: {}", r.body);
    }
    let r = post_text(&app, "/sessions", &agent, &format!(r#"{{"agent_id": {big}}}"#)).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.data()["agent_id"].as_i64(), Some(big), "the id comes back digit for digit: {}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_values_are_read_exactly_as_the_document_spells_them() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let agent = User::agent(1);
    let session = app.open_session(&agent, 12).await;
    let messages = format!("/sessions/{session}/messages");
    let refused = [
        (messages.as_str(), "limit=%205", "limit"),
        (messages.as_str(), "limit=5%20", "limit"),
        (messages.as_str(), "limit=%2B5", "limit"),
        (messages.as_str(), "limit=5.0", "limit"),
        (messages.as_str(), "limit=", "limit"),
        (messages.as_str(), "sender_id=%201", "sender_id"),
        (messages.as_str(), "sender_id=", "sender_id"),
        (messages.as_str(), "direction=%20after", "direction"),
        (messages.as_str(), "direction=", "direction"),
        ("/sessions", "status=%20OPEN", "status"),
        ("/sessions", "agent_id=1%20", "agent_id"),
        ("/sessions", "agent_id=9223372036854775808", "agent_id"),
    ];
    for (path, query, field) in refused {
        let r = app.get(&format!("{path}?{query}"), &agent, 12).await;
        r.assert_error(400, "validation_error");
        assert!(!r.field_errors(field).is_empty(), "{query}: {}", r.body);
    }
    for query in ["limit=5", "limit=1000", "sender_id=9223372036854775807", "direction=after"] {
        let r = app.get(&format!("{messages}?{query}"), &agent, 12).await;
        assert_eq!(r.status, 200, "{query}: {}", r.body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn date_bounds_outside_the_calendar_or_without_the_t_are_a_400_never_a_500() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let agent = User::agent(1);
    let session = app.open_session(&agent, 12).await;
    for date in [
        // In range as written, out of range once moved to UTC: this one panicked (500).
        "9999-12-31T23:59:59-01:00",
        "999999-01-01T00:00:00Z",
        "-5000-01-01T00:00:00Z",
        "%2B10000-01-01T00:00:00Z",
        "2026-11-26%2008:00:00Z",
        "2026-11-26X08:00:00Z",
        "2026-11-26",
        "%202026-11-26T08:00:00Z",
        "2026-11-26T08:00:00",
        "2026-13-01T00:00:00Z",
    ] {
        for field in ["start_date", "end_date"] {
            let r = app.get(&format!("/sessions/{session}/messages?{field}={date}"), &agent, 12).await;
            assert_eq!(r.status, 400, "{field}={date}: {}", r.body);
            assert!(!r.field_errors(field).is_empty(), "{field}={date}: {}", r.body);
        }
    }
    for date in
        ["9999-12-31T23:59:59Z", "0000-01-01T00:00:00Z", "2026-11-26t08:00:00.5z", "2026-11-26T08:00:00%2B07:00"]
    {
        let r = app.get(&format!("/sessions/{session}/messages?start_date={date}"), &agent, 12).await;
        assert_eq!(r.status, 200, "{date}: {}", r.body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_frames_that_are_json_but_not_objects_get_the_error_answer() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let mut ws = crate::stream::Ws::connect(&app, &User::agent(1), 12).await;
    for frame in [
        json!([]),
        json!(1),
        Value::Null,
        json!("ping"),
        json!([{"type": "ping"}]),
        json!(["ping"]),
        json!(["subscribe", "00000000-0000-7000-8000-000000000001"]),
        json!(true),
    ] {
        ws.send(frame.clone()).await;
        let answer = ws.next_json().await;
        assert_eq!(
            (answer["type"].as_str(), answer["code"].as_str()),
            (Some("error"), Some("invalid_message")),
            "{frame}: {answer}"
        );
    }
    // The connection is still served.
    ws.send(json!({"type": "ping"})).await;
    assert_eq!(ws.next_json().await["type"], "pong");
}
