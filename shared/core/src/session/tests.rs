//! The pure rules of session requests, one row per case, and `execute`'s mapping of each
//! request onto a provider and a sandbox that record what they were asked.

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use uuid::Uuid;
use wa_errors::{ApiError, ApiResult, ErrorCode};

use super::*;
use crate::contacts::ContactCheck;
use crate::messages::{MessageStatus, SendRequest};
use crate::provider::{
    ChatState, DropReason, Group, OutboundMessage, OwnPresence, Profile, ProviderFailure,
    ReadMessage, ScanOutcome, SentRecord, SessionHolder, SessionRecord,
};
use crate::time::{self, OffsetDateTime};

#[test]
fn the_wait_backs_off_from_25_ms_to_250_ms() {
    let ms = |n| poll_delay(n).as_millis();
    let schedule: Vec<u128> = (0..7).map(ms).collect();
    assert_eq!(schedule, [25, 50, 100, 200, 250, 250, 250]);
    assert_eq!(ms(u32::MAX), 250, "no overflow on long waits");
}

#[test]
fn the_wait_ends_at_its_bound_and_never_sleeps_past_it() {
    let wait = Duration::from_millis(1000);
    let ms = Duration::from_millis;
    for (attempt, waited, next) in [
        (0, ms(0), Some(ms(25))),
        (3, ms(500), Some(ms(200))),
        (6, ms(900), Some(ms(100))),
        (6, ms(990), Some(ms(10))),
        (6, ms(1000), None),
        (6, ms(1500), None),
    ] {
        assert_eq!(
            next_poll(attempt, waited, wait),
            next,
            "{attempt} {waited:?}"
        );
    }
    assert_eq!(next_poll(0, ms(0), Duration::ZERO), None);
}

#[test]
fn an_ask_is_wanted_until_its_deadline() {
    let deadline = time::now();
    let s = Duration::from_secs(1);
    for (now, wanted) in [
        (deadline - s, true),
        (deadline, true),
        (deadline + Duration::from_millis(1), false),
        (deadline + s * 60, false),
    ] {
        assert_eq!(still_wanted(deadline, now), wanted, "{now}");
    }
    assert_eq!(reply_expiry(deadline), deadline + REPLY_KEPT);
    assert!(REPLY_KEPT >= Duration::from_secs(60), "kept a few minutes");
}

#[test]
fn asks_over_the_queue_limit_are_refused_as_too_large() {
    assert!(check_ask_size(0).is_ok());
    assert!(check_ask_size(MAX_ASK_BYTES).is_ok());
    let e = check_ask_size(MAX_ASK_BYTES + 1).unwrap_err();
    assert_eq!(e.code(), ErrorCode::RequestTooLarge);
    assert!(e.message().contains("262145 bytes"), "{}", e.message());
}

#[test]
fn query_wait_is_read_from_its_variable() {
    let ms = Duration::from_millis;
    for (value, wait) in [
        (None, Ok(ms(10_000))),
        (Some(""), Ok(ms(10_000))),
        (Some(" 250 "), Ok(ms(250))),
        (Some("1"), Ok(ms(1))),
        (Some("120000"), Ok(ms(120_000))),
    ] {
        assert_eq!(query_wait(value), wait, "{value:?}");
    }
    for bad in ["0", "120001", "soon", "-5", "1.5"] {
        assert!(query_wait(Some(bad)).is_err(), "{bad}");
    }
}

#[test]
fn asks_have_their_own_group_per_device() {
    let d = Uuid::nil();
    assert_eq!(ask_group(d), format!("{d}:ask"));
    assert_ne!(ask_group(d), d.to_string(), "not the device's sends' group");
    assert_ne!(ask_group(d), ask_group(Uuid::max()));
}

/// What the fakes were asked, in order.
#[derive(Default)]
struct Calls(Mutex<Vec<String>>);

