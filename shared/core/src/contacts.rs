//! Checking phone numbers on WhatsApp (`POST /devices/{device_id}/contacts/check`): the
//! rules of the request, and the answer for one number, [`ContactCheck`], which both
//! providers give.

use serde::{Deserialize, Serialize};
use wa_errors::{ApiError, ApiResult};

use crate::devices::validate_phone_number;

/// The most phone numbers one check takes.
pub const MAX_PHONE_NUMBERS: usize = 50;

/// What WhatsApp answered for one phone number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"phone_number": "15551230002", "on_whatsapp": true,
    "jid": "15551230002@s.whatsapp.net", "lid": "100000000000001@lid"}))]
pub struct ContactCheck {
    /// The number as checked: its digits, without `+`.
    pub phone_number: String,
    /// Whether the number has a WhatsApp account.
    pub on_whatsapp: bool,
    /// The account's phone-number JID; `null` when not on WhatsApp.
    pub jid: Option<String>,
    /// The account's `@lid` identity; `null` when not on WhatsApp or not known.
    pub lid: Option<String>,
}

impl ContactCheck {
    /// The answer for `phone_number` when it has no WhatsApp account.
    pub fn absent(phone_number: &str) -> ContactCheck {
        ContactCheck {
            phone_number: phone_number.to_owned(),
            on_whatsapp: false,
            jid: None,
            lid: None,
        }
    }
}

/// The phone numbers of a check, as digits, in the order given: 1 to
/// [`MAX_PHONE_NUMBERS`] entries (else validation_error on `phone_numbers`), each an
/// international number, 7-15 digits with an optional leading `+` (else validation_error
/// on the entry, `phone_numbers[i]`, as a mistyped entry is named).
pub fn validate_phone_numbers(phone_numbers: &[String]) -> ApiResult<Vec<String>> {
    if phone_numbers.is_empty() || phone_numbers.len() > MAX_PHONE_NUMBERS {
        return Err(ApiError::validation(
            "phone_numbers",
            format!("`phone_numbers` takes 1-{MAX_PHONE_NUMBERS} phone numbers"),
        ));
    }
    phone_numbers
        .iter()
        .enumerate()
        .map(|(i, raw)| validate_phone_number(&format!("phone_numbers[{i}]"), raw))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbers(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    fn refused_on(n: &[&str]) -> String {
        let e = validate_phone_numbers(&numbers(n)).unwrap_err();
        assert_eq!(e.code(), wa_errors::ErrorCode::ValidationError);
        e.details()["field"].as_str().unwrap().to_owned()
    }

    #[test]
    fn numbers_are_kept_as_digits_in_the_order_given() {
        for (given, digits) in [
            (vec!["+15551230002"], vec!["15551230002"]),
            (
                vec!["15550001234", "+4915112345678", "15550001234"],
                vec!["15550001234", "4915112345678", "15550001234"],
            ),
        ] {
            assert_eq!(validate_phone_numbers(&numbers(&given)).unwrap(), digits);
        }
        let fifty = vec!["15551230002"; MAX_PHONE_NUMBERS];
        assert_eq!(validate_phone_numbers(&numbers(&fifty)).unwrap().len(), 50);
    }

    #[test]
    fn a_list_of_no_or_too_many_numbers_is_refused_on_the_list() {
        assert_eq!(refused_on(&[]), "phone_numbers");
        let many = vec!["15551230002"; MAX_PHONE_NUMBERS + 1];
        assert_eq!(refused_on(&many), "phone_numbers");
    }

    #[test]
    fn a_bad_entry_is_refused_on_its_index() {
        for (list, field) in [
            (vec!["abc"], "phone_numbers[0]"),
            (vec!["15551230002", "+1555"], "phone_numbers[1]"),
            (vec!["15551230002", "1", "015551230002"], "phone_numbers[1]"),
            (
                vec!["15551230002", "15551230003", "015551230002"],
                "phone_numbers[2]",
            ),
            (vec!["15551230002@s.whatsapp.net"], "phone_numbers[0]"),
            (vec!["1234567890123456"], "phone_numbers[0]"),
        ] {
            assert_eq!(refused_on(&list), field, "{list:?}");
        }
    }

    #[test]
    fn an_absent_number_has_no_jid_nor_lid() {
        assert_eq!(
            serde_json::to_value(ContactCheck::absent("15550001234")).unwrap(),
            serde_json::json!({"phone_number": "15550001234", "on_whatsapp": false, "jid": null, "lid": null})
        );
    }
}
