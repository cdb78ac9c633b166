//! The per-App request limiter through the real binary: a burst, then 429
//! `rate_limit_exceeded` with `Retry-After`; other Apps and the unauthenticated routes
//! unaffected.

use crate::devices::app_token;
use crate::support::{Server, send};
use crate::webhooks::SECRET;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_then_429_with_retry_after() {
    // One request per 100 s after a burst of 3: the burst is spent long before a refill,
    // however slow the machine.
    let server = Server::start(&[
        SECRET,
        ("WA_PROVIDER", "sandbox"),
        ("WA_APP_RATE", "0.01"),
        ("WA_APP_BURST", "3"),
    ]);
    let a = app_token(&server).await;
    let b = app_token(&server).await;
    for i in 0..3 {
        let (s, _, v) = send(server.http.get(server.url("/devices")).bearer_auth(&a)).await;
        assert_eq!(s, 200, "request {i} of the burst: {v}");
    }
    let res = server
        .http
        .get(server.url("/devices"))
        .bearer_auth(&a)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 429);
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .expect("Retry-After is whole seconds");
    assert!((1..=100).contains(&retry), "{retry}");
    let id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    let v: serde_json::Value = res.json().await.unwrap();
    assert_eq!(v["error"]["code"], "rate_limit_exceeded", "{v}");
    assert!(v["error"]["message"].is_string());
    assert_eq!(v["request_id"], id.as_str());

    let (s, _, v) = send(server.http.get(server.url("/devices")).bearer_auth(&b)).await;
    assert_eq!(s, 200, "another App keeps its allowance: {v}");

    for path in [
        "/health",
        "/metrics",
        "/openapi.json",
        "/docs/",
        "/",
        "/dashboard/app.js",
    ] {
        for _ in 0..10 {
            let res = server
                .http
                .get(server.url(path))
                .bearer_auth(&a)
                .send()
                .await
                .unwrap();
            assert!(res.status().is_success(), "{path}: {}", res.status());
        }
    }
    let (_, _, doc) = send(server.http.get(server.url("/openapi.json"))).await;
    assert_eq!(
        doc["paths"]["/devices"]["get"]["responses"]["429"]["content"]["application/json"]["schema"]
            ["$ref"],
        "#/components/schemas/ErrorResponse",
        "the limited routes document their 429"
    );
    assert!(
        !server.logs().contains(&a),
        "the App token never reaches the logs"
    );
}
