//! The error contract of wa-server: the seed's codes and statuses (`ErrorCode`), the one error
//! type handlers return (`ApiError`) and its envelope, request ids, the success envelope,
//! extractors whose rejections are `ApiError`s, and the layers that wrap every router
//! (request id, panic catching, body limit, 404/405 fallbacks).

mod code;
mod error;
mod extract;
pub mod request_id;
mod response;
pub mod schema;

use std::any::Any;

use axum::{
    Router,
    extract::DefaultBodyLimit,
    response::{IntoResponse, Response},
};

pub use code::ErrorCode;
pub use error::{ApiError, ApiResult, ErrorBody, ErrorEnvelope};
pub use extract::{ApiJson, ApiQuery, parse_json, parse_uuid, too_large};
pub use request_id::RequestIdConfig;
pub use response::{ApiOk, created, ok};

/// Wraps a complete router with what every API surface needs: the 404 and 405 answers in the
/// envelope, the body limit, panic catching (500 internal_error, no internals in the body) and,
/// outermost, the request-id middleware.
pub fn finish_router<S>(router: Router<S>, max_body_bytes: usize, ids: RequestIdConfig) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(on_panic))
        .layer(axum::middleware::from_fn_with_state(
            ids,
            request_id::middleware,
        ))
}

async fn not_found(uri: http::Uri) -> ApiError {
    ApiError::not_found(format!("no route for {}", uri.path()))
}

async fn method_not_allowed(method: http::Method) -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        format!("method {method} is not allowed on this route"),
    )
}

fn on_panic(payload: Box<dyn Any + Send + 'static>) -> Response {
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".into());
    ApiError::internal(format!("handler panicked: {what}")).into_response()
}
