//! The web UI: how it is served, that the committed build is what its
//! sources build to, and the whole thing in a real browser.
//!
//! The browser test runs `tests/browser/e2e.mjs` (playwright-core driving
//! Debian's Chromium at `/usr/bin/chromium`, never a downloaded browser)
//! against `livechat serve --ui` started here as a process, and restarts that
//! process on the same port and database when the script asks (`@@stop`,
//! `@@start <session>` on its stdout, answered on its stdin). Node.js, npm
//! and Chromium are required: without them these tests fail, they never skip.

use crate::helpers::{Backend, TestDb, TestOptions, User, read, settings, temp_dir};
use crate::node::Node;
use livechat::app::Application;
use serde_json::{Value, json};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const NPM_CI_TIMEOUT: Duration = Duration::from_secs(240);
const BUILD_TIMEOUT: Duration = Duration::from_secs(120);
/// The whole browser scenario, server restart included.
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(100);

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn chromium() -> PathBuf {
    let path =
        std::env::var_os("LIVECHAT_TEST_CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    assert!(
        path.exists(),
        "Chromium is required by the browser tests and is not at {}: install Debian's package \
         (`apt-get install chromium`) or point LIVECHAT_TEST_CHROMIUM at a Chromium binary",
        path.display()
    );
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ui_is_served_at_the_root_with_a_strict_policy_and_api_errors_stay_json() {
    let db = TestDb::create(Backend::Sqlite).await;
    let mut with_ui = settings(db.url(), &TestOptions::default());
    with_ui.ui = true;
    let app = Application::build(with_ui).await.unwrap();
    let base = format!("http://{}", app.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();

    let page = client.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let header = |r: &reqwest::Response, name: &str| {
        r.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
    };
    assert_eq!(header(&page, "content-type"), "text/html; charset=utf-8");
    assert_eq!(header(&page, "x-content-type-options"), "nosniff");
    let csp = header(&page, "content-security-policy");
    for directive in ["default-src 'self'", "script-src 'self'", "style-src 'self'", "connect-src 'self'"] {
        assert!(csp.contains(directive), "{directive} missing from {csp}");
    }
    assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"), "{csp}");
    let html = page.text().await.unwrap();
    assert!(html.contains(r#"<script type="module" src="/app.js"></script>"#), "{html}");
    // The policy forbids inline code, so the page must not need any.
    assert_eq!(html.matches("<script").count(), 1, "one external script only: {html}");
    assert!(!html.contains("style=") && !html.contains("<style"), "no inline styles: {html}");

    let script = client.get(format!("{base}/app.js")).send().await.unwrap();
    assert_eq!(script.status(), 200);
    assert_eq!(header(&script, "content-type"), "text/javascript; charset=utf-8");
    let etag = header(&script, "etag");
    assert!(etag.starts_with('"'), "an ETag: {etag:?}");
    let again = client.get(format!("{base}/app.js")).header("If-None-Match", &etag).send().await.unwrap();
    assert_eq!(again.status(), 304, "revalidated by its content hash");
    let css = client.get(format!("{base}/app.css")).send().await.unwrap();
    assert_eq!(header(&css, "content-type"), "text/css; charset=utf-8");

    // Everything that is not a UI file keeps the API's JSON answers.
    for path in ["/api/livechat/nowhere", "/nowhere.js", "/api/livechat"] {
        read(client.get(format!("{base}{path}")).send().await.unwrap()).await.assert_error(404, "not_found");
    }
    read(client.post(format!("{base}/")).send().await.unwrap()).await.assert_error(405, "method_not_allowed");

    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), server).await;

    // Off unless configured.
    let plain = crate::helpers::TestApp::spawn(Backend::Sqlite).await;
    let r = read(plain.client.get(format!("http://{}/", plain.addr)).send().await.unwrap()).await;
    r.assert_error(404, "not_found");
    plain.stop().await;
}

#[test]
fn the_committed_ui_build_is_what_its_sources_build_to() {
    let ui = root().join("ui");
    let scratch = temp_dir();
    ensure_npm_packages(&ui, &["esbuild", "typescript"], scratch.path());
    let tsc = ui.join("node_modules").join("typescript").join("bin").join("tsc");
    let mut check = Command::new("node");
    check.arg(&tsc).args(["--noEmit", "-p"]).arg(&ui);
    let run = run_bounded(check, "tsc --noEmit (ui)", BUILD_TIMEOUT, scratch.path());
    assert!(run.success, "the UI does not type-check:\n{}", run.output);

    let out = scratch.path().join("dist");
    let mut build = Command::new("node");
    build.arg(ui.join("build.mjs")).arg(&out).current_dir(&ui);
    let run = run_bounded(build, "node ui/build.mjs", BUILD_TIMEOUT, scratch.path());
    assert!(run.success, "the UI build failed:\n{}", run.output);

    let committed = files(&ui.join("dist"));
    let rebuilt = files(&out);
    let names = |set: &[(String, Vec<u8>)]| set.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(names(&committed), names(&rebuilt), "ui/dist holds other files than the build makes");
    let stale: Vec<&str> =
        committed.iter().zip(&rebuilt).filter(|(a, b)| a.1 != b.1).map(|(a, _)| a.0.as_str()).collect();
    assert!(
        stale.is_empty(),
        "ui/dist is stale ({}): run `npm ci && npm run build` in ui/ and commit ui/dist",
        stale.join(", ")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_and_tenant_user_chat_in_chromium_across_a_server_restart_and_markup_stays_text() {
    let chromium = chromium();
    let browser_dir = root().join("tests").join("browser");
    let scratch = temp_dir();
    let dir = browser_dir.clone();
    let path = scratch.path().to_path_buf();
    tokio::task::spawn_blocking(move || ensure_npm_packages(&dir, &["playwright-core"], &path)).await.unwrap();

    let db = TestDb::create(Backend::Sqlite).await;
    let ui = [("LIVECHAT_UI", "true")];
    let first = Node::start(db.url(), &ui).await;
    let addr = first.addr.to_string();
    let mut node = Some(first);
    let agent = User::agent(1);
    let user = User::with_tenant_role(100, 1, "koperasi_admin");
    let shots = root().join("docs").join("screenshots");

    let mut script = tokio::process::Command::new("node")
        .arg(browser_dir.join("e2e.mjs"))
        .current_dir(&browser_dir)
        .env("LIVECHAT_URL", format!("http://{addr}"))
        .env("AGENT_TOKEN", agent.token())
        .env("USER_TOKEN", user.token())
        .env("SCREENSHOT_DIR", &shots)
        .env("CHROMIUM", &chromium)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("could not run node ({e}); Node.js 20+ is required by the browser test"));
    let mut stdin = script.stdin.take().unwrap();
    let mut stdout = BufReader::new(script.stdout.take().unwrap()).lines();
    let stderr = script.stderr.take().unwrap();
    let errors = tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        let mut kept = Vec::new();
        while let Ok(Some(line)) = lines.next_line().await {
            kept.push(line);
        }
        kept
    });

    let started = Instant::now();
    let mut log = Vec::new();
    let conversation = async {
        while let Some(line) = stdout.next_line().await.unwrap() {
            println!("{line}");
            log.push(line.clone());
            if line == "@@stop" {
                let (status, _) = node.take().expect("a running server").terminate().await;
                assert!(status.success(), "the server did not stop cleanly: {status}");
                stdin.write_all(b"@@stopped\n").await.unwrap();
            } else if let Some(session) = line.strip_prefix("@@start ") {
                let again = Node::start(db.url(), &[ui[0], ("LIVECHAT_BIND", addr.as_str())]).await;
                assert_eq!(again.addr.to_string(), addr, "restarted on the same port");
                // Written before the browsers are told: they must catch up on it.
                let path = format!("/sessions/{session}/messages");
                let r = again.post(&path, &agent, 1, Some(json!({ "message": "Pesan saat Anda terputus" }))).await;
                assert_eq!(r.status, 201, "{}", r.body);
                node = Some(again);
                stdin.write_all(b"@@started\n").await.unwrap();
            }
        }
        script.wait().await.unwrap()
    };
    let status = match tokio::time::timeout(SCENARIO_TIMEOUT, conversation).await {
        Ok(status) => status,
        Err(_) => panic!("the browser scenario did not finish within {SCENARIO_TIMEOUT:?}:\n{}", log.join("\n")),
    };
    let stderr = errors.await.unwrap_or_default().join("\n");
    println!("browser scenario took {:.1?}", started.elapsed());
    assert!(status.success(), "the browser scenario failed ({status}):\n{}\n{stderr}", log.join("\n"));
    assert_eq!(log.last().map(String::as_str).map(|l| l.ends_with("all scenarios passed")), Some(true));
    for shot in ["agent-console.png", "tenant-widget.png", "tenant-widget-closed.png"] {
        let size = std::fs::metadata(shots.join(shot)).map(|m| m.len()).unwrap_or(0);
        assert!(size > 10_000, "screenshot {shot} was not written ({size} bytes)");
    }
    if let Some(node) = node {
        node.terminate().await;
    }
}

/// Installs `dir`'s locked npm packages with `npm ci` unless the pinned versions are there.
fn ensure_npm_packages(dir: &Path, packages: &[&str], scratch: &Path) {
    let manifest = read_json(&dir.join("package.json"));
    let installed = || {
        packages.iter().all(|name| {
            let pinned = manifest["devDependencies"][name].as_str();
            let at = dir.join("node_modules").join(name).join("package.json");
            at.exists() && read_json(&at)["version"].as_str() == pinned
        })
    };
    if !installed() {
        let mut cmd = Command::new("npm");
        cmd.args(["ci", "--no-audit", "--no-fund"]).current_dir(dir);
        let run = run_bounded(cmd, "npm ci", NPM_CI_TIMEOUT, scratch);
        println!("npm ci in {} took {:.1?}", dir.display(), run.took);
        assert!(run.success, "npm ci in {} failed ({}):\n{}", dir.display(), run.status, run.output);
    }
    assert!(installed(), "{packages:?} not installed at their pinned versions in {}", dir.display());
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
}

/// Every file under `dir` (relative name, bytes), sorted by name.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut found: Vec<_> = walkdir::WalkDir::new(dir)
        .into_iter()
        .map(|entry| entry.unwrap_or_else(|e| panic!("walk {}: {e}", dir.display())))
        .filter(|entry| entry.file_type().is_file())
        .map(|entry| {
            let path = entry.path();
            (path.strip_prefix(dir).unwrap().to_string_lossy().into_owned(), std::fs::read(path).unwrap())
        })
        .collect();
    found.sort();
    found
}

