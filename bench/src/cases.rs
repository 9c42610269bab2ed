//! The livechat cases: what each sends, and how it is measured.

use crate::api::{self, Tokens, Ws};
use crate::load::{self, Conn, MakeReq, Progress, Req};
use crate::procs::{self, Sampler};
use crate::report::{CaseResult, Headline};
use crate::seed::{self, Seeded, SessionRef, TempDb};
use anyhow::{Context, anyhow};
use futures_util::StreamExt;
use hdrhistogram::Histogram;
use serde_json::json;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, watch};
use tokio_tungstenite::tungstenite::Message;

/// Knobs shared by every case.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Settings {
    /// Measured time per throughput case.
    pub duration: Duration,
    /// Measured time of the mixed workload.
    pub mixed_duration: Duration,
    /// Connections in the idle WebSocket case.
    pub idle_connections: usize,
    /// Subscribers of the one fan-out session.
    pub fanout_subscribers: usize,
    /// Messages per second into the one fan-out session.
    pub fanout_rate: f64,
    /// Messages per second spread over the many fan-out sessions.
    pub fanout_spread_rate: f64,
    /// Subscribers per session in the many-sessions fan-out.
    pub fanout_per_session: usize,
    /// Sessions (one tenant each) that spread sends and the many-sessions fan-out use.
    pub spread_sessions: usize,
    /// Open streams during the mixed workload.
    pub mixed_streams: usize,
    /// Client connections of the mixed workload.
    pub mixed_conns: usize,
    /// Concurrency levels of the send cases.
    pub send_levels: Vec<usize>,
    /// Only cases whose name starts with one of these (all when empty).
    pub only: Vec<String>,
    /// Record a `perf` profile of the server during this case.
    pub perf_case: Option<String>,
    /// Where results and profiles go.
    pub out_dir: PathBuf,
}

impl Settings {
    /// Whether a case is selected.
    pub fn wants(&self, case: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|p| case.starts_with(p.as_str()))
    }

    fn warmup(&self) -> Duration {
        (self.duration / 5).min(Duration::from_secs(1))
    }
}

/// One target's running servers and data.
pub struct Ctx<'a> {
    /// `sqlite`, `postgres` or `two-nodes`.
    pub target: &'a str,
    /// Node addresses; clients are spread over them.
    pub addrs: Vec<SocketAddr>,
    /// Server process ids, for CPU and memory.
    pub pids: Vec<u32>,
    /// What was seeded.
    pub seeded: &'a Seeded,
    /// Token minting.
    pub tokens: &'a Tokens,
    /// Knobs.
    pub settings: &'a Settings,
    /// The progress line.
    pub progress: Arc<Progress>,
    /// The PostgreSQL database, for its transaction counter.
    pub pg: Option<&'a TempDb>,
    /// Time zero for timestamps carried inside messages.
    pub epoch: Instant,
}

/// The livechat cases in the order they run.
pub fn names(s: &Settings) -> Vec<String> {
    let mut v = vec!["healthz-c64".to_owned(), "page-latest-c64".into(), "page-deep-c64".into()];
    v.extend(["search-rare-c1".into(), "search-common-c1".into(), "search-dated-c1".into()]);
    for c in &s.send_levels {
        v.push(format!("send-hot-c{c}"));
        v.push(format!("send-hot-c{c}-key"));
    }
    for c in &s.send_levels {
        v.push(format!("send-spread-c{c}"));
        v.push(format!("send-spread-c{c}-key"));
    }
    v.push(format!("fanout-1x{}", s.fanout_subscribers));
    v.push(format!("fanout-{}x{}", s.spread_sessions, s.fanout_per_session));
    v.push(format!("ws-idle-{}", s.idle_connections));
    v.push("mixed".into());
    v
}

/// Runs one case by name; a failure becomes a result carrying it.
pub async fn run(ctx: &Ctx<'_>, name: &str) -> CaseResult {
    let planned = if name == "mixed" { ctx.settings.mixed_duration } else { ctx.settings.duration };
    ctx.progress.begin(&format!("[{}] {name}", ctx.target), planned);
    let perf = start_perf(ctx, name, planned).await;
    let outcome = dispatch(ctx, name).await;
    for mut p in perf {
        let _ = tokio::time::timeout(Duration::from_secs(30), p.wait()).await;
    }
    ctx.progress.end();
    match outcome {
        Ok(r) => r,
        Err(e) => {
            let mut r = CaseResult::new(ctx.target, name, "", Headline::Throughput, 0);
            r.failure = Some(format!("{e:#}"));
            r
        }
    }
}

