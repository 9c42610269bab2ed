//! Building the envelope (CONTRACT section 6) for successes and errors.

use super::model::{ApiResponse, ErrorResponse, Meta, Pagination};
use crate::domain::time::Timestamp;
use crate::error::AppError;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

tokio::task_local! {
    /// The current request's id, set by the request-id middleware for the
    /// whole life of the request so every envelope can carry it.
    pub static REQUEST_ID: String;
}

fn meta(pagination: Option<Pagination>) -> Meta {
    Meta {
        request_id: REQUEST_ID.try_with(Clone::clone).unwrap_or_default(),
        timestamp: Timestamp::now().to_rfc3339(),
        pagination,
    }
}

fn json_response<B: Serialize>(status: StatusCode, body: &B) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => {
            let mut res = (status, bytes).into_response();
            res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            res
        }
        Err(err) => {
            tracing::error!(error = %err, "response serialisation failed");
            AppError::Internal(err.into()).into_response()
        }
    }
}

/// A successful envelope.
pub struct Success<T> {
    status: StatusCode,
    message: &'static str,
    data: T,
    pagination: Option<Pagination>,
    headers: Vec<(header::HeaderName, HeaderValue)>,
}

impl<T: Serialize> Success<T> {
    /// 200 with `data`.
    pub fn ok(message: &'static str, data: T) -> Self {
        Self { status: StatusCode::OK, message, data, pagination: None, headers: Vec::new() }
    }

    /// 201 with `data`.
    pub fn created(message: &'static str, data: T) -> Self {
        Self { status: StatusCode::CREATED, ..Self::ok(message, data) }
    }

    /// Adds `meta.pagination`.
    pub fn paginated(mut self, pagination: Pagination) -> Self {
        self.pagination = Some(pagination);
        self
    }

    /// Adds a response header.
    pub fn header(mut self, name: header::HeaderName, value: &'static str) -> Self {
        self.headers.push((name, HeaderValue::from_static(value)));
        self
    }
}

impl<T: Serialize> IntoResponse for Success<T> {
    fn into_response(self) -> Response {
        let body = ApiResponse {
            success: true,
            message: self.message.to_owned(),
            data: Some(self.data),
            meta: meta(self.pagination),
            errors: None,
        };
        let mut res = json_response(self.status, &body);
        res.headers_mut().extend(self.headers);
        res
    }
}

impl AppError {
    /// Status and stable code of this error.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::Validation(_) => (StatusCode::BAD_REQUEST, "validation_error"),
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::Forbidden => (StatusCode::FORBIDDEN, "forbidden"),
            Self::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            Self::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            Self::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            Self::UnsupportedMediaType => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
            Self::SessionAlreadyActive(_) => (StatusCode::BAD_REQUEST, "session_already_active"),
            Self::AgentOffline => (StatusCode::BAD_REQUEST, "agent_offline"),
            Self::AlreadyAssigned(_) => (StatusCode::CONFLICT, "session_already_assigned"),
            Self::IdempotencyKeyReused => (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused"),
            Self::RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            Self::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable"),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal_error"),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let errors = match &self {
            Self::Validation(fields) => Some(fields.clone()),
            Self::SessionAlreadyActive(id) => Some([("session_id".to_owned(), vec![id.to_string()])].into()),
            Self::AgentOffline => Some([("agent_id".to_owned(), vec!["agent is offline".to_owned()])].into()),
            Self::IdempotencyKeyReused => {
                Some([("Idempotency-Key".to_owned(), vec!["was already used with a different body".to_owned()])].into())
            }
            _ => None,
        };
        // Server-side failures are logged once, here, with the request id of the span.
        match &self {
            Self::Internal(cause) => tracing::error!(error = ?cause, "request failed"),
            Self::Unavailable(cause) => tracing::warn!(error = %cause, "storage unavailable"),
            _ => {}
        }
        let body = ErrorResponse { success: false, message: code.to_owned(), data: None, meta: meta(None), errors };
        let mut res = json_response(status, &body);
        match self {
            Self::RateLimited(secs) => {
                if let Ok(value) = HeaderValue::from_str(&secs.to_string()) {
                    res.headers_mut().insert(header::RETRY_AFTER, value);
                }
            }
            Self::Unauthorized => {
                res.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            Self::Unavailable(_) => {
                res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        res
    }
}
