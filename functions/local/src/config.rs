//! The embedded server's configuration, read once from the environment. A bad value fails
//! start-up with the variable's name.

use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

/// Default limit on request bodies: media sent inline as base64 fits, larger media goes by `url`.
pub const DEFAULT_MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line, with the request's span fields (request_id, ...).
    Json,
    /// Human-readable lines.
    Pretty,
}

/// Everything `wa-server` reads from its environment.
#[derive(Debug, Clone)]
pub struct Config {
    /// `WA_LISTEN`, default `127.0.0.1:8080`. Port 0 picks a free port (logged at start).
    pub listen: SocketAddr,
    /// `WA_DATA_DIR`, default `./data`: the SQLite database and the generated JWT secret.
    pub data_dir: PathBuf,
    /// `WA_JWT_SECRET`; when unset, a secret is generated into `<data_dir>/jwt_secret`.
    pub jwt_secret: Option<String>,
    /// `WA_JWT_ISSUER`: when set, tokens must carry this `iss`.
    pub jwt_issuer: Option<String>,
    /// `WA_JWT_AUDIENCE`: when set, tokens must carry this `aud`.
    pub jwt_audience: Option<String>,
    /// `WA_ALLOW_PRIVATE_URLS` (`1`/`true`): allow private, loopback and link-local targets.
    pub allow_private_urls: bool,
    /// `WA_MAX_BODY_BYTES`, default 32 MiB: larger bodies get 413 request_too_large.
    pub max_body_bytes: usize,
    /// `WA_LOG_FORMAT` (`json` | `pretty`), default `pretty`.
    pub log_format: LogFormat,
    /// `WA_WORKER` (`1` default, `0`): run the worker in this process. With `0` the server
    /// only queues commands, for a separate `wa-worker` on the same data directory.
    pub run_worker: bool,
    /// `WA_LINK_WAIT_MS`, default 10000: how long device creation and QR regeneration wait
    /// for the first QR before answering with `initializing`.
    pub link_wait: std::time::Duration,
    /// `WA_SEND_WAIT_MS`, default 20000: how long a send waits for WhatsApp before 202.
    pub send_wait: std::time::Duration,
    /// `WA_QUERY_WAIT_MS`, default 10000: with `WA_WORKER=0`, how long a request only a
    /// live session can answer (profile, groups, the sandbox's routes) waits for the
    /// worker before 504 upstream_timeout.
    pub query_wait: std::time::Duration,
    /// `WA_HEADER_TIMEOUT_MS`, default 10000: a request head (from the connection's start,
    /// or from its first byte on a kept-alive connection) must arrive within it, else the
    /// connection is closed.
    pub header_timeout: std::time::Duration,
    /// `WA_IDLE_TIMEOUT_SECS`, default 60: a kept-alive connection with no request for this
    /// long is closed.
    pub idle_timeout: std::time::Duration,
    /// `WA_MAX_CONNECTIONS`: client connections open at most; unset, three quarters of the
    /// open-file limit (at most 10000). Never more than the open-file limit leaves after a
    /// reserve for the database and the sessions.
    pub max_connections: Option<usize>,
    /// The worker's settings: `WA_PROVIDER`, `WA_QR_TTL_SECS`, `WA_CONNECT_TIMEOUT_SECS`.
    pub worker: wa_worker::WorkerConfig,
    /// The AWS data path: `WA_TABLE_NAME` (DynamoDB instead of SQLite),
    /// `WA_COMMANDS_QUEUE_URL` and `WA_EVENTS_QUEUE_URL` (SQS instead of the local queue;
    /// both or neither), `WA_SENDS_QUEUE_URL` (consume event-driven sends).
    pub aws: wa_aws::AwsEnv,
    /// `WA_APP_RATE` (requests per second per App, default 0 = off) and `WA_APP_BURST`
    /// (default twice the rate): the request limiter.
    pub app_limit: wa_api::LimitConfig,
}

