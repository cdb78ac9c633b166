//! Conversations through the real binary on the sandbox: a reply with mentions, a
//! reaction and a poll reach WhatsApp in order with their fields, and each is reported by
//! a signed outbound `message` webhook; edits, revokes and read receipts, and a peer's
//! reaction and edit with their signed webhooks.

use std::time::Duration;

use serde_json::{Value, json};

use crate::devices::{call, linked_device, send_text};
use crate::support::{Server, str_at};
use crate::webhooks::{HOOKED_SANDBOX, Receiver};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reply_mentions_reaction_and_poll_reach_whatsapp_and_the_webhook() {
    let rdir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(rdir.path(), 0);
    let server = Server::start(&HOOKED_SANDBOX);
    let app = receiver.app(&server, "chats", "chats").await;
    let t = app["app_token"].as_str().unwrap().to_owned();
    let id = linked_device(&server, &t, "chatty").await;
    let path = format!("/devices/{id}/messages");

    let (s, v) = send_text(&server, &t, &id, "15550001111", "lunch?").await;
    assert_eq!(s, 200, "{v}");
    let question = str_at(&v, "/data/message/message_id");

    let (s, v) = call(
        &server,
        "POST",
        &path,
        &t,
        Some(json!({
            "to": "15550001111",
            "text": "@15550002222 are you in?",
            "reply_to": {"message_id": question},
            "mentions": ["15550002222"]
        })),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let reply = str_at(&v, "/data/message/message_id");
    assert_eq!(v["data"]["message"]["reply_to"]["message_id"], question);
    assert_eq!(
        v["data"]["message"]["mentions"],
        json!(["15550002222@s.whatsapp.net"])
    );

    let (s, v) = call(
        &server,
        "POST",
        &path,
        &t,
        Some(
            json!({"to": "15550001111", "type": "reaction", "message_id": question, "emoji": "🍕"}),
        ),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let reaction = str_at(&v, "/data/message/message_id");

    let (s, v) = call(
        &server,
        "POST",
        &path,
        &t,
        Some(json!({"to": "15550001111", "type": "poll", "question": "Where?", "options": ["Pizza", "Sushi", "Tacos"]})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let poll = str_at(&v, "/data/message/message_id");

    let (s, v) = call(
        &server,
        "POST",
        &path,
        &t,
        Some(json!({"to": "15550001111", "type": "reaction", "message_id": "3EB0UNKNOWN", "emoji": "🍕"})),
    )
    .await;
    assert_eq!(
        (s, &v["error"]["details"]["field"]),
        (400, &json!("message_id"))
    );

    // What WhatsApp received, in order, with each action's fields.
    let (_, v) = call(
        &server,
        "GET",
        &format!("/sandbox/devices/{id}/sent"),
        &t,
        None,
    )
    .await;
    let sent = v["data"]["sent"].as_array().unwrap();
    let order: Vec<(&str, &str)> = sent
        .iter()
        .map(|r| {
            (
                r["message_id"].as_str().unwrap(),
                r["type"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        order,
        vec![
            (question.as_str(), "text"),
            (reply.as_str(), "text"),
            (reaction.as_str(), "reaction"),
            (poll.as_str(), "poll"),
        ]
    );
    assert_eq!(sent[1]["reply_to"]["message_id"], question);
    assert_eq!(sent[1]["mentions"], json!(["15550002222@s.whatsapp.net"]));
    assert_eq!(sent[2]["target_message_id"], question);
    assert_eq!(sent[2]["emoji"], "🍕");
    assert_eq!(sent[3]["question"], "Where?");
    assert_eq!(sent[3]["options"], json!(["Pizza", "Sushi", "Tacos"]));
    assert_eq!(sent[3]["selectable_count"], 1);

    // Each is reported by a verified outbound `message` webhook.
    let outbound = |got: &[Value], mid: &str| -> Option<Value> {
        got.iter()
            .filter(|r| r["verified"] == true && r["body"]["event"] == "message")
            .map(|r| r["body"]["payload"].clone())
            .find(|p| p["message_id"] == mid && p["direction"] == "outbound")
    };
    let got = receiver
        .wait(
            "the three sends' webhooks",
            Duration::from_secs(30),
            |got| {
                [&reply, &reaction, &poll]
                    .iter()
                    .all(|m| outbound(got, m).is_some())
            },
        )
        .await;
    let p = outbound(&got, &reply).unwrap();
    assert_eq!(p["type"], "text");
    assert_eq!(p["reply_to"]["message_id"], question);
    assert_eq!(p["mentions"], json!(["15550002222@s.whatsapp.net"]));
    let p = outbound(&got, &reaction).unwrap();
    assert_eq!(
        (&p["type"], &p["target_message_id"], &p["emoji"]),
        (&json!("reaction"), &json!(question), &json!("🍕"))
    );
    let p = outbound(&got, &poll).unwrap();
    assert_eq!(
        (&p["type"], &p["question"], &p["options"]),
        (
            &json!("poll"),
            &json!("Where?"),
            &json!(["Pizza", "Sushi", "Tacos"])
        )
    );
}

/// Actions on messages through the real binary: the device edits and revokes its message
/// and marks the peer's read; the peer reacts to the device's message and edits its own,
/// each reported by a signed webhook (`reaction`, `message_edited`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_revokes_receipts_and_a_peers_reaction_and_edit_are_reported() {
    let rdir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(rdir.path(), 0);
    let server = Server::start(&HOOKED_SANDBOX);
    let app = receiver.app(&server, "acts", "acts").await;
    let t = app["app_token"].as_str().unwrap().to_owned();
    let id = linked_device(&server, &t, "acting").await;
    let peer = "15550001111@s.whatsapp.net";

    let (s, v) = send_text(&server, &t, &id, "15550001111", "at 5?").await;
    assert_eq!(s, 200, "{v}");
    let mine = str_at(&v, "/data/message/message_id");
    let message = format!("/devices/{id}/messages/{mine}");
    let (s, v) = call(
        &server,
        "PATCH",
        &message,
        &t,
        Some(json!({"text": "at 6?"})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["data"]["message"]["text"], "at 6?");

    let inbound = format!("/sandbox/devices/{id}/inbound");
    let (s, v) = call(
        &server,
        "POST",
        &inbound,
        &t,
        Some(json!({"from": "15550001111", "text": "sure, at 6"})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let theirs = str_at(&v, "/data/message/message_id");
    for body in [
        json!({"from": "15550001111", "type": "reaction", "message_id": mine, "emoji": "👍"}),
        json!({"from": "15550001111", "type": "edit", "message_id": theirs, "text": "sure, at 6:30"}),
    ] {
        let (s, v) = call(&server, "POST", &inbound, &t, Some(body)).await;
        assert_eq!(s, 202, "{v}");
    }
    let (s, _) = call(
        &server,
        "POST",
        &format!("/devices/{id}/messages/{theirs}/read"),
        &t,
        None,
    )
    .await;
    assert_eq!(s, 204);
    let (s, v) = call(&server, "POST", &format!("{message}/revoke"), &t, None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["data"]["message"]["status"], "revoked");

    let event = |got: &[Value], kind: &str| -> Option<Value> {
        got.iter()
            .filter(|r| r["verified"] == true && r["body"]["event"] == kind)
            .map(|r| r["body"]["payload"].clone())
            .next()
    };
    let got = receiver
        .wait(
            "the reaction and the edit",
            Duration::from_secs(30),
            |got| event(got, "reaction").is_some() && event(got, "message_edited").is_some(),
        )
        .await;
    assert_eq!(
        event(&got, "reaction").unwrap(),
        json!({"message_id": mine, "chat": peer, "from": peer, "emoji": "👍", "direction": "inbound"})
    );
    let e = event(&got, "message_edited").unwrap();
    assert_eq!(
        (&e["message_id"], &e["from"], &e["text"]),
        (&json!(theirs), &json!(peer), &json!("sure, at 6:30"))
    );
    let (_, v) = call(
        &server,
        "GET",
        &format!("/devices/{id}/messages/{theirs}"),
        &t,
        None,
    )
    .await;
    let m = &v["data"]["message"];
    assert_eq!(
        (&m["text"], &m["status"], &m["edited_at"]),
        (&json!("sure, at 6:30"), &json!("read"), &e["edited_at"])
    );

    let (_, v) = call(
        &server,
        "GET",
        &format!("/sandbox/devices/{id}/sent"),
        &t,
        None,
    )
    .await;
    let kinds: Vec<&str> = v["data"]["sent"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["text", "edit", "read", "revoke"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quoted_message_a_poll_vote_and_a_call_are_reported() {
    let rdir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(rdir.path(), 0);
    let server = Server::start(&HOOKED_SANDBOX);
    let app = receiver.app(&server, "votes", "votes").await;
    let t = app["app_token"].as_str().unwrap().to_owned();
    let id = linked_device(&server, &t, "voting").await;
    let peer = "15550001111@s.whatsapp.net";

    let (s, v) = call(
        &server,
        "POST",
        &format!("/devices/{id}/messages"),
        &t,
        Some(json!({"to": "15550001111", "type": "poll", "question": "Lunch?", "options": ["Pizza", "Sushi"]})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let poll = str_at(&v, "/data/message/message_id");
    let inbound = format!("/sandbox/devices/{id}/inbound");
    for body in [
        json!({"from": "15550001111", "text": "pizza, obviously", "reply_to": {"message_id": poll}}),
        json!({"from": "15550001111", "type": "poll_vote", "message_id": poll, "selected_options": ["Pizza"]}),
    ] {
        let (s, v) = call(&server, "POST", &inbound, &t, Some(body)).await;
        assert!(s == 200 || s == 202, "{v}");
    }
    let (s, v) = call(
        &server,
        "POST",
        &format!("/sandbox/devices/{id}/call"),
        &t,
        Some(json!({"from": "15550001111", "is_video": true})),
    )
    .await;
    assert_eq!(s, 202, "{v}");

    let event = |got: &[Value], kind: &str| -> Option<Value> {
        got.iter()
            .filter(|r| r["verified"] == true && r["body"]["event"] == kind)
            .filter(|r| kind != "message" || r["body"]["payload"]["direction"] == "inbound")
            .map(|r| r["body"]["payload"].clone())
            .next()
    };
    let got = receiver
        .wait(
            "the quote, the vote and the call",
            Duration::from_secs(30),
            |got| {
                ["message", "poll_vote", "call"]
                    .iter()
                    .all(|k| event(got, k).is_some())
            },
        )
        .await;
    let quoted = event(&got, "message").unwrap();
    assert_eq!(quoted["reply_to"]["message_id"], json!(poll), "{quoted}");
    let vote = event(&got, "poll_vote").unwrap();
    assert_eq!(
        (
            &vote["poll_message_id"],
            &vote["voter"],
            &vote["selected_options"],
            &vote["tally"]
        ),
        (
            &json!(poll),
            &json!(peer),
            &json!(["Pizza"]),
            &json!({"Pizza": 1, "Sushi": 0})
        ),
        "{vote}"
    );
    let rang = event(&got, "call").unwrap();
    assert_eq!(
        (&rang["from"], &rang["is_video"], &rang["status"]),
        (&json!(peer), &json!(true), &json!("offer")),
        "{rang}"
    );
}
