//! Configuration: command-line flags, each with a `LIVECHAT_*` environment
//! variable, checked once at start-up. Every knob is listed in docs/OPERATIONS.md.

use crate::auth::{AuthConfig, KeySource, Secret};
use crate::domain::access::{AccessPolicy, DEFAULT_ALLOWED_ROLES};
use crate::domain::message::DEFAULT_MAX_MESSAGE_CHARS;
use crate::domain::webhook::{RetrySchedule, UrlRules};
use crate::service::WebhookRules;
use crate::store::{DatabaseUrl, StoreConfig};
use crate::webhooks::WebhookSettings;
use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use jsonwebtoken::Algorithm;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Smallest accepted HS256 secret, in bytes (256 bits, the hash size).
pub const MIN_SECRET_BYTES: usize = 32;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Readable lines for a terminal.
    Human,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Asymmetric algorithms accepted with a PEM key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PemAlgorithm {
    /// RSA PKCS#1 v1.5 with SHA-256.
    #[value(name = "RS256")]
    Rs256,
    /// ECDSA P-256 with SHA-256.
    #[value(name = "ES256")]
    Es256,
    /// Ed25519.
    #[value(name = "EdDSA")]
    EdDsa,
}

impl From<PemAlgorithm> for Algorithm {
    fn from(a: PemAlgorithm) -> Self {
        match a {
            PemAlgorithm::Rs256 => Algorithm::RS256,
            PemAlgorithm::Es256 => Algorithm::ES256,
            PemAlgorithm::EdDsa => Algorithm::EdDSA,
        }
    }
}

fn duration(raw: &str) -> Result<Duration, String> {
    humantime::parse_duration(raw).map_err(|e| format!("{e} (examples: 500ms, 5s, 1m)"))
}

/// Database settings, shared by `serve` and `migrate`.
#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// `sqlite://path/to/file.db` (default) or `postgres://user@host/db`.
    #[arg(long, env = "LIVECHAT_DATABASE_URL", default_value = "sqlite://data/livechat.db", value_parser = database_url, hide_env_values = true)]
    pub database_url: DatabaseUrl,
    /// Largest number of pooled connections (readers, on SQLite).
    #[arg(long, env = "LIVECHAT_DB_MAX_CONNECTIONS", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub db_max_connections: u32,
    /// How long a request waits for a connection before answering 503.
    #[arg(long, env = "LIVECHAT_DB_ACQUIRE_TIMEOUT", default_value = "3s", value_parser = duration)]
    pub db_acquire_timeout: Duration,
    /// Longest a single statement may run (PostgreSQL).
    #[arg(long, env = "LIVECHAT_DB_STATEMENT_TIMEOUT", default_value = "5s", value_parser = duration)]
    pub db_statement_timeout: Duration,
    /// While the database is unreachable, requests fail fast with 503 for
    /// this long before one request probes it again.
    #[arg(long, env = "LIVECHAT_DB_RETRY_INTERVAL", default_value = "1s", value_parser = duration)]
    pub db_retry_interval: Duration,
    /// SQLite: how many of a session's own newest rows a `term` search tests
    /// before it turns to the trigram index shared by every tenant.
    #[arg(long, env = "LIVECHAT_SEARCH_WINDOW", default_value_t = 5_000, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    pub search_window: u32,
}

impl DatabaseArgs {
    /// Checks the URL and builds the store settings.
    pub fn store_config(&self, migrate: bool) -> anyhow::Result<StoreConfig> {
        if self.db_acquire_timeout.is_zero() || self.db_statement_timeout.is_zero() {
            bail!("database timeouts must be greater than zero");
        }
        Ok(StoreConfig {
            url: self.database_url.clone(),
            max_connections: self.db_max_connections,
            acquire_timeout: self.db_acquire_timeout,
            statement_timeout: self.db_statement_timeout,
            migrate,
            retry_interval: self.db_retry_interval,
            search_window: self.search_window,
        })
    }
}

