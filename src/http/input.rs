//! Client input as pure functions: bodies, query strings and headers in,
//! checked values or a 400 naming the field out. The extractors and
//! handlers call these, and so do the fuzz targets (`fuzz/`) and the test
//! that replays their corpus, so what is fuzzed is what the server runs.

use super::error::ApiError;
use crate::domain::ids::{NotPositive, TenantId};
use crate::domain::message::{BadIdempotencyKey, IdempotencyKey};
use serde::de::DeserializeOwned;

/// Header values, as the extractors see them.
pub use axum::http::HeaderValue;

pub use super::agents::{InboxQuery, PresenceRequest};
pub use super::messages::{ListMessagesQuery, MarkReadRequest};
pub use super::model::{SendMessageRequest, StartSessionRequest};
pub use super::request_id::accepted as request_id;
pub use super::sessions::{ListSessionsQuery, TransferRequest};
pub use super::streams::StreamQuery;
pub use super::webhooks::{CreateWebhookRequest, ListQuery as WebhookListQuery, UpdateWebhookRequest};

/// Whether a `Content-Type` names JSON (`application/json` or `application/*+json`).
pub fn is_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// A request body: empty is `None` (so `POST /sessions` may send nothing);
/// otherwise it must be labelled JSON (415) and be exactly one JSON value
/// of type `T` (400 naming the field at fault).
pub fn json_body<T: DeserializeOwned>(content_type: Option<&str>, bytes: &[u8]) -> Result<Option<T>, ApiError> {
    if bytes.is_empty() {
        return Ok(None);
    }
    if !content_type.is_some_and(is_json) {
        return Err(ApiError::UnsupportedMediaType);
    }
    // JSON is UTF-8. Checked up front: serde skips the values of unknown
    // fields without looking inside their strings, so invalid UTF-8 there
    // would otherwise be accepted (found by the `body` fuzz target).
    let text = std::str::from_utf8(bytes).map_err(|_| ApiError::field("body", "must be valid JSON (UTF-8)"))?;
    // Every body is a JSON object. Checked before serde sees it: a derived
    // struct also reads a JSON array as its fields in order, so `[]` or
    // `[5]` would otherwise pass for `{}` or `{"agent_id": 5}`.
    if !crate::wire::opens_an_object(text) {
        return Err(match serde_json::from_str::<serde::de::IgnoredAny>(text) {
            Ok(_) => ApiError::field("body", "must be a JSON object"),
            Err(_) => ApiError::field("body", "must be valid JSON"),
        });
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let value = serde_path_to_error::deserialize::<_, T>(&mut de).map_err(|err| body_error(&err))?;
    // One JSON value and nothing after it (whitespace aside): a second
    // value or trailing text is refused, never silently dropped.
    de.end().map_err(|_| ApiError::field("body", "must be one JSON value with nothing after it"))?;
    Ok(Some(value))
}

/// Names the field at fault, without echoing parser positions or the body.
fn body_error(err: &serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let inner = err.inner();
    if inner.is_syntax() || inner.is_eof() {
        return ApiError::field("body", "must be valid JSON");
    }
    let text = inner.to_string();
    let text = text.split(" at line ").next().unwrap_or(&text).to_owned();
    if let Some(field) = text.strip_prefix("missing field `").and_then(|r| r.strip_suffix('`')) {
        return ApiError::field(field, "is required");
    }
    match err.path().to_string().as_str() {
        "." => ApiError::field("body", format!("must be a JSON object ({text})")),
        path => ApiError::field(path, text),
    }
}

/// A query string (without the `?`) as `T`; any failure is a 400 on `query`.
pub fn query<T: DeserializeOwned>(raw: &str) -> Result<T, ApiError> {
    serde_urlencoded::from_str(raw).map_err(|err| ApiError::field("query", err))
}

/// `X-Tenant-ID`, given every value the request carries: absent is `None`;
/// otherwise sent once, a positive integer, or a 400.
pub fn tenant_id<'a>(values: impl IntoIterator<Item = &'a HeaderValue>) -> Result<Option<TenantId>, ApiError> {
    let mut values = values.into_iter();
    let Some(raw) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ApiError::field("X-Tenant-ID", "must be sent once"));
    }
    raw.to_str()
        .map_err(|_| NotPositive)
        .and_then(TenantId::parse)
        .map(Some)
        .map_err(|e| ApiError::field("X-Tenant-ID", e))
}

/// The token of an `Authorization: Bearer …` header, if there is one.
pub fn bearer_token(value: Option<&HeaderValue>) -> Option<&str> {
    value
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// `Idempotency-Key`: absent is `None`; otherwise it must be a valid key (400).
pub fn idempotency_key(value: Option<&HeaderValue>) -> Result<Option<IdempotencyKey>, ApiError> {
    value
        .map(|v| {
            v.to_str()
                .ok()
                .and_then(|k| IdempotencyKey::parse(k).ok())
                .ok_or_else(|| ApiError::field("Idempotency-Key", BadIdempotencyKey))
        })
        .transpose()
}

/// Where an event stream resumes: the `Last-Event-ID` header unless it is
/// blank, else `?last_event_id=` (checked later, against the session).
pub fn last_event_id<'a>(header: Option<&'a HeaderValue>, query: Option<&'a str>) -> Option<&'a str> {
    header.and_then(|v| v.to_str().ok()).filter(|v| !v.trim().is_empty()).or(query)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::Error;

    fn fields(err: ApiError) -> Vec<String> {
        match err {
            ApiError::Service(Error::Validation(fields)) => fields.into_keys().collect(),
            other => panic!("not a validation error: {other:?}"),
        }
    }

    #[test]
    fn invalid_utf8_is_refused_even_in_a_field_that_is_ignored() {
        let body = b"{\"message\":\"Halo, stok \xb1upuk kami habis\"}";
        let err = json_body::<StartSessionRequest>(Some("application/json"), body).err();
        assert_eq!(err.map(fields), Some(vec!["body".to_owned()]));
        let ok = json_body::<StartSessionRequest>(Some("application/json"), b"{\"message\":\"Halo\"}");
        assert!(matches!(ok, Ok(Some(StartSessionRequest { agent_id: None }))));
    }

    #[test]
    fn unlabelled_bodies_are_refused_and_empty_ones_are_absent() {
        assert!(matches!(json_body::<SendMessageRequest>(None, b"{}"), Err(ApiError::UnsupportedMediaType)));
        assert!(matches!(
            json_body::<SendMessageRequest>(Some("text/plain"), b"{}"),
            Err(ApiError::UnsupportedMediaType)
        ));
        assert!(matches!(json_body::<SendMessageRequest>(None, b""), Ok(None)));
    }
}
