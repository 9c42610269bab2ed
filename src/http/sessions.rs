//! `/sessions` routes (docs/API.md §10; claim and transfer §12.3).

use super::AppState;
use super::error::ApiError;
use super::extract::{Authed, Json, Query, SessionPath, page_params};
use super::model::{ApiResponse, ErrorResponse, Pagination, StartSessionRequest};
use super::names::Direction;
use super::openapi::OutcomeUnknown;
use super::params::{PageLimitText, PositiveIdText, UuidText};
use super::response::Success;
use crate::domain::ids::{SessionId, UserId};
use crate::domain::session::{SessionFilter, SessionStatus};
use crate::service::{Action, PageRequest};
use crate::service::{Error, Problems};
use crate::wire::ChatSession;
use axum::extract::State;
use serde::Deserialize;
use utoipa_axum::{router::OpenApiRouter, routes};

/// The session routes, relative to a prefix.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::default()
        .routes(routes!(create_session, list_sessions))
        .routes(routes!(get_session))
        .routes(routes!(close_session))
        .routes(routes!(claim_session))
        .routes(routes!(transfer_session))
}

/// Opens the tenant's session.
#[utoipa::path(post, path = "/sessions", tag = "sessions",
    request_body(content = Option<StartSessionRequest>, description = "May be absent or `{}`"),
    responses(
        OutcomeUnknown,
        (status = 201, description = "Session opened", body = ApiResponse<ChatSession>),
        (status = 400, description = "`validation_error`, `session_already_active` (errors.session_id), `agent_offline`", body = ErrorResponse),
        (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse),
        (status = 413, body = ErrorResponse), (status = 415, body = ErrorResponse),
    ),
    params(("X-Tenant-ID" = inline(PositiveIdText), Header)), security(("bearer" = [], "tenant" = [])))]
pub async fn create_session(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Json(body): Json<StartSessionRequest>,
) -> Result<Success<ChatSession>, ApiError> {
    let agent_id = body.unwrap_or_default().agent()?;
    let quota = state.chat().quotas().check(Action::Open, &caller)?;
    let session = state.chat().open_session(&caller, agent_id).await?;
    Ok(Success::created("session opened", session.into()).quota(quota))
}

/// Query of `GET /sessions`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListSessionsQuery {
    /// `OPEN` or `CLOSED`.
    #[param(value_type = crate::wire::SessionStatus, inline, required = false)]
    status: Option<String>,
    /// Only sessions of this agent.
    #[param(value_type = PositiveIdText, inline, required = false)]
    agent_id: Option<String>,
    /// 1..100, default 10; larger values are clamped.
    #[param(value_type = PageLimitText, inline, required = false)]
    limit: Option<String>,
    /// A session id from a previous page.
    #[param(value_type = UuidText, inline, required = false)]
    cursor: Option<String>,
    /// `before` (default, older) or `after` (newer).
    #[param(value_type = Direction, inline, required = false)]
    direction: Option<String>,
}

impl ListSessionsQuery {
    /// The filter and page asked for; every bad parameter is named in one 400.
    pub fn parse(&self) -> Result<(SessionFilter, PageRequest<SessionId>), Error> {
        let mut problems = Problems::default();
        let status = problems
            .optional("status", self.status.as_deref(), |s| SessionStatus::parse(s).ok_or("must be OPEN or CLOSED"));
        let agent_id = problems.optional("agent_id", self.agent_id.as_deref(), UserId::parse);
        let (limit, direction) = page_params(&mut problems, self.limit.as_deref(), self.direction.as_deref());
        let cursor = problems.optional("cursor", self.cursor.as_deref(), SessionId::parse);
        problems.finish()?;
        Ok((SessionFilter { status, agent_id }, PageRequest { limit, direction, cursor }))
    }
}

/// Lists the tenant's sessions, newest first.
#[utoipa::path(get, path = "/sessions", tag = "sessions", params(ListSessionsQuery, ("X-Tenant-ID" = inline(PositiveIdText), Header)),
    responses(
        (status = 200, description = "A page of sessions", body = ApiResponse<Vec<ChatSession>>),
        (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse),
    ), security(("bearer" = [], "tenant" = [])))]
