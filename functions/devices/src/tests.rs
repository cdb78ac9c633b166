//! Router tests of /devices and /sandbox: every transition and refusal, through the full
//! middleware stack, with the worker and the sandbox running in-process.

use std::sync::Arc;
use std::time::Duration;

use axum::{Router, body::Body};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use tower::ServiceExt;
use utoipa_axum::router::OpenApiRouter;
use wa_api::Context;
use wa_core::apps::CreateApp;
use wa_core::auth::JwtConfig;

struct Api {
    router: Router,
    ctx: wa_api::AppState,
    _dir: tempfile::TempDir,
    _stop: watch::Sender<bool>,
}

async fn api_with_ttl(qr_ttl: Duration) -> Api {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(wa_store::SqliteStore::in_memory().unwrap());
    let queue = Arc::new(wa_queue::LocalQueue::in_memory(5).unwrap());
    let jwt = JwtConfig::new("0123456789abcdef0123456789abcdef", None, None).unwrap();
    let mut ctx = Context::new(store.clone(), queue.clone(), jwt, false);
    let (tx, rx) = mpsc::unbounded_channel();
    let (in_tx, in_rx) = mpsc::unbounded_channel();
    let sandbox = Arc::new(
        wa_provider::sandbox::Sandbox::new(
            dir.path(),
            tx,
            in_tx,
            wa_provider::sandbox::SandboxOptions {
                qr_ttl,
                reconnect_delay: Duration::from_millis(100),
                ..Default::default()
            },
        )
        .unwrap(),
    );
    ctx.sessions = Arc::new(wa_core::session::LocalSessions::new(
        sandbox.clone(),
        Some(sandbox.clone()),
    ));
    ctx.sandbox_routes = true;
    ctx.devices.link_wait = Duration::from_secs(5);
    let ctx = ctx.into_state();
    let worker = Arc::new(
        wa_worker::Worker::new(
            store,
            queue,
            sandbox.clone(),
            ctx.notifier.clone(),
            dir.path().to_path_buf(),
        )
        .with_sandbox(Some(sandbox)),
    );
    let (stop, stop_rx) = watch::channel(false);
    tokio::spawn(worker.run(rx, in_rx, stop_rx));
    let (r, _) = OpenApiRouter::new()
        .merge(crate::router())
        .merge(crate::sandbox_router())
        .split_for_parts();
    let router = wa_api::finish_router(r.with_state(ctx.clone()), 1 << 20, Default::default());
    Api {
        router,
        ctx,
        _dir: dir,
        _stop: stop,
    }
}

async fn api() -> Api {
    api_with_ttl(Duration::from_secs(60)).await
}

impl Api {
    async fn app(&self, tenant: &str, name: &str) -> (wa_core::apps::App, String) {
        let c = self
            .ctx
            .apps
            .create(tenant, CreateApp::named(name))
            .await
            .unwrap();
        (c.app, c.app_token)
    }

    async fn raw(&self, req: Request<Body>) -> (StatusCode, http::HeaderMap, Vec<u8>) {
        let res = self.router.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.into_body().collect().await.unwrap().to_bytes().to_vec();
        (status, headers, bytes)
    }

    async fn call(
        &self,
        method: &str,
        uri: &str,
        token: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let b = Request::builder()
            .method(method)
            .uri(uri)
            .header("authorization", format!("Bearer {token}"));
        let req = match body {
            Some(v) => b
                .header("content-type", "application/json")
                .body(Body::from(v.to_string())),
            None => b.body(Body::empty()),
        }
        .unwrap();
        let (status, headers, bytes) = self.raw(req).await;
        let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if status.is_client_error() || status.is_server_error() {
            assert_eq!(
                v["request_id"],
                headers["x-request-id"].to_str().unwrap(),
                "{v}"
            );
            assert!(v["error"]["message"].is_string());
        }
        (status, v)
    }

