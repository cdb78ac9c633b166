//! A fleet: three `wa-worker` processes on one data directory (the sandbox's state, as on
//! EFS) and the AWS data path (moto), behind a `wa-server` with `WA_WORKER=0` and a data
//! directory of its own. During a burst of sends one worker is killed (kill -9) and another
//! stopped (SIGTERM), then a fourth starts. Every device is connected again, no device ever
//! had two sessions open at once, epochs only grow, every accepted send went out exactly
//! once, and the devices end up shared out evenly. Commands of a device received by a worker
//! that does not hold it are forwarded to the holder's inbox; a stopped worker deletes its
//! inbox, and a killed one's is deleted by the others once it is long gone.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{Value, json};

use crate::aws::{aws_init, moto_env, moto_prefix, queue_url, sqs};
use crate::devices::{
    call, create_app, create_device, sandbox_records, scan, send_text, tenant_jwt, wait_for,
    wait_sent,
};
use crate::support::{Server, poll_until};
use crate::worker::WorkerProcess;

const SECRET: (&str, &str) = ("WA_JWT_SECRET", "e2e-secret-e2e-secret-e2e-secret-e2e");
const TTL: &str = "6";
const DEVICES: usize = 6;

/// The sandbox routes are answered under `WA_WORKER=0` by asking a worker through the
/// commands queue; on a loaded machine a worker can take longer than the wait to receive the
/// question (504 upstream_timeout). These ask again, as a client would.
const ASKS: usize = 4;

/// The device's sandbox `sent` or `sessions` list, asked again after a 504.
async fn records(api: &Server, t: &str, id: &str, what: &str) -> Vec<Value> {
    let path = format!("/sandbox/devices/{id}/{what}");
    for _ in 1..ASKS {
        let (s, v) = call(api, "GET", &path, t, None).await;
        if s != 504 {
            assert_eq!(s, 200, "{v}");
            return v["data"][what].as_array().unwrap().clone();
        }
    }
    sandbox_records(api, t, id, what).await
}

/// Scans the device's QR as `wa_number`, asked again after a 504 unless the late answer
/// connected the device meanwhile.
async fn scanned(api: &Server, t: &str, id: &str, wa_number: &str) -> (u16, Value) {
    let mut answer = scan(api, t, id, wa_number).await;
    for _ in 1..ASKS {
        if answer.0 != 504 {
            break;
        }
        let (_, d) = call(api, "GET", &format!("/devices/{id}"), t, None).await;
        if d["data"]["device"]["status"] == "connected" {
            return (200, d);
        }
        answer = scan(api, t, id, wa_number).await;
    }
    answer
}

/// Whether every device is on `w3` or `w4` (its holder in `holders`), `most` at the most on
/// each.
fn balanced(holders: &[Option<String>], most: usize) -> bool {
    let count = |w: &str| holders.iter().filter(|h| h.as_deref() == Some(w)).count();
    let placed = holders
        .iter()
        .all(|h| matches!(h.as_deref(), Some("w3" | "w4")));
    placed && count("w3") <= most && count("w4") <= most
}

/// The worker of the device's open session (its last one, when still open).
fn holder(sessions: &[Value]) -> Option<String> {
    let last = sessions.last()?;
    last["closed_at"]
        .is_null()
        .then(|| last["worker_id"].as_str().unwrap().to_owned())
}

