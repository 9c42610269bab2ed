//! The server as a value: built from settings, bound to a port, run until a
//! shutdown signal. Tests build it on port 0 exactly as `livechat serve` does.

use crate::auth::{AuthConfig, Verifier};
use crate::domain::access::AccessPolicy;
use crate::http::{AppState, router};
use crate::service::{Limits, Livechat};
use crate::store::{self, Store, StoreConfig};
use anyhow::Context;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

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
    /// Message limits.
    pub limits: Limits,
    /// Drain time at shutdown.
    pub shutdown_timeout: Duration,
}

/// A bound, ready-to-run server.
pub struct Application {
    listener: TcpListener,
    addr: SocketAddr,
    state: AppState,
    store: Arc<dyn Store>,
    max_body_bytes: usize,
    shutdown_timeout: Duration,
}

impl Application {
    /// Connects storage (migrating if configured), loads keys and binds the listener.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let verifier = Verifier::new(&settings.auth)?;
        let store = store::connect(&settings.store).await?;
        let listener = TcpListener::bind(settings.bind)
            .await
            .with_context(|| format!("cannot listen on {}", settings.bind))?;
        let addr = listener.local_addr()?;
        let chat = Livechat::new(store.clone(), settings.limits);
        Ok(Self {
            listener,
            addr,
            state: AppState::new(chat, verifier, settings.policy),
            store,
            max_body_bytes: settings.max_body_bytes,
            shutdown_timeout: settings.shutdown_timeout,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until `shutdown` resolves, then lets in-flight requests finish
    /// (up to the drain timeout) and closes storage.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let app = router(self.state, self.max_body_bytes);
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut stopped = stop_rx.clone();
        let server = axum::serve(self.listener, app).with_graceful_shutdown(async move {
            shutdown.await;
            tracing::info!("shutting down: finishing in-flight requests");
            let _ = stop_tx.send(true);
        });
        let drain = self.shutdown_timeout;
        let result = tokio::select! {
            r = server => r.context("server failed"),
            () = async move {
                let _ = stopped.wait_for(|s| *s).await;
                tokio::time::sleep(drain).await;
            } => {
                tracing::warn!(timeout = ?drain, "drain timeout reached; dropping remaining requests");
                Ok(())
            }
        };
        drop(stop_rx);
        self.store.shutdown().await;
        result
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
