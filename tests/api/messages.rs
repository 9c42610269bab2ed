//! Messages: sending, validation, idempotency and filters (docs/API.md §11, §8).

use crate::conformance;
use crate::helpers::{Backend, TestApp, User};
use serde_json::{Value, json};

fn ids(r: &crate::helpers::Resp) -> Vec<String> {
    r.data().as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().to_owned()).collect()
}

fn texts(r: &crate::helpers::Resp) -> Vec<String> {
    r.data().as_array().unwrap().iter().map(|m| m["message"].as_str().unwrap().to_owned()).collect()
}

async fn sent_message_is_returned_whole_and_moves_the_session(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = User::member(100, 12);
    let session = app.open_session(&user, 12).await;
    let r = app.send(&session, &user, 12, "  Halo, saya butuh bantuan  ").await;
    let m = r.data();
    assert_eq!(m["session_id"], session.as_str());
    assert_eq!(m["sender_id"], 100);
    assert_eq!(m["message"], "Halo, saya butuh bantuan", "stored trimmed");
    assert_eq!(uuid::Uuid::parse_str(m["id"].as_str().unwrap()).unwrap().get_version_num(), 7);
    let created = m["created_at"].as_str().unwrap();
    assert!(created.ends_with('Z') && created.len() == "2026-11-26T08:00:00.123456Z".len(), "{created}");
    let s = app.get(&format!("/sessions/{session}"), &user, 12).await;
    assert_eq!(s.data()["updated_at"], created);
    // The agent writes in the same session.
    let r = app.send(&session, &User::agent(1), 12, "Siap membantu").await;
    assert_eq!(r.data()["sender_id"], 1);
}

async fn invalid_messages_are_rejected_per_field(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = User::member(100, 12);
    let session = app.open_session(&user, 12).await;
    let path = format!("/sessions/{session}/messages");
    let long = "x".repeat(4_001);
    for body in [
        json!({ "message": "" }),
        json!({ "message": " \n\t " }),
        json!({ "message": long }),
        json!({ "message": 5 }),
        json!({}),
        json!({ "message": null }),
        json!({ "message": "a\0b" }),
    ] {
        let r = app.post(&path, &user, 12, Some(body.clone())).await;
        r.assert_error(400, "validation_error");
        assert!(!r.field_errors("message").is_empty(), "{body}: {}", r.body);
    }
    let r = app.post(&path, &user, 12, None).await;
    r.assert_error(400, "validation_error");
    assert!(!r.field_errors("message").is_empty());
    // Exactly 4,000 characters (multi-byte) is fine.
    let r = app.post(&path, &user, 12, Some(json!({ "message": "é".repeat(4_000) }))).await;
    assert_eq!(r.status, 201);
    let list = app.get(&format!("{path}?limit=100"), &user, 12).await;
    assert_eq!(list.data().as_array().unwrap().len(), 1, "rejected messages were not stored");
}

async fn closed_session_rejects_new_messages_with_404_but_stays_readable(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = User::member(100, 12);
    let session = app.open_session(&user, 12).await;
    app.send(&session, &user, 12, "sebelum ditutup").await;
    assert_eq!(app.post(&format!("/sessions/{session}/close"), &User::agent(1), 12, None).await.status, 200);
    let r = app.post(&format!("/sessions/{session}/messages"), &user, 12, Some(json!({ "message": "halo?" }))).await;
    r.assert_error(404, "not_found");
    let r = app.get(&format!("/sessions/{session}/messages"), &user, 12).await;
    assert_eq!(r.status, 200);
    assert_eq!(texts(&r), vec!["sebelum ditutup"]);
    // Unknown session and another tenant's session: 404 for both verbs.
    let unknown = uuid::Uuid::now_v7();
    app.post(&format!("/sessions/{unknown}/messages"), &user, 12, Some(json!({ "message": "x" })))
        .await
        .assert_error(404, "not_found");
    app.get(&format!("/sessions/{unknown}/messages"), &user, 12).await.assert_error(404, "not_found");
    app.get(&format!("/sessions/{session}/messages"), &User::agent(1), 13).await.assert_error(404, "not_found");
}

