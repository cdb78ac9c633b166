//! The answers hyper makes on its own, in the envelope. hyper refuses a request whose head it
//! cannot take (a URI over 65534 bytes: 414; a head over its buffer or with too many headers:
//! 431; not HTTP/1: 400) before any router sees it, with an empty body. The connection's
//! writer follows the responses it writes (heads, bodies by length or chunks) and replaces a
//! response head that no request of the router is waiting for by the envelope with a request
//! id, in body and header, and the documented code.
//!
//! Nothing else is changed: the router's responses pass through as they are, in the same
//! writes.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::AsyncWrite;
use wa_errors::{ApiError, ErrorCode, request_id};

use super::policy::{MAX_HEAD_BYTES, MAX_HEADERS, MAX_URI_BYTES};

/// The longest response head followed; past it the output is passed on untouched.
const MAX_FOLLOWED_HEAD: usize = 64 * 1024;

/// The requests of a connection handed to the router whose response heads are not written
/// yet, oldest first.
pub(crate) trait Requests {
    /// Whether the response to the `i`-th oldest such request has no body (a HEAD request);
    /// `None` when fewer are waiting.
    fn bodyless(&self, i: usize) -> Option<bool>;
    /// The `n` oldest have their response heads written.
    fn answered(&self, n: usize);
}

/// Where the output is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Framing {
    /// At or in a response head: what was seen of it.
    Head(Vec<u8>),
    /// In a body: bytes left.
    Length(u64),
    /// In a chunked body.
    Chunked(Chunk),
    /// The body runs to the end of the connection (or the output could not be followed):
    /// nothing is replaced from here on.
    Rest,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// In a chunk-size line: the size so far, whether an extension started.
    Size { size: u64, ext: bool },
    /// The LF ending a chunk-size line.
    SizeEnd { size: u64 },
    /// In a chunk's data: bytes left.
    Data(u64),
    /// The CRLF after a chunk's data: bytes left of it.
    DataEnd(u8),
    /// In the trailer after the last chunk: the length of its current line.
    Trailer { line: usize },
}

/// What a complete response head says about what follows it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HeadInfo {
    status: u16,
    request_id: bool,
    content_length: Option<u64>,
    chunked: bool,
}

fn parse_head(head: &[u8]) -> Option<HeadInfo> {
    let text = std::str::from_utf8(head).ok()?;
    let mut lines = text.split("\r\n");
    let mut status_line = lines.next()?.splitn(3, ' ');
    if !status_line.next()?.starts_with("HTTP/1.") {
        return None;
    }
    let status = status_line.next()?.parse().ok()?;
    let mut info = HeadInfo {
        status,
        request_id: false,
        content_length: None,
        chunked: false,
    };
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':')?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("x-request-id") {
            info.request_id = true;
        } else if name.eq_ignore_ascii_case("content-length") {
            info.content_length = Some(value.parse().ok()?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            info.chunked = value
                .rsplit(',')
                .next()
                .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
        }
    }
    Some(info)
}

/// The length of the head at the start of `bytes`, through its blank line, when complete.
fn head_len(bytes: &[u8]) -> Option<usize> {
    bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4)
}

/// Where in `rest` the head begun with `seen` ends (just past its blank line, which may
/// straddle the two).
fn blank_line_end(seen: &[u8], rest: &[u8]) -> Option<usize> {
    const BLANK: &[u8] = b"\r\n\r\n";
    for k in (1..=3).rev() {
        if seen.ends_with(&BLANK[..k]) && rest.starts_with(&BLANK[k..]) {
            return Some(4 - k);
        }
    }
    head_len(rest)
}

/// Follows the responses written on one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Tracker {
    framing: Framing,
}

impl Tracker {
    fn new() -> Tracker {
        Tracker {
            framing: Framing::Head(Vec::new()),
        }
    }

