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
