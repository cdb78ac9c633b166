//! The device status machine: which events and requests move a device where.
//! Pure functions, unit-tested here; the worker and the HTTP use cases call them.

use wa_errors::{ApiError, ApiResult, ErrorCode};

use crate::devices::{
    Device, DeviceStatus as S, DeviceUpdate, LastError, PairCode, Qr, logged_out,
};
use crate::provider::{ProviderFailure, SessionEvent};
use crate::time::OffsetDateTime;

fn last_error(f: &ProviderFailure, now: OffsetDateTime) -> LastError {
    LastError {
        code: f.code,
        message: f.message.clone(),
        at: now,
    }
}

/// Whether the session event `ev` may change the device: those of the session's state do;
/// those about messages, chats and calls change the presence cache and messages only.
pub fn changes_device(ev: &SessionEvent) -> bool {
    match ev {
        SessionEvent::Qr { .. }
        | SessionEvent::PairCode { .. }
        | SessionEvent::QrExhausted
        | SessionEvent::Connected { .. }
        | SessionEvent::Reconnecting { .. }
        | SessionEvent::Stopped { .. }
        | SessionEvent::LoggedOut { .. } => true,
        SessionEvent::Presence(_)
        | SessionEvent::Receipt { .. }
        | SessionEvent::Revoked { .. }
        | SessionEvent::Reaction { .. }
        | SessionEvent::Edited { .. }
        | SessionEvent::GroupUpdate(_)
        | SessionEvent::PollVote { .. }
        | SessionEvent::Call { .. } => false,
    }
}

/// The change a provider event makes to a device, or `None` when the event no longer
/// applies (a late QR for a device that was disconnected meanwhile, anything for a
/// destroyed device).
pub fn on_event(d: &Device, ev: &SessionEvent, now: OffsetDateTime) -> Option<DeviceUpdate> {
    if d.status == S::Destroyed || !changes_device(ev) {
        return None;
    }
    let mut u = DeviceUpdate {
        updated_at: Some(now),
        ..DeviceUpdate::default()
    };
    match ev {
        SessionEvent::Qr { code, expires_at } => {
            if !matches!(d.status, S::Initializing | S::QrGenerated) {
                return None;
            }
            u.status = Some(S::QrGenerated);
            // Rendered here, once per QR: reads of the device only copy the image.
            u.qr = Some(Some(Qr::new(code.clone(), *expires_at)));
            u.last_error = Some(None);
        }
        SessionEvent::PairCode { code, expires_at } => {
            // Only a link by phone number that is still going has a code to replace.
            let current = d.pair_code.as_ref()?;
            if !matches!(d.status, S::Initializing | S::QrGenerated) {
                return None;
            }
            u.pair_code = Some(Some(PairCode {
                code: code.clone(),
                phone_number: current.phone_number.clone(),
                expires_at: *expires_at,
            }));
        }
        SessionEvent::QrExhausted => {
            if !matches!(d.status, S::Initializing | S::QrGenerated) {
                return None;
            }
            u.status = Some(S::Expired);
            u.qr = Some(None);
            u.pair_code = Some(None);
        }
        SessionEvent::Connected {
            wa_number,
            wa_device_jid,
        } => {
            if matches!(d.status, S::Disconnected | S::LoggedOut | S::Expired) {
                // The user stopped this session meanwhile; a late event must not revive it.
                return None;
            }
            let newly_linked = matches!(d.status, S::Initializing | S::QrGenerated);
            u.status = Some(S::Connected);
            u.qr = Some(None);
            u.pair_code = Some(None);
            u.wa_number = Some(Some(wa_number.clone()));
            u.wa_device_jid = Some(Some(wa_device_jid.clone()));
            if newly_linked || d.linked_at.is_none() {
                u.linked_at = Some(Some(now));
            }
            u.last_error = Some(None);
        }
        SessionEvent::Reconnecting { error } => {
            if !matches!(d.status, S::Connected | S::Connecting) {
                return None;
            }
            u.status = Some(S::Connecting);
            if let Some(e) = error {
                u.last_error = Some(Some(last_error(e, now)));
            }
        }
        SessionEvent::Stopped { error } => {
            if matches!(d.status, S::Disconnected | S::LoggedOut | S::Expired) {
                return None;
            }
            u.status = Some(S::Disconnected);
            u.qr = Some(None);
            u.pair_code = Some(None);
            u.last_error = Some(Some(last_error(error, now)));
        }
        SessionEvent::LoggedOut { error } => {
            u.status = Some(S::LoggedOut);
            u.qr = Some(None);
            u.pair_code = Some(None);
            u.last_error = Some(Some(last_error(error, now)));
        }
        // The events that do not change the device (`changes_device`).
        _ => return None,
    }
    Some(u)
}

