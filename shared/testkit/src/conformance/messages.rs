//! The message store checks: records, media, listings, pending sends, idempotency keys.

use std::sync::Arc;

use uuid::Uuid;
use wa_core::messages::*;
use wa_core::store::{Created, IdempotencyRecord, MessageStore, StoreError};
use wa_core::time;

use crate::fixtures::{inbound_text, outbound_text};

/// Runs every message store check.
pub async fn message_store(s: Arc<dyn MessageStore>) {
    let device = Uuid::now_v7();
    let app = Uuid::now_v7();
    let msg = |n: i64| {
        let t = time::now() + ::time::Duration::milliseconds(n);
        outbound_text(device, app, &format!("m{n}"), t)
    };

    // round trip, media, duplicate id
    let m1 = msg(0);
    assert_eq!(
        s.create_message(&m1, Some(b"bytes"), None, &[])
            .await
            .unwrap(),
        Created::Created
    );
    assert_eq!(
        s.get_message(device, &m1.message_id).await.unwrap(),
        Some(m1.clone())
    );
    assert_eq!(
        s.get_message(Uuid::now_v7(), &m1.message_id).await.unwrap(),
        None
    );
    assert_eq!(
        s.outbound_media(device, &m1.message_id)
            .await
            .unwrap()
            .as_deref(),
        Some(&b"bytes"[..])
    );
    s.delete_outbound_media(device, &m1.message_id)
        .await
        .unwrap();
    assert_eq!(
        s.outbound_media(device, &m1.message_id).await.unwrap(),
        None
    );
    assert_eq!(
        s.create_message(&m1, None, None, &[]).await,
        Err(StoreError::Conflict("message_id"))
    );

    updates_from_the_created_copy(&*s, Uuid::now_v7(), app).await;
    inbound_ids_are_per_chat_and_sender(&*s, Uuid::now_v7(), app).await;
    conversation_fields_are_kept(&*s, Uuid::now_v7(), app).await;

    // conditional updates
    let u = MessageUpdate {
        status: Some(MessageStatus::Sending),
        attempts: Some(1),
        ..MessageUpdate::default()
    };
    assert_eq!(
        s.update_message(device, &m1.message_id, &u, &[MessageStatus::Sent], &[])
            .await,
        Err(StoreError::Conflict("status"))
    );
    let up = s
        .update_message(device, &m1.message_id, &u, &[MessageStatus::Queued], &[])
        .await
        .unwrap();
    assert_eq!((up.status, up.attempts), (MessageStatus::Sending, 1));
    assert_eq!(up.text, m1.text, "untouched fields stay");
    assert_eq!(
        s.update_message(device, "nope", &u, &[], &[]).await,
        Err(StoreError::NotFound)
    );

    // pending: queued and sending, oldest first. A message created a moment ago may be
    // missing on DynamoDB until the next call (its index lags); one sent is never listed.
    let m2 = msg(10);
    s.create_message(&m2, None, None, &[]).await.unwrap();
    let pending: Vec<_> = s
        .pending_messages(Some(device), 10)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.message_id)
        .collect();
    assert_eq!(pending, vec![m1.message_id.clone(), m2.message_id.clone()]);
    s.update_message(
        device,
        &m1.message_id,
        &MessageUpdate {
            status: Some(MessageStatus::Sent),
            ..Default::default()
        },
        &[],
        &[],
    )
    .await
    .unwrap();
    let pending: Vec<_> = s
        .pending_messages(None, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.message_id)
        .collect();
    assert!(pending.contains(&m2.message_id) && !pending.contains(&m1.message_id));

    // listing newest first, in pages (eventually consistent, like every listing: listing
    // right after writing holds on SQLite and moto only; this checks order and paging)
    let mut ids = vec![m1.message_id.clone(), m2.message_id.clone()];
    for i in 0..5 {
        let m = msg(20 + i);
        s.create_message(&m, None, None, &[]).await.unwrap();
        ids.push(m.message_id);
    }
    ids.reverse();
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let (items, next) = s.list_messages(device, 3, cursor.as_ref()).await.unwrap();
        seen.extend(items.into_iter().map(|m| m.message_id));
        match next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen, ids, "newest first, every message once");

    // idempotency: one winner among racers, the record, responses, expiry
    let key = format!("k-{}", Uuid::new_v4());
    let rec = |message_id: &str, expires_in: i64| IdempotencyRecord {
        app_id: app,
        key: key.clone(),
        request_hash: "h1".into(),
        device_id: device,
        message_id: message_id.to_owned(),
        response: None,
        expires_at: time::now() + ::time::Duration::seconds(expires_in),
    };
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let s = s.clone();
            let m = msg(100 + i);
            let r = rec(&m.message_id, 3600);
            tokio::spawn(async move {
                (
                    m.message_id.clone(),
                    s.create_message(&m, None, Some(&r), &[]).await.unwrap(),
                )
            })
        })
        .collect();
    let mut winners = Vec::new();
    for t in tasks {
        let (id, outcome) = t.await.unwrap();
        match outcome {
            Created::Created => winners.push(id),
            Created::Existing(r) => assert_eq!(r.key, key),
        }
    }
    assert_eq!(winners.len(), 1, "one winner per key");
    let stored = s.get_idempotency(app, &key).await.unwrap().unwrap();
    assert_eq!(stored.message_id, winners[0]);
    assert_eq!(stored.response, None);
    s.set_idempotency_response(app, &key, 200, "{\"a\":1}")
        .await
        .unwrap();
    s.set_idempotency_response(app, &key, 500, "later")
        .await
        .unwrap();
    assert_eq!(
        stored_response(&*s, app, &key).await,
        Some((200, "{\"a\":1}".into())),
        "the first answer stays"
    );
    s.clear_idempotency_response(app, &key).await.unwrap();
    assert_eq!(stored_response(&*s, app, &key).await, None);
    assert_eq!(
        s.get_idempotency(Uuid::now_v7(), &key).await.unwrap(),
        None,
        "keys are per App"
    );

    // an expired key is ignored and can be taken again
    let old_key = format!("old-{}", Uuid::new_v4());
    let m = msg(300);
    let mut r = rec(&m.message_id, -10);
    r.key = old_key.clone();
    assert_eq!(
        s.create_message(&m, None, Some(&r), &[]).await.unwrap(),
        Created::Created
    );
    assert_eq!(
        s.get_idempotency(app, &old_key).await.unwrap(),
        None,
        "expired keys are not read"
    );
    let m = msg(301);
    let mut r = rec(&m.message_id, 3600);
    r.key = old_key.clone();
    assert_eq!(
        s.create_message(&m, None, Some(&r), &[]).await.unwrap(),
        Created::Created
    );
    assert_eq!(
        s.get_idempotency(app, &old_key)
            .await
            .unwrap()
            .unwrap()
            .message_id,
        m.message_id
    );
    assert!(
        s.purge_expired_idempotency(time::now() + ::time::Duration::days(2))
            .await
            .unwrap()
            >= 1
    );
    assert_eq!(s.get_idempotency(app, &old_key).await.unwrap(), None);
}

