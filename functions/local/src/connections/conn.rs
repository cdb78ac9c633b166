//! One client connection of the embedded server: its state as the limits see it (phase,
//! since when, whether it is being shed), the socket wrapper that reports reads and writes
//! the answers (`answer`), the service that hands requests to the router and reports when
//! each is answered, and the task that serves the connection until it ends, times out, is
//! shed or the server shuts down.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, ready};
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use http::{Method, Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{Notify, watch};
use tower::ServiceExt;

use super::answer::{Answers, Requests};
use super::policy::{self, Candidate, Close, Event, Phase, Timeouts};

/// A connection's state, shared by its task, its socket wrapper, its service and the
/// registry that sheds connections.
pub(crate) struct Conn {
    pub(crate) id: u64,
    state: Mutex<State>,
    /// Wakes the connection's task: its deadline moved, or it is to be shed.
    wake: Notify,
    /// The registry's: a connection stopped answering (it may be shed now).
    idle: Arc<Notify>,
}

struct State {
    phase: Phase,
    since: Instant,
    /// Requests being answered.
    open: usize,
    shedding: bool,
    /// Requests handed to the router whose response heads are not written yet, oldest
    /// first: whether each one's response has no body (HEAD).
    unanswered: VecDeque<bool>,
}

impl Conn {
    pub(crate) fn new(id: u64, idle: Arc<Notify>) -> Arc<Conn> {
        Arc::new(Conn {
            id,
            state: Mutex::new(State {
                phase: Phase::Fresh,
                since: Instant::now(),
                open: 0,
                shedding: false,
                unanswered: VecDeque::new(),
            }),
            wake: Notify::new(),
            idle,
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The state stays consistent even if a holder panicked: every update is one
        // assignment.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn apply(state: &mut State, event: Event) {
        (state.phase, state.since) = policy::next(state.phase, state.since, event, Instant::now());
    }

    /// What the shedding decision needs to know.
    pub(crate) fn candidate(&self) -> Candidate {
        let s = self.state();
        Candidate {
            id: self.id,
            phase: s.phase,
            since: s.since,
            shedding: s.shedding,
        }
    }

    /// Asks the connection to close to make room (it finishes a request it is answering).
    pub(crate) fn shed(&self) {
        self.state().shedding = true;
        self.wake.notify_one();
    }

    fn read(&self) {
        let mut s = self.state();
        if matches!(s.phase, Phase::Fresh | Phase::Idle) {
            Self::apply(&mut s, Event::Read);
            drop(s);
            self.wake.notify_one();
        }
    }

    fn request(&self, bodyless: bool) {
        let mut s = self.state();
        s.unanswered.push_back(bodyless);
        s.open += 1;
        Self::apply(&mut s, Event::Request);
    }

    fn answered_one(&self) {
        let mut s = self.state();
        s.open = s.open.saturating_sub(1);
        let open = s.open;
        Self::apply(&mut s, Event::Answered { open });
        drop(s);
        if open == 0 {
            self.wake.notify_one();
            self.idle.notify_waiters();
        }
    }

    fn deadline(&self, timeouts: Timeouts) -> Option<Instant> {
        let s = self.state();
        policy::deadline(s.phase, s.since, timeouts)
    }

    fn close(&self, draining: bool) -> Close {
        let s = self.state();
        policy::close(s.phase, s.shedding, draining)
    }
}

impl Requests for Conn {
    fn bodyless(&self, i: usize) -> Option<bool> {
        self.state().unanswered.get(i).copied()
    }

    fn answered(&self, n: usize) {
        if n > 0 {
            let mut s = self.state();
            let n = n.min(s.unanswered.len());
            s.unanswered.drain(..n);
        }
    }
}

/// The socket: reads are reported to the connection's state, writes go through `Answers`.
struct Io {
    stream: TcpStream,
    conn: Arc<Conn>,
    answers: Answers,
}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.stream).poll_read(cx, buf))?;
        if buf.filled().len() > before {
            this.conn.read();
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.answers
            .poll_write(Pin::new(&mut this.stream), cx, buf, &*this.conn)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.answers.poll_flush(Pin::new(&mut this.stream), cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.answers.poll_shutdown(Pin::new(&mut this.stream), cx)
    }
}

/// Reports the end of a request's answer when dropped: with its response body (written
/// out, or abandoned with the connection), or with the router's future.
struct Answering(Arc<Conn>);

impl Drop for Answering {
    fn drop(&mut self) {
        self.0.answered_one();
    }
}

/// Hands each request to the router.
#[derive(Clone)]
struct Handler {
    router: Router,
    conn: Arc<Conn>,
}

impl hyper::service::Service<Request<Incoming>> for Handler {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future =
        Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send + 'static>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        self.conn.request(req.method() == Method::HEAD);
        let answering = Answering(self.conn.clone());
        let routed = self.router.clone().oneshot(req.map(Body::new));
        Box::pin(async move {
            let res = routed.await?;
            Ok(res.map(|body| {
                Body::new(body.map_frame(move |frame| {
                    let _answering = &answering;
                    frame
                }))
            }))
        })
    }
}

/// Serves one connection until it ends, times out, is shed or the server shuts down
/// (`stop`): a request being answered is finished first, then the connection closes.
pub(crate) async fn serve(
    conn: Arc<Conn>,
    stream: TcpStream,
    router: Router,
    http: http1::Builder,
    timeouts: Timeouts,
    mut stop: watch::Receiver<bool>,
) {
    let io = TokioIo::new(Io {
        stream,
        conn: conn.clone(),
        answers: Answers::new(),
    });
    let handler = Handler {
        router,
        conn: conn.clone(),
    };
    let served = http.serve_connection(io, handler);
    tokio::pin!(served);
    let mut draining = *stop.borrow_and_update();
    let mut graceful = false;
    loop {
        match conn.close(draining) {
            Close::Now => return,
            Close::Gracefully if !graceful => {
                served.as_mut().graceful_shutdown();
                graceful = true;
            }
            _ => {}
        }
        let deadline = conn.deadline(timeouts);
        let woken = conn.wake.notified();
        tokio::select! {
            result = served.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            () = sleep_until(deadline) => {
                if conn.deadline(timeouts).is_some_and(|d| d <= Instant::now()) {
                    tracing::debug!("connection closed: no request within its timeout");
                    return;
                }
            }
            () = woken => {}
            _ = stop.changed(), if !draining => draining = true,
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