/// Token verification settings.
#[derive(Debug, Clone, Args)]
pub struct JwtArgs {
    /// HS256 shared secret (at least 32 bytes).
    #[arg(long, env = "LIVECHAT_JWT_SECRET", hide_env_values = true, value_parser = checked_secret)]
    pub jwt_secret: Option<Secret>,
    /// PEM file with the public key for RS256 / ES256 / EdDSA tokens.
    #[arg(long, env = "LIVECHAT_JWT_PUBLIC_KEY_FILE", conflicts_with = "jwt_secret")]
    pub jwt_public_key_file: Option<PathBuf>,
    /// Algorithm of the PEM key.
    #[arg(long, env = "LIVECHAT_JWT_ALGORITHM", requires = "jwt_public_key_file")]
    pub jwt_algorithm: Option<PemAlgorithm>,
    /// JWKS document (JSON file) with the verification keys, chosen by `kid`.
    #[arg(long, env = "LIVECHAT_JWT_JWKS_FILE", conflicts_with_all = ["jwt_secret", "jwt_public_key_file"])]
    pub jwt_jwks_file: Option<PathBuf>,
    /// Required `iss` claim.
    #[arg(long, env = "LIVECHAT_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,
    /// Required `aud` claim.
    #[arg(long, env = "LIVECHAT_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,
    /// Clock skew tolerated on `exp` and `nbf`.
    #[arg(long, env = "LIVECHAT_JWT_LEEWAY", default_value = "30s", value_parser = duration)]
    pub jwt_leeway: Duration,
}

impl JwtArgs {
    /// The key source, or `None` if nothing is configured.
    pub fn auth_config(&self) -> anyhow::Result<Option<AuthConfig>> {
        let keys = match (&self.jwt_secret, &self.jwt_public_key_file, &self.jwt_jwks_file) {
            (Some(secret), None, None) => Some(KeySource::Hs256(secret.clone())),
            (None, Some(path), None) => {
                let algorithm = self.jwt_algorithm.context(
                    "--jwt-algorithm / LIVECHAT_JWT_ALGORITHM (RS256, ES256 or EdDSA) is required with a PEM key",
                )?;
                Some(KeySource::Pem { path: path.clone(), algorithm: algorithm.into() })
            }
            (None, None, Some(path)) => Some(KeySource::Jwks(path.clone())),
            (None, None, None) => None,
            _ => bail!("configure exactly one of --jwt-secret, --jwt-public-key-file, --jwt-jwks-file"),
        };
        Ok(keys.map(|keys| AuthConfig {
            keys,
            issuer: self.jwt_issuer.clone(),
            audience: self.jwt_audience.clone(),
            leeway_secs: self.jwt_leeway.as_secs(),
        }))
    }
}

/// Refuses secrets too short to resist guessing; the value never prints.
pub fn checked_secret(raw: &str) -> Result<Secret, String> {
    if raw.len() < MIN_SECRET_BYTES {
        return Err(format!("the JWT secret must be at least {MIN_SECRET_BYTES} bytes long"));
    }
    Ok(Secret::new(raw.to_owned()))
}

/// A database URL of a supported backend; its password never prints.
fn database_url(raw: &str) -> Result<DatabaseUrl, String> {
    let url = DatabaseUrl::new(raw);
    match url.backend() {
        Some(_) => Ok(url),
        None => Err("must start with sqlite:// or postgres://".to_owned()),
    }
}

