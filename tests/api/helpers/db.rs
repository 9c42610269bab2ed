//! Throwaway databases: a SQLite file in a temporary directory, or a
//! PostgreSQL database created for the test and dropped after.

use super::TempDir;
use std::time::Duration;

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
                let dir = super::temp_dir();
                let url = format!("sqlite://{}", dir.path().join("livechat.db").display());
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
