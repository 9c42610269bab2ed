//! Connection limits: no client can hold a connection, or every descriptor,
//! by sending slowly or not at all. Transport behaviour: SQLite only.

use crate::helpers::{Backend, TestApp, TestOptions, User};
use livechat::http::server::ConnectionLimits;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn options(header: Duration, idle: Duration, max: usize) -> TestOptions {
    TestOptions {
        connections: ConnectionLimits { header_timeout: header, idle_timeout: idle, max_connections: max },
        ..TestOptions::default()
    }
}

/// How long until the server closes `stream` (reading and discarding what it sends), at most `limit`.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at((started + limit).into(), stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => continue,
        }
    }
}

fn get(app: &TestApp) -> String {
    format!(
        "GET {}/sessions HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {}\r\nX-Tenant-ID: 12\r\n\r\n",
        app.prefix,
        User::agent(1).token()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_and_half_sent_heads_are_closed_after_the_header_timeout() {
    let app =
        TestApp::spawn_with(Backend::Sqlite, options(Duration::from_millis(600), Duration::from_secs(30), 0)).await;
    let mut silent = TcpStream::connect(app.addr).await.unwrap();
    let mut half = TcpStream::connect(app.addr).await.unwrap();
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Slow: ").await.unwrap();
    let (a, b) = tokio::join!(
        closed_within(&mut silent, Duration::from_secs(5)),
        closed_within(&mut half, Duration::from_secs(5))
    );
    for (what, took) in [("silent", a), ("half a head", b)] {
        let took = took.unwrap_or_else(|| panic!("{what}: still open after 5 s"));
        assert!(took >= Duration::from_millis(500), "{what}: closed too early, after {took:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout_not_before() {
    let app =
        TestApp::spawn_with(Backend::Sqlite, options(Duration::from_secs(10), Duration::from_millis(800), 0)).await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    // Requests spaced under the idle timeout keep it open.
    for _ in 0..3 {
        stream.write_all(get(&app).as_bytes()).await.unwrap();
        let mut buf = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await.unwrap().unwrap();
        assert!(
            String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&buf[..n])
        );
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    let took = closed_within(&mut stream, Duration::from_secs(5)).await.expect("closed when idle");
    assert!(took >= Duration::from_millis(300), "closed {took:?} after the last answer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_connection_cap_a_new_connection_gets_503_and_is_closed_then_service_resumes() {
    let app = TestApp::spawn_with(Backend::Sqlite, options(Duration::from_secs(30), Duration::from_secs(30), 4)).await;
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(TcpStream::connect(app.addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut extra = TcpStream::connect(app.addr).await.unwrap();
    extra.write_all(get(&app).as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), extra.read_to_end(&mut answer))
        .await
        .expect("answered and closed")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer).to_string();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.to_ascii_lowercase().contains("connection: close"), "{answer}");
    assert!(answer.contains("\"server_busy\"") && answer.contains("retry-after: 1"), "{answer}");
    // One held connection leaves: a new one is served again.
    drop(held.pop());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = app
            .client
            .get(app.url("/sessions"))
            .bearer_auth(User::agent(1).token())
            .header("X-Tenant-ID", "12")
            .send()
            .await;
        if r.as_ref().is_ok_and(|r| r.status() == 200) {
            break;
        }
        assert!(Instant::now() < deadline, "service did not resume: {r:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_open_file_soft_limit_is_raised_to_the_hard_limit_at_start() {
    let _app = TestApp::spawn(Backend::Sqlite).await;
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let line = limits.lines().find(|l| l.starts_with("Max open files")).unwrap();
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(fields[3], fields[4], "soft and hard limits: {line}");
}
