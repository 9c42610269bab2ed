//! The OpenAPI document against the server that serves it: the document is
//! fetched from `/api/livechat/openapi.json`, the server is driven to every
//! response the document lists (the shared corpus, `corpus.rs`), and each
//! real body is validated against the schema documented for its path, method
//! and status.
//!
//! Validation is JSON Schema 2020-12 by the `jsonschema` crate, with `format`
//! asserted, and `$ref`s resolved into the document's own `components`. The
//! test is stricter than the document about additive fields: a property a
//! body carries that its object schema does not declare is a mismatch unless
//! the schema allows `additionalProperties`, so a new response field must be
//! documented. That strictness is added to the test's copy of the schemas
//! (`unevaluatedProperties: false`), never to the served document. Bodies
//! broken on purpose must be rejected at the right place, so a green run
//! proves the check can fail.

use crate::corpus::{self, JSON, OPERATIONS, Operation, fetch_document};
use crate::helpers::{Backend, TestApp};
use jsonschema::error::ValidationErrorKind;
use jsonschema::{Draft, ValidationError};
use livechat::http::PREFIXES;
use reqwest::Method;
use serde_json::{Map, Value, json};
use std::collections::BTreeSet;
use std::fmt;

fn is_operation(path: &str, method: &str) -> bool {
    OPERATIONS.iter().any(|o| o.path == path && o.method == method)
}

/// Statuses any route can also answer with, which a document may list or not:
/// 405 on a known path, 429 over the rate limit, 500 on a bug, 503 when storage is unreachable,
/// 504 when a write's commit could not be confirmed in time (driven by `faults.rs`).
const GENERIC: [u16; 5] = [405, 429, 500, 503, 504];

