//! Building the envelope (docs/API.md §4); errors are built in [`super::error`].

use super::model::{ApiResponse, ErrorResponse, Meta, Pagination};
use crate::domain::time::Timestamp;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

tokio::task_local! {
    /// The current request's id, set by the request-id middleware for the
    /// whole life of the request so every envelope can carry it.
    pub static REQUEST_ID: String;
}

/// `meta` of an envelope produced now, for the current request.
pub fn meta(pagination: Option<Pagination>) -> Meta {
    Meta {
        request_id: REQUEST_ID.try_with(Clone::clone).unwrap_or_default(),
        timestamp: Timestamp::now().to_rfc3339(),
        pagination,
    }
}

/// A JSON body with its status and content type.
pub fn json_response<B: Serialize>(status: StatusCode, body: &B) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => json_bytes(status, bytes),
        Err(err) => {
            tracing::error!(error = %err, "response serialisation failed");
            // Built here rather than through `ApiError`, which builds its
            // bodies with this function.
            let body = ErrorResponse {
                success: false,
                message: "internal_error".to_owned(),
                data: None,
                meta: meta(None),
                errors: None,
            };
            let bytes = serde_json::to_vec(&body).unwrap_or_default();
            json_bytes(StatusCode::INTERNAL_SERVER_ERROR, bytes)
        }
    }
}

fn json_bytes(status: StatusCode, bytes: Vec<u8>) -> Response {
    let mut res = (status, bytes).into_response();
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res
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

    /// 202 with `data`: taken on, done later.
    pub fn accepted(message: &'static str, data: T) -> Self {
        Self { status: StatusCode::ACCEPTED, ..Self::ok(message, data) }
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

    /// Adds the `RateLimit` headers of a quota the request counted against.
    pub fn quota(mut self, state: Option<crate::service::QuotaState>) -> Self {
        if let Some(state) = state {
            let mut headers = axum::http::HeaderMap::new();
            super::rate_limit::quota_headers(&mut headers, &state);
            self.headers.extend(headers.into_iter().filter_map(|(name, value)| Some((name?, value))));
        }
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
