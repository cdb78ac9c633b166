//! How devices look on the wire.

use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;
use wa_core::devices::{Device, DeviceStatus};
use wa_core::time::{self, OffsetDateTime};

/// The QR currently offered for scanning.
#[derive(Debug, Serialize, ToSchema)]
pub struct QrView {
    /// The raw string the QR encodes.
    pub code: String,
    /// The QR as a `data:image/png;base64,...` URL.
    pub image: String,
    #[serde(with = "time::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: OffsetDateTime,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LastErrorView {
    /// One of the API's error codes, such as `too_many_devices`.
    pub code: String,
    pub message: String,
    #[serde(with = "time::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: OffsetDateTime,
}

/// A device.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceView {
    pub device_id: Uuid,
    pub app_id: Uuid,
    pub device_name: String,
    pub status: DeviceStatus,
    /// The QR to scan while `status` is `qr_generated` and it is still valid; else null.
    pub qr: Option<QrView>,
    #[serde(with = "time::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub qr_expires_at: Option<OffsetDateTime>,
    /// The linked account's phone number.
    pub wa_number: Option<String>,
    /// This companion device's JID.
    pub wa_device_jid: Option<String>,
    #[serde(with = "time::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub linked_at: Option<OffsetDateTime>,
    /// Why the device is not connected, or the last failure.
    pub last_error: Option<LastErrorView>,
    #[serde(with = "time::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
}

impl DeviceView {
    pub fn of(d: &Device) -> DeviceView {
        let qr = d.valid_qr(time::now()).map(|q| QrView {
            code: q.code.clone(),
            // An unrenderable code still shows its text; the image is a convenience.
            image: crate::qr::data_url(&q.code).unwrap_or_default(),
            expires_at: q.expires_at,
        });
        DeviceView {
            device_id: d.device_id,
            app_id: d.app_id,
            device_name: d.device_name.clone(),
            status: d.status,
            qr_expires_at: qr.as_ref().map(|q| q.expires_at),
            qr,
            wa_number: d.wa_number.clone(),
            wa_device_jid: d.wa_device_jid.clone(),
            linked_at: d.linked_at,
            last_error: d.last_error.as_ref().map(|e| LastErrorView {
                code: e.code.as_str().to_owned(),
                message: e.message.clone(),
                at: e.at,
            }),
            created_at: d.created_at,
            updated_at: d.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceData {
    pub device: DeviceView,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceList {
    pub devices: Vec<DeviceView>,
    pub count: usize,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QrData {
    pub qr: QrView,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PairCodeData {
    /// Enter it on the phone: WhatsApp → Linked devices → Link with phone number.
    pub pair_code: String,
    #[serde(with = "time::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: OffsetDateTime,
}

/// A peer's last known presence.
#[derive(Debug, Serialize, ToSchema)]
pub struct PresenceView {
    pub jid: String,
    /// `available`, `unavailable`, or `unknown` until WhatsApp reports it (the device
    /// subscribes on the first ask; ask again shortly).
    pub presence: String,
    /// `composing`, `recording` or `paused` while the peer types in our chat.
    pub chat_state: Option<String>,
    #[serde(with = "time::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_seen: Option<OffsetDateTime>,
    #[serde(with = "time::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub updated_at: Option<OffsetDateTime>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PresenceData {
    pub presence: PresenceView,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProfileData {
    pub profile: wa_core::provider::Profile,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GroupList {
    pub groups: Vec<wa_core::provider::Group>,
    pub count: usize,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SentList {
    pub sent: Vec<wa_core::provider::SentRecord>,
    pub count: usize,
}
