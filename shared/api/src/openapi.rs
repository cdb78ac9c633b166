//! The parts of the OpenAPI description every router shares: the envelopes and the two
//! bearer schemes.

use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};
use wa_errors::schema::{ErrorDetail, ErrorResponse};

/// The success envelope: `{"data": ..., "request_id": ...}`.
#[derive(Serialize, ToSchema)]
pub struct Envelope<T: ToSchema> {
    pub data: T,
    /// The id of the request, also in the `x-request-id` header.
    pub request_id: String,
}

/// Security scheme name of the tenant JWT (`/apps`).
pub const JWT: &str = "tenant_jwt";
/// Security scheme name of the App token (devices, messages, media, sandbox).
pub const APP_TOKEN: &str = "app_token";

struct Schemes;

impl Modify for Schemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            JWT,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "HS256 JWT with a `tenant_id` claim (`wa-server token`)",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            APP_TOKEN,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The App token returned when the App was created or rotated",
                    ))
                    .build(),
            ),
        );
    }
}

/// The base document the routers' paths are merged into.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "wa-server",
        description = "Multi-tenant WhatsApp API: Apps, devices, messages and signed webhooks. \
                       Every error answers `{\"error\":{\"code\",\"message\",\"details\"},\"request_id\"}`.",
    ),
    components(schemas(ErrorResponse, ErrorDetail)),
    modifiers(&Schemes),
    tags(
        (name = "apps", description = "Apps of a tenant (tenant JWT)"),
        (name = "health", description = "Liveness"),
    )
)]
pub struct BaseDoc;

/// The refusals of a route carried out by the device's live session (typing, presence, the
/// contacts check, the actions on a message): the request's and the device's checks, then
/// the session's.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // Only its OpenAPI description is used.
pub enum SessionRefusals {
    #[response(status = 400, description = "validation_error")]
    Validation(ErrorResponse),
    #[response(status = 401, description = "invalid_api_key")]
    Unauthorized(ErrorResponse),
    #[response(status = 403, description = "forbidden")]
    Forbidden(ErrorResponse),
    #[response(status = 404, description = "not_found: no such device (or message)")]
    NotFound(ErrorResponse),
    #[response(
        status = 409,
        description = "device_not_connected; for an action on a message also conflict, when the message cannot take it"
    )]
    NotConnected(ErrorResponse),
    #[response(status = 410, description = "device_destroyed")]
    Destroyed(ErrorResponse),
    #[response(status = 502, description = "provider_error")]
    Provider(ErrorResponse),
    #[response(status = 503, description = "whatsapp_connection_lost")]
    ConnectionLost(ErrorResponse),
    #[response(status = 504, description = "upstream_timeout")]
    Timeout(ErrorResponse),
}
