//! The frontend's TypeScript types against real responses: bodies returned by
//! a live server are written into a `.ts` file and compiled with
//! `tsc --strict`, each one checked against the guide type its endpoint
//! promises. A second file holds the same bodies made wrong on purpose and must
//! not compile, so a green run proves the check can fail.
//!
//! The types live in `tests/typescript/` (the guide's block, exported, plus the
//! two responses it leaves unnamed). The compiler is pinned in
//! `tests/typescript/package.json` and its lockfile, and installed with
//! `npm ci` on first use. Node.js and npm are required: without them this test
//! fails, it never skips.
//!
//! Each body is checked with `conforms<T>()(body)`: the generic parameter is
//! inferred from the literal, so fields the guide does not know (`opened_by`,
//! `closed_at`) are allowed, while the constraint keeps literal types strict
//! (`status: "closed"` and `agent_id: null` are errors).

use crate::helpers::{Backend, Resp, TempDir, TestApp, User};
use reqwest::Method;
use serde_json::{Value, json};
use std::fmt::Write as _;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SESSION: &str = "ChatSessionResponse";
const SESSION_LIST: &str = "ChatSessionListResponse";
const MESSAGE: &str = "ChatMessageResponse";
const MESSAGE_LIST: &str = "ChatMessageListResponse";
const ERROR: &str = "ErrorResponse";

/// The names the generated files import, and where each comes from.
const GUIDE_TYPES: [&str; 3] = [SESSION, MESSAGE, MESSAGE_LIST];
const EXTRA_TYPES: [&str; 2] = [SESSION_LIST, ERROR];

const AGENT_SESSION: &str = "session opened by an agent (agent_id present)";
const CLOSED_SESSION: &str = "session closed by an agent (closed_at present)";
const MESSAGE_SENT: &str = "message sent";
const MESSAGES_FIRST_PAGE: &str = "first page of messages (next_cursor present)";
const SESSIONS_FIRST_PAGE: &str = "first page of sessions (next_cursor present)";
const VALIDATION_ERROR: &str = "400 validation_error on a blank message (errors map)";

const NPM_CI_TIMEOUT: Duration = Duration::from_secs(300);
const TSC_TIMEOUT: Duration = Duration::from_secs(120);
const VERSION_TIMEOUT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_responses_type_check_against_the_frontend_types_and_wrong_ones_do_not() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let cases = collect_real_bodies(&app).await;
    app.stop().await;
    let wrong = wrong_bodies(&cases);
    // Processes are waited on synchronously; a failure keeps its own message.
    if let Err(err) = tokio::task::spawn_blocking(move || type_check(&cases, &wrong)).await {
        std::panic::resume_unwind(err.into_panic());
    }
}

/// One response body and the TypeScript type it must satisfy.
#[derive(Debug, Clone)]
struct Case {
    name: String,
    ts_type: &'static str,
    body: Value,
}

#[derive(Default)]
struct Cases(Vec<Case>);

impl Cases {
    /// Records a successful body after checking its status.
    #[track_caller]
    fn ok(&mut self, name: &str, ts_type: &'static str, resp: &Resp, status: u16) {
        assert_eq!(resp.status, status, "{name}: {}", resp.body);
        self.0.push(Case { name: name.to_owned(), ts_type, body: resp.body.clone() });
    }

    /// Records an error body as `ErrorResponse` and as the type of the
    /// endpoint that answered, which a frontend would have typed the call with.
    #[track_caller]
    fn error(&mut self, name: &str, endpoint_type: &'static str, resp: &Resp, status: u16, code: &str) {
        resp.assert_error(status, code);
        for ts_type in [ERROR, endpoint_type] {
            self.0.push(Case { name: format!("{name} as {ts_type}"), ts_type, body: resp.body.clone() });
        }
    }
}

