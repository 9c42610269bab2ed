//! Real time (docs/API.md §12, §13): streams, resume, presence, routing,
//! assignment, read marks and the inbox, on both backends.

use crate::conformance;
use crate::helpers::{Backend, TestApp, TestOptions, User};
use crate::stream::{Frame, Sse, Ws, ticket};
use serde_json::json;
use std::collections::HashSet;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn conversation_reaches_every_subscriber_with_typing_read_and_close(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let agent = User::agent(1);
    let user = User::member(100, 12);
    let session = app.open_session(&user, 12).await;
    let mut agent_ws = Ws::connect(&app, &agent, 12).await;
    let mut user_ws = Ws::connect(&app, &user, 12).await;
    agent_ws.subscribe(&session, None, None).await;
    user_ws.subscribe(&session, Some(12), None).await;

    let sent = app.send(&session, &user, 12, "Halo, ada yang bisa bantu?").await;
    for ws in [&mut agent_ws, &mut user_ws] {
        let ev = ws.next_event("message.created").await;
        assert_eq!(ev["id"], sent.data()["id"]);
        assert_eq!(ev["session_id"], session.as_str());
        assert_eq!(ev["tenant_id"], 12);
        assert_eq!(ev["data"], *sent.data(), "the event carries the whole ChatMessage");
    }

    // Typing reaches the others, not the typist.
    user_ws.send(json!({ "type": "typing", "session_id": session })).await;
    let typing = agent_ws.next_event("typing").await;
    assert_eq!(typing["data"]["user_id"], 100);
    assert!(typing.get("id").is_none(), "typing is ephemeral: no id");

    // Read marks.
    let r = app.post(&format!("/sessions/{session}/read"), &agent, 12, Some(json!({ "message_id": sent.id() }))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let read = user_ws.next_event("read").await;
    assert_eq!(read["data"]["user_id"], 1);
    assert_eq!(read["data"]["message_id"], sent.data()["id"]);

    // Close: session.updated, then the subscription ends.
    assert_eq!(app.post(&format!("/sessions/{session}/close"), &agent, 12, None).await.status, 200);
    for ws in [&mut agent_ws, &mut user_ws] {
        let ev = ws.next_event("session.updated").await;
        assert_eq!(ev["data"]["status"], "CLOSED");
        assert!(ev["id"].is_string());
        let end = ws.next_json().await;
        assert_eq!(end["type"], "unsubscribed");
        assert_eq!(end["reason"], "session_closed");
    }
    user_ws.send(json!({ "type": "ping" })).await;
    assert_eq!(user_ws.next_json().await["type"], "pong");
}

async fn streams_hold_tenant_isolation_and_role_rules(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let other_session = app.open_session(&User::member(200, 13), 13).await;
    let mine = app.open_session(&User::member(100, 12), 12).await;
    let mut ws = Ws::connect(&app, &User::member(100, 12), 12).await;
    // Another tenant: forbidden for a member of 12, whatever the session.
    ws.send(json!({ "type": "subscribe", "session_id": other_session, "tenant_id": 13 })).await;
    let err = ws.next_json().await;
    assert_eq!((err["type"].as_str(), err["code"].as_str()), (Some("error"), Some("forbidden")), "{err}");
    // Another tenant's session asked in one's own tenant: indistinguishable from missing.
    ws.send(json!({ "type": "subscribe", "session_id": other_session })).await;
    let err = ws.next_json().await;
    assert_eq!(err["code"], "not_found", "{err}");
    ws.send(json!({ "type": "subscribe", "session_id": uuid::Uuid::now_v7() })).await;
    assert_eq!(ws.next_json().await["code"], "not_found");
    ws.send(json!({ "type": "watch_inbox" })).await;
    assert_eq!(ws.next_json().await["code"], "forbidden", "only agents watch the inbox");
    ws.send(json!({ "type": "subscribe", "session_id": "nope" })).await;
    assert_eq!(ws.next_json().await["code"], "invalid_message");
    ws.send(json!({ "type": "dance" })).await;
    assert_eq!(ws.next_json().await["code"], "invalid_message");
    ws.send(json!({ "type": "subscribe", "session_id": mine, "last_event_id": uuid::Uuid::now_v7() })).await;
    assert_eq!(ws.next_json().await["code"], "invalid_message", "unknown last_event_id");
    // Nothing of tenant 13 ever arrives.
    app.send(&other_session, &User::member(200, 13), 13, "rahasia").await;
    ws.expect_silence(Duration::from_millis(300)).await;

    // A platform agent may subscribe anywhere.
    let mut agent_ws = Ws::connect(&app, &User::agent(1), 12).await;
    agent_ws.subscribe(&other_session, Some(13), None).await;
    app.send(&other_session, &User::member(200, 13), 13, "halo").await;
    assert_eq!(agent_ws.next_event("message.created").await["data"]["message"], "halo");
}

async fn tickets_are_single_use_short_lived_and_required(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = User::member(100, 12);
    let t = ticket(&app, &user, 12).await;
    assert!(Ws::connect_ticket(app.addr, app.prefix, &t, None).await.is_ok());
    let again = Ws::connect_ticket(app.addr, app.prefix, &t, None).await;
    assert!(again.is_err(), "a ticket works once");
    for bad in ["", "12.nothing", "garbage", "99.abc"] {
        let r = app
            .raw(app.client.get(app.url(&format!("/realtime/ws?ticket={bad}"))).header("Upgrade", "websocket"))
            .await;
        assert!(r.status == 401 || r.status == 400, "{bad}: {}", r.status);
    }
    let r = app.raw(app.client.get(app.url("/realtime/ws"))).await;
    assert_eq!(r.status, 400, "a plain GET is not a handshake: {}", r.body);
    // Tickets need the normal headers.
    let r = app.raw(app.client.post(app.url("/realtime/tickets"))).await;
    r.assert_error(401, "unauthorized");
    let r = app.post("/realtime/tickets", &User::outsider(5, 12), 12, None).await;
    r.assert_error(403, "forbidden");
}

/// Collects `message.created` ids until `want` distinct messages or the stream ends.
async fn collect_messages(ws: &mut Ws, want: usize, seen: &mut Vec<String>) -> bool {
    while seen.len() < want {
        match ws.next().await {
            Frame::Json(f) if f["event"] == "message.created" => seen.push(f["id"].as_str().unwrap().to_owned()),
            Frame::Json(_) => {}
            Frame::Closed(_) | Frame::Ended => return false,
        }
    }
    true
}

async fn resume_after_disconnect_replays_everything_missed_in_order(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let agent = User::agent(1);
    let session = app.open_session(&User::member(100, 12), 12).await;
    let writers = 3;
    let per_writer = 40;
    let total = writers * per_writer;

    let mut ws = Ws::connect(&app, &agent, 12).await;
    ws.subscribe(&session, None, None).await;
    let write = futures::future::join_all((0..writers).map(|w| {
        let app = &app;
        let session = session.clone();
        async move {
            for i in 0..per_writer {
                app.send(&session, &User::member(100 + w as i64, 12), 12, &format!("w{w}-{i}")).await;
            }
        }
    }));
    let read = async {
        let mut seen = Vec::new();
        // Read a part, drop the connection mid-stream, resume from the last id seen.
        collect_messages(&mut ws, 25, &mut seen).await;
        drop(ws);
        let mut rounds = 0;
        while seen.len() < total {
            rounds += 1;
            assert!(rounds < 20, "too many reconnects");
            let mut ws = Ws::connect(&app, &agent, 12).await;
            ws.subscribe(&session, None, seen.last().map(String::as_str)).await;
            let target = (seen.len() + 30).min(total);
            collect_messages(&mut ws, target, &mut seen).await;
        }
        seen
    };
    let (_, seen) = tokio::join!(write, read);
    let distinct: HashSet<&String> = seen.iter().collect();
    assert_eq!(distinct.len(), seen.len(), "no duplicates across reconnects");
    // Same order as the REST listing (commit order).
    let listed = app.get(&format!("/sessions/{session}/messages?limit=100&direction=after"), &agent, 12).await;
    let mut order: Vec<String> =
        listed.data().as_array().unwrap().iter().rev().map(|m| m["id"].as_str().unwrap().to_owned()).collect();
    let next = app
        .get(
            &format!("/sessions/{session}/messages?limit=100&direction=after&cursor={}", order.last().unwrap()),
            &agent,
            12,
        )
        .await;
    order.extend(next.data().as_array().unwrap().iter().rev().map(|m| m["id"].as_str().unwrap().to_owned()));
    assert_eq!(seen, order, "every message exactly once, in commit order");
}

async fn sse_resumes_after_last_event_id(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = User::member(100, 12);
    let session = app.open_session(&user, 12).await;
    let first = app.send(&session, &user, 12, "satu").await.id();
    let second = app.send(&session, &user, 12, "dua").await.id();
    // Resume after the first: the second is replayed, then live ones follow.
    let mut sse = Sse::open(&app, &user, 12, &session, Some(&first)).await;
    let subscribed = sse.next().await.unwrap();
    assert_eq!(subscribed.event, "subscribed");
    let replayed = sse.next().await.unwrap();
    assert_eq!((replayed.event.as_str(), replayed.id.as_deref()), ("message.created", Some(second.as_str())));
    assert_eq!(replayed.data["data"]["message"], "dua");
    let third = app.send(&session, &User::agent(1), 12, "tiga").await.id();
    let live = sse.next().await.unwrap();
    assert_eq!(live.id.as_deref(), Some(third.as_str()));
    // Without Last-Event-ID: live only.
    let mut fresh = Sse::open(&app, &user, 12, &session, None).await;
    assert_eq!(fresh.next().await.unwrap().event, "subscribed");
    let fourth = app.send(&session, &user, 12, "empat").await.id();
    assert_eq!(fresh.next().await.unwrap().id.as_deref(), Some(fourth.as_str()));
    // Refusals come as the envelope, before any stream: another tenant's
    // session is a 404 like a missing one, a bad Last-Event-ID a 400.
    let foreign = app.open_session(&User::member(200, 13), 13).await;
    for (target, last, status, code) in [
        (foreign.clone(), None, 404, "not_found"),
        (uuid::Uuid::now_v7().to_string(), None, 404, "not_found"),
        (session.clone(), Some(uuid::Uuid::now_v7().to_string()), 400, "validation_error"),
        (session.clone(), Some("nope".to_owned()), 400, "validation_error"),
    ] {
        let t = ticket(&app, &user, 12).await;
        let mut req = app.client.get(app.url(&format!("/sessions/{target}/events?ticket={t}")));
        if let Some(id) = last {
            req = req.header("Last-Event-ID", id);
        }
        app.raw(req).await.assert_error(status, code);
    }
    let r = app.raw(app.client.get(app.url(&format!("/sessions/{session}/events?ticket=a&ticket=b")))).await;
    r.assert_error(400, "validation_error");
}

async fn routing_gives_new_sessions_to_the_least_busy_online_agent(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // Nobody online: queued.
    let r = app.post("/sessions", &User::member(100, 1), 1, None).await;
    assert!(r.data().get("agent_id").is_none(), "{}", r.body);
    let (a, b) = (User::agent(501), User::agent(502));
    app.set_online(&a).await;
    app.set_online(&b).await;
    // A tenant-scoped agent of another tenant is never picked here.
    app.set_online(&User::tenant_agent(400, 99)).await;
    let mut counts = std::collections::HashMap::new();
    for tenant in 2..=7 {
        let r = app.post("/sessions", &User::member(100 + tenant, tenant), tenant, None).await;
        assert_eq!(r.status, 201, "{}", r.body);
        let agent = r.data()["agent_id"].as_i64().expect("routed to an online agent");
        assert!(agent == 501 || agent == 502, "{agent}");
        *counts.entry(agent).or_insert(0) += 1;
    }
    assert_eq!(counts.get(&501), Some(&3), "{counts:?}");
    assert_eq!(counts.get(&502), Some(&3), "{counts:?}");
    // The tenant agent of 99 serves 99 (it is the least busy there).
    let r = app.post("/sessions", &User::member(900, 99), 99, None).await;
    assert_eq!(r.data()["agent_id"], 400);
    // Going offline takes an agent out of routing.
    let off = app
        .raw(
            app.client.put(app.url("/agents/me/presence")).bearer_auth(b.token()).json(&json!({ "status": "offline" })),
        )
        .await;
    assert_eq!(off.status, 200);
    let r = app.post("/sessions", &User::member(108, 8), 8, None).await;
    assert_eq!(r.data()["agent_id"], 501);
}

async fn claim_is_atomic_and_transfer_needs_an_online_agent(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let session = app.open_session(&User::member(100, 12), 12).await;
    let mut watcher = Ws::connect(&app, &User::member(100, 12), 12).await;
    watcher.subscribe(&session, None, None).await;
    let claimers = [User::agent(1), User::agent(2), User::tenant_agent(3, 12)];
    let claim_path = format!("/sessions/{session}/claim");
    let results = futures::future::join_all(claimers.iter().map(|a| app.post(&claim_path, a, 12, None))).await;
    let winners: Vec<_> = results.iter().filter(|r| r.status == 200).collect();
    assert_eq!(winners.len(), 1, "{:?}", results.iter().map(|r| r.status).collect::<Vec<_>>());
    for r in results.iter().filter(|r| r.status != 200) {
        r.assert_error(409, "session_already_assigned");
    }
    let holder = winners[0].data()["agent_id"].as_i64().unwrap();
    let ev = watcher.next_event("session.updated").await;
    assert_eq!(ev["data"]["agent_id"], holder);
    // Claiming again as the holder is harmless.
    let holder_user = claimers.iter().find(|u| u.id == holder).unwrap();
    assert_eq!(app.post(&format!("/sessions/{session}/claim"), holder_user, 12, None).await.status, 200);
    // Tenant users cannot claim or transfer.
    app.post(&format!("/sessions/{session}/claim"), &User::member(100, 12), 12, None)
        .await
        .assert_error(403, "forbidden");
    let path = format!("/sessions/{session}/transfer");
    app.post(&path, &User::member(100, 12), 12, Some(json!({ "agent_id": 9 }))).await.assert_error(403, "forbidden");
    // Transfer: offline target refused, online target accepted.
    app.post(&path, holder_user, 12, Some(json!({ "agent_id": 9 }))).await.assert_error(400, "agent_offline");
    app.set_online(&User::agent(9)).await;
    // An online agent who cannot serve this tenant is refused like an offline one.
    app.set_online(&User::tenant_agent(10, 99)).await;
    app.post(&path, holder_user, 12, Some(json!({ "agent_id": 10 }))).await.assert_error(400, "agent_offline");
    let r = app.post(&path, holder_user, 12, Some(json!({ "agent_id": 9 }))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.data()["agent_id"], 9);
    assert_eq!(watcher.next_event("session.updated").await["data"]["agent_id"], 9);
    app.post(&path, holder_user, 12, Some(json!({ "agent_id": 0 }))).await.assert_error(400, "validation_error");
    app.post(&path, holder_user, 12, None).await.assert_error(400, "validation_error");
    let unknown = uuid::Uuid::now_v7();
    app.post(&format!("/sessions/{unknown}/transfer"), holder_user, 12, Some(json!({ "agent_id": 9 })))
        .await
        .assert_error(404, "not_found");
    // A closed session cannot be claimed.
    app.post(&format!("/sessions/{session}/close"), holder_user, 12, None).await;
    app.post(&format!("/sessions/{session}/claim"), &User::agent(1), 12, None).await.assert_error(404, "not_found");
}

async fn inbox_lists_queue_and_own_sessions_across_tenants_with_unread_counts(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let agent = User::agent(1);
    let queued_a = app.open_session(&User::member(100, 12), 12).await;
    let queued_b = app.open_session(&User::member(200, 13), 13).await;
    let mine = app.post("/sessions", &agent, 14, None).await.id();
    let theirs = app.post("/sessions", &User::agent(2), 15, None).await.id();
    app.send(&queued_a, &User::member(100, 12), 12, "tolong").await;
    let last = app.send(&queued_a, &User::member(100, 12), 12, "halo?").await.id();
    app.send(&mine, &agent, 14, "saya sendiri").await;

    let inbox = |query: &'static str, who: &User| {
        app.raw(app.client.get(app.url(&format!("/agent/sessions{query}"))).bearer_auth(who.token()))
    };
    let r = inbox("", &agent).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let ids: Vec<&str> = r.data().as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        vec![mine.as_str(), queued_a.as_str(), queued_b.as_str()],
        "newest activity first; not others' sessions"
    );
    assert!(!ids.contains(&theirs.as_str()));
    let unread: Vec<i64> = r.data().as_array().unwrap().iter().map(|s| s["unread_count"].as_i64().unwrap()).collect();
    assert_eq!(unread, vec![0, 2, 0], "own messages are not unread");
    // Reading moves the count; it never moves back.
    app.post(&format!("/sessions/{queued_a}/read"), &agent, 12, Some(json!({ "message_id": last }))).await;
    let r = inbox("", &agent).await;
    assert_eq!(r.data()[1]["unread_count"], 0);
    // Pages, with a cursor naming the tenant.
    let r = inbox("?limit=2", &agent).await;
    let cursor = r.body["meta"]["pagination"]["next_cursor"].as_str().unwrap().to_owned();
    assert!(cursor.starts_with("12."), "{cursor}");
    let cursor: &'static str = Box::leak(format!("?limit=2&cursor={cursor}").into_boxed_str());
    let r = inbox(cursor, &agent).await;
    assert_eq!(r.data()[0]["id"], queued_b.as_str());
    inbox("?cursor=nonsense", &agent).await.assert_error(400, "validation_error");
    // A tenant-scoped agent sees only its tenants; tenant users none.
    let r = inbox("", &User::tenant_agent(3, 13)).await;
    let ids: Vec<&str> = r.data().as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec![queued_b.as_str()]);
    inbox("", &User::member(100, 12)).await.assert_error(403, "forbidden");
    // Unread counts on the tenant's session list too.
    let r = app.get("/sessions", &User::member(100, 12), 12).await;
    assert_eq!(r.data()[0]["unread_count"], 0, "the member wrote both messages");
}

