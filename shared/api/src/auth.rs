//! Authentication extractors. Their rejections are the seed's 401s: `unauthorized` for the
//! tenant JWT of /apps, `invalid_api_key` for the App token of everything else; once the
//! caller is known, 429 `rate_limit_exceeded` from the request limiter.

use axum::extract::{FromRequestParts, RawPathParams};
use http::{header, request::Parts};
use uuid::Uuid;
use wa_core::apps::App;
use wa_core::devices::Device;
use wa_errors::ApiError;

use crate::AppState;
use crate::limit::Caller;

fn bearer(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(wa_core::auth::bearer)
}

/// The tenant of a valid JWT (`Authorization: Bearer <jwt>`), within its request limit.
#[derive(Debug, Clone)]
pub struct Tenant(pub String);

impl FromRequestParts<AppState> for Tenant {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, ctx: &AppState) -> Result<Self, ApiError> {
        let token = bearer(parts).ok_or_else(|| ApiError::unauthorized("Bearer JWT is missing"))?;
        let Some(jwt) = &ctx.jwt else {
            // A deployment routing a JWT route to a function without the JWT key.
            tracing::warn!("a tenant JWT route was called where no JWT key is configured");
            return Err(ApiError::unauthorized(
                "tenant JWTs are not verified here: no JWT key is configured",
            ));
        };
        match jwt.verify(token) {
            Ok(claims) => {
                tracing::Span::current().record("tenant_id", claims.tenant_id.as_str());
                ctx.limiter
                    .check(Caller::Tenant(claims.tenant_id.clone()))?;
                Ok(Tenant(claims.tenant_id))
            }
            Err(e) => {
                tracing::info!(reason = %e, "JWT refused");
                Err(ApiError::unauthorized("Bearer JWT is invalid or expired"))
            }
        }
    }
}

/// The App of a valid App token (`Authorization: Bearer <app_token>`), within its request
/// limit.
#[derive(Debug, Clone)]
pub struct AuthedApp(pub App);

impl FromRequestParts<AppState> for AuthedApp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, ctx: &AppState) -> Result<Self, ApiError> {
        Ok(AuthedApp(authenticate(parts, ctx, None).await?.0))
    }
}

/// [`AuthedApp`], and the device of the route's `{device_id}` path parameter read with it (one
/// request on DynamoDB), for a route that reads its device first, such as a send. The
/// device is `None` when the parameter is not a device id or no such device exists; it
/// may be another App's: the route checks (`Devices::get_read`).
#[derive(Debug, Clone)]
pub struct AuthedAppDevice(pub App, pub Option<Device>);

impl FromRequestParts<AppState> for AuthedAppDevice {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, ctx: &AppState) -> Result<Self, ApiError> {
        let id = RawPathParams::from_request_parts(parts, ctx)
            .await
            .ok()
            .and_then(|params| {
                params
                    .iter()
                    .find(|(name, _)| *name == "device_id")
                    .and_then(|(_, v)| Uuid::parse_str(v).ok())
            });
        let (app, device) = authenticate(parts, ctx, id).await?;
        Ok(AuthedAppDevice(app, device))
    }
}

