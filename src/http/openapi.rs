//! The OpenAPI 3.1 document, generated from the handlers' annotations as
//! their routes are registered (`super::api`).

use super::model::{ErrorResponse, SendMessageRequest};
use super::params::trimmed_text_pattern;
use axum::response::IntoResponse;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

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

/// The 504 of a write that settles its commit within the request's deadline
/// (`service::write`); each such operation lists it in its `responses`.
#[derive(utoipa::IntoResponses)]
#[response(
    status = 504,
    description = "`outcome_unknown`: the write's commit could not be confirmed before the deadline; it may or may \
                   not be stored. `errors` names its id (`message_id` or `session_id`): look for it before writing \
                   again, or repeat a send with the same `Idempotency-Key`"
)]
pub struct OutcomeUnknown(pub ErrorResponse);

impl Modify for EveryRoute {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let error = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new().schema(Some(Ref::from_schema_name(ErrorResponse::name()))).build(),
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

/// `schema` without its `null` alternative, if it is "something or `null`".
fn never_null(schema: &mut serde_json::Value) {
    let null = serde_json::json!("null");
    let alternatives = schema.get("oneOf").and_then(serde_json::Value::as_array);
    if let Some(something) = alternatives.and_then(|alts| alts.iter().find(|alt| alt.get("type") != Some(&null))) {
        *schema = something.clone();
    }
}

/// `GET …/openapi.json` (public, no token needed).
pub async fn serve(document: bytes::Bytes) -> impl IntoResponse {
    ([(axum::http::header::CONTENT_TYPE, "application/json")], document)
}

/// Writes into `doc` what the annotations cannot say: utoipa writes an
/// `Option` as "this or `null`", but an optional body is omitted (never
/// `null`) and a header or query value is text; and the message text's
/// bound, which is configured.
fn tighten(doc: &mut serde_json::Value, max_message_chars: usize) {
    use serde_json::{Value, json};
    if let Some(paths) = doc.pointer_mut("/paths").and_then(Value::as_object_mut) {
        for item in paths.values_mut().filter_map(Value::as_object_mut) {
            for op in item.values_mut().filter_map(Value::as_object_mut) {
                let body = op.get_mut("requestBody").and_then(|b| b.pointer_mut("/content/application~1json/schema"));
                body.into_iter().for_each(never_null);
                let params = op.get_mut("parameters").and_then(Value::as_array_mut).into_iter().flatten();
                params.filter_map(|p| p.get_mut("schema")).for_each(never_null);
            }
        }
    }
    let message = format!("/components/schemas/{}/properties/message", <SendMessageRequest as ToSchema>::name());
    if let Some(slot) = doc.pointer_mut(&message).and_then(Value::as_object_mut) {
        slot.insert("minLength".to_owned(), json!(1));
        slot.insert("pattern".to_owned(), json!(trimmed_text_pattern(max_message_chars)));
    }
}
