//! `ApiError` and the seed envelope it renders as (its serde form; the HTTP response is
//! built by the `http` feature).

use std::borrow::Cow;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::ErrorCode;

/// An error answered to an API caller.
///
/// It renders as `{"error":{"code","message","details"},"request_id"}` with the code's status.
/// For 5xx codes the internal cause (if any) is logged, never sent.
#[derive(Debug, Clone)]
pub struct ApiError {
    code: ErrorCode,
    message: Cow<'static, str>,
    details: Map<String, Value>,
    retry_after_secs: Option<u64>,
    cause: Option<String>,
}

/// Short form for handler signatures.
pub type ApiResult<T, E = ApiError> = Result<T, E>;

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<Cow<'static, str>>) -> Self {
        ApiError {
            code,
            message: message.into(),
            details: Map::new(),
            retry_after_secs: None,
            cause: None,
        }
    }

    /// 400 validation_error naming the offending field in `details.field`.
    pub fn validation(field: impl Into<String>, message: impl Into<Cow<'static, str>>) -> Self {
        ApiError::new(ErrorCode::ValidationError, message).with_detail("field", field.into())
    }

    pub fn not_found(message: impl Into<Cow<'static, str>>) -> Self {
        ApiError::new(ErrorCode::NotFound, message)
    }

    pub fn conflict(message: impl Into<Cow<'static, str>>) -> Self {
        ApiError::new(ErrorCode::Conflict, message)
    }

    /// 500 internal_error. `cause` is logged with the request id and never sent to the caller.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        let mut e = ApiError::new(ErrorCode::InternalError, "unexpected server error");
        e.cause = Some(cause.to_string());
        e
    }

    pub fn invalid_api_key() -> Self {
        ApiError::new(
            ErrorCode::InvalidApiKey,
            "Bearer token is missing or invalid",
        )
    }

    pub fn unauthorized(message: impl Into<Cow<'static, str>>) -> Self {
        ApiError::new(ErrorCode::Unauthorized, message)
    }

    pub fn with_detail(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.details.insert(key.to_owned(), value.into());
        self
    }

    /// Adds a `Retry-After` header (seconds).
    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after_secs = Some(secs);
        self
    }

    /// Keeps an internal cause for the log line of a 5xx answer.
    pub fn with_cause(mut self, cause: impl std::fmt::Display) -> Self {
        self.cause = Some(cause.to_string());
        self
    }

    pub fn code(&self) -> ErrorCode {
        self.code
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn details(&self) -> &Map<String, Value> {
        &self.details
    }

    /// The `Retry-After` seconds, when set.
    pub fn retry_after_secs(&self) -> Option<u64> {
        self.retry_after_secs
    }

    /// Logs a 5xx answer (with its internal cause, when kept) on the current request's
    /// span; other answers are not logged here.
    pub fn log_if_server_error(&self) {
        if !self.code.status().is_server_error() {
            return;
        }
        match &self.cause {
            Some(cause) => tracing::error!(code = %self.code, cause = %cause, "request failed"),
            None => tracing::warn!(code = %self.code, message = %self.message, "request failed"),
        }
    }

    /// The envelope as JSON bytes.
    pub fn to_json(&self, request_id: &str) -> Vec<u8> {
        serde_json::to_vec(&self.envelope(request_id)).expect("an error envelope always serializes")
    }

    /// The body this error renders to, with the given request id.
    pub fn envelope(&self, request_id: &str) -> ErrorEnvelope<'_> {
        ErrorEnvelope {
            error: ErrorBody {
                code: self.code.as_str(),
                message: &self.message,
                details: (!self.details.is_empty()).then_some(&self.details),
            },
            request_id: request_id.to_owned(),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for ApiError {}

/// The error body: exactly the seed's shape.
#[derive(Debug, Serialize)]
pub struct ErrorEnvelope<'a> {
    pub error: ErrorBody<'a>,
    pub request_id: String,
}

#[derive(Debug, Serialize)]
pub struct ErrorBody<'a> {
    pub code: &'static str,
    pub message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<&'a Map<String, Value>>,
}
