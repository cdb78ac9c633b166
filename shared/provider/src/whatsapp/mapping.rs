//! Pure translations of whatsapp-rust event payloads into the provider port's types
//! (`ProviderFailure`, `Presence`, timestamps). No I/O and no session state: the
//! session pump in the parent module decides *when* to emit; this decides *what*.

use std::time::Duration;

use wa_core::provider::{Presence, ProviderFailure};
use wa_core::time::OffsetDateTime;
use wa_errors::ErrorCode;
use whatsapp_rust::chrono::{DateTime, Utc};
use whatsapp_rust::types::events::{
    ChatPresenceUpdate, ConnectFailure, ConnectFailureReason, LoggedOut, PresenceUpdate,
    TemporaryBan,
};
use whatsapp_rust::wacore::net::DisconnectReason;
use whatsapp_rust::wacore::types::presence::{ChatPresence, ChatPresenceMedia};

/// `now + ttl`, at the millisecond precision of `wa_core::time` (never panics: a ttl
/// that does not fit is treated as zero).
pub(crate) fn expires_in(ttl: Duration) -> OffsetDateTime {
    let now = wa_core::time::now();
    let whole_ms = Duration::from_millis(u64::try_from(ttl.as_millis()).unwrap_or(0));
    whole_ms
        .try_into()
        .ok()
        .and_then(|d| now.checked_add(d))
        .unwrap_or(now)
}

/// A chrono UTC instant as an `OffsetDateTime` (millisecond precision).
pub(crate) fn from_chrono(t: DateTime<Utc>) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(t.timestamp_millis()) * 1_000_000).ok()
}

/// The failure attached to `Reconnecting` when the socket drops unexpectedly.
pub(crate) fn disconnected_failure(reason: &DisconnectReason) -> ProviderFailure {
    ProviderFailure::new(
        ErrorCode::WhatsappConnectionLost,
        format!("the connection to WhatsApp was lost ({reason}); reconnecting"),
    )
}

/// The failure attached to `LoggedOut`.
pub(crate) fn logged_out_failure(ev: &LoggedOut) -> ProviderFailure {
    let why = match ev.reason {
        ConnectFailureReason::LoggedOut => {
            "the device was unlinked (from the phone's Linked devices, or by WhatsApp)"
        }
        ConnectFailureReason::AccountLocked => "the WhatsApp account is locked",
        _ => "WhatsApp ended the session",
    };
    let mut message = format!("{why} (code {})", ev.reason.code());
    if let Some(text) = ev
        .logout_message
        .as_ref()
        .and_then(|m| m.header.as_deref().or(m.subtext.as_deref()))
        .filter(|t| !t.trim().is_empty())
    {
        message.push_str(": ");
        message.push_str(text.trim());
    }
    message.push_str("; link the device again");
    ProviderFailure::new(ErrorCode::LoggedOut, message)
}

/// The failure attached to `Stopped` for a temporary ban: the reason and when it ends.
pub(crate) fn temporary_ban_failure(ban: &TemporaryBan) -> ProviderFailure {
    let secs = u64::try_from(ban.expire.num_seconds()).unwrap_or(0);
    let ends_at = wa_core::time::format(expires_in(Duration::from_secs(secs)));
    let (h, m) = (secs / 3600, (secs % 3600) / 60);
    let mut message = format!(
        "WhatsApp temporarily banned this account (reason {}); the ban expires in {h}h{m:02}m, at {ends_at}",
        ban.code
    );
    if let Some(extra) = ban.message.as_deref().filter(|t| !t.trim().is_empty()) {
        message.push_str(": ");
        message.push_str(extra.trim());
    }
    ProviderFailure::new(ErrorCode::ProviderError, message)
}

