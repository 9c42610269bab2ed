//! The test harness, one file per concern: throwaway databases ([`db`]),
//! users and their tokens ([`users`]), a server's settings ([`options`]), the
//! running server ([`app`]) and calling it over HTTP ([`http`]). Everything
//! is re-exported here, so tests name `crate::helpers::X`.

mod app;
mod db;
mod http;
mod options;
mod users;

pub use app::TestApp;
pub use db::{Backend, TestDb, connect_pg, pg_admin_url};
pub use http::{Resp, read};
pub use options::{TestOptions, settings};
pub use tempfile::TempDir;
pub use users::{SECRET, User};

/// A fresh directory under the system's temporary directory, removed when dropped.
pub fn temp_dir() -> TempDir {
    tempfile::Builder::new().prefix("livechat-test-").tempdir().expect("create a temporary directory")
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
