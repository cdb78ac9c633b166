//! Session requests asked of the device's worker through the commands queue
//! ([`QueuedSessions`]), and the pure rules around it: the size an ask may have, its
//! deadline, how long its reply is kept, and the backoff of the wait for the reply.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use uuid::Uuid;
use wa_errors::{ApiError, ApiResult, ErrorCode};

use super::{SessionAnswer, SessionRequest, Sessions};
use crate::devices::Device;
use crate::queue::{COMMANDS, Command, Queue, command_message};
use crate::settings::whole_number;
use crate::store::{Store, StoreError};
use crate::time::{self, OffsetDateTime};

/// `WA_QUERY_WAIT_MS`' default: how long a caller waits for the worker's answer.
pub const DEFAULT_QUERY_WAIT: Duration = Duration::from_secs(10);

/// The longest `WA_QUERY_WAIT_MS` (milliseconds).
const MAX_QUERY_WAIT_MS: u64 = 120_000;

/// The largest ask (its commands-queue message) handed to the worker: SQS's message limit,
/// applied on every queue so that every deployment refuses the same requests.
pub const MAX_ASK_BYTES: usize = 256 * 1024;

/// How long a reply is kept after its ask's deadline (nobody reads it then; it is there for
/// a look at what the worker answered late).
pub const REPLY_KEPT: Duration = Duration::from_secs(5 * 60);

/// The first pause between two reads of the reply, and the longest.
const FIRST_POLL: Duration = Duration::from_millis(25);
const LONGEST_POLL: Duration = Duration::from_millis(250);

/// `WA_QUERY_WAIT_MS` from its value (`None`: unset or blank): milliseconds from 1 to
/// 120000, default 10000. The error says what is wrong.
pub fn query_wait(value: Option<&str>) -> Result<Duration, String> {
    let default = DEFAULT_QUERY_WAIT.as_millis() as u64;
    let problem = format!("must be milliseconds, from 1 to {MAX_QUERY_WAIT_MS}");
    whole_number(value, default, 1..=MAX_QUERY_WAIT_MS, &problem).map(Duration::from_millis)
}

/// 413 request_too_large for an ask whose message (`bytes` long) is over [`MAX_ASK_BYTES`].
pub fn check_ask_size(bytes: usize) -> ApiResult<()> {
    if bytes <= MAX_ASK_BYTES {
        return Ok(());
    }
    Err(ApiError::new(
        ErrorCode::RequestTooLarge,
        format!(
            "the request is too large to hand to the device's worker ({bytes} bytes, at most \
             {MAX_ASK_BYTES}); send media by `url`"
        ),
    ))
}

/// Whether an ask is still wanted at `now`: its caller waits until `deadline`, and an ask
/// whose deadline has passed is dropped without running it.
pub fn still_wanted(deadline: OffsetDateTime, now: OffsetDateTime) -> bool {
    now <= deadline
}

/// When the reply to an ask with `deadline` may be deleted (DynamoDB's TTL).
pub fn reply_expiry(deadline: OffsetDateTime) -> OffsetDateTime {
    deadline + REPLY_KEPT
}

/// The pause after the `attempt`-th read (0 first) of a reply that is not there yet:
/// 25 ms, doubling, at most 250 ms.
pub fn poll_delay(attempt: u32) -> Duration {
    crate::notify::doubling(FIRST_POLL, 1, LONGEST_POLL, attempt)
}

/// What to do after the `attempt`-th read found no reply, `waited` into a wait of `wait`:
/// pause this long and read again, or `None`: the wait is over (504).
pub fn next_poll(attempt: u32, waited: Duration, wait: Duration) -> Option<Duration> {
    let left = wait.checked_sub(waited).filter(|l| !l.is_zero())?;
    Some(poll_delay(attempt).min(left))
}

/// 504 upstream_timeout: no reply within the wait.
fn no_answer(wait: Duration) -> ApiError {
    ApiError::new(
        ErrorCode::UpstreamTimeout,
        format!(
            "the device's worker did not answer within {} ms (WA_QUERY_WAIT_MS); retry later",
            wait.as_millis()
        ),
    )
}

/// Session requests asked of the worker that holds the device: a `Command::Ask` on the
/// commands queue (in the device's ask group, so in a fleet it reaches the device's owner
/// like every command of the device), then the reply record, read with a short backoff up
/// to `wait`. Used where the worker runs in another process: the Lambdas, and `wa-server`
/// with `WA_WORKER=0`.
#[derive(Clone)]
pub struct QueuedSessions {
    store: Arc<dyn Store>,
    queue: Arc<dyn Queue>,
    wait: Duration,
}

impl QueuedSessions {
    /// Asks through `queue`, reads replies from `store`, waits at most `wait` for each.
    pub fn new(store: Arc<dyn Store>, queue: Arc<dyn Queue>, wait: Duration) -> Self {
        QueuedSessions { store, queue, wait }
    }

    /// How long an ask waits for its reply.
    pub fn wait(&self) -> Duration {
        self.wait
    }

    async fn reply(&self, ask_id: Uuid) -> ApiResult<SessionAnswer> {
        let started = tokio::time::Instant::now();
        let mut attempt = 0;
        loop {
            match self.store.get_reply(ask_id).await {
                Ok(Some(reply)) => return reply.into_result(),
                // A throttled read is a read that found nothing yet.
                Ok(None) | Err(StoreError::Throttled) => {}
                Err(e) => return Err(e.into()),
            }
            let Some(pause) = next_poll(attempt, started.elapsed(), self.wait) else {
                return Err(no_answer(self.wait));
            };
            tokio::time::sleep(pause).await;
            attempt += 1;
        }
    }
}

#[async_trait]
impl Sessions for QueuedSessions {
    async fn ask(&self, device: &Device, request: SessionRequest) -> ApiResult<SessionAnswer> {
        let ask_id = Uuid::new_v4();
        let command = Command::Ask {
            device_id: device.device_id,
            ask_id,
            request,
            deadline: time::now() + self.wait,
        };
        let (group, body) = command_message(command)?;
        check_ask_size(body.len())?;
        self.queue
            .send(COMMANDS, Some(&group), &body, Duration::ZERO)
            .await?;
        self.reply(ask_id).await
    }
}
