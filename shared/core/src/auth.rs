//! Credentials: tenant JWTs (HS256) for /apps, random App tokens stored only as hashes,
//! and webhook secrets.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The smallest JWT secret accepted, in bytes.
pub const MIN_JWT_SECRET_BYTES: usize = 32;

/// Clock skew tolerated on `exp` and `nbf`, in seconds.
pub const JWT_LEEWAY_SECS: u64 = 30;

/// How tenant JWTs are checked.
#[derive(Clone)]
pub struct JwtConfig {
    secret: Vec<u8>,
    pub issuer: Option<String>,
    pub audience: Option<String>,
}

impl std::fmt::Debug for JwtConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtConfig")
            .field("secret", &"<redacted>")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish()
    }
}

/// The claims wa-server reads from a tenant JWT.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    pub tenant_id: String,
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// Not before: the token is refused until then (with [`JWT_LEEWAY_SECS`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<Audience>,
}

/// The `aud` claim: one audience, or several (RFC 7519, section 4.1.3). A token is meant
/// for the configured audience when it is the one or among the several.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

/// Why a JWT was refused (for logs; callers only ever see 401 unauthorized).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtError(pub String);

impl std::fmt::Display for JwtError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether a tenant id is acceptable: 1-128 chars of `[A-Za-z0-9._:@-]`.
pub fn is_valid_tenant_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'@' | b'-'))
}

/// Selects jsonwebtoken's crypto backend once per process: aws-lc where the build has it
/// (`jwt-aws-lc`, turned on with the AWS SDK, which links aws-lc already), otherwise the
/// RustCrypto crates, which build much faster than aws-lc's C sources. With both compiled
/// in (a workspace build), jsonwebtoken cannot choose on its own and would panic.
fn select_crypto() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        #[cfg(feature = "jwt-aws-lc")]
        let provider = &jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER;
        #[cfg(not(feature = "jwt-aws-lc"))]
        let provider = &jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER;
        // Refused only when a provider is installed already, which is as good.
        let _ = provider.install_default();
    });
}

impl JwtConfig {
    /// Fails when the secret is shorter than [`MIN_JWT_SECRET_BYTES`].
    pub fn new(
        secret: impl Into<Vec<u8>>,
        issuer: Option<String>,
        audience: Option<String>,
    ) -> Result<Self, String> {
        // Here too, so that code signing its own test tokens finds the backend chosen.
        select_crypto();
        let secret = secret.into();
        if secret.len() < MIN_JWT_SECRET_BYTES {
            return Err(format!(
                "the JWT secret must be at least {MIN_JWT_SECRET_BYTES} bytes long"
            ));
        }
        Ok(JwtConfig {
            secret,
            issuer,
            audience,
        })
    }

    /// Verifies an HS256 token: signature, `exp` (required) and `nbf` (when present), both
    /// with [`JWT_LEEWAY_SECS`] of clock skew, `tenant_id`, and `iss`/`aud` when configured
    /// (then required; `aud` may be a string or an array containing the audience). Every
    /// other algorithm, `none` included, is refused.
    pub fn verify(&self, token: &str) -> Result<Claims, JwtError> {
        select_crypto();
        let mut v = Validation::new(Algorithm::HS256);
        v.leeway = JWT_LEEWAY_SECS;
        // RFC 7519 4.1.5: a token must not be accepted before its `nbf`.
        v.validate_nbf = true;
        v.set_required_spec_claims(&["exp"]);
        match &self.issuer {
            Some(iss) => {
                v.set_issuer(&[iss]);
                v.required_spec_claims.insert("iss".into());
            }
            None => v.iss = None,
        }
        match &self.audience {
            Some(aud) => {
                v.set_audience(&[aud]);
                v.required_spec_claims.insert("aud".into());
            }
            None => v.validate_aud = false,
        }
        let data =
            jsonwebtoken::decode::<Claims>(token, &DecodingKey::from_secret(&self.secret), &v)
                .map_err(|e| JwtError(e.to_string()))?;
        if !is_valid_tenant_id(&data.claims.tenant_id) {
            return Err(JwtError("tenant_id is not a valid tenant id".into()));
        }
        Ok(data.claims)
    }

    /// Signs a token for `tenant_id` valid for `ttl_secs`.
    pub fn mint(&self, tenant_id: &str, ttl_secs: u64) -> Result<String, JwtError> {
        if !is_valid_tenant_id(tenant_id) {
            return Err(JwtError(
                "tenant id must be 1-128 chars of [A-Za-z0-9._:@-]".into(),
            ));
        }
        select_crypto();
        let now = crate::time::OffsetDateTime::now_utc().unix_timestamp() as u64;
        let claims = Claims {
            tenant_id: tenant_id.to_owned(),
            exp: now + ttl_secs,
            sub: Some(tenant_id.to_owned()),
            iat: Some(now),
            nbf: None,
            iss: self.issuer.clone(),
            aud: self.audience.clone().map(Audience::One),
        };
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(&self.secret),
        )
        .map_err(|e| JwtError(e.to_string()))
    }
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    rand::rng().fill_bytes(&mut b);
    b
}