/// A reply's quote and mentions, a reaction's target and a poll are kept whole, also
/// through an update.
async fn conversation_fields_are_kept(s: &dyn MessageStore, device: Uuid, app: Uuid) {
    let quoted = MessageRef {
        message_id: "3EB0QUOTED".into(),
        from: Some("15550001111@s.whatsapp.net".into()),
        from_me: false,
        chat: "120363000000000001@g.us".into(),
        text: Some("lunch?".into()),
    };
    let reply = Message {
        reply_to: Some(quoted.clone()),
        mentions: vec![
            "15550002222@s.whatsapp.net".into(),
            "100000000000001@lid".into(),
        ],
        ..outbound_text(device, app, "yes @15550002222", time::now())
    };
    let reaction = Message {
        kind: MessageType::Reaction,
        text: Some(String::new()),
        content: Some(Content::Reaction {
            target: MessageRef {
                from_me: true,
                text: None,
                ..quoted.clone()
            },
            emoji: String::new(),
        }),
        ..outbound_text(device, app, "", time::now())
    };
    let poll = Message {
        kind: MessageType::Poll,
        text: Some("Where?".into()),
        content: Some(Content::Poll {
            question: "Where?".into(),
            options: vec!["Pizza".into(), "Sushi".into()],
            selectable_count: 2,
            secret: "ab".repeat(32),
        }),
        reply_to: Some(quoted),
        ..outbound_text(device, app, "Where?", time::now())
    };
    let poll_id = poll.message_id.clone();
    for m in [reply, reaction, poll] {
        s.create_message(&m, None, None, &[]).await.unwrap();
        assert_eq!(
            s.get_message(device, &m.message_id).await.unwrap(),
            Some(m.clone())
        );
        // Sent, so that no check of pending sends sees it.
        let u = MessageUpdate {
            status: Some(MessageStatus::Sent),
            attempts: Some(1),
            sent_at: Some(Some(time::now())),
            ..MessageUpdate::default()
        };
        let updated = s
            .update_message(device, &m.message_id, &u, &[MessageStatus::Queued], &[])
            .await
            .unwrap();
        let mut want = m.clone();
        u.apply_to(&mut want);
        assert_eq!(updated, want);
        assert_eq!(
            s.get_message(device, &m.message_id).await.unwrap(),
            Some(want)
        );
    }
    poll_votes_are_kept(s, device, &poll_id).await;
}

