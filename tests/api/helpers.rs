//! The test harness: a real server on a random loopback port over a fresh
//! database (a SQLite file, or a PostgreSQL database created for the test and
//! dropped after), plus users and a small HTTP client.

use livechat::app::{Application, Settings};
use livechat::auth::{AuthConfig, KeySource, MintClaims, Secret, mint_hs256};
use livechat::domain::access::AccessPolicy;
use livechat::realtime::RealtimeSettings;
use livechat::service::Limits;
use livechat::store::{DatabaseUrl, StoreConfig};
use livechat::webhooks::WebhookSettings;
use reqwest::Method;
use serde_json::Value;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::oneshot;

/// The secret every test server verifies HS256 tokens with.
pub const SECRET: &str = "integration-test-secret-0123456789abcdef";
/// Where the PostgreSQL tests connect to create their databases.
pub const DEFAULT_PG_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Which storage backend a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The admin URL of the PostgreSQL server used by the tests.
pub fn pg_admin_url() -> String {
    std::env::var("LIVECHAT_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_PG_ADMIN_URL.to_owned())
}

/// A throwaway database, removed when dropped.
pub enum TestDb {
    Sqlite { url: String, _dir: TempDir },
    Postgres { url: String, name: String },
}

impl TestDb {
    pub async fn create(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => {
                let dir = TempDir::new();
                let url = format!("sqlite://{}", dir.path.join("livechat.db").display());
                Self::Sqlite { url, _dir: dir }
            }
            Backend::Postgres => {
                let name = format!("livechat_test_{}", uuid::Uuid::now_v7().simple());
                let admin = pg_admin_url();
                let mut conn = connect_pg(&admin).await;
                drop_abandoned_databases(&mut conn).await;
                sqlx::Executor::execute(&mut conn, format!("CREATE DATABASE {name}").as_str())
                    .await
                    .expect("create test database");
                let base = admin.rsplit_once('/').map(|(b, _)| b.to_owned()).expect("admin URL has a database");
                Self::Postgres { url: format!("{base}/{name}"), name }
            }
        }
    }

    pub fn url(&self) -> &str {
        match self {
            Self::Sqlite { url, .. } | Self::Postgres { url, .. } => url,
        }
    }
}

/// Drops test databases left by runs that were killed (no destructor ran):
/// their names carry a UUIDv7, whose timestamp says they are over an hour old.
async fn drop_abandoned_databases(conn: &mut sqlx::PgConnection) {
    let names: Vec<(String,)> = sqlx::query_as("SELECT datname FROM pg_database WHERE datname LIKE 'livechat_test_%'")
        .fetch_all(&mut *conn)
        .await
        .unwrap_or_default();
    let hour_ago =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0)
            - 3_600_000;
    for (name,) in names {
        let created_ms =
            name.strip_prefix("livechat_test_").and_then(|hex| u128::from_str_radix(hex.get(..12)?, 16).ok());
        if created_ms.is_some_and(|ms| ms < hour_ago) {
            let _ =
                sqlx::Executor::execute(&mut *conn, format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                    .await;
        }
    }
}

/// A connection to the PostgreSQL server, or a panic that says how to start it.
pub async fn connect_pg(url: &str) -> sqlx::PgConnection {
    use sqlx::Connection;
    match tokio::time::timeout(Duration::from_secs(10), sqlx::PgConnection::connect(url)).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(err)) => panic!(
            "PostgreSQL is required by the test suite and is unreachable at {url}: {err}. \
             Start it (see README, Tests) or set LIVECHAT_TEST_POSTGRES_URL."
        ),
        Err(_) => panic!("PostgreSQL at {url} did not answer within 10 s"),
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Self::Postgres { name, .. } = self {
            let name = name.clone();
            // Drop runs inside the test's runtime; use a thread with its own.
            let done = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
                rt.block_on(async {
                    let mut conn = connect_pg(&pg_admin_url()).await;
                    let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                    if let Err(err) = sqlx::Executor::execute(&mut conn, sql.as_str()).await {
                        eprintln!("could not drop test database {name}: {err}");
                    }
                });
            });
            let _ = done.join();
        }
    }
}

/// A temporary directory removed on drop.
pub struct TempDir {
    pub path: std::path::PathBuf,
}