/// Drives the server through every response shape the frontend reads.
async fn collect_real_bodies(app: &TestApp) -> Vec<Case> {
    let agent = User::agent(1);
    let member = User::member(100, 12);
    let mut cases = Cases::default();

    // Sessions.
    let r = app.post("/sessions", &member, 12, None).await;
    assert!(r.data().get("agent_id").is_none(), "a queued session has no agent_id: {}", r.body);
    cases.ok("session opened by a tenant user (queued, no agent_id)", SESSION, &r, 201);
    let queued = r.id();

    let r = app.post("/sessions", &member, 12, None).await;
    cases.error("400 session_already_active", SESSION, &r, 400, "session_already_active");
    assert!(!r.field_errors("session_id").is_empty(), "{}", r.body);

    let r = app.post(&format!("/sessions/{queued}/close"), &agent, 12, None).await;
    assert!(r.data()["closed_at"].is_string(), "{}", r.body);
    assert_eq!(r.data()["status"], "CLOSED", "{}", r.body);
    cases.ok(CLOSED_SESSION, SESSION, &r, 200);

    let r = app.post("/sessions", &agent, 12, Some(json!({}))).await;
    assert_eq!(r.data()["agent_id"], 1, "{}", r.body);
    cases.ok(AGENT_SESSION, SESSION, &r, 201);
    let session = r.id();

    let r = app.get(&format!("/sessions/{session}"), &member, 12).await;
    cases.ok("session fetched by id", SESSION, &r, 200);

    let r = app.get("/sessions?limit=1", &agent, 12).await;
    let next = r.body["meta"]["pagination"]["next_cursor"].as_str().map(str::to_owned);
    let next = next.unwrap_or_else(|| panic!("two sessions, limit 1: expected next_cursor in {}", r.body));
    cases.ok(SESSIONS_FIRST_PAGE, SESSION_LIST, &r, 200);

    let r = app.get(&format!("/sessions?limit=1&cursor={next}"), &agent, 12).await;
    assert!(r.body["meta"]["pagination"]["prev_cursor"].is_string(), "{}", r.body);
    cases.ok("second page of sessions (prev_cursor present)", SESSION_LIST, &r, 200);

    let r = app.get("/sessions", &User::member(101, 13), 13).await;
    assert_eq!(r.data(), &json!([]), "{}", r.body);
    cases.ok("empty list of sessions", SESSION_LIST, &r, 200);

    // Messages.
    let r = app.send(&session, &member, 12, "Halo, saya butuh bantuan").await;
    cases.ok(MESSAGE_SENT, MESSAGE, &r, 201);
    app.send(&session, &agent, 12, "Halo! Ada yang bisa dibantu?").await;
    app.send(&session, &member, 12, "Saldo simpanan saya tidak muncul").await;

    let messages = format!("/sessions/{session}/messages");
    let r = app.get(&format!("{messages}?limit=2"), &member, 12).await;
    let next = r.body["meta"]["pagination"]["next_cursor"].as_str().map(str::to_owned);
    let next = next.unwrap_or_else(|| panic!("three messages, limit 2: expected next_cursor in {}", r.body));
    cases.ok(MESSAGES_FIRST_PAGE, MESSAGE_LIST, &r, 200);

    let r = app.get(&format!("{messages}?limit=2&cursor={next}&direction=before"), &member, 12).await;
    assert!(r.body["meta"]["pagination"]["prev_cursor"].is_string(), "{}", r.body);
    cases.ok("older page of messages (prev_cursor present)", MESSAGE_LIST, &r, 200);

    let r = app.get(&format!("{messages}?term=saldo"), &agent, 12).await;
    cases.ok("messages found by a search term", MESSAGE_LIST, &r, 200);

    // Errors.
    let r = app.post(&messages, &member, 12, Some(json!({ "message": "   " }))).await;
    cases.error(VALIDATION_ERROR, MESSAGE, &r, 400, "validation_error");
    assert!(!r.field_errors("message").is_empty(), "{}", r.body);

    let r = app.get("/sessions?limit=0&direction=sideways", &agent, 12).await;
    cases.error("400 validation_error on two query parameters", SESSION_LIST, &r, 400, "validation_error");

    let r = app.raw(app.client.get(app.url("/sessions")).header("X-Tenant-ID", "12")).await;
    cases.error("401 without a token", SESSION_LIST, &r, 401, "unauthorized");

    let r = app.get("/sessions", &User::outsider(300, 12), 12).await;
    cases.error("403 for a role outside the allowlist", SESSION_LIST, &r, 403, "forbidden");

    let r = app.post(&format!("/sessions/{session}/close"), &member, 12, None).await;
    cases.error("403 when a tenant user closes a session", SESSION, &r, 403, "forbidden");

    let r = app.get(&format!("/sessions/{}", uuid::Uuid::now_v7()), &agent, 12).await;
    cases.error("404 for an unknown session", SESSION, &r, 404, "not_found");

    let r = app.call(Method::DELETE, "/sessions", &agent, 12, None).await;
    cases.error("405 for DELETE /sessions", SESSION_LIST, &r, 405, "method_not_allowed");

    let too_big = json!({ "message": "x".repeat(20 * 1024) });
    let r = app.post(&messages, &member, 12, Some(too_big)).await;
    cases.error("413 for a body over the limit", MESSAGE, &r, 413, "payload_too_large");

    let req = app
        .client
        .post(app.url(&messages))
        .bearer_auth(member.token())
        .header("X-Tenant-ID", "12")
        .header("Content-Type", "text/plain")
        .body("Halo");
    let r = app.raw(req).await;
    cases.error("415 for a text/plain body", MESSAGE, &r, 415, "unsupported_media_type");

    cases.0
}

