//! `/sessions/:id/messages` routes (docs/API.md §11).

use super::AppState;
use super::error::ApiError;
use super::extract::{Authed, Json, Query, SessionPath, page_params};
use super::model::{ApiResponse, ErrorResponse, Pagination, SendMessageRequest};
use super::names::Direction;
use super::openapi::OutcomeUnknown;
use super::params::{DateTimeText, IdempotencyKeyText, PageLimitText, PositiveIdText, UuidText, search_term};
use super::response::Success;
use crate::domain::ids::{MessageId, UserId};
use crate::domain::message::{MessageFilter, SearchTerm};
use crate::domain::time::Timestamp;
use crate::service::{Action, PageRequest};
use crate::service::{Error, Problems};
use crate::wire::ChatMessage;
use axum::extract::State;
use axum::http::HeaderMap;
use serde::Deserialize;
use utoipa_axum::{router::OpenApiRouter, routes};

/// The message routes, relative to a prefix.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::default().routes(routes!(send_message, list_messages)).routes(routes!(mark_read))
}

/// Sends a message to an OPEN session.
#[utoipa::path(post, path = "/sessions/{id}/messages", tag = "messages",
    params(("id" = String, Path, format = Uuid), ("X-Tenant-ID" = inline(PositiveIdText), Header),
        ("Idempotency-Key" = inline(Option<IdempotencyKeyText>), Header, description = "1–255 characters; a retry with the same key returns the original message")),
    request_body = SendMessageRequest,
    responses(
        OutcomeUnknown,
        (status = 201, description = "Stored (or replayed, with `Idempotent-Replayed: true`)", body = ApiResponse<ChatMessage>),
        (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse),
        (status = 404, description = "Unknown or CLOSED session", body = ErrorResponse),
        (status = 413, body = ErrorResponse), (status = 415, body = ErrorResponse),
        (status = 422, description = "`idempotency_key_reused`", body = ErrorResponse),
    ), security(("bearer" = [], "tenant" = [])))]
pub async fn send_message(
    State(state): State<AppState>,
    Authed(caller): Authed,
    SessionPath(session): SessionPath,
    headers: HeaderMap,
    Json(body): Json<SendMessageRequest>,
) -> Result<Success<ChatMessage>, ApiError> {
    let key = super::input::idempotency_key(headers.get("idempotency-key"))?;
    let body = body.ok_or_else(|| ApiError::field("message", "is required"))?;
    let quota = state.chat().quotas().check(Action::Send, &caller)?;
    let (message, replayed) = state.chat().send_message(&caller, session, &body.message, key).await?;
    let res = Success::created("message sent", ChatMessage::from(message)).quota(quota);
    Ok(if replayed { res.header(axum::http::HeaderName::from_static("idempotent-replayed"), "true") } else { res })
}

/// Query of `GET /sessions/:id/messages`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListMessagesQuery {
    /// Case-insensitive literal substring, 1..200 characters.
    #[param(schema_with = search_term, required = false)]
    term: Option<String>,
    /// Only this author.
    #[param(value_type = PositiveIdText, inline, required = false)]
    sender_id: Option<String>,
    /// Inclusive lower bound, RFC 3339 with `T` and an offset, e.g. `2026-11-26T08:00:00.123456Z`.
    #[param(value_type = DateTimeText, inline, required = false)]
    start_date: Option<String>,
    /// Inclusive upper bound, RFC 3339 with `T` and an offset, e.g. `2026-11-26T08:00:00+07:00`.
    #[param(value_type = DateTimeText, inline, required = false)]
    end_date: Option<String>,
    /// 1..100, default 10; larger values are clamped.
    #[param(value_type = PageLimitText, inline, required = false)]
    limit: Option<String>,
    /// A message id of this session.
    #[param(value_type = UuidText, inline, required = false)]
    cursor: Option<String>,
    /// `before` (default, older than the cursor) or `after` (newer).
    #[param(value_type = Direction, inline, required = false)]
    direction: Option<String>,
}