impl Calls {
    fn push(&self, call: String) {
        self.0.lock().unwrap().push(call);
    }
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

/// A contact's profile with only its JID.
pub(super) fn profile(jid: &str) -> Profile {
    Profile::contact(jid)
}

#[derive(Default)]
struct FakeProvider(Calls);

#[async_trait]
impl Provider for FakeProvider {
    fn name(&self) -> &'static str {
        "fake"
    }
    async fn link(
        &self,
        _: Uuid,
        _: Option<&str>,
    ) -> Result<Option<(String, OffsetDateTime)>, ProviderFailure> {
        unreachable!("not a session request")
    }
    async fn resume(&self, _: Uuid) -> Result<(), ProviderFailure> {
        unreachable!("not a session request")
    }
    async fn has_credentials(&self, _: Uuid) -> bool {
        unreachable!("not a session request")
    }
    async fn disconnect(&self, _: Uuid) {
        unreachable!("not a session request")
    }
    async fn destroy(&self, _: Uuid) {
        unreachable!("not a session request")
    }
    async fn profile(&self, device_id: Uuid, jid: &str) -> Result<Profile, ProviderFailure> {
        self.0.push(format!("profile {device_id} {jid}"));
        if jid == "hidden" {
            return Err(ProviderFailure::new(ErrorCode::UpstreamTimeout, "slow"));
        }
        Ok(profile(jid))
    }
    async fn groups(&self, device_id: Uuid) -> Result<Vec<Group>, ProviderFailure> {
        self.0.push(format!("groups {device_id}"));
        Ok(vec![])
    }
    async fn subscribe_presence(&self, _: Uuid, _: &str) -> Result<(), ProviderFailure> {
        unreachable!("not a session request")
    }
    async fn chat_presence(
        &self,
        device_id: Uuid,
        jid: &str,
        state: ChatState,
    ) -> Result<(), ProviderFailure> {
        self.0.push(format!(
            "chat_presence {device_id} {jid} {}",
            state.as_str()
        ));
        Ok(())
    }
    async fn set_presence(
        &self,
        device_id: Uuid,
        presence: OwnPresence,
    ) -> Result<(), ProviderFailure> {
        self.0
            .push(format!("presence {device_id} {}", presence.as_str()));
        Err(ProviderFailure::new(ErrorCode::DeviceNotConnected, "gone"))
    }
    async fn edit_message(
        &self,
        device_id: Uuid,
        chat: &str,
        message_id: &str,
        text: &str,
    ) -> Result<(), ProviderFailure> {
        self.0
            .push(format!("edit {device_id} {chat} {message_id} {text}"));
        Ok(())
    }
    async fn revoke_message(
        &self,
        device_id: Uuid,
        chat: &str,
        message_id: &str,
    ) -> Result<(), ProviderFailure> {
        self.0
            .push(format!("revoke {device_id} {chat} {message_id}"));
        Err(ProviderFailure::new(ErrorCode::ProviderError, "refused"))
    }
    async fn mark_read(
        &self,
        device_id: Uuid,
        chat: &str,
        messages: &[ReadMessage],
    ) -> Result<(), ProviderFailure> {
        let ids: Vec<_> = messages
            .iter()
            .map(|m| format!("{}/{}", m.message_id, m.sender))
            .collect();
        self.0
            .push(format!("read {device_id} {chat} {}", ids.join(",")));
        Ok(())
    }
    async fn group(
        &self,
        device_id: Uuid,
        request: &crate::groups::GroupRequest,
    ) -> Result<crate::groups::GroupAnswer, ProviderFailure> {
        self.0.push(format!("group {device_id} {request:?}"));
        match request {
            crate::groups::GroupRequest::Leave { .. } => Ok(crate::groups::GroupAnswer::Done),
            _ => Err(crate::groups::not_admin()),
        }
    }

    async fn check_contacts(
        &self,
        device_id: Uuid,
        phone_numbers: &[String],
    ) -> Result<Vec<ContactCheck>, ProviderFailure> {
        self.0.push(format!(
            "check_contacts {device_id} {}",
            phone_numbers.join(",")
        ));
        if phone_numbers.is_empty() {
            return Err(ProviderFailure::new(ErrorCode::ProviderError, "nothing"));
        }
        Ok(phone_numbers
            .iter()
            .map(|n| ContactCheck::absent(n))
            .collect())
    }
    async fn send(&self, _: Uuid, _: &OutboundMessage) -> Result<(), ProviderFailure> {
        unreachable!("not a session request")
    }
}

