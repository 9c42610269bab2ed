//! Accepting connections, with limits no client can wear out: a request head
//! (and then its body) must arrive within the header timeout, an idle
//! keep-alive connection is closed after the idle timeout, and above the
//! connection cap a new connection gets a 503 and is closed, instead of
//! queueing until every descriptor is taken.

use super::error::ApiError;
use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use tower::ServiceExt;

/// Connection-level limits (see docs/OPERATIONS.md, Connections).
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// A request head must arrive whole within this, counted from its first byte.
    pub header_timeout: Duration,
    /// A keep-alive connection with no request for this long is closed.
    pub idle_timeout: Duration,
    /// Open connections (streams included) above which new ones are refused with 503.
    pub max_connections: usize,
}

/// Connections being refused (503) at once, at most; beyond that a new one is
/// dropped unanswered, since even a refusal holds a descriptor for a moment.
const MAX_REFUSING: usize = 256;
/// How often a connection's timers are checked.
const TICK: Duration = Duration::from_millis(250);

/// Where a connection is in its request cycle.
const IDLE: u8 = 0;
const HEAD: u8 = 1;
const BUSY: u8 = 2;

/// What a connection is doing, and since when (ms from its start).
struct Activity {
    state: AtomicU8,
    since: AtomicU64,
    in_flight: AtomicUsize,
    start: Instant,
}

impl Activity {
    /// A new connection is waiting for its first request head: a client that
    /// connects and sends nothing gets the header timeout, not the idle one.
    fn new() -> Arc<Self> {
        let state = AtomicU8::new(HEAD);
        Arc::new(Self { state, since: AtomicU64::new(0), in_flight: AtomicUsize::new(0), start: Instant::now() })
    }

    fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn set(&self, state: u8) {
        self.since.store(self.now(), Ordering::SeqCst);
        self.state.store(state, Ordering::SeqCst);
    }

    /// Bytes arrived: on an idle connection, a request head has begun.
    fn bytes_read(&self) {
        if self.state.load(Ordering::SeqCst) == IDLE {
            self.set(HEAD);
        }
    }

    fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        self.state.store(BUSY, Ordering::SeqCst);
    }

    fn request_ended(&self) {
        if self.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.set(IDLE);
        }
    }

    /// The limit this connection has run past, if any.
    fn expired(&self, limits: &ConnectionLimits) -> Option<Expired> {
        let elapsed = Duration::from_millis(self.now().saturating_sub(self.since.load(Ordering::SeqCst)));
        match self.state.load(Ordering::SeqCst) {
            HEAD if elapsed > limits.header_timeout => Some(Expired::Head),
            IDLE if elapsed > limits.idle_timeout => Some(Expired::Idle),
            _ => None,
        }
    }
}

enum Expired {
    Head,
    Idle,
}

/// A socket that reports reads to its connection's [`Activity`].
struct Tracked {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Tracked {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.bytes_read();
        }
        polled
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Marks its request ended when the response body is done (or dropped).
struct RequestGuard(Arc<Activity>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.0.request_ended();
    }
}

/// A response body that ends its request when it ends.
struct GuardedBody {
    inner: Body,
    _guard: RequestGuard,
}

impl http_body::Body for GuardedBody {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Counts live connections and wakes the drain when the last one ends.
#[derive(Default)]
struct Live {
    count: AtomicUsize,
    gone: Notify,
}

struct LiveGuard(Arc<Live>);

impl Drop for LiveGuard {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.gone.notify_waiters();
        }
    }
}

impl Live {
    fn enter(self: &Arc<Self>) -> LiveGuard {
        self.count.fetch_add(1, Ordering::SeqCst);
        LiveGuard(self.clone())
    }

    async fn drained(&self) {
        loop {
            let gone = self.gone.notified();
            if self.count.load(Ordering::SeqCst) == 0 {
                return;
            }
            gone.await;
        }
    }
}

