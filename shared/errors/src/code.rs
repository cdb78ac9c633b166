//! The error codes of the contract: the seed table plus the three codes this server adds.

use http::StatusCode;

/// Every `error.code` the API can answer, with its HTTP status.
///
/// The seed page (`errors-and-troubleshooting.txt`) is binding for the codes it lists;
/// `method_not_allowed`, `request_too_large` and `rate_limit_exceeded` are this server's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    ValidationError,
    InvalidApiKey,
    Unauthorized,
    Forbidden,
    GroupPostingRestricted,
    NotFound,
    MethodNotAllowed,
    RequestCanceled,
    Conflict,
    DeviceNotConnected,
    QrResetNotAllowed,
    TooManyDevices,
    ClientOutdated,
    LoggedOut,
    DeviceDestroyed,
    RequestTooLarge,
    ProviderRateLimit,
    RateLimitExceeded,
    InternalError,
    ProviderError,
    WhatsappConnectionAborted,
    WhatsappConnectionLost,
    GroupPrekeyTimeout,
    UpstreamTimeout,
}

impl ErrorCode {
    /// All codes, in the order of the documentation table.
    pub const ALL: [ErrorCode; 24] = [
        ErrorCode::ValidationError,
        ErrorCode::InvalidApiKey,
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
        ErrorCode::GroupPostingRestricted,
        ErrorCode::NotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::RequestCanceled,
        ErrorCode::Conflict,
        ErrorCode::DeviceNotConnected,
        ErrorCode::QrResetNotAllowed,
        ErrorCode::TooManyDevices,
        ErrorCode::ClientOutdated,
        ErrorCode::LoggedOut,
        ErrorCode::DeviceDestroyed,
        ErrorCode::RequestTooLarge,
        ErrorCode::ProviderRateLimit,
        ErrorCode::RateLimitExceeded,
        ErrorCode::InternalError,
        ErrorCode::ProviderError,
        ErrorCode::WhatsappConnectionAborted,
        ErrorCode::WhatsappConnectionLost,
        ErrorCode::GroupPrekeyTimeout,
        ErrorCode::UpstreamTimeout,
    ];

    /// The stable snake_case identifier sent as `error.code`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::ValidationError => "validation_error",
            ErrorCode::InvalidApiKey => "invalid_api_key",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::GroupPostingRestricted => "group_posting_restricted",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::RequestCanceled => "request_canceled",
            ErrorCode::Conflict => "conflict",
            ErrorCode::DeviceNotConnected => "device_not_connected",
            ErrorCode::QrResetNotAllowed => "qr_reset_not_allowed",
            ErrorCode::TooManyDevices => "too_many_devices",
            ErrorCode::ClientOutdated => "client_outdated",
            ErrorCode::LoggedOut => "logged_out",
            ErrorCode::DeviceDestroyed => "device_destroyed",
            ErrorCode::RequestTooLarge => "request_too_large",
            ErrorCode::ProviderRateLimit => "provider_rate_limit",
            ErrorCode::RateLimitExceeded => "rate_limit_exceeded",
            ErrorCode::InternalError => "internal_error",
            ErrorCode::ProviderError => "provider_error",
            ErrorCode::WhatsappConnectionAborted => "whatsapp_connection_aborted",
            ErrorCode::WhatsappConnectionLost => "whatsapp_connection_lost",
            ErrorCode::GroupPrekeyTimeout => "group_prekey_timeout",
            ErrorCode::UpstreamTimeout => "upstream_timeout",
        }
    }

    /// The HTTP status this code is always answered with.
    pub const fn status(self) -> StatusCode {
        match self {
            ErrorCode::ValidationError => StatusCode::BAD_REQUEST,
            ErrorCode::InvalidApiKey | ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::Forbidden | ErrorCode::GroupPostingRestricted => StatusCode::FORBIDDEN,
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::RequestCanceled => StatusCode::REQUEST_TIMEOUT,
            ErrorCode::Conflict
            | ErrorCode::DeviceNotConnected
            | ErrorCode::QrResetNotAllowed
            | ErrorCode::TooManyDevices
            | ErrorCode::ClientOutdated
            | ErrorCode::LoggedOut => StatusCode::CONFLICT,
            ErrorCode::DeviceDestroyed => StatusCode::GONE,
            ErrorCode::RequestTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::ProviderRateLimit | ErrorCode::RateLimitExceeded => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ErrorCode::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::ProviderError => StatusCode::BAD_GATEWAY,
            ErrorCode::WhatsappConnectionAborted | ErrorCode::WhatsappConnectionLost => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ErrorCode::GroupPrekeyTimeout | ErrorCode::UpstreamTimeout => {
                StatusCode::GATEWAY_TIMEOUT
            }
        }
    }

    /// Looks a code up by its identifier.
    pub fn parse(s: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// Whether a caller may retry the same request (with the same Idempotency-Key) later.
    pub const fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorCode::ProviderRateLimit
                | ErrorCode::RateLimitExceeded
                | ErrorCode::InternalError
                | ErrorCode::ProviderError
                | ErrorCode::WhatsappConnectionAborted
                | ErrorCode::WhatsappConnectionLost
                | ErrorCode::GroupPrekeyTimeout
                | ErrorCode::UpstreamTimeout
                | ErrorCode::RequestCanceled
        )
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for ErrorCode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        ErrorCode::parse(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown error code `{s}`")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The seed page is the contract: every code in its table must exist here with the same status.
    #[test]
    fn every_seed_code_has_the_seed_status() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/seed/errors-and-troubleshooting.txt"
        );
        let seed = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("the seed error page must sit at {path}: {e}"));
        let mut seen = 0;
        for line in seed.lines() {
            let line = line.trim();
            let digits: String = line.chars().take_while(|c| c.is_ascii_digit()).collect();
            if digits.len() != 3 {
                continue;
            }
            let code: String = line[3..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            if code.is_empty() {
                continue;
            }
            let status: u16 = digits.parse().unwrap();
            let ours = ErrorCode::parse(&code)
                .unwrap_or_else(|| panic!("seed code `{code}` is missing from ErrorCode"));
            assert_eq!(ours.status().as_u16(), status, "status of `{code}`");
            seen += 1;
        }
        assert_eq!(seen, 21, "the seed table lists 21 codes");
    }

    #[test]
    fn codes_round_trip_and_are_unique() {
        let mut names: Vec<_> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        for c in ErrorCode::ALL {
            assert_eq!(ErrorCode::parse(c.as_str()), Some(c));
        }
        names.sort();
        names.dedup();
        assert_eq!(names.len(), ErrorCode::ALL.len());
    }

    #[test]
    fn extra_codes_have_their_statuses() {
        assert_eq!(
            ErrorCode::MethodNotAllowed.status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert_eq!(
            ErrorCode::RequestTooLarge.status(),
            StatusCode::PAYLOAD_TOO_LARGE
        );
        assert_eq!(
            ErrorCode::RateLimitExceeded.status(),
            StatusCode::TOO_MANY_REQUESTS
        );
    }
}
