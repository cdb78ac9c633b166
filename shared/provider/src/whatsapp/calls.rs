//! Incoming calls: whatsapp-rust's `IncomingCall` (an offer ringing now) and `MissedCall`
//! (an offer replayed from the offline queue, or one the caller gave up on) as the
//! port's `SessionEvent::Call`, and the rejection of a ringing call
//! (`voip().reject`, a `<reject>` stanza; fire-and-forget) when calls are rejected
//! (`WA_REJECT_CALLS=1`). The mapping is pure; [`reject`] is the one call to the library.

use tracing::warn;
use wa_core::provider::{CallStatus, SessionEvent};
use whatsapp_rust::Client;
use whatsapp_rust::wacore::types::call::{CallAction, IncomingCall, MissedCall};

use super::events::{Step, peer};

/// The step for a ringing call: report its offer, or reject it first.
pub(crate) fn incoming(call: &IncomingCall, reject_calls: bool) -> Step {
    // Only a 1:1 or group offer rings; accepts, terminations and group notices
    // elsewhere are signalling of calls already reported.
    let CallAction::Offer {
        call_id,
        caller_pn,
        is_video,
        ..
    } = &call.action
    else {
        return Step::Ignore;
    };
    let (from, _) = peer(&call.from, caller_pn.as_ref());
    let event = |status| SessionEvent::Call {
        call_id: call_id.clone(),
        from: from.clone(),
        is_video: *is_video,
        status,
    };
    if reject_calls {
        Step::RejectCall(event(CallStatus::Rejected))
    } else {
        Step::Emit(event(CallStatus::Offer))
    }
}

/// The step for a call that did not ring: report it missed (WhatsApp does not say
/// whether it was a video call).
pub(crate) fn missed(call: &MissedCall) -> Step {
    let (from, _) = peer(&call.from, None);
    Step::Emit(SessionEvent::Call {
        call_id: call.call_id.clone(),
        from,
        is_video: false,
        status: CallStatus::Missed,
    })
}

/// Rejects the ringing `call`; the event to report: `event` (status `rejected`) once the
/// rejection is written, else the offer it still is.
pub(crate) async fn reject(
    client: &Client,
    call: &IncomingCall,
    event: SessionEvent,
) -> SessionEvent {
    match client.voip().reject(call).await {
        Ok(()) => event,
        Err(e) => {
            warn!(error = %e, "rejecting an incoming call failed; reported as an offer");
            match event {
                SessionEvent::Call {
                    call_id,
                    from,
                    is_video,
                    ..
                } => SessionEvent::Call {
                    call_id,
                    from,
                    is_video,
                    status: CallStatus::Offer,
                },
                other => other,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use whatsapp_rust::Jid;
    use whatsapp_rust::chrono::Utc;
    use whatsapp_rust::wacore::types::call::MissedReason;

    fn jid(s: &str) -> Jid {
        s.parse().expect("jid")
    }

    fn offer(from: &str, caller_pn: Option<&str>, is_video: bool) -> IncomingCall {
        IncomingCall::builder()
            .from(jid(from))
            .stanza_id("stanza-1".to_string())
            .timestamp(Utc::now())
            .offline(false)
            .action(CallAction::Offer {
                call_id: "CALL1".to_string(),
                call_creator: jid(from),
                caller_pn: caller_pn.map(jid),
                caller_country_code: None,
                device_class: None,
                joinable: false,
                is_video,
                audio: Vec::new(),
                group_jid: None,
            })
            .build()
    }

    fn call(from: &str, is_video: bool, status: CallStatus) -> SessionEvent {
        SessionEvent::Call {
            call_id: "CALL1".to_string(),
            from: from.to_string(),
            is_video,
            status,
        }
    }

    #[test]
    fn a_ringing_offer_is_reported_or_rejected() {
        let peer = "15552220000@s.whatsapp.net";
        let rows = [
            (
                offer("15552220000:3@s.whatsapp.net", None, false),
                false,
                Some(call(peer, false, CallStatus::Offer)),
            ),
            (
                offer(peer, None, true),
                false,
                Some(call(peer, true, CallStatus::Offer)),
            ),
            // An @lid caller is shown by the phone number the offer carries.
            (
                offer("100000000000009:2@lid", Some(peer), true),
                false,
                Some(call(peer, true, CallStatus::Offer)),
            ),
        ];
        for (c, reject, want) in rows {
            match (incoming(&c, reject), want) {
                (Step::Emit(got), Some(want)) => assert_eq!(got, want),
                (other, want) => panic!("{other:?}, want {want:?}"),
            }
        }
        let Step::RejectCall(event) = incoming(&offer(peer, None, false), true) else {
            panic!("rejected");
        };
        assert_eq!(event, call(peer, false, CallStatus::Rejected));
    }

    #[test]
    fn signalling_of_a_call_is_not_a_call() {
        let mut c = offer("15552220000@s.whatsapp.net", None, false);
        c.action = CallAction::Accept {
            call_id: "CALL1".to_string(),
            call_creator: jid("15552220000@s.whatsapp.net"),
            audio: Vec::new(),
        };
        assert!(matches!(incoming(&c, true), Step::Ignore));
    }

    #[test]
    fn a_missed_call_is_reported_missed() {
        let m = MissedCall::new(
            jid("15552220000:3@s.whatsapp.net"),
            "CALL2".to_string(),
            Utc::now(),
            MissedReason::Offline,
        );
        let Step::Emit(event) = missed(&m) else {
            panic!("missed");
        };
        assert_eq!(
            event,
            SessionEvent::Call {
                call_id: "CALL2".to_string(),
                from: "15552220000@s.whatsapp.net".to_string(),
                is_video: false,
                status: CallStatus::Missed,
            }
        );
    }
}