    /// Follows `bytes`. `answered` counts the router's requests whose final response heads
    /// were passed (starting from the count given). Stops at a response head that no request
    /// is waiting for and answers its offset; `None` when every byte was followed.
    fn follow(
        &mut self,
        bytes: &[u8],
        requests: &dyn Requests,
        answered: &mut usize,
    ) -> Option<usize> {
        let mut i = 0;
        while i < bytes.len() {
            match &mut self.framing {
                Framing::Rest => return None,
                Framing::Head(head) => {
                    if head.is_empty() && requests.bodyless(*answered).is_none() {
                        return Some(i);
                    }
                    let rest = &bytes[i..];
                    match blank_line_end(head, rest) {
                        Some(end) => {
                            head.extend_from_slice(&rest[..end]);
                            i += end;
                            let head = std::mem::take(head);
                            self.framing = after_head(&head, requests, answered);
                        }
                        None if head.len() + rest.len() > MAX_FOLLOWED_HEAD => {
                            self.framing = Framing::Rest
                        }
                        None => {
                            head.extend_from_slice(rest);
                            return None;
                        }
                    }
                }
                Framing::Length(left) => {
                    let n = (*left).min((bytes.len() - i) as u64);
                    *left -= n;
                    i += n as usize;
                    if *left == 0 {
                        self.framing = Framing::Head(Vec::new());
                    }
                }
                Framing::Chunked(chunk) => match *chunk {
                    Chunk::Data(left) => {
                        let n = left.min((bytes.len() - i) as u64);
                        i += n as usize;
                        *chunk = if n == left {
                            Chunk::DataEnd(2)
                        } else {
                            Chunk::Data(left - n)
                        };
                    }
                    _ => {
                        self.framing = match chunk_byte(*chunk, bytes[i]) {
                            Some(Some(next)) => Framing::Chunked(next),
                            Some(None) => Framing::Head(Vec::new()),
                            None => Framing::Rest,
                        };
                        i += 1;
                    }
                },
            }
        }
        None
    }
}

/// What follows a complete response head.
fn after_head(head: &[u8], requests: &dyn Requests, answered: &mut usize) -> Framing {
    let Some(info) = parse_head(head) else {
        return Framing::Rest;
    };
    match info.status {
        // An upgraded connection is no longer HTTP/1.
        101 => return Framing::Rest,
        // Interim (100 Continue): the final head follows.
        100..=199 => return Framing::Head(Vec::new()),
        _ => {}
    }
    let bodyless = requests.bodyless(*answered).unwrap_or(false);
    *answered += 1;
    if bodyless || info.status == 204 || info.status == 304 {
        Framing::Head(Vec::new())
    } else if info.chunked {
        Framing::Chunked(Chunk::Size {
            size: 0,
            ext: false,
        })
    } else {
        match info.content_length {
            Some(0) => Framing::Head(Vec::new()),
            Some(n) => Framing::Length(n),
            None => Framing::Rest,
        }
    }
}

/// One byte of chunk framing: the next state, `Some(None)` at the end of the body, `None`
/// when the framing cannot be followed.
fn chunk_byte(chunk: Chunk, b: u8) -> Option<Option<Chunk>> {
    Some(Some(match chunk {
        Chunk::Size { size, ext } => match b {
            b'\r' => Chunk::SizeEnd { size },
            b';' => Chunk::Size { size, ext: true },
            _ if ext => chunk,
            _ => {
                let digit = (b as char).to_digit(16)?;
                Chunk::Size {
                    size: size.checked_mul(16)?.checked_add(u64::from(digit))?,
                    ext,
                }
            }
        },
        Chunk::SizeEnd { size } if b == b'\n' => match size {
            0 => Chunk::Trailer { line: 0 },
            n => Chunk::Data(n),
        },
        Chunk::SizeEnd { .. } => return None,
        Chunk::Data(_) => unreachable!("data is skipped in bulk"),
        Chunk::DataEnd(1) => Chunk::Size {
            size: 0,
            ext: false,
        },
        Chunk::DataEnd(n) => Chunk::DataEnd(n - 1),
        Chunk::Trailer { line: 0 } if b == b'\n' => return Some(None),
        Chunk::Trailer { .. } if b == b'\n' => Chunk::Trailer { line: 0 },
        Chunk::Trailer { line } if b == b'\r' => Chunk::Trailer { line },
        Chunk::Trailer { line } => Chunk::Trailer { line: line + 1 },
    }))
}

/// The error a response hyper made on its own stands for, by its status.
pub(crate) fn refusal(status: u16) -> Option<ApiError> {
    Some(match status {
        414 => ApiError::new(
            ErrorCode::UriTooLong,
            format!("the request URI is over {MAX_URI_BYTES} bytes"),
        ),
        431 => ApiError::new(
            ErrorCode::HeadersTooLarge,
            format!(
                "the request line and headers are over {} KiB, or there are more than \
                 {MAX_HEADERS} headers",
                MAX_HEAD_BYTES / 1024
            ),
        ),
        400 => ApiError::validation("request", "the request is not valid HTTP/1.1"),
        _ => return None,
    })
}

