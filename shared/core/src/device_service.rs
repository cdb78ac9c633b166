//! The device use cases behind the /devices routes: ownership checks, the status machine,
//! the worker's commands, and waiting for the worker's outcome.

use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;
use wa_errors::{ApiError, ApiResult, ErrorCode};

use crate::apps::App;
use crate::devices::{Device, DeviceStatus, PairCode, validate_device_name, validate_phone_number};
use crate::lifecycle::{Action, Plan, plan};
use crate::notify::Notifier;
use crate::provider::Presence;
use crate::queue::{Command, Queue, enqueue};
use crate::store::{Page, PageRequest, Store, StoreError};
use crate::time;

/// How often a waiting request re-reads the record when no wake-up arrives (another process).
const POLL: Duration = Duration::from_millis(200);

/// The device use cases.
#[derive(Clone)]
pub struct Devices {
    store: Arc<dyn Store>,
    queue: Arc<dyn Queue>,
    notifier: Arc<Notifier>,
    /// How long create / QR regeneration wait for the first QR before answering.
    pub link_wait: Duration,
    /// How long a pair-code request waits for the code.
    pub pair_code_wait: Duration,
}

impl Devices {
    pub fn new(store: Arc<dyn Store>, queue: Arc<dyn Queue>, notifier: Arc<Notifier>) -> Self {
        Devices {
            store,
            queue,
            notifier,
            link_wait: Duration::from_secs(10),
            pair_code_wait: Duration::from_secs(40),
        }
    }

    /// Creates a device and starts linking it; answers once the first QR is there (or
    /// after `link_wait`, still `initializing`).
    pub async fn create(&self, app: &App, device_name: &str) -> ApiResult<Device> {
        let name = validate_device_name(device_name)?;
        let now = time::now();
        let device = Device::new(app.app_id, &app.tenant_id, &name, now);
        self.store
            .insert_device(&device)
            .await
            .map_err(|e| match e {
                StoreError::Conflict("device_name") => {
                    ApiError::conflict("a live device with this name already exists in the app")
                        .with_detail("field", "device_name")
                }
                e => e.into(),
            })?;
        tracing::Span::current().record("device_id", tracing::field::display(device.device_id));
        tracing::info!(device_id = %device.device_id, "device created");
        enqueue(
            &*self.queue,
            Command::Link {
                device_id: device.device_id,
                pair_phone: None,
            },
        )
        .await?;
        self.wait_linking(device.device_id).await
    }

    pub async fn list(
        &self,
        app: &App,
        status: Option<DeviceStatus>,
        page: PageRequest,
    ) -> ApiResult<Page<Device>> {
        Ok(self.store.list_devices(app.app_id, status, page).await?)
    }

    /// The device if `app` may see it: another App of the tenant gets 403, another tenant 404.
    pub async fn get(&self, app: &App, device_id: Uuid) -> ApiResult<Device> {
        owned(app, self.store.get_device(device_id).await?)
    }

    /// [`Devices::get`] of a device read already (`read`: the device `device_id` as
    /// read with the caller's App, `Apps::authenticate_with_device`); read when `None`.
    pub async fn get_read(
        &self,
        app: &App,
        device_id: Uuid,
        read: Option<Device>,
    ) -> ApiResult<Device> {
        match read.filter(|d| d.device_id == device_id) {
            Some(d) => owned(app, Some(d)),
            None => self.get(app, device_id).await,
        }
    }

    /// POST /devices/{id}/qr: a new linking session, answered with its first QR.
    pub async fn regenerate_qr(&self, app: &App, device_id: Uuid) -> ApiResult<Device> {
        self.act(app, device_id, Action::RegenerateQr, None).await?;
        self.wait_linking(device_id).await
    }

    /// POST /devices/{id}/pair-code: link by phone number.
    pub async fn pair_code(&self, app: &App, device_id: Uuid, phone: &str) -> ApiResult<PairCode> {
        let phone = validate_phone_number("phone_number", phone)?;
        self.act(app, device_id, Action::PairCode, Some(phone.clone()))
            .await?;
        let store = self.store.clone();
        let outcome = self
            .notifier
            .wait_for(device_id, self.pair_code_wait, POLL, || {
                let store = store.clone();
                async move {
                    match store.get_device(device_id).await {
                        Err(e) => Some(Err(ApiError::from(e))),
                        Ok(None) => Some(Err(ApiError::not_found("device not found"))),
                        Ok(Some(d)) => {
                            if let Some(p) = d.pair_code.clone() {
                                Some(Ok(p))
                            } else if !matches!(
                                d.status,
                                DeviceStatus::Initializing | DeviceStatus::QrGenerated
                            ) {
                                Some(Err(match d.last_error {
                                    Some(e) => ApiError::new(e.code, e.message),
                                    None => d.ensure_alive().err().unwrap_or_else(|| {
                                        ApiError::new(
                                            ErrorCode::ProviderError,
                                            format!("linking stopped: the device is {}", d.status),
                                        )
                                    }),
                                }))
                            } else {
                                None
                            }
                        }
                    }
                }
            })
            .await;
        outcome.unwrap_or_else(|| {
            Err(ApiError::new(
                ErrorCode::UpstreamTimeout,
                "WhatsApp did not return a pair code in time; the device keeps trying",
            ))
        })
    }

    pub async fn disconnect(&self, app: &App, device_id: Uuid) -> ApiResult<Device> {
        self.act(app, device_id, Action::Disconnect, None).await
    }

