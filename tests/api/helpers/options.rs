//! What a test server runs with: [`TestOptions`] and the [`Settings`] built from them.

use super::SECRET;
use livechat::app::Settings;
use livechat::auth::{AuthConfig, KeySource, Secret};
use livechat::domain::access::AccessPolicy;
use livechat::realtime::RealtimeSettings;
use livechat::service::Limits;
use livechat::store::{DatabaseUrl, StoreConfig};
use livechat::webhooks::WebhookSettings;
use std::net::SocketAddr;
use std::time::Duration;

/// Knobs for [`TestApp::spawn_with`].
#[derive(Clone)]
pub struct TestOptions {
    pub keys: KeySource,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    pub max_body_bytes: usize,
    pub presence_ttl: Duration,
    pub realtime: RealtimeSettings,
    pub rate_limit: (u32, u32),
    /// Clock skew allowed on `exp` / `nbf`, in seconds.
    pub leeway_secs: u64,
    /// Every request's deadline.
    pub request_timeout: Duration,
    /// Header and idle timeouts, connection cap.
    pub connections: livechat::http::server::ConnectionLimits,
    /// Origins allowed by CORS.
    pub cors_origins: Vec<reqwest::header::HeaderValue>,
    /// `/metrics` on an address of its own.
    pub metrics_bind: Option<SocketAddr>,
    /// SQLite: rows a term search tests itself before the shared index.
    pub search_window: u32,
    /// Action quotas; off unless a test sets them (the suite sends a lot as few users).
    pub quotas: livechat::service::QuotaSettings,
    pub webhooks: WebhookSettings,
}

/// Webhook settings for tests: receivers are on loopback over plain http,
/// and retries come quickly.
pub fn test_webhook_settings() -> WebhookSettings {
    let mut settings = WebhookSettings::default();
    settings.rules.urls.allow_private = true;
    settings.timeout = Duration::from_secs(2);
    settings.schedule = livechat::domain::webhook::RetrySchedule::new(vec![
        Duration::from_millis(100),
        Duration::from_millis(200),
        Duration::from_millis(300),
    ])
    .expect("schedule");
    settings.poll_interval = Duration::from_millis(50);
    settings
}

impl Default for TestOptions {
    fn default() -> Self {
        Self {
            keys: KeySource::Hs256(Secret::new(SECRET.into())),
            issuer: None,
            audience: None,
            max_body_bytes: 16 * 1024,
            presence_ttl: Duration::from_secs(10),
            // The suite makes thousands of requests as few users: no limit unless a test sets one.
            rate_limit: (0, 1),
            leeway_secs: 0,
            request_timeout: Duration::from_secs(10),
            connections: livechat::http::server::ConnectionLimits {
                header_timeout: Duration::from_secs(10),
                idle_timeout: Duration::from_secs(60),
                max_connections: 0,
            },
            cors_origins: Vec::new(),
            metrics_bind: None,
            quotas: livechat::service::QuotaSettings::off(),
            search_window: 5_000,
            realtime: RealtimeSettings {
                ping_interval: Duration::from_millis(500),
                idle_timeout: Duration::from_secs(5),
                write_timeout: Duration::from_secs(2),
                queue: 64,
                typing_interval: Duration::from_millis(200),
            },
            webhooks: test_webhook_settings(),
        }
    }
}

/// The settings a test server runs with.
pub fn settings(url: &str, options: &TestOptions) -> Settings {
    Settings {
        bind: "127.0.0.1:0".parse().expect("addr"),
        store: StoreConfig {
            url: DatabaseUrl::new(url),
            max_connections: 8,
            acquire_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(10),
            migrate: true,
            retry_interval: Duration::from_millis(200),
            search_window: options.search_window,
        },
        auth: AuthConfig {
            keys: options.keys.clone(),
            issuer: options.issuer.clone(),
            audience: options.audience.clone(),
            leeway_secs: options.leeway_secs,
        },
        policy: AccessPolicy::default(),
        max_body_bytes: options.max_body_bytes,
        limits: Limits {
            max_message_chars: 4_000,
            presence_ttl: options.presence_ttl,
            ticket_ttl: Duration::from_secs(30),
            request_timeout: options.request_timeout,
            quotas: options.quotas.clone(),
        },
        realtime: options.realtime,
        rate_limit: options.rate_limit,
        shutdown_timeout: Duration::from_secs(5),
        connections: options.connections,
        ui: false,
        cors_origins: options.cors_origins.clone(),
        metrics_bind: options.metrics_bind,
        webhooks: options.webhooks.clone(),
    }
}
