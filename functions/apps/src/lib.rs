//! The `/apps` routes (tenant JWT): create, list, get, patch, delete, and rotation of the App
//! token and of the webhook secret. Served by the apps Lambda and by `wa-server`.

use axum::{extract::Path, extract::State, http::StatusCode, response::IntoResponse};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;
use wa_api::openapi::Envelope;
use wa_api::{ApiJson, ApiQuery, created, ok};
use wa_api::{AppState, ListQuery, Listed, Tenant, encode_cursor};
use wa_core::apps::{App, CreateApp, PatchApp};
use wa_errors::schema::ErrorResponse;
use wa_errors::{ApiResult, parse_uuid};

/// An App as the API shows it (credentials are never shown here).
#[derive(Debug, Serialize, ToSchema)]
pub struct AppView {
    pub app_id: Uuid,
    pub tenant_id: String,
    pub name: String,
    pub webhook_url: Option<String>,
    #[serde(with = "wa_core::time::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: wa_core::time::OffsetDateTime,
    #[serde(with = "wa_core::time::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: wa_core::time::OffsetDateTime,
}

impl From<App> for AppView {
    fn from(a: App) -> Self {
        AppView {
            app_id: a.app_id,
            tenant_id: a.tenant_id,
            name: a.name,
            webhook_url: a.webhook_url,
            created_at: a.created_at,
            updated_at: a.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AppData {
    pub app: AppView,
}

/// A new App and its credentials: the token and secret are shown only here.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedAppData {
    pub app: AppView,
    /// Bearer token for device, message, media and sandbox routes.
    pub app_token: String,
    /// Standard Webhooks signing secret (`whsec_...`).
    pub webhook_secret: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RotatedTokenData {
    pub app: AppView,
    /// The new App token; the previous one no longer works.
    pub app_token: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RotatedSecretData {
    pub app: AppView,
    /// The new webhook signing secret.
    pub webhook_secret: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AppList {
    pub apps: Vec<AppView>,
    pub count: usize,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Serialize)]
struct AppsKey {
    apps: Vec<AppView>,
}

fn app_id(raw: &str) -> ApiResult<Uuid> {
    parse_uuid("app_id", raw)
}

/// Create an App
#[utoipa::path(post, path = "/apps", tag = "apps", security(("tenant_jwt" = [])),
    request_body = CreateApp,
    responses(
        (status = 201, description = "Created; `app_token` and `webhook_secret` are shown only now", body = Envelope<CreatedAppData>),
        (status = 400, description = "validation_error", body = ErrorResponse),
        (status = 401, description = "unauthorized", body = ErrorResponse),
        (status = 409, description = "conflict: the tenant has an App of this name", body = ErrorResponse),
        (status = 413, description = "request_too_large", body = ErrorResponse),
    ))]
async fn create_app(
    State(ctx): State<AppState>,
    Tenant(tenant): Tenant,
    ApiJson(body): ApiJson<CreateApp>,
) -> ApiResult<impl IntoResponse> {
    let c = ctx.apps.create(&tenant, body).await?;
    Ok(created(CreatedAppData {
        app: c.app.into(),
        app_token: c.app_token,
        webhook_secret: c.webhook_secret,
    }))
}

/// List the tenant's Apps
#[utoipa::path(get, path = "/apps", tag = "apps", security(("tenant_jwt" = [])),
    params(ListQuery),
    responses(
        (status = 200, description = "One page of Apps, oldest first", body = Envelope<AppList>),
        (status = 400, description = "validation_error (limit, cursor)", body = ErrorResponse),
        (status = 401, description = "unauthorized", body = ErrorResponse),
    ))]
