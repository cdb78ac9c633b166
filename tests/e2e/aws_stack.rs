//! The AWS deployment end to end, through `scripts/aws-local`: template.yaml's stack on
//! this machine (moto; each Lambda function's debug binary behind the Lambda Runtime API
//! emulator; API Gateway's HTTP API routing as the template declares it; the SQS event
//! source mappings; the worker), driven over HTTP and SQS like a deployed stack.
//!
//! [`Stack`] starts it and stops it on drop; [`shared`] is one stack for the whole test
//! process (each test makes its own App, so tests do not see each other's data). The
//! binaries are the workspace's (`cargo build --workspace --bins`, which `scripts/test`
//! runs), found next to `wa-server`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
use serde_json::{Value, json};

use crate::support::{BIN, http_client, str_at, wait_until};
use crate::webhooks::{Receiver, both_sent, python};

/// How long the stack may take to come up (moto, the resources, the worker) on a loaded
/// machine.
const START_WITHIN: Duration = Duration::from_secs(180);
/// A generous bound for something the stack does in the background (a worker's command, a
/// poller's batch): only a broken run waits this long.
const SETTLES_WITHIN: Duration = Duration::from_secs(60);

/// What to start a stack with; `Default` is the sandbox with the template's defaults.
pub struct StackOptions {
    /// Template parameters (`Provider=sandbox` by default).
    pub parameters: Vec<(String, String)>,
    /// Extra variables for every function and worker (`--env`).
    pub env: Vec<(String, String)>,
    /// Worker processes (`--workers`); None: the service's DesiredCount.
    pub workers: Option<usize>,
}

impl Default for StackOptions {
    fn default() -> Self {
        StackOptions {
            parameters: vec![("Provider".into(), "sandbox".into())],
            env: vec![("WA_ALLOW_PRIVATE_URLS".into(), "1".into())],
            workers: None,
        }
    }
}

/// A running `scripts/aws-local`; stopped (SIGTERM) when dropped.
pub struct Stack {
    child: Option<Child>,
    /// The ready line: URLs, resource names, functions, workers, the JWT key.
    pub ready: Value,
    /// The HTTP API's base URL.
    pub api: String,
    /// moto's endpoint (for SQS and DynamoDB clients).
    pub moto: String,
    /// A tenant JWT for `/apps`.
    pub jwt: String,
    log_dir: PathBuf,
    _dir: tempfile::TempDir,
}

/// One stack for the whole test process (it stops when the process ends: the script
/// watches its parent).
pub fn shared() -> &'static Stack {
    static STACK: OnceLock<Stack> = OnceLock::new();
    STACK.get_or_init(|| Stack::start(&StackOptions::default()))
}

/// The directory of the workspace's binaries (`wa-fn-*`, `wa-worker`).
fn bin_dir() -> PathBuf {
    let dir = Path::new(BIN).parent().unwrap().to_path_buf();
    for name in [
        "wa-fn-apps",
        "wa-fn-devices",
        "wa-fn-messages",
        "wa-fn-sends",
        "wa-fn-webhooks",
        "wa-fn-site",
        "wa-worker",
    ] {
        assert!(
            dir.join(name).exists(),
            "{} is missing: build the workspace's binaries first (cargo build --workspace --bins; \
             scripts/test does it)",
            dir.join(name).display()
        );
    }
    dir
}

