//! `X-Request-ID`: accepted from the client when well-formed, generated
//! otherwise, echoed on the response and carried by every log line.

use super::response::REQUEST_ID;
use axum::extract::{MatchedPath, Request};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use std::time::Instant;
use tracing::Instrument;

/// Header name, lower-case as HTTP/2 requires.
pub const HEADER: &str = "x-request-id";

/// The client's `X-Request-ID` when well-formed (1 to 128 of `[A-Za-z0-9._-]`), else `None`.
pub fn accepted(value: Option<&HeaderValue>) -> Option<&str> {
    value.and_then(|v| v.to_str().ok()).filter(|v| acceptable(v))
}

fn acceptable(id: &str) -> bool {
    (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Wraps the request in a span and a task-local holding its id.
pub async fn scope(req: Request, next: Next) -> Response {
    let id =
        accepted(req.headers().get(HEADER)).map_or_else(|| uuid::Uuid::now_v7().simple().to_string(), str::to_owned);
    let route = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned());
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %req.method(),
        path = %req.uri().path(),
        route = route.as_deref().unwrap_or("-"),
        tenant_id = tracing::field::Empty,
        user_id = tracing::field::Empty,
    );
    let started = Instant::now();
    let mut res = REQUEST_ID.scope(id.clone(), next.run(req)).instrument(span.clone()).await;
    span.in_scope(|| {
        tracing::info!(
            status = res.status().as_u16(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "request finished"
        );
    });
    if let Ok(value) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(HEADER, value);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::acceptable;

    #[test]
    fn request_ids_are_bounded_and_plain() {
        assert!(acceptable("abc-DEF_1.2"));
        assert!(!acceptable(""));
        assert!(!acceptable(&"a".repeat(129)));
        assert!(!acceptable("has space"));
        assert!(!acceptable("semi;colon"));
    }
}
