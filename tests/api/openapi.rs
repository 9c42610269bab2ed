//! The OpenAPI document against the server that serves it: the document is
//! fetched from `/api/livechat/openapi.json`, the server is driven to every
//! response the document lists, and each real body is validated against the
//! schema documented for its path, method and status.
//!
//! The validator is written here, for the JSON Schema (2020-12) keywords
//! utoipa emits: `$ref` into the document, `type` (one or several, `null`
//! included), `properties`, `required`, `additionalProperties`,
//! `propertyNames`, `items`, `allOf`/`oneOf`/`anyOf`/`not`, `enum`, `const`,
//! `format` (`uuid`, `date-time`, `int32`, `int64`), `pattern`, and the length
//! and range bounds. Other keywords are annotations and ignored. On top of
//! JSON Schema it is strict about additive fields: a property a body carries
//! that its object schema does not declare is a mismatch unless the schema
//! allows `additionalProperties`, so a new response field must be documented.
//! Bodies broken on purpose must be rejected at the right JSON path, so a
//! green run proves the check can fail.

use crate::helpers::{Backend, Resp, TestApp, User};
use livechat::http::PREFIXES;
use reqwest::Method;
use serde_json::{Map, Value, json};
use std::collections::BTreeSet;
use std::fmt;

const JSON: &str = "application/json";

const SESSIONS: &str = "/sessions";
const SESSION: &str = "/sessions/{id}";
const CLOSE: &str = "/sessions/{id}/close";
const CLAIM: &str = "/sessions/{id}/claim";
const TRANSFER: &str = "/sessions/{id}/transfer";
const MESSAGES: &str = "/sessions/{id}/messages";
const READ: &str = "/sessions/{id}/read";
const INBOX: &str = "/agent/sessions";
const PRESENCE: &str = "/agents/me/presence";
const TICKETS: &str = "/realtime/tickets";

/// One operation of the API as the server implements it.
struct Operation {
    path: &'static str,
    method: &'static str,
    /// Whether the handler refuses a request without `X-Tenant-ID`.
    tenant_required: bool,
    /// Every status the handler can answer with (server failures aside), read
    /// from the handler, its extractors and its use case. An operation that
    /// reads a JSON body can answer 413 and 415 whatever the body means.
    statuses: &'static [u16],
}

const fn op(path: &'static str, method: &'static str, tenant_required: bool, statuses: &'static [u16]) -> Operation {
    Operation { path, method, tenant_required, statuses }
}

const OPERATIONS: [Operation; 12] = [
    op(SESSIONS, "get", true, &[200, 400, 401, 403]),
    op(SESSIONS, "post", true, &[201, 400, 401, 403, 413, 415]),
    op(SESSION, "get", true, &[200, 400, 401, 403, 404]),
    op(CLOSE, "post", true, &[200, 400, 401, 403, 404]),
    op(CLAIM, "post", true, &[200, 400, 401, 403, 404, 409]),
    op(TRANSFER, "post", true, &[200, 400, 401, 403, 404, 413, 415]),
    op(MESSAGES, "get", true, &[200, 400, 401, 403, 404]),
    op(MESSAGES, "post", true, &[201, 400, 401, 403, 404, 413, 415, 422]),
    op(READ, "post", true, &[200, 400, 401, 403, 404, 413, 415]),
    op(INBOX, "get", false, &[200, 400, 401, 403]),
    op(PRESENCE, "put", false, &[200, 400, 401, 403, 413, 415]),
    op(TICKETS, "post", true, &[201, 400, 401, 403]),
];

fn is_operation(path: &str, method: &str) -> bool {
    OPERATIONS.iter().any(|o| o.path == path && o.method == method)
}

/// Statuses any route can also answer with, which a document may list or not:
/// 405 on a known path, 429 over the rate limit, 500 on a bug, 503 when storage is unreachable.
const GENERIC: [u16; 4] = [405, 429, 500, 503];

const HTTP_METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

