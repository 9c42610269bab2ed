//! Pagination under concurrent writers: every match seen exactly once, in
//! order, and a poller using `direction=after` misses nothing (docs/API.md §7).

use crate::conformance;
use crate::helpers::{Backend, TestApp, User};
use serde_json::Value;
use std::collections::HashSet;
use std::time::{Duration, Instant};

const SEEDED: usize = 2_000;
const SEED_WRITERS: usize = 4;
const LIVE_WRITERS: usize = 3;
const LIVE_PER_WRITER: usize = 60;
const DEADLINE: Duration = Duration::from_secs(240);

#[derive(Debug, Clone)]
struct Msg {
    id: String,
    text: String,
    created_at: String,
}

fn page_of(body: &Value) -> (Vec<Msg>, &Value) {
    let items = body["data"]
        .as_array()
        .unwrap_or_else(|| panic!("not a page: {body}"))
        .iter()
        .map(|m| Msg {
            id: m["id"].as_str().unwrap().to_owned(),
            text: m["message"].as_str().unwrap().to_owned(),
            created_at: m["created_at"].as_str().unwrap().to_owned(),
        })
        .collect();
    (items, &body["meta"]["pagination"])
}

/// Walks from the newest page to the oldest with `next_cursor`.
async fn walk_back(app: &TestApp, user: &User, session: &str, filter: &str, limit: u32) -> Vec<Msg> {
    let started = Instant::now();
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        assert!(started.elapsed() < DEADLINE, "backward walk did not finish in time");
        let cursor_q = cursor.as_ref().map(|c| format!("&cursor={c}")).unwrap_or_default();
        let r = app.get(&format!("/sessions/{session}/messages?limit={limit}{filter}{cursor_q}"), user, 12).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let (items, p) = page_of(&r.body);
        assert!(items.len() <= limit as usize);
        if p["has_next"] == true {
            assert_eq!(
                p["next_cursor"].as_str(),
                items.last().map(|m| m.id.as_str()),
                "next_cursor is the oldest on the page"
            );
            cursor = p["next_cursor"].as_str().map(str::to_owned);
            seen.extend(items);
        } else {
            assert!(p.get("next_cursor").is_none());
            seen.extend(items);
            return seen;
        }
    }
}

/// Walks from the oldest message to the newest with `direction=after`.
async fn walk_forward(app: &TestApp, user: &User, session: &str, filter: &str, limit: u32) -> Vec<Msg> {
    let started = Instant::now();
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        assert!(started.elapsed() < DEADLINE, "forward walk did not finish in time");
        let cursor_q = cursor.as_ref().map(|c| format!("&cursor={c}")).unwrap_or_default();
        let r = app
            .get(&format!("/sessions/{session}/messages?direction=after&limit={limit}{filter}{cursor_q}"), user, 12)
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        let (mut items, p) = page_of(&r.body);
        items.reverse(); // pages are newest → oldest; collect oldest → newest
        let more = p["has_prev"] == true;
        if let Some(newest) = items.last() {
            cursor = Some(newest.id.clone());
        }
        if more {
            assert_eq!(p["prev_cursor"].as_str(), cursor.as_deref(), "prev_cursor is the newest on the page");
        }
        seen.extend(items);
        if !more {
            return seen;
        }
    }
}

fn assert_strictly_ordered(msgs: &[Msg], newest_first: bool, what: &str) {
    let ids: HashSet<&str> = msgs.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids.len(), msgs.len(), "{what}: a message was seen twice");
    for pair in msgs.windows(2) {
        let ordered = if newest_first {
            pair[0].created_at > pair[1].created_at
        } else {
            pair[0].created_at < pair[1].created_at
        };
        assert!(ordered, "{what}: created_at not strictly ordered: {:?} then {:?}", pair[0], pair[1]);
    }
}

fn text_for(writer: usize, i: usize) -> String {
    // Every seventh message mentions the search term, in varying case.
    let needle = if i % 7 == 0 { if i % 2 == 0 { " KOPI " } else { " kopi " } } else { " " };
    format!("w{writer}-{i}{needle}pesan")
}

async fn write_many(app: &TestApp, session: &str, writer: usize, count: usize) {
    let user = User::member(1_000 + writer as i64, 12);
    for i in 0..count {
        app.send(session, &user, 12, &text_for(writer, i)).await;
    }
}