const HTTP_METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

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
    // The tenant as a scheme too, so a generated client sets it once.
    let tenant = &doc["components"]["securitySchemes"]["tenant"];
    assert_eq!(
        (&tenant["type"], &tenant["in"], &tenant["name"]),
        (&json!("apiKey"), &json!("header"), &json!("X-Tenant-ID"))
    );

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
        // Each set of schemes an operation accepts; the tenant is in every
        // set where it is required, in one at least where it is optional.
        let sets: Vec<&Map<String, Value>> =
            op["security"].as_array().into_iter().flatten().filter_map(Value::as_object).collect();
        let with_tenant = sets.iter().filter(|s| s.contains_key("bearer") && s.contains_key("tenant")).count();
        let tenant_ok = if tenant_required { with_tenant == sets.len() && with_tenant > 0 } else { with_tenant > 0 };
        if !tenant_ok {
            problems.push(format!("{here}: `security` does not name `tenant` as X-Tenant-ID is: {}", op["security"]));
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
    let corpus = corpus::shared().await;
    let doc = &corpus.document;
    let schemas = Schemas::new(doc);

    let mut problems = Vec::new();
    let mut notes = Vec::new();
    let mut exercised = BTreeSet::new();
    let mut validated = 0;
    for case in &corpus.responses {
        let what = format!("{} ({} {} -> {})", case.name, case.method, case.route, case.status);
        let documented = documented_responses(doc, case.route, &case.method, case.status);
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
            if let Err(mismatch) = schemas.check(schema, &case.body) {
                problems.push(format!("{what}: {mismatch}\n    body: {}", case.body));
            }
        }
    }

    for (route, method, key) in documented_statuses(doc) {
        if !is_operation(&route, &method) {
            notes.push(format!("{} {route} -> {key}: documented, not driven by this test", method.to_uppercase()));
        } else if ["default", "503", "429", "504"].contains(&key.as_str()) {
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
    use corpus::{
        AGENT_SESSION, BLANK_MESSAGE, CLOSED_SESSION, INBOX_PAGE, KEY_REUSED, MESSAGE_SENT, MESSAGES_PAGE,
        QUEUED_SESSION, READ_MARK, SESSIONS_PAGE, TICKET,
    };
    let corpus = corpus::shared().await;
    let doc = &corpus.document;
    let schemas = Schemas::new(doc);

    let broken: [Breakage<'_>; 21] = [
        (AGENT_SESSION, "tenant_id a string", "/data/tenant_id", &|b| {
            b["data"]["tenant_id"] = json!("12");
        }),
        (AGENT_SESSION, "status missing", "/data/status", &|b| {
            remove(&mut b["data"], "status");
        }),
        (AGENT_SESSION, "status lower-case", "/data/status", &|b| {
            b["data"]["status"] = json!("open");
        }),
        (AGENT_SESSION, "agent_id a string", "/data/agent_id", &|b| {
            b["data"]["agent_id"] = json!("1");
        }),
        (AGENT_SESSION, "an undeclared property", "/data/priority", &|b| {
            b["data"]["priority"] = json!("high");
        }),
        (QUEUED_SESSION, "id not a UUID", "/data/id", &|b| {
            b["data"]["id"] = json!("session-1");
        }),
        (CLOSED_SESSION, "closed_at not a date-time", "/data/closed_at", &|b| {
            b["data"]["closed_at"] = json!("yesterday");
        }),
        (MESSAGE_SENT, "meta without request_id", "/meta/request_id", &|b| {
            remove(&mut b["meta"], "request_id");
        }),
        (MESSAGE_SENT, "an undeclared top-level property", "/trace", &|b| {
            b["trace"] = json!({});
        }),
        (MESSAGE_SENT, "sender_id a float", "/data/sender_id", &|b| {
            b["data"]["sender_id"] = json!(100.5);
        }),
        (MESSAGES_PAGE, "second item's sender_id a string", "/data/1/sender_id", &|b| {
            b["data"][1]["sender_id"] = json!("100");
        }),
        (MESSAGES_PAGE, "has_next a string", "/meta/pagination/has_next", &|b| {
            b["meta"]["pagination"]["has_next"] = json!("true");
        }),
        (MESSAGES_PAGE, "an undeclared pagination property", "/meta/pagination/total", &|b| {
            b["meta"]["pagination"]["total"] = json!(3);
        }),
        (SESSIONS_PAGE, "data an object", "/data", &|b| {
            b["data"] = json!({});
        }),
        (BLANK_MESSAGE, "errors as plain strings", "/errors/message", &|b| {
            b["errors"]["message"] = json!("is required");
        }),
        (BLANK_MESSAGE, "success a string", "/success", &|b| {
            b["success"] = json!("false");
        }),
        (BLANK_MESSAGE, "timestamp not a date-time", "/meta/timestamp", &|b| {
            b["meta"]["timestamp"] = json!("2024-13-45 25:61");
        }),
        (KEY_REUSED, "an error message a number", "/errors/Idempotency-Key/0", &|b| {
            b["errors"]["Idempotency-Key"][0] = json!(422);
        }),
        (READ_MARK, "read_at not a date-time", "/data/read_at", &|b| {
            b["data"]["read_at"] = json!("now");
        }),
        (INBOX_PAGE, "unread_count a string", "/data/0/unread_count", &|b| {
            b["data"][0]["unread_count"] = json!("2");
        }),
        (TICKET, "expires_at missing", "/data/expires_at", &|b| {
            remove(&mut b["data"], "expires_at");
        }),
    ];

    let mut problems = Vec::new();
    for (name, what, path, change) in broken {
        let case = corpus.named(name);
        let documented = documented_responses(doc, case.route, &case.method, case.status);
        let (_, _, response) = documented.first().unwrap_or_else(|| panic!("{name}: no documented response"));
        let schema = &response["content"][JSON]["schema"];
        if let Err(m) = schemas.check(schema, &case.body) {
            problems.push(format!("{name}: the real body is already rejected: {m}"));
            continue;
        }
        let mut body = case.body.clone();
        change(&mut body);
        match schemas.check(schema, &body) {
            Ok(()) => problems.push(format!("{name}, {what}: accepted\n    body: {body}")),
            Err(m) if m.path != path => {
                problems.push(format!("{name}, {what}: rejected at {} instead of {path} ({})", m.path, m.reason))
            }
            Err(m) => println!("{name}, {what}: rejected, {m}"),
        }
    }
    assert!(problems.is_empty(), "the validator cannot be trusted:\n  {}", problems.join("\n  "));
}

/// A real body by name, what is broken in it, the JSON pointer the validator
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
    let v = Schemas::new(&doc);
    let named = json!({ "$ref": "#/components/schemas/Named" });
    let fails_at = |schema: &Value, value: Value| rejection_path(&v, schema, &value);

    v.check(&named, &json!({ "name": "a" })).unwrap();
    assert_eq!(fails_at(&named, json!({})), "/name");
    assert_eq!(fails_at(&named, json!({ "name": "" })), "/name");
    assert_eq!(fails_at(&named, json!({ "name": "a", "x": 1 })), "/x");
    assert!(v.check(&json!({ "$ref": "#/components/schemas/Nope" }), &json!({})).is_err());

    // allOf: a property declared by any branch is declared.
    let both = json!({ "allOf": [named, { "type": "object", "properties": { "age": { "type": "integer" } } }] });
    v.check(&both, &json!({ "name": "a", "age": 3 })).unwrap();
    assert_eq!(fails_at(&both, json!({ "name": "a", "age": 3, "x": 1 })), "/x");
    assert_eq!(fails_at(&both, json!({ "name": "a", "age": 3.5 })), "/age");

    // additionalProperties: true allows anything, a schema checks the values.
    let loose = json!({ "$ref": "#/components/schemas/Loose" });
    v.check(&loose, &json!({ "anything": [1] })).unwrap();
    let map = json!({ "$ref": "#/components/schemas/Map" });
    v.check(&map, &json!({ "a": 1, "b b": 2 })).unwrap();
    assert_eq!(fails_at(&map, json!({ "b b": -1 })), "/b b");
    assert_eq!(fails_at(&map, json!({ "a": 4_294_967_296_u64 })), "/a");

    // Types, nullable unions, oneOf/anyOf, enum.
    let nullable = json!({ "type": ["string", "null"], "format": "uuid" });
    v.check(&nullable, &Value::Null).unwrap();
    v.check(&nullable, &json!("0190b6f2-7c1e-7d3a-9c4e-2b1f0a9d8e7c")).unwrap();
    assert_eq!(fails_at(&nullable, json!("0190b6f27c1e7d3a9c4e2b1f0a9d8e7c")), "");
    assert_eq!(fails_at(&nullable, json!(1)), "");
    let one = json!({ "oneOf": [{ "type": "null" }, { "type": "array", "items": { "enum": ["a", "b"] } }] });
    v.check(&one, &json!(["a", "b"])).unwrap();
    assert_eq!(fails_at(&one, json!(["a", "c"])), "/1");
    let ambiguous = json!({ "oneOf": [{ "type": "integer" }, { "type": "number" }] });
    assert_eq!(fails_at(&ambiguous, json!(1)), "");
    let any = json!({ "anyOf": [{ "type": "integer" }, { "type": "number" }] });
    v.check(&any, &json!(1)).unwrap();
    let time = json!({ "type": "string", "format": "date-time" });
    v.check(&time, &json!("2024-05-01T10:00:00.123456Z")).unwrap();
    assert_eq!(fails_at(&time, json!("2024-05-01 10:00")), "");

    // Patterns are ECMA-262, searched for, unanchored unless anchored.
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
        ("\\bword", "a word", true),
        ("\\bword", "swordfish", false),
    ] {
        let schema = json!({ "type": "string", "pattern": pattern });
        assert_eq!(v.check(&schema, &json!(text)).is_ok(), expected, "{pattern:?} on {text:?}");
    }
    let unclosed = v.check(&json!({ "pattern": "(a" }), &json!("a")).unwrap_err();
    assert!(unclosed.reason.contains("does not compile"), "a broken pattern is refused: {unclosed}");
}