impl Stack {
    /// Starts a stack and waits for its ready line.
    pub fn start(options: &StackOptions) -> Stack {
        let dir = tempfile::tempdir().unwrap();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/aws-local");
        let stderr = std::fs::File::create(dir.path().join("aws-local.stderr")).unwrap();
        let mut cmd = Command::new(python());
        cmd.arg(script)
            .arg("--bin-dir")
            .arg(bin_dir())
            .arg("--state-dir")
            .arg(dir.path())
            // The shared stack is never dropped: the script removes its state itself.
            .arg("--clean")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr);
        for (k, v) in &options.parameters {
            cmd.arg(format!("{k}={v}"));
        }
        for (k, v) in &options.env {
            cmd.arg("--env").arg(format!("{k}={v}"));
        }
        if let Some(n) = options.workers {
            cmd.arg("--workers").arg(n.to_string());
        }
        let mut child = cmd.spawn().expect("python runs scripts/aws-local");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(START_WITHIN).unwrap_or_default();
        let ready: Value = match serde_json::from_str(&line) {
            Ok(v) => v,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "scripts/aws-local did not print its ready line; its stderr:\n{}",
                    std::fs::read_to_string(dir.path().join("aws-local.stderr"))
                        .unwrap_or_default()
                );
            }
        };
        let text = |k: &str| ready[k].as_str().unwrap_or_default().to_owned();
        Stack {
            child: Some(child),
            api: text("api_url"),
            moto: text("moto_endpoint"),
            jwt: text("tenant_jwt"),
            log_dir: PathBuf::from(text("log_dir")),
            ready,
            _dir: dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.api)
    }

    /// A client of this stack (one per test: a client belongs to its test's runtime).
    pub fn client(&self) -> Client<'_> {
        Client {
            stack: self,
            http: http_client(Duration::from_secs(60)),
        }
    }

    /// The URL of the queue `logical` (a logical id of template.yaml).
    pub fn queue_url(&self, logical: &str) -> String {
        self.ready["resources"][logical]["url"]
            .as_str()
            .unwrap_or_else(|| panic!("no queue {logical} in {}", self.ready["resources"]))
            .to_owned()
    }

    /// An SQS client on the stack's moto.
    pub fn sqs(&self) -> aws_sdk_sqs::Client {
        let config = aws_sdk_sqs::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .endpoint_url(&self.moto)
            .region(Region::new(wa_testkit::moto::REGION))
            .credentials_provider(Credentials::new("test", "test", None, None, "moto"))
            .build();
        aws_sdk_sqs::Client::from_conf(config)
    }

    fn json_lines(&self, file: &str) -> Vec<Value> {
        std::fs::read_to_string(self.log_dir.join(file))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The HTTP API's access log: one entry per request (`requestId`, `routeKey`,
    /// `status`, `function`, `integrationError`).
    pub fn api_log(&self) -> Vec<Value> {
        self.json_lines("api-HttpApi.log")
    }

    /// The access-log entry of the request `answer` answered (by its `Apigw-Requestid`).
    pub fn api_log_entry(&self, answer: &Answer) -> Value {
        let id = answer.headers["apigw-requestid"].to_str().unwrap();
        self.api_log()
            .into_iter()
            .find(|e| e["requestId"] == id)
            .unwrap_or_else(|| panic!("request {id} is not in the access log"))
    }

    /// Every function's inits and invocations (`lambda.jsonl`: `cold`, `init_ms`,
    /// `first_answer_ms`, `duration_ms`, `max_memory_mb`, `error`): what cold-start and
    /// cost measurements read.
    pub fn invocations(&self) -> Vec<Value> {
        self.json_lines("lambda.jsonl")
    }

    /// The JSON lines of every execution environment's output of `function` (a logical
    /// id of template.yaml): its logs and its EMF records.
    pub fn function_log(&self, function: &str) -> Vec<Value> {
        self.json_lines_of(&self.log_dir.join("lambda"), &format!("{function}-"))
    }

    /// The JSON lines of the worker processes' output: their logs and EMF records.
    pub fn worker_log(&self) -> Vec<Value> {
        self.json_lines_of(&self.log_dir, "WorkerService-")
    }

    fn json_lines_of(&self, dir: &Path, prefix: &str) -> Vec<Value> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(prefix) && name.ends_with(".log") {
                let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
                out.extend(
                    text.lines()
                        .filter_map(|l| serde_json::from_str::<Value>(l).ok()),
                );
            }
        }
        out
    }

    /// The environment of a live execution environment of `function`, read from its
    /// process (`lambda.jsonl` has each init's pid).
    pub fn function_environment(&self, function: &str) -> Vec<(String, String)> {
        let pids: Vec<u64> = self
            .invocations()
            .iter()
            .filter(|i| i["function"] == function && i["event"] == "init")
            .filter_map(|i| i["pid"].as_u64())
            .collect();
        for pid in pids.into_iter().rev() {
            if let Ok(raw) = std::fs::read(format!("/proc/{pid}/environ")) {
                return raw
                    .split(|b| *b == 0)
                    .filter_map(|kv| {
                        let kv = String::from_utf8_lossy(kv);
                        kv.split_once('=')
                            .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    })
                    .collect();
            }
        }
        panic!(
            "no live execution environment of {function}\n{}",
            self.logs()
        );
    }

    /// The last lines of every log of the stack, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        let mut files: Vec<PathBuf> = Vec::new();
        for dir in [self.log_dir.clone(), self.log_dir.join("lambda")] {
            if let Ok(entries) = std::fs::read_dir(&dir) {
                files.extend(entries.flatten().map(|e| e.path()).filter(|p| p.is_file()));
            }
        }
        files.sort();
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            out.push_str(&format!("==> {}\n", file.display()));
            for line in &lines[lines.len().saturating_sub(30)..] {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + SETTLES_WITHIN;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// An App made through the API.
pub struct App {
    pub app_id: String,
    pub token: String,
    pub webhook_secret: String,
}

/// An App whose webhooks go to a loopback receiver that verifies them, with a device
/// connected through the sandbox.
pub struct Hooked {
    pub receiver: Receiver,
    pub app: App,
    pub device: String,
    pub _dir: tempfile::TempDir,
}

/// HTTP (and SQS) calls to one stack.
pub struct Client<'a> {
    pub stack: &'a Stack,
    pub http: reqwest::Client,
}

