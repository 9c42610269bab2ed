//! The frontend's TypeScript types against real responses: bodies returned by
//! a live server (the shared corpus, `corpus.rs`) are written into a `.ts`
//! file and compiled with `tsc --strict`, each one checked against the guide
//! type its endpoint promises. A second file holds the same bodies made wrong
//! on purpose and must not compile, so a green run proves the check can fail.
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

use crate::corpus::{self, Corpus};
use crate::helpers::{Backend, TestApp, temp_dir};
use livechat::http::PREFIXES;
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

const NPM_CI_TIMEOUT: Duration = Duration::from_secs(300);
const TSC_TIMEOUT: Duration = Duration::from_secs(120);
const VERSION_TIMEOUT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_responses_type_check_against_the_frontend_types_and_wrong_ones_do_not() {
    let cases = real_cases(corpus::shared().await);
    let wrong = wrong_bodies(&cases);
    // Processes are waited on synchronously; a failure keeps its own message.
    if let Err(err) = tokio::task::spawn_blocking(move || type_check(&cases, &wrong)).await {
        std::panic::resume_unwind(err.into_panic());
    }
}

/// A success body of a client generated from the served OpenAPI document, and
/// the guide type a frontend would hold it in.
struct Assignment {
    what: &'static str,
    path: &'static str,
    method: &'static str,
    status: u16,
    guide_type: &'static str,
}

const fn assign(
    what: &'static str,
    path: &'static str,
    method: &'static str,
    status: u16,
    guide_type: &'static str,
) -> Assignment {
    Assignment { what, path, method, status, guide_type }
}

/// Every body the guide's types name, from the generated client's `paths`.
const GENERATED_BODIES: [Assignment; 5] = [
    assign("open session", corpus::SESSIONS, "post", 201, "APIResponse<ChatSession>"),
    assign("get session", corpus::SESSION, "get", 200, "APIResponse<ChatSession>"),
    assign("list sessions", corpus::SESSIONS, "get", 200, "APIResponse<ChatSession[]>"),
    assign("send message", corpus::MESSAGES, "post", 201, "APIResponse<ChatMessage>"),
    assign("list messages", corpus::MESSAGES, "get", 200, "APIResponse<ChatMessage[]>"),
];

