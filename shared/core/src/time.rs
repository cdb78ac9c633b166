//! Timestamps: UTC, millisecond precision, RFC 3339 on the wire and in storage.

pub use ::time::OffsetDateTime;
use ::time::format_description::well_known::Rfc3339;

/// Now, truncated to milliseconds so a stored and re-read timestamp compares equal.
pub fn now() -> OffsetDateTime {
    truncate(OffsetDateTime::now_utc())
}

/// `t` without its fraction of a millisecond (the precision of the store).
pub fn truncate(t: OffsetDateTime) -> OffsetDateTime {
    t.replace_millisecond(t.millisecond())
        .expect("milliseconds of a valid time are valid")
}

/// RFC 3339 text of a timestamp.
pub fn format(t: OffsetDateTime) -> String {
    let mut buf = [0u8; MAX_LEN];
    match write(t, &mut buf) {
        Some(n) => ascii(&buf[..n]).to_owned(),
        None => t.format(&Rfc3339).expect("UTC timestamps always format"),
    }
}

/// The longest RFC 3339 text: `9999-12-31T23:59:59.999999999+23:59`.
const MAX_LEN: usize = 35;

fn ascii(b: &[u8]) -> &str {
    std::str::from_utf8(b).expect("RFC 3339 text is ASCII")
}

/// Writes `t` as the `time` crate's `Rfc3339` does (the fraction of a second without
/// trailing zeros, `Z` for UTC) into `buf`, without allocating: timestamps are most of what
/// a response or a stored record formats. `None` for what `Rfc3339` refuses (years
/// outside 0-9999, offsets with seconds).
fn write(t: OffsetDateTime, buf: &mut [u8; MAX_LEN]) -> Option<usize> {
    let year = t.year();
    let offset = t.offset();
    if !(0..10_000).contains(&year) || offset.seconds_past_minute() != 0 {
        return None;
    }
    let mut w = Writer { buf, n: 0 };
    w.digits(year as u32, 4);
    w.byte(b'-');
    w.digits(u8::from(t.month()) as u32, 2);
    w.byte(b'-');
    w.digits(t.day() as u32, 2);
    w.byte(b'T');
    w.digits(t.hour() as u32, 2);
    w.byte(b':');
    w.digits(t.minute() as u32, 2);
    w.byte(b':');
    w.digits(t.second() as u32, 2);
    let mut nanos = t.nanosecond();
    if nanos != 0 {
        w.byte(b'.');
        let mut width = 9;
        while nanos.is_multiple_of(10) {
            nanos /= 10;
            width -= 1;
        }
        w.digits(nanos, width);
    }
    if offset.is_utc() {
        w.byte(b'Z');
    } else {
        w.byte(if offset.is_negative() { b'-' } else { b'+' });
        w.digits(offset.whole_hours().unsigned_abs() as u32, 2);
        w.byte(b':');
        w.digits(offset.minutes_past_hour().unsigned_abs() as u32, 2);
    }
    Some(w.n)
}

struct Writer<'a> {
    buf: &'a mut [u8; MAX_LEN],
    n: usize,
}

