//! The embedded server's HTTP/1 connections: accepting them under a cap (shedding the
//! connections that wait longest without a request when it is reached), timing out heads
//! that do not arrive and kept-alive connections left idle, answering what hyper refuses on
//! its own with the envelope (`answer`), and draining on shutdown: no new connection, every
//! request being answered is finished.

mod answer;
mod conn;
pub mod policy;

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use hyper::server::conn::http1;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};

use conn::Conn;
pub use policy::Timeouts;

/// The limits of the connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub timeouts: Timeouts,
    /// Connections open at most; a new one waits for room.
    pub max_connections: usize,
}

/// The open connections.
#[derive(Default)]
struct Registry {
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
    /// A connection closed or stopped answering.
    changed: Arc<Notify>,
    /// When the cap was last logged as reached.
    logged_full: Mutex<Option<Instant>>,
}

/// How often reaching the cap is logged at most.
const LOG_FULL_EVERY: Duration = Duration::from_secs(60);

impl Registry {
    fn conns(&self) -> MutexGuard<'_, HashMap<u64, Arc<Conn>>> {
        self.conns.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until a connection may be accepted: below `cap`, shedding the connection that
    /// has waited longest without a request when at it.
    async fn room(&self, cap: usize) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            {
                let conns = self.conns();
                if conns.len() < cap {
                    return;
                }
                self.log_full(cap);
                if let Some(id) = policy::victim(conns.values().map(|c| c.candidate())) {
                    tracing::debug!(connection = id, "shedding a connection to make room");
                    conns[&id].shed();
                }
            }
            changed.await;
        }
    }

    fn log_full(&self, cap: usize) {
        let mut last = self.logged_full.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_none_or(|t| t.elapsed() >= LOG_FULL_EVERY) {
            *last = Some(Instant::now());
            tracing::warn!(
                max_connections = cap,
                "connection cap reached: closing connections that wait without a request \
                 (WA_MAX_CONNECTIONS)"
            );
        }
    }

    fn remove(&self, id: u64) {
        self.conns().remove(&id);
        self.changed.notify_waiters();
    }

    async fn drained(&self) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.conns().is_empty() {
                return;
            }
            changed.await;
        }
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then stops accepting, closes the
/// connections that are not answering a request, and returns once the others have finished.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let registry = Arc::new(Registry::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut http = http1::Builder::new();
    // One write per response as the answers writer sees it (`answer` follows it).
    http.max_buf_size(policy::MAX_HEAD_BYTES).writev(false);
    tokio::pin!(shutdown);
    let mut next_id = 0u64;
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            () = registry.room(limits.max_connections) => {}
        }
        let stream = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
        };
        next_id += 1;
        let conn = Conn::new(next_id, registry.changed.clone());
        registry.conns().insert(next_id, conn.clone());
        let served = conn::serve(
            conn,
            stream,
            router.clone(),
            http.clone(),
            limits.timeouts,
            stop_rx.clone(),
        );
        let registry = registry.clone();
        let id = next_id;
        tokio::spawn(async move {
            served.await;
            registry.remove(id);
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    registry.drained().await;
    Ok(())
}

/// A failed accept: the client's own failures are ignored; others (out of file descriptors)
/// are logged and accepting pauses for a second, as the connections close.
async fn accept_failed(e: io::Error) {
    if matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "accept failed");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
