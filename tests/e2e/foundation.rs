//! The quick start of the README, the error contract over real HTTP (also for what is
//! refused before any router runs), the connection limits, and shutdown.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::devices::{app_token, call, linked_device};
use crate::support::{Server, send};

const SECRET: (&str, &str) = ("WA_JWT_SECRET", "e2e-secret-e2e-secret-e2e-secret-e2e");

/// Waits (generously) until the server's logs hold a line with every one of `parts`, and
/// answers it.
async fn log_line(server: &Server, parts: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(line) = server
            .logs()
            .lines()
            .find(|l| parts.iter().all(|p| l.contains(p)))
        {
            return line.to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "no log line with {parts:?}:\n{}",
            server.logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The server's address, for raw connections.
fn addr(server: &Server) -> String {
    server.base.trim_start_matches("http://").to_owned()
}

/// Reads from `conn` until the server closes it (end of stream or reset); fails a broken
/// run that keeps it open for a minute.
async fn read_until_closed(conn: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(Duration::from_secs(60), conn.read(&mut buf)).await {
            Err(_) => panic!(
                "the server kept the connection open; got {:?}",
                String::from_utf8_lossy(&got)
            ),
            Ok(Ok(0)) | Ok(Err(_)) => return got,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// README quick start: mint a token, create an App, call /health; then a clean SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quick_start_and_graceful_shutdown() {
    let mut server = Server::start(&[]);
    assert!(
        server.logs().contains("wa-server token --tenant"),
        "the generated-secret log line says how to mint a token"
    );
    let (ok, jwt, err) = server.cli(&["token", "--tenant", "acme"], &[]);
    assert!(ok, "token command failed: {err}");
    assert_eq!(jwt.split('.').count(), 3, "a JWT: {jwt}");

    let (s, _, health) = send(server.http.get(server.url("/health"))).await;
    assert_eq!(s, 200);
    assert_eq!(health["status"], "ok");
    assert_eq!(health["checks"]["store"], "ok");

    let (s, id, v) = send(
        server
            .http
            .post(server.url("/apps"))
            .bearer_auth(&jwt)
            .json(&json!({"name": "My App"})),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["request_id"], id);
    let app_id = v["data"]["app"]["app_id"].as_str().unwrap().to_owned();
    let app_token = v["data"]["app_token"].as_str().unwrap().to_owned();
    let secret = v["data"]["webhook_secret"].as_str().unwrap().to_owned();

    let (s, _, v) = send(server.http.get(server.url("/apps")).bearer_auth(&jwt)).await;
    assert_eq!(s, 200);
    assert_eq!(v["data"]["apps"][0]["app_id"], app_id.as_str());

    let forged = format!("{}x", &jwt[..jwt.len() - 1]);
    let (s, _, v) = send(server.http.get(server.url("/apps")).bearer_auth(&forged)).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );

    // The data survives a restart, and the same generated secret still verifies the JWT.
    let status = server.terminate();
    assert!(status.success(), "clean exit on SIGTERM: {status:?}");
    assert!(server.logs().contains("wa-server stopped"));
    let logs = server.logs();
    for secret_value in [&app_token, &secret, &jwt] {
        assert!(
            !logs.contains(secret_value.as_str()),
            "a secret reached the logs"
        );
    }
    let jwt_secret = std::fs::read_to_string(server.data_dir.join("jwt_secret")).unwrap();
    assert!(!logs.contains(jwt_secret.trim()));

    let again = Server::start_in(&server.data_dir, &[]);
    let (s, _, v) = send(
        again
            .http
            .get(again.url(&format!("/apps/{app_id}")))
            .bearer_auth(&jwt),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["data"]["app"]["name"], "My App");
}

/// `GET path` with the header `x-request-id: request_id`; the answer as `send` gives it.
async fn get_with_request_id(
    server: &Server,
    path: &str,
    request_id: &str,
) -> (u16, String, Value) {
    send(
        server
            .http
            .get(server.url(path))
            .header("x-request-id", request_id),
    )
    .await
}

/// Every log line of a request carries its id, in JSON logs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_ids_reach_headers_bodies_and_logs() {
    let server = Server::start(&[("WA_JWT_SECRET", "e2e-secret-e2e-secret-e2e-secret-e2e")]);
    let (s, id, v) = get_with_request_id(&server, "/apps", "trace-me-123").await;
    assert_eq!(s, 401);
    assert_eq!(id, "trace-me-123");
    assert_eq!(v["request_id"], "trace-me-123");
    log_line(&server, &["trace-me-123", "request finished"]).await;
    let lines: Vec<Value> = server
        .logs()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|l: &Value| l.to_string().contains("trace-me-123"))
        .collect();
    assert!(!lines.is_empty());
    for l in &lines {
        assert_eq!(l["span"]["request_id"], "trace-me-123", "{l}");
    }
    assert!(lines.iter().any(|l| l["status"] == 401));

    let (_, id, v) = get_with_request_id(&server, "/health", "has spaces").await;
    assert_ne!(id, "has spaces");
    assert!(uuid::Uuid::parse_str(&id).is_ok());
    assert_eq!(v["status"], "ok");
}

