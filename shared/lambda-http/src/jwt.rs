//! The tenant-JWT key of an HTTP function: where it comes from (`WA_JWT_SECRET_ARN`, read
//! from Secrets Manager once at init and kept for the life of the execution environment,
//! or `WA_JWT_SECRET` for local runs), and whether the function needs it at all (only when
//! one of its routes declares the tenant-JWT security scheme).

use anyhow::Context as _;
use aws_sdk_secretsmanager::config::BehaviorVersion;
use aws_sdk_secretsmanager::error::DisplayErrorContext;
use serde_json::Value;
use wa_core::auth::JwtConfig;

/// Where the JWT key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// The SecretString (or SecretBinary) of this Secrets Manager secret.
    SecretsManager(String),
    /// The value of `WA_JWT_SECRET` itself.
    Plain(String),
    /// Not configured.
    Missing,
}

/// The key's source from `WA_JWT_SECRET_ARN` and `WA_JWT_SECRET` (blank counts as unset):
/// the ARN when it is set (the deployment's source of truth, whatever `WA_JWT_SECRET`
/// says), else the plain key.
pub fn key_source(arn: Option<&str>, plain: Option<&str>) -> KeySource {
    let set = |v: Option<&str>| v.map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned);
    match (set(arn), plain.filter(|v| !v.trim().is_empty())) {
        (Some(arn), _) => KeySource::SecretsManager(arn),
        (None, Some(key)) => KeySource::Plain(key.to_owned()),
        (None, None) => KeySource::Missing,
    }
}

/// Whether an OpenAPI document (as JSON) has an operation secured by the tenant JWT
/// (`wa_api::openapi::JWT`): then the function verifies tenant JWTs.
pub fn serves_tenant_jwt(openapi: &Value) -> bool {
    let Some(paths) = openapi.get("paths").and_then(Value::as_object) else {
        return false;
    };
    paths
        .values()
        .filter_map(Value::as_object)
        .flat_map(|item| item.values())
        .filter_map(|op| op.get("security").and_then(Value::as_array))
        .flatten()
        .any(|requirement| requirement.get(wa_api::openapi::JWT).is_some())
}

/// Reads a secret's value from Secrets Manager (the SDK's configuration from the
/// environment: `AWS_REGION`, `AWS_ENDPOINT_URL`, credentials). Fails naming the secret.
async fn read_secret(arn: &str) -> anyhow::Result<Vec<u8>> {
    let config = aws_config::load_defaults(BehaviorVersion::latest()).await;
    let client = aws_sdk_secretsmanager::Client::new(&config);
    let out = client
        .get_secret_value()
        .secret_id(arn)
        .send()
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "WA_JWT_SECRET_ARN: reading {arn} from Secrets Manager failed: {}",
                DisplayErrorContext(&e)
            )
        })?;
    if let Some(s) = out.secret_string() {
        return Ok(s.as_bytes().to_vec());
    }
    out.secret_binary()
        .map(|b| b.as_ref().to_vec())
        .with_context(|| format!("WA_JWT_SECRET_ARN: the secret {arn} has no value"))
}

/// The JWT settings of the environment when `needed`: the key from its [`KeySource`]
/// (Secrets Manager is asked once, here), with `WA_JWT_ISSUER` and `WA_JWT_AUDIENCE`.
/// Not needed: `None`, and nothing is read (a function without JWT routes has no access to
/// the secret). Fails when needed and missing, unreadable or shorter than 32 bytes.
pub async fn from_env(needed: bool) -> anyhow::Result<Option<JwtConfig>> {
    if !needed {
        return Ok(None);
    }
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    let (key, from) = match key_source(
        var("WA_JWT_SECRET_ARN").as_deref(),
        var("WA_JWT_SECRET").as_deref(),
    ) {
        KeySource::SecretsManager(arn) => {
            if var("WA_JWT_SECRET").is_some() {
                tracing::warn!("WA_JWT_SECRET is ignored: WA_JWT_SECRET_ARN is set");
            }
            (read_secret(&arn).await?, "WA_JWT_SECRET_ARN")
        }
        KeySource::Plain(key) => (key.into_bytes(), "WA_JWT_SECRET"),
        KeySource::Missing => anyhow::bail!(
            "WA_JWT_SECRET_ARN (or WA_JWT_SECRET): required, this function verifies tenant JWTs"
        ),
    };
    JwtConfig::new(key, var("WA_JWT_ISSUER"), var("WA_JWT_AUDIENCE"))
        .map(Some)
        .map_err(|e| anyhow::anyhow!("{from}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_arn_wins_then_the_plain_key() {
        let rows = [
            (Some("arn:s"), Some("k"), KeySource::SecretsManager("arn:s".into())),
            (Some("arn:s"), None, KeySource::SecretsManager("arn:s".into())),
            (None, Some("k"), KeySource::Plain("k".into())),
            (Some("  "), Some("k"), KeySource::Plain("k".into())),
            (None, Some(""), KeySource::Missing),
            (None, None, KeySource::Missing),
        ];
        for (arn, plain, want) in rows {
            assert_eq!(key_source(arn, plain), want, "{arn:?} {plain:?}");
        }
    }

    #[test]
    fn only_routers_with_tenant_jwt_operations_need_the_key() {
        let jwt_op = json!({"security": [{"tenant_jwt": []}]});
        let token_op = json!({"security": [{"app_token": []}]});
        let rows = [
            (json!({"paths": {"/apps": {"post": jwt_op}}}), true),
            (
                json!({"paths": {"/devices": {"get": token_op}, "/apps/{id}": {"get": {}, "delete": jwt_op}}}),
                true,
            ),
            (json!({"paths": {"/devices": {"get": token_op}}}), false),
            (json!({"paths": {"/health": {"get": {}}}}), false),
            (json!({}), false),
        ];
        for (doc, want) in rows {
            assert_eq!(serves_tenant_jwt(&doc), want, "{doc}");
        }
    }
}