/// Real bodies with one field made wrong each; every one must be rejected.
fn wrong_bodies(cases: &[Case]) -> Vec<Case> {
    let real =
        |name: &str| cases.iter().find(|c| c.name == name).unwrap_or_else(|| panic!("no case named {name:?}")).clone();
    let wrong = |name: &str, what: &str, change: &dyn Fn(&mut Value)| {
        let mut case = real(name);
        change(&mut case.body);
        case.name = format!("{name}, {what}");
        case
    };
    vec![
        wrong(AGENT_SESSION, "agent_id null", &|b| b["data"]["agent_id"] = Value::Null),
        wrong(AGENT_SESSION, "status \"closed\"", &|b| b["data"]["status"] = json!("closed")),
        wrong(CLOSED_SESSION, "tenant_id a string", &|b| b["data"]["tenant_id"] = json!("12")),
        wrong(CLOSED_SESSION, "created_at missing", &|b| remove(&mut b["data"], "created_at")),
        wrong(MESSAGE_SENT, "sender_id a string", &|b| b["data"]["sender_id"] = json!("100")),
        wrong(MESSAGES_FIRST_PAGE, "data an object", &|b| b["data"] = json!({})),
        wrong(MESSAGES_FIRST_PAGE, "pagination without limit", &|b| remove(&mut b["meta"]["pagination"], "limit")),
        wrong(SESSIONS_FIRST_PAGE, "has_next a string", &|b| b["meta"]["pagination"]["has_next"] = json!("true")),
        wrong(SESSIONS_FIRST_PAGE, "meta without request_id", &|b| remove(&mut b["meta"], "request_id")),
        wrong(&format!("{VALIDATION_ERROR} as {ERROR}"), "errors as plain strings", &|b| {
            b["errors"] = json!({ "message": "is required" });
        }),
        wrong(&format!("{VALIDATION_ERROR} as {ERROR}"), "data an object", &|b| b["data"] = json!({})),
        wrong(&format!("{VALIDATION_ERROR} as {ERROR}"), "success a string", &|b| b["success"] = json!("false")),
    ]
}

fn remove(object: &mut Value, key: &str) {
    let removed = object.as_object_mut().and_then(|o| o.remove(key));
    assert!(removed.is_some(), "no {key:?} to remove in {object}");
}

/// Compiles the real bodies (must pass) and the wrong ones (each must fail).
fn type_check(real: &[Case], wrong: &[Case]) {
    let types_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("typescript");
    let scratch = TempDir::new();
    let tsc = ensure_tsc(&types_dir, &scratch.path);

    let good = Generated::write(&scratch.path, "real-responses", &types_dir, real);
    let run = run_tsc(&tsc, &scratch.path, &good);
    println!("tsc on {} real bodies took {:.1?}", real.len(), run.took);
    let errors = tsc_errors(&run.output);
    assert!(
        run.success && errors.is_empty(),
        "tsc --strict rejected real responses ({}); failing cases:\n{}\n--- tsc output ---\n{}\n{FALLBACK_HINT}",
        run.status,
        good.describe(&errors),
        run.output,
    );

    let bad = Generated::write(&scratch.path, "wrong-responses", &types_dir, wrong);
    let run = run_tsc(&tsc, &scratch.path, &bad);
    println!("tsc on {} wrong bodies took {:.1?}", wrong.len(), run.took);
    let errors = tsc_errors(&run.output);
    assert!(!run.success, "tsc accepted deliberately wrong bodies: the check cannot fail\n{}", run.output);
    let missed: Vec<&str> =
        bad.spans.iter().filter(|s| !errors.iter().any(|e| s.contains(e))).map(|s| s.name.as_str()).collect();
    assert!(missed.is_empty(), "tsc accepted wrong bodies: {missed:?}\n--- tsc output ---\n{}", run.output);
    let stray: Vec<&TscError> = errors.iter().filter(|e| !bad.spans.iter().any(|s| s.contains(e))).collect();
    assert!(stray.is_empty(), "tsc failed for another reason than the wrong bodies: {stray:?}\n{}", run.output);
}

