//! How a send's outcome is answered over HTTP: its status, its body (the message, or the
//! error envelope with `details.message_id`) and its headers (`Idempotent-Replayed`,
//! `Retry-After`). A replayed outcome renders exactly as it did the first time, apart from
//! the request id.

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use wa_api::views::{MessageData, MessageView};
use wa_core::messages::Message;
use wa_core::send_service::{Outcome, SendReply};
use wa_errors::ApiError;

/// A rendered answer.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// The JSON body, with `request_id`.
    pub body: String,
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        (self.status, self.headers, self.body).into_response()
    }
}

/// `{"data": {"message": ...}}`.
fn data(m: &Message) -> Value {
    json!({ "data": MessageData { message: MessageView::from(m) } })
}

/// `{"error": {"code", "message", "details"?}}`, as every error renders.
fn error(e: &ApiError) -> Value {
    let mut err = json!({"code": e.code().as_str(), "message": e.message()});
    if !e.details().is_empty() {
        err["details"] = Value::Object(e.details().clone());
    }
    json!({ "error": err })
}

/// The answer to a send: 200 sent, 202 queued, the error's status for a failure (its code,
/// `details.message_id`), 429 with `Retry-After` when rate limited; `Idempotent-Replayed:
/// true` when the reply is a key's first outcome again. Pure: `request_id` goes into the body.
pub fn answer(reply: &SendReply, request_id: &str) -> Answer {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let (status, mut body) = match &reply.outcome {
        Outcome::Sent(m) => (StatusCode::OK, data(m)),
        Outcome::Queued(m) => (StatusCode::ACCEPTED, data(m)),
        Outcome::Failed { error: e, .. } => (StatusCode::from(e.code().status()), error(e)),
        Outcome::RateLimited {
            error: e,
            retry_after,
            ..
        } => {
            headers.insert(
                header::RETRY_AFTER,
                HeaderValue::from(retry_after.as_secs()),
            );
            (StatusCode::from(e.code().status()), error(e))
        }
    };
    if reply.replayed {
        headers.insert(
            HeaderName::from_static("idempotent-replayed"),
            HeaderValue::from_static("true"),
        );
    }
    if let Some(obj) = body.as_object_mut() {
        obj.insert("request_id".into(), request_id.into());
    }
    Answer {
        status,
        headers,
        body: body.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use wa_core::messages::{MessageError, MessageStatus};
    use wa_errors::ErrorCode;

    fn message(status: MessageStatus) -> Message {
        let at = wa_core::time::parse("2030-01-02T03:04:05.678Z").unwrap();
        let mut m = wa_testkit::fixtures::outbound_text(
            uuid::Uuid::from_u128(7),
            uuid::Uuid::from_u128(9),
            "hi",
            at,
        );
        m.message_id = "3EB0AAAAAAAAAAAAAAAAAA".into();
        m.status = status;
        m
    }

    fn reply(outcome: Outcome, replayed: bool) -> SendReply {
        SendReply { outcome, replayed }
    }

    fn headers(a: &Answer) -> Vec<(String, String)> {
        let mut h: Vec<_> = a
            .headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_owned()))
            .collect();
        h.sort();
        h
    }

    fn json_only() -> Vec<(String, String)> {
        vec![("content-type".into(), "application/json".into())]
    }

    const VIEW: &str = r#"{"attempts":0,"chat":"15550001111@s.whatsapp.net","created_at":"2030-01-02T03:04:05.678Z","device_id":"00000000-0000-0000-0000-000000000007","direction":"outbound","edited_at":null,"error":null,"from":null,"from_phone":null,"idempotency_key":null,"media_path":null,"mentions":[],"message_id":"3EB0AAAAAAAAAAAAAAAAAA","mime_type":null,"next_attempt_at":null,"reply_to":null,"sent_at":null,"status":"STATUS","text":"hi","to":"15550001111@s.whatsapp.net","type":"text"}"#;

    fn data_body(status: &str) -> String {
        format!(
            r#"{{"data":{{"message":{}}},"request_id":"req-1"}}"#,
            VIEW.replace("STATUS", status)
        )
    }

    /// Sent is 200, queued 202, both with the message.
    #[test]
    fn sent_is_200_and_queued_202_with_the_message() {
        let rows = [
            (
                Outcome::Sent(message(MessageStatus::Sent)),
                StatusCode::OK,
                "sent",
            ),
            (
                Outcome::Queued(message(MessageStatus::Queued)),
                StatusCode::ACCEPTED,
                "queued",
            ),
        ];
        for (outcome, status, shown) in rows {
            let a = answer(&reply(outcome, false), "req-1");
            assert_eq!(a.status, status, "{shown}");
            assert_eq!(a.body, data_body(shown));
            assert_eq!(headers(&a), json_only());
        }
    }

    #[test]
    fn failed_is_the_codes_status_with_the_envelope() {
        let mut m = message(MessageStatus::Failed);
        m.error = Some(MessageError {
            code: ErrorCode::GroupPostingRestricted,
            message: "only admins can post".into(),
        });
        let error = ApiError::new(ErrorCode::GroupPostingRestricted, "only admins can post")
            .with_detail("message_id", m.message_id.clone());
        let a = answer(
            &reply(Outcome::Failed { message: m, error }, false),
            "req-1",
        );
        assert_eq!(a.status, StatusCode::FORBIDDEN);
        assert_eq!(
            a.body,
            r#"{"error":{"code":"group_posting_restricted","details":{"message_id":"3EB0AAAAAAAAAAAAAAAAAA"},"message":"only admins can post"},"request_id":"req-1"}"#
        );
        assert_eq!(headers(&a), json_only());
    }

    #[test]
    fn rate_limited_is_429_with_retry_after() {
        let m = message(MessageStatus::Queued);
        let error = ApiError::new(ErrorCode::ProviderRateLimit, "slow down")
            .with_detail("message_id", m.message_id.clone());
        let a = answer(
            &reply(
                Outcome::RateLimited {
                    message: m,
                    error,
                    retry_after: Duration::from_secs(17),
                },
                false,
            ),
            "req-1",
        );
        assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            a.body,
            r#"{"error":{"code":"provider_rate_limit","details":{"message_id":"3EB0AAAAAAAAAAAAAAAAAA"},"message":"slow down"},"request_id":"req-1"}"#
        );
        let mut expected = json_only();
        expected.push(("retry-after".into(), "17".into()));
        assert_eq!(headers(&a), expected);
    }

    #[test]
    fn a_replay_renders_the_same_body_and_says_so() {
        let first = answer(
            &reply(Outcome::Sent(message(MessageStatus::Sent)), false),
            "req-1",
        );
        let again = answer(
            &reply(Outcome::Sent(message(MessageStatus::Sent)), true),
            "req-1",
        );
        assert_eq!((again.status, &again.body), (first.status, &first.body));
        let mut expected = json_only();
        expected.push(("idempotent-replayed".into(), "true".into()));
        assert_eq!(headers(&again), expected);
    }
}
