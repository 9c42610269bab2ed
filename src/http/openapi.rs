//! The OpenAPI 3.1 document, generated from the handlers' annotations as
//! their routes are registered (`super::api`).

use axum::response::IntoResponse;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(title = "livechat", description = "Multi-tenant livechat API. Every path exists under `/api/livechat` and `/api/vendor/livechat`."),
    servers((url = "/api/livechat"), (url = "/api/vendor/livechat")),
    // Only inlined by the routes' responses; named too, for generated clients.
    components(schemas(super::webhooks::WebhookView, super::webhooks::DeliveryView)),
    modifiers(&SecuritySchemes),
)]
struct ApiDoc;

/// `bearer` (the JWT) and `tenant` (`X-Tenant-ID`, also a documented header
/// parameter of each operation): as a scheme, a generated client can set the
/// tenant once, as it sets the token. An operation that needs the tenant
/// requires both; one where it is optional accepts either set.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
        components.add_security_scheme(
            "tenant",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-Tenant-ID",
                "The tenant acted in: a positive 64-bit integer, in decimal",
            ))),
        );
    }
}

/// Statuses any authenticated route can answer with, added to each of them.
struct EveryRoute;

/// The operations whose writes may end `outcome_unknown` (504).
const SETTLED_WRITES: [&str; 6] =
    ["create_session", "close_session", "claim_session", "transfer_session", "send_message", "mark_read"];

impl Modify for EveryRoute {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let error = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorResponse"))).build(),
                )
                .build()
        };
        for item in openapi.paths.paths.values_mut() {
            let operations = [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch];
            for op in operations.into_iter().flatten() {
                let responses = &mut op.responses.responses;
                responses.entry("429".to_owned()).or_insert_with(|| {
                    error("`rate_limited`: too many requests from this user, or over a quota of the user or tenant (sending, opening sessions, tickets); see `Retry-After`, `RateLimit` and `RateLimit-Policy`").into()
                });
                responses.entry("503".to_owned()).or_insert_with(|| {
                    error("`storage_unavailable`: retry later (`Retry-After`); nothing was written").into()
                });
            }
            // Writes that settle their commit within the request's deadline (`service::write`).
            let writes = [&mut item.put, &mut item.post, &mut item.delete, &mut item.patch].into_iter().flatten();
            for op in writes.filter(|op| op.operation_id.as_deref().is_some_and(|id| SETTLED_WRITES.contains(&id))) {
                op.responses.responses.entry("504".to_owned()).or_insert_with(|| {
                    error(
                        "`outcome_unknown`: the write's commit could not be confirmed before the deadline; it may or \
                         may not be stored. `errors` names its id (`message_id` or `session_id`): look for it before \
                         writing again, or repeat a send with the same `Idempotency-Key`",
                    )
                    .into()
                });
            }
        }
    }
}