pub async fn list_sessions(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Query(q): Query<ListSessionsQuery>,
) -> Result<Success<Vec<ChatSession>>, ApiError> {
    let (filter, page) = q.parse()?;
    let page = state.chat().list_sessions(&caller, &filter, page).await?;
    let pagination = Pagination::from(&page);
    let items = page.items.into_iter().map(ChatSession::from).collect();
    Ok(Success::ok("sessions listed", items).paginated(pagination))
}

/// One session.
#[utoipa::path(get, path = "/sessions/{id}", tag = "sessions", params(("id" = String, Path, format = Uuid), ("X-Tenant-ID" = inline(PositiveIdText), Header)),
    responses(
        (status = 200, body = ApiResponse<ChatSession>),
        (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse),
    ), security(("bearer" = [], "tenant" = [])))]
pub async fn get_session(
    State(state): State<AppState>,
    Authed(caller): Authed,
    SessionPath(session): SessionPath,
) -> Result<Success<ChatSession>, ApiError> {
    let session = state.chat().get_session(&caller, session).await?;
    Ok(Success::ok("session found", session.into()))
}

/// Closes a session (agents only; idempotent).
#[utoipa::path(post, path = "/sessions/{id}/close", tag = "sessions", params(("id" = String, Path, format = Uuid), ("X-Tenant-ID" = inline(PositiveIdText), Header)),
    responses(
        OutcomeUnknown,
        (status = 200, body = ApiResponse<ChatSession>),
        (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse),
    ), security(("bearer" = [], "tenant" = [])))]
pub async fn close_session(
    State(state): State<AppState>,
    Authed(caller): Authed,
    SessionPath(session): SessionPath,
) -> Result<Success<ChatSession>, ApiError> {
    let session = state.chat().close_session(&caller, session).await?;
    Ok(Success::ok("session closed", session.into()))
}

/// Claims a queued session for the calling agent.
#[utoipa::path(post, path = "/sessions/{id}/claim", tag = "sessions", params(("id" = String, Path, format = Uuid), ("X-Tenant-ID" = inline(PositiveIdText), Header)),
    responses(
        OutcomeUnknown,
        (status = 200, description = "Assigned to the caller", body = ApiResponse<ChatSession>),
        (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse),
        (status = 404, description = "Unknown or CLOSED session", body = ErrorResponse),
        (status = 409, description = "`session_already_assigned`: another agent holds it", body = ErrorResponse),
    ), security(("bearer" = [], "tenant" = [])))]
pub async fn claim_session(
    State(state): State<AppState>,
    Authed(caller): Authed,
    SessionPath(session): SessionPath,
) -> Result<Success<ChatSession>, ApiError> {
    let session = state.chat().claim_session(&caller, session).await?;
    Ok(Success::ok("session claimed", session.into()))
}

/// Body of `POST /sessions/:id/transfer`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct TransferRequest {
    /// The online agent to hand the session to.
    #[schema(minimum = 1, maximum = 9223372036854775807_i64)]
    pub agent_id: i64,
}

impl TransferRequest {
    /// The agent named, as a user id (400 otherwise).
    pub fn agent(&self) -> Result<UserId, ApiError> {
        UserId::new(self.agent_id).map_err(|e| ApiError::field("agent_id", e))
    }
}

/// Hands a session to another online agent.
#[utoipa::path(post, path = "/sessions/{id}/transfer", tag = "sessions", params(("id" = String, Path, format = Uuid), ("X-Tenant-ID" = inline(PositiveIdText), Header)),
    request_body = TransferRequest,
    responses(
        OutcomeUnknown,
        (status = 200, description = "Assigned to the named agent", body = ApiResponse<ChatSession>),
        (status = 400, description = "`validation_error`, `agent_offline`", body = ErrorResponse),
        (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse),
        (status = 404, description = "Unknown or CLOSED session", body = ErrorResponse),
        (status = 413, body = ErrorResponse), (status = 415, body = ErrorResponse),
    ), security(("bearer" = [], "tenant" = [])))]
pub async fn transfer_session(
    State(state): State<AppState>,
    Authed(caller): Authed,
    SessionPath(session): SessionPath,
    Json(body): Json<TransferRequest>,
) -> Result<Success<ChatSession>, ApiError> {
    let to = body.ok_or_else(|| ApiError::field("agent_id", "is required"))?.agent()?;
    let session = state.chat().transfer_session(&caller, session, to).await?;
    Ok(Success::ok("session transferred", session.into()))
}
