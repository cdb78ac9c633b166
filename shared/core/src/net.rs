//! Outbound URL and address rules: which URLs a caller may give as a target of this server's
//! own requests (webhook deliveries, media fetches) and which addresses those requests may
//! reach. http(s) only, and no private, loopback, link-local or other special-purpose
//! address of the IANA registries unless the operator allows them
//! (`WA_ALLOW_PRIVATE_URLS=1`). Addresses that embed an IPv4 address (IPv4-mapped, NAT64,
//! 6to4, Teredo) are judged by the IPv4 address they reach.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

/// The longest URL accepted.
pub const MAX_URL_LEN: usize = 2048;

/// Why a URL was refused; the text is shown to the caller after the field's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlRefused(pub String);

/// Checks an outbound URL given by a caller (webhook target, media source).
///
/// Refuses anything but an absolute http(s) URL with a host of at most [`MAX_URL_LEN`]
/// characters and, unless `allow_private`, a literal address that is not public
/// ([`special_block`]) or a `localhost` name. A name is not resolved here: whoever connects
/// resolves it, checks every address and connects only to those (`wa-net`).
pub fn check_outbound_url(raw: &str, allow_private: bool) -> Result<Url, UrlRefused> {
    if raw.len() > MAX_URL_LEN {
        return Err(UrlRefused("must be at most 2048 characters".into()));
    }
    let url = Url::parse(raw).map_err(|_| UrlRefused("must be an absolute http(s) URL".into()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(UrlRefused("must use http or https".into()));
    }
    let host = url.host().ok_or(UrlRefused("must have a host".into()))?;
    if allow_private {
        return Ok(url);
    }
    let refused = match host {
        Host::Ipv4(ip) => special_block(IpAddr::V4(ip)),
        Host::Ipv6(ip) => special_block(IpAddr::V6(ip)),
        Host::Domain(name) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            (name == "localhost" || name.ends_with(".localhost")).then_some(Special {
                block: "localhost",
                name: "loopback name",
                via: None,
            })
        }
    };
    match refused {
        Some(s) => Err(UrlRefused(format!(
            "must not point to a private or special-purpose address ({s})"
        ))),
        None => Ok(url),
    }
}

/// Whether an address may be the target of an outbound request from this server: it is in
/// no special-purpose block, and what it embeds (if anything) is in none either.
pub fn is_public_ip(ip: IpAddr) -> bool {
    special_block(ip).is_none()
}

/// The special-purpose block an address falls in, which makes it no valid outbound target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Special {
    /// The block, e.g. `127.0.0.0/8`.
    pub block: &'static str,
    /// What the block is for, e.g. `loopback`.
    pub name: &'static str,
    /// The IPv6 block through which an embedded IPv4 address was reached, e.g. `2002::/16`.
    pub via: Option<&'static str>,
}

impl std::fmt::Display for Special {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.block, self.name)?;
        if let Some(via) = self.via {
            write!(f, " via {via}")?;
        }
        Ok(())
    }
}

/// The IPv4 special-purpose registry (RFC 6890 and updates), multicast and the reserved
/// class E; the first matching row wins.
const V4_BLOCKS: &[(Ipv4Addr, u8, &str, &str)] = &[
    (Ipv4Addr::new(0, 0, 0, 0), 8, "0.0.0.0/8", "this network"),
    (Ipv4Addr::new(10, 0, 0, 0), 8, "10.0.0.0/8", "private"),
    (
        Ipv4Addr::new(100, 64, 0, 0),
        10,
        "100.64.0.0/10",
        "shared address space",
    ),
    (Ipv4Addr::new(127, 0, 0, 0), 8, "127.0.0.0/8", "loopback"),
    (
        Ipv4Addr::new(169, 254, 0, 0),
        16,
        "169.254.0.0/16",
        "link-local",
    ),
    (Ipv4Addr::new(172, 16, 0, 0), 12, "172.16.0.0/12", "private"),
    (
        Ipv4Addr::new(192, 0, 0, 0),
        24,
        "192.0.0.0/24",
        "IETF protocol assignments",
    ),
    (
        Ipv4Addr::new(192, 0, 2, 0),
        24,
        "192.0.2.0/24",
        "documentation",
    ),
    (
        Ipv4Addr::new(192, 31, 196, 0),
        24,
        "192.31.196.0/24",
        "AS112",
    ),
    (Ipv4Addr::new(192, 52, 193, 0), 24, "192.52.193.0/24", "AMT"),
    (
        Ipv4Addr::new(192, 88, 99, 0),
        24,
        "192.88.99.0/24",
        "6to4 relay anycast",
    ),
    (
        Ipv4Addr::new(192, 168, 0, 0),
        16,
        "192.168.0.0/16",
        "private",
    ),
    (
        Ipv4Addr::new(192, 175, 48, 0),
        24,
        "192.175.48.0/24",
        "AS112",
    ),
    (
        Ipv4Addr::new(198, 18, 0, 0),
        15,
        "198.18.0.0/15",
        "benchmarking",
    ),
    (
        Ipv4Addr::new(198, 51, 100, 0),
        24,
        "198.51.100.0/24",
        "documentation",
    ),
    (
        Ipv4Addr::new(203, 0, 113, 0),
        24,
        "203.0.113.0/24",
        "documentation",
    ),
    (Ipv4Addr::new(224, 0, 0, 0), 4, "224.0.0.0/4", "multicast"),
    (
        Ipv4Addr::new(255, 255, 255, 255),
        32,
        "255.255.255.255/32",
        "limited broadcast",
    ),
    (Ipv4Addr::new(240, 0, 0, 0), 4, "240.0.0.0/4", "reserved"),
];

