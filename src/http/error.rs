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

    /// Status and stable code of this error: the service's table
    /// ([`Error::public`]) plus the few failures only HTTP has.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        let (status, code) = match self {
            Self::Service(err) => {
                let public = err.public();
                (public.status, public.code)
            }
            Self::MethodNotAllowed => (405, "method_not_allowed"),
            Self::PayloadTooLarge => (413, "payload_too_large"),
            Self::UnsupportedMediaType => (415, "unsupported_media_type"),
            Self::Busy => (503, "server_busy"),
            Self::RequestTimeout => (408, "request_timeout"),
        };
        (StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), code)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let errors = match &self {
            Self::Service(err) => {
                err.log("http");
                err.field_errors()
            }
            _ => None,
        };
        let body = ErrorResponse { success: false, message: code.to_owned(), data: None, meta: meta(None), errors };
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::names::ErrorCode;

    /// Every code an error body can carry is one the document lists.
    #[test]
    fn every_code_sent_is_in_the_documented_enum() {
        let http_only = [
            ApiError::MethodNotAllowed,
            ApiError::PayloadTooLarge,
            ApiError::UnsupportedMediaType,
            ApiError::Busy,
            ApiError::RequestTimeout,
        ];
        for err in crate::service::error_samples().into_iter().map(ApiError::Service).chain(http_only) {
            let (status, code) = err.status_and_code();
            let parsed: Result<ErrorCode, _> = serde_json::from_value(serde_json::Value::from(code));
            assert!(parsed.is_ok(), "{code} ({status}) is not in ErrorCode");
            assert!(status.is_client_error() || status.is_server_error(), "{code}: {status}");
        }
    }
}
