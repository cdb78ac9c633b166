//! Event-driven sends: producers put `{"app_id", "device_id", "idempotency_key", "message"}`
//! on the sends queue; each is sent through the same path as `POST
//! /devices/{device_id}/messages` (with `Prefer: respond-async`), exactly once per
//! `idempotency_key`, and its outcome reaches the App's webhook. The queue's access policy
//! is the authentication; the device must belong to `app_id`.
//!
//! A message that can never succeed (not JSON, a missing field, an unknown App or device,
//! an invalid message, a key reused with another body) goes to the dead letters with the
//! reason. One that may succeed later (the device is not connected yet, a storage or
//! provider hiccup) comes back after a delay and is dead-lettered by the queue's
//! `maxReceiveCount` if it never does.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::watch;
use uuid::Uuid;
use wa_api::Context;
use wa_core::consume::{ConsumeOptions, Settle};
use wa_core::messages::{SendRequest, validate_idempotency_key};
use wa_core::queue::{Queue, QueueError, Received, SENDS};
use wa_core::send_service::Outcome as SendOutcome;
use wa_errors::{ApiError, ErrorCode, parse_json};

/// One producer message.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendJob {
    pub app_id: Uuid,
    pub device_id: Uuid,
    pub idempotency_key: String,
    /// The body of `POST /devices/{device_id}/messages`.
    pub message: serde_json::Value,
}

/// What to do with a sends-queue message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted (or already accepted under this key): delete it.
    Accepted { message_id: String },
    /// May succeed later: let it come back.
    Retry(String),
    /// Can never succeed: dead-letter it with this reason.
    Dead(String),
}

/// How long a message that may succeed later waits before it is tried again.
pub const RETRY_DELAY: Duration = Duration::from_secs(30);

fn reason(e: &ApiError) -> String {
    let field = e
        .details()
        .get("field")
        .and_then(|f| f.as_str())
        .map(|f| format!(" (field {f})"))
        .unwrap_or_default();
    format!("{}: {}{field}", e.code().as_str(), e.message())
}

/// The reason of an error of the send path, whose fields name the message body's members
/// and the `Idempotency-Key` header: renamed to where they are in a producer's message.
fn send_reason(e: &ApiError) -> String {
    let field = match e.details().get("field").and_then(|f| f.as_str()) {
        Some("Idempotency-Key") => " (field idempotency_key)".to_owned(),
        Some(f) => format!(" (field message.{f})"),
        None => String::new(),
    };
    format!("{}: {}{field}", e.code().as_str(), e.message())
}

fn classify(code: ErrorCode, reason: String) -> Outcome {
    let later = code.status().is_server_error()
        || matches!(
            code,
            ErrorCode::DeviceNotConnected
                | ErrorCode::ProviderRateLimit
                | ErrorCode::RequestCanceled
                | ErrorCode::RateLimitExceeded
        );
    if later {
        Outcome::Retry(reason)
    } else {
        Outcome::Dead(reason)
    }
}

/// Sends one producer message.
pub async fn handle(ctx: &Context, body: &str) -> Outcome {
    let job: SendJob = match parse_json(body.as_bytes()) {
        Ok(j) => j,
        Err(e) => return Outcome::Dead(reason(&e)),
    };
    let key = match validate_idempotency_key(&job.idempotency_key) {
        Ok(k) => k,
        Err(_) => {
            return Outcome::Dead(
                "validation_error: idempotency_key must be 1-255 visible ASCII characters \
                 (field idempotency_key)"
                    .into(),
            );
        }
    };
    let request: SendRequest = match serde_json::to_vec(&job.message)
        .map_err(ApiError::internal)
        .and_then(|b| parse_json(&b))
    {
        Ok(r) => r,
        Err(e) => {
            let e = match e.details().get("field").and_then(|f| f.as_str()) {
                Some(f) if f != "body" => {
                    ApiError::validation(format!("message.{f}"), e.message().to_owned())
                }
                _ => ApiError::validation("message", e.message().to_owned()),
            };
            return Outcome::Dead(reason(&e));
        }
    };
    let app = match ctx.store.get_app(job.app_id).await {
        Ok(Some(a)) => a,
        Ok(None) => {
            return Outcome::Dead(format!("not_found: no App {} (field app_id)", job.app_id));
        }
        Err(e) => return Outcome::Retry(format!("reading the App failed: {e}")),
    };
    match ctx
        .messages
        .send(&app, job.device_id, None, request, Some(key), true)
        .await
    {
        Ok(reply) => of_send(&reply.outcome),
        Err(e) => classify(e.code(), send_reason(&e)),
    }
}