/// Bad input of every kind gets the envelope and its code: never a 500.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_never_gets_a_500() {
    let server = Server::start(&[
        ("WA_JWT_SECRET", "e2e-secret-e2e-secret-e2e-secret-e2e"),
        ("WA_MAX_BODY_BYTES", "4096"),
    ]);
    let (_, jwt, _) = server.cli(
        &["token", "--tenant", "acme"],
        &[("WA_JWT_SECRET", "e2e-secret-e2e-secret-e2e-secret-e2e")],
    );
    let h = &server.http;
    let u = |p: &str| server.url(p);
    let cases: Vec<(reqwest::RequestBuilder, u16, &str)> = vec![
        (h.get(u("/nowhere")), 404, "not_found"),
        (
            h.put(u("/apps")).bearer_auth(&jwt),
            405,
            "method_not_allowed",
        ),
        (h.delete(u("/health")), 405, "method_not_allowed"),
        (h.get(u("/apps")), 401, "unauthorized"),
        (h.get(u("/apps")).bearer_auth("x.y.z"), 401, "unauthorized"),
        (
            h.post(u("/apps")).bearer_auth(&jwt).body("{\"name\":"),
            400,
            "validation_error",
        ),
        (
            h.post(u("/apps"))
                .bearer_auth(&jwt)
                .header("content-type", "application/json")
                .body("\u{0}\u{1}garbage"),
            400,
            "validation_error",
        ),
        (
            h.post(u("/apps"))
                .bearer_auth(&jwt)
                .json(&json!({"name": "a".repeat(8000)})),
            413,
            "request_too_large",
        ),
        (
            h.post(u("/apps"))
                .bearer_auth(&jwt)
                .json(&json!({"name": {"deep": [1, 2]}})),
            400,
            "validation_error",
        ),
        (
            h.get(u("/apps/..%2F..%2Fetc%2Fpasswd")).bearer_auth(&jwt),
            400,
            "validation_error",
        ),
        (
            h.get(u("/apps?limit=-1")).bearer_auth(&jwt),
            400,
            "validation_error",
        ),
        (
            h.post(u("/apps"))
                .bearer_auth(&jwt)
                .json(&json!({"name": "x", "webhook_url": "http://127.0.0.1/"})),
            400,
            "validation_error",
        ),
    ];
    for (req, status, code) in cases {
        let (s, id, v) = send(req).await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (status, Some(code)),
            "{v}"
        );
        assert_eq!(v["request_id"], id.as_str());
    }
    // The server is still healthy after all of that.
    let (s, _, _) = send(h.get(u("/health"))).await;
    assert_eq!(s, 200);
    assert!(!server.logs().contains("panicked"));
}

/// A bad configuration stops start-up with the variable's name, not a panic.
#[test]
fn bad_configuration_fails_fast() {
    let out = std::process::Command::new(crate::support::BIN)
        .env_clear()
        .env("WA_LISTEN", "not-an-address")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("WA_LISTEN"), "{err}");
    assert!(!err.contains("panicked"));
}

/// Writes `request` on a new connection (the server may stop reading it) and answers the
/// status, `x-request-id` and JSON body of the answer.
async fn raw_answer(server: &Server, request: &[u8]) -> (u16, String, Value) {
    let mut conn = TcpStream::connect(addr(server)).await.unwrap();
    let _ = conn.write_all(request).await;
    let answer = read_until_closed(&mut conn).await;
    let text = String::from_utf8_lossy(&answer);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no complete answer: {text:?}"));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status: {head:?}"));
    let id = head
        .lines()
        .find_map(|l| l.strip_prefix("x-request-id: "))
        .unwrap_or_else(|| panic!("no x-request-id: {head:?}"))
        .to_owned();
    let body = serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {body:?}"));
    (status, id, body)
}

/// What is refused before any router runs (a URI over 64 KiB, a head over 400 KiB, more than
/// 100 headers, bytes that are not HTTP) answers with the envelope, its code and a request id
/// in body and header, like every other error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_made_before_routing_have_the_envelope() {
    let server = Server::start(&[]);
    let many_headers: String = (0..200).map(|i| format!("x-pad-{i}: 1\r\n")).collect();
    let cases = [
        (
            format!(
                "GET /health?pad={} HTTP/1.1\r\nHost: x\r\n\r\n",
                "a".repeat(70_000)
            ),
            414,
            "uri_too_long",
        ),
        (
            format!(
                "GET /health HTTP/1.1\r\nHost: x\r\nx-pad: {}\r\n\r\n",
                "a".repeat(1 << 20)
            ),
            431,
            "headers_too_large",
        ),
        (
            format!("GET /health HTTP/1.1\r\nHost: x\r\n{many_headers}\r\n"),
            431,
            "headers_too_large",
        ),
        ("NOT HTTP\r\n\r\n".to_owned(), 400, "validation_error"),
    ];
    for (request, status, code) in cases {
        let (s, id, v) = raw_answer(&server, request.as_bytes()).await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (status, Some(code)),
            "{v}"
        );
        assert_eq!(v["request_id"], id.as_str());
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
        if code == "validation_error" {
            assert_eq!(v["error"]["details"]["field"], "request");
        }
        log_line(&server, &[&id, "request refused before routing"]).await;
    }
    // An HTTP client sees the same.
    let (s, id, v) = send(
        server
            .http
            .get(server.url("/health"))
            .header("x-pad", "a".repeat(1 << 20)),
    )
    .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (431, Some("headers_too_large"))
    );
    assert_eq!(v["request_id"], id.as_str());

    let (s, _, _) = send(server.http.get(server.url("/health"))).await;
    assert_eq!(s, 200);
}

