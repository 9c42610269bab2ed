//! A property test of message pages: random interleavings of writes (sends
//! by the tenant user and the agent to several sessions, with and without
//! `Idempotency-Key`, and closes) and page reads (limit, cursor, direction)
//! run against the real server over HTTP and against a naive in-memory
//! model; every answer, every page and its navigation, must equal the model's.
//!
//! One server per backend serves every case; each case works in tenants of
//! its own, so cases cannot see each other's sessions.

use crate::helpers::{Backend, TestApp, User};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};

/// Sessions per case (one tenant and one tenant user each).
const SESSIONS: usize = 3;
/// The platform agent that writes to and closes every session.
const AGENT: i64 = 1;
/// Raw texts: few, so that a reused key meets both the same and a different body;
/// one is stored trimmed (the fingerprint is of the raw body).
const TEXTS: [&str; 4] = ["halo", "stok pupuk habis", "  spasi  ", "ok"];

#[derive(Debug, Clone)]
enum Cursor {
    /// No cursor: the newest page (or, going forward, the oldest).
    None,
    /// The id of a message of this session (index modulo the count; none yet is no cursor).
    Own(usize),
    /// A valid id that names no message of this session.
    Foreign,
}

#[derive(Debug, Clone)]
enum Op {
    Send { session: usize, by_agent: bool, text: usize, key: Option<u8> },
    Close { session: usize },
    List { session: usize, by_agent: bool, limit: u32, cursor: Cursor, after: bool },
}

fn op() -> impl Strategy<Value = Op> {
    let session = 0..SESSIONS;
    let cursor = prop_oneof![Just(Cursor::None), (0..64usize).prop_map(Cursor::Own), Just(Cursor::Foreign)];
    prop_oneof![
        5 => (session.clone(), any::<bool>(), 0..TEXTS.len(), proptest::option::of(0..3u8))
            .prop_map(|(session, by_agent, text, key)| Op::Send { session, by_agent, text, key }),
        1 => session.clone().prop_map(|session| Op::Close { session }),
        4 => (session, any::<bool>(), 1..6u32, cursor, any::<bool>())
            .prop_map(|(session, by_agent, limit, cursor, after)| Op::List { session, by_agent, limit, cursor, after }),
    ]
}

/// One stored message as the model knows it.
#[derive(Debug, Clone, PartialEq)]
struct Stored {
    id: String,
    sender: i64,
    text: String,
}

#[derive(Debug, Default)]
struct Session {
    id: String,
    closed: bool,
    /// Oldest first.
    messages: Vec<Stored>,
    /// (sender, key) → (raw body, index of the message it stored).
    keys: HashMap<(i64, u8), (String, usize)>,
}

/// The page the model expects, in the envelope's terms.
#[derive(Debug, PartialEq)]
struct Expected {
    items: Vec<Stored>,
    has_next: bool,
    has_prev: bool,
    next_cursor: Option<String>,
    prev_cursor: Option<String>,
}

/// Keyset paging over a list, newest first, as the contract describes it.
fn model_page(all: &[Stored], limit: usize, cursor: Option<usize>, after: bool) -> Expected {
    let ids = |range: &[Stored]| range.to_vec();
    let (items, has_next, has_prev) = if after {
        // Newer than the cursor, the nearest first, shown newest first.
        let start = cursor.map_or(0, |c| c + 1);
        let newer = &all[start..];
        let shown = ids(&newer[..newer.len().min(limit)]);
        let more_newer = newer.len() > limit;
        // Anything older than the oldest shown (which is older than it), or
        // on an empty page older than the cursor itself?
        let older = cursor.is_some_and(|c| !shown.is_empty() || c > 0);
        (shown.into_iter().rev().collect::<Vec<_>>(), older, more_newer)
    } else {
        let end = cursor.unwrap_or(all.len());
        let older = &all[..end];
        let shown: Vec<Stored> = older.iter().rev().take(limit).cloned().collect();
        let more_older = older.len() > limit;
        // Anything newer than the newest shown (the cursor is), or on an
        // empty page newer than the cursor itself?
        let newer = cursor.is_some_and(|c| !shown.is_empty() || c + 1 < all.len());
        (shown, more_older, newer)
    };
    let fallback = cursor.map(|c| all[c].id.clone());
    let next_cursor = has_next.then(|| items.last().map(|m| m.id.clone()).or(fallback.clone())).flatten();
    let prev_cursor = has_prev.then(|| items.first().map(|m| m.id.clone()).or(fallback)).flatten();
    Expected { items, has_next, has_prev, next_cursor, prev_cursor }
}

