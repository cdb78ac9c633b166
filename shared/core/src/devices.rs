//! Devices: one linked WhatsApp account each, owned by an App. Their status machine lives
//! here as pure functions, so the HTTP side and the worker apply the same rules.

use serde::{Deserialize, Serialize};
use uuid::Uuid;
use wa_errors::{ApiError, ApiResult, ErrorCode};

use crate::time::OffsetDateTime;

/// The longest device name, in characters.
pub const MAX_DEVICE_NAME_CHARS: usize = 100;

/// Where a device is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeviceStatus {
    /// Created; the worker has not started its session yet.
    Initializing,
    /// A QR (or pair code) is waiting to be scanned.
    QrGenerated,
    /// Linked and online.
    Connected,
    /// Linked; the connection dropped and is being re-established automatically.
    Connecting,
    /// The QR codes ran out before anyone scanned them.
    Expired,
    /// Not connected; credentials kept (if it was ever linked). See `last_error` for why.
    Disconnected,
    /// WhatsApp ended the session (unlinked from the phone); keys are wiped.
    LoggedOut,
    /// Deleted. Terminal.
    Destroyed,
}

impl DeviceStatus {
    pub const ALL: [DeviceStatus; 8] = [
        DeviceStatus::Initializing,
        DeviceStatus::QrGenerated,
        DeviceStatus::Connected,
        DeviceStatus::Connecting,
        DeviceStatus::Expired,
        DeviceStatus::Disconnected,
        DeviceStatus::LoggedOut,
        DeviceStatus::Destroyed,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            DeviceStatus::Initializing => "initializing",
            DeviceStatus::QrGenerated => "qr_generated",
            DeviceStatus::Connected => "connected",
            DeviceStatus::Connecting => "connecting",
            DeviceStatus::Expired => "expired",
            DeviceStatus::Disconnected => "disconnected",
            DeviceStatus::LoggedOut => "logged_out",
            DeviceStatus::Destroyed => "destroyed",
        }
    }

    pub fn parse(s: &str) -> Option<DeviceStatus> {
        DeviceStatus::ALL.into_iter().find(|d| d.as_str() == s)
    }
}

impl std::fmt::Display for DeviceStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The QR currently offered for scanning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Qr {
    /// The raw string the QR encodes.
    pub code: String,
    /// The QR as a `data:image/png;base64,...` URL, rendered once when the QR was issued;
    /// empty when the code could not be rendered, or in a record stored before images were
    /// kept (see [`Qr::image`]).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub image: String,
    #[serde(with = "crate::time::rfc3339")]
    pub expires_at: OffsetDateTime,
}

impl Qr {
    /// A QR for `code`, with its image rendered (empty when the code cannot be rendered: the
    /// code's text is what links, the image is a convenience).
    pub fn new(code: String, expires_at: OffsetDateTime) -> Qr {
        Qr {
            image: crate::qr::data_url(&code).unwrap_or_default(),
            code,
            expires_at,
        }
    }

    /// The PNG itself: the kept image decoded, else rendered now (a record stored before
    /// images were kept). Fails when the code cannot be rendered.
    pub fn png(&self) -> Result<Vec<u8>, String> {
        use base64::Engine;
        match self.image.strip_prefix(crate::qr::DATA_URL_PREFIX) {
            Some(b64) => base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|e| format!("the kept QR image is not base64: {e}")),
            None => crate::qr::png(&self.code),
        }
    }

    /// The image as a data URL: the kept one, else rendered now (a record stored before
    /// images were kept). Fails when the code cannot be rendered.
    pub fn image(&self) -> Result<std::borrow::Cow<'_, str>, String> {
        if self.image.is_empty() {
            crate::qr::data_url(&self.code).map(std::borrow::Cow::Owned)
        } else {
            Ok(std::borrow::Cow::Borrowed(&self.image))
        }
    }
}

/// A pair code offered for linking by phone number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairCode {
    pub code: String,
    pub phone_number: String,
    #[serde(with = "crate::time::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// Why the device is not connected, or what went wrong last.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastError {
    pub code: ErrorCode,
    pub message: String,
    #[serde(with = "crate::time::rfc3339")]
    pub at: OffsetDateTime,
}

/// A stored device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub device_id: Uuid,
    pub app_id: Uuid,
    pub tenant_id: String,
    pub device_name: String,
    pub status: DeviceStatus,
    pub qr: Option<Qr>,
    pub pair_code: Option<PairCode>,
    pub wa_number: Option<String>,
    pub wa_device_jid: Option<String>,
    pub linked_at: Option<OffsetDateTime>,
    pub last_error: Option<LastError>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl Device {
    /// A new device of the App `app_id` (of `tenant_id`) named `device_name`: a new id,
    /// `initializing`, never linked, created and updated at `now`. The name is taken as it
    /// is (`validate_device_name` is the caller's).
    pub fn new(app_id: Uuid, tenant_id: &str, device_name: &str, now: OffsetDateTime) -> Device {
        Device {
            device_id: Uuid::now_v7(),
            app_id,
            tenant_id: tenant_id.to_owned(),
            device_name: device_name.to_owned(),
            status: DeviceStatus::Initializing,
            qr: None,
            pair_code: None,
            wa_number: None,
            wa_device_jid: None,
            linked_at: None,
            last_error: None,
            created_at: now,
            updated_at: now,
        }
    }

    /// The QR if one is offered and still valid at `now`.
    pub fn valid_qr(&self, now: OffsetDateTime) -> Option<&Qr> {
        self.qr
            .as_ref()
            .filter(|q| self.status == DeviceStatus::QrGenerated && q.expires_at > now)
    }

    /// Whether the device was linked and still holds credentials to resume with.
    pub fn has_session(&self) -> bool {
        self.linked_at.is_some()
            && !matches!(
                self.status,
                DeviceStatus::LoggedOut | DeviceStatus::Destroyed
            )
    }

    /// 410 for a destroyed device, else Ok.
    pub fn ensure_alive(&self) -> ApiResult<()> {
        if self.status == DeviceStatus::Destroyed {
            return Err(ApiError::new(
                ErrorCode::DeviceDestroyed,
                "the device was destroyed; create a new one",
            ));
        }
        Ok(())
    }

    /// 409 unless the device is connected (410 when destroyed, 409 logged_out when logged out).
    pub fn ensure_connected(&self) -> ApiResult<()> {
        self.ensure_alive()?;
        match self.status {
            DeviceStatus::Connected => Ok(()),
            DeviceStatus::LoggedOut => Err(logged_out()),
            s => Err(ApiError::new(
                ErrorCode::DeviceNotConnected,
                format!("the device is {s}, not connected"),
            )),
        }
    }
}