/// With 256 open files, 300 connections that never finish their heads do not lock a new
/// client out: the cap stays under the limit (a configured one too), the connections waiting
/// longest without a request are shed, /health answers, and no accept runs out of files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_do_not_lock_out_new_ones() {
    let server = Server::start_with_open_files(
        &[
            ("WA_MAX_CONNECTIONS", "1000"),
            // Only the cap makes room here, not the timeout.
            ("WA_HEADER_TIMEOUT_MS", "60000"),
        ],
        256,
    );
    let limits: Value =
        serde_json::from_str(&log_line(&server, &["connection limits"]).await).unwrap();
    assert_eq!(limits["max_connections"], 192, "{limits}");
    log_line(&server, &["WA_MAX_CONNECTIONS lowered", "\"asked\":1000"]).await;

    let mut slow = Vec::new();
    for _ in 0..300 {
        let mut conn = TcpStream::connect(addr(&server)).await.unwrap();
        // A shed connection may be closed before this is written.
        let _ = conn.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n").await;
        slow.push(conn);
    }
    let fresh = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let (s, _, v) = send(fresh.get(server.url("/health"))).await;
    assert_eq!(s, 200, "{v}");
    log_line(&server, &["connection cap reached"]).await;
    assert!(
        !server.logs().contains("Too many open files"),
        "{}",
        server.logs()
    );
    drop(slow);
}

/// A connection that does not finish its head within WA_HEADER_TIMEOUT_MS (or sends nothing)
/// is closed unanswered; a kept-alive one is closed after WA_IDLE_TIMEOUT_SECS without a
/// request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_and_idle_connections_are_closed() {
    let server = Server::start(&[
        ("WA_HEADER_TIMEOUT_MS", "300"),
        ("WA_IDLE_TIMEOUT_SECS", "1"),
    ]);
    let mut half = TcpStream::connect(addr(&server)).await.unwrap();
    half.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut silent = TcpStream::connect(addr(&server)).await.unwrap();
    let mut kept = TcpStream::connect(addr(&server)).await.unwrap();
    kept.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_until_closed(&mut half).await, b"");
    assert_eq!(read_until_closed(&mut silent).await, b"");
    let answered = String::from_utf8(read_until_closed(&mut kept).await).unwrap();
    assert!(answered.starts_with("HTTP/1.1 200 OK\r\n"), "{answered}");
    assert_eq!(answered.matches("HTTP/1.1 ").count(), 1);

    let (s, _, _) = send(server.http.get(server.url("/health"))).await;
    assert_eq!(s, 200);
}

/// SIGTERM while a send waits for WhatsApp (the sandbox's slow recipient sends after 5 s): the
/// request is answered before the process exits, and the exit is clean.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_answers_the_request_in_flight() {
    let mut server = Server::start(&[SECRET, ("WA_PROVIDER", "sandbox"), ("WA_SEND_RATE", "0")]);
    let token = app_token(&server).await;
    let device = linked_device(&server, &token, "slow").await;
    let path = format!("/devices/{device}/messages");
    let in_flight = tokio::spawn(send(
        server
            .http
            .post(server.url(&path))
            .bearer_auth(&token)
            .header("x-request-id", "in-flight-1")
            .json(&json!({"to": "15550000999", "text": "slow"})),
    ));
    // The send is accepted (its message is listed) and waits for the sandbox.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (s, v) = call(&server, "GET", &path, &token, None).await;
        assert_eq!(s, 200, "{v}");
        if v["data"]["messages"]
            .as_array()
            .is_some_and(|m| !m.is_empty())
        {
            break;
        }
        assert!(Instant::now() < deadline, "the send was never accepted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!in_flight.is_finished(), "the send is still in flight");

    let (server, status) = tokio::task::spawn_blocking(move || {
        let status = server.terminate();
        (server, status)
    })
    .await
    .unwrap();
    let (s, id, v) = in_flight.await.expect("the send was answered");
    assert_eq!(
        (s, v["data"]["message"]["status"].as_str()),
        (200, Some("sent")),
        "{v}"
    );
    assert_eq!(id, "in-flight-1");
    assert!(status.success(), "clean exit on SIGTERM: {status:?}");
    log_line(&server, &["wa-server stopped"]).await;
    let logs = server.logs();
    let signal = logs.find("shutdown signal received").unwrap();
    let answered = logs
        .lines()
        .find(|l| l.contains("in-flight-1") && l.contains("request finished"))
        .and_then(|l| logs.find(l))
        .expect("the send's access line");
    assert!(
        signal < answered,
        "SIGTERM came while the send was in flight"
    );
}
