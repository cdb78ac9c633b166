//! The send pipeline's decisions, as pure functions: whether a send command goes ahead
//! given its message and device, what each provider outcome and receive count leads to,
//! and the backoffs. `send` carries them out.

use std::time::Duration;

use wa_core::devices::DeviceStatus;
use wa_core::messages::{MessageError, MessageStatus};
use wa_core::provider::ProviderFailure;
use wa_errors::ErrorCode;

/// How many times a send may find its device still reconnecting before it fails.
pub const MAX_RECONNECT_WAITS: u32 = 8;

/// How long a send waits for a reconnecting device before it looks again.
pub const RECONNECT_WAIT: Duration = Duration::from_secs(2);

/// The longest wait of a rate-limited send, jitter included.
pub const RATE_LIMIT_CAP: Duration = Duration::from_secs(60);

/// Whether a send command goes ahead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    /// The message is no longer waiting to be sent (sent, failed, canceled): nothing to do.
    Skip,
    /// The device is reconnecting: look again after this delay.
    Wait(Duration),
    /// Record the send as failed with this error.
    Fail(MessageError),
    /// The device cannot send (disconnected, logged out, ...): cancel a queued message;
    /// one already `sending` is failed with `fail` instead.
    Cancel {
        why: String,
        fail: Option<MessageError>,
    },
    /// Send it.
    Go,
}

/// The gate of a send: by the message's status, then the device's, then how often the
/// command was delivered (each delivery while reconnecting is one wait).
pub fn gate(message: MessageStatus, device: DeviceStatus, receive_count: u32) -> Gate {
    if !matches!(message, MessageStatus::Queued | MessageStatus::Sending) {
        return Gate::Skip;
    }
    match device {
        DeviceStatus::Connected => Gate::Go,
        DeviceStatus::Connecting if receive_count < MAX_RECONNECT_WAITS => {
            Gate::Wait(RECONNECT_WAIT)
        }
        DeviceStatus::Connecting => Gate::Fail(MessageError {
            code: ErrorCode::WhatsappConnectionLost,
            message: "the device did not reconnect in time".into(),
        }),
        s => {
            let why = format!("the device is {s}; the send was not made");
            let fail = (message == MessageStatus::Sending).then(|| MessageError {
                code: ErrorCode::DeviceNotConnected,
                message: why.clone(),
            });
            Gate::Cancel { why, fail }
        }
    }
}

/// Whether a send starts from the copy of the message its command carries (as created)
/// instead of reading it: on the command's first delivery only. A command delivered again
/// may follow an attempt that changed the message; the store would refuse the copy then,
/// so it is not tried.
pub fn starts_from_created(receive_count: u32) -> bool {
    receive_count <= 1
}

/// Whether to ask the provider if it already has the message before sending it: only for
/// one that was `sending` (a crash may have come between the send and its outcome).
pub fn ask_provider_first(message: MessageStatus) -> bool {
    message == MessageStatus::Sending
}

/// What a provider's answer to a send leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Record it `sent`.
    Sent,
    /// Back to `queued` with this error (the caller sees why it waits) and retried after
    /// `retry_in`.
    RateLimited {
        error: MessageError,
        retry_in: Duration,
    },
    /// The session went away under the send: back to `queued`, and wait for it as for a
    /// reconnect.
    Reconnecting(Duration),
    /// Record it `failed`.
    Failed(MessageError),
}

/// The outcome of the provider's answer to attempt `attempt` (1 for the first), delivered
/// `receive_count` times; `jitter` in `[0.8, 1.2)` spreads rate-limit retries.
pub fn outcome(
    answer: Result<(), ProviderFailure>,
    attempt: u32,
    receive_count: u32,
    jitter: f64,
) -> Outcome {
    match answer {
        Ok(()) => Outcome::Sent,
        Err(f) if f.code == ErrorCode::ProviderRateLimit => Outcome::RateLimited {
            error: MessageError {
                code: f.code,
                message: format!("{}; retried automatically", f.message),
            },
            retry_in: rate_limit_backoff_with(attempt, jitter),
        },
        Err(f)
            if f.code == ErrorCode::DeviceNotConnected && receive_count < MAX_RECONNECT_WAITS =>
        {
            Outcome::Reconnecting(RECONNECT_WAIT)
        }
        Err(f) => Outcome::Failed(MessageError {
            code: f.code,
            message: f.message,
        }),
    }
}

/// Exponential backoff with jitter for a rate-limited send: 1 s, 2 s, 4 s ... each within
/// ±20 %, never more than 60 s ([`RATE_LIMIT_CAP`]).
pub fn rate_limit_backoff(attempt: u32) -> Duration {
    rate_limit_backoff_with(attempt, rand::random_range(0.8..1.2))
}

/// [`rate_limit_backoff`] with the jitter given.
pub fn rate_limit_backoff_with(attempt: u32, jitter: f64) -> Duration {
    let base = 1000u64
        .saturating_mul(1 << attempt.saturating_sub(1).min(6))
        .min(RATE_LIMIT_CAP.as_millis() as u64);
    Duration::from_millis((base as f64 * jitter) as u64).min(RATE_LIMIT_CAP)
}

