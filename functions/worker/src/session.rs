//! Session events: each provider event becomes the device's new status (with its webhook
//! event), a receipt moves sent messages forward, a presence or a revoke is stored. An event
//! whose storage fails is retried with backoff, in order, before the next one.

use std::time::Duration;

use uuid::Uuid;
use wa_core::devices::DeviceStatus as S;
use wa_core::lifecycle::on_event;
use wa_core::messages::{Direction, Edit, MessageStatus, MessageUpdate, wait_key};
use wa_core::provider::{ProviderFailure, SessionEvent};
use wa_core::send_service::cancel_pending;
use wa_core::store::StoreError;
use wa_core::time;
use wa_core::webhooks::payload;
use wa_errors::ErrorCode;

use crate::Worker;

/// How many times a session event is tried before it is given up.
pub const EVENT_ATTEMPTS: u32 = 10;

/// The first wait before a session event is tried again.
pub const EVENT_RETRY_FIRST: Duration = Duration::from_millis(100);

/// The wait after failed attempt `attempt` (1 for the first) to store a session event:
/// `first`, doubling, at most 50 times `first` (100 ms ... 5 s); `None` once
/// [`EVENT_ATTEMPTS`] attempts failed.
pub fn event_retry_delay(attempt: u32, first: Duration) -> Option<Duration> {
    (attempt < EVENT_ATTEMPTS)
        .then(|| (first * (1u32 << attempt.saturating_sub(1).min(6))).min(first * 50))
}

/// The event of a provider failure: `LoggedOut` when WhatsApp ended the session.
pub(crate) fn stopped_or_logged_out(error: ProviderFailure) -> SessionEvent {
    if error.code == ErrorCode::LoggedOut {
        SessionEvent::LoggedOut { error }
    } else {
        SessionEvent::Stopped { error }
    }
}

