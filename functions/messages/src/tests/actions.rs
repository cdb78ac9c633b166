//! Router tests of the actions on a message: edit, revoke, read receipts, and each refusal.

use std::time::Duration;

use http::StatusCode;
use serde_json::{Value, json};
use wa_core::apps::CreateApp;
use wa_core::messages::MessageUpdate;

use super::{Api, JPEG, api, b64, code, message_id};

const PEER: &str = "15550001111@s.whatsapp.net";

impl Api {
    fn message_uri(&self, id: &str, action: &str) -> String {
        format!("/devices/{}/messages/{id}{action}", self.device)
    }

    async fn edit(&self, id: &str, body: Value) -> super::Reply {
        self.call("PATCH", &self.message_uri(id, ""), body, &[])
            .await
    }

    async fn act(&self, id: &str, action: &str) -> super::Reply {
        self.call("POST", &self.message_uri(id, action), Value::Null, &[])
            .await
    }

    /// Sends a text to the peer: its id, once sent.
    async fn sent_text(&self, text: &str) -> String {
        let r = self
            .send(json!({"to": "15550001111", "text": text}), &[])
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        message_id(&r)
    }

    /// A text from `from` arrives: its id.
    async fn received(&self, from: &str, text: &str) -> String {
        let r = self.inbound(json!({"from": from, "text": text})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        message_id(&r)
    }

    /// The last record of the simulated WhatsApp.
    async fn last_sent(&self) -> Value {
        self.sent_records().await.last().cloned().unwrap()
    }
}

fn refused(r: &super::Reply, status: StatusCode, wanted: &str) {
    assert_eq!((r.status, code(r)), (status, wanted), "{}", r.body);
}

#[tokio::test]
async fn a_sent_text_and_a_caption_are_edited_within_the_window() {
    let api = api(Duration::from_secs(10), 0.0, 1).await;
    let id = api.sent_text("see you at 5").await;
    let r = api.edit(&id, json!({"text": "see you at 6"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let m = &r.body["data"]["message"];
    assert_eq!(
        (&m["text"], &m["status"]),
        (&json!("see you at 6"), &json!("sent"))
    );
    assert!(m["edited_at"].is_string(), "{m}");
    assert_eq!(api.message(&id).await["text"], "see you at 6");
    let e = api.last_sent().await;
    assert_eq!(
        (&e["type"], &e["to"], &e["target_message_id"], &e["text"]),
        (
            &json!("edit"),
            &json!(PEER),
            &json!(id),
            &json!("see you at 6")
        )
    );

    let r = api
        .send(
            json!({"to": "15550001111", "type": "image", "mime_type": "image/jpeg", "data_base64": b64(JPEG)}),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let image = message_id(&r);
    let r = api.edit(&image, json!({"text": "the view"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["data"]["message"]["text"], "the view");
    assert_eq!(r.body["data"]["message"]["type"], "image");

    // Older than 15 minutes: refused, and nothing reaches WhatsApp.
    let old = api.sent_text("old").await;
    let device = api.device.parse().unwrap();
    let long_ago = wa_core::time::now() - Duration::from_secs(16 * 60);
    let u = MessageUpdate {
        sent_at: Some(Some(long_ago)),
        ..MessageUpdate::default()
    };
    api.ctx
        .store
        .update_message(device, &old, &u, &[], &[])
        .await
        .unwrap();
    let before = api.sent_records().await.len();
    refused(
        &api.edit(&old, json!({"text": "new"})).await,
        StatusCode::CONFLICT,
        "conflict",
    );
    assert_eq!(api.sent_records().await.len(), before);
}

#[tokio::test]
async fn edits_are_refused_by_field_by_message_and_by_device() {
    let api = api(Duration::from_secs(10), 0.0, 1).await;
    let id = api.sent_text("hi").await;
    let inbound = api.received("15550001111", "hello").await;
    let r = api
        .send(
            json!({"to": "15550001111", "type": "location", "latitude": 1.5, "longitude": 2.5}),
            &[],
        )
        .await;
    let location = message_id(&r);
    for (body, field) in [
        (json!({"text": ""}), "text"),
        (json!({"text": "x".repeat(65_537)}), "text"),
        (json!({}), "text"),
        (json!({"text": "x", "caption": "y"}), "caption"),
    ] {
        let r = api.edit(&id, body.clone()).await;
        refused(&r, StatusCode::BAD_REQUEST, "validation_error");
        assert_eq!(r.body["error"]["details"]["field"], field, "{body}");
    }
    let r = api.edit("bad%20id", json!({"text": "x"})).await;
    assert_eq!(r.body["error"]["details"]["field"], "message_id");
    refused(
        &api.edit("3EB0NOPE", json!({"text": "x"})).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    for other in [&inbound, &location] {
        refused(
            &api.edit(other, json!({"text": "x"})).await,
            StatusCode::CONFLICT,
            "conflict",
        );
    }
}

#[tokio::test]
async fn a_sent_message_is_revoked_once() {
    let api = api(Duration::from_secs(10), 0.0, 1).await;
    let id = api.sent_text("oops").await;
    let r = api.act(&id, "/revoke").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["data"]["message"]["status"], "revoked");
    assert_eq!(api.message(&id).await["status"], "revoked");
    let e = api.last_sent().await;
    assert_eq!(
        (&e["type"], &e["to"], &e["target_message_id"]),
        (&json!("revoke"), &json!(PEER), &json!(id))
    );
    let before = api.sent_records().await.len();
    let again = api.act(&id, "/revoke").await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert_eq!(again.body["data"]["message"]["status"], "revoked");
    assert_eq!(api.sent_records().await.len(), before, "asked once");

    // A late receipt leaves it revoked; it can no longer be edited.
    api.receipt(&id, "read").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(api.message(&id).await["status"], "revoked");
    refused(
        &api.edit(&id, json!({"text": "x"})).await,
        StatusCode::CONFLICT,
        "conflict",
    );

    let inbound = api.received("15550001111", "hello").await;
    // When its sender deletes a received message for everyone, it becomes revoked.
    let uri = format!("/sandbox/devices/{}/revoke", api.device);
    let r = api
        .call("POST", &uri, json!({"message_id": inbound}), &[])
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    api.wait_message(&inbound, "revoked").await;
    refused(
        &api.act(&inbound, "/revoke").await,
        StatusCode::CONFLICT,
        "conflict",
    );
    let r = api
        .send(json!({"to": "15550000502", "text": "fails"}), &[])
        .await;
    let failed = r.body["error"]["details"]["message_id"]
        .as_str()
        .unwrap()
        .to_owned();
    refused(
        &api.act(&failed, "/revoke").await,
        StatusCode::CONFLICT,
        "conflict",
    );
    refused(
        &api.act("3EB0NOPE", "/revoke").await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
}

#[tokio::test]
async fn a_read_receipt_covers_the_unread_messages_of_its_chat() {
    let api = api(Duration::from_secs(10), 0.0, 1).await;
    let a1 = api.received("15550001111", "one").await;
    let b1 = api.received("15550002222", "elsewhere").await;
    let a2 = api.received("15550001111", "two").await;
    let own = api.sent_text("mine").await;
    let a3 = api.received("15550001111", "three").await;

    let r = api.act(&a3, "/read").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.raw);
    let e = api.last_sent().await;
    assert_eq!(
        (&e["type"], &e["to"], &e["target_message_id"]),
        (&json!("read"), &json!(PEER), &json!(a3))
    );
    assert_eq!(e["message_ids"], json!([a3, a2, a1]));
    for id in [&a1, &a2, &a3] {
        assert_eq!(api.message(id).await["status"], "read", "{id}");
    }
    assert_eq!(api.message(&b1).await["status"], "received");
    assert_eq!(api.message(&own).await["status"], "sent");

    // The next receipt stops at the messages read already.
    let a4 = api.received("15550001111", "four").await;
    let r = api.act(&a4, "/read").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.raw);
    assert_eq!(api.last_sent().await["message_ids"], json!([a4]));
    // Read again: sent again, harmless.
    assert_eq!(api.act(&a1, "/read").await.status, StatusCode::NO_CONTENT);

    refused(
        &api.act(&own, "/read").await,
        StatusCode::CONFLICT,
        "conflict",
    );
    refused(
        &api.act("3EB0NOPE", "/read").await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
}

#[tokio::test]
async fn other_apps_and_a_device_not_connected_are_refused() {
    let api = api(Duration::from_secs(10), 0.0, 1).await;
    let id = api.sent_text("hi").await;
    let inbound = api.received("15550001111", "hello").await;
    let token = |tenant: &'static str| {
        let apps = api.ctx.apps.clone();
        async move {
            apps.create(tenant, CreateApp::named("other"))
                .await
                .unwrap()
                .app_token
        }
    };
    let (sibling, stranger) = (token("acme").await, token("globex").await);
    for (token, status, wanted) in [
        (&sibling, StatusCode::FORBIDDEN, "forbidden"),
        (&stranger, StatusCode::NOT_FOUND, "not_found"),
    ] {
        for (method, uri, body) in [
            ("PATCH", api.message_uri(&id, ""), json!({"text": "x"})),
            ("POST", api.message_uri(&id, "/revoke"), Value::Null),
            ("POST", api.message_uri(&inbound, "/read"), Value::Null),
        ] {
            let r = api.call_as(token, method, &uri, body, &[]).await;
            refused(&r, status, wanted);
        }
    }

    let disconnect = format!("/devices/{}/disconnect", api.device);
    let r = api.call("POST", &disconnect, Value::Null, &[]).await;
    assert!(r.status.is_success(), "{}", r.body);
    api.wait_device("disconnected").await;
    let before = api.sent_records().await.len();
    for r in [
        api.edit(&id, json!({"text": "x"})).await,
        api.act(&id, "/revoke").await,
        api.act(&inbound, "/read").await,
    ] {
        refused(&r, StatusCode::CONFLICT, "device_not_connected");
    }
    assert_eq!(api.sent_records().await.len(), before);
    assert_eq!(api.message(&id).await["status"], "sent");

    let destroy = format!("/devices/{}", api.device);
    let r = api.call("DELETE", &destroy, Value::Null, &[]).await;
    assert!(r.status.is_success(), "{}", r.body);
    for r in [
        api.edit(&id, json!({"text": "x"})).await,
        api.act(&id, "/revoke").await,
        api.act(&inbound, "/read").await,
        api.send(
            json!({"to": "15550001111", "type": "reaction", "message_id": inbound, "emoji": "👍"}),
            &[],
        )
        .await,
        api.send(
            json!({"to": "15550001111", "type": "poll", "question": "Q?", "options": ["a", "b"]}),
            &[],
        )
        .await,
    ] {
        refused(&r, StatusCode::GONE, "device_destroyed");
    }
}

impl Api {
    /// The payloads of the App's events of type `kind`, oldest first.
    async fn events(&self, kind: &str) -> Vec<Value> {
        let app = self.app().await;
        let (deliveries, _) = self
            .ctx
            .store
            .list_deliveries(app.app_id, None, 200, None)
            .await
            .unwrap();
        let mut out: Vec<Value> = deliveries
            .into_iter()
            .filter(|d| d.event.event.as_str() == kind)
            .map(|d| d.event.payload)
            .collect();
        out.reverse();
        out
    }

    /// Waits for the `n`-th event of type `kind`.
    async fn nth_event(&self, kind: &str, n: usize) -> Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(e) = self.events(kind).await.get(n - 1) {
                return e.clone();
            }
            assert!(std::time::Instant::now() < deadline, "no {kind} #{n}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test]
async fn a_peer_reacts_and_edits_its_message() {
    let api = api(Duration::from_secs(10), 0.0, 1).await;
    let mine = api.sent_text("lunch?").await;
    let theirs = api.received("15550001111", "yes at 1").await;

    for emoji in ["👍", ""] {
        let r = api
            .inbound(json!({"from": "15550001111", "type": "reaction", "message_id": mine, "emoji": emoji}))
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    }
    let e = api.nth_event("reaction", 2).await;
    assert_eq!(
        e,
        json!({"message_id": mine, "chat": PEER, "from": PEER, "emoji": "", "direction": "inbound"})
    );
    assert_eq!(api.nth_event("reaction", 1).await["emoji"], "👍");

    let r = api
        .inbound(json!({"from": "15550001111", "type": "edit", "message_id": theirs, "text": "yes at 2"}))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let e = api.nth_event("message_edited", 1).await;
    assert_eq!(
        (&e["message_id"], &e["chat"], &e["from"], &e["text"]),
        (
            &json!(theirs),
            &json!(PEER),
            &json!(PEER),
            &json!("yes at 2")
        )
    );
    let m = api.message(&theirs).await;
    assert_eq!(
        (&m["text"], &m["edited_at"]),
        (&json!("yes at 2"), &e["edited_at"])
    );

    // Refusals by field: nothing reaches the worker.
    for (body, field) in [
        (
            json!({"from": "15550001111", "type": "reaction", "message_id": "3EB0NOPE", "emoji": "👍"}),
            "message_id",
        ),
        (
            json!({"from": "15550001111", "type": "reaction", "message_id": mine, "emoji": "no"}),
            "emoji",
        ),
        (
            json!({"from": "15550001111", "type": "reaction", "message_id": mine}),
            "emoji",
        ),
        (
            json!({"from": "15550002222", "type": "edit", "message_id": theirs, "text": "x"}),
            "message_id",
        ),
        (
            json!({"from": "15550001111", "type": "edit", "message_id": mine, "text": "x"}),
            "message_id",
        ),
        (
            json!({"from": "15550001111", "type": "edit", "message_id": theirs, "text": ""}),
            "text",
        ),
        (
            json!({"from": "15550001111", "type": "edit", "message_id": theirs, "text": "x", "emoji": "y"}),
            "emoji",
        ),
    ] {
        let r = api.inbound(body.clone()).await;
        refused(&r, StatusCode::BAD_REQUEST, "validation_error");
        assert_eq!(r.body["error"]["details"]["field"], field, "{body}");
    }
    assert_eq!(api.events("reaction").await.len(), 2);
    assert_eq!(api.events("message_edited").await.len(), 1);
}

#[tokio::test]
async fn a_peer_quotes_mentions_sends_a_poll_votes_and_calls() {
    let api = api(Duration::from_secs(10), 0.0, 1).await;
    let mine = api.sent_text("lunch?").await;

    // A quote of a message of the device, with mentions.
    let r = api
        .inbound(json!({"from": "15550001111", "text": "yes @15550002222", "reply_to": {"message_id": mine}, "mentions": ["15550002222"]}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let reply = message_id(&r);
    let e = api.nth_event("message", 2).await;
    assert_eq!(e["message_id"], json!(reply));
    assert_eq!(e["reply_to"]["message_id"], json!(mine));
    assert_eq!(e["mentions"], json!(["15550002222@s.whatsapp.net"]));
    let r = api
        .inbound(
            json!({"from": "15550001111", "text": "x", "reply_to": {"message_id": "3EB0NOPE"}}),
        )
        .await;
    refused(&r, StatusCode::BAD_REQUEST, "validation_error");
    assert_eq!(r.body["error"]["details"]["field"], "reply_to");

    // A peer's poll is stored with its question and options.
    let r = api
        .inbound(json!({"from": "15550001111", "type": "poll", "question": "Where?", "options": ["Pizza", "Sushi"]}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let theirs = message_id(&r);
    let e = api.nth_event("message", 3).await;
    assert_eq!(
        (&e["type"], &e["question"], &e["options"]),
        (&json!("poll"), &json!("Where?"), &json!(["Pizza", "Sushi"]))
    );

    // Votes on the device's own poll: each voter's latest counts.
    let r = api
        .send(json!({"to": "15550001111", "type": "poll", "question": "When?", "options": ["1pm", "2pm", "3pm"], "selectable_count": 2}), &[])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let poll = message_id(&r);
    let vote = |from: &str, poll: &str, selected: Value| json!({"from": from, "type": "poll_vote", "message_id": poll, "selected_options": selected});
    for (n, body) in [
        vote("15550001111", &poll, json!(["1pm", "2pm"])),
        vote("15550002222", &poll, json!(["2pm"])),
        vote("15550001111", &poll, json!(["3pm"])),
        vote("15550002222", &poll, json!([])),
    ]
    .into_iter()
    .enumerate()
    {
        let r = api.inbound(body).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
        api.nth_event("poll_vote", n + 1).await;
    }
    let e = api.nth_event("poll_vote", 3).await;
    assert_eq!(
        e,
        json!({"poll_message_id": poll, "chat": PEER, "voter": PEER, "selected_options": ["3pm"], "tally": {"1pm": 0, "2pm": 1, "3pm": 1}})
    );
    let e = api.nth_event("poll_vote", 4).await;
    assert_eq!(e["tally"], json!({"1pm": 0, "2pm": 0, "3pm": 1}));
    assert_eq!(e["selected_options"], json!([]));
    let r = api
        .inbound(vote("15550002222", &theirs, json!(["Sushi"])))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    assert_eq!(
        api.nth_event("poll_vote", 5).await["tally"],
        json!({"Pizza": 0, "Sushi": 1})
    );

    // Refusals: by field, an unknown poll.
    for body in [
        vote("15550001111", &poll, json!(["4pm"])),
        vote("15550001111", &poll, json!(["1pm", "1pm"])),
        vote("15550001111", &poll, json!(["1pm", "2pm", "3pm"])),
    ] {
        let r = api.inbound(body.clone()).await;
        refused(&r, StatusCode::BAD_REQUEST, "validation_error");
        assert_eq!(
            r.body["error"]["details"]["field"], "selected_options",
            "{body}"
        );
    }
    for unknown in ["3EB0NOPE", mine.as_str()] {
        let r = api
            .inbound(vote("15550001111", unknown, json!(["1pm"])))
            .await;
        refused(&r, StatusCode::NOT_FOUND, "not_found");
    }
    assert_eq!(api.events("poll_vote").await.len(), 5);

    // A call rings the device.
    let call_uri = format!("/sandbox/devices/{}/call", api.device);
    let r = api
        .call(
            "POST",
            &call_uri,
            json!({"from": "15550001111", "is_video": true}),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let e = api.nth_event("call", 1).await;
    assert_eq!(
        (&e["from"], &e["is_video"], &e["status"]),
        (&json!(PEER), &json!(true), &json!("offer"))
    );
    assert!(e["call_id"].as_str().is_some_and(|c| !c.is_empty()), "{e}");
    for (body, field) in [
        (json!({"is_video": true}), "from"),
        (json!({"from": "nope"}), "from"),
        (json!({"from": "15550001111", "ring": 1}), "ring"),
    ] {
        let r = api.call("POST", &call_uri, body.clone(), &[]).await;
        refused(&r, StatusCode::BAD_REQUEST, "validation_error");
        assert_eq!(r.body["error"]["details"]["field"], field, "{body}");
    }

    // Other Apps and a device not connected.
    let token = |tenant: &'static str| {
        let apps = api.ctx.apps.clone();
        async move {
            apps.create(tenant, CreateApp::named("other"))
                .await
                .unwrap()
                .app_token
        }
    };
    let (sibling, stranger) = (token("acme").await, token("globex").await);
    let inbound_uri = format!("/sandbox/devices/{}/inbound", api.device);
    for (token, status, wanted) in [
        (&sibling, StatusCode::FORBIDDEN, "forbidden"),
        (&stranger, StatusCode::NOT_FOUND, "not_found"),
    ] {
        for (uri, body) in [
            (&call_uri, json!({"from": "15550001111"})),
            (&inbound_uri, vote("15550001111", &poll, json!(["1pm"]))),
        ] {
            let r = api.call_as(token, "POST", uri, body, &[]).await;
            refused(&r, status, wanted);
        }
    }
    let disconnect = format!("/devices/{}/disconnect", api.device);
    let r = api.call("POST", &disconnect, Value::Null, &[]).await;
    assert!(r.status.is_success(), "{}", r.body);
    api.wait_device("disconnected").await;
    let r = api
        .call("POST", &call_uri, json!({"from": "15550001111"}), &[])
        .await;
    refused(&r, StatusCode::CONFLICT, "device_not_connected");
    let r = api
        .inbound(vote("15550001111", &poll, json!(["1pm"])))
        .await;
    refused(&r, StatusCode::CONFLICT, "device_not_connected");
    assert_eq!(api.events("call").await.len(), 1);
    assert_eq!(api.events("poll_vote").await.len(), 5);
}
