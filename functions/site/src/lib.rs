//! The parts of wa-server that are not one router's: the whole API's router composition
//! and its OpenAPI document (`/openapi.json`), the docs page (`/docs`), and the web
//! dashboard (`/` and `/dashboard/...`). `wa-server` serves them with its routers; the site
//! Lambda (`wa-fn-site`) serves the document, the docs and the dashboard, and answers every
//! path API Gateway routes nowhere else (`$default`) with the 404 `not_found` envelope.

mod dashboard;

use std::sync::Arc;

use axum::Router;
use axum::response::IntoResponse;
use axum::routing::get;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use wa_api::AppState;

pub use dashboard::CSP;

/// Every API router of wa-server (the sandbox's control routes with `with_sandbox`), with
/// the OpenAPI description of each route.
pub fn api_router(with_sandbox: bool) -> OpenApiRouter<AppState> {
    let api = OpenApiRouter::with_openapi(wa_api::openapi::BaseDoc::openapi())
        .merge(wa_api::health_router())
        .merge(wa_fn_apps::router())
        .merge(wa_fn_devices::router())
        .merge(wa_fn_devices::media_router())
        .merge(wa_fn_devices::webhooks_router())
        .merge(wa_fn_messages::router());
    if with_sandbox {
        api.merge(wa_fn_devices::sandbox_router())
    } else {
        api
    }
}

/// The API's routes and its complete OpenAPI document (the request limiter's answers
/// included), as `/openapi.json` serves it.
pub fn split(api: OpenApiRouter<AppState>) -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, mut doc) = api.split_for_parts();
    wa_api::limit::document(&mut doc);
    (router, doc)
}

/// The OpenAPI document of the whole API, as `/openapi.json` serves it.
pub fn document(with_sandbox: bool) -> utoipa::openapi::OpenApi {
    split(api_router(with_sandbox)).1
}

/// The document as `/openapi.json` serves it: `doc` with the webhook events
/// (`webhooks`, which utoipa does not describe).
pub fn document_json(doc: &utoipa::openapi::OpenApi) -> String {
    let mut value = serde_json::to_value(doc).expect("the OpenAPI document serializes");
    value["webhooks"] = wa_fn_devices::webhook_events::section();
    serde_json::to_string_pretty(&value).expect("the OpenAPI document serializes")
}

/// `GET /openapi.json` (`doc`, see [`document_json`]), the docs page under `/docs`
/// (Swagger UI, its assets embedded) and the dashboard.
pub fn router(doc: &utoipa::openapi::OpenApi) -> Router {
    let spec: Arc<str> = document_json(doc).into();
    let docs = swagger_ui_dist::generate_routes(swagger_ui_dist::ApiDefinition {
        uri_prefix: "/docs",
        api_definition: swagger_ui_dist::OpenApiSource::Uri("/openapi.json"),
        title: Some("wa-server API"),
    });
    Router::new()
        .route(
            "/openapi.json",
            get(move || {
                let spec = spec.clone();
                async move {
                    (
                        [(axum::http::header::CONTENT_TYPE, "application/json")],
                        spec.to_string(),
                    )
                        .into_response()
                }
            }),
        )
        .merge(docs)
        .merge(dashboard::router())
}

#[cfg(test)]
mod tests;
