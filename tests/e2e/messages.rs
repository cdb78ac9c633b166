//! Sending through the real binary: the send flow, the fault table, and no loss and no
//! duplicate when the server is killed -9 in the middle of a burst.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::devices::{app_token, call, linked_device, wait_sent};
use crate::support::{Server, send};

const ENV: [(&str, &str); 3] = [
    ("WA_JWT_SECRET", "e2e-secret-e2e-secret-e2e-secret-e2e"),
    ("WA_PROVIDER", "sandbox"),
    ("WA_SEND_RATE", "0"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_flow() {
    let server = Server::start(&ENV);
    let t = app_token(&server).await;
    let id = linked_device(&server, &t, "sender").await;
    let path = format!("/devices/{id}/messages");
    let (s, v) = call(
        &server,
        "POST",
        &path,
        &t,
        Some(json!({"to": "+15550001111", "text": "hello"})),
    )
    .await;
    assert_eq!(
        (s, v["data"]["message"]["status"].as_str()),
        (200, Some("sent")),
        "{v}"
    );
    let first = v["data"]["message"]["message_id"]
        .as_str()
        .unwrap()
        .to_owned();

    // 429: queued, retried with backoff, sent after the third attempt.
    let req = server
        .http
        .post(server.url(&path))
        .bearer_auth(&t)
        .json(&json!({"to": "15550000429", "text": "x"}));
    let res = req.send().await.unwrap();
    assert_eq!(res.status().as_u16(), 429);
    assert!(res.headers().contains_key("retry-after"));
    let v: serde_json::Value = res.json().await.unwrap();
    let limited = v["error"]["details"]["message_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let m = wait_sent(&server, &t, &id, &limited, Duration::from_secs(20)).await;
    assert_eq!(m["attempts"], 3);
    let (s, v) = call(
        &server,
        "POST",
        &path,
        &t,
        Some(json!({"to": "120363000000000403@g.us", "text": "x"})),
    )
    .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (403, Some("group_posting_restricted"))
    );

    // Idempotent replay over HTTP.
    let key_req = || {
        server
            .http
            .post(server.url(&path))
            .bearer_auth(&t)
            .header("Idempotency-Key", "e2e-key")
            .json(&json!({"to": "15550001111", "text": "once"}))
    };
    let (s1, _, v1) = send(key_req()).await;
    let res = key_req().send().await.unwrap();
    assert_eq!(res.headers()["idempotent-replayed"], "true");
    let v2: serde_json::Value = res.json().await.unwrap();
    assert_eq!((s1, v1["data"].clone()), (200, v2["data"].clone()));

    let (_, v) = call(
        &server,
        "GET",
        &format!("/sandbox/devices/{id}/sent"),
        &t,
        None,
    )
    .await;
    let log: Vec<_> = v["data"]["sent"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["message_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(log.len(), 3, "{log:?}");
    assert_eq!(log[0], first);
}

/// kill -9 in the middle of a burst of accepted async sends: after the restart every
/// accepted message ends `sent`, and WhatsApp received each exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_burst_loses_nothing_and_duplicates_nothing() {
    let mut server = Server::start(&ENV);
    let t = Arc::new(app_token(&server).await);
    let id = Arc::new(linked_device(&server, &t, "burst").await);
    let url = Arc::new(server.url(&format!("/devices/{id}/messages")));
    let http = server.http.clone();
    let accepted = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut tasks = Vec::new();
    for w in 0..8 {
        let (http, url, t, accepted) = (http.clone(), url.clone(), t.clone(), accepted.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..400 {
                let res = http
                    .post(url.as_str())
                    .bearer_auth(t.as_str())
                    .header("Prefer", "respond-async")
                    .json(&json!({"to": "15550001111", "text": format!("burst {w}-{i}")}))
                    .send()
                    .await;
                // No answer: the kill. An answer is an acceptance, nothing else.
                let Ok(res) = res else { return };
                assert_eq!(res.status().as_u16(), 202, "an answer before the kill");
                let Ok(v) = res.json::<serde_json::Value>().await else {
                    return;
                };
                accepted.lock().unwrap().push(
                    v["data"]["message"]["message_id"]
                        .as_str()
                        .unwrap()
                        .to_owned(),
                );
            }
        }));
    }
    // Kill once a good part of the burst was accepted.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while accepted.lock().unwrap().len() < 300 {
        assert!(
            std::time::Instant::now() < deadline,
            "the burst did not get going"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.kill9();
    // A sender stops at its first failed request (the kill); anything else is a failure.
    for t in tasks {
        t.await.expect("a sender task panicked");
    }
    let accepted = accepted.lock().unwrap().clone();
    assert!(accepted.len() >= 300);

    let again = Server::start_in(&server.data_dir, &ENV);
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    let log = loop {
        let (_, v) = call(
            &again,
            "GET",
            &format!("/sandbox/devices/{id}/sent"),
            &t,
            None,
        )
        .await;
        let log: Vec<String> = v["data"]["sent"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["message_id"].as_str().unwrap().to_owned())
            .collect();
        let got: std::collections::HashSet<_> = log.iter().cloned().collect();
        if accepted.iter().all(|a| got.contains(a)) {
            break log;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "accepted messages never sent: {} of {}",
            accepted.iter().filter(|a| got.contains(*a)).count(),
            accepted.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for m in &log {
        *counts.entry(m.as_str()).or_default() += 1;
    }
    let dups: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dups.is_empty(), "sent more than once: {dups:?}");
    // Every accepted message ends `sent` in the store too, not only in WhatsApp's log.
    let statuses = all_statuses(&again, &t, &id).await;
    let unsent: Vec<_> = accepted
        .iter()
        .filter(|a| statuses.get(*a).map(String::as_str) != Some("sent"))
        .map(|a| (a, statuses.get(a)))
        .collect();
    assert!(unsent.is_empty(), "accepted but not sent: {unsent:?}");
}

/// Every message of the device (all pages): message id -> status.
async fn all_statuses(server: &Server, token: &str, device: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/devices/{device}/messages?limit=200");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let (s, v) = call(server, "GET", &path, token, None).await;
        assert_eq!(s, 200, "{v}");
        for m in v["data"]["messages"].as_array().unwrap() {
            out.insert(
                m["message_id"].as_str().unwrap().to_owned(),
                m["status"].as_str().unwrap().to_owned(),
            );
        }
        match v["data"]["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return out,
        }
    }
}