/// Everything `serve` takes.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address and port to listen on.
    #[arg(long, env = "LIVECHAT_BIND", default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,
    /// Development mode: 127.0.0.1, a fresh signing secret and printed demo tokens.
    #[arg(long, env = "LIVECHAT_DEV")]
    pub dev: bool,
    /// Serve the web UI (agent console and tenant widget) at `/`; on with `--dev`.
    #[arg(long, env = "LIVECHAT_UI")]
    pub ui: bool,
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub jwt: JwtArgs,
    /// Comma-separated tenant roles allowed to use livechat.
    #[arg(long, env = "LIVECHAT_ALLOWED_ROLES", value_delimiter = ',', default_values_t = DEFAULT_ALLOWED_ROLES.iter().map(|r| (*r).to_owned()))]
    pub allowed_roles: Vec<String>,
    /// Largest accepted request body, in bytes.
    #[arg(long, env = "LIVECHAT_MAX_BODY_BYTES", default_value_t = 16 * 1024, value_parser = clap::value_parser!(u64).range(64..=16 * 1024 * 1024))]
    pub max_body_bytes: u64,
    /// Longest accepted message, in characters.
    #[arg(long, env = "LIVECHAT_MAX_MESSAGE_CHARS", default_value_t = DEFAULT_MAX_MESSAGE_CHARS as u64, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_message_chars: u64,
    /// Every request is answered within this; a write whose commit cannot be
    /// confirmed in time is answered 504 `outcome_unknown` with its id.
    #[arg(long, env = "LIVECHAT_REQUEST_TIMEOUT", default_value = "10s", value_parser = duration)]
    pub request_timeout: Duration,
    /// Browser origins allowed to call the API, comma-separated exact
    /// origins (`https://app.example,http://localhost:5173`); empty: CORS off.
    #[arg(long, env = "LIVECHAT_CORS_ORIGINS", value_delimiter = ',', default_value = "")]
    pub cors_origins: Vec<String>,
    /// Serve `GET /metrics` on this address:port instead of the main listener.
    #[arg(long, env = "LIVECHAT_METRICS_BIND")]
    pub metrics_bind: Option<SocketAddr>,
    /// A request head (and then its body) must arrive within this; a connection
    /// that sends half a head is closed, a slow body is answered 408.
    #[arg(long, env = "LIVECHAT_HEADER_TIMEOUT", default_value = "10s", value_parser = duration)]
    pub header_timeout: Duration,
    /// A keep-alive connection with no request for this long is closed.
    #[arg(long, env = "LIVECHAT_IDLE_TIMEOUT", default_value = "60s", value_parser = duration)]
    pub idle_timeout: Duration,
    /// Open connections (streams included) above which new ones get 503 and
    /// are closed; 0: as many as the open-file limit allows (raised to its
    /// hard limit at start-up).
    #[arg(long, env = "LIVECHAT_MAX_CONNECTIONS", default_value_t = 0)]
    pub max_connections: usize,
    /// How long in-flight requests may take to finish after SIGINT/SIGTERM.
    #[arg(long, env = "LIVECHAT_SHUTDOWN_TIMEOUT", default_value = "10s", value_parser = duration)]
    pub shutdown_timeout: Duration,
    /// How long an agent stays online after its last heartbeat (stream or PUT presence).
    #[arg(long, env = "LIVECHAT_PRESENCE_TTL", default_value = "15s", value_parser = duration)]
    pub presence_ttl: Duration,
    /// How long a stream ticket may wait before it is used.
    #[arg(long, env = "LIVECHAT_TICKET_TTL", default_value = "30s", value_parser = duration)]
    pub ticket_ttl: Duration,
    /// How often the server pings a stream.
    #[arg(long, env = "LIVECHAT_STREAM_PING_INTERVAL", default_value = "15s", value_parser = duration)]
    pub stream_ping_interval: Duration,
    /// A stream silent this long (no frame, no pong) is closed.
    #[arg(long, env = "LIVECHAT_STREAM_IDLE_TIMEOUT", default_value = "45s", value_parser = duration)]
    pub stream_idle_timeout: Duration,
    /// A stream that does not accept a write within this is closed as too slow.
    #[arg(long, env = "LIVECHAT_STREAM_WRITE_TIMEOUT", default_value = "10s", value_parser = duration)]
    pub stream_write_timeout: Duration,
    /// Notices a stream may have queued before it is closed as too slow.
    #[arg(long, env = "LIVECHAT_STREAM_QUEUE", default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=65_536))]
    pub stream_queue: u64,
    /// Minimum spacing of typing notices per session and stream.
    #[arg(long, env = "LIVECHAT_TYPING_INTERVAL", default_value = "1s", value_parser = duration)]
    pub typing_interval: Duration,
    /// Requests per minute allowed per user on this node (0: no limit).
    #[arg(long, env = "LIVECHAT_RATE_LIMIT_PER_MINUTE", default_value_t = 600)]
    pub rate_limit_per_minute: u32,
    /// Requests a user may make at once before the per-minute rate applies.
    #[arg(long, env = "LIVECHAT_RATE_LIMIT_BURST", default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_limit_burst: u32,
    /// Per-minute allowances per user / per tenant of sending, opening
    /// sessions, stream tickets and typing (`off` disables them).
    #[arg(long, env = "LIVECHAT_QUOTAS", default_value = "send=60/600,open=10/60,ticket=30/600,typing=120/1200")]
    pub quotas: String,
    /// Skip migrations at start-up (run `livechat migrate` instead).
    #[arg(long, env = "LIVECHAT_NO_MIGRATE")]
    pub no_migrate: bool,
    #[command(flatten)]
    pub webhooks: WebhookArgs,
}