async fn read_marks_only_move_forward(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = User::member(100, 12);
    let agent = User::agent(1);
    let session = app.open_session(&user, 12).await;
    let m1 = app.send(&session, &user, 12, "satu").await.id();
    let m2 = app.send(&session, &user, 12, "dua").await.id();
    let read_path = format!("/sessions/{session}/read");
    let read = |m: String| app.post(&read_path, &agent, 12, Some(json!({ "message_id": m })));
    assert_eq!(read(m2.clone()).await.status, 200);
    let r = app.get("/sessions", &agent, 12).await;
    assert_eq!(r.data()[0]["unread_count"], 0);
    // An older mark is accepted but changes nothing.
    assert_eq!(read(m1).await.status, 200);
    assert_eq!(app.get("/sessions", &agent, 12).await.data()[0]["unread_count"], 0);
    app.send(&session, &user, 12, "tiga").await;
    assert_eq!(app.get("/sessions", &agent, 12).await.data()[0]["unread_count"], 1);
    let r = read(uuid::Uuid::now_v7().to_string()).await;
    r.assert_error(400, "validation_error");
    assert!(!r.field_errors("message_id").is_empty());
    read("x".into()).await.assert_error(400, "validation_error");
    let other = app
        .post(&format!("/sessions/{}/read", uuid::Uuid::now_v7()), &agent, 12, Some(json!({ "message_id": m2 })))
        .await;
    other.assert_error(404, "not_found");
}

