//! `docs/OPERATIONS.md` cannot fall behind the code: every `LIVECHAT_*`
//! variable the server reads is documented there, and nothing documented
//! there is a variable the code no longer knows.

use std::collections::BTreeSet;
use std::path::Path;

/// Every `LIVECHAT_*` name in a text.
fn names(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("LIVECHAT_") {
        let tail = &rest[at..];
        let end =
            tail.find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')).unwrap_or(tail.len());
        // A prefix written as `LIVECHAT_*` in prose is not a name.
        let name = tail[..end].trim_end_matches('_');
        if name.len() > "LIVECHAT".len() {
            found.insert(name.to_owned());
        }
        rest = &tail[end.max(1)..];
    }
    found
}

/// Every `LIVECHAT_*` name in the `.rs` files under a directory.
fn names_in_tree(dir: &Path) -> BTreeSet<String> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .map(|entry| entry.unwrap_or_else(|e| panic!("walk {}: {e}", dir.display())))
        .filter(|entry| entry.file_type().is_file() && entry.path().extension().is_some_and(|e| e == "rs"))
        .flat_map(|entry| names(&std::fs::read_to_string(entry.path()).unwrap()))
        .collect()
}

#[test]
fn every_livechat_variable_in_the_code_is_documented_in_operations_md() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = names(&std::fs::read_to_string(root.join("docs/OPERATIONS.md")).unwrap());
    let server = names_in_tree(&root.join("src"));
    assert!(server.len() >= 40, "the scan found too few names to be working: {server:?}");
    let missing: Vec<&String> = server.difference(&doc).collect();
    assert!(missing.is_empty(), "read by src/ but not in docs/OPERATIONS.md: {missing:?}");

    // Test and bench variables may be documented too; anything else is a stale entry.
    let mut known = server;
    known.extend(names_in_tree(&root.join("tests")));
    known.extend(names_in_tree(&root.join("bench")));
    let stale: Vec<&String> = doc.difference(&known).collect();
    assert!(stale.is_empty(), "in docs/OPERATIONS.md but read nowhere: {stale:?}");
}

#[test]
fn the_name_scan_finds_names_and_skips_the_bare_prefix() {
    let found = names("a LIVECHAT_BIND=1 `LIVECHAT_*` LIVECHAT_DB_MAX_CONNECTIONS, LIVECHAT_");
    assert_eq!(found, BTreeSet::from(["LIVECHAT_BIND".to_owned(), "LIVECHAT_DB_MAX_CONNECTIONS".to_owned()]));
}

/// `sslmode=require` in the database URL gives TLS connections to PostgreSQL
/// (the server's pool and its notification listener), as OPERATIONS.md says.
#[tokio::test]
async fn postgres_connections_can_be_encrypted() {
    use crate::helpers::{Backend, TestApp, TestDb, TestOptions, User};
    let db = TestDb::create(Backend::Postgres).await;
    let url = format!("{}?sslmode=require", db.url());
    let name = db.url().rsplit_once('/').map(|(_, n)| n.to_owned()).expect("database name");
    let app = TestApp::spawn_on(db, &url, TestOptions::default()).await;
    let session = app.open_session(&User::member(1, 5), 5).await;
    assert_eq!(app.send(&session, &User::member(1, 5), 5, "over TLS").await.status, 201);

    let mut admin = crate::helpers::connect_pg(&crate::helpers::pg_admin_url()).await;
    let (tls, plain): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE s.ssl), count(*) FILTER (WHERE NOT s.ssl)
         FROM pg_stat_activity a JOIN pg_stat_ssl s ON s.pid = a.pid WHERE a.datname = $1",
    )
    .bind(&name)
    .fetch_one(&mut admin)
    .await
    .expect("pg_stat_ssl");
    assert!(tls > 0, "no TLS connection from the server to {name}");
    assert_eq!(plain, 0, "{plain} unencrypted connections to {name}");
    app.stop().await;
}
