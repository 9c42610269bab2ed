//! Extractors that turn raw requests into checked values, answering every
//! rejection with the envelope (never axum's plain-text bodies).

use super::AppState;
use super::error::ApiError;
use super::input;
use crate::domain::access::{Caller, Identity};
use crate::domain::ids::{SessionId, TenantId};
use crate::domain::page::{Direction, PageLimit};
use crate::service::{Error, Problems};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{StatusCode, header, request::Parts};
use serde::de::DeserializeOwned;

/// A JSON body. An empty body is `None` (so `POST /sessions` may send nothing);
/// a non-empty body must be labelled JSON (415) and parse (400 per field).
pub struct Json<T>(pub Option<T>);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let content_type = req.headers().get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap_or("").to_owned());
        let bytes = Bytes::from_request(req, state).await.map_err(|rej: BytesRejection| {
            if rej.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else {
                ApiError::field("body", "could not read the request body")
            }
        })?;
        input::json_body(content_type.as_deref(), &bytes).map(Self)
    }
}

/// `limit` and `direction` of a list request. Failures are recorded in
/// `problems`, whose `finish` then refuses the request, so the defaults
/// returned in that case are never used.
pub fn page_params(problems: &mut Problems, limit: Option<&str>, direction: Option<&str>) -> (PageLimit, Direction) {
    let limit = problems.check("limit", PageLimit::parse(limit));
    let direction = problems.check("direction", Direction::parse(direction));
    (limit.unwrap_or_default(), direction.unwrap_or_default())
}

/// Query parameters; any parse failure is a 400 naming the parameters.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        input::query(parts.uri.query().unwrap_or_default()).map(Self)
    }
}

/// The `:id` segment of a session route, as a session id (400 otherwise,
/// including for segments that are not valid UTF-8).
pub struct SessionPath(pub SessionId);

impl<S: Send + Sync> FromRequestParts<S> for SessionPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Path(raw) = axum::extract::Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::field("id", crate::domain::ids::NotAUuid))?;
        SessionId::parse(&raw).map(Self).map_err(|e| ApiError::field("id", e))
    }
}

fn verify_bearer(parts: &Parts, state: &AppState) -> Result<Identity, ApiError> {
    let token = input::bearer_token(parts.headers.get(header::AUTHORIZATION)).ok_or(Error::Unauthorized)?;
    let identity = state.verifier().verify(token).map_err(|err| {
        tracing::debug!(reason = %err, "token refused");
        Error::Unauthorized
    })?;
    tracing::Span::current().record("user_id", identity.user_id.get());
    state.rate_limit().check(identity.user_id)?;
    Ok(identity)
}

/// `X-Tenant-ID`, if sent: once, a positive integer, or a 400.
fn tenant_header(parts: &Parts) -> Result<Option<TenantId>, ApiError> {
    let tenant = input::tenant_id(parts.headers.get_all("x-tenant-id"))?;
    if let Some(tenant) = tenant {
        tracing::Span::current().record("tenant_id", tenant.get());
    }
    Ok(tenant)
}

/// The verified caller, admitted to the tenant named by `X-Tenant-ID`.
pub struct Authed(pub Caller);

impl FromRequestParts<AppState> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let identity = verify_bearer(parts, state)?;
        let tenant = tenant_header(parts)?.ok_or_else(|| ApiError::field("X-Tenant-ID", "is required"))?;
        Ok(Self(state.chat().admit(&identity, tenant)?))
    }
}

/// The verified identity, for routes where `X-Tenant-ID` is optional; when
/// the header is sent, the caller is admitted to that tenant as usual.
pub struct AuthedIdentity {
    /// Admitted caller, when `X-Tenant-ID` was sent.
    pub caller: Option<Caller>,
    /// What the token proves.
    pub identity: Identity,
}

impl FromRequestParts<AppState> for AuthedIdentity {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let identity = verify_bearer(parts, state)?;
        let caller = tenant_header(parts)?.map(|tenant| state.chat().admit(&identity, tenant)).transpose()?;
        Ok(Self { caller, identity })
    }
}
