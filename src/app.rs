//! The server as a value: built from settings, bound to a port, run until a
//! shutdown signal. Tests build it on port 0 exactly as `livechat serve` does.

use crate::auth::{AuthConfig, Verifier};
use crate::domain::access::AccessPolicy;
use crate::http::rate_limit::RateLimit;
use crate::http::server::{self, ConnectionLimits};
use crate::http::{AppState, RouterOptions, router};
use crate::metrics::Metrics;
use crate::realtime::{self, Realtime, RealtimeSettings};
use crate::service::{Limits, Livechat};
use crate::store::{self, StoreConfig};
use anyhow::Context;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Resolved settings of one server.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Listen address; port 0 picks a free one.
    pub bind: SocketAddr,
    /// Storage.
    pub store: StoreConfig,
    /// Token verification.
    pub auth: AuthConfig,
    /// Role allowlist.
    pub policy: AccessPolicy,
    /// Largest request body.
    pub max_body_bytes: usize,
    /// Message, presence and ticket limits.
    pub limits: Limits,
    /// Stream tunables.
    pub realtime: RealtimeSettings,
    /// Requests per minute and burst allowed per user (0: no limit).
    pub rate_limit: (u32, u32),
    /// Drain time at shutdown.
    pub shutdown_timeout: Duration,
    /// Header and idle timeouts, and the connection cap (0: from the descriptor limit).
    pub connections: ConnectionLimits,
    /// Serve the web UI at `/`.
    pub ui: bool,
    /// Browser origins allowed to call the API (CORS); empty: none.
    pub cors_origins: Vec<axum::http::HeaderValue>,
    /// Serve `/metrics` on this address instead of the main listener.
    pub metrics_bind: Option<SocketAddr>,
}

/// A bound, ready-to-run server.
pub struct Application {
    listener: TcpListener,
    addr: SocketAddr,
    state: AppState,
    stop_streams: watch::Sender<bool>,
    router: RouterOptions,
    /// `/metrics` on an address of its own, if configured.
    metrics_listener: Option<TcpListener>,
    shutdown_timeout: Duration,
    connections: ConnectionLimits,
}

