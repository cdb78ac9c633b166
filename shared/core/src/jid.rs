//! Recipient and peer identifiers: a phone number (MSISDN) or a WhatsApp JID.

use wa_errors::{ApiError, ApiResult};

/// Servers a JID given by a caller may name.
pub const USER_SERVER: &str = "s.whatsapp.net";
pub const LID_SERVER: &str = "lid";
pub const GROUP_SERVER: &str = "g.us";

/// Normalizes a caller's identifier to a JID: digits (optional leading `+`, 6-20 digits)
/// become `<digits>@s.whatsapp.net`; `…@s.whatsapp.net` and `…@lid` need a numeric user;
/// `…@g.us` a numeric id (the old `<creator>-<timestamp>` form is accepted too).
/// Anything else, surrounding whitespace included, is validation_error on `field`.
pub fn normalize(field: &'static str, s: &str) -> ApiResult<String> {
    let bad = || {
        ApiError::validation(
            field,
            format!(
                "`{field}` must be a phone number (digits, optional +) or a JID ending in \
                 @s.whatsapp.net, @lid or @g.us"
            ),
        )
    };
    let digits = |u: &str| (6..=20).contains(&u.len()) && u.bytes().all(|b| b.is_ascii_digit());
    match s.split_once('@') {
        None => {
            let d = s.strip_prefix('+').unwrap_or(s);
            if digits(d) {
                Ok(format!("{d}@{USER_SERVER}"))
            } else {
                Err(bad())
            }
        }
        Some((user, server)) => {
            let ok = match server {
                USER_SERVER | LID_SERVER => digits(user),
                GROUP_SERVER => match user.split_once('-') {
                    Some((a, b)) => digits(a) && digits(b),
                    None => digits(user),
                },
                _ => false,
            };
            if ok {
                Ok(format!("{user}@{server}"))
            } else {
                Err(bad())
            }
        }
    }
}

/// Whether a normalized JID names a group.
pub fn is_group(jid: &str) -> bool {
    jid.ends_with("@g.us")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes() {
        for (input, jid) in [
            ("+15551230001", "15551230001@s.whatsapp.net"),
            ("15551230001@s.whatsapp.net", "15551230001@s.whatsapp.net"),
            ("100000000000001@lid", "100000000000001@lid"),
            ("120363000000000403@g.us", "120363000000000403@g.us"),
            ("15551230001-1600000000@g.us", "15551230001-1600000000@g.us"),
        ] {
            assert_eq!(normalize("to", input).unwrap(), jid, "{input}");
        }
        for bad in [
            "",
            "abc",
            "123",
            "+",
            "1555@example.com",
            "abc@s.whatsapp.net",
            "@g.us",
            "1555 123 0001",
            "15551230001\n",
            " 15551230001",
            "+15551230001 ",
            "\t15551230001@s.whatsapp.net",
            "15551230001@lid\r\n",
        ] {
            assert_eq!(
                normalize("jid", bad).unwrap_err().details()["field"],
                "jid",
                "{bad}"
            );
        }
    }
}
