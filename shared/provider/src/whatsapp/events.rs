//! What each whatsapp-rust event means for a session: one pure function, [`map_event`],
//! from the library's [`Event`] and what the session knows ([`Context`]) to the
//! [`Step`] the session pump carries out. No I/O and no session state here (the pump
//! reads the client and its own state into the context, and does what the step says),
//! so every row below has a unit test built from the library's own event types.
//!
//! | Event | Step |
//! |---|---|
//! | `PairingQrCode` | emit `Qr` |
//! | `PairingQrCodesExhausted` | socket kept and the pair code still valid: wait for it until it expires; else end with `QrExhausted` |
//! | `PairingCode`, `PairingCodeError` | nothing: `link` returns the code or the failure to its caller |
//! | `PairingCodeRefresh` | request a new pair code and report it (`PairCode`) |
//! | `PairSuccess` | wait for `Connected` (a pending end is called off) |
//! | `PairError` | end with `Stopped` |
//! | `Connected` | emit `Connected` with the phone number, or with only the LID |
//! | `Disconnected`, clean (a server recycle) | keep the status and the pending acks: the library reconnects at once |
//! | `Disconnected`, otherwise | fail the pending acks, emit `Reconnecting` |
//! | `LoggedOut` | end: wipe the store, emit `LoggedOut` |
//! | `StreamReplaced`, `ClientOutdated`, `TemporaryBan` | end with `Stopped` |
//! | `ConnectFailure` 500/503 | emit `Reconnecting` (the library retries) |
//! | `ConnectFailure`, other reasons | end with `Stopped` |
//! | `ServerAck` of a message | resolve the send waiting for it |
//! | `Receipt` from a peer | emit `Receipt` |
//! | `Presence`, `ChatPresence` | emit `Presence` (after a LID → phone number lookup when needed) |
//! | `Messages` | emit `Revoked`, `Reaction`, `Edited`, `PollVote` for revokes, reactions, edits, votes; deliver what the durability hook did not see |
//! | `IncomingCall` offer | emit `Call` (`offer`), or reject it first when calls are rejected |
//! | `MissedCall` | emit `Call` (`missed`) |
//! | `GroupUpdate` the API reports ([`group_events::update_of`]) | emit `GroupUpdate`, once for a change of this account's own (`OwnGroupUpdate`) |

use std::sync::Arc;

use tokio::time::Instant;
use wa_core::provider::{Presence, ProviderFailure, SessionEvent};
use wa_errors::ErrorCode;
use whatsapp_rust::Jid;
use whatsapp_rust::types::events::{Event, InboundMessage as LibInbound};

use super::classify::classify_pair_failure;
use super::{calls, group_events, inbound, mapping, received};

/// What the session knows when an event arrives.
#[derive(Debug, Clone, Default)]
pub(crate) struct Context {
    /// The account's phone-number JID, once paired.
    pub(crate) pn: Option<Jid>,
    /// The account's LID, once paired.
    pub(crate) lid: Option<Jid>,
    /// When the pair code handed out by `link` expires, if one was.
    pub(crate) pair_code_expires: Option<Instant>,
    /// The pump's clock reading for this event.
    pub(crate) now: Option<Instant>,
    /// Whether incoming calls are rejected at once (`WA_REJECT_CALLS=1`).
    pub(crate) reject_calls: bool,
}

impl Context {
    /// Whether `jid` is this account (any of its devices, phone number or LID).
    fn is_own(&self, jid: &Jid) -> bool {
        [self.pn.as_ref(), self.lid.as_ref()]
            .into_iter()
            .flatten()
            .any(|own| own.user == jid.user && own.server == jid.server)
    }

    /// The pair code's expiry if it is still valid now.
    fn valid_pair_code(&self) -> Option<Instant> {
        let at = self.pair_code_expires?;
        match self.now {
            Some(now) if at <= now => None,
            _ => Some(at),
        }
    }
}

/// What ends a session from inside (library event or watchdog).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Terminal {
    /// Emit this event, then stop the Bot (credentials kept).
    Emit(SessionEvent),
    /// Stop the Bot, wipe its store, then emit `LoggedOut` with this failure.
    LoggedOut(ProviderFailure),
    /// The connect watchdog of a linking session: like `Emit(Stopped)`, unless the
    /// session showed life meanwhile (checked under the device lock, because `link`
    /// may hand out a pair code while the watchdog waits for that lock).
    Unreachable(ProviderFailure),
}