async fn dispatch(ctx: &Ctx<'_>, name: &str) -> anyhow::Result<CaseResult> {
    let s = ctx.seeded;
    let conc = |prefix: &str| name.strip_prefix(prefix).and_then(|c| c.parse::<usize>().ok());
    let keyed = |prefix: &str| {
        name.strip_prefix(prefix).and_then(|c| c.strip_suffix("-key")).and_then(|c| c.parse::<usize>().ok())
    };
    if name == "healthz-c64" {
        let make: MakeReq = Arc::new(|_, _| (0, Req::get("/healthz")));
        return closed(ctx, name, "GET /healthz: the HTTP stack's ceiling", 64, make).await;
    }
    if name == "page-latest-c64" || name == "page-deep-c64" {
        let token = Arc::new(ctx.tokens.member(seed::member_of(s.page.tenant), s.page.tenant)?);
        let (tenant, id) = (s.page.tenant, s.page.id);
        let (query, what) = if name == "page-latest-c64" {
            ("limit=10".to_owned(), format!("newest 10 of a {}-message session", s.page.messages))
        } else {
            (
                format!("limit=10&cursor={}", s.deep_cursor),
                format!("10 messages from a cursor deep in a {}-message session", s.page.messages),
            )
        };
        let make: MakeReq = Arc::new(move |_, _| (0, api::page(&token, tenant, id, &query)));
        return closed(ctx, name, &what, 64, make).await;
    }
    if let Some(which) = name.strip_prefix("search-").and_then(|r| r.strip_suffix("-c1")) {
        let token = Arc::new(ctx.tokens.member(seed::member_of(s.search.tenant), s.search.tenant)?);
        let (tenant, id) = (s.search.tenant, s.search.id);
        let query = match which {
            "rare" => format!("limit=10&term={}", seed::RARE_TERM),
            "common" => format!("limit=10&term={}", seed::COMMON_TERM),
            _ => format!(
                "limit=10&term={}&start_date={}&end_date={}",
                seed::COMMON_TERM,
                rfc3339(s.search_window.0)?,
                rfc3339(s.search_window.1)?
            ),
        };
        let what = format!("`term` search ({which}) in a {}-message session", s.search.messages);
        let make: MakeReq = Arc::new(move |_, _| (0, api::page(&token, tenant, id, &query)));
        let mut r = closed(ctx, name, &what, 1, make).await?;
        r.headline = Headline::Latency;
        return Ok(r);
    }
    if let Some(c) = conc("send-hot-c") {
        let token = Arc::new(ctx.tokens.member(seed::member_of(s.hot.tenant), s.hot.tenant)?);
        let (tenant, id) = (s.hot.tenant, s.hot.id);
        let make: MakeReq = Arc::new(move |w, i| (0, api::send(&token, tenant, id, &format!("hot w{w} n{i}"))));
        let what = "durable send (201 after commit) into one session";
        return closed(ctx, name, what, c, make).await;
    }
    // Keys are fresh for each run of a case: a key seen before would replay.
    let nonce = uuid::Uuid::now_v7().simple().to_string();
    if let Some(c) = keyed("send-hot-c") {
        let token = Arc::new(ctx.tokens.member(seed::member_of(s.hot.tenant), s.hot.tenant)?);
        let (tenant, id) = (s.hot.tenant, s.hot.id);
        let nonce = nonce.clone();
        let make: MakeReq = Arc::new(move |w, i| {
            let (_, text, key) = keyed_send(&nonce, w, i);
            (0, api::send_keyed(&token, tenant, id, &text, &key))
        });
        let what = "durable send into one session, each with a fresh Idempotency-Key, every 10th a retry";
        return closed(ctx, name, what, c, make).await;
    }
    if let Some(c) = keyed("send-spread-c") {
        let sessions = spread(ctx)?;
        let n = sessions.len();
        let make: MakeReq = Arc::new(move |w, i| {
            let (n_sent, text, key) = keyed_send(&nonce, w, i);
            // A retry goes where its original went.
            let (token, sref) = &sessions[(n_sent as usize * 31 + w * 17) % n];
            (0, api::send_keyed(token, sref.tenant, sref.id, &text, &key))
        });
        let what = format!("durable keyed send spread over {n} sessions, every 10th a retry");
        return closed(ctx, name, &what, c, make).await;
    }
    if let Some(c) = conc("send-spread-c") {
        let sessions = spread(ctx)?;
        let n = sessions.len();
        let make: MakeReq = Arc::new(move |w, i| {
            let (token, sref) = &sessions[(i as usize * 31 + w * 17) % n];
            (0, api::send(token, sref.tenant, sref.id, &format!("spread w{w} n{i}")))
        });
        let what = format!("durable send spread over {n} sessions (one tenant each)");
        return closed(ctx, name, &what, c, make).await;
    }
    if name.starts_with("fanout-1x") {
        let subs = ctx.settings.fanout_subscribers;
        let sessions = vec![s.fanout.clone()];
        let what = format!("{} msg/s into one session with {subs} WebSocket subscribers", ctx.settings.fanout_rate);
        return fanout(ctx, name, &what, sessions, subs, ctx.settings.fanout_rate).await;
    }
    if name.starts_with("fanout-") {
        let per = ctx.settings.fanout_per_session;
        let sessions: Vec<SessionRef> = s.spread.clone();
        let what = format!(
            "{} msg/s spread over {} sessions with {per} WebSocket subscribers each",
            ctx.settings.fanout_spread_rate,
            sessions.len()
        );
        return fanout(ctx, name, &what, sessions, per, ctx.settings.fanout_spread_rate).await;
    }
    if name.starts_with("ws-idle-") {
        return idle(ctx, name).await;
    }
    if name == "mixed" {
        return mixed(ctx).await;
    }
    Err(anyhow!("unknown case {name}"))
}

