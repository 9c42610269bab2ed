//! The HTTP envelope of the guide's TypeScript types (`APIResponse<T>`,
//! `Meta`, `Pagination`) and the request bodies. The data shapes
//! (`ChatSession`, `ChatMessage`) are in [`crate::wire`]. Optional fields
//! are omitted when absent, never `null`.

use crate::domain::page::Page;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `Pagination`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Pagination {
    /// Cursor for the older page; present iff `has_next`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub next_cursor: Option<String>,
    /// Cursor for the newer page (with `direction=after`); present iff `has_prev`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub prev_cursor: Option<String>,
    /// Older matching items exist.
    pub has_next: bool,
    /// Newer matching items exist.
    pub has_prev: bool,
    /// The effective page size (after clamping).
    pub limit: u32,
}

impl<T> From<&Page<T>> for Pagination {
    fn from(p: &Page<T>) -> Self {
        Self {
            next_cursor: p.next_cursor.clone(),
            prev_cursor: p.prev_cursor.clone(),
            has_next: p.has_next,
            has_prev: p.has_prev,
            limit: p.limit,
        }
    }
}

/// `Meta`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Meta {
    /// The request id (also in the `X-Request-ID` header).
    pub request_id: String,
    /// When the response was produced.
    #[schema(format = DateTime)]
    pub timestamp: String,
    /// Only on list endpoints.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub pagination: Option<Pagination>,
}

/// `APIResponse<T>`: every body the server sends.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApiResponse<T> {
    /// Whether the request succeeded.
    pub success: bool,
    /// A short English message on success; a snake_case code on error.
    pub message: String,
    /// The payload; `null` on error.
    #[schema(required)]
    pub data: Option<T>,
    /// Request metadata.
    pub meta: Meta,
    /// Field → messages on validation errors; otherwise `null`.
    #[schema(required)]
    pub errors: Option<std::collections::BTreeMap<String, Vec<String>>>,
}

/// `StartSessionRequest`.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct StartSessionRequest {
    /// Agents only: the agent to assign; defaults to the caller.
    #[schema(minimum = 1, maximum = 9223372036854775807_i64)]
    pub agent_id: Option<i64>,
}

impl StartSessionRequest {
    /// The agent named, if any, as a user id (400 otherwise).
    pub fn agent(&self) -> Result<Option<crate::domain::ids::UserId>, crate::service::Error> {
        self.agent_id
            .map(|a| crate::domain::ids::UserId::new(a).map_err(|e| crate::service::Error::field("agent_id", e)))
            .transpose()
    }
}

/// `SendMessageRequest`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SendMessageRequest {
    /// 1 to 4,000 characters after trimming.
    pub message: String,
}

/// `APIResponse<null>`: the body of every error.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorResponse {
    /// Always `false`.
    pub success: bool,
    /// Stable snake_case code, e.g. `validation_error`, `not_found`.
    #[schema(value_type = super::names::ErrorCode)]
    pub message: String,
    /// Always `null`.
    #[schema(value_type = Option<Object>, required)]
    pub data: Option<serde_json::Value>,
    /// Request metadata.
    pub meta: Meta,
    /// Field → messages, or `null` when no field is at fault.
    #[schema(required)]
    pub errors: Option<std::collections::BTreeMap<String, Vec<String>>>,
}
