//! The capacity decisions, a test per row, and the worker refusing sessions it has no
//! room for.

use super::*;
use std::path::Path;
use std::sync::Arc;
use tokio::sync::mpsc;
use wa_core::devices::DeviceStatus as S;
use wa_core::notify::Notifier;
use wa_core::provider::SessionEvent;
use wa_core::queue::{COMMANDS, Command};

use crate::Next;

fn usage(soft_limit: Option<u64>, in_use: Option<u64>) -> Usage {
    Usage { soft_limit, in_use }
}

/// The room of a process with `usage`, sessions of 8 descriptors and a reserve of 256.
fn room_at(soft_limit: Option<u64>, in_use: Option<u64>) -> Room {
    room(usage(soft_limit, in_use), 8, 256)
}

#[test]
fn room_is_what_the_limit_leaves_beside_the_reserve_in_whole_sessions() {
    // (1024 - 40 - 256) / 8
    assert_eq!(room_at(Some(1024), Some(40)), Room::Sessions(91));
    assert_eq!(room_at(Some(65_535), Some(300)), Room::Sessions(8_122));
}

#[test]
fn a_part_of_a_session_is_no_room() {
    assert_eq!(room_at(Some(1024), Some(761)), Room::Sessions(0));
    assert_eq!(room_at(Some(1024), Some(760)), Room::Sessions(1));
}

#[test]
fn a_process_at_its_reserve_has_no_room() {
    assert_eq!(room_at(Some(1024), Some(768)), Room::Sessions(0));
}

#[test]
fn a_process_past_its_limit_has_no_room() {
    assert_eq!(room_at(Some(1024), Some(5_000)), Room::Sessions(0));
    assert_eq!(
        room(usage(Some(1024), Some(10)), 8, u64::MAX),
        Room::Sessions(0)
    );
}

#[test]
fn no_soft_limit_is_unbounded() {
    assert_eq!(room_at(None, Some(40)), Room::Unbounded);
    assert_eq!(room_at(None, None), Room::Unbounded);
}

#[test]
fn sessions_without_descriptors_are_unbounded() {
    assert_eq!(
        room(usage(Some(1024), Some(5_000)), 0, 256),
        Room::Unbounded
    );
}

#[test]
fn uncounted_descriptors_are_unknown() {
    assert_eq!(room_at(Some(1024), None), Room::Unknown);
}

#[test]
fn only_no_room_refuses() {
    assert!(Room::Unbounded.admits_one());
    assert!(Room::Unknown.admits_one());
    assert!(Room::Sessions(1).admits_one());
    assert!(!Room::Sessions(0).admits_one());
}

#[test]
fn the_soft_limit_moves_up_to_the_hard_one() {
    assert_eq!(
        raised_soft_limit(Some(1024), Some(65_535)),
        Some(Some(65_535))
    );
}

#[test]
fn a_soft_limit_at_the_hard_one_stays() {
    assert_eq!(raised_soft_limit(Some(65_535), Some(65_535)), None);
}

#[test]
fn an_unlimited_hard_limit_makes_the_soft_one_unlimited() {
    assert_eq!(raised_soft_limit(Some(1024), None), Some(None));
}

#[test]
fn an_unlimited_soft_limit_stays() {
    assert_eq!(raised_soft_limit(None, None), None);
}

#[test]
fn the_providers_sessions_cost_what_they_hold() {
    assert_eq!(Capacity::for_provider("sandbox").per_session, 0);
    assert_eq!(
        Capacity::for_provider("whatsapp").per_session,
        WHATSAPP_DESCRIPTORS_PER_SESSION
    );
    assert_eq!(
        Capacity::for_provider("whatsapp").reserve,
        RESERVED_DESCRIPTORS
    );
}

#[test]
fn open_descriptors_are_counted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files: Vec<_> = (0..64)
        .map(|i| std::fs::File::create(dir.path().join(i.to_string())).expect("create"))
        .collect();
    let in_use = descriptors_in_use().expect("/proc/self/fd on Linux");
    assert!(in_use >= files.len() as u64, "{in_use}");
}

#[test]
fn the_limit_is_raised_to_the_hard_one() {
    let limit = raise_open_files_limit();
    let now = getrlimit(Resource::Nofile);
    assert_eq!(limit.soft, now.current);
    assert_eq!(limit.hard, now.maximum);
    assert_eq!(now.current, now.maximum, "{limit:?}");
}

