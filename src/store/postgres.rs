//! PostgreSQL, for several server nodes on one database.

use super::sql::{Constraint, Db, Dialect, Explain, Placeholders, QueryBuilder, SqlStore, TransactionIds, WebhookSql};
use super::{StoreConfig, migrations};
use crate::domain::event::Notice;
use crate::domain::message::SearchTerm;
use anyhow::Context;
use sqlx::Postgres;
use sqlx::error::DatabaseError;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use std::str::FromStr;

/// The `LISTEN/NOTIFY` channel every node listens on.
const CHANNEL: &str = "livechat";

impl Placeholders for Postgres {
    fn placeholder(n: usize, out: &mut String) {
        out.push('$');
        out.push_str(&n.to_string());
    }
}

impl Dialect for Postgres {
    fn push_term_filter(qb: &mut QueryBuilder<Self>, term: &SearchTerm) {
        // LIKE with every wildcard escaped is a literal substring test the
        // pg_trgm GIN index can serve.
        let mut pattern = String::with_capacity(term.folded().len() + 2);
        pattern.push('%');
        for c in term.folded().chars() {
            if matches!(c, '%' | '_' | '\\') {
                pattern.push('\\');
            }
            pattern.push(c);
        }
        pattern.push('%');
        qb.push(" AND message_folded LIKE ").push_bind(pattern).push(" ESCAPE '\\'");
    }

    const NOTIFY_CHANNEL: Option<&'static str> = Some(CHANNEL);
    const SUBSTRING_POSITION: &'static str = "strpos";
    const WINDOWED_SEARCH: bool = false;
    const WRITERS: usize = 2;
    const LOCK_ROWS: &'static str = " FOR UPDATE";
    const LATERAL_KEY_LOOKUP: bool = true;
    // Refused connects are retried until the acquire timeout: that is how a
    // server that went away shows up.
    const POOL_TIMEOUT_IS_OUTAGE: bool = true;

    // With sequential scans priced out, the plan shows whether an index can
    // serve the search (on a small table the planner would rightly scan).
    const EXPLAIN: Explain =
        Explain { prefix: "EXPLAIN ", setup: &["SET LOCAL enable_seqscan = off"], column: "QUERY PLAN" };

    const TRANSACTION_IDS: Option<TransactionIds> =
        Some(TransactionIds { current: "SELECT txid_current() AS xid", status_function: "txid_status" });
    // The advisory key is arbitrary but fixed: 'w','h' as bytes.
    const WEBHOOKS: WebhookSql = WebhookSql {
        row_locks: true,
        outbox_order: "pos",
        dispatch_lock: Some(
            "SELECT CAST(CASE WHEN pg_try_advisory_xact_lock(30568) THEN 1 ELSE 0 END AS BIGINT) AS locked",
        ),
    };

    fn is_outage(err: &dyn DatabaseError) -> bool {
        // Connection exceptions, shutdowns, "cannot connect now", too many connections.
        err.code().is_some_and(|c| c.starts_with("08") || matches!(&*c, "57P01" | "57P02" | "57P03" | "53300"))
    }

    fn violates(err: &dyn DatabaseError, constraint: Constraint) -> bool {
        let name = match constraint {
            Constraint::OneOpenSessionPerTenant => "sessions_one_open_per_tenant",
        };
        err.is_unique_violation() && err.constraint() == Some(name)
    }

    fn is_transient(err: &dyn DatabaseError) -> bool {
        // Class 08 (connection), 53 (resources), 57 (operator intervention,
        // including statement timeout and shutdown), 40001/40P01 (retry).
        err.code().is_some_and(|c| {
            c.starts_with("08") || c.starts_with("53") || c.starts_with("57") || c == "40001" || c == "40P01"
        })
    }
}

