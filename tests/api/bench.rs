//! Send → receive latency on loopback, measured, not asserted (machines are
//! shared and noisy). Run with:
//! `cargo test --release --test api -- --ignored --nocapture send_to_receive_latency`

use crate::helpers::{Backend, TestApp, User};
use crate::stream::Ws;
use std::time::{Duration, Instant};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn report(label: &str, mut samples: Vec<Duration>) {
    samples.sort();
    println!(
        "{label:<42} n={:<5} p50={:>8.3?} p95={:>8.3?} p99={:>8.3?} max={:>8.3?}",
        samples.len(),
        percentile(&samples, 0.50),
        percentile(&samples, 0.95),
        percentile(&samples, 0.99),
        samples[samples.len() - 1]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run explicitly with --ignored --nocapture"]
async fn send_to_receive_latency() {
    const ROUNDS: usize = 500;
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let app = TestApp::spawn(backend).await;
        let user = User::member(100, 12);
        let agent = User::agent(1);
        let session = app.open_session(&user, 12).await;
        let mut ws = Ws::connect(&app, &agent, 12).await;
        ws.subscribe(&session, None, None).await;
        let (mut acked, mut delivered) = (Vec::with_capacity(ROUNDS), Vec::with_capacity(ROUNDS));
        for i in 0..ROUNDS {
            let started = Instant::now();
            let sent = app.send(&session, &user, 12, &format!("ping {i}")).await;
            let acked_at = started.elapsed();
            let ev = ws.next_event("message.created").await;
            let delivered_at = started.elapsed();
            assert_eq!(ev["id"], sent.data()["id"], "delivered in order");
            acked.push(acked_at);
            delivered.push(delivered_at);
        }
        report(&format!("{backend:?}: POST message → 201"), acked);
        report(&format!("{backend:?}: POST message → WebSocket event"), delivered);
    }
}
