//! Authentication extractors. Their rejections are the seed's 401s: `unauthorized` for the
//! tenant JWT of /apps, `invalid_api_key` for the App token of everything else; once the
//! caller is known, 429 `rate_limit_exceeded` from the request limiter.

use axum::extract::FromRequestParts;
use http::{header, request::Parts};
use wa_core::apps::App;
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
        let token = bearer(parts).ok_or_else(ApiError::invalid_api_key)?;
        let app = ctx.apps.authenticate(token).await?;
        tracing::Span::current().record("app_id", tracing::field::display(app.app_id));
        ctx.limiter.check(Caller::App(app.app_id))?;
        Ok(AuthedApp(app))
    }
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