async fn idempotent_retry_returns_the_original_and_stores_nothing_new(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = User::member(100, 12);
    let session = app.open_session(&user, 12).await;
    let url = app.url(&format!("/sessions/{session}/messages"));
    let send = |key: &'static str, text: &'static str, who: &User| {
        app.client
            .post(&url)
            .bearer_auth(who.token())
            .header("X-Tenant-ID", "12")
            .header("Idempotency-Key", key)
            .json(&json!({ "message": text }))
    };
    let first = app.raw(send("retry-1", "pesan penting", &user)).await;
    assert_eq!(first.status, 201);
    assert!(first.header("idempotent-replayed").is_none());
    let again = app.raw(send("retry-1", "pesan penting", &user)).await;
    assert_eq!(again.status, 201);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.data(), first.data());
    let reused = app.raw(send("retry-1", "pesan lain", &user)).await;
    reused.assert_error(422, "idempotency_key_reused");
    // The key is per sender: another sender may use the same key.
    let other = app.raw(send("retry-1", "pesan penting", &User::agent(1))).await;
    assert_eq!(other.status, 201);
    assert_ne!(other.id(), first.id());
    // Concurrent retries of one key still create exactly one message.
    let racers = futures::future::join_all((0..8).map(|_| app.raw(send("race", "sekali saja", &user)))).await;
    assert!(racers.iter().all(|r| r.status == 201), "{:?}", racers.iter().map(|r| r.status).collect::<Vec<_>>());
    let distinct: std::collections::HashSet<String> = racers.iter().map(|r| r.id()).collect();
    assert_eq!(distinct.len(), 1);
    let list = app.get(&format!("/sessions/{session}/messages?limit=100"), &user, 12).await;
    assert_eq!(list.data().as_array().unwrap().len(), 3);
    // A retry that arrives after the session closed still gets the original.
    assert_eq!(app.post(&format!("/sessions/{session}/close"), &User::agent(1), 12, None).await.status, 200);
    let late = app.raw(send("retry-1", "pesan penting", &user)).await;
    assert_eq!(late.status, 201, "{}", late.body);
    assert_eq!(late.header("idempotent-replayed"), Some("true"));
    assert_eq!(late.data(), first.data());
    app.raw(send("fresh-key", "pesan baru", &user)).await.assert_error(404, "not_found");
    // Bad keys are a validation error.
    let long_key: &'static str = Box::leak("k".repeat(256).into_boxed_str());
    app.raw(send(long_key, "x", &user)).await.assert_error(400, "validation_error");
}

async fn term_search_is_a_literal_case_insensitive_substring(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = User::member(100, 12);
    let session = app.open_session(&user, 12).await;
    for text in ["Diskon 50% untuk ANGGOTA", "diskon_khusus", "Tidak ada diskon", "ÉTÉ promo", "lain"] {
        app.send(&session, &user, 12, text).await;
    }
    let path = format!("/sessions/{session}/messages?limit=100&term=");
    let q = |term: &str| format!("{path}{}", urlencode(term));
    let r = app.get(&q("DISKON"), &user, 12).await;
    assert_eq!(texts(&r), vec!["Tidak ada diskon", "diskon_khusus", "Diskon 50% untuk ANGGOTA"]);
    assert_eq!(texts(&app.get(&q("50%"), &user, 12).await), vec!["Diskon 50% untuk ANGGOTA"]);
    assert_eq!(texts(&app.get(&q("n_k"), &user, 12).await), vec!["diskon_khusus"]);
    assert!(texts(&app.get(&q("d%n"), &user, 12).await).is_empty(), "% is literal");
    assert_eq!(texts(&app.get(&q("été"), &user, 12).await), vec!["ÉTÉ promo"]);
    assert_eq!(texts(&app.get(&q("l"), &user, 12).await), vec!["lain"], "one-character terms work too");
    assert_eq!(texts(&app.get(&q("É"), &user, 12).await), vec!["ÉTÉ promo"], "and fold case beyond ASCII");
    assert_eq!(texts(&app.get(&q("Kh"), &user, 12).await), vec!["diskon_khusus"], "two characters");
    assert_eq!(texts(&app.get(&q(" anggota "), &user, 12).await), vec!["Diskon 50% untuk ANGGOTA"], "trimmed");
    assert_eq!(texts(&app.get(&q("\"quoted\""), &user, 12).await), Vec::<String>::new());
    for bad in ["", "   ", &"a".repeat(201), "a\0"] {
        let r = app.get(&q(bad), &user, 12).await;
        r.assert_error(400, "validation_error");
        assert!(!r.field_errors("term").is_empty());
    }
}

