//! `?limit=&cursor=` on every list: limit 1-200 (default 50), an opaque cursor.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use wa_core::PageRequest;
use wa_errors::ApiError;

pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 200;

/// The query parameters of a list.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Page size, 1-200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// `?limit=`: 1-200, 50 when absent.
pub fn check_limit(limit: Option<u32>) -> Result<u32, ApiError> {
    let limit = limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::validation(
            "limit",
            "`limit` must be between 1 and 200",
        ));
    }
    Ok(limit)
}

impl ListQuery {
    pub fn page(&self) -> Result<PageRequest, ApiError> {
        let limit = check_limit(self.limit)?;
        let after = match self.cursor.as_deref() {
            None | Some("") => None,
            Some(c) => Some(decode_cursor(c)?),
        };
        Ok(PageRequest { limit, after })
    }
}

/// The opaque form of a page cursor.
pub fn encode_cursor(after: Uuid) -> String {
    URL_SAFE_NO_PAD.encode(after.as_bytes())
}

fn decode_cursor(c: &str) -> Result<Uuid, ApiError> {
    URL_SAFE_NO_PAD
        .decode(c)
        .ok()
        .and_then(|b| Uuid::from_slice(&b).ok())
        .ok_or_else(|| ApiError::validation("cursor", "`cursor` is not a cursor this API issued"))
}

/// A list body: `{<items>: [...], count, next_cursor}` where the items key is set by the caller.
#[derive(Debug, Serialize)]
pub struct Listed<T> {
    #[serde(flatten)]
    pub items: T,
    pub count: usize,
    pub next_cursor: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_cursors() {
        let q = |limit, cursor: Option<&str>| ListQuery {
            limit,
            cursor: cursor.map(str::to_owned),
        };
        assert_eq!(q(None, None).page().unwrap().limit, 50);
        assert_eq!(q(Some(200), None).page().unwrap().limit, 200);
        for bad in [0, 201] {
            assert_eq!(
                q(Some(bad), None).page().unwrap_err().details()["field"],
                "limit"
            );
        }
        let id = Uuid::now_v7();
        assert_eq!(
            q(None, Some(&encode_cursor(id))).page().unwrap().after,
            Some(id)
        );
        for bad in ["!!", "abc", "AAAA"] {
            assert_eq!(
                q(None, Some(bad)).page().unwrap_err().details()["field"],
                "cursor"
            );
        }
    }
}