    async fn create(&self, token: &str, name: &str) -> Value {
        let (s, v) = self
            .call(
                "POST",
                "/devices",
                token,
                Some(json!({"device_name": name})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        v["data"]["device"].clone()
    }

    async fn device(&self, token: &str, id: &str) -> Value {
        let (s, v) = self
            .call("GET", &format!("/devices/{id}"), token, None)
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v["data"]["device"].clone()
    }

    async fn scan(&self, token: &str, id: &str, outcome: &str) -> (StatusCode, Value) {
        self.call(
            "POST",
            &format!("/sandbox/devices/{id}/scan"),
            token,
            Some(json!({"wa_number": "15551230001", "outcome": outcome})),
        )
        .await
    }

    /// Polls until the device has `status` (the worker applies events asynchronously).
    async fn wait_status(&self, token: &str, id: &str, status: &str) -> Value {
        for _ in 0..100 {
            let d = self.device(token, id).await;
            if d["status"] == status {
                return d;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "device {id} never reached {status}: {}",
            self.device(token, id).await
        );
    }
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

fn id_of(d: &Value) -> String {
    d["device_id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_lifecycle() {
    let api = api().await;
    let (_, t) = api.app("acme", "a").await;
    let d = api.create(&t, "  main  ").await;
    assert_eq!(d["status"], "qr_generated");
    assert_eq!(d["device_name"], "main");
    assert!(d["qr"]["code"].as_str().unwrap().starts_with("2@"));
    assert!(
        d["qr"]["image"]
            .as_str()
            .unwrap()
            .starts_with("data:image/png;base64,")
    );
    assert_eq!(d["qr"]["expires_at"], d["qr_expires_at"]);
    let id = id_of(&d);

    // QR as JSON, as PNG by Accept and by ?format=png
    let (s, v) = api
        .call("GET", &format!("/devices/{id}/qr"), &t, None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["data"]["qr"]["code"], d["qr"]["code"]);
    for req in [
        Request::get(format!("/devices/{id}/qr"))
            .header("authorization", format!("Bearer {t}"))
            .header("accept", "image/png")
            .body(Body::empty())
            .unwrap(),
        Request::get(format!("/devices/{id}/qr?format=png"))
            .header("authorization", format!("Bearer {t}"))
            .body(Body::empty())
            .unwrap(),
    ] {
        let (s, h, bytes) = api.raw(req).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(h["content-type"], "image/png");
        assert_eq!(&bytes[..4], b"\x89PNG");
    }
    let (s, v) = api
        .call("GET", &format!("/devices/{id}/qr?format=gif"), &t, None)
        .await;
    assert_eq!(
        (s, v["error"]["details"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("format"))
    );

    // A valid QR cannot be replaced.
    let (s, v) = api
        .call("POST", &format!("/devices/{id}/qr"), &t, None)
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::CONFLICT, "qr_reset_not_allowed")
    );

    // Scan: connected.
    let (s, v) = api.scan(&t, &id, "ok").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let d = &v["data"]["device"];
    assert_eq!(d["status"], "connected");
    assert_eq!(d["wa_number"], "15551230001");
    assert!(
        d["wa_device_jid"]
            .as_str()
            .unwrap()
            .starts_with("15551230001:")
    );
    assert!(d["linked_at"].is_string() && d["qr"].is_null());
    let linked_at = d["linked_at"].clone();
    let (s, v) = api
        .call("GET", &format!("/devices/{id}/qr"), &t, None)
        .await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "not_found"));
    let (s, v) = api
        .call("POST", &format!("/devices/{id}/qr"), &t, None)
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::CONFLICT, "qr_reset_not_allowed"),
        "session active"
    );
    let (s, v) = api
        .call(
            "POST",
            &format!("/devices/{id}/pair-code"),
            &t,
            Some(json!({"phone_number": "15551230001"})),
        )
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::CONFLICT, "qr_reset_not_allowed")
    );

    // Presence, profile, groups need the live session.
    let (s, v) = api
        .call(
            "GET",
            &format!("/devices/{id}/presence?jid=15550001111"),
            &t,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["data"]["presence"]["presence"], "unknown");
    assert_eq!(v["data"]["presence"]["jid"], "15550001111@s.whatsapp.net");
    let (s, _) = api
        .call(
            "POST",
            &format!("/sandbox/devices/{id}/presence"),
            &t,
            Some(json!({"jid": "15550001111", "presence": "available", "chat_state": "composing"})),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let mut seen = Value::Null;
    for _ in 0..50 {
        let (_, v) = api
            .call(
                "GET",
                &format!("/devices/{id}/presence?jid=15550001111@s.whatsapp.net"),
                &t,
                None,
            )
            .await;
        seen = v["data"]["presence"].clone();
        if seen["presence"] == "available" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(seen["presence"], "available");
    assert_eq!(seen["chat_state"], "composing");
    let (s, v) = api
        .call("GET", &format!("/devices/{id}/groups"), &t, None)
        .await;
    assert_eq!(s, StatusCode::OK);
    let jids: Vec<_> = v["data"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["jid"].as_str().unwrap().to_owned())
        .collect();
    assert!(jids.contains(&"120363000000000403@g.us".to_owned()));
    assert!(jids.contains(&"120363000000000504@g.us".to_owned()));
    assert_eq!(v["data"]["count"], jids.len());
    let (s, v) = api
        .call(
            "GET",
            &format!("/devices/{id}/profile?jid=120363000000000403@g.us"),
            &t,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["data"]["profile"]["type"], "group");
    let (s, v) = api
        .call(
            "GET",
            &format!("/devices/{id}/profile?jid=%2B15550001111"),
            &t,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["data"]["profile"]["type"], "contact");
    assert_eq!(v["data"]["profile"]["phone_number"], "15550001111");

    // Connection lost: connecting, then connected again by itself; linked_at kept.
    let (s, v) = api
        .call(
            "POST",
            &format!("/sandbox/devices/{id}/drop"),
            &t,
            Some(json!({"reason": "connection_lost"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["data"]["device"]["status"], "connecting");
    assert_eq!(
        v["data"]["device"]["last_error"]["code"],
        "whatsapp_connection_lost"
    );
    let d = api.wait_status(&t, &id, "connected").await;
    assert_eq!(d["linked_at"], linked_at);
    assert!(d["last_error"].is_null());

    // Disconnect keeps credentials; disconnecting again is a no-op; reconnect resumes.
    let (s, v) = api
        .call("POST", &format!("/devices/{id}/disconnect"), &t, None)
        .await;
    assert_eq!(
        (s, v["data"]["device"]["status"].as_str()),
        (StatusCode::OK, Some("disconnected"))
    );
    let (s, v) = api
        .call("POST", &format!("/devices/{id}/disconnect"), &t, None)
        .await;
    assert_eq!(
        (s, v["data"]["device"]["status"].as_str()),
        (StatusCode::OK, Some("disconnected"))
    );
    let (s, v) = api
        .call("GET", &format!("/devices/{id}/groups"), &t, None)
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::CONFLICT, "device_not_connected")
    );
    let (s, v) = api
        .call(
            "GET",
            &format!("/devices/{id}/presence?jid=15550001111"),
            &t,
            None,
        )
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::CONFLICT, "device_not_connected")
    );
    let (s, v) = api
        .call("POST", &format!("/devices/{id}/reconnect"), &t, None)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    api.wait_status(&t, &id, "connected").await;
    let (s, v) = api
        .call("POST", &format!("/devices/{id}/reconnect"), &t, None)
        .await;
    assert_eq!(
        (s, v["data"]["device"]["status"].as_str()),
        (StatusCode::OK, Some("connected"))
    );

    // Logged out from the phone: keys gone, reconnect refused, a new QR relinks.
    let (s, v) = api
        .call(
            "POST",
            &format!("/sandbox/devices/{id}/drop"),
            &t,
            Some(json!({"reason": "logged_out"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["data"]["device"]["status"], "logged_out");
    assert_eq!(v["data"]["device"]["last_error"]["code"], "logged_out");
    let (s, v) = api
        .call("POST", &format!("/devices/{id}/reconnect"), &t, None)
        .await;
    assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "logged_out"));
    let (s, v) = api
        .call("POST", &format!("/devices/{id}/disconnect"), &t, None)
        .await;
    assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "logged_out"));
    let (s, v) = api
        .call("GET", &format!("/devices/{id}/groups"), &t, None)
        .await;
    assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "logged_out"));
    let (s, v) = api
        .call("POST", &format!("/devices/{id}/qr"), &t, None)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["device"]["status"], "qr_generated");
    assert!(v["data"]["device"]["wa_number"].is_null());
    let (s, _) = api.scan(&t, &id, "ok").await;
    assert_eq!(s, StatusCode::OK);

    // Destroy: terminal; every action answers 410; GET still shows it; the name is free.
    let (s, v) = api
        .call("DELETE", &format!("/devices/{id}"), &t, None)
        .await;
    assert_eq!(
        (s, v["data"]["device"]["status"].as_str()),
        (StatusCode::OK, Some("destroyed"))
    );
    for (m, uri, body) in [
        ("DELETE", format!("/devices/{id}"), None),
        ("POST", format!("/devices/{id}/qr"), None),
        ("GET", format!("/devices/{id}/qr"), None),
        ("POST", format!("/devices/{id}/disconnect"), None),
        ("POST", format!("/devices/{id}/reconnect"), None),
        (
            "POST",
            format!("/devices/{id}/pair-code"),
            Some(json!({"phone_number": "15551230001"})),
        ),
        (
            "GET",
            format!("/devices/{id}/presence?jid=15550001111"),
            None,
        ),
        (
            "GET",
            format!("/devices/{id}/profile?jid=15550001111"),
            None,
        ),
        ("GET", format!("/devices/{id}/groups"), None),
        (
            "POST",
            format!("/devices/{id}/chats/15550001111/presence"),
            Some(json!({"state": "composing"})),
        ),
        (
            "PUT",
            format!("/devices/{id}/presence"),
            Some(json!({"presence": "available"})),
        ),
        (
            "POST",
            format!("/devices/{id}/contacts/check"),
            Some(json!({"phone_numbers": ["15550001111"]})),
        ),
        (
            "POST",
            format!("/sandbox/devices/{id}/scan"),
            Some(json!({"wa_number": "15551230001"})),
        ),
        (
            "POST",
            format!("/sandbox/devices/{id}/drop"),
            Some(json!({"reason": "logged_out"})),
        ),
    ] {
        let (s, v) = api.call(m, &uri, &t, body).await;
        assert_eq!(
            (s, code(&v)),
            (StatusCode::GONE, "device_destroyed"),
            "{m} {uri}"
        );
    }
    assert_eq!(api.device(&t, &id).await["status"], "destroyed");
    let again = api.create(&t, "main").await;
    assert_ne!(id_of(&again), id, "ids are never reused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pairing_refusals_leave_last_error() {
    let api = api().await;
    let (_, t) = api.app("acme", "a").await;
    for (outcome, expected) in [
        ("too_many_devices", "too_many_devices"),
        ("client_outdated", "client_outdated"),
    ] {
        let d = api.create(&t, outcome).await;
        let id = id_of(&d);
        let (s, v) = api.scan(&t, &id, outcome).await;
        assert_eq!(s, StatusCode::OK);
        let d = &v["data"]["device"];
        assert_eq!(d["status"], "disconnected", "{v}");
        assert_eq!(d["last_error"]["code"], expected);
        assert!(d["last_error"]["at"].is_string());
        // Never linked: reconnect is refused; a new QR is allowed.
        let (s, v) = api
            .call("POST", &format!("/devices/{id}/reconnect"), &t, None)
            .await;
        assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "logged_out"));
        let (s, v) = api
            .call("POST", &format!("/devices/{id}/qr"), &t, None)
            .await;
        assert_eq!(
            (s, v["data"]["device"]["status"].as_str()),
            (StatusCode::OK, Some("qr_generated"))
        );
        assert!(v["data"]["device"]["last_error"].is_null());
    }
    let (s, v) = api
        .call(
            "POST",
            "/sandbox/devices/00000000-0000-0000-0000-000000000000/scan",
            &t,
            Some(json!({"wa_number": "1555", "outcome": "bogus"})),
        )
        .await;
    assert_eq!(
        (s, v["error"]["details"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("outcome"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qr_expiry() {
    let api = api_with_ttl(Duration::from_secs(1)).await;
    let (_, t) = api.app("acme", "a").await;
    let id = id_of(&api.create(&t, "short").await);
    let d = api.wait_status(&t, &id, "expired").await;
    assert!(d["qr"].is_null() && d["qr_expires_at"].is_null());
    let (s, v) = api
        .call("GET", &format!("/devices/{id}/qr"), &t, None)
        .await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "not_found"));
    let (s, v) = api.scan(&t, &id, "ok").await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::CONFLICT, "conflict"),
        "no valid QR to scan"
    );
    let (s, v) = api
        .call("POST", &format!("/devices/{id}/disconnect"), &t, None)
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::CONFLICT, "device_not_connected")
    );
    let (s, v) = api
        .call("POST", &format!("/devices/{id}/qr"), &t, None)
        .await;
    assert_eq!(
        (s, v["data"]["device"]["status"].as_str()),
        (StatusCode::OK, Some("qr_generated"))
    );
    let (s, v) = api.scan(&t, &id, "ok").await;
    assert_eq!(
        (s, v["data"]["device"]["status"].as_str()),
        (StatusCode::OK, Some("connected"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pair_code_links_by_phone() {
    let api = api().await;
    let (_, t) = api.app("acme", "a").await;
    let id = id_of(&api.create(&t, "by phone").await);
    for bad in [
        json!({}),
        json!({"phone_number": "12"}),
        json!({"phone_number": "0123456789"}),
        json!({"phone_number": 15551230001u64}),
    ] {
        let (s, v) = api
            .call(
                "POST",
                &format!("/devices/{id}/pair-code"),
                &t,
                Some(bad.clone()),
            )
            .await;
        assert_eq!(
            (s, v["error"]["details"]["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some("phone_number")),
            "{bad}"
        );
    }
    let (s, v) = api
        .call(
            "POST",
            &format!("/devices/{id}/pair-code"),
            &t,
            Some(json!({"phone_number": "+15551230001"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let code_str = v["data"]["pair_code"].as_str().unwrap();
    assert_eq!(code_str.len(), 8);
    assert!(v["data"]["expires_at"].is_string());
    api.wait_status(&t, &id, "qr_generated").await;
    let (s, v) = api.scan(&t, &id, "ok").await;
    assert_eq!(
        (s, v["data"]["device"]["status"].as_str()),
        (StatusCode::OK, Some("connected"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ownership_auth_and_validation() {
    let api = api().await;
    let (_, t) = api.app("acme", "a").await;
    let (_, sibling) = api.app("acme", "b").await;
    let (_, stranger) = api.app("evil", "c").await;
    let id = id_of(&api.create(&t, "mine").await);
    for (m, uri) in [
        ("GET", format!("/devices/{id}")),
        ("GET", format!("/devices/{id}/qr")),
        ("POST", format!("/devices/{id}/disconnect")),
        ("DELETE", format!("/devices/{id}")),
    ] {
        let (s, v) = api.call(m, &uri, &sibling, None).await;
        assert_eq!(
            (s, code(&v)),
            (StatusCode::FORBIDDEN, "forbidden"),
            "{m} {uri}"
        );
        let (s, v) = api.call(m, &uri, &stranger, None).await;
        assert_eq!(
            (s, code(&v)),
            (StatusCode::NOT_FOUND, "not_found"),
            "{m} {uri}"
        );
        let (s, v) = api.call(m, &uri, "wa_wrong", None).await;
        assert_eq!(
            (s, code(&v)),
            (StatusCode::UNAUTHORIZED, "invalid_api_key"),
            "{m} {uri}"
        );
    }
    let (_, v) = api.call("GET", "/devices", &sibling, None).await;
    assert_eq!(v["data"]["count"], 0, "lists are per App");
    assert_eq!(
        api.device(&t, &id).await["status"],
        "qr_generated",
        "untouched by the others"
    );
    let (s, v) = api.call("GET", "/devices/not-a-uuid", &t, None).await;
    assert_eq!(
        (s, v["error"]["details"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("device_id"))
    );
    let (s, v) = api
        .call(
            "GET",
            &format!("/devices/{}", uuid::Uuid::now_v7()),
            &t,
            None,
        )
        .await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "not_found"));

    for body in [
        json!({}),
        json!({"device_name": ""}),
        json!({"device_name": "x".repeat(101)}),
        json!({"device_name": 3}),
        json!({"device_name": "a", "extra": 1}),
    ] {
        let (s, v) = api.call("POST", "/devices", &t, Some(body.clone())).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(code(&v), "validation_error");
    }
    let (s, v) = api
        .call("POST", "/devices", &t, Some(json!({"device_name": "mine"})))
        .await;
    assert_eq!(
        (s, code(&v), v["error"]["details"]["field"].as_str()),
        (StatusCode::CONFLICT, "conflict", Some("device_name"))
    );
    let (s, v) = api
        .call(
            "POST",
            "/devices/deploy",
            &t,
            Some(json!({"device_name": "via alias"})),
        )
        .await;
    assert_eq!(
        (s, v["data"]["device"]["status"].as_str()),
        (StatusCode::CREATED, Some("qr_generated"))
    );

    // list: status filter, pagination
    let (s, v) = api.call("GET", "/devices?status=sleeping", &t, None).await;
    assert_eq!(
        (s, v["error"]["details"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("status"))
    );
    let (_, v) = api
        .call("GET", "/devices?status=qr_generated&limit=1", &t, None)
        .await;
    assert_eq!(v["data"]["count"], 1);
    let cursor = v["data"]["next_cursor"].as_str().unwrap().to_owned();
    let (_, v2) = api
        .call(
            "GET",
            &format!("/devices?status=qr_generated&limit=1&cursor={cursor}"),
            &t,
            None,
        )
        .await;
    assert_eq!(v2["data"]["count"], 1);
    assert_ne!(
        v["data"]["devices"][0]["device_id"],
        v2["data"]["devices"][0]["device_id"]
    );
    assert!(v2["data"]["next_cursor"].is_null());
    let (_, v) = api.call("GET", "/devices?status=connected", &t, None).await;
    assert_eq!(v["data"]["count"], 0);

    // presence needs a jid, and a connected device
    let (s, v) = api
        .call("GET", &format!("/devices/{id}/presence"), &t, None)
        .await;
    assert_eq!(
        (s, v["error"]["details"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("jid"))
    );
    let (s, v) = api
        .call("GET", &format!("/devices/{id}/presence?jid=nope"), &t, None)
        .await;
    assert_eq!(
        (s, v["error"]["details"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("jid"))
    );
    let (s, v) = api
        .call(
            "GET",
            &format!("/devices/{id}/presence?jid=15550001111"),
            &t,
            None,
        )
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::CONFLICT, "device_not_connected")
    );
    let (s, v) = api
        .call(
            "POST",
            &format!("/sandbox/devices/{id}/drop"),
            &t,
            Some(json!({"reason": "connection_lost"})),
        )
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::CONFLICT, "device_not_connected")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_the_app_destroys_its_devices() {
    let api = api().await;
    let (app, t) = api.app("acme", "doomed").await;
    let id = id_of(&api.create(&t, "d").await);
    api.ctx.devices.destroy_all_of_app(&app).await.unwrap();
    let d = api
        .ctx
        .store
        .get_device(id.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d.status, wa_core::devices::DeviceStatus::Destroyed);
}

/// The devices Lambda's service answers an API Gateway HTTP API (payload 2.0) event with a
/// base64-flagged empty body: the caller's x-request-id is kept, the error has the envelope.
#[tokio::test]
async fn api_gateway_v2_event() {
    let api = api().await;
    let raw = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/lambda-http/fixtures/apigw-v2-get-device-base64.json"
    ))
    .unwrap();
    let req = lambda_http::request::from_str(&raw).expect("an API Gateway v2 event");
    let app = wa_lambda_http::app(
        crate::router().merge(wa_api::health_router()),
        api.ctx.clone(),
        1 << 20,
    );
    let res = app.oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.headers()["x-request-id"], "caller-chosen-id-1");
    let body: serde_json::Value =
        serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(body["error"]["code"], "invalid_api_key");
    assert_eq!(body["request_id"], "caller-chosen-id-1");
}

/// A query parameter given twice is refused naming it (not the body), and a delivery id that
/// is not a UUID is refused naming `delivery_id`, like every other malformed id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_parameters_and_malformed_delivery_ids_are_named() {
    let api = api().await;
    let (r, _) = OpenApiRouter::new()
        .merge(crate::router())
        .merge(crate::media_router())
        .merge(crate::webhooks_router())
        .split_for_parts();
    let router = wa_api::finish_router(r.with_state(api.ctx.clone()), 1 << 20, Default::default());
    let api = Api { router, ..api };
    let (_, t) = api.app("acme", "a").await;
    for (uri, field) in [
        ("/devices?limit=1&limit=2", "limit"),
        ("/devices?cursor=a&cursor=b", "cursor"),
        ("/devices?status=connected&status=connected", "status"),
        ("/webhooks/deliveries?limit=5&limit=5", "limit"),
        (
            "/webhooks/deliveries?status=failed&status=skipped",
            "status",
        ),
        ("/webhooks/deliveries?cursor=a&cursor=b", "cursor"),
        ("/media?path=a&path=b", "path"),
    ] {
        let (s, v) = api.call("GET", uri, &t, None).await;
        assert_eq!(
            (s, code(&v), v["error"]["details"]["field"].as_str()),
            (StatusCode::BAD_REQUEST, "validation_error", Some(field)),
            "{uri}: {v}"
        );
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("more than once")),
            "{v}"
        );
    }
    for id in [
        "abc",
        "0190a0b000007000800000000000001",
        "zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz",
    ] {
        let (s, v) = api
            .call(
                "POST",
                &format!("/webhooks/deliveries/{id}/retry"),
                &t,
                None,
            )
            .await;
        assert_eq!(
            (s, v["error"]["details"]["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some("delivery_id")),
            "{id}: {v}"
        );
    }
    let unknown = uuid::Uuid::now_v7();
    let (s, v) = api
        .call(
            "POST",
            &format!("/webhooks/deliveries/{unknown}/retry"),
            &t,
            None,
        )
        .await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "not_found"));
}

/// The sandbox's sessions of a device, oldest first: one per link or resume, opened by the
/// worker under its lease's epoch, closed when the session ends there; only the device's
/// App sees them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_sessions_are_listed_oldest_first() {
    let api = api().await;
    let (_, t) = api.app("acme", "a").await;
    let id = id_of(&api.create(&t, "main").await);
    let (s, v) = api.scan(&t, &id, "ok").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let path = format!("/sandbox/devices/{id}/sessions");
    let (s, v) = api.call("GET", &path, &t, None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["count"], 1, "{v}");
    let linked = &v["data"]["sessions"][0];
    assert!(
        linked["worker_id"]
            .as_str()
            .is_some_and(|w| w.starts_with("worker-")),
        "{v}"
    );
    assert_eq!(linked["epoch"], 1);
    assert!(linked["opened_at"].is_string() && linked["closed_at"].is_null());

    // A disconnect closes it; a reconnect opens the next one, under a new epoch.
    let (s, v) = api
        .call("POST", &format!("/devices/{id}/disconnect"), &t, None)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = api
        .call("POST", &format!("/devices/{id}/reconnect"), &t, None)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    api.wait_status(&t, &id, "connected").await;
    let (s, v) = api.call("GET", &path, &t, None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["count"], 2, "{v}");
    let [first, second] = [&v["data"]["sessions"][0], &v["data"]["sessions"][1]];
    assert!(first["closed_at"].is_string(), "{v}");
    assert_eq!(first["opened_at"], linked["opened_at"]);
    assert_eq!(
        (&second["epoch"], &second["worker_id"]),
        (&json!(2), &linked["worker_id"])
    );
    assert!(second["closed_at"].is_null(), "{v}");

    // Another tenant's App: 404; another App of the tenant: 403; a malformed id: 400.
    let (_, stranger) = api.app("globex", "g").await;
    let (s, v) = api.call("GET", &path, &stranger, None).await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "not_found"));
    let (_, sibling) = api.app("acme", "b").await;
    let (s, v) = api.call("GET", &path, &sibling, None).await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "forbidden"));
    let (s, v) = api
        .call("GET", "/sandbox/devices/nope/sessions", &t, None)
        .await;
    assert_eq!(
        (s, v["error"]["details"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("device_id"))
    );
}

/// Typing in a chat and the device's own presence: refused by field, 409 before the device
/// is connected, 403/404 across Apps and tenants, then carried out by the session in order
/// (the sandbox's sent log shows each action with its fields).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typing_and_own_presence() {
    let api = api().await;
    let (_, t) = api.app("acme", "a").await;
    let id = id_of(&api.create(&t, "typist").await);
    let typing = format!("/devices/{id}/chats/%2B15550001111/presence");
    let own = format!("/devices/{id}/presence");
    let field = |v: &Value| v["error"]["details"]["field"].as_str().map(str::to_owned);

    let (s, v) = api
        .call("POST", &typing, &t, Some(json!({"state": "composing"})))
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::CONFLICT, "device_not_connected")
    );
    let (s, v) = api
        .call("PUT", &own, &t, Some(json!({"presence": "available"})))
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::CONFLICT, "device_not_connected")
    );

    let (s, _) = api.scan(&t, &id, "ok").await;
    assert_eq!(s, StatusCode::OK);
    api.wait_status(&t, &id, "connected").await;

    for (method, uri, body, wanted) in [
        ("POST", typing.clone(), json!({"state": "typing"}), "state"),
        ("POST", typing.clone(), json!({}), "state"),
        (
            "POST",
            format!("/devices/{id}/chats/not%20a%20jid/presence"),
            json!({"state": "paused"}),
            "jid",
        ),
        (
            "PUT",
            own.clone(),
            json!({"presence": "online"}),
            "presence",
        ),
        (
            "PUT",
            "/devices/nope/presence".to_owned(),
            json!({"presence": "available"}),
            "device_id",
        ),
    ] {
        let (s, v) = api.call(method, &uri, &t, Some(body.clone())).await;
        assert_eq!(
            (s, code(&v), field(&v).as_deref()),
            (StatusCode::BAD_REQUEST, "validation_error", Some(wanted)),
            "{method} {uri} {body}"
        );
    }
    let (_, sibling) = api.app("acme", "b").await;
    let (_, stranger) = api.app("globex", "g").await;
    for (token, status, wanted) in [
        (&sibling, StatusCode::FORBIDDEN, "forbidden"),
        (&stranger, StatusCode::NOT_FOUND, "not_found"),
    ] {
        let (s, v) = api
            .call("POST", &typing, token, Some(json!({"state": "composing"})))
            .await;
        assert_eq!((s, code(&v)), (status, wanted));
        let (s, v) = api
            .call("PUT", &own, token, Some(json!({"presence": "available"})))
            .await;
        assert_eq!((s, code(&v)), (status, wanted));
    }

    for (method, uri, body) in [
        ("POST", &typing, json!({"state": "composing"})),
        ("POST", &typing, json!({"state": "recording"})),
        ("PUT", &own, json!({"presence": "unavailable"})),
        ("POST", &typing, json!({"state": "paused"})),
    ] {
        let (s, v) = api.call(method, uri, &t, Some(body)).await;
        assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    }
    let (s, v) = api
        .call("GET", &format!("/sandbox/devices/{id}/sent"), &t, None)
        .await;
    assert_eq!(s, StatusCode::OK);
    let seen: Vec<_> = v["data"]["sent"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["type"].as_str().unwrap().to_owned(),
                r["to"].as_str().unwrap().to_owned(),
                r["state"]
                    .as_str()
                    .or(r["presence"].as_str())
                    .unwrap()
                    .to_owned(),
            )
        })
        .collect();
    let chat = "15550001111@s.whatsapp.net";
    let row = |kind: &str, to: &str, what: &str| (kind.to_owned(), to.to_owned(), what.to_owned());
    assert_eq!(
        seen,
        [
            row("chat_presence", chat, "composing"),
            row("chat_presence", chat, "recording"),
            row("presence", "", "unavailable"),
            row("chat_presence", chat, "paused"),
        ]
    );
}