/// What a request asks of a device's session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// POST /devices/{id}/qr: start linking again.
    RegenerateQr,
    /// POST /devices/{id}/pair-code.
    PairCode,
    /// POST /devices/{id}/disconnect.
    Disconnect,
    /// POST /devices/{id}/reconnect.
    Reconnect,
    /// DELETE /devices/{id}.
    Destroy,
}

/// What the use case must do after an action was accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Nothing to change: answer the device as it is.
    Nothing,
    /// Store `update`, then queue the worker's command.
    Apply(Box<DeviceUpdate>),
}

/// Checks an action against the device's status and says what it changes.
/// Refusals are the seed's codes: 410 device_destroyed, 409 qr_reset_not_allowed,
/// 409 logged_out, 409 device_not_connected.
pub fn plan(d: &Device, action: Action, now: OffsetDateTime) -> ApiResult<Plan> {
    d.ensure_alive()?;
    let to = |status: S| {
        let mut u = DeviceUpdate::status(status);
        u.updated_at = Some(now);
        u
    };
    match action {
        Action::RegenerateQr => match d.status {
            S::Expired | S::Disconnected | S::LoggedOut => {
                let mut u = to(S::Initializing);
                u.qr = Some(None);
                u.pair_code = Some(None);
                u.last_error = Some(None);
                // A new link replaces the old account's session.
                u.wa_number = Some(None);
                u.wa_device_jid = Some(None);
                u.linked_at = Some(None);
                Ok(Plan::Apply(Box::new(u)))
            }
            S::QrGenerated if d.valid_qr(now).is_none() => {
                // The QR expired but the expiry has not been processed yet.
                let mut u = to(S::Initializing);
                u.qr = Some(None);
                u.pair_code = Some(None);
                Ok(Plan::Apply(Box::new(u)))
            }
            s => Err(qr_reset_refused(s)),
        },
        Action::PairCode => match d.status {
            S::QrGenerated | S::Expired | S::Disconnected | S::LoggedOut => {
                let mut u = to(S::Initializing);
                u.qr = Some(None);
                u.pair_code = Some(None);
                u.last_error = Some(None);
                if d.status != S::QrGenerated {
                    u.wa_number = Some(None);
                    u.wa_device_jid = Some(None);
                    u.linked_at = Some(None);
                }
                Ok(Plan::Apply(Box::new(u)))
            }
            s => Err(qr_reset_refused(s)),
        },
        Action::Disconnect => match d.status {
            S::Disconnected => Ok(Plan::Nothing),
            S::Connected | S::Connecting | S::QrGenerated | S::Initializing => {
                let mut u = to(S::Disconnected);
                u.qr = Some(None);
                u.pair_code = Some(None);
                Ok(Plan::Apply(Box::new(u)))
            }
            S::LoggedOut => Err(logged_out()),
            s => Err(ApiError::new(
                ErrorCode::DeviceNotConnected,
                format!("the device is {s}; there is no session to disconnect"),
            )),
        },
        Action::Reconnect => match d.status {
            S::Connected | S::Connecting => Ok(Plan::Nothing),
            S::Disconnected if d.linked_at.is_some() => {
                let mut u = to(S::Connecting);
                u.last_error = Some(None);
                Ok(Plan::Apply(Box::new(u)))
            }
            S::LoggedOut => Err(logged_out()),
            _ => Err(ApiError::new(
                ErrorCode::LoggedOut,
                "the device was never linked; generate a QR and scan it",
            )),
        },
        Action::Destroy => {
            let mut u = to(S::Destroyed);
            u.qr = Some(None);
            u.pair_code = Some(None);
            Ok(Plan::Apply(Box::new(u)))
        }
    }
}

