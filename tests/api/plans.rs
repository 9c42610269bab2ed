//! `term` search must be served by an index, not a scan of the table, and a
//! send batch's idempotency keys must each be one probe of the key index, on
//! both backends: the plans the databases choose, on a fresh database each
//! (whose statistics, like a busy server's before its next analyse, say the
//! key index is empty).

use crate::helpers::{Backend, TestDb};
use livechat::store::{DatabaseUrl, StoreConfig, explain_key_lookup, explain_term_search};
use std::time::Duration;

fn config(db: &TestDb) -> StoreConfig {
    StoreConfig {
        url: DatabaseUrl::new(db.url()),
        max_connections: 2,
        acquire_timeout: Duration::from_secs(5),
        statement_timeout: Duration::from_secs(5),
        migrate: true,
        retry_interval: Duration::from_secs(1),
        search_window: 5_000,
    }
}

#[tokio::test]
async fn sqlite_term_search_goes_through_the_trigram_index() {
    let db = TestDb::create(Backend::Sqlite).await;
    for (term, uses_fts) in [("kopi", true), ("ko", false)] {
        let plan = explain_term_search(&config(&db), term).await.unwrap().in_session;
        assert!(!plan.iter().any(|d| d == "SCAN messages"), "{term}: full scan in {plan:?}");
        assert_eq!(plan.iter().any(|d| d.contains("messages_fts VIRTUAL TABLE INDEX")), uses_fts, "{term}: {plan:?}");
    }
}

#[tokio::test]
async fn postgres_term_predicate_is_served_by_the_trigram_index() {
    let db = TestDb::create(Backend::Postgres).await;
    let plan = explain_term_search(&config(&db), "50% kopi_").await.unwrap().predicate;
    assert!(plan.iter().any(|l| l.contains("messages_folded_trgm")), "{plan:#?}");
}

/// The plan line naming the key index must be a probe by all four columns,
/// under a loop over the keys; a scan of the index grows with every key sent.
fn probes_the_key_index(plan: &[String]) -> bool {
    let text = plan.join("\n");
    text.contains("messages_by_idem_key") && !text.contains("SCAN m USING INDEX") && !text.contains("Rows Removed")
}

#[tokio::test]
async fn sqlite_key_lookup_probes_the_key_index_per_key() {
    let db = TestDb::create(Backend::Sqlite).await;
    let plan = explain_key_lookup(&config(&db)).await.unwrap();
    assert!(probes_the_key_index(&plan), "{plan:#?}");
    assert!(
        plan.iter().any(|l| l.contains("SEARCH m USING INDEX messages_by_idem_key") && l.contains("idem_key=?")),
        "{plan:#?}"
    );
}

#[tokio::test]
async fn postgres_key_lookup_probes_the_key_index_per_key() {
    let db = TestDb::create(Backend::Postgres).await;
    // A busy server between two analyses: statistics taken while no message
    // had a key, then many keyed sends. A plan led by those statistics scans
    // the whole key index for every batch.
    livechat::store::migrate(&config(&db)).await.unwrap();
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(db.url()).await.unwrap();
    let seed = "INSERT INTO sessions (tenant_id, id, status, opened_by, created_at, updated_at, last_seq) \
                VALUES (1, '00000000-0000-7000-8000-000000000001', 'OPEN', 100, 0, 0, 4000); \
                INSERT INTO messages (tenant_id, session_id, seq, id, sender_id, message, message_folded, created_at) \
                SELECT 1, '00000000-0000-7000-8000-000000000001', g, gen_random_uuid(), 100, 'x', 'x', g \
                FROM generate_series(1, 2000) g; \
                ANALYZE messages; \
                INSERT INTO messages (tenant_id, session_id, seq, id, sender_id, message, message_folded, created_at, \
                idem_key, idem_fingerprint) \
                SELECT 1, '00000000-0000-7000-8000-000000000001', g, gen_random_uuid(), 100, 'x', 'x', g, 'k' || g, 'f' \
                FROM generate_series(2001, 4000) g;";
    sqlx::Executor::execute(&mut conn, seed).await.unwrap();
    let plan = explain_key_lookup(&config(&db)).await.unwrap();
    assert!(probes_the_key_index(&plan), "{plan:#?}");
    let probe = plan.iter().position(|l| l.contains("messages_by_idem_key")).unwrap_or(usize::MAX);
    let cond = plan.get(probe + 1).map(String::as_str).unwrap_or_default();
    assert!(cond.contains("Index Cond") && cond.contains("idem_key"), "{plan:#?}");
}
