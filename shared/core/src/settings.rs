//! Settings from the environment's text: a blank value counts as unset.

use std::ops::RangeInclusive;
use std::str::FromStr;

/// The whole number a setting's `value` sets: `default` when unset or blank, the number
/// (spaces around it aside) when it is one within `range`; `problem` (what the setting must
/// be) for anything else.
pub fn whole_number<T: FromStr + PartialOrd>(
    value: Option<&str>,
    default: T,
    range: RangeInclusive<T>,
    problem: &str,
) -> Result<T, String> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(default),
        Some(v) => v
            .parse::<T>()
            .ok()
            .filter(|n| range.contains(n))
            .ok_or_else(|| problem.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::whole_number;

    fn setting(value: Option<&str>) -> Result<u64, String> {
        whole_number(value, 7, 2..=10, "from 2 to 10")
    }

    #[test]
    fn unset_or_blank_is_the_default() {
        assert_eq!(setting(None), Ok(7));
        assert_eq!(setting(Some("")), Ok(7));
        assert_eq!(setting(Some(" \t")), Ok(7));
    }

    #[test]
    fn a_number_in_the_range_is_taken_with_its_ends() {
        assert_eq!(setting(Some("2")), Ok(2));
        assert_eq!(setting(Some(" 5 ")), Ok(5));
        assert_eq!(setting(Some("10")), Ok(10));
    }

    #[test]
    fn a_number_out_of_the_range_is_refused() {
        assert_eq!(setting(Some("1")), Err("from 2 to 10".into()));
        assert_eq!(setting(Some("11")), Err("from 2 to 10".into()));
    }

    #[test]
    fn anything_but_a_whole_number_is_refused() {
        for bad in ["-3", "2.5", "five", "5s", "0x5"] {
            assert_eq!(setting(Some(bad)), Err("from 2 to 10".into()), "{bad}");
        }
    }
}