async fn every_match_is_seen_exactly_once_while_writers_add_messages(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let reader = User::agent(1);
    let session = app.open_session(&reader, 12).await;

    futures::future::join_all((0..SEED_WRITERS).map(|w| write_many(&app, &session, w, SEEDED / SEED_WRITERS))).await;
    let seeded_kopi = (0..SEED_WRITERS)
        .flat_map(|w| (0..SEEDED / SEED_WRITERS).map(move |i| text_for(w, i)))
        .filter(|t| t.to_lowercase().contains("kopi"))
        .count();

    // The newest message before the live phase: where the poller starts.
    let head = app.get(&format!("/sessions/{session}/messages?limit=1"), &reader, 12).await;
    let start_cursor = head.data()[0]["id"].as_str().unwrap().to_owned();

    let live = async {
        futures::future::join_all((0..LIVE_WRITERS).map(|w| write_many(&app, &session, 10 + w, LIVE_PER_WRITER))).await;
    };
    let poller = async {
        let started = Instant::now();
        let mut cursor = start_cursor.clone();
        let mut got: Vec<Msg> = Vec::new();
        let mut quiet_rounds = 0;
        // Keeps polling until it has everything the writers will write, then one more empty round.
        while quiet_rounds < 2 {
            assert!(started.elapsed() < DEADLINE, "poller timed out with {} messages", got.len());
            let r = app
                .get(&format!("/sessions/{session}/messages?direction=after&limit=7&cursor={cursor}"), &reader, 12)
                .await;
            let (mut items, _) = page_of(&r.body);
            items.reverse();
            if let Some(newest) = items.last() {
                cursor = newest.id.clone();
            }
            if items.is_empty() && got.len() >= LIVE_WRITERS * LIVE_PER_WRITER {
                quiet_rounds += 1;
            }
            if items.is_empty() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            got.extend(items);
        }
        got
    };
    let walks = async {
        let back = walk_back(&app, &reader, &session, "", 97).await;
        let back_kopi = walk_back(&app, &reader, &session, "&term=kopi", 13).await;
        let fwd = walk_forward(&app, &reader, &session, "", 100).await;
        let fwd_sender = walk_forward(&app, &reader, &session, "&sender_id=1001", 11).await;
        (back, back_kopi, fwd, fwd_sender)
    };
    let ((), polled, (back, back_kopi, fwd, fwd_sender)) = tokio::join!(live, poller, walks);

    // Backward walks started before most live writes: they hold every seeded message once.
    assert_strictly_ordered(&back, true, "backward walk");
    assert!(back.len() >= SEEDED, "backward walk saw {} of {SEEDED}", back.len());
    let seeded_texts: HashSet<String> =
        (0..SEED_WRITERS).flat_map(|w| (0..SEEDED / SEED_WRITERS).map(move |i| text_for(w, i))).collect();
    let back_texts: HashSet<String> = back.iter().map(|m| m.text.clone()).collect();
    assert!(seeded_texts.is_subset(&back_texts), "backward walk missed seeded messages");

    assert_strictly_ordered(&back_kopi, true, "filtered backward walk");
    assert!(back_kopi.iter().all(|m| m.text.to_lowercase().contains("kopi")));
    assert!(back_kopi.len() >= seeded_kopi, "filtered walk saw {} of {seeded_kopi}", back_kopi.len());

    assert_strictly_ordered(&fwd, false, "forward walk");
    assert!(fwd.len() >= SEEDED);
    assert_strictly_ordered(&fwd_sender, false, "filtered forward walk");
    assert_eq!(fwd_sender.len(), SEEDED / SEED_WRITERS, "sender 1001 wrote only seeded messages");

    // The poller saw exactly the live messages, in commit order.
    let everything = walk_back(&app, &reader, &session, "", 100).await;
    assert_eq!(everything.len(), SEEDED + LIVE_WRITERS * LIVE_PER_WRITER);
    let mut after_start: Vec<Msg> = everything.iter().take_while(|m| m.id != start_cursor).cloned().collect();
    after_start.reverse();
    assert_strictly_ordered(&polled, false, "poller");
    assert_eq!(
        polled.iter().map(|m| &m.id).collect::<Vec<_>>(),
        after_start.iter().map(|m| &m.id).collect::<Vec<_>>(),
        "the poller must see every later message exactly once, in order"
    );
    // Walking the final state forward and backward agree.
    let mut fwd_all = walk_forward(&app, &reader, &session, "", 100).await;
    fwd_all.reverse();
    assert_eq!(fwd_all.iter().map(|m| &m.id).collect::<Vec<_>>(), everything.iter().map(|m| &m.id).collect::<Vec<_>>());
}

conformance!(every_match_is_seen_exactly_once_while_writers_add_messages);