async fn list_apps(
    State(ctx): State<AppState>,
    Tenant(tenant): Tenant,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<impl IntoResponse> {
    let page = ctx.apps.list(&tenant, q.page()?).await?;
    let apps: Vec<AppView> = page.items.into_iter().map(Into::into).collect();
    Ok(ok(Listed {
        count: apps.len(),
        items: AppsKey { apps },
        next_cursor: page.next.map(encode_cursor),
    }))
}

/// Get an App
#[utoipa::path(get, path = "/apps/{app_id}", tag = "apps", security(("tenant_jwt" = [])),
    params(("app_id" = Uuid, Path, description = "The App's id")),
    responses(
        (status = 200, description = "The App", body = Envelope<AppData>),
        (status = 400, description = "validation_error: `app_id` is not a UUID", body = ErrorResponse),
        (status = 401, description = "unauthorized", body = ErrorResponse),
        (status = 404, description = "not_found (also for another tenant's App)", body = ErrorResponse),
    ))]
async fn get_app(
    State(ctx): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let app = ctx.apps.get(&tenant, app_id(&id)?).await?;
    Ok(ok(AppData { app: app.into() }))
}

/// Change an App's name or webhook URL
#[utoipa::path(patch, path = "/apps/{app_id}", tag = "apps", security(("tenant_jwt" = [])),
    params(("app_id" = Uuid, Path, description = "The App's id")),
    request_body = PatchApp,
    responses(
        (status = 200, description = "The updated App", body = Envelope<AppData>),
        (status = 400, description = "validation_error", body = ErrorResponse),
        (status = 401, description = "unauthorized", body = ErrorResponse),
        (status = 404, description = "not_found", body = ErrorResponse),
        (status = 409, description = "conflict: the name is taken", body = ErrorResponse),
    ))]
async fn patch_app(
    State(ctx): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<PatchApp>,
) -> ApiResult<impl IntoResponse> {
    let app = ctx.apps.patch(&tenant, app_id(&id)?, body).await?;
    Ok(ok(AppData { app: app.into() }))
}

/// Delete an App
///
/// Its token stops working at once and its devices are destroyed.
#[utoipa::path(delete, path = "/apps/{app_id}", tag = "apps", security(("tenant_jwt" = [])),
    params(("app_id" = Uuid, Path, description = "The App's id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "validation_error", body = ErrorResponse),
        (status = 401, description = "unauthorized", body = ErrorResponse),
        (status = 404, description = "not_found", body = ErrorResponse),
    ))]
async fn delete_app(
    State(ctx): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    ctx.apps.delete(&tenant, app_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Rotate the App token
///
/// The new token is shown once; the previous token stops working at once.
#[utoipa::path(post, path = "/apps/{app_id}/token", tag = "apps", security(("tenant_jwt" = [])),
    params(("app_id" = Uuid, Path, description = "The App's id")),
    responses(
        (status = 200, description = "The new token", body = Envelope<RotatedTokenData>),
        (status = 400, description = "validation_error", body = ErrorResponse),
        (status = 401, description = "unauthorized", body = ErrorResponse),
        (status = 404, description = "not_found", body = ErrorResponse),
    ))]
async fn rotate_token(
    State(ctx): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let (app, app_token) = ctx.apps.rotate_token(&tenant, app_id(&id)?).await?;
    Ok(ok(RotatedTokenData {
        app: app.into(),
        app_token,
    }))
}

/// Rotate the webhook secret
#[utoipa::path(post, path = "/apps/{app_id}/webhook-secret", tag = "apps", security(("tenant_jwt" = [])),
    params(("app_id" = Uuid, Path, description = "The App's id")),
    responses(
        (status = 200, description = "The new secret", body = Envelope<RotatedSecretData>),
        (status = 400, description = "validation_error", body = ErrorResponse),
        (status = 401, description = "unauthorized", body = ErrorResponse),
        (status = 404, description = "not_found", body = ErrorResponse),
    ))]
async fn rotate_webhook_secret(
    State(ctx): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let (app, webhook_secret) = ctx
        .apps
        .rotate_webhook_secret(&tenant, app_id(&id)?)
        .await?;
    Ok(ok(RotatedSecretData {
        app: app.into(),
        webhook_secret,
    }))
}

/// The /apps routes with their OpenAPI description.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_app, list_apps))
        .routes(routes!(get_app, patch_app, delete_app))
        .routes(routes!(rotate_token))
        .routes(routes!(rotate_webhook_secret))
}

#[cfg(test)]
mod tests;
