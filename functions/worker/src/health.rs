//! The worker's liveness, for the container's health check: the command loop calls
//! [`beat`] on every turn, [`write_heartbeats`] keeps the time of the last beat in the
//! heartbeat file (`WA_HEALTH_FILE`, local to the container), and `wa-worker health` (the
//! task definition's `HealthCheck` command) answers from that file through [`verdict`]:
//! healthy while the last beat is at most [`STALE_AFTER`] old.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How old the last beat may be for the worker to count as healthy. The loop turns at
/// least once per queue receive (a long poll lasts at most 20 s), so only a stuck loop or a
/// stuck process gets this far behind.
pub const STALE_AFTER: Duration = Duration::from_secs(120);

/// How often the heartbeat file is rewritten.
pub const WRITE_EVERY: Duration = Duration::from_secs(10);

/// Seconds since the Unix epoch of the last beat (0: none yet).
static LAST_BEAT: AtomicU64 = AtomicU64::new(0);

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Records that the command loop is turning. Cheap: one atomic store.
pub fn beat() {
    LAST_BEAT.store(now_secs(), Ordering::Relaxed);
}

/// The heartbeat file of `WA_HEALTH_FILE`; `None` when unset (no heartbeat is written and
/// `wa-worker health` fails).
pub fn file_from_lookup(get: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    get("WA_HEALTH_FILE")
        .filter(|v| !v.trim().is_empty())
        .map(PathBuf::from)
}

/// What the health check concludes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The last beat is `age_secs` old, within [`STALE_AFTER`].
    Healthy { age_secs: u64 },
    /// The last beat is `age_secs` old: the loop or the process is stuck.
    Stale { age_secs: u64 },
    /// No heartbeat file: the worker has not started its loop, or writes elsewhere.
    Missing,
    /// The file does not hold a beat.
    Unreadable(String),
}

impl Verdict {
    pub fn is_healthy(&self) -> bool {
        matches!(self, Verdict::Healthy { .. })
    }
}

/// The verdict at `now_secs` on the heartbeat file's contents (`None`: no file). A beat
/// from the future (clock adjustments) counts as fresh.
pub fn verdict(now_secs: u64, contents: Option<&str>) -> Verdict {
    let Some(text) = contents else {
        return Verdict::Missing;
    };
    match text.trim().parse::<u64>() {
        Ok(beat) if beat > 0 => {
            let age_secs = now_secs.saturating_sub(beat);
            if age_secs <= STALE_AFTER.as_secs() {
                Verdict::Healthy { age_secs }
            } else {
                Verdict::Stale { age_secs }
            }
        }
        _ => Verdict::Unreadable(format!("not a heartbeat: {:?}", text.trim())),
    }
}

/// Writes `secs` to `path` whole (a temporary file renamed over it), so the health check
/// never reads half a beat.
fn write_beat(path: &Path, secs: u64) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{secs}\n"))?;
    std::fs::rename(&tmp, path)
}

/// Keeps the last beat in `path` until `stop` turns true, every [`WRITE_EVERY`]. The
/// process's start counts as a beat, so sessions being restored before the loop's first
/// turn do not fail the check. A failed write is logged (the check then fails: the
/// container is replaced).
pub async fn write_heartbeats(path: PathBuf, mut stop: tokio::sync::watch::Receiver<bool>) {
    beat();
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        let _ = std::fs::create_dir_all(dir);
    }
    loop {
        if let Err(e) = write_beat(&path, LAST_BEAT.load(Ordering::Relaxed)) {
            tracing::warn!(path = %path.display(), error = %e, "could not write the heartbeat");
        }
        tokio::select! {
            _ = tokio::time::sleep(WRITE_EVERY) => {}
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    break;
                }
            }
        }
    }
}

/// `wa-worker health`: exit 0 when healthy, 1 otherwise, saying why on stderr.
pub fn check_command() -> std::process::ExitCode {
    let Some(path) = file_from_lookup(&|k| std::env::var(k).ok()) else {
        eprintln!("wa-worker health: WA_HEALTH_FILE is not set");
        return std::process::ExitCode::FAILURE;
    };
    let contents = std::fs::read_to_string(&path).ok();
    let v = verdict(now_secs(), contents.as_deref());
    if v.is_healthy() {
        std::process::ExitCode::SUCCESS
    } else {
        eprintln!("wa-worker health: {}: {v:?}", path.display());
        std::process::ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts() {
        let now = 1_000_000;
        let rows: [(Option<&str>, Verdict); 7] = [
            (Some("1000000\n"), Verdict::Healthy { age_secs: 0 }),
            (Some("999880"), Verdict::Healthy { age_secs: 120 }),
            (Some("999879"), Verdict::Stale { age_secs: 121 }),
            (Some("1000050"), Verdict::Healthy { age_secs: 0 }),
            (None, Verdict::Missing),
            (Some(""), Verdict::Unreadable("not a heartbeat: \"\"".into())),
            (Some("0"), Verdict::Unreadable("not a heartbeat: \"0\"".into())),
        ];
        for (contents, want) in rows {
            assert_eq!(verdict(now, contents), want, "{contents:?}");
        }
    }

    #[test]
    fn the_file_comes_from_wa_health_file() {
        let rows: [(Option<&str>, Option<&str>); 3] = [
            (Some("/run/wa-worker/heartbeat"), Some("/run/wa-worker/heartbeat")),
            (Some(" "), None),
            (None, None),
        ];
        for (value, want) in rows {
            let got = file_from_lookup(&|_| value.map(str::to_owned));
            assert_eq!(got.as_deref(), want.map(Path::new), "{value:?}");
        }
    }

    #[tokio::test]
    async fn the_writer_keeps_a_fresh_beat_until_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run").join("heartbeat");
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let writer = tokio::spawn(write_heartbeats(path.clone(), stop_rx));
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let text = loop {
            if let Ok(t) = std::fs::read_to_string(&path) {
                break t;
            }
            assert!(std::time::Instant::now() < deadline, "no heartbeat file");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert!(verdict(now_secs(), Some(&text)).is_healthy(), "{text}");
        stop_tx.send(true).unwrap();
        writer.await.unwrap();
    }
}