impl Writer<'_> {
    fn byte(&mut self, b: u8) {
        self.buf[self.n] = b;
        self.n += 1;
    }

    /// `v` in `width` digits, zero-padded (`v` has no more digits than that).
    fn digits(&mut self, mut v: u32, width: usize) {
        for i in (0..width).rev() {
            self.buf[self.n + i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
        self.n += width;
    }
}

/// Parses RFC 3339 text written by [`format`].
pub fn parse(s: &str) -> Result<OffsetDateTime, ::time::error::Parse> {
    OffsetDateTime::parse(s, &Rfc3339)
}

/// Serde adapter: RFC 3339 strings (`time::serde::rfc3339`, formatting without
/// allocating).
pub mod rfc3339 {
    use serde::{Serializer, ser::Error};

    pub use ::time::serde::rfc3339::deserialize;

    use super::{MAX_LEN, OffsetDateTime, ascii, write};

    pub fn serialize<S: Serializer>(t: &OffsetDateTime, serializer: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0u8; MAX_LEN];
        match write(*t, &mut buf) {
            Some(n) => serializer.serialize_str(ascii(&buf[..n])),
            None => Err(S::Error::custom("the timestamp has no RFC 3339 form")),
        }
    }

    /// For `Option<OffsetDateTime>`: `null` when absent.
    pub mod option {
        use serde::{Serialize, Serializer};

        pub use ::time::serde::rfc3339::option::deserialize;

        use super::OffsetDateTime;

        struct Rfc3339(OffsetDateTime);

        impl Serialize for Rfc3339 {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                super::serialize(&self.0, serializer)
            }
        }

        pub fn serialize<S: Serializer>(
            t: &Option<OffsetDateTime>,
            serializer: S,
        ) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => serializer.serialize_some(&Rfc3339(*t)),
                None => serializer.serialize_none(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ::time::UtcOffset;

    /// Exactly the text of the `time` crate's `Rfc3339`, which earlier records were written
    /// with: UTC and other offsets, every fraction length, the ends of the year range.
    #[test]
    fn formats_like_time_does() {
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut cases = vec![
            OffsetDateTime::UNIX_EPOCH,
            now(),
            OffsetDateTime::now_utc(),
            ::time::macros::datetime!(0000-01-01 00:00:00 UTC),
            ::time::macros::datetime!(9999-12-31 23:59:59.999_999_999 UTC),
            ::time::macros::datetime!(2026-11-25 10:05:20.7 +05:30),
            ::time::macros::datetime!(2026-11-25 10:05:20.000_000_001 -09:45),
        ];
        for _ in 0..20_000 {
            let secs = (next() % 253_402_300_799) as i64;
            let nanos = match next() % 4 {
                0 => 0,
                1 => (next() % 1000) as i64 * 1_000_000,
                2 => (next() % 1_000_000) as i64 * 1000,
                _ => (next() % 1_000_000_000) as i64,
            };
            let t = OffsetDateTime::from_unix_timestamp_nanos(
                secs as i128 * 1_000_000_000 + nanos as i128,
            )
            .unwrap();
            let minutes = (next() % (2 * 23 * 60 + 1)) as i32 - 23 * 60;
            let offset = UtcOffset::from_whole_seconds(minutes * 60).unwrap();
            cases.push(t);
            if let Some(shifted) = t.checked_to_offset(offset) {
                cases.push(shifted);
            }
        }
        for t in cases {
            let expected = t.format(&Rfc3339).unwrap();
            assert_eq!(format(t), expected);
            assert_eq!(
                serde_json::to_string(&Wrapped {
                    at: t,
                    maybe: Some(t)
                })
                .unwrap(),
                format!(r#"{{"at":"{expected}","maybe":"{expected}"}}"#)
            );
            assert_eq!(parse(&expected).unwrap(), t);
        }
        assert_eq!(
            serde_json::to_string(&Wrapped {
                at: OffsetDateTime::UNIX_EPOCH,
                maybe: None
            })
            .unwrap(),
            r#"{"at":"1970-01-01T00:00:00Z","maybe":null}"#
        );
        // What RFC 3339 cannot say is refused, as `time` refuses it.
        let odd = OffsetDateTime::UNIX_EPOCH.to_offset(UtcOffset::from_whole_seconds(30).unwrap());
        assert!(
            serde_json::to_string(&Wrapped {
                at: odd,
                maybe: None
            })
            .is_err()
        );
        let far = ::time::macros::datetime!(-0001-01-01 00:00:00 UTC);
        assert!(
            serde_json::to_string(&Wrapped {
                at: far,
                maybe: None
            })
            .is_err()
        );
    }

    #[derive(serde::Serialize)]
    struct Wrapped {
        #[serde(with = "rfc3339")]
        at: OffsetDateTime,
        #[serde(with = "rfc3339::option")]
        maybe: Option<OffsetDateTime>,
    }
}
