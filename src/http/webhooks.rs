//! `/webhooks` routes (docs/API.md §14): subscriptions of a tenant
//! (with `X-Tenant-ID`; its agents and admins) or of the platform (without
//! it; platform agents), their secrets and their delivery logs.

use super::AppState;
use super::error::ApiError;
use super::extract::{AuthedIdentity, Json, Query, page_params};
use super::model::{ApiResponse, ErrorResponse, Pagination};
use super::names::{DeliveryStatus, Direction, WebhookEvent, WebhookScope, WebhookStatus};
use super::params::{PageLimitText, PositiveIdText, UuidText, webhook_description};
use super::response::Success;
use crate::domain::webhook::{Delivery, Owner, Webhook, WebhookState};
use crate::service::{PageRequest, Problems, WebhookInput};
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

/// The webhook routes, relative to a prefix.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::default()
        .routes(routes!(create_webhook, list_webhooks))
        .routes(routes!(get_webhook, update_webhook, delete_webhook))
        .routes(routes!(rotate_secret))
        .routes(routes!(list_deliveries))
        .routes(routes!(redeliver))
}

/// A subscription.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WebhookView {
    /// UUIDv7.
    #[schema(format = Uuid)]
    pub id: String,
    /// `tenant` (one tenant's events) or `platform` (every tenant's).
    pub scope: WebhookScope,
    /// The tenant, for a tenant's subscription.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub tenant_id: Option<i64>,
    /// Where deliveries are posted.
    pub url: String,
    /// The event types sent.
    pub events: Vec<WebhookEvent>,
    /// Whether deliveries are sent now.
    pub active: bool,
    /// `active`, `paused` (by the server after repeated failures) or `disabled` (by a user).
    pub status: WebhookStatus,
    /// Why the server paused it; send `{"active": true}` to resume.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub paused_reason: Option<String>,
    /// Free text.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub description: Option<String>,
    /// Failed attempts since the last success.
    pub consecutive_failures: i64,
    /// The signing secret (`whsec_…`): only in the answers to creation and rotation.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub secret: Option<String>,
    /// Until when the secret before the last rotation still signs too.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime, nullable = false)]
    pub previous_secret_expires_at: Option<String>,
    /// RFC 3339 UTC, microseconds.
    #[schema(format = DateTime)]
    pub created_at: String,
    /// RFC 3339 UTC, microseconds.
    #[schema(format = DateTime)]
    pub updated_at: String,
}

impl WebhookView {
    fn new(hook: Webhook, with_secret: bool) -> Self {
        let now = crate::domain::time::Timestamp::now();
        Self {
            id: hook.id.to_string(),
            scope: (&hook.owner).into(),
            tenant_id: match hook.owner {
                Owner::Tenant(t) => Some(t.get()),
                Owner::Platform => None,
            },
            url: hook.url.to_string(),
            events: hook.events.iter().map(WebhookEvent::from).collect(),
            active: hook.state == WebhookState::Active,
            status: hook.state.into(),
            paused_reason: hook.paused_reason,
            description: hook.description,
            consecutive_failures: hook.consecutive_failures,
            secret: with_secret.then(|| hook.secret.expose().to_owned()),
            previous_secret_expires_at: hook
                .previous_secret
                .filter(|(_, until)| *until > now)
                .map(|(_, u)| u.to_rfc3339()),
            created_at: hook.created_at.to_rfc3339(),
            updated_at: hook.updated_at.to_rfc3339(),
        }
    }
}

/// One event for one subscription, as the delivery log shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeliveryView {
    /// UUIDv7 of the delivery.
    #[schema(format = Uuid)]
    pub id: String,
    /// The subscription.
    #[schema(format = Uuid)]
    pub webhook_id: String,
    /// The event id, sent as `webhook-id` (the same on every attempt and redelivery).
    #[schema(format = Uuid)]
    pub event_id: String,
    /// `message.created`, `session.opened`, `session.assigned` or `session.closed`.
    pub event_type: WebhookEvent,
    /// The tenant the event happened in.
    pub tenant_id: i64,
    /// The session.
    #[schema(format = Uuid)]
    pub session_id: String,
    /// The event's place in its session (commit order).
    pub seq: i64,
    /// `queued` (behind an earlier event of the same session), `pending`,
    /// `sending`, `held` (subscription paused or disabled), `delivered`, `failed` (given up).
    pub status: DeliveryStatus,
    /// Attempts made.
    pub attempts: i64,
    /// When the next attempt is due.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime, nullable = false)]
    pub next_attempt_at: Option<String>,
    /// When the last attempt started.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime, nullable = false)]
    pub last_attempt_at: Option<String>,
    /// The receiver's last HTTP status.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub response_status: Option<i64>,
    /// Why the last attempt failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub last_error: Option<String>,
    /// How long the last attempt took, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub duration_ms: Option<i64>,
    /// When the receiver accepted it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime, nullable = false)]
    pub delivered_at: Option<String>,
    /// The delivery this one sends again.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = Uuid, nullable = false)]
    pub redelivery_of: Option<String>,
    /// When the delivery was created.
    #[schema(format = DateTime)]
    pub created_at: String,
}

