//! The client against a loopback server: literal and resolved private targets are refused
//! without a connection, the connection goes to what the resolver answered, no redirect is
//! followed, a silent server times out, and no error text holds the URL.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::resolve::LookupFuture;
use crate::test_server::{Answer, LoopbackServer};
use crate::{Config, FetchError, FixedLookup, Lookup, Method, OutboundClient};

const LOOPBACK: [IpAddr; 1] = [IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)];

/// Counts the lookups it answers from a fixed table.
struct Counting(FixedLookup, Arc<AtomicUsize>);

impl Lookup for Counting {
    fn lookup(&self, host: &str) -> LookupFuture {
        self.1.fetch_add(1, Ordering::SeqCst);
        self.0.lookup(host)
    }
}

fn client(allow_private: bool, lookup: impl Lookup) -> OutboundClient {
    OutboundClient::with_lookup(
        &Config::new(Duration::from_secs(20), allow_private),
        Arc::new(lookup),
    )
    .unwrap()
}

async fn ok_server() -> LoopbackServer {
    LoopbackServer::start(|_| Answer::status(200, b"hello")).await
}

#[tokio::test]
async fn literal_private_targets_are_refused_before_any_request() {
    let server = ok_server().await;
    let c = client(false, FixedLookup::default());
    let port = server.addr.port();
    for url in [
        server.url("/x"),
        format!("http://[::ffff:127.0.0.1]:{port}/x"),
        format!("http://[::127.0.0.1]:{port}/x"),
        format!("http://localhost:{port}/x"),
    ] {
        let refused = c.request(Method::GET, &url).expect_err(&url);
        assert!(
            refused.0.starts_with("must not point to a private"),
            "{url}: {}",
            refused.0
        );
    }
    assert_eq!(server.connections(), 0);
}

#[tokio::test]
async fn a_name_resolving_to_a_private_address_is_refused_and_never_connected() {
    let server = ok_server().await;
    let lookups = Arc::new(AtomicUsize::new(0));
    let lookup = FixedLookup::new("hooks.example", &LOOPBACK).with(
        "both.example",
        &["127.0.0.1".parse().unwrap(), "::1".parse().unwrap()],
    );
    let c = client(false, Counting(lookup, lookups.clone()));
    let port = server.addr.port();
    for host in ["hooks.example", "both.example"] {
        let url = format!("http://{host}:{port}/hook?token=s3cret");
        let req = c
            .request(Method::POST, &url)
            .expect("a name passes the literal check");
        match c.send(req).await {
            Err(FetchError::Refused(m)) => {
                assert!(m.starts_with(&format!("{host} resolves to ")), "{m}");
                assert!(!m.contains("s3cret"), "{m}");
            }
            other => panic!("{host}: {other:?}"),
        }
    }
    assert_eq!(lookups.load(Ordering::SeqCst), 2, "one lookup per request");
    assert_eq!(server.connections(), 0, "nothing was connected");
}

#[tokio::test]
async fn the_connection_goes_to_the_addresses_the_lookup_answered() {
    let server = ok_server().await;
    let lookups = Arc::new(AtomicUsize::new(0));
    // Allowed here, so the loopback answer is used; the name exists nowhere but in the table.
    let c = client(
        true,
        Counting(
            FixedLookup::new("hooks.example", &LOOPBACK),
            lookups.clone(),
        ),
    );
    let url = format!("http://hooks.example:{}/p?q=1", server.addr.port());
    let res = c.send(c.request(Method::GET, &url).unwrap()).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "hello");
    let got = server.requests();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].path, "/p?q=1");
    assert_eq!(
        got[0].header("host"),
        Some(format!("hooks.example:{}", server.addr.port()).as_str())
    );
    assert!(
        got[0]
            .header("user-agent")
            .unwrap()
            .starts_with("wa-server/")
    );
    assert_eq!(
        lookups.load(Ordering::SeqCst),
        1,
        "resolved once: the checked answer is the one connected to"
    );
}

#[tokio::test]
async fn redirects_are_answers_not_followed() {
    let server = LoopbackServer::redirecting(
        "/moved",
        302,
        "/elsewhere",
        Answer::status(200, b"elsewhere"),
    )
    .await;
    let c = client(true, FixedLookup::default());
    let res = c
        .send(c.request(Method::GET, &server.url("/moved")).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), 302);
    let paths: Vec<String> = server.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, ["/moved"]);
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    let server = LoopbackServer::start(|_| Answer::Never).await;
    let c = OutboundClient::with_lookup(
        &Config::new(Duration::from_millis(300), true),
        Arc::new(FixedLookup::default()),
    )
    .unwrap();
    let err = c
        .send(
            c.request(Method::GET, &server.url("/slow?token=s3cret"))
                .unwrap(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, FetchError::TimedOut(_)), "{err:?}");
    assert!(!err.to_string().contains("s3cret"), "{err}");
    assert_eq!(server.connections(), 1);
}

#[tokio::test]
async fn transport_errors_name_no_url() {
    // A port nobody listens on: the connection is refused.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let c = client(true, FixedLookup::default());
    let url = format!("http://127.0.0.1:{port}/hook?token=s3cret");
    let err = c
        .send(c.request(Method::POST, &url).unwrap())
        .await
        .unwrap_err();
    match &err {
        FetchError::Failed(m) => {
            assert!(!m.contains("s3cret") && !m.contains("/hook"), "{m}");
            assert!(m.contains("error sending request"), "{m}");
        }
        other => panic!("{other:?}"),
    }
    // A name the resolver does not know fails, and is not a refusal.
    let err = c
        .send(
            c.request(Method::GET, "http://nowhere.example/x?token=s3cret")
                .unwrap(),
        )
        .await
        .unwrap_err();
    match &err {
        FetchError::Failed(m) => {
            assert!(m.contains("nowhere.example: no such name"), "{m}");
            assert!(!m.contains("s3cret"), "{m}");
        }
        other => panic!("{other:?}"),
    }
}