fn served_page(body: &Value) -> Result<Expected, String> {
    let items = body["data"].as_array().ok_or_else(|| format!("no data array in {body}"))?;
    let items = items
        .iter()
        .map(|m| Stored {
            id: m["id"].as_str().unwrap_or_default().to_owned(),
            sender: m["sender_id"].as_i64().unwrap_or_default(),
            text: m["message"].as_str().unwrap_or_default().to_owned(),
        })
        .collect();
    let p = &body["meta"]["pagination"];
    let cursor = |name: &str| p[name].as_str().map(str::to_owned);
    Ok(Expected {
        items,
        has_next: p["has_next"].as_bool().ok_or("no has_next")?,
        has_prev: p["has_prev"].as_bool().ok_or("no has_prev")?,
        next_cursor: cursor("next_cursor"),
        prev_cursor: cursor("prev_cursor"),
    })
}

fn check(cond: bool, what: impl FnOnce() -> String) -> Result<(), TestCaseError> {
    if cond { Ok(()) } else { Err(TestCaseError::fail(what())) }
}

/// Tenants are handed out so that no two cases (or shrink steps) share one.
static NEXT_TENANT: AtomicI64 = AtomicI64::new(1_000);

async fn run_case(app: &TestApp, ops: &[Op]) -> Result<(), TestCaseError> {
    let agent = User::agent(AGENT);
    let base = NEXT_TENANT.fetch_add(SESSIONS as i64, Ordering::Relaxed);
    let tenants: Vec<i64> = (0..SESSIONS as i64).map(|i| base + i).collect();
    let members: Vec<User> = tenants.iter().map(|&t| User::member(100 + t, t)).collect();
    let mut sessions = Vec::new();
    for (member, &tenant) in members.iter().zip(&tenants) {
        sessions.push(Session { id: app.open_session(member, tenant).await, ..Session::default() });
    }
    let foreign = uuid::Uuid::now_v7().to_string();
    for (step, op) in ops.iter().enumerate() {
        match op {
            Op::Send { session, by_agent, text, key } => {
                let (user, tenant) =
                    if *by_agent { (&agent, tenants[*session]) } else { (&members[*session], tenants[*session]) };
                let raw = TEXTS[*text];
                let s = &mut sessions[*session];
                let mut req = app
                    .client
                    .post(app.url(&format!("/sessions/{}/messages", s.id)))
                    .bearer_auth(user.token())
                    .header("X-Tenant-ID", tenant.to_string())
                    .json(&json!({ "message": raw }));
                if let Some(key) = key {
                    req = req.header("Idempotency-Key", format!("key-{key}"));
                }
                let r = app.raw(req).await;
                let at = || format!("step {step} {op:?}: {} {}", r.status, r.body);
                match key.and_then(|k| s.keys.get(&(user.id, k)).cloned()) {
                    Some((first_raw, index)) if first_raw == raw => {
                        check(r.status == 201, at)?;
                        check(r.header("idempotent-replayed") == Some("true"), at)?;
                        check(r.body["data"]["id"] == s.messages[index].id.as_str(), at)?;
                    }
                    Some(_) => check(r.status == 422 && r.body["message"] == "idempotency_key_reused", at)?,
                    None if s.closed => check(r.status == 404, at)?,
                    None => {
                        check(r.status == 201 && r.header("idempotent-replayed").is_none(), at)?;
                        let stored = Stored { id: r.id(), sender: user.id, text: raw.trim().to_owned() };
                        check(r.body["data"]["message"] == stored.text.as_str(), at)?;
                        check(r.body["data"]["sender_id"] == stored.sender, at)?;
                        if let Some(key) = key {
                            s.keys.insert((user.id, *key), (raw.to_owned(), s.messages.len()));
                        }
                        s.messages.push(stored);
                    }
                }
            }
            Op::Close { session } => {
                let s = &mut sessions[*session];
                let r = app.post(&format!("/sessions/{}/close", s.id), &agent, tenants[*session], None).await;
                check(r.status == 200 && r.body["data"]["status"] == "CLOSED", || format!("step {step}: {}", r.body))?;
                s.closed = true;
            }
            Op::List { session, by_agent, limit, cursor, after } => {
                let user = if *by_agent { &agent } else { &members[*session] };
                let s = &sessions[*session];
                let own = match cursor {
                    Cursor::Own(i) if !s.messages.is_empty() => Some(i % s.messages.len()),
                    _ => None,
                };
                let cursor_id = match cursor {
                    Cursor::Foreign => Some(foreign.clone()),
                    _ => own.map(|i| s.messages[i].id.clone()),
                };
                let mut path = format!("/sessions/{}/messages?limit={limit}", s.id);
                if let Some(c) = &cursor_id {
                    path.push_str(&format!("&cursor={c}"));
                }
                if *after {
                    path.push_str("&direction=after");
                }
                let r = app.get(&path, user, tenants[*session]).await;
                let at = || format!("step {step} {op:?} GET {path}: {} {}", r.status, r.body);
                if matches!(cursor, Cursor::Foreign) {
                    check(r.status == 400 && !r.field_errors("cursor").is_empty(), at)?;
                    continue;
                }
                check(r.status == 200, at)?;
                check(r.body["meta"]["pagination"]["limit"] == *limit, at)?;
                let served = served_page(&r.body).map_err(TestCaseError::fail)?;
                let expected = model_page(&s.messages, *limit as usize, own, *after);
                check(served == expected, || format!("{}\nexpected {expected:#?}\nserved {served:#?}", at()))?;
            }
        }
    }
    Ok(())
}

