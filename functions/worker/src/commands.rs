//! Command handling: one received command decoded, applied (under its request's id, for
//! the logs) and turned into what the consume loop does with it.

use std::time::Duration;

use tracing::Instrument;
use wa_core::consume::Settle;
use wa_core::devices::{DeviceStatus as S, DeviceUpdate, PairCode};
use wa_core::provider::SessionEvent;
use wa_core::queue::{Command, CommandEnvelope, Received};
use wa_core::store::StoreError;
use wa_core::time;

use crate::balance::{Route, route_known};
use crate::forward::Via;
use crate::leases::LinkRequest;
use crate::session::stopped_or_logged_out;
use crate::{Next, Worker, capacity, decide};

impl Worker {
    /// Decodes and applies one command, delivered `via` its queue or a forward; the answer
    /// settles it. One of a device another live worker holds is forwarded to that worker
    /// (`crate::forward`).
    pub(crate) async fn process(&self, msg: Received, via: Via) -> Settle {
        let env: CommandEnvelope = match serde_json::from_str(&msg.body) {
            Ok(e) => e,
            Err(e) => {
                // Never dropped silently: it is retried until it reaches the dead letters.
                tracing::error!(message_id = %msg.message_id, error = %e, "undecodable command");
                return Settle::RetryAfter(std::time::Duration::ZERO);
            }
        };
        let device_id = env.command.device_id();
        let message_id = match &env.command {
            Command::Send { message_id, .. } => message_id.as_str(),
            _ => "",
        };
        let span = tracing::info_span!("command", request_id = %env.request_id, %device_id, message_id = tracing::field::Empty);
        if !message_id.is_empty() {
            span.record("message_id", message_id);
        }
        let result = wa_errors::request_id::scope(
            env.request_id.clone(),
            self.handle(&env.command, &msg).instrument(span),
        )
        .await;
        match result {
            Ok(Next::Done) => Settle::Delete,
            Ok(Next::Settled(next)) => Settle::Settled(next),
            Ok(Next::RetryIn(delay)) => Settle::RetryAfter(delay),
            Ok(Next::Elsewhere(owner)) => self.forward(&msg, &via, &owner).await,
            Err(StoreError::Fenced) => {
                // Another worker has the device now: this one stops, the command goes on
                // there.
                self.lose(device_id, "a write was fenced").await;
                Settle::RetryAfter(ELSEWHERE_RETRY)
            }
            Err(e) => {
                let delay = decide::retry_delay(msg.receive_count);
                tracing::warn!(%device_id, error = %e, retry_in_secs = delay.as_secs(), "command failed; will retry");
                Settle::RetryAfter(delay)
            }
        }
    }

    /// Applies one command, as `received` from the commands queue (its receive count: how
    /// often it was delivered), on this worker only while it holds the device's lease: a
    /// device nobody holds is claimed first (and its session opened when it wants one); a
    /// device another live worker holds is not handled here (`Next::Elsewhere`, with that
    /// worker). `Err` only for failures worth retrying (storage); `Fenced` when the lease
    /// moved while the command ran.
    pub async fn handle(&self, command: &Command, received: &Received) -> Result<Next, StoreError> {
        let device_id = command.device_id();
        let _busy = self.leases.busy(device_id);
        // Routed before the device is read: a command handed on to the device's owner
        // costs one read here (its lease, none when this worker holds it).
        let (route, holder) = self.route(device_id).await?;
        if route == Route::Elsewhere {
            return Ok(holder.map_or(Next::RetryIn(ELSEWHERE_RETRY), Next::Elsewhere));
        }
        let known = if uses_known_device(command) {
            self.leases.known_device(device_id)
        } else {
            // The command may change the device: read again after it.
            self.leases.know_device(device_id, None);
            None
        };
        let device = match known {
            Some(d) => Some(d),
            None => self.store.get_device(device_id).await?,
        };
        match route_known(route, device.is_some()) {
            Route::Here => {}
            Route::Elsewhere => return Ok(Next::RetryIn(ELSEWHERE_RETRY)),
            Route::Claim { unchanged } => {
                if self.has_no_room_for(device_id) {
                    return Ok(Next::RetryIn(capacity::NO_ROOM_RETRY));
                }
                if self.claim(device_id, unchanged).await?.is_none() {
                    return Ok(Next::RetryIn(ELSEWHERE_RETRY));
                }
                if !opens_session_itself(command) {
                    self.resume_held(device_id).await?;
                }
            }
        }
        if let Command::Ask {
            ask_id,
            request,
            deadline,
            ..
        } = command
        {
            return self.answer(device_id, *ask_id, request, *deadline).await;
        }
        let Some(device) = device else {
            tracing::warn!(%device_id, "command for an unknown device dropped");
            return Ok(Next::Done);
        };
        if let Command::Send {
            message_id, queued, ..
        } = command
        {
            self.leases.know_device(device_id, Some(&device));
            return self
                .send(&device, message_id, queued.as_deref(), received)
                .await;
        }
        let store = self.session_store(device_id)?;
        match command {
            Command::Link { pair_phone, .. } => {
                if device.status != S::Initializing {
                    return Ok(Next::Done);
                }
                if self.has_no_room_for(device_id) {
                    return Ok(Next::RetryIn(capacity::NO_ROOM_RETRY));
                }
                let request = LinkRequest {
                    asked_at: device.updated_at,
                    pair_phone: pair_phone.clone(),
                };
                if !self.leases.start_link(device_id, request) {
                    tracing::info!(%device_id, "the link of this request was opened here already; command dropped");
                    return Ok(Next::Done);
                }
                match self.provider.link(device_id, pair_phone.as_deref()).await {
                    Ok(Some((code, expires_at))) => {
                        let update = DeviceUpdate {
                            pair_code: Some(Some(PairCode {
                                code,
                                phone_number: pair_phone.clone().unwrap_or_default(),
                                expires_at,
                            })),
                            updated_at: Some(time::now()),
                            ..DeviceUpdate::default()
                        };
                        match store
                            .update_device(
                                device_id,
                                &update,
                                &[S::Initializing, S::QrGenerated],
                                &[],
                            )
                            .await
                        {
                            Ok(_) | Err(StoreError::Conflict(_)) => {}
                            Err(e) => {
                                // Retried: the link opens again, with a new code.
                                self.leases.forget_link(device_id);
                                return Err(e);
                            }
                        }
                        self.notifier.notify(device_id);
                    }
                    Ok(None) => {}
                    Err(error) => {
                        self.apply_event(device_id, &SessionEvent::Stopped { error })
                            .await?
                    }
                }
            }
            Command::Resume { .. } => {
                if device.status != S::Connecting {
                    return Ok(Next::Done);
                }
                if self.has_no_room_for(device_id) {
                    return Ok(Next::RetryIn(capacity::NO_ROOM_RETRY));
                }
                if let Err(error) = self.provider.resume(device_id).await {
                    self.apply_event(device_id, &stopped_or_logged_out(error))
                        .await?;
                }
            }
            Command::Disconnect { .. } => self.give_back(device_id).await,
            Command::Destroy { .. } => {
                self.provider.destroy(device_id).await;
                // The device is gone either way: a file left behind is logged, not retried.
                if let Err(e) = self.media.delete_device(device.app_id, device_id).await {
                    tracing::warn!(%device_id, error = %e, "could not delete the device's media");
                }
                self.give_back(device_id).await;
            }
            Command::SubscribePresence { jid, .. } => {
                if let Err(e) = self.provider.subscribe_presence(device_id, jid).await {
                    tracing::info!(%device_id, error = %e, "presence subscription failed");
                }
            }
            Command::Send { .. } | Command::Ask { .. } => {}
        }
        Ok(Next::Done)
    }
}