impl From<Delivery> for DeliveryView {
    fn from(d: Delivery) -> Self {
        let next = matches!(
            d.state,
            crate::domain::webhook::DeliveryState::Pending | crate::domain::webhook::DeliveryState::Inflight
        );
        Self {
            id: d.id.to_string(),
            webhook_id: d.webhook_id.to_string(),
            event_id: d.event.id.to_string(),
            event_type: d.event.kind.into(),
            tenant_id: d.event.tenant_id.get(),
            session_id: d.event.session_id.to_string(),
            seq: d.event.seq,
            status: d.state.into(),
            attempts: d.attempts,
            next_attempt_at: d.next_attempt_at.filter(|_| next).map(|t| t.to_rfc3339()),
            last_attempt_at: d.last_attempt_at.map(|t| t.to_rfc3339()),
            response_status: d.response_status,
            last_error: d.last_error,
            duration_ms: d.duration_ms,
            delivered_at: d.delivered_at.map(|t| t.to_rfc3339()),
            redelivery_of: d.redelivery_of.map(|u| u.to_string()),
            created_at: d.created_at.to_rfc3339(),
        }
    }
}

/// Body of `POST /webhooks`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateWebhookRequest {
    /// `https://…` (plain http only for hosts the server allows); never a
    /// loopback, private or link-local address.
    pub url: String,
    /// Event types to receive, at least one.
    #[schema(value_type = Vec<WebhookEvent>, min_items = 1)]
    pub events: Vec<String>,
    /// Start active (default) or disabled.
    pub active: Option<bool>,
    /// Free text, up to 500 characters.
    #[schema(schema_with = webhook_description)]
    pub description: Option<String>,
}

/// Body of `PATCH /webhooks/:id`: absent fields are left as they are.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct UpdateWebhookRequest {
    /// New target.
    pub url: Option<String>,
    /// New event types, at least one.
    #[schema(value_type = Option<Vec<WebhookEvent>>, min_items = 1)]
    pub events: Option<Vec<String>>,
    /// `true` enables (and resumes a paused subscription, sending what was
    /// held), `false` disables.
    pub active: Option<bool>,
    /// New description; an empty string removes it.
    #[schema(schema_with = webhook_description)]
    pub description: Option<String>,
}

impl From<CreateWebhookRequest> for WebhookInput {
    fn from(body: CreateWebhookRequest) -> Self {
        Self { url: Some(body.url), events: Some(body.events), active: body.active, description: body.description }
    }
}

impl From<UpdateWebhookRequest> for WebhookInput {
    fn from(body: UpdateWebhookRequest) -> Self {
        Self { url: body.url, events: body.events, active: body.active, description: body.description }
    }
}

/// Query of the two lists.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// 1..100, default 10; larger values are clamped.
    #[param(value_type = PageLimitText, inline, required = false)]
    limit: Option<String>,
    /// An id from a previous page.
    #[param(value_type = UuidText, inline, required = false)]
    cursor: Option<String>,
    /// `before` (default, older) or `after` (newer).
    #[param(value_type = Direction, inline, required = false)]
    direction: Option<String>,
}

/// Path `:id` (and `:delivery_id`) as UUIDs, 400 otherwise.
pub struct Ids(Uuid, Option<Uuid>);

impl<S: Send + Sync> FromRequestParts<S> for Ids {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Path(raw) =
            axum::extract::Path::<std::collections::BTreeMap<String, String>>::from_request_parts(parts, state)
                .await
                .map_err(|_| ApiError::field("id", crate::domain::ids::NotAUuid))?;
        let parse = |name: &str| {
            raw.get(name)
                .map(|v| Uuid::parse_str(v.trim()).map_err(|_| ApiError::field(name, crate::domain::ids::NotAUuid)))
                .transpose()
        };
        let id = parse("id")?.ok_or_else(|| ApiError::field("id", crate::domain::ids::NotAUuid))?;
        Ok(Self(id, parse("delivery_id")?))
    }
}

