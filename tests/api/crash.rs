//! Crash tests: `livechat serve` killed with SIGKILL under write load (on
//! SQLite and on PostgreSQL) and restarted on the same database, and a private
//! PostgreSQL cluster stopped abruptly under a running node and started again.
//!
//! The promise checked is the contract's (section 7): a message answered 201
//! is stored exactly once and in its writer's order; a write answered 503 is
//! not stored; a send whose answer was lost (connection cut, 504) may or may
//! not be stored, and repeating it with its `Idempotency-Key` stores it once.
//!
//! The default is the quick variant that `cargo test` runs in CI.
//! `LIVECHAT_CRASH_ROUNDS=25` runs the long one (25 kills per backend and 25
//! database outages); see docs/RELIABILITY.md for its figures.

use crate::cluster::PrivatePostgres;
use crate::helpers::{Backend, TestDb, User};
use crate::node::Node;
use rand::Rng;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Concurrent writers, each a different member of tenant 12 in one session.
const WRITERS: i64 = 4;
/// The node's request deadline in the outage test.
const DEADLINE: Duration = Duration::from_secs(2);
/// What a loaded 2-core machine may add to the deadline before an answer counts as a hang.
const SLACK: Duration = Duration::from_millis(1500);
/// Upper bound on sends per writer and round, whatever the timing.
const MAX_SENDS_PER_ROUND: u64 = 20_000;

/// Rounds per test: 3 by default (CI), `LIVECHAT_CRASH_ROUNDS` otherwise.
fn rounds() -> usize {
    std::env::var("LIVECHAT_CRASH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(3).clamp(1, 500)
}

/// What one send was answered.
#[derive(Debug)]
enum Outcome {
    /// 201 with this id: must be stored exactly once.
    Stored(String),
    /// 503: must not be stored.
    Refused,
    /// No answer (connection cut) or 504 `outcome_unknown`: stored at most once.
    Unknown,
}

/// One send by one writer; `seq` orders a writer's sends.
#[derive(Debug)]
struct Sent {
    writer: i64,
    seq: u64,
    text: String,
    key: Option<String>,
    outcome: Outcome,
    /// How long the answer took (or the failure to get one).
    took: Duration,
    /// Acknowledged only when resent after the disruption, so it may sit
    /// after the writer's later sends.
    resent: bool,
}

/// Every send of a test and what became of it, across rounds.
#[derive(Debug, Default)]
struct Ledger {
    sent: Vec<Sent>,
    kills: usize,
    outages: usize,
    lost: usize,
    retried: usize,
    replayed: usize,
    answered_during_outage: usize,
}

impl Ledger {
    fn count(&self, pred: impl Fn(&Outcome) -> bool) -> usize {
        self.sent.iter().filter(|s| pred(&s.outcome)).count()
    }

    /// Checks the stored messages (oldest first) against every answer given;
    /// says what broke rather than panicking, so the checker can be tested.
    fn check(&self, stored: &[(String, String)]) -> Result<(), String> {
        macro_rules! ensure {
            ($cond:expr, $($why:tt)+) => {
                if !$cond {
                    return Err(format!($($why)+));
                }
            };
        }
        let mut at: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, (_, text)) in stored.iter().enumerate() {
            at.entry(text.as_str()).or_default().push(i);
        }
        let known: HashMap<&str, &Sent> = self.sent.iter().map(|s| (s.text.as_str(), s)).collect();
        for (id, text) in stored {
            ensure!(known.contains_key(text.as_str()), "stored message {id} {text:?} was never sent");
        }
        let mut last_position: HashMap<i64, (usize, &str)> = HashMap::new();
        let mut by_writer: Vec<&Sent> = self.sent.iter().collect();
        by_writer.sort_by_key(|s| (s.writer, s.seq));
        for s in by_writer {
            let positions = at.get(s.text.as_str()).map_or(&[][..], Vec::as_slice);
            match &s.outcome {
                Outcome::Stored(id) => {
                    ensure!(positions.len() == 1, "{:?} answered 201 is stored {} times", s.text, positions.len());
                    let position = positions[0];
                    ensure!(&stored[position].0 == id, "{:?} is stored under another id than answered", s.text);
                    if !s.resent {
                        if let Some((previous, before)) = last_position.insert(s.writer, (position, &s.text)) {
                            ensure!(
                                previous < position,
                                "writer {} sent {before:?} before {:?} but it is stored after it",
                                s.writer,
                                s.text
                            );
                        }
                    }
                }
                Outcome::Refused => ensure!(positions.is_empty(), "{:?} answered 503 (not stored) is stored", s.text),
                Outcome::Unknown => {
                    ensure!(positions.len() <= 1, "{:?} (answer lost) is stored {} times", s.text, positions.len())
                }
            }
        }
        Ok(())
    }

    fn report(&self, name: &str) {
        eprintln!(
            "{name}: {} kills, {} outages, {} sends: {} acknowledged (checked stored once, in order), \
             {} refused with 503 (checked absent), {} answers lost or 504 ({} resent with their \
             Idempotency-Key, {} of them found stored already), {} non-201 answers during outages; \
             slowest answer {:?}",
            self.kills,
            self.outages,
            self.sent.len(),
            self.count(|o| matches!(o, Outcome::Stored(_))),
            self.count(|o| matches!(o, Outcome::Refused)),
            self.lost,
            self.retried,
            self.replayed,
            self.answered_during_outage,
            self.sent.iter().map(|s| s.took).max().unwrap_or_default(),
        );
    }
}

