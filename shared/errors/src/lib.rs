//! The error contract of wa-server, without HTTP: the seed's codes and their statuses as
//! numbers (`ErrorCode`, `Status`), the one error type use cases and handlers return
//! (`ApiError`) and its envelope's serde form, the parsing of caller input into typed values
//! with errors that name the field, and the task-local request id.
//!
//! The feature `http` (turned on by the HTTP crates only) renders `ApiError` as an axum
//! response; the extractors, the request-id layer and router finishing live in `wa-api`.

mod code;
mod error;
mod parse;
#[cfg(feature = "http")]
mod render;
pub mod request_id;
pub mod schema;

pub use code::{ErrorCode, Status};
pub use error::{ApiError, ApiResult, ErrorBody, ErrorEnvelope};
pub use parse::{parse_json, parse_query, parse_uuid, too_large};
