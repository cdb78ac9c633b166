//! Error classification: how whatsapp-rust failures become the API's error codes.
//!
//! Every failure the WhatsApp provider reports goes through the pure functions here,
//! so the mapping lives in one place and each rule has a unit test. The rules:
//!
//! | Failure                                                  | Code                          |
//! |----------------------------------------------------------|-------------------------------|
//! | no socket / not logged in before the send started        | `device_not_connected`        |
//! | transport gone mid-request (socket closed, IQ lost, ...) | `whatsapp_connection_lost`    |
//! | server did not answer in time                            | `upstream_timeout`            |
//! | ... during a group send (sender keys, prekeys, metadata) | `group_prekey_timeout`        |
//! | server rejection 429 (IQ or HTTP), pair-code throttling  | `provider_rate_limit`         |
//! | message nack 403 in a group                              | `group_posting_restricted`    |
//! | invalid phone number for a pair code (local validation)  | `validation_error`            |
//! | anything else                                            | `provider_error`              |
//!
//! `too_many_devices` is not among them: the phone enforces the limit on linked devices
//! and WhatsApp tells the companion nothing ([`classify_pair_failure`]).
//!
//! The checks walk the whole `source()` chain (through whatsapp-rust's
//! [`ErrorChainExt`]), so an error wrapped in `anyhow` or in another domain error is
//! classified the same as the bare one.

use std::error::Error as StdError;

use wa_core::provider::ProviderFailure;
use wa_errors::ErrorCode;
use whatsapp_rust::pair_code::{PairCodeError, PairError};
use whatsapp_rust::socket::SocketError;
use whatsapp_rust::{ClientError, ErrorChainExt, SendError};

/// Classifies a failed send.
///
/// `is_group` is whether the destination is a group (`@g.us`): a timeout there is
/// almost always the sender-key/prekey fan-out, which has its own code.
///
/// "Not connected" is split by *when* it happened: the library found no socket or no
/// identity before anything was written → `device_not_connected` (nothing was sent, the
/// caller should wait for the device); the transport disappeared while the send (or an
/// IQ it issued) was in flight → `whatsapp_connection_lost` (retryable).
pub fn classify_send_error(err: &SendError, is_group: bool) -> ProviderFailure {
    match err {
        SendError::Client(ClientError::NotConnected) => ProviderFailure::new(
            ErrorCode::DeviceNotConnected,
            "the device is not connected to WhatsApp; nothing was sent",
        ),
        SendError::NotLoggedIn | SendError::Client(ClientError::NotLoggedIn) => {
            ProviderFailure::new(
                ErrorCode::DeviceNotConnected,
                "the device is not logged in to WhatsApp; nothing was sent",
            )
        }
        _ => classify_error(err, is_group),
    }
}

