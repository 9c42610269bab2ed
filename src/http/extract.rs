//! Extractors that turn raw requests into checked values, answering every
//! rejection with the envelope (never axum's plain-text bodies).

use super::AppState;
use super::error::ApiError;
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

fn is_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

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
        if bytes.is_empty() {
            return Ok(Self(None));
        }
        if !content_type.as_deref().is_some_and(is_json) {
            return Err(ApiError::UnsupportedMediaType);
        }
        // Every body is a JSON object. Checked before serde sees it: a derived
        // struct also reads a JSON array as its fields in order, so `[]` or
        // `[5]` would otherwise pass for `{}` or `{"agent_id": 5}`.
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(match serde_json::from_slice::<serde::de::IgnoredAny>(&bytes) {
                Ok(_) => ApiError::field("body", "must be a JSON object"),
                Err(_) => ApiError::field("body", "must be valid JSON"),
            });
        }
        let mut de = serde_json::Deserializer::from_slice(&bytes);
        let value = serde_path_to_error::deserialize::<_, T>(&mut de).map_err(|err| body_error(&err))?;
        // One JSON value and nothing after it (whitespace aside): a second
        // value or trailing text is refused, never silently dropped.
        de.end().map_err(|_| ApiError::field("body", "must be one JSON value with nothing after it"))?;
        Ok(Self(Some(value)))
    }
}

/// Names the field at fault, without echoing parser positions or the body.
fn body_error(err: &serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let inner = err.inner();
    if inner.is_syntax() || inner.is_eof() {
        return ApiError::field("body", "must be valid JSON");
    }
    let text = inner.to_string();
    let text = text.split(" at line ").next().unwrap_or(&text).to_owned();
    if let Some(field) = text.strip_prefix("missing field `").and_then(|r| r.strip_suffix('`')) {
        return ApiError::field(field, "is required");
    }
    match err.path().to_string().as_str() {
        "." => ApiError::field("body", format!("must be a JSON object ({text})")),
        path => ApiError::field(path, text),
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
        serde_urlencoded::from_str(parts.uri.query().unwrap_or_default())
            .map(Self)
            .map_err(|err| ApiError::field("query", err))
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
    let token = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or(Error::Unauthorized)?;
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
    let mut values = parts.headers.get_all("x-tenant-id").iter();
    let Some(raw) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ApiError::field("X-Tenant-ID", "must be sent once"));
    }
    let tenant = raw
        .to_str()
        .map_err(|_| crate::domain::ids::NotPositive)
        .and_then(TenantId::parse)
        .map_err(|e| ApiError::field("X-Tenant-ID", e))?;
    tracing::Span::current().record("tenant_id", tenant.get());
    Ok(Some(tenant))
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