/// What an IPv6 block means for a target inside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum V6Rule {
    /// Never a target.
    Refuse,
    /// Global unicast outside the more specific rows: a target.
    Public,
    /// Reaches the IPv4 address in the low 32 bits.
    Low32,
    /// 6to4: reaches the IPv4 address in bits 16 to 47.
    SixToFour,
    /// Teredo: reaches the client's IPv4 address (the low 32 bits inverted) through the
    /// server's (bits 32 to 63).
    Teredo,
}

/// The IPv6 special-purpose registry (RFC 6890 and updates), site-local, multicast and the
/// blocks outside global unicast; the first matching row wins, so the more specific rows
/// come first.
const V6_BLOCKS: &[(Ipv6Addr, u8, &str, &str, V6Rule)] = &[
    (
        Ipv6Addr::UNSPECIFIED,
        128,
        "::/128",
        "unspecified",
        V6Rule::Refuse,
    ),
    (
        Ipv6Addr::LOCALHOST,
        128,
        "::1/128",
        "loopback",
        V6Rule::Refuse,
    ),
    (
        Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0, 0),
        96,
        "::ffff:0:0/96",
        "IPv4-mapped",
        V6Rule::Low32,
    ),
    (
        Ipv6Addr::new(0, 0, 0, 0, 0xffff, 0, 0, 0),
        96,
        "::ffff:0:0:0/96",
        "IPv4-translated",
        V6Rule::Low32,
    ),
    (
        Ipv6Addr::UNSPECIFIED,
        96,
        "::/96",
        "IPv4-compatible (deprecated)",
        V6Rule::Refuse,
    ),
    (
        Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0),
        96,
        "64:ff9b::/96",
        "NAT64",
        V6Rule::Low32,
    ),
    (
        Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0),
        48,
        "64:ff9b:1::/48",
        "local-use NAT64",
        V6Rule::Refuse,
    ),
    (Ipv6Addr::UNSPECIFIED, 8, "::/8", "reserved", V6Rule::Refuse),
    (
        Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 0),
        64,
        "100::/64",
        "discard-only",
        V6Rule::Refuse,
    ),
    (
        Ipv6Addr::new(0x100, 0, 0, 1, 0, 0, 0, 0),
        64,
        "100:0:0:1::/64",
        "dummy prefix",
        V6Rule::Refuse,
    ),
    (
        Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0),
        32,
        "2001::/32",
        "Teredo",
        V6Rule::Teredo,
    ),
    (
        Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0),
        23,
        "2001::/23",
        "IETF protocol assignments",
        V6Rule::Refuse,
    ),
    (
        Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0),
        32,
        "2001:db8::/32",
        "documentation",
        V6Rule::Refuse,
    ),
    (
        Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0),
        16,
        "2002::/16",
        "6to4",
        V6Rule::SixToFour,
    ),
    (
        Ipv6Addr::new(0x2620, 0x4f, 0x8000, 0, 0, 0, 0, 0),
        48,
        "2620:4f:8000::/48",
        "AS112",
        V6Rule::Refuse,
    ),
    (
        Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0),
        20,
        "3fff::/20",
        "documentation",
        V6Rule::Refuse,
    ),
    (
        Ipv6Addr::new(0x2000, 0, 0, 0, 0, 0, 0, 0),
        3,
        "2000::/3",
        "global unicast",
        V6Rule::Public,
    ),
    (
        Ipv6Addr::new(0x5f00, 0, 0, 0, 0, 0, 0, 0),
        16,
        "5f00::/16",
        "SRv6 SIDs",
        V6Rule::Refuse,
    ),
    (
        Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0),
        7,
        "fc00::/7",
        "unique local",
        V6Rule::Refuse,
    ),
    (
        Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0),
        10,
        "fe80::/10",
        "link-local",
        V6Rule::Refuse,
    ),
    (
        Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0),
        10,
        "fec0::/10",
        "site-local (deprecated)",
        V6Rule::Refuse,
    ),
    (
        Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0),
        8,
        "ff00::/8",
        "multicast",
        V6Rule::Refuse,
    ),
];