/// The same bodies held in types they do not satisfy; each must be refused,
/// so a green run proves the generated types are checked at all (not `any`)
/// and that literal unions are kept (`status` narrowed to one value).
const MISTYPED_BODIES: [Assignment; 6] = [
    assign("open session", corpus::SESSIONS, "post", 201, "APIResponse<ChatMessage>"),
    assign("open session", corpus::SESSIONS, "post", 201, "APIResponse<ChatSession & { status: 'OPEN' }>"),
    assign("get session", corpus::SESSION, "get", 200, "APIResponse<ChatSession[]>"),
    assign("list sessions", corpus::SESSIONS, "get", 200, "APIResponse<ChatSession>"),
    assign("send message", corpus::MESSAGES, "post", 201, "APIResponse<ChatSession>"),
    assign("list messages", corpus::MESSAGES, "get", 200, "APIResponse<ChatMessage>"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_generated_from_the_openapi_document_yields_the_guide_types() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let document = corpus::fetch_document(&app, PREFIXES[0]).await;
    app.stop().await;
    if let Err(err) = tokio::task::spawn_blocking(move || check_generated_client(&document)).await {
        std::panic::resume_unwind(err.into_panic());
    }
}

/// Generates TypeScript from `document` with the pinned `openapi-typescript`
/// and compiles the assignments: the right ones must pass, each wrong one fail.
fn check_generated_client(document: &Value) {
    let types_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("typescript");
    let scratch = temp_dir();
    let tsc = ensure_tsc(&types_dir, scratch.path());
    let generator = ensure_tool(&types_dir, scratch.path(), "openapi-typescript", "openapi-typescript");

    let spec = scratch.path().join("openapi.json");
    std::fs::write(&spec, document.to_string()).expect("write openapi.json");
    let client = scratch.path().join("client.ts");
    let mut cmd = Command::new(&generator);
    cmd.arg(&spec).arg("--output").arg(&client).current_dir(scratch.path());
    let run = run_bounded(cmd, "openapi-typescript", TSC_TIMEOUT, scratch.path());
    assert!(run.success, "openapi-typescript failed on the served document ({}):\n{}", run.status, run.output);

    let good = assignments(scratch.path(), "generated-bodies", &types_dir, &client, &GENERATED_BODIES);
    let run = run_tsc(&tsc, scratch.path(), &good);
    let errors = tsc_errors(&run.output);
    assert!(
        run.success && errors.is_empty(),
        "the generated client's bodies are not the guide's types under tsc --strict ({}); failing:\n{}\n--- tsc output ---\n{}",
        run.status,
        good.describe(&errors),
        run.output,
    );

    let bad = assignments(scratch.path(), "mistyped-bodies", &types_dir, &client, &MISTYPED_BODIES);
    let run = run_tsc(&tsc, scratch.path(), &bad);
    let errors = tsc_errors(&run.output);
    let missed: Vec<&str> =
        bad.spans.iter().filter(|s| !errors.iter().any(|e| s.contains(e))).map(|s| s.name.as_str()).collect();
    assert!(!run.success && missed.is_empty(), "tsc accepted mistyped bodies: {missed:?}\n{}", run.output);
    let stray: Vec<&TscError> = errors.iter().filter(|e| !bad.spans.iter().any(|s| s.contains(e))).collect();
    assert!(stray.is_empty(), "tsc failed for another reason than the mistyped bodies: {stray:?}\n{}", run.output);
}

/// A program that holds each generated body in its guide type, one line each.
fn assignments(scratch: &Path, name: &str, types_dir: &Path, client: &Path, cases: &[Assignment]) -> Generated {
    let module = |path: &Path| Value::String(path.to_string_lossy().into_owned());
    let mut source =
        String::from("// Generated by tests/api/typescript.rs: a generated client vs the guide's types.\n");
    writeln!(source, "import type {{ paths }} from {};", module(&client.with_extension(""))).expect("write");
    let guide = types_dir.join("guide-types");
    writeln!(source, "import type {{ APIResponse, ChatSession, ChatMessage }} from {};", module(&guide))
        .expect("write");
    let mut spans = Vec::with_capacity(cases.len());
    for (i, case) in cases.iter().enumerate() {
        let name = format!("{} ({} {} {}) as {}", case.what, case.method, case.path, case.status, case.guide_type);
        writeln!(source, "\n// {name}").expect("write");
        let line = source.lines().count() + 1;
        // Indexed access, not a conditional type: a path, method or status the
        // document lacks is an error here, never a silent `never`.
        let body = format!(
            "paths[{}][{}][\"responses\"][{}][\"content\"][\"application/json\"]",
            Value::from(case.path),
            Value::from(case.method),
            case.status
        );
        writeln!(source, "export const held{i} = (body: {body}): {} => body;", case.guide_type).expect("write");
        spans.push(Span { name, first_line: line, last_line: line });
    }
    Generated::with_source(scratch, name, source, spans, &[client])
}

/// One response body and the TypeScript type it must satisfy.
#[derive(Debug, Clone)]
struct Case {
    name: String,
    ts_type: &'static str,
    body: Value,
}

struct Cases<'c> {
    corpus: &'c Corpus,
    cases: Vec<Case>,
}

impl Cases<'_> {
    /// A successful body, as the type of its endpoint.
    #[track_caller]
    fn ok(&mut self, method: Method, route: &str, name: &str, ts_type: &'static str) {
        let body = self.corpus.get(&method, route, name).body.clone();
        self.cases.push(Case { name: name.to_owned(), ts_type, body });
    }

    /// An error body as `ErrorResponse` and as the type of the endpoint that
    /// answered, which a frontend would have typed the call with.
    #[track_caller]
    fn error(&mut self, method: Method, route: &str, name: &str, endpoint_type: &'static str) {
        let response = self.corpus.get(&method, route, name);
        for ts_type in [ERROR, endpoint_type] {
            let name = format!("{} {name} as {ts_type}", response.status);
            self.cases.push(Case { name, ts_type, body: response.body.clone() });
        }
    }
}

