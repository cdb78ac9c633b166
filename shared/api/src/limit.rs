//! The per-App request limiter: a token bucket per App (by `app_id`, on the routes of the App
//! token) and per tenant (on the `/apps` routes of the tenant JWT), taken once the caller's
//! credential is verified. A caller over its rate is answered 429 `rate_limit_exceeded` with
//! `Retry-After`. Unauthenticated routes (`/health`, `/metrics`, the docs, the dashboard's
//! files) never reach it.
//!
//! The buckets live in the process: the embedded server limits for the whole server, each
//! Lambda execution environment limits on its own (API Gateway's stage throttling is the
//! deployment-wide limit there).

use std::time::{Duration, Instant};

use uuid::Uuid;
use wa_core::rate::{Buckets, Rate};
use wa_errors::{ApiError, ErrorCode};

/// Callers whose buckets are held at once (see [`Buckets`] for what happens beyond).
pub const MAX_LIMITED_CALLERS: usize = 10_000;

/// The limit's settings, from `WA_APP_RATE` and `WA_APP_BURST`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LimitConfig {
    /// Requests per second per App (and per tenant on `/apps`); 0 turns the limiter off.
    pub rate: f64,
    /// Requests an idle caller may make at once.
    pub burst: u32,
}

/// A variable with a value the limiter cannot use: `(name, problem)`.
pub type LimitConfigProblem = (&'static str, String);

impl LimitConfig {
    /// The default: off.
    pub const OFF: LimitConfig = LimitConfig {
        rate: 0.0,
        burst: 1,
    };

    /// Reads `WA_APP_RATE` (requests per second, default 0 = off; fractions allowed) and
    /// `WA_APP_BURST` (a whole number, at least 1; default twice the rate, rounded up).
    /// Fails naming the variable whose value is not one of those.
    pub fn from_lookup(
        get: &dyn Fn(&str) -> Option<String>,
    ) -> Result<LimitConfig, LimitConfigProblem> {
        let var = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        let rate = match var("WA_APP_RATE") {
            None => 0.0,
            Some(v) => v
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|r| r.is_finite() && *r >= 0.0)
                .ok_or((
                    "WA_APP_RATE",
                    "must be a number of requests per second, 0 for no limit".into(),
                ))?,
        };
        let burst = match var("WA_APP_BURST") {
            None => default_burst(rate),
            Some(v) => v
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|b| *b >= 1)
                .ok_or(("WA_APP_BURST", "must be a whole number, at least 1".into()))?,
        };
        Ok(LimitConfig { rate, burst })
    }
}

/// Twice the rate, rounded up, at least 1.
fn default_burst(rate: f64) -> u32 {
    (rate * 2.0).ceil().clamp(1.0, f64::from(u32::MAX)) as u32
}

/// Whose bucket a request takes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Caller {
    /// A request with an App token.
    App(Uuid),
    /// A request with a tenant JWT (`/apps`).
    Tenant(String),
}

/// The buckets of every caller of this process.
pub struct RequestLimiter {
    /// `None` when off.
    buckets: Option<Buckets<Caller>>,
}

impl RequestLimiter {
    pub fn new(config: LimitConfig) -> Self {
        RequestLimiter {
            buckets: Rate::new(config.rate, config.burst)
                .map(|r| Buckets::new(r, MAX_LIMITED_CALLERS)),
        }
    }

    /// A limiter that allows everything.
    pub fn off() -> Self {
        RequestLimiter { buckets: None }
    }

    /// Takes one request from `caller`'s allowance: 429 `rate_limit_exceeded` with
    /// `Retry-After` (whole seconds, at least 1) when it is spent. Always `Ok` when off.
    pub fn check(&self, caller: Caller) -> Result<(), ApiError> {
        let Some(buckets) = &self.buckets else {
            return Ok(());
        };
        match buckets.take(caller, Instant::now()) {
            None => Ok(()),
            Some(wait) => {
                let secs = retry_after_secs(wait);
                tracing::debug!(retry_after = secs, "request limit reached");
                Err(ApiError::new(
                    ErrorCode::RateLimitExceeded,
                    format!(
                        "request limit reached ({} per second, bursts of {}); retry after {secs} s",
                        buckets.rate().per_sec(),
                        buckets.rate().burst()
                    ),
                )
                .with_retry_after(secs))
            }
        }
    }
}