/// A variable with a value the server cannot use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub var: &'static str,
    pub problem: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.var, self.problem)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads configuration through `get` (the environment, or a map in tests).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let var = |k: &'static str| get(k).filter(|v| !v.trim().is_empty());
        let err = |var: &'static str, problem: &str| ConfigError {
            var,
            problem: problem.to_owned(),
        };
        let listen = match var("WA_LISTEN") {
            None => SocketAddr::from(([127, 0, 0, 1], 8080)),
            Some(v) => v
                .parse()
                .map_err(|_| err("WA_LISTEN", "must be an address such as 127.0.0.1:8080"))?,
        };
        let allow_private_urls = match var("WA_ALLOW_PRIVATE_URLS").as_deref() {
            None | Some("0") | Some("false") => false,
            Some("1") | Some("true") => true,
            Some(_) => return Err(err("WA_ALLOW_PRIVATE_URLS", "must be 1, 0, true or false")),
        };
        let max_body_bytes = match var("WA_MAX_BODY_BYTES") {
            None => DEFAULT_MAX_BODY_BYTES,
            Some(v) => v.parse().ok().filter(|n| *n >= 1024).ok_or_else(|| {
                err(
                    "WA_MAX_BODY_BYTES",
                    "must be a number of bytes, at least 1024",
                )
            })?,
        };
        let log_format = match var("WA_LOG_FORMAT").as_deref() {
            None | Some("pretty") => LogFormat::Pretty,
            Some("json") => LogFormat::Json,
            Some(_) => return Err(err("WA_LOG_FORMAT", "must be json or pretty")),
        };
        let query_wait = wa_core::session::query_wait(var("WA_QUERY_WAIT_MS").as_deref())
            .map_err(|p| err("WA_QUERY_WAIT_MS", &p))?;
        let run_worker = match var("WA_WORKER").as_deref() {
            None | Some("1") | Some("true") => true,
            Some("0") | Some("false") => false,
            Some(_) => return Err(err("WA_WORKER", "must be 1, 0, true or false")),
        };
        // A whole number within `range`, `default` when unset.
        let number =
            |name: &'static str, default: u64, range: RangeInclusive<u64>, problem| match var(name)
            {
                None => Ok(default),
                Some(v) => v
                    .parse::<u64>()
                    .ok()
                    .filter(|n| range.contains(n))
                    .ok_or_else(|| err(name, problem)),
            };
        let millis = Duration::from_millis;
        let link_wait = millis(number(
            "WA_LINK_WAIT_MS",
            10_000,
            0..=25_000,
            "must be milliseconds, at most 25000",
        )?);
        let send_wait = millis(number(
            "WA_SEND_WAIT_MS",
            20_000,
            0..=120_000,
            "must be milliseconds, at most 120000",
        )?);
        let header_timeout = millis(number(
            "WA_HEADER_TIMEOUT_MS",
            10_000,
            100..=60_000,
            "must be milliseconds, from 100 to 60000",
        )?);
        let idle_timeout = Duration::from_secs(number(
            "WA_IDLE_TIMEOUT_SECS",
            60,
            1..=3600,
            "must be seconds, from 1 to 3600",
        )?);
        let max_connections = match var("WA_MAX_CONNECTIONS") {
            None => None,
            Some(v) => Some(
                v.parse::<usize>()
                    .ok()
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| err("WA_MAX_CONNECTIONS", "must be a number, at least 1"))?,
            ),
        };
        let aws = wa_aws::AwsEnv::from_lookup(&|k| get(k));
        aws_available(&aws, wa_aws::SDK)?;
        if aws.uses_sqs() && (aws.commands_queue_url.is_none() || aws.events_queue_url.is_none()) {
            let missing = if aws.commands_queue_url.is_none() {
                "WA_COMMANDS_QUEUE_URL"
            } else {
                "WA_EVENTS_QUEUE_URL"
            };
            return Err(err(
                missing,
                "the SQS data path needs both WA_COMMANDS_QUEUE_URL and WA_EVENTS_QUEUE_URL",
            ));
        }
        let worker = wa_worker::WorkerConfig::from_lookup(&get)
            .map_err(|(var, problem)| ConfigError { var, problem })?;
        let app_limit = wa_api::LimitConfig::from_lookup(&get)
            .map_err(|(var, problem)| ConfigError { var, problem })?;
        let jwt_secret = var("WA_JWT_SECRET");
        if let Some(s) = &jwt_secret
            && s.len() < wa_core::auth::MIN_JWT_SECRET_BYTES
        {
            return Err(err("WA_JWT_SECRET", "must be at least 32 bytes long"));
        }
        Ok(Config {
            aws,
            listen,
            data_dir: PathBuf::from(var("WA_DATA_DIR").unwrap_or_else(|| "./data".into())),
            jwt_secret,
            jwt_issuer: var("WA_JWT_ISSUER"),
            jwt_audience: var("WA_JWT_AUDIENCE"),
            allow_private_urls,
            max_body_bytes,
            log_format,
            run_worker,
            link_wait,
            send_wait,
            query_wait,
            header_timeout,
            idle_timeout,
            max_connections,
            worker,
            app_limit,
        })
    }
}

