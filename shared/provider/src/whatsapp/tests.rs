//! Offline lifecycle tests of the provider: real Bots on real stores, pointed at a
//! loopback port with a pinned version, so nothing leaves the machine (no WebSocket to
//! WhatsApp, no version fetch from WhatsApp Web).

use super::*;
use std::path::Path;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc::{self, UnboundedReceiver};
use wa_core::provider::SessionEvent;
use wa_errors::ErrorCode;
use whatsapp_rust::Jid;
use whatsapp_rust::store::SqliteStore;
use whatsapp_rust::store::traits::DeviceStore;

/// The three files of a device's store.
fn store_files(dir: &Path, device_id: Uuid) -> Vec<PathBuf> {
    ["", "-wal", "-shm"]
        .iter()
        .map(|suffix| dir.join(format!("{device_id}.db{suffix}")))
        .collect()
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Margin over `connect_timeout` for the Stopped/Reconnecting event: the watchdog
/// fires at the timeout; stopping the Bot comes after the emit.
const MARGIN: Duration = Duration::from_secs(10);
/// How long a call that must not wait for the network may take before the run counts as
/// broken: far beyond any loaded machine, far below `OFFLINE_FOREVER`.
const HANG: Duration = Duration::from_secs(120);
/// A connect timeout no test outlives: a call that waited for the network (or its watchdog)
/// would hit `HANG` first.
const OFFLINE_FOREVER: Duration = Duration::from_secs(24 * 3600);
/// A version pinned so that no session fetches WhatsApp Web's.
const PINNED: WaVersion = (2, 3000, 1_012_345_678);

/// A loopback WebSocket URL on which nothing listens.
fn closed_port_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    format!("ws://127.0.0.1:{port}/ws/chat")
}

fn options(ws_url: String) -> WhatsAppOptions {
    WhatsAppOptions {
        connect_timeout: CONNECT_TIMEOUT,
        ws_url,
        version: Some(PINNED),
        ..Default::default()
    }
}

fn provider_with(
    dir: &Path,
    options: WhatsAppOptions,
) -> (WhatsAppProvider, UnboundedReceiver<(Uuid, SessionEvent)>) {
    let (tx, rx) = mpsc::unbounded_channel();
    // Nothing arrives offline; the receiver may go.
    let (inbound, _) = mpsc::unbounded_channel();
    (
        WhatsAppProvider::new(dir.to_path_buf(), tx, inbound, options),
        rx,
    )
}

fn provider(dir: &Path) -> (WhatsAppProvider, UnboundedReceiver<(Uuid, SessionEvent)>) {
    provider_with(dir, options(closed_port_url()))
}

fn text_message(to: &str) -> OutboundMessage {
    OutboundMessage {
        message_id: wa_core::messages::new_message_id(),
        to: to.to_string(),
        content: wa_core::messages::Content::Text {
            text: "hello".to_string(),
        },
        media: None,
        reply_to: None,
        mentions: Vec::new(),
    }
}

/// Waits for the first event of `device_id` matching `pick`.
async fn wait_for<T>(
    rx: &mut UnboundedReceiver<(Uuid, SessionEvent)>,
    device_id: Uuid,
    within: Duration,
    mut pick: impl FnMut(SessionEvent) -> Option<T>,
) -> T {
    let found = tokio::time::timeout(within, async {
        while let Some((id, event)) = rx.recv().await {
            if id != device_id {
                continue;
            }
            if let Some(found) = pick(event) {
                return Some(found);
            }
        }
        None
    })
    .await;
    match found {
        Ok(Some(found)) => found,
        Ok(None) => panic!("event channel closed"),
        Err(_) => panic!("no matching event within {within:?}"),
    }
}

/// A store with a paired identity, as a linked device leaves behind.
async fn fake_paired_store(dir: &Path, id: Uuid) {
    let path = dir.join(format!("{id}.db"));
    let store = SqliteStore::new(path.to_str().expect("utf-8 path"))
        .await
        .expect("open store");
    let mut device = whatsapp_rust::wacore::store::Device::new();
    device.pn = Some(Jid::pn("15550001111"));
    store.save(&device).await.expect("save device");
}