/// How long a command whose handling failed (storage) waits before it is tried again, by
/// how often it was delivered: 2 s, 4 s ... at most 64 s.
pub fn retry_delay(receive_count: u32) -> Duration {
    Duration::from_secs(2u64.pow(receive_count.min(6)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use DeviceStatus as D;
    use MessageStatus as M;

    fn failure(code: ErrorCode) -> ProviderFailure {
        ProviderFailure::new(code, "why")
    }

    #[test]
    fn a_message_no_longer_waiting_is_skipped() {
        for m in [M::Sent, M::Failed, M::Canceled, M::Delivered, M::Read] {
            assert_eq!(gate(m, D::Connected, 1), Gate::Skip, "{m:?}");
        }
    }

    #[test]
    fn a_connected_device_sends() {
        assert_eq!(gate(M::Queued, D::Connected, 1), Gate::Go);
        assert_eq!(gate(M::Sending, D::Connected, 30), Gate::Go);
    }

    #[test]
    fn a_reconnecting_device_is_waited_for_a_few_deliveries() {
        assert_eq!(
            gate(M::Queued, D::Connecting, MAX_RECONNECT_WAITS - 1),
            Gate::Wait(RECONNECT_WAIT)
        );
    }

    #[test]
    fn a_device_that_never_reconnects_fails_the_send() {
        let Gate::Fail(e) = gate(M::Queued, D::Connecting, MAX_RECONNECT_WAITS) else {
            panic!("not failed");
        };
        assert_eq!(e.code, ErrorCode::WhatsappConnectionLost);
    }

    #[test]
    fn a_device_that_cannot_send_cancels_queued_and_fails_sending() {
        let Gate::Cancel { why, fail } = gate(M::Queued, D::Disconnected, 1) else {
            panic!("not canceled");
        };
        assert_eq!(why, "the device is disconnected; the send was not made");
        assert_eq!(fail, None);
        let Gate::Cancel { fail, .. } = gate(M::Sending, D::LoggedOut, 1) else {
            panic!("not canceled");
        };
        assert_eq!(fail.unwrap().code, ErrorCode::DeviceNotConnected);
    }

    #[test]
    fn only_a_sending_message_is_checked_with_the_provider() {
        assert!(ask_provider_first(M::Sending));
        assert!(!ask_provider_first(M::Queued));
    }

    #[test]
    fn only_a_first_delivery_starts_from_the_created_copy() {
        for (receive_count, from_copy) in [(0, true), (1, true), (2, false), (20, false)] {
            assert_eq!(
                starts_from_created(receive_count),
                from_copy,
                "{receive_count}"
            );
        }
    }

    #[test]
    fn an_accepted_send_is_sent() {
        assert_eq!(outcome(Ok(()), 1, 1, 1.0), Outcome::Sent);
    }

    #[test]
    fn a_rate_limited_send_backs_off_by_attempt() {
        let Outcome::RateLimited { error, retry_in } =
            outcome(Err(failure(ErrorCode::ProviderRateLimit)), 3, 1, 1.0)
        else {
            panic!("not rate limited");
        };
        assert_eq!(error.code, ErrorCode::ProviderRateLimit);
        assert_eq!(error.message, "why; retried automatically");
        assert_eq!(retry_in, Duration::from_secs(4));
    }

    #[test]
    fn a_lost_session_waits_like_a_reconnect_then_fails() {
        let lost = || Err(failure(ErrorCode::DeviceNotConnected));
        assert_eq!(
            outcome(lost(), 1, MAX_RECONNECT_WAITS - 1, 1.0),
            Outcome::Reconnecting(RECONNECT_WAIT)
        );
        assert!(matches!(
            outcome(lost(), 1, MAX_RECONNECT_WAITS, 1.0),
            Outcome::Failed(e) if e.code == ErrorCode::DeviceNotConnected
        ));
    }

    #[test]
    fn other_failures_are_final() {
        for code in [
            ErrorCode::GroupPostingRestricted,
            ErrorCode::WhatsappConnectionLost,
            ErrorCode::UpstreamTimeout,
            ErrorCode::ProviderError,
        ] {
            assert_eq!(
                outcome(Err(failure(code)), 1, 1, 1.0),
                Outcome::Failed(MessageError {
                    code,
                    message: "why".into()
                })
            );
        }
    }

    #[test]
    fn rate_limit_backoff_doubles_and_never_exceeds_its_cap() {
        let secs = |a| rate_limit_backoff_with(a, 1.0).as_secs();
        assert_eq!(
            (1..=8).map(secs).collect::<Vec<_>>(),
            [1, 2, 4, 8, 16, 32, 60, 60]
        );
        assert_eq!(rate_limit_backoff_with(1, 0.8), Duration::from_millis(800));
        assert_eq!(
            rate_limit_backoff_with(2, 1.19),
            Duration::from_millis(2380)
        );
        // The jitter applies to the cap too, and must not push it past 60 s.
        for attempt in [7, 8, 20, u32::MAX] {
            assert_eq!(rate_limit_backoff_with(attempt, 1.1999), RATE_LIMIT_CAP);
        }
        for attempt in 0..40 {
            for _ in 0..50 {
                let d = rate_limit_backoff(attempt);
                assert!(d <= RATE_LIMIT_CAP, "attempt {attempt}: {d:?}");
                assert!(d >= Duration::from_millis(800), "attempt {attempt}: {d:?}");
            }
        }
    }

    #[test]
    fn failed_commands_back_off_by_receive_count() {
        let secs = |n| retry_delay(n).as_secs();
        assert_eq!(
            (0..=8).map(secs).collect::<Vec<_>>(),
            [1, 2, 4, 8, 16, 32, 64, 64, 64]
        );
    }
}
