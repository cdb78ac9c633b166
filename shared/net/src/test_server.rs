//! A loopback HTTP/1.1 server for tests of outbound requests: it counts the connections it
//! accepts, records each request and answers what the test tells it (or never answers).
//! It listens on 127.0.0.1 only.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A request as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    /// Header names in lower case, in the order sent.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Received {
    /// The first value of a header (`name` in lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What the server does with a request.
#[derive(Debug, Clone)]
pub enum Answer {
    /// Writes these bytes, then closes the connection.
    Raw(Vec<u8>),
    /// Keeps the connection open and never answers.
    Never,
}

impl Answer {
    /// A response with this status, `Content-Length` and body.
    pub fn status(code: u16, body: &[u8]) -> Answer {
        Self::with_headers(code, &[], body)
    }

    /// A response with extra headers.
    pub fn with_headers(code: u16, headers: &[(&str, &str)], body: &[u8]) -> Answer {
        let mut head = format!("HTTP/1.1 {code} X\r\ncontent-length: {}\r\n", body.len());
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("connection: close\r\n\r\n");
        let mut raw = head.into_bytes();
        raw.extend_from_slice(body);
        Answer::Raw(raw)
    }

    /// A 200 whose body has no length: it ends when the connection closes.
    pub fn unsized_body(body: &[u8]) -> Answer {
        let mut raw = b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n".to_vec();
        raw.extend_from_slice(body);
        Answer::Raw(raw)
    }
}

type Handler = dyn Fn(&Received) -> Answer + Send + Sync;

#[derive(Default)]
struct Seen {
    connections: usize,
    requests: Vec<Received>,
}

/// The server; it stops when the test's runtime does.
pub struct LoopbackServer {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Seen>>,
}

impl LoopbackServer {
    /// Listens on a free port of 127.0.0.1 and answers every request with `answer`.
    pub async fn start(answer: impl Fn(&Received) -> Answer + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let seen = Arc::new(Mutex::new(Seen::default()));
        let answer: Arc<Handler> = Arc::new(answer);
        let s = seen.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                s.lock().unwrap().connections += 1;
                tokio::spawn(serve(stream, s.clone(), answer.clone()));
            }
        });
        LoopbackServer { addr, seen }
    }

    /// A server that redirects `from` to `to` with `status` (a `location` header, no
    /// body) and answers every other path with `other`.
    pub async fn redirecting(from: &str, status: u16, to: &str, other: Answer) -> Self {
        let redirect = Answer::with_headers(status, &[("location", to)], b"");
        let from = from.to_owned();
        Self::start(move |r| {
            if r.path == from {
                redirect.clone()
            } else {
                other.clone()
            }
        })
        .await
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.seen.lock().unwrap().connections
    }

    /// Requests received so far.
    pub fn requests(&self) -> Vec<Received> {
        self.seen.lock().unwrap().requests.clone()
    }

    /// Waits until `n` requests have arrived (panics after a generous deadline).
    pub async fn wait_for_requests(&self, n: usize) -> Vec<Received> {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let got = self.requests();
            if got.len() >= n {
                return got;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{} of {n} requests arrived",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn serve(mut stream: TcpStream, seen: Arc<Mutex<Seen>>, answer: Arc<Handler>) {
    let Some(req) = read_request(&mut stream).await else {
        return;
    };
    let a = answer(&req);
    seen.lock().unwrap().requests.push(req);
    match a {
        Answer::Raw(bytes) => {
            let _ = stream.write_all(&bytes).await;
            let _ = stream.shutdown().await;
        }
        Answer::Never => {
            // Held open until the client gives up and closes it.
            let mut sink = [0u8; 1024];
            while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
        }
    }
}

async fn read_request(stream: &mut TcpStream) -> Option<Received> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let (method, path) = (first.next()?.to_owned(), first.next()?.to_owned());
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some(Received {
        method,
        path,
        headers,
        body,
    })
}