async fn sender_and_date_filters_are_inclusive_and_round_trip(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = User::member(100, 12);
    let agent = User::agent(1);
    let session = app.open_session(&user, 12).await;
    let mut sent: Vec<Value> = Vec::new();
    for i in 0..6 {
        let who = if i % 2 == 0 { &user } else { &agent };
        sent.push(app.send(&session, who, 12, &format!("m{i}")).await.data().clone());
    }
    let base = format!("/sessions/{session}/messages?limit=100");
    let r = app.get(&format!("{base}&sender_id=1"), &user, 12).await;
    assert_eq!(texts(&r), vec!["m5", "m3", "m1"]);
    let start = sent[1]["created_at"].as_str().unwrap();
    let end = sent[3]["created_at"].as_str().unwrap();
    let r = app.get(&format!("{base}&start_date={start}&end_date={end}"), &user, 12).await;
    assert_eq!(texts(&r), vec!["m3", "m2", "m1"], "bounds are inclusive and exact to the microsecond");
    let r = app.get(&format!("{base}&start_date={start}&end_date={end}&sender_id=100"), &user, 12).await;
    assert_eq!(texts(&r), vec!["m2"]);
    let r = app.get(&format!("{base}&start_date={end}&end_date={end}"), &user, 12).await;
    assert_eq!(texts(&r), vec!["m3"]);
    // The same instant in another offset matches too.
    let r = app.get(&format!("{base}&start_date=2000-01-01T07:00:00%2B07:00"), &user, 12).await;
    assert_eq!(r.data().as_array().unwrap().len(), 6);
    for bad in [
        "start_date=2026-11-26",
        "end_date=yesterday",
        "sender_id=abc",
        "sender_id=0",
        "limit=0",
        "limit=-1",
        "limit=1.5",
        "limit=ten",
        "direction=sideways",
    ] {
        app.get(&format!("/sessions/{session}/messages?{bad}"), &user, 12).await.assert_error(400, "validation_error");
    }
    let r = app.get(&format!("/sessions/{session}/messages?start_date={end}&end_date={start}"), &user, 12).await;
    r.assert_error(400, "validation_error");
    assert!(!r.field_errors("start_date").is_empty());
}

async fn limit_defaults_to_ten_and_clamps_to_one_hundred(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = User::member(100, 12);
    let session = app.open_session(&user, 12).await;
    for i in 0..105 {
        app.send(&session, &user, 12, &format!("m{i}")).await;
    }
    let r = app.get(&format!("/sessions/{session}/messages"), &user, 12).await;
    assert_eq!(r.data().as_array().unwrap().len(), 10);
    assert_eq!(r.body["meta"]["pagination"]["limit"], 10);
    assert_eq!(texts(&r)[0], "m104");
    let r = app.get(&format!("/sessions/{session}/messages?limit=500"), &user, 12).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.data().as_array().unwrap().len(), 100);
    assert_eq!(r.body["meta"]["pagination"]["limit"], 100);
}

