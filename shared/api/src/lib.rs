//! HTTP plumbing shared by every router of wa-server: the request context, the success
//! envelope, the extractors (JSON body, query, the two credentials: tenant JWT and App
//! token) and their request limiter, the request-id layer, router finishing (404/405, body
//! limit, panic catching), the HTTP metrics, list pagination, /health, the OpenAPI
//! description's common parts, and the wire views several routers share.
//! `ApiError` renders through `wa-errors`' `http` feature, which this crate turns on.

mod auth;
mod extract;
mod finish;
mod health;
pub mod limit;
pub mod metrics;
pub mod openapi;
mod pagination;
pub mod request_id;
mod response;
pub mod views;

use std::sync::Arc;

use wa_core::Store;
use wa_core::apps::Apps;
use wa_core::auth::JwtConfig;
use wa_core::device_service::Devices;
use wa_core::media::MediaStore;
use wa_core::notify::Notifier;
use wa_core::queue::Queue;
use wa_core::send_service::Messages;
use wa_core::session::{DEFAULT_QUERY_WAIT, QueuedSessions, Sessions};

pub use auth::{AuthedApp, AuthedAppDevice, Tenant};
pub use extract::{ApiJson, ApiQuery};
pub use finish::finish_router;
pub use health::router as health_router;
pub use limit::{LimitConfig, RequestLimiter};
pub use pagination::{ListQuery, Listed, check_limit, encode_cursor};
pub use request_id::RequestIdConfig;
pub use response::{ApiOk, created, ok};

/// What handlers share: the use cases and the credentials to check callers with.
pub struct Context {
    pub apps: Apps,
    pub devices: Devices,
    pub messages: Messages,
    pub store: Arc<dyn Store>,
    pub queue: Arc<dyn Queue>,
    pub notifier: Arc<Notifier>,
    /// How tenant JWTs are checked; `None` where no tenant JWT is verified (an HTTP Lambda
    /// without JWT routes): a JWT route then answers 401 unauthorized.
    pub jwt: Option<JwtConfig>,
    /// Reported by /health.
    pub version: &'static str,
    /// Where what only a live session can answer is asked (profile, groups, the sandbox's
    /// control routes): the worker in this process (`LocalSessions`), or the device's
    /// worker through the commands queue (`QueuedSessions`, the default, waiting
    /// `DEFAULT_QUERY_WAIT`).
    pub sessions: Arc<dyn Sessions>,
    /// Whether the sandbox's control routes are served: the workers run the sandbox
    /// (`WA_PROVIDER=sandbox`).
    pub sandbox_routes: bool,
    /// Where inbound media files are (`GET /media`), where this process reaches them;
    /// set with [`Context::set_media`].
    pub media: Option<Arc<dyn MediaStore>>,
    /// The per-App (and, on `/apps`, per-tenant) request limiter; off unless configured.
    pub limiter: RequestLimiter,
}

/// The state type of every router.
pub type AppState = Arc<Context>;

impl Context {
    /// `jwt`: a `JwtConfig`, or `None` where no tenant JWT is verified.
    pub fn new(
        store: Arc<dyn Store>,
        queue: Arc<dyn Queue>,
        jwt: impl Into<Option<JwtConfig>>,
        allow_private_urls: bool,
    ) -> Context {
        let notifier = Notifier::new();
        let sessions = Arc::new(QueuedSessions::new(
            store.clone(),
            queue.clone(),
            DEFAULT_QUERY_WAIT,
        ));
        let devices = Devices::new(store.clone(), queue.clone(), notifier.clone());
        Context {
            apps: Apps::new(store.clone(), devices.clone(), allow_private_urls),
            messages: Messages::new(
                store.clone(),
                queue.clone(),
                notifier.clone(),
                devices.clone(),
                allow_private_urls,
            ),
            devices,
            store,
            queue,
            notifier,
            jwt: jwt.into(),
            version: env!("CARGO_PKG_VERSION"),
            sessions,
            sandbox_routes: false,
            media: None,
            limiter: RequestLimiter::off(),
        }
    }

    /// Serves inbound media from `media`, and deletes an App's media there when the App is
    /// deleted.
    pub fn set_media(&mut self, media: Arc<dyn MediaStore>) {
        self.apps = self.apps.clone().with_media(media.clone());
        self.media = Some(media);
    }

    pub fn into_state(self) -> AppState {
        Arc::new(self)
    }
}