fn qr_reset_refused(s: S) -> ApiError {
    let why = match s {
        S::QrGenerated => "the current QR is still valid; wait until it expires",
        S::Initializing => "a QR is being generated",
        _ => "a session is active; disconnect first",
    };
    ApiError::new(ErrorCode::QrResetNotAllowed, why)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::DeviceStatus;
    use uuid::Uuid;

    fn device(status: DeviceStatus) -> Device {
        Device {
            status,
            ..Device::new(Uuid::now_v7(), "t", "d", crate::time::now())
        }
    }

    fn apply(d: &Device, ev: SessionEvent) -> Device {
        let mut d = d.clone();
        if let Some(u) = on_event(&d, &ev, crate::time::now()) {
            u.apply_to(&mut d);
        }
        d
    }

    fn fail(code: ErrorCode) -> ProviderFailure {
        ProviderFailure::new(code, "x")
    }

    fn later(secs: i64) -> OffsetDateTime {
        crate::time::now() + ::time::Duration::seconds(secs)
    }

    #[test]
    fn link_scan_connect() {
        let d = device(S::Initializing);
        let d = apply(
            &d,
            SessionEvent::Qr {
                code: "c1".into(),
                expires_at: later(60),
            },
        );
        assert_eq!(d.status, S::QrGenerated);
        assert_eq!(d.qr.as_ref().unwrap().code, "c1");
        assert_eq!(
            d.qr.as_ref().unwrap().image,
            crate::qr::data_url("c1").unwrap(),
            "the image is rendered when the QR is issued"
        );
        let d = apply(
            &d,
            SessionEvent::Qr {
                code: "c2".into(),
                expires_at: later(20),
            },
        );
        assert_eq!(
            d.qr.as_ref().unwrap().code,
            "c2",
            "rotation replaces the QR"
        );
        let d = apply(
            &d,
            SessionEvent::Connected {
                wa_number: "1555".into(),
                wa_device_jid: "1555:3@s.whatsapp.net".into(),
            },
        );
        assert_eq!(d.status, S::Connected);
        assert!(d.qr.is_none() && d.linked_at.is_some());
        assert_eq!(d.wa_number.as_deref(), Some("1555"));
        let linked = d.linked_at;
        let d = apply(
            &d,
            SessionEvent::Reconnecting {
                error: Some(fail(ErrorCode::WhatsappConnectionLost)),
            },
        );
        assert_eq!(d.status, S::Connecting);
        assert_eq!(
            d.last_error.as_ref().unwrap().code,
            ErrorCode::WhatsappConnectionLost
        );
        let d = apply(
            &d,
            SessionEvent::Connected {
                wa_number: "1555".into(),
                wa_device_jid: "j".into(),
            },
        );
        assert_eq!(d.status, S::Connected);
        assert_eq!(d.linked_at, linked, "a reconnect keeps linked_at");
        assert!(d.last_error.is_none());
        let d = apply(
            &d,
            SessionEvent::LoggedOut {
                error: fail(ErrorCode::LoggedOut),
            },
        );
        assert_eq!(d.status, S::LoggedOut);
    }

    #[test]
    fn expiry_and_refusals() {
        let d = device(S::Initializing);
        let d = apply(
            &d,
            SessionEvent::Qr {
                code: "c".into(),
                expires_at: later(60),
            },
        );
        let d = apply(&d, SessionEvent::QrExhausted);
        assert_eq!(d.status, S::Expired);
        assert!(d.qr.is_none());
        let d2 = apply(
            &device(S::Initializing),
            SessionEvent::Stopped {
                error: fail(ErrorCode::TooManyDevices),
            },
        );
        assert_eq!(d2.status, S::Disconnected);
        assert_eq!(d2.last_error.unwrap().code, ErrorCode::TooManyDevices);
    }

    #[test]
    fn late_events_do_not_revive() {
        for s in [S::Disconnected, S::Expired, S::LoggedOut, S::Destroyed] {
            let d = device(s);
            let ev = SessionEvent::Connected {
                wa_number: "1".into(),
                wa_device_jid: "j".into(),
            };
            assert!(on_event(&d, &ev, crate::time::now()).is_none(), "{s}");
            let ev = SessionEvent::Qr {
                code: "c".into(),
                expires_at: later(5),
            };
            assert!(on_event(&d, &ev, crate::time::now()).is_none(), "{s}");
        }
        let ev = SessionEvent::LoggedOut {
            error: fail(ErrorCode::LoggedOut),
        };
        assert!(on_event(&device(S::Destroyed), &ev, crate::time::now()).is_none());
    }

    #[test]
    fn a_refreshed_pair_code_replaces_the_dead_one() {
        let mut d = device(S::QrGenerated);
        d.pair_code = Some(PairCode {
            code: "OLDC0DE1".into(),
            phone_number: "15551234567".into(),
            expires_at: later(5),
        });
        let ev = SessionEvent::PairCode {
            code: "NEWC0DE2".into(),
            expires_at: later(180),
        };
        let next = apply(&d, ev.clone());
        let code = next.pair_code.as_ref().expect("a pair code");
        assert_eq!(code.code, "NEWC0DE2");
        assert_eq!(code.phone_number, "15551234567", "same phone number");
        assert_eq!(
            Some(code.expires_at),
            match &ev {
                SessionEvent::PairCode { expires_at, .. } => Some(*expires_at),
                _ => None,
            }
        );
        assert_eq!(next.status, S::QrGenerated, "the status stays");
        assert_eq!(next.qr, d.qr);

        let mut waiting = d.clone();
        waiting.status = S::Initializing;
        assert_eq!(
            apply(&waiting, ev.clone()).pair_code.unwrap().code,
            "NEWC0DE2"
        );
    }

    #[test]
    fn a_pair_code_without_a_link_by_phone_is_ignored() {
        let ev = SessionEvent::PairCode {
            code: "NEWC0DE2".into(),
            expires_at: later(180),
        };
        // No pair code was handed out (a QR link, or a new link cleared it).
        assert!(on_event(&device(S::QrGenerated), &ev, crate::time::now()).is_none());
        // The link is over.
        for s in [
            S::Connected,
            S::Connecting,
            S::Expired,
            S::Disconnected,
            S::LoggedOut,
            S::Destroyed,
        ] {
            let mut d = device(s);
            d.pair_code = Some(PairCode {
                code: "OLDC0DE1".into(),
                phone_number: "15551234567".into(),
                expires_at: later(5),
            });
            assert!(on_event(&d, &ev, crate::time::now()).is_none(), "{s}");
        }
    }

    fn code_of(r: ApiResult<Plan>) -> Option<ErrorCode> {
        r.err().map(|e| e.code())
    }

    #[test]
    fn action_rules() {
        let now = crate::time::now();
        use Action::*;
        // destroyed refuses everything
        for a in [RegenerateQr, PairCode, Disconnect, Reconnect, Destroy] {
            assert_eq!(
                code_of(plan(&device(S::Destroyed), a, now)),
                Some(ErrorCode::DeviceDestroyed)
            );
        }
        // QR only from expired, disconnected, logged_out (or an unprocessed expiry)
        for s in [S::Expired, S::Disconnected, S::LoggedOut] {
            assert!(plan(&device(s), RegenerateQr, now).is_ok(), "{s}");
        }
        for s in [S::Initializing, S::Connected, S::Connecting] {
            assert_eq!(
                code_of(plan(&device(s), RegenerateQr, now)),
                Some(ErrorCode::QrResetNotAllowed),
                "{s}"
            );
        }
        let mut valid = device(S::QrGenerated);
        valid.qr = Some(Qr::new("c".into(), later(30)));
        assert_eq!(
            code_of(plan(&valid, RegenerateQr, now)),
            Some(ErrorCode::QrResetNotAllowed)
        );
        valid.qr.as_mut().unwrap().expires_at = later(-1);
        assert!(plan(&valid, RegenerateQr, now).is_ok());
        // reconnect
        let mut linked = device(S::Disconnected);
        linked.linked_at = Some(now);
        assert!(matches!(plan(&linked, Reconnect, now), Ok(Plan::Apply(_))));
        assert_eq!(
            code_of(plan(&device(S::Disconnected), Reconnect, now)),
            Some(ErrorCode::LoggedOut)
        );
        assert_eq!(
            code_of(plan(&device(S::LoggedOut), Reconnect, now)),
            Some(ErrorCode::LoggedOut)
        );
        assert_eq!(
            code_of(plan(&device(S::Expired), Reconnect, now)),
            Some(ErrorCode::LoggedOut)
        );
        assert_eq!(
            plan(&device(S::Connected), Reconnect, now).unwrap(),
            Plan::Nothing
        );
        // disconnect
        assert_eq!(
            plan(&device(S::Disconnected), Disconnect, now).unwrap(),
            Plan::Nothing
        );
        assert_eq!(
            code_of(plan(&device(S::Expired), Disconnect, now)),
            Some(ErrorCode::DeviceNotConnected)
        );
        assert_eq!(
            code_of(plan(&device(S::LoggedOut), Disconnect, now)),
            Some(ErrorCode::LoggedOut)
        );
        assert!(plan(&device(S::Connected), Disconnect, now).is_ok());
        // pair code
        assert_eq!(
            code_of(plan(&device(S::Connected), PairCode, now)),
            Some(ErrorCode::QrResetNotAllowed)
        );
        assert!(plan(&device(S::QrGenerated), PairCode, now).is_ok());
        // destroy from anywhere alive
        for s in S::ALL.into_iter().filter(|s| *s != S::Destroyed) {
            assert!(plan(&device(s), Destroy, now).is_ok(), "{s}");
        }
    }
}
