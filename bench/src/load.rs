//! HTTP/1.1 connections, closed- and open-loop drivers, latency histograms
//! and the progress line.

use anyhow::{Context, anyhow, bail};
use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// Longest a single request may take before it counts as an error.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Histogram range: 1 µs to 120 s, three significant digits.
const HIST_MAX_MICROS: u64 = 120_000_000;

/// A new latency histogram in microseconds.
pub fn histogram() -> Histogram<u64> {
    // Bounds are constants that hdrhistogram accepts; a failure is a bug here.
    #[allow(clippy::expect_used)]
    Histogram::new_with_bounds(1, HIST_MAX_MICROS, 3).expect("valid histogram bounds")
}

/// Records one latency, clamped into the histogram's range.
pub fn record(h: &mut Histogram<u64>, d: Duration) {
    let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX).clamp(1, HIST_MAX_MICROS);
    h.saturating_record(micros);
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Slowest.
    pub max: f64,
    /// Arithmetic mean.
    pub mean: f64,
    /// Samples behind the figures.
    pub samples: u64,
}

impl Latency {
    /// Summarises a histogram of microseconds; `None` when it is empty.
    pub fn of(h: &Histogram<u64>) -> Option<Self> {
        if h.is_empty() {
            return None;
        }
        let ms = |v: u64| v as f64 / 1000.0;
        Some(Self {
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p99: ms(h.value_at_quantile(0.99)),
            max: ms(h.max()),
            mean: h.mean() / 1000.0,
            samples: h.len(),
        })
    }
}

/// One HTTP/1.1 keep-alive connection, owned by one worker (as wrk does).
pub struct Conn {
    addr: SocketAddr,
    host: String,
    sender: SendRequest<Full<Bytes>>,
}

impl Conn {
    /// Opens a connection to a loopback address.
    pub async fn open(addr: SocketAddr) -> anyhow::Result<Self> {
        if !addr.ip().is_loopback() {
            bail!("refusing to connect to {addr}: the benchmark only talks to loopback");
        }
        let stream = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(addr))
            .await
            .map_err(|_| anyhow!("connecting to {addr} timed out"))?
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true).context("TCP_NODELAY")?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .with_context(|| format!("HTTP handshake with {addr}"))?;
        // The connection task ends when the sender is dropped or the peer closes.
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Self { addr, host: addr.to_string(), sender })
    }

    /// The address this connection goes to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sends one request and reads the whole response body.
    pub async fn send(&mut self, req: Req) -> anyhow::Result<(StatusCode, Bytes)> {
        let fut = async {
            self.sender.ready().await.context("connection not ready")?;
            let mut builder = Request::builder().method(req.method).uri(req.path).header("host", &self.host);
            for (name, value) in &req.headers {
                builder = builder.header(*name, value.as_str());
            }
            if req.body.is_some() {
                builder = builder.header("content-type", "application/json");
            }
            let request = builder.body(Full::new(req.body.unwrap_or_default())).context("building request")?;
            let response = self.sender.send_request(request).await.context("sending request")?;
            let status = response.status();
            let body = response.into_body().collect().await.context("reading body")?.to_bytes();
            Ok::<_, anyhow::Error>((status, body))
        };
        tokio::time::timeout(REQUEST_TIMEOUT, fut).await.map_err(|_| anyhow!("request timed out"))?
    }

    /// Sends a request; a non-2xx status is an error carrying the body.
    pub async fn call(&mut self, req: Req) -> anyhow::Result<serde_json::Value> {
        let what = format!("{} {}", req.method, req.path);
        let (status, body) = self.send(req).await.with_context(|| what.clone())?;
        if !status.is_success() {
            bail!("{what}: {status}: {}", String::from_utf8_lossy(&body));
        }
        serde_json::from_slice(&body).with_context(|| format!("{what}: response is not JSON"))
    }
}

/// A request to send: method, path with query, headers, optional JSON body.
#[derive(Clone, Debug)]
pub struct Req {
    /// HTTP method.
    pub method: Method,
    /// Path and query.
    pub path: String,
    /// Extra headers.
    pub headers: Vec<(&'static str, String)>,
    /// JSON body, when any.
    pub body: Option<Bytes>,
}

impl Req {
    /// A GET with no headers.
    pub fn get(path: impl Into<String>) -> Self {
        Self { method: Method::GET, path: path.into(), headers: Vec::new(), body: None }
    }

    /// A request with a JSON body.
    pub fn with_json(method: Method, path: impl Into<String>, body: &serde_json::Value) -> Self {
        Self { method, path: path.into(), headers: Vec::new(), body: Some(Bytes::from(body.to_string())) }
    }