async fn cursor_must_be_a_message_of_this_session(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = User::member(100, 12);
    let session = app.open_session(&user, 12).await;
    let mine = app.send(&session, &user, 12, "a").await.id();
    app.post(&format!("/sessions/{session}/close"), &User::agent(1), 12, None).await;
    let other_session = app.open_session(&user, 12).await;
    let theirs = app.send(&other_session, &user, 12, "b").await.id();
    let r = app.get(&format!("/sessions/{session}/messages?cursor={theirs}"), &user, 12).await;
    r.assert_error(400, "validation_error");
    assert!(!r.field_errors("cursor").is_empty());
    let r = app.get(&format!("/sessions/{session}/messages?cursor=nope"), &user, 12).await;
    assert!(!r.field_errors("cursor").is_empty());
    let r = app.get(&format!("/sessions/{session}/messages?cursor={mine}&direction=after"), &user, 12).await;
    assert_eq!(r.status, 200);
    assert!(ids(&r).is_empty());
    let p = &r.body["meta"]["pagination"];
    assert_eq!(p["has_prev"], false);
    assert_eq!(p["has_next"], false, "nothing older than the only message");
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn term_search_pages_the_same_across_the_searched_window(backend: Backend) {
    // A window of 8 rows: searches cross from the session's own rows to the index.
    let options = crate::helpers::TestOptions { search_window: 8, ..Default::default() };
    let app = TestApp::spawn_with(backend, options).await;
    let user = User::member(100, 12);
    let session = app.open_session(&user, 12).await;
    let mut expected = Vec::new();
    for i in 0..40 {
        let text = if i % 3 == 0 { format!("Kopi susu {i}") } else { format!("teh manis {i}") };
        let id = app.send(&session, &user, 12, &text).await.id();
        if i % 3 == 0 {
            expected.push(id);
        }
    }
    expected.reverse();
    // Newest first, page by page.
    let (mut seen, mut cursor) = (Vec::new(), None::<String>);
    for _ in 0..20 {
        let c = cursor.as_ref().map(|c| format!("&cursor={c}")).unwrap_or_default();
        let r = app.get(&format!("/sessions/{session}/messages?term=kopi&limit=3{c}"), &user, 12).await;
        assert_eq!(r.status, 200, "{}", r.body);
        seen.extend(ids(&r));
        let p = &r.body["meta"]["pagination"];
        if p["has_next"] != true {
            break;
        }
        cursor = p["next_cursor"].as_str().map(str::to_owned);
    }
    assert_eq!(seen, expected, "every match once, newest first");
    // Forwards from the oldest match: the rest, in pages, each shown newest first.
    let oldest = expected.last().unwrap();
    let r = app
        .get(&format!("/sessions/{session}/messages?term=kopi&limit=100&direction=after&cursor={oldest}"), &user, 12)
        .await;
    assert_eq!(ids(&r), expected[..expected.len() - 1].to_vec());
    assert_eq!(r.body["meta"]["pagination"]["has_next"], true);
    assert_eq!(r.body["meta"]["pagination"]["has_prev"], false);
    // A term no message holds: an empty page, whatever the window.
    let r = app.get(&format!("/sessions/{session}/messages?term=cappuccino"), &user, 12).await;
    assert!(ids(&r).is_empty());
}

conformance!(
    term_search_pages_the_same_across_the_searched_window,
    sent_message_is_returned_whole_and_moves_the_session,
    invalid_messages_are_rejected_per_field,
    closed_session_rejects_new_messages_with_404_but_stays_readable,
    idempotent_retry_returns_the_original_and_stores_nothing_new,
    term_search_is_a_literal_case_insensitive_substring,
    sender_and_date_filters_are_inclusive_and_round_trip,
    limit_defaults_to_ten_and_clamps_to_one_hundred,
    cursor_must_be_a_message_of_this_session,
);