// Real bodies the negative control breaks.
const QUEUED_SESSION: &str = "a tenant user opens a queued session";
const AGENT_SESSION: &str = "an agent opens a session assigned to itself";
const CLOSED_SESSION: &str = "an agent closes a session";
const SESSIONS_PAGE: &str = "a first page of sessions";
const MESSAGE_SENT: &str = "a tenant user sends a message";
const MESSAGES_PAGE: &str = "a first page of messages";
const BLANK_MESSAGE: &str = "a blank message";
const KEY_REUSED: &str = "an idempotency key reused with another text";
const READ_MARK: &str = "a tenant user marks a message read";
const INBOX_PAGE: &str = "the inbox across tenants";
const TICKET: &str = "a stream ticket";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_document_lists_every_route_with_its_methods() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let doc = fetch_document(&app, PREFIXES[0]).await;
    let vendor = fetch_document(&app, PREFIXES[1]).await;
    assert_eq!(doc, vendor, "both prefixes must serve the same document");
    assert_eq!(doc["openapi"], "3.1.0", "OpenAPI version");

    let servers: Vec<&str> =
        doc["servers"].as_array().map(|s| s.iter().filter_map(|s| s["url"].as_str()).collect()).unwrap_or_default();
    assert_eq!(servers, PREFIXES, "servers must be the two prefixes");
    let scheme = &doc["components"]["securitySchemes"]["bearer"];
    assert_eq!(scheme["type"], "http", "bearer security scheme: {scheme}");
    assert_eq!(scheme["scheme"], "bearer", "bearer security scheme: {scheme}");

    let mut problems = Vec::new();
    // Every documented operation is served: asked without a token, an
    // operation with a `security` requirement answers 401, any other anything
    // but the 404 of an unknown route or a 405.
    let documented = documented_operations(&doc);
    for (path, method) in &documented {
        let op = &doc["paths"][path][method];
        let secured = op["security"].as_array().is_some_and(|s| !s.is_empty());
        let verb = Method::from_bytes(method.to_uppercase().as_bytes()).expect("an HTTP method");
        let url = app.url(&concrete_path(path));
        let res = app.client.request(verb, url).header("X-Tenant-ID", "12").send().await.expect("request sent");
        let status = res.status().as_u16();
        if matches!(status, 404 | 405) || (secured && status != 401) {
            let expected = if secured { "401" } else { "a served route" };
            problems.push(format!(
                "{} {path}: documented, answers {status} without a token, not {expected}",
                method.to_uppercase()
            ));
        }
    }
    app.stop().await;

    for Operation { path, method, tenant_required, statuses } in OPERATIONS {
        let here = format!("{} {path}", method.to_uppercase());
        if !documented.contains(&(path.to_owned(), method.to_owned())) {
            problems.push(format!("{here}: served, but missing from the document"));
            continue;
        }
        let op = &doc["paths"][path][method];
        let bearer = op["security"].as_array().is_some_and(|s| s.iter().any(|r| r.get("bearer").is_some()));
        if !bearer {
            problems.push(format!("{here}: no `security` entry naming `bearer`: {}", op["security"]));
        }
        let tenant_header = op["parameters"].as_array().and_then(|ps| {
            ps.iter().find(|p| p["name"] == "X-Tenant-ID" && p["in"] == "header").map(|p| p["required"] == true)
        });
        if tenant_header != Some(tenant_required) {
            let expected = if tenant_required { "a required" } else { "an optional" };
            problems.push(format!("{here}: X-Tenant-ID is not documented as {expected} header"));
        }
        let Some(responses) = op["responses"].as_object() else {
            problems.push(format!("{here}: no responses"));
            continue;
        };
        for status in statuses {
            let response = responses.get(&status.to_string());
            match response.map(|r| &r["content"][JSON]["schema"]) {
                None => problems.push(format!("{here}: the server can answer {status}, the document does not list it")),
                Some(schema) if !schema.is_object() => {
                    problems.push(format!("{here}: {status} has no `{JSON}` schema"))
                }
                Some(_) => {}
            }
        }
        for key in responses.keys() {
            let known = key.parse::<u16>().is_ok_and(|s| statuses.contains(&s) || GENERIC.contains(&s));
            if !known && key != "default" {
                problems.push(format!(
                    "{here}: the document lists {key}, which this route is not known to answer (if it now can, add it to OPERATIONS)"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "the OpenAPI document disagrees with the routes:\n  {}", problems.join("\n  "));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_responses_validate_against_the_documented_schemas() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let doc = fetch_document(&app, PREFIXES[0]).await;
    let cases = collect_real_bodies(&app).await;
    app.stop().await;
    let validator = Validator { doc: &doc };

    let mut problems = Vec::new();
    let mut notes = Vec::new();
    let mut exercised = BTreeSet::new();
    let mut validated = 0;
    for case in &cases {
        let what = format!("{} ({} {} -> {})", case.name, case.method, case.route, case.status);
        let documented = documented_responses(&doc, case.route, &case.method, case.status);
        if documented.is_empty() {
            let line = format!("{what}: the document lists no such response");
            if case.probe {
                notes.push(line);
            } else {
                problems.push(line);
            }
            continue;
        }
        for (method, key, response) in documented {
            exercised.insert((case.route.to_owned(), method, key));
            let content = &response["content"];
            let listed = case.content_type.as_deref().is_some_and(|t| content.get(t).is_some());
            if !listed {
                problems.push(format!(
                    "{what}: Content-Type {:?} is not among the documented {content}",
                    case.content_type
                ));
                continue;
            }
            let schema = &content[JSON]["schema"];
            if !schema.is_object() {
                problems.push(format!("{what}: no `{JSON}` schema is documented"));
                continue;
            }
            validated += 1;
            if let Err(mismatch) = validator.validate(schema, &case.body) {
                problems.push(format!("{what}: {mismatch}\n    body: {}", case.body));
            }
        }
    }

    for (route, method, key) in documented_statuses(&doc) {
        if !is_operation(&route, &method) {
            notes.push(format!("{} {route} -> {key}: documented, not driven by this test", method.to_uppercase()));
        } else if key == "default" || key == "503" || key == "429" {
            notes.push(format!("{} {route} -> {key}: documented, not triggered by this test", method.to_uppercase()));
        } else if !exercised.contains(&(route.clone(), method.clone(), key.clone())) {
            problems.push(format!(
                "{} {route} -> {key}: documented, but no real response exercised it",
                method.to_uppercase()
            ));
        }
    }

    println!("validated {validated} real bodies against {} documented responses", exercised.len());
    for note in &notes {
        println!("not validated: {note}");
    }
    assert!(
        problems.is_empty(),
        "real responses disagree with the OpenAPI document ({} problems):\n  {}",
        problems.len(),
        problems.join("\n  ")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_validator_rejects_hand_broken_copies_of_real_bodies() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let doc = fetch_document(&app, PREFIXES[0]).await;
    let cases = collect_real_bodies(&app).await;
    app.stop().await;
    let validator = Validator { doc: &doc };

    let broken: [Breakage<'_>; 21] = [
        (AGENT_SESSION, "tenant_id a string", "$.data.tenant_id", &|b| {
            b["data"]["tenant_id"] = json!("12");
        }),
        (AGENT_SESSION, "status missing", "$.data.status", &|b| {
            remove(&mut b["data"], "status");
        }),
        (AGENT_SESSION, "status lower-case", "$.data.status", &|b| {
            b["data"]["status"] = json!("open");
        }),
        (AGENT_SESSION, "agent_id a string", "$.data.agent_id", &|b| {
            b["data"]["agent_id"] = json!("1");
        }),
        (AGENT_SESSION, "an undeclared property", "$.data.priority", &|b| {
            b["data"]["priority"] = json!("high");
        }),
        (QUEUED_SESSION, "id not a UUID", "$.data.id", &|b| {
            b["data"]["id"] = json!("session-1");
        }),
        (CLOSED_SESSION, "closed_at not a date-time", "$.data.closed_at", &|b| {
            b["data"]["closed_at"] = json!("yesterday");
        }),
        (MESSAGE_SENT, "meta without request_id", "$.meta.request_id", &|b| {
            remove(&mut b["meta"], "request_id");
        }),
        (MESSAGE_SENT, "an undeclared top-level property", "$.trace", &|b| {
            b["trace"] = json!({});
        }),
        (MESSAGE_SENT, "sender_id a float", "$.data.sender_id", &|b| {
            b["data"]["sender_id"] = json!(100.5);
        }),
        (MESSAGES_PAGE, "second item's sender_id a string", "$.data[1].sender_id", &|b| {
            b["data"][1]["sender_id"] = json!("100");
        }),
        (MESSAGES_PAGE, "has_next a string", "$.meta.pagination.has_next", &|b| {
            b["meta"]["pagination"]["has_next"] = json!("true");
        }),
        (MESSAGES_PAGE, "an undeclared pagination property", "$.meta.pagination.total", &|b| {
            b["meta"]["pagination"]["total"] = json!(3);
        }),
        (SESSIONS_PAGE, "data an object", "$.data", &|b| {
            b["data"] = json!({});
        }),
        (BLANK_MESSAGE, "errors as plain strings", "$.errors.message", &|b| {
            b["errors"]["message"] = json!("is required");
        }),
        (BLANK_MESSAGE, "success a string", "$.success", &|b| {
            b["success"] = json!("false");
        }),
        (BLANK_MESSAGE, "timestamp not a date-time", "$.meta.timestamp", &|b| {
            b["meta"]["timestamp"] = json!("2024-13-45 25:61");
        }),
        (KEY_REUSED, "an error message a number", "$.errors[\"Idempotency-Key\"][0]", &|b| {
            b["errors"]["Idempotency-Key"][0] = json!(422);
        }),
        (READ_MARK, "read_at not a date-time", "$.data.read_at", &|b| {
            b["data"]["read_at"] = json!("now");
        }),
        (INBOX_PAGE, "unread_count a string", "$.data[0].unread_count", &|b| {
            b["data"][0]["unread_count"] = json!("2");
        }),
        (TICKET, "expires_at missing", "$.data.expires_at", &|b| {
            remove(&mut b["data"], "expires_at");
        }),
    ];

    let mut problems = Vec::new();
    for (name, what, path, change) in broken {
        let case = cases.iter().find(|c| c.name == name).unwrap_or_else(|| panic!("no real body named {name:?}"));
        let documented = documented_responses(&doc, case.route, &case.method, case.status);
        let (_, _, response) = documented.first().unwrap_or_else(|| panic!("{name}: no documented response"));
        let schema = &response["content"][JSON]["schema"];
        if let Err(m) = validator.validate(schema, &case.body) {
            problems.push(format!("{name}: the real body is already rejected: {m}"));
            continue;
        }
        let mut body = case.body.clone();
        change(&mut body);
        match validator.validate(schema, &body) {
            Ok(()) => problems.push(format!("{name}, {what}: accepted\n    body: {body}")),
            Err(m) if m.path != path => {
                problems.push(format!("{name}, {what}: rejected at {} instead of {path} ({})", m.path, m.reason))
            }
            Err(m) => println!("{name}, {what}: rejected, {m}"),
        }
    }
    assert!(problems.is_empty(), "the validator cannot be trusted:\n  {}", problems.join("\n  "));
}

/// A real body by name, what is broken in it, the JSON path the validator
/// must point at, and the change.
type Breakage<'a> = (&'a str, &'a str, &'a str, &'a dyn Fn(&mut Value));

#[test]
fn the_schema_checker_understands_the_keywords_utoipa_emits() {
    let doc = json!({ "components": { "schemas": {
        "Named": {
            "type": "object",
            "required": ["name"],
            "properties": { "name": { "type": "string", "minLength": 1 } }
        },
        "Loose": { "type": "object", "additionalProperties": true },
        "Map": { "type": "object", "additionalProperties": { "type": "integer", "format": "int32", "minimum": 0 } },
    }}});
    let v = Validator { doc: &doc };
    let named = json!({ "$ref": "#/components/schemas/Named" });
    let fails_at = |schema: &Value, value: Value| rejection_path(&v, schema, &value);

    v.validate(&named, &json!({ "name": "a" })).unwrap();
    assert_eq!(fails_at(&named, json!({})), "$.name");
    assert_eq!(fails_at(&named, json!({ "name": "" })), "$.name");
    assert_eq!(fails_at(&named, json!({ "name": "a", "x": 1 })), "$.x");
    assert!(v.validate(&json!({ "$ref": "#/components/schemas/Nope" }), &json!({})).is_err());

    // allOf: a property declared by any branch is declared.
    let both = json!({ "allOf": [named, { "type": "object", "properties": { "age": { "type": "integer" } } }] });
    v.validate(&both, &json!({ "name": "a", "age": 3 })).unwrap();
    assert_eq!(fails_at(&both, json!({ "name": "a", "age": 3, "x": 1 })), "$.x");
    assert_eq!(fails_at(&both, json!({ "name": "a", "age": 3.5 })), "$.age");

    // additionalProperties: true allows anything, a schema checks the values.
    let loose = json!({ "$ref": "#/components/schemas/Loose" });
    v.validate(&loose, &json!({ "anything": [1] })).unwrap();
    let map = json!({ "$ref": "#/components/schemas/Map" });
    v.validate(&map, &json!({ "a": 1, "b b": 2 })).unwrap();
    assert_eq!(fails_at(&map, json!({ "b b": -1 })), "$[\"b b\"]");
    assert_eq!(fails_at(&map, json!({ "a": 4_294_967_296_u64 })), "$.a");

    // Types, nullable unions, oneOf/anyOf, enum.
    let nullable = json!({ "type": ["string", "null"], "format": "uuid" });
    v.validate(&nullable, &Value::Null).unwrap();
    v.validate(&nullable, &json!("0190b6f2-7c1e-7d3a-9c4e-2b1f0a9d8e7c")).unwrap();
    assert_eq!(fails_at(&nullable, json!("0190b6f27c1e7d3a9c4e2b1f0a9d8e7c")), "$");
    assert_eq!(fails_at(&nullable, json!(1)), "$");
    let one = json!({ "oneOf": [{ "type": "null" }, { "type": "array", "items": { "enum": ["a", "b"] } }] });
    v.validate(&one, &json!(["a", "b"])).unwrap();
    assert_eq!(fails_at(&one, json!(["a", "c"])), "$[1]");
    let ambiguous = json!({ "oneOf": [{ "type": "integer" }, { "type": "number" }] });
    assert_eq!(fails_at(&ambiguous, json!(1)), "$");
    let any = json!({ "anyOf": [{ "type": "integer" }, { "type": "number" }] });
    v.validate(&any, &json!(1)).unwrap();
    let time = json!({ "type": "string", "format": "date-time" });
    v.validate(&time, &json!("2024-05-01T10:00:00.123456Z")).unwrap();
    assert_eq!(fails_at(&time, json!("2024-05-01 10:00")), "$");

    // Patterns are searched for, unanchored unless anchored.
    for (pattern, text, expected) in [
        ("^(OPEN|CLOSED)$", "OPEN", true),
        ("^(OPEN|CLOSED)$", "OPENED", false),
        ("^(OPEN|CLOSED)$", "open", false),
        ("b+", "abbbc", true),
        ("^[a-z_][a-z0-9_]*$", "validation_error", true),
        ("^[a-z_][a-z0-9_]*$", "Validation", false),
        ("^\\d{4}-\\d{2}(-\\d{2})?$", "2024-05", true),
        ("^\\d{4}-\\d{2}(-\\d{2})?$", "2024-5", false),
        ("^[^\\s]{1,3}$", "abc", true),
        ("^[^\\s]{1,3}$", "a c", false),
        ("^(?:a|ab)c$", "abc", true),
        ("x.z", "x\ny xyz", true),
    ] {
        let re = Regex::parse(pattern).unwrap();
        assert_eq!(re.is_match(text), expected, "{pattern:?} on {text:?}");
    }
    assert!(Regex::parse("\\bword").is_err(), "unsupported syntax is refused");
    assert!(Regex::parse("(a").is_err());
}

/// Where `v` rejects `value`; panics if it accepts it.
fn rejection_path<'d>(v: &Validator<'d>, schema: &'d Value, value: &Value) -> String {
    v.validate(schema, value).err().unwrap_or_else(|| panic!("{value} was accepted by {schema}")).path
}

// ---------------------------------------------------------------------------
// Driving the server.

/// One real response and where the document should describe it.
#[derive(Debug, Clone)]
struct Case {
    name: String,
    route: &'static str,
    method: Method,
    status: u16,
    content_type: Option<String>,
    body: Value,
    /// Validated only if the document lists it (405, 5xx).
    probe: bool,
}

#[derive(Default)]
struct Cases(Vec<Case>);

impl Cases {
    fn push(&mut self, name: &str, route: &'static str, method: Method, resp: &Resp, probe: bool) {
        self.0.push(Case {
            name: name.to_owned(),
            route,
            method,
            status: resp.status,
            content_type: resp.header("content-type").map(str::to_owned),
            body: resp.body.clone(),
            probe,
        });
    }

    #[track_caller]
    fn ok(&mut self, name: &str, route: &'static str, method: Method, resp: &Resp, status: u16) {
        assert_eq!(resp.status, status, "{name}: {}", resp.body);
        assert_eq!(resp.body["success"], true, "{name}: {}", resp.body);
        self.push(name, route, method, resp, false);
    }

    #[track_caller]
    fn error(&mut self, name: &str, route: &'static str, method: Method, resp: &Resp, status: u16, code: &str) {
        resp.assert_error(status, code);
        self.push(name, route, method, resp, false);
    }

    /// A response the document may leave out.
    #[track_caller]
    fn probe(&mut self, name: &str, route: &'static str, method: Method, resp: &Resp, code: &str) {
        resp.assert_error(resp.status, code);
        self.push(name, route, method, resp, true);
    }
}

async fn fetch_document(app: &TestApp, prefix: &str) -> Value {
    let url = format!("http://{}{prefix}/openapi.json", app.addr);
    let r = app.raw(app.client.get(url)).await;
    assert_eq!(r.status, 200, "{prefix}/openapi.json: {}", r.body);
    assert_eq!(r.header("content-type"), Some(JSON));
    r.body
}

/// Drives the server to every response the routes can give.
async fn collect_real_bodies(app: &TestApp) -> Vec<Case> {
    let agent = User::agent(1);
    let member = User::member(100, 12);
    let outsider = User::outsider(300, 12);
    let unknown = uuid::Uuid::now_v7();
    let expired = agent.token_with(|c| {
        c.iat -= 120;
        c.exp = c.iat + 60;
    });
    let big = "x".repeat(20 * 1024);
    let mut c = Cases::default();

    // POST /sessions.
    let r = app.post(SESSIONS, &member, 12, None).await;
    assert!(r.data().get("agent_id").is_none(), "{}", r.body);
    c.ok(QUEUED_SESSION, SESSIONS, Method::POST, &r, 201);
    let queued = r.id();
    let r = app.post(SESSIONS, &member, 12, None).await;
    let name = "a second open session of the tenant";
    c.error(name, SESSIONS, Method::POST, &r, 400, "session_already_active");
    let r = app.post(SESSIONS, &agent, 14, Some(json!({ "agent_id": "seven" }))).await;
    let name = "agent_id of the wrong type";
    c.error(name, SESSIONS, Method::POST, &r, 400, "validation_error");
    let r = app.post(SESSIONS, &agent, 14, Some(json!({ "agent_id": 0 }))).await;
    c.error("agent_id zero", SESSIONS, Method::POST, &r, 400, "validation_error");
    let req = app.client.post(app.url(SESSIONS)).header("X-Tenant-ID", "12");
    let r = app.raw(req).await;
    c.error("no token", SESSIONS, Method::POST, &r, 401, "unauthorized");
    let r = app.post(SESSIONS, &outsider, 12, None).await;
    let name = "a role outside the allowlist";
    c.error(name, SESSIONS, Method::POST, &r, 403, "forbidden");
    let r = app.post(SESSIONS, &User::member(101, 15), 15, Some(json!({ "agent_id": 1 }))).await;
    let name = "a tenant user naming an agent";
    c.error(name, SESSIONS, Method::POST, &r, 403, "forbidden");
    let r = app.post(SESSIONS, &agent, 21, Some(json!({ "agent_id": 3 }))).await;
    let name = "an agent naming an offline agent";
    c.error(name, SESSIONS, Method::POST, &r, 400, "agent_offline");
    let r = app.post(SESSIONS, &agent, 16, Some(json!({ "note": big }))).await;
    let name = "a body over the limit";
    c.error(name, SESSIONS, Method::POST, &r, 413, "payload_too_large");
    let req = app
        .client
        .post(app.url(SESSIONS))
        .bearer_auth(agent.token())
        .header("X-Tenant-ID", "16")
        .header("Content-Type", "text/plain")
        .body("{}");
    let r = app.raw(req).await;
    let name = "a text/plain body";
    c.error(name, SESSIONS, Method::POST, &r, 415, "unsupported_media_type");

    // POST /sessions/{id}/close.
    let close = format!("/sessions/{queued}/close");
    let r = app.post(&close, &agent, 12, None).await;
    assert!(r.data()["closed_at"].is_string(), "{}", r.body);
    c.ok(CLOSED_SESSION, CLOSE, Method::POST, &r, 200);
    let r = app.post(&close, &agent, 12, None).await;
    c.ok("an agent closes it again", CLOSE, Method::POST, &r, 200);
    let r = app.post("/sessions/not-a-uuid/close", &agent, 12, None).await;
    c.error("a malformed id", CLOSE, Method::POST, &r, 400, "validation_error");
    let req = app.client.post(app.url(&close)).header("Authorization", "Bearer not-a-jwt").header("X-Tenant-ID", "12");
    let r = app.raw(req).await;
    c.error("a malformed token", CLOSE, Method::POST, &r, 401, "unauthorized");
    let r = app.post(&close, &member, 12, None).await;
    let name = "a tenant user closes a session";
    c.error(name, CLOSE, Method::POST, &r, 403, "forbidden");
    let r = app.post(&format!("/sessions/{unknown}/close"), &agent, 12, None).await;
    c.error("an unknown session", CLOSE, Method::POST, &r, 404, "not_found");

    // GET /sessions/{id}.
    let r = app.post(SESSIONS, &agent, 12, Some(json!({}))).await;
    assert_eq!(r.data()["agent_id"], 1, "{}", r.body);
    c.ok(AGENT_SESSION, SESSIONS, Method::POST, &r, 201);
    let session = r.id();
    let one = format!("/sessions/{session}");
    let r = app.get(&one, &member, 12).await;
    c.ok("an open session by id", SESSION, Method::GET, &r, 200);
    let r = app.get(&format!("/sessions/{queued}"), &agent, 12).await;
    c.ok("a closed session by id", SESSION, Method::GET, &r, 200);
    let r = app.get("/sessions/not-a-uuid", &agent, 12).await;
    c.error("a malformed id", SESSION, Method::GET, &r, 400, "validation_error");
    let req = app.client.get(app.url(&one)).bearer_auth(&expired).header("X-Tenant-ID", "12");
    let r = app.raw(req).await;
    c.error("an expired token", SESSION, Method::GET, &r, 401, "unauthorized");
    let r = app.get(&one, &outsider, 12).await;
    let name = "a role outside the allowlist";
    c.error(name, SESSION, Method::GET, &r, 403, "forbidden");
    let r = app.get(&format!("/sessions/{unknown}"), &agent, 12).await;
    c.error("an unknown session", SESSION, Method::GET, &r, 404, "not_found");
    let r = app.get(&one, &agent, 13).await;
    c.error("another tenant's session", SESSION, Method::GET, &r, 404, "not_found");

    // GET /sessions.
    let r = app.get("/sessions?limit=1", &agent, 12).await;
    let next = r.body["meta"]["pagination"]["next_cursor"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("two sessions, limit 1: no next_cursor in {}", r.body));
    c.ok(SESSIONS_PAGE, SESSIONS, Method::GET, &r, 200);
    let r = app.get(&format!("/sessions?limit=1&cursor={next}"), &agent, 12).await;
    assert!(r.body["meta"]["pagination"]["prev_cursor"].is_string(), "{}", r.body);
    c.ok("a second page of sessions", SESSIONS, Method::GET, &r, 200);
    let r = app.get("/sessions?status=CLOSED", &agent, 12).await;
    c.ok("closed sessions", SESSIONS, Method::GET, &r, 200);
    let r = app.get(SESSIONS, &User::member(101, 17), 17).await;
    assert_eq!(r.data(), &json!([]), "{}", r.body);
    c.ok("no sessions", SESSIONS, Method::GET, &r, 200);
    let r = app.get("/sessions?limit=0&direction=sideways", &agent, 12).await;
    let name = "two bad query parameters";
    c.error(name, SESSIONS, Method::GET, &r, 400, "validation_error");
    let req = app.client.get(app.url(SESSIONS)).bearer_auth(agent.token());
    let r = app.raw(req).await;
    let name = "no X-Tenant-ID header";
    c.error(name, SESSIONS, Method::GET, &r, 400, "validation_error");
    let req = app.client.get(app.url(SESSIONS)).header("X-Tenant-ID", "12");
    let r = app.raw(req).await;
    c.error("no token", SESSIONS, Method::GET, &r, 401, "unauthorized");
    let r = app.get(SESSIONS, &outsider, 12).await;
    let name = "a role outside the allowlist";
    c.error(name, SESSIONS, Method::GET, &r, 403, "forbidden");

    // POST /sessions/{id}/messages.
    let messages = format!("/sessions/{session}/messages");
    let r = app.send(&session, &member, 12, "Halo, saya butuh bantuan").await;
    c.ok(MESSAGE_SENT, MESSAGES, Method::POST, &r, 201);
    let first_message = r.id();
    let r = app.send(&session, &agent, 12, "Halo! Ada yang bisa dibantu?").await;
    c.ok("an agent replies", MESSAGES, Method::POST, &r, 201);
    app.send(&session, &member, 12, "Saldo simpanan saya tidak muncul").await;
    let keyed = |key: &str, text: &str| {
        app.client
            .post(app.url(&messages))
            .bearer_auth(member.token())
            .header("X-Tenant-ID", "12")
            .header("Idempotency-Key", key)
            .json(&json!({ "message": text }))
    };
    let r = app.raw(keyed("retry-1", "Sudah saya cek")).await;
    let name = "a message with an idempotency key";
    c.ok(name, MESSAGES, Method::POST, &r, 201);
    let r = app.raw(keyed("retry-1", "Sudah saya cek")).await;
    assert_eq!(r.header("idempotent-replayed"), Some("true"));
    c.ok("a replayed retry", MESSAGES, Method::POST, &r, 201);
    let r = app.raw(keyed("retry-1", "Lain")).await;
    c.error(KEY_REUSED, MESSAGES, Method::POST, &r, 422, "idempotency_key_reused");
    let r = app.raw(keyed(&"k".repeat(256), "Terlalu panjang")).await;
    let name = "an idempotency key too long";
    c.error(name, MESSAGES, Method::POST, &r, 400, "validation_error");
    let r = app.post(&messages, &member, 12, Some(json!({ "message": "   " }))).await;
    c.error(BLANK_MESSAGE, MESSAGES, Method::POST, &r, 400, "validation_error");
    let r = app.post(&messages, &member, 12, None).await;
    c.error("no body", MESSAGES, Method::POST, &r, 400, "validation_error");
    let r = app.post(&messages, &member, 12, Some(json!({ "message": 5 }))).await;
    let name = "a message of the wrong type";
    c.error(name, MESSAGES, Method::POST, &r, 400, "validation_error");
    let r = app.post("/sessions/not-a-uuid/messages", &member, 12, Some(json!({ "message": "halo" }))).await;
    c.error("a malformed id", MESSAGES, Method::POST, &r, 400, "validation_error");
    let req = app.client.post(app.url(&messages)).header("X-Tenant-ID", "12").json(&json!({ "message": "halo" }));
    let r = app.raw(req).await;
    c.error("no token", MESSAGES, Method::POST, &r, 401, "unauthorized");
    let r = app.post(&messages, &outsider, 12, Some(json!({ "message": "halo" }))).await;
    let name = "a role outside the allowlist";
    c.error(name, MESSAGES, Method::POST, &r, 403, "forbidden");
    let r = app.post(&format!("/sessions/{unknown}/messages"), &member, 12, Some(json!({ "message": "halo" }))).await;
    c.error("an unknown session", MESSAGES, Method::POST, &r, 404, "not_found");
    let r = app.post(&format!("/sessions/{queued}/messages"), &member, 12, Some(json!({ "message": "halo" }))).await;
    c.error("a CLOSED session", MESSAGES, Method::POST, &r, 404, "not_found");
    let r = app.post(&messages, &member, 12, Some(json!({ "message": big }))).await;
    let name = "a body over the limit";
    c.error(name, MESSAGES, Method::POST, &r, 413, "payload_too_large");
    let req = app
        .client
        .post(app.url(&messages))
        .bearer_auth(member.token())
        .header("X-Tenant-ID", "12")
        .header("Content-Type", "text/plain")
        .body("Halo");
    let r = app.raw(req).await;
    let name = "a text/plain body";
    c.error(name, MESSAGES, Method::POST, &r, 415, "unsupported_media_type");

    // GET /sessions/{id}/messages.
    let r = app.get(&format!("{messages}?limit=2"), &member, 12).await;
    let next = r.body["meta"]["pagination"]["next_cursor"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("four messages, limit 2: no next_cursor in {}", r.body));
    c.ok(MESSAGES_PAGE, MESSAGES, Method::GET, &r, 200);
    let r = app.get(&format!("{messages}?limit=2&cursor={next}"), &member, 12).await;
    assert!(r.body["meta"]["pagination"]["prev_cursor"].is_string(), "{}", r.body);
    c.ok("an older page of messages", MESSAGES, Method::GET, &r, 200);
    let r = app.get(&format!("{messages}?term=saldo"), &agent, 12).await;
    c.ok("messages found by a term", MESSAGES, Method::GET, &r, 200);
    let r = app.get(&format!("/sessions/{queued}/messages"), &agent, 12).await;
    assert_eq!(r.data(), &json!([]), "{}", r.body);
    c.ok("no messages", MESSAGES, Method::GET, &r, 200);
    let r = app.get(&format!("{messages}?start_date=yesterday"), &agent, 12).await;
    c.error("a bad start_date", MESSAGES, Method::GET, &r, 400, "validation_error");
    let req = app.client.get(app.url(&messages)).header("X-Tenant-ID", "12");
    let r = app.raw(req).await;
    c.error("no token", MESSAGES, Method::GET, &r, 401, "unauthorized");
    let r = app.get(&messages, &outsider, 12).await;
    let name = "a role outside the allowlist";
    c.error(name, MESSAGES, Method::GET, &r, 403, "forbidden");
    let r = app.get(&format!("/sessions/{unknown}/messages"), &agent, 12).await;
    c.error("an unknown session", MESSAGES, Method::GET, &r, 404, "not_found");

    // POST /sessions/{id}/read.
    let read = format!("/sessions/{session}/read");
    let mark = json!({ "message_id": first_message });
    let r = app.post(&read, &member, 12, Some(mark.clone())).await;
    c.ok(READ_MARK, READ, Method::POST, &r, 200);
    let r = app.post(&read, &member, 12, Some(mark.clone())).await;
    c.ok("a read mark that does not move", READ, Method::POST, &r, 200);
    let r = app.post(&read, &member, 12, Some(json!({ "message_id": "first" }))).await;
    c.error("a malformed message_id", READ, Method::POST, &r, 400, "validation_error");
    let r = app.post(&read, &member, 12, Some(json!({ "message_id": unknown }))).await;
    let name = "a message of another session";
    c.error(name, READ, Method::POST, &r, 400, "validation_error");
    let r = app.post(&read, &member, 12, None).await;
    c.error("no body", READ, Method::POST, &r, 400, "validation_error");
    let r = app.raw(anonymous(app, Method::POST, &read).json(&mark)).await;
    c.error("no token", READ, Method::POST, &r, 401, "unauthorized");
    let r = app.post(&read, &outsider, 12, Some(mark.clone())).await;
    let name = "a role outside the allowlist";
    c.error(name, READ, Method::POST, &r, 403, "forbidden");
    let r = app.post(&format!("/sessions/{unknown}/read"), &member, 12, Some(mark)).await;
    c.error("an unknown session", READ, Method::POST, &r, 404, "not_found");
    let r = app.post(&read, &member, 12, Some(json!({ "message_id": big }))).await;
    c.error("a body over the limit", READ, Method::POST, &r, 413, "payload_too_large");
    let r = app.raw(plain_text(app, Method::POST, &read, &member, 12)).await;
    let name = "a text/plain body";
    c.error(name, READ, Method::POST, &r, 415, "unsupported_media_type");

    // GET /agent/sessions: X-Tenant-ID is optional.
    let inbox = |user: &User| app.client.get(app.url(INBOX)).bearer_auth(user.token());
    let r = app.raw(inbox(&agent)).await;
    assert!(r.data().as_array().is_some_and(|a| !a.is_empty()), "the agent's open session is in its inbox: {}", r.body);
    c.ok(INBOX_PAGE, INBOX, Method::GET, &r, 200);
    let r = app.raw(inbox(&agent).query(&[("limit", "1")])).await;
    c.ok("a first page of the inbox", INBOX, Method::GET, &r, 200);
    let r = app.get(INBOX, &agent, 12).await;
    c.ok("the inbox in one tenant", INBOX, Method::GET, &r, 200);
    let r = app.raw(inbox(&agent).query(&[("limit", "0")])).await;
    c.error("a bad limit", INBOX, Method::GET, &r, 400, "validation_error");
    let r = app.raw(anonymous(app, Method::GET, INBOX)).await;
    c.error("no token", INBOX, Method::GET, &r, 401, "unauthorized");
    let r = app.raw(inbox(&member)).await;
    c.error("a tenant user", INBOX, Method::GET, &r, 403, "forbidden");

    // A queued session to claim, opened while no agent is online.
    let r = app.post(SESSIONS, &User::member(102, 20), 20, None).await;
    assert!(r.data().get("agent_id").is_none(), "{}", r.body);
    let waiting = r.id();

    // PUT /agents/me/presence: X-Tenant-ID is optional.
    let presence = |user: &User, body: Value| app.client.put(app.url(PRESENCE)).bearer_auth(user.token()).json(&body);
    let other_agent = User::agent(2);
    let r = app.raw(presence(&other_agent, json!({ "status": "online" }))).await;
    assert!(r.data()["expires_at"].is_string(), "{}", r.body);
    c.ok("an agent goes online", PRESENCE, Method::PUT, &r, 200);
    let r = app.raw(presence(&other_agent, json!({ "status": "away" }))).await;
    c.error("an unknown status", PRESENCE, Method::PUT, &r, 400, "validation_error");
    let req = app.client.put(app.url(PRESENCE)).bearer_auth(other_agent.token());
    let r = app.raw(req).await;
    c.error("no body", PRESENCE, Method::PUT, &r, 400, "validation_error");
    let r = app.raw(anonymous(app, Method::PUT, PRESENCE).json(&json!({ "status": "online" }))).await;
    c.error("no token", PRESENCE, Method::PUT, &r, 401, "unauthorized");
    let r = app.call(Method::PUT, PRESENCE, &member, 12, Some(json!({ "status": "online" }))).await;
    c.error("a tenant user", PRESENCE, Method::PUT, &r, 403, "forbidden");
    let r = app.raw(presence(&other_agent, json!({ "status": big }))).await;
    let name = "a body over the limit";
    c.error(name, PRESENCE, Method::PUT, &r, 413, "payload_too_large");
    let r = app.raw(plain_text(app, Method::PUT, PRESENCE, &other_agent, 12)).await;
    let name = "a text/plain body";
    c.error(name, PRESENCE, Method::PUT, &r, 415, "unsupported_media_type");

    // POST /sessions/{id}/claim.
    let claim = format!("/sessions/{waiting}/claim");
    let r = app.post(&claim, &agent, 20, None).await;
    assert_eq!(r.data()["agent_id"], 1, "{}", r.body);
    c.ok("an agent claims a queued session", CLAIM, Method::POST, &r, 200);
    let r = app.post(&claim, &agent, 20, None).await;
    c.ok("an agent claims it again", CLAIM, Method::POST, &r, 200);
    let r = app.post("/sessions/not-a-uuid/claim", &agent, 20, None).await;
    c.error("a malformed id", CLAIM, Method::POST, &r, 400, "validation_error");
    let r = app.raw(anonymous(app, Method::POST, &claim)).await;
    c.error("no token", CLAIM, Method::POST, &r, 401, "unauthorized");
    let r = app.post(&claim, &User::member(102, 20), 20, None).await;
    c.error("a tenant user", CLAIM, Method::POST, &r, 403, "forbidden");
    let r = app.post(&format!("/sessions/{queued}/claim"), &agent, 12, None).await;
    c.error("a CLOSED session", CLAIM, Method::POST, &r, 404, "not_found");
    let r = app.post(&claim, &other_agent, 20, None).await;
    let name = "a session another agent holds";
    c.error(name, CLAIM, Method::POST, &r, 409, "session_already_assigned");

    // POST /sessions/{id}/transfer.
    let transfer = format!("/sessions/{waiting}/transfer");
    let r = app.post(&transfer, &agent, 20, Some(json!({ "agent_id": 2 }))).await;
    assert_eq!(r.data()["agent_id"], 2, "{}", r.body);
    c.ok("a session handed to an online agent", TRANSFER, Method::POST, &r, 200);
    let r = app.post(&transfer, &agent, 20, Some(json!({ "agent_id": 3 }))).await;
    c.error("an offline agent", TRANSFER, Method::POST, &r, 400, "agent_offline");
    let r = app.post(&transfer, &agent, 20, Some(json!({ "agent_id": "two" }))).await;
    let name = "agent_id of the wrong type";
    c.error(name, TRANSFER, Method::POST, &r, 400, "validation_error");
    let r = app.post(&transfer, &agent, 20, None).await;
    c.error("no body", TRANSFER, Method::POST, &r, 400, "validation_error");
    let r = app.raw(anonymous(app, Method::POST, &transfer).json(&json!({ "agent_id": 2 }))).await;
    c.error("no token", TRANSFER, Method::POST, &r, 401, "unauthorized");
    let r = app.post(&transfer, &User::member(102, 20), 20, Some(json!({ "agent_id": 2 }))).await;
    c.error("a tenant user", TRANSFER, Method::POST, &r, 403, "forbidden");
    let r = app.post(&format!("/sessions/{unknown}/transfer"), &agent, 20, Some(json!({ "agent_id": 2 }))).await;
    c.error("an unknown session", TRANSFER, Method::POST, &r, 404, "not_found");
    let r = app.post(&transfer, &agent, 20, Some(json!({ "agent_id": 2, "note": big }))).await;
    let name = "a body over the limit";
    c.error(name, TRANSFER, Method::POST, &r, 413, "payload_too_large");
    let r = app.raw(plain_text(app, Method::POST, &transfer, &agent, 20)).await;
    let name = "a text/plain body";
    c.error(name, TRANSFER, Method::POST, &r, 415, "unsupported_media_type");

    let r = app.raw(presence(&other_agent, json!({ "status": "offline" }))).await;
    assert!(r.data().get("expires_at").is_none(), "{}", r.body);
    c.ok("an agent goes offline", PRESENCE, Method::PUT, &r, 200);

    // POST /realtime/tickets.
    let r = app.post(TICKETS, &agent, 12, None).await;
    c.ok(TICKET, TICKETS, Method::POST, &r, 201);
    let r = app.raw(app.client.post(app.url(TICKETS)).bearer_auth(agent.token())).await;
    let name = "no X-Tenant-ID header";
    c.error(name, TICKETS, Method::POST, &r, 400, "validation_error");
    let r = app.raw(anonymous(app, Method::POST, TICKETS)).await;
    c.error("no token", TICKETS, Method::POST, &r, 401, "unauthorized");
    let r = app.post(TICKETS, &outsider, 12, None).await;
    let name = "a role outside the allowlist";
    c.error(name, TICKETS, Method::POST, &r, 403, "forbidden");

    // 405 on every path, then 5xx on every operation once storage is gone:
    // validated only where the document lists them.
    let concrete = |route: &str| route.replace("{id}", &session);
    let paths: BTreeSet<&'static str> = OPERATIONS.iter().map(|o| o.path).collect();
    for route in paths {
        let r = app.call(Method::DELETE, &concrete(route), &agent, 12, None).await;
        assert_eq!(r.status, 405, "DELETE {route}: {}", r.body);
        c.probe("a method the path does not serve", route, Method::DELETE, &r, "method_not_allowed");
    }
    break_storage(app).await;
    for Operation { path: route, method, .. } in OPERATIONS {
        let path = concrete(route);
        let body = match (route, method) {
            (SESSIONS, "post") => Some(json!({})),
            (PRESENCE, _) => Some(json!({ "status": "online" })),
            (TRANSFER, _) => Some(json!({ "agent_id": 2 })),
            (MESSAGES, "post") => Some(json!({ "message": "halo" })),
            (READ, _) => Some(json!({ "message_id": unknown })),
            _ => None,
        };
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).expect("an HTTP method");
        let r = app.call(method.clone(), &path, &agent, 12, body).await;
        let code = match r.status {
            500 => "internal_error",
            503 => "storage_unavailable",
            other => panic!("{method} {path} without storage answered {other}: {}", r.body),
        };
        c.probe("storage gone", route, method, &r, code);
    }
    c.0
}

/// A request without a token.
fn anonymous(app: &TestApp, method: Method, path: &str) -> reqwest::RequestBuilder {
    app.client.request(method, app.url(path)).header("X-Tenant-ID", "12")
}

/// A request whose body is labelled `text/plain`.
fn plain_text(app: &TestApp, method: Method, path: &str, user: &User, tenant: i64) -> reqwest::RequestBuilder {
    app.client
        .request(method, app.url(path))
        .bearer_auth(user.token())
        .header("X-Tenant-ID", tenant.to_string())
        .header("Content-Type", "text/plain")
        .body("{}")
}

/// Drops every table under the running server.
async fn break_storage(app: &TestApp) {
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(app.db.url()).await.expect("open the test database");
    let tables: Vec<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
            .fetch_all(&mut conn)
            .await
            .expect("list tables");
    sqlx::Executor::execute(&mut conn, "PRAGMA foreign_keys = OFF").await.expect("foreign keys off");
    for table in tables {
        sqlx::Executor::execute(&mut conn, format!("DROP TABLE IF EXISTS \"{table}\"").as_str())
            .await
            .expect("drop table");
    }
}

/// The documented responses a real one answers to: `(method, status key,
/// response object)`. A 405 belongs to no operation, so it is looked up on
/// every operation of its path.
fn documented_responses<'d>(
    doc: &'d Value,
    route: &str,
    method: &Method,
    status: u16,
) -> Vec<(String, String, &'d Value)> {
    let item = &doc["paths"][route];
    let method = method.as_str().to_ascii_lowercase();
    let methods: Vec<String> = if item.get(&method).is_some() {
        vec![method]
    } else if status == 405 {
        HTTP_METHODS.iter().filter(|m| item.get(**m).is_some()).map(|m| (*m).to_owned()).collect()
    } else {
        Vec::new()
    };
    let exact = status.to_string();
    let range = format!("{}XX", status / 100);
    methods
        .into_iter()
        .filter_map(|m| {
            let responses = item[&m]["responses"].as_object()?;
            [exact.as_str(), range.as_str(), "default"]
                .into_iter()
                .find_map(|key| Some((m.clone(), key.to_owned(), responses.get(key)?)))
        })
        .collect()
}

/// Every `(path, method)` the document lists.
fn documented_operations(doc: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        for method in HTTP_METHODS.into_iter().filter(|m| item.get(*m).is_some()) {
            out.push((path.clone(), method.to_owned()));
        }
    }
    out
}

