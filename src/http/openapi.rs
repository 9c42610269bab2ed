//! The OpenAPI 3.1 document, generated from the handlers' annotations.

use super::{agents, messages, model, sessions, streams};
use crate::wire;
use axum::response::IntoResponse;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(title = "livechat", description = "Multi-tenant livechat API. Every path exists under `/api/livechat` and `/api/vendor/livechat`."),
    servers((url = "/api/livechat"), (url = "/api/vendor/livechat")),
    paths(
        sessions::create_session, sessions::list_sessions, sessions::get_session, sessions::close_session,
        messages::send_message, messages::list_messages, messages::mark_read,
        sessions::claim_session, sessions::transfer_session,
        agents::list_inbox, agents::set_presence,
        streams::create_ticket,
    ),
    components(schemas(wire::ChatSession, wire::ChatMessage, model::Pagination, model::Meta,
        model::StartSessionRequest, model::SendMessageRequest, model::ErrorResponse)),
    modifiers(&Bearer, &EveryRoute),
)]
struct ApiDoc;

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
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

/// The document.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// `GET …/openapi.json` (public, no token needed).
pub async fn serve() -> impl IntoResponse {
    axum::Json(document())
}
