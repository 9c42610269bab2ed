//! Agent routes: the cross-tenant inbox and presence (docs/API.md §12).

use super::AppState;
use super::error::ApiError;
use super::extract::{AuthedIdentity, Json, Query, page_params};
use super::model::{ApiResponse, ErrorResponse, Pagination};
use super::names::Direction;
use super::params::{PageLimitText, PositiveIdText};
use super::response::Success;
use crate::domain::access::AgentScope;
use crate::domain::ids::{SessionId, TenantId};
use crate::service::{Error, Problems};
use crate::service::{PageRequest, parse_inbox_cursor};
use crate::wire::{ChatSession, Presence};
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

/// The agent routes, relative to a prefix.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::default().routes(routes!(list_inbox)).routes(routes!(set_presence))
}

fn agent_scope(state: &AppState, who: &AuthedIdentity) -> Result<AgentScope, Error> {
    let scope = state.chat().agent_scope(&who.identity).ok_or(Error::Forbidden)?;
    // With X-Tenant-ID, the caller must be an agent there too.
    match &who.caller {
        Some(caller) if !caller.is_agent() => Err(Error::Forbidden),
        _ => Ok(scope),
    }
}

/// Query of `GET /agent/sessions`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InboxQuery {
    /// 1..100, default 10; larger values are clamped.
    #[param(value_type = PageLimitText, inline, required = false)]
    limit: Option<String>,
    /// A cursor from a previous page (`<tenant>.<session id>`).
    cursor: Option<String>,
    /// `before` (default, older activity) or `after` (newer).
    #[param(value_type = Direction, inline, required = false)]
    direction: Option<String>,
}

impl InboxQuery {
    /// The page asked for; every bad parameter is named in one 400.
    pub fn parse(&self) -> Result<PageRequest<(TenantId, SessionId)>, Error> {
        let mut problems = Problems::default();
        let (limit, direction) = page_params(&mut problems, self.limit.as_deref(), self.direction.as_deref());
        let cursor = problems.optional("cursor", self.cursor.as_deref(), |c| {
            parse_inbox_cursor(c).ok_or("must be a cursor from this list")
        });
        problems.finish()?;
        Ok(PageRequest { limit, direction, cursor })
    }
}

/// The agent inbox: queued sessions and the caller's own open sessions,
/// across its tenants, newest activity first, with unread counts.
#[utoipa::path(get, path = "/agent/sessions", tag = "agents",
    params(InboxQuery, ("X-Tenant-ID" = inline(Option<PositiveIdText>), Header, description = "Not required on this route")),
    responses(
        (status = 200, description = "A page of the inbox", body = ApiResponse<Vec<ChatSession>>),
        (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse),
    ), security(("bearer" = [], "tenant" = []), ("bearer" = [])))]
pub async fn list_inbox(
    State(state): State<AppState>,
    who: AuthedIdentity,
    Query(q): Query<InboxQuery>,
) -> Result<Success<Vec<ChatSession>>, ApiError> {
    let scope = agent_scope(&state, &who)?;
    let page = state.chat().inbox(who.identity.user_id, &scope, q.parse()?).await?;
    let pagination = Pagination::from(&page);
    let items = page.items.into_iter().map(|item| ChatSession::from(item.0)).collect();
    Ok(Success::ok("inbox listed", items).paginated(pagination))
}

/// Body of `PUT /agents/me/presence`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PresenceRequest {
    /// `online` (for one presence period; repeat to stay online) or `offline`.
    #[schema(value_type = Presence)]
    pub status: String,
}

impl PresenceRequest {
    /// `online` is true, `offline` false, anything else a 400.
    pub fn online(&self) -> Result<bool, ApiError> {
        match self.status.as_str() {
            "online" => Ok(true),
            "offline" => Ok(false),
            _ => Err(ApiError::field("status", "must be `online` or `offline`")),
        }
    }
}

/// The caller's presence as recorded.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentPresence {
    /// The agent.
    pub agent_id: i64,
    /// `online` or `offline` (this source; a live stream also keeps an agent online).
    pub status: Presence,
    /// Until when `online` holds without another PUT.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime, nullable = false)]
    pub expires_at: Option<String>,
}

/// Sets the calling agent online or offline.
#[utoipa::path(put, path = "/agents/me/presence", tag = "agents",
    params(("X-Tenant-ID" = inline(Option<PositiveIdText>), Header, description = "Not required on this route")),
    request_body = PresenceRequest,
    responses(
        (status = 200, body = inline(ApiResponse<AgentPresence>)),
        (status = 413, body = ErrorResponse), (status = 415, body = ErrorResponse),
        (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse),
    ), security(("bearer" = [], "tenant" = []), ("bearer" = [])))]
pub async fn set_presence(
    State(state): State<AppState>,
    who: AuthedIdentity,
    Json(body): Json<PresenceRequest>,
) -> Result<Success<AgentPresence>, ApiError> {
    let scope = agent_scope(&state, &who)?;
    let body = body.ok_or_else(|| ApiError::field("status", "is required"))?;
    let online = body.online()?;
    let agent = who.identity.user_id;
    let expires = state.chat().set_presence(agent, &scope, online).await?;
    let status = if online { Presence::Online } else { Presence::Offline };
    Ok(Success::ok(
        "presence updated",
        AgentPresence { agent_id: agent.get(), status, expires_at: expires.map(|t| t.to_rfc3339()) },
    ))
}