/// The failure for a connect `<failure>` that is neither a logout, a ban nor an
/// outdated client. Whether it stops or reconnects is the caller's decision
/// (`reason.should_reconnect()`).
pub(crate) fn connect_failure(ev: &ConnectFailure) -> ProviderFailure {
    let mut message = format!(
        "WhatsApp refused the connection ({:?}, code {})",
        ev.reason,
        ev.reason.code()
    );
    if let Some(extra) = ev.message.as_deref().filter(|t| !t.trim().is_empty()) {
        message.push_str(": ");
        message.push_str(extra.trim());
    }
    ProviderFailure::new(ErrorCode::ProviderError, message)
}

/// A presence update of a subscribed peer. `jid` is the peer as the caller should see
/// it (phone-number JID when known).
pub(crate) fn presence(ev: &PresenceUpdate, jid: String) -> Presence {
    Presence {
        jid,
        presence: if ev.unavailable {
            "unavailable"
        } else {
            "available"
        }
        .to_string(),
        chat_state: None,
        last_seen: ev.last_seen.and_then(from_chrono),
        updated_at: wa_core::time::now(),
    }
}

/// A typing/recording/paused indication. Typing implies the peer is online.
pub(crate) fn chat_presence(ev: &ChatPresenceUpdate, jid: String) -> Presence {
    let state = match (&ev.state, &ev.media) {
        (ChatPresence::Composing, ChatPresenceMedia::Audio) => "recording",
        (ChatPresence::Composing, _) => "composing",
        (ChatPresence::Paused, _) => "paused",
    };
    Presence {
        jid,
        presence: "available".to_string(),
        chat_state: Some(state.to_string()),
        last_seen: None,
        updated_at: wa_core::time::now(),
    }
}

/// The phone number (digits only) of a JID user part such as `15551234567` or
/// `15551234567:3` (device suffixes are not part of the user; this is defensive).
pub(crate) fn digits(user: &str) -> String {
    user.split(':')
        .next()
        .unwrap_or_default()
        .chars()
        .filter(char::is_ascii_digit)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use whatsapp_rust::types::events::TempBanReason;

    #[test]
    fn expiry_is_in_the_future_at_millisecond_precision() {
        let before = wa_core::time::now();
        let at = expires_in(Duration::from_millis(60_000) + Duration::from_nanos(123));
        let delta = at - before;
        assert!(delta.whole_seconds() >= 59 && delta.whole_seconds() <= 61);
        assert_eq!(at.nanosecond() % 1_000_000, 0);
    }

    #[test]
    fn ban_message_names_reason_and_expiry() {
        let ban = TemporaryBan::builder()
            .code(TempBanReason::BlockedByUsers)
            .expire(whatsapp_rust::chrono::Duration::seconds(2 * 3600 + 5 * 60))
            .build();
        let f = temporary_ban_failure(&ban);
        assert_eq!(f.code, ErrorCode::ProviderError);
        assert!(f.message.contains("102"), "{}", f.message);
        assert!(f.message.contains("2h05m"), "{}", f.message);
    }

    /// A logout is `logged_out` with its reason; a refused connection names its code.
    #[test]
    fn logouts_and_connect_failures_name_their_cause() {
        let logged_out = LoggedOut::builder()
            .on_connect(true)
            .reason(ConnectFailureReason::AccountLocked)
            .build();
        let refused = ConnectFailure::builder()
            .reason(ConnectFailureReason::BadUserAgent)
            .build();
        let rows = [
            (
                logged_out_failure(&logged_out),
                ErrorCode::LoggedOut,
                "locked",
            ),
            (connect_failure(&refused), ErrorCode::ProviderError, "409"),
        ];
        for (f, code, cause) in rows {
            assert_eq!(f.code, code, "{}", f.message);
            assert!(f.message.contains(cause), "{}", f.message);
        }
    }

    #[test]
    fn digits_strip_device_and_punctuation() {
        assert_eq!(digits("15551234567"), "15551234567");
        assert_eq!(digits("15551234567:12"), "15551234567");
    }
}