/// Every response shape the frontend reads, from the corpus.
fn real_cases(corpus: &Corpus) -> Vec<Case> {
    use corpus::{
        AGENT_SESSION, BLANK_MESSAGE, CLOSE, CLOSED_SESSION, MEMBER_CLOSES, MESSAGE_SENT, MESSAGES, MESSAGES_BY_TERM,
        MESSAGES_PAGE, NO_SESSIONS, NO_TOKEN, OLDER_MESSAGES_PAGE, OPEN_SESSION_BY_ID, OUTSIDE_ROLE, PLAIN_TEXT,
        QUEUED_SESSION, SECOND_SESSIONS_PAGE, SESSION_ALREADY_ACTIVE, SESSIONS, SESSIONS_PAGE, TOO_BIG,
        TWO_BAD_PARAMETERS, UNKNOWN_SESSION, WRONG_METHOD,
    };
    let mut c = Cases { corpus, cases: Vec::new() };

    c.ok(Method::POST, SESSIONS, QUEUED_SESSION, SESSION);
    c.ok(Method::POST, CLOSE, CLOSED_SESSION, SESSION);
    c.ok(Method::POST, SESSIONS, AGENT_SESSION, SESSION);
    c.ok(Method::GET, corpus::SESSION, OPEN_SESSION_BY_ID, SESSION);
    c.ok(Method::GET, SESSIONS, SESSIONS_PAGE, SESSION_LIST);
    c.ok(Method::GET, SESSIONS, SECOND_SESSIONS_PAGE, SESSION_LIST);
    c.ok(Method::GET, SESSIONS, NO_SESSIONS, SESSION_LIST);
    c.ok(Method::POST, MESSAGES, MESSAGE_SENT, MESSAGE);
    c.ok(Method::GET, MESSAGES, MESSAGES_PAGE, MESSAGE_LIST);
    c.ok(Method::GET, MESSAGES, OLDER_MESSAGES_PAGE, MESSAGE_LIST);
    c.ok(Method::GET, MESSAGES, MESSAGES_BY_TERM, MESSAGE_LIST);

    c.error(Method::POST, SESSIONS, SESSION_ALREADY_ACTIVE, SESSION);
    c.error(Method::POST, MESSAGES, BLANK_MESSAGE, MESSAGE);
    c.error(Method::GET, SESSIONS, TWO_BAD_PARAMETERS, SESSION_LIST);
    c.error(Method::GET, SESSIONS, NO_TOKEN, SESSION_LIST);
    c.error(Method::GET, SESSIONS, OUTSIDE_ROLE, SESSION_LIST);
    c.error(Method::POST, CLOSE, MEMBER_CLOSES, SESSION);
    c.error(Method::GET, corpus::SESSION, UNKNOWN_SESSION, SESSION);
    c.error(Method::DELETE, SESSIONS, WRONG_METHOD, SESSION_LIST);
    c.error(Method::POST, MESSAGES, TOO_BIG, MESSAGE);
    c.error(Method::POST, MESSAGES, PLAIN_TEXT, MESSAGE);
    c.cases
}

/// Real bodies with one field made wrong each; every one must be rejected.
fn wrong_bodies(cases: &[Case]) -> Vec<Case> {
    use corpus::{AGENT_SESSION, BLANK_MESSAGE, CLOSED_SESSION, MESSAGE_SENT, MESSAGES_PAGE, SESSIONS_PAGE};
    let real =
        |name: &str| cases.iter().find(|c| c.name == name).unwrap_or_else(|| panic!("no case named {name:?}")).clone();
    let wrong = |name: &str, what: &str, change: &dyn Fn(&mut Value)| {
        let mut case = real(name);
        change(&mut case.body);
        case.name = format!("{name}, {what}");
        case
    };
    let validation_error = format!("400 {BLANK_MESSAGE} as {ERROR}");
    vec![
        wrong(AGENT_SESSION, "agent_id null", &|b| b["data"]["agent_id"] = Value::Null),
        wrong(AGENT_SESSION, "status \"closed\"", &|b| b["data"]["status"] = json!("closed")),
        wrong(CLOSED_SESSION, "tenant_id a string", &|b| b["data"]["tenant_id"] = json!("12")),
        wrong(CLOSED_SESSION, "created_at missing", &|b| remove(&mut b["data"], "created_at")),
        wrong(MESSAGE_SENT, "sender_id a string", &|b| b["data"]["sender_id"] = json!("100")),
        wrong(MESSAGES_PAGE, "data an object", &|b| b["data"] = json!({})),
        wrong(MESSAGES_PAGE, "pagination without limit", &|b| remove(&mut b["meta"]["pagination"], "limit")),
        wrong(SESSIONS_PAGE, "has_next a string", &|b| b["meta"]["pagination"]["has_next"] = json!("true")),
        wrong(SESSIONS_PAGE, "meta without request_id", &|b| remove(&mut b["meta"], "request_id")),
        wrong(&validation_error, "errors as plain strings", &|b| {
            b["errors"] = json!({ "message": "is required" });
        }),
        wrong(&validation_error, "data an object", &|b| b["data"] = json!({})),
        wrong(&validation_error, "success a string", &|b| b["success"] = json!("false")),
    ]
}

