//! Starting and stopping the real server binary.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_wa-server");

/// The WhatsApp Web version every server under test announces: pinned, so the real
/// provider never fetches WhatsApp Web's.
pub const PINNED_WHATSAPP_VERSION: &str = "2.3000.1012345678";

/// A loopback WebSocket URL on which nothing listens: the real provider's default
/// endpoint under test, so no test reaches WhatsApp.
pub fn closed_loopback_ws_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("ws://127.0.0.1:{port}/ws/chat")
}

/// A child process, killed when dropped.
pub struct Process(Option<Child>);

impl Process {
    pub fn new(child: Child) -> Process {
        Process(Some(child))
    }

    /// SIGKILL, as a crash would.
    pub fn kill9(&mut self) {
        let mut child = self.0.take().expect("process running");
        child.kill().expect("SIGKILL");
        let _ = child.wait();
    }

    /// SIGTERM, then the exit status once it has stopped; `None` when it is still running
    /// `timeout` later (it is killed then).
    pub fn terminate(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let mut child = self.0.take().expect("process running");
        sigterm(&child);
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return Some(status);
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A running `wa-server` with its own data directory; killed when dropped.
pub struct Server {
    process: Process,
    pub base: String,
    pub data_dir: PathBuf,
    logs: Arc<Mutex<Vec<String>>>,
    _dir: Option<tempfile::TempDir>,
    pub http: reqwest::Client,
}

impl Server {
    /// Starts the server on `127.0.0.1:0` with a fresh data directory and JSON logs.
    pub fn start(env: &[(&str, &str)]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().to_path_buf();
        let mut s = Server::start_in(&data_dir, env);
        s._dir = Some(dir);
        s
    }

    /// Starts the server like `start`, with its open-file limit (soft and hard) at
    /// `open_files`.
    pub fn start_with_open_files(env: &[(&str, &str)], open_files: u32) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c")
            .arg(format!("ulimit -n {open_files} && exec \"$0\""))
            .arg(BIN);
        let mut s = Server::spawn(cmd, dir.path(), env);
        s._dir = Some(dir);
        s
    }

    /// Starts the server on an existing data directory (restarts).
    pub fn start_in(data_dir: &Path, env: &[(&str, &str)]) -> Server {
        Server::spawn(Command::new(BIN), data_dir, env)
    }

    /// Starts the server on `data_dir` with the file mode creation mask `umask` (octal, as
    /// the shell's `umask` takes it).
    pub fn start_with_umask(umask: &str, data_dir: &Path, env: &[(&str, &str)]) -> Server {
        let mut cmd = Command::new("/bin/sh");
        cmd.args(["-c", "umask \"$1\" && exec \"$2\"", "sh", umask, BIN]);
        Server::spawn(cmd, data_dir, env)
    }

    fn spawn(mut cmd: Command, data_dir: &Path, env: &[(&str, &str)]) -> Server {
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("WA_LISTEN", "127.0.0.1:0")
            .env("WA_DATA_DIR", data_dir)
            .env("WA_LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .env("WA_WHATSAPP_WS_URL", closed_loopback_ws_url())
            .env("WA_WHATSAPP_VERSION", PINNED_WHATSAPP_VERSION)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("the wa-server binary starts");
        let stderr = child.stderr.take().unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let sink = logs.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                    && let Some(addr) = v["addr"].as_str()
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(addr.to_owned());
                }
                sink.lock().unwrap().push(line);
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(a) => a,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "wa-server did not report its address; logs:\n{}",
                    logs.lock().unwrap().join("\n")
                );
            }
        };
        Server {
            process: Process::new(child),
            base: format!("http://{addr}"),
            data_dir: data_dir.to_path_buf(),
            logs,
            _dir: None,
            http: http_client(Duration::from_secs(30)),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// All log lines so far.
    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    /// Runs `wa-server <args>` with this server's data directory; returns stdout.
    pub fn cli(&self, args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
        let mut cmd = Command::new(BIN);
        cmd.env_clear()
            .env("WA_DATA_DIR", &self.data_dir)
            .env("WA_LOG_FORMAT", "json")
            .args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).trim().to_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Kills the process with SIGKILL, as a crash would.
    pub fn kill9(&mut self) {
        self.process.kill9();
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        self.process
            .terminate(Duration::from_secs(60))
            .expect("wa-server stops within 60 s of SIGTERM")
    }
}

/// The string at the JSON pointer `pointer` of `v` (`/data/message/message_id`); fails the
/// test when there is none.
pub fn str_at(v: &serde_json::Value, pointer: &str) -> String {
    v.pointer(pointer)
        .and_then(serde_json::Value::as_str)
        .unwrap_or_else(|| panic!("no string at {pointer} in {v}"))
        .to_owned()
}

/// Waits until `done()` holds, looking every 50 ms; fails the test with `what` and
/// `context()` (a process's logs, say) when `timeout` passes first.
pub async fn wait_until(
    what: &str,
    timeout: Duration,
    mut done: impl FnMut() -> bool,
    context: impl Fn() -> String,
) {
    let every = Duration::from_millis(50);
    let check = || std::future::ready(done().then_some(()));
    poll_until(what, timeout, every, check, context).await
}

/// Runs `check` every `every` until it answers `Some`, which it returns; fails the test with
/// `what` and `context()` (the last state seen, a process's logs) when `timeout` passes
/// first.
pub async fn poll_until<T, F: Future<Output = Option<T>>>(
    what: &str,
    timeout: Duration,
    every: Duration,
    mut check: impl FnMut() -> F,
    context: impl Fn() -> String,
) -> T {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what}\n{}",
            context()
        );
        tokio::time::sleep(every).await;
    }
}

/// A client whose every request gives up after `timeout`.
pub fn http_client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder().timeout(timeout).build().unwrap()
}

/// Sends SIGTERM to `child` (the caller waits for it to stop).
pub fn sigterm(child: &Child) {
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -TERM");
}

/// A response's status, `x-request-id` header and JSON body (Null when empty).
pub async fn send(req: reqwest::RequestBuilder) -> (u16, String, serde_json::Value) {
    let res = req.send().await.expect("request reaches the server");
    let status = res.status().as_u16();
    let id = res
        .headers()
        .get("x-request-id")
        .expect("every response has x-request-id")
        .to_str()
        .unwrap()
        .to_owned();
    let bytes = res.bytes().await.unwrap();
    let body = if bytes.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| panic!("body is JSON: {}", String::from_utf8_lossy(&bytes)))
    };
    (status, id, body)
}