/// What becomes of a sends-queue message with this outcome: accepted ones are deleted,
/// the ones that may succeed later come back after [`RETRY_DELAY`], hopeless ones go to
/// the dead letters.
pub fn settlement(outcome: &Outcome, receive_count: u32) -> Settle {
    match outcome {
        Outcome::Accepted { message_id } => {
            tracing::info!(%message_id, "event-driven send accepted");
            Settle::Delete
        }
        Outcome::Retry(why) => {
            tracing::warn!(reason = %why, receive_count, "event-driven send will be retried");
            Settle::RetryAfter(RETRY_DELAY)
        }
        Outcome::Dead(why) => {
            tracing::warn!(reason = %why, "event-driven send moved to the dead letters");
            Settle::DeadLetter(why.clone())
        }
    }
}

/// What a send's outcome means for its queue message: accepted unless it failed (a
/// replayed final failure of this key, already reported), rate-limited sends included
/// (they stay queued and the worker tries them again by itself).
pub(crate) fn of_send(outcome: &SendOutcome) -> Outcome {
    match outcome {
        SendOutcome::Failed { error, .. } => classify(
            error.code(),
            format!("{}: {}", error.code().as_str(), error.message()),
        ),
        accepted => Outcome::Accepted {
            message_id: accepted.message().message_id.clone(),
        },
    }
}

/// Applies an outcome to a received message.
pub async fn settle(
    queue: &dyn Queue,
    received: &Received,
    outcome: &Outcome,
) -> Result<(), QueueError> {
    let settle = settlement(outcome, received.receive_count);
    wa_core::consume::apply(queue, SENDS, received, &settle).await
}

/// How long a received sends-queue message stays invisible (extended while it is handled).
const VISIBILITY: Duration = Duration::from_secs(60);

/// Consumes the sends queue until `shutdown` turns true (a long-running process's driver;
/// in AWS the SQS trigger of the `wa-fn-sends` Lambda does this), one message at a time
/// (as the Lambda does its batch).
pub async fn consume(ctx: Arc<Context>, queue: Arc<dyn Queue>, shutdown: watch::Receiver<bool>) {
    let options = ConsumeOptions {
        queue: SENDS,
        concurrency: 1,
        visibility: VISIBILITY,
        idle_min: Duration::from_millis(500),
        idle_max: Duration::from_millis(500),
        on_turn: wa_core::consume::no_heartbeat,
    };
    let handler = move |r: Received| {
        let ctx = ctx.clone();
        async move { settlement(&handle(&ctx, &r.body).await, r.receive_count) }
    };
    wa_core::consume::consume(queue, options, handler, shutdown).await;
}

/// The sends Lambda's handler: a batch from the sends queue (SQS trigger with
/// `ReportBatchItemFailures`). Accepted and dead-lettered records succeed (SQS deletes
/// them); the ones to retry get [`RETRY_DELAY`] as their visibility timeout and are
/// reported failed, so they come back after that delay, not after the queue's visibility
/// timeout. If the delay cannot be set they still come back, after the queue's timeout.
pub async fn handle_batch(
    ctx: &Context,
    queue: &dyn Queue,
    event: aws_lambda_events::event::sqs::SqsEvent,
) -> aws_lambda_events::event::sqs::SqsBatchResponse {
    let mut response = aws_lambda_events::event::sqs::SqsBatchResponse::default();
    for record in event.records {
        let id = record.message_id.clone().unwrap_or_default();
        let body = record.body.clone().unwrap_or_default();
        let outcome = handle(ctx, &body).await;
        let received = Received {
            message_id: id.clone(),
            receipt: record.receipt_handle.clone().unwrap_or_default(),
            body,
            group: record.attributes.get("MessageGroupId").cloned(),
            receive_count: record
                .attributes
                .get("ApproximateReceiveCount")
                .and_then(|c| c.parse().ok())
                .unwrap_or(1),
        };
        let failed = match &outcome {
            Outcome::Accepted { message_id } => {
                tracing::info!(%message_id, "event-driven send accepted");
                false
            }
            Outcome::Retry(why) => {
                tracing::warn!(
                    reason = %why,
                    sqs_message_id = %id,
                    receive_count = received.receive_count,
                    retry_in_secs = RETRY_DELAY.as_secs(),
                    "event-driven send will be retried"
                );
                if let Err(e) = queue
                    .retry_after(SENDS, &received.receipt, RETRY_DELAY)
                    .await
                {
                    tracing::warn!(error = %e, "setting the retry delay failed; it comes back after the queue's visibility timeout");
                }
                true
            }
            Outcome::Dead(why) => match queue.dead_letter(SENDS, &received, why).await {
                Ok(()) => {
                    tracing::warn!(reason = %why, "event-driven send moved to the dead letters");
                    false
                }
                Err(e) => {
                    tracing::error!(error = %e, reason = %why, "dead-lettering an event-driven send failed");
                    true
                }
            },
        };
        if failed {
            response.add_failure(id);
        }
    }
    response
}