/// The typing and own-presence routes document every refusal they answer.
#[test]
fn presence_routes_document_their_refusals() {
    let (_, doc) = OpenApiRouter::<wa_api::AppState>::new()
        .merge(crate::router())
        .split_for_parts();
    for (path, method) in [
        ("/devices/{device_id}/chats/{jid}/presence", "post"),
        ("/devices/{device_id}/presence", "put"),
    ] {
        let v = serde_json::to_value(&doc.paths.paths[path]).unwrap();
        let mut statuses: Vec<_> = v[method]["responses"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        statuses.sort();
        assert_eq!(
            statuses,
            [
                "204", "400", "401", "403", "404", "409", "410", "502", "503", "504"
            ],
            "{path}"
        );
        assert_eq!(
            v[method]["responses"]["409"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/ErrorResponse",
            "{path}"
        );
    }
}

/// Checking numbers: refused by field (the list, or the bad entry by its index), 409 before
/// the device is connected, 403/404 across Apps and tenants; then the sandbox's answer in
/// the order asked, nothing in `/sent`, and a message from a LID it handed out carries the
/// sender's number.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contacts_check() {
    let api = api().await;
    let (_, t) = api.app("acme", "a").await;
    let id = id_of(&api.create(&t, "checker").await);
    let check = format!("/devices/{id}/contacts/check");
    let numbers = |n: &[&str]| json!({ "phone_numbers": n });
    let field = |v: &Value| v["error"]["details"]["field"].as_str().map(str::to_owned);

    let (s, v) = api
        .call("POST", &check, &t, Some(numbers(&["15551230002"])))
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::CONFLICT, "device_not_connected")
    );
    let (s, _) = api.scan(&t, &id, "ok").await;
    assert_eq!(s, StatusCode::OK);
    api.wait_status(&t, &id, "connected").await;

    let fifty_one = vec!["15551230002"; 51];
    for (uri, body, wanted) in [
        (check.clone(), json!({}), "phone_numbers"),
        (check.clone(), numbers(&[]), "phone_numbers"),
        (check.clone(), numbers(&fifty_one), "phone_numbers"),
        (
            check.clone(),
            json!({"phone_numbers": "15551230002"}),
            "phone_numbers",
        ),
        (check.clone(), numbers(&["abc"]), "phone_numbers[0]"),
        (
            check.clone(),
            numbers(&["15551230002", "+15551230003", "0155512"]),
            "phone_numbers[2]",
        ),
        (
            check.clone(),
            json!({"phone_numbers": ["15551230002", 15551230003u64]}),
            "phone_numbers[1]",
        ),
        (
            check.clone(),
            json!({"phone_numbers": ["15551230002"], "numbers": []}),
            "numbers",
        ),
        (
            "/devices/nope/contacts/check".to_owned(),
            numbers(&["15551230002"]),
            "device_id",
        ),
    ] {
        let (s, v) = api.call("POST", &uri, &t, Some(body.clone())).await;
        assert_eq!(
            (s, code(&v), field(&v).as_deref()),
            (StatusCode::BAD_REQUEST, "validation_error", Some(wanted)),
            "{uri} {body}"
        );
    }
    let (_, sibling) = api.app("acme", "b").await;
    let (_, stranger) = api.app("globex", "g").await;
    let unknown = format!("/devices/{}/contacts/check", uuid::Uuid::now_v7());
    for (uri, token, status, wanted) in [
        (&check, &sibling, StatusCode::FORBIDDEN, "forbidden"),
        (&check, &stranger, StatusCode::NOT_FOUND, "not_found"),
        (&unknown, &t, StatusCode::NOT_FOUND, "not_found"),
    ] {
        let (s, v) = api
            .call("POST", uri, token, Some(numbers(&["15551230002"])))
            .await;
        assert_eq!((s, code(&v)), (status, wanted), "{uri}");
    }

    let (s, v) = api
        .call(
            "POST",
            &check,
            &t,
            Some(numbers(&["+15551230002", "15550001234", "15551230002"])),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let lid = "152065499436185@lid";
    let found = json!({"phone_number": "15551230002", "on_whatsapp": true,
        "jid": "15551230002@s.whatsapp.net", "lid": lid});
    assert_eq!(
        v["data"]["contacts"],
        json!([found, {"phone_number": "15550001234", "on_whatsapp": false,
            "jid": null, "lid": null}, found])
    );
    let (s, v) = api
        .call("GET", &format!("/sandbox/devices/{id}/sent"), &t, None)
        .await;
    assert_eq!(
        (s, v["data"]["sent"].as_array().map(Vec::len)),
        (StatusCode::OK, Some(0))
    );
    let (s, v) = api
        .call(
            "POST",
            &format!("/sandbox/devices/{id}/inbound"),
            &t,
            Some(json!({"from": lid, "text": "hi"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (
            &v["data"]["message"]["from"],
            &v["data"]["message"]["from_phone"]
        ),
        (&json!(lid), &json!("15551230002")),
        "the LID handed out resolves to its number"
    );
    let (s, v) = api
        .call(
            "POST",
            &format!("/sandbox/devices/{id}/inbound"),
            &t,
            Some(json!({"from": "100000000000001@lid", "text": "hi"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        v["data"]["message"]["from_phone"],
        Value::Null,
        "never handed out"
    );
}

/// The contacts check documents every refusal it answers.
#[test]
fn contacts_check_documents_its_refusals() {
    let (_, doc) = OpenApiRouter::<wa_api::AppState>::new()
        .merge(crate::router())
        .split_for_parts();
    let v = serde_json::to_value(&doc.paths.paths["/devices/{device_id}/contacts/check"]).unwrap();
    let mut statuses: Vec<_> = v["post"]["responses"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    statuses.sort();
    assert_eq!(
        statuses,
        [
            "200", "400", "401", "403", "404", "409", "410", "502", "503", "504"
        ]
    );
    assert_eq!(v["post"]["operationId"], "check_contacts");
}

mod groups;