impl Default for RequestLimiter {
    fn default() -> Self {
        RequestLimiter::off()
    }
}

/// The `Retry-After` of a wait: whole seconds, rounded up, at least 1 (a client that waits
/// that long finds a token).
pub fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait
        .as_secs()
        .saturating_add(u64::from(wait.subsec_nanos() > 0));
    secs.max(1)
}

/// Adds the limiter's answer (429 `rate_limit_exceeded` with `Retry-After`) to every
/// operation of `api` that names a credential: those are the ones the limiter counts.
pub fn document(api: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::header::HeaderBuilder;
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    let response = ResponseBuilder::new()
        .description(
            "rate_limit_exceeded: the App (or, on /apps, the tenant) is over its request limit",
        )
        .header(
            "Retry-After",
            HeaderBuilder::new()
                .schema(
                    ObjectBuilder::new()
                        .schema_type(Type::Integer)
                        .minimum(Some(1)),
                )
                .description(Some("whole seconds, at least 1"))
                .build(),
        )
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorResponse")))
                .build(),
        )
        .build();
    for item in api.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.options,
            &mut item.head,
            &mut item.patch,
            &mut item.trace,
        ];
        for op in operations.into_iter().flatten() {
            if op.security.as_ref().is_some_and(|s| !s.is_empty()) {
                op.responses
                    .responses
                    .entry("429".into())
                    .or_insert_with(|| response.clone().into());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wa_testkit::fixtures::env_lookup;

    fn cfg(pairs: &[(&str, &str)]) -> Result<LimitConfig, LimitConfigProblem> {
        LimitConfig::from_lookup(&env_lookup(pairs))
    }

    #[test]
    fn config_rows() {
        assert_eq!(cfg(&[]).unwrap(), LimitConfig::OFF, "off by default");
        assert_eq!(cfg(&[("WA_APP_RATE", "0")]).unwrap().rate, 0.0);
        assert_eq!(
            cfg(&[("WA_APP_RATE", "50")]).unwrap(),
            LimitConfig {
                rate: 50.0,
                burst: 100
            },
            "burst defaults to twice the rate"
        );
        assert_eq!(cfg(&[("WA_APP_RATE", "0.2")]).unwrap().burst, 1);
        assert_eq!(cfg(&[("WA_APP_RATE", "2.5")]).unwrap().burst, 5);
        assert_eq!(
            cfg(&[("WA_APP_RATE", "10"), ("WA_APP_BURST", "3")]).unwrap(),
            LimitConfig {
                rate: 10.0,
                burst: 3
            }
        );
        assert_eq!(cfg(&[("WA_APP_RATE", " ")]).unwrap(), LimitConfig::OFF);
        for (k, v) in [
            ("WA_APP_RATE", "fast"),
            ("WA_APP_RATE", "-1"),
            ("WA_APP_RATE", "inf"),
            ("WA_APP_RATE", "NaN"),
            ("WA_APP_BURST", "0"),
            ("WA_APP_BURST", "1.5"),
            ("WA_APP_BURST", "-3"),
        ] {
            assert_eq!(cfg(&[(k, v)]).unwrap_err().0, k, "{k}={v}");
        }
    }

    #[test]
    fn retry_after_rows() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1, "at least 1");
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(999)), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(1)), 1);
        assert_eq!(
            retry_after_secs(Duration::from_millis(1001)),
            2,
            "rounded up"
        );
        assert_eq!(retry_after_secs(Duration::from_secs(30)), 30);
        assert_eq!(retry_after_secs(Duration::MAX), u64::MAX, "no overflow");
    }

    #[test]
    fn secured_operations_document_the_429() {
        use utoipa::OpenApi as _;
        let (_, mut api) = utoipa_axum::router::OpenApiRouter::<crate::AppState>::with_openapi(
            crate::openapi::BaseDoc::openapi(),
        )
        .merge(crate::health_router())
        .split_for_parts();
        let mut secured = api.paths.paths["/health"].clone();
        if let Some(op) = secured.get.as_mut() {
            let none: [&str; 0] = [];
            op.security = Some(vec![utoipa::openapi::security::SecurityRequirement::new(
                crate::openapi::APP_TOKEN,
                none,
            )]);
        }
        api.paths.paths.insert("/secured".into(), secured);
        document(&mut api);
        let doc = serde_json::to_value(&api).unwrap();
        let r = &doc["paths"]["/secured"]["get"]["responses"]["429"];
        assert_eq!(
            r["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/ErrorResponse"
        );
        assert_eq!(r["headers"]["Retry-After"]["schema"]["type"], "integer");
        assert!(
            doc["paths"]["/health"]["get"]["responses"]["429"].is_null(),
            "/health is never limited"
        );
    }

    #[test]
    fn off_allows_everything() {
        let l = RequestLimiter::new(LimitConfig::OFF);
        for _ in 0..10_000 {
            assert!(l.check(Caller::App(Uuid::nil())).is_ok());
        }
        assert!(
            RequestLimiter::default()
                .check(Caller::App(Uuid::nil()))
                .is_ok()
        );
    }

    #[test]
    fn a_spent_caller_gets_429_with_retry_after_and_others_do_not() {
        let l = RequestLimiter::new(LimitConfig {
            rate: 0.01,
            burst: 2,
        });
        let a = Caller::App(Uuid::now_v7());
        assert!(l.check(a.clone()).is_ok());
        assert!(l.check(a.clone()).is_ok());
        let e = l.check(a.clone()).unwrap_err();
        assert_eq!(e.code(), ErrorCode::RateLimitExceeded);
        let res = axum::response::IntoResponse::into_response(e);
        assert_eq!(res.status(), http::StatusCode::TOO_MANY_REQUESTS);
        let secs: u64 = res.headers()[http::header::RETRY_AFTER]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=100).contains(&secs), "{secs}");
        assert!(l.check(Caller::App(Uuid::now_v7())).is_ok(), "another App");
        assert!(
            l.check(Caller::Tenant("acme".into())).is_ok(),
            "a tenant has its own bucket"
        );
    }

    /// Through a router: the extractors take from the buckets, errors keep the envelope,
    /// and routes without a credential are never limited.
    mod router {
        use std::sync::Arc;

        use axum::{Router, body::Body, routing::get};
        use http::{Request, StatusCode};
        use http_body_util::BodyExt;
        use serde_json::Value;
        use tower::ServiceExt;
        use wa_core::apps::CreateApp;
        use wa_core::auth::JwtConfig;

        use super::*;
        use crate::{AppState, AuthedApp, Context, Tenant};

        async fn whoami(AuthedApp(app): AuthedApp) -> crate::ApiOk<String> {
            crate::ok(app.app_id.to_string())
        }

        async fn tenant(Tenant(t): Tenant) -> crate::ApiOk<String> {
            crate::ok(t)
        }

        fn setup(limiter: Option<LimitConfig>) -> (Router, AppState) {
            let store = Arc::new(wa_store::SqliteStore::in_memory().unwrap());
            let queue = Arc::new(wa_queue::LocalQueue::in_memory(5).unwrap());
            let mut ctx = Context::new(
                store,
                queue,
                JwtConfig::new("0123456789abcdef0123456789abcdef", None, None).unwrap(),
                false,
            );
            if let Some(c) = limiter {
                ctx.limiter = RequestLimiter::new(c);
            }
            let ctx = ctx.into_state();
            let (health, _) = crate::health_router().split_for_parts();
            let r = Router::new()
                .route("/whoami", get(whoami))
                .route("/tenant", get(tenant))
                .merge(health)
                .with_state(ctx.clone());
            (crate::finish_router(r, 1024, Default::default()), ctx)
        }

        async fn app_token(ctx: &AppState, name: &str) -> String {
            ctx.apps
                .create("acme", CreateApp::named(name))
                .await
                .unwrap()
                .app_token
        }

        /// Status, `Retry-After` and body; checks the envelope of every error.
        async fn call(r: &Router, uri: &str, token: &str) -> (StatusCode, Option<u64>, Value) {
            let req = Request::get(uri)
                .header("authorization", format!("Bearer {token}"))
                .body(Body::empty())
                .unwrap();
            let res = r.clone().oneshot(req).await.unwrap();
            let status = res.status();
            let retry = res
                .headers()
                .get(http::header::RETRY_AFTER)
                .map(|v| v.to_str().unwrap().parse().unwrap());
            let id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
            let bytes = res.into_body().collect().await.unwrap().to_bytes();
            let v: Value = serde_json::from_slice(&bytes).unwrap();
            if !status.is_success() {
                assert_eq!(v["request_id"], id.as_str(), "{v}");
                assert!(v["error"]["message"].is_string(), "{v}");
            }
            (status, retry, v)
        }

        #[tokio::test]
        async fn a_burst_then_429_with_retry_after_other_apps_unaffected() {
            let (r, ctx) = setup(Some(LimitConfig {
                rate: 0.01,
                burst: 3,
            }));
            let a = app_token(&ctx, "a").await;
            let b = app_token(&ctx, "b").await;
            for _ in 0..3 {
                let (s, retry, v) = call(&r, "/whoami", &a).await;
                assert_eq!((s, retry), (StatusCode::OK, None), "{v}");
            }
            let (s, retry, v) = call(&r, "/whoami", &a).await;
            assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{v}");
            assert_eq!(v["error"]["code"], "rate_limit_exceeded");
            let retry = retry.expect("Retry-After");
            assert!((1..=100).contains(&retry), "{retry}");
            let (s, _, v) = call(&r, "/whoami", &b).await;
            assert_eq!(
                s,
                StatusCode::OK,
                "another App keeps its own allowance: {v}"
            );
            let (s, _, v) = call(&r, "/whoami", "wa_nope").await;
            assert_eq!(
                (s, v["error"]["code"].as_str()),
                (StatusCode::UNAUTHORIZED, Some("invalid_api_key")),
                "a bad token is refused as such, not limited"
            );
            for _ in 0..20 {
                let (s, _, _) = call(&r, "/health", &a).await;
                assert_eq!(s, StatusCode::OK, "/health is never limited");
            }
        }

        #[tokio::test]
        async fn tenant_routes_are_limited_per_tenant() {
            let (r, ctx) = setup(Some(LimitConfig {
                rate: 0.01,
                burst: 1,
            }));
            let acme = ctx.jwt.as_ref().unwrap().mint("acme", 60).unwrap();
            let other = ctx.jwt.as_ref().unwrap().mint("other", 60).unwrap();
            assert_eq!(call(&r, "/tenant", &acme).await.0, StatusCode::OK);
            let (s, retry, v) = call(&r, "/tenant", &acme).await;
            assert_eq!(
                (s, v["error"]["code"].as_str()),
                (StatusCode::TOO_MANY_REQUESTS, Some("rate_limit_exceeded"))
            );
            assert!(retry.is_some_and(|r| r >= 1));
            assert_eq!(call(&r, "/tenant", &other).await.0, StatusCode::OK);
        }

        #[tokio::test]
        async fn off_by_default() {
            let (r, ctx) = setup(None);
            let a = app_token(&ctx, "a").await;
            let jwt = ctx.jwt.as_ref().unwrap().mint("acme", 60).unwrap();
            for _ in 0..500 {
                assert_eq!(call(&r, "/whoami", &a).await.0, StatusCode::OK);
                assert_eq!(call(&r, "/tenant", &jwt).await.0, StatusCode::OK);
            }
        }
    }
}
