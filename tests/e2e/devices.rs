//! Linking devices through the real binary: the sandbox lifecycle, QR expiry, restarts,
//! queued commands surviving kill -9, and the real provider failing cleanly offline.

use std::sync::Mutex;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Server, poll_until, send, str_at, wait_until};

const SECRET: (&str, &str) = ("WA_JWT_SECRET", "e2e-secret-e2e-secret-e2e-secret-e2e");

/// A tenant JWT of `tenant`, made by `wa-server token` with the tests' secret.
pub fn tenant_jwt(server: &Server, tenant: &str) -> String {
    let (ok, jwt, err) = server.cli(&["token", "--tenant", tenant], &[SECRET]);
    assert!(ok, "{err}");
    jwt
}

/// Creates an App through the real API and returns its token.
pub async fn app_token(server: &Server) -> String {
    let jwt = tenant_jwt(server, "acme");
    let name = format!("app-{}", uuid::Uuid::new_v4());
    str_at(
        &create_app(server, &jwt, json!({ "name": name })).await,
        "/app_token",
    )
}

/// Creates an App from `body` (at least its `name`) with the tenant JWT `jwt`; returns the
/// answer's `data`.
pub async fn create_app(server: &Server, jwt: &str, body: Value) -> Value {
    let (s, _, v) = send(
        server
            .http
            .post(server.url("/apps"))
            .bearer_auth(jwt)
            .json(&body),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    v["data"].clone()
}

pub async fn call(
    server: &Server,
    method: &str,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = server.http.request(m, server.url(path)).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let (s, _, v) = send(req).await;
    (s, v)
}

/// `GET path`, which must answer 200; the answer's body.
pub async fn get_ok(server: &Server, token: &str, path: &str) -> Value {
    let (s, v) = call(server, "GET", path, token, None).await;
    assert_eq!(s, 200, "{v}");
    v
}

/// The records a sandbox route of the device `id` lists (`sent`, `sessions`), oldest first.
pub async fn sandbox_records(server: &Server, token: &str, id: &str, what: &str) -> Vec<Value> {
    let v = get_ok(server, token, &format!("/sandbox/devices/{id}/{what}")).await;
    v["data"][what].as_array().unwrap().clone()
}

/// `POST /sandbox/devices/{id}/scan` by the phone `wa_number`; the answer's status and body.
pub async fn scan(server: &Server, token: &str, id: &str, wa_number: &str) -> (u16, Value) {
    let path = format!("/sandbox/devices/{id}/scan");
    let body = json!({ "wa_number": wa_number });
    call(server, "POST", &path, token, Some(body)).await
}

/// Polls `GET path` until `pred` holds for its 200 answer, which it returns; fails the test
/// with the last answer and the server's logs when `timeout` passes first.
pub async fn poll(
    server: &Server,
    token: &str,
    path: &str,
    timeout: Duration,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let last = Mutex::new(Value::Null);
    poll_until(
        &format!("GET {path} never reached the state"),
        timeout,
        Duration::from_millis(50),
        || async {
            let v = get_ok(server, token, path).await;
            if pred(&v) {
                return Some(v);
            }
            *last.lock().unwrap() = v;
            None
        },
        || format!("last: {}\nlogs:\n{}", last.lock().unwrap(), server.logs()),
    )
    .await
}

/// Polls the device `id` until `pred` holds for it; returns the device.
pub async fn wait_for(
    server: &Server,
    token: &str,
    id: &str,
    timeout: Duration,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let path = format!("/devices/{id}");
    let v = poll(server, token, &path, timeout, |v| {
        pred(&v["data"]["device"])
    })
    .await;
    v["data"]["device"].clone()
}

/// Polls the message `mid` of device `id` until it is `sent`; returns the message.
pub async fn wait_sent(
    server: &Server,
    token: &str,
    id: &str,
    mid: &str,
    timeout: Duration,
) -> Value {
    let path = format!("/devices/{id}/messages/{mid}");
    let v = poll(server, token, &path, timeout, |v| {
        v["data"]["message"]["status"] == "sent"
    })
    .await;
    v["data"]["message"].clone()
}

/// `POST /devices/{id}/messages` of the text `text` to `to`; the answer's status and body.
pub async fn send_text(
    server: &Server,
    token: &str,
    id: &str,
    to: &str,
    text: &str,
) -> (u16, Value) {
    let path = format!("/devices/{id}/messages");
    let body = json!({"to": to, "text": text});
    call(server, "POST", &path, token, Some(body)).await
}

/// `POST /devices` of a device named `name`; the answer's status and body.
pub async fn post_device(server: &Server, token: &str, name: &str) -> (u16, Value) {
    let body = json!({ "device_name": name });
    call(server, "POST", "/devices", token, Some(body)).await
}

/// Creates a device (201); returns it as answered, and its id.
pub async fn create_device(server: &Server, token: &str, name: &str) -> (Value, String) {
    let (s, v) = post_device(server, token, name).await;
    assert_eq!(s, 201, "{v}");
    let device = v["data"]["device"].clone();
    let id = device["device_id"].as_str().unwrap().to_owned();
    (device, id)
}

/// Creates a device and scans its QR; returns its id.
pub async fn linked_device(server: &Server, token: &str, name: &str) -> String {
    let (device, id) = create_device(server, token, name).await;
    assert_eq!(device["status"], "qr_generated");
    let (s, v) = scan(server, token, &id, "15551230001").await;
    assert_eq!(
        (s, v["data"]["device"]["status"].as_str()),
        (200, Some("connected")),
        "{v}"
    );
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_lifecycle_expiry_and_restart() {
    let mut server = Server::start(&[SECRET, ("WA_PROVIDER", "sandbox"), ("WA_QR_TTL_SECS", "2")]);
    let t = app_token(&server).await;

    // create, scan, connected, disconnect, regenerate, scan, destroy, 410
    let id = linked_device(&server, &t, "main").await;
    let (s, v) = call(
        &server,
        "POST",
        &format!("/devices/{id}/disconnect"),
        &t,
        None,
    )
    .await;
    assert_eq!(
        (s, v["data"]["device"]["status"].as_str()),
        (200, Some("disconnected"))
    );
    let (s, v) = call(&server, "POST", &format!("/devices/{id}/qr"), &t, None).await;
    assert_eq!(
        (s, v["data"]["device"]["status"].as_str()),
        (200, Some("qr_generated")),
        "{v}"
    );
    let png = server
        .http
        .get(server.url(&format!("/devices/{id}/qr?format=png")))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(png.headers()["content-type"], "image/png");
    assert_eq!(&png.bytes().await.unwrap()[..4], b"\x89PNG");
    let (s, v) = scan(&server, &t, &id, "15551230002").await;
    assert_eq!(
        (s, v["data"]["device"]["wa_number"].as_str()),
        (200, Some("15551230002"))
    );
    let (s, v) = call(&server, "DELETE", &format!("/devices/{id}"), &t, None).await;
    assert_eq!(
        (s, v["data"]["device"]["status"].as_str()),
        (200, Some("destroyed"))
    );
    let (s, v) = call(
        &server,
        "POST",
        &format!("/devices/{id}/disconnect"),
        &t,
        None,
    )
    .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (410, Some("device_destroyed"))
    );
    let (s, v) = call(&server, "GET", &format!("/devices/{id}"), &t, None).await;
    assert_eq!(
        (s, v["data"]["device"]["status"].as_str()),
        (200, Some("destroyed"))
    );

    // QR expiry with WA_QR_TTL_SECS=2
    let (_, expiring) = create_device(&server, &t, "expiring").await;
    let d = wait_for(&server, &t, &expiring, Duration::from_secs(10), |d| {
        d["status"] == "expired"
    })
    .await;
    assert!(d["qr"].is_null());

    // Restart: a connected device reconnects by itself; a QR being shown is expired.
    let survivor = linked_device(&server, &t, "survivor").await;
    let (_, showing) = create_device(&server, &t, "showing qr").await;
    assert!(server.terminate().success());
    let again = Server::start_in(
        &server.data_dir,
        &[SECRET, ("WA_PROVIDER", "sandbox"), ("WA_QR_TTL_SECS", "2")],
    );
    let d = wait_for(&again, &t, &survivor, Duration::from_secs(10), |d| {
        d["status"] == "connected"
    })
    .await;
    assert_eq!(d["wa_number"], "15551230001");
    wait_for(&again, &t, &showing, Duration::from_secs(10), |d| {
        d["status"] == "expired"
    })
    .await;
    get_ok(&again, &t, &format!("/devices/{survivor}/groups")).await;
}

/// Commands queued when the process is killed -9 run after the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_commands_survive_kill_9() {
    let env = [SECRET, ("WA_PROVIDER", "sandbox")];
    let mut first = Server::start(&env);
    let t = app_token(&first).await;
    let id = linked_device(&first, &t, "to destroy").await;
    let creds = first
        .data_dir
        .join("sandbox/sessions")
        .join(format!("{id}.json"));
    assert!(creds.exists(), "the sandbox keeps the session's keys");
    assert!(first.terminate().success());

    // Without a worker, the API only records and queues.
    let mut api_only = Server::start_in(
        &first.data_dir,
        &[
            SECRET,
            ("WA_PROVIDER", "sandbox"),
            ("WA_WORKER", "0"),
            ("WA_LINK_WAIT_MS", "100"),
        ],
    );
    let (s, v) = call(&api_only, "DELETE", &format!("/devices/{id}"), &t, None).await;
    assert_eq!(
        (s, v["data"]["device"]["status"].as_str()),
        (200, Some("destroyed"))
    );
    let (device, queued) = create_device(&api_only, &t, "queued link").await;
    assert_eq!(device["status"], "initializing");
    api_only.kill9();
    assert!(creds.exists(), "the destroy command has not run yet");

    let worker = Server::start_in(&first.data_dir, &env);
    wait_until(
        "the queued destroy never ran:",
        Duration::from_secs(10),
        || !creds.exists(),
        || worker.logs(),
    )
    .await;
    wait_for(&worker, &t, &queued, Duration::from_secs(10), |d| {
        d["status"] == "qr_generated"
    })
    .await;
}