#[derive(Default)]
struct FakeSandbox(Calls);

#[async_trait]
impl SandboxControl for FakeSandbox {
    async fn scan(&self, d: Uuid, wa_number: &str, outcome: ScanOutcome) -> ApiResult<()> {
        self.0.push(format!("scan {d} {wa_number} {outcome:?}"));
        Err(ApiError::conflict("no valid QR"))
    }
    async fn drop_session(&self, d: Uuid, reason: DropReason) -> ApiResult<()> {
        self.0.push(format!("drop {d} {reason:?}"));
        Ok(())
    }
    async fn group_event(&self, d: Uuid, update: crate::groups::GroupUpdate) -> ApiResult<()> {
        self.0.push(format!(
            "group_event {d} {} {:?}",
            update.group_jid, update.action
        ));
        Ok(())
    }
    async fn presence(
        &self,
        d: Uuid,
        jid: &str,
        presence: &str,
        chat_state: Option<&str>,
    ) -> ApiResult<()> {
        self.0
            .push(format!("presence {d} {jid} {presence} {chat_state:?}"));
        Ok(())
    }
    async fn sent(&self, d: Uuid) -> ApiResult<Vec<SentRecord>> {
        self.0.push(format!("sent {d}"));
        Ok(vec![SentRecord::plain(
            "m1",
            "t",
            "text",
            OffsetDateTime::UNIX_EPOCH,
        )])
    }
    async fn sessions(&self, d: Uuid) -> ApiResult<Vec<SessionRecord>> {
        self.0.push(format!("sessions {d}"));
        Ok(vec![SessionRecord {
            worker_id: "w1".into(),
            epoch: 3,
            opened_at: OffsetDateTime::UNIX_EPOCH,
            closed_at: None,
        }])
    }
    fn held_by(&self, holder: std::sync::Arc<dyn SessionHolder>) {
        self.0.push(format!("held by {}", holder.worker_id()));
    }
    async fn inbound(&self, d: Uuid, from: &str, request: SendRequest) -> ApiResult<String> {
        self.0
            .push(format!("inbound {d} {from} {:?}", request.text));
        Ok("in-1".into())
    }
    async fn revoke(&self, d: Uuid, message_id: &str, chat: &str, from: &str) -> ApiResult<()> {
        self.0
            .push(format!("revoke {d} {message_id} {chat} {from}"));
        Ok(())
    }
    async fn receipt(&self, d: Uuid, message_id: &str, status: MessageStatus) -> ApiResult<()> {
        self.0.push(format!("receipt {d} {message_id} {status:?}"));
        Ok(())
    }
    async fn react(
        &self,
        d: Uuid,
        chat: &str,
        from: &str,
        message_id: &str,
        emoji: &str,
    ) -> ApiResult<()> {
        self.0
            .push(format!("react {d} {chat} {from} {message_id} {emoji}"));
        Ok(())
    }
    async fn edit(
        &self,
        d: Uuid,
        chat: &str,
        from: &str,
        message_id: &str,
        text: &str,
    ) -> ApiResult<()> {
        self.0
            .push(format!("edit {d} {chat} {from} {message_id} {text}"));
        Ok(())
    }
    async fn poll_vote(
        &self,
        d: Uuid,
        chat: &str,
        voter: &str,
        poll_message_id: &str,
        selected: &[String],
    ) -> ApiResult<()> {
        self.0.push(format!(
            "vote {d} {chat} {voter} {poll_message_id} {selected:?}"
        ));
        Ok(())
    }
    async fn call(&self, d: Uuid, from: &str, is_video: bool) -> ApiResult<()> {
        self.0.push(format!("call {d} {from} {is_video}"));
        Ok(())
    }
}