/// Where an address leads, if that is a special-purpose block (`None`: a public address).
///
/// IPv6 addresses that embed an IPv4 address through a translation or tunnel block
/// (IPv4-mapped `::ffff:0:0/96`, IPv4-translated `::ffff:0:0:0/96`, NAT64 `64:ff9b::/96`,
/// 6to4 `2002::/16`, Teredo `2001::/32`) are judged by the IPv4 address they reach; every
/// other special-purpose block, and all of IPv6 outside global unicast `2000::/3`, is
/// refused outright.
pub fn special_block(ip: IpAddr) -> Option<Special> {
    match ip {
        IpAddr::V4(v4) => special_v4(v4),
        IpAddr::V6(v6) => special_v6(v6),
    }
}

fn special_v4(ip: Ipv4Addr) -> Option<Special> {
    let bits = u32::from(ip);
    V4_BLOCKS
        .iter()
        .find(|(net, len, ..)| prefix_matches(bits.into(), u32::from(*net).into(), 32, *len))
        .map(|&(_, _, block, name)| Special {
            block,
            name,
            via: None,
        })
}

fn special_v6(ip: Ipv6Addr) -> Option<Special> {
    let bits = u128::from(ip);
    let Some(&(_, _, block, name, rule)) = V6_BLOCKS
        .iter()
        .find(|(net, len, ..)| prefix_matches(bits, u128::from(*net), 128, *len))
    else {
        return Some(Special {
            block: "::/0",
            name: "outside global unicast 2000::/3",
            via: None,
        });
    };
    let embedded = |v4: u32| {
        special_v4(Ipv4Addr::from(v4)).map(|s| Special {
            via: Some(block),
            ..s
        })
    };
    match rule {
        V6Rule::Public => None,
        V6Rule::Refuse => Some(Special {
            block,
            name,
            via: None,
        }),
        V6Rule::Low32 => embedded(bits as u32),
        V6Rule::SixToFour => embedded((bits >> 80) as u32),
        V6Rule::Teredo => embedded(!(bits as u32)).or_else(|| embedded((bits >> 64) as u32)),
    }
}

/// Whether the top `len` bits of `addr` and `net` (both `width` bits wide) agree.
fn prefix_matches(addr: u128, net: u128, width: u32, len: u8) -> bool {
    let shift = width - u32::from(len);
    len == 0 || (addr >> shift) == (net >> shift)
}

