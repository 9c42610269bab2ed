//! A real server on a random loopback port over a fresh database: start, stop.

use super::{Backend, TestDb, TestOptions, settings};
use livechat::app::Application;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::oneshot;

/// A running server plus a client.
pub struct TestApp {
    pub addr: SocketAddr,
    /// Where `/metrics` is, when it has an address of its own.
    pub metrics_addr: Option<SocketAddr>,
    pub prefix: &'static str,
    pub client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    pub db: TestDb,
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_with(backend, TestOptions::default()).await
    }

    pub async fn spawn_with(backend: Backend, options: TestOptions) -> Self {
        let db = TestDb::create(backend).await;
        let url = db.url().to_owned();
        Self::spawn_on(db, &url, options).await
    }

    /// A server on `db`, reached through `url` (for example a proxy in front of it).
    pub async fn spawn_on(db: TestDb, url: &str, options: TestOptions) -> Self {
        let app = Application::build(settings(url, &options)).await.expect("server builds");
        let addr = app.local_addr();
        let metrics_addr = app.metrics_addr();
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until(async move {
            let _ = stopped.await;
        }));
        Self {
            addr,
            metrics_addr,
            prefix: "/api/livechat",
            client: reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("client"),
            stop: Some(stop),
            server: Some(server),
            db,
        }
    }

    /// Stops the server and waits for it.
    pub async fn stop(mut self) {
        self.shutdown().await;
    }

    async fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}