/// One send, never panicking on what a dying server or database does.
async fn send(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    text: &str,
    key: Option<&str>,
) -> Result<(u16, Value), reqwest::Error> {
    let mut req = client.post(url).bearer_auth(token).header("X-Tenant-ID", "12").json(&json!({ "message": text }));
    if let Some(key) = key {
        req = req.header("Idempotency-Key", key);
    }
    let res = req.send().await?;
    let status = res.status().as_u16();
    let body = res.json::<Value>().await?;
    Ok((status, body))
}

/// Every message of the session, oldest first, following `next_cursor`.
async fn stored(node: &Node, session: &str, reader: &User) -> Vec<(String, String)> {
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10_000 {
        let page = match &cursor {
            Some(c) => format!("/sessions/{session}/messages?limit=100&cursor={c}"),
            None => format!("/sessions/{session}/messages?limit=100"),
        };
        let r = node.get(&page, reader, 12).await;
        assert_eq!(r.status, 200, "{}", r.body);
        for m in r.data().as_array().unwrap() {
            all.push((m["id"].as_str().unwrap().to_owned(), m["message"].as_str().unwrap().to_owned()));
        }
        if r.body["meta"]["pagination"]["has_next"] != true {
            all.reverse();
            return all;
        }
        cursor = Some(r.body["meta"]["pagination"]["next_cursor"].as_str().unwrap().to_owned());
    }
    panic!("more than 10,000 pages");
}

/// Shared by the writers of one round.
struct Round {
    url: String,
    stop: AtomicBool,
    acked: AtomicUsize,
    /// Whether the server is expected to answer every request (false: it may be killed).
    server_stays: bool,
}

