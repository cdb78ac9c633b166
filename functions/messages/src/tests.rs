//! Router tests of sending: every type, validation, the fault table, idempotency,
//! cancellation, pacing; the worker and the sandbox run in-process.

use std::sync::Arc;
use std::time::Duration;

use axum::{Router, body::Body};
use base64::Engine;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use tower::ServiceExt;
use utoipa_axum::router::OpenApiRouter;
use wa_api::Context;
use wa_core::apps::CreateApp;
use wa_core::auth::JwtConfig;

mod actions;

struct Api {
    router: Router,
    ctx: wa_api::AppState,
    token: String,
    device: String,
    _dir: tempfile::TempDir,
    _stop: watch::Sender<bool>,
}

struct Reply {
    status: StatusCode,
    headers: http::HeaderMap,
    body: Value,
    /// The body as it came.
    raw: String,
}

/// A server with one App and one connected sandbox device.
async fn api(send_wait: Duration, rate: f64, burst: u32) -> Api {
    api_first_looking(send_wait, rate, burst, Duration::ZERO).await
}

/// [`api`], whose waited sends first read their message after `first_look`.
async fn api_first_looking(
    send_wait: Duration,
    rate: f64,
    burst: u32,
    first_look: Duration,
) -> Api {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(wa_store::SqliteStore::in_memory().unwrap());
    let queue = Arc::new(wa_queue::LocalQueue::in_memory(wa_worker::MAX_RECEIVES).unwrap());
    let jwt = JwtConfig::new("0123456789abcdef0123456789abcdef", None, None).unwrap();
    let mut ctx = Context::new(store.clone(), queue.clone(), jwt, false);
    let (tx, rx) = mpsc::unbounded_channel();
    let (in_tx, in_rx) = mpsc::unbounded_channel();
    let sandbox = Arc::new(
        wa_provider::sandbox::Sandbox::new(dir.path(), tx, in_tx, Default::default()).unwrap(),
    );
    ctx.sessions = Arc::new(wa_core::session::LocalSessions::new(
        sandbox.clone(),
        Some(sandbox.clone()),
    ));
    ctx.sandbox_routes = true;
    ctx.messages.send_wait = send_wait;
    ctx.messages.first_look = first_look;
    ctx.set_media(Arc::new(wa_media::DirMedia::new(dir.path())));
    let ctx = ctx.into_state();
    let worker = wa_worker::Worker::new(
        store,
        queue,
        sandbox,
        ctx.notifier.clone(),
        dir.path().to_path_buf(),
    )
    .with_pacing(rate, burst);
    let (stop, stop_rx) = watch::channel(false);
    tokio::spawn(Arc::new(worker).run(rx, in_rx, stop_rx));
    let (r, _) = OpenApiRouter::new()
        .merge(crate::router())
        .merge(wa_fn_devices::router())
        .merge(wa_fn_devices::sandbox_router())
        .merge(wa_fn_devices::media_router())
        .split_for_parts();
    let router = wa_api::finish_router(r.with_state(ctx.clone()), 32 << 20, Default::default());
    let c = ctx
        .apps
        .create("acme", CreateApp::named("a"))
        .await
        .unwrap();
    let mut api = Api {
        router,
        ctx,
        token: c.app_token,
        device: String::new(),
        _dir: dir,
        _stop: stop,
    };
    let r = api
        .call("POST", "/devices", json!({"device_name": "main"}), &[])
        .await;
    api.device = r.body["data"]["device"]["device_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = api
        .call(
            "POST",
            &format!("/sandbox/devices/{}/scan", api.device),
            json!({"wa_number": "15551230001"}),
            &[],
        )
        .await;
    assert_eq!(r.body["data"]["device"]["status"], "connected");
    api
}

impl Api {
    async fn call(&self, method: &str, uri: &str, body: Value, headers: &[(&str, &str)]) -> Reply {
        self.call_as(&self.token, method, uri, body, headers).await
    }

    /// `call` with the App token `token`.
    async fn call_as(
        &self,
        token: &str,
        method: &str,
        uri: &str,
        body: Value,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut b = Request::builder()
            .method(method)
            .uri(uri)
            .header("authorization", format!("Bearer {token}"));
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let req = if body.is_null() {
            b.body(Body::empty())
        } else {
            b.header("content-type", "application/json")
                .body(Body::from(body.to_string()))
        }
        .unwrap();
        let res = self.router.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if !body.is_null() {
            assert_eq!(
                body["request_id"],
                headers["x-request-id"].to_str().unwrap(),
                "{body}"
            );
        }
        Reply {
            status,
            headers,
            body,
            raw: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    async fn send(&self, body: Value, headers: &[(&str, &str)]) -> Reply {
        self.call(
            "POST",
            &format!("/devices/{}/messages", self.device),
            body,
            headers,
        )
        .await
    }

    async fn message(&self, id: &str) -> Value {
        let r = self
            .call(
                "GET",
                &format!("/devices/{}/messages/{id}", self.device),
                Value::Null,
                &[],
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.body["data"]["message"].clone()
    }

    async fn wait_message(&self, id: &str, status: &str) -> Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let m = self.message(id).await;
            if m["status"] == status {
                return m;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "message {id} never became {status}: {m}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The id of the device's message with `text`, once it is listed.
    async fn listed(&self, text: &str) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let ms = self.messages().await;
            if let Some(m) = ms.iter().find(|m| m["text"] == text) {
                return m["message_id"].as_str().unwrap().to_owned();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no message {text:?} listed: {ms:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits for the device to show `status`.
    async fn wait_device(&self, status: &str) {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let r = self
                .call(
                    "GET",
                    &format!("/devices/{}", self.device),
                    Value::Null,
                    &[],
                )
                .await;
            if r.body["data"]["device"]["status"] == status {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the device never became {status}: {}",
                r.body
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends `body` under `key`, expects it sent at once, then a receipt moves it on to
    /// `status`. Returns the first answer and the message id.
    async fn sent_then_receipt(&self, body: &Value, key: &str, status: &str) -> (Reply, String) {
        let first = self.send(body.clone(), &[("idempotency-key", key)]).await;
        assert_eq!(first.status, StatusCode::OK, "{}", first.body);
        let id = message_id(&first);
        self.receipt(&id, status).await;
        self.wait_message(&id, status).await;
        (first, id)
    }

    /// Reports a receipt of `id` through the sandbox: accepted, applied by the worker.
    async fn receipt(&self, id: &str, status: &str) {
        let r = self
            .call(
                "POST",
                &format!("/sandbox/devices/{}/receipt", self.device),
                json!({"message_id": id, "status": status}),
                &[],
            )
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    }

    /// An incoming message through the sandbox (`body`: `from` and a send's fields).
    async fn inbound(&self, body: Value) -> Reply {
        let uri = format!("/sandbox/devices/{}/inbound", self.device);
        self.call("POST", &uri, body, &[]).await
    }

    /// The device's messages, newest first (one page).
    async fn messages(&self) -> Vec<Value> {
        let r = self
            .call(
                "GET",
                &format!("/devices/{}/messages", self.device),
                Value::Null,
                &[],
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.body["data"]["messages"].as_array().unwrap().clone()
    }

    /// The App of the token.
    async fn app(&self) -> wa_core::apps::App {
        self.ctx
            .store
            .app_by_token_hash(&wa_core::auth::hash_token(&self.token))
            .await
            .unwrap()
            .unwrap()
    }

    async fn sent_log(&self) -> Vec<String> {
        self.sent_records()
            .await
            .iter()
            .map(|s| s["message_id"].as_str().unwrap().to_owned())
            .collect()
    }

    /// What the simulated WhatsApp received from the device, in order, with every field.
    async fn sent_records(&self) -> Vec<Value> {
        let r = self
            .call(
                "GET",
                &format!("/sandbox/devices/{}/sent", self.device),
                Value::Null,
                &[],
            )
            .await;
        r.body["data"]["sent"].as_array().unwrap().clone()
    }
}

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// The id of the message a send answered with.
fn message_id(r: &Reply) -> String {
    r.body["data"]["message"]["message_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no message id: {}", r.body))
        .to_owned()
}

fn code(r: &Reply) -> &str {
    r.body["error"]["code"].as_str().unwrap_or("")
}

const JPEG: &[u8] = &[
    0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10, b'J', b'F', b'I', b'F', 0, 1,
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_type_is_sent() {
    let api = api(Duration::from_secs(10), 0.0, 1).await;
    let bodies = [
        json!({"to": "+15550001111", "text": "hello"}),
        json!({"to": "15550001111@s.whatsapp.net", "type": "image", "mime_type": "image/jpeg", "data_base64": b64(JPEG), "caption": "pic"}),
        json!({"to": "100000000000001@lid", "type": "video", "mime_type": "video/mp4", "data_base64": b64(b"\0\0\0\x18ftypmp42\0\0\0\0")}),
        json!({"to": "15550001111", "type": "audio", "mime_type": "audio/ogg", "data_base64": b64(b"OggS\0\x02\0\0"), "ptt": true}),
        json!({"to": "15550001111", "type": "document", "mime_type": "application/pdf", "data_base64": b64(b"%PDF-1.4\n"), "file_name": "a.pdf"}),
        json!({"to": "15550001111", "type": "sticker", "mime_type": "image/webp", "data_base64": b64(b"RIFF\x10\0\0\0WEBPVP8 ")}),
        json!({"to": "120363000000000001@g.us", "type": "location", "latitude": 1.5, "longitude": 2.5, "name": "Here"}),
        json!({"to": "15550001111", "type": "contact", "contact_name": "Bob", "vcard": "BEGIN:VCARD\nVERSION:3.0\nFN:Bob\nEND:VCARD"}),
    ];
    let mut ids = Vec::new();
    for body in bodies {
        let r = api.send(body.clone(), &[]).await;
        assert_eq!(r.status, StatusCode::OK, "{body} -> {}", r.body);
        let m = &r.body["data"]["message"];
        assert_eq!(m["status"], "sent");
        assert_eq!(
            m["type"],
            body.get("type").cloned().unwrap_or(json!("text"))
        );
        assert_eq!(m["attempts"], 1);
        assert!(m["sent_at"].is_string() && m["error"].is_null());
        assert!(m["message_id"].as_str().unwrap().starts_with("3EB0"));
        ids.push(m["message_id"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        api.sent_log().await,
        ids,
        "WhatsApp got each once, in order, under our ids"
    );
    let one = api.message(&ids[0]).await;
    assert_eq!(one["to"], "15550001111@s.whatsapp.net");
    assert_eq!(one["text"], "hello");
    let r = api
        .call(
            "GET",
            &format!("/devices/{}/messages?limit=3", api.device),
            Value::Null,
            &[],
        )
        .await;
    assert_eq!(r.body["data"]["count"], 3);
    assert_eq!(
        r.body["data"]["messages"][0]["message_id"],
        ids[7].as_str(),
        "newest first"
    );
    let cursor = r.body["data"]["next_cursor"].as_str().unwrap().to_owned();
    let r2 = api
        .call(
            "GET",
            &format!("/devices/{}/messages?limit=3&cursor={cursor}", api.device),
            Value::Null,
            &[],
        )
        .await;
    assert_eq!(
        r2.body["data"]["messages"][0]["message_id"],
        ids[4].as_str()
    );
    let r = api
        .call(
            "GET",
            &format!("/devices/{}/messages?cursor=zzz", api.device),
            Value::Null,
            &[],
        )
        .await;
    assert_eq!(r.body["error"]["details"]["field"], "cursor");
    let r = api
        .call(
            "GET",
            &format!("/devices/{}/messages/NOPE123", api.device),
            Value::Null,
            &[],
        )
        .await;
    assert_eq!((r.status, code(&r)), (StatusCode::NOT_FOUND, "not_found"));
    let r = api
        .call(
            "GET",
            &format!("/devices/{}/messages/bad%20id", api.device),
            Value::Null,
            &[],
        )
        .await;
    assert_eq!(r.body["error"]["details"]["field"], "message_id");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validation_names_fields() {
    let api = api(Duration::from_secs(10), 0.0, 1).await;
    for (body, field) in [
        (json!({"text": "x"}), "to"),
        (json!({"to": "nope", "text": "x"}), "to"),
        (json!({"to": "15550001111", "type": "gif"}), "type"),
        (
            json!({"to": "15550001111", "type": "image", "mime_type": "image/png", "data_base64": b64(JPEG)}),
            "data_base64",
        ),
        (
            json!({"to": "15550001111", "type": "image", "mime_type": "image/jpeg", "data_base64": "!!!"}),
            "data_base64",
        ),
        (
            json!({"to": "15550001111", "type": "image", "mime_type": "text/html", "url": "https://example.com/x"}),
            "mime_type",
        ),
        (
            json!({"to": "15550001111", "type": "location", "latitude": 100, "longitude": 0}),
            "latitude",
        ),
        (
            json!({"to": "15550001111", "type": "contact", "contact_name": "B"}),
            "vcard",
        ),
        (
            json!({"to": "15550001111", "text": "x", "bogus": 1}),
            "bogus",
        ),
    ] {
        let r = api.send(body.clone(), &[]).await;
        assert_eq!(
            (r.status, code(&r)),
            (StatusCode::BAD_REQUEST, "validation_error"),
            "{body}"
        );
        assert_eq!(r.body["error"]["details"]["field"], field, "{body}");
    }
    let r = api
        .send(
            json!({"to": "15550001111", "text": "x"}),
            &[("idempotency-key", &"k".repeat(256))],
        )
        .await;
    assert_eq!(r.body["error"]["details"]["field"], "Idempotency-Key");
    assert!(
        api.sent_log().await.is_empty(),
        "nothing invalid reached WhatsApp"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_table() {
    let api = api(Duration::from_secs(10), 0.0, 1).await;
    let mut failed = Vec::new();
    for (to, status, expected) in [
        ("15550000502", 502, "provider_error"),
        ("15550000503", 503, "whatsapp_connection_lost"),
        ("15550000530", 503, "whatsapp_connection_aborted"),
        ("15550000504", 504, "upstream_timeout"),
        ("120363000000000403@g.us", 403, "group_posting_restricted"),
        ("120363000000000504@g.us", 504, "group_prekey_timeout"),
    ] {
        let r = api.send(json!({"to": to, "text": "x"}), &[]).await;
        assert_eq!(
            (r.status.as_u16(), code(&r)),
            (status, expected),
            "{to}: {}",
            r.body
        );
        let id = r.body["error"]["details"]["message_id"]
            .as_str()
            .unwrap()
            .to_owned();
        let m = api.message(&id).await;
        assert_eq!(m["status"], "failed");
        assert_eq!(m["error"]["code"], expected);
        failed.push(id);
    }
    // group_posting_restricted is final: never retried.
    assert!(api.sent_log().await.is_empty());

    // provider_rate_limit: 429 with Retry-After and the id, then sent after 3 attempts.
    let r = api
        .send(json!({"to": "15550000429", "text": "x"}), &[])
        .await;
    assert_eq!(
        (r.status.as_u16(), code(&r)),
        (429, "provider_rate_limit"),
        "{}",
        r.body
    );
    assert!(
        r.headers["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    let id = r.body["error"]["details"]["message_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(api.message(&id).await["status"], "queued");
    let m = api.wait_message(&id, "sent").await;
    assert_eq!(m["attempts"], 3);
    assert_eq!(api.sent_log().await, vec![id]);
    // The device's queue went through two automatic retries meanwhile: none of the failed
    // sends was tried again (the sandbox logs only successes, the attempts count each try).
    for id in &failed {
        let m = api.message(id).await;
        assert_eq!(
            (&m["status"], &m["attempts"]),
            (&json!("failed"), &json!(1)),
            "{m}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waited_send_looks_first_after_its_first_look() {
    // As where the worker runs in another process: the in-process notification is there
    // too, but the first read waits.
    let first_look = wa_core::send_service::FIRST_LOOK_ELSEWHERE;
    let api = api_first_looking(Duration::from_secs(5), 0.0, 1, first_look).await;
    let started = std::time::Instant::now();
    let r = api
        .send(json!({"to": "15550001111", "text": "x"}), &[])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["data"]["message"]["status"], "sent");
    assert!(started.elapsed() >= first_look, "{:?}", started.elapsed());
    // A wait shorter than the first look still ends with the message as it is then.
    let api = api_first_looking(Duration::from_millis(50), 0.0, 1, first_look).await;
    let r = api
        .send(json!({"to": "15550000999", "text": "slow"}), &[])
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_and_slow_sends() {
    let api = api(Duration::from_millis(300), 0.0, 1).await;
    let r = api
        .send(
            json!({"to": "15550001111", "text": "x"}),
            &[("prefer", "respond-async")],
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert_eq!(r.body["data"]["message"]["status"], "queued");
    let id = r.body["data"]["message"]["message_id"]
        .as_str()
        .unwrap()
        .to_owned();
    api.wait_message(&id, "sent").await;
    // The slow recipient takes 5 s: the caller gets 202 after WA_SEND_WAIT_MS.
    let r = api
        .send(json!({"to": "15550000999", "text": "slow"}), &[])
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let slow = message_id(&r);
    assert!(matches!(
        r.body["data"]["message"]["status"].as_str(),
        Some("queued" | "sending")
    ));
    // Queued behind it (one device's sends go in order), then canceled.
    let r = api
        .send(
            json!({"to": "15550001111", "text": "behind"}),
            &[("prefer", "respond-async")],
        )
        .await;
    let behind = message_id(&r);
    let r = api
        .call(
            "DELETE",
            &format!("/devices/{}/messages/{behind}", api.device),
            Value::Null,
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["data"]["message"]["status"], "canceled");
    let r = api
        .call(
            "DELETE",
            &format!("/devices/{}/messages/{behind}", api.device),
            Value::Null,
            &[],
        )
        .await;
    assert_eq!((r.status, code(&r)), (StatusCode::CONFLICT, "conflict"));
    api.wait_message(&slow, "sent").await;
    // One device's sends go in order: once a send queued after the canceled one is out,
    // the canceled one has had its turn.
    let r = api
        .send(
            json!({"to": "15550001111", "text": "after"}),
            &[("prefer", "respond-async")],
        )
        .await;
    let after = message_id(&r);
    api.wait_message(&after, "sent").await;
    assert_eq!(
        api.sent_log().await,
        vec![id, slow, after],
        "the canceled send never went out"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_callers_get_408_when_canceled_or_disconnected() {
    let api = Arc::new(api(Duration::from_secs(20), 0.0, 1).await);
    // Occupy the device's queue with the slow recipient.
    let r = api
        .send(
            json!({"to": "15550000999", "text": "slow"}),
            &[("prefer", "respond-async")],
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let a = api.clone();
    let waiting = tokio::spawn(async move {
        a.send(json!({"to": "15550001111", "text": "waits"}), &[])
            .await
    });
    // Find the waiting message and cancel it.
    let target = api.listed("waits").await;
    api.call(
        "DELETE",
        &format!("/devices/{}/messages/{target}", api.device),
        Value::Null,
        &[],
    )
    .await;
    let r = waiting.await.unwrap();
    assert_eq!(
        (r.status.as_u16(), code(&r)),
        (408, "request_canceled"),
        "{}",
        r.body
    );
    assert_eq!(r.body["error"]["details"]["message_id"], target.as_str());

    // Disconnecting the device cancels what waits for it.
    let a = api.clone();
    let waiting = tokio::spawn(async move {
        a.send(json!({"to": "15550001111", "text": "waits too"}), &[])
            .await
    });
    // The send waits (its message is listed) when the device disconnects.
    api.listed("waits too").await;
    let r = api
        .call(
            "POST",
            &format!("/devices/{}/disconnect", api.device),
            Value::Null,
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = waiting.await.unwrap();
    assert_eq!(
        (r.status.as_u16(), code(&r)),
        (408, "request_canceled"),
        "{}",
        r.body
    );
    // Sends to a device that is not connected.
    let r = api
        .send(json!({"to": "15550001111", "text": "x"}), &[])
        .await;
    assert_eq!((r.status.as_u16(), code(&r)), (409, "device_not_connected"));
    api.call(
        "POST",
        &format!("/devices/{}/reconnect", api.device),
        Value::Null,
        &[],
    )
    .await;
    api.wait_device("connected").await;
    api.call(
        "POST",
        &format!("/sandbox/devices/{}/drop", api.device),
        json!({"reason": "logged_out"}),
        &[],
    )
    .await;
    let r = api
        .send(json!({"to": "15550001111", "text": "x"}), &[])
        .await;
    assert_eq!((r.status.as_u16(), code(&r)), (409, "logged_out"));
    api.call(
        "DELETE",
        &format!("/devices/{}", api.device),
        Value::Null,
        &[],
    )
    .await;
    let r = api
        .send(json!({"to": "15550001111", "text": "x"}), &[])
        .await;
    assert_eq!((r.status.as_u16(), code(&r)), (410, "device_destroyed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency() {
    let api = Arc::new(api(Duration::from_secs(10), 0.0, 1).await);
    let body = json!({"to": "15550001111", "text": "once"});
    let first = api
        .send(body.clone(), &[("idempotency-key", "order-1")])
        .await;
    assert_eq!(first.status, StatusCode::OK);
    assert!(first.headers.get("idempotent-replayed").is_none());
    let again = api
        .send(body.clone(), &[("idempotency-key", "order-1")])
        .await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!(
        again.body["data"], first.body["data"],
        "the first result, replayed"
    );
    assert_ne!(again.body["request_id"], first.body["request_id"]);
    let other = api
        .send(
            json!({"to": "15550001111", "text": "different"}),
            &[("idempotency-key", "order-1")],
        )
        .await;
    assert_eq!(
        (other.status, code(&other)),
        (StatusCode::CONFLICT, "conflict")
    );
    assert_eq!(other.body["error"]["details"]["field"], "Idempotency-Key");
    assert_eq!(api.sent_log().await.len(), 1);

    // Fifty concurrent requests with one key: one message, one provider send.
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let a = api.clone();
            tokio::spawn(async move {
                a.send(
                    json!({"to": "15550002222", "text": "burst"}),
                    &[("idempotency-key", "burst-key")],
                )
                .await
            })
        })
        .collect();
    let mut ids = std::collections::HashSet::new();
    for t in tasks {
        let r = t.await.unwrap();
        assert!(matches!(r.status.as_u16(), 200 | 202), "{}", r.body);
        ids.insert(
            r.body["data"]["message"]["message_id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    assert_eq!(ids.len(), 1, "one message for one key");
    let id = ids.into_iter().next().unwrap();
    api.wait_message(&id, "sent").await;
    let log = api.sent_log().await;
    assert_eq!(
        log.iter().filter(|m| **m == id).count(),
        1,
        "one provider send"
    );

    // A retryable failure: the same key sends the same message again.
    let r = api
        .send(
            json!({"to": "15550000502", "text": "x"}),
            &[("idempotency-key", "flaky")],
        )
        .await;
    assert_eq!(code(&r), "provider_error");
    let failed_id = r.body["error"]["details"]["message_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = api
        .send(
            json!({"to": "15550000502", "text": "x"}),
            &[("idempotency-key", "flaky")],
        )
        .await;
    assert_eq!(code(&r), "provider_error");
    assert_eq!(
        r.body["error"]["details"]["message_id"],
        failed_id.as_str(),
        "same message, same WhatsApp id"
    );
    assert_eq!(api.message(&failed_id).await["attempts"], 2);
    // A final failure is replayed, not retried.
    let r = api
        .send(
            json!({"to": "120363000000000403@g.us", "text": "x"}),
            &[("idempotency-key", "restricted")],
        )
        .await;
    assert_eq!(code(&r), "group_posting_restricted");
    let r2 = api
        .send(
            json!({"to": "120363000000000403@g.us", "text": "x"}),
            &[("idempotency-key", "restricted")],
        )
        .await;
    assert_eq!(code(&r2), "group_posting_restricted");
    assert_eq!(r2.headers["idempotent-replayed"], "true");
    let mid = r.body["error"]["details"]["message_id"].as_str().unwrap();
    assert_eq!(api.message(mid).await["attempts"], 1);
}

/// The body without its request id, which is the only part of a replay that differs.
fn without_request_id(r: &Reply) -> String {
    let id = r.body["request_id"].as_str().unwrap();
    assert!(r.raw.contains(id), "{}", r.raw);
    r.raw.replace(id, "")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_is_the_first_answer_byte_for_byte_after_the_message_moved_on() {
    let api = api(Duration::from_secs(10), 0.0, 1).await;
    let body = json!({"to": "15550001111", "text": "kept"});
    let key = [("idempotency-key", "kept-1")];
    let (first, _) = api.sent_then_receipt(&body, "kept-1", "read").await;
    let again = api.send(body.clone(), &key).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!(again.body["data"]["message"]["status"], "sent");
    assert_eq!(without_request_id(&again), without_request_id(&first));

    // A final failure, replayed.
    let body = json!({"to": "120363000000000403@g.us", "text": "x"});
    let key = [("idempotency-key", "kept-2")];
    let first = api.send(body.clone(), &key).await;
    assert_eq!(code(&first), "group_posting_restricted");
    let again = api.send(body, &key).await;
    assert_eq!(again.status, first.status);
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!(without_request_id(&again), without_request_id(&first));
}

/// A key whose record keeps an answer rendered by an earlier version (an HTTP status and a
/// body) is answered from its message's current state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_of_an_earlier_version_is_answered_from_the_message() {
    let api = api(Duration::from_secs(10), 0.0, 1).await;
    let body = json!({"to": "15550001111", "text": "old"});
    let (_, id) = api.sent_then_receipt(&body, "old-1", "delivered").await;
    let app = api.app().await;
    api.ctx
        .store
        .clear_idempotency_response(app.app_id, "old-1")
        .await
        .unwrap();
    api.ctx
        .store
        .set_idempotency_response(app.app_id, "old-1", 200, r#"{"data":{"message":{}}}"#)
        .await
        .unwrap();
    let again = api.send(body, &[("idempotency-key", "old-1")]).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!(again.body["data"]["message"]["message_id"], id.as_str());
    assert_eq!(again.body["data"]["message"]["status"], "delivered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn to_and_from_are_digits_with_an_optional_plus_and_nothing_around() {
    let api = api(Duration::from_secs(10), 0.0, 1).await;
    for to in [
        "15550001111\n",
        " 15550001111",
        "15550001111 ",
        "\t15550001111",
        " 15550001111@s.whatsapp.net",
    ] {
        let r = api.send(json!({"to": to, "text": "x"}), &[]).await;
        assert_eq!(
            (r.status, code(&r)),
            (StatusCode::BAD_REQUEST, "validation_error"),
            "{to:?}: {}",
            r.body
        );
        assert_eq!(r.body["error"]["details"]["field"], "to", "{to:?}");
        let r = api.inbound(json!({"from": to, "text": "x"})).await;
        assert_eq!(
            (r.status, code(&r)),
            (StatusCode::BAD_REQUEST, "validation_error"),
            "{to:?}: {}",
            r.body
        );
        assert_eq!(r.body["error"]["details"]["field"], "from", "{to:?}");
    }
    assert!(api.sent_log().await.is_empty(), "nothing was sent");
    let r = api
        .send(json!({"to": "+15550001111", "text": "x"}), &[])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

/// What the sends consumer does with each outcome of a send.
#[test]
fn sends_consumer_outcomes() {
    use crate::sends::{Outcome, of_send};
    use wa_core::messages::MessageStatus;
    use wa_core::send_service::Outcome as SendOutcome;
    use wa_errors::{ApiError, ErrorCode};
    let m = |status: MessageStatus| {
        let mut m = wa_testkit::fixtures::outbound_text(
            uuid::Uuid::now_v7(),
            uuid::Uuid::now_v7(),
            "x",
            wa_core::time::now(),
        );
        m.status = status;
        m
    };
    let sent = m(MessageStatus::Sent);
    assert_eq!(
        of_send(&SendOutcome::Sent(sent.clone())),
        Outcome::Accepted {
            message_id: sent.message_id
        }
    );
    let queued = m(MessageStatus::Queued);
    assert_eq!(
        of_send(&SendOutcome::Queued(queued.clone())),
        Outcome::Accepted {
            message_id: queued.message_id.clone()
        }
    );
    assert_eq!(
        of_send(&SendOutcome::RateLimited {
            message: queued.clone(),
            error: ApiError::new(ErrorCode::ProviderRateLimit, "slow down"),
            retry_after: Duration::from_secs(3),
        }),
        Outcome::Accepted {
            message_id: queued.message_id
        }
    );
    assert_eq!(
        of_send(&SendOutcome::Failed {
            message: m(MessageStatus::Failed),
            error: ApiError::new(ErrorCode::GroupPostingRestricted, "only admins"),
        }),
        Outcome::Dead("group_posting_restricted: only admins".into())
    );
    assert_eq!(
        of_send(&SendOutcome::Failed {
            message: m(MessageStatus::Canceled),
            error: ApiError::new(ErrorCode::RequestCanceled, "canceled"),
        }),
        Outcome::Retry("request_canceled: canceled".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paced_bursts_wait_instead_of_failing() {
    // 10 sends per second, bursts of 2: a burst of 6 is spread over about 0.4 s.
    let api = api(Duration::from_secs(10), 10.0, 2).await;
    let mut ids = Vec::new();
    for i in 0..6 {
        let r = api
            .send(
                json!({"to": "15550001111", "text": format!("p{i}")}),
                &[("prefer", "respond-async")],
            )
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED);
        ids.push(
            r.body["data"]["message"]["message_id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    for id in &ids {
        api.wait_message(id, "sent").await;
    }
    let sent = api.sent_records().await;
    assert_eq!(sent.len(), 6, "none refused");
    let at = |i: usize| wa_core::time::parse(sent[i]["received_at"].as_str().unwrap()).unwrap();
    // After the burst of 2, four more tokens at 10/s take at least ~0.35 s.
    let spread = (at(5) - at(0)).whole_milliseconds();
    assert!(spread >= 300, "paced: {spread} ms");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_receipts_and_media() {
    let api = api(Duration::from_secs(10), 0.0, 1).await;
    let r = api
        .send(json!({"to": "15550001111", "text": "out"}), &[])
        .await;
    let out = message_id(&r);
    for status in ["delivered", "read"] {
        api.receipt(&out, status).await;
        api.wait_message(&out, status).await;
    }
    // Receipts never move a message backwards.
    api.receipt(&out, "delivered").await;
    // Receipts are applied one at a time, in order: once a later one shows, the backwards
    // one has been applied.
    let r = api
        .send(json!({"to": "15550001111", "text": "later"}), &[])
        .await;
    let later = message_id(&r);
    api.receipt(&later, "delivered").await;
    api.wait_message(&later, "delivered").await;
    assert_eq!(api.message(&out).await["status"], "read");

    let r = api
        .inbound(json!({"from": "915550003333@lid", "text": "hi there"}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let m = &r.body["data"]["message"];
    assert_eq!(
        (m["direction"].as_str(), m["status"].as_str()),
        (Some("inbound"), Some("received"))
    );
    assert_eq!(m["from"], "915550003333@lid");
    assert_eq!(
        m["from_phone"], "15550003333",
        "the @lid sender resolved to its number"
    );
    let r = api.inbound(json!({"from": "15550004444", "type": "image", "mime_type": "image/jpeg", "data_base64": b64(JPEG), "caption": "look"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let path = r.body["data"]["message"]["media_path"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(path.starts_with("media/"));
    let res = api
        .router
        .clone()
        .oneshot(
            Request::get(format!("/media?path={path}"))
                .header("authorization", format!("Bearer {}", api.token))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "image/jpeg");
    assert!(
        res.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment")
    );
    assert_eq!(
        res.into_body().collect().await.unwrap().to_bytes().as_ref(),
        JPEG
    );
    for bad in [
        format!("{path}x"),
        path.replace("media/", "media/../"),
        "media/../../etc/passwd".into(),
    ] {
        let r = api
            .call("GET", &format!("/media?path={bad}"), Value::Null, &[])
            .await;
        assert_eq!(
            (r.status, code(&r)),
            (StatusCode::NOT_FOUND, "not_found"),
            "{bad}"
        );
    }
    // Another App cannot read it.
    let other = api
        .ctx
        .apps
        .create("acme", CreateApp::named("b"))
        .await
        .unwrap();
    let res = api
        .router
        .clone()
        .oneshot(
            Request::get(format!("/media?path={path}"))
                .header("authorization", format!("Bearer {}", other.app_token))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    // History lists both directions.
    let r = api
        .call(
            "GET",
            &format!("/devices/{}/messages", api.device),
            Value::Null,
            &[],
        )
        .await;
    let dirs: Vec<_> = r.body["data"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["direction"].as_str().unwrap().to_owned())
        .collect();
    assert!(dirs.contains(&"inbound".to_owned()) && dirs.contains(&"outbound".to_owned()));
}

#[tokio::test]
async fn event_driven_sends_once_per_key_and_dead_letter_the_hopeless() {
    use crate::sends::{Outcome, consume};
    use wa_core::queue::SENDS;
    let api = api(Duration::from_secs(5), 0.0, 1).await;
    let app = api
        .ctx
        .store
        .app_by_token_hash(&wa_core::auth::hash_token(&api.token))
        .await
        .unwrap()
        .unwrap();
    let q = api.ctx.queue.clone();
    let job = |key: &str, text: &str| {
        json!({
            "app_id": app.app_id,
            "device_id": api.device,
            "idempotency_key": key,
            "message": {"to": "15550001111", "type": "text", "text": text},
        })
        .to_string()
    };
    // The same key twice (a producer's retry): one message.
    for body in [job("k1", "hello"), job("k1", "hello"), job("k2", "second")] {
        q.send(SENDS, None, &body, Duration::ZERO).await.unwrap();
    }
    let hopeless = [
        ("not json".to_owned(), "validation_error"),
        (
            json!({"app_id": app.app_id, "device_id": api.device, "idempotency_key": "k3"})
                .to_string(),
            "validation_error",
        ),
        (
            json!({"app_id": app.app_id, "device_id": uuid::Uuid::now_v7(), "idempotency_key": "k4",
                   "message": {"to": "15550001111", "type": "text", "text": "x"}})
            .to_string(),
            "not_found",
        ),
        (
            json!({"app_id": uuid::Uuid::now_v7(), "device_id": api.device, "idempotency_key": "k5",
                   "message": {"to": "15550001111", "type": "text", "text": "x"}})
            .to_string(),
            "not_found",
        ),
        (job("k6", ""), "message.text"),
        // Messages it names that the device does not have.
        (
            json!({"app_id": app.app_id, "device_id": api.device, "idempotency_key": "k8",
                   "message": {"to": "15550001111", "type": "reaction", "message_id": "3EB0NOPE", "emoji": "👍"}})
            .to_string(),
            "message.message_id",
        ),
        (
            json!({"app_id": app.app_id, "device_id": api.device, "idempotency_key": "k9",
                   "message": {"to": "15550001111", "text": "x", "reply_to": {"message_id": "3EB0NOPE"}}})
            .to_string(),
            "message.reply_to",
        ),
        // The key of an accepted send, reused with another body.
        (job("k1", "changed"), "conflict"),
    ];
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(consume(api.ctx.clone(), q.clone(), stopped));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let sent = loop {
        let r = api
            .call(
                "GET",
                &format!("/devices/{}/messages", api.device),
                Value::Null,
                &[],
            )
            .await;
        let msgs = r.body["data"]["messages"].as_array().unwrap().clone();
        if msgs.len() == 2 && msgs.iter().all(|m| m["status"] == "sent") {
            break msgs;
        }
        assert!(std::time::Instant::now() < deadline, "messages: {msgs:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let keys: Vec<_> = sent.iter().map(|m| m["text"].as_str().unwrap()).collect();
    assert_eq!(keys, ["second", "hello"]);
    for (body, _) in &hopeless {
        q.send(SENDS, None, body, Duration::ZERO).await.unwrap();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let dead = loop {
        let dead = q.dead_letters(SENDS, 20).await.unwrap();
        if dead.len() == hopeless.len() {
            break dead;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "dead letters: {dead:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for (body, why) in &hopeless {
        let d = dead
            .iter()
            .find(|d| &d.body == body)
            .expect("dead-lettered");
        assert!(d.reason.contains(why), "{body}: {}", d.reason);
    }
    assert_eq!(q.depth(SENDS).await.unwrap(), Default::default());
    stop.send(true).unwrap();
    task.await.unwrap();
    // A device that is not connected may be later: retried, not dead-lettered.
    api.call(
        "POST",
        &format!("/devices/{}/disconnect", api.device),
        Value::Null,
        &[],
    )
    .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let outcome = crate::sends::handle(&api.ctx, &job("k7", "later")).await;
        if let Outcome::Retry(why) = &outcome {
            assert!(why.contains("device_not_connected"), "{why}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{outcome:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The sends Lambda's handler on an SQS batch as Lambda delivers it: accepted records
/// succeed, the hopeless one is dead-lettered (and succeeds), the one that may work later
/// gets the retry delay as its visibility and is reported failed so SQS keeps it.
#[tokio::test]
async fn sends_lambda_batch() {
    use wa_core::queue::SENDS;
    let api = api(Duration::from_secs(5), 0.0, 1).await;
    let app = api
        .ctx
        .store
        .app_by_token_hash(&wa_core::auth::hash_token(&api.token))
        .await
        .unwrap()
        .unwrap();
    let q = api.ctx.queue.clone();
    let good = json!({
        "app_id": app.app_id, "device_id": api.device, "idempotency_key": "batch-1",
        "message": {"to": "15550001111", "type": "text", "text": "from a batch"},
    })
    .to_string();
    let hopeless = json!({"app_id": app.app_id}).to_string();
    // The records must be in flight in the queue for the dead-lettering to find them.
    for b in [&good, &hopeless] {
        q.send(SENDS, None, b, Duration::ZERO).await.unwrap();
    }
    let got = q.receive(SENDS, 10, Duration::from_secs(60)).await.unwrap();
    let rec = |id: &str, body: &str| {
        let r = got.iter().find(|r| r.body == body).unwrap();
        json!({
            "messageId": id,
            "receiptHandle": r.receipt,
            "body": body,
            "attributes": {
                "ApproximateReceiveCount": "1",
                "SentTimestamp": "1795618101067",
                "SenderId": "AIDAIO23YVJENQZJOL4VO",
                "ApproximateFirstReceiveTimestamp": "1795618101068"
            },
            "messageAttributes": {},
            "md5OfBody": "e4e68fb7bd0e697a0ae8f1bb342846b3",
            "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:sends",
            "awsRegion": "us-east-1"
        })
    };
    let event = json!({"Records": [rec("m-good", &good), rec("m-dead", &hopeless)]});
    let event = serde_json::from_value(event).expect("an SQS event");
    let res = crate::sends::handle_batch(&api.ctx, &*q, event).await;
    assert!(res.batch_item_failures.is_empty(), "{res:?}");
    // The accepted record became one message, under its key.
    let messages = api.messages().await;
    let accepted: Vec<_> = messages
        .iter()
        .filter(|m| m["idempotency_key"] == "batch-1")
        .collect();
    assert_eq!(accepted.len(), 1, "{messages:?}");
    assert_eq!(accepted[0]["text"], "from a batch");
    assert_eq!(accepted[0]["direction"], "outbound");
    let dead = q.dead_letters(SENDS, 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert!(
        dead[0].reason.contains("validation_error"),
        "{}",
        dead[0].reason
    );

    // The device goes away: the record may succeed later, SQS keeps it.
    api.call(
        "POST",
        &format!("/devices/{}/disconnect", api.device),
        Value::Null,
        &[],
    )
    .await;
    let later = json!({
        "app_id": app.app_id, "device_id": api.device, "idempotency_key": "batch-2",
        "message": {"to": "15550001111", "type": "text", "text": "later"},
    })
    .to_string();
    let log = RetryLog::default();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let event = serde_json::from_value(json!({"Records": [{
            "messageId": "m-later", "receiptHandle": "r", "body": later,
            "attributes": {"ApproximateReceiveCount": "3"}, "messageAttributes": {},
            "eventSource": "aws:sqs", "awsRegion": "us-east-1",
            "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:sends"
        }]}))
        .unwrap();
        let res = crate::sends::handle_batch(&api.ctx, &log, event).await;
        if res.batch_item_failures.len() == 1 {
            assert_eq!(res.batch_item_failures[0].item_identifier, "m-later");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never refused while disconnected"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Its visibility becomes the retry delay first: SQS hands it out again after
    // RETRY_DELAY, not after the queue's visibility timeout.
    assert_eq!(
        log.0.lock().unwrap().last().cloned(),
        Some((SENDS.to_owned(), "r".to_owned(), crate::sends::RETRY_DELAY))
    );
}

/// A queue port that records `retry_after` and refuses everything else: what the sends
/// Lambda asks of SQS for a record it reports failed.
#[derive(Default)]
struct RetryLog(std::sync::Mutex<Vec<(String, String, Duration)>>);

#[async_trait::async_trait]
impl wa_core::queue::Queue for RetryLog {
    async fn send(
        &self,
        _: &str,
        _: Option<&str>,
        _: &str,
        _: Duration,
    ) -> Result<String, wa_core::queue::QueueError> {
        Err(wa_core::queue::QueueError::Backend(
            "not in this test".into(),
        ))
    }
    async fn receive(
        &self,
        _: &str,
        _: usize,
        _: Duration,
    ) -> Result<Vec<wa_core::queue::Received>, wa_core::queue::QueueError> {
        Err(wa_core::queue::QueueError::Backend(
            "not in this test".into(),
        ))
    }
    async fn delete(&self, _: &str, _: &str) -> Result<(), wa_core::queue::QueueError> {
        Err(wa_core::queue::QueueError::Backend(
            "not in this test".into(),
        ))
    }
    async fn retry_after(
        &self,
        queue: &str,
        receipt: &str,
        delay: Duration,
    ) -> Result<(), wa_core::queue::QueueError> {
        self.0
            .lock()
            .unwrap()
            .push((queue.into(), receipt.into(), delay));
        Ok(())
    }
    async fn dead_letters(
        &self,
        _: &str,
        _: usize,
    ) -> Result<Vec<wa_core::queue::DeadLetter>, wa_core::queue::QueueError> {
        Ok(Vec::new())
    }
    async fn depth(&self, _: &str) -> Result<wa_core::queue::Depth, wa_core::queue::QueueError> {
        Ok(Default::default())
    }
}

/// A media `url` with a literal special-purpose address (the IPv6 forms that embed a private
/// IPv4 address or are reserved included) is refused when the send arrives, naming `url`;
/// nothing is stored or queued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_urls_with_special_purpose_literals_are_400() {
    let api = api(Duration::from_secs(10), 0.0, 1).await;
    for (kind, mime) in [("image", "image/jpeg"), ("document", "application/pdf")] {
        for url in [
            "http://127.0.0.1/a.jpg",
            "http://[::127.0.0.1]/a.jpg",
            "http://[64:ff9b::7f00:1]/a.jpg",
            "http://[64:ff9b:1::a00:1]/a.jpg",
            "http://[2002:7f00:1::1]/a.jpg",
            "http://[::ffff:0:7f00:1]/a.jpg",
            "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/a.jpg",
            "http://[fec0::1]/a.jpg",
            "http://[2001:db8::1]/a.jpg",
            "http://169.254.169.254/latest",
        ] {
            let r = api
                .send(
                    json!({"to": "15550001111", "type": kind, "mime_type": mime, "url": url}),
                    &[],
                )
                .await;
            assert_eq!(
                (r.status, code(&r)),
                (StatusCode::BAD_REQUEST, "validation_error"),
                "{url}: {}",
                r.body
            );
            assert_eq!(r.body["error"]["details"]["field"], "url", "{url}");
        }
    }
    let r = api
        .call(
            "GET",
            &format!("/devices/{}/messages", api.device),
            Value::Null,
            &[],
        )
        .await;
    assert_eq!(r.body["data"]["count"], 0, "nothing was stored: {}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_mentions_reactions_and_polls() {
    let api = api(Duration::from_secs(10), 0.0, 1).await;
    let peer = "15550001111@s.whatsapp.net";
    let r = api
        .inbound(json!({"from": "15550001111", "text": "lunch?"}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let inbound = message_id(&r);

    // A reply to an inbound message, with mentions.
    let r = api
        .send(
            json!({"to": "15550001111", "text": "yes @15550002222", "reply_to": {"message_id": inbound}, "mentions": ["+15550002222"]}),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let m = &r.body["data"]["message"];
    assert_eq!(m["reply_to"], json!({"message_id": inbound, "from": peer}));
    assert_eq!(m["mentions"], json!(["15550002222@s.whatsapp.net"]));
    let reply = message_id(&r);
    assert_eq!(api.message(&reply).await["reply_to"]["message_id"], inbound);

    // A reply to the device's own message: its sender is this account.
    let r = api
        .send(
            json!({"to": "15550001111", "text": "again", "reply_to": {"message_id": reply}}),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let own_from = r.body["data"]["message"]["reply_to"]["from"].clone();
    assert!(
        own_from
            .as_str()
            .is_some_and(|f| f.starts_with("15551230001")),
        "{own_from}"
    );
    let again = message_id(&r);

    // A message without either shows them empty.
    let plain = api.message(&again).await;
    let r = api
        .send(json!({"to": "15550001111", "text": "plain"}), &[])
        .await;
    let m = &r.body["data"]["message"];
    assert!(m["reply_to"].is_null() && m["mentions"] == json!([]), "{m}");
    assert_eq!(plain["mentions"], json!([]));

    // A reaction, then its removal.
    let r = api
        .send(
            json!({"to": "15550001111", "type": "reaction", "message_id": inbound, "emoji": "👍"}),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["data"]["message"]["type"], "reaction");
    assert_eq!(r.body["data"]["message"]["text"], "👍");
    let reaction = message_id(&r);
    let r = api
        .send(
            json!({"to": "15550001111", "type": "reaction", "message_id": inbound, "emoji": ""}),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let unreaction = message_id(&r);

    // A poll, replayed under its key: one send.
    let poll = json!({"to": "15550001111", "type": "poll", "question": "Where?", "options": ["Pizza", "Sushi"], "selectable_count": 2});
    let r = api
        .send(poll.clone(), &[("idempotency-key", "poll-1")])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["data"]["message"]["type"], "poll");
    assert_eq!(r.body["data"]["message"]["text"], "Where?");
    let poll_id = message_id(&r);
    let again_r = api.send(poll, &[("idempotency-key", "poll-1")]).await;
    assert_eq!(message_id(&again_r), poll_id);
    assert_eq!(again_r.headers["idempotent-replayed"], "true");

    // Unknown references are refused by field, and nothing reaches WhatsApp.
    let before = api.sent_log().await;
    for (body, field) in [
        (
            json!({"to": "15550001111", "text": "x", "reply_to": {"message_id": "3EB0NOPE"}}),
            "reply_to",
        ),
        (
            json!({"to": "15550001111", "type": "poll", "question": "Q", "options": ["a", "b"], "reply_to": {"message_id": "3EB0NOPE"}}),
            "reply_to",
        ),
        (
            json!({"to": "15550001111", "type": "reaction", "message_id": "3EB0NOPE", "emoji": "👍"}),
            "message_id",
        ),
        (
            json!({"to": "15550001111", "type": "reaction", "message_id": inbound, "emoji": "nope"}),
            "emoji",
        ),
        (
            json!({"to": "15550001111", "text": "x", "reply_to": {"id": inbound}}),
            "reply_to.id",
        ),
        (
            json!({"to": "15550001111", "text": "x", "mentions": ["x"]}),
            "mentions",
        ),
        (
            json!({"to": "15550001111", "type": "poll", "question": "Q", "options": ["a", "a"]}),
            "options",
        ),
        (
            json!({"to": "15550001111", "type": "poll", "question": "Q", "options": ["a", "b"], "selectable_count": -1}),
            "selectable_count",
        ),
    ] {
        let r = api.send(body.clone(), &[]).await;
        assert_eq!(
            (r.status, code(&r)),
            (StatusCode::BAD_REQUEST, "validation_error"),
            "{body}: {}",
            r.body
        );
        assert_eq!(r.body["error"]["details"]["field"], field, "{body}");
    }
    assert_eq!(api.sent_log().await, before);

    // What WhatsApp received, in order, with each action's fields.
    let sent = api.sent_records().await;
    let ids: Vec<_> = sent.iter().map(|s| s["message_id"].clone()).collect();
    let plain_id = &ids[2];
    assert_eq!(
        ids,
        vec![
            json!(reply),
            json!(again),
            plain_id.clone(),
            json!(reaction),
            json!(unreaction),
            json!(poll_id)
        ]
    );
    assert_eq!(
        sent[0]["reply_to"],
        json!({"message_id": inbound, "from": peer})
    );
    assert_eq!(sent[0]["mentions"], json!(["15550002222@s.whatsapp.net"]));
    assert!(sent[2].get("reply_to").is_none() && sent[2].get("mentions").is_none());
    assert_eq!(
        (
            &sent[3]["type"],
            &sent[3]["target_message_id"],
            &sent[3]["emoji"]
        ),
        (&json!("reaction"), &json!(inbound), &json!("👍"))
    );
    assert_eq!(
        sent[4]["emoji"], "",
        "a removal is recorded with its empty emoji"
    );
    assert_eq!(sent[5]["type"], "poll");
    assert_eq!(sent[5]["question"], "Where?");
    assert_eq!(sent[5]["options"], json!(["Pizza", "Sushi"]));
    assert_eq!(sent[5]["selectable_count"], 2);
    assert!(sent[5].get("emoji").is_none());

    // An incoming poll is stored as a poll, with its question and options.
    let r = api
        .inbound(
            json!({"from": "15550001111", "type": "poll", "question": "Q", "options": ["a", "b"]}),
        )
        .await;
    assert_eq!(r.body["data"]["message"]["type"], "poll", "{}", r.body);
    assert_eq!(
        r.body["data"]["message"]["direction"], "inbound",
        "{}",
        r.body
    );
}
