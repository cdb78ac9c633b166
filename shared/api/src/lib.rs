//! HTTP plumbing shared by every router of wa-server: the request context, the two
//! authentication extractors (tenant JWT, App token), list pagination, /health, and the
//! OpenAPI description's common parts.

mod auth;
mod health;
pub mod openapi;
mod pagination;

use std::sync::Arc;

use wa_core::AppStore;
use wa_core::apps::Apps;
use wa_core::auth::JwtConfig;

pub use auth::{AuthedApp, Tenant};
pub use health::router as health_router;
pub use pagination::{ListQuery, Listed, encode_cursor};

/// What handlers share: the use cases and the credentials to check callers with.
pub struct Context {
    pub apps: Apps,
    pub store: Arc<dyn AppStore>,
    pub jwt: JwtConfig,
    /// Reported by /health.
    pub version: &'static str,
}

/// The state type of every router.
pub type AppState = Arc<Context>;

impl Context {
    pub fn new(store: Arc<dyn AppStore>, jwt: JwtConfig, allow_private_urls: bool) -> AppState {
        Arc::new(Context {
            apps: Apps::new(store.clone(), allow_private_urls),
            store,
            jwt,
            version: env!("CARGO_PKG_VERSION"),
        })
    }
}