impl ServeArgs {
    /// Connection limits, checked.
    pub fn connections(&self) -> anyhow::Result<crate::http::server::ConnectionLimits> {
        if self.header_timeout.is_zero() || self.idle_timeout.is_zero() || self.request_timeout.is_zero() {
            bail!("--header-timeout, --idle-timeout and --request-timeout must be greater than zero");
        }
        Ok(crate::http::server::ConnectionLimits {
            header_timeout: self.header_timeout,
            idle_timeout: self.idle_timeout,
            max_connections: self.max_connections,
        })
    }

    /// Stream tunables, checked for consistency.
    pub fn realtime(&self) -> anyhow::Result<crate::realtime::RealtimeSettings> {
        for (name, value) in [
            ("--presence-ttl", self.presence_ttl),
            ("--ticket-ttl", self.ticket_ttl),
            ("--stream-ping-interval", self.stream_ping_interval),
            ("--stream-write-timeout", self.stream_write_timeout),
        ] {
            if value.is_zero() {
                bail!("{name} must be greater than zero");
            }
        }
        if self.stream_idle_timeout <= self.stream_ping_interval {
            bail!("--stream-idle-timeout must be longer than --stream-ping-interval");
        }
        Ok(crate::realtime::RealtimeSettings {
            ping_interval: self.stream_ping_interval,
            idle_timeout: self.stream_idle_timeout,
            write_timeout: self.stream_write_timeout,
            queue: usize::try_from(self.stream_queue).unwrap_or(256),
            typing_interval: self.typing_interval,
        })
    }

    /// The role allowlist, with empty entries refused.
    pub fn policy(&self) -> anyhow::Result<AccessPolicy> {
        let roles: Vec<String> = self.allowed_roles.iter().map(|r| r.trim().to_owned()).collect();
        if roles.is_empty() || roles.iter().any(String::is_empty) {
            bail!("--allowed-roles / LIVECHAT_ALLOWED_ROLES must list role names separated by commas");
        }
        Ok(AccessPolicy::new(roles))
    }
}

/// Logging settings, shared by all subcommands.
#[derive(Debug, Clone, Args)]
pub struct LogArgs {
    /// `human` or `json`.
    #[arg(long, env = "LIVECHAT_LOG_FORMAT", default_value = "human", global = true)]
    pub log_format: LogFormat,
    /// Filter in `tracing` syntax, e.g. `info` or `livechat=debug,sqlx=warn`.
    #[arg(long, env = "LIVECHAT_LOG", default_value = "info,sqlx=warn", global = true)]
    pub log: String,
}

