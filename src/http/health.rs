//! Liveness and readiness probes, outside the authenticated API.

use super::AppState;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use serde_json::{Value, json};

/// `/healthz` and `/readyz`.
pub fn router() -> Router<AppState> {
    Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz))
}

/// Alive: the process answers.
async fn healthz() -> axum::Json<Value> {
    axum::Json(json!({ "status": "ok" }))
}

/// Ready: storage answers a query.
async fn readyz(State(state): State<AppState>) -> (StatusCode, axum::Json<Value>) {
    match state.chat().ready().await {
        Ok(()) => (StatusCode::OK, axum::Json(json!({ "status": "ready", "storage": "ok" }))),
        Err(err) => {
            tracing::warn!(error = %err, "readiness check failed");
            (StatusCode::SERVICE_UNAVAILABLE, axum::Json(json!({ "status": "unavailable", "storage": "unreachable" })))
        }
    }
}