/// A poll's votes: each voter's latest (a new vote replaces the voter's last one), kept
/// through later updates that are not votes.
async fn poll_votes_are_kept(s: &dyn MessageStore, device: Uuid, poll_id: &str) {
    let vote = |voter: &str, options: &[&str]| MessageUpdate {
        vote: Some(PollVote {
            voter: voter.into(),
            selected_options: options.iter().map(|o| o.to_string()).collect(),
            voted_at: time::now(),
        }),
        ..MessageUpdate::default()
    };
    let (a, b) = ("15550003333@s.whatsapp.net", "100000000000004@lid");
    let later = MessageUpdate {
        updated_at: Some(time::now()),
        ..MessageUpdate::default()
    };
    let mut want = s.get_message(device, poll_id).await.unwrap().unwrap();
    for u in [
        vote(a, &["Pizza"]),
        vote(b, &["Pizza", "Sushi"]),
        vote(a, &["Sushi"]),
        later,
    ] {
        let updated = s
            .update_message(device, poll_id, &u, &[MessageStatus::Sent], &[])
            .await
            .unwrap();
        u.apply_to(&mut want);
        assert_eq!(updated, want);
    }
    let votes: Vec<(&str, usize)> = want
        .poll_votes
        .iter()
        .map(|v| (v.voter.as_str(), v.selected_options.len()))
        .collect();
    assert_eq!(votes.len(), 2, "one vote per voter: {votes:?}");
    assert!(
        votes.contains(&(a, 1)) && votes.contains(&(b, 2)),
        "{votes:?}"
    );
    assert_eq!(s.get_message(device, poll_id).await.unwrap(), Some(want));
}

/// WhatsApp's ids are unique per chat and sender only: a redelivery is recognised, and a
/// different message under a taken id (another sender, another chat, one of ours) is kept
/// under an id of its own, which its redelivery finds again.
/// The stored answer of the key `key` of the App `app` (the key must be there).
async fn stored_response(s: &dyn MessageStore, app: Uuid, key: &str) -> Option<(u16, String)> {
    s.get_idempotency(app, key)
        .await
        .unwrap()
        .expect("the key is stored")
        .response
}

