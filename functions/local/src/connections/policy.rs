//! The connection limits of the embedded server as pure decisions: the phases of a
//! connection and what moves it between them, the deadline of each phase, which connection
//! to shed when the server is at its cap, how a connection closes, and the cap itself from
//! the process's open-file limit. Also the request-head limits a client may rely on.

use std::time::{Duration, Instant};

/// The longest request URI taken (hyper's own limit); longer: 414 uri_too_long.
pub const MAX_URI_BYTES: usize = 65_534;

/// The most bytes of request line and headers taken; more: 431 headers_too_large.
pub const MAX_HEAD_BYTES: usize = 400 * 1024;

/// The most request headers taken (hyper's default); more: 431 headers_too_large.
pub const MAX_HEADERS: usize = 100;

/// Open files kept back from client connections: the database and its journal, session
/// files, WhatsApp's sockets, outbound HTTP, logs.
pub const MIN_RESERVED_FILES: u64 = 64;

/// The cap on client connections when `WA_MAX_CONNECTIONS` is unset and the open-file limit
/// leaves room for more.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;

/// The open-file limit assumed where the process cannot read its own (outside Linux).
pub const ASSUMED_OPEN_FILES: u64 = 1024;

/// Where a connection is, as far as its limits care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Accepted, nothing received yet: its first request head is due within the header
    /// timeout.
    Fresh,
    /// Part of a request head received: the rest is due within the header timeout.
    Head,
    /// A request is being answered, from its complete head to the end of its response: no
    /// deadline.
    Busy,
    /// Kept alive between requests: the next one is due within the idle timeout.
    Idle,
}

/// What happened on a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// Bytes arrived.
    Read,
    /// A complete request head went to the router.
    Request,
    /// A response was written out; `open` requests are still being answered.
    Answered { open: usize },
}

/// The timeouts of the phases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// `WA_HEADER_TIMEOUT_MS`: a request head (from the connection's start or from its first
    /// byte) must be complete within it.
    pub header: Duration,
    /// `WA_IDLE_TIMEOUT_SECS`: how long a kept-alive connection may wait for its next request.
    pub idle: Duration,
}

/// The phase after `event`, and since when it holds. A head's time runs from the start of the
/// connection (first request) or from its first byte (a kept-alive connection's next one).
pub fn next(phase: Phase, since: Instant, event: Event, now: Instant) -> (Phase, Instant) {
    match (phase, event) {
        (Phase::Fresh, Event::Read) => (Phase::Head, since),
        (Phase::Idle, Event::Read) => (Phase::Head, now),
        (Phase::Head | Phase::Busy, Event::Read) => (phase, since),
        (_, Event::Request) => (Phase::Busy, now),
        (_, Event::Answered { open: 0 }) => (Phase::Idle, now),
        (_, Event::Answered { .. }) => (Phase::Busy, since),
    }
}

/// When a connection in `phase` since `since` is closed, if nothing happens before.
pub fn deadline(phase: Phase, since: Instant, timeouts: Timeouts) -> Option<Instant> {
    match phase {
        Phase::Fresh | Phase::Head => Some(since + timeouts.header),
        Phase::Idle => Some(since + timeouts.idle),
        Phase::Busy => None,
    }
}

/// A connection as the shedding decision sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    pub id: u64,
    pub phase: Phase,
    pub since: Instant,
    /// Already asked to close.
    pub shedding: bool,
}

/// The connection to close to make room for a new one: the one that has waited longest
/// without a request being answered (idle, or still sending its head). `None` while one
/// chosen before is still closing (it makes the room), or when every connection is answering
/// a request: the new one waits.
pub fn victim(connections: impl IntoIterator<Item = Candidate>) -> Option<u64> {
    let mut oldest: Option<Candidate> = None;
    for c in connections {
        if c.phase == Phase::Busy {
            continue;
        }
        if c.shedding {
            return None;
        }
        if oldest.is_none_or(|o| (c.since, c.id) < (o.since, o.id)) {
            oldest = Some(c);
        }
    }
    oldest.map(|c| c.id)
}