/// A documented path with every `{param}` filled with a fresh UUID.
fn concrete_path(path: &str) -> String {
    let fill = |segment: &str| {
        if segment.starts_with('{') && segment.ends_with('}') {
            uuid::Uuid::now_v7().to_string()
        } else {
            segment.to_owned()
        }
    };
    path.split('/').map(fill).collect::<Vec<_>>().join("/")
}

/// Every `(path, method, status key)` the document lists.
fn documented_statuses(doc: &Value) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        for method in HTTP_METHODS {
            for (status, _) in item[method]["responses"].as_object().into_iter().flatten() {
                out.push((path.clone(), method.to_owned(), status.clone()));
            }
        }
    }
    out
}

fn remove(object: &mut Value, key: &str) {
    let removed = object.as_object_mut().and_then(|o| o.remove(key));
    assert!(removed.is_some(), "no {key:?} to remove in {object}");
}

// ---------------------------------------------------------------------------
// The validator.

/// The first place a value breaks its schema.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Mismatch {
    /// A JSON path into the body: `$.data[0].id`, `$.errors["Idempotency-Key"]`.
    path: String,
    reason: String,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at {}: {}", self.path, self.reason)
    }
}

type Checked = Result<(), Mismatch>;

fn mismatch(path: &str, reason: impl Into<String>) -> Checked {
    Err(Mismatch { path: path.to_owned(), reason: reason.into() })
}