/// What the pump does with one library event.
#[derive(Debug)]
pub(crate) enum Step {
    /// Nothing.
    Ignore,
    /// Report this event; the session carries on.
    Emit(SessionEvent),
    /// Paired: the login follows; a pending end (QR codes ran out while a pair code
    /// was valid) is called off.
    Paired,
    /// Logged in (first time or after a reconnect): report it; pending ends and a
    /// pending recycle are over.
    Connected(SessionEvent),
    /// The QR codes ran out while the pair code handed out by `link` is valid until
    /// then: the session ends at that instant unless pairing goes ahead.
    AwaitPairCode(Instant),
    /// The server declared the pair code dead: request a new one and report it.
    RefreshPairCode { force_manual: bool },
    /// The server recycled the connection (clean close): the library reconnects at
    /// once, so the device keeps its status and in-flight sends keep waiting for their
    /// acks. `error` is reported (`Reconnecting`) only if no login follows in time.
    Recycled { error: ProviderFailure },
    /// The connection broke: acks of stanzas on it will never come (fail them), then
    /// report the event.
    ConnectionLost(SessionEvent),
    /// The session is over.
    End(Terminal),
    /// The server acked (`nack: None`) or refused the stanza `id`.
    Ack { id: String, nack: Option<String> },
    /// A peer's presence; `lookup`: an `@lid` whose phone number the client may know
    /// (the presence then carries the phone-number JID).
    Presence {
        presence: Presence,
        lookup: Option<Jid>,
    },
    /// A call rings: reject it (`SessionEvent::Call` with status `rejected`, reported
    /// once the rejection is sent; `offer` when it cannot be).
    RejectCall(SessionEvent),
    /// A committed batch: its revokes, reactions, edits and votes to report, and the messages to
    /// deliver because the durability hook never saw them (already acked by the library).
    Messages {
        actions: Vec<SessionEvent>,
        deliver: Option<Arc<[LibInbound]>>,
    },
    /// A group change authored by this account (on this device or another of its
    /// devices): reported unless the request that made it here reported it already.
    OwnGroupUpdate(wa_core::groups::GroupUpdate),
}

impl Step {
    /// Whether the session showed life (a QR, pairing, a login): from then on the
    /// connect watchdog has nothing to report.
    pub(crate) fn shows_life(&self) -> bool {
        matches!(
            self,
            Step::Emit(SessionEvent::Qr { .. }) | Step::Paired | Step::Connected(_)
        )
    }

    /// Whether the sends waiting for acks must fail now: the connection they were
    /// written on broke, so their acks will never come. A recycle keeps them waiting.
    pub(crate) fn fails_pending_acks(&self) -> bool {
        matches!(self, Step::ConnectionLost(_))
    }
}

