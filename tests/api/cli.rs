//! The `livechat` command line, as a newcomer and an operator use it.

use crate::helpers::{Backend, SECRET, TestDb, read, temp_dir};
use crate::node::{Node, binary};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

fn livechat(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(binary())
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("run livechat")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn serve_refuses_to_start_without_a_signing_key() {
    let dir = temp_dir();
    let url = format!("sqlite://{}/x.db", dir.path().display());
    let out = livechat(&["serve", "--bind", "127.0.0.1:0"], &[("LIVECHAT_DATABASE_URL", &url)]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("LIVECHAT_JWT_SECRET") && err.contains("--dev"), "{err}");
}

/// Arguments, environment, and a fragment the error message must contain.
type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);

#[test]
fn bad_configuration_values_are_rejected_with_a_clear_message() {
    let cases: &[Case] = &[
        (&["serve"], &[("LIVECHAT_JWT_SECRET", "short")], "at least 32 bytes"),
        (&["serve", "--bind", "nowhere"], &[("LIVECHAT_JWT_SECRET", SECRET)], "--bind"),
        (
            &["serve"],
            &[("LIVECHAT_JWT_SECRET", SECRET), ("LIVECHAT_DATABASE_URL", "mysql://x")],
            "sqlite:// or postgres://",
        ),
        (&["serve"], &[("LIVECHAT_JWT_SECRET", SECRET), ("LIVECHAT_DB_ACQUIRE_TIMEOUT", "soon")], "acquire"),
        (&["serve"], &[("LIVECHAT_JWT_SECRET", SECRET), ("LIVECHAT_LOG_FORMAT", "xml")], "xml"),
        (&["serve"], &[("LIVECHAT_JWT_SECRET", SECRET), ("LIVECHAT_MAX_BODY_BYTES", "0")], "max-body-bytes"),
        (&["serve"], &[("LIVECHAT_JWT_SECRET", SECRET), ("LIVECHAT_ALLOWED_ROLES", "a,,b")], "allowed-roles"),
        (
            &["serve"],
            &[("LIVECHAT_JWT_PUBLIC_KEY_FILE", "/nonexistent.pem"), ("LIVECHAT_JWT_ALGORITHM", "RS256")],
            "/nonexistent.pem",
        ),
        (&["serve"], &[("LIVECHAT_JWT_PUBLIC_KEY_FILE", "/nonexistent.pem")], "algorithm"),
        (&["token", "--sub", "1", "--tenant", "twelve:admin"], &[("LIVECHAT_JWT_SECRET", SECRET)], "--tenant"),
        (&["token", "--sub", "1"], &[], "LIVECHAT_JWT_SECRET"),
        (
            &["serve"],
            &[
                ("LIVECHAT_JWT_SECRET", SECRET),
                ("LIVECHAT_STREAM_IDLE_TIMEOUT", "5s"),
                ("LIVECHAT_STREAM_PING_INTERVAL", "10s"),
            ],
            "--stream-idle-timeout",
        ),
        (&["serve"], &[("LIVECHAT_JWT_SECRET", SECRET), ("LIVECHAT_PRESENCE_TTL", "0s")], "--presence-ttl"),
        (&["serve"], &[("LIVECHAT_JWT_SECRET", SECRET), ("LIVECHAT_STREAM_QUEUE", "0")], "stream-queue"),
        (
            &["serve"],
            &[("LIVECHAT_JWT_SECRET", SECRET), ("LIVECHAT_WEBHOOK_RETRY_SCHEDULE", "5s,soon")],
            "--webhook-retry-schedule",
        ),
        (&["serve"], &[("LIVECHAT_JWT_SECRET", SECRET), ("LIVECHAT_WEBHOOK_TIMEOUT", "0s")], "--webhook-timeout"),
    ];
    for (args, env, expected) in cases {
        let out = livechat(args, env);
        assert!(!out.status.success(), "{args:?} {env:?} should fail");
        let err = stderr(&out);
        assert!(
            err.to_lowercase().contains(&expected.to_lowercase()),
            "{args:?} {env:?}: expected {expected:?} in:\n{err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_subcommand_mints_a_token_the_server_accepts() {
    let out = livechat(
        &["token", "--sub", "42", "--tenant", "12:koperasi_admin", "--ttl", "10m"],
        &[("LIVECHAT_JWT_SECRET", SECRET)],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let db = TestDb::create(Backend::Sqlite).await;
    let node = Node::start(db.url(), &[]).await;
    let r = read(
        node.client.post(node.url("/sessions")).bearer_auth(&token).header("X-Tenant-ID", "12").send().await.unwrap(),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.data()["opened_by"], 42);
    assert!(r.data().get("agent_id").is_none(), "a koperasi_admin is a tenant user");
    let r = read(
        node.client.get(node.url("/sessions")).bearer_auth(&token).header("X-Tenant-ID", "13").send().await.unwrap(),
    )
    .await;
    r.assert_error(403, "forbidden");
    let (status, _) = node.terminate().await;
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_mode_prints_tokens_and_a_curl_line_that_work() {
    use tokio::io::AsyncBufReadExt;
    let dir = temp_dir();
    let mut child = tokio::process::Command::new(binary())
        .args(["serve", "--dev", "--bind", "0.0.0.0:0"])
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("LIVECHAT_LOG_FORMAT", "json")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut banner = Vec::new();
    let read_banner = async {
        while let Ok(Some(line)) = lines.next_line().await {
            let done = line.contains("openapi.json");
            banner.push(line);
            if done {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), read_banner).await.expect("dev banner printed");
    let text = banner.join("\n");
    let grab = |prefix: &str| {
        banner
            .iter()
            .find_map(|l| l.trim().strip_prefix(prefix).map(str::to_owned))
            .unwrap_or_else(|| panic!("no {prefix} in:\n{text}"))
    };
    let user_token = grab("export USER_TOKEN=");
    let agent_token = grab("export AGENT_TOKEN=");
    let curl = grab("curl ");
    let url = curl.split_whitespace().find(|w| w.starts_with("http://")).unwrap().to_owned();
    assert!(url.starts_with("http://127.0.0.1:"), "dev mode binds loopback only: {url}");
    // Run the printed curl line's request.
    let client = reqwest::Client::new();
    let r = read(client.post(&url).bearer_auth(&user_token).header("X-Tenant-ID", "1").send().await.unwrap()).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let session = r.id();
    let r = read(
        client
            .post(format!("{}/{session}/close", url))
            .bearer_auth(&agent_token)
            .header("X-Tenant-ID", "1")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 200, "the agent token is an agent: {}", r.body);
    // Dev mode serves the web UI; its sign-in links carry the tokens in the fragment only.
    for (label, token) in [("agent console (user 1):", &agent_token), ("tenant widget (user 100):", &user_token)] {
        let link = grab(label);
        let (page, fragment) = link.trim().split_once('#').unwrap_or_else(|| panic!("no fragment in {link}"));
        assert_eq!(fragment, format!("token={token}"), "{label}");
        assert!(page.starts_with("http://127.0.0.1:") && !page.contains('?'), "{label} {page}");
        let r = client.get(page).send().await.unwrap();
        assert_eq!(r.status(), 200, "{page}");
        let kind = r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        assert_eq!(kind, "text/html; charset=utf-8");
    }
    assert!(dir.path().join("data").join("livechat.db").exists(), "SQLite file in the data directory");
    child.kill().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_subcommand_prepares_a_database_for_nodes_that_skip_migrations() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let db = TestDb::create(backend).await;
        let url = db.url().to_owned();
        let out = tokio::task::spawn_blocking(move || livechat(&["migrate"], &[("LIVECHAT_DATABASE_URL", &url)]))
            .await
            .unwrap();
        assert!(out.status.success(), "{backend:?}: {}", stderr(&out));
        let node = Node::start(db.url(), &[("LIVECHAT_NO_MIGRATE", "true")]).await;
        let r = node.post("/sessions", &crate::helpers::User::member(1, 5), 5, None).await;
        assert_eq!(r.status, 201, "{backend:?}: {}", r.body);
        node.terminate().await;
    }
}