/// Where `v` rejects `value`; panics if it accepts it.
fn rejection_path(v: &Schemas<'_>, schema: &Value, value: &Value) -> String {
    v.check(schema, value).err().unwrap_or_else(|| panic!("{value} was accepted by {schema}")).path
}

// ---------------------------------------------------------------------------
// Reading the document.

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
// The test's strict view of the document's schemas.

/// Where a body breaks its schema.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Mismatch {
    /// A JSON pointer into the body (`/data/0/id`, `""` for the body itself);
    /// a missing or undeclared property is pointed at by its own name.
    path: String,
    reason: String,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at {:?}: {}", self.path, self.reason)
    }
}

/// The schemas of one OpenAPI document, as strict as this test wants them.
struct Schemas<'d> {
    doc: &'d Value,
    /// The document's `components`, made strict, embedded in every schema
    /// compiled so that `#/components/...` references resolve.
    components: Value,
}

impl<'d> Schemas<'d> {
    fn new(doc: &'d Value) -> Self {
        let mut components = doc["components"].clone();
        if let Some(schemas) = components.get_mut("schemas").and_then(Value::as_object_mut) {
            // A component's root is a `$ref` target: the referring schema is
            // the one checked whole, and gets the strictness.
            for schema in schemas.values_mut() {
                *schema = strict(doc, schema, Checked::AsPart);
            }
        }
        Self { doc, components }
    }

