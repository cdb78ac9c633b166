//! The record of the sandbox's simulated sessions (`GET /sandbox/devices/{id}/sessions`):
//! one append-only log per device under `<data dir>/sandbox/opened/`, a line when a
//! session opens (the worker and its lease's epoch) and one when it closes. Every sandbox
//! sharing the data directory (workers on one EFS volume) appends to the same logs: each
//! append is one write under the file's exclusive lock, so lines of several processes never
//! interleave. Which session of a device is open in this process is kept in memory.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use serde::{Deserialize, Serialize};
use uuid::Uuid;
use wa_core::provider::{SessionHolder, SessionRecord};
use wa_core::time::{self, OffsetDateTime};

/// One line of a device's log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Line {
    session: Uuid,
    #[serde(flatten)]
    change: Change,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
enum Change {
    Opened {
        worker_id: String,
        epoch: u64,
        #[serde(with = "wa_core::time::rfc3339")]
        at: OffsetDateTime,
    },
    Closed {
        #[serde(with = "wa_core::time::rfc3339")]
        at: OffsetDateTime,
    },
}

/// The sessions of a log's lines, oldest first: an `opened` line starts a record, a
/// `closed` line of the same session ends it (a close of an unknown session is ignored).
fn fold(lines: impl IntoIterator<Item = Line>) -> Vec<SessionRecord> {
    let mut records: Vec<SessionRecord> = Vec::new();
    let mut index: HashMap<Uuid, usize> = HashMap::new();
    for line in lines {
        match line.change {
            Change::Opened {
                worker_id,
                epoch,
                at,
            } => {
                index.insert(line.session, records.len());
                records.push(SessionRecord {
                    worker_id,
                    epoch,
                    opened_at: at,
                    closed_at: None,
                });
            }
            Change::Closed { at } => {
                if let Some(r) = index.get(&line.session).map(|i| &mut records[*i])
                    && r.closed_at.is_none()
                {
                    r.closed_at = Some(at);
                }
            }
        }
    }
    records
}

/// The session log of one sandbox: where the logs are, who opens its sessions, and the
/// session of each device open in this process.
pub(super) struct Opened {
    dir: PathBuf,
    holder: RwLock<Option<Arc<dyn SessionHolder>>>,
    open: Mutex<HashMap<Uuid, Uuid>>,
}

impl Opened {
    /// The logs under `dir` (created if missing).
    pub(super) fn new(dir: PathBuf) -> std::io::Result<Opened> {
        std::fs::create_dir_all(&dir)?;
        Ok(Opened {
            dir,
            holder: RwLock::new(None),
            open: Mutex::new(HashMap::new()),
        })
    }

    fn path(&self, device_id: Uuid) -> PathBuf {
        self.dir.join(format!("{device_id}.jsonl"))
    }

    pub(super) fn held_by(&self, holder: Arc<dyn SessionHolder>) {
        *self.holder.write().unwrap_or_else(|p| p.into_inner()) = Some(holder);
    }

    /// A new session of the device opens here (a link or a resume): the one open before
    /// in this process is closed first. Logged, never fatal: the simulated session runs
    /// whether or not its record could be written.
    pub(super) fn open(&self, device_id: Uuid) {
        self.close(device_id);
        let (worker_id, epoch) = match &*self.holder.read().unwrap_or_else(|p| p.into_inner()) {
            Some(h) => (h.worker_id(), h.epoch(device_id).unwrap_or(0)),
            None => (String::new(), 0),
        };
        let session = Uuid::now_v7();
        self.open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(device_id, session);
        let line = Line {
            session,
            change: Change::Opened {
                worker_id,
                epoch,
                at: time::now(),
            },
        };
        self.append(device_id, &line);
    }

