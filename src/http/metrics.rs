//! `GET /metrics` (Prometheus text format) and the per-request counts and
//! durations behind it. Operators restrict the path at their proxy, or move
//! it to an address of its own with `--metrics-bind`.

use crate::metrics::{Metrics, RequestLabels, RouteLabels};
use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::time::Instant;

/// Counts each request by route, method and status, and times it.
pub async fn record(State(metrics): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map_or("unmatched", MatchedPath::as_str).to_owned();
    let method = req.method().as_str().to_owned();
    let started = Instant::now();
    let res = next.run(req).await;
    let status = res.status().as_u16();
    metrics
        .durations
        .get_or_create(&RouteLabels { route: route.clone(), method: method.clone() })
        .observe(started.elapsed().as_secs_f64());
    metrics.requests.get_or_create(&RequestLabels { route, method, status }).inc();
    res
}

/// The `/metrics` route.
pub fn router<S: Clone + Send + Sync + 'static>(metrics: Arc<Metrics>) -> Router<S> {
    Router::new().route(
        "/metrics",
        axum::routing::get(move || async move {
            let mut res = metrics.render().into_response();
            res.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
            res
        }),
    )
}
