//! A webhook after `POST /apps/{id}/webhook-secret` is signed with the new secret, checked
//! with the Standard Webhooks reference library: it no longer verifies with the old secret
//! and verifies with the new one.

use std::time::Duration;

use serde_json::{Value, json};

use crate::devices::{call, create_app, create_device};
use crate::support::Server;
use crate::webhooks::{HOOKED_SANDBOX, Receiver, SECRET};

/// Creates a device (its QR is an event) and waits until its event arrived; answers it.
async fn event_of_new_device(server: &Server, token: &str, receiver: &Receiver) -> Value {
    let (_, id) = create_device(server, token, &uuid::Uuid::new_v4().to_string()).await;
    let got = receiver
        .wait("the new device's event", Duration::from_secs(30), |g| {
            g.iter().any(|r| r["body"]["device_id"] == id.as_str())
        })
        .await;
    got.into_iter()
        .find(|r| r["body"]["device_id"] == id.as_str())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_after_a_secret_rotation_are_signed_with_the_new_secret() {
    let rdir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(rdir.path(), 0);
    let server = Server::start(&HOOKED_SANDBOX);
    let (ok, jwt, _) = server.cli(&["token", "--tenant", "rotation"], &[SECRET]);
    assert!(ok);
    let body = json!({"name": "rotation", "webhook_url": format!("http://127.0.0.1:{}/hook?token=t", receiver.port)});
    let app = create_app(&server, &jwt, body).await;
    let app_id = app["app"]["app_id"].as_str().unwrap().to_owned();
    let token = app["app_token"].as_str().unwrap().to_owned();
    let old = app["webhook_secret"].as_str().unwrap().to_owned();
    receiver.set("secret", &old);
    let before = event_of_new_device(&server, &token, &receiver).await;
    assert_eq!(
        before["verified"], true,
        "signed with the first secret: {before}"
    );

    let path = format!("/apps/{app_id}/webhook-secret");
    let (s, v) = call(&server, "POST", &path, &jwt, None).await;
    assert_eq!(s, 200, "{v}");
    let new = v["data"]["webhook_secret"].as_str().unwrap().to_owned();
    assert!(new.starts_with("whsec_") && new != old);

    // The receiver still holds the old secret: the next event does not verify with it.
    let stale = event_of_new_device(&server, &token, &receiver).await;
    assert_eq!(
        stale["verified"], false,
        "not signed with the old secret: {stale}"
    );
    receiver.set("secret", &new);
    let after = event_of_new_device(&server, &token, &receiver).await;
    assert_eq!(
        after["verified"], true,
        "signed with the new secret: {after}"
    );
}
