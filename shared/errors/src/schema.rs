//! OpenAPI schemas of the envelopes (documentation only; the wire format is produced by
//! `ApiError` and `ApiOk`).

use serde::Serialize;
use utoipa::ToSchema;

/// The error envelope every failed request answers with.
#[derive(Serialize, ToSchema)]
#[schema(as = ErrorResponse)]
pub struct ErrorResponse {
    pub error: ErrorDetail,
    /// The id of the request, also in the `x-request-id` header and the server's logs.
    pub request_id: String,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, such as `validation_error`.
    pub code: String,
    /// Human-readable description.
    pub message: String,
    /// Extra facts; `validation_error` always carries `field`. Omitted when empty.
    #[schema(value_type = Option<Object>)]
    pub details: Option<serde_json::Value>,
}
