//! Migrations: every `NNNN_name.sql` file of `migrations/<backend>/`,
//! embedded in the binary when it is built, so a new file is picked up
//! without being listed anywhere. (The same crate embeds the web UI; sqlx's
//! own `migrate!` would compile SQLite's C source a second time for its
//! proc-macro.)

use anyhow::Context;
use rust_embed::Embed;
use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use std::borrow::Cow;

/// The SQLite schema history.
#[derive(Embed)]
#[folder = "migrations/sqlite"]
#[include = "*.sql"]
pub struct Sqlite;

/// The PostgreSQL schema history.
#[derive(Embed)]
#[folder = "migrations/postgres"]
#[include = "*.sql"]
pub struct Postgres;

/// Migrations already read, as sqlx takes them.
#[derive(Debug)]
struct Resolved(Vec<Migration>);

impl MigrationSource<'static> for Resolved {
    fn resolve(self) -> futures_util::future::BoxFuture<'static, Result<Vec<Migration>, BoxDynError>> {
        Box::pin(async move { Ok(self.0) })
    }
}

/// `0002_realtime.sql` → (2, "realtime").
fn version_and_name(file: &str) -> Option<(i64, &str)> {
    let stem = file.strip_suffix(".sql")?;
    let (version, name) = stem.split_once('_')?;
    Some((version.parse().ok()?, name))
}

/// A migrator over one backend's embedded files. Locking stays on, so
/// nodes starting together on PostgreSQL take turns (an advisory lock)
/// instead of racing.
pub async fn migrator<Folder: Embed>() -> anyhow::Result<Migrator> {
    let mut migrations = Vec::new();
    for file in Folder::iter() {
        let (version, name) =
            version_and_name(&file).with_context(|| format!("migration {file} is not named NNNN_name.sql"))?;
        let sql = Folder::get(&file).with_context(|| format!("migration {file} is not embedded"))?.data;
        let sql = String::from_utf8(sql.into_owned()).with_context(|| format!("migration {file} is not UTF-8"))?;
        migrations.push(Migration::new(
            version,
            Cow::Owned(name.replace('_', " ")),
            MigrationType::Simple,
            Cow::Owned(sql),
            false,
        ));
    }
    migrations.sort_by_key(|m| m.version);
    Ok(Migrator::new(Resolved(migrations)).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_sql_file_of_each_folder_is_a_migration_in_order() {
        for (migrator, folder) in
            [(migrator::<Sqlite>().await.unwrap(), "sqlite"), (migrator::<Postgres>().await.unwrap(), "postgres")]
        {
            let on_disk = std::fs::read_dir(format!("{}/migrations/{folder}", env!("CARGO_MANIFEST_DIR")))
                .unwrap()
                .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "sql"))
                .count();
            let versions: Vec<i64> = migrator.iter().map(|m| m.version).collect();
            assert_eq!(versions.len(), on_disk, "{folder}");
            assert!(versions.windows(2).all(|w| w[0] < w[1]), "{folder}: {versions:?}");
            assert_eq!(versions.first(), Some(&1));
        }
    }

    #[test]
    fn names_carry_the_version() {
        assert_eq!(version_and_name("0002_realtime.sql"), Some((2, "realtime")));
        assert_eq!(version_and_name("realtime.sql"), None);
        assert_eq!(version_and_name("0003_x.txt"), None);
    }
}