impl Worker {
    /// Records a session event, retrying with [`event_retry_delay`] (from
    /// `Worker::event_retry`) while storing fails;
    /// an event that still fails after [`EVENT_ATTEMPTS`] attempts is logged as an error
    /// and dropped; one refused with `Fenced` (the lease moved) closes the session and is
    /// dropped at once. Returns whether it was recorded.
    pub async fn record_event(&self, device_id: Uuid, ev: &SessionEvent) -> bool {
        let mut attempt = 1;
        loop {
            let e = match self.apply_event(device_id, ev).await {
                Ok(()) => return true,
                // Not this worker's device (any more): its session is closed, the event
                // belongs to the device's owner. Retrying would only be refused again.
                Err(StoreError::Fenced) => {
                    self.lose(device_id, "a session event was fenced").await;
                    tracing::info!(%device_id, event = ?ev, "session event of a device this worker does not hold dropped");
                    return false;
                }
                Err(e) => e,
            };
            match event_retry_delay(attempt, self.event_retry) {
                Some(wait) => {
                    tracing::warn!(%device_id, error = %e, attempt, retry_in_ms = wait.as_millis() as u64, "could not record a session event; will retry");
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                None => {
                    tracing::error!(%device_id, error = %e, attempts = attempt, event = ?ev, "could not record a session event; dropped");
                    return false;
                }
            }
        }
    }

    /// Records a provider event: the device's new status (if the event still applies) or
    /// the presence cache.
    pub async fn apply_event(&self, device_id: Uuid, ev: &SessionEvent) -> Result<(), StoreError> {
        // Written for the session: conditioned on this worker's lease of the device.
        let store = self.session_store(device_id)?;
        if wa_core::lifecycle::changes_device(ev) {
            self.leases.know_device(device_id, None);
        }
        match ev {
            SessionEvent::Presence(p) => {
                let Some(d) = store.get_device(device_id).await? else {
                    return Ok(());
                };
                let events = payload::presence(d.app_id, device_id, p);
                return store.put_presence(device_id, p, &events).await;
            }
            SessionEvent::Receipt {
                message_ids,
                status,
                from,
                ..
            } => {
                return self
                    .apply_receipt(&*store, device_id, message_ids, *status, from)
                    .await;
            }
            SessionEvent::Revoked {
                message_id,
                chat,
                from,
            } => {
                let Some(d) = store.get_device(device_id).await? else {
                    return Ok(());
                };
                tracing::info!(%device_id, %message_id, "message revoked by its sender");
                let event = payload::revoked(d.app_id, device_id, message_id, chat, from);
                let u = MessageUpdate {
                    status: Some(MessageStatus::Revoked),
                    updated_at: Some(time::now()),
                    ..MessageUpdate::default()
                };
                return change_received(&*store, device_id, message_id, chat, u, event).await;
            }
            SessionEvent::Reaction {
                message_id,
                chat,
                from,
                emoji,
            } => {
                let Some(d) = store.get_device(device_id).await? else {
                    return Ok(());
                };
                let event = payload::reaction(d.app_id, device_id, message_id, chat, from, emoji);
                return store.append_events(&[event]).await;
            }
            SessionEvent::Edited {
                message_id,
                chat,
                from,
                text,
                edited_at,
            } => {
                let Some(d) = store.get_device(device_id).await? else {
                    return Ok(());
                };
                let event = payload::edited(
                    d.app_id, device_id, message_id, chat, from, text, *edited_at,
                );
                let u = MessageUpdate {
                    updated_at: Some(time::now()),
                    edit: Some(Edit {
                        text: text.clone(),
                        content: None,
                        edited_at: *edited_at,
                    }),
                    ..MessageUpdate::default()
                };
                return change_received(&*store, device_id, message_id, chat, u, event).await;
            }
            SessionEvent::GroupUpdate(update) => {
                let Some(d) = store.get_device(device_id).await? else {
                    return Ok(());
                };
                let event = payload::group_update(d.app_id, device_id, update);
                return store.append_events(&[event]).await;
            }
            SessionEvent::PollVote {
                poll_message_id,
                chat,
                voter,
                ballot,
                voted_at,
            } => {
                let vote = crate::votes::Vote {
                    poll_message_id,
                    chat,
                    voter,
                    ballot,
                    voted_at: *voted_at,
                };
                return self.vote_received(&*store, device_id, vote).await;
            }
            SessionEvent::Call {
                call_id,
                from,
                is_video,
                status,
            } => {
                let Some(d) = store.get_device(device_id).await? else {
                    return Ok(());
                };
                tracing::info!(%device_id, %call_id, status = status.as_str(), "incoming call");
                let event = payload::call(d.app_id, device_id, call_id, from, *is_video, *status);
                return store.append_events(&[event]).await;
            }
            _ => {}
        }
        for _ in 0..5 {
            let Some(d) = store.get_device(device_id).await? else {
                return Ok(());
            };
            let Some(update) = on_event(&d, ev, time::now()) else {
                return Ok(());
            };
            let mut next = d.clone();
            update.apply_to(&mut next);
            let events: Vec<_> = payload::device(d.status, &next).into_iter().collect();
            match store
                .update_device(device_id, &update, &[d.status], &events)
                .await
            {
                Ok(updated) => {
                    tracing::info!(%device_id, from = %d.status, to = %updated.status, "device status recorded");
                    self.notifier.notify(device_id);
                    if matches!(updated.status, S::Disconnected | S::LoggedOut) {
                        cancel_pending(
                            &*store,
                            &self.notifier,
                            device_id,
                            "the device lost its session before the send",
                        )
                        .await?;
                    }
                    if matches!(ev, SessionEvent::Qr { .. })
                        && let Some(hook) = &self.on_qr
                    {
                        hook(&updated);
                    }
                    return Ok(());
                }
                Err(StoreError::Conflict("status")) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Backend("device status kept changing".into()))
    }

    /// Moves sent messages forward on receipts (never backwards), each with its event.
    async fn apply_receipt(
        &self,
        store: &dyn wa_core::store::Store,
        device_id: Uuid,
        ids: &[String],
        status: MessageStatus,
        from: &str,
    ) -> Result<(), StoreError> {
        let earlier = earlier_than(status);
        if earlier.is_empty() {
            return Ok(());
        }
        for id in ids {
            let Some(m) = store.get_message(device_id, id).await? else {
                continue;
            };
            if !earlier.contains(&m.status) {
                continue;
            }
            let u = MessageUpdate {
                status: Some(status),
                updated_at: Some(time::now()),
                ..MessageUpdate::default()
            };
            let mut next = m.clone();
            u.apply_to(&mut next);
            let event = payload::receipt(&next, from);
            match store
                .update_message(device_id, id, &u, earlier, &[event])
                .await
            {
                Ok(_) => self.notifier.notify(wait_key(device_id, id)),
                Err(StoreError::Conflict(_)) | Err(StoreError::NotFound) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// Records what the sender of a received message did to it (revoked it, edited it): the
/// stored message of `chat` under `message_id` gets `u`, in one commit with `event`; the
/// event alone when no such message is stored (or it was revoked).
async fn change_received(
    store: &dyn wa_core::store::Store,
    device_id: Uuid,
    message_id: &str,
    chat: &str,
    u: MessageUpdate,
    event: wa_core::webhooks::Event,
) -> Result<(), StoreError> {
    let stored = store.get_message(device_id, message_id).await?;
    if stored.is_some_and(|m| m.direction == Direction::Inbound && m.chat == chat) {
        let expect = [MessageStatus::Received, MessageStatus::Read];
        let events = std::slice::from_ref(&event);
        match store
            .update_message(device_id, message_id, &u, &expect, events)
            .await
        {
            Ok(_) => return Ok(()),
            Err(StoreError::Conflict(_)) | Err(StoreError::NotFound) => {}
            Err(e) => return Err(e),
        }
    }
    store.append_events(&[event]).await
}

/// The statuses a receipt of `status` moves a message forward from (none: it is not a
/// receipt status).
fn earlier_than(status: MessageStatus) -> &'static [MessageStatus] {
    use MessageStatus as M;
    match status {
        M::Delivered => &[M::Sending, M::Sent],
        M::Read => &[M::Sending, M::Sent, M::Delivered],
        M::Played => &[M::Sending, M::Sent, M::Delivered, M::Read],
        _ => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use MessageStatus as M;

    #[test]
    fn receipts_only_move_forward() {
        assert_eq!(earlier_than(M::Delivered), [M::Sending, M::Sent]);
        assert_eq!(earlier_than(M::Read), [M::Sending, M::Sent, M::Delivered]);
        assert_eq!(
            earlier_than(M::Played),
            [M::Sending, M::Sent, M::Delivered, M::Read]
        );
        for s in [
            M::Queued,
            M::Sending,
            M::Sent,
            M::Failed,
            M::Canceled,
            M::Received,
        ] {
            assert!(earlier_than(s).is_empty(), "{s:?}");
        }
    }

    #[test]
    fn session_events_are_retried_with_a_bounded_backoff() {
        let waits: Vec<_> = (1..=EVENT_ATTEMPTS)
            .map(|a| event_retry_delay(a, EVENT_RETRY_FIRST).map(|d| d.as_millis()))
            .collect();
        assert_eq!(
            waits,
            [
                Some(100),
                Some(200),
                Some(400),
                Some(800),
                Some(1600),
                Some(3200),
                Some(5000),
                Some(5000),
                Some(5000),
                None
            ]
        );
    }

    #[test]
    fn only_the_session_state_changes_the_device() {
        let at = time::now();
        let failure = || ProviderFailure::new(ErrorCode::WhatsappConnectionLost, "gone");
        let s = |v: &str| v.to_owned();
        let rows = [
            (
                SessionEvent::Qr {
                    code: s("q"),
                    expires_at: at,
                },
                false,
            ),
            (
                SessionEvent::PairCode {
                    code: s("p"),
                    expires_at: at,
                },
                false,
            ),
            (SessionEvent::QrExhausted, false),
            (
                SessionEvent::Connected {
                    wa_number: s("1"),
                    wa_device_jid: s("1:2@s.whatsapp.net"),
                },
                false,
            ),
            (SessionEvent::Reconnecting { error: None }, false),
            (SessionEvent::Stopped { error: failure() }, false),
            (SessionEvent::LoggedOut { error: failure() }, false),
            (
                SessionEvent::Receipt {
                    message_ids: vec![s("m")],
                    status: M::Delivered,
                    from: s("f"),
                    chat: s("c"),
                },
                true,
            ),
            (
                SessionEvent::Revoked {
                    message_id: s("m"),
                    chat: s("c"),
                    from: s("f"),
                },
                true,
            ),
            (
                SessionEvent::Reaction {
                    message_id: s("m"),
                    chat: s("c"),
                    from: s("f"),
                    emoji: s("x"),
                },
                true,
            ),
            (
                SessionEvent::Edited {
                    message_id: s("m"),
                    chat: s("c"),
                    from: s("f"),
                    text: s("t"),
                    edited_at: at,
                },
                true,
            ),
            (
                SessionEvent::Call {
                    call_id: s("c"),
                    from: s("f"),
                    is_video: false,
                    status: wa_core::provider::CallStatus::Missed,
                },
                true,
            ),
        ];
        for (ev, keeps) in rows {
            assert_eq!(wa_core::lifecycle::changes_device(&ev), !keeps, "{ev:?}");
        }
    }

    #[test]
    fn failures_that_end_the_session_are_told_apart() {
        let logged_out = ProviderFailure::new(ErrorCode::LoggedOut, "unlinked");
        assert!(matches!(
            stopped_or_logged_out(logged_out),
            SessionEvent::LoggedOut { .. }
        ));
        let dropped = ProviderFailure::new(ErrorCode::WhatsappConnectionLost, "gone");
        assert!(matches!(
            stopped_or_logged_out(dropped),
            SessionEvent::Stopped { .. }
        ));
    }
}