/// Connects a pool and applies migrations if asked.
pub async fn connect(config: &StoreConfig) -> anyhow::Result<SqlStore<Postgres>> {
    let timeout_ms = config.statement_timeout.as_millis().to_string();
    let options = PgConnectOptions::from_str(config.url.expose())
        .context("invalid PostgreSQL URL")?
        .application_name("livechat")
        .options([("statement_timeout", timeout_ms.as_str())]);
    let pool = PgPoolOptions::new()
        .max_connections(config.max_connections.max(1))
        .acquire_timeout(config.acquire_timeout)
        // A connection broken by a database restart is noticed and replaced
        // before a request gets it.
        .test_before_acquire(true)
        .connect_with(options.clone())
        .await
        .context("cannot connect to PostgreSQL")?;
    if config.migrate {
        migrations::migrator::<migrations::Postgres>()
            .await?
            .run(&pool)
            .await
            .context("applying PostgreSQL migrations")?;
    }
    let listener_options = options.application_name("livechat-listener");
    let pool_for_pings = pool.clone();
    let store = SqlStore::new(Db::shared(pool, config.retry_interval));
    let listener = spawn_listener(listener_options, pool_for_pings, store.notices.clone()).await?;
    store.tasks.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(listener);
    Ok(store)
}

/// Feeds every node-wide notice into this node's broadcast, on a connection
/// of its own (not one of the request pool's). The listener reconnects by
/// itself after the database restarts; since notices sent meanwhile are lost,
/// every stream is then told to re-read ([`Notice::Resync`]).
async fn spawn_listener(
    options: PgConnectOptions,
    pool: sqlx::PgPool,
    notices: tokio::sync::broadcast::Sender<Notice>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let first = listen(&options).await.context("cannot listen for notifications")?;
    // A listener only ever reads, so a connection that died without a word
    // (a network cut) would look the same as a quiet database: it sends
    // itself a ping now and then and reconnects when one does not come back.
    let ping = format!(r#"{{"k":"ping","n":"{}"}}"#, uuid::Uuid::now_v7().simple());
    Ok(tokio::spawn(async move {
        let mut listener: Option<(sqlx::PgPool, PgListener)> = Some(first);
        let mut heartbeat = tokio::time::interval(HEARTBEAT);
        let mut awaiting: Option<()> = None;
        loop {
            let Some((_, active)) = listener.as_mut() else {
                // A fresh listener on a fresh connection: a connection that failed
                // once is never trusted again.
                match listen(&options).await {
                    Ok(fresh) => {
                        tracing::info!("notification listener reconnected");
                        listener = Some(fresh);
                        let _ = notices.send(Notice::Resync);
                    }
                    Err(err) => {
                        tracing::debug!(error = %err, "listener reconnect failed; retrying");
                        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                    }
                }
                continue;
            };
            tokio::select! {
                received = active.try_recv() => match received {
                    Ok(Some(n)) if n.payload() == ping => awaiting = None,
                    // Other nodes' pings.
                    Ok(Some(n)) if n.payload().starts_with(r#"{"k":"ping""#) => {}
                    Ok(Some(n)) => match serde_json::from_str::<Notice>(n.payload()) {
                        Ok(notice) => {
                            let _ = notices.send(notice);
                        }
                        Err(err) => tracing::warn!(error = %err, "ignoring malformed notification"),
                    },
                    Ok(None) | Err(_) => {
                        tracing::warn!("notification listener lost its connection; reconnecting");
                        discard(listener.take());
                    }
                },
                _ = heartbeat.tick() => {
                    // A whole interval without its own ping back: the link is gone.
                    if awaiting.take().is_some() {
                        tracing::warn!("notification listener went silent; reconnecting");
                        discard(listener.take());
                        continue;
                    }
                    let sent = sqlx::query("SELECT pg_notify($1, $2)").bind(CHANNEL).bind(&ping).execute(&pool).await;
                    // Only a ping that left can be missed; with the database away, requests notice.
                    if sent.is_ok() {
                        awaiting = Some(());
                    }
                }
            }
        }
    }))
}

/// How often the listener checks that notifications still reach it.
const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(5);

/// A listener on a pool of its own, so a connection given up on is closed,
/// never handed to the next listener.
async fn listen(options: &PgConnectOptions) -> Result<(sqlx::PgPool, PgListener), sqlx::Error> {
    let pool = PgPoolOptions::new().max_connections(1).connect_with(options.clone()).await?;
    let mut listener = PgListener::connect_with(&pool).await?;
    listener.listen(CHANNEL).await?;
    Ok((pool, listener))
}

/// Closes a listener given up on, without waiting for a link that may be dead.
fn discard(listener: Option<(sqlx::PgPool, PgListener)>) {
    if let Some((pool, listener)) = listener {
        drop(listener);
        tokio::spawn(async move {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), pool.close()).await;
        });
    }
}
