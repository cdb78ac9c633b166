//! The success envelope `{"data": ..., "request_id": ...}`.

use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode};
use serde::Serialize;

use wa_errors::request_id;

/// A successful answer: `data` wrapped with the request id.
#[derive(Debug)]
pub struct ApiOk<T> {
    status: StatusCode,
    headers: HeaderMap,
    data: T,
}

/// 200 with `data`.
pub fn ok<T: Serialize>(data: T) -> ApiOk<T> {
    ApiOk {
        status: StatusCode::OK,
        headers: HeaderMap::new(),
        data,
    }
}

/// 201 with `data`.
pub fn created<T: Serialize>(data: T) -> ApiOk<T> {
    ApiOk {
        status: StatusCode::CREATED,
        ..ok(data)
    }
}

impl<T> ApiOk<T> {
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    pub fn with_header(mut self, name: http::HeaderName, value: http::HeaderValue) -> Self {
        self.headers.insert(name, value);
        self
    }
}

#[derive(Serialize)]
struct Envelope<'a, T> {
    data: &'a T,
    request_id: String,
}

impl<T: Serialize> IntoResponse for ApiOk<T> {
    fn into_response(self) -> Response {
        let body = Envelope {
            data: &self.data,
            request_id: request_id::current(),
        };
        // Most answers fit: no growing (and copying) the buffer while writing.
        let mut bytes = Vec::with_capacity(1024);
        match serde_json::to_writer(&mut bytes, &body) {
            Ok(()) => {
                let mut res = (self.status, self.headers, bytes).into_response();
                res.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static("application/json"),
                );
                res
            }
            Err(e) => wa_errors::ApiError::internal(format!("response did not serialize: {e}"))
                .into_response(),
        }
    }
}
