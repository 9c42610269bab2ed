//! The web UI (agent console and tenant widget): static files built from
//! `ui/src` into `ui/dist`, embedded in the binary and served at `/` when
//! `--ui` / `LIVECHAT_UI` (or `--dev`) is on. The UI is a plain client of the
//! public API; nothing here reads application state.

use axum::Router;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rust_embed::Embed;

/// The build output, compiled into the binary (see docs/UI.md).
#[derive(Embed)]
#[folder = "ui/dist/"]
struct Assets;

/// Scripts, styles and connections from this origin only; no inline code, no
/// framing, no plugins, and DOM sinks that take strings (`innerHTML`, …)
/// refused outright, so a message can only ever be rendered as text.
/// `connect-src 'self'` also admits this origin's `ws:` / `wss:` URLs.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'; require-trusted-types-for 'script'; trusted-types 'none'";

/// The page every UI route answers with; the script picks console or widget from the token.
const INDEX: &str = "index.html";

/// Routes for `/` and each embedded file; other paths keep the JSON 404.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let mut router = Router::new().route("/", get(|headers: HeaderMap| async move { asset(INDEX, &headers) }));
    for name in Assets::iter() {
        let name = name.into_owned();
        router =
            router.route(&format!("/{name}"), get(move |headers: HeaderMap| async move { asset(&name, &headers) }));
    }
    router
}

/// One embedded file, revalidated by its content hash on every load so a new
/// binary's UI is picked up at once.
fn asset(name: &str, headers: &HeaderMap) -> Response {
    let Some(file) = Assets::get(name) else {
        // Routes exist only for embedded names; this is unreachable in practice.
        return StatusCode::NOT_FOUND.into_response();
    };
    let etag = format!("\"{}\"", hex::encode(&file.metadata.sha256_hash()[..16]));
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|tag| tag.trim() == etag));
    let mut response =
        if fresh { StatusCode::NOT_MODIFIED.into_response() } else { file.data.into_owned().into_response() };
    let out = response.headers_mut();
    out.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type(name)));
    out.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(value) = HeaderValue::from_str(&etag) {
        out.insert(header::ETAG, value);
    }
    out.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    out.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    out.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    out.insert(HeaderName::from_static("cross-origin-opener-policy"), HeaderValue::from_static("same-origin"));
    response
}

/// The types the build emits; anything else is served as opaque bytes.
fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::{Assets, INDEX, content_type};

    #[test]
    fn the_embedded_build_has_a_page_and_its_script() {
        assert!(Assets::get(INDEX).is_some(), "ui/dist/index.html is embedded");
        assert!(Assets::get("app.js").is_some(), "ui/dist/app.js is embedded");
        assert_eq!(content_type("app.js"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("LICENSE"), "application/octet-stream");
    }
}
