//! Several nodes on one PostgreSQL database, and recovery when the database
//! restarts underneath a running node.

use crate::helpers::{Backend, TempDir, TestDb, User, read, temp_dir};
use crate::node::Node;
use crate::stream::{Frame, Ws};
use serde_json::json;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_one_database_share_one_world() {
    let db = TestDb::create(Backend::Postgres).await;
    // Both start (and migrate) at once: the migration lock makes them take turns.
    let (a, b) = tokio::join!(Node::start(db.url(), &[]), Node::start(db.url(), &[]));
    let user = User::member(100, 12);
    let agent = User::agent(1);

    let opened = a.post("/sessions", &user, 12, None).await;
    assert_eq!(opened.status, 201, "{}", opened.body);
    let session = opened.id();
    let seen_on_b = b.get(&format!("/sessions/{session}"), &agent, 12).await;
    assert_eq!(seen_on_b.status, 200);
    assert_eq!(seen_on_b.data(), opened.data());
    let sent =
        b.post(&format!("/sessions/{session}/messages"), &agent, 12, Some(json!({ "message": "dari node B" }))).await;
    assert_eq!(sent.status, 201);
    let listed = a.get(&format!("/sessions/{session}/messages"), &user, 12).await;
    assert_eq!(listed.data()[0]["id"], sent.data()["id"]);
    // The open session is visible as "already active" from the other node.
    let again = b.post("/sessions", &agent, 12, None).await;
    again.assert_error(400, "session_already_active");
    assert_eq!(again.field_errors("session_id"), vec![session.clone()]);

    // Two nodes racing to open a session for one tenant: exactly one wins.
    let racers = futures::future::join_all((0..12).map(|i| {
        let node = if i % 2 == 0 { &a } else { &b };
        async move { node.post("/sessions", &User::member(200 + i, 13), 13, None).await }
    }))
    .await;
    assert_eq!(
        racers.iter().filter(|r| r.status == 201).count(),
        1,
        "{:?}",
        racers.iter().map(|r| r.status).collect::<Vec<_>>()
    );

    // Writers on both nodes, a poller on B: every message seen once, in commit order.
    let writers = futures::future::join_all((0..4).map(|w| {
        let node = if w % 2 == 0 { &a } else { &b };
        let session = session.clone();
        async move {
            for i in 0..40 {
                let r = node
                    .post(
                        &format!("/sessions/{session}/messages"),
                        &User::member(300 + w, 12),
                        12,
                        Some(json!({ "message": format!("w{w}-{i}") })),
                    )
                    .await;
                assert_eq!(r.status, 201);
            }
        }
    }));
    let poller = async {
        let started = Instant::now();
        let mut cursor = sent.id();
        let mut got = Vec::new();
        while got.len() < 160 {
            assert!(started.elapsed() < Duration::from_secs(120), "poller saw {} of 160", got.len());
            let r = b
                .get(&format!("/sessions/{session}/messages?direction=after&limit=9&cursor={cursor}"), &agent, 12)
                .await;
            let mut page: Vec<(String, String)> = r
                .data()
                .as_array()
                .unwrap()
                .iter()
                .map(|m| (m["id"].as_str().unwrap().to_owned(), m["created_at"].as_str().unwrap().to_owned()))
                .collect();
            page.reverse();
            if let Some((id, _)) = page.last() {
                cursor = id.clone();
            } else {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            got.extend(page);
        }
        got
    };
    let (_, polled) = tokio::join!(writers, poller);
    let ids: HashSet<&String> = polled.iter().map(|(id, _)| id).collect();
    assert_eq!(ids.len(), 160, "no duplicates");
    assert!(polled.windows(2).all(|w| w[0].1 < w[1].1), "commit order with strictly increasing created_at");
    let all = a
        .get(&format!("/sessions/{session}/messages?limit=100&direction=after&cursor={}", sent.id()), &agent, 12)
        .await;
    assert_eq!(all.body["meta"]["pagination"]["has_prev"], true, "more than one page of later messages");

    let (status_a, _) = a.terminate().await;
    let (status_b, _) = b.terminate().await;
    assert!(status_a.success() && status_b.success(), "nodes exit cleanly on SIGTERM");
}

/// A private PostgreSQL cluster (initdb in a temporary directory, its own
/// port), so the test can stop and start it without touching the shared one.
pub struct PrivatePostgres {
    bin: PathBuf,
    dir: TempDir,
    port: u16,
}

impl PrivatePostgres {
    fn bin_dir() -> PathBuf {
        let root = Path::new("/usr/lib/postgresql");
        let mut versions: Vec<PathBuf> = std::fs::read_dir(root)
            .unwrap_or_else(|e| panic!("PostgreSQL server binaries are required under {}: {e}", root.display()))
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|p| p.join("initdb").exists())
            .collect();
        versions.sort();
        versions.pop().expect("an initdb under /usr/lib/postgresql/*/bin")
    }

    /// Runs a PostgreSQL tool as the `postgres` user (initdb refuses root).
    fn run(&self, tool: &str, args: &[&str]) {
        let tool = self.bin.join(tool);
        let out = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(&tool)
            .args(args)
            .output()
            .expect("run PostgreSQL tool");
        assert!(
            out.status.success(),
            "{} {args:?} failed: {}{}",
            tool.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn start_new() -> Self {
        let dir = temp_dir();
        let status = Command::new("chown").args(["-R", "postgres:postgres"]).arg(dir.path()).status().expect("chown");
        assert!(status.success());
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let pg = Self { bin: Self::bin_dir(), dir, port };
        let data = pg.data();
        pg.run("initdb", &["-D", &data, "-A", "trust", "-U", "postgres", "--no-sync"]);
        pg.start();
        pg
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    pub fn start(&self) {
        let opts =
            format!("-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=on", self.port, self.dir.path().display());
        let log = self.dir.path().join("pg.log").display().to_string();
        self.run("pg_ctl", &["-D", &self.data(), "-o", &opts, "-l", &log, "-w", "-t", "60", "start"]);
    }

    /// Stops the server abruptly: no checkpoint, like a crash.
    pub fn crash(&self) {
        self.run("pg_ctl", &["-D", &self.data(), "-m", "immediate", "-w", "stop"]);
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args(["-D", &self.data(), "-m", "immediate", "stop"])
            .output();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_recovers_by_itself_after_the_database_restarts() {
    let pg = tokio::task::spawn_blocking(PrivatePostgres::start_new).await.unwrap();
    let node =
        Node::start(&pg.url(), &[("LIVECHAT_DB_ACQUIRE_TIMEOUT", "1s"), ("LIVECHAT_DB_RETRY_INTERVAL", "300ms")]).await;
    let user = User::member(100, 12);
    let session = node.post("/sessions", &user, 12, None).await.id();
    let mut acknowledged = Vec::new();
    for i in 0..20 {
        let r = node
            .post(
                &format!("/sessions/{session}/messages"),
                &user,
                12,
                Some(json!({ "message": format!("sebelum {i}") })),
            )
            .await;
        assert_eq!(r.status, 201);
        acknowledged.push(r.id());
    }

    let pg = tokio::task::spawn_blocking(move || {
        pg.crash();
        pg
    })
    .await
    .unwrap();

    // While it is down: 503 storage_unavailable, quickly, never a hang.
    let mut fast = 0;
    for _ in 0..10 {
        let started = Instant::now();
        let r = node
            .post(&format!("/sessions/{session}/messages"), &user, 12, Some(json!({ "message": "saat mati" })))
            .await;
        r.assert_error(503, "storage_unavailable");
        assert!(r.header("retry-after").is_some());
        assert!(started.elapsed() < Duration::from_secs(5), "a request hung for {:?}", started.elapsed());
        if started.elapsed() < Duration::from_millis(500) {
            fast += 1;
        }
    }
    assert!(fast >= 5, "most requests during the outage should fail fast, {fast} of 10 did");
    let ready = read(node.client.get(format!("http://{}/readyz", node.addr)).send().await.unwrap()).await;
    assert_eq!(ready.status, 503);

    let pg = tokio::task::spawn_blocking(move || {
        pg.start();
        pg
    })
    .await
    .unwrap();

    // Recovery without restarting the node.
    let started = Instant::now();
    loop {
        let r = node.get(&format!("/sessions/{session}/messages?limit=100"), &user, 12).await;
        if r.status == 200 {
            let ids: Vec<String> =
                r.data().as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().to_owned()).collect();
            let got: HashSet<&String> = ids.iter().collect();
            assert!(acknowledged.iter().all(|id| got.contains(id)), "an acknowledged message was lost");
            assert_eq!(ids.len(), acknowledged.len(), "nothing half-written during the outage");
            break;
        }
        r.assert_error(503, "storage_unavailable");
        assert!(started.elapsed() < Duration::from_secs(30), "node did not recover: {}", r.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = node.post(&format!("/sessions/{session}/messages"), &user, 12, Some(json!({ "message": "sesudah" }))).await;
    assert_eq!(r.status, 201);
    let ready = read(node.client.get(format!("http://{}/readyz", node.addr)).send().await.unwrap()).await;
    assert_eq!(ready.status, 200);
    let (status, _) = node.terminate().await;
    assert!(status.success());
    drop(pg);
}

async fn node_ticket(node: &Node, user: &User, tenant: i64) -> String {
    let r = node.post("/realtime/tickets", user, tenant, None).await;
    assert_eq!(r.status, 201, "{}", r.body);
    r.data()["ticket"].as_str().unwrap().to_owned()
}

async fn node_ws(node: &Node, issuer: &Node, user: &User, tenant: i64) -> Ws {
    // Tickets live in the database: one node issues, another redeems.
    let ticket = node_ticket(issuer, user, tenant).await;
    Ws::connect_ticket(node.addr, "/api/livechat", &ticket, None).await.expect("websocket opens")
}

async fn presence_of(ws: &mut Ws, agent: i64) -> String {
    loop {
        let ev = ws.next_event("presence").await;
        if ev["data"]["agent_id"] == agent {
            return ev["data"]["status"].as_str().unwrap().to_owned();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversation_spans_nodes_and_a_crashed_node_s_agents_go_offline() {
    let db = TestDb::create(Backend::Postgres).await;
    let env = [("LIVECHAT_PRESENCE_TTL", "1500ms"), ("LIVECHAT_STREAM_PING_INTERVAL", "1s")];
    let (a, b) = tokio::join!(Node::start(db.url(), &env), Node::start(db.url(), &env));
    let user = User::member(100, 12);
    let agent = User::agent(1);
    let session = a.post("/sessions", &user, 12, None).await.id();

    let mut user_ws = node_ws(&a, &b, &user, 12).await;
    let mut agent_ws = node_ws(&b, &a, &agent, 12).await;
    user_ws.subscribe(&session, None, None).await;
    agent_ws.subscribe(&session, None, None).await;
    agent_ws.send(json!({ "type": "watch_inbox" })).await;

    // Written on A, delivered on B; written on B, delivered on A.
    let hello = a.post(&format!("/sessions/{session}/messages"), &user, 12, Some(json!({ "message": "dari A" }))).await;
    assert_eq!(agent_ws.next_event("message.created").await["id"], hello.data()["id"]);
    let reply =
        b.post(&format!("/sessions/{session}/messages"), &agent, 12, Some(json!({ "message": "dari B" }))).await;
    assert_eq!(user_ws.next_event("message.created").await["id"], hello.data()["id"], "its own message first");
    assert_eq!(user_ws.next_event("message.created").await["id"], reply.data()["id"]);
    // Typing crosses nodes too.
    user_ws.send(json!({ "type": "typing", "session_id": session })).await;
    assert_eq!(agent_ws.next_event("typing").await["data"]["user_id"], 100);

    // Resume across nodes: disconnect from A, miss messages written on B, reconnect to B.
    let last_seen = reply.id();
    user_ws.close().await;
    let mut missed = Vec::new();
    for i in 0..5 {
        let r = b
            .post(&format!("/sessions/{session}/messages"), &agent, 12, Some(json!({ "message": format!("m{i}") })))
            .await;
        missed.push(r.id());
    }
    let mut user_ws = node_ws(&b, &a, &user, 12).await;
    user_ws.subscribe(&session, None, Some(&last_seen)).await;
    for id in &missed {
        assert_eq!(&user_ws.next_event("message.created").await["id"], id);
    }

    // An agent whose node crashes goes offline for everyone within seconds.
    let mut c = Node::start(db.url(), &env).await;
    let crashing = User::agent(77);
    let _held = node_ws(&c, &a, &crashing, 12).await;
    assert_eq!(presence_of(&mut agent_ws, 77).await, "online");
    c.child.start_kill().expect("kill -9");
    let _ = c.child.wait().await;
    let started = Instant::now();
    assert_eq!(presence_of(&mut agent_ws, 77).await, "offline");
    assert!(started.elapsed() < Duration::from_secs(6), "offline after {:?}", started.elapsed());

    // Closing on B ends the subscription on A's client (now on B) and on B.
    let closed = b.post(&format!("/sessions/{session}/close"), &agent, 12, None).await;
    assert_eq!(closed.status, 200);
    let ev = user_ws.next_event("session.updated").await;
    assert_eq!(ev["data"]["status"], "CLOSED");
    assert_eq!(user_ws.next_json().await["reason"], "session_closed");

    // Graceful shutdown says "going away" so clients reconnect elsewhere.
    let (status, _) = b.terminate().await;
    assert!(status.success());
    let mut closed_code = None;
    for _ in 0..50 {
        match agent_ws.next().await {
            Frame::Closed(code) => {
                closed_code = Some(code);
                break;
            }
            Frame::Ended => break,
            Frame::Json(_) => {}
        }
    }
    assert_eq!(closed_code, Some(1001));
    a.terminate().await;
}
