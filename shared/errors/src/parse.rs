//! Parsing of caller input into typed values, every failure an `ApiError` naming the field:
//! JSON bodies, query strings, UUIDs in paths. The HTTP extractors (in the HTTP crate) are
//! thin wrappers around these.

use serde::de::DeserializeOwned;

use crate::{ApiError, ErrorCode};

/// The 413 answer for a body over the limit.
pub fn too_large() -> ApiError {
    ApiError::new(
        ErrorCode::RequestTooLarge,
        "request body is too large; send media by `url` instead of `data_base64`",
    )
}

/// Parses a JSON object into `T`, turning serde's error into validation_error with the
/// field's name.
/// Every request body of this API is a JSON object.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => {}
        None => return Err(ApiError::validation("body", "the request body is empty")),
        Some(_) => {
            return Err(ApiError::validation(
                "body",
                "the body must be a JSON object",
            ));
        }
    }
    // Syntax first, so that a body which is not JSON at all is reported on `body`.
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
        ApiError::validation("body", format!("invalid JSON: {}", strip_position(&e)))
    })?;
    serde_path_to_error::deserialize(value).map_err(|err| {
        let path = err.path().to_string();
        field_error(&path, &strip_position(&err.into_inner()))
    })
}

/// Builds validation_error from serde's path and message: `missing field `x``,
/// `unknown field `x`` and `duplicate field `x`` are reported on `x` (under the path), a
/// mistyped value on the path.
fn field_error(path: &str, message: &str) -> ApiError {
    let prefix = if path == "." { "" } else { path };
    for lead in ["missing field `", "unknown field `", "duplicate field `"] {
        if let Some(rest) = message.strip_prefix(lead) {
            // The name is the caller's (unknown fields) and may itself hold a backtick: it
            // ends where serde's own text starts.
            let name = ["`, expected ", "`, there are no fields"]
                .iter()
                .find_map(|end| rest.split_once(end).map(|(n, _)| n))
                .or_else(|| rest.strip_suffix('`'))
                .unwrap_or(rest);
            if name.is_empty() {
                // `details.field` is never empty: a key "" is reported on the object that
                // holds it (serde_path_to_error may already have stepped into it).
                let holder = prefix.trim_end_matches('.');
                return ApiError::validation(
                    if holder.is_empty() { "body" } else { holder },
                    "a field with an empty name is not allowed",
                );
            }
            let field = if prefix.is_empty() {
                name.to_owned()
            } else if prefix == name || prefix.ends_with(&format!(".{name}")) {
                // serde_path_to_error already stepped into an unknown field.
                prefix.to_owned()
            } else {
                format!("{prefix}.{name}")
            };
            let what = match lead.as_bytes()[0] {
                b'm' => format!("`{field}` is required"),
                b'u' => format!("`{field}` is not a known field"),
                _ => format!("`{field}` is given more than once"),
            };
            return ApiError::validation(field, what);
        }
    }
    if prefix.is_empty() {
        return ApiError::validation("body", format!("invalid body: {message}"));
    }
    ApiError::validation(prefix.to_owned(), format!("`{prefix}`: {message}"))
}

fn strip_position(err: &serde_json::Error) -> String {
    let s = err.to_string();
    match s.rfind(" at line ") {
        Some(i) => s[..i].to_owned(),
        None => s,
    }
}

/// Parses a query string (without the `?`) into `T`: a bad value is validation_error
/// naming the parameter, and so is a parameter given more than once.
pub fn parse_query<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
    serde_path_to_error::deserialize(de).map_err(|err| {
        let path = err.path().to_string();
        field_error(&path, &err.into_inner().to_string())
    })
}

/// Parses a UUID from the path; anything else is validation_error on `field`.
pub fn parse_uuid(field: &'static str, raw: &str) -> Result<uuid::Uuid, ApiError> {
    // Only the canonical hyphenated form: other spellings would alias one resource.
    if raw.len() != 36 {
        return Err(ApiError::validation(
            field,
            format!("`{field}` must be a UUID"),
        ));
    }
    uuid::Uuid::parse_str(raw)
        .map_err(|_| ApiError::validation(field, format!("`{field}` must be a UUID")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        count: Option<u32>,
        inner: Option<Inner>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        x: i32,
    }

    fn field(bytes: &str) -> String {
        let e = parse_json::<Body>(bytes.as_bytes()).unwrap_err();
        assert_eq!(e.code(), ErrorCode::ValidationError);
        e.details()["field"].as_str().unwrap().to_owned()
    }

    #[test]
    fn fields_are_named() {
        assert_eq!(field("{"), "body");
        assert_eq!(field(""), "body");
        assert_eq!(field("[1]"), "body");
        assert_eq!(field("null"), "body");
        assert_eq!(field("{} x"), "body");
        assert_eq!(field("{}"), "name");
        assert_eq!(field(r#"{"name": 5}"#), "name");
        assert_eq!(field(r#"{"name": "a", "count": -1}"#), "count");
        assert_eq!(field(r#"{"name": "a", "nope": 1}"#), "nope");
        assert_eq!(field(r#"{"name": "a", "inner": {}}"#), "inner.x");
        assert_eq!(field(r#"{"name": "a", "inner": {"x": "s"}}"#), "inner.x");
        // Found by scripts/fuzz: an empty key gave `details.field: ""`.
        assert_eq!(field(r#"{"name": "a", "": 1}"#), "body");
        assert_eq!(field(r#"{"name": "a", "inner": {"x": 1, "": 1}}"#), "inner");
        assert_eq!(field(r#"{"name": "a", "a`b": 1}"#), "a`b");
        assert_eq!(field(r#"{"name": "a", "a`, b": 1}"#), "a`, b");
        assert!(parse_json::<Body>(br#"{"name":"a"}"#).is_ok());
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Query {
        limit: Option<u32>,
        cursor: Option<String>,
    }

    #[test]
    fn query_parameters_are_named() {
        let err = |q: &str| parse_query::<Query>(q).unwrap_err();
        for (query, field) in [
            ("limit=1&limit=2", "limit"),
            ("cursor=a&limit=1&cursor=b", "cursor"),
            ("limit=x", "limit"),
            ("limit=-1", "limit"),
        ] {
            let e = err(query);
            assert_eq!(e.code(), ErrorCode::ValidationError);
            assert_eq!(e.details()["field"], field, "{query}");
        }
        assert_eq!(
            err("limit=1&limit=1").message(),
            "`limit` is given more than once"
        );
        // Parameters the query does not name are ignored, repeated or not.
        let q = parse_query::<Query>("limit=5&other=1&other=2").unwrap();
        assert_eq!(q.limit, Some(5));
        assert!(parse_query::<Query>("").is_ok());
    }

    #[test]
    fn uuids() {
        assert!(parse_uuid("app_id", "67e55044-10b1-426f-9247-bb680e5fe0c8").is_ok());
        for bad in [
            "",
            "x",
            "67e5504410b1426f9247bb680e5fe0c8",
            "{67e55044-10b1-426f-9247-bb680e5fe0c8}",
        ] {
            let e = parse_uuid("app_id", bad).unwrap_err();
            assert_eq!(e.details()["field"], "app_id");
        }
    }
}
