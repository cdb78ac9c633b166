//! The SQS adapter's tests (against moto).

use super::*;
use aws_sdk_sqs::config::{Credentials, Region};
use wa_testkit::conformance::{self, QueueProfile};
use wa_testkit::queues::receive_all;

/// SQS counts whole seconds; moto's timers are exact to the millisecond.
fn profile(max_receives: u32) -> QueueProfile {
    QueueProfile {
        unit: Duration::from_secs(1),
        slack: Duration::from_millis(300),
        max_receives,
        // moto accepts superseded receipts even on FIFO queues (SQS refuses them there).
        rejects_stale_receipts: false,
    }
}

fn client() -> Client {
    let config = aws_sdk_sqs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(wa_testkit::moto::REGION))
        .endpoint_url(wa_testkit::moto::endpoint())
        .credentials_provider(Credentials::new("test", "test", None, None, "moto"))
        .build();
    Client::from_conf(config)
}

/// A fresh queue (`.fifo` when `fifo`) with its dead-letter queue, as logical name `q`.
async fn fresh(fifo: bool, max_receives: u32) -> (SqsQueue, CreatedQueue) {
    let client = client();
    let suffix = if fifo { ".fifo" } else { "" };
    let name = format!("t-{}{suffix}", Uuid::new_v4().simple());
    let created = create_queue(&client, &name, max_receives).await.unwrap();
    let q = SqsQueue::new(client, HashMap::from([("q".into(), created.url.clone())]));
    (q, created)
}

#[tokio::test]
async fn conformance_basics_fifo() {
    let (q, _) = fresh(true, 3).await;
    conformance::queue_basics(&q, "q", profile(3)).await;
}

#[tokio::test]
async fn conformance_basics_standard() {
    let (q, _) = fresh(false, 3).await;
    conformance::queue_basics(&q, "q", profile(3)).await;
}

#[tokio::test]
async fn conformance_groups_fifo() {
    let (q, _) = fresh(true, 3).await;
    conformance::queue_groups(&q, "q", profile(3)).await;
}

#[tokio::test]
async fn conformance_delay_standard() {
    let (q, _) = fresh(false, 3).await;
    conformance::queue_delay(&q, "q", profile(3)).await;
}

#[tokio::test]
async fn conformance_dead_letters_fifo() {
    let (q, _) = fresh(true, 3).await;
    conformance::queue_dead_letters(&q, "q", profile(3)).await;
}

#[tokio::test]
async fn create_queues_is_idempotent() {
    let client = client();
    let prefix = format!("t-{}-", Uuid::new_v4().simple());
    let first = create_queues(&client, &prefix, 5).await.unwrap();
    assert_eq!(first.len(), 3);
    assert!(first[COMMANDS].ends_with(&format!("{prefix}commands.fifo")));
    assert!(first[EVENTS].ends_with(&format!("{prefix}events.fifo")));
    assert!(first[SENDS].ends_with(&format!("{prefix}sends")));
    assert_eq!(create_queues(&client, &prefix, 5).await.unwrap(), first);
    // A changed limit is applied to the existing queue.
    assert_eq!(create_queues(&client, &prefix, 7).await.unwrap(), first);
    let attrs = client
        .get_queue_attributes()
        .queue_url(&first[COMMANDS])
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .unwrap();
    let attrs = attrs.attributes().unwrap();
    let (arn, max) = parse_redrive(&attrs[&QueueAttributeName::RedrivePolicy]).unwrap();
    assert_eq!(max, 7);
    assert!(arn.ends_with(&format!("{prefix}commands-dlq.fifo")));
    assert_eq!(attrs[&QueueAttributeName::FifoQueue], "true");
    assert_eq!(
        attrs[&QueueAttributeName::ContentBasedDeduplication],
        "false"
    );
}

/// A long-polling receive returns a message sent while it waits, also the next one of
/// a group whose message in flight was deleted meanwhile; other requests are answered
/// during the wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_polls_return_what_arrives_during_the_wait() {
    let (q, _) = fresh(true, 3).await;
    let q = q.with_receive_wait(Duration::from_secs(20));
    q.send("q", Some("dev"), "1", Duration::ZERO).await.unwrap();
    let first = q.receive("q", 10, Duration::from_secs(60)).await.unwrap();
    assert_eq!(first.len(), 1);
    let waiting = {
        let q = q.clone();
        tokio::spawn(async move { q.receive("q", 10, Duration::from_secs(60)).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "nothing to receive yet: it waits");
    q.send("q", Some("dev"), "2", Duration::ZERO).await.unwrap();
    q.delete("q", &first[0].receipt).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("the long poll returns once the group is free")
        .unwrap()
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body, "2");
}