fn at(v: &Value) -> wa_core::time::OffsetDateTime {
    wa_core::time::parse(v.as_str().unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_loses_nothing_when_workers_die_or_stop() {
    let endpoint = wa_testkit::moto::endpoint();
    let prefix = moto_prefix("fleet");
    let table = format!("{prefix}-state");
    let (commands, events) = (
        queue_url(&prefix, "commands.fifo"),
        queue_url(&prefix, "events.fifo"),
    );
    let mut aws_env = moto_env(endpoint, &table);
    aws_env.extend([
        ("WA_COMMANDS_QUEUE_URL", commands.as_str()),
        ("WA_EVENTS_QUEUE_URL", events.as_str()),
    ]);
    aws_init(&aws_env);
    let mut env = aws_env.clone();
    env.extend([SECRET, ("WA_LEASE_TTL_SECS", TTL)]);
    let shared = tempfile::tempdir().unwrap();
    let start = |id: &str| {
        let mut e = env.clone();
        e.push(("WA_WORKER_ID", id));
        e.push(("RUST_LOG", "info,wa_worker::forward=debug"));
        WorkerProcess::start_with(shared.path(), &e)
    };
    let mut w1 = start("w1");
    let mut w2 = start("w2");
    let w3 = start("w3");
    let mut front = env.clone();
    front.extend([
        ("WA_PROVIDER", "sandbox"),
        ("WA_WORKER", "0"),
        ("WA_QUERY_WAIT_MS", "20000"),
    ]);
    let api = Server::start(&front);
    let jwt = tenant_jwt(&api, "fleet");
    let app = create_app(&api, &jwt, json!({"name": "fleet"})).await;
    let t = app["app_token"].as_str().unwrap().to_owned();

    let mut ids = Vec::new();
    for i in 0..DEVICES {
        let (_, id) = create_device(&api, &t, &format!("d{i}")).await;
        wait_for(&api, &t, &id, Duration::from_secs(60), |d| {
            d["status"] == "qr_generated"
        })
        .await;
        let (s, v) = scanned(&api, &t, &id, &format!("155512300{i:02}")).await;
        assert_eq!(s, 200, "{v}\n{}", w1.logs());
        wait_for(&api, &t, &id, Duration::from_secs(60), |d| {
            d["status"] == "connected"
        })
        .await;
        ids.push(id);
    }

    // The devices shared out before the burst: a device given back to even the shares is
    // `connecting` for a moment, and a send is refused then.
    let share = DEVICES.div_ceil(3);
    let shares = Mutex::new(HashMap::new());
    poll_until(
        "the devices are not shared out",
        Duration::from_secs(120),
        Duration::from_millis(500),
        || async {
            let mut counts: HashMap<String, usize> = HashMap::new();
            for id in &ids {
                let (_, d) = call(&api, "GET", &format!("/devices/{id}"), &t, None).await;
                if d["data"]["device"]["status"] != "connected" {
                    return None;
                }
                let holder = holder(&records(&api, &t, id, "sessions").await)?;
                *counts.entry(holder).or_default() += 1;
            }
            if counts.values().all(|n| *n <= share) {
                return Some(());
            }
            *shares.lock().unwrap() = counts;
            None
        },
        || format!("{:?}", shares.lock().unwrap()),
    )
    .await;

    // A burst of accepted sends; w1 dies in it, w2 stops in it, then w4 joins.
    let mut accepted: Vec<(String, String)> = Vec::new();
    let mut killed_at = None;
    let mut on_w1 = Vec::new();
    for round in 0..8 {
        for id in &ids {
            let (s, v) = send_text(&api, &t, id, "15550001111", &format!("r{round}")).await;
            assert!(s == 200 || s == 202, "{s}: {v}");
            let mid = v["data"]["message"]["message_id"].as_str().unwrap();
            accepted.push((id.clone(), mid.to_owned()));
        }
        if round == 2 {
            for id in &ids {
                let sessions = records(&api, &t, id, "sessions").await;
                if holder(&sessions).as_deref() == Some("w1") {
                    on_w1.push(id.clone());
                }
            }
            assert!(!on_w1.is_empty(), "w1 holds a share of the devices");
            w1.kill9();
            killed_at = Some(wa_core::time::now());
        }
        if round == 5 {
            assert!(w2.terminate().success(), "{}", w2.logs());
        }
    }
    let killed_at = killed_at.unwrap();
    let w4 = start("w4");

    for (id, mid) in &accepted {
        wait_sent(&api, &t, id, mid, Duration::from_secs(120)).await;
    }
    let mut per_message: HashMap<String, usize> = HashMap::new();
    for id in &ids {
        for r in records(&api, &t, id, "sent").await {
            *per_message
                .entry(r["message_id"].as_str().unwrap().to_owned())
                .or_default() += 1;
        }
    }
    for (_, mid) in &accepted {
        assert_eq!(per_message.get(mid), Some(&1), "{mid} sent once");
    }

    // Balanced over w3 and w4: at most ceil(devices / workers) + 1 each, every device on one.
    let most = DEVICES.div_ceil(2) + 1;
    let seen = Mutex::new(Vec::new());
    let lists = poll_until(
        "not balanced",
        Duration::from_secs(120),
        Duration::from_millis(500),
        || async {
            let mut lists = Vec::new();
            for id in &ids {
                lists.push(records(&api, &t, id, "sessions").await);
            }
            let holders: Vec<_> = lists.iter().map(|l| holder(l)).collect();
            if balanced(&holders, most) {
                return Some(lists);
            }
            *seen.lock().unwrap() = holders;
            None
        },
        || format!("{:?}\n{}", seen.lock().unwrap(), w4.logs()),
    )
    .await;
    for id in &ids {
        wait_for(&api, &t, id, Duration::from_secs(60), |d| {
            d["status"] == "connected"
        })
        .await;
    }

    // Per device: no two sessions open at once (a session of the killed worker ended with
    // it), epochs only grow, and a new worker's session has a higher epoch.
    let mut takeovers = Vec::new();
    for (id, list) in ids.iter().zip(&lists) {
        let mut open_until = None;
        let mut last: Option<(&str, u64)> = None;
        for r in list {
            let (worker, epoch) = (
                r["worker_id"].as_str().unwrap(),
                r["epoch"].as_u64().unwrap(),
            );
            let opened = at(&r["opened_at"]);
            if let Some(end) = open_until {
                assert!(end <= opened, "{id}: overlapping sessions {list:?}");
            }
            if let Some((w, e)) = last {
                assert!(epoch >= e, "{id}: epochs {list:?}");
                assert!(
                    w == worker || epoch > e,
                    "{id}: a new owner, a new epoch {list:?}"
                );
            }
            if on_w1.contains(id) && worker != "w1" && opened > killed_at {
                takeovers.push(opened - killed_at);
                on_w1.retain(|d| d != id);
            }
            open_until = Some(match &r["closed_at"] {
                Value::Null if worker == "w1" => killed_at,
                Value::Null => wa_core::time::now(),
                c => at(c),
            });
            last = Some((worker, epoch));
        }
    }
    assert!(on_w1.is_empty(), "never taken over: {on_w1:?}");
    eprintln!("taken over after the kill in {takeovers:?} (lease period {TTL} s)");

    // Commands went to their owners' inboxes; what is left of the inboxes is w3's and w4's.
    let forwarded = [&w1, &w2, &w3, &w4]
        .iter()
        .map(|w| w.logs().matches("command forwarded").count())
        .sum::<usize>();
    assert!(forwarded > 0, "no command was forwarded");
    let client = sqs(endpoint);
    let inbox_prefix = format!("{prefix}-commands-inbox-");
    let seen = Mutex::new(Vec::new());
    poll_until(
        "the inboxes of w1 and w2 are still there",
        Duration::from_secs(60),
        Duration::from_millis(500),
        || async {
            let listed = client
                .list_queues()
                .queue_name_prefix(&inbox_prefix)
                .send()
                .await
                .unwrap();
            let urls = listed.queue_urls().to_vec();
            if urls.len() == 2 {
                return Some(());
            }
            *seen.lock().unwrap() = urls;
            None
        },
        || format!("{:?}", seen.lock().unwrap()),
    )
    .await;
}