/// A response: status, headers, and the body as JSON (Null when empty; `{"text": ...}`
/// when it is not JSON).
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Client<'_> {
    /// Sends `req`; the answer.
    pub async fn send(&self, req: reqwest::RequestBuilder) -> Answer {
        let res = req.send().await.expect("the request reaches the HTTP API");
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let bytes = res.bytes().await.unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| json!({"text": String::from_utf8_lossy(&bytes)}))
        };
        Answer {
            status,
            headers,
            body,
        }
    }

    /// `method path` with a bearer token and a JSON body.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self.http.request(m, self.stack.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        self.send(req).await
    }

    /// POSTs `body` as it is, as JSON, with a bearer token.
    pub async fn post_raw(&self, path: &str, token: &str, body: String) -> Answer {
        self.send(
            self.http
                .post(self.stack.url(path))
                .bearer_auth(token)
                .header("content-type", "application/json")
                .body(body),
        )
        .await
    }

    /// Creates an App with the stack's tenant JWT.
    pub async fn create_app(&self, webhook_url: Option<&str>) -> App {
        let name = format!("app-{}", uuid::Uuid::new_v4());
        let mut body = json!({"name": name});
        if let Some(url) = webhook_url {
            body["webhook_url"] = json!(url);
        }
        let a = self
            .call("POST", "/apps", Some(&self.stack.jwt), Some(body))
            .await;
        assert_eq!(a.status, 201, "{}", a.body);
        let field = |k: &str| a.body["data"][k].as_str().unwrap().to_owned();
        App {
            app_id: a.body["data"]["app"]["app_id"].as_str().unwrap().to_owned(),
            token: field("app_token"),
            webhook_secret: field("webhook_secret"),
        }
    }

    /// Creates a device (201); returns it as answered, and its id.
    pub async fn create_device(&self, token: &str, name: &str) -> (Value, String) {
        let a = self
            .call(
                "POST",
                "/devices",
                Some(token),
                Some(json!({"device_name": name})),
            )
            .await;
        assert_eq!(a.status, 201, "{}", a.body);
        let device = a.body["data"]["device"].clone();
        let id = device["device_id"].as_str().unwrap().to_owned();
        (device, id)
    }

    /// Polls `GET /devices/{id}` until `pred` holds; the device.
    pub async fn wait_for_device(
        &self,
        token: &str,
        id: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + SETTLES_WITHIN;
        loop {
            let a = self
                .call("GET", &format!("/devices/{id}"), Some(token), None)
                .await;
            assert_eq!(a.status, 200, "{}", a.body);
            let d = a.body["data"]["device"].clone();
            if pred(&d) {
                return d;
            }
            assert!(
                Instant::now() < deadline,
                "device never reached the state; last: {d}\n{}",
                self.stack.logs()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Scans a device's QR through the sandbox's control route and waits for `connected`.
    pub async fn connect_device(&self, token: &str, id: &str, wa_number: &str) -> Value {
        let a = self
            .call(
                "POST",
                &format!("/sandbox/devices/{id}/scan"),
                Some(token),
                Some(json!({"wa_number": wa_number})),
            )
            .await;
        assert!(a.status < 300, "scan: {} {}", a.status, a.body);
        self.wait_for_device(token, id, |d| d["status"] == "connected")
            .await
    }

    /// Puts an event-driven send (or any body) on the sends queue.
    /// A [`Hooked`] App and its device `name`, connected as `wa_number`.
    pub async fn hooked_device(&self, name: &str, wa_number: &str) -> Hooked {
        let dir = tempfile::tempdir().unwrap();
        let receiver = Receiver::start(dir.path(), 0);
        let hook = format!("http://127.0.0.1:{}/hook", receiver.port);
        let app = self.create_app(Some(&hook)).await;
        receiver.set("secret", &app.webhook_secret);
        let (_, device) = self.create_device(&app.token, name).await;
        self.wait_for_device(&app.token, &device, |d| d["status"] == "qr_generated")
            .await;
        self.connect_device(&app.token, &device, wa_number).await;
        Hooked {
            receiver,
            app,
            device,
            _dir: dir,
        }
    }

    pub async fn put_send(&self, body: &str) {
        self.stack
            .sqs()
            .send_message()
            .queue_url(self.stack.queue_url("SendsQueue"))
            .message_body(body)
            .send()
            .await
            .unwrap();
    }

    /// Waits for a message in the queue `logical` that `pred` accepts and returns it (body
    /// and attributes); what it reads becomes visible again at once.
    pub async fn wait_in_queue(
        &self,
        logical: &str,
        pred: impl Fn(&aws_sdk_sqs::types::Message) -> bool,
    ) -> aws_sdk_sqs::types::Message {
        let sqs = self.stack.sqs();
        let url = self.stack.queue_url(logical);
        let deadline = Instant::now() + SETTLES_WITHIN;
        loop {
            let got = sqs
                .receive_message()
                .queue_url(&url)
                .message_attribute_names("All")
                .max_number_of_messages(10)
                .visibility_timeout(0)
                .send()
                .await
                .unwrap();
            if let Some(m) = got
                .messages
                .unwrap_or_default()
                .into_iter()
                .find(|m| pred(m))
            {
                return m;
            }
            assert!(
                Instant::now() < deadline,
                "nothing matching in {logical}\n{}",
                self.stack.logs()
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
}

// ---------------------------------------------------------------------------- tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_served_by_the_devices_function_behind_the_http_api() {
    let stack = shared();
    let c = stack.client();
    let a = c.call("GET", "/health", None, None).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["status"], "ok");
    // No x-request-id sent: the function answers with API Gateway's request id.
    assert_eq!(a.headers["x-request-id"], a.headers["apigw-requestid"]);
    let entry = stack.api_log_entry(&a);
    assert_eq!(entry["routeKey"], "GET /health");
    assert_eq!(entry["function"], "DevicesFunction");
    assert!(
        stack
            .invocations()
            .iter()
            .any(|i| i["function"] == "DevicesFunction"
                && i["event"] == "invoke"
                && i["error"].is_null()),
        "{}",
        stack.logs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apps_are_created_read_listed_and_their_token_rotated() {
    let stack = shared();
    let c = stack.client();
    let app = c.create_app(None).await;
    assert!(
        app.webhook_secret.starts_with("whsec_"),
        "{}",
        app.webhook_secret
    );
    let jwt = Some(stack.jwt.as_str());
    let a = c
        .call("GET", &format!("/apps/{}", app.app_id), jwt, None)
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["data"]["app"]["tenant_id"], "local");
    let a = c.call("GET", "/apps?limit=200", jwt, None).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(
        a.body["data"]["apps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["app_id"] == app.app_id.as_str()),
        "{}",
        a.body
    );
    // Without the JWT: the apps function's envelope.
    let a = c.call("GET", "/apps", None, None).await;
    assert_eq!(a.status, 401, "{}", a.body);
    assert_eq!(a.body["error"]["code"], "unauthorized");

    let a = c
        .call("POST", &format!("/apps/{}/token", app.app_id), jwt, None)
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let rotated = a.body["data"]["app_token"].as_str().unwrap().to_owned();
    assert_ne!(rotated, app.token);
    let old = c.call("GET", "/devices", Some(&app.token), None).await;
    assert_eq!(old.status, 401, "{}", old.body);
    assert_eq!(old.body["error"]["code"], "invalid_api_key");
    let new = c.call("GET", "/devices", Some(&rotated), None).await;
    assert_eq!(new.status, 200, "{}", new.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_gets_its_qr_from_the_worker_and_its_messages_route_to_the_messages_function() {
    let stack = shared();
    let c = stack.client();
    let app = c.create_app(None).await;
    let (_, id) = c.create_device(&app.token, "d1").await;
    let device = c
        .wait_for_device(&app.token, &id, |d| d["status"] == "qr_generated")
        .await;
    assert!(
        device["qr"]["code"].as_str().is_some_and(|q| !q.is_empty()),
        "{device}"
    );

    // `ANY /devices/{device_id}/messages` is more specific than `ANY /devices/{proxy+}`.
    let a = c
        .call(
            "GET",
            &format!("/devices/{id}/messages"),
            Some(&app.token),
            None,
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let entry = stack.api_log_entry(&a);
    assert_eq!(entry["routeKey"], "ANY /devices/{device_id}/messages");
    assert_eq!(entry["function"], "MessagesFunction");
}

/// Paths no function serves, and methods a served path does not take: the `$default`
/// route's function answers with this API's envelope, never API Gateway's own 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_routes_answer_with_the_error_envelope() {
    let stack = shared();
    let c = stack.client();
    for (method, path) in [
        ("GET", "/nope"),
        ("GET", "/metrics"),
        ("POST", "/apps/x/y/z/nope"),
        ("DELETE", "/health"),
        ("GET", "/dashboard/nope.js"),
    ] {
        let a = c.call(method, path, None, None).await;
        assert_eq!(a.status, 404, "{method} {path}: {}", a.body);
        assert_eq!(
            a.body["error"]["code"], "not_found",
            "{method} {path}: {}",
            a.body
        );
        assert_eq!(
            a.body["request_id"].as_str(),
            a.headers["x-request-id"].to_str().ok(),
            "{method} {path}"
        );
        let entry = stack.api_log_entry(&a);
        if path == "/nope" {
            assert_eq!(entry["routeKey"], "$default");
            assert_eq!(entry["function"], "SiteFunction");
        }
    }
}

/// The OpenAPI document (the whole API's, the sandbox's routes included on a sandbox
/// stack), the docs page and the dashboard come from the site function.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_docs_and_dashboard_are_served() {
    let stack = shared();
    let c = stack.client();
    let a = c.call("GET", "/openapi.json", None, None).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.headers["content-type"], "application/json");
    let paths = a.body["paths"].as_object().unwrap();
    for p in [
        "/apps",
        "/devices/{device_id}/groups",
        "/devices/{device_id}/profile",
        "/devices/{device_id}/messages",
        "/media",
        "/health",
        "/sandbox/devices/{device_id}/scan",
    ] {
        assert!(paths.contains_key(p), "{p} is described");
    }
    assert_eq!(stack.api_log_entry(&a)["function"], "SiteFunction");
    for (path, content_type, needle) in [
        ("/docs/", "text/html", "/openapi.json"),
        ("/", "text/html", "/dashboard/app.js"),
        ("/dashboard/app.js", "text/javascript", "sessionStorage"),
    ] {
        let res = c.http.get(stack.url(path)).send().await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
        let ct = res.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(ct.starts_with(content_type), "{path}: {ct}");
        let text = res.text().await.unwrap();
        assert!(text.contains(needle), "{path} holds {needle}");
    }
}

/// A device linked through the sandbox's control routes (the sandbox function asks the
/// worker), then what only its session answers, asked of the worker by the devices
/// function: groups, profiles, a peer's presence, what WhatsApp received.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_routes_are_answered_by_the_worker_through_the_lambdas() {
    let stack = shared();
    let c = stack.client();
    let app = c.create_app(None).await;
    let t = Some(app.token.as_str());
    let (_, id) = c.create_device(&app.token, "session").await;
    // Before it is connected: decided from the device record, without asking.
    let a = c
        .call("GET", &format!("/devices/{id}/groups"), t, None)
        .await;
    assert_eq!(a.status, 409, "{}", a.body);
    assert_eq!(a.body["error"]["code"], "device_not_connected");
    c.wait_for_device(&app.token, &id, |d| d["status"] == "qr_generated")
        .await;
    let device = c.connect_device(&app.token, &id, "15551230001").await;
    assert_eq!(device["wa_number"], "15551230001", "{device}");

    let a = c
        .call("GET", &format!("/devices/{id}/groups"), t, None)
        .await;
    assert_eq!(a.status, 200, "{}\n{}", a.body, stack.logs());
    assert_eq!(stack.api_log_entry(&a)["function"], "DevicesFunction");
    let jids: Vec<&str> = a.body["data"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["jid"].as_str().unwrap())
        .collect();
    assert!(jids.contains(&"120363000000000403@g.us"), "{}", a.body);
    assert!(jids.contains(&"120363000000000504@g.us"), "{}", a.body);
    assert_eq!(a.body["data"]["count"], jids.len());
    let a = c
        .call(
            "GET",
            &format!("/devices/{id}/profile?jid=120363000000000403@g.us"),
            t,
            None,
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["data"]["profile"]["type"], "group");
    let a = c
        .call(
            "GET",
            &format!("/devices/{id}/profile?jid=%2B15550001111"),
            t,
            None,
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["data"]["profile"]["type"], "contact");
    assert_eq!(a.body["data"]["profile"]["phone_number"], "15550001111");

    // A peer's presence: asked for (subscribed), simulated, then cached.
    let presence = format!("/devices/{id}/presence?jid=15550001111");
    let a = c.call("GET", &presence, t, None).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let a = c
        .call(
            "POST",
            &format!("/sandbox/devices/{id}/presence"),
            t,
            Some(json!({"jid": "15550001111", "presence": "available", "chat_state": "composing"})),
        )
        .await;
    assert_eq!(a.status, 202, "{}", a.body);
    assert_eq!(a.body["data"], json!({"accepted": true}));
    assert_eq!(stack.api_log_entry(&a)["function"], "SandboxFunction");
    let deadline = Instant::now() + SETTLES_WITHIN;
    loop {
        let a = c.call("GET", &presence, t, None).await;
        assert_eq!(a.status, 200, "{}", a.body);
        if a.body["data"]["presence"]["presence"] == "available" {
            assert_eq!(a.body["data"]["presence"]["chat_state"], "composing");
            break;
        }
        assert!(Instant::now() < deadline, "never available: {}", a.body);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // A send, then what the simulated WhatsApp received.
    let a = c
        .call(
            "POST",
            &format!("/devices/{id}/messages"),
            t,
            Some(json!({"to": "15550001111", "text": "through the stack"})),
        )
        .await;
    assert!(a.status == 200 || a.status == 202, "{}", a.body);
    let mid = str_at(&a.body, "/data/message/message_id");
    let deadline = Instant::now() + SETTLES_WITHIN;
    loop {
        let a = c
            .call("GET", &format!("/sandbox/devices/{id}/sent"), t, None)
            .await;
        assert_eq!(a.status, 200, "{}", a.body);
        if a.body["data"]["sent"]
            .as_array()
            .is_some_and(|s| s.iter().any(|r| r["message_id"] == mid.as_str()))
        {
            break;
        }
        assert!(Instant::now() < deadline, "never received: {}", a.body);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Conversation actions through the messages function and the worker: an edit and a
    // revoke of the send, a reaction to and a read receipt for an inbound message.
    let deadline = Instant::now() + SETTLES_WITHIN;
    while c
        .call("GET", &format!("/devices/{id}/messages/{mid}"), t, None)
        .await
        .body["data"]["message"]["status"]
        != "sent"
    {
        assert!(Instant::now() < deadline, "{mid} never sent");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let a = c
        .call(
            "PATCH",
            &format!("/devices/{id}/messages/{mid}"),
            t,
            Some(json!({"text": "through the stack, edited"})),
        )
        .await;
    assert_eq!(a.status, 200, "{}\n{}", a.body, stack.logs());
    assert_eq!(stack.api_log_entry(&a)["function"], "MessagesFunction");
    assert!(
        a.body["data"]["message"]["edited_at"].is_string(),
        "{}",
        a.body
    );
    let a = c
        .call(
            "POST",
            &format!("/devices/{id}/messages/{mid}/revoke"),
            t,
            None,
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(stack.api_log_entry(&a)["function"], "MessagesFunction");
    assert_eq!(a.body["data"]["message"]["status"], "revoked");
    let a = c
        .call(
            "POST",
            &format!("/sandbox/devices/{id}/inbound"),
            t,
            Some(json!({"from": "15550001111", "text": "hello from the peer"})),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let inbound = str_at(&a.body, "/data/message/message_id");
    let a = c
        .call(
            "POST",
            &format!("/devices/{id}/messages"),
            t,
            Some(json!({"to": "15550001111", "type": "reaction", "message_id": inbound, "emoji": "👍"})),
        )
        .await;
    assert!(a.status == 200 || a.status == 202, "{}", a.body);
    let a = c
        .call(
            "POST",
            &format!("/devices/{id}/messages/{inbound}/read"),
            t,
            None,
        )
        .await;
    assert_eq!(a.status, 204, "{}", a.body);
    assert_eq!(stack.api_log_entry(&a)["function"], "MessagesFunction");
    let deadline = Instant::now() + SETTLES_WITHIN;
    loop {
        let a = c
            .call("GET", &format!("/sandbox/devices/{id}/sent"), t, None)
            .await;
        let kinds: Vec<Value> = a.body["data"]["sent"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| {
                r["target_message_id"] == mid.as_str() || r["target_message_id"] == inbound.as_str()
            })
            .map(|r| r["type"].clone())
            .collect();
        if kinds.len() == 4 {
            assert_eq!(
                kinds,
                [
                    json!("edit"),
                    json!("revoke"),
                    json!("reaction"),
                    json!("read")
                ]
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "actions never all received: {}",
            a.body
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // A contacts check and group changes through the devices function and the worker,
    // the worker's refusal (not an admin) answered as it is.
    let a = c
        .call(
            "POST",
            &format!("/devices/{id}/contacts/check"),
            t,
            Some(json!({"phone_numbers": ["+15551230002", "15550001234"]})),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(stack.api_log_entry(&a)["function"], "DevicesFunction");
    let on: Vec<&Value> = a.body["data"]["contacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["on_whatsapp"])
        .collect();
    assert_eq!(on, [&json!(true), &json!(false)], "{}", a.body);
    let a = c
        .call(
            "POST",
            &format!("/devices/{id}/groups"),
            t,
            Some(json!({"subject": "Stack", "participants": ["15551230002"]})),
        )
        .await;
    assert_eq!(a.status, 201, "{}\n{}", a.body, stack.logs());
    assert_eq!(stack.api_log_entry(&a)["function"], "DevicesFunction");
    let group = str_at(&a.body, "/data/group/jid");
    let a = c
        .call(
            "POST",
            &format!("/devices/{id}/groups/{group}/participants"),
            t,
            Some(json!({"action": "add", "participants": ["15551230003", "15551230002"]})),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let results = &a.body["data"]["results"];
    assert_eq!(
        (&results[0]["ok"], &results[1]["error"]["code"]),
        (&json!(true), &json!("conflict")),
        "{}",
        a.body
    );
    let a = c
        .call(
            "PATCH",
            &format!("/devices/{id}/groups/120363000000000403@g.us"),
            t,
            Some(json!({"subject": "not mine"})),
        )
        .await;
    assert_eq!(a.status, 403, "{}", a.body);
    assert_eq!(a.body["error"]["code"], "forbidden");

    // The sandbox's own errors come back as they are: no valid QR to scan.
    let a = c
        .call(
            "POST",
            &format!("/sandbox/devices/{id}/scan"),
            t,
            Some(json!({"wa_number": "15551230001"})),
        )
        .await;
    assert_eq!(a.status, 409, "{}", a.body);
    assert_eq!(a.body["error"]["code"], "conflict");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_driven_send_for_an_unknown_device_is_dead_lettered_with_its_reason() {
    let stack = shared();
    let c = stack.client();
    let app = c.create_app(None).await;
    let device = uuid::Uuid::new_v4().to_string();
    let job = json!({
        "app_id": app.app_id,
        "device_id": device,
        "idempotency_key": "dead-1",
        "message": {"to": "15550002222", "text": "to nobody"},
    })
    .to_string();
    c.put_send(&job).await;
    let dead = c
        .wait_in_queue("SendsDeadLetterQueue", |m| {
            m.body().is_some_and(|b| b.contains(&device))
        })
        .await;
    assert_eq!(dead.body(), Some(job.as_str()));
    let reason = crate::aws::dead_letter_reason(&dead);
    assert!(reason.starts_with("not_found"), "reason: {reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_the_limit_get_the_envelope_and_over_lambdas_limit_api_gateways_answer() {
    let stack = shared();
    let c = stack.client();
    let app = c.create_app(None).await;
    let path = format!("/devices/{}/messages", uuid::Uuid::new_v4());
    let body = |size: usize| {
        let text = "a".repeat(size);
        format!("{{\"to\": \"15550001111\", \"text\": \"{text}\"}}")
    };
    // 7 MB: over Lambda's 6 MB invocation limit, so the function is never invoked.
    let a = c.post_raw(&path, &app.token, body(7_000_000)).await;
    assert_eq!(a.status, 413, "{}", a.body);
    assert_eq!(a.body, json!({"message": "Request Entity Too Large"}));
    let entry = stack.api_log_entry(&a);
    assert_eq!(entry["integrationError"], "payload over Lambda's limit");

    // 5.5 MB and 6,000,000 bytes: under Lambda's limit, over WA_MAX_BODY_BYTES (5,000,000
    // under Lambda): the function answers 413 request_too_large in the envelope.
    for size in [5_500_000, 6_000_000] {
        let a = c.post_raw(&path, &app.token, body(size)).await;
        assert_eq!(a.status, 413, "{size}: {}", a.body);
        assert_eq!(a.body["error"]["code"], "request_too_large", "{size}");
        assert!(
            a.body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("url")),
            "{}",
            a.body
        );
        assert_eq!(
            a.body["request_id"].as_str(),
            a.headers["x-request-id"].to_str().ok()
        );
        assert_eq!(stack.api_log_entry(&a)["function"], "MessagesFunction");
    }
}

/// Only the apps function verifies tenant JWTs: it gets the secret's ARN alone and reads
/// the key from Secrets Manager at init; the other HTTP functions start without any JWT
/// setting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_apps_function_gets_the_jwt_secrets_arn_and_it_reads_the_key_at_init() {
    let stack = shared();
    let c = stack.client();
    // Both functions answer (they started), the apps function with the key it read.
    let app = c.create_app(None).await;
    let a = c.call("GET", "/devices", Some(&app.token), None).await;
    assert_eq!(a.status, 200, "{}", a.body);

    let jwt_vars = |function: &str| -> Vec<(String, String)> {
        stack
            .function_environment(function)
            .into_iter()
            .filter(|(k, _)| k.starts_with("WA_JWT_"))
            .collect()
    };
    let arn = stack.ready["jwt_secret_arn"].as_str().unwrap().to_owned();
    assert!(arn.starts_with("arn:aws:secretsmanager:"), "{arn}");
    assert_eq!(
        jwt_vars("AppsFunction"),
        [("WA_JWT_SECRET_ARN".to_owned(), arn)]
    );
    assert_eq!(jwt_vars("DevicesFunction"), []);
    // A forged token is still refused: the key is the secret's.
    let forged = format!("{}x", &stack.jwt[..stack.jwt.len() - 1]);
    let a = c.call("GET", "/apps", Some(&forged), None).await;
    assert_eq!(a.status, 401, "{}", a.body);
    assert_eq!(a.body["error"]["code"], "unauthorized");
}

/// The functions write their metrics as CloudWatch Embedded Metric Format records, with the
/// names and labels of `/metrics`, once per invocation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_functions_write_emf_records_with_the_names_of_metrics() {
    let stack = shared();
    let c = stack.client();
    let a = c.call("GET", "/health", None, None).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let deadline = Instant::now() + SETTLES_WITHIN;
    let record = loop {
        let found = stack
            .function_log("DevicesFunction")
            .into_iter()
            .find(|l| l["route"] == "/health" && l.get("wa_http_requests_total").is_some());
        if let Some(r) = found {
            break r;
        }
        assert!(Instant::now() < deadline, "no EMF record\n{}", stack.logs());
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let directive = &record["_aws"]["CloudWatchMetrics"][0];
    assert_eq!(directive["Namespace"], stack.ready["stack"], "{record}");
    assert_eq!(
        directive["Dimensions"],
        json!([["method", "route", "status"]]),
        "{record}"
    );
    assert_eq!(
        directive["Metrics"],
        json!([{"Name": "wa_http_requests_total", "Unit": "Count"}]),
        "{record}"
    );
    assert_eq!(
        (&record["method"], &record["status"]),
        (&json!("GET"), &json!("200"))
    );
    assert!(record["_aws"]["Timestamp"].as_u64().is_some(), "{record}");
}

/// The worker's container health check (`wa-worker health`, as the task definition runs
/// it) passes on the heartbeat the running worker keeps in its task volume, and fails on
/// a missing one; the worker writes its EMF records (the gauges of `/metrics` among them)
/// once a minute.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_passes_its_health_check_and_writes_emf_records() {
    let stack = shared();
    let heartbeat = Path::new(stack.ready["state_dir"].as_str().unwrap())
        .join("volumes")
        .join("run")
        .join("heartbeat");
    let health = |file: &Path| {
        Command::new(bin_dir().join("wa-worker"))
            .arg("health")
            .env("WA_HEALTH_FILE", file)
            .output()
            .unwrap()
    };
    let deadline = Instant::now() + SETTLES_WITHIN;
    while !heartbeat.exists() {
        assert!(Instant::now() < deadline, "no heartbeat\n{}", stack.logs());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let ok = health(&heartbeat);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let missing = health(&heartbeat.with_file_name("none"));
    assert!(!missing.status.success());

    // The first records come one interval (60 s) after the start.
    let deadline = Instant::now() + Duration::from_secs(150);
    let record = loop {
        let found = stack
            .worker_log()
            .into_iter()
            .find(|l| l.get("_aws").is_some() && l.get("wa_queue_depth").is_some());
        if let Some(r) = found {
            break r;
        }
        assert!(
            Instant::now() < deadline,
            "no EMF record of the worker\n{}",
            stack.logs()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(record["queue"], "commands", "{record}");
    assert_eq!(
        record["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
        json!([["queue", "state"]]),
        "{record}"
    );
}

/// Inbound media on the Lambda stack: an image injected through the sandbox's inbound route
/// (the sandbox function asks the worker, which stores it in the stack's media bucket) is
/// announced by its `message` webhook with its `media_path`, and `GET /media` through the
/// HTTP API (the devices function) answers its bytes. A file over 4 MiB is answered with
/// 302 Found to a presigned URL of moto's S3 that serves the bytes. The inbound route hands
/// its body to the worker in one SQS message (at most 256 KiB: 413 `request_too_large`
/// beyond), so the large file is put into the bucket under its path as the worker puts a
/// downloaded one. Another App's token gets 404 for both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_media_are_announced_and_served_or_redirected_through_the_http_api() {
    use wa_core::media::MediaStore;

    let stack = shared();
    let c = stack.client();
    let Hooked {
        receiver,
        app,
        device,
        _dir,
    } = c.hooked_device("media", "15551230002").await;
    let inbound = async |bytes: &[u8]| {
        let data = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, bytes);
        c.call(
            "POST",
            &format!("/sandbox/devices/{device}/inbound"),
            Some(&app.token),
            Some(json!({"from": "15550004444", "type": "image", "mime_type": "image/jpeg", "data_base64": data})),
        )
        .await
    };
    // Redirects are checked here, not followed.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let get_media = |path: &str, token: &str| {
        http.get(stack.url("/media"))
            .query(&[("path", path)])
            .bearer_auth(token)
            .send()
    };

    let small = crate::media::jpeg(100_000);
    let a = inbound(&small).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let message_id = str_at(&a.body, "/data/message/message_id");
    let path = a.body["data"]["message"]["media_path"]
        .as_str()
        .unwrap_or_else(|| panic!("stored with its media: {}", a.body))
        .to_owned();
    let got = receiver
        .wait("the inbound message's webhook", SETTLES_WITHIN, |got| {
            got.iter().any(|r| {
                r["body"]["event"] == "message" && r["body"]["payload"]["message_id"] == message_id
            })
        })
        .await;
    let hooked = got
        .iter()
        .find(|r| r["body"]["payload"]["message_id"] == message_id)
        .unwrap();
    assert_eq!(hooked["verified"], true, "{hooked}");
    assert_eq!(hooked["body"]["payload"]["media_path"], path, "{hooked}");
    assert_eq!(hooked["body"]["payload"]["mime_type"], "image/jpeg");
    let res = get_media(&path, &app.token).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "image/jpeg");
    assert_eq!(
        res.headers()["content-length"].to_str().unwrap(),
        small.len().to_string()
    );
    assert!(res.bytes().await.unwrap().as_ref() == small.as_slice());

    // Over 256 KiB the inbound route cannot hand the image to the worker.
    let a = inbound(&crate::media::jpeg(300 * 1024)).await;
    assert_eq!(a.status, 413, "{}", a.body);
    assert_eq!(a.body["error"]["code"], "request_too_large");

    let bucket = str_at(&stack.ready, "/resources/MediaBucket/name");
    let s3 = wa_media::S3Media::emulator_client(&stack.moto, wa_testkit::moto::REGION);
    let store = wa_media::S3Media::new(s3, bucket);
    let large_path = wa_core::media::MediaPath::inbound(
        app.app_id.parse().unwrap(),
        device.parse().unwrap(),
        "3EB0LARGE",
        "image/jpeg",
    );
    let large = crate::media::jpeg(4 * 1024 * 1024 + 300_000);
    store.put(&large_path, &large).await.unwrap();
    let res = get_media(&large_path, &app.token).await.unwrap();
    assert_eq!(res.status(), 302);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.starts_with(&stack.moto),
        "a URL of moto: {location}"
    );
    assert!(location.contains("X-Amz-Expires=300"), "{location}");
    let res = http.get(&location).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.bytes().await.unwrap().as_ref() == large.as_slice());

    let other = c.create_app(None).await;
    for p in [path.as_str(), &*large_path] {
        let res = get_media(p, &other.token).await.unwrap();
        assert_eq!(res.status(), 404, "{p}");
        let v: Value = serde_json::from_slice(&res.bytes().await.unwrap()).unwrap();
        assert_eq!(v["error"]["code"], "not_found", "{v}");
    }
}

/// A send that may succeed later (its device is not connected) is retried after the
/// documented delay (`RETRY_DELAY`, 30 s), not after the queue's visibility timeout (180
/// s): the function sets the message's visibility before it reports the failure. The wait
/// for the second attempt ends well before 180 s, so only a run that ignores the delay
/// fails it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_event_driven_send_comes_back_after_the_retry_delay() {
    let stack = shared();
    let c = stack.client();
    let app = c.create_app(None).await;
    let (_, device) = c.create_device(&app.token, "not-yet").await;
    let job = json!({
        "app_id": app.app_id,
        "device_id": device,
        "idempotency_key": "retry-later-1",
        "message": {"to": "15550002222", "text": "once it is linked"},
    })
    .to_string();
    let sent = stack
        .sqs()
        .send_message()
        .queue_url(stack.queue_url("SendsQueue"))
        .message_body(&job)
        .send()
        .await
        .unwrap();
    let id = sent.message_id().unwrap().to_owned();
    let attempts = || -> Vec<u64> {
        stack
            .function_log("SendsFunction")
            .iter()
            .filter(|l| l["sqs_message_id"] == id.as_str())
            .filter_map(|l| l["receive_count"].as_u64())
            .collect()
    };
    let wait_for = |count: u64, within: Duration| {
        let deadline = Instant::now() + within;
        async move {
            loop {
                let seen = attempts();
                if seen.contains(&count) {
                    return Instant::now();
                }
                assert!(
                    Instant::now() < deadline,
                    "attempt {count} never came (seen {seen:?})\n{}",
                    stack.logs()
                );
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    };
    let first = wait_for(1, SETTLES_WITHIN).await;
    let line = stack
        .function_log("SendsFunction")
        .into_iter()
        .find(|l| l["sqs_message_id"] == id.as_str())
        .unwrap();
    assert_eq!(line["retry_in_secs"], 30, "{line}");
    assert!(
        line["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("device_not_connected")),
        "{line}"
    );
    let second = wait_for(2, Duration::from_secs(150)).await;
    assert!(
        second - first >= Duration::from_secs(20),
        "retried after {:?}, sooner than the delay",
        second - first
    );
}

/// A waited send through the messages function is answered `sent` and announced by a signed
/// webhook; an event-driven send put twice with one key (a producer's retry) is sent once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waited_send_is_announced_and_an_event_driven_send_is_sent_once_per_key() {
    let stack = shared();
    let c = stack.client();
    let Hooked {
        receiver,
        app,
        device,
        _dir,
    } = c.hooked_device("sends", "15551230003").await;

    let a = c
        .call(
            "POST",
            &format!("/devices/{device}/messages"),
            Some(&app.token),
            Some(json!({"to": "15550001111", "text": "waited"})),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["data"]["message"]["status"], "sent", "{}", a.body);
    let waited = str_at(&a.body, "/data/message/message_id");

    let job = json!({
        "app_id": app.app_id,
        "device_id": device,
        "idempotency_key": "order-42",
        "message": {"to": "15550002222", "type": "text", "text": "over sqs"},
    })
    .to_string();
    c.put_send(&job).await;
    c.put_send(&job).await;

    let got = receiver
        .wait("both sends' webhooks", SETTLES_WITHIN, |got| {
            both_sent(got, |_| true, &waited, "over sqs")
        })
        .await;
    assert!(
        got.iter().all(|r| r["verified"] == true),
        "every webhook verifies: {got:?}"
    );
    // One key, one message: both copies of the job are accepted as that message...
    let a = c
        .call(
            "GET",
            &format!("/devices/{device}/messages"),
            Some(&app.token),
            None,
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let over_sqs: Vec<&Value> = a.body["data"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["text"] == "over sqs")
        .collect();
    assert_eq!(over_sqs.len(), 1, "{}", a.body);
    let id = over_sqs[0]["message_id"].as_str().unwrap().to_owned();
    let accepted = || {
        stack
            .function_log("SendsFunction")
            .iter()
            .filter(|l| {
                l["message"] == "event-driven send accepted" && l["message_id"] == id.as_str()
            })
            .count()
    };
    wait_until(
        "the two copies were not both accepted",
        SETTLES_WITHIN,
        || accepted() == 2,
        || format!("{} accepted\n{}", accepted(), stack.logs()),
    )
    .await;
    // ...and the simulated WhatsApp received it once.
    let a = c
        .call(
            "GET",
            &format!("/sandbox/devices/{device}/sent"),
            Some(&app.token),
            None,
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let sent = a.body["data"]["sent"].as_array().unwrap();
    assert_eq!(
        sent.iter()
            .filter(|r| r["message_id"] == id.as_str())
            .count(),
        1,
        "{sent:?}"
    );
}

/// The emulator's own rules (routing, events, batch responses, template resolution),
/// each a pure function with a unit test per row, in scripts/aws_local/test_*.py.
#[test]
fn the_emulators_rules_hold() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts");
    let out = Command::new(python())
        .args([
            "-B",
            "-m",
            "unittest",
            "discover",
            "-s",
            "aws_local",
            "-t",
            ".",
            "-p",
            "test_*.py",
        ])
        .current_dir(dir)
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
