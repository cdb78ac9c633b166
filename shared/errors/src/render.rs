//! `ApiError` as an HTTP response (feature `http`, for the HTTP crates only): the envelope
//! with the code's status, `Content-Type: application/json` and `Retry-After` when set.
//! The impl lives here because of the orphan rule: neither the trait nor the type belong to
//! the HTTP crate.

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};

use crate::{ApiError, Status, request_id};

impl From<Status> for StatusCode {
    fn from(status: Status) -> StatusCode {
        StatusCode::from_u16(status.as_u16()).expect("every code's status is a valid HTTP status")
    }
}

impl PartialEq<StatusCode> for Status {
    fn eq(&self, other: &StatusCode) -> bool {
        self.as_u16() == other.as_u16()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.log_if_server_error();
        let body = self.to_json(&request_id::current());
        let mut res = (StatusCode::from(self.code().status()), body).into_response();
        let headers = res.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(secs) = self.retry_after_secs() {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;

    #[test]
    fn statuses_convert() {
        for code in ErrorCode::ALL {
            assert_eq!(
                StatusCode::from(code.status()).as_u16(),
                code.status().as_u16()
            );
        }
        assert_eq!(ErrorCode::NotFound.status(), StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn renders_the_envelope_with_its_status_and_headers() {
        let res = request_id::scope("req-7".into(), async {
            ApiError::new(ErrorCode::ProviderRateLimit, "slow down")
                .with_retry_after(7)
                .into_response()
        })
        .await;
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(res.headers()[header::RETRY_AFTER], "7");
        assert_eq!(res.headers()[header::CONTENT_TYPE], "application/json");
    }
}
