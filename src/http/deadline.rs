//! Every request's deadline (`--request-timeout`): the handler runs within
//! it (writes settle their commit within it, see `service::write`), and a
//! handler still waiting at the end, on a database that does not answer, is
//! answered 503 then. Nothing hangs because the database does.

use super::error::ApiError;
use crate::service::{Error, within};
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::time::Duration;
use tokio::time::Instant;

/// Past the deadline, a write still settling gets this long to answer
/// itself before the request is cut off.
const GRACE: Duration = Duration::from_millis(250);

/// Runs the rest of the request within `timeout`.
pub async fn limit(timeout: Duration, req: Request, next: Next) -> Response {
    let deadline = Instant::now() + timeout;
    match tokio::time::timeout_at(deadline + GRACE, within(deadline, next.run(req))).await {
        Ok(res) => res,
        Err(_) => ApiError::from(Error::Unavailable(anyhow::anyhow!("request deadline reached"))).into_response(),
    }
}
