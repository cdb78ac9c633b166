//! The error codes of the contract: the seed table plus the codes this server adds, each
//! with its HTTP status as a number (no HTTP library needed to name it).

/// An HTTP status code as its number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Status(u16);

impl Status {
    /// The number, such as 404.
    pub const fn as_u16(self) -> u16 {
        self.0
    }

    /// 400-499.
    pub const fn is_client_error(self) -> bool {
        self.0 >= 400 && self.0 < 500
    }

    /// 500-599.
    pub const fn is_server_error(self) -> bool {
        self.0 >= 500 && self.0 < 600
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Every `error.code` the API can answer, with its HTTP status.
///
/// The seed page (`errors-and-troubleshooting.txt`) is binding for the codes it lists;
/// `method_not_allowed`, `request_too_large`, `uri_too_long`, `headers_too_large` and
/// `rate_limit_exceeded` are this server's own.
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
    UriTooLong,
    ProviderRateLimit,
    RateLimitExceeded,
    HeadersTooLarge,
    InternalError,
    ProviderError,
    WhatsappConnectionAborted,
    WhatsappConnectionLost,
    GroupPrekeyTimeout,
    UpstreamTimeout,
}

impl ErrorCode {
    /// All codes, in the order of the documentation table.
    pub const ALL: [ErrorCode; 26] = [
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
        ErrorCode::UriTooLong,
        ErrorCode::ProviderRateLimit,
        ErrorCode::RateLimitExceeded,
        ErrorCode::HeadersTooLarge,
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
            ErrorCode::UriTooLong => "uri_too_long",
            ErrorCode::HeadersTooLarge => "headers_too_large",
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
    pub const fn status(self) -> Status {
        Status(match self {
            ErrorCode::ValidationError => 400,
            ErrorCode::InvalidApiKey | ErrorCode::Unauthorized => 401,
            ErrorCode::Forbidden | ErrorCode::GroupPostingRestricted => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::RequestCanceled => 408,
            ErrorCode::Conflict
            | ErrorCode::DeviceNotConnected
            | ErrorCode::QrResetNotAllowed
            | ErrorCode::TooManyDevices
            | ErrorCode::ClientOutdated
            | ErrorCode::LoggedOut => 409,
            ErrorCode::DeviceDestroyed => 410,
            ErrorCode::RequestTooLarge => 413,
            ErrorCode::UriTooLong => 414,
            ErrorCode::ProviderRateLimit | ErrorCode::RateLimitExceeded => 429,
            ErrorCode::HeadersTooLarge => 431,
            ErrorCode::InternalError => 500,
            ErrorCode::ProviderError => 502,
            ErrorCode::WhatsappConnectionAborted | ErrorCode::WhatsappConnectionLost => 503,
            ErrorCode::GroupPrekeyTimeout | ErrorCode::UpstreamTimeout => 504,
        })
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
    use std::collections::BTreeMap;

    /// Rows `<3-digit status><snake_case code>...` of the seed page's table.
    fn seed_table() -> BTreeMap<String, u16> {
        let seed = include_str!("../testdata/seed-error-table.txt");
        let mut rows = BTreeMap::new();
        for line in seed.lines().map(str::trim) {
            let digits: String = line.chars().take_while(|c| c.is_ascii_digit()).collect();
            if digits.len() != 3 {
                continue;
            }
            let code: String = line[3..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            if !code.is_empty() {
                rows.insert(code, digits.parse().unwrap());
            }
        }
        rows
    }

    /// Rows `| <status> | <code> | ... |` of the table in docs/errors.md.
    fn documented_table() -> BTreeMap<String, u16> {
        let docs = include_str!("../../../docs/errors.md");
        let mut rows = BTreeMap::new();
        for line in docs.lines() {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            if cells.len() < 4 {
                continue;
            }
            if let Ok(status) = cells[1].parse::<u16>() {
                rows.insert(cells[2].to_owned(), status);
            }
        }
        rows
    }

    /// The seed page is the contract: every code in its table (kept verbatim in
    /// `testdata/`) exists here with the same status.
    #[test]
    fn every_seed_code_has_the_seed_status() {
        let seed = seed_table();
        assert_eq!(seed.len(), 21, "the seed table lists 21 codes");
        for (code, status) in &seed {
            let ours = ErrorCode::parse(code)
                .unwrap_or_else(|| panic!("seed code `{code}` is missing from ErrorCode"));
            assert_eq!(ours.status().as_u16(), *status, "status of `{code}`");
        }
    }

    /// Every code, the seed's and this server's own, is documented with the status it is
    /// answered with, and the documentation lists no other code.
    #[test]
    fn every_code_is_documented_with_its_status() {
        let documented = documented_table();
        for code in ErrorCode::ALL {
            assert_eq!(
                documented.get(code.as_str()).copied(),
                Some(code.status().as_u16()),
                "docs/errors.md row of `{code}`"
            );
        }
        assert_eq!(documented.len(), ErrorCode::ALL.len(), "{documented:?}");
        let seed = seed_table();
        let own: Vec<&str> = ErrorCode::ALL
            .iter()
            .map(|c| c.as_str())
            .filter(|c| !seed.contains_key(*c))
            .collect();
        assert_eq!(
            own,
            [
                "method_not_allowed",
                "request_too_large",
                "uri_too_long",
                "rate_limit_exceeded",
                "headers_too_large"
            ]
        );
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
    fn status_classes() {
        assert!(ErrorCode::ValidationError.status().is_client_error());
        assert!(!ErrorCode::ValidationError.status().is_server_error());
        assert!(ErrorCode::UpstreamTimeout.status().is_server_error());
        assert!(!ErrorCode::UpstreamTimeout.status().is_client_error());
        assert_eq!(ErrorCode::HeadersTooLarge.status().to_string(), "431");
    }
}
