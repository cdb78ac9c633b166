//! Session requests asked through the commands queue (`Command::Ask`): carried out on this
//! worker's provider or sandbox (`wa_core::session::execute`), the reply stored for the
//! caller that waits for it. An ask whose caller stopped waiting is dropped unanswered.

use uuid::Uuid;
use wa_core::session::{Reply, SessionRequest, execute, reply_expiry, still_wanted};
use wa_core::store::StoreError;
use wa_core::time::{self, OffsetDateTime};
use wa_errors::{ApiError, ErrorCode};

use crate::{Next, Worker};

/// The reply stored instead of an answer too large for the store.
fn too_large_to_hand_back() -> Reply {
    Reply::of(Err(ApiError::new(
        ErrorCode::ProviderError,
        "the answer is too large to hand back from the device's worker",
    )))
}

impl Worker {
    /// Answers the ask `ask_id`, unless its `deadline` has passed. `Err` only when the
    /// reply could not be stored (retried, and dropped then if the caller stopped waiting).
    pub(crate) async fn answer(
        &self,
        device_id: Uuid,
        ask_id: Uuid,
        request: &SessionRequest,
        deadline: OffsetDateTime,
    ) -> Result<Next, StoreError> {
        if !still_wanted(deadline, time::now()) {
            tracing::info!(%device_id, %ask_id, "session request past its deadline dropped");
            return Ok(Next::Done);
        }
        let outcome = execute(
            &*self.provider,
            self.sandbox.as_deref(),
            device_id,
            request.clone(),
        )
        .await;
        if let Err(e) = &outcome {
            // The reply keeps the public message only: the cause is logged here.
            e.log_if_server_error();
        }
        let expires = reply_expiry(deadline);
        match self
            .store
            .put_reply(ask_id, &Reply::of(outcome), expires)
            .await
        {
            Err(StoreError::TooLarge) => {
                self.store
                    .put_reply(ask_id, &too_large_to_hand_back(), expires)
                    .await?
            }
            r => r?,
        }
        Ok(Next::Done)
    }
}
