//! The OpenAPI 3.1 document, generated from the handlers' annotations.

use super::{agents, messages, model, sessions};
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
        crate::realtime::routes::create_ticket,
    ),
    components(schemas(model::ChatSession, model::ChatMessage, model::Pagination, model::Meta,
        model::StartSessionRequest, model::SendMessageRequest, model::ErrorResponse)),
    modifiers(&Bearer),
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

/// The document.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// `GET …/openapi.json` (public, no token needed).
pub async fn serve() -> impl IntoResponse {
    axum::Json(document())
}