fn member_path(path: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && !key.starts_with(|c: char| c.is_ascii_digit())
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if plain { format!("{path}.{key}") } else { format!("{path}[{}]", Value::from(key)) }
}

/// Deeper than any schema here; stops `$ref` cycles.
const MAX_DEPTH: usize = 64;

/// Whether the schema being checked also checks undeclared properties, or
/// leaves that to an enclosing schema that knows every `allOf` branch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Undeclared {
    Check,
    Deferred,
}

/// What an object schema declares, through `$ref` and `allOf`.
#[derive(Default)]
struct Shape<'d> {
    names: BTreeSet<&'d str>,
    /// `additionalProperties`, if any level sets it.
    others: Option<&'d Value>,
    /// Whether any level describes an object (`type: object` or `properties`).
    object: bool,
}

/// JSON Schema checks against the schemas of one OpenAPI document.
struct Validator<'d> {
    doc: &'d Value,
}

impl<'d> Validator<'d> {
    fn validate(&self, schema: &'d Value, value: &Value) -> Checked {
        self.check(schema, value, "$", Undeclared::Check, 0)
    }

    fn check(&self, schema: &'d Value, value: &Value, at: &str, undeclared: Undeclared, depth: usize) -> Checked {
        if depth > MAX_DEPTH {
            return mismatch(at, "schemas nest too deep (a `$ref` cycle?)");
        }
        let rules = match schema {
            Value::Bool(true) => return Ok(()),
            Value::Bool(false) => return mismatch(at, "the schema is `false`"),
            Value::Object(rules) => rules,
            other => return mismatch(at, format!("not a schema: {other}")),
        };
        // `$ref` (its siblings apply too, in 3.1) and `allOf` all apply.
        for part in self.conjuncts(rules, at)? {
            self.check(part, value, at, Undeclared::Deferred, depth + 1)?;
        }
        check_type(rules, value, at)?;
        if let Some(allowed) = rules.get("enum").and_then(Value::as_array) {
            if !allowed.contains(value) {
                return mismatch(at, format!("{value} is not one of {}", rules["enum"]));
            }
        }
        if let Some(expected) = rules.get("const") {
            if expected != value {
                return mismatch(at, format!("{value} is not {expected}"));
            }
        }
        match value {
            Value::String(s) => check_string(rules, s, at)?,
            Value::Number(n) => check_number(rules, n, at)?,
            Value::Array(items) => self.check_array(rules, items, at, depth)?,
            Value::Object(fields) => self.check_object(rules, fields, at, undeclared, depth)?,
            Value::Null | Value::Bool(_) => {}
        }
        self.check_choices(rules, value, at, depth)
    }