/// The caller, and whose subscriptions it manages: the tenant of
/// `X-Tenant-ID` (its agents and admins), or without the header the
/// platform's (platform agents). Checked before the path and body.
pub struct Manager {
    owner: Owner,
    user: crate::domain::ids::UserId,
}

impl FromRequestParts<AppState> for Manager {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let who = AuthedIdentity::from_request_parts(parts, state).await?;
        let owner = state.chat().webhook_owner(&who.identity, who.caller.as_ref())?;
        Ok(Self { owner, user: who.identity.user_id })
    }
}

impl ListQuery {
    /// The page asked for; every bad parameter is named in one 400.
    pub fn parse(&self) -> Result<PageRequest<Uuid>, ApiError> {
        let mut problems = Problems::default();
        let (limit, direction) = page_params(&mut problems, self.limit.as_deref(), self.direction.as_deref());
        let cursor = problems
            .optional("cursor", self.cursor.as_deref(), |c| Uuid::parse_str(c.trim()).map_err(|_| "must be a UUID"));
        problems.finish()?;
        Ok(PageRequest { limit, direction, cursor })
    }
}

/// Creates a subscription. The answer carries its signing secret, shown only here.
#[utoipa::path(post, path = "/webhooks", tag = "webhooks",
    params(("X-Tenant-ID" = inline(Option<PositiveIdText>), Header, description = "The tenant whose subscription; omit for a platform-wide one (platform agents)")),
    request_body = CreateWebhookRequest,
    responses(
        (status = 201, description = "Created; `secret` is shown this once", body = inline(ApiResponse<WebhookView>)),
        (status = 400, description = "`validation_error` (`url`: https required, SSRF refusals; `events`)", body = ErrorResponse),
        (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse),
        (status = 413, body = ErrorResponse), (status = 415, body = ErrorResponse),
    ), security(("bearer" = [], "tenant" = []), ("bearer" = [])))]
pub async fn create_webhook(
    State(state): State<AppState>,
    Manager { owner, user }: Manager,
    Json(body): Json<CreateWebhookRequest>,
) -> Result<Success<WebhookView>, ApiError> {
    let input = body.ok_or_else(|| ApiError::field("url", "is required"))?.into();
    let hook = state.chat().create_webhook(owner, user, input).await?;
    Ok(Success::created("webhook created", WebhookView::new(hook, true)))
}

/// Lists the subscriptions, newest first.
#[utoipa::path(get, path = "/webhooks", tag = "webhooks",
    params(ListQuery, ("X-Tenant-ID" = inline(Option<PositiveIdText>), Header, description = "The tenant whose subscriptions; omit for platform-wide ones (platform agents)")),
    responses(
        (status = 200, description = "A page of subscriptions", body = inline(ApiResponse<Vec<WebhookView>>)),
        (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse),
    ), security(("bearer" = [], "tenant" = []), ("bearer" = [])))]
pub async fn list_webhooks(
    State(state): State<AppState>,
    Manager { owner, .. }: Manager,
    Query(q): Query<ListQuery>,
) -> Result<Success<Vec<WebhookView>>, ApiError> {
    let page = state.chat().list_webhooks(owner, q.parse()?).await?;
    let pagination = Pagination::from(&page);
    let items = page.items.into_iter().map(|h| WebhookView::new(h, false)).collect();
    Ok(Success::ok("webhooks listed", items).paginated(pagination))
}

/// One subscription.
#[utoipa::path(get, path = "/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path, format = Uuid), ("X-Tenant-ID" = inline(Option<PositiveIdText>), Header, description = "Omit for a platform-wide subscription")),
    responses(
        (status = 200, body = inline(ApiResponse<WebhookView>)),
        (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse),
    ), security(("bearer" = [], "tenant" = []), ("bearer" = [])))]
pub async fn get_webhook(
    State(state): State<AppState>,
    Manager { owner, .. }: Manager,
    Ids(id, _): Ids,
) -> Result<Success<WebhookView>, ApiError> {
    let hook = state.chat().get_webhook(owner, id).await?;
    Ok(Success::ok("webhook found", WebhookView::new(hook, false)))
}

/// Changes a subscription; `{"active": true}` resumes a paused one.
#[utoipa::path(patch, path = "/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path, format = Uuid), ("X-Tenant-ID" = inline(Option<PositiveIdText>), Header, description = "Omit for a platform-wide subscription")),
    request_body = UpdateWebhookRequest,
    responses(
        (status = 200, body = inline(ApiResponse<WebhookView>)),
        (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse),
        (status = 413, body = ErrorResponse), (status = 415, body = ErrorResponse),
    ), security(("bearer" = [], "tenant" = []), ("bearer" = [])))]