/// The step for `event`, given what the session knows.
pub(crate) fn map_event(event: &Event, cx: &Context) -> Step {
    match event {
        Event::PairingQrCode(qr) => Step::Emit(SessionEvent::Qr {
            code: qr.code.clone(),
            expires_at: mapping::expires_in(qr.timeout),
        }),
        Event::PairingQrCodesExhausted(ev) => match cx.valid_pair_code() {
            // With a pair code pending the library keeps the socket up
            // (`disconnected == false`): the user may still type the code.
            Some(at) if !ev.disconnected => Step::AwaitPairCode(at),
            _ => Step::End(Terminal::Emit(SessionEvent::QrExhausted)),
        },
        // `link` returns the code or the failure itself; QR linking continues.
        Event::PairingCode(_) | Event::PairingCodeError(_) => Step::Ignore,
        Event::PairingCodeRefresh(r) => Step::RefreshPairCode {
            force_manual: r.force_manual,
        },
        Event::PairSuccess(_) => Step::Paired,
        Event::PairError(e) => Step::End(Terminal::Emit(SessionEvent::Stopped {
            error: classify_pair_failure(&e.error),
        })),
        Event::Connected(_) => {
            // The store's own JID is the full device JID (`<number>:<device>@...`).
            let (wa_number, wa_device_jid) = match (&cx.pn, &cx.lid) {
                (Some(pn), _) => (mapping::digits(&pn.user), pn.to_string()),
                (None, Some(lid)) => (String::new(), lid.to_string()),
                (None, None) => (String::new(), String::new()),
            };
            Step::Connected(SessionEvent::Connected {
                wa_number,
                wa_device_jid,
            })
        }
        Event::Disconnected(d) if d.reason.is_clean_shutdown() => Step::Recycled {
            error: mapping::disconnected_failure(&d.reason),
        },
        Event::Disconnected(d) => Step::ConnectionLost(SessionEvent::Reconnecting {
            error: Some(mapping::disconnected_failure(&d.reason)),
        }),
        Event::LoggedOut(ev) => Step::End(Terminal::LoggedOut(mapping::logged_out_failure(ev))),
        Event::StreamReplaced(_) => Step::End(Terminal::Emit(SessionEvent::Stopped {
            error: ProviderFailure::new(
                ErrorCode::ProviderError,
                "another connection replaced this session",
            ),
        })),
        Event::ClientOutdated(_) => Step::End(Terminal::Emit(SessionEvent::Stopped {
            error: ProviderFailure::new(
                ErrorCode::ClientOutdated,
                "WhatsApp rejected this client version as outdated (405); update the server",
            ),
        })),
        Event::TemporaryBan(ban) => Step::End(Terminal::Emit(SessionEvent::Stopped {
            error: mapping::temporary_ban_failure(ban),
        })),
        Event::ConnectFailure(f) => {
            let error = mapping::connect_failure(f);
            if f.reason.should_reconnect() {
                // 500/503: the library reconnects by itself.
                Step::Emit(SessionEvent::Reconnecting { error: Some(error) })
            } else {
                Step::End(Terminal::Emit(SessionEvent::Stopped { error }))
            }
        }
        // Acks also cover receipts and notifications we send; only message acks (or
        // unlabeled ones) can answer a send.
        Event::ServerAck(ack) if ack.class.as_deref().is_some_and(|c| c != "message") => {
            Step::Ignore
        }
        Event::ServerAck(ack) => Step::Ack {
            id: ack.id.clone(),
            nack: ack.error.clone(),
        },
        Event::Receipt(r) => {
            let Some(status) = inbound::receipt_status(&r.r#type) else {
                return Step::Ignore;
            };
            // Our own other devices confirm our sends too; those are not the peer's.
            if cx.is_own(&r.source.sender) || r.message_ids.is_empty() {
                return Step::Ignore;
            }
            Step::Emit(SessionEvent::Receipt {
                message_ids: r.message_ids.clone(),
                status,
                from: r.source.sender.to_non_ad().to_string(),
                chat: r.source.chat.to_non_ad().to_string(),
            })
        }
        Event::Presence(p) => {
            let (jid, lookup) = peer(&p.from, None);
            Step::Presence {
                presence: mapping::presence(p, jid),
                lookup,
            }
        }
        Event::ChatPresence(c) => {
            let (jid, lookup) = peer(&c.source.sender, c.source.sender_alt.as_ref());
            Step::Presence {
                presence: mapping::chat_presence(c, jid),
                lookup,
            }
        }
        Event::Messages(batch) => {
            let actions = batch
                .iter()
                .filter(|item| {
                    let source = &item.info.source;
                    !source.is_from_me && inbound::is_conversation(&source.chat)
                })
                .filter_map(|item| received::action(item, cx.pn.as_ref(), cx.lid.as_ref()))
                .collect();
            Step::Messages {
                actions,
                deliver: (!batch.hook_committed).then(|| batch.messages.clone()),
            }
        }
        Event::IncomingCall(call) => calls::incoming(call, cx.reject_calls),
        Event::MissedCall(call) => calls::missed(call),
        Event::GroupUpdate(u) => match group_events::update_of(u) {
            None => Step::Ignore,
            Some(update) if u.participant.iter().any(|p| cx.is_own(p)) => {
                Step::OwnGroupUpdate(update)
            }
            Some(update) => Step::Emit(SessionEvent::GroupUpdate(update)),
        },
        _ => Step::Ignore,
    }
}

