//! Apps: a tenant's units of integration. Each has a name unique in its tenant, an App token
//! (stored as a hash) and a webhook secret.

use std::sync::Arc;

use serde::{Deserialize, Deserializer};
use uuid::Uuid;
use wa_errors::{ApiError, ApiResult};

use crate::auth;
use crate::device_service::Devices;
use crate::devices::Device;
use crate::media::MediaStore;
use crate::net::check_outbound_url;
use crate::store::{AppUpdate, Page, PageRequest, Store, StoreError};
use crate::time::{self, OffsetDateTime};

/// The longest App name, in characters.
pub const MAX_APP_NAME_CHARS: usize = 100;

/// A stored App.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct App {
    pub app_id: Uuid,
    pub tenant_id: String,
    pub name: String,
    pub webhook_url: Option<String>,
    /// SHA-256 (hex) of the App token.
    pub token_hash: String,
    /// Kept in clear: webhooks are signed with it.
    pub webhook_secret: String,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// Body of `POST /apps`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "My App", "webhook_url": "https://example.com/wa-events"}))]
pub struct CreateApp {
    /// 1-100 characters, unique among the tenant's Apps.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    pub name: String,
    /// Where events are POSTed: http(s), no private/loopback/link-local target.
    #[serde(default)]
    #[schema(max_length = 2048, pattern = r"^https?://")]
    pub webhook_url: Option<String>,
}

impl CreateApp {
    /// The body of a request for an App named `name`, without a webhook URL.
    pub fn named(name: &str) -> CreateApp {
        CreateApp {
            name: name.to_owned(),
            webhook_url: None,
        }
    }
}

/// Body of `PATCH /apps/{app_id}`: absent fields stay, `webhook_url: null` clears it.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchApp {
    /// A new name, unique among the tenant's Apps.
    #[serde(default)]
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    pub name: Option<String>,
    /// A new webhook URL; `null` or `""` removes it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, max_length = 2048, pattern = r"^(https?://.*)?$")]
    pub webhook_url: Option<Option<String>>,
}

/// Distinguishes a field sent as `null` (`Some(None)`) from an absent one (`None`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// A newly created App with its credentials, shown to the caller once.
#[derive(Debug, Clone)]
pub struct CreatedApp {
    pub app: App,
    pub app_token: String,
    pub webhook_secret: String,
}

/// The App use cases.
#[derive(Clone)]
pub struct Apps {
    store: Arc<dyn Store>,
    /// Deleting an App destroys its devices.
    devices: Devices,
    /// Deleting an App deletes its media files, where they are reachable from here.
    media: Option<Arc<dyn MediaStore>>,
    allow_private_urls: bool,
}

impl Apps {
    pub fn new(store: Arc<dyn Store>, devices: Devices, allow_private_urls: bool) -> Self {
        Apps {
            store,
            devices,
            media: None,
            allow_private_urls,
        }
    }

    /// These use cases, deleting an App's media files in `media` when the App is deleted.
    pub fn with_media(mut self, media: Arc<dyn MediaStore>) -> Self {
        self.media = Some(media);
        self
    }

    pub async fn create(&self, tenant_id: &str, req: CreateApp) -> ApiResult<CreatedApp> {
        let name = validate_name(&req.name)?;
        let webhook_url = self.validate_webhook_url(req.webhook_url.as_deref())?;
        let app_token = auth::new_app_token();
        let webhook_secret = auth::new_webhook_secret();
        let now = time::now();
        let app = App {
            app_id: Uuid::now_v7(),
            tenant_id: tenant_id.to_owned(),
            name,
            webhook_url,
            token_hash: auth::hash_token(&app_token),
            webhook_secret: webhook_secret.clone(),
            created_at: now,
            updated_at: now,
        };
        self.store.insert_app(&app).await.map_err(name_conflict)?;
        tracing::info!(app_id = %app.app_id, tenant_id, "app created");
        Ok(CreatedApp {
            app,
            app_token,
            webhook_secret,
        })
    }

    pub async fn list(&self, tenant_id: &str, page: PageRequest) -> ApiResult<Page<App>> {
        Ok(self.store.list_apps(tenant_id, page).await?)
    }

    /// The tenant's App; another tenant's App is reported as not found.
    pub async fn get(&self, tenant_id: &str, app_id: Uuid) -> ApiResult<App> {
        match self.store.get_app(app_id).await? {
            Some(app) if app.tenant_id == tenant_id => Ok(app),
            _ => Err(ApiError::not_found("app not found")),
        }
    }

