//! The reply store checks: the workers' replies to session requests, kept until their
//! expiry and readable from any process.

use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;
use wa_core::provider::{Profile, SentRecord};
use wa_core::session::{Reply, SessionAnswer};
use wa_core::store::ReplyStore;
use wa_core::time;
use wa_errors::{ApiError, ErrorCode};

/// Runs every reply store check.
pub async fn reply_store(s: Arc<dyn ReplyStore>) {
    let later = time::now() + Duration::from_secs(300);
    let ask = Uuid::new_v4();
    assert_eq!(s.get_reply(ask).await.unwrap(), None, "no reply yet");

    // An answer comes back as it was stored.
    let profile = Reply::Answer(SessionAnswer::Profile(Profile {
        name: Some("Ana \u{1F600}".into()),
        phone_number: Some("15550001111".into()),
        ..Profile::contact("15550001111@s.whatsapp.net")
    }));
    s.put_reply(ask, &profile, later).await.unwrap();
    assert_eq!(s.get_reply(ask).await.unwrap(), Some(profile.clone()));

    // Another ask's reply is its own.
    let other = Uuid::new_v4();
    assert_eq!(s.get_reply(other).await.unwrap(), None);
    let error = Reply::of(Err(ApiError::new(
        ErrorCode::DeviceNotConnected,
        "no session",
    )
    .with_detail("device_id", "d")
    .with_retry_after(3)));
    s.put_reply(other, &error, later).await.unwrap();
    assert_eq!(s.get_reply(other).await.unwrap(), Some(error));
    assert_eq!(s.get_reply(ask).await.unwrap(), Some(profile));

    // An ask answered again (redelivered): the last reply stands.
    let sent = Reply::Answer(SessionAnswer::Sent(
        (0..200)
            .map(|i| {
                let id = format!("3EB0{i:016}");
                let mut r =
                    SentRecord::plain(&id, "15550001111@s.whatsapp.net", "text", time::now());
                // Every kind of action field travels with its record.
                match i % 3 {
                    1 => {
                        r.kind = "reaction".into();
                        r.target_message_id = Some("3EB0TARGET".into());
                        r.emoji = Some(if i % 2 == 0 { "" } else { "👍" }.into());
                    }
                    2 => {
                        r.kind = "poll".into();
                        r.question = Some("Lunch?".into());
                        r.options = vec!["Pizza".into(), "Sushi".into()];
                        r.selectable_count = Some(1);
                        r.reply_to = Some(wa_core::provider::SentReplyTo {
                            message_id: "3EB0QUOTED".into(),
                            from: Some("15550001111@s.whatsapp.net".into()),
                        });
                        r.mentions = vec!["15550002222@s.whatsapp.net".into()];
                    }
                    _ => {}
                }
                r
            })
            .collect(),
    ));
    s.put_reply(ask, &sent, later).await.unwrap();
    assert_eq!(s.get_reply(ask).await.unwrap(), Some(sent));

    // An expired reply is no reply, even where the backend has not deleted it yet.
    let expired = Uuid::new_v4();
    s.put_reply(
        expired,
        &Reply::Answer(SessionAnswer::Done),
        time::now() - Duration::from_secs(1),
    )
    .await
    .unwrap();
    assert_eq!(s.get_reply(expired).await.unwrap(), None);
    let soon = Uuid::new_v4();
    s.put_reply(
        soon,
        &Reply::Answer(SessionAnswer::Done),
        time::now() + Duration::from_millis(300),
    )
    .await
    .unwrap();
    assert_eq!(
        s.get_reply(soon).await.unwrap(),
        Some(Reply::Answer(SessionAnswer::Done))
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while s.get_reply(soon).await.unwrap().is_some() {
        assert!(
            std::time::Instant::now() < deadline,
            "the reply never expired"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