    fn resolve(&self, reference: &Value, at: &str) -> Result<&'d Value, Mismatch> {
        reference.as_str().and_then(|r| r.strip_prefix('#')).and_then(|pointer| self.doc.pointer(pointer)).ok_or_else(
            || Mismatch { path: at.to_owned(), reason: format!("`$ref` {reference} does not resolve in the document") },
        )
    }

    fn conjuncts(&self, rules: &'d Map<String, Value>, at: &str) -> Result<Vec<&'d Value>, Mismatch> {
        let mut parts = Vec::new();
        if let Some(reference) = rules.get("$ref") {
            parts.push(self.resolve(reference, at)?);
        }
        if let Some(all) = rules.get("allOf") {
            let all = all
                .as_array()
                .ok_or_else(|| Mismatch { path: at.to_owned(), reason: "`allOf` is not an array".to_owned() })?;
            parts.extend(all);
        }
        Ok(parts)
    }

    fn shape(&self, rules: &'d Map<String, Value>, shape: &mut Shape<'d>, at: &str, depth: usize) -> Checked {
        if depth > MAX_DEPTH {
            return mismatch(at, "schemas nest too deep (a `$ref` cycle?)");
        }
        if let Some(properties) = rules.get("properties").and_then(Value::as_object) {
            shape.names.extend(properties.keys().map(String::as_str));
            shape.object = true;
        }
        if type_names(rules).is_some_and(|names| names.contains(&"object")) {
            shape.object = true;
        }
        if let Some(others) = rules.get("additionalProperties") {
            if shape.others.is_none_or(|o| o.as_bool() == Some(false)) {
                shape.others = Some(others);
            }
        }
        for part in self.conjuncts(rules, at)? {
            if let Value::Object(part) = part {
                self.shape(part, shape, at, depth + 1)?;
            }
        }
        Ok(())
    }

    fn check_object(
        &self,
        rules: &'d Map<String, Value>,
        fields: &Map<String, Value>,
        at: &str,
        undeclared: Undeclared,
        depth: usize,
    ) -> Checked {
        for name in rules.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str) {
            if !fields.contains_key(name) {
                return mismatch(&member_path(at, name), "required property is missing");
            }
        }
        if let Some(names) = rules.get("propertyNames") {
            for name in fields.keys() {
                let here = member_path(at, name);
                self.check(names, &Value::from(name.as_str()), &here, Undeclared::Check, depth + 1)
                    .map_err(|m| Mismatch { reason: format!("property name: {}", m.reason), ..m })?;
            }
        }
        let properties = rules.get("properties").and_then(Value::as_object);
        let mut shape = Shape::default();
        if undeclared == Undeclared::Check {
            self.shape(rules, &mut shape, at, depth)?;
        }
        for (name, value) in fields {
            let here = member_path(at, name);
            if let Some(schema) = properties.and_then(|p| p.get(name)) {
                self.check(schema, value, &here, Undeclared::Check, depth + 1)?;
            } else if undeclared == Undeclared::Deferred || shape.names.contains(name.as_str()) {
                // Checked by the schema that declares it, or by the caller.
            } else if let Some(others) = shape.others {
                if others.as_bool() == Some(false) {
                    return mismatch(&here, "property not allowed (`additionalProperties: false`)");
                }
                self.check(others, value, &here, Undeclared::Check, depth + 1)?;
            } else if shape.object {
                return mismatch(
                    &here,
                    "property not declared by the schema (document it, or allow `additionalProperties`)",
                );
            }
        }
        Ok(())
    }

    fn check_array(&self, rules: &'d Map<String, Value>, items: &[Value], at: &str, depth: usize) -> Checked {
        let count = items.len() as f64;
        if rules.get("minItems").and_then(Value::as_f64).is_some_and(|min| count < min) {
            return mismatch(at, format!("{count} items, fewer than minItems {}", rules["minItems"]));
        }
        if rules.get("maxItems").and_then(Value::as_f64).is_some_and(|max| count > max) {
            return mismatch(at, format!("{count} items, more than maxItems {}", rules["maxItems"]));
        }
        if let Some(schema) = rules.get("items") {
            for (i, item) in items.iter().enumerate() {
                self.check(schema, item, &format!("{at}[{i}]"), Undeclared::Check, depth + 1)?;
            }
        }
        Ok(())
    }

    fn check_choices(&self, rules: &'d Map<String, Value>, value: &Value, at: &str, depth: usize) -> Checked {
        let run = |keyword: &str| -> Option<Vec<Checked>> {
            let branches = rules.get(keyword)?.as_array()?;
            Some(branches.iter().map(|b| self.check(b, value, at, Undeclared::Check, depth + 1)).collect())
        };
        if let Some(results) = run("oneOf") {
            match results.iter().filter(|r| r.is_ok()).count() {
                1 => {}
                0 => return Err(closest("oneOf", at, results)),
                n => return mismatch(at, format!("matches {n} `oneOf` branches, not exactly one")),
            }
        }
        if let Some(results) = run("anyOf") {
            if !results.iter().any(Result::is_ok) {
                return Err(closest("anyOf", at, results));
            }
        }
        if let Some(not) = rules.get("not") {
            if self.check(not, value, at, Undeclared::Check, depth + 1).is_ok() {
                return mismatch(at, format!("matches the `not` schema {not}"));
            }
        }
        Ok(())
    }
}