/// The peer as the API shows it: its phone-number JID when the event carries it, else
/// the JID as received (device part stripped), plus the LID to look up when that is
/// all the event has.
pub(crate) fn peer(jid: &Jid, alt: Option<&Jid>) -> (String, Option<Jid>) {
    let base = jid.to_non_ad();
    if !base.is_lid() {
        return (base.to_string(), None);
    }
    match alt.filter(|a| a.is_pn()) {
        Some(alt) => (alt.to_non_ad().to_string(), None),
        None => (base.to_string(), Some(base)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use wa_core::messages::MessageStatus;
    use whatsapp_rust::chrono::Utc;
    use whatsapp_rust::prelude::{MessageField, wa};
    use whatsapp_rust::types::events::{
        BatchOrigin, ChatPresenceUpdate, ClientOutdated, ConnectFailure, ConnectFailureReason,
        Connected, Disconnected, LoggedOut, MessageBatch, PairError, PairSuccess, PairingCode,
        PairingCodeError, PairingCodeRefresh, PairingQrCode, PairingQrCodesExhausted,
        PresenceUpdate, Receipt, ServerAck, StreamReplaced, TempBanReason, TemporaryBan,
    };
    use whatsapp_rust::wacore::net::DisconnectReason;
    use whatsapp_rust::wacore::types::message::{MessageInfo, MessageSource};
    use whatsapp_rust::wacore::types::presence::{ChatPresence, ChatPresenceMedia, ReceiptType};

    fn paired() -> Context {
        Context {
            pn: Some("15550001111:7@s.whatsapp.net".parse().expect("pn")),
            lid: Some("100000000000001:7@lid".parse().expect("lid")),
            ..Context::default()
        }
    }

    fn map(event: Event) -> Step {
        map_event(&event, &paired())
    }

    fn stopped(step: Step) -> ProviderFailure {
        match step {
            Step::End(Terminal::Emit(SessionEvent::Stopped { error })) => error,
            other => panic!("expected the session to stop: {other:?}"),
        }
    }

    #[test]
    fn a_qr_is_reported_with_its_expiry() {
        let before = wa_core::time::now();
        let step = map(Event::PairingQrCode(
            PairingQrCode::builder()
                .code("2@ref,key,adv".to_string())
                .timeout(Duration::from_secs(60))
                .build(),
        ));
        assert!(step.shows_life());
        let Step::Emit(SessionEvent::Qr { code, expires_at }) = step else {
            panic!("{step:?}");
        };
        assert_eq!(code, "2@ref,key,adv");
        let ttl = (expires_at - before).whole_seconds();
        assert!((59..=61).contains(&ttl), "{ttl}");
    }

    #[test]
    fn pair_codes_and_their_errors_come_back_through_link() {
        let code = map(Event::PairingCode(
            PairingCode::builder()
                .code("ABCD1234".to_string())
                .timeout(Duration::from_secs(180))
                .build(),
        ));
        assert!(matches!(code, Step::Ignore), "{code:?}");
        let error = map(Event::PairingCodeError(
            PairingCodeError::builder()
                .error("rate-overlimit".to_string())
                .build(),
        ));
        assert!(matches!(error, Step::Ignore), "{error:?}");
    }

    #[test]
    fn a_pair_code_refresh_asks_for_a_new_code() {
        for force_manual in [false, true] {
            let step = map(Event::PairingCodeRefresh(
                PairingCodeRefresh::builder()
                    .force_manual(force_manual)
                    .build(),
            ));
            assert!(
                matches!(step, Step::RefreshPairCode { force_manual: f } if f == force_manual),
                "{step:?}"
            );
        }
    }

    #[test]
    fn connected_carries_the_phone_number_and_the_device_jid() {
        let step = map(Event::Connected(Connected::builder().build()));
        assert!(step.shows_life());
        let Step::Connected(event) = step else {
            panic!("{step:?}");
        };
        assert_eq!(
            event,
            SessionEvent::Connected {
                wa_number: "15550001111".to_string(),
                wa_device_jid: "15550001111:7@s.whatsapp.net".to_string(),
            }
        );
    }

    #[test]
    fn connected_with_only_a_lid_has_no_phone_number() {
        let cx = Context {
            pn: None,
            ..paired()
        };
        let step = map_event(&Event::Connected(Connected::builder().build()), &cx);
        let Step::Connected(event) = step else {
            panic!("{step:?}");
        };
        assert_eq!(
            event,
            SessionEvent::Connected {
                wa_number: String::new(),
                wa_device_jid: "100000000000001:7@lid".to_string(),
            }
        );
    }

    #[test]
    fn a_clean_disconnect_is_a_server_recycle() {
        for reason in [
            DisconnectReason::StreamEnded,
            DisconnectReason::ServerClose {
                code: Some(1000),
                reason: String::new(),
            },
            DisconnectReason::ServerClose {
                code: None,
                reason: "going away".to_string(),
            },
        ] {
            let step = map(Event::Disconnected(
                Disconnected::builder().reason(reason.clone()).build(),
            ));
            assert!(!step.fails_pending_acks(), "{reason:?}");
            let Step::Recycled { error } = step else {
                panic!("{reason:?}: {step:?}");
            };
            assert_eq!(error.code, ErrorCode::WhatsappConnectionLost);
        }
    }

    #[test]
    fn an_unclean_disconnect_fails_pending_acks_and_reconnects() {
        for reason in [
            DisconnectReason::ReadError("connection reset by peer".to_string()),
            DisconnectReason::ServerClose {
                code: Some(1011),
                reason: "internal error".to_string(),
            },
            DisconnectReason::Unknown,
        ] {
            let step = map(Event::Disconnected(
                Disconnected::builder().reason(reason.clone()).build(),
            ));
            assert!(!step.shows_life());
            assert!(step.fails_pending_acks(), "{reason:?}");
            let Step::ConnectionLost(SessionEvent::Reconnecting { error: Some(error) }) = step
            else {
                panic!("{reason:?}: {step:?}");
            };
            assert_eq!(error.code, ErrorCode::WhatsappConnectionLost);
            assert!(error.message.contains(&reason.to_string()), "{error:?}");
        }
    }

    #[test]
    fn logged_out_wipes_the_store() {
        let step = map(Event::LoggedOut(
            LoggedOut::builder()
                .on_connect(false)
                .reason(ConnectFailureReason::LoggedOut)
                .build(),
        ));
        let Step::End(Terminal::LoggedOut(error)) = step else {
            panic!("{step:?}");
        };
        assert_eq!(error.code, ErrorCode::LoggedOut);
        assert!(error.message.contains("unlinked"), "{error:?}");
    }

    /// A replaced stream, an outdated client and a temporary ban stop the session, each with
    /// its code and (the stream and the ban) its reason.
    #[test]
    fn stopping_events_stop_with_their_code_and_reason() {
        let ban = TemporaryBan::builder()
            .code(TempBanReason::SentToTooManyPeople)
            .expire(whatsapp_rust::chrono::Duration::seconds(3600))
            .build();
        let rows = [
            (
                Event::StreamReplaced(StreamReplaced::builder().build()),
                ErrorCode::ProviderError,
                Some("replaced"),
            ),
            (
                Event::ClientOutdated(ClientOutdated::builder().build()),
                ErrorCode::ClientOutdated,
                None,
            ),
            (
                Event::TemporaryBan(ban),
                ErrorCode::ProviderError,
                Some("101"),
            ),
        ];
        for (event, code, reason) in rows {
            let error = stopped(map(event));
            assert_eq!(error.code, code, "{error:?}");
            if let Some(reason) = reason {
                assert!(error.message.contains(reason), "{error:?}");
            }
        }
    }

    #[test]
    fn a_connect_failure_reconnects_on_5xx_and_stops_otherwise() {
        for reason in [
            ConnectFailureReason::ServiceUnavailable,
            ConnectFailureReason::InternalServerError,
        ] {
            let step = map(Event::ConnectFailure(
                ConnectFailure::builder().reason(reason).build(),
            ));
            let Step::Emit(SessionEvent::Reconnecting { error: Some(error) }) = step else {
                panic!("{reason:?}: {step:?}");
            };
            assert_eq!(error.code, ErrorCode::ProviderError);
        }
        let error = stopped(map(Event::ConnectFailure(
            ConnectFailure::builder()
                .reason(ConnectFailureReason::BadUserAgent)
                .message("bad user agent".to_string())
                .build(),
        )));
        assert!(error.message.contains("409"), "{error:?}");
    }

    #[test]
    fn exhausted_qr_codes_wait_for_a_pending_pair_code() {
        let now = Instant::now();
        let expires = now + Duration::from_secs(90);
        let cx = Context {
            pair_code_expires: Some(expires),
            now: Some(now),
            ..Context::default()
        };
        let kept = PairingQrCodesExhausted::builder()
            .disconnected(false)
            .build();
        let step = map_event(&Event::PairingQrCodesExhausted(kept.clone()), &cx);
        assert!(
            matches!(step, Step::AwaitPairCode(at) if at == expires),
            "{step:?}"
        );

        // The code expired meanwhile, or the library closed the socket anyway.
        let late = Context {
            now: Some(expires),
            ..cx.clone()
        };
        let dropped = PairingQrCodesExhausted::builder()
            .disconnected(true)
            .build();
        for (event, cx) in [(kept, &late), (dropped, &cx)] {
            let step = map_event(&Event::PairingQrCodesExhausted(event), cx);
            assert!(
                matches!(step, Step::End(Terminal::Emit(SessionEvent::QrExhausted))),
                "{step:?}"
            );
        }
    }

    #[test]
    fn exhausted_qr_codes_without_a_pair_code_end_the_link() {
        let step = map_event(
            &Event::PairingQrCodesExhausted(
                PairingQrCodesExhausted::builder()
                    .disconnected(true)
                    .build(),
            ),
            &Context::default(),
        );
        assert!(
            matches!(step, Step::End(Terminal::Emit(SessionEvent::QrExhausted))),
            "{step:?}"
        );
    }

    #[test]
    fn pairing_waits_for_the_login_and_its_failure_stops() {
        let jid: Jid = "15550001111:7@s.whatsapp.net".parse().expect("jid");
        let lid: Jid = "100000000000001:7@lid".parse().expect("lid");
        let step = map(Event::PairSuccess(
            PairSuccess::builder()
                .id(jid.clone())
                .lid(lid.clone())
                .business_name(String::new())
                .platform("android".to_string())
                .build(),
        ));
        assert!(
            matches!(step, Step::Paired) && step.shows_life(),
            "{step:?}"
        );
        let error = stopped(map(Event::PairError(
            PairError::builder()
                .id(jid)
                .lid(lid)
                .business_name(String::new())
                .platform("android".to_string())
                .error("pairing crypto failed with code 401: hmac-mismatch".to_string())
                .build(),
        )));
        assert_eq!(error.code, ErrorCode::ProviderError);
    }

    #[test]
    fn message_acks_resolve_sends_and_other_acks_do_not() {
        let ack = |class: Option<&str>, error: Option<&str>| {
            map(Event::ServerAck(
                ServerAck::builder()
                    .id("3EB0AA".to_string())
                    .maybe_class(class.map(str::to_string))
                    .maybe_error(error.map(str::to_string))
                    .build(),
            ))
        };
        assert!(
            matches!(ack(Some("message"), None), Step::Ack { id, nack: None } if id == "3EB0AA")
        );
        assert!(matches!(ack(None, Some("403")), Step::Ack { nack: Some(n), .. } if n == "403"));
        assert!(matches!(ack(Some("receipt"), None), Step::Ignore));
    }

    fn source(chat: &str, sender: &str) -> MessageSource {
        MessageSource {
            chat: chat.parse().expect("chat"),
            sender: sender.parse().expect("sender"),
            ..Default::default()
        }
    }

    fn receipt(sender: &str, kind: ReceiptType) -> Event {
        Event::Receipt(
            Receipt::builder()
                .source(source("15552220000@s.whatsapp.net", sender))
                .message_ids(vec!["3EB0AA".to_string()])
                .timestamp(Utc::now())
                .r#type(kind)
                .offline(false)
                .build(),
        )
    }

    #[test]
    fn peer_receipts_are_reported_and_our_own_are_not() {
        let step = map(receipt("15552220000:2@s.whatsapp.net", ReceiptType::Read));
        let Step::Emit(SessionEvent::Receipt {
            message_ids,
            status,
            from,
            chat,
        }) = step
        else {
            panic!("{step:?}");
        };
        assert_eq!(message_ids, ["3EB0AA"]);
        assert_eq!(status, MessageStatus::Read);
        assert_eq!(from, "15552220000@s.whatsapp.net");
        assert_eq!(chat, "15552220000@s.whatsapp.net");
        // Another device of this account, and a receipt kind that is no status.
        assert!(matches!(
            map(receipt("15550001111:3@s.whatsapp.net", ReceiptType::Read)),
            Step::Ignore
        ));
        assert!(matches!(
            map(receipt("15552220000@s.whatsapp.net", ReceiptType::Retry)),
            Step::Ignore
        ));
    }

    #[test]
    fn presence_of_a_lid_peer_is_looked_up_unless_the_event_has_its_number() {
        let step = map(Event::Presence(
            PresenceUpdate::builder()
                .from("100000000000009@lid".parse().expect("lid"))
                .unavailable(true)
                .build(),
        ));
        let Step::Presence { presence, lookup } = step else {
            panic!("{step:?}");
        };
        assert_eq!(presence.presence, "unavailable");
        assert_eq!(presence.jid, "100000000000009@lid");
        assert_eq!(
            lookup.map(|j| j.to_string()).as_deref(),
            Some("100000000000009@lid")
        );

        let mut from = source("100000000000009@lid", "100000000000009:4@lid");
        from.sender_alt = Some("15552220000@s.whatsapp.net".parse().expect("pn"));
        let step = map(Event::ChatPresence(
            ChatPresenceUpdate::builder()
                .source(from)
                .state(ChatPresence::Composing)
                .media(ChatPresenceMedia::Audio)
                .build(),
        ));
        let Step::Presence { presence, lookup } = step else {
            panic!("{step:?}");
        };
        assert_eq!(presence.jid, "15552220000@s.whatsapp.net");
        assert_eq!(presence.chat_state.as_deref(), Some("recording"));
        assert!(lookup.is_none());
    }

    fn inbound(chat: &str, sender: &str, from_me: bool, message: wa::Message) -> LibInbound {
        let mut info = MessageInfo {
            source: source(chat, sender),
            id: "3EB0BB".to_string(),
            ..Default::default()
        };
        info.source.is_from_me = from_me;
        LibInbound::builder()
            .message(Arc::new(message))
            .info(Arc::new(info))
            .build()
    }

    fn revoke(id: &str) -> wa::Message {
        wa::Message {
            protocol_message: MessageField::some(wa::message::ProtocolMessage {
                r#type: Some(wa::message::protocol_message::Type::REVOKE),
                key: MessageField::some(wa::MessageKey {
                    id: Some(id.to_string()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn message_batches_report_revokes_reactions_and_edits_and_deliver_what_the_hook_missed() {
        let peer = "15552220000@s.whatsapp.net";
        let text = wa::Message {
            conversation: Some("hi".to_string()),
            ..Default::default()
        };
        let reaction = wa::Message {
            reaction_message: MessageField::some(wa::message::ReactionMessage {
                key: MessageField::some(wa::MessageKey {
                    id: Some("3EB0LIKED".to_string()),
                    ..Default::default()
                }),
                text: Some("❤️".to_string()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let edit = wa::Message {
            protocol_message: MessageField::some(wa::message::ProtocolMessage {
                r#type: Some(wa::message::protocol_message::Type::MESSAGE_EDIT),
                key: MessageField::some(wa::MessageKey {
                    id: Some("3EB0TYPO".to_string()),
                    ..Default::default()
                }),
                edited_message: MessageField::some(wa::Message {
                    conversation: Some("fixed".to_string()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let messages: Arc<[LibInbound]> = Arc::from(vec![
            inbound(peer, peer, false, revoke("3EB0OLD")),
            inbound(peer, peer, true, revoke("3EB0MINE")),
            inbound(peer, peer, false, text),
            inbound(peer, peer, false, reaction),
            inbound(peer, peer, false, edit),
        ]);
        let batch = |committed: bool| {
            Event::Messages(
                MessageBatch::builder()
                    .messages(messages.clone())
                    .origin(BatchOrigin::Live)
                    .hook_committed(committed)
                    .build(),
            )
        };
        let Step::Messages { actions, deliver } = map(batch(true)) else {
            panic!("messages");
        };
        assert_eq!(
            actions,
            [
                SessionEvent::Revoked {
                    message_id: "3EB0OLD".to_string(),
                    chat: peer.to_string(),
                    from: peer.to_string(),
                },
                SessionEvent::Reaction {
                    message_id: "3EB0LIKED".to_string(),
                    chat: peer.to_string(),
                    from: peer.to_string(),
                    emoji: "❤️".to_string(),
                },
                SessionEvent::Edited {
                    message_id: "3EB0TYPO".to_string(),
                    chat: peer.to_string(),
                    from: peer.to_string(),
                    text: "fixed".to_string(),
                    edited_at: mapping::from_chrono(MessageInfo::default().timestamp).unwrap(),
                },
            ]
        );
        assert!(deliver.is_none(), "the hook stored them");
        let Step::Messages { deliver, .. } = map(batch(false)) else {
            panic!("messages");
        };
        assert_eq!(deliver.map(|d| d.len()), Some(5));
    }
}