#[tokio::test]
async fn execute_maps_each_request_onto_its_call() {
    let provider = FakeProvider::default();
    let sandbox = FakeSandbox::default();
    let d = Uuid::nil();
    let run = |r: SessionRequest| execute(&provider, Some(&sandbox), d, r);
    use SessionRequest as R;

    let a = run(R::Profile { jid: "j1".into() }).await.unwrap();
    assert_eq!(a, SessionAnswer::Profile(profile("j1")));
    let e = run(R::Profile {
        jid: "hidden".into(),
    })
    .await
    .unwrap_err();
    assert_eq!(
        (e.code(), e.message()),
        (ErrorCode::UpstreamTimeout, "slow")
    );
    assert_eq!(run(R::Groups).await.unwrap(), SessionAnswer::Groups(vec![]));
    let check = R::CheckContacts {
        phone_numbers: vec!["15550001111".into(), "15550002222".into()],
    };
    assert_eq!(
        run(check).await.unwrap().into_contacts().unwrap(),
        [
            ContactCheck::absent("15550001111"),
            ContactCheck::absent("15550002222")
        ]
    );
    let e = run(R::CheckContacts {
        phone_numbers: vec![],
    })
    .await
    .unwrap_err();
    assert_eq!(e.code(), ErrorCode::ProviderError, "the provider's error");
    let leave = R::Group {
        request: crate::groups::GroupRequest::Leave {
            group_jid: "1@g.us".into(),
        },
    };
    assert_eq!(
        run(leave).await.unwrap(),
        SessionAnswer::Group(crate::groups::GroupAnswer::Done)
    );
    let info = R::Group {
        request: crate::groups::GroupRequest::Info {
            group_jid: "1@g.us".into(),
        },
    };
    let e = run(info).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::Forbidden, "the provider's refusal");
    let typing = R::ChatPresence {
        jid: "c@s.whatsapp.net".into(),
        state: ChatState::Recording,
    };
    assert_eq!(run(typing).await.unwrap(), SessionAnswer::Done);
    let e = run(R::SetPresence {
        presence: OwnPresence::Unavailable,
    })
    .await
    .unwrap_err();
    assert_eq!(
        e.code(),
        ErrorCode::DeviceNotConnected,
        "the provider's error"
    );
    let edit = R::EditMessage {
        chat: "c@s.whatsapp.net".into(),
        message_id: "M1".into(),
        text: "fixed".into(),
    };
    assert_eq!(run(edit).await.unwrap(), SessionAnswer::Done);
    let revoke = R::RevokeMessage {
        chat: "c@s.whatsapp.net".into(),
        message_id: "M1".into(),
    };
    let e = run(revoke).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::ProviderError, "the provider's error");
    let read = R::MarkRead {
        chat: "g@g.us".into(),
        messages: vec![ReadMessage {
            message_id: "M2".into(),
            sender: "s@s.whatsapp.net".into(),
        }],
    };
    assert_eq!(run(read).await.unwrap(), SessionAnswer::Done);
    assert_eq!(
        provider.0.take(),
        [
            format!("profile {d} j1"),
            format!("profile {d} hidden"),
            format!("groups {d}"),
            format!("check_contacts {d} 15550001111,15550002222"),
            format!("check_contacts {d} "),
            format!("group {d} Leave {{ group_jid: \"1@g.us\" }}"),
            format!("group {d} Info {{ group_jid: \"1@g.us\" }}"),
            format!("chat_presence {d} c@s.whatsapp.net recording"),
            format!("presence {d} unavailable"),
            format!("edit {d} c@s.whatsapp.net M1 fixed"),
            format!("revoke {d} c@s.whatsapp.net M1"),
            format!("read {d} g@g.us M2/s@s.whatsapp.net"),
        ]
    );

    let e = run(R::SandboxScan {
        wa_number: "155".into(),
        outcome: ScanOutcome::ClientOutdated,
    })
    .await
    .unwrap_err();
    assert_eq!(e.code(), ErrorCode::Conflict, "the sandbox's own error");
    for (request, answer) in [
        (
            R::SandboxDrop {
                reason: DropReason::LoggedOut,
            },
            SessionAnswer::Done,
        ),
        (
            R::SandboxPresence {
                jid: "p".into(),
                presence: "available".into(),
                chat_state: Some("paused".into()),
            },
            SessionAnswer::Done,
        ),
        (
            R::SandboxInbound {
                from: "f".into(),
                message: serde_json::json!({"text": "hi"}),
            },
            SessionAnswer::MessageId("in-1".into()),
        ),
        (
            R::SandboxReceipt {
                message_id: "m".into(),
                status: MessageStatus::Played,
            },
            SessionAnswer::Done,
        ),
        (
            R::SandboxRevoke {
                message_id: "m".into(),
                chat: "c".into(),
                from: "f".into(),
            },
            SessionAnswer::Done,
        ),
        (
            R::SandboxReaction {
                chat: "c".into(),
                from: "f".into(),
                message_id: "m".into(),
                emoji: "👍".into(),
            },
            SessionAnswer::Done,
        ),
        (
            R::SandboxEdit {
                chat: "c".into(),
                from: "f".into(),
                message_id: "m".into(),
                text: "t".into(),
            },
            SessionAnswer::Done,
        ),
        (
            R::SandboxGroupEvent {
                update: crate::groups::GroupUpdate {
                    group_jid: "1@g.us".into(),
                    action: crate::groups::GroupUpdateAction::Left,
                    participants: vec!["p".into()],
                    by: None,
                    changes: Default::default(),
                },
            },
            SessionAnswer::Done,
        ),
        (
            R::SandboxPollVote {
                chat: "c".into(),
                voter: "v".into(),
                poll_message_id: "p".into(),
                selected_options: vec!["a".into()],
            },
            SessionAnswer::Done,
        ),
        (
            R::SandboxCall {
                from: "f".into(),
                is_video: true,
            },
            SessionAnswer::Done,
        ),
    ] {
        assert_eq!(run(request.clone()).await.unwrap(), answer, "{request:?}");
    }
    let sent = run(R::SandboxSent).await.unwrap().into_sent().unwrap();
    assert_eq!(sent[0].message_id, "m1");
    let sessions = run(R::SandboxSessions)
        .await
        .unwrap()
        .into_sessions()
        .unwrap();
    assert_eq!(
        (sessions[0].worker_id.as_str(), sessions[0].epoch),
        ("w1", 3)
    );
    assert_eq!(
        sandbox.0.take(),
        [
            format!("scan {d} 155 ClientOutdated"),
            format!("drop {d} LoggedOut"),
            format!("presence {d} p available Some(\"paused\")"),
            format!("inbound {d} f Some(\"hi\")"),
            format!("receipt {d} m Played"),
            format!("revoke {d} m c f"),
            format!("react {d} c f m 👍"),
            format!("edit {d} c f m t"),
            format!("group_event {d} 1@g.us Left"),
            format!("vote {d} c v p [\"a\"]"),
            format!("call {d} f true"),
            format!("sent {d}"),
            format!("sessions {d}"),
        ]
    );
}

#[tokio::test]
async fn execute_refuses_what_this_worker_cannot_answer() {
    let provider = FakeProvider::default();
    let sandbox = FakeSandbox::default();
    let d = Uuid::nil();
    // The sandbox's requests where the worker runs the real provider: as today's routes.
    for r in [
        SessionRequest::SandboxSent,
        SessionRequest::SandboxSessions,
        SessionRequest::SandboxDrop {
            reason: DropReason::LoggedOut,
        },
    ] {
        let e = execute(&provider, None, d, r).await.unwrap_err();
        assert_eq!(e.code(), ErrorCode::NotFound);
        assert_eq!(
            e.message(),
            "the sandbox is not enabled (WA_PROVIDER=sandbox)"
        );
    }
    let e = execute(&provider, Some(&sandbox), d, SessionRequest::Unknown)
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::ProviderError);
    // Fields that are not a send's never reach the sandbox.
    let e = execute(
        &provider,
        Some(&sandbox),
        d,
        SessionRequest::SandboxInbound {
            from: "f".into(),
            message: serde_json::json!({"nope": 1}),
        },
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InternalError);
    assert!(provider.0.take().is_empty());
    assert!(sandbox.0.take().is_empty());
}
