//! Every request body is read whole (up to the configured limit) before the
//! handler runs. A handler may then refuse a request (401, 403, 404) before
//! looking at the body, and the connection stays usable: nothing of the
//! request is left unread on it. When the body cannot be read whole (too
//! large, or the client stopped sending), the answer says `Connection:
//! close`, so a client never reuses a connection the server is about to drop.

use super::error::ApiError;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};

/// Buffers the body (which must arrive within `timeout`), or answers 413 /
/// 408 / 400 with `Connection: close`.
pub async fn buffer(max_bytes: usize, timeout: std::time::Duration, req: Request, next: Next) -> Response {
    let declared =
        req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > max_bytes as u64) {
        return closing(ApiError::PayloadTooLarge);
    }
    let (parts, body) = req.into_parts();
    match tokio::time::timeout(timeout, Limited::new(body, max_bytes).collect()).await {
        Ok(Ok(collected)) => next.run(Request::from_parts(parts, Body::from(collected.to_bytes()))).await,
        Ok(Err(err)) if err.is::<LengthLimitError>() => closing(ApiError::PayloadTooLarge),
        Ok(Err(_)) => closing(ApiError::field("body", "could not read the request body")),
        Err(_) => closing(ApiError::RequestTimeout),
    }
}

fn closing(err: ApiError) -> Response {
    let mut res = err.into_response();
    res.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    res
}