/// One writer's sends until told to stop, the server dies, or a bound is reached.
async fn writer(client: reqwest::Client, round: &Round, w: i64, first_seq: u64) -> Vec<Sent> {
    let token = User::member(300 + w, 12).token();
    let started = Instant::now();
    let mut sent = Vec::new();
    for seq in first_seq..first_seq + MAX_SENDS_PER_ROUND {
        if round.stop.load(Ordering::SeqCst) || started.elapsed() > Duration::from_secs(60) {
            break;
        }
        let text = format!("w{w}-{seq}");
        // Half the sends carry a key, so a lost answer can be resolved by resending.
        let key = (seq % 2 == 0).then(|| format!("crash-w{w}-{seq}"));
        let asked = Instant::now();
        let answer = send(&client, &round.url, &token, &text, key.as_deref()).await;
        let took = asked.elapsed();
        let outcome = match &answer {
            Ok((201, body)) => {
                round.acked.fetch_add(1, Ordering::SeqCst);
                Outcome::Stored(body["data"]["id"].as_str().unwrap().to_owned())
            }
            Ok((503, body)) if body["message"] == "storage_unavailable" => Outcome::Refused,
            Ok((504, body)) if body["message"] == "outcome_unknown" => Outcome::Unknown,
            Ok((status, body)) => {
                panic!("writer {w}: unexpected answer {status}: {body} (LIVECHAT_TEST_NODE_LOG=1 shows the node's log)")
            }
            Err(err) => {
                assert!(!round.server_stays, "writer {w}: no answer from a server that stays up: {err}");
                Outcome::Unknown
            }
        };
        if round.server_stays {
            assert!(took < DEADLINE + SLACK, "writer {w}: answered after {took:?}, past the deadline");
        }
        let refused_or_lost = !matches!(outcome, Outcome::Stored(_));
        let died = answer.is_err();
        sent.push(Sent { writer: w, seq, text, key, outcome, took, resent: false });
        if died {
            break;
        }
        if refused_or_lost {
            // During an outage do not spin: answers come fast, and the deadline check needs no flood.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    sent
}

/// Runs the writers of one round while `disrupt` does its harm, then collects their sends.
async fn load_while<F: std::future::Future<Output = ()>>(
    ledger: &mut Ledger,
    url: String,
    server_stays: bool,
    disrupt: impl FnOnce(Arc<Round>) -> F,
) {
    let round = Arc::new(Round { url, stop: AtomicBool::new(false), acked: AtomicUsize::new(0), server_stays });
    let writers = futures::future::join_all((0..WRITERS).map(|w| {
        let first = ledger.sent.iter().filter(|s| s.writer == w).map(|s| s.seq + 1).max().unwrap_or(0);
        let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
        let round = round.clone();
        async move { writer(client, &round, w, first).await }
    }));
    let (sends, ()) = tokio::join!(writers, disrupt(round.clone()));
    let sends: Vec<Sent> = sends.into_iter().flatten().collect();
    ledger.lost += sends.iter().filter(|s| matches!(s.outcome, Outcome::Unknown)).count();
    ledger.sent.extend(sends);
}

/// Resends every send whose answer was lost and that carried a key: each must
/// now be a 201 (a replay if it had been stored), and is then acknowledged.
async fn resend_keyed(ledger: &mut Ledger, node: &Node, session: &str) {
    let url = node.url(&format!("/sessions/{session}/messages"));
    for s in ledger.sent.iter_mut().filter(|s| matches!(s.outcome, Outcome::Unknown) && s.key.is_some()) {
        let token = User::member(300 + s.writer, 12).token();
        let started = Instant::now();
        loop {
            // A node just back may still refuse for a moment while its storage recovers.
            let mut req = node.client.post(&url).bearer_auth(&token).header("X-Tenant-ID", "12");
            req = req.header("Idempotency-Key", s.key.as_deref().unwrap_or_default());
            let answer = req.json(&json!({ "message": s.text })).send().await;
            let replayed = answer.as_ref().is_ok_and(|r| r.headers().get("idempotent-replayed").is_some());
            let answer = match answer {
                Ok(r) => (r.status().as_u16(), r.json::<Value>().await.unwrap_or_default()),
                Err(err) => panic!("resending {:?}: {err}", s.text),
            };
            match answer {
                (201, body) => {
                    s.outcome = Outcome::Stored(body["data"]["id"].as_str().unwrap().to_owned());
                    s.resent = true;
                    ledger.retried += 1;
                    ledger.replayed += usize::from(replayed);
                    break;
                }
                (503, _) if started.elapsed() < Duration::from_secs(20) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                other => panic!("resending {:?} with its key: {other:?}", s.text),
            }
        }
    }
}

async fn node_is_killed_under_write_load_and_loses_nothing_acknowledged(backend: Backend) {
    let db = TestDb::create(backend).await;
    let reader = User::member(100, 12);
    let mut ledger = Ledger::default();
    let mut node = Node::start(db.url(), &[]).await;
    let session = node.post("/sessions", &reader, 12, None).await.id();
    for _ in 0..rounds() {
        let url = node.url(&format!("/sessions/{session}/messages"));
        load_while(&mut ledger, url, false, |round| {
            let child = &mut node.child;
            async move {
                // A random moment, but only once some sends were acknowledged, so each kill lands mid-load.
                let wait = Duration::from_millis(rand::rng().random_range(100..1200));
                let started = Instant::now();
                while round.acked.load(Ordering::SeqCst) < 10 && started.elapsed() < Duration::from_secs(30) {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                tokio::time::sleep(wait).await;
                child.start_kill().expect("SIGKILL");
                let _ = child.wait().await;
                round.stop.store(true, Ordering::SeqCst);
            }
        })
        .await;
        ledger.kills += 1;
        node = Node::start(db.url(), &[]).await;
        resend_keyed(&mut ledger, &node, &session).await;
        ledger.check(&stored(&node, &session, &reader).await).unwrap_or_else(|broken| panic!("{broken}"));
    }
    assert!(ledger.count(|o| matches!(o, Outcome::Stored(_))) >= 10 * ledger.kills, "too little load to mean much");
    ledger.report(&format!("SIGKILL under load ({backend:?})"));
    let (status, _) = node.terminate().await;
    assert!(status.success());
}

crate::conformance!(node_is_killed_under_write_load_and_loses_nothing_acknowledged);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_crash_under_load_answers_within_the_deadline_and_loses_nothing_acknowledged() {
    let pg = Arc::new(tokio::task::spawn_blocking(PrivatePostgres::start_new).await.unwrap());
    let deadline = format!("{}ms", DEADLINE.as_millis());
    let node = Node::start(
        &pg.url(),
        &[
            ("LIVECHAT_REQUEST_TIMEOUT", deadline.as_str()),
            ("LIVECHAT_DB_ACQUIRE_TIMEOUT", "1s"),
            ("LIVECHAT_DB_RETRY_INTERVAL", "300ms"),
        ],
    )
    .await;
    let reader = User::member(100, 12);
    let session = node.post("/sessions", &reader, 12, None).await.id();
    let mut ledger = Ledger::default();
    for _ in 0..rounds() {
        let before = ledger.sent.len();
        let url = node.url(&format!("/sessions/{session}/messages"));
        load_while(&mut ledger, url, true, |round| {
            let (pg, node) = (pg.clone(), &node);
            async move {
                let started = Instant::now();
                while round.acked.load(Ordering::SeqCst) < 10 && started.elapsed() < Duration::from_secs(30) {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                tokio::time::sleep(Duration::from_millis(rand::rng().random_range(50..800))).await;
                let crash = pg.clone();
                tokio::task::spawn_blocking(move || crash.crash()).await.unwrap();
                // Writers keep going against the dead database for a while.
                tokio::time::sleep(Duration::from_millis(1500)).await;
                let ready = node.client.get(format!("http://{}/readyz", node.addr)).send().await.unwrap();
                assert_eq!(ready.status(), 503, "/readyz during the outage");
                let acked_during = round.acked.load(Ordering::SeqCst);
                let restart = pg.clone();
                tokio::task::spawn_blocking(move || restart.start()).await.unwrap();
                // Recovery without restarting the node: new sends are acknowledged again.
                let back = Instant::now();
                while round.acked.load(Ordering::SeqCst) < acked_during + 20 {
                    assert!(back.elapsed() < Duration::from_secs(30), "the node did not recover within 30 s");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                round.stop.store(true, Ordering::SeqCst);
            }
        })
        .await;
        ledger.outages += 1;
        let refused_or_lost = ledger.sent[before..].iter().filter(|s| !matches!(s.outcome, Outcome::Stored(_))).count();
        assert!(refused_or_lost > 0, "no send met the outage: the test did not test anything");
        ledger.answered_during_outage += refused_or_lost;
        resend_keyed(&mut ledger, &node, &session).await;
        ledger.check(&stored(&node, &session, &reader).await).unwrap_or_else(|broken| panic!("{broken}"));
    }
    ledger.report("PostgreSQL stopped -m immediate under load");
    let (status, _) = node.terminate().await;
    assert!(status.success());
    drop(pg);
}

/// The checker itself: each broken promise it exists to catch makes it fail.
#[test]
fn the_ledger_check_catches_lost_duplicated_resurrected_and_reordered_messages() {
    let sent = |writer, seq, outcome| Sent {
        writer,
        seq,
        text: format!("w{writer}-{seq}"),
        key: None,
        outcome,
        took: Duration::ZERO,
        resent: false,
    };
    let ledger = Ledger {
        sent: vec![
            sent(0, 0, Outcome::Stored("a".into())),
            sent(0, 1, Outcome::Stored("b".into())),
            sent(0, 2, Outcome::Refused),
            sent(0, 3, Outcome::Unknown),
        ],
        ..Ledger::default()
    };
    let row = |id: &str, text: &str| (id.to_owned(), text.to_owned());
    assert_eq!(ledger.check(&[row("a", "w0-0"), row("b", "w0-1")]), Ok(()));
    assert_eq!(ledger.check(&[row("a", "w0-0"), row("b", "w0-1"), row("c", "w0-3")]), Ok(()));
    // A send whose answer was lost, resent with its key after later sends were stored.
    let mut resent = Ledger {
        sent: vec![sent(0, 0, Outcome::Stored("a".into())), sent(0, 1, Outcome::Stored("b".into()))],
        ..Ledger::default()
    };
    resent.sent[0].resent = true;
    assert_eq!(resent.check(&[row("b", "w0-1"), row("a", "w0-0")]), Ok(()));
    let broken = [
        vec![row("a", "w0-0")],                                      // an acknowledged message lost
        vec![row("a", "w0-0"), row("b", "w0-1"), row("b2", "w0-1")], // stored twice
        vec![row("a", "w0-0"), row("b", "w0-1"), row("x", "w0-2")],  // a refused write stored
        vec![row("b", "w0-1"), row("a", "w0-0")],                    // out of the writer's order
        vec![row("a", "w0-0"), row("z", "w0-1")],                    // under another id
        vec![row("a", "w0-0"), row("b", "w0-1"), row("q", "never")], // never sent
    ];
    for stored in broken {
        assert!(ledger.check(&stored).is_err(), "not caught: {stored:?}");
    }
}