/// The App of the request's token, within its request limit, and the device `device_id`
/// read with it when one is asked for.
async fn authenticate(
    parts: &Parts,
    ctx: &AppState,
    device_id: Option<Uuid>,
) -> Result<(App, Option<Device>), ApiError> {
    let token = bearer(parts).ok_or_else(ApiError::invalid_api_key)?;
    let (app, device) = match device_id {
        Some(id) => ctx.apps.authenticate_with_device(token, id).await?,
        None => (ctx.apps.authenticate(token).await?, None),
    };
    tracing::Span::current().record("app_id", tracing::field::display(app.app_id));
    ctx.limiter.check(Caller::App(app.app_id))?;
    Ok((app, device))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::{Router, body::Body, routing::get};
    use http::{Request, StatusCode};
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    use wa_core::apps::CreateApp;
    use wa_core::auth::JwtConfig;

    use super::*;
    use crate::Context;

    async fn whoami(AuthedApp(app): AuthedApp) -> crate::ApiOk<String> {
        crate::ok(app.app_id.to_string())
    }

    fn setup(cached: bool) -> (Router, AppState) {
        let mut store = wa_store::SqliteStore::in_memory().unwrap();
        if cached {
            store = store.with_read_caches();
        }
        let store = Arc::new(store);
        let queue = Arc::new(wa_queue::LocalQueue::in_memory(5).unwrap());
        let ctx = Context::new(
            store,
            queue,
            JwtConfig::new("0123456789abcdef0123456789abcdef", None, None).unwrap(),
            false,
        )
        .into_state();
        let r = Router::new()
            .route("/whoami", get(whoami))
            .with_state(ctx.clone());
        (crate::finish_router(r, 1024, Default::default()), ctx)
    }

    async fn call(r: &Router, auth: Option<String>) -> (StatusCode, serde_json::Value) {
        let mut b = Request::get("/whoami");
        if let Some(a) = auth {
            b = b.header("authorization", a);
        }
        let res = r
            .clone()
            .oneshot(b.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let s = res.status();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        (s, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn app_token_layer() {
        app_token_checks(false).await;
    }

    /// The same with the embedded server's read caches: a rotated token or a deleted App's
    /// is refused at once.
    #[tokio::test]
    async fn app_token_layer_with_read_caches() {
        app_token_checks(true).await;
    }

    async fn app_token_checks(cached: bool) {
        let (r, ctx) = setup(cached);
        let created = ctx
            .apps
            .create("acme", CreateApp::named("a"))
            .await
            .unwrap();
        let jwt = ctx.jwt.as_ref().unwrap().mint("acme", 60).unwrap();
        for bad in [
            None,
            Some(String::new()),
            Some("Bearer".into()),
            Some("Bearer wa_nope".into()),
            Some(format!("Basic {}", created.app_token)),
            Some(format!("Bearer {}x", created.app_token)),
            Some(format!("Bearer {jwt}")),
            Some(format!("Bearer {}", created.webhook_secret)),
        ] {
            let (s, v) = call(&r, bad.clone()).await;
            assert_eq!(s, StatusCode::UNAUTHORIZED, "{bad:?}");
            assert_eq!(v["error"]["code"], "invalid_api_key");
        }
        let (s, v) = call(&r, Some(format!("Bearer {}", created.app_token))).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(v["data"], created.app.app_id.to_string());
        let (s, _) = call(&r, Some(format!("bearer {}", created.app_token))).await;
        assert_eq!(s, StatusCode::OK, "the scheme is case-insensitive");

        let (_, new) = ctx
            .apps
            .rotate_token("acme", created.app.app_id)
            .await
            .unwrap();
        let (s, _) = call(&r, Some(format!("Bearer {}", created.app_token))).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "old token revoked at once");
        let (s, _) = call(&r, Some(format!("Bearer {new}"))).await;
        assert_eq!(s, StatusCode::OK);
        ctx.apps.delete("acme", created.app.app_id).await.unwrap();
        let (s, _) = call(&r, Some(format!("Bearer {new}"))).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "deleted App's token revoked");
    }

    /// Counts the store calls by name.
    #[derive(Default)]
    struct Calls(std::sync::Mutex<Vec<&'static str>>);

    impl wa_core::layer::Layer for Calls {
        fn before(&self, op: &'static str) -> Result<(), wa_core::store::StoreError> {
            self.0.lock().unwrap().push(op);
            Ok(())
        }
    }

    async fn device_of(AuthedAppDevice(app, d): AuthedAppDevice) -> crate::ApiOk<String> {
        crate::ok(format!("{} {:?}", app.app_id, d.map(|d| d.device_id)))
    }

    /// The App and the device of the path come from one store call; a path whose id is not
    /// a device's, or a device that does not exist, gives no device, and a bad token 401.
    #[tokio::test]
    async fn the_device_of_the_path_is_read_with_the_app() {
        let sqlite = Arc::new(wa_store::SqliteStore::in_memory().unwrap());
        let calls = Arc::new(Calls::default());
        let store = Arc::new(wa_core::layer::Layered::new(sqlite.clone(), calls.clone()));
        let queue = Arc::new(wa_queue::LocalQueue::in_memory(5).unwrap());
        let jwt = JwtConfig::new("0123456789abcdef0123456789abcdef", None, None).unwrap();
        let ctx = Context::new(store, queue, jwt, false).into_state();
        let r = Router::new()
            .route("/devices/{device_id}/x", get(device_of))
            .with_state(ctx.clone());
        let r = crate::finish_router(r, 1024, Default::default());
        let created = ctx
            .apps
            .create("acme", CreateApp::named("a"))
            .await
            .unwrap();
        let d = wa_testkit::fixtures::device(created.app.app_id, "d");
        wa_core::store::DeviceStore::insert_device(&*sqlite, &d)
            .await
            .unwrap();
        let get = |path: String, token: String| {
            let r = r.clone();
            async move {
                let req = Request::get(path)
                    .header("authorization", format!("Bearer {token}"))
                    .body(Body::empty())
                    .unwrap();
                let res = r.oneshot(req).await.unwrap();
                let s = res.status();
                let bytes = res.into_body().collect().await.unwrap().to_bytes();
                let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
                (s, v["data"].as_str().unwrap_or_default().to_owned())
            }
        };
        calls.0.lock().unwrap().clear();
        let token = created.app_token.clone();
        let app = created.app.app_id;
        let (s, v) = get(format!("/devices/{}/x", d.device_id), token.clone()).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(v, format!("{app} Some({})", d.device_id));
        assert_eq!(
            *calls.0.lock().unwrap(),
            ["app_by_token_hash_with_device"],
            "one call for both"
        );
        let (_, v) = get(
            format!("/devices/{}/x", uuid::Uuid::now_v7()),
            token.clone(),
        )
        .await;
        assert_eq!(v, format!("{app} None"), "no such device");
        let (_, v) = get("/devices/not-an-id/x".into(), token.clone()).await;
        assert_eq!(v, format!("{app} None"), "not a device id");
        let (s, _) = get(format!("/devices/{}/x", d.device_id), format!("{token}x")).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }

    async fn tenant(Tenant(t): Tenant) -> crate::ApiOk<String> {
        crate::ok(t)
    }

    /// A function without the JWT key answers a JWT route 401 unauthorized, whatever the
    /// token: never a 500, never a tenant.
    #[tokio::test]
    async fn tenant_routes_without_a_jwt_key_are_unauthorized() {
        let key = JwtConfig::new("0123456789abcdef0123456789abcdef", None, None).unwrap();
        let valid = key.mint("acme", 60).unwrap();
        let store = Arc::new(wa_store::SqliteStore::in_memory().unwrap());
        let queue = Arc::new(wa_queue::LocalQueue::in_memory(5).unwrap());
        for (jwt, want) in [
            (Some(key), StatusCode::OK),
            (None, StatusCode::UNAUTHORIZED),
        ] {
            let ctx = Context::new(store.clone(), queue.clone(), jwt.clone(), false).into_state();
            let r = crate::finish_router(
                Router::new().route("/tenant", get(tenant)).with_state(ctx),
                1024,
                Default::default(),
            );
            let res = r
                .oneshot(
                    Request::get("/tenant")
                        .header("authorization", format!("Bearer {valid}"))
                        .body(Body::empty())
                        .unwrap(),
                )
                .await
                .unwrap();
            let status = res.status();
            let bytes = res.into_body().collect().await.unwrap().to_bytes();
            let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(status, want, "jwt configured: {}: {v}", jwt.is_some());
            if jwt.is_none() {
                assert_eq!(v["error"]["code"], "unauthorized");
                assert!(v["request_id"].is_string(), "{v}");
            }
        }
    }
}