pub async fn update_webhook(
    State(state): State<AppState>,
    Manager { owner, .. }: Manager,
    Ids(id, _): Ids,
    Json(body): Json<UpdateWebhookRequest>,
) -> Result<Success<WebhookView>, ApiError> {
    let input = body.unwrap_or_default().into();
    let hook = state.chat().update_webhook(owner, id, input).await?;
    Ok(Success::ok("webhook updated", WebhookView::new(hook, false)))
}

/// Deletes a subscription and its delivery log; answers with it as it was.
#[utoipa::path(delete, path = "/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path, format = Uuid), ("X-Tenant-ID" = inline(Option<PositiveIdText>), Header, description = "Omit for a platform-wide subscription")),
    responses(
        (status = 200, body = inline(ApiResponse<WebhookView>)),
        (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse),
    ), security(("bearer" = [], "tenant" = []), ("bearer" = [])))]
pub async fn delete_webhook(
    State(state): State<AppState>,
    Manager { owner, .. }: Manager,
    Ids(id, _): Ids,
) -> Result<Success<WebhookView>, ApiError> {
    let hook = state.chat().delete_webhook(owner, id).await?;
    Ok(Success::ok("webhook deleted", WebhookView::new(hook, false)))
}

/// Replaces the signing secret (shown this once). The previous secret keeps
/// signing too (two signatures per request) until `previous_secret_expires_at`.
#[utoipa::path(post, path = "/webhooks/{id}/rotate-secret", tag = "webhooks",
    params(("id" = String, Path, format = Uuid), ("X-Tenant-ID" = inline(Option<PositiveIdText>), Header, description = "Omit for a platform-wide subscription")),
    responses(
        (status = 200, description = "Rotated; `secret` is the new one", body = inline(ApiResponse<WebhookView>)),
        (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse),
    ), security(("bearer" = [], "tenant" = []), ("bearer" = [])))]
pub async fn rotate_secret(
    State(state): State<AppState>,
    Manager { owner, .. }: Manager,
    Ids(id, _): Ids,
) -> Result<Success<WebhookView>, ApiError> {
    let hook = state.chat().rotate_webhook_secret(owner, id).await?;
    Ok(Success::ok("secret rotated", WebhookView::new(hook, true)))
}

/// The subscription's delivery log, newest first.
#[utoipa::path(get, path = "/webhooks/{id}/deliveries", tag = "webhooks",
    params(("id" = String, Path, format = Uuid), ListQuery, ("X-Tenant-ID" = inline(Option<PositiveIdText>), Header, description = "Omit for a platform-wide subscription")),
    responses(
        (status = 200, description = "A page of deliveries", body = inline(ApiResponse<Vec<DeliveryView>>)),
        (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse),
    ), security(("bearer" = [], "tenant" = []), ("bearer" = [])))]
pub async fn list_deliveries(
    State(state): State<AppState>,
    Manager { owner, .. }: Manager,
    Ids(id, _): Ids,
    Query(q): Query<ListQuery>,
) -> Result<Success<Vec<DeliveryView>>, ApiError> {
    let page = state.chat().list_deliveries(owner, id, q.parse()?).await?;
    let pagination = Pagination::from(&page);
    let items = page.items.into_iter().map(DeliveryView::from).collect();
    Ok(Success::ok("deliveries listed", items).paginated(pagination))
}

/// Sends a delivery's event again, as a new delivery with the same
/// `webhook-id` (so a receiver that already has it can drop it).
#[utoipa::path(post, path = "/webhooks/{id}/deliveries/{delivery_id}/redeliver", tag = "webhooks",
    params(("id" = String, Path, format = Uuid), ("delivery_id" = String, Path, format = Uuid),
        ("X-Tenant-ID" = inline(Option<PositiveIdText>), Header, description = "Omit for a platform-wide subscription")),
    responses(
        (status = 202, description = "Queued for delivery now (held while the subscription is not active)", body = inline(ApiResponse<DeliveryView>)),
        (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse),
    ), security(("bearer" = [], "tenant" = []), ("bearer" = [])))]
pub async fn redeliver(
    State(state): State<AppState>,
    Manager { owner, .. }: Manager,
    Ids(id, delivery): Ids,
) -> Result<Success<DeliveryView>, ApiError> {
    let delivery = delivery.ok_or_else(|| ApiError::field("delivery_id", crate::domain::ids::NotAUuid))?;
    let created = state.chat().redeliver(owner, id, delivery).await?;
    Ok(Success::accepted("redelivery queued", created.into()))
}
