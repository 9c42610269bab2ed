//! Migrations, compiled into the binary from the files under `migrations/`.

use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;

/// One backend's ordered migration files.
#[derive(Debug, Clone, Copy)]
pub struct Embedded(&'static [(i64, &'static str, &'static str)]);

/// The SQLite schema history.
pub const SQLITE: Embedded = Embedded(&[
    (1, "init", include_str!("../../migrations/sqlite/0001_init.sql")),
    (2, "realtime", include_str!("../../migrations/sqlite/0002_realtime.sql")),
]);

/// The PostgreSQL schema history.
pub const POSTGRES: Embedded = Embedded(&[
    (1, "init", include_str!("../../migrations/postgres/0001_init.sql")),
    (2, "realtime", include_str!("../../migrations/postgres/0002_realtime.sql")),
]);

impl MigrationSource<'static> for Embedded {
    fn resolve(self) -> Pin<Box<dyn Future<Output = Result<Vec<Migration>, BoxDynError>> + Send>> {
        let migrations = self
            .0
            .iter()
            .map(|(version, name, sql)| {
                Migration::new(*version, Cow::Borrowed(*name), MigrationType::Simple, Cow::Borrowed(*sql), false)
            })
            .collect();
        Box::pin(async move { Ok(migrations) })
    }
}

/// A migrator over the embedded files. Locking stays on, so nodes starting
/// together on PostgreSQL take turns (an advisory lock) instead of racing.
pub async fn migrator(source: Embedded) -> anyhow::Result<Migrator> {
    Ok(Migrator::new(source).await?)
}
