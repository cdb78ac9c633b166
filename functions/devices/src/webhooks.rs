//! `GET /webhooks/deliveries` and `POST /webhooks/deliveries/{id}/retry` (App token): the
//! App's webhook deliveries, and replaying a failed one.

use axum::extract::{Path, State};
use axum::response::IntoResponse;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use wa_api::openapi::Envelope;
use wa_api::{ApiQuery, ok};
use wa_api::{AppState, AuthedApp};
use wa_core::store::{Delivery, DeliveryStatus, StoreError};
use wa_core::time::{self, OffsetDateTime};
use wa_errors::schema::ErrorResponse;
use wa_errors::{ApiError, ApiResult, parse_uuid};

/// A webhook delivery: one event and how its delivery went.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryView {
    /// The event's `request_id`, also its `webhook-id`.
    pub delivery_id: String,
    pub event: wa_core::webhooks::EventType,
    pub device_id: uuid::Uuid,
    pub status: DeliveryStatus,
    pub attempts: u32,
    /// When the next attempt is due (pending deliveries).
    #[serde(with = "time::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub next_attempt_at: Option<OffsetDateTime>,
    pub last_error: Option<String>,
    pub last_status_code: Option<u16>,
    #[serde(with = "time::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
    /// The body POSTed to the webhook.
    #[schema(value_type = Object)]
    pub body: serde_json::Value,
}

impl From<&Delivery> for DeliveryView {
    fn from(d: &Delivery) -> Self {
        DeliveryView {
            delivery_id: d.event.request_id.clone(),
            event: d.event.event,
            device_id: d.event.device_id,
            status: d.status,
            attempts: d.attempts,
            next_attempt_at: (d.status == DeliveryStatus::Pending).then_some(d.next_attempt_at),
            last_error: d.last_error.clone(),
            last_status_code: d.last_status_code,
            created_at: d.event.timestamp,
            updated_at: d.updated_at,
            body: serde_json::to_value(&d.event).unwrap_or_default(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryList {
    pub deliveries: Vec<DeliveryView>,
    pub count: usize,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryData {
    pub delivery: DeliveryView,
}

/// Query of the deliveries list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveryQuery {
    /// `pending`, `delivered`, `failed` or `skipped`.
    #[param(value_type = Option<DeliveryStatus>)]
    pub status: Option<String>,
    /// Page size, 1-200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// The App's webhook deliveries, newest first
#[utoipa::path(get, path = "/webhooks/deliveries", operation_id = "list_webhook_deliveries", tag = "webhooks", security(("app_token" = [])),
    params(DeliveryQuery),
    responses(
        (status = 200, description = "One page", body = Envelope<DeliveryList>),
        (status = 400, description = "validation_error (status, limit, cursor)", body = ErrorResponse),
        (status = 401, description = "invalid_api_key", body = ErrorResponse),
    ))]
async fn list(
    State(ctx): State<AppState>,
    AuthedApp(app): AuthedApp,
    ApiQuery(q): ApiQuery<DeliveryQuery>,
) -> ApiResult<impl IntoResponse> {
    let status = match q.status.as_deref() {
        None | Some("") => None,
        Some(s) => Some(DeliveryStatus::parse(s).ok_or_else(|| {
            ApiError::validation(
                "status",
                "`status` must be pending, delivered, failed or skipped",
            )
        })?),
    };
    let limit = wa_api::check_limit(q.limit)?;
    let before = match q.cursor.as_deref().filter(|c| !c.is_empty()) {
        None => None,
        Some(c) => Some(
            URL_SAFE_NO_PAD
                .decode(c)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|s| s.parse::<i64>().ok())
                .ok_or_else(|| {
                    ApiError::validation("cursor", "`cursor` is not a cursor this API issued")
                })?,
        ),
    };
    let (items, next) = ctx
        .store
        .list_deliveries(app.app_id, status, limit, before)
        .await?;
    let deliveries: Vec<DeliveryView> = items.iter().map(DeliveryView::from).collect();
    Ok(ok(DeliveryList {
        count: deliveries.len(),
        deliveries,
        next_cursor: next.map(|n| URL_SAFE_NO_PAD.encode(n.to_string())),
    }))
}

/// Replay a failed delivery
///
/// The same event, under the same `webhook-id`, is delivered again now (attempts restart).
#[utoipa::path(post, path = "/webhooks/deliveries/{delivery_id}/retry", tag = "webhooks", security(("app_token" = [])),
    params(("delivery_id" = String, Path, format = Uuid, description = "The delivery's id: the event's request_id, a UUID")),
    responses(
        (status = 200, description = "Pending again", body = Envelope<DeliveryData>),
        (status = 400, description = "validation_error (delivery_id: not a UUID)", body = ErrorResponse),
        (status = 401, description = "invalid_api_key", body = ErrorResponse),
        (status = 404, description = "not_found (also another App's delivery)", body = ErrorResponse),
        (status = 409, description = "conflict: it is pending or delivered", body = ErrorResponse),
    ))]
async fn retry(
    State(ctx): State<AppState>,
    AuthedApp(app): AuthedApp,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    // Delivery ids are the events' request ids: UUIDs, in their canonical form.
    let id = parse_uuid("delivery_id", &id)?.to_string();
    let not_found = || ApiError::not_found("delivery not found");
    match ctx.store.get_delivery(&id).await? {
        Some(d) if d.event.app_id == app.app_id => {}
        _ => return Err(not_found()),
    }
    let d = ctx.store.redeliver(&id).await.map_err(|e| match e {
        StoreError::Conflict(_) => {
            ApiError::conflict("only failed or skipped deliveries can be replayed")
        }
        StoreError::NotFound => not_found(),
        e => e.into(),
    })?;
    Ok(ok(DeliveryData {
        delivery: DeliveryView::from(&d),
    }))
}

/// The /webhooks routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(retry))
}