/// Why tsc may blame a field the guide does not know.
const FALLBACK_HINT: &str = "Note: when a body does not satisfy its type, tsc re-checks the literal against the \
     type itself, so it may report an additive field (opened_by, closed_at) as an unknown property instead of \
     the real fault, e.g. a missing field; compare the body with the type.";

/// Where one case sits in a generated file.
struct Span {
    name: String,
    first_line: usize,
    last_line: usize,
}

impl Span {
    fn contains(&self, error: &TscError) -> bool {
        error.file.as_deref() == Some(CHECKED_FILE) && (self.first_line..=self.last_line).contains(&error.line)
    }
}

const CHECKED_FILE: &str = "checked.ts";

/// A `tsconfig.json` and the `.ts` file it compiles, in their own directory.
struct Generated {
    dir: PathBuf,
    source: String,
    spans: Vec<Span>,
}

impl Generated {
    fn write(scratch: &Path, name: &str, types_dir: &Path, cases: &[Case]) -> Self {
        let import = |module: &str, names: &[&str]| {
            let path = types_dir.join(module).to_string_lossy().into_owned();
            format!("import type {{ {} }} from {};\n", names.join(", "), Value::String(path))
        };
        let mut source =
            String::from("// Generated by tests/api/typescript.rs: real server responses vs the guide's types.\n");
        source.push_str(&import("guide-types", &GUIDE_TYPES));
        source.push_str(&import("extra-types", &EXTRA_TYPES));
        source.push_str("\nfunction conforms<T>() {\n  return <U extends T>(value: U): U => value;\n}\n");
        let mut spans = Vec::with_capacity(cases.len());
        for case in cases {
            assert!(
                GUIDE_TYPES.contains(&case.ts_type) || EXTRA_TYPES.contains(&case.ts_type),
                "{} is not imported",
                case.ts_type
            );
            let body = serde_json::to_string_pretty(&case.body).expect("JSON");
            writeln!(source, "\n// {}", case.name.replace('\n', " ")).expect("write");
            let first_line = source.lines().count() + 1;
            writeln!(source, "conforms<{}>()({body});", case.ts_type).expect("write");
            spans.push(Span { name: case.name.clone(), first_line, last_line: source.lines().count() });
        }
        let dir = scratch.join(name);
        std::fs::create_dir_all(&dir).expect("generated dir");
        std::fs::write(dir.join(CHECKED_FILE), &source).expect("write generated .ts");
        // `types: []` keeps stray `@types` packages of enclosing directories out.
        let tsconfig = json!({
            "compilerOptions": {
                "strict": true,
                "noEmit": true,
                "target": "es2020",
                "lib": ["es2020"],
                "module": "commonjs",
                "types": [],
                "pretty": false,
            },
            "files": [CHECKED_FILE],
        });
        std::fs::write(dir.join("tsconfig.json"), tsconfig.to_string()).expect("write tsconfig.json");
        Self { dir, source, spans }
    }

    /// The cases the errors point into, each with its generated source.
    fn describe(&self, errors: &[TscError]) -> String {
        let lines: Vec<&str> = self.source.lines().collect();
        let mut out = String::new();
        for span in self.spans.iter().filter(|s| errors.iter().any(|e| s.contains(e))) {
            writeln!(out, "* {} (lines {}-{}):", span.name, span.first_line, span.last_line).expect("write");
            for (i, line) in lines[span.first_line - 1..span.last_line].iter().enumerate() {
                writeln!(out, "{:>5} {line}", span.first_line + i).expect("write");
            }
        }
        out
    }
}

