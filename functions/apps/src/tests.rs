//! Router tests of /apps: every success and error path, through the full middleware stack.

use std::sync::Arc;

use axum::{Router, body::Body};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tower::ServiceExt;
use utoipa_axum::router::OpenApiRouter;
use wa_api::Context;
use wa_core::auth::JwtConfig;

const SECRET: &str = "test-secret-test-secret-test-secret!";

struct Api {
    router: Router,
    ctx: wa_api::AppState,
}

fn api_with(allow_private: bool) -> Api {
    let store = Arc::new(wa_store::SqliteStore::in_memory().unwrap());
    let jwt = JwtConfig::new(SECRET, None, None).unwrap();
    let queue = Arc::new(wa_queue::LocalQueue::in_memory(5).unwrap());
    let ctx = Context::new(store, queue, jwt, allow_private).into_state();
    let (r, _) = OpenApiRouter::new()
        .merge(crate::router())
        .split_for_parts();
    let router = wa_api::finish_router(r.with_state(ctx.clone()), 64 * 1024, Default::default());
    Api { router, ctx }
}

fn api() -> Api {
    api_with(false)
}

fn jwt(tenant: &str) -> String {
    JwtConfig::new(SECRET, None, None)
        .unwrap()
        .mint(tenant, 600)
        .unwrap()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

impl Api {
    async fn call(
        &self,
        method: &str,
        uri: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut b = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        let req = match body {
            Some(v) => b
                .header("content-type", "application/json")
                .body(Body::from(v.to_string())),
            None => b.body(Body::empty()),
        }
        .unwrap();
        self.raw(req).await
    }

    async fn raw(&self, req: Request<Body>) -> (StatusCode, Value) {
        let res = self.router.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        let v: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        if status.is_client_error() || status.is_server_error() {
            assert_eq!(v["request_id"], id, "error envelope carries the request id");
            assert!(v["error"]["code"].is_string() && v["error"]["message"].is_string());
        } else if !v.is_null() {
            assert_eq!(v["request_id"], id);
        }
        (status, v)
    }

    async fn create(&self, tenant: &str, name: &str) -> Value {
        let (s, v) = self
            .call(
                "POST",
                "/apps",
                Some(&jwt(tenant)),
                Some(json!({"name": name})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        v["data"].clone()
    }
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

fn field(v: &Value) -> &str {
    v["error"]["details"]["field"].as_str().unwrap_or("")
}

#[tokio::test]
async fn create_get_list_patch_delete() {
    let api = api();
    let t = jwt("acme");
    let (s, v) = api
        .call(
            "POST",
            "/apps",
            Some(&t),
            Some(json!({"name": "  Shop  ", "webhook_url": "https://example.com/hook"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let d = &v["data"];
    assert_eq!(d["app"]["name"], "Shop", "names are trimmed");
    assert_eq!(d["app"]["tenant_id"], "acme");
    assert_eq!(d["app"]["webhook_url"], "https://example.com/hook");
    assert!(d["app_token"].as_str().unwrap().starts_with("wa_"));
    assert!(d["webhook_secret"].as_str().unwrap().starts_with("whsec_"));
    assert!(d["app"].get("token_hash").is_none() && d["app"].get("webhook_secret").is_none());
    let id = d["app"]["app_id"].as_str().unwrap().to_owned();

    let (s, v) = api
        .call("GET", &format!("/apps/{id}"), Some(&t), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["data"]["app"]["app_id"], id.as_str());

    let (s, v) = api.call("GET", "/apps", Some(&t), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["data"]["count"], 1);
    assert_eq!(v["data"]["apps"][0]["app_id"], id.as_str());
    assert_eq!(v["data"]["next_cursor"], Value::Null);

    let (s, v) = api
        .call(
            "PATCH",
            &format!("/apps/{id}"),
            Some(&t),
            Some(json!({"name": "Shop 2"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["data"]["app"]["name"], "Shop 2");
    assert_eq!(
        v["data"]["app"]["webhook_url"], "https://example.com/hook",
        "absent field kept"
    );

    let (s, v) = api
        .call(
            "PATCH",
            &format!("/apps/{id}"),
            Some(&t),
            Some(json!({"webhook_url": null})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["data"]["app"]["webhook_url"], Value::Null, "null clears");

    let (s, v) = api
        .call("DELETE", &format!("/apps/{id}"), Some(&t), None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(v, Value::Null);
    let (s, v) = api
        .call("GET", &format!("/apps/{id}"), Some(&t), None)
        .await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "not_found"));
    let (s, v) = api
        .call("DELETE", &format!("/apps/{id}"), Some(&t), None)
        .await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "not_found"));
}

#[tokio::test]
async fn jwt_refusals_are_401_unauthorized() {
    let api = api();
    let sign = |alg: Algorithm, claims: Value, secret: &str| {
        jsonwebtoken::encode(
            &Header::new(alg),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    };
    let b64 = |s: &str| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
    };
    let alg_none = format!(
        "{}.{}.",
        b64(r#"{"alg":"none","typ":"JWT"}"#),
        b64(&json!({"tenant_id": "acme", "exp": now() + 600}).to_string())
    );
    let bad = [
        alg_none,
        sign(
            Algorithm::HS384,
            json!({"tenant_id": "acme", "exp": now() + 600}),
            SECRET,
        ),
        sign(
            Algorithm::HS256,
            json!({"tenant_id": "acme", "exp": now() - 600}),
            SECRET,
        ),
        sign(
            Algorithm::HS256,
            json!({"tenant_id": "acme", "exp": now() + 600}),
            "a-different-secret-a-different-secret",
        ),
        sign(Algorithm::HS256, json!({"exp": now() + 600}), SECRET),
        sign(Algorithm::HS256, json!({"tenant_id": "acme"}), SECRET),
        "not-a-jwt".into(),
    ];
    for token in &bad {
        for (m, uri, body) in [
            ("GET", "/apps", None),
            ("POST", "/apps", Some(json!({"name": "x"}))),
        ] {
            let (s, v) = api.call(m, uri, Some(token), body).await;
            assert_eq!(
                (s, code(&v)),
                (StatusCode::UNAUTHORIZED, "unauthorized"),
                "{token}"
            );
        }
    }
    let (s, v) = api.call("GET", "/apps", None, None).await;
    assert_eq!((s, code(&v)), (StatusCode::UNAUTHORIZED, "unauthorized"));
    let req = Request::get("/apps")
        .header("authorization", format!("Basic {}", jwt("acme")))
        .body(Body::empty())
        .unwrap();
    let (s, v) = api.raw(req).await;
    assert_eq!((s, code(&v)), (StatusCode::UNAUTHORIZED, "unauthorized"));
    // An App token is not a JWT.
    let app = api.create("acme", "a").await;
    let (s, v) = api
        .call("GET", "/apps", app["app_token"].as_str(), None)
        .await;
    assert_eq!((s, code(&v)), (StatusCode::UNAUTHORIZED, "unauthorized"));
}

/// A token not yet valid (`nbf` ahead, past the clock-skew leeway) is refused like an
/// expired one; a past `nbf` is accepted.
#[tokio::test]
async fn future_not_before_is_401_unauthorized() {
    let api = api();
    let sign = |claims: Value| {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap()
    };
    let early = sign(json!({"tenant_id": "acme", "exp": now() + 7200, "nbf": now() + 3600}));
    let (s, v) = api.call("GET", "/apps", Some(&early), None).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNAUTHORIZED, "unauthorized"),
        "{v}"
    );
    assert!(v["data"].is_null(), "{v}");
    let valid = sign(json!({"tenant_id": "acme", "exp": now() + 7200, "nbf": now() - 60}));
    let (s, v) = api.call("GET", "/apps", Some(&valid), None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

#[tokio::test]
async fn validation_errors_name_the_field() {
    let api = api();
    let t = jwt("acme");
    let cases = [
        (json!({}), "name"),
        (json!({"name": ""}), "name"),
        (json!({"name": "   "}), "name"),
        (json!({"name": "x".repeat(101)}), "name"),
        (json!({"name": "bad\u{0007}name"}), "name"),
        (json!({"name": 42}), "name"),
        (json!({"name": "a", "webhook_url": 5}), "webhook_url"),
        (
            json!({"name": "a", "webhook_url": "ftp://example.com/x"}),
            "webhook_url",
        ),
        (
            json!({"name": "a", "webhook_url": "not a url"}),
            "webhook_url",
        ),
        (
            json!({"name": "a", "webhook_url": "http://127.0.0.1:9000/hook"}),
            "webhook_url",
        ),
        (
            json!({"name": "a", "webhook_url": "http://10.0.0.8/hook"}),
            "webhook_url",
        ),
        (
            json!({"name": "a", "webhook_url": "http://169.254.169.254/"}),
            "webhook_url",
        ),
        (
            json!({"name": "a", "webhook_url": "http://localhost/"}),
            "webhook_url",
        ),
        (
            json!({"name": "a", "webhook_url": "http://[::1]/"}),
            "webhook_url",
        ),
        (json!({"name": "a", "extra": true}), "extra"),
        (json!(["name"]), "body"),
    ];
    for (body, f) in cases {
        let (s, v) = api
            .call("POST", "/apps", Some(&t), Some(body.clone()))
            .await;
        assert_eq!(
            (s, code(&v), field(&v)),
            (StatusCode::BAD_REQUEST, "validation_error", f),
            "{body}"
        );
    }
    let req = Request::post("/apps")
        .header("authorization", format!("Bearer {t}"))
        .header("content-type", "application/json")
        .body(Body::from("{\"name\": "))
        .unwrap();
    let (s, v) = api.raw(req).await;
    assert_eq!((s, field(&v)), (StatusCode::BAD_REQUEST, "body"));
    let req = Request::post("/apps")
        .header("authorization", format!("Bearer {t}"))
        .header("content-type", "text/plain")
        .body(Body::from(r#"{"name":"a"}"#))
        .unwrap();
    let (s, v) = api.raw(req).await;
    assert_eq!((s, field(&v)), (StatusCode::BAD_REQUEST, "body"));
    // Nothing was created by any of these.
    let (_, v) = api.call("GET", "/apps", Some(&t), None).await;
    assert_eq!(v["data"]["count"], 0);

    // Malformed ids in the path.
    for uri in [
        "/apps/nope",
        "/apps/123",
        "/apps/01a21159-6b0c-75c1-9f70-75cb3ecd348",
    ] {
        let (s, v) = api.call("GET", uri, Some(&t), None).await;
        assert_eq!((s, field(&v)), (StatusCode::BAD_REQUEST, "app_id"), "{uri}");
    }
    let (s, v) = api.call("GET", "/apps?limit=0", Some(&t), None).await;
    assert_eq!((s, field(&v)), (StatusCode::BAD_REQUEST, "limit"));
    let (s, v) = api.call("GET", "/apps?limit=abc", Some(&t), None).await;
    assert_eq!((s, field(&v)), (StatusCode::BAD_REQUEST, "limit"));
    let (s, v) = api.call("GET", "/apps?cursor=zzz", Some(&t), None).await;
    assert_eq!((s, field(&v)), (StatusCode::BAD_REQUEST, "cursor"));
    for (uri, name) in [
        ("/apps?limit=1&limit=2", "limit"),
        ("/apps?cursor=a&limit=5&cursor=b", "cursor"),
    ] {
        let (s, v) = api.call("GET", uri, Some(&t), None).await;
        assert_eq!((s, field(&v)), (StatusCode::BAD_REQUEST, name), "{uri}");
    }
}

#[tokio::test]
async fn private_webhooks_when_allowed() {
    let api = api_with(true);
    let (s, v) = api
        .call(
            "POST",
            "/apps",
            Some(&jwt("acme")),
            Some(json!({"name": "a", "webhook_url": "http://127.0.0.1:9000/hook"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(
        v["data"]["app"]["webhook_url"],
        "http://127.0.0.1:9000/hook"
    );
    let (s, v) = api
        .call(
            "POST",
            "/apps",
            Some(&jwt("acme")),
            Some(json!({"name": "b", "webhook_url": "file:///etc/passwd"})),
        )
        .await;
    assert_eq!((s, field(&v)), (StatusCode::BAD_REQUEST, "webhook_url"));
}

#[tokio::test]
async fn names_are_unique_per_tenant_even_when_racing() {
    let api = api();
    api.create("acme", "shop").await;
    let (s, v) = api
        .call(
            "POST",
            "/apps",
            Some(&jwt("acme")),
            Some(json!({"name": "shop"})),
        )
        .await;
    assert_eq!(
        (s, code(&v), field(&v)),
        (StatusCode::CONFLICT, "conflict", "name")
    );
    api.create("other", "shop").await;

    let other = api.create("acme", "other").await;
    let id = other["app"]["app_id"].as_str().unwrap();
    let (s, v) = api
        .call(
            "PATCH",
            &format!("/apps/{id}"),
            Some(&jwt("acme")),
            Some(json!({"name": "shop"})),
        )
        .await;
    assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "conflict"));

    let tasks: Vec<_> = (0..12)
        .map(|_| {
            let router = api.router.clone();
            let t = jwt("acme");
            tokio::spawn(async move {
                let req = Request::post("/apps")
                    .header("authorization", format!("Bearer {t}"))
                    .header("content-type", "application/json")
                    .body(Body::from(r#"{"name":"race"}"#))
                    .unwrap();
                router.oneshot(req).await.unwrap().status()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::CREATED)
            .count(),
        1
    );
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::CREATED || *s == StatusCode::CONFLICT)
    );
}

#[tokio::test]
async fn other_tenants_apps_are_not_found() {
    let api = api();
    let app = api.create("acme", "mine").await;
    let id = app["app"]["app_id"].as_str().unwrap();
    let intruder = jwt("evil");
    for (m, uri, body) in [
        ("GET", format!("/apps/{id}"), None),
        ("PATCH", format!("/apps/{id}"), Some(json!({"name": "x"}))),
        ("DELETE", format!("/apps/{id}"), None),
        ("POST", format!("/apps/{id}/token"), None),
        ("POST", format!("/apps/{id}/webhook-secret"), None),
    ] {
        let (s, v) = api.call(m, &uri, Some(&intruder), body).await;
        assert_eq!(
            (s, code(&v)),
            (StatusCode::NOT_FOUND, "not_found"),
            "{m} {uri}"
        );
    }
    let (_, v) = api.call("GET", "/apps", Some(&intruder), None).await;
    assert_eq!(v["data"]["count"], 0);
    // Still intact for its owner.
    let (s, v) = api
        .call("GET", &format!("/apps/{id}"), Some(&jwt("acme")), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["data"]["app"]["name"], "mine");
}

#[tokio::test]
async fn rotation_and_deletion_revoke_tokens() {
    let api = api();
    let t = jwt("acme");
    let app = api.create("acme", "rotating").await;
    let id = app["app"]["app_id"].as_str().unwrap();
    let old = app["app_token"].as_str().unwrap();
    assert!(api.ctx.apps.authenticate(old).await.is_ok());

    let (s, v) = api
        .call("POST", &format!("/apps/{id}/token"), Some(&t), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    let new = v["data"]["app_token"].as_str().unwrap();
    assert_ne!(new, old);
    assert_eq!(
        api.ctx.apps.authenticate(old).await.unwrap_err().code(),
        wa_errors::ErrorCode::InvalidApiKey
    );
    assert!(api.ctx.apps.authenticate(new).await.is_ok());

    let (s, v) = api
        .call(
            "POST",
            &format!("/apps/{id}/webhook-secret"),
            Some(&t),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let secret = v["data"]["webhook_secret"].as_str().unwrap();
    assert!(secret.starts_with("whsec_"));
    assert_ne!(secret, app["webhook_secret"].as_str().unwrap());
    assert_eq!(v["data"]["app"]["app_id"], id);

    let (s, _) = api
        .call("DELETE", &format!("/apps/{id}"), Some(&t), None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert!(api.ctx.apps.authenticate(new).await.is_err());
}

/// `DELETE /apps/{id}` through the route: every live device of the App is destroyed (and
/// its worker told), one created a moment before included, and a device creation that was
/// authenticated before the deletion is refused once the App is closed.
#[tokio::test]
async fn deleting_an_app_destroys_its_devices() {
    use wa_core::devices::{Device, DeviceStatus};
    use wa_core::queue::{COMMANDS, Command, CommandEnvelope};
    let api = api();
    let t = jwt("acme");
    let created = api.create("acme", "doomed").await;
    let id: uuid::Uuid = created["app"]["app_id"].as_str().unwrap().parse().unwrap();
    let app = api.ctx.apps.get("acme", id).await.unwrap();
    let store = &api.ctx.store;
    let live = Device {
        status: DeviceStatus::Connected,
        ..wa_testkit::fixtures::device(id, "live")
    };
    let gone = Device {
        status: DeviceStatus::Destroyed,
        ..wa_testkit::fixtures::device(id, "gone")
    };
    store.insert_device(&live).await.unwrap();
    store.insert_device(&gone).await.unwrap();
    let just_now = wa_testkit::fixtures::device(id, "just now");
    store.insert_device(&just_now).await.unwrap();
    let other = api.create("acme", "kept").await;
    let other_id: uuid::Uuid = other["app"]["app_id"].as_str().unwrap().parse().unwrap();
    let bystander = wa_testkit::fixtures::device(other_id, "bystander");
    store.insert_device(&bystander).await.unwrap();

    let (s, v) = api
        .call("DELETE", &format!("/apps/{id}"), Some(&t), None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    for d in [&live, &gone, &just_now] {
        let now = store.get_device(d.device_id).await.unwrap().unwrap();
        assert_eq!(now.status, DeviceStatus::Destroyed, "{}", d.device_name);
    }
    assert_eq!(
        store
            .get_device(bystander.device_id)
            .await
            .unwrap()
            .unwrap()
            .status,
        DeviceStatus::Initializing,
        "another App's device is left alone"
    );
    // The worker is told to unlink each device that was live.
    let received = api
        .ctx
        .queue
        .receive(COMMANDS, 10, std::time::Duration::from_secs(60))
        .await
        .unwrap();
    let mut destroyed: Vec<_> = received
        .iter()
        .filter_map(|r| match serde_json::from_str::<CommandEnvelope>(&r.body) {
            Ok(CommandEnvelope {
                command: Command::Destroy { device_id },
                ..
            }) => Some(device_id),
            _ => None,
        })
        .collect();
    destroyed.sort();
    let mut expected = vec![live.device_id, just_now.device_id];
    expected.sort();
    assert_eq!(destroyed, expected);
    // A creation authenticated before the deletion comes too late.
    let late = api.ctx.devices.create(&app, "late").await.unwrap_err();
    assert_eq!(late.code(), wa_errors::ErrorCode::NotFound);
    assert_eq!(
        store.devices_of_app(id).await.unwrap().len(),
        3,
        "no device added"
    );
}

#[tokio::test]
async fn deleting_an_app_deletes_its_media_only() {
    use wa_core::media::{MediaPath, MediaStore};
    let dir = tempfile::tempdir().unwrap();
    let media = Arc::new(wa_media::DirMedia::new(dir.path()));
    let store = Arc::new(wa_store::SqliteStore::in_memory().unwrap());
    let queue = Arc::new(wa_queue::LocalQueue::in_memory(5).unwrap());
    let mut ctx = Context::new(
        store,
        queue,
        JwtConfig::new(SECRET, None, None).unwrap(),
        false,
    );
    ctx.set_media(media.clone());
    let ctx = ctx.into_state();
    let (r, _) = OpenApiRouter::new()
        .merge(crate::router())
        .split_for_parts();
    let api = Api {
        router: wa_api::finish_router(r.with_state(ctx.clone()), 64 * 1024, Default::default()),
        ctx,
    };
    let app_id = |v: Value| -> uuid::Uuid { v["app"]["app_id"].as_str().unwrap().parse().unwrap() };
    let (doomed, kept) = (
        app_id(api.create("acme", "doomed").await),
        app_id(api.create("acme", "kept").await),
    );
    let device = uuid::Uuid::now_v7();
    let gone = MediaPath::inbound(doomed, device, "3EB0A", "image/png");
    let other = MediaPath::inbound(kept, device, "3EB0A", "image/png");
    media.put(&gone, b"gone").await.unwrap();
    media.put(&other, b"kept").await.unwrap();

    let (s, v) = api
        .call(
            "DELETE",
            &format!("/apps/{doomed}"),
            Some(&jwt("acme")),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    assert_eq!(media.get(&gone).await.unwrap(), None);
    assert_eq!(media.get(&other).await.unwrap().unwrap().bytes, b"kept");
}

#[tokio::test]
async fn list_is_paginated() {
    let api = api();
    let t = jwt("acme");
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(api.create("acme", &format!("app {i}")).await["app"]["app_id"].clone());
    }
    let mut seen = Vec::new();
    let mut uri = "/apps?limit=2".to_owned();
    loop {
        let (s, v) = api.call("GET", &uri, Some(&t), None).await;
        assert_eq!(s, StatusCode::OK);
        let page = v["data"]["apps"].as_array().unwrap();
        assert_eq!(v["data"]["count"], page.len());
        seen.extend(page.iter().map(|a| a["app_id"].clone()));
        match v["data"]["next_cursor"].as_str() {
            Some(c) => uri = format!("/apps?limit=2&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen, ids);
}

#[tokio::test]
async fn patch_validation_and_unknown_apps() {
    let api = api();
    let t = jwt("acme");
    let app = api.create("acme", "p").await;
    let id = app["app"]["app_id"].as_str().unwrap();
    for (body, f) in [
        (json!({"name": ""}), "name"),
        (json!({"name": null}), "name"),
        (json!({"webhook_url": "http://192.168.0.1/"}), "webhook_url"),
        (json!({"color": "red"}), "color"),
    ] {
        let (s, v) = api
            .call(
                "PATCH",
                &format!("/apps/{id}"),
                Some(&t),
                Some(body.clone()),
            )
            .await;
        if f == "name" && body["name"].is_null() {
            // `name: null` means "leave the name": accepted, nothing changes.
            assert_eq!(s, StatusCode::OK);
            assert_eq!(v["data"]["app"]["name"], "p");
            continue;
        }
        assert_eq!((s, field(&v)), (StatusCode::BAD_REQUEST, f), "{body}");
    }
    let missing = uuid::Uuid::now_v7();
    for (m, uri) in [
        ("GET", format!("/apps/{missing}")),
        ("POST", format!("/apps/{missing}/token")),
        ("POST", format!("/apps/{missing}/webhook-secret")),
        ("DELETE", format!("/apps/{missing}")),
    ] {
        let (s, v) = api.call(m, &uri, Some(&t), None).await;
        assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "not_found"));
    }
    let (s, v) = api
        .call("PUT", &format!("/apps/{id}"), Some(&t), None)
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
    );
}

/// The IPv6 forms that embed a private IPv4 address or are reserved, refused on create and
/// on update; a public address embedded the same way stays allowed.
#[tokio::test]
async fn special_purpose_webhook_literals_are_400() {
    let api = api();
    let t = jwt("acme");
    let app = api.create("acme", "literals").await;
    let id = app["app"]["app_id"].as_str().unwrap();
    for url in [
        "http://[::127.0.0.1]/hook",
        "http://[64:ff9b::7f00:1]/hook",
        "http://[64:ff9b:1::a00:1]/hook",
        "http://[2002:7f00:1::1]/hook",
        "http://[::ffff:0:7f00:1]/hook",
        "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/hook",
        "http://[fec0::1]/hook",
        "http://[2001:db8::1]/hook",
        "http://192.0.2.1/hook",
        "http://198.18.0.1/hook",
        "http://[ff02::1]/hook",
    ] {
        let (s, v) = api
            .call(
                "POST",
                "/apps",
                Some(&t),
                Some(json!({"name": "x", "webhook_url": url})),
            )
            .await;
        assert_eq!(
            (s, code(&v), field(&v)),
            (StatusCode::BAD_REQUEST, "validation_error", "webhook_url"),
            "{url}"
        );
        let (s, v) = api
            .call(
                "PATCH",
                &format!("/apps/{id}"),
                Some(&t),
                Some(json!({"webhook_url": url})),
            )
            .await;
        assert_eq!(
            (s, field(&v)),
            (StatusCode::BAD_REQUEST, "webhook_url"),
            "{url}"
        );
    }
    let (s, v) = api
        .call(
            "PATCH",
            &format!("/apps/{id}"),
            Some(&t),
            Some(json!({"webhook_url": "https://[64:ff9b::808:808]/hook"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

/// The apps Lambda's service (`wa_lambda_http::app`) answers an API Gateway HTTP API (payload 2.0)
/// event, with API Gateway's request id when the caller sends none.
#[tokio::test]
async fn api_gateway_v2_event() {
    let ctx = api().ctx;
    let raw = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/lambda-http/fixtures/apigw-v2-post-apps.json"
    ))
    .unwrap()
    .replace("{{JWT}}", &jwt("tenant-gw"));
    let req = lambda_http::request::from_str(&raw).expect("an API Gateway v2 event");
    let app = wa_lambda_http::app(crate::router(), ctx, 1 << 20);
    let res = app.oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    assert_eq!(res.headers()["x-request-id"], "LV7fzho-PHcEJPw=");
    let body: Value =
        serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(body["data"]["app"]["name"], "from-api-gateway");
    assert!(body["data"]["app_token"].as_str().is_some());
}