/// The failure of the branch that got furthest into the value.
fn closest(keyword: &str, at: &str, results: Vec<Checked>) -> Mismatch {
    results.into_iter().filter_map(Result::err).max_by_key(|m| m.path.len()).map_or_else(
        || Mismatch { path: at.to_owned(), reason: format!("`{keyword}` has no branches") },
        |m| Mismatch { reason: format!("no `{keyword}` branch matches; closest: {}", m.reason), ..m },
    )
}

fn type_names(rules: &Map<String, Value>) -> Option<Vec<&str>> {
    match rules.get("type")? {
        Value::String(name) => Some(vec![name.as_str()]),
        Value::Array(names) => Some(names.iter().filter_map(Value::as_str).collect()),
        _ => Some(Vec::new()),
    }
}

fn check_type(rules: &Map<String, Value>, value: &Value, at: &str) -> Checked {
    let Some(names) = type_names(rules) else {
        return Ok(());
    };
    let fits = |name: &&str| match (*name, value) {
        ("null", Value::Null)
        | ("boolean", Value::Bool(_))
        | ("object", Value::Object(_))
        | ("array", Value::Array(_))
        | ("string", Value::String(_))
        | ("number", Value::Number(_)) => true,
        ("integer", Value::Number(n)) => is_integer(n),
        _ => false,
    };
    if names.iter().any(fits) {
        return Ok(());
    }
    let found = match value {
        Value::Null => return mismatch(at, format!("expected {}, found null", names.join(" or "))),
        Value::Bool(_) => "a boolean",
        Value::Number(n) if is_integer(n) => "an integer",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    };
    mismatch(at, format!("expected {}, found {found}: {value}", names.join(" or ")))
}