    /// The first place `value` breaks `schema`.
    fn check(&self, schema: &Value, value: &Value) -> Result<(), Mismatch> {
        let mut root = match strict(self.doc, schema, Checked::Whole) {
            Value::Object(rules) => rules,
            other => Map::from_iter([("allOf".to_owned(), json!([other]))]),
        };
        root.insert("components".to_owned(), self.components.clone());
        let validator = jsonschema::options()
            .with_draft(Draft::Draft202012)
            .should_validate_formats(true)
            .build(&Value::Object(root))
            .map_err(|e| Mismatch { path: String::new(), reason: format!("the schema does not compile: {e}") })?;
        validator.validate(value).map_err(|e| mismatch(&e))
    }
}

/// How a schema is applied: on its own, or as one part of a schema whose
/// other parts may declare more properties (an `allOf` branch, a `$ref` target).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Checked {
    Whole,
    AsPart,
}

/// `schema` with `unevaluatedProperties: false` on every object schema
/// applied whole that says nothing of undeclared properties, and the integer
/// formats of OpenAPI (`int32`, `int64`, which JSON Schema does not assert)
/// turned into bounds.
fn strict(doc: &Value, schema: &Value, checked: Checked) -> Value {
    let Value::Object(rules) = schema else {
        return schema.clone();
    };
    let each = |list: &Value, checked: Checked| match list {
        Value::Array(items) => Value::Array(items.iter().map(|s| strict(doc, s, checked)).collect()),
        other => other.clone(),
    };
    let mut out = Map::new();
    for (key, value) in rules {
        let value = match key.as_str() {
            "properties" => match value {
                Value::Object(properties) => Value::Object(
                    properties.iter().map(|(name, s)| (name.clone(), strict(doc, s, Checked::Whole))).collect(),
                ),
                other => other.clone(),
            },
            "items" | "additionalProperties" | "propertyNames" | "not" => strict(doc, value, Checked::Whole),
            "oneOf" | "anyOf" => each(value, Checked::Whole),
            "allOf" => each(value, Checked::AsPart),
            _ => value.clone(),
        };
        out.insert(key.clone(), value);
    }
    let range = match rules.get("format").and_then(Value::as_str) {
        Some("int32") => Some((i64::from(i32::MIN), i64::from(i32::MAX))),
        Some("int64") => Some((i64::MIN, i64::MAX)),
        _ => None,
    };
    if let Some((low, high)) = range {
        if rules.get("minimum").and_then(Value::as_f64).is_none_or(|m| m < low as f64) {
            out.insert("minimum".to_owned(), low.into());
        }
        if rules.get("maximum").and_then(Value::as_f64).is_none_or(|m| m > high as f64) {
            out.insert("maximum".to_owned(), high.into());
        }
    }
    if checked == Checked::Whole {
        let mut shape = Shape::default();
        shape.visit(doc, rules, 0);
        if shape.object && !shape.open {
            out.insert("unevaluatedProperties".to_owned(), Value::Bool(false));
        }
    }
    Value::Object(out)
}

/// Deeper than any schema here; stops `$ref` cycles.
const MAX_DEPTH: usize = 64;

/// What a schema says of objects, through `$ref` and `allOf`.
#[derive(Default)]
struct Shape {
    /// Some level describes an object (`type: object` or `properties`).
    object: bool,
    /// Some level decides about undeclared properties itself.
    open: bool,
}

impl Shape {
    fn visit(&mut self, doc: &Value, rules: &Map<String, Value>, depth: usize) {
        if depth > MAX_DEPTH {
            return;
        }
        let typed_object = match rules.get("type") {
            Some(Value::String(name)) => name == "object",
            Some(Value::Array(names)) => names.iter().any(|n| n == "object"),
            _ => false,
        };
        self.object |= typed_object || rules.contains_key("properties");
        self.open |= rules.contains_key("additionalProperties") || rules.contains_key("unevaluatedProperties");
        let target = rules.get("$ref").and_then(Value::as_str).and_then(|r| doc.pointer(r.strip_prefix('#')?));
        let branches = rules.get("allOf").and_then(Value::as_array).into_iter().flatten();
        for part in target.into_iter().chain(branches) {
            if let Value::Object(part) = part {
                self.visit(doc, part, depth + 1);
            }
        }
    }
}