/// WhatsApp unreachable: the real provider must fail cleanly and quickly. Its endpoint is a
/// loopback listener that records the WebSocket upgrade and hangs up, which also shows that
/// `WA_WHATSAPP_WS_URL` is the address dialled (and the pinned `WA_WHATSAPP_VERSION` keeps
/// the version fetch off the network).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_provider_offline_fails_cleanly() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (dialled_tx, dialled) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::Read;
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { break };
            let mut request = Vec::new();
            let mut buf = [0u8; 512];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            // Dropping the stream hangs up, as an unreachable WhatsApp would.
            if dialled_tx
                .send(String::from_utf8_lossy(&request).into_owned())
                .is_err()
            {
                break;
            }
        }
    });
    let ws_url = format!("ws://127.0.0.1:{port}/e2e/ws/chat");
    let server = Server::start(&[
        SECRET,
        ("WA_CONNECT_TIMEOUT_SECS", "3"),
        ("WA_LINK_WAIT_MS", "100"),
        ("WA_WHATSAPP_WS_URL", &ws_url),
    ]);
    let t = app_token(&server).await;
    let (_, id) = create_device(&server, &t, "real").await;
    let d = wait_for(&server, &t, &id, Duration::from_secs(30), |d| {
        !d["last_error"].is_null()
    })
    .await;
    let code = d["last_error"]["code"].as_str().unwrap();
    assert!(
        matches!(code, "whatsapp_connection_lost" | "provider_error"),
        "{d}"
    );
    assert_eq!(d["status"], "disconnected");
    let request = dialled
        .recv_timeout(Duration::from_secs(30))
        .expect("the real provider dialled WA_WHATSAPP_WS_URL");
    assert!(
        request.starts_with("GET /e2e/ws/chat HTTP/1.1\r\n"),
        "{request}"
    );
    let (s, _, h) = send(server.http.get(server.url("/health"))).await;
    assert_eq!((s, h["status"].as_str()), (200, Some("ok")));
    let (s, v) = call(&server, "DELETE", &format!("/devices/{id}"), &t, None).await;
    assert_eq!(
        (s, v["data"]["device"]["status"].as_str()),
        (200, Some("destroyed"))
    );
    // Sandbox control routes do not exist with the real provider.
    let (s, v) = scan(&server, &t, &id, "15551230001").await;
    assert_eq!((s, v["error"]["code"].as_str()), (404, Some("not_found")));
    assert!(!server.logs().contains("panicked"));
}