impl TempDir {
    pub fn new() -> Self {
        let path = std::env::temp_dir().join(format!("livechat-test-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&path).expect("temp dir");
        Self { path }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Someone calling the API.
#[derive(Debug, Clone)]
pub struct User {
    pub id: i64,
    pub roles: Vec<String>,
    pub tenants: HashMap<String, Vec<String>>,
}

impl User {
    /// A platform support agent (every tenant).
    pub fn agent(id: i64) -> Self {
        Self { id, roles: vec!["support_agent".into()], tenants: HashMap::new() }
    }

    /// A support agent of one tenant only.
    pub fn tenant_agent(id: i64, tenant: i64) -> Self {
        Self::with_tenant_role(id, tenant, "support_agent")
    }

    /// A member of a tenant (koperasi_member).
    pub fn member(id: i64, tenant: i64) -> Self {
        Self::with_tenant_role(id, tenant, "koperasi_member")
    }

    /// Someone with a tenant role outside the allowlist.
    pub fn outsider(id: i64, tenant: i64) -> Self {
        Self::with_tenant_role(id, tenant, "accountant")
    }

    pub fn with_tenant_role(id: i64, tenant: i64, role: &str) -> Self {
        Self { id, roles: Vec::new(), tenants: HashMap::from([(tenant.to_string(), vec![role.to_owned()])]) }
    }

    /// A valid HS256 token for this user.
    pub fn token(&self) -> String {
        self.token_with(|_| {})
    }

    /// A token whose claims were adjusted first.
    pub fn token_with(&self, adjust: impl FnOnce(&mut MintClaims)) -> String {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let mut claims = MintClaims {
            sub: self.id.to_string(),
            roles: self.roles.clone(),
            tenants: self.tenants.clone(),
            iat: now,
            exp: now + 3600,
            iss: None,
            aud: None,
        };
        adjust(&mut claims);
        mint_hs256(&Secret::new(SECRET.into()), &claims).expect("mint")
    }
}

/// A response, body parsed as JSON.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// `data` of a successful envelope.
    pub fn data(&self) -> &Value {
        &self.body["data"]
    }

    /// `data.id` as a string.
    pub fn id(&self) -> String {
        self.body["data"]["id"].as_str().unwrap_or_else(|| panic!("no data.id in {}", self.body)).to_owned()
    }

    /// Asserts the status and the error code, and that it is a proper error envelope.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "unexpected status, body {}", self.body);
        assert_eq!(self.body["success"], false, "{}", self.body);
        assert_eq!(self.body["message"], code, "{}", self.body);
        assert!(self.body["data"].is_null(), "{}", self.body);
        assert!(self.body["meta"]["request_id"].is_string(), "{}", self.body);
        assert_eq!(self.header("content-type"), Some("application/json"));
    }

    /// The messages recorded for one field.
    pub fn field_errors(&self, field: &str) -> Vec<String> {
        self.body["errors"][field]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
            .unwrap_or_default()
    }
}

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

    /// The same server seen through the other prefix.
    pub fn with_prefix(&self, prefix: &'static str) -> PrefixedApp<'_> {
        PrefixedApp { app: self, prefix }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}{}", self.addr, self.prefix, path)
    }

    /// Sends a request as `user` in `tenant` with an optional JSON body.
    pub async fn call(&self, method: Method, path: &str, user: &User, tenant: i64, body: Option<Value>) -> Resp {
        self.with_prefix(self.prefix).call(method, path, user, tenant, body).await
    }

    pub async fn get(&self, path: &str, user: &User, tenant: i64) -> Resp {
        self.call(Method::GET, path, user, tenant, None).await
    }

    pub async fn post(&self, path: &str, user: &User, tenant: i64, body: Option<Value>) -> Resp {
        self.call(Method::POST, path, user, tenant, body).await
    }

    /// Opens a session and returns its id, asserting success.
    pub async fn open_session(&self, user: &User, tenant: i64) -> String {
        let r = self.post("/sessions", user, tenant, None).await;
        assert_eq!(r.status, 201, "open session: {}", r.body);
        r.id()
    }

    /// Puts an agent online through `PUT /agents/me/presence`.
    pub async fn set_online(&self, agent: &User) {
        let r = self
            .raw(
                self.client
                    .put(self.url("/agents/me/presence"))
                    .bearer_auth(agent.token())
                    .json(&serde_json::json!({ "status": "online" })),
            )
            .await;
        assert_eq!(r.status, 200, "set online: {}", r.body);
    }

    /// Sends a message and returns the response, asserting success.
    pub async fn send(&self, session: &str, user: &User, tenant: i64, text: &str) -> Resp {
        let r = self
            .post(&format!("/sessions/{session}/messages"), user, tenant, Some(serde_json::json!({ "message": text })))
            .await;
        assert_eq!(r.status, 201, "send: {}", r.body);
        r
    }

    /// Sends a raw request built by the caller.
    pub async fn raw(&self, req: reqwest::RequestBuilder) -> Resp {
        read(req.send().await.expect("request sent")).await
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

/// A view of a [`TestApp`] under another prefix.
pub struct PrefixedApp<'a> {
    pub app: &'a TestApp,
    pub prefix: &'static str,
}

impl PrefixedApp<'_> {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}{}", self.app.addr, self.prefix, path)
    }

    pub async fn call(&self, method: Method, path: &str, user: &User, tenant: i64, body: Option<Value>) -> Resp {
        let mut req = self
            .app
            .client
            .request(method, self.url(path))
            .bearer_auth(user.token())
            .header("X-Tenant-ID", tenant.to_string());
        if let Some(body) = body {
            req = req.json(&body);
        }
        read(req.send().await.expect("request sent")).await
    }
}

pub async fn read(res: reqwest::Response) -> Resp {
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let bytes = res.bytes().await.expect("body");
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| panic!("status {status}: body is not JSON: {:?}", String::from_utf8_lossy(&bytes)));
    Resp { status, headers, body }
}

/// Runs a test body on both backends: `conformance!(name, …)` turns each
/// `async fn name(backend: Backend)` into `sqlite::name` and `postgres::name`.
#[macro_export]
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Postgres).await
                }
            )*
        }
    };
}

/// Every file below `dir` (not directories), in no particular order.
pub fn files_below(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(at) = pending.pop() {
        for entry in std::fs::read_dir(&at).unwrap_or_else(|e| panic!("read {}: {e}", at.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                found.push(path);
            }
        }
    }
    found
}