/// Accepts connections until `shutdown` resolves, then lets each finish its
/// current request and returns when all have (the caller bounds the wait).
/// `streams` counts upgraded connections (WebSocket), which count against
/// the cap but are no longer this loop's.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    streams: impl Fn() -> usize,
    shutdown: impl Future<Output = ()>,
) {
    let live = Arc::new(Live::default());
    let refusing = Arc::new(Live::default());
    let (stop, stopping) = watch::channel(false);
    let busy = busy_router();
    let mut last_accept_error: Option<Instant> = None;
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(err) => {
                // Out of descriptors (or a connection reset before accept): wait a
                // little instead of spinning; connections closing will free some.
                if last_accept_error.is_none_or(|at| at.elapsed() > Duration::from_secs(1)) {
                    tracing::warn!(error = %err, "cannot accept a connection");
                    last_accept_error = Some(Instant::now());
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        if live.count.load(Ordering::SeqCst) + streams() >= limits.max_connections {
            if refusing.count.load(Ordering::SeqCst) < MAX_REFUSING {
                tokio::spawn(refuse(stream, busy.clone(), limits, refusing.enter()));
            }
            continue;
        }
        tokio::spawn(connection(stream, app.clone(), limits, stopping.clone(), live.enter()));
    }
    drop(listener);
    stop.send_replace(true);
    live.drained().await;
}

/// Serves one connection until it closes, expires, or the server stops.
async fn connection(
    stream: TcpStream,
    app: Router,
    limits: ConnectionLimits,
    mut stopping: watch::Receiver<bool>,
    _live: LiveGuard,
) {
    let activity = Activity::new();
    let io = TokioIo::new(Tracked { inner: stream, activity: activity.clone() });
    let tracker = activity.clone();
    let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
        tracker.request_started();
        let guard = RequestGuard(tracker.clone());
        let app = app.clone();
        async move {
            let res = app.oneshot(req.map(Body::new)).await.unwrap_or_else(|never| match never {});
            Ok::<_, std::convert::Infallible>(res.map(|inner| Body::new(GuardedBody { inner, _guard: guard })))
        }
    });
    let conn =
        http1::Builder::new().timer(TokioTimer::new()).keep_alive(true).serve_connection(io, service).with_upgrades();
    tokio::pin!(conn);
    let mut tick = tokio::time::interval(TICK);
    loop {
        tokio::select! {
            _ = conn.as_mut() => return,
            _ = tick.tick() => match activity.expired(&limits) {
                // Half a head after the timeout: drop it, there is no request to answer.
                Some(Expired::Head) => return,
                Some(Expired::Idle) => break,
                None => {}
            },
            _ = stopping.wait_for(|stop| *stop) => break,
        }
    }
    // Finish the request in progress, if any, then close.
    conn.as_mut().graceful_shutdown();
    let _ = conn.await;
}

/// A router that answers everything 503 `server_busy` and closes.
fn busy_router() -> Router {
    Router::new()
        .fallback(|| async {
            let mut res = ApiError::Busy.into_response();
            res.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            res
        })
        .layer(axum::middleware::from_fn(super::request_id::scope))
}

/// Answers a connection over the cap with 503 and closes it.
async fn refuse(stream: TcpStream, busy: Router, limits: ConnectionLimits, _refusing: LiveGuard) {
    let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
        let busy = busy.clone();
        async move {
            Ok::<Response, std::convert::Infallible>(
                busy.oneshot(req.map(Body::new)).await.unwrap_or_else(|never| match never {}),
            )
        }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .keep_alive(false)
        .header_read_timeout(limits.header_timeout.min(Duration::from_secs(2)))
        .serve_connection(TokioIo::new(stream), service);
    let _ = tokio::time::timeout(Duration::from_secs(5), conn).await;
}

/// Raises this process's open-file soft limit to its hard limit, so the
/// connection cap, not the kernel, decides when to refuse; returns the limit.
pub fn raise_descriptor_limit() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(err) => {
            tracing::warn!(error = %err, "cannot raise the open-file limit");
            rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft)
        }
    }
}