/// One `file(line,col): error TSxxxx: …` line of tsc's output.
#[derive(Debug)]
struct TscError {
    file: Option<String>,
    line: usize,
}

fn tsc_errors(output: &str) -> Vec<TscError> {
    output
        .lines()
        .filter(|l| l.contains("error TS"))
        .map(|l| {
            let located = l.split_once("): error TS").and_then(|(head, _)| head.rsplit_once('('));
            let position = located.and_then(|(file, pos)| Some((file, pos.split(',').next()?.parse().ok()?)));
            TscError { file: position.map(|(file, _)| file.to_owned()), line: position.map_or(0, |(_, line)| line) }
        })
        .collect()
}

fn run_tsc(tsc: &Path, scratch: &Path, generated: &Generated) -> Finished {
    let mut cmd = Command::new(tsc);
    cmd.arg("-p").arg(generated.dir.join("tsconfig.json")).current_dir(&generated.dir);
    run_bounded(cmd, "tsc", TSC_TIMEOUT, scratch)
}

/// The pinned compiler, installed with `npm ci` when missing or stale.
fn ensure_tsc(types_dir: &Path, scratch: &Path) -> PathBuf {
    let pinned = read_json(&types_dir.join("package.json"))["devDependencies"]["typescript"]
        .as_str()
        .expect("tests/typescript/package.json pins devDependencies.typescript")
        .to_owned();
    let tsc = types_dir.join("node_modules").join(".bin").join("tsc");
    let installed = || {
        let manifest = types_dir.join("node_modules").join("typescript").join("package.json");
        if !tsc.exists() || !manifest.exists() {
            return None;
        }
        read_json(&manifest)["version"].as_str().map(str::to_owned)
    };
    require_tool("node", scratch);
    if installed().as_deref() != Some(pinned.as_str()) {
        require_tool("npm", scratch);
        let mut cmd = Command::new("npm");
        cmd.args(["ci", "--no-audit", "--no-fund"]).current_dir(types_dir);
        let run = run_bounded(cmd, "npm ci", NPM_CI_TIMEOUT, scratch);
        println!("npm ci took {:.1?}", run.took);
        assert!(run.success, "npm ci in {} failed ({}):\n{}", types_dir.display(), run.status, run.output);
    }
    assert_eq!(installed().as_deref(), Some(pinned.as_str()), "typescript in {}", types_dir.display());
    println!("typescript {pinned}");
    tsc
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
}

/// Fails the test, with a message saying what to install, when `program` does not run.
fn require_tool(program: &str, scratch: &Path) {
    let mut cmd = Command::new(program);
    cmd.arg("--version");
    let run = run_bounded(cmd, program, VERSION_TIMEOUT, scratch);
    assert!(run.success, "`{program} --version` failed ({}):\n{}", run.status, run.output);
}

/// How a bounded process ended.
struct Finished {
    success: bool,
    status: String,
    output: String,
    took: Duration,
}

/// Runs `cmd` with stdout and stderr captured into one file, killing it after `timeout`.
fn run_bounded(mut cmd: Command, what: &str, timeout: Duration, scratch: &Path) -> Finished {
    let log = scratch.join(format!("{}.log", uuid::Uuid::now_v7().simple()));
    let out = File::create(&log).expect("log file");
    let err = out.try_clone().expect("log file");
    cmd.stdin(Stdio::null()).stdout(out).stderr(err);
    let started = Instant::now();
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => panic!(
            "could not run {what} ({:?}): {e}. Node.js and npm are required by this test, which \
             type-checks real responses against the frontend's TypeScript types: install Node.js \
             (18 or newer, with npm) and make sure `node` and `npm` are on PATH.",
            cmd.get_program()
        ),
    };
    let status = loop {
        if let Some(status) = child.try_wait().expect("poll child") {
            break status;
        }
        if started.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            let output = std::fs::read_to_string(&log).unwrap_or_default();
            panic!("{what} did not finish within {timeout:?}; output so far:\n{output}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let took = started.elapsed();
    let output = std::fs::read_to_string(&log).unwrap_or_default();
    Finished { success: status.success(), status: status.to_string(), output, took }
}
