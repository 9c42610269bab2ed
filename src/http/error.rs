//! The HTTP error: a service error, or one of the few failures only HTTP
//! has (method, body size, media type, rate limit). Mapped to a status and
//! envelope in exactly one place, here; each server-side failure is logged
//! here, once, with the request id of the span.

use super::model::ErrorResponse;
use super::response::{json_response, meta};
use crate::service::Error;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A use case refused or failed.
    #[error(transparent)]
    Service(#[from] Error),
    /// 405 on a known path.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 413: body over the configured limit.
    #[error("payload too large")]
    PayloadTooLarge,
    /// 415: a body that is not JSON.
    #[error("unsupported media type")]
    UnsupportedMediaType,
    /// 503: the server is at its connection cap.
    #[error("server busy")]
    Busy,
    /// 408: the request's body did not arrive in time.
    #[error("request timeout")]
    RequestTimeout,
}

impl ApiError {
    /// A 400 naming one field.
    pub fn field(field: &str, message: impl ToString) -> Self {
        Self::Service(Error::field(field, message))
    }

    /// Status and stable code of this error.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::Service(err) => match err {
                Error::Validation(_) => (StatusCode::BAD_REQUEST, "validation_error"),
                Error::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
                Error::Forbidden => (StatusCode::FORBIDDEN, "forbidden"),
                Error::NotFound => (StatusCode::NOT_FOUND, "not_found"),
                Error::SessionAlreadyActive(_) => (StatusCode::BAD_REQUEST, "session_already_active"),
                Error::AgentOffline => (StatusCode::BAD_REQUEST, "agent_offline"),
                Error::AlreadyAssigned(_) => (StatusCode::CONFLICT, "session_already_assigned"),
                Error::IdempotencyKeyReused => (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused"),
                Error::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
                Error::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable"),
                // Not a 503: retrying blindly could store it twice.
                Error::OutcomeUnknown(_) => (StatusCode::GATEWAY_TIMEOUT, "outcome_unknown"),
                Error::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal_error"),
            },
            Self::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            Self::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            Self::UnsupportedMediaType => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
            Self::Busy => (StatusCode::SERVICE_UNAVAILABLE, "server_busy"),
            Self::RequestTimeout => (StatusCode::REQUEST_TIMEOUT, "request_timeout"),
        }
    }

    /// `errors` of the envelope: the fields at fault, if any.
    fn field_errors(&self) -> Option<crate::service::FieldErrors> {
        let one = |field: &str, message: String| Some([(field.to_owned(), vec![message])].into());
        match self {
            Self::Service(Error::Validation(fields)) => Some(fields.clone()),
            Self::Service(Error::SessionAlreadyActive(id)) => one("session_id", id.to_string()),
            Self::Service(Error::AgentOffline) => one("agent_id", "agent is offline".to_owned()),
            Self::Service(Error::OutcomeUnknown(subject)) => one(subject.field, subject.id.clone()),
            Self::Service(Error::IdempotencyKeyReused) => {
                one("Idempotency-Key", "was already used with a different body".to_owned())
            }
            _ => None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        match &self {
            Self::Service(Error::Internal(cause)) => tracing::error!(error = ?cause, "request failed"),
            Self::Service(Error::Unavailable(cause)) => tracing::warn!(error = %cause, "storage unavailable"),
            Self::Service(Error::OutcomeUnknown(subject)) => {
                tracing::error!(field = subject.field, id = %subject.id, "commit outcome unknown at the deadline");
            }
            _ => {}
        }
        let body = ErrorResponse {
            success: false,
            message: code.to_owned(),
            data: None,
            meta: meta(None),
            errors: self.field_errors(),
        };
        let mut res = json_response(status, &body);
        let headers = res.headers_mut();
        match self {
            Self::Service(Error::RateLimited { retry_after, quota }) => {
                if let Ok(value) = HeaderValue::from_str(&retry_after.to_string()) {
                    headers.insert(header::RETRY_AFTER, value);
                }
                if let Some(quota) = quota {
                    super::rate_limit::quota_headers(headers, &quota);
                }
            }
            Self::Service(Error::Unauthorized) => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            Self::Service(Error::Unavailable(_)) | Self::Busy => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        res
    }
}