    pub async fn patch(&self, tenant_id: &str, app_id: Uuid, req: PatchApp) -> ApiResult<App> {
        self.get(tenant_id, app_id).await?;
        let name = req.name.as_deref().map(validate_name).transpose()?;
        let webhook_url = match req.webhook_url {
            None => None,
            Some(url) => Some(self.validate_webhook_url(url.as_deref())?),
        };
        let update = AppUpdate {
            name,
            webhook_url,
            updated_at: Some(time::now()),
            ..AppUpdate::default()
        };
        self.update(app_id, &update).await
    }

    /// Replaces the App token; the old one stops working at once.
    pub async fn rotate_token(&self, tenant_id: &str, app_id: Uuid) -> ApiResult<(App, String)> {
        self.get(tenant_id, app_id).await?;
        let token = auth::new_app_token();
        let update = AppUpdate {
            token_hash: Some(auth::hash_token(&token)),
            updated_at: Some(time::now()),
            ..AppUpdate::default()
        };
        let app = self.update(app_id, &update).await?;
        tracing::info!(%app_id, "app token rotated");
        Ok((app, token))
    }

    /// Replaces the webhook secret.
    pub async fn rotate_webhook_secret(
        &self,
        tenant_id: &str,
        app_id: Uuid,
    ) -> ApiResult<(App, String)> {
        self.get(tenant_id, app_id).await?;
        let secret = auth::new_webhook_secret();
        let update = AppUpdate {
            webhook_secret: Some(secret.clone()),
            updated_at: Some(time::now()),
            ..AppUpdate::default()
        };
        let app = self.update(app_id, &update).await?;
        tracing::info!(%app_id, "webhook secret rotated");
        Ok((app, secret))
    }

    /// Deletes the App and destroys its devices; its token stops working at once.
    ///
    /// First the App is closed to new devices, so that a device created while this runs
    /// is refused rather than left with a live session under a deleted App; then every
    /// device of it is destroyed (the worker unlinks them), read so that a device created
    /// a moment before is among them; then its media files go (the worker deletes each
    /// destroyed device's files too, including any it writes until the device's session
    /// ends), then the App. A failure half-way leaves the App in place (closed), so the
    /// delete can be retried.
    pub async fn delete(&self, tenant_id: &str, app_id: Uuid) -> ApiResult<()> {
        let app = self.get(tenant_id, app_id).await?;
        self.store.close_app(app_id).await?;
        self.devices.destroy_all_of_app(&app).await?;
        if let Some(media) = &self.media {
            media.delete_app(app_id).await?;
        }
        match self.store.delete_app(app_id).await {
            Ok(()) | Err(StoreError::NotFound) => {
                tracing::info!(%app_id, "app deleted");
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The App an App token belongs to, compared in constant time.
    pub async fn authenticate(&self, token: &str) -> ApiResult<App> {
        let hash = auth::hash_token(token);
        match self.store.app_by_token_hash(&hash).await? {
            Some(app) if auth::hash_matches(&hash, &app.token_hash) => Ok(app),
            _ => Err(ApiError::invalid_api_key()),
        }
    }

    /// [`Apps::authenticate`], with the device `device_id` read in the same request where
    /// the store can; the device is anyone's until the caller checks it
    /// (`Devices::get_read`).
    pub async fn authenticate_with_device(
        &self,
        token: &str,
        device_id: Uuid,
    ) -> ApiResult<(App, Option<Device>)> {
        let hash = auth::hash_token(token);
        match self
            .store
            .app_by_token_hash_with_device(&hash, device_id)
            .await?
        {
            (Some(app), device) if auth::hash_matches(&hash, &app.token_hash) => Ok((app, device)),
            _ => Err(ApiError::invalid_api_key()),
        }
    }

    async fn update(&self, app_id: Uuid, update: &AppUpdate) -> ApiResult<App> {
        self.store
            .update_app(app_id, update)
            .await
            .map_err(|e| match e {
                StoreError::NotFound => ApiError::not_found("app not found"),
                e => name_conflict(e),
            })
    }

    fn validate_webhook_url(&self, url: Option<&str>) -> ApiResult<Option<String>> {
        match url.map(str::trim) {
            None | Some("") => Ok(None),
            Some(raw) => check_outbound_url(raw, self.allow_private_urls)
                .map(|u| Some(u.to_string()))
                .map_err(|r| ApiError::validation("webhook_url", format!("`webhook_url` {}", r.0))),
        }
    }
}

fn name_conflict(e: StoreError) -> ApiError {
    match e {
        StoreError::Conflict("app_name") => {
            ApiError::conflict("an app with this name already exists").with_detail("field", "name")
        }
        e => e.into(),
    }
}

/// Trims the name and checks it: 1-100 characters, no control characters.
pub fn validate_name(raw: &str) -> ApiResult<String> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > MAX_APP_NAME_CHARS {
        return Err(ApiError::validation(
            "name",
            "`name` must be 1-100 characters",
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(ApiError::validation(
            "name",
            "`name` must not contain control characters",
        ));
    }
    Ok(name.to_owned())
}
