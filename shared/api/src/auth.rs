//! Authentication extractors. Their rejections are the seed's 401s: `unauthorized` for the
//! tenant JWT of /apps, `invalid_api_key` for the App token of everything else.

use axum::extract::FromRequestParts;
use http::{header, request::Parts};
use wa_core::apps::App;
use wa_errors::ApiError;

use crate::AppState;

fn bearer(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(wa_core::auth::bearer)
}

/// The tenant of a valid JWT (`Authorization: Bearer <jwt>`).
#[derive(Debug, Clone)]
pub struct Tenant(pub String);

impl FromRequestParts<AppState> for Tenant {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, ctx: &AppState) -> Result<Self, ApiError> {
        let token = bearer(parts).ok_or_else(|| ApiError::unauthorized("Bearer JWT is missing"))?;
        match ctx.jwt.verify(token) {
            Ok(claims) => {
                tracing::Span::current().record("tenant_id", claims.tenant_id.as_str());
                Ok(Tenant(claims.tenant_id))
            }
            Err(e) => {
                tracing::info!(reason = %e, "JWT refused");
                Err(ApiError::unauthorized("Bearer JWT is invalid or expired"))
            }
        }
    }
}

/// The App of a valid App token (`Authorization: Bearer <app_token>`).
#[derive(Debug, Clone)]
pub struct AuthedApp(pub App);

impl FromRequestParts<AppState> for AuthedApp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, ctx: &AppState) -> Result<Self, ApiError> {
        let token = bearer(parts).ok_or_else(ApiError::invalid_api_key)?;
        let app = ctx.apps.authenticate(token).await?;
        tracing::Span::current().record("app_id", tracing::field::display(app.app_id));
        Ok(AuthedApp(app))
    }
}
