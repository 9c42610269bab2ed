//! SQLite, the embedded default: one file, WAL, one writer connection.

use super::sql::{Constraint, Db, Dialect, Explain, Placeholders, QueryBuilder, SqlStore, TransactionIds, WebhookSql};
use super::{StoreConfig, migrations};
use crate::domain::message::SearchTerm;
use anyhow::Context;
use sqlx::Sqlite;
use sqlx::error::DatabaseError;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use std::str::FromStr;
use std::time::Duration;

/// FTS5 trigram queries need terms of at least three characters.
const TRIGRAM: usize = 3;

impl Placeholders for Sqlite {
    fn placeholder(_n: usize, out: &mut String) {
        out.push('?');
    }
}

impl Dialect for Sqlite {
    fn push_term_filter(qb: &mut QueryBuilder<Self>, term: &SearchTerm) {
        if term.char_len() >= TRIGRAM {
            // A quoted FTS5 string is matched literally as a run of trigrams:
            // an exact substring, with `%`, `_` and `*` carrying no meaning.
            let phrase = format!("\"{}\"", term.folded().replace('"', "\"\""));
            qb.push(" AND rowid IN (SELECT rowid FROM messages_fts WHERE messages_fts MATCH ");
            qb.push_bind(phrase).push(")");
        } else {
            // Too short for trigrams: scan the session's own rows (already narrowed by index).
            qb.push(" AND instr(message_folded, ").push_bind(term.folded().to_owned()).push(") > 0");
        }
    }

    const NOTIFY_CHANNEL: Option<&'static str> = None;
    const SUBSTRING_POSITION: &'static str = "instr";
    // A few milliseconds of the session's own rows; the FTS5 trigram index
    // is one for every tenant, so its cost follows everyone's matches.
    const WINDOWED_SEARCH: bool = true;
    // One writer connection: one writer task.
    const WRITERS: usize = 1;
    // One writer at a time holds the database: nothing to lock row by row.
    const LOCK_ROWS: &'static str = "";
    const LATERAL_KEY_LOOKUP: bool = false;
    // A local file is never "unreachable": a pool timeout means a queue of writers.
    const POOL_TIMEOUT_IS_OUTAGE: bool = false;

    const EXPLAIN: Explain = Explain { prefix: "EXPLAIN QUERY PLAN ", setup: &[], column: "detail" };

    // A local file's COMMIT succeeds, or fails and rolls back: never in doubt.
    const TRANSACTION_IDS: Option<TransactionIds> = None;
    // One writer connection: transactions never interleave.
    const WEBHOOKS: WebhookSql = WebhookSql { row_locks: false, outbox_order: "rowid", dispatch_lock: None };

    fn is_outage(_: &dyn DatabaseError) -> bool {
        // A local file: busy or full is not the database going away.
        false
    }

    fn violates(err: &dyn DatabaseError, constraint: Constraint) -> bool {
        // SQLite names the indexed columns, not the index: the partial index
        // on (tenant_id) alone, unlike the primary key (tenant_id, id).
        let columns = match constraint {
            Constraint::OneOpenSessionPerTenant => "sessions.tenant_id",
        };
        err.is_unique_violation() && err.message().strip_prefix("UNIQUE constraint failed: ") == Some(columns)
    }

    fn is_transient(err: &dyn DatabaseError) -> bool {
        // SQLITE_BUSY (5), SQLITE_LOCKED (6), SQLITE_IOERR (10), SQLITE_FULL (13) and their extended codes.
        let primary = err.code().and_then(|c| c.parse::<i32>().ok()).map(|c| c & 0xff);
        matches!(primary, Some(5 | 6 | 10 | 13))
    }
}

/// Opens (creating if needed) the database file.
pub async fn connect(config: &StoreConfig) -> anyhow::Result<SqlStore<Sqlite>> {
    let options = SqliteConnectOptions::from_str(config.url.expose())
        .with_context(|| format!("invalid SQLite URL {}", config.url))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // FULL: every commit is fsynced before the 201 goes out (see docs/RELIABILITY.md, "Durability").
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(5));
    if let Some(dir) = options.get_filename().parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create data directory {}", dir.display()))?;
    }
    let writer = SqlitePoolOptions::new()
        .max_connections(1)
        .acquire_timeout(config.acquire_timeout)
        .connect_with(options.clone())
        .await
        .with_context(|| format!("cannot open SQLite database {}", options.get_filename().display()))?;
    if config.migrate {
        migrations::migrator::<migrations::Sqlite>().await?.run(&writer).await.context("applying SQLite migrations")?;
    }
    // Each SQLite connection is a thread of its own: more readers than
    // cores only adds switching between them.
    let cores = std::thread::available_parallelism().map_or(1, |n| u32::try_from(n.get()).unwrap_or(u32::MAX));
    let reader = SqlitePoolOptions::new()
        .max_connections(config.max_connections.clamp(1, cores))
        .acquire_timeout(config.acquire_timeout)
        .connect_with(options)
        .await
        .context("opening SQLite read connections")?;
    let mut store = SqlStore::new(Db::new(reader, writer, config.retry_interval));
    store.search_window = config.search_window;
    Ok(store)
}
