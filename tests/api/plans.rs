//! `term` search must be served by an index, not a scan of the table, on
//! both backends: the plans the databases choose, on a fresh database each.

use crate::helpers::{Backend, TestDb};
use livechat::store::{DatabaseUrl, StoreConfig, explain_term_search};
use std::time::Duration;

fn config(db: &TestDb) -> StoreConfig {
    StoreConfig {
        url: DatabaseUrl::new(db.url()),
        max_connections: 2,
        acquire_timeout: Duration::from_secs(5),
        statement_timeout: Duration::from_secs(5),
        migrate: true,
        retry_interval: Duration::from_secs(1),
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
