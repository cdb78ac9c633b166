//! Extractors whose every rejection is an `ApiError` with the seed envelope.

use axum::{
    extract::{FromRequest, FromRequestParts, Request},
    http::request::Parts,
};
use bytes::Bytes;
use http::{StatusCode, header};
use serde::de::DeserializeOwned;
use wa_errors::{ApiError, parse_json, parse_query, too_large};

/// A JSON body. Wrong content type or unparsable JSON: validation_error with
/// `details.field = "body"`; a missing, unknown or mistyped field: validation_error naming it;
/// over the body limit: 413 request_too_large.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(ApiError::validation(
                "body",
                "expected a JSON body with Content-Type: application/json",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                too_large()
            } else {
                ApiError::validation("body", "the request body could not be read")
            }
        })?;
        parse_json(&bytes).map(ApiJson)
    }
}

fn is_json(headers: &http::HeaderMap) -> bool {
    let Some(ct) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Query parameters; a bad value, or a parameter given more than once, is validation_error
/// naming the parameter.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parse_query(parts.uri.query().unwrap_or("")).map(ApiQuery)
    }
}
