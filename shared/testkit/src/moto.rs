//! A moto server (the AWS emulator of PyPI's `moto[server]`) for the tests of the AWS
//! adapters: started once per test process on a free loopback port, stopped when the
//! process ends. It runs through `scripts/moto_serial.py`, which answers one request at a
//! time: moto's DynamoDB transactions are not isolated from concurrent requests. `scripts/test`
//! installs moto in the workspace's `.venv`; `WA_TEST_PYTHON` names another Python.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The region every test client uses.
pub const REGION: &str = "us-east-1";

/// The endpoint URL of this process's moto server, starting it on first use.
pub fn endpoint() -> &'static str {
    static ENDPOINT: OnceLock<String> = OnceLock::new();
    ENDPOINT.get_or_init(start)
}

/// The Python that has moto: `WA_TEST_PYTHON`, else the workspace's `.venv`.
fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("WA_TEST_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    if venv.exists() {
        return venv;
    }
    panic!(
        "no Python with moto: run the tests with `bash scripts/test` (it installs moto[server] \
         in .venv), or set WA_TEST_PYTHON"
    )
}

#[allow(clippy::zombie_processes)]
fn start() -> String {
    let exe = python();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/moto_serial.py");
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port();
    // A shell watches this process and stops moto when it is gone, however the test ends;
    // it is never waited for: it outlives this process by design.
    let watch = r#"exe="$1"; script="$2"; port="$3"; parent="$4"
"$exe" "$script" 127.0.0.1 "$port" >/dev/null 2>&1 &
moto=$!
trap 'kill $moto 2>/dev/null' EXIT
while kill -0 "$parent" 2>/dev/null && kill -0 "$moto" 2>/dev/null; do sleep 0.5; done"#;
    Command::new("sh")
        .args(["-c", watch, "moto-watch"])
        .arg(&exe)
        .arg(&script)
        .arg(port.to_string())
        .arg(std::process::id().to_string())
        .stdin(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", exe.display()));
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "moto did not listen on port {port} within 60 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    format!("http://127.0.0.1:{port}")
}