/// An outbound URL as it may appear in logs and stored error texts:
/// `scheme://host[:port]/path`, without user info, query and fragment (tokens often sit
/// there). A text that is no URL is shown as `(not a URL)`.
pub fn loggable_url(raw: &str) -> String {
    let Ok(url) = Url::parse(raw) else {
        return "(not a URL)".to_owned();
    };
    let Some(host) = url.host_str() else {
        return format!("{}:(no host)", url.scheme());
    };
    match url.port() {
        Some(port) => format!("{}://{host}:{port}{}", url.scheme(), url.path()),
        None => format!("{}://{host}{}", url.scheme(), url.path()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One row per special-purpose block: an address inside it, the block it is refused
    /// for, and the IPv6 block it was reached through when it embeds an IPv4 address.
    const SPECIAL: &[(&str, &str, Option<&str>)] = &[
        ("0.1.2.3", "0.0.0.0/8", None),
        ("0.0.0.0", "0.0.0.0/8", None),
        ("10.1.2.3", "10.0.0.0/8", None),
        ("100.64.0.1", "100.64.0.0/10", None),
        ("100.127.255.254", "100.64.0.0/10", None),
        ("127.0.0.1", "127.0.0.0/8", None),
        ("127.255.255.255", "127.0.0.0/8", None),
        ("169.254.169.254", "169.254.0.0/16", None),
        ("172.16.0.1", "172.16.0.0/12", None),
        ("172.31.255.255", "172.16.0.0/12", None),
        ("192.0.0.9", "192.0.0.0/24", None),
        ("192.0.2.1", "192.0.2.0/24", None),
        ("192.31.196.1", "192.31.196.0/24", None),
        ("192.52.193.1", "192.52.193.0/24", None),
        ("192.88.99.1", "192.88.99.0/24", None),
        ("192.168.1.1", "192.168.0.0/16", None),
        ("192.175.48.1", "192.175.48.0/24", None),
        ("198.18.0.1", "198.18.0.0/15", None),
        ("198.19.255.255", "198.18.0.0/15", None),
        ("198.51.100.7", "198.51.100.0/24", None),
        ("203.0.113.7", "203.0.113.0/24", None),
        ("224.0.0.1", "224.0.0.0/4", None),
        ("239.255.255.255", "224.0.0.0/4", None),
        ("240.0.0.1", "240.0.0.0/4", None),
        ("255.255.255.254", "240.0.0.0/4", None),
        ("255.255.255.255", "255.255.255.255/32", None),
        ("::", "::/128", None),
        ("::1", "::1/128", None),
        ("::ffff:127.0.0.1", "127.0.0.0/8", Some("::ffff:0:0/96")),
        ("::ffff:0:7f00:1", "127.0.0.0/8", Some("::ffff:0:0:0/96")),
        ("::ffff:0:a00:1", "10.0.0.0/8", Some("::ffff:0:0:0/96")),
        ("::127.0.0.1", "::/96", None),
        ("::8.8.8.8", "::/96", None),
        ("::1:0:0:0", "::/8", None),
        ("64:ff9b::7f00:1", "127.0.0.0/8", Some("64:ff9b::/96")),
        ("64:ff9b::a9fe:a9fe", "169.254.0.0/16", Some("64:ff9b::/96")),
        ("64:ff9b:1::808:808", "64:ff9b:1::/48", None),
        ("100::1", "100::/64", None),
        ("100:0:0:1::1", "100:0:0:1::/64", None),
        // Teredo: server 65.54.227.120, client 127.0.0.1 (stored inverted: 80ff:fffe).
        (
            "2001:0:4136:e378:8000:63bf:80ff:fffe",
            "127.0.0.0/8",
            Some("2001::/32"),
        ),
        // Teredo with a public client behind a private server.
        (
            "2001:0:a00:1:8000:63bf:f7f7:f7f7",
            "10.0.0.0/8",
            Some("2001::/32"),
        ),
        ("2001:2::1", "2001::/23", None),
        ("2001:10::1", "2001::/23", None),
        ("2001:1ff::1", "2001::/23", None),
        ("2001:db8::1", "2001:db8::/32", None),
        ("2002:7f00:1::1", "127.0.0.0/8", Some("2002::/16")),
        ("2002:c0a8:101::1", "192.168.0.0/16", Some("2002::/16")),
        ("2620:4f:8000::1", "2620:4f:8000::/48", None),
        ("3fff::1", "3fff::/20", None),
        ("3fff:fff::1", "3fff::/20", None),
        ("5f00::1", "5f00::/16", None),
        ("fc00::1", "fc00::/7", None),
        ("fd12:3456::1", "fc00::/7", None),
        ("fe80::1", "fe80::/10", None),
        ("febf::1", "fe80::/10", None),
        ("fec0::1", "fec0::/10", None),
        ("ff02::1", "ff00::/8", None),
        ("4000::1", "::/0", None),
        ("8000::1", "::/0", None),
    ];

    /// Public addresses, plain and embedded, that stay allowed.
    const PUBLIC: &[&str] = &[
        "1.1.1.1",
        "8.8.8.8",
        "93.184.216.34",
        "100.63.255.255",
        "100.128.0.0",
        "172.15.255.255",
        "172.32.0.0",
        "192.0.1.1",
        "192.88.98.1",
        "198.17.255.255",
        "198.20.0.0",
        "223.255.255.255",
        "2606:4700::1111",
        "2a00:1450:4001::200e",
        "2001:4860:4860::8888",
        "2001:200::1",
        "2001:db9::1",
        "3fff:1000::1",
        "::ffff:8.8.8.8",
        "64:ff9b::808:808",
        "2002:808:808::1",
        // Teredo: server 65.54.227.120, client 8.8.8.8 (inverted: f7f7:f7f7).
        "2001:0:4136:e378:8000:63bf:f7f7:f7f7",
    ];

    #[test]
    fn each_special_purpose_block_is_refused() {
        for &(addr, block, via) in SPECIAL {
            let ip: IpAddr = addr.parse().unwrap();
            let got = special_block(ip).unwrap_or_else(|| panic!("{addr} was allowed"));
            assert_eq!((got.block, got.via), (block, via), "{addr}");
            assert!(!is_public_ip(ip), "{addr}");
        }
    }

    #[test]
    fn public_addresses_stay_allowed() {
        for addr in PUBLIC {
            let ip: IpAddr = addr.parse().unwrap();
            assert_eq!(special_block(ip), None, "{addr}");
            assert!(is_public_ip(ip), "{addr}");
        }
    }

    #[test]
    fn the_tables_say_what_they_hold() {
        fn split(block: &str) -> (&str, u8) {
            let (addr, len) = block.split_once('/').unwrap();
            (addr, len.parse().unwrap())
        }
        for &(net, len, block, _) in V4_BLOCKS {
            assert_eq!(split(block), (net.to_string().as_str(), len), "{block}");
        }
        for &(net, len, block, ..) in V6_BLOCKS {
            let (addr, l) = split(block);
            assert_eq!(
                (addr.parse::<Ipv6Addr>().unwrap(), l),
                (net, len),
                "{block}"
            );
            // No bits set below the prefix length.
            let host_bits = u128::from(net) & (u128::MAX.checked_shr(u32::from(len)).unwrap_or(0));
            assert_eq!(host_bits, 0, "{block}");
        }
    }

    #[test]
    fn literals_are_refused_when_given() {
        for bad in [
            "http://127.0.0.1/x",
            "http://localhost:8080/",
            "http://api.localhost/",
            "http://LOCALHOST./",
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
            "http://127.1/",
            "http://100.64.0.1/",
            "http://[::127.0.0.1]/",
            "http://[64:ff9b::7f00:1]/",
            "http://[64:ff9b:1::a00:1]/",
            "http://[2002:7f00:1::1]/",
            "http://[::ffff:0:7f00:1]/",
            "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/",
            "http://[fec0::1]/",
            "http://[2001:db8::1]/",
            "https://[ff02::1]:8443/",
        ] {
            let refused = check_outbound_url(bad, false).expect_err(bad);
            assert!(
                refused.0.starts_with("must not point to a private"),
                "{bad}: {}",
                refused.0
            );
            assert!(check_outbound_url(bad, true).is_ok(), "{bad} allowed");
        }
    }

    #[test]
    fn the_refusal_names_the_block() {
        let r = check_outbound_url("http://[2002:7f00:1::1]/", false).unwrap_err();
        assert_eq!(
            r.0,
            "must not point to a private or special-purpose address (127.0.0.0/8 loopback via 2002::/16)"
        );
    }

    #[test]
    fn accepts_public_http() {
        for good in [
            "https://example.com/hook",
            "http://93.184.216.34:8080/x?y=1",
            "https://[2606:4700::1111]/",
            "https://[64:ff9b::808:808]/",
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

    #[test]
    fn logged_urls_keep_scheme_host_port_and_path_only() {
        for (raw, shown) in [
            (
                "https://hooks.example.com/in?token=s3cret",
                "https://hooks.example.com/in",
            ),
            (
                "http://user:pw@127.0.0.1:9000/a/b?x=1#frag",
                "http://127.0.0.1:9000/a/b",
            ),
            ("https://example.com", "https://example.com/"),
            ("https://example.com:443/x", "https://example.com/x"),
            ("http://[::1]:8080/h?k=v", "http://[::1]:8080/h"),
            ("mailto:someone@example.com", "mailto:(no host)"),
            ("not a url ?token=s3cret", "(not a URL)"),
        ] {
            assert_eq!(loggable_url(raw), shown, "{raw}");
        }
    }
}