async fn inbound_ids_are_per_chat_and_sender(s: &dyn MessageStore, device: Uuid, app: Uuid) {
    let alice = "15550001111@s.whatsapp.net";
    let bob = "15550002222@s.whatsapp.net";
    let group = "120363000000000001@g.us";
    let wa_id = format!("3EB0{}", Uuid::new_v4().simple()).to_uppercase();
    let id_for = |chat: &'static str, from: &'static str| {
        let wa_id = wa_id.clone();
        async move {
            s.inbound_message_id(device, chat, from, &wa_id)
                .await
                .unwrap()
        }
    };
    assert_eq!(
        id_for(alice, alice).await,
        Some(wa_id.clone()),
        "a new id is free"
    );
    let first = inbound_text(device, app, alice, alice, &wa_id, "first");
    s.create_message(&first, None, None, &[]).await.unwrap();
    assert_eq!(
        id_for(alice, alice).await,
        None,
        "a redelivery is stored already"
    );

    let mut kept = vec![first];
    for (chat, from) in [(bob, bob), (group, alice)] {
        let id = id_for(chat, from)
            .await
            .expect("a different message with a taken id is kept");
        assert_ne!(id, wa_id);
        let m = inbound_text(device, app, chat, from, &id, chat);
        assert_eq!(
            s.create_message(&m, None, None, &[]).await.unwrap(),
            Created::Created
        );
        assert_eq!(
            id_for(chat, from).await,
            None,
            "its redelivery is stored already"
        );
        kept.push(m);
    }
    for m in &kept {
        assert_eq!(
            s.get_message(device, &m.message_id).await.unwrap().as_ref(),
            Some(m),
            "every message is kept"
        );
    }

    // One of our outbound ids, reused by a sender.
    let ours = outbound_text(device, app, "ours", time::now());
    s.create_message(&ours, None, None, &[]).await.unwrap();
    let reply = s
        .inbound_message_id(device, bob, bob, &ours.message_id)
        .await
        .unwrap()
        .expect("kept");
    assert_ne!(reply, ours.message_id, "our message keeps its id");
}

/// `update_created_message`: applied to a message nobody changed since its create; refused
/// with `Conflict("changed")`, nothing written, once it was changed (canceled, or marked
/// `sending` by an earlier attempt) or when it is gone.
async fn updates_from_the_created_copy(s: &dyn MessageStore, device: Uuid, app: Uuid) {
    let sending = MessageUpdate {
        status: Some(MessageStatus::Sending),
        attempts: Some(1),
        ..MessageUpdate::default()
    };
    let changed = Err(StoreError::Conflict(wa_core::store::CHANGED));
    // As created: applied, and the next update sees it.
    let m = outbound_text(device, app, "created-1", time::now());
    s.create_message(&m, None, None, &[]).await.unwrap();
    let up = s.update_created_message(&m, &sending, &[]).await.unwrap();
    assert_eq!(
        (up.status, up.attempts, &up.text),
        (MessageStatus::Sending, 1, &m.text)
    );
    assert_eq!(
        s.get_message(device, &m.message_id).await.unwrap(),
        Some(up)
    );
    // The same copy again: the message has changed since (its first attempt).
    assert_eq!(s.update_created_message(&m, &sending, &[]).await, changed);
    // Changed by another update (canceled) before the copy is used.
    let m = outbound_text(device, app, "created-2", time::now());
    s.create_message(&m, None, None, &[]).await.unwrap();
    let cancel = MessageUpdate {
        status: Some(MessageStatus::Canceled),
        ..MessageUpdate::default()
    };
    s.update_message(
        device,
        &m.message_id,
        &cancel,
        &[MessageStatus::Queued],
        &[],
    )
    .await
    .unwrap();
    assert_eq!(s.update_created_message(&m, &sending, &[]).await, changed);
    let stored = s.get_message(device, &m.message_id).await.unwrap().unwrap();
    assert_eq!(stored.status, MessageStatus::Canceled, "nothing written");
    // Never created.
    let m = outbound_text(device, app, "created-3", time::now());
    assert_eq!(s.update_created_message(&m, &sending, &[]).await, changed);
    assert_eq!(s.get_message(device, &m.message_id).await.unwrap(), None);
}