/// The document before any route is registered: info, servers, security schemes.
pub fn base() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The served document, serialized once: `registered` (the routes' own
/// annotations) with the statuses every route shares and what depends on
/// configuration written in (`max_message_chars` is the configured limit).
pub fn served_document(mut registered: utoipa::openapi::OpenApi, max_message_chars: usize) -> bytes::Bytes {
    EveryRoute.modify(&mut registered);
    let mut doc = serde_json::to_value(registered).unwrap_or_default();
    tighten(&mut doc, max_message_chars);
    serde_json::to_vec(&doc).unwrap_or_default().into()
}

/// `GET …/openapi.json` (public, no token needed).
pub async fn serve(document: bytes::Bytes) -> impl IntoResponse {
    ([(axum::http::header::CONTENT_TYPE, "application/json")], document)
}

/// The characters Rust's `str::trim` removes (Unicode `White_Space`), spelled
/// out: `\s` means another set in ECMA-262 and in Python, the two dialects a
/// client of the document is likely to check patterns with.
const WS: &str = r"\t\n\u000B\f\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000";

/// A text that, once trimmed, has 1 to `max` characters and no NUL.
fn trimmed_text_pattern(max: usize) -> String {
    format!(r"^[{WS}]*{}[{WS}]*$", visible_core(max))
}

/// At most `max` characters without NUL, starting and ending with a visible one.
fn visible_core(max: usize) -> String {
    // First and last visible characters, at most `max - 2` of anything between.
    let middle = match max.checked_sub(2) {
        Some(inner) => format!(r"(?:[^\u0000]{{0,{inner}}}[^{WS}\u0000])?"),
        None => String::new(),
    };
    format!(r"[^{WS}\u0000]{middle}")
}

/// A positive 64-bit id in a header or query string, written the only way
/// the server reads it: decimal digits, no sign, no leading zero, no spaces,
/// at most `i64::MAX`. A string schema, since that is what arrives; the
/// pattern is exact, so a generated value is never one the server refuses.
fn positive_id_text() -> serde_json::Value {
    serde_json::json!({
        "type": "string",
        "minLength": 1,
        "maxLength": i64::MAX.to_string().len(),
        "pattern": decimal_up_to(i64::MAX.unsigned_abs()),
    })
}

/// A regex for the decimal numbers 1..=`max`, in canonical spelling.
fn decimal_up_to(max: u64) -> String {
    let digits: Vec<u8> = max.to_string().into_bytes();
    let n = digits.len();
    let mut alternatives = Vec::new();
    if n > 1 {
        // Every shorter number.
        alternatives.push(format!("[1-9][0-9]{{0,{}}}", n - 2));
    }
    // As long as `max`: equal up to position `i`, smaller there, anything after.
    for (i, &d) in digits.iter().enumerate() {
        let lowest = if i == 0 { b'1' } else { b'0' };
        if d > lowest {
            let prefix = String::from_utf8_lossy(&digits[..i]);
            let rest = n - i - 1;
            alternatives.push(format!("{prefix}[{}-{}][0-9]{{{rest}}}", lowest as char, (d - 1) as char));
        }
    }
    alternatives.push(String::from_utf8_lossy(&digits).into_owned());
    format!("^(?:{})$", alternatives.join("|"))
}

/// RFC 3339 with the `T` (or `t`) separator and an offset, as `time`'s parser
/// reads it; a date alone or a space instead of `T` is refused.
const DATE_TIME: &str =
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})$";

/// Hyphenated UUID, the form the server writes.
const UUID: &str = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$";