/// Classifies any whatsapp-rust error (IQ, group, contact, presence, send, ...).
///
/// `is_group_send` must only be true for the group *send* path: it turns a timeout
/// into `group_prekey_timeout`. Queries about a group (metadata, profile) pass false.
pub fn classify_error(err: &(dyn StdError + 'static), is_group_send: bool) -> ProviderFailure {
    let detail = describe(err);
    if err.is_timeout() {
        return if is_group_send {
            ProviderFailure::new(
                ErrorCode::GroupPrekeyTimeout,
                format!("WhatsApp did not answer in time while preparing the group send: {detail}"),
            )
        } else {
            ProviderFailure::new(
                ErrorCode::UpstreamTimeout,
                format!("WhatsApp did not answer in time: {detail}"),
            )
        };
    }
    if is_transport_lost(err) {
        return ProviderFailure::new(
            ErrorCode::WhatsappConnectionLost,
            format!("the connection to WhatsApp was lost during the request: {detail}"),
        );
    }
    let rejection = err.server_rejection();
    let rate_limited = rejection.is_some_and(|r| r.code == 429) || err.http_status() == Some(429);
    if rate_limited {
        let backoff = rejection
            .and_then(|r| r.backoff)
            .map(|s| format!(" (retry after {s} s)"))
            .unwrap_or_default();
        return ProviderFailure::new(
            ErrorCode::ProviderRateLimit,
            format!("WhatsApp rate-limited the request{backoff}: {detail}"),
        );
    }
    ProviderFailure::new(
        ErrorCode::ProviderError,
        format!("WhatsApp error: {detail}"),
    )
}

/// Classifies a server nack of an outgoing message (`ServerAck.error`, e.g. `"403"`).
///
/// A send resolves `Ok` once the stanza is on the wire; the server's refusal arrives
/// later as a nack code, which is why this is separate from [`classify_send_error`].
/// WhatsApp does not document its nack codes; 403 in a group is what a non-admin gets
/// in an admin-only (announcement) group or a removed participant gets.
pub fn classify_nack(code: &str, is_group: bool) -> ProviderFailure {
    let code = code.trim();
    match code {
        "429" => ProviderFailure::new(
            ErrorCode::ProviderRateLimit,
            "WhatsApp rate-limited the message (nack 429)",
        ),
        "403" if is_group => ProviderFailure::new(
            ErrorCode::GroupPostingRestricted,
            "WhatsApp refused the message: this device may not post in the group \
             (admin-only group, or not a participant) (nack 403)",
        ),
        _ => ProviderFailure::new(
            ErrorCode::ProviderError,
            format!("WhatsApp refused the message (nack {code})"),
        ),
    }
}

/// Classifies a failed pair-code request (`Client::pair_with_code`).
///
/// Server rejections follow the library's own judgement: `is_throttled()` (429, and
/// 400, which the server also uses for its per-number limit) → `provider_rate_limit`,
/// any other refusal → `provider_error`. A phone number the library rejects locally
/// (missing, too short, not international) is the caller's input →
/// `validation_error`. Anything else (no socket, timeout) goes through
/// [`classify_error`].
pub fn classify_pair_error(err: &PairError) -> ProviderFailure {
    if let Some(rejection) = err.rejection() {
        return if rejection.is_throttled() {
            ProviderFailure::new(
                ErrorCode::ProviderRateLimit,
                format!(
                    "WhatsApp throttled the pair-code request ({rejection}); wait before asking again"
                ),
            )
        } else {
            ProviderFailure::new(
                ErrorCode::ProviderError,
                format!("WhatsApp refused the pair-code request ({rejection})"),
            )
        };
    }
    match err {
        PairError::PairCode(
            PairCodeError::PhoneNumberRequired
            | PairCodeError::PhoneNumberTooShort
            | PairCodeError::PhoneNumberNotInternational,
        ) => ProviderFailure::new(
            ErrorCode::ValidationError,
            format!("invalid phone number for a pair code: {err}"),
        ),
        _ => classify_error(err, false),
    }
}

/// Classifies a pairing failure reported by the library (`Event::PairError.error`):
/// always `provider_error`, carrying the library's text.
///
/// Never `too_many_devices`: no such signal reaches a companion. WhatsApp's limit on
/// linked devices is enforced by the primary phone, which refuses to scan the QR (or to
/// take the pair code) and shows the error on its own screen; WhatsApp tells the
/// companion nothing, so its QR codes (or its pair code) just expire. whatsapp-rust 0.7
/// has no event, `PairError` text, `<failure>` reason (`ConnectFailureReason`) or
/// pair-code rejection (`PairCodeRejection`) for it: `Event::PairError` is raised only
/// for local checks of the phone's answer (`hmac-mismatch`, `invalid-key`,
/// `signature-mismatch`, `internal-error`).
pub fn classify_pair_failure(error: &str) -> ProviderFailure {
    ProviderFailure::new(ErrorCode::ProviderError, format!("pairing failed: {error}"))
}

/// Whether the transport was gone: the library's own judgement, plus a closed socket
/// or a socket I/O error anywhere in the chain (which the library reports as plain
/// socket errors rather than "unavailable").
fn is_transport_lost(err: &(dyn StdError + 'static)) -> bool {
    err.is_transport_unavailable()
        || ErrorChainExt::sources(err).any(|cause| {
            matches!(
                cause.downcast_ref::<SocketError>(),
                Some(SocketError::SocketClosed | SocketError::Io(_))
            )
        })
}

/// The error chain as one line. Wrapping variants in whatsapp-rust render what they
/// wrap, so a cause already contained in the previous line is skipped.
fn describe(err: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in ErrorChainExt::sources(err) {
        let text = cause.to_string();
        if text.is_empty() || parts.last().is_some_and(|last| last.contains(&text)) {
            continue;
        }
        parts.push(text);
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use whatsapp_rust::IqError;
    use whatsapp_rust::anyhow::anyhow;
    use whatsapp_rust::socket::error::EncryptSendError;

    fn server_error(code: u16, text: &str) -> IqError {
        IqError::ServerError {
            code,
            text: text.to_string(),
            error_type: None,
            backoff: None,
        }
    }

    #[test]
    fn send_without_socket_is_device_not_connected() {
        let f = classify_send_error(&SendError::Client(ClientError::NotConnected), false);
        assert_eq!(f.code, ErrorCode::DeviceNotConnected);
    }

    #[test]
    fn send_without_identity_is_device_not_connected() {
        assert_eq!(
            classify_send_error(&SendError::NotLoggedIn, false).code,
            ErrorCode::DeviceNotConnected
        );
        assert_eq!(
            classify_send_error(&SendError::Client(ClientError::NotLoggedIn), true).code,
            ErrorCode::DeviceNotConnected
        );
    }

    #[test]
    fn transport_lost_mid_send_is_connection_lost() {
        let cases = [
            SendError::Iq(IqError::NotConnected),
            SendError::Iq(IqError::InternalChannelClosed),
            SendError::Client(ClientError::Socket(SocketError::SocketClosed)),
            SendError::Client(ClientError::EncryptSend(EncryptSendError::transport(
                anyhow!("broken pipe"),
            ))),
            SendError::Iq(IqError::Socket(SocketError::Io(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "reset",
            )))),
        ];
        for err in &cases {
            assert_eq!(
                classify_send_error(err, false).code,
                ErrorCode::WhatsappConnectionLost,
                "{err:?}"
            );
        }
    }

    #[test]
    fn iq_timeout_is_upstream_timeout_for_direct_sends() {
        let f = classify_send_error(&SendError::Iq(IqError::Timeout), false);
        assert_eq!(f.code, ErrorCode::UpstreamTimeout);
    }

    #[test]
    fn iq_timeout_is_group_prekey_timeout_for_group_sends() {
        let f = classify_send_error(&SendError::Iq(IqError::Timeout), true);
        assert_eq!(f.code, ErrorCode::GroupPrekeyTimeout);
    }

    #[test]
    fn timeout_wrapped_in_anyhow_is_still_a_timeout() {
        let err = SendError::Internal(IqError::Timeout.into());
        assert_eq!(
            classify_send_error(&err, false).code,
            ErrorCode::UpstreamTimeout
        );
    }

    #[test]
    fn server_429_is_provider_rate_limit() {
        for is_group in [false, true] {
            let err = SendError::Iq(server_error(429, "rate-overlimit"));
            let f = classify_send_error(&err, is_group);
            assert_eq!(f.code, ErrorCode::ProviderRateLimit);
        }
    }

    #[test]
    fn other_send_errors_are_provider_errors() {
        let cases = [
            SendError::Iq(server_error(500, "internal-server-error")),
            SendError::Iq(server_error(403, "forbidden")),
            SendError::InvalidRequest("bad jid".into()),
            SendError::Internal(anyhow!("failed to encrypt for 1@s.whatsapp.net")),
        ];
        for err in &cases {
            assert_eq!(
                classify_send_error(err, true).code,
                ErrorCode::ProviderError,
                "{err:?}"
            );
        }
    }

    #[test]
    fn non_send_errors_use_the_same_rules() {
        let timeout = IqError::Timeout;
        assert_eq!(
            classify_error(&timeout, false).code,
            ErrorCode::UpstreamTimeout
        );
        let gone = IqError::NotConnected;
        assert_eq!(
            classify_error(&gone, false).code,
            ErrorCode::WhatsappConnectionLost
        );
        let limited = server_error(429, "rate-overlimit");
        assert_eq!(
            classify_error(&limited, false).code,
            ErrorCode::ProviderRateLimit
        );
        let other = server_error(404, "item-not-found");
        assert_eq!(classify_error(&other, false).code, ErrorCode::ProviderError);
    }

    #[test]
    fn nack_429_is_provider_rate_limit() {
        assert_eq!(
            classify_nack("429", false).code,
            ErrorCode::ProviderRateLimit
        );
        assert_eq!(
            classify_nack(" 429 ", true).code,
            ErrorCode::ProviderRateLimit
        );
    }

    #[test]
    fn nack_403_in_a_group_is_posting_restricted() {
        assert_eq!(
            classify_nack("403", true).code,
            ErrorCode::GroupPostingRestricted
        );
    }

    #[test]
    fn nack_403_outside_a_group_is_provider_error() {
        assert_eq!(classify_nack("403", false).code, ErrorCode::ProviderError);
    }

    #[test]
    fn other_nacks_are_provider_errors() {
        for code in ["400", "404", "463", "479", "503", ""] {
            let f = classify_nack(code, true);
            assert_eq!(f.code, ErrorCode::ProviderError, "nack {code}");
            assert!(f.message.contains(code));
        }
    }

    /// Throttled pair code requests are rate limited; other rejections are provider errors.
    #[test]
    fn pair_code_rejections_are_rate_limits_or_provider_errors() {
        for (code, text, class) in [
            (429, "rate-overlimit", ErrorCode::ProviderRateLimit),
            (400, "bad-request", ErrorCode::ProviderRateLimit),
            (403, "forbidden", ErrorCode::ProviderError),
            (452, "feature-not-available", ErrorCode::ProviderError),
        ] {
            let err = PairError::RequestFailed(server_error(code, text));
            assert_eq!(classify_pair_error(&err).code, class, "{code}");
        }
    }

    #[test]
    fn invalid_pair_phone_is_a_validation_error() {
        let err = PairError::PairCode(PairCodeError::PhoneNumberTooShort);
        assert_eq!(classify_pair_error(&err).code, ErrorCode::ValidationError);
    }

    #[test]
    fn unanswered_pair_code_request_is_upstream_timeout() {
        let err = PairError::RequestFailed(IqError::Timeout);
        assert_eq!(classify_pair_error(&err).code, ErrorCode::UpstreamTimeout);
    }

    #[test]
    fn no_pair_failure_of_the_library_is_too_many_devices() {
        // The texts `Event::PairError` carries: the library's own pair-crypto errors.
        for (code, text) in [
            (401, "hmac-mismatch"),
            (401, "invalid-key"),
            (401, "signature-mismatch"),
            (500, "internal-error"),
        ] {
            let error = whatsapp_rust::wacore::pair::PairCryptoError {
                code,
                text,
                source: whatsapp_rust::anyhow::anyhow!("the phone's answer did not verify"),
            };
            let f = classify_pair_failure(&error.to_string());
            assert_eq!(f.code, ErrorCode::ProviderError, "{text}");
            assert!(f.message.contains(text), "{}", f.message);
        }
        // Words in a text are no signal either: nothing the library sends says so.
        let f = classify_pair_failure("too many devices");
        assert_eq!(f.code, ErrorCode::ProviderError);
    }

    #[test]
    fn other_pair_failures_are_provider_errors() {
        let f = classify_pair_failure("pair crypto failed: 401 hmac-mismatch");
        assert_eq!(f.code, ErrorCode::ProviderError);
        assert!(f.message.contains("hmac-mismatch"));
    }

    #[test]
    fn descriptions_collapse_repeated_causes() {
        let err = SendError::Iq(server_error(500, "internal-server-error"));
        let text = describe(&err);
        assert_eq!(text.matches("internal-server-error").count(), 1, "{text}");
    }
}