/// Where an error points: at the property itself when one is missing or
/// undeclared, at the branch that got furthest when no `oneOf`/`anyOf`
/// branch matches.
fn mismatch(error: &ValidationError<'_>) -> Mismatch {
    let at = error.instance_path().as_str();
    let member = |name: &str| format!("{at}/{}", name.replace('~', "~0").replace('/', "~1"));
    let path = match error.kind() {
        ValidationErrorKind::Required { property } => member(property.as_str().unwrap_or_default()),
        ValidationErrorKind::UnevaluatedProperties { unexpected }
        | ValidationErrorKind::AdditionalProperties { unexpected }
            if unexpected.len() == 1 =>
        {
            member(&unexpected[0])
        }
        ValidationErrorKind::OneOfNotValid { context } | ValidationErrorKind::AnyOf { context } => {
            let closest = context.iter().flatten().map(mismatch).max_by_key(|m| m.path.len());
            if let Some(closest) = closest {
                let reason = format!("no `{}` branch matches; closest: {}", error.kind().keyword(), closest.reason);
                return Mismatch { reason, ..closest };
            }
            at.to_owned()
        }
        _ => at.to_owned(),
    };
    Mismatch { path, reason: error.to_string() }
}

/// Whether `value` passes `schema` (JSON Schema 2020-12, formats asserted).
fn passes(schema: &Value, value: &Value) -> bool {
    jsonschema::options()
        .with_draft(Draft::Draft202012)
        .should_validate_formats(true)
        .build(schema)
        .unwrap_or_else(|e| panic!("{schema} does not compile: {e}"))
        .is_valid(value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_input_constraints_accept_exactly_what_the_server_parses() {
    use livechat::domain::message::{MessageText, SearchTerm};
    use livechat::domain::time::Timestamp;
    let app = TestApp::spawn(Backend::Sqlite).await;
    let doc = fetch_document(&app, PREFIXES[0]).await;
    let max = livechat::domain::message::DEFAULT_MAX_MESSAGE_CHARS;
    let message = &doc["components"]["schemas"]["SendMessageRequest"]["properties"]["message"];
    let long = "x".repeat(max);
    let texts = [
        String::new(),
        " ".into(),
        "\u{3000}\t\u{2028}".into(),
        "a".into(),
        " a ".into(),
        "\u{1c}".into(),
        "\u{feff}".into(),
        "a\0b".into(),
        format!("  {long}\n"),
        format!("{long}y"),
        "halo 👋".into(),
    ];
    for text in &texts {
        assert_eq!(
            passes(message, &json!(text)),
            MessageText::parse(text, max).is_ok(),
            "document and server disagree on message {text:?}"
        );
    }
    let params =
        |path: &str, method: &str| doc["paths"][path][method]["parameters"].as_array().cloned().unwrap_or_default();
    let schema_of = |path: &str, method: &str, name: &str| {
        params(path, method).into_iter().find(|p| p["name"] == name).map(|p| p["schema"].clone()).unwrap_or_default()
    };
    let term = schema_of("/sessions/{id}/messages", "get", "term");
    for text in [" ", "a", "  a  ", &"t".repeat(200), &"t".repeat(201), "a\0", "\u{a0}b\u{a0}"] {
        assert_eq!(passes(&term, &json!(text)), SearchTerm::parse(text).is_ok(), "term {text:?}");
    }
    let date = schema_of("/sessions/{id}/messages", "get", "start_date");
    for text in [
        "2026-11-26T08:00:00Z",
        "2026-11-26t08:00:00.123456789z",
        "2026-11-26T08:00:00+07:00",
        "2026-11-26 08:00:00Z",
        "2026-11-26",
        "999999-01-01T00:00:00Z",
        " 2026-11-26T08:00:00Z",
        "2026-11-26T08:00:00",
    ] {
        assert_eq!(passes(&date, &json!(text)), Timestamp::parse_lower_bound(text).is_ok(), "date {text:?}");
    }
    // Every body is an object: `null` is no longer one of the alternatives.
    let open = &doc["paths"]["/sessions"]["post"]["requestBody"];
    assert_eq!(
        open["content"]["application/json"]["schema"]["$ref"], "#/components/schemas/StartSessionRequest",
        "{open}"
    );
    for (path, name) in
        [("/sessions", "X-Tenant-ID"), ("/sessions", "agent_id"), ("/sessions/{id}/messages", "sender_id")]
    {
        let schema = schema_of(path, "get", name);
        for text in ["1", "42", "9223372036854775807", "0", "01", " 1", "+1", "1.0", "9223372036854775808", ""] {
            let server = livechat::domain::ids::UserId::parse(text).is_ok();
            assert_eq!(passes(&schema, &json!(text)), server, "{name} {text:?}: {schema}");
        }
    }
}
