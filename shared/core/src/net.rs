//! Outbound URL rules: http(s) only, and no private, loopback or link-local targets unless
//! the operator allows them (`WA_ALLOW_PRIVATE_URLS=1`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

/// The longest URL accepted.
pub const MAX_URL_LEN: usize = 2048;

/// Why a URL was refused; the text is shown to the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlRefused(pub &'static str);

/// Checks an outbound URL given by a caller (webhook target, media source).
///
/// Literal addresses and `localhost` names are checked here; names are resolved and checked
/// again by whoever connects, since DNS can point anywhere.
pub fn check_outbound_url(raw: &str, allow_private: bool) -> Result<Url, UrlRefused> {
    if raw.len() > MAX_URL_LEN {
        return Err(UrlRefused("must be at most 2048 characters"));
    }
    let url = Url::parse(raw).map_err(|_| UrlRefused("must be an absolute http(s) URL"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(UrlRefused("must use http or https"));
    }
    let host = url.host().ok_or(UrlRefused("must have a host"))?;
    if allow_private {
        return Ok(url);
    }
    let refused = UrlRefused("must not point to a private, loopback or link-local address");
    match host {
        Host::Ipv4(ip) if !is_public_ip(IpAddr::V4(ip)) => Err(refused),
        Host::Ipv6(ip) if !is_public_ip(IpAddr::V6(ip)) => Err(refused),
        Host::Domain(name) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            if name == "localhost" || name.ends_with(".localhost") {
                Err(refused)
            } else {
                Ok(url)
            }
        }
        _ => Ok(url),
    }
}

/// Whether an address may be the target of an outbound request from this server.
pub fn is_public_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            is_public_v6(v6)
        }
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || o[0] == 0
        // 100.64.0.0/10, carrier-grade NAT
        || (o[0] == 100 && (o[1] & 0xc0) == 64)
        // 192.0.0.0/24, IETF protocol assignments
        || (o[0] == 192 && o[1] == 0 && o[2] == 0)
        // 198.18.0.0/15, benchmarking
        || (o[0] == 198 && (o[1] & 0xfe) == 18)
        // 240.0.0.0/4, reserved
        || o[0] >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        // fc00::/7, unique local
        || (s[0] & 0xfe00) == 0xfc00
        // fe80::/10, link-local
        || (s[0] & 0xffc0) == 0xfe80
        // 64:ff9b:1::/48 local-use NAT64, ::ffff:0:0/96 handled by the caller
        || (s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_private_targets() {
        for bad in [
            "http://127.0.0.1/x",
            "http://localhost:8080/",
            "http://api.localhost/",
            "http://10.1.2.3/",
            "http://172.16.0.1/",
            "http://192.168.1.1/",
            "http://169.254.169.254/latest/meta-data",
            "http://0.0.0.0/",
            "http://[::1]/",
            "http://[fe80::1]/",
            "http://[fd00::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://0x7f000001/",
            "http://2130706433/",
            "http://100.64.0.1/",
        ] {
            assert!(check_outbound_url(bad, false).is_err(), "{bad}");
            assert!(check_outbound_url(bad, true).is_ok(), "{bad} allowed");
        }
    }

    #[test]
    fn accepts_public_http() {
        for good in [
            "https://example.com/hook",
            "http://93.184.216.34:8080/x?y=1",
            "https://[2606:4700::1111]/",
        ] {
            assert!(check_outbound_url(good, false).is_ok(), "{good}");
        }
    }

    #[test]
    fn refuses_other_schemes_and_junk() {
        for bad in [
            "ftp://example.com/",
            "file:///etc/passwd",
            "example.com",
            "",
            "http://",
        ] {
            assert!(check_outbound_url(bad, true).is_err(), "{bad}");
        }
        let long = format!("https://example.com/{}", "a".repeat(3000));
        assert!(check_outbound_url(&long, true).is_err());
    }
}