/// How long a command for a device another worker holds waits before it is received
/// again (by its owner, or by whoever claims the device once that owner is gone).
pub const ELSEWHERE_RETRY: Duration = Duration::from_millis(500);

/// Whether a `Link` command for `asked` opens a linking session, when this worker opened
/// one for `started` under the device's lease: not for the same request again (its
/// command queued twice, or delivered again before its QR was stored), which would
/// replace the session being scanned; for any other request (a new QR, a pair code).
pub(crate) fn opens_link(started: Option<&LinkRequest>, asked: &LinkRequest) -> bool {
    started != Some(asked)
}

/// Whether a command may start from the device as this worker knows it (a send reads
/// nothing of it but its status), rather than read it: any other command may change it.
pub(crate) fn uses_known_device(command: &Command) -> bool {
    matches!(command, Command::Send { .. })
}

/// Whether a command starts or ends the session itself, so claiming its device for it
/// opens nothing first.
fn opens_session_itself(command: &Command) -> bool {
    matches!(
        command,
        Command::Link { .. }
            | Command::Resume { .. }
            | Command::Disconnect { .. }
            | Command::Destroy { .. }
    )
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    fn request(ms: u64, phone: Option<&str>) -> LinkRequest {
        LinkRequest {
            asked_at: wa_core::time::OffsetDateTime::UNIX_EPOCH
                + std::time::Duration::from_millis(ms),
            pair_phone: phone.map(str::to_owned),
        }
    }

    #[test]
    fn a_link_request_opens_one_linking_session() {
        let first = request(1, None);
        assert!(opens_link(None, &first), "nothing opened yet");
        assert!(!opens_link(Some(&first), &first), "the same request again");
        assert!(opens_link(Some(&first), &request(2, None)), "a new QR");
        assert!(
            opens_link(Some(&first), &request(1, Some("15551230001"))),
            "a pair code"
        );
    }

    #[test]
    fn only_a_send_starts_from_the_known_device() {
        let device_id = Uuid::nil();
        let rows = [
            (
                Command::Send {
                    queued: None,
                    device_id,
                    message_id: "m".into(),
                },
                true,
            ),
            (
                Command::Link {
                    device_id,
                    pair_phone: None,
                },
                false,
            ),
            (Command::Resume { device_id }, false),
            (Command::Disconnect { device_id }, false),
            (Command::Destroy { device_id }, false),
            (
                Command::SubscribePresence {
                    device_id,
                    jid: "1@s.whatsapp.net".into(),
                },
                false,
            ),
        ];
        for (c, expected) in rows {
            assert_eq!(uses_known_device(&c), expected, "{c:?}");
        }
    }

    #[test]
    fn session_commands_open_nothing_before_they_run() {
        let device_id = Uuid::nil();
        for c in [
            Command::Link {
                device_id,
                pair_phone: None,
            },
            Command::Resume { device_id },
            Command::Disconnect { device_id },
            Command::Destroy { device_id },
        ] {
            assert!(opens_session_itself(&c), "{c:?}");
        }
        for c in [
            Command::Send {
                queued: None,
                device_id,
                message_id: "m".into(),
            },
            Command::SubscribePresence {
                device_id,
                jid: "1@s.whatsapp.net".into(),
            },
        ] {
            assert!(!opens_session_itself(&c), "{c:?}");
        }
    }
}