/// The client version stored in a device's store.
async fn stored_version(dir: &Path, id: Uuid) -> WaVersion {
    let path = dir.join(format!("{id}.db"));
    let store = SqliteStore::new(path.to_str().expect("utf-8 path"))
        .await
        .expect("open store");
    let device = store.load().await.expect("load").expect("a device row");
    (
        device.app_version_primary,
        device.app_version_secondary,
        device.app_version_tertiary,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_link_stops_cleanly_and_destroy_wipes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (provider, mut rx) = provider(dir.path());
    assert_eq!(provider.name(), "whatsapp");
    let id = Uuid::new_v4();

    let linked = provider.link(id, None).await;
    assert_eq!(linked, Ok(None));

    let error = wait_for(&mut rx, id, CONNECT_TIMEOUT + MARGIN, |event| match event {
        SessionEvent::Stopped { error } => Some(error),
        _ => None,
    })
    .await;
    assert!(
        matches!(
            error.code,
            ErrorCode::WhatsappConnectionLost | ErrorCode::ProviderError
        ),
        "{error:?}"
    );
    assert!(
        error.message.starts_with("could not reach WhatsApp"),
        "{error:?}"
    );
    assert!(dir.path().join(format!("{id}.db")).exists());
    // The store exists but was never paired: not credentials.
    assert!(!provider.has_credentials(id).await);
    // Stopped: nothing live to query.
    assert_eq!(
        provider.groups(id).await.map_err(|f| f.code),
        Err(ErrorCode::DeviceNotConnected)
    );

    tokio::time::timeout(HANG, provider.destroy(id))
        .await
        .expect("destroy returns");
    for path in store_files(dir.path(), id) {
        assert!(!path.exists(), "{} still exists", path.display());
    }
    assert!(!provider.has_credentials(id).await);
    // Nothing more for this device after destroy.
    tokio::time::sleep(Duration::from_millis(200)).await;
    while let Ok((other, event)) = rx.try_recv() {
        assert_ne!(other, id, "event after destroy: {event:?}");
    }
}

/// A QR link and a resume return while the session is still trying to reach WhatsApp:
/// with a connect timeout no test outlives, waiting for the network would never end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_and_resume_do_not_wait_for_the_network() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (provider, _rx) = provider_with(
        dir.path(),
        WhatsAppOptions {
            connect_timeout: OFFLINE_FOREVER,
            ..options(closed_port_url())
        },
    );
    let linking = Uuid::new_v4();
    let linked = tokio::time::timeout(HANG, provider.link(linking, None))
        .await
        .expect("link must not wait for the network");
    assert_eq!(linked, Ok(None));
    let resumed = Uuid::new_v4();
    fake_paired_store(dir.path(), resumed).await;
    tokio::time::timeout(HANG, provider.resume(resumed))
        .await
        .expect("resume must not wait for the network")
        .expect("resume starts");
    for id in [linking, resumed] {
        tokio::time::timeout(HANG, provider.destroy(id))
            .await
            .expect("destroy returns");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_without_a_session_is_device_not_connected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (provider, _rx) = provider(dir.path());
    let result = provider
        .send(Uuid::new_v4(), &text_message("15551234567@s.whatsapp.net"))
        .await;
    assert_eq!(
        result.map_err(|f| f.code),
        Err(ErrorCode::DeviceNotConnected)
    );
    // The default: the provider cannot tell.
    assert_eq!(provider.was_sent(Uuid::new_v4(), "3EB0X").await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_request_without_a_session_is_device_not_connected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (provider, mut rx) = provider(dir.path());
    let request = wa_core::groups::GroupRequest::Leave {
        group_jid: "120363000000000001@g.us".into(),
    };
    let result = provider.group(Uuid::new_v4(), &request).await;
    assert_eq!(
        result.map_err(|f| f.code),
        Err(ErrorCode::DeviceNotConnected)
    );
    assert!(rx.try_recv().is_err(), "nothing is reported");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_pair_code_link_fails_with_connection_lost() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (provider, mut rx) = provider(dir.path());
    let id = Uuid::new_v4();
    let failure = tokio::time::timeout(HANG, provider.link(id, Some("15551234567")))
        .await
        .expect("the pair-code link gives up after its connect timeout")
        .expect_err("no pair code offline");
    assert_eq!(
        failure.code,
        ErrorCode::WhatsappConnectionLost,
        "{failure:?}"
    );
    for path in store_files(dir.path(), id) {
        assert!(!path.exists(), "{} still exists", path.display());
    }
    // The failed link emits nothing: the caller got the error.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(rx.try_recv().is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_without_credentials_is_logged_out() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (provider, _rx) = provider(dir.path());
    let id = Uuid::new_v4();
    assert!(!provider.has_credentials(id).await);
    assert_eq!(
        provider.resume(id).await.map_err(|f| f.code),
        Err(ErrorCode::LoggedOut)
    );
    assert!(!dir.path().join(format!("{id}.db")).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_resume_reports_reconnecting_and_disconnect_keeps_the_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (provider, mut rx) = provider(dir.path());
    let id = Uuid::new_v4();

    // Fake a paired store: a device row with a phone-number identity.
    fake_paired_store(dir.path(), id).await;
    assert!(provider.has_credentials(id).await);

    provider.resume(id).await.expect("resume starts");
    assert!(provider.has_credentials(id).await);

    let error = wait_for(&mut rx, id, CONNECT_TIMEOUT + MARGIN, |event| match event {
        SessionEvent::Reconnecting { error } => error,
        SessionEvent::Stopped { error } | SessionEvent::LoggedOut { error } => {
            panic!("offline resume must keep retrying: {error:?}")
        }
        _ => None,
    })
    .await;
    assert_eq!(error.code, ErrorCode::WhatsappConnectionLost, "{error:?}");
    // A session that never connected cannot send.
    assert_eq!(
        provider
            .send(id, &text_message("15551234567@s.whatsapp.net"))
            .await
            .map_err(|f| f.code),
        Err(ErrorCode::DeviceNotConnected)
    );

    tokio::time::timeout(HANG, provider.disconnect(id))
        .await
        .expect("disconnect returns");
    assert!(dir.path().join(format!("{id}.db")).exists());
    assert!(provider.has_credentials(id).await);
    tokio::time::sleep(Duration::from_millis(200)).await;
    while let Ok((other, event)) = rx.try_recv() {
        assert_ne!(other, id, "event after disconnect: {event:?}");
    }
}

/// The endpoint settings reach the library: the session dials the configured URL (a
/// loopback listener sees the WebSocket upgrade, then hangs up) and announces the
/// pinned version (stored in the session's store, where a fetched one would be).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_dial_the_configured_endpoint_with_the_pinned_version() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let dir = tempfile::tempdir().expect("tempdir");
    let (provider, mut rx) = provider_with(
        dir.path(),
        options(format!("ws://127.0.0.1:{port}/relay/chat")),
    );
    let id = Uuid::new_v4();
    fake_paired_store(dir.path(), id).await;
    provider.resume(id).await.expect("resume starts");

    let request = tokio::time::timeout(CONNECT_TIMEOUT + MARGIN, async {
        let (mut stream, _) = listener.accept().await.expect("accept");
        let mut request = Vec::new();
        let mut buf = [0u8; 512];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buf).await.expect("read") {
                0 => break,
                n => request.extend_from_slice(&buf[..n]),
            }
        }
        // Dropping the stream hangs up: the connect fails like an unreachable server.
        String::from_utf8_lossy(&request).into_owned()
    })
    .await
    .expect("the session dials the configured URL");
    assert!(
        request.starts_with("GET /relay/chat HTTP/1.1\r\n"),
        "{request}"
    );
    assert!(
        request
            .to_ascii_lowercase()
            .contains(&format!("host: 127.0.0.1:{port}\r\n")),
        "{request}"
    );

    // Hung up on: the offline behaviour is unchanged.
    let error = wait_for(&mut rx, id, CONNECT_TIMEOUT + MARGIN, |event| match event {
        SessionEvent::Reconnecting { error } => error,
        _ => None,
    })
    .await;
    assert_eq!(error.code, ErrorCode::WhatsappConnectionLost, "{error:?}");
    assert!(
        error.message.starts_with("could not reach WhatsApp"),
        "{error:?}"
    );

    provider.disconnect(id).await;
    assert_eq!(stored_version(dir.path(), id).await, PINNED);
}
