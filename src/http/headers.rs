//! Headers every response carries: the security headers a JSON API wants,
//! and CORS for the frontend that runs on an origin of its own.

use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::response::Response;
use tower_http::cors::{AllowOrigin, CorsLayer};

/// For JSON: nothing may load from it, nothing may frame it.
const JSON_POLICY: &str = "default-src 'none'; frame-ancestors 'none'";

/// The request headers a browser may send to the API (docs/API.md §3.3).
const REQUEST_HEADERS: [&str; 6] =
    ["authorization", "x-tenant-id", "content-type", "idempotency-key", "x-request-id", "last-event-id"];
/// The response headers a browser script may read.
const EXPOSED_HEADERS: [&str; 5] =
    ["x-request-id", "retry-after", "idempotent-replayed", "ratelimit", "ratelimit-policy"];

/// Adds `nosniff`, `no-referrer`, `no-store` and a deny-all policy, each
/// unless the response set its own (the web UI sets its policy and caching).
pub async fn security(mut res: Response) -> Response {
    let headers = res.headers_mut();
    for (name, value) in [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-store"),
        (header::CONTENT_SECURITY_POLICY, JSON_POLICY),
    ] {
        headers.entry(name).or_insert(HeaderValue::from_static(value));
    }
    res
}

/// CORS for exactly these origins (none: no CORS headers at all, the
/// browser's same-origin rule stands).
pub fn cors(origins: &[HeaderValue]) -> CorsLayer {
    if origins.is_empty() {
        return CorsLayer::new();
    }
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins.iter().cloned()))
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE])
        .allow_headers(REQUEST_HEADERS.map(HeaderName::from_static))
        .expose_headers(EXPOSED_HEADERS.map(HeaderName::from_static))
        .max_age(std::time::Duration::from_secs(600))
}

/// Parses `LIVECHAT_CORS_ORIGINS`: exact origins (`scheme://host[:port]`),
/// comma-separated; empty entries are ignored.
pub fn parse_origins(raw: &[String]) -> Result<Vec<HeaderValue>, String> {
    raw.iter()
        .map(|o| o.trim())
        .filter(|o| !o.is_empty())
        .map(|origin| {
            let (scheme, rest) =
                origin.split_once("://").ok_or(format!("{origin:?} is not an origin (scheme://host[:port])"))?;
            let plain = !rest.is_empty() && !rest.contains('/') && !rest.contains('*') && !origin.ends_with('/');
            if !matches!(scheme, "http" | "https") || !plain {
                return Err(format!("{origin:?} is not an exact origin (scheme://host[:port], no path, no wildcard)"));
            }
            HeaderValue::from_str(origin).map_err(|_| format!("{origin:?} is not a valid header value"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::parse_origins;

    #[test]
    fn origins_are_exact() {
        let ok =
            parse_origins(&["http://localhost:5173".into(), " https://app.example ".into(), String::new()]).unwrap();
        assert_eq!(ok.len(), 2);
        for bad in ["*", "localhost:5173", "https://app.example/", "https://*.example", "ftp://x", "https://a/b"] {
            assert!(parse_origins(&[bad.into()]).is_err(), "{bad}");
        }
    }
}