/// Writes into `doc` what the handlers check by hand and utoipa cannot say:
/// query parameters are typed strings with patterns or enums, ids are
/// positive, bodies are objects, texts have their trimmed bounds.
fn tighten(doc: &mut serde_json::Value, max_message_chars: usize) {
    use serde_json::{Value, json};
    let param_schema = |name: &str, location: &str| -> Option<Value> {
        Some(match (location, name) {
            ("header", "X-Tenant-ID") => positive_id_text(),
            ("header", "Idempotency-Key") => {
                // Visible ASCII and spaces; HTTP drops spaces at either end, so
                // a key that starts or ends with one cannot arrive as written.
                json!({"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~](?:[ -~]*[!-~])?$"})
            }
            // Any positive integer: larger values, however many digits, are clamped.
            ("query", "limit") => json!({"type": "string", "pattern": "^[1-9][0-9]*$"}),
            ("query", "agent_id" | "sender_id") => positive_id_text(),
            ("query", "direction") => json!({"type": "string", "enum": ["before", "after"]}),
            ("query", "status") => json!({"type": "string", "enum": ["OPEN", "CLOSED"]}),
            ("query", "cursor") => json!({"type": "string", "format": "uuid", "pattern": UUID}),
            ("query", "term") => json!({"type": "string", "minLength": 1, "pattern": trimmed_text_pattern(200)}),
            ("query", "start_date" | "end_date") => {
                json!({"type": "string", "format": "date-time", "pattern": DATE_TIME})
            }
            _ => return None,
        })
    };
    if let Some(paths) = doc.pointer_mut("/paths").and_then(Value::as_object_mut) {
        for item in paths.values_mut().filter_map(Value::as_object_mut) {
            for op in item.values_mut().filter_map(Value::as_object_mut) {
                for param in op.get_mut("parameters").and_then(Value::as_array_mut).into_iter().flatten() {
                    let name = param.get("name").and_then(Value::as_str).unwrap_or_default().to_owned();
                    let location = param.get("in").and_then(Value::as_str).unwrap_or_default().to_owned();
                    if let Some(schema) = param_schema(&name, &location) {
                        param["schema"] = schema;
                    }
                }
                // A body, when one is taken, is an object: `null` is refused (an
                // optional body is omitted instead), and so is any other JSON value.
                if let Some(schema) =
                    op.get_mut("requestBody").and_then(|b| b.pointer_mut("/content/application~1json/schema"))
                {
                    if let Some(object) = schema
                        .get("oneOf")
                        .and_then(Value::as_array)
                        .and_then(|alts| alts.iter().find(|alt| alt.get("type") != Some(&json!("null"))).cloned())
                    {
                        *schema = object;
                    }
                }
            }
        }
    }
    let Some(schemas) = doc.pointer_mut("/components/schemas").and_then(Value::as_object_mut) else {
        return;
    };
    let mut set = |schema: &str, property: &str, value: Value| {
        if let Some(slot) = schemas.get_mut(schema).and_then(|s| s.pointer_mut(&format!("/properties/{property}"))) {
            if let (Some(slot), Some(extra)) = (slot.as_object_mut(), value.as_object()) {
                slot.extend(extra.clone());
            }
        }
    };
    // Body ids are JSON integers; `1.0` is refused too (see `extract::Json`).
    let id = json!({"minimum": 1, "maximum": i64::MAX});
    set("StartSessionRequest", "agent_id", id.clone());
    set("TransferRequest", "agent_id", id);
    set("SendMessageRequest", "message", json!({"minLength": 1, "pattern": trimmed_text_pattern(max_message_chars)}));
    set("MarkReadRequest", "message_id", json!({"pattern": UUID}));
    let events = json!({"minItems": 1, "items": {"type": "string", "enum": crate::domain::webhook::EventType::ALL.map(|e| e.as_str())}});
    // Empty (no description) or, once trimmed, up to the limit.
    let description = json!({"pattern": format!(r"^[{WS}]*(?:{})?[{WS}]*$", visible_core(crate::domain::webhook::MAX_DESCRIPTION_CHARS))});
    for schema in ["CreateWebhookRequest", "UpdateWebhookRequest"] {
        set(schema, "events", events.clone());
        set(schema, "description", description.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::decimal_up_to;

    fn matches(pattern: &str, text: &str) -> bool {
        let schema = serde_json::json!({"type": "string", "pattern": pattern});
        jsonschema::validator_for(&schema).map(|v| v.is_valid(&serde_json::json!(text))).unwrap_or(false)
    }

    #[test]
    fn the_decimal_pattern_takes_exactly_the_canonical_numbers_up_to_its_maximum() {
        for max in [1_u64, 9, 10, 20, 105, 200, 999] {
            let pattern = decimal_up_to(max);
            for n in 0..=1_100_u64 {
                assert_eq!(matches(&pattern, &n.to_string()), (1..=max).contains(&n), "{n} against {max}: {pattern}");
            }
            for text in ["", "01", "+1", " 1", "1 ", "1.0", "-1"] {
                assert!(!matches(&pattern, text), "{text:?} against {max}");
            }
        }
        let pattern = decimal_up_to(i64::MAX.unsigned_abs());
        for (text, ok) in [
            ("9223372036854775807", true),
            ("9223372036854775806", true),
            ("999999999999999999", true),
            ("9223372036854775808", false),
            ("9223372036854775810", false),
            ("9300000000000000000", false),
            ("10000000000000000000", false),
        ] {
            assert_eq!(matches(&pattern, text), ok, "{text}");
        }
    }
}