impl ListMessagesQuery {
    /// The filter and page asked for; every bad parameter is named in one 400.
    pub fn parse(&self) -> Result<(MessageFilter, PageRequest<MessageId>), Error> {
        let mut problems = Problems::default();
        let term = problems.optional("term", self.term.as_deref(), SearchTerm::parse);
        let sender_id = problems.optional("sender_id", self.sender_id.as_deref(), UserId::parse);
        let start = problems.optional("start_date", self.start_date.as_deref(), Timestamp::parse_lower_bound);
        let end = problems.optional("end_date", self.end_date.as_deref(), Timestamp::parse_upper_bound);
        if start.zip(end).is_some_and(|(s, e)| s > e) {
            problems.add("start_date", "must not be after end_date");
        }
        let (limit, direction) = page_params(&mut problems, self.limit.as_deref(), self.direction.as_deref());
        let cursor = problems.optional("cursor", self.cursor.as_deref(), MessageId::parse);
        problems.finish()?;
        Ok((MessageFilter { term, sender_id, start, end }, PageRequest { limit, direction, cursor }))
    }
}

/// Lists a session's messages, newest first.
#[utoipa::path(get, path = "/sessions/{id}/messages", tag = "messages",
    params(("id" = String, Path, format = Uuid), ListMessagesQuery, ("X-Tenant-ID" = inline(PositiveIdText), Header)),
    responses(
        (status = 200, description = "A page of messages", body = ApiResponse<Vec<ChatMessage>>),
        (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse),
    ), security(("bearer" = [], "tenant" = [])))]
pub async fn list_messages(
    State(state): State<AppState>,
    Authed(caller): Authed,
    SessionPath(session): SessionPath,
    Query(q): Query<ListMessagesQuery>,
) -> Result<Success<Vec<ChatMessage>>, ApiError> {
    let (filter, page) = q.parse()?;
    let page = state.chat().list_messages(&caller, session, &filter, page).await?;
    let pagination = Pagination::from(&page);
    let items = page.items.into_iter().map(ChatMessage::from).collect();
    Ok(Success::ok("messages listed", items).paginated(pagination))
}

/// Body of `POST /sessions/:id/read`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct MarkReadRequest {
    /// The last message the caller has read.
    #[schema(value_type = UuidText, inline)]
    pub message_id: String,
}

impl MarkReadRequest {
    /// The message named, as a message id (400 otherwise).
    pub fn message_id(&self) -> Result<MessageId, ApiError> {
        MessageId::parse(&self.message_id).map_err(|e| ApiError::field("message_id", e))
    }
}

/// A participant's read mark.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ReadReceipt {
    /// The session.
    #[schema(format = Uuid)]
    pub session_id: String,
    /// The reader.
    pub user_id: i64,
    /// The last message read.
    #[schema(format = Uuid)]
    pub message_id: String,
    /// When it was marked.
    #[schema(format = DateTime)]
    pub read_at: String,
}

/// Moves the caller's read mark forward (never back) and emits a `read` event.
#[utoipa::path(post, path = "/sessions/{id}/read", tag = "messages",
    params(("id" = String, Path, format = Uuid), ("X-Tenant-ID" = inline(PositiveIdText), Header)),
    request_body = MarkReadRequest,
    responses(
        OutcomeUnknown,
        (status = 200, body = inline(ApiResponse<ReadReceipt>)),
        (status = 413, body = ErrorResponse), (status = 415, body = ErrorResponse),
        (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse),
    ), security(("bearer" = [], "tenant" = [])))]
pub async fn mark_read(
    State(state): State<AppState>,
    Authed(caller): Authed,
    SessionPath(session): SessionPath,
    Json(body): Json<MarkReadRequest>,
) -> Result<Success<ReadReceipt>, ApiError> {
    let message = body.ok_or_else(|| ApiError::field("message_id", "is required"))?.message_id()?;
    let mark = state.chat().mark_read(&caller, session, message).await?;
    Ok(Success::ok(
        "read mark saved",
        ReadReceipt {
            session_id: mark.session_id.to_string(),
            user_id: mark.user_id.get(),
            message_id: mark.message_id.to_string(),
            read_at: mark.at.to_rfc3339(),
        },
    ))
}