    /// Adds a header.
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

/// Counters the progress line reads while a case runs.
#[derive(Default)]
pub struct Progress {
    label: Mutex<String>,
    started: Mutex<Option<Instant>>,
    planned: Mutex<Duration>,
    /// Successful operations so far.
    pub ok: AtomicU64,
    /// Failed operations so far.
    pub errors: AtomicU64,
    stop: AtomicBool,
}

impl Progress {
    /// Starts counting for a new case.
    pub fn begin(&self, label: &str, planned: Duration) {
        if let Ok(mut l) = self.label.lock() {
            *l = label.to_owned();
        }
        if let Ok(mut s) = self.started.lock() {
            *s = Some(Instant::now());
        }
        if let Ok(mut p) = self.planned.lock() {
            *p = planned;
        }
        self.ok.store(0, Ordering::Relaxed);
        self.errors.store(0, Ordering::Relaxed);
    }

    /// Marks the case finished: the line goes quiet until the next begins.
    pub fn end(&self) {
        if let Ok(mut s) = self.started.lock() {
            *s = None;
        }
        if std::io::stderr().is_terminal() {
            eprint!("\r\x1b[K");
        }
    }

    /// Stops the printer task for good.
    pub fn shutdown(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Prints the line every second while a case runs, with the server's
    /// CPU and memory from `sample`.
    pub fn spawn_printer(self: &Arc<Self>, sample: Arc<dyn Fn() -> String + Send + Sync>) {
        let me = Arc::clone(self);
        let tty = std::io::stderr().is_terminal();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            let (mut last_ok, mut last_start) = (0, None);
            while !me.stop.load(Ordering::Relaxed) {
                tick.tick().await;
                let started = me.started.lock().ok().and_then(|s| *s);
                let Some(started) = started else {
                    continue;
                };
                if last_start != Some(started) {
                    // A new case: its counters start from zero.
                    (last_ok, last_start) = (0, Some(started));
                }
                let label = me.label.lock().map(|l| l.clone()).unwrap_or_default();
                let planned = me.planned.lock().map(|p| *p).unwrap_or_default();
                let ok = me.ok.load(Ordering::Relaxed);
                let errors = me.errors.load(Ordering::Relaxed);
                let rate = ok.saturating_sub(last_ok);
                last_ok = ok;
                let line = format!(
                    "{label:<32} {:>5.1}s/{:<4.0}s  ok {ok:>9} ({rate:>6}/s)  err {errors:<5} {}",
                    started.elapsed().as_secs_f64(),
                    planned.as_secs_f64(),
                    sample()
                );
                let mut err = std::io::stderr().lock();
                if tty {
                    let _ = write!(err, "\r\x1b[K{line}");
                } else {
                    let _ = writeln!(err, "{line}");
                }
                let _ = err.flush();
            }
        });
    }
}

/// What a load run measured.
pub struct Measured {
    /// Successful operations.
    pub ok: u64,
    /// Failed operations (transport errors, timeouts, unexpected statuses).
    pub errors: u64,
    /// Latency of the successful operations, µs.
    pub latency: Histogram<u64>,
    /// Measured wall time (after warm-up).
    pub elapsed: Duration,
    /// Error statuses and kinds, counted.
    pub error_kinds: BTreeMap<String, u64>,
    /// Latency per operation kind (the first element of what `MakeReq` returns).
    pub per_kind: Vec<Histogram<u64>>,
    /// The first failure's request and response, for diagnosis.
    pub first_error: Option<String>,
}

impl Measured {
    /// Operations per second.
    pub fn throughput(&self) -> f64 {
        if self.elapsed.is_zero() { 0.0 } else { self.ok as f64 / self.elapsed.as_secs_f64() }
    }
}

/// Builds the `i`-th request of worker `w`, with its operation kind
/// (an index below `KINDS`; 0 when a case has one kind).
pub type MakeReq = Arc<dyn Fn(usize, u64) -> (usize, Req) + Send + Sync>;

/// Most operation kinds a closed loop tells apart.
pub const KINDS: usize = 8;

/// Closed loop: `conns` workers, each on its own connection to
/// `addrs[w % addrs.len()]`, send back to back for `warmup + duration`;
/// only requests that start after the warm-up are counted.
pub async fn closed_loop(
    addrs: &[SocketAddr],
    conns: usize,
    warmup: Duration,
    duration: Duration,
    make: MakeReq,
    progress: &Arc<Progress>,
) -> anyhow::Result<Measured> {
    if addrs.is_empty() || conns == 0 {
        bail!("closed loop needs at least one address and one connection");
    }
    let mut opened = Vec::with_capacity(conns);
    for w in 0..conns {
        opened.push(Conn::open(addrs[w % addrs.len()]).await?);
    }
    let start = Instant::now();
    let measure_from = start + warmup;
    let deadline = measure_from + duration;
    let mut tasks = Vec::with_capacity(conns);
    for (w, mut conn) in opened.into_iter().enumerate() {
        let make = Arc::clone(&make);
        let progress = Arc::clone(progress);
        tasks.push(tokio::spawn(async move {
            let mut hist = histogram();
            let mut per_kind: Vec<Histogram<u64>> = (0..KINDS).map(|_| histogram()).collect();
            let (mut ok, mut errors) = (0u64, 0u64);
            let mut kinds: BTreeMap<String, u64> = BTreeMap::new();
            let mut first_error: Option<String> = None;
            let mut i = 0u64;
            loop {
                let t0 = Instant::now();
                if t0 >= deadline {
                    break;
                }
                let counted = t0 >= measure_from;
                let (op, req) = make(w, i);
                let op = op.min(KINDS - 1);
                let what = if first_error.is_none() { format!("{} {}", req.method, req.path) } else { String::new() };
                let outcome = conn.send(req).await;
                i += 1;
                let kind = match outcome {
                    Ok((status, _)) if status.is_success() => None,
                    Ok((status, body)) => {
                        if first_error.is_none() {
                            let body: String = String::from_utf8_lossy(&body).chars().take(300).collect();
                            first_error = Some(format!("{what} -> {status}: {body}"));
                        }
                        Some(format!("HTTP {}", status.as_u16()))
                    }
                    Err(e) => {
                        let e: String = format!("{e:#}").chars().take(120).collect();
                        if first_error.is_none() {
                            first_error = Some(format!("{what} -> {e}"));
                        }
                        Some(e)
                    }
                };
                match kind {
                    None => {
                        progress.ok.fetch_add(1, Ordering::Relaxed);
                        if counted {
                            ok += 1;
                            let took = t0.elapsed();
                            record(&mut hist, took);
                            record(&mut per_kind[op], took);
                        }
                    }
                    Some(kind) => {
                        progress.errors.fetch_add(1, Ordering::Relaxed);
                        if counted {
                            errors += 1;
                            *kinds.entry(kind).or_default() += 1;
                        }
                        // A broken connection is replaced; a refused one ends the worker's turn.
                        if conn.sender.is_closed() {
                            match Conn::open(conn.addr()).await {
                                Ok(c) => conn = c,
                                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                            }
                        }
                    }
                }
            }
            (hist, per_kind, ok, errors, kinds, first_error)
        }));
    }
    let mut latency = histogram();
    let mut per_kind: Vec<Histogram<u64>> = (0..KINDS).map(|_| histogram()).collect();
    let (mut ok, mut errors) = (0, 0);
    let mut error_kinds = BTreeMap::new();
    let mut first_error = None;
    for t in tasks {
        let (h, pk, o, e, k, fe) = t.await.context("load worker panicked")?;
        first_error = first_error.or(fe);
        latency.add(&h).context("merging histograms")?;
        for (all, one) in per_kind.iter_mut().zip(&pk) {
            all.add(one).context("merging histograms")?;
        }
        ok += o;
        errors += e;
        for (kind, n) in k {
            *error_kinds.entry(kind).or_default() += n;
        }
    }
    let elapsed = Instant::now().saturating_duration_since(measure_from).min(duration + REQUEST_TIMEOUT);
    Ok(Measured { ok, errors, latency, elapsed, error_kinds, per_kind, first_error })
}

/// Runs `n` setup requests with `conns` connections (seeding through the
/// API, tickets); returns the parsed bodies in order.
pub async fn batch(
    addrs: &[SocketAddr],
    conns: usize,
    reqs: Vec<Req>,
    progress: &Arc<Progress>,
) -> anyhow::Result<Vec<serde_json::Value>> {
    if addrs.is_empty() {
        bail!("no address to send to");
    }
    let n = reqs.len();
    let queue = Arc::new(Mutex::new(reqs.into_iter().enumerate().collect::<Vec<_>>()));
    let mut tasks = Vec::new();
    for w in 0..conns.clamp(1, n.max(1)) {
        let queue = Arc::clone(&queue);
        let addr = addrs[w % addrs.len()];
        let progress = Arc::clone(progress);
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::open(addr).await?;
            let mut out = Vec::new();
            loop {
                let next = queue.lock().map_err(|_| anyhow!("queue poisoned"))?.pop();
                let Some((i, req)) = next else { break };
                let v = conn.call(req).await?;
                progress.ok.fetch_add(1, Ordering::Relaxed);
                out.push((i, v));
            }
            Ok::<_, anyhow::Error>(out)
        }));
    }
    let mut all = vec![serde_json::Value::Null; n];
    for t in tasks {
        for (i, v) in t.await.context("setup worker panicked")?? {
            all[i] = v;
        }
    }
    Ok(all)
}
