//! Groups through the real binary on the sandbox: the device creates a group, renames it
//! and adds a participant, someone elsewhere promotes a member, the device leaves; each
//! change is reported by a signed `group_update` webhook, the device's own with `by` its
//! own JID.

use std::time::Duration;

use serde_json::{Value, json};

use crate::devices::{call, linked_device};
use crate::support::{Server, str_at};
use crate::webhooks::{HOOKED_SANDBOX, Receiver};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_changes_made_here_and_elsewhere_are_reported() {
    let rdir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(rdir.path(), 0);
    let server = Server::start(&HOOKED_SANDBOX);
    let app = receiver.app(&server, "groups", "groups").await;
    let t = app["app_token"].as_str().unwrap().to_owned();
    let id = linked_device(&server, &t, "admin").await;
    let me = "15551230001@s.whatsapp.net";
    let peer = "15551230002@s.whatsapp.net";
    let base = format!("/devices/{id}/groups");

    let (s, v) = call(
        &server,
        "POST",
        &base,
        &t,
        Some(json!({"subject": "Lunch", "participants": ["15551230002"]})),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let jid = str_at(&v, "/data/group/jid");
    let group = format!("{base}/{jid}");
    let (s, v) = call(
        &server,
        "PATCH",
        &group,
        &t,
        Some(json!({"subject": "Lunch (Fridays)"})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = call(
        &server,
        "POST",
        &format!("{group}/participants"),
        &t,
        Some(json!({"action": "add", "participants": ["15551230003"]})),
    )
    .await;
    assert_eq!(
        (s, &v["data"]["results"][0]["ok"]),
        (200, &json!(true)),
        "{v}"
    );
    let (s, v) = call(
        &server,
        "POST",
        &format!("/sandbox/devices/{id}/group-event"),
        &t,
        Some(json!({"group_jid": jid, "action": "promoted", "participants": ["15551230003"], "by": "15551230002"})),
    )
    .await;
    assert_eq!(s, 202, "{v}");
    let (_, v) = call(&server, "GET", &group, &t, None).await;
    let members = v["data"]["group"]["participants"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(members.len(), 3);
    assert_eq!(
        (&members[2]["jid"], &members[2]["is_admin"]),
        (&json!("15551230003@s.whatsapp.net"), &json!(true))
    );
    let (s, _) = call(&server, "POST", &format!("{group}/leave"), &t, None).await;
    assert_eq!(s, 204);

    let updates = |got: &[Value]| -> Vec<Value> {
        got.iter()
            .filter(|r| r["verified"] == true && r["body"]["event"] == "group_update")
            .map(|r| r["body"]["payload"].clone())
            .collect()
    };
    let got = receiver
        .wait("five group updates", Duration::from_secs(30), |got| {
            updates(got).len() >= 5
        })
        .await;
    let mut got = updates(&got);
    got.sort_by_key(|u| {
        [
            "created",
            "subject",
            "participants_added",
            "promoted",
            "left",
        ]
        .iter()
        .position(|a| u["action"] == *a)
    });
    assert_eq!(
        got,
        [
            json!({"group_jid": jid, "action": "created", "participants": [me, peer], "by": me, "subject": "Lunch"}),
            json!({"group_jid": jid, "action": "subject", "participants": [], "by": me, "subject": "Lunch (Fridays)"}),
            json!({"group_jid": jid, "action": "participants_added", "participants": ["15551230003@s.whatsapp.net"], "by": me}),
            json!({"group_jid": jid, "action": "promoted", "participants": ["15551230003@s.whatsapp.net"], "by": peer}),
            json!({"group_jid": jid, "action": "left", "participants": [me], "by": me}),
        ]
    );
    let (s, v) = call(&server, "GET", &group, &t, None).await;
    assert_eq!((s, &v["error"]["code"]), (404, &json!("not_found")), "left");
}
