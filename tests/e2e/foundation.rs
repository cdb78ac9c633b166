//! The quick start of the README, the error contract over real HTTP, and shutdown.

use serde_json::{Value, json};

use crate::support::{Server, send};

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

/// Every log line of a request carries its id, in JSON logs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_ids_reach_headers_bodies_and_logs() {
    let server = Server::start(&[("WA_JWT_SECRET", "e2e-secret-e2e-secret-e2e-secret-e2e")]);
    let (s, id, v) = send(
        server
            .http
            .get(server.url("/apps"))
            .header("x-request-id", "trace-me-123"),
    )
    .await;
    assert_eq!(s, 401);
    assert_eq!(id, "trace-me-123");
    assert_eq!(v["request_id"], "trace-me-123");
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
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

    let (_, id, v) = send(
        server
            .http
            .get(server.url("/health"))
            .header("x-request-id", "has spaces"),
    )
    .await;
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
