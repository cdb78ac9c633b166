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
            image: q.image().map(|i| i.into_owned()).unwrap_or_default(),
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

/// The sandbox's sessions of a device, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionList {
    pub sessions: Vec<wa_core::provider::SessionRecord>,
    pub count: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use wa_core::devices::Qr;

    fn waiting(qr: Qr) -> Device {
        let mut d = wa_testkit::fixtures::device(Uuid::now_v7(), "d");
        d.status = DeviceStatus::QrGenerated;
        d.qr = Some(qr);
        d
    }

    fn later() -> OffsetDateTime {
        time::now() + std::time::Duration::from_secs(60)
    }

    #[test]
    fn a_device_shows_the_image_kept_with_its_qr() {
        let mut qr = Qr::new("2@abc".into(), later());
        // Not what the code renders to: the view copies the kept image, it does not render.
        qr.image = "data:image/png;base64,kept".into();
        let view = DeviceView::of(&waiting(qr));
        let shown = view.qr.unwrap();
        assert_eq!(
            (shown.code.as_str(), shown.image.as_str()),
            ("2@abc", "data:image/png;base64,kept")
        );
    }

    #[test]
    fn a_qr_stored_without_its_image_is_rendered() {
        let mut qr = Qr::new("2@abc".into(), later());
        let rendered = std::mem::take(&mut qr.image);
        assert!(rendered.starts_with("data:image/png;base64,iVBOR"));
        let view = DeviceView::of(&waiting(qr));
        assert_eq!(view.qr.unwrap().image, rendered);
    }
}
