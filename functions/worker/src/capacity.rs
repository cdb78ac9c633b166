//! Capacity: how many more WhatsApp sessions this process can open before it runs out of
//! file descriptors, and the open-files limit a process raises at start.
//!
//! A real session holds descriptors (its SQLite store, its WebSocket, the HTTP
//! connections of its media) and a process stops accepting them, sockets and files
//! alike, at its soft `RLIMIT_NOFILE`: 1,024 on many Linux hosts, which would stop a
//! worker at a few dozen sessions. So a process raises its soft limit to the hard one at
//! start ([`raise_open_files_limit`]), and a worker opens a session only while
//! [`Capacity::room`] says another one fits beside what it already holds, keeping a
//! reserve for everything else the process does (webhook deliveries, media fetches,
//! its own store). A worker that has no room leaves the device to another worker.

use std::time::Duration;

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
use uuid::Uuid;

use crate::Worker;

/// Descriptors a real (whatsapp-rust) session holds, with room for its bursts: the
/// store's one SQLite connection with its rollback journal (2), the WebSocket (1), and
/// up to a few pooled or in-flight HTTP connections for media and the DNS lookups of
/// reconnects. See docs/performance.md ("Memory and descriptors per device").
pub const WHATSAPP_DESCRIPTORS_PER_SESSION: u64 = 8;

/// Descriptors kept free for the rest of the process: webhook deliveries (up to 64 at
/// once), media fetches of the commands in flight, the store and queue connections, the
/// AWS SDK's connection pools, the logs.
pub const RESERVED_DESCRIPTORS: u64 = 256;

/// How long a command that would open a session waits before it comes back when the
/// worker has no room (another worker may take it meanwhile).
pub const NO_ROOM_RETRY: Duration = Duration::from_secs(30);

/// What the process's open files amount to right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// The soft `RLIMIT_NOFILE`; `None` when unlimited.
    pub soft_limit: Option<u64>,
    /// Descriptors open (`/proc/self/fd`); `None` where they cannot be counted.
    pub in_use: Option<u64>,
}

impl Usage {
    /// This process's limit and descriptors, read now.
    pub fn now() -> Usage {
        Usage {
            soft_limit: getrlimit(Resource::Nofile).current,
            in_use: descriptors_in_use(),
        }
    }
}

/// What the open-files limit leaves for new sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Room {
    /// Nothing limits them: no soft limit, or sessions that hold no descriptors.
    Unbounded,
    /// This many more sessions fit beside the reserve.
    Sessions(u64),
    /// The descriptors in use cannot be counted here (no `/proc`): nothing is refused.
    Unknown,
}

impl Room {
    /// Whether one more session may be opened.
    pub fn admits_one(self) -> bool {
        !matches!(self, Room::Sessions(0))
    }
}

/// How many more sessions of `per_session` descriptors fit under `usage`'s soft limit
/// while `reserve` descriptors stay free.
pub fn room(usage: Usage, per_session: u64, reserve: u64) -> Room {
    let Some(limit) = usage.soft_limit else {
        return Room::Unbounded;
    };
    if per_session == 0 {
        return Room::Unbounded;
    }
    let Some(in_use) = usage.in_use else {
        return Room::Unknown;
    };
    Room::Sessions(limit.saturating_sub(in_use.saturating_add(reserve)) / per_session)
}

/// A worker's session capacity: what one session costs in descriptors, what the rest of
/// the process keeps, and where the current usage is read (the process itself, or a
/// fixed figure in tests). The fleet's lease code consults [`Capacity::room`] before it
/// claims a device.
#[derive(Debug, Clone, Copy)]
pub struct Capacity {
    /// Descriptors one session holds.
    pub per_session: u64,
    /// Descriptors kept free for everything else.
    pub reserve: u64,
    /// Reads the current usage ([`Usage::now`] outside tests).
    pub usage: fn() -> Usage,
}

impl Capacity {
    /// The capacity of a worker whose provider is named `provider` (`Provider::name`):
    /// whatsapp-rust sessions hold [`WHATSAPP_DESCRIPTORS_PER_SESSION`]; the sandbox's
    /// sessions live in memory and hold none.
    pub fn for_provider(provider: &str) -> Capacity {
        Capacity {
            per_session: if provider == "sandbox" {
                0
            } else {
                WHATSAPP_DESCRIPTORS_PER_SESSION
            },
            reserve: RESERVED_DESCRIPTORS,
            usage: Usage::now,
        }
    }

    /// How many more sessions fit now.
    pub fn room(&self) -> Room {
        room((self.usage)(), self.per_session, self.reserve)
    }
}

impl Worker {
    /// Whether opening a session for `device_id` must be refused for want of descriptors;
    /// says so in the log (the device is left for another worker: its command comes back
    /// after [`NO_ROOM_RETRY`]).
    pub(crate) fn has_no_room_for(&self, device_id: Uuid) -> bool {
        let room = self.capacity.room();
        if room.admits_one() {
            return false;
        }
        let usage = (self.capacity.usage)();
        tracing::warn!(
            %device_id,
            open_files = usage.in_use,
            open_files_limit = usage.soft_limit,
            per_session = self.capacity.per_session,
            reserved = self.capacity.reserve,
            retry_in_secs = NO_ROOM_RETRY.as_secs(),
            "no room for another session under the open-files limit; \
             the device is left for another worker and its command comes back later"
        );
        true
    }
}

/// Descriptors this process has open, from `/proc/self/fd` (Linux); `None` elsewhere.
pub fn descriptors_in_use() -> Option<u64> {
    let entries = std::fs::read_dir("/proc/self/fd").ok()?;
    // The listing includes the descriptor that reads it.
    Some((entries.count() as u64).saturating_sub(1))
}

/// The soft limit a process should move to: the hard one, when it is higher. `None`
/// when nothing is to change (`None` inside the limits means unlimited).
pub fn raised_soft_limit(soft: Option<u64>, hard: Option<u64>) -> Option<Option<u64>> {
    match (soft, hard) {
        (None, _) => None,
        (Some(_), None) => Some(None),
        (Some(s), Some(h)) if s < h => Some(Some(h)),
        (Some(_), Some(_)) => None,
    }
}

/// The open-files limit of this process after [`raise_open_files_limit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFilesLimit {
    /// The soft limit found at start (`None`: unlimited).
    pub soft_before: Option<u64>,
    /// The soft limit now.
    pub soft: Option<u64>,
    /// The hard limit.
    pub hard: Option<u64>,
}

/// Raises this process's soft `RLIMIT_NOFILE` to its hard limit, and logs both: an
/// `info` line with the limits, or a `warn` line when the system refused the change
/// (the process then keeps its old soft limit, and sessions stop sooner).
pub fn raise_open_files_limit() -> OpenFilesLimit {
    let Rlimit { current, maximum } = getrlimit(Resource::Nofile);
    let mut limit = OpenFilesLimit {
        soft_before: current,
        soft: current,
        hard: maximum,
    };
    if let Some(target) = raised_soft_limit(current, maximum) {
        let new = Rlimit {
            current: target,
            maximum,
        };
        match setrlimit(Resource::Nofile, new) {
            Ok(()) => limit.soft = target,
            Err(e) => tracing::warn!(
                error = %e,
                soft = current,
                hard = maximum,
                "could not raise the open-files limit to its hard limit"
            ),
        }
    }
    tracing::info!(
        soft_before = limit.soft_before,
        soft = limit.soft,
        hard = limit.hard,
        "open-files limit (RLIMIT_NOFILE; absent = unlimited)"
    );
    limit
}

#[cfg(test)]
mod tests;