/// The envelope answering in place of hyper's own `head`, or `None` when `head` is not one
/// of hyper's refusals (it is then passed on as it is).
fn replacement(head: &[u8]) -> Option<Vec<u8>> {
    let info = parse_head(head).filter(|i| !i.request_id)?;
    let error = refusal(info.status)?;
    let text = std::str::from_utf8(head).ok()?;
    let status_line = text.split("\r\n").next()?;
    let date = text
        .split("\r\n")
        .find(|l| l.len() > 5 && l[..5].eq_ignore_ascii_case("date:"));
    let id = request_id::new_id();
    tracing::info!(
        request_id = %id,
        status = info.status,
        code = %error.code(),
        "request refused before routing"
    );
    let body = error.to_json(&id);
    let mut out = format!(
        "{status_line}\r\ncontent-type: application/json\r\nx-request-id: {id}\r\n\
         content-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    if let Some(date) = date {
        out.push_str(date);
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(&body);
    Some(out)
}

/// The writing side of a connection: passes the router's responses through and replaces
/// hyper's own refusals (see the module's text).
#[derive(Debug)]
pub(crate) struct Answers {
    tracker: Tracker,
    /// A response head no request waits for, collected until complete.
    held: Option<Vec<u8>>,
    /// Owed to the socket before anything else: the envelope (or a held head passed on).
    out: Vec<u8>,
    /// Of `out`, written already.
    out_written: usize,
    /// A refusal was replaced: hyper's own bytes after it are dropped.
    replaced: bool,
}

impl Answers {
    pub(crate) fn new() -> Answers {
        Answers {
            tracker: Tracker::new(),
            held: None,
            out: Vec::new(),
            out_written: 0,
            replaced: false,
        }
    }

    pub(crate) fn poll_write<W: AsyncWrite + Unpin>(
        &mut self,
        mut inner: Pin<&mut W>,
        cx: &mut Context<'_>,
        buf: &[u8],
        requests: &dyn Requests,
    ) -> Poll<io::Result<usize>> {
        if self.replaced {
            return Poll::Ready(Ok(buf.len()));
        }
        ready!(self.poll_out(inner.as_mut(), cx))?;
        if let Some(held) = &mut self.held {
            held.extend_from_slice(buf);
            self.settle(false);
            return Poll::Ready(Ok(buf.len()));
        }
        // Where a head no request waits for starts, if it does in this write: the router's
        // bytes before it go out in one write.
        let mut ahead = self.tracker.clone();
        let mut answered = 0;
        let stop = ahead.follow(buf, requests, &mut answered);
        let ours = stop.unwrap_or(buf.len());
        if ours == 0 {
            self.held = Some(buf.to_vec());
            self.settle(false);
            return Poll::Ready(Ok(buf.len()));
        }
        let n = ready!(inner.poll_write(cx, &buf[..ours]))?;
        if n == ours {
            self.tracker = ahead;
        } else {
            answered = 0;
            self.tracker.follow(&buf[..n], requests, &mut answered);
        }
        requests.answered(answered);
        Poll::Ready(Ok(n))
    }

    pub(crate) fn poll_flush<W: AsyncWrite + Unpin>(
        &mut self,
        inner: Pin<&mut W>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        self.poll_owed_then(inner, cx, W::poll_flush)
    }

    pub(crate) fn poll_shutdown<W: AsyncWrite + Unpin>(
        &mut self,
        inner: Pin<&mut W>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        self.poll_owed_then(inner, cx, W::poll_shutdown)
    }

    /// Writes what is owed (a held head settled first), then does `then` on the socket.
    fn poll_owed_then<W: AsyncWrite + Unpin>(
        &mut self,
        mut inner: Pin<&mut W>,
        cx: &mut Context<'_>,
        then: fn(Pin<&mut W>, &mut Context<'_>) -> Poll<io::Result<()>>,
    ) -> Poll<io::Result<()>> {
        self.settle(true);
        ready!(self.poll_out(inner.as_mut(), cx))?;
        then(inner, cx)
    }

    /// Decides on a held head once it is complete (or, with `force`, passes on what there
    /// is: hyper flushes only whole heads).
    fn settle(&mut self, force: bool) {
        let Some(held) = &self.held else { return };
        let decided = match head_len(held) {
            Some(len) => Some(replacement(&held[..len])),
            None if force || held.len() > MAX_FOLLOWED_HEAD => Some(None),
            None => None,
        };
        let Some(replaced) = decided else { return };
        let held = self.held.take().unwrap_or_default();
        match replaced {
            Some(envelope) => {
                self.out = envelope;
                self.replaced = true;
            }
            None => {
                self.out = held;
                self.tracker.framing = Framing::Rest;
            }
        }
        self.out_written = 0;
    }

    fn poll_out<W: AsyncWrite + Unpin>(
        &mut self,
        mut inner: Pin<&mut W>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        while self.out_written < self.out.len() {
            let n = ready!(inner.as_mut().poll_write(cx, &self.out[self.out_written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.out_written += n;
        }
        self.out.clear();
        self.out_written = 0;
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::collections::VecDeque;
    use tokio::io::AsyncWriteExt;

    /// The router's requests waiting for their response heads.
    #[derive(Default)]
    struct Waiting(RefCell<VecDeque<bool>>);

    impl Waiting {
        fn of(requests: &[bool]) -> Waiting {
            Waiting(RefCell::new(requests.iter().copied().collect()))
        }
    }

    impl Requests for Waiting {
        fn bodyless(&self, i: usize) -> Option<bool> {
            self.0.borrow().get(i).copied()
        }
        fn answered(&self, n: usize) {
            self.0.borrow_mut().drain(..n);
        }
    }

    fn ours(status: &str, headers: &str, body: &str) -> String {
        format!("HTTP/1.1 {status}\r\nx-request-id: r1\r\n{headers}\r\n{body}")
    }

    const HYPER_431: &str = "HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n\
                             date: Mon, 01 Jan 2024 00:00:00 GMT\r\n\r\n";

    /// Writes `writes` through `Answers`, each whole and flushed (as hyper writes), then
    /// shuts down.
    async fn through(writes: &[&[u8]], requests: &Waiting) -> Vec<u8> {
        through_flushing(writes, requests, true).await
    }

    async fn through_flushing(writes: &[&[u8]], requests: &Waiting, flush_each: bool) -> Vec<u8> {
        let mut out = Vec::new();
        let mut answers = Answers::new();
        for w in writes {
            let mut buf = *w;
            while !buf.is_empty() {
                let n = std::future::poll_fn(|cx| {
                    answers.poll_write(Pin::new(&mut out), cx, buf, requests)
                })
                .await
                .unwrap();
                buf = &buf[n..];
            }
            if flush_each {
                std::future::poll_fn(|cx| answers.poll_flush(Pin::new(&mut out), cx))
                    .await
                    .unwrap();
            }
        }
        std::future::poll_fn(|cx| answers.poll_shutdown(Pin::new(&mut out), cx))
            .await
            .unwrap();
        out.flush().await.unwrap();
        out
    }

    fn envelope(out: &[u8]) -> (String, serde_json::Value) {
        let len = head_len(out).expect("a complete head");
        let head = String::from_utf8(out[..len].to_vec()).unwrap();
        (head, serde_json::from_slice(&out[len..]).unwrap())
    }

    #[tokio::test]
    async fn hypers_own_refusals_become_envelopes() {
        for (status, code) in [
            ("414 URI Too Long", "uri_too_long"),
            ("431 Request Header Fields Too Large", "headers_too_large"),
            ("400 Bad Request", "validation_error"),
        ] {
            let hyper = format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n");
            let out = through(&[hyper.as_bytes()], &Waiting::default()).await;
            let (head, body) = envelope(&out);
            assert!(
                head.starts_with(&format!("HTTP/1.1 {status}\r\n")),
                "{head}"
            );
            assert!(head.contains("content-type: application/json\r\n"));
            assert!(head.contains("connection: close\r\n"));
            let id = head
                .split("\r\n")
                .find_map(|l| l.strip_prefix("x-request-id: "))
                .unwrap();
            assert_eq!(body["request_id"], id);
            assert_eq!(body["error"]["code"], code);
            assert!(head.contains(&format!("content-length: {}\r\n", out.len() - head.len())));
        }
        let out = through(&[HYPER_431.as_bytes()], &Waiting::default()).await;
        assert!(
            envelope(&out)
                .0
                .contains("date: Mon, 01 Jan 2024 00:00:00 GMT\r\n")
        );
        assert_eq!(
            envelope(&through(&[b"HTTP/1.1 400 Bad Request\r\n\r\n"], &Waiting::default()).await).1
                ["error"]["details"]["field"],
            "request"
        );
    }

    #[tokio::test]
    async fn the_routers_responses_pass_unchanged() {
        let one = ours("200 OK", "content-length: 5\r\n", "hello");
        let chunked = ours(
            "200 OK",
            "transfer-encoding: chunked\r\n",
            "5\r\nHTTP/\r\n1a;x=y\r\n1.1 431 Nope\r\n\r\nabcdefghij\r\n0\r\n\r\n",
        );
        let head = ours("200 OK", "content-length: 99\r\n", "");
        let empty = ours("204 No Content", "", "");
        let cont = "HTTP/1.1 100 Continue\r\n\r\n".to_owned();
        let all = [
            one.clone(),
            chunked.clone(),
            head.clone(),
            empty.clone(),
            cont.clone(),
            one.clone(),
        ]
        .concat();
        let requests = || Waiting::of(&[false, false, true, false, false]);
        // In one write, in writes of every size: the same bytes.
        assert_eq!(
            through(&[all.as_bytes()], &requests()).await,
            all.as_bytes()
        );
        for size in [1, 2, 3, 7, 64] {
            let writes: Vec<&[u8]> = all.as_bytes().chunks(size).collect();
            assert_eq!(
                through(&writes, &requests()).await,
                all.as_bytes(),
                "{size}"
            );
        }
        let waiting = requests();
        through(&[all.as_bytes()], &waiting).await;
        assert!(waiting.0.borrow().is_empty(), "every request was answered");
    }

    #[tokio::test]
    async fn a_refusal_after_the_routers_responses_is_replaced() {
        let one = ours("200 OK", "content-length: 5\r\n", "hello");
        let chunked = ours(
            "200 OK",
            "transfer-encoding: chunked\r\n",
            "3\r\nabc\r\n0\r\n\r\n",
        );
        let both = format!("{one}{chunked}");
        let all = format!("{both}{HYPER_431}");
        for (writes, flush_each) in [
            (vec![all.as_bytes()], true),
            (vec![both.as_bytes(), HYPER_431.as_bytes()], true),
            (all.as_bytes().chunks(5).collect(), false),
        ] {
            let out = through_flushing(&writes, &Waiting::of(&[false, false]), flush_each).await;
            assert!(out.starts_with(both.as_bytes()));
            let (head, body) = envelope(&out[both.len()..]);
            assert!(head.starts_with("HTTP/1.1 431 "));
            assert_eq!(body["error"]["code"], "headers_too_large");
        }
    }

    #[tokio::test]
    async fn output_that_cannot_be_followed_passes_through() {
        // A response without a length runs to the end of the connection.
        let open = ours("200 OK", "", "HTTP/1.1 431 x\r\ncontent-length: 0\r\n\r\n");
        assert_eq!(
            through(&[open.as_bytes()], &Waiting::of(&[false])).await,
            open.as_bytes()
        );
        // A head no request waits for that is not one of hyper's refusals.
        let odd = "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(
            through(&[odd.as_bytes()], &Waiting::default()).await,
            odd.as_bytes()
        );
        let garbage = b"not http at all\r\n\r\n";
        assert_eq!(through(&[garbage], &Waiting::default()).await, garbage);
        // A refusal with a request id is the router's own.
        let own = "HTTP/1.1 431 Too Large\r\nx-request-id: a\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(
            through(&[own.as_bytes()], &Waiting::default()).await,
            own.as_bytes()
        );
        // A partial head at a flush is passed on.
        assert_eq!(
            through(&[b"HTTP/1.1 431"], &Waiting::default()).await,
            b"HTTP/1.1 431"
        );
    }

    #[test]
    fn blank_lines_across_writes() {
        assert_eq!(blank_line_end(b"", b"a\r\n\r\nbody"), Some(5));
        assert_eq!(blank_line_end(b"a\r\n\r", b"\nbody"), Some(1));
        assert_eq!(blank_line_end(b"a\r\n", b"\r\nbody"), Some(2));
        assert_eq!(blank_line_end(b"a\r", b"\n\r\nbody"), Some(3));
        assert_eq!(blank_line_end(b"a\r\n", b"b\r\n\r\n"), Some(5));
        assert_eq!(blank_line_end(b"a\r\n", b"b\r\n"), None);
    }

    #[test]
    fn heads_are_read() {
        let info = parse_head(
            b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\nX-Request-Id: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        )
        .unwrap();
        assert_eq!(
            info,
            HeadInfo {
                status: 200,
                request_id: true,
                content_length: Some(12),
                chunked: true
            }
        );
        assert_eq!(parse_head(b"HTTP/2 200\r\n\r\n"), None);
        assert_eq!(parse_head(b"HTTP/1.1 abc\r\n\r\n"), None);
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\nbroken\r\n\r\n"), None);
        assert_eq!(refusal(500).map(|e| e.code()), None);
    }
}
