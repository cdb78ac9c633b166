//! The one outbound HTTP client of wa-server, for webhook deliveries and media downloads.
//!
//! A target is checked twice, and the second check is what the connection uses:
//! - the URL when a request is made ([`OutboundClient::request`]): http(s) only, and a literal
//!   address (which the connector does not resolve) must be public
//!   ([`wa_core::net::check_outbound_url`]);
//! - a host name when the connector resolves it: it is looked up once, every address must be
//!   public ([`resolve::screen`]), and only those addresses are handed to the connector, so a
//!   name cannot resolve to a public address for the check and a private one for the
//!   connection (DNS rebinding).
//!
//! Redirects are never followed, system proxies are ignored (a proxy would resolve the name
//! itself), and every request has a connect and a total timeout. The operator's
//! `WA_ALLOW_PRIVATE_URLS=1` turns both address checks off (local testing).

pub mod resolve;
#[cfg(any(test, feature = "test-server"))]
pub mod test_server;
#[cfg(test)]
mod tests;

use std::error::Error as _;
use std::sync::Arc;
use std::time::Duration;

pub use reqwest::{Method, RequestBuilder, Response, StatusCode};
pub use resolve::{AddressRefused, FixedLookup, Lookup, SystemLookup};
pub use wa_core::net::{UrlRefused, loggable_url};

/// Settings of an [`OutboundClient`].
#[derive(Debug, Clone)]
pub struct Config {
    /// The longest a request may take in all, its body included.
    pub timeout: Duration,
    /// The longest resolving the name and connecting may take (capped by `timeout`).
    pub connect_timeout: Duration,
    /// Allow private, loopback and other special-purpose targets (`WA_ALLOW_PRIVATE_URLS`).
    pub allow_private: bool,
    /// Idle connections kept per host for reuse (0: none).
    pub max_idle_per_host: usize,
}

impl Config {
    /// `timeout` in all, at most 10 s of it for resolving and connecting, no idle connections.
    pub fn new(timeout: Duration, allow_private: bool) -> Self {
        Config {
            timeout,
            connect_timeout: Duration::from_secs(10),
            allow_private,
            max_idle_per_host: 0,
        }
    }
}

/// Why an outbound request gave no answer. No text holds the URL (at most its host), so
/// each may be logged and stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchError {
    /// The host resolved to an address that is not public; retrying will not help.
    Refused(String),
    /// No answer in time (resolving, connecting, or the whole request).
    TimedOut(String),
    /// Any other failure to reach the target or to read its answer (no such name, connection
    /// refused, TLS, reset).
    Failed(String),
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FetchError::Refused(m) | FetchError::TimedOut(m) | FetchError::Failed(m) => {
                f.write_str(m)
            }
        }
    }
}

impl std::error::Error for FetchError {}

impl From<reqwest::Error> for FetchError {
    /// Classifies a transport error; the text is the error's causes without the URL.
    fn from(e: reqwest::Error) -> Self {
        let timed_out = e.is_timeout();
        let e = e.without_url();
        let mut refused = None;
        let mut parts = vec![e.to_string()];
        let mut source = e.source();
        while let Some(s) = source {
            if let Some(r) = s.downcast_ref::<AddressRefused>() {
                refused = Some(r.to_string());
            }
            let text = s.to_string();
            if parts.last() != Some(&text) {
                parts.push(text);
            }
            source = s.source();
        }
        match refused {
            Some(r) => FetchError::Refused(r),
            None if timed_out => FetchError::TimedOut(format!("timed out: {}", parts.join(": "))),
            None => FetchError::Failed(parts.join(": ")),
        }
    }
}

/// An HTTP client whose requests reach only public addresses (unless allowed), and only the
/// ones it checked. Cheap to clone; share one per purpose.
#[derive(Clone)]
pub struct OutboundClient {
    http: reqwest::Client,
    allow_private: bool,
}

impl std::fmt::Debug for OutboundClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboundClient")
            .field("allow_private", &self.allow_private)
            .finish_non_exhaustive()
    }
}

impl OutboundClient {
    /// A client that resolves names with the operating system's resolver.
    ///
    /// Fails only when the TLS backend cannot be set up.
    pub fn new(config: &Config) -> Result<Self, FetchError> {
        Self::with_lookup(config, Arc::new(SystemLookup))
    }

    /// A client that resolves names with `lookup` (tests inject a [`FixedLookup`]).
    pub fn with_lookup(config: &Config, lookup: Arc<dyn Lookup>) -> Result<Self, FetchError> {
        let http = reqwest::Client::builder()
            .dns_resolver(Arc::new(resolve::CheckedResolver {
                lookup,
                allow_private: config.allow_private,
            }))
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout.min(config.timeout))
            .pool_max_idle_per_host(config.max_idle_per_host)
            .user_agent(concat!("wa-server/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(FetchError::from)?;
        Ok(OutboundClient {
            http,
            allow_private: config.allow_private,
        })
    }

    /// Starts a request to `url` after checking it: an absolute http(s) URL and, unless
    /// private targets are allowed, no literal address that is not public and no
    /// `localhost` name. The refusal's text follows the field's name ("url must ...").
    pub fn request(&self, method: Method, url: &str) -> Result<RequestBuilder, UrlRefused> {
        let url = wa_core::net::check_outbound_url(url, self.allow_private)?;
        Ok(self.http.request(method, url))
    }

    /// Sends a request made by [`OutboundClient::request`]; any HTTP status is an answer.
    pub async fn send(&self, request: RequestBuilder) -> Result<Response, FetchError> {
        Ok(request.send().await?)
    }
}
