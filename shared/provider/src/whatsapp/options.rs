//! The WhatsApp provider's settings ([`WhatsAppOptions`]) and the parsing of the two
//! that name WhatsApp's endpoints: the WebSocket URL (`WA_WHATSAPP_WS_URL`) and the
//! client version (`WA_WHATSAPP_VERSION`). The parsers are pure and unit-tested; the
//! worker's configuration calls them at start, so a bad value stops the process with the
//! variable's name instead of failing every connect later.

use std::time::Duration;

/// WhatsApp Web's WebSocket endpoint, the default of [`WhatsAppOptions::ws_url`].
pub const DEFAULT_WS_URL: &str = whatsapp_rust::wacore::net::WHATSAPP_WEB_WS_URL;

/// A WhatsApp Web client version, `(2, 3000, revision)`.
pub type WaVersion = (u32, u32, u32);

/// Options of the WhatsApp provider.
#[derive(Debug, Clone)]
pub struct WhatsAppOptions {
    /// How long a session may try to reach WhatsApp before a failure is reported:
    /// a linking session with neither a QR nor a connection by then is stopped
    /// (`Stopped { whatsapp_connection_lost }`); a resumed session reports
    /// `Reconnecting { whatsapp_connection_lost }` and keeps retrying. Also bounds how
    /// long `link` waits for a socket when a pair code is requested, and how long a
    /// connection recycled by the server may take to come back before the device is
    /// reported `connecting`. Default 30 s.
    pub connect_timeout: Duration,
    /// Push name set on the device before connecting (`None` keeps the stored one).
    pub push_name: Option<String>,
    /// The OS name shown in the phone's "Linked devices" list (applied at pairing).
    /// Default `wa-server`.
    pub device_os_name: String,
    /// The WebSocket endpoint every session dials. Default [`DEFAULT_WS_URL`]; a relay,
    /// or a loopback port in tests.
    pub ws_url: String,
    /// The client version announced to WhatsApp. `None` (the default) fetches the
    /// current one from WhatsApp Web (`https://web.whatsapp.com/sw.js`) when the stored
    /// one is older than a day; a pinned version skips that fetch.
    pub version: Option<WaVersion>,
    /// Whether every incoming call is rejected as it rings (`WA_REJECT_CALLS=1`); its
    /// `call` event then says `rejected`. Default off.
    pub reject_calls: bool,
}

impl Default for WhatsAppOptions {
    fn default() -> Self {
        WhatsAppOptions {
            connect_timeout: Duration::from_secs(30),
            push_name: None,
            device_os_name: "wa-server".to_string(),
            ws_url: DEFAULT_WS_URL.to_string(),
            version: None,
            reject_calls: false,
        }
    }
}

/// Parses a WhatsApp Web version written `2.3000.<revision>` (the only shape WhatsApp
/// Web has: the library reads just the revision from `sw.js`).
///
/// Fails, with a sentence for the operator, on anything else: other numbers before
/// the revision, a missing or non-numeric revision, extra parts, signs or spaces inside.
pub fn parse_version(text: &str) -> Result<WaVersion, String> {
    let invalid =
        || format!("must be a WhatsApp Web version such as 2.3000.1023868175, not `{text}`");
    let mut parts = text.trim().split('.');
    let (Some("2"), Some("3000"), Some(revision), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid());
    };
    if revision.is_empty() || !revision.chars().all(|c| c.is_ascii_digit()) {
        return Err(invalid());
    }
    let revision = revision.parse::<u32>().map_err(|_| invalid())?;
    Ok((2, 3000, revision))
}

/// Checks a WebSocket URL: `ws://` or `wss://`, then a host (with an optional port),
/// then an optional path. Returns it trimmed.
///
/// Fails on another scheme, a missing host, or whitespace inside.
pub fn parse_ws_url(text: &str) -> Result<String, String> {
    let url = text.trim();
    let invalid = |why: &str| format!("must be a ws:// or wss:// URL ({why}), not `{text}`");
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(invalid("no scheme"));
    };
    if !matches!(scheme.to_ascii_lowercase().as_str(), "ws" | "wss") {
        return Err(invalid("another scheme"));
    }
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.is_empty() || host.starts_with(':') {
        return Err(invalid("no host"));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid("whitespace inside"));
    }
    Ok(url.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_whatsapp_web() {
        let o = WhatsAppOptions::default();
        assert_eq!(o.connect_timeout, Duration::from_secs(30));
        assert_eq!(o.device_os_name, "wa-server");
        assert!(o.push_name.is_none());
        assert_eq!(o.ws_url, "wss://web.whatsapp.com/ws/chat");
        assert_eq!(o.version, None, "fetched from WhatsApp Web by default");
        assert!(!o.reject_calls, "calls ring by default");
    }

    #[test]
    fn versions_are_2_3000_and_a_revision() {
        assert_eq!(
            parse_version("2.3000.1023868175"),
            Ok((2, 3000, 1023868175))
        );
        assert_eq!(parse_version(" 2.3000.0 "), Ok((2, 3000, 0)));
        for bad in [
            "",
            "2",
            "2.3000",
            "2.3000.",
            "2.3000.x",
            "2.3000.-1",
            "2.3000.+1",
            "2.3000.1.4",
            "3.3000.1",
            "2.2413.1",
            "2.3000.99999999999",
            "2.3000. 1",
            "v2.3000.1",
        ] {
            let err = parse_version(bad).expect_err(bad);
            assert!(err.contains("2.3000."), "{bad}: {err}");
        }
    }

    #[test]
    fn ws_urls_need_a_websocket_scheme_and_a_host() {
        assert_eq!(
            parse_ws_url("wss://web.whatsapp.com/ws/chat").as_deref(),
            Ok("wss://web.whatsapp.com/ws/chat")
        );
        assert_eq!(
            parse_ws_url(" ws://127.0.0.1:9/ws/chat ").as_deref(),
            Ok("ws://127.0.0.1:9/ws/chat")
        );
        assert_eq!(parse_ws_url("WS://[::1]:9").as_deref(), Ok("WS://[::1]:9"));
        for bad in [
            "",
            "web.whatsapp.com/ws/chat",
            "https://web.whatsapp.com/ws/chat",
            "ws://",
            "ws:///ws/chat",
            "ws://:9/ws/chat",
            "ws://host/with space",
        ] {
            let err = parse_ws_url(bad).expect_err(bad);
            assert!(
                err.starts_with("must be a ws:// or wss:// URL"),
                "{bad}: {err}"
            );
        }
    }
}
