//! `GET /health`: no authentication; 503 when a dependency fails its check.

use axum::{extract::State, response::IntoResponse};
use http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::AppState;

/// Health of the server and its dependencies.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok` or `degraded`.
    pub status: &'static str,
    pub version: &'static str,
    /// One entry per dependency: `ok` or `error`.
    #[schema(value_type = Object)]
    pub checks: serde_json::Map<String, serde_json::Value>,
}

/// Server health
#[utoipa::path(get, path = "/health", tag = "health",
    responses(
        (status = 200, description = "Healthy", body = Health),
        (status = 503, description = "A dependency failed its check", body = Health),
    ))]
async fn health(State(ctx): State<AppState>) -> impl IntoResponse {
    let mut checks = serde_json::Map::new();
    let store_ok = match ctx.store.ping().await {
        Ok(()) => true,
        Err(e) => {
            tracing::error!(error = %e, "store health check failed");
            false
        }
    };
    checks.insert(
        "store".into(),
        (if store_ok { "ok" } else { "error" }).into(),
    );
    let (status, word) = if store_ok {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "degraded")
    };
    // /health answers its own shape (no data envelope), as the contract pins it.
    (
        status,
        axum::Json(Health {
            status: word,
            version: ctx.version,
            checks,
        }),
    )
}

/// The /health route.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(health))
}
