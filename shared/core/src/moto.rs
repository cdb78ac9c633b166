//! A moto server (the AWS emulator of PyPI's `moto[server]`) for the tests of the AWS
//! adapters: started once per test process on a free loopback port, stopped when the
//! process ends. `scripts/test` installs moto in the workspace's `.venv`; `WA_MOTO_SERVER`
//! names another `moto_server` executable.

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

fn executable() -> PathBuf {
    if let Some(p) = std::env::var_os("WA_MOTO_SERVER") {
        return PathBuf::from(p);
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/moto_server");
    if venv.exists() {
        return venv;
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("moto_server"))
            .find(|p| p.exists())
    });
    on_path.unwrap_or_else(|| {
        panic!(
            "moto_server not found: run the tests with `bash scripts/test` (it installs \
             moto[server] in .venv), or set WA_MOTO_SERVER"
        )
    })
}

#[allow(clippy::zombie_processes)]
fn start() -> String {
    let exe = executable();
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port();
    // A shell watches this process and stops moto when it is gone, however the test ends;
    // it is never waited for: it outlives this process by design.
    let script = r#"exe="$1"; port="$2"; parent="$3"
"$exe" -H 127.0.0.1 -p "$port" >/dev/null 2>&1 &
moto=$!
trap 'kill $moto 2>/dev/null' EXIT
while kill -0 "$parent" 2>/dev/null && kill -0 "$moto" 2>/dev/null; do sleep 0.5; done"#;
    Command::new("sh")
        .args(["-c", script, "moto-watch"])
        .arg(&exe)
        .arg(port.to_string())
        .arg(std::process::id().to_string())
        .stdin(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", exe.display()));
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "moto_server did not listen on port {port} within 60 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    format!("http://127.0.0.1:{port}")
}