impl Application {
    /// Connects storage (migrating if configured), loads keys and binds the listener.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let verifier = Verifier::new(&settings.auth)?;
        let metrics = Arc::new(Metrics::new());
        let metrics_listener = match settings.metrics_bind {
            Some(addr) => {
                Some(TcpListener::bind(addr).await.with_context(|| format!("cannot listen for metrics on {addr}"))?)
            }
            None => None,
        };
        let store = store::connect(&settings.store, metrics.clone()).await?;
        let listener =
            TcpListener::bind(settings.bind).await.with_context(|| format!("cannot listen on {}", settings.bind))?;
        let addr = listener.local_addr()?;
        let chat = Livechat::new(store.clone(), settings.policy, settings.limits, metrics.clone());
        let (rt, stop_streams) = Realtime::new(chat.clone(), settings.realtime);
        let (streams, subscriptions) = (rt.clone(), rt.clone());
        let (pool, idle, breaker) = (store.clone(), store.clone(), store);
        metrics.read_at_scrape(vec![
            (
                "streams_open",
                "Open WebSocket and SSE streams on this node",
                Box::new(move || gauge(streams.connections())),
            ),
            (
                "stream_subscriptions",
                "Session subscriptions of those streams",
                Box::new(move || gauge(subscriptions.subscriptions())),
            ),
            ("db_connections", "Open database connections", Box::new(move || i64::from(pool.stats().connections))),
            ("db_connections_idle", "Idle database connections", Box::new(move || gauge(idle.stats().idle))),
            (
                "storage_failing_fast",
                "1 while the database is unreachable and requests fail fast",
                Box::new(move || i64::from(breaker.stats().failing_fast)),
            ),
        ]);
        let rate_limit = RateLimit::new(settings.rate_limit.0, settings.rate_limit.1);
        Ok(Self {
            listener,
            addr,
            state: AppState::new(chat, verifier, rt, rate_limit),
            stop_streams,
            router: RouterOptions {
                max_body_bytes: settings.max_body_bytes,
                body_timeout: settings.connections.header_timeout,
                ui: settings.ui,
                cors_origins: settings.cors_origins,
                metrics: settings.metrics_bind.is_none(),
            },
            metrics_listener,
            shutdown_timeout: settings.shutdown_timeout,
            connections: connection_limits(settings.connections, settings.store.max_connections),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address `/metrics` is served on, when it has one of its own.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Serves until `shutdown` resolves. Then streams are closed with
    /// "going away" (clients reconnect elsewhere and resume), in-flight
    /// requests finish (up to the drain timeout), this node's agents go
    /// offline, and storage is closed.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let state = self.state.clone();
        let mut background = realtime::start(state.realtime());
        background.push(tokio::spawn(prune_rate_limits(state.clone())));
        if let Some(listener) = self.metrics_listener {
            let app = crate::http::metrics::router(state.chat().metrics().clone());
            let stop = state.realtime().clone();
            background.push(tokio::spawn(async move {
                let served = axum::serve(listener, app).with_graceful_shutdown(async move { stop.stopping().await });
                if let Err(err) = served.await {
                    tracing::warn!(error = %err, "metrics listener failed");
                }
            }));
        }
        let app = router(self.state, &self.router);
        let stop_streams = self.stop_streams;
        let mut stopped = stop_streams.subscribe();
        // One deadline for the whole drain, counted from the signal.
        let signalled = std::sync::Arc::new(std::sync::OnceLock::<tokio::time::Instant>::new());
        let mark = signalled.clone();
        let streams = state.clone();
        let server =
            server::serve(self.listener, app, self.connections, move || streams.realtime().connections(), async move {
                shutdown.await;
                tracing::info!("shutting down: closing streams, finishing in-flight requests");
                let _ = mark.set(tokio::time::Instant::now());
                let _ = stop_streams.send(true);
            });
        let drain = self.shutdown_timeout;
        let result = tokio::select! {
            () = server => Ok(()),
            () = async move {
                let _ = stopped.wait_for(|s: &bool| *s).await;
                tokio::time::sleep(drain).await;
            } => {
                tracing::warn!(timeout = ?drain, "drain timeout reached; dropping remaining requests");
                Ok(())
            }
        };
        let deadline = signalled.get().copied().unwrap_or_else(tokio::time::Instant::now) + drain;
        // Streams were told to go away; let them finish before storage closes
        // under them (an upgraded connection is not awaited by the server).
        let streams_done = async {
            while state.realtime().connections() > 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        if tokio::time::timeout_at(deadline, streams_done).await.is_err() {
            tracing::warn!(open = state.realtime().connections(), "streams still open at the drain timeout");
        }
        // Background work (presence clean-up) gets a short grace after the drain.
        let grace = tokio::time::Instant::now().max(deadline) + Duration::from_secs(3);
        for mut task in background {
            if tokio::time::timeout_at(grace, &mut task).await.is_err() {
                tracing::warn!("background task did not stop in time");
                task.abort();
            }
        }
        if tokio::time::timeout(Duration::from_secs(5), state.chat().shutdown()).await.is_err() {
            tracing::warn!("storage did not close in time");
        }
        result
    }
}

fn gauge(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The connection limits to run with: a cap of 0 means "as many as the
/// descriptor limit allows", keeping some back for the database, logs and files.
fn connection_limits(mut limits: ConnectionLimits, db_connections: u32) -> ConnectionLimits {
    let descriptors = server::raise_descriptor_limit();
    let reserve = 64 + 2 * u64::from(db_connections);
    let most = usize::try_from(descriptors.saturating_sub(reserve).max(16)).unwrap_or(usize::MAX);
    if limits.max_connections == 0 || limits.max_connections > most {
        if limits.max_connections > most {
            tracing::warn!(
                asked = limits.max_connections,
                most,
                descriptors,
                "connection cap lowered to fit the descriptor limit"
            );
        }
        limits.max_connections = most;
    }
    limits
}

/// Forgets idle users' rate-limit state every minute, until shutdown.
async fn prune_rate_limits(state: AppState) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = tick.tick() => {
                state.rate_limit().prune();
                state.chat().quotas().prune();
            }
            () = state.realtime().stopping() => return,
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %err, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