/// Which send the `i`th keyed send of worker `w` is (itself, or the one it
/// retries), with its body text and key: a fresh key,
/// except every 10th send, which retries the one before it (same key, same
/// body), as a client does when an answer is lost.
fn keyed_send(nonce: &str, w: usize, i: u64) -> (u64, String, String) {
    let n = if i % 10 == 9 { i - 1 } else { i };
    (n, format!("keyed w{w} n{n}"), format!("{nonce}-{w}-{n}"))
}

/// Member tokens of every spread session.
fn spread(ctx: &Ctx<'_>) -> anyhow::Result<Arc<Vec<(String, SessionRef)>>> {
    if ctx.seeded.spread.is_empty() {
        return Err(anyhow!("no spread sessions were seeded"));
    }
    let v = ctx
        .seeded
        .spread
        .iter()
        .map(|s| Ok((ctx.tokens.member(seed::member_of(s.tenant), s.tenant)?, s.clone())))
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Arc::new(v))
}

/// RFC 3339 with microseconds, as the API takes dates.
fn rfc3339(micros: i64) -> anyhow::Result<String> {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000).context("date out of range")?;
    t.format(&time::format_description::well_known::Rfc3339).context("formatting a date")
}

/// Starts `perf record -g` and `perf stat` (CPU time, context switches,
/// fsync-family and write system calls) on the first server process if this
/// case was asked for.
async fn start_perf(ctx: &Ctx<'_>, name: &str, planned: Duration) -> Vec<tokio::process::Child> {
    if ctx.settings.perf_case.as_deref() != Some(name) {
        return Vec::new();
    }
    let Some(pid) = ctx.pids.first().map(u32::to_string) else { return Vec::new() };
    let secs = (planned + ctx.settings.warmup()).as_secs_f64().ceil().to_string();
    let record = ctx.settings.out_dir.join(format!("perf-{}-{name}.data", ctx.target));
    let stat = ctx.settings.out_dir.join(format!("perf-{}-{name}.stat.txt", ctx.target));
    let events = "task-clock,context-switches,cpu-migrations,syscalls:sys_enter_fsync,syscalls:sys_enter_fdatasync,\
                  syscalls:sys_enter_pwrite64,syscalls:sys_enter_pread64,syscalls:sys_enter_futex";
    let spawn = |args: Vec<String>| {
        tokio::process::Command::new("perf")
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
    };
    let mut children = Vec::new();
    let runs = [
        vec!["record", "-F", "499", "-g", "-p", &pid, "-o"].into_iter().map(String::from).chain([
            record.display().to_string(),
            "--".into(),
            "sleep".into(),
            secs.clone(),
        ]),
        vec!["stat", "-e", events, "-p", &pid, "-o"].into_iter().map(String::from).chain([
            stat.display().to_string(),
            "--".into(),
            "sleep".into(),
            secs.clone(),
        ]),
    ];
    for args in runs {
        match spawn(args.collect()) {
            Ok(c) => children.push(c),
            Err(e) => eprintln!("perf: could not start ({e}); continuing without it"),
        }
    }
    if !children.is_empty() {
        eprintln!("perf: recording pid {pid} into {} and {}", record.display(), stat.display());
        // Let perf attach before the load starts.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    children
}

/// A closed-loop case: `conns` connections back to back.
async fn closed(ctx: &Ctx<'_>, name: &str, what: &str, conns: usize, make: MakeReq) -> anyhow::Result<CaseResult> {
    let sampler = Sampler::start(&ctx.pids);
    let m =
        load::closed_loop(&ctx.addrs, conns, ctx.settings.warmup(), ctx.settings.duration, make, &ctx.progress).await?;
    let usage = sampler.finish();
    let mut r = CaseResult::new(ctx.target, name, what, Headline::Throughput, conns);
    fill(&mut r, &m);
    r.server = Some(usage);
    Ok(r)
}

/// Copies a closed loop's figures into a result.
fn fill(r: &mut CaseResult, m: &load::Measured) {
    r.seconds = m.elapsed.as_secs_f64();
    r.ok = m.ok;
    r.errors = m.errors;
    r.throughput = m.throughput();
    r.latency_ms = load::Latency::of(&m.latency);
    if !m.error_kinds.is_empty() {
        r.extra.insert("error_kinds".into(), json!(m.error_kinds));
    }
    if let Some(e) = &m.first_error {
        r.extra.insert("first_error".into(), json!(e));
    }
}

/// Reads a stream until told to stop, recording how long each message
/// whose text starts with `prefix` took from its scheduled send (µs since
/// `epoch`, carried in the text) to arrival here.
fn spawn_reader(
    mut ws: Ws,
    epoch: Instant,
    prefix: &'static str,
    mut stop: watch::Receiver<bool>,
    deadline: Instant,
    received: Arc<AtomicU64>,
) -> tokio::task::JoinHandle<Vec<u32>> {
    tokio::spawn(async move {
        let needle = format!("\"message\":\"{prefix} ");
        let mut lat = Vec::new();
        loop {
            tokio::select! {
                _ = stop.changed() => break,
                _ = tokio::time::sleep_until(deadline.into()) => break,
                msg = ws.next() => match msg {
                    Some(Ok(Message::Text(text))) => {
                        if let Some(at) = text.find(needle.as_str()) {
                            let digits: String =
                                text[at + needle.len()..].chars().take_while(char::is_ascii_digit).collect();
                            if let Ok(sent) = digits.parse::<u64>() {
                                let now = epoch.elapsed().as_micros() as u64;
                                lat.push(u32::try_from(now.saturating_sub(sent)).unwrap_or(u32::MAX));
                                received.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                    Some(Ok(_)) => {}
                    _ => break,
                },
            }
        }
        let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
        lat
    })
}

/// Open loop: `rate` sends a second for `duration`, each on a pooled
/// connection and timed from its scheduled start, so a slow server shows as
/// latency, not as fewer sends. `make(k, micros)` builds send `k` scheduled
/// at `micros` since `epoch`.
async fn open_loop(
    addr: SocketAddr,
    rate: f64,
    duration: Duration,
    epoch: Instant,
    make: impl Fn(u64, u64) -> Req,
    progress: &Arc<Progress>,
) -> anyhow::Result<(Histogram<u64>, u64, u64)> {
    let n = (rate * duration.as_secs_f64()).round().max(1.0) as u64;
    let pool: Arc<Mutex<Vec<Conn>>> = Arc::new(Mutex::new(Vec::new()));
    // Bounds the sends in flight when the server falls behind.
    let inflight = Arc::new(Semaphore::new(256));
    let start = Instant::now() + Duration::from_millis(50);
    let mut tasks = Vec::with_capacity(n as usize);
    for k in 0..n {
        let sched = start + Duration::from_secs_f64(k as f64 / rate);
        tokio::time::sleep_until(sched.into()).await;
        let permit = Arc::clone(&inflight).acquire_owned().await.context("semaphore closed")?;
        let req = make(k, sched.duration_since(epoch).as_micros() as u64);
        let pool = Arc::clone(&pool);
        let progress = Arc::clone(progress);
        tasks.push(tokio::spawn(async move {
            let _permit = permit;
            let pooled = pool.lock().ok().and_then(|mut p| p.pop());
            let mut conn = match pooled {
                Some(c) => c,
                None => Conn::open(addr).await?,
            };
            let res = conn.send(req).await;
            let took = Instant::now().saturating_duration_since(sched);
            match res {
                Ok((status, _)) if status.is_success() => {
                    progress.ok.fetch_add(1, Ordering::Relaxed);
                    if let Ok(mut p) = pool.lock() {
                        p.push(conn);
                    }
                    Ok::<_, anyhow::Error>(Some(took))
                }
                _ => {
                    progress.errors.fetch_add(1, Ordering::Relaxed);
                    Ok(None)
                }
            }
        }));
    }
    let mut hist = load::histogram();
    let (mut ok, mut errors) = (0, 0);
    for t in tasks {
        match t.await {
            Ok(Ok(Some(took))) => {
                ok += 1;
                load::record(&mut hist, took);
            }
            _ => errors += 1,
        }
    }
    Ok((hist, ok, errors))
}

/// A database-work counter: PostgreSQL transactions, or on SQLite the
/// server's read system calls.
async fn db_counter(ctx: &Ctx<'_>) -> (&'static str, f64) {
    match ctx.pg {
        Some(db) => ("db_commits_per_message", db.commits().await.unwrap_or(0) as f64),
        None => ("read_syscalls_per_message", procs::read_syscalls(&ctx.pids) as f64),
    }
}

/// Fan-out: `per_session` WebSocket subscribers on each of `sessions`, an
/// open-loop sender at `rate` msg/s round-robin over the sessions; the
/// headline is send → receive latency at every subscriber.
async fn fanout(
    ctx: &Ctx<'_>,
    name: &str,
    what: &str,
    sessions: Vec<SessionRef>,
    per_session: usize,
    rate: f64,
) -> anyhow::Result<CaseResult> {
    let n_subs = sessions.len() * per_session;
    // Subscriber i watches session i % sessions; distinct members of that tenant.
    let who = |i: usize| {
        let s = &sessions[i % sessions.len()];
        ctx.tokens.member(2_000_000 + i as i64, s.tenant).map(|t| (t, s.tenant, s.id))
    };
    let (streams, _) =
        api::open_many(&ctx.addrs, n_subs, 64, who, &ctx.progress).await.context("opening subscribers")?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let received = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + ctx.settings.duration + Duration::from_secs(60);
    let readers: Vec<_> = streams
        .into_iter()
        .map(|ws| spawn_reader(ws, ctx.epoch, "fanout", stop_rx.clone(), deadline, Arc::clone(&received)))
        .collect();

    let tokens: Vec<String> = sessions
        .iter()
        .map(|s| ctx.tokens.member(seed::member_of(s.tenant), s.tenant))
        .collect::<anyhow::Result<_>>()?;
    // PostgreSQL publishes a backend's counters late (up to 10 s once it is
    // idle): wait until the subscriptions' own transactions (tickets, replay
    // reads, about three per subscriber) have landed and the counter holds
    // still, or they are counted as the messages' work.
    let (counter, mut before) = db_counter(ctx).await;
    if ctx.pg.is_some() {
        let settle_until = Instant::now() + Duration::from_secs(15);
        loop {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            let (_, now) = db_counter(ctx).await;
            if now == before || Instant::now() > settle_until {
                before = now;
                break;
            }
            before = now;
        }
    }
    ctx.progress.begin(&format!("[{}] {name}", ctx.target), ctx.settings.duration);
    let sampler = Sampler::start(&ctx.pids);
    let started = Instant::now();
    let (post, sent, post_errors) = open_loop(
        ctx.addrs[0],
        rate,
        ctx.settings.duration,
        ctx.epoch,
        |k, micros| {
            let i = k as usize % sessions.len();
            api::send(&tokens[i], sessions[i].tenant, sessions[i].id, &format!("fanout {micros}"))
        },
        &ctx.progress,
    )
    .await?;
    // Let deliveries drain: until every subscriber has every message, at most 10 s.
    let expected = sent * per_session as u64;
    let drain_until = Instant::now() + Duration::from_secs(10);
    while received.load(Ordering::Relaxed) < expected && Instant::now() < drain_until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed();
    let usage = sampler.finish();
    // PostgreSQL publishes its counters about once a second.
    if ctx.pg.is_some() {
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    let (_, after) = db_counter(ctx).await;
    let _ = stop_tx.send(true);
    let mut hist = load::histogram();
    for r in readers {
        for us in r.await.context("reader panicked")? {
            load::record(&mut hist, Duration::from_micros(u64::from(us)));
        }
    }
    let delivered = hist.len();
    let mut r = CaseResult::new(ctx.target, name, what, Headline::Latency, n_subs);
    r.seconds = elapsed.as_secs_f64();
    r.ok = delivered;
    let missing = expected.saturating_sub(delivered);
    r.errors = post_errors + missing;
    r.throughput = delivered as f64 / ctx.settings.duration.as_secs_f64();
    r.latency_ms = load::Latency::of(&hist);
    if let Some(p) = load::Latency::of(&post) {
        r.extra.insert("post_p50_ms".into(), json!(p.p50));
        r.extra.insert("post_p99_ms".into(), json!(p.p99));
        r.extra.insert("post_max_ms".into(), json!(p.max));
    }
    r.extra.insert("messages_sent".into(), json!(sent));
    r.extra.insert("expected".into(), json!(expected));
    r.extra.insert("delivered".into(), json!(delivered));
    r.extra.insert("missing".into(), json!(missing));
    if sent > 0 {
        r.extra.insert(counter.into(), json!((after - before) / sent as f64));
        r.extra.insert("server_cpu_ms_per_message".into(), json!(usage.cpu_seconds * 1000.0 / sent as f64));
    }
    r.server = Some(usage);
    Ok(r)
}

/// Idle connections: open N subscribed WebSockets, hold, close; the
/// headline is the server's resident memory per connection, and what
/// stays after they close.
async fn idle(ctx: &Ctx<'_>, name: &str) -> anyhow::Result<CaseResult> {
    let n = ctx.settings.idle_connections;
    let sessions: Vec<SessionRef> =
        if ctx.seeded.spread.is_empty() { vec![ctx.seeded.page.clone()] } else { ctx.seeded.spread.clone() };
    // Long enough for the server to finish tearing down; shorter in quick runs.
    let pause = (ctx.settings.duration / 2).min(Duration::from_secs(2));
    let settle = || tokio::time::sleep(pause);
    settle().await;
    let before = procs::rss_kib(&ctx.pids);
    let sampler = Sampler::start(&ctx.pids);
    let who = |i: usize| {
        let s = &sessions[i % sessions.len()];
        ctx.tokens.member(3_000_000 + i as i64, s.tenant).map(|t| (t, s.tenant, s.id))
    };
    let started = Instant::now();
    let (streams, connect) =
        api::open_many(&ctx.addrs, n, 64, who, &ctx.progress).await.context("opening idle connections")?;
    let opened_in = started.elapsed();
    let (stop_tx, stop_rx) = watch::channel(false);
    let received = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + ctx.settings.duration + Duration::from_secs(120);
    let readers: Vec<_> = streams
        .into_iter()
        .map(|ws| spawn_reader(ws, ctx.epoch, "idle", stop_rx.clone(), deadline, Arc::clone(&received)))
        .collect();
    // Hold them open (the server pings; the readers answer), then measure.
    tokio::time::sleep(ctx.settings.duration.min(Duration::from_secs(10))).await;
    let open = procs::rss_kib(&ctx.pids);
    let _ = stop_tx.send(true);
    for r in readers {
        let _ = r.await;
    }
    let usage = sampler.finish();
    // Give the server time to tear the connections down and free their memory.
    settle().await;
    settle().await;
    let after = procs::rss_kib(&ctx.pids);
    let mut r = CaseResult::new(
        ctx.target,
        name,
        "idle subscribed WebSockets: server memory each, and after close",
        Headline::Memory,
        n,
    );
    r.seconds = opened_in.as_secs_f64();
    r.ok = connect.len();
    r.throughput = connect.len() as f64 / opened_in.as_secs_f64().max(1e-9);
    r.latency_ms = load::Latency::of(&connect);
    let per = |kib: u64| kib as f64 / n.max(1) as f64;
    r.extra.insert("rss_before_mib".into(), json!(before as f64 / 1024.0));
    r.extra.insert("rss_open_mib".into(), json!(open as f64 / 1024.0));
    r.extra.insert("rss_after_close_mib".into(), json!(after as f64 / 1024.0));
    r.extra.insert("per_connection_kib".into(), json!(per(open.saturating_sub(before))));
    r.extra.insert("retained_per_connection_kib".into(), json!(per(after.saturating_sub(before))));
    r.server = Some(usage);
    Ok(r)
}

/// Operation kinds of the mixed workload, and their share in percent.
const MIXED_OPS: [(&str, u64); 5] =
    [("latest_page", 60), ("get_session", 15), ("list_sessions", 10), ("search", 5), ("send", 10)];

/// Mixed: many tenants, reads ≫ writes, streams open on the sessions being
/// written; every client on its own connection, back to back.
async fn mixed(ctx: &Ctx<'_>) -> anyhow::Result<CaseResult> {
    let sessions = spread(ctx)?;
    let n_streams = ctx.settings.mixed_streams;
    let who = |i: usize| {
        let s = &sessions[i % sessions.len()].1;
        ctx.tokens.member(4_000_000 + i as i64, s.tenant).map(|t| (t, s.tenant, s.id))
    };
    let (streams, _) =
        api::open_many(&ctx.addrs, n_streams, 64, who, &ctx.progress).await.context("opening streams")?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let received = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + ctx.settings.mixed_duration + Duration::from_secs(60);
    let readers: Vec<_> = streams
        .into_iter()
        .map(|ws| spawn_reader(ws, ctx.epoch, "mixed", stop_rx.clone(), deadline, Arc::clone(&received)))
        .collect();

    let epoch = ctx.epoch;
    let n = sessions.len();
    let make: MakeReq = Arc::new(move |w, i| {
        let h = mix(((w as u64) << 40) ^ i);
        let (token, s) = &sessions[(h >> 8) as usize % n];
        let mut roll = h % 100;
        let mut op = 0;
        for (k, (_, share)) in MIXED_OPS.iter().enumerate() {
            if roll < *share {
                op = k;
                break;
            }
            roll -= share;
        }
        let req = match op {
            0 => api::page(token, s.tenant, s.id, "limit=10"),
            1 => api::session(token, s.tenant, s.id),
            2 => api::sessions(token, s.tenant),
            3 => api::page(token, s.tenant, s.id, "limit=10&term=kopi"),
            _ => api::send(token, s.tenant, s.id, &format!("mixed {}", epoch.elapsed().as_micros())),
        };
        (op, req)
    });
    ctx.progress.begin(&format!("[{}] mixed", ctx.target), ctx.settings.mixed_duration);
    let sampler = Sampler::start(&ctx.pids);
    let conns = ctx.settings.mixed_conns;
    let m =
        load::closed_loop(&ctx.addrs, conns, ctx.settings.warmup(), ctx.settings.mixed_duration, make, &ctx.progress)
            .await?;
    let usage = sampler.finish();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = stop_tx.send(true);
    let mut stream_hist = load::histogram();
    for r in readers {
        for us in r.await.context("reader panicked")? {
            load::record(&mut stream_hist, Duration::from_micros(u64::from(us)));
        }
    }
    let what = format!(
        "{conns} clients over {n} tenants: 60% latest page, 15% session, 10% session list, 5% search, 10% send; {n_streams} streams open"
    );
    let mut r = CaseResult::new(ctx.target, "mixed", &what, Headline::Throughput, conns);
    fill(&mut r, &m);
    let mut ops = serde_json::Map::new();
    for (k, (label, _)) in MIXED_OPS.iter().enumerate() {
        if let Some(l) = load::Latency::of(&m.per_kind[k]) {
            ops.insert((*label).into(), json!(l));
        }
    }
    r.extra.insert("ops".into(), serde_json::Value::Object(ops));
    r.extra.insert("events_received".into(), json!(stream_hist.len()));
    if let Some(l) = load::Latency::of(&stream_hist) {
        r.extra.insert("stream_latency_ms".into(), json!(l));
    }
    r.extra.insert("streams".into(), json!(n_streams));
    r.server = Some(usage);
    Ok(r)
}

/// A 64-bit mixer (splitmix64's finaliser) for picking operations.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
