//! Restore at start: the worker joins the fleet and claims its fair share of the sessions
//! (`crate::leases`), linking sessions that died with their worker expire, devices whose
//! link never started are started, and the commands of the held devices' sends that were
//! pending when their last worker ended are queued again.

use wa_core::devices::{Device, DeviceStatus as S, DeviceUpdate};
use wa_core::messages::Message;
use wa_core::queue::{Command, enqueue, enqueue_batch};
use wa_core::store::{PageRequest, PendingCursor, StoreError};
use wa_core::time;

use crate::Worker;
use crate::balance::Route;

/// What a re-queue of the pending sends did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Requeued {
    /// Send commands queued.
    pub messages: usize,
    /// Pages of pending messages read from the store.
    pub pages: usize,
    /// Batches sent to the queue (one per page that had sends of this worker's devices).
    pub batches: usize,
}

/// The command that sends `m`.
pub(crate) fn send_command(m: &Message) -> Command {
    Command::Send {
        queued: None,
        device_id: m.device_id,
        message_id: m.message_id.clone(),
    }
}

impl Worker {
    /// After a start: restores the sessions ([`Worker::restore_sessions`]), then queues
    /// again the sends of the devices it holds ([`Worker::restore_sends`]).
    pub async fn restore(self: &std::sync::Arc<Self>) -> Result<(), StoreError> {
        self.restore_sessions().await?;
        self.restore_sends().await
    }

    /// Joins the fleet, claims this worker's fair share of the devices that want a session
    /// (their sessions start behind the start gate), expires linking sessions that died
    /// with their worker and starts links that never started.
    pub(crate) async fn restore_sessions(self: &std::sync::Arc<Self>) -> Result<(), StoreError> {
        self.join().await?;
        self.balance(false).await?;
        let mut after = None;
        loop {
            let page = self
                .store
                .devices_with_status(
                    &[S::QrGenerated, S::Initializing],
                    PageRequest { limit: 200, after },
                )
                .await?;
            for d in &page.items {
                self.restore_linking(d).await?;
            }
            match page.next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        Ok(())
    }

    /// Queues again the sends of the devices this worker holds whose command may be lost, a
    /// page at a time, and logs what that took. A backlog of many pages takes a while (on
    /// SQS, a request per ten commands), so the leases are to be kept meanwhile: the
    /// worker's run starts renewing them first.
    pub(crate) async fn restore_sends(&self) -> Result<(), StoreError> {
        let started = std::time::Instant::now();
        let r = self.requeue_pending().await?;
        if r.messages > 0 {
            tracing::info!(
                messages = r.messages,
                pages = r.pages,
                batches = r.batches,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "queued the sends left pending again"
            );
        }
        Ok(())
    }

    /// Queues a send command for every pending message of a device this worker holds, a
    /// page at a time, each page in one batch (a duplicate command is harmless: the send
    /// checks the message's status first).
    pub(crate) async fn requeue_pending(&self) -> Result<Requeued, StoreError> {
        let mut after: Option<PendingCursor> = None;
        let mut r = Requeued::default();
        loop {
            let (page, next) = self
                .store
                .pending_page(after.as_ref(), self.restore_page)
                .await?;
            r.pages += 1;
            let mine: Vec<_> = page
                .iter()
                .filter(|m| self.leases.holds(m.device_id))
                .map(send_command)
                .collect();
            if !mine.is_empty() {
                r.messages += mine.len();
                r.batches += 1;
            }
            enqueue_batch(&*self.queue, mine)
                .await
                .map_err(|e| StoreError::Backend(e.to_string()))?;
            match next {
                Some(c) => after = Some(c),
                None => return Ok(r),
            }
        }
    }

    /// A linking device nobody holds: its QR session died with its worker (expired), or
    /// its link never started (its `Link` is queued again; a second one is a no-op).
    async fn restore_linking(&self, d: &Device) -> Result<(), StoreError> {
        let id = d.device_id;
        let (Route::Claim { unchanged }, _) = self.route(id).await? else {
            return Ok(());
        };
        match d.status {
            S::QrGenerated => {
                let Some(store) = self.claim(id, unchanged).await? else {
                    return Ok(());
                };
                let mut u = DeviceUpdate::status(S::Expired);
                u.qr = Some(None);
                u.pair_code = Some(None);
                u.updated_at = Some(time::now());
                match store.update_device(id, &u, &[S::QrGenerated], &[]).await {
                    Ok(_) | Err(StoreError::Conflict(_)) => {}
                    Err(e) => return Err(e),
                }
                self.give_back(id).await;
            }
            S::Initializing => {
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