    /// The device's session open in this process (if any) ends.
    pub(super) fn close(&self, device_id: Uuid) {
        let open = self
            .open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&device_id);
        if let Some(session) = open {
            let line = Line {
                session,
                change: Change::Closed { at: time::now() },
            };
            self.append(device_id, &line);
        }
    }

    fn append(&self, device_id: Uuid, line: &Line) {
        if let Err(e) = append_locked(&self.path(device_id), line) {
            tracing::warn!(%device_id, error = %e, "could not record a sandbox session");
        }
    }

    /// Every session of the device in its log, oldest first (a line cut short by a crash
    /// mid-append is skipped).
    pub(super) fn sessions(&self, device_id: Uuid) -> std::io::Result<Vec<SessionRecord>> {
        let text = match std::fs::read_to_string(self.path(device_id)) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        Ok(fold(
            text.lines()
                .filter_map(|l| serde_json::from_str::<Line>(l).ok()),
        ))
    }
}

/// Appends `line` to the log at `path` in one write, under the file's exclusive lock (other
/// processes append to it too), and waits until it is on disk.
fn append_locked(path: &Path, line: &Line) -> std::io::Result<()> {
    let mut bytes = serde_json::to_vec(line).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    f.lock()?;
    f.write_all(&bytes)?;
    f.sync_data()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn at(secs: u64) -> OffsetDateTime {
        OffsetDateTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn opened(session: u128, worker: &str, epoch: u64, secs: u64) -> Line {
        Line {
            session: Uuid::from_u128(session),
            change: Change::Opened {
                worker_id: worker.into(),
                epoch,
                at: at(secs),
            },
        }
    }

    fn closed(session: u128, secs: u64) -> Line {
        Line {
            session: Uuid::from_u128(session),
            change: Change::Closed { at: at(secs) },
        }
    }

    fn record(worker: &str, epoch: u64, open: u64, close: Option<u64>) -> SessionRecord {
        SessionRecord {
            worker_id: worker.into(),
            epoch,
            opened_at: at(open),
            closed_at: close.map(at),
        }
    }

    #[test]
    fn sessions_are_listed_in_the_order_they_opened_with_their_close() {
        let lines = [
            opened(1, "a", 1, 10),
            opened(2, "b", 2, 20),
            closed(1, 15),
            opened(3, "a", 3, 30),
            closed(2, 25),
        ];
        assert_eq!(
            fold(lines),
            [
                record("a", 1, 10, Some(15)),
                record("b", 2, 20, Some(25)),
                record("a", 3, 30, None)
            ]
        );
    }

    #[test]
    fn a_close_of_an_unknown_session_or_a_second_close_changes_nothing() {
        let lines = [
            opened(1, "a", 1, 10),
            closed(9, 11),
            closed(1, 12),
            closed(1, 13),
        ];
        assert_eq!(fold(lines), [record("a", 1, 10, Some(12))]);
    }

    #[test]
    fn a_line_is_tagged_with_its_change() {
        let line = serde_json::to_value(opened(1, "w", 2, 0)).unwrap();
        assert_eq!(
            line,
            serde_json::json!({"session": Uuid::from_u128(1), "change": "opened",
                "worker_id": "w", "epoch": 2, "at": "1970-01-01T00:00:00Z"})
        );
    }

    struct Holder;

    impl SessionHolder for Holder {
        fn worker_id(&self) -> String {
            "w1".into()
        }
        fn epoch(&self, device_id: Uuid) -> Option<u64> {
            (device_id == Uuid::from_u128(1)).then_some(7)
        }
    }

    /// Two sandboxes on one directory (two workers on one volume) write one log per
    /// device; a session reopened in one process closes its earlier one first.
    #[test]
    fn sandboxes_sharing_a_directory_share_the_logs() {
        let dir = tempfile::tempdir().unwrap();
        let (one, two) = (
            Opened::new(dir.path().to_path_buf()).unwrap(),
            Opened::new(dir.path().to_path_buf()).unwrap(),
        );
        one.held_by(Arc::new(Holder));
        let d = Uuid::from_u128(1);
        one.open(d);
        one.open(d);
        one.close(d);
        two.open(d);
        let got = two.sessions(d).unwrap();
        let shape: Vec<_> = got
            .iter()
            .map(|r| (r.worker_id.as_str(), r.epoch, r.closed_at.is_some()))
            .collect();
        assert_eq!(shape, [("w1", 7, true), ("w1", 7, true), ("", 0, false)]);
        assert!(got.windows(2).all(|w| w[0].opened_at <= w[1].opened_at));
        assert!(one.sessions(Uuid::from_u128(2)).unwrap().is_empty());
    }
}