/// The documented split: a server without its worker and another process writing the same
/// database. The API server caches nothing, so it never answers with state the other process
/// changed; the other process (here a server running the worker, which also serves the
/// sandbox's routes) finds the database shared and does not cache either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_processes_see_each_others_writes() {
    let api = Server::start(&[
        SECRET,
        ("WA_PROVIDER", "sandbox"),
        ("WA_WORKER", "0"),
        ("WA_LINK_WAIT_MS", "100"),
    ]);
    let worker = Server::start_in(&api.data_dir, &[SECRET, ("WA_PROVIDER", "sandbox")]);
    assert!(
        worker.logs().contains("reads are not cached"),
        "{}",
        worker.logs()
    );
    let jwt = tenant_jwt(&api, "acme");
    let app = create_app(&api, &jwt, json!({"name": "split"})).await;
    let t = app["app_token"].as_str().unwrap().to_owned();
    let app_id = app["app"]["app_id"].as_str().unwrap().to_owned();

    let (_, id) = create_device(&api, &t, "split").await;
    // Read it a few times first: a cache would keep this state.
    for _ in 0..3 {
        let (s, _) = call(&api, "GET", "/devices", &t, None).await;
        assert_eq!(s, 200);
        let (s, _) = call(&api, "GET", &format!("/devices/{id}"), &t, None).await;
        assert_eq!(s, 200);
    }
    let listed_status = |v: &Value| {
        v["data"]["devices"][0]["status"]
            .as_str()
            .map(str::to_owned)
    };
    wait_for(&api, &t, &id, Duration::from_secs(10), |d| {
        d["status"] == "qr_generated"
    })
    .await;
    let (_, v) = call(&api, "GET", "/devices", &t, None).await;
    assert_eq!(listed_status(&v).as_deref(), Some("qr_generated"), "{v}");

    // The other process links the device: the API server sees it at once.
    let (s, v) = scan(&worker, &t, &id, "15551230001").await;
    assert_eq!(s, 200, "{v}");
    wait_for(&api, &t, &id, Duration::from_secs(10), |d| {
        d["status"] == "connected"
    })
    .await;
    let (_, v) = call(&api, "GET", "/devices", &t, None).await;
    assert_eq!(listed_status(&v).as_deref(), Some("connected"), "{v}");

    // A send accepted by the API server is sent by the other process.
    let (s, _, v) = send(
        api.http
            .post(api.url(&format!("/devices/{id}/messages")))
            .bearer_auth(&t)
            .header("Prefer", "respond-async")
            .json(&json!({"to": "15550001111", "text": "split"})),
    )
    .await;
    assert_eq!(s, 202, "{v}");
    let mid = str_at(&v, "/data/message/message_id");
    wait_sent(&api, &t, &id, &mid, Duration::from_secs(10)).await;

    // A token rotated through one process is refused by the other at once.
    let (s, _) = call(&worker, "GET", "/devices", &t, None).await;
    assert_eq!(s, 200);
    let (s, _, v) = send(
        api.http
            .post(api.url(&format!("/apps/{app_id}/token")))
            .bearer_auth(&jwt),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let (s, _) = call(&worker, "GET", "/devices", &t, None).await;
    assert_eq!(s, 401, "the old token is refused by the other process");
}

/// A server running its own worker caches its reads, so it keeps its database to itself: a
/// second process is refused, with what to do instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caching_server_keeps_its_database_to_itself() {
    let full = Server::start(&[SECRET, ("WA_PROVIDER", "sandbox")]);
    let out = std::process::Command::new(crate::support::BIN)
        .env_clear()
        .env("WA_DATA_DIR", &full.data_dir)
        .env("WA_LISTEN", "127.0.0.1:0")
        .env("WA_WORKER", "0")
        .env(SECRET.0, SECRET.1)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("WA_WORKER=0"), "{err}");
    let (s, _) = call(&full, "GET", "/health", "", None).await;
    assert_eq!(s, 200, "the first server carries on");
}