/// How a bounded process ended.
struct Finished {
    success: bool,
    status: String,
    output: String,
    took: Duration,
}

/// Runs `cmd` with its output captured, killing it after `timeout`.
fn run_bounded(mut cmd: Command, what: &str, timeout: Duration, scratch: &Path) -> Finished {
    let log = scratch.join(format!("{}.log", uuid::Uuid::now_v7().simple()));
    let out = File::create(&log).unwrap();
    cmd.stdin(Stdio::null()).stdout(out.try_clone().unwrap()).stderr(out);
    let started = Instant::now();
    let mut child = cmd.spawn().unwrap_or_else(|e| {
        panic!("could not run {what} ({e}): Node.js 20+ and npm are required by the web UI tests (see README, Tests)")
    });
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within {timeout:?}:\n{}", std::fs::read_to_string(&log).unwrap_or_default());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let output = std::fs::read_to_string(&log).unwrap_or_default();
    Finished { success: status.success(), status: status.to_string(), output, took: started.elapsed() }
}

/// A free loopback port (bound once, then released for the page server).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frontend_on_an_allowed_origin_calls_the_api_from_chromium_and_others_cannot() {
    let chromium = chromium();
    let browser_dir = root().join("tests").join("browser");
    let scratch = temp_dir();
    let (dir, path) = (browser_dir.clone(), scratch.path().to_path_buf());
    tokio::task::spawn_blocking(move || ensure_npm_packages(&dir, &["playwright-core"], &path)).await.unwrap();
    let (allowed, other) = (free_port(), free_port());
    let origin = reqwest::header::HeaderValue::from_str(&format!("http://127.0.0.1:{allowed}")).unwrap();
    let options = crate::helpers::TestOptions { cors_origins: vec![origin], ..Default::default() };
    let app = crate::helpers::TestApp::spawn_with(Backend::Sqlite, options).await;
    let run = tokio::process::Command::new("node")
        .arg(browser_dir.join("cors.mjs"))
        .current_dir(&browser_dir)
        .env("API_URL", format!("http://{}", app.addr))
        .env("TOKEN", User::with_tenant_role(100, 1, "koperasi_admin").token())
        .env("ALLOWED_PORT", allowed.to_string())
        .env("OTHER_PORT", other.to_string())
        .env("CHROMIUM", &chromium)
        .kill_on_drop(true)
        .output();
    let out =
        tokio::time::timeout(Duration::from_secs(60), run).await.expect("the CORS scenario finished in time").unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "CORS scenario failed\nstdout: {stdout}\nstderr: {stderr}");
}
