//! The server as a value: built from settings, bound to a port, run until a
//! shutdown signal. Tests build it on port 0 exactly as `livechat serve` does.

use crate::auth::{AuthConfig, Verifier};
use crate::domain::access::AccessPolicy;
use crate::http::rate_limit::RateLimit;
use crate::http::{AppState, router};
use crate::realtime::{self, Realtime, RealtimeSettings};
use crate::service::{Limits, Livechat};
use crate::store::{self, StoreConfig};
use anyhow::Context;
use std::future::Future;
use std::net::SocketAddr;
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
}

/// A bound, ready-to-run server.
pub struct Application {
    listener: TcpListener,
    addr: SocketAddr,
    state: AppState,
    stop_streams: watch::Sender<bool>,
    max_body_bytes: usize,
    shutdown_timeout: Duration,
}

impl Application {
    /// Connects storage (migrating if configured), loads keys and binds the listener.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let verifier = Verifier::new(&settings.auth)?;
        let store = store::connect(&settings.store).await?;
        let listener =
            TcpListener::bind(settings.bind).await.with_context(|| format!("cannot listen on {}", settings.bind))?;
        let addr = listener.local_addr()?;
        let chat = Livechat::new(store, settings.policy, settings.limits);
        let (rt, stop_streams) = Realtime::new(chat.clone(), settings.realtime);
        let rate_limit = RateLimit::new(settings.rate_limit.0, settings.rate_limit.1);
        Ok(Self {
            listener,
            addr,
            state: AppState::new(chat, verifier, rt, rate_limit),
            stop_streams,
            max_body_bytes: settings.max_body_bytes,
            shutdown_timeout: settings.shutdown_timeout,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until `shutdown` resolves. Then streams are closed with
    /// "going away" (clients reconnect elsewhere and resume), in-flight
    /// requests finish (up to the drain timeout), this node's agents go
    /// offline, and storage is closed.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let state = self.state.clone();
        let mut background = realtime::start(state.realtime());
        background.push(tokio::spawn(prune_rate_limits(state.clone())));
        let app = router(self.state, self.max_body_bytes);
        let stop_streams = self.stop_streams;
        let mut stopped = stop_streams.subscribe();
        // One deadline for the whole drain, counted from the signal.
        let signalled = std::sync::Arc::new(std::sync::OnceLock::<tokio::time::Instant>::new());
        let mark = signalled.clone();
        let server = axum::serve(self.listener, app).with_graceful_shutdown(async move {
            shutdown.await;
            tracing::info!("shutting down: closing streams, finishing in-flight requests");
            let _ = mark.set(tokio::time::Instant::now());
            let _ = stop_streams.send(true);
        });
        let drain = self.shutdown_timeout;
        let result = tokio::select! {
            r = server => r.context("server failed"),
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

/// Forgets idle users' rate-limit state every minute, until shutdown.
async fn prune_rate_limits(state: AppState) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = tick.tick() => state.rate_limit().prune(),
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
