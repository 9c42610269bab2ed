//! Where requests enter: the router, middleware and handlers. Handlers
//! parse input, call one use case of [`crate::service`] and shape the
//! envelope; the stream endpoints hand their connections to
//! [`crate::realtime`].

mod agents;
mod body;
mod deadline;
pub mod error;
pub mod extract;
mod headers;
mod health;
pub mod input;
mod messages;
pub mod metrics;
pub mod model;
pub mod names;
pub mod openapi;
pub mod params;
pub mod rate_limit;
mod request_id;
pub mod response;
pub mod server;
mod sessions;
mod streams;
pub mod ui;
mod webhooks;

use crate::auth::Verifier;
use crate::realtime::Realtime;
use crate::service::Livechat;
use axum::Router;
use axum::response::{IntoResponse, Response};
use error::ApiError;
use std::sync::Arc;
use tower_http::catch_panic::CatchPanicLayer;

/// The prefixes every livechat route is mounted under (docs/API.md §1).
pub const PREFIXES: [&str; 2] = ["/api/livechat", "/api/vendor/livechat"];

/// Shared, cheaply clonable state of the HTTP layer.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

struct Inner {
    chat: Livechat,
    verifier: Verifier,
    realtime: Arc<Realtime>,
    rate_limit: rate_limit::RateLimit,
}

impl AppState {
    /// Bundles the use cases with token verification, the rate limit and the real-time engine.
    pub fn new(chat: Livechat, verifier: Verifier, realtime: Arc<Realtime>, rate_limit: rate_limit::RateLimit) -> Self {
        Self(Arc::new(Inner { chat, verifier, realtime, rate_limit }))
    }

    /// The per-user request limit.
    pub fn rate_limit(&self) -> &rate_limit::RateLimit {
        &self.0.rate_limit
    }

    /// This node's real-time engine.
    pub fn realtime(&self) -> &Arc<Realtime> {
        &self.0.realtime
    }

    /// The use cases.
    pub fn chat(&self) -> &Livechat {
        &self.0.chat
    }

    /// Token verification.
    pub fn verifier(&self) -> &Verifier {
        &self.0.verifier
    }
}

/// The livechat API relative to one prefix, mounted under each of
/// [`PREFIXES`], with its OpenAPI document (`/openapi.json`): each route is
/// registered once, with its `#[utoipa::path]`, and the document is made of
/// the routes registered.
fn api(max_message_chars: usize) -> Router<AppState> {
    let (routes, paths) = utoipa_axum::router::OpenApiRouter::with_openapi(openapi::base())
        .merge(sessions::router())
        .merge(messages::router())
        .merge(agents::router())
        .merge(streams::router())
        .merge(webhooks::router())
        .split_for_parts();
    let document = openapi::served_document(paths, max_message_chars);
    routes
        .route("/openapi.json", axum::routing::get(move || openapi::serve(document.clone())))
        .method_not_allowed_fallback(method_not_allowed)
}

/// How the router is put together.
#[derive(Debug, Clone, Default)]
pub struct RouterOptions {
    /// Larger bodies are refused (413).
    pub max_body_bytes: usize,
    /// A body must arrive within this (408).
    pub body_timeout: std::time::Duration,
    /// Serve the web UI at `/`.
    pub ui: bool,
    /// Browser origins allowed to call the API (CORS); empty: none.
    pub cors_origins: Vec<axum::http::HeaderValue>,
    /// Serve `/metrics` on this router (rather than on an address of its own).
    pub metrics: bool,
}

pub use headers::parse_origins;

/// The whole application router.
pub fn router(state: AppState, options: &RouterOptions) -> Router {
    let request_timeout = state.chat().limits().request_timeout;
    let (max_body_bytes, body_timeout) = (options.max_body_bytes, options.body_timeout);
    let api = api(state.chat().limits().max_message_chars);
    let mut app = Router::new().merge(health::router());
    for prefix in PREFIXES {
        app = app.nest(prefix, api.clone());
    }
    if options.ui {
        app = app.merge(ui::router());
    }
    if options.metrics {
        app = app.merge(metrics::router(state.chat().metrics().clone()));
    }
    let counted = state.chat().metrics().clone();
    app.fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn(move |req, next| deadline::limit(request_timeout, req, next)))
        .route_layer(axum::middleware::from_fn_with_state(counted, metrics::record))
        .layer(axum::middleware::from_fn(move |req, next| body::buffer(max_body_bytes, body_timeout, req, next)))
        .layer(CatchPanicLayer::custom(on_panic))
        .layer(axum::middleware::from_fn(request_id::scope))
        .layer(axum::middleware::map_response(headers::security))
        .layer(headers::cors(&options.cors_origins))
        .with_state(state)
}

async fn not_found() -> ApiError {
    crate::service::Error::NotFound.into()
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

fn on_panic(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    ApiError::from(crate::service::Error::Internal(anyhow::anyhow!("handler panicked"))).into_response()
}