/// 1,000 of 1,024 descriptors in use: no room for a session.
fn full() -> Usage {
    usage(Some(1024), Some(1000))
}

fn no_room() -> Capacity {
    Capacity {
        per_session: WHATSAPP_DESCRIPTORS_PER_SESSION,
        reserve: RESERVED_DESCRIPTORS,
        usage: full,
    }
}

/// A worker on a fresh data directory with the sandbox, and the sandbox's events.
async fn worker(
    dir: &Path,
    capacity: Capacity,
) -> (Worker, mpsc::UnboundedReceiver<(Uuid, SessionEvent)>) {
    let aws = wa_aws::AwsEnv::from_lookup(&|_| None);
    let crate::Backends { store, queue, .. } = crate::open_backends(dir, &aws, false, None)
        .await
        .expect("backends");
    let (tx, rx) = mpsc::unbounded_channel();
    let (inbound, _) = mpsc::unbounded_channel();
    let sandbox =
        wa_provider::sandbox::Sandbox::new(dir, tx, inbound, Default::default()).expect("sandbox");
    let mut worker = Worker::new(
        store,
        queue,
        Arc::new(sandbox),
        Notifier::new(),
        dir.to_path_buf(),
    );
    worker.capacity = capacity;
    (worker, rx)
}

async fn device_with_status(worker: &Worker, status: S) -> Uuid {
    let mut d = wa_testkit::fixtures::device(Uuid::now_v7(), "capacity");
    d.status = status;
    worker.store.insert_device(&d).await.expect("insert device");
    d.device_id
}

async fn status(worker: &Worker, id: Uuid) -> S {
    worker
        .store
        .get_device(id)
        .await
        .expect("get")
        .expect("device")
        .status
}

#[tokio::test]
async fn a_link_without_room_opens_nothing_and_comes_back_later() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut worker, mut events) = worker(dir.path(), no_room()).await;
    let id = device_with_status(&worker, S::Initializing).await;
    let link = Command::Link {
        device_id: id,
        pair_phone: None,
    };
    assert_eq!(
        worker.handle(&link, &delivered(1)).await,
        Ok(Next::RetryIn(NO_ROOM_RETRY))
    );
    assert!(
        events.try_recv().is_err(),
        "the sandbox was not asked to link"
    );
    assert_eq!(status(&worker, id).await, S::Initializing);

    // With room, the same command links.
    worker.capacity = Capacity::for_provider("sandbox");
    assert_eq!(worker.handle(&link, &delivered(2)).await, Ok(Next::Done));
    assert!(matches!(
        events.try_recv(),
        Ok((d, SessionEvent::Qr { .. })) if d == id
    ));
}

#[tokio::test]
async fn a_resume_without_room_opens_nothing_and_comes_back_later() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (worker, mut events) = worker(dir.path(), no_room()).await;
    let id = device_with_status(&worker, S::Connecting).await;
    assert_eq!(
        worker
            .handle(&Command::Resume { device_id: id }, &delivered(1))
            .await,
        Ok(Next::RetryIn(NO_ROOM_RETRY))
    );
    assert!(
        events.try_recv().is_err(),
        "the sandbox was not asked to resume"
    );
    assert_eq!(status(&worker, id).await, S::Connecting);
}

#[tokio::test]
async fn a_restore_without_room_leaves_live_devices_to_other_workers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (worker, mut events) = worker(dir.path(), no_room()).await;
    let id = device_with_status(&worker, S::Connected).await;
    let worker = std::sync::Arc::new(worker);
    worker.restore().await.expect("restore");
    // Neither claimed nor resumed: its lease stays free for a worker with room.
    assert_eq!(status(&worker, id).await, S::Connected);
    assert!(
        events.try_recv().is_err(),
        "the sandbox was not asked to resume"
    );
    assert!(!worker.leases.holds(id));
    assert_eq!(worker.store.get_lease(id).await.expect("lease"), None);
    let queued = worker
        .queue
        .receive(COMMANDS, 10, Duration::from_secs(30))
        .await
        .expect("receive");
    assert!(queued.is_empty(), "nothing queued");
}

/// A command as the queue hands it over the `count`th time.
fn delivered(count: u32) -> wa_core::queue::Received {
    wa_core::queue::Received {
        message_id: Uuid::new_v4().to_string(),
        receipt: String::new(),
        body: String::new(),
        group: None,
        receive_count: count,
    }
}