/// A new App token: `wa_` and 32 random bytes, base64url.
pub fn new_app_token() -> String {
    format!("wa_{}", URL_SAFE_NO_PAD.encode(random_bytes::<32>()))
}

/// A new webhook secret in the Standard Webhooks form: `whsec_` and 32 random bytes, base64.
pub fn new_webhook_secret() -> String {
    format!("whsec_{}", STANDARD.encode(random_bytes::<32>()))
}

/// A new random secret for signing JWTs (64 hex chars).
pub fn new_jwt_secret() -> String {
    random_bytes::<32>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 0xf) as usize] as char);
    }
    s
}

/// The stored form of an App token: hex SHA-256. The token itself is never stored.
pub fn hash_token(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

/// Constant-time check that `token` hashes to `stored_hash`.
pub fn token_matches(token: &str, stored_hash: &str) -> bool {
    hash_matches(&hash_token(token), stored_hash)
}

/// Constant-time comparison of two token hashes.
pub fn hash_matches(hash: &str, stored_hash: &str) -> bool {
    hash.as_bytes().ct_eq(stored_hash.as_bytes()).into()
}

/// The bearer credential of an `Authorization` header value, if it is one.
pub fn bearer(header_value: &str) -> Option<&str> {
    let (scheme, rest) = header_value.trim().split_once(' ')?;
    let token = rest.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && !token.contains(' '))
        .then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> JwtConfig {
        JwtConfig::new("0123456789abcdef0123456789abcdef", None, None).unwrap()
    }

    fn b64(s: &str) -> String {
        URL_SAFE_NO_PAD.encode(s)
    }

    fn now() -> u64 {
        crate::time::OffsetDateTime::now_utc().unix_timestamp() as u64
    }

    #[test]
    fn mint_and_verify() {
        let t = cfg().mint("acme", 60).unwrap();
        assert_eq!(cfg().verify(&t).unwrap().tenant_id, "acme");
    }

    #[test]
    fn short_secret_is_refused() {
        assert!(JwtConfig::new("short", None, None).is_err());
    }

    #[test]
    fn refusals() {
        let c = cfg();
        // alg none, with and without a signature part
        let none = format!(
            "{}.{}.",
            b64(r#"{"alg":"none","typ":"JWT"}"#),
            b64(&format!(r#"{{"tenant_id":"acme","exp":{}}}"#, now() + 60))
        );
        assert!(c.verify(&none).is_err());
        // another algorithm signed with the same secret
        let hs512 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS512),
            &Claims {
                tenant_id: "acme".into(),
                exp: now() + 60,
                sub: None,
                iat: None,
                nbf: None,
                iss: None,
                aud: None,
            },
            &EncodingKey::from_secret(b"0123456789abcdef0123456789abcdef"),
        )
        .unwrap();
        assert!(c.verify(&hs512).is_err());
        // expired
        let old = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &serde_json::json!({"tenant_id": "acme", "exp": now() - 3600}),
            &EncodingKey::from_secret(b"0123456789abcdef0123456789abcdef"),
        )
        .unwrap();
        assert!(c.verify(&old).is_err());
        // wrong secret
        let other = JwtConfig::new("another-secret-another-secret-xx", None, None)
            .unwrap()
            .mint("acme", 60)
            .unwrap();
        assert!(c.verify(&other).is_err());
        // missing tenant, missing exp, bad tenant
        for claims in [
            serde_json::json!({"exp": now() + 60}),
            serde_json::json!({"tenant_id": "acme"}),
            serde_json::json!({"tenant_id": "", "exp": now() + 60}),
            serde_json::json!({"tenant_id": 5, "exp": now() + 60}),
        ] {
            let t = jsonwebtoken::encode(
                &Header::new(Algorithm::HS256),
                &claims,
                &EncodingKey::from_secret(b"0123456789abcdef0123456789abcdef"),
            )
            .unwrap();
            assert!(c.verify(&t).is_err(), "{claims}");
        }
        assert!(c.verify("garbage").is_err());
        assert!(c.verify("").is_err());
    }

    #[test]
    fn issuer_and_audience_when_configured() {
        let strict = JwtConfig::new(
            "0123456789abcdef0123456789abcdef",
            Some("me".into()),
            Some("wa".into()),
        )
        .unwrap();
        assert!(strict.verify(&cfg().mint("acme", 60).unwrap()).is_err());
        assert!(strict.verify(&strict.mint("acme", 60).unwrap()).is_ok());
    }

    fn sign(claims: serde_json::Value) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(b"0123456789abcdef0123456789abcdef"),
        )
        .unwrap()
    }

    /// `nbf` is honoured with the same clock skew as `exp`.
    #[test]
    fn not_before_and_expiry_rows() {
        let n = now();
        let rows = [
            ("nbf absent", serde_json::json!({}), true),
            (
                "nbf in the past",
                serde_json::json!({"nbf": n - 3600}),
                true,
            ),
            ("nbf now", serde_json::json!({"nbf": n}), true),
            (
                "nbf within the leeway",
                serde_json::json!({"nbf": n + 10}),
                true,
            ),
            (
                "nbf past the leeway",
                serde_json::json!({"nbf": n + JWT_LEEWAY_SECS + 60}),
                false,
            ),
            (
                "nbf an hour ahead",
                serde_json::json!({"nbf": n + 3600}),
                false,
            ),
            (
                "nbf not a number",
                serde_json::json!({"nbf": "soon"}),
                false,
            ),
            (
                "exp within the leeway",
                serde_json::json!({"exp": n - 10}),
                true,
            ),
            (
                "exp past the leeway",
                serde_json::json!({"exp": n - JWT_LEEWAY_SECS - 60}),
                false,
            ),
        ];
        for (row, extra, accepted) in rows {
            let mut claims = serde_json::json!({"tenant_id": "acme", "exp": n + 600});
            for (k, v) in extra.as_object().unwrap() {
                claims[k] = v.clone();
            }
            let got = cfg().verify(&sign(claims));
            assert_eq!(got.is_ok(), accepted, "{row}: {got:?}");
        }
        let claims = cfg()
            .verify(&sign(
                serde_json::json!({"tenant_id": "acme", "exp": n + 600, "nbf": n - 5}),
            ))
            .unwrap();
        assert_eq!(claims.nbf, Some(n - 5));
    }

    /// `aud` as RFC 7519 allows it: a string, or an array that must contain the audience.
    #[test]
    fn audience_rows() {
        let wa =
            JwtConfig::new("0123456789abcdef0123456789abcdef", None, Some("wa".into())).unwrap();
        let rows: [(&str, &JwtConfig, Option<serde_json::Value>, bool); 10] = [
            ("string, the audience", &wa, Some("wa".into()), true),
            ("string, another", &wa, Some("other".into()), false),
            (
                "array containing it",
                &wa,
                Some(serde_json::json!(["other", "wa"])),
                true,
            ),
            (
                "array of it alone",
                &wa,
                Some(serde_json::json!(["wa"])),
                true,
            ),
            (
                "array not containing it",
                &wa,
                Some(serde_json::json!(["other", "more"])),
                false,
            ),
            ("empty array", &wa, Some(serde_json::json!([])), false),
            ("not a string", &wa, Some(serde_json::json!(5)), false),
            ("absent when required", &wa, None, false),
            ("string, none configured", &cfg(), Some("any".into()), true),
            (
                "array, none configured",
                &cfg(),
                Some(serde_json::json!(["any", "more"])),
                true,
            ),
        ];
        for (row, config, aud, accepted) in rows {
            let mut claims = serde_json::json!({"tenant_id": "acme", "exp": now() + 600});
            if let Some(aud) = aud {
                claims["aud"] = aud;
            }
            let got = config.verify(&sign(claims));
            assert_eq!(got.is_ok(), accepted, "{row}: {got:?}");
        }
        let claims = wa
            .verify(&sign(
                serde_json::json!({"tenant_id": "acme", "exp": now() + 600, "aud": ["x", "wa"]}),
            ))
            .unwrap();
        assert_eq!(
            claims.aud,
            Some(Audience::Many(vec!["x".into(), "wa".into()]))
        );
    }

    #[test]
    fn tokens_hash_and_match() {
        assert_eq!(hex(&[0x00, 0x7f, 0xa5, 0xff]), "007fa5ff");
        assert_eq!(
            hash_token("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let t = new_app_token();
        assert!(t.starts_with("wa_") && t.len() == 46);
        let h = hash_token(&t);
        assert!(token_matches(&t, &h));
        assert!(!token_matches(&new_app_token(), &h));
        assert_ne!(new_app_token(), new_app_token());
        assert!(new_webhook_secret().starts_with("whsec_"));
    }

    #[test]
    fn bearer_parsing() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer   abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer"), None);
        assert_eq!(bearer("Bearer a b"), None);
    }
}