/// How a connection is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Close {
    /// Keep it open.
    No,
    /// Drop it now: it has no response to finish.
    Now,
    /// Let hyper close it once its response is out (no next request is read).
    Gracefully,
}

/// Whether a connection in `phase` closes, when it was chosen to be shed (`shedding`) or the
/// server is shutting down (`draining`). A request being answered is always finished; a
/// connection still sending its head is dropped.
pub fn close(phase: Phase, shedding: bool, draining: bool) -> Close {
    match phase {
        Phase::Busy if draining => Close::Gracefully,
        Phase::Busy => Close::No,
        _ if !(shedding || draining) => Close::No,
        Phase::Fresh | Phase::Head => Close::Now,
        Phase::Idle => Close::Gracefully,
    }
}

/// The connection cap and whether a configured value had to be lowered to fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cap {
    pub max: usize,
    /// The configured value, when it did not fit under the open-file limit.
    pub lowered_from: Option<usize>,
}

/// The cap on client connections: `configured` (`WA_MAX_CONNECTIONS`) or
/// [`DEFAULT_MAX_CONNECTIONS`], never more than the open-file limit minus a reserve of a
/// quarter of it (at least [`MIN_RESERVED_FILES`]).
pub fn cap(configured: Option<usize>, open_files: Option<u64>) -> Cap {
    let limit = open_files.unwrap_or(ASSUMED_OPEN_FILES);
    let reserve = (limit / 4).max(MIN_RESERVED_FILES);
    let ceiling = usize::try_from(limit.saturating_sub(reserve))
        .unwrap_or(usize::MAX)
        .max(1);
    match configured {
        None => Cap {
            max: DEFAULT_MAX_CONNECTIONS.min(ceiling),
            lowered_from: None,
        },
        Some(n) if n > ceiling => Cap {
            max: ceiling,
            lowered_from: Some(n),
        },
        Some(n) => Cap {
            max: n,
            lowered_from: None,
        },
    }
}