#[tokio::test]
async fn a_fifo_message_in_flight_blocks_its_group() {
    let (q, created) = fresh(true, 3).await;
    for b in ["1", "2"] {
        q.send("q", Some("dev"), b, Duration::ZERO).await.unwrap();
    }
    let got = q.receive("q", 10, Duration::from_secs(60)).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0].body.as_str(), got[0].group.as_deref()),
        ("1", Some("dev"))
    );
    // SQS itself holds the group back, even from a plain batch receive.
    let raw = q
        .client
        .receive_message()
        .queue_url(&created.url)
        .max_number_of_messages(10)
        .send()
        .await
        .unwrap();
    assert!(raw.messages().is_empty(), "{raw:?}");
    q.delete("q", &got[0].receipt).await.unwrap();
    let next = q.receive("q", 10, Duration::from_secs(60)).await.unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].body, "2");
}

#[tokio::test]
async fn ungrouped_fifo_messages_are_independent() {
    let (q, _) = fresh(true, 3).await;
    for b in ["a", "b", "c"] {
        q.send("q", None, b, Duration::ZERO).await.unwrap();
    }
    // One ReceiveMessage per receive, one message each: never a second call that would
    // mostly come back empty.
    let first = q.receive("q", 10, Duration::from_secs(60)).await.unwrap();
    assert_eq!(first.len(), 1);
    let mut got = receive_all(&q, "q", Duration::from_secs(60)).await;
    got.extend(first);
    let mut bodies: Vec<_> = got.iter().map(|r| r.body.as_str()).collect();
    bodies.sort();
    assert_eq!(bodies, ["a", "b", "c"]);
    assert!(got.iter().all(|r| r.group.is_none()));
}

#[tokio::test]
async fn redrive_moves_a_message_to_the_dead_letter_queue() {
    let (q, created) = fresh(true, 2).await;
    q.send("q", Some("g"), "poison", Duration::ZERO)
        .await
        .unwrap();
    for i in 1..=2 {
        let r = q.receive("q", 10, Duration::ZERO).await.unwrap();
        assert_eq!(r[0].receive_count, i);
    }
    assert!(q.receive("q", 10, Duration::ZERO).await.unwrap().is_empty());
    let raw = q
        .client
        .receive_message()
        .queue_url(&created.dead_letter_url)
        .visibility_timeout(0)
        .send()
        .await
        .unwrap();
    assert_eq!(raw.messages().len(), 1);
    assert_eq!(raw.messages()[0].body(), Some("poison"));
    let dead = q.dead_letters("q", 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].group.as_deref(), Some("g"));
    assert!(
        dead[0].reason.contains("after 2 receives"),
        "{}",
        dead[0].reason
    );
}

