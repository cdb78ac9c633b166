//! The sandbox's record of sessions (`GET /sandbox/devices/{id}/sessions`) across a kill -9
//! of the embedded server: the restarted server is its store's only worker, so it takes
//! its earlier run's leases at once (a new epoch) and reconnects the device without
//! waiting out the lease period.

use std::time::Duration;

use serde_json::Value;

use crate::devices::{app_token, call, linked_device, poll, wait_for};
use crate::support::Server;

const ENV: [(&str, &str); 4] = [
    ("WA_JWT_SECRET", "e2e-secret-e2e-secret-e2e-secret-e2e"),
    ("WA_PROVIDER", "sandbox"),
    ("WA_WORKER_ID", "solo"),
    // A lease period no run of this test could wait out.
    ("WA_LEASE_TTL_SECS", "3600"),
];

fn sessions(v: &Value) -> &Vec<Value> {
    v["data"]["sessions"].as_array().expect("a session list")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_reconnects_at_once_under_a_new_epoch() {
    let mut first = Server::start(&ENV);
    let t = app_token(&first).await;
    let id = linked_device(&first, &t, "survivor").await;
    let path = format!("/sandbox/devices/{id}/sessions");
    let (s, v) = call(&first, "GET", &path, &t, None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["data"]["count"], 1, "{v}");
    let one = &sessions(&v)[0];
    assert_eq!(
        (one["worker_id"].as_str(), one["epoch"].as_u64()),
        (Some("solo"), Some(1))
    );
    assert!(
        one["opened_at"].is_string() && one["closed_at"].is_null(),
        "{v}"
    );
    first.kill9();

    let again = Server::start_in(&first.data_dir, &ENV);
    let v = poll(&again, &t, &path, Duration::from_secs(60), |v| {
        sessions(v).len() >= 2
    })
    .await;
    let list = sessions(&v);
    assert_eq!(list.len(), 2, "{v}");
    assert_eq!(list[0]["closed_at"], Value::Null, "killed: never closed");
    assert_eq!(
        (list[1]["worker_id"].as_str(), list[1]["epoch"].as_u64()),
        (Some("solo"), Some(2)),
        "{v}"
    );
    wait_for(&again, &t, &id, Duration::from_secs(60), |d| {
        d["status"] == "connected"
    })
    .await;
    // Another App's token does not see the device.
    let other = app_token(&again).await;
    let (s, v) = call(&again, "GET", &path, &other, None).await;
    assert_eq!(s, 403, "{v}");
    assert_eq!(v["error"]["code"], "forbidden");
}