/// The soft "Max open files" of `/proc/self/limits`; `u64::MAX` when unlimited.
pub fn open_file_limit(proc_limits: &str) -> Option<u64> {
    let line = proc_limits
        .lines()
        .find(|l| l.starts_with("Max open files"))?;
    match line["Max open files".len()..].split_whitespace().next()? {
        "unlimited" => Some(u64::MAX),
        soft => soft.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Timeouts = Timeouts {
        header: Duration::from_secs(10),
        idle: Duration::from_secs(60),
    };

    #[test]
    fn phases_move_with_events() {
        let start = Instant::now();
        let now = start + Duration::from_secs(3);
        let rows = [
            // A new connection's first bytes: its head's time runs from the accept.
            (Phase::Fresh, Event::Read, (Phase::Head, start)),
            // A kept-alive connection's next request: from its first byte.
            (Phase::Idle, Event::Read, (Phase::Head, now)),
            (Phase::Head, Event::Read, (Phase::Head, start)),
            // Body bytes (or a pipelined request) while answering.
            (Phase::Busy, Event::Read, (Phase::Busy, start)),
            (Phase::Fresh, Event::Request, (Phase::Busy, now)),
            (Phase::Head, Event::Request, (Phase::Busy, now)),
            (Phase::Idle, Event::Request, (Phase::Busy, now)),
            (Phase::Busy, Event::Answered { open: 0 }, (Phase::Idle, now)),
            (
                Phase::Busy,
                Event::Answered { open: 1 },
                (Phase::Busy, start),
            ),
        ];
        for (phase, event, want) in rows {
            assert_eq!(next(phase, start, event, now), want, "{phase:?} {event:?}");
        }
    }

    #[test]
    fn deadlines_per_phase() {
        let t0 = Instant::now();
        assert_eq!(deadline(Phase::Fresh, t0, T), Some(t0 + T.header));
        assert_eq!(deadline(Phase::Head, t0, T), Some(t0 + T.header));
        assert_eq!(deadline(Phase::Idle, t0, T), Some(t0 + T.idle));
        assert_eq!(deadline(Phase::Busy, t0, T), None);
    }

    #[test]
    fn the_longest_waiting_unanswered_connection_is_shed() {
        let t0 = Instant::now();
        let c = |id, phase, secs, shedding| Candidate {
            id,
            phase,
            since: t0 + Duration::from_secs(secs),
            shedding,
        };
        assert_eq!(
            victim([
                c(1, Phase::Busy, 0, false),
                c(2, Phase::Head, 5, false),
                c(3, Phase::Idle, 2, false),
                c(4, Phase::Fresh, 9, false),
            ]),
            Some(3)
        );
        // Busy connections are never shed; none is while one chosen before is closing...
        assert_eq!(
            victim([
                c(1, Phase::Busy, 0, false),
                c(2, Phase::Head, 1, true),
                c(3, Phase::Idle, 2, false)
            ]),
            None
        );
        assert_eq!(victim([c(1, Phase::Busy, 0, false)]), None);
        // ...unless it started answering a request instead.
        assert_eq!(
            victim([c(1, Phase::Busy, 0, true), c(2, Phase::Head, 1, false)]),
            Some(2)
        );
        assert_eq!(
            victim([c(1, Phase::Fresh, 1, false), c(2, Phase::Head, 1, false)]),
            Some(1)
        );
        assert_eq!(victim([]), None);
    }

    #[test]
    fn closing() {
        use Phase::*;
        let rows = [
            (Fresh, false, false, Close::No),
            (Head, false, false, Close::No),
            (Idle, false, false, Close::No),
            (Busy, false, false, Close::No),
            (Fresh, true, false, Close::Now),
            (Head, true, false, Close::Now),
            (Idle, true, false, Close::Gracefully),
            // A request being answered is finished before a shed connection closes.
            (Busy, true, false, Close::No),
            (Fresh, false, true, Close::Now),
            (Head, false, true, Close::Now),
            (Idle, false, true, Close::Gracefully),
            (Busy, false, true, Close::Gracefully),
            (Busy, true, true, Close::Gracefully),
        ];
        for (phase, shedding, draining, want) in rows {
            assert_eq!(
                close(phase, shedding, draining),
                want,
                "{phase:?} {shedding} {draining}"
            );
        }
    }

    #[test]
    fn the_cap_leaves_room_under_the_open_file_limit() {
        let fits = |max| Cap {
            max,
            lowered_from: None,
        };
        // The default: a quarter of the limit (at least 64 files) is kept back.
        assert_eq!(cap(None, Some(256)), fits(192));
        assert_eq!(cap(None, Some(1024)), fits(768));
        assert_eq!(cap(None, Some(100)), fits(36));
        assert_eq!(cap(None, Some(1 << 20)), fits(DEFAULT_MAX_CONNECTIONS));
        assert_eq!(cap(None, Some(u64::MAX)), fits(DEFAULT_MAX_CONNECTIONS));
        assert_eq!(cap(None, Some(10)), fits(1));
        assert_eq!(cap(None, None), fits(768));
        // A configured cap is kept when it fits, else lowered.
        assert_eq!(cap(Some(40), Some(256)), fits(40));
        assert_eq!(
            cap(Some(300), Some(256)),
            Cap {
                max: 192,
                lowered_from: Some(300)
            }
        );
        assert_eq!(cap(Some(50_000), Some(1 << 20)), fits(50_000));
    }

    #[test]
    fn open_file_limit_from_proc() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max cpu time              unlimited            unlimited            seconds   \n\
                      Max open files            256                  4096                 files     \n";
        assert_eq!(open_file_limit(limits), Some(256));
        let unlimited =
            "Max open files            unlimited            unlimited            files\n";
        assert_eq!(open_file_limit(unlimited), Some(u64::MAX));
        assert_eq!(open_file_limit("Max processes 10 10 processes\n"), None);
        assert_eq!(open_file_limit("Max open files   lots  lots files\n"), None);
    }
}