fn is_integer(n: &serde_json::Number) -> bool {
    n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
}

fn check_string(rules: &Map<String, Value>, s: &str, at: &str) -> Checked {
    let length = s.chars().count() as f64;
    if rules.get("minLength").and_then(Value::as_f64).is_some_and(|min| length < min) {
        return mismatch(at, format!("{s:?} is shorter than minLength {}", rules["minLength"]));
    }
    if rules.get("maxLength").and_then(Value::as_f64).is_some_and(|max| length > max) {
        return mismatch(at, format!("{s:?} is longer than maxLength {}", rules["maxLength"]));
    }
    let format = rules.get("format").and_then(Value::as_str);
    let valid = match format {
        Some("uuid") => s.len() == 36 && uuid::Uuid::parse_str(s).is_ok(),
        Some("date-time") => time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).is_ok(),
        _ => true,
    };
    if !valid {
        return mismatch(at, format!("{s:?} is not a {}", format.unwrap_or_default()));
    }
    if let Some(pattern) = rules.get("pattern").and_then(Value::as_str) {
        let regex = Regex::parse(pattern).map_err(|e| Mismatch {
            path: at.to_owned(),
            reason: format!("pattern {pattern:?} is beyond this validator: {e}"),
        })?;
        if !regex.is_match(s) {
            return mismatch(at, format!("{s:?} does not match the pattern {pattern:?}"));
        }
    }
    Ok(())
}

fn check_number(rules: &Map<String, Value>, n: &serde_json::Number, at: &str) -> Checked {
    let fits = match rules.get("format").and_then(Value::as_str) {
        Some("int32") => n.as_i64().is_some_and(|i| i32::try_from(i).is_ok()),
        Some("int64") => n.as_i64().is_some(),
        _ => true,
    };
    if !fits {
        return mismatch(at, format!("{n} does not fit the format {}", rules["format"]));
    }
    let Some(x) = n.as_f64() else {
        return Ok(());
    };
    let bound = |key: &str| rules.get(key).and_then(Value::as_f64);
    let broken = [
        ("minimum", bound("minimum").is_some_and(|b| x < b)),
        ("maximum", bound("maximum").is_some_and(|b| x > b)),
        ("exclusiveMinimum", bound("exclusiveMinimum").is_some_and(|b| x <= b)),
        ("exclusiveMaximum", bound("exclusiveMaximum").is_some_and(|b| x >= b)),
    ]
    .into_iter()
    .find(|(_, broken)| *broken);
    match broken {
        Some((key, _)) => mismatch(at, format!("{n} is out of bounds ({key} {})", rules[key])),
        None => Ok(()),
    }
}

// ---------------------------------------------------------------------------
// `pattern`: a small backtracking regular expression matcher.

/// The subset of ECMA-262 regular expressions schemas here use: literals,
/// `.`, classes (`[a-z]`, `[^…]`, `\d \w \s` and their negations), groups
/// (`(…)`, `(?:…)`), `|`, `^ $` and the quantifiers `* + ? {n} {n,} {n,m}`.
/// Anything else is refused, so an unsupported pattern fails loudly instead
/// of passing silently.
#[derive(Debug)]
enum Regex {
    Literal(char),
    Any,
    Class { negated: bool, ranges: Vec<(char, char)> },
    Start,
    End,
    Sequence(Vec<Regex>),
    Alternation(Vec<Regex>),
    Repeat { node: Box<Regex>, min: usize, max: Option<usize> },
}