/// Refuses the AWS data path's variables when the build has no AWS SDK (`sdk`:
/// [`wa_aws::SDK`], the feature `aws`): the error names the first one set and the feature to
/// build with, rather than the server quietly running on SQLite.
fn aws_available(aws: &wa_aws::AwsEnv, sdk: bool) -> Result<(), ConfigError> {
    match aws.needs_sdk(sdk) {
        Some(var) => Err(ConfigError {
            var,
            problem: wa_aws::NO_SDK.to_owned(),
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| m.get(k).cloned())
    }

    #[test]
    fn defaults() {
        let c = cfg(&[]).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.data_dir, PathBuf::from("./data"));
        assert!(!c.allow_private_urls);
        assert_eq!(c.max_body_bytes, DEFAULT_MAX_BODY_BYTES);
        assert_eq!(c.log_format, LogFormat::Pretty);
        assert!(c.jwt_secret.is_none());
        assert_eq!(c.header_timeout, std::time::Duration::from_secs(10));
        assert_eq!(c.idle_timeout, std::time::Duration::from_secs(60));
        assert_eq!(c.max_connections, None);
        assert_eq!(c.link_wait, Duration::from_secs(10));
        assert_eq!(c.send_wait, Duration::from_secs(20));
        assert_eq!(c.query_wait, Duration::from_secs(10));
        assert_eq!(
            cfg(&[("WA_QUERY_WAIT_MS", "250")]).unwrap().query_wait,
            Duration::from_millis(250)
        );
        assert_eq!(
            cfg(&[("WA_QUERY_WAIT_MS", "0")]).unwrap_err().var,
            "WA_QUERY_WAIT_MS"
        );
        let c = cfg(&[
            ("WA_HEADER_TIMEOUT_MS", "250"),
            ("WA_IDLE_TIMEOUT_SECS", "5"),
            ("WA_MAX_CONNECTIONS", "40"),
        ])
        .unwrap();
        assert_eq!(c.header_timeout, std::time::Duration::from_millis(250));
        assert_eq!(c.idle_timeout, std::time::Duration::from_secs(5));
        assert_eq!(c.max_connections, Some(40));
        assert_eq!(c.app_limit, wa_api::LimitConfig::OFF);
    }

    #[test]
    fn request_limit() {
        let c = cfg(&[("WA_APP_RATE", "20"), ("WA_APP_BURST", "5")]).unwrap();
        assert_eq!(
            c.app_limit,
            wa_api::LimitConfig {
                rate: 20.0,
                burst: 5
            }
        );
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (k, v) in [
            ("WA_LISTEN", "nope"),
            ("WA_ALLOW_PRIVATE_URLS", "yes"),
            ("WA_MAX_BODY_BYTES", "ten"),
            ("WA_LOG_FORMAT", "xml"),
            ("WA_JWT_SECRET", "short"),
            ("WA_PROVIDER", "fake"),
            ("WA_QR_TTL_SECS", "0"),
            ("WA_WORKER", "maybe"),
            ("WA_APP_RATE", "lots"),
            ("WA_APP_BURST", "0"),
            ("WA_LINK_WAIT_MS", "25001"),
            ("WA_SEND_WAIT_MS", "soon"),
            ("WA_HEADER_TIMEOUT_MS", "99"),
            ("WA_HEADER_TIMEOUT_MS", "60001"),
            ("WA_IDLE_TIMEOUT_SECS", "0"),
            ("WA_MAX_CONNECTIONS", "0"),
            ("WA_MAX_CONNECTIONS", "many"),
        ] {
            assert_eq!(cfg(&[(k, v)]).unwrap_err().var, k);
        }
    }

    #[test]
    fn the_aws_data_path_needs_a_build_with_the_sdk() {
        let env = |pairs: &[(&str, &str)]| {
            let m: HashMap<String, String> = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            wa_aws::AwsEnv::from_lookup(&|k| m.get(k).cloned())
        };
        // Which variable is named is `AwsEnv::needs_sdk`'s (its own table test); here: the
        // server's error names it and the feature to build with.
        let table = [("WA_TABLE_NAME", "wa")];
        let e = aws_available(&env(&table), false).unwrap_err();
        assert_eq!(e.var, "WA_TABLE_NAME");
        assert!(e.to_string().contains("--features aws"), "{e}");
        assert!(aws_available(&env(&table), true).is_ok());
        assert!(aws_available(&env(&[]), false).is_ok());
        // This build's own answer: the test build has the SDK (a dev-dependency feature).
        assert_eq!(cfg(&table).is_ok(), wa_aws::SDK);
    }
}
