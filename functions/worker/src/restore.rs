//! Restore at start: the commands of sends that were pending when the last run ended are
//! queued again, sessions that were live reconnect, linking sessions that died with the
//! process expire, and devices whose link never started are started.

use wa_core::devices::{Device, DeviceStatus as S, DeviceUpdate};
use wa_core::messages::Message;
use wa_core::provider::{ProviderFailure, SessionEvent};
use wa_core::queue::{Command, enqueue, enqueue_batch};
use wa_core::store::{PageRequest, PendingCursor, StoreError};
use wa_core::time;
use wa_core::webhooks::payload;
use wa_errors::ErrorCode;

use crate::Worker;
use crate::session::stopped_or_logged_out;

/// The command that sends `m`.
pub(crate) fn send_command(m: &Message) -> Command {
    Command::Send {
        device_id: m.device_id,
        message_id: m.message_id.clone(),
    }
}

impl Worker {
    /// After a start: sends accepted before it whose command may be lost are queued again,
    /// then every device is brought back as its status says.
    pub async fn restore(&self) -> Result<(), StoreError> {
        let requeued = self.requeue_pending().await?;
        if requeued > 0 {
            tracing::info!(messages = requeued, "queued the sends left pending again");
        }
        let mut after = None;
        loop {
            let page = self
                .store
                .devices_with_status(
                    &[S::Connected, S::Connecting, S::QrGenerated, S::Initializing],
                    PageRequest { limit: 200, after },
                )
                .await?;
            for d in &page.items {
                self.restore_one(d).await?;
            }
            match page.next {
                Some(n) => after = Some(n),
                None => return Ok(()),
            }
        }
    }

    /// Queues a send command for every pending message, a page at a time, each page in one
    /// batch (a duplicate command is harmless: the send checks the message's status first).
    /// Returns how many were queued.
    async fn requeue_pending(&self) -> Result<usize, StoreError> {
        let mut after: Option<PendingCursor> = None;
        let mut queued = 0;
        loop {
            let (page, next) = self
                .store
                .pending_page(after.as_ref(), self.restore_page)
                .await?;
            queued += page.len();
            enqueue_batch(&*self.queue, page.iter().map(send_command).collect())
                .await
                .map_err(|e| StoreError::Backend(e.to_string()))?;
            match next {
                Some(c) => after = Some(c),
                None => return Ok(queued),
            }
        }
    }

    async fn restore_one(&self, d: &Device) -> Result<(), StoreError> {
        let id = d.device_id;
        match d.status {
            S::Connected | S::Connecting => {
                if d.status == S::Connected {
                    let mut u = DeviceUpdate::status(S::Connecting);
                    u.updated_at = Some(time::now());
                    let mut next = d.clone();
                    u.apply_to(&mut next);
                    let events: Vec<_> = payload::device(d.status, &next).into_iter().collect();
                    match self
                        .store
                        .update_device(id, &u, &[S::Connected], &events)
                        .await
                    {
                        Ok(_) | Err(StoreError::Conflict(_)) => {}
                        Err(e) => return Err(e),
                    }
                }
                if self.has_no_room_for(id) {
                    // Its Resume command waits for room here or is taken by another worker.
                    return enqueue(&*self.queue, Command::Resume { device_id: id })
                        .await
                        .map_err(|e| StoreError::Backend(e.to_string()));
                }
                if !self.provider.has_credentials(id).await {
                    let error = ProviderFailure::new(
                        ErrorCode::LoggedOut,
                        "the session's keys are gone; link the device again",
                    );
                    return self
                        .apply_event(id, &SessionEvent::LoggedOut { error })
                        .await;
                }
                tracing::info!(device_id = %id, "resuming session");
                if let Err(error) = self.provider.resume(id).await {
                    self.apply_event(id, &stopped_or_logged_out(error)).await?;
                }
            }
            S::QrGenerated => {
                let mut u = DeviceUpdate::status(S::Expired);
                u.qr = Some(None);
                u.pair_code = Some(None);
                u.updated_at = Some(time::now());
                match self
                    .store
                    .update_device(id, &u, &[S::QrGenerated], &[])
                    .await
                {
                    Ok(_) | Err(StoreError::Conflict(_)) => {}
                    Err(e) => return Err(e),
                }
            }
            S::Initializing => {
                // Its Link command may be queued already; a second one is a no-op.
                let cmd = Command::Link {
                    device_id: id,
                    pair_phone: d.pair_code.as_ref().map(|p| p.phone_number.clone()),
                };
                enqueue(&*self.queue, cmd)
                    .await
                    .map_err(|e| StoreError::Backend(e.to_string()))?;
            }
            _ => {}
        }
        Ok(())
    }
}
