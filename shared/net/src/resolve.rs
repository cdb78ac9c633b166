//! Name resolution for outbound requests: the [`Lookup`] port (the system resolver, or a
//! fixed table that tests inject), the pure [`screen`] decision over what a name resolved
//! to, and the reqwest resolver that hands the connector only the addresses it screened.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use wa_core::net::{Special, special_block};

/// What a [`Lookup`] answers: the addresses of a name, or why there are none.
pub type LookupFuture = Pin<Box<dyn Future<Output = io::Result<Vec<IpAddr>>> + Send>>;

/// Resolves a host name to addresses. Injectable so tests can make a name resolve anywhere
/// (a private address, loopback) without DNS.
pub trait Lookup: Send + Sync + 'static {
    /// The addresses of `host` (a name, never an IP literal: the connector does not resolve
    /// those).
    fn lookup(&self, host: &str) -> LookupFuture;
}

/// The operating system's resolver (`getaddrinfo`, on tokio's blocking pool).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemLookup;

impl Lookup for SystemLookup {
    fn lookup(&self, host: &str) -> LookupFuture {
        let host = host.to_owned();
        Box::pin(async move {
            Ok(tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .map(|a| a.ip())
                .collect())
        })
    }
}

/// A fixed table of names and their addresses; a name not in it does not resolve.
#[derive(Debug, Clone, Default)]
pub struct FixedLookup(HashMap<String, Vec<IpAddr>>);

impl FixedLookup {
    /// A table with one name.
    pub fn new(host: &str, addrs: &[IpAddr]) -> Self {
        FixedLookup::default().with(host, addrs)
    }

    /// Adds (or replaces) a name.
    pub fn with(mut self, host: &str, addrs: &[IpAddr]) -> Self {
        self.0.insert(host.to_ascii_lowercase(), addrs.to_vec());
        self
    }
}

impl Lookup for FixedLookup {
    fn lookup(&self, host: &str) -> LookupFuture {
        let found = self.0.get(&host.to_ascii_lowercase()).cloned();
        let host = host.to_owned();
        Box::pin(async move {
            found.ok_or_else(|| {
                io::Error::new(io::ErrorKind::NotFound, format!("{host}: no such name"))
            })
        })
    }
}

/// A name was refused because it resolved to an address that is not public.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressRefused {
    pub host: String,
    pub ip: IpAddr,
    pub special: Special,
}

impl std::fmt::Display for AddressRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} resolves to {}, a private or special-purpose address ({})",
            self.host, self.ip, self.special
        )
    }
}

impl std::error::Error for AddressRefused {}

/// What a name resolved to, decided: the addresses to connect to, or why not. Every address
/// must be public (unless `allow_private`), so the connection cannot fall back on a private
/// one; a name without addresses is an error too.
pub fn screen(
    host: &str,
    addrs: Vec<IpAddr>,
    allow_private: bool,
) -> Result<Vec<IpAddr>, ScreenError> {
    if addrs.is_empty() {
        return Err(ScreenError::NoAddress(host.to_owned()));
    }
    if !allow_private
        && let Some((ip, special)) = addrs
            .iter()
            .find_map(|ip| special_block(*ip).map(|s| (*ip, s)))
    {
        return Err(ScreenError::Refused(AddressRefused {
            host: host.to_owned(),
            ip,
            special,
        }));
    }
    Ok(addrs)
}

/// Why [`screen`] gave no address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScreenError {
    /// An address is not public.
    Refused(AddressRefused),
    /// The name resolved to nothing.
    NoAddress(String),
}

/// The resolver reqwest calls for every connection to a name: looks it up once, screens
/// the answer and returns exactly the screened addresses, which the connector then uses.
pub(crate) struct CheckedResolver {
    pub(crate) lookup: Arc<dyn Lookup>,
    pub(crate) allow_private: bool,
}

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        let lookup = self.lookup.clone();
        let allow_private = self.allow_private;
        Box::pin(async move {
            let addrs = lookup.lookup(&host).await?;
            let addrs = match screen(&host, addrs, allow_private) {
                Ok(a) => a,
                Err(ScreenError::Refused(r)) => return Err(Box::new(r) as _),
                Err(ScreenError::NoAddress(h)) => {
                    return Err(format!("{h} has no address").into());
                }
            };
            // Port 0: the connector puts in the URL's port.
            let addrs: Addrs = Box::new(addrs.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ips(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|a| a.parse().unwrap()).collect()
    }

    #[test]
    fn screening_decisions() {
        let public = ips(&["93.184.216.34", "2606:2800:220:1::1"]);
        assert_eq!(screen("a.example", public.clone(), false), Ok(public));
        // One private address among public ones refuses the name.
        let mixed = ips(&["93.184.216.34", "10.0.0.7"]);
        match screen("a.example", mixed.clone(), false) {
            Err(ScreenError::Refused(r)) => {
                assert_eq!(r.ip, mixed[1]);
                assert_eq!(r.special.block, "10.0.0.0/8");
                assert_eq!(
                    r.to_string(),
                    "a.example resolves to 10.0.0.7, a private or special-purpose address (10.0.0.0/8 private)"
                );
            }
            other => panic!("{other:?}"),
        }
        // An embedded private IPv4 address is private.
        assert!(matches!(
            screen("b.example", ips(&["64:ff9b::7f00:1"]), false),
            Err(ScreenError::Refused(_))
        ));
        // Allowed by the operator: kept as resolved.
        assert_eq!(screen("a.example", mixed.clone(), true), Ok(mixed));
        assert_eq!(
            screen("none.example", vec![], true),
            Err(ScreenError::NoAddress("none.example".into()))
        );
    }

    #[tokio::test]
    async fn the_fixed_table_resolves_its_names_only() {
        let l = FixedLookup::new("Hooks.Example", &ips(&["127.0.0.1"]));
        assert_eq!(
            l.lookup("hooks.example").await.unwrap(),
            ips(&["127.0.0.1"])
        );
        assert_eq!(
            l.lookup("other.example").await.unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
    }
}