#[tokio::test]
async fn dead_letter_moves_a_message_with_its_reason() {
    for fifo in [true, false] {
        let (q, created) = fresh(fifo, 5).await;
        let id = q
            .send("q", Some("dev"), "bad", Duration::ZERO)
            .await
            .unwrap();
        q.send("q", None, "alone", Duration::ZERO).await.unwrap();
        let mut got = receive_all(&q, "q", Duration::from_secs(60)).await;
        got.sort_by(|a, b| a.body.cmp(&b.body));
        assert_eq!(got.len(), 2, "fifo={fifo}");
        for r in &got {
            q.dead_letter("q", r, &format!("{} is malformed", r.body))
                .await
                .unwrap();
        }
        assert_eq!(q.depth("q").await.unwrap().in_flight, 0, "deleted");
        let dead = q.dead_letters("q", 10).await.unwrap();
        let mut dead: Vec<_> = dead
            .iter()
            .map(|d| (d.body.as_str(), d.group.as_deref(), d.reason.as_str()))
            .collect();
        dead.sort();
        assert_eq!(
            dead,
            [
                ("alone", None, "alone is malformed"),
                ("bad", Some("dev"), "bad is malformed")
            ],
            "fifo={fifo}"
        );
        let ids: Vec<_> = q
            .dead_letters("q", 10)
            .await
            .unwrap()
            .into_iter()
            .map(|d| d.message_id)
            .collect();
        assert!(ids.contains(&id), "the original message id is kept");
        // A receipt SQS refuses copies nothing.
        let mut forged = got[0].clone();
        forged.receipt = "forged".into();
        assert_eq!(
            q.dead_letter("q", &forged, "x").await,
            Err(QueueError::InvalidReceipt)
        );
        let raw = q
            .client
            .get_queue_attributes()
            .queue_url(&created.dead_letter_url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await
            .unwrap();
        assert_eq!(
            raw.attributes().unwrap()[&QueueAttributeName::ApproximateNumberOfMessages],
            "2"
        );
    }
}

#[tokio::test]
async fn dead_letters_page_past_one_batch() {
    let (q, created) = fresh(false, 1).await;
    let dlq = SqsQueue::new(
        q.client.clone(),
        HashMap::from([("dlq".into(), created.dead_letter_url.clone())]),
    );
    for i in 0..13 {
        dlq.send("dlq", None, &format!("m{i}"), Duration::ZERO)
            .await
            .unwrap();
    }
    let dead = q.dead_letters("q", 100).await.unwrap();
    assert_eq!(dead.len(), 13);
    assert_eq!(q.dead_letters("q", 5).await.unwrap().len(), 5);
    assert_eq!(
        dlq.depth("dlq").await.unwrap().visible,
        13,
        "nothing consumed"
    );
}

#[tokio::test]
async fn refused_sends_and_unknown_queues() {
    let (q, _) = fresh(true, 3).await;
    let e = q
        .send("q", Some("g"), "x", Duration::from_millis(10))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, QueueError::Backend(m) if m.contains("FIFO")),
        "{e}"
    );
    let (s, _) = fresh(false, 3).await;
    let e = s
        .send("q", None, "x", Duration::from_secs(901))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, QueueError::Backend(m) if m.contains("900")),
        "{e}"
    );
    let e = s.depth(EVENTS).await.unwrap_err();
    assert!(
        matches!(&e, QueueError::Backend(m) if m.contains("`events`") && m.contains("WA_EVENTS_QUEUE_URL")),
        "{e}"
    );
    let e = s.depth("other").await.unwrap_err();
    assert!(
        matches!(&e, QueueError::Backend(m) if m.contains("`other`")),
        "{e}"
    );
}

/// SendMessageBatch in calls of 10: every message arrives once, each group in order,
/// ungrouped ones without a group.
#[tokio::test]
async fn batches_of_more_than_ten_arrive_in_order() {
    for fifo in [true, false] {
        let (q, _) = fresh(fifo, 5).await;
        let messages: Vec<Outgoing> = (0..23)
            .map(|i| Outgoing {
                group: (i % 4 != 3).then(|| format!("g{}", i % 2)),
                body: i.to_string(),
            })
            .collect();
        let ids = q.send_batch("q", &messages).await.unwrap();
        assert_eq!(ids.len(), 23);
        assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 23, "fifo={fifo}");
        let mut got: Vec<Received> = Vec::new();
        while got.len() < 23 {
            let batch = q.receive("q", 10, Duration::from_secs(60)).await.unwrap();
            assert!(!batch.is_empty(), "fifo={fifo}: {} received", got.len());
            for r in &batch {
                q.delete("q", &r.receipt).await.unwrap();
            }
            got.extend(batch);
        }
        let mut bodies: Vec<u32> = got.iter().map(|r| r.body.parse().unwrap()).collect();
        if fifo {
            for g in ["g0", "g1"] {
                let of: Vec<u32> = got
                    .iter()
                    .filter(|r| r.group.as_deref() == Some(g))
                    .map(|r| r.body.parse().unwrap())
                    .collect();
                let mut sorted = of.clone();
                sorted.sort();
                assert_eq!(of, sorted, "{g} in order");
            }
        }
        assert!(
            got.iter()
                .filter(|r| r.body.parse::<u32>().unwrap() % 4 == 3)
                .all(|r| r.group.is_none())
        );
        bodies.sort();
        assert_eq!(bodies, (0..23).collect::<Vec<_>>(), "fifo={fifo}");
    }
}

#[test]
fn batches_respect_the_count_and_size_limits() {
    let m = |n: usize| Outgoing {
        group: None,
        body: "x".repeat(n),
    };
    let lens = |ms: &[Outgoing]| batches(ms).iter().map(|b| b.len()).collect::<Vec<_>>();
    assert_eq!(
        lens(&(0..23).map(|_| m(1)).collect::<Vec<_>>()),
        [10, 10, 3]
    );
    assert_eq!(lens(&[m(200_000), m(100_000), m(1)]), [1, 2]);
    assert_eq!(
        lens(&[m(300_000), m(1)]),
        [1, 1],
        "an oversized one goes alone"
    );
    assert!(batches(&[]).is_empty());
}