fn pages_equal_the_model(backend: Backend, cases: u32) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let app = rt.block_on(TestApp::spawn(backend));
    // No persistence file: a failure prints its (shrunk) sequence instead.
    let config = Config { cases, failure_persistence: None, max_shrink_iters: 256, ..Config::default() };
    let mut runner = TestRunner::new(config);
    let result = runner.run(&proptest::collection::vec(op(), 1..24), |ops| rt.block_on(run_case(&app, &ops)));
    rt.block_on(app.stop());
    if let Err(err) = result {
        panic!("{err}");
    }
}

#[test]
fn sqlite_message_pages_equal_the_model() {
    pages_equal_the_model(Backend::Sqlite, 32);
}

#[test]
fn postgres_message_pages_equal_the_model() {
    pages_equal_the_model(Backend::Postgres, 16);
}

#[test]
fn the_model_pages_like_the_contract_examples() {
    let all: Vec<Stored> = (1..=25).map(|i| Stored { id: i.to_string(), sender: 1, text: String::new() }).collect();
    let ids = |e: &Expected| e.items.iter().map(|m| m.id.parse::<i32>().unwrap()).collect::<Vec<_>>();
    let first = model_page(&all, 10, None, false);
    assert_eq!(ids(&first), (16..=25).rev().collect::<Vec<_>>());
    assert!(first.has_next && !first.has_prev);
    assert_eq!(first.next_cursor.as_deref(), Some("16"));
    // After id 20 (index 19), three at a time: 21..23, shown newest first.
    let after = model_page(&all, 3, Some(19), true);
    assert_eq!(ids(&after), vec![23, 22, 21]);
    assert!(after.has_next && after.has_prev);
    assert_eq!((after.next_cursor.as_deref(), after.prev_cursor.as_deref()), (Some("21"), Some("23")));
    // Caught up: an empty page pointing back at the cursor.
    let empty = model_page(&all, 10, Some(24), true);
    assert!(empty.items.is_empty() && empty.has_next && !empty.has_prev);
    assert_eq!(empty.next_cursor.as_deref(), Some("25"));
}