/// An escape: one character, or a class like `\d`.
enum Escaped {
    Char(char),
    Class { negated: bool, ranges: Vec<(char, char)> },
}

const DIGITS: [(char, char); 1] = [('0', '9')];
const WORD: [(char, char); 4] = [('a', 'z'), ('A', 'Z'), ('0', '9'), ('_', '_')];
const SPACE: [(char, char); 8] = [
    (' ', ' '),
    ('\t', '\r'),
    ('\u{a0}', '\u{a0}'),
    ('\u{1680}', '\u{1680}'),
    ('\u{2000}', '\u{200a}'),
    ('\u{2028}', '\u{2029}'),
    ('\u{202f}', '\u{202f}'),
    ('\u{feff}', '\u{feff}'),
];

struct Parser {
    chars: Vec<char>,
    pos: usize,
}

impl Regex {
    fn parse(pattern: &str) -> Result<Self, String> {
        let mut p = Parser { chars: pattern.chars().collect(), pos: 0 };
        let regex = p.alternation()?;
        match p.peek() {
            None => Ok(regex),
            Some(c) => Err(format!("unexpected {c:?} at {}", p.pos)),
        }
    }

    /// Whether the pattern matches somewhere in `text` (JSON Schema patterns
    /// are not implicitly anchored).
    fn is_match(&self, text: &str) -> bool {
        let chars: Vec<char> = text.chars().collect();
        (0..=chars.len()).any(|start| self.at(&chars, start, &mut |_| true))
    }

    /// Matches at `i`, then asks `then` whether the rest matches from where
    /// this match ends; backtracks into the alternatives `then` refuses.
    fn at(&self, s: &[char], i: usize, then: &mut dyn FnMut(usize) -> bool) -> bool {
        let one = |ok: bool| ok.then_some(i + 1);
        let step = match self {
            Self::Literal(c) => one(s.get(i) == Some(c)),
            Self::Any => one(s.get(i).is_some_and(|c| !matches!(c, '\n' | '\r' | '\u{2028}' | '\u{2029}'))),
            Self::Class { negated, ranges } => {
                one(s.get(i).is_some_and(|c| ranges.iter().any(|(lo, hi)| (lo..=hi).contains(&c)) != *negated))
            }
            Self::Start => (i == 0).then_some(i),
            Self::End => (i == s.len()).then_some(i),
            Self::Sequence(items) => return Self::sequence(items, s, i, then),
            Self::Alternation(branches) => return branches.iter().any(|b| b.at(s, i, then)),
            Self::Repeat { node, min, max } => return node.repeat(*min, *max, 0, s, i, then),
        };
        step.is_some_and(then)
    }

    fn sequence(items: &[Self], s: &[char], i: usize, then: &mut dyn FnMut(usize) -> bool) -> bool {
        match items.split_first() {
            None => then(i),
            Some((first, rest)) => first.at(s, i, &mut |j| Self::sequence(rest, s, j, then)),
        }
    }

    /// Greedy: one more repetition first, then stopping here.
    fn repeat(
        &self,
        min: usize,
        max: Option<usize>,
        count: usize,
        s: &[char],
        i: usize,
        then: &mut dyn FnMut(usize) -> bool,
    ) -> bool {
        let more = max.is_none_or(|max| count < max)
            && self.at(s, i, &mut |j| {
                // An empty repetition past the minimum would loop forever.
                (j > i || count < min) && self.repeat(min, max, count + 1, s, j, then)
            });
        more || (count >= min && then(i))
    }
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn eat(&mut self, c: char) -> bool {
        let found = self.peek() == Some(c);
        if found {
            self.pos += 1;
        }
        found
    }

    fn next(&mut self) -> Result<char, String> {
        let c = self.peek().ok_or("unexpected end of pattern")?;
        self.pos += 1;
        Ok(c)
    }

    fn alternation(&mut self) -> Result<Regex, String> {
        let mut branches = vec![self.sequence()?];
        while self.eat('|') {
            branches.push(self.sequence()?);
        }
        Ok(match branches.len() {
            1 => branches.remove(0),
            _ => Regex::Alternation(branches),
        })
    }

    fn sequence(&mut self) -> Result<Regex, String> {
        let mut items = Vec::new();
        while let Some(c) = self.peek() {
            if c == '|' || c == ')' {
                break;
            }
            let atom = self.atom()?;
            items.push(self.quantified(atom)?);
        }
        Ok(Regex::Sequence(items))
    }

    fn atom(&mut self) -> Result<Regex, String> {
        Ok(match self.next()? {
            '(' => {
                if self.eat('?') && !self.eat(':') {
                    return Err("only `(?:…)` groups are supported".to_owned());
                }
                let inner = self.alternation()?;
                if !self.eat(')') {
                    return Err("unclosed group".to_owned());
                }
                inner
            }
            '[' => self.class()?,
            '.' => Regex::Any,
            '^' => Regex::Start,
            '$' => Regex::End,
            '\\' => match self.escape()? {
                Escaped::Char(c) => Regex::Literal(c),
                Escaped::Class { negated, ranges } => Regex::Class { negated, ranges },
            },
            c @ ('*' | '+' | '?' | '{') => return Err(format!("nothing to repeat before {c:?}")),
            c => Regex::Literal(c),
        })
    }

    fn quantified(&mut self, atom: Regex) -> Result<Regex, String> {
        let (min, max) = match self.peek() {
            Some('*') => (0, None),
            Some('+') => (1, None),
            Some('?') => (0, Some(1)),
            Some('{') => {
                self.pos += 1;
                let min = self.number()?;
                let max = if self.eat(',') {
                    match self.peek() {
                        Some('}') => None,
                        _ => Some(self.number()?),
                    }
                } else {
                    Some(min)
                };
                if self.peek() != Some('}') || max.is_some_and(|max| max < min) {
                    return Err("malformed `{n,m}`".to_owned());
                }
                (min, max)
            }
            _ => return Ok(atom),
        };
        self.pos += 1;
        // A lazy quantifier matches the same strings.
        self.eat('?');
        Ok(Regex::Repeat { node: Box::new(atom), min, max })
    }

    fn number(&mut self) -> Result<usize, String> {
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        let digits: String = self.chars[start..self.pos].iter().collect();
        digits.parse().map_err(|_| "malformed `{n,m}`".to_owned())
    }

    fn class(&mut self) -> Result<Regex, String> {
        let negated = self.eat('^');
        let mut ranges = Vec::new();
        loop {
            let lo = match self.next().map_err(|_| "unclosed `[`")? {
                ']' => break,
                '\\' => match self.escape()? {
                    Escaped::Char(c) => c,
                    Escaped::Class { negated: false, ranges: more } => {
                        ranges.extend(more);
                        continue;
                    }
                    Escaped::Class { .. } => {
                        return Err("negated escapes inside `[…]` are not supported".to_owned());
                    }
                },
                c => c,
            };
            let is_range = self.peek() == Some('-') && self.chars.get(self.pos + 1).is_some_and(|c| *c != ']');
            if !is_range {
                ranges.push((lo, lo));
                continue;
            }
            self.pos += 1;
            let hi = match self.next()? {
                '\\' => match self.escape()? {
                    Escaped::Char(c) => c,
                    Escaped::Class { .. } => return Err("a class cannot end a range".to_owned()),
                },
                c => c,
            };
            if hi < lo {
                return Err(format!("range {lo:?}-{hi:?} out of order"));
            }
            ranges.push((lo, hi));
        }
        Ok(Regex::Class { negated, ranges })
    }

    fn escape(&mut self) -> Result<Escaped, String> {
        let class = |negated: bool, ranges: &[(char, char)]| Escaped::Class { negated, ranges: ranges.to_vec() };
        Ok(match self.next()? {
            'd' => class(false, &DIGITS),
            'D' => class(true, &DIGITS),
            'w' => class(false, &WORD),
            'W' => class(true, &WORD),
            's' => class(false, &SPACE),
            'S' => class(true, &SPACE),
            'n' => Escaped::Char('\n'),
            'r' => Escaped::Char('\r'),
            't' => Escaped::Char('\t'),
            'f' => Escaped::Char('\u{c}'),
            'v' => Escaped::Char('\u{b}'),
            'u' => Escaped::Char(self.hex(4)?),
            'x' => Escaped::Char(self.hex(2)?),
            c if !c.is_ascii_alphanumeric() => Escaped::Char(c),
            c => return Err(format!("unsupported escape `\\{c}`")),
        })
    }

    fn hex(&mut self, len: usize) -> Result<char, String> {
        let digits: String = (0..len).map(|_| self.next()).collect::<Result<_, _>>()?;
        u32::from_str_radix(&digits, 16)
            .ok()
            .and_then(char::from_u32)
            .ok_or_else(|| format!("bad hex escape {digits:?}"))
    }
}