#[test]
fn urls_come_from_the_environment_variables() {
    let urls = urls_from(|var| {
        (var == "WA_COMMANDS_QUEUE_URL").then(|| "https://sqs/x/c.fifo".to_owned())
    });
    assert_eq!(
        urls,
        HashMap::from([(COMMANDS.to_owned(), "https://sqs/x/c.fifo".to_owned())])
    );
}

#[test]
fn durations_round_up_to_whole_seconds() {
    assert_eq!(whole_secs(Duration::ZERO), 0);
    assert_eq!(whole_secs(Duration::from_millis(1)), 1);
    assert_eq!(whole_secs(Duration::from_secs(2)), 2);
    assert_eq!(whole_secs(Duration::from_millis(2001)), 3);
}

#[test]
fn redrive_policies_parse_with_numbers_or_strings() {
    let arn = "arn:aws:sqs:us-east-1:000000000000:q-dlq.fifo";
    for doc in [
        format!(r#"{{"deadLetterTargetArn": "{arn}", "maxReceiveCount": 4}}"#),
        format!(r#"{{"maxReceiveCount":"4","deadLetterTargetArn":"{arn}"}}"#),
    ] {
        assert_eq!(parse_redrive(&doc), Some((arn.to_owned(), 4)));
    }
    assert_eq!(parse_redrive("{}"), None);
}

#[test]
fn receipt_refusals() {
    assert!(is_receipt_refusal(Some("ReceiptHandleIsInvalid"), None));
    assert!(is_receipt_refusal(
        Some("AWS.SimpleQueueService.MessageNotInflight"),
        None
    ));
    assert!(is_receipt_refusal(
        Some("InvalidParameterValue"),
        Some(
            "Value x for parameter ReceiptHandle is invalid. Reason: The receipt handle has expired."
        )
    ));
    assert!(!is_receipt_refusal(
        Some("InvalidParameterValue"),
        Some("Value 901 for parameter DelaySeconds is invalid.")
    ));
    assert!(!is_receipt_refusal(Some("QueueDoesNotExist"), None));
}

#[tokio::test]
async fn conformance_inboxes() {
    let (q, _) = fresh(true, 3).await;
    let q = q.with_inbox_prefix(format!(
        "t-{}-inbox-",
        &Uuid::new_v4().simple().to_string()[..8]
    ));
    conformance::queue_inbox(&q, "q").await;
}

#[tokio::test]
async fn a_closed_inbox_refuses_sends() {
    let (q, _) = fresh(true, 3).await;
    let q = q.with_inbox_prefix(format!(
        "t-{}-inbox-",
        &Uuid::new_v4().simple().to_string()[..8]
    ));
    let inbox = q.open_inbox("gone").await.unwrap().unwrap();
    assert!(inbox.ends_with("-inbox-gone"), "{inbox}");
    q.close_inbox(&inbox).await.unwrap();
    assert!(matches!(
        q.send(&inbox, None, "x", Duration::ZERO).await,
        Err(QueueError::Backend(_))
    ));
    q.close_inbox(&inbox).await.unwrap();
}

#[test]
fn inbox_names() {
    let rows = [
        ("wa-inbox-", "abc", "wa-inbox-abc"),
        ("my stack.inbox-", "t", "mystackinbox-t"),
        (
            &"p".repeat(90),
            "0123456789abcdef",
            &format!("{}0123456789abcdef", "p".repeat(64)),
        ),
        ("", &"t".repeat(100), &"t".repeat(80)),
    ];
    for (prefix, tag, name) in rows {
        assert_eq!(inbox_name(prefix, tag), name, "{prefix:?} {tag:?}");
        assert!(inbox_name(prefix, tag).len() <= 80);
    }
}

#[test]
fn the_inbox_prefix_follows_the_commands_queue() {
    let rows = [
        (
            "https://sqs.eu-west-1.amazonaws.com/1/wa-Commands-X1.fifo",
            "wa-Commands-X1-inbox-",
        ),
        (
            "http://127.0.0.1:5000/000000000000/commands",
            "commands-inbox-",
        ),
    ];
    for (url, prefix) in rows {
        assert_eq!(derived_inbox_prefix(url), prefix);
    }
    let q = SqsQueue::new(
        client(),
        HashMap::from([(COMMANDS.to_owned(), rows[0].0.to_owned())]),
    );
    assert_eq!(q.inbox_prefix().unwrap(), rows[0].1);
    assert_eq!(q.with_inbox_prefix("p-").inbox_prefix().unwrap(), "p-");
    assert!(
        SqsQueue::new(client(), HashMap::new())
            .inbox_prefix()
            .is_err()
    );
}