fn remove(object: &mut Value, key: &str) {
    let removed = object.as_object_mut().and_then(|o| o.remove(key));
    assert!(removed.is_some(), "no {key:?} to remove in {object}");
}

/// Compiles the real bodies (must pass) and the wrong ones (each must fail).
fn type_check(real: &[Case], wrong: &[Case]) {
    let types_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("typescript");
    let scratch = temp_dir();
    let tsc = ensure_tsc(&types_dir, scratch.path());

    let good = Generated::write(scratch.path(), "real-responses", &types_dir, real);
    let run = run_tsc(&tsc, scratch.path(), &good);
    println!("tsc on {} real bodies took {:.1?}", real.len(), run.took);
    let errors = tsc_errors(&run.output);
    assert!(
        run.success && errors.is_empty(),
        "tsc --strict rejected real responses ({}); failing cases:\n{}\n--- tsc output ---\n{}\n{FALLBACK_HINT}",
        run.status,
        good.describe(&errors),
        run.output,
    );

    let bad = Generated::write(scratch.path(), "wrong-responses", &types_dir, wrong);
    let run = run_tsc(&tsc, scratch.path(), &bad);
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
        Self::with_source(scratch, name, source, spans, &[])
    }

    /// Writes `source` as the checked file, compiled together with `also`.
    fn with_source(scratch: &Path, name: &str, source: String, spans: Vec<Span>, also: &[&Path]) -> Self {
        let dir = scratch.join(name);
        std::fs::create_dir_all(&dir).expect("generated dir");
        std::fs::write(dir.join(CHECKED_FILE), &source).expect("write generated .ts");
        let mut files = vec![Value::from(CHECKED_FILE)];
        files.extend(also.iter().map(|p| Value::String(p.to_string_lossy().into_owned())));
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
            "files": files,
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
    ensure_tool(types_dir, scratch, "typescript", "tsc")
}

/// The `bin` of the pinned npm package `package`, installed with `npm ci`
/// (every pinned package at once) when missing or not the pinned version.
fn ensure_tool(types_dir: &Path, scratch: &Path, package: &str, bin: &str) -> PathBuf {
    let pinned = read_json(&types_dir.join("package.json"))["devDependencies"][package]
        .as_str()
        .unwrap_or_else(|| panic!("tests/typescript/package.json pins devDependencies.{package}"))
        .to_owned();
    let program = types_dir.join("node_modules").join(".bin").join(bin);
    let installed = || {
        let manifest = types_dir.join("node_modules").join(package).join("package.json");
        if !program.exists() || !manifest.exists() {
            return None;
        }
        read_json(&manifest)["version"].as_str().map(str::to_owned)
    };
    require_tool("node", scratch);
    // Tests run in parallel in this process; one `npm ci` at a time.
    static INSTALL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _installing = INSTALL.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if installed().as_deref() != Some(pinned.as_str()) {
        require_tool("npm", scratch);
        let mut cmd = Command::new("npm");
        cmd.args(["ci", "--no-audit", "--no-fund"]).current_dir(types_dir);
        let run = run_bounded(cmd, "npm ci", NPM_CI_TIMEOUT, scratch);
        println!("npm ci took {:.1?}", run.took);
        assert!(run.success, "npm ci in {} failed ({}):\n{}", types_dir.display(), run.status, run.output);
    }
    assert_eq!(installed().as_deref(), Some(pinned.as_str()), "{package} in {}", types_dir.display());
    println!("{package} {pinned}");
    program
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