/// Webhook settings.
#[derive(Debug, Clone, Args)]
pub struct WebhookArgs {
    /// Allow plain http and loopback / private / link-local webhook targets
    /// (development and tests only; on with `--dev`).
    #[arg(long, env = "LIVECHAT_WEBHOOK_ALLOW_PRIVATE")]
    pub webhook_allow_private: bool,
    /// Comma-separated host names that webhooks may reach over plain http.
    #[arg(long, env = "LIVECHAT_WEBHOOK_HTTP_HOSTS", value_delimiter = ',')]
    pub webhook_http_hosts: Vec<String>,
    /// Longest one delivery attempt may take.
    #[arg(long, env = "LIVECHAT_WEBHOOK_TIMEOUT", default_value = "10s", value_parser = duration)]
    pub webhook_timeout: Duration,
    /// Waits between attempts, comma-separated; after the last the delivery is given up.
    #[arg(long, env = "LIVECHAT_WEBHOOK_RETRY_SCHEDULE", default_value = "5s,30s,2m,10m,30m,1h,2h,4h,8h,8h")]
    pub webhook_retry_schedule: String,
    /// Consecutive failed attempts after which a subscription is paused.
    #[arg(long, env = "LIVECHAT_WEBHOOK_PAUSE_AFTER", default_value_t = 15, value_parser = clap::value_parser!(u32).range(1..))]
    pub webhook_pause_after: u32,
    /// Delivery attempts one node runs at once.
    #[arg(long, env = "LIVECHAT_WEBHOOK_CONCURRENCY", default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub webhook_concurrency: u32,
    /// Delivery attempts one node runs at once for one subscription.
    #[arg(long, env = "LIVECHAT_WEBHOOK_CONCURRENCY_PER_ENDPOINT", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub webhook_concurrency_per_endpoint: u32,
    /// How long finished deliveries stay in the delivery log.
    #[arg(long, env = "LIVECHAT_WEBHOOK_RETENTION", default_value = "7d", value_parser = duration)]
    pub webhook_retention: Duration,
    /// How long the previous signing secret keeps signing after a rotation.
    #[arg(long, env = "LIVECHAT_WEBHOOK_SECRET_OVERLAP", default_value = "24h", value_parser = duration)]
    pub webhook_secret_overlap: Duration,
    /// How often the worker looks for due retries when nothing wakes it.
    #[arg(long, env = "LIVECHAT_WEBHOOK_POLL_INTERVAL", default_value = "1s", value_parser = duration)]
    pub webhook_poll_interval: Duration,
}

impl WebhookArgs {
    /// The delivery settings, checked.
    pub fn settings(&self) -> anyhow::Result<WebhookSettings> {
        let delays = self
            .webhook_retry_schedule
            .split(',')
            .map(|d| duration(d.trim()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| anyhow::anyhow!("--webhook-retry-schedule: {e}"))?;
        let schedule = RetrySchedule::new(delays).map_err(|e| anyhow::anyhow!("--webhook-retry-schedule: {e}"))?;
        for (name, value) in [
            ("--webhook-timeout", self.webhook_timeout),
            ("--webhook-retention", self.webhook_retention),
            ("--webhook-poll-interval", self.webhook_poll_interval),
        ] {
            if value.is_zero() {
                bail!("{name} must be greater than zero");
            }
        }
        let http_hosts =
            self.webhook_http_hosts.iter().map(|h| h.trim().to_owned()).filter(|h| !h.is_empty()).collect();
        Ok(WebhookSettings {
            rules: WebhookRules {
                urls: UrlRules { allow_private: self.webhook_allow_private, http_hosts },
                secret_overlap: self.webhook_secret_overlap,
                ..WebhookRules::default()
            },
            timeout: self.webhook_timeout,
            schedule,
            pause_after: self.webhook_pause_after,
            concurrency: usize::try_from(self.webhook_concurrency).unwrap_or(32),
            per_endpoint: usize::try_from(self.webhook_concurrency_per_endpoint).unwrap_or(4),
            retention: self.webhook_retention,
            poll_interval: self.webhook_poll_interval,
        })
    }
}