/// The next `presence` event about `agent` (others, such as the watcher's own, are skipped).
async fn next_presence(ws: &mut Ws, agent: i64) -> &'static str {
    loop {
        let ev = ws.next_event("presence").await;
        if ev["data"]["agent_id"] == agent {
            return if ev["data"]["status"] == "online" { "online" } else { "offline" };
        }
    }
}

async fn presence_follows_streams_and_expires_without_heartbeat(backend: Backend) {
    let options = TestOptions { presence_ttl: Duration::from_secs(3), ..TestOptions::default() };
    let app = TestApp::spawn_with(backend, options).await;
    let mut watcher = Ws::connect(&app, &User::agent(1), 12).await;
    watcher.send(json!({ "type": "watch_inbox" })).await;
    assert_eq!(watcher.next_json().await["type"], "watching_inbox");
    let agent = User::agent(77);
    // A live stream makes an agent online; closing it makes it offline.
    let ws = Ws::connect(&app, &agent, 12).await;
    assert_eq!(next_presence(&mut watcher, 77).await, "online");
    // It stays online across heartbeats while the stream lives.
    let started = Instant::now();
    // Longer than the presence period: only the stream's heartbeats keep it online.
    while started.elapsed() < Duration::from_millis(4_000) {
        let r = app.post("/sessions", &User::agent(1), 20, Some(json!({ "agent_id": 77 }))).await;
        assert_eq!(r.status, 201, "still online after {:?}: {}", started.elapsed(), r.body);
        app.post(&format!("/sessions/{}/close", r.id()), &User::agent(1), 20, None).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    ws.close().await;
    assert_eq!(next_presence(&mut watcher, 77).await, "offline");
    // PUT presence without renewal expires within the presence period.
    app.set_online(&User::agent(78)).await;
    assert_eq!(next_presence(&mut watcher, 78).await, "online");
    let started = Instant::now();
    assert_eq!(next_presence(&mut watcher, 78).await, "offline");
    assert!(started.elapsed() < Duration::from_secs(8), "offline after {:?}", started.elapsed());
    let r = app.post("/sessions", &User::agent(1), 21, Some(json!({ "agent_id": 78 }))).await;
    r.assert_error(400, "agent_offline");
    // Presence is for agents.
    let r = app
        .raw(
            app.client
                .put(app.url("/agents/me/presence"))
                .bearer_auth(User::member(5, 12).token())
                .json(&json!({ "status": "online" })),
        )
        .await;
    r.assert_error(403, "forbidden");
    let r = app
        .raw(
            app.client
                .put(app.url("/agents/me/presence"))
                .bearer_auth(agent.token())
                .json(&json!({ "status": "away" })),
        )
        .await;
    r.assert_error(400, "validation_error");
}

async fn inbox_watchers_see_new_queued_sessions(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut scoped = Ws::connect(&app, &User::tenant_agent(3, 12), 12).await;
    scoped.send(json!({ "type": "watch_inbox" })).await;
    assert_eq!(scoped.next_json().await["type"], "watching_inbox");
    app.open_session(&User::member(200, 13), 13).await;
    let mine = app.open_session(&User::member(100, 12), 12).await;
    let ev = scoped.next_event("session.updated").await;
    assert_eq!(ev["data"]["id"], mine.as_str(), "only sessions of its own tenants");
}

async fn slow_consumer_is_cut_off_while_others_keep_up(backend: Backend) {
    let mut options = TestOptions::default();
    options.realtime.queue = 8;
    options.realtime.write_timeout = Duration::from_millis(500);
    let app = TestApp::spawn_with(backend, options).await;
    let agent = User::agent(1);
    let session = app.open_session(&User::member(100, 12), 12).await;
    let mut fast = Ws::connect(&app, &agent, 12).await;
    fast.subscribe(&session, None, None).await;
    let t = ticket(&app, &agent, 12).await;
    let mut slow = Ws::connect_ticket(app.addr, app.prefix, &t, Some(4096)).await.unwrap();
    slow.subscribe(&session, None, None).await;

    // Enough to overflow every socket buffer between the server and a reader
    // that does not read: twice the kernel's largest send buffer.
    let big = "x".repeat(3_900);
    let count = (2 * max_send_buffer() / 4_000).max(2_000);
    let writer = async {
        for _ in 0..count {
            app.send(&session, &User::member(100, 12), 12, &big).await;
        }
    };
    let reader = async {
        let mut seen = Vec::new();
        assert!(collect_messages(&mut fast, count, &mut seen).await, "the fast reader keeps its stream");
        seen
    };
    let ((), fast_seen) = tokio::join!(writer, reader);
    assert_eq!(fast_seen.len(), count);

    // The slow reader now reads what it was sent: its stream ends early (told
    // `lagged` if the server could still write, then closed).
    let mut seen = Vec::new();
    let completed = collect_messages(&mut slow, count, &mut seen).await;
    assert!(!completed, "the slow reader was cut off after {} messages", seen.len());
    assert!(seen.len() < count);
    // It resumes from its last id and gets the rest, exactly once.
    let mut again = Ws::connect(&app, &agent, 12).await;
    again.subscribe(&session, None, seen.last().map(String::as_str)).await;
    assert!(collect_messages(&mut again, count, &mut seen).await);
    let distinct: HashSet<&String> = seen.iter().collect();
    assert_eq!(distinct.len(), count);
    assert_eq!(seen, fast_seen);
}

/// The largest TCP send buffer the kernel may grow to (Linux), or 4 MiB.
fn max_send_buffer() -> usize {
    std::fs::read_to_string("/proc/sys/net/ipv4/tcp_wmem")
        .ok()
        .and_then(|s| s.split_whitespace().nth(2).and_then(|v| v.parse().ok()))
        .unwrap_or(4 << 20)
}

async fn shutdown_closes_streams_with_going_away(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let session = app.open_session(&User::member(100, 12), 12).await;
    let mut ws = Ws::connect(&app, &User::agent(1), 12).await;
    ws.subscribe(&session, None, None).await;
    let (addr, prefix) = (app.addr, app.prefix);
    let stopping = tokio::spawn(app.stop());
    let frame = ws.next().await;
    assert!(matches!(frame, Frame::Closed(1001)), "expected close 1001, got {frame:?}");
    tokio::time::timeout(Duration::from_secs(20), stopping).await.expect("server stops").unwrap();
    assert!(Ws::connect_ticket(addr, prefix, "1.x", None).await.is_err(), "the node is gone");
}

async fn heartbeats_token_expiry_and_typing_limits_are_enforced(backend: Backend) {
    let mut options = TestOptions::default();
    options.realtime.ping_interval = Duration::from_millis(300);
    options.realtime.idle_timeout = Duration::from_secs(2);
    options.realtime.typing_interval = Duration::from_secs(30);
    let app = TestApp::spawn_with(backend, options).await;
    let user = User::member(100, 12);
    let session = app.open_session(&user, 12).await;

    // A client that vanished (it never answers pings) is closed as idle. A raw
    // socket plays it: a WebSocket library would answer pings by itself.
    let t = ticket(&app, &User::agent(1), 12).await;
    let mut raw = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let handshake = format!(
        "GET {}/realtime/ws?ticket={t} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        app.prefix, app.addr
    );
    raw.write_all(handshake.as_bytes()).await.unwrap();
    let mut received = Vec::new();
    let read_all = async {
        let mut buf = [0u8; 4096];
        loop {
            match raw.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read_all).await.expect("the server ends the idle stream");
    assert!(received.starts_with(b"HTTP/1.1 101"), "handshake accepted");
    // An unmasked close frame carrying 4002.
    let close_4002 = [0x88u8, 0x06, 0x0f, 0xa2];
    assert!(received.windows(4).any(|w| w == close_4002), "closed with 4002");
    assert!(received.windows(2).filter(|w| *w == [0x89, 0x00]).count() >= 2, "pinged before giving up");

    // A client that reads (and so answers pings) stays connected past the idle timeout.
    let mut lively = Ws::connect(&app, &User::agent(1), 12).await;
    lively.subscribe(&session, None, None).await;
    lively.expect_silence(Duration::from_millis(3_000)).await;
    lively.send(json!({ "type": "ping" })).await;
    assert_eq!(lively.next_json().await["type"], "pong");

    // Typing is rate-limited: a burst yields one notice.
    let mut typist = Ws::connect(&app, &user, 12).await;
    typist.subscribe(&session, None, None).await;
    for _ in 0..5 {
        typist.send(json!({ "type": "typing", "session_id": session })).await;
    }
    assert_eq!(lively.next_event("typing").await["data"]["user_id"], 100);
    lively.expect_silence(Duration::from_millis(500)).await;
    typist.send(json!({ "type": "typing", "session_id": uuid::Uuid::now_v7() })).await;
    assert_eq!(typist.next_json().await["code"], "not_subscribed");

    // The stream ends when the token behind its ticket expires.
    let short = user.token_with(|c| c.exp = time::OffsetDateTime::now_utc().unix_timestamp() + 2);
    let r = app.raw(app.client.post(app.url("/realtime/tickets")).bearer_auth(short).header("X-Tenant-ID", "12")).await;
    assert_eq!(r.status, 201);
    let t = r.data()["ticket"].as_str().unwrap().to_owned();
    let mut expiring = Ws::connect_ticket(app.addr, app.prefix, &t, None).await.unwrap();
    expiring.subscribe(&session, None, None).await;
    let started = Instant::now();
    let mut end = None;
    for _ in 0..50 {
        match expiring.next().await {
            Frame::Closed(code) => {
                end = Some(code);
                break;
            }
            Frame::Ended => break,
            Frame::Json(_) => {}
        }
    }
    assert_eq!(end, Some(4001));
    assert!(started.elapsed() < Duration::from_secs(5));
}

async fn an_agent_is_online_as_soon_as_its_stream_handshake_completes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let opener = User::agent(1);
    for (i, tenant) in (40..50).enumerate() {
        let agent = User::agent(500 + i64::try_from(i).unwrap());
        let _ws = Ws::connect(&app, &agent, tenant).await;
        // Straight after the handshake: no wait for a background write.
        let r = app.post("/sessions", &opener, tenant, Some(json!({ "agent_id": agent.id }))).await;
        assert_eq!(r.status, 201, "try {i}: {}", r.body);
        assert_eq!(r.data()["agent_id"], agent.id);
    }
}

async fn a_ticket_is_refused_for_a_token_already_past_its_expiry(backend: Backend) {
    let options = TestOptions { leeway_secs: 30, ..TestOptions::default() };
    let app = TestApp::spawn_with(backend, options).await;
    let user = User::member(100, 12);
    let stale = user.token_with(|c| c.exp = c.iat - 5);
    // Within the leeway the token still passes on ordinary requests…
    let r = app.raw(app.client.get(app.url("/sessions")).bearer_auth(&stale).header("X-Tenant-ID", "12")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    // …but a stream would end at once: no ticket for it.
    let r =
        app.raw(app.client.post(app.url("/realtime/tickets")).bearer_auth(&stale).header("X-Tenant-ID", "12")).await;
    r.assert_error(401, "unauthorized");
}

async fn unsubscribing_from_a_session_not_followed_is_answered(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = User::member(100, 12);
    let session = app.open_session(&user, 12).await;
    let mut ws = Ws::connect(&app, &user, 12).await;
    ws.send(json!({ "type": "unsubscribe", "session_id": session })).await;
    let frame = ws.next_json().await;
    assert_eq!((frame["type"].as_str(), frame["code"].as_str()), (Some("error"), Some("not_subscribed")), "{frame}");
    assert_eq!(frame["session_id"], session.as_str());
    ws.subscribe(&session, None, None).await;
    ws.send(json!({ "type": "unsubscribe", "session_id": session })).await;
    let frame = ws.next_json().await;
    assert_eq!(
        (frame["type"].as_str(), frame["reason"].as_str()),
        (Some("unsubscribed"), Some("requested")),
        "{frame}"
    );
}

conformance!(
    an_agent_is_online_as_soon_as_its_stream_handshake_completes,
    a_ticket_is_refused_for_a_token_already_past_its_expiry,
    unsubscribing_from_a_session_not_followed_is_answered,
    conversation_reaches_every_subscriber_with_typing_read_and_close,
    streams_hold_tenant_isolation_and_role_rules,
    tickets_are_single_use_short_lived_and_required,
    resume_after_disconnect_replays_everything_missed_in_order,
    sse_resumes_after_last_event_id,
    routing_gives_new_sessions_to_the_least_busy_online_agent,
    claim_is_atomic_and_transfer_needs_an_online_agent,
    inbox_lists_queue_and_own_sessions_across_tenants_with_unread_counts,
    read_marks_only_move_forward,
    presence_follows_streams_and_expires_without_heartbeat,
    inbox_watchers_see_new_queued_sessions,
    slow_consumer_is_cut_off_while_others_keep_up,
    shutdown_closes_streams_with_going_away,
    heartbeats_token_expiry_and_typing_limits_are_enforced,
);
