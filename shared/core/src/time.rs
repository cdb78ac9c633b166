//! Timestamps: UTC, millisecond precision, RFC 3339 on the wire and in storage.

pub use ::time::OffsetDateTime;
use ::time::format_description::well_known::Rfc3339;

/// Now, truncated to milliseconds so a stored and re-read timestamp compares equal.
pub fn now() -> OffsetDateTime {
    let t = OffsetDateTime::now_utc();
    t.replace_millisecond(t.millisecond())
        .expect("milliseconds of a valid time are valid")
}

/// RFC 3339 text of a timestamp.
pub fn format(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).expect("UTC timestamps always format")
}

/// Parses RFC 3339 text written by [`format`].
pub fn parse(s: &str) -> Result<OffsetDateTime, ::time::error::Parse> {
    OffsetDateTime::parse(s, &Rfc3339)
}

/// Serde adapter: RFC 3339 strings.
pub mod rfc3339 {
    pub use ::time::serde::rfc3339::*;
}