    pub async fn reconnect(&self, app: &App, device_id: Uuid) -> ApiResult<Device> {
        self.act(app, device_id, Action::Reconnect, None).await?;
        // Give a quick resume the chance to answer `connected`.
        let store = self.store.clone();
        let done = self
            .notifier
            .wait_for(device_id, Duration::from_secs(3), POLL, || {
                let store = store.clone();
                async move {
                    match store.get_device(device_id).await {
                        Ok(Some(d)) if d.status != DeviceStatus::Connecting => Some(d),
                        _ => None,
                    }
                }
            })
            .await;
        match done {
            Some(d) => Ok(d),
            None => self.get(app, device_id).await,
        }
    }

    /// DELETE /devices/{id}: destroyed at once; the worker unlinks and wipes keys.
    pub async fn destroy(&self, app: &App, device_id: Uuid) -> ApiResult<Device> {
        self.act(app, device_id, Action::Destroy, None).await
    }

    /// Destroys every live device of an App (the App is being deleted), including one
    /// created a moment before: the listing reads its own writes (`devices_of_app`).
    pub async fn destroy_all_of_app(&self, app: &App) -> ApiResult<()> {
        for d in self.store.devices_of_app(app.app_id).await? {
            if d.status != DeviceStatus::Destroyed {
                match self.act(app, d.device_id, Action::Destroy, None).await {
                    Ok(_) => {}
                    Err(e) if e.code() == ErrorCode::DeviceDestroyed => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }

    /// The cached presence of a peer; on the first ask the worker subscribes to it.
    pub async fn presence(
        &self,
        app: &App,
        device_id: Uuid,
        jid: &str,
    ) -> ApiResult<Option<Presence>> {
        let jid = crate::jid::normalize("jid", jid)?;
        let d = self.get(app, device_id).await?;
        d.ensure_connected()?;
        let cached = self.store.get_presence(device_id, &jid).await?;
        if cached.is_none() {
            enqueue(&*self.queue, Command::SubscribePresence { device_id, jid }).await?;
        }
        Ok(cached)
    }

    /// Checks `action` against the device and applies it: store the change (only if the
    /// status did not move meanwhile), then queue the worker's command.
    async fn act(
        &self,
        app: &App,
        device_id: Uuid,
        action: Action,
        pair_phone: Option<String>,
    ) -> ApiResult<Device> {
        for _ in 0..5 {
            let d = self.get(app, device_id).await?;
            let update = match plan(&d, action, time::now())? {
                Plan::Nothing => return Ok(d),
                Plan::Apply(u) => *u,
            };
            let mut next = d.clone();
            update.apply_to(&mut next);
            let events: Vec<_> = crate::webhooks::payload::device(d.status, &next)
                .into_iter()
                .collect();
            match self
                .store
                .update_device(device_id, &update, &[d.status], &events)
                .await
            {
                Ok(updated) => {
                    let command = match action {
                        Action::RegenerateQr | Action::PairCode => Command::Link {
                            device_id,
                            pair_phone: pair_phone.clone(),
                        },
                        Action::Disconnect => Command::Disconnect { device_id },
                        Action::Reconnect => Command::Resume { device_id },
                        Action::Destroy => Command::Destroy { device_id },
                    };
                    enqueue(&*self.queue, command).await?;
                    self.notifier.notify(device_id);
                    // Sends waiting for this device will not go out: their callers get 408.
                    let why = match action {
                        Action::Disconnect => Some("the device was disconnected before the send"),
                        Action::Destroy => Some("the device was destroyed before the send"),
                        _ => None,
                    };
                    if let Some(why) = why {
                        crate::send_service::cancel_pending(
                            &*self.store,
                            &self.notifier,
                            device_id,
                            why,
                        )
                        .await?;
                    }
                    tracing::info!(%device_id, ?action, status = %updated.status, "device action accepted");
                    return Ok(updated);
                }
                // The worker changed the status meanwhile: decide again on the new state.
                Err(StoreError::Conflict("status")) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ApiError::conflict(
            "the device is changing state; retry the request",
        ))
    }

    /// Waits until a linking device has its QR (or stopped), up to `link_wait`.
    async fn wait_linking(&self, device_id: Uuid) -> ApiResult<Device> {
        let store = self.store.clone();
        let found = self
            .notifier
            .wait_for(device_id, self.link_wait, POLL, || {
                let store = store.clone();
                async move {
                    match store.get_device(device_id).await {
                        Err(e) => Some(Err(ApiError::from(e))),
                        Ok(None) => Some(Err(ApiError::not_found("device not found"))),
                        Ok(Some(d)) if d.status != DeviceStatus::Initializing => Some(Ok(d)),
                        Ok(Some(_)) => None,
                    }
                }
            })
            .await;
        match found {
            Some(r) => r,
            None => self
                .store
                .get_device(device_id)
                .await?
                .ok_or_else(|| ApiError::not_found("device not found")),
        }
    }
}

/// The device `found` when it is `app`'s: 403 `forbidden` when it is another App's of the
/// same tenant, 404 otherwise (another tenant's device is not told apart from none).
pub fn owned(app: &App, found: Option<Device>) -> ApiResult<Device> {
    match found {
        Some(d) if d.app_id == app.app_id => Ok(d),
        Some(d) if d.tenant_id == app.tenant_id => Err(ApiError::new(
            ErrorCode::Forbidden,
            "the device belongs to another app",
        )),
        _ => Err(ApiError::not_found("device not found")),
    }
}