pub fn logged_out() -> ApiError {
    ApiError::new(
        ErrorCode::LoggedOut,
        "the session was logged out; regenerate a QR and link again",
    )
}

/// A change to a device, applied atomically by the store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceUpdate {
    pub status: Option<DeviceStatus>,
    pub qr: Option<Option<Qr>>,
    pub pair_code: Option<Option<PairCode>>,
    pub wa_number: Option<Option<String>>,
    pub wa_device_jid: Option<Option<String>>,
    pub linked_at: Option<Option<OffsetDateTime>>,
    pub last_error: Option<Option<LastError>>,
    pub updated_at: Option<OffsetDateTime>,
}

impl DeviceUpdate {
    pub fn status(status: DeviceStatus) -> Self {
        DeviceUpdate {
            status: Some(status),
            ..DeviceUpdate::default()
        }
    }

    /// Applies this update to a record in memory (adapters use it to merge).
    pub fn apply_to(&self, d: &mut Device) {
        if let Some(s) = self.status {
            d.status = s;
        }
        if let Some(q) = &self.qr {
            d.qr = q.clone();
        }
        if let Some(p) = &self.pair_code {
            d.pair_code = p.clone();
        }
        if let Some(n) = &self.wa_number {
            d.wa_number = n.clone();
        }
        if let Some(j) = &self.wa_device_jid {
            d.wa_device_jid = j.clone();
        }
        if let Some(l) = self.linked_at {
            d.linked_at = l;
        }
        if let Some(e) = &self.last_error {
            d.last_error = e.clone();
        }
        if let Some(t) = self.updated_at {
            d.updated_at = t;
        }
    }
}

/// Trims the name and checks it: 1-100 characters, no control characters.
pub fn validate_device_name(raw: &str) -> ApiResult<String> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > MAX_DEVICE_NAME_CHARS {
        return Err(ApiError::validation(
            "device_name",
            "`device_name` must be 1-100 characters",
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(ApiError::validation(
            "device_name",
            "`device_name` must not contain control characters",
        ));
    }
    Ok(name.to_owned())
}

/// Checks a phone number for pairing: international digits, optional leading `+`, 7-15 digits,
/// no leading 0. Returns the digits.
pub fn validate_phone_number(field: &str, raw: &str) -> ApiResult<String> {
    let digits = raw.trim().strip_prefix('+').unwrap_or(raw.trim());
    if !(7..=15).contains(&digits.len())
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || digits.starts_with('0')
    {
        return Err(ApiError::validation(
            field,
            format!("`{field}` must be an international phone number: 7-15 digits, no leading 0"),
        ));
    }
    Ok(digits.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip() {
        for s in DeviceStatus::ALL {
            assert_eq!(DeviceStatus::parse(s.as_str()), Some(s));
            assert_eq!(
                serde_json::to_value(s).unwrap(),
                serde_json::Value::String(s.as_str().into())
            );
        }
    }

    #[test]
    fn a_qr_keeps_its_image_and_reads_use_it() {
        let later = crate::time::now() + std::time::Duration::from_secs(60);
        let qr = Qr::new("2@abc,def".into(), later);
        assert_eq!(qr.image, crate::qr::data_url("2@abc,def").unwrap());
        assert_eq!(qr.png().unwrap(), crate::qr::png("2@abc,def").unwrap());
        // Whatever is kept is served: nothing is rendered again.
        let kept = Qr {
            image: format!("{}AQID", crate::qr::DATA_URL_PREFIX),
            ..qr.clone()
        };
        assert_eq!(kept.png().unwrap(), [1, 2, 3]);
        assert_eq!(kept.image().unwrap(), kept.image);
        // Stored before images were kept: rendered on the read.
        let old = Qr {
            image: String::new(),
            ..qr.clone()
        };
        assert_eq!(old.png().unwrap(), qr.png().unwrap());
        assert_eq!(old.image().unwrap(), qr.image);
        // A code too long for a QR keeps no image.
        assert!(Qr::new("x".repeat(8000), later).image.is_empty());
    }

    #[test]
    fn phone_numbers() {
        assert_eq!(
            validate_phone_number("p", "+15551230001").unwrap(),
            "15551230001"
        );
        for bad in [
            "",
            "123",
            "0155512300",
            "+1-555-123",
            "1555123000111122",
            "abc1234567",
        ] {
            assert!(validate_phone_number("p", bad).is_err(), "{bad}");
        }
    }
}
