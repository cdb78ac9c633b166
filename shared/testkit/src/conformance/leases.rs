//! The lease store checks: leases (acquire, renew, release, takeover, racing claimants,
//! listings), fenced views (a stale owner's writes refused, the new owner's committed) and
//! worker membership. Time is passed to the store (`now`), so expiry is reached without
//! waiting.

use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;
use wa_core::devices::{Device, DeviceStatus, DeviceUpdate};
use wa_core::lease::{Claim, Fence, Lease, Member, Owner};
use wa_core::messages::{MessageStatus, MessageUpdate};
use wa_core::provider::Presence;
use wa_core::store::{PageRequest, Store, StoreError};
use wa_core::time::{self, OffsetDateTime};
use wa_core::webhooks::{Event, EventType};

use crate::fixtures::{device, inbound_text, outbound_text};

const TTL: Duration = Duration::from_secs(30);

/// A fresh owner: a worker id of its own, in a new run.
fn owner(name: &str) -> Owner {
    Owner::new(format!("{name}-{}", Uuid::new_v4()))
}

fn claim(device_id: Uuid, owner: &Owner, now: OffsetDateTime) -> Claim {
    Claim {
        device_id,
        owner: owner.clone(),
        ttl: TTL,
        now,
        unchanged: None,
    }
}

/// The claim of a claimant that watched `watched` unchanged for a full lease period on its
/// own clock (`lease::approach`): the lease has expired for it.
fn takeover(watched: &Lease, owner: &Owner, now: OffsetDateTime) -> Claim {
    Claim {
        unchanged: Some(watched.version),
        ..claim(watched.device_id, owner, now)
    }
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn lost<T: std::fmt::Debug>(r: Result<T, StoreError>, what: &str) {
    assert_eq!(
        r.map(|_| ()),
        Err(StoreError::Conflict("lease")),
        "{what}: refused as a lost lease"
    );
}

/// Runs every lease check.
pub async fn lease_store(s: Arc<dyn Store>) {
    acquire_renew_and_get(&*s).await;
    a_held_lease_is_refused(&*s).await;
    takeover_after_expiry(&*s).await;
    a_skewed_clock_takes_nothing(&*s).await;
    release_only_by_the_owner(&*s).await;
    racing_claimants_have_one_winner(s.clone()).await;
    racing_takeovers_have_one_winner(s.clone()).await;
    listings(&*s).await;
}

async fn acquire_renew_and_get(s: &dyn Store) {
    let (d, a, t0) = (Uuid::now_v7(), owner("a"), time::now());
    assert_eq!(s.get_lease(d).await.unwrap(), None);
    let first = s.acquire_lease(&claim(d, &a, t0)).await.unwrap();
    assert_eq!(
        (first.device_id, first.owner.as_ref(), first.epoch),
        (d, Some(&a), 1),
        "a new lease has epoch 1"
    );
    assert_eq!((first.expires_at, first.ttl), (t0 + TTL, TTL));
    assert_eq!(s.get_lease(d).await.unwrap(), Some(first.clone()));
    let again = s.acquire_lease(&claim(d, &a, t0 + secs(5))).await.unwrap();
    assert_eq!(again.epoch, 1, "its holder keeps the epoch");
    assert_eq!(again.expires_at, t0 + secs(35));
    assert_ne!(
        again.version, first.version,
        "every write changes the version"
    );
    let renewed = s
        .renew_lease(d, &a, 1, t0 + secs(10), secs(40))
        .await
        .unwrap();
    assert_eq!(
        (renewed.epoch, renewed.expires_at, renewed.ttl),
        (1, t0 + secs(50), secs(40))
    );
    assert_ne!(renewed.version, again.version);
    assert_eq!(s.get_lease(d).await.unwrap(), Some(renewed.clone()));
    lost(
        s.renew_lease(d, &a, 2, t0 + secs(10), TTL).await,
        "another epoch",
    );
    lost(
        s.renew_lease(Uuid::now_v7(), &a, 1, t0, TTL).await,
        "no lease",
    );
    assert_eq!(s.get_lease(d).await.unwrap(), Some(renewed));
}

async fn a_held_lease_is_refused(s: &dyn Store) {
    let (d, a, b, t0) = (Uuid::now_v7(), owner("a"), owner("b"), time::now());
    let held = s.acquire_lease(&claim(d, &a, t0)).await.unwrap();
    lost(
        s.acquire_lease(&claim(d, &b, t0 + secs(29))).await,
        "another owner before the expiry",
    );
    let restarted = Owner::new(a.worker_id.clone());
    lost(
        s.acquire_lease(&claim(d, &restarted, t0 + secs(1))).await,
        "another run of the holder's worker",
    );
    let watched_too_early = Claim {
        unchanged: Some(held.version + 1),
        ..claim(d, &b, t0)
    };
    lost(
        s.acquire_lease(&watched_too_early).await,
        "a version the lease does not have",
    );
    assert_eq!(s.get_lease(d).await.unwrap(), Some(held), "unchanged");
}

async fn takeover_after_expiry(s: &dyn Store) {
    let (d, a, b, t0) = (Uuid::now_v7(), owner("a"), owner("b"), time::now());
    let held = s.acquire_lease(&claim(d, &a, t0)).await.unwrap();
    let taken = s
        .acquire_lease(&takeover(&held, &b, t0 + TTL))
        .await
        .unwrap();
    assert_eq!(
        (taken.owner.as_ref(), taken.epoch),
        (Some(&b), 2),
        "taken once expired, with a higher epoch"
    );
    assert_eq!(taken.expires_at, t0 + TTL + TTL);
    assert_ne!(taken.version, held.version);
    lost(
        s.renew_lease(d, &a, 1, t0 + secs(31), TTL).await,
        "the stale owner's renewal",
    );
    lost(s.release_lease(d, &a, 1).await, "the stale owner's release");
    lost(
        s.acquire_lease(&claim(d, &a, t0 + secs(31))).await,
        "the stale owner's claim of the new owner's live lease",
    );
    lost(
        s.acquire_lease(&takeover(&held, &a, t0 + secs(31))).await,
        "a claim at the version before the takeover",
    );
    assert_eq!(s.get_lease(d).await.unwrap(), Some(taken.clone()));
    let kept = s
        .renew_lease(d, &b, 2, t0 + secs(40), TTL)
        .await
        .expect("the new owner renews");
    assert_eq!(kept.epoch, 2);
    let again = s
        .acquire_lease(&takeover(&kept, &a, t0 + secs(80)))
        .await
        .expect("expired again: taken back");
    assert_eq!((again.owner.as_ref(), again.epoch), (Some(&a), 3));
}

async fn a_skewed_clock_takes_nothing(s: &dyn Store) {
    let (d, a, b, t0) = (Uuid::now_v7(), owner("a"), owner("b"), time::now());
    let held = s.acquire_lease(&claim(d, &a, t0)).await.unwrap();
    // A claimant whose clock is an hour ahead: the stored expiry has passed by its clock,
    // but it has not watched the lease for a period.
    lost(
        s.acquire_lease(&claim(d, &b, t0 + secs(3600))).await,
        "a claim by a clock past the expiry",
    );
    // Renewed while the claimant was watching: the period starts again.
    let renewed = s.renew_lease(d, &a, 1, t0, TTL).await.unwrap();
    lost(
        s.acquire_lease(&takeover(&held, &b, t0 + secs(3600))).await,
        "renewed since it was watched",
    );
    // A claimant whose clock is behind takes an unchanged lease all the same.
    let taken = s
        .acquire_lease(&takeover(&renewed, &b, t0 - secs(3600)))
        .await
        .unwrap();
    assert_eq!((taken.owner.as_ref(), taken.epoch), (Some(&b), 2));
    lost(
        s.renew_lease(d, &a, 1, t0, TTL).await,
        "the previous holder's renewal",
    );
}

async fn release_only_by_the_owner(s: &dyn Store) {
    let (d, a, b, t0) = (Uuid::now_v7(), owner("a"), owner("b"), time::now());
    let held = s.acquire_lease(&claim(d, &a, t0)).await.unwrap();
    lost(s.release_lease(d, &b, 1).await, "another owner's release");
    lost(s.release_lease(d, &a, 2).await, "another epoch's release");
    lost(
        s.release_lease(Uuid::now_v7(), &a, 1).await,
        "the release of no lease",
    );
    assert_eq!(s.get_lease(d).await.unwrap(), Some(held));
    let released = s.release_lease(d, &a, 1).await.unwrap();
    assert_eq!(
        (released.owner.as_ref(), released.epoch),
        (None, 1),
        "released: no owner, the same epoch"
    );
    assert_eq!(s.get_lease(d).await.unwrap(), Some(released));
    lost(s.release_lease(d, &a, 1).await, "a second release");
    lost(
        s.renew_lease(d, &a, 1, t0, TTL).await,
        "a renewal after the release",
    );
    let next = s
        .acquire_lease(&claim(d, &b, t0 + secs(1)))
        .await
        .expect("a released lease is free before its expiry");
    assert_eq!((next.owner.as_ref(), next.epoch), (Some(&b), 2));
}

/// Of concurrent claims of `d` (each having watched `watched` expire, when given), the
/// winner and the number of claims refused as held.
async fn race(
    s: Arc<dyn Store>,
    watched: Option<&Lease>,
    d: Uuid,
    now: OffsetDateTime,
    n: usize,
) -> (Lease, usize) {
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let o = owner(&format!("racer{i}"));
            let c = match watched {
                Some(w) => takeover(w, &o, now),
                None => claim(d, &o, now),
            };
            let s = s.clone();
            tokio::spawn(async move { s.acquire_lease(&c).await })
        })
        .collect();
    let (mut winners, mut refused) = (Vec::new(), 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok(l) => winners.push(l),
            Err(StoreError::Conflict("lease")) => refused += 1,
            Err(e) => panic!("a racing claim failed otherwise: {e}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one claimant wins: {winners:?}");
    (winners.remove(0), refused)
}

async fn racing_claimants_have_one_winner(s: Arc<dyn Store>) {
    let (d, t0) = (Uuid::now_v7(), time::now());
    let (won, refused) = race(s.clone(), None, d, t0, 16).await;
    assert_eq!((won.epoch, refused), (1, 15));
    assert_eq!(s.get_lease(d).await.unwrap(), Some(won));
}

async fn racing_takeovers_have_one_winner(s: Arc<dyn Store>) {
    let (d, a, t0) = (Uuid::now_v7(), owner("a"), time::now());
    let held = s.acquire_lease(&claim(d, &a, t0)).await.unwrap();
    let (won, refused) = race(s.clone(), Some(&held), d, t0 + secs(31), 16).await;
    assert_eq!((won.epoch, refused), (2, 15));
    assert_eq!(s.get_lease(d).await.unwrap(), Some(won));
}

/// Every page of a lease listing, in order.
async fn all_pages(s: &dyn Store, owner: Option<&Owner>) -> Vec<Lease> {
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let p = s
            .list_leases(owner, PageRequest { limit: 2, after })
            .await
            .unwrap();
        assert!(p.items.len() <= 2);
        seen.extend(p.items);
        match p.next {
            Some(n) => after = Some(n),
            None => return seen,
        }
    }
}

async fn listings(s: &dyn Store) {
    // Listings read an index on DynamoDB (eventually consistent): listing right after
    // writing holds on SQLite and moto only. This checks membership, order and paging.
    let (a, b, t0) = (owner("a"), owner("b"), time::now());
    let mut ids: Vec<Uuid> = (0..5).map(|_| Uuid::new_v4()).collect();
    ids.sort();
    for (i, d) in ids.iter().enumerate() {
        let o = if i % 2 == 0 { &a } else { &b };
        s.acquire_lease(&claim(*d, o, t0)).await.unwrap();
    }
    s.release_lease(ids[2], &a, 1).await.unwrap();
    let of_a: Vec<_> = all_pages(s, Some(&a)).await;
    assert_eq!(
        of_a.iter().map(|l| l.device_id).collect::<Vec<_>>(),
        [ids[0], ids[4]],
        "the leases its record names, in device order"
    );
    assert!(of_a.iter().all(|l| l.owner.as_ref() == Some(&a)));
    let of_b: Vec<_> = all_pages(s, Some(&b)).await;
    assert_eq!(
        of_b.iter().map(|l| l.device_id).collect::<Vec<_>>(),
        [ids[1], ids[3]]
    );
    assert!(
        all_pages(s, Some(&owner("nobody"))).await.is_empty(),
        "an owner without leases"
    );
    let every = all_pages(s, None).await;
    let order: Vec<_> = every.iter().map(|l| l.device_id).collect();
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(order, sorted, "every lease in device order");
    let ours: Vec<_> = every
        .iter()
        .filter(|l| ids.contains(&l.device_id))
        .collect();
    assert_eq!(ours.len(), 5, "released leases included");
    assert_eq!(ours[2].owner, None);
    assert_eq!(Some(ours[1]), s.get_lease(ids[1]).await.unwrap().as_ref());
}

/// Runs the fencing checks: through a fenced view, each kind of write a session makes
/// commits while its lease holds and is refused with `Fenced` (writing nothing) once another
/// owner took the lease over, while the new owner's view commits; reads are not fenced.
pub async fn fenced_writes(s: Arc<dyn Store>) {
    let (a, b, t0) = (owner("a"), owner("b"), time::now());
    let app = Uuid::now_v7();
    let d = Device {
        status: DeviceStatus::Connected,
        ..device(app, "fenced")
    };
    let d_id = d.device_id;
    s.insert_device(&d).await.unwrap();
    let pending = |text: &str| outbound_text(d_id, app, text, time::now());
    let (m1, m2) = (pending("one"), pending("two"));
    for m in [&m1, &m2] {
        s.create_message(m, Some(b"media".as_slice()), None, &[])
            .await
            .unwrap();
    }
    let event = || Event::new(EventType::Presence, app, d_id, serde_json::json!({}));
    let presence = |jid: &str| Presence {
        jid: jid.to_owned(),
        presence: "available".into(),
        chat_state: None,
        last_seen: None,
        updated_at: time::now(),
    };
    let inbound =
        |id: &str| inbound_text(d_id, app, "c@s.whatsapp.net", "c@s.whatsapp.net", id, "hi");
    let number = |n: &str| DeviceUpdate {
        wa_number: Some(Some(n.to_owned())),
        ..DeviceUpdate::default()
    };
    let sent = MessageUpdate {
        status: Some(MessageStatus::Sent),
        ..MessageUpdate::default()
    };

    let lease_a = s.acquire_lease(&claim(d_id, &a, t0)).await.unwrap();
    let fa = s.fenced(Fence::of(&lease_a).unwrap());
    // While the lease holds, every write commits.
    fa.update_device(d_id, &number("1"), &[], &[event()])
        .await
        .expect("device update");
    fa.put_presence(d_id, &presence("p1@s.whatsapp.net"), &[])
        .await
        .expect("presence");
    fa.create_message(&inbound("in-1"), None, None, &[event()])
        .await
        .expect("inbound message");
    fa.update_message(d_id, &m1.message_id, &sent, &[], &[])
        .await
        .expect("message outcome");
    fa.delete_outbound_media(d_id, &m1.message_id)
        .await
        .expect("media deletion");
    fa.append_events(&[event()]).await.expect("events");

    // Another worker takes the expired lease over.
    let lease_b = s
        .acquire_lease(&takeover(&lease_a, &b, t0 + TTL))
        .await
        .unwrap();
    let fb = s.fenced(Fence::of(&lease_b).unwrap());
    let fenced = |r: Result<(), StoreError>, what: &str| {
        assert_eq!(r, Err(StoreError::Fenced), "{what} of the stale owner");
    };
    let before = s.get_device(d_id).await.unwrap().unwrap();
    let e = event();
    fenced(
        fa.update_device(
            d_id,
            &DeviceUpdate::status(DeviceStatus::LoggedOut),
            &[],
            std::slice::from_ref(&e),
        )
        .await
        .map(|_| ()),
        "a device status update",
    );
    assert_eq!(s.get_device(d_id).await.unwrap(), Some(before.clone()));
    assert_eq!(s.get_delivery(&e.request_id).await.unwrap(), None);
    fenced(
        fa.put_presence(d_id, &presence("p2@s.whatsapp.net"), &[])
            .await,
        "a presence",
    );
    assert_eq!(
        s.get_presence(d_id, "p2@s.whatsapp.net").await.unwrap(),
        None
    );
    fenced(
        fa.create_message(&inbound("in-2"), None, None, &[])
            .await
            .map(|_| ()),
        "an inbound message",
    );
    assert_eq!(s.get_message(d_id, "in-2").await.unwrap(), None);
    fenced(
        fa.update_message(d_id, &m2.message_id, &sent, &[], &[])
            .await
            .map(|_| ()),
        "a message outcome",
    );
    fenced(
        fa.update_created_message(&m2, &sent, &[]).await.map(|_| ()),
        "an update from the created copy",
    );
    assert_eq!(
        s.get_message(d_id, &m2.message_id)
            .await
            .unwrap()
            .unwrap()
            .status,
        MessageStatus::Queued
    );
    fenced(
        fa.delete_outbound_media(d_id, &m2.message_id).await,
        "a media deletion",
    );
    assert!(
        s.outbound_media(d_id, &m2.message_id)
            .await
            .unwrap()
            .is_some()
    );
    let e = event();
    fenced(fa.append_events(std::slice::from_ref(&e)).await, "an event");
    assert_eq!(s.get_delivery(&e.request_id).await.unwrap(), None);
    // Reads are not fenced.
    assert_eq!(fa.get_device(d_id).await.unwrap(), Some(before));
    assert_eq!(fa.get_lease(d_id).await.unwrap(), Some(lease_b.clone()));

    // The new owner's writes commit.
    fb.update_device(
        d_id,
        &DeviceUpdate::status(DeviceStatus::LoggedOut),
        &[],
        &[event()],
    )
    .await
    .expect("the new owner's device update");
    fb.put_presence(d_id, &presence("p2@s.whatsapp.net"), &[])
        .await
        .expect("the new owner's presence");
    fb.create_message(&inbound("in-2"), None, None, &[])
        .await
        .expect("the new owner's inbound message");
    fb.update_message(d_id, &m2.message_id, &sent, &[], &[])
        .await
        .expect("the new owner's message outcome");
    fb.delete_outbound_media(d_id, &m2.message_id)
        .await
        .expect("the new owner's media deletion");
    fb.append_events(&[event()])
        .await
        .expect("the new owner's events");

    // A released lease fences its last holder too; so does a device never leased.
    s.release_lease(d_id, &b, lease_b.epoch).await.unwrap();
    fenced(
        fb.put_presence(d_id, &presence("p3@s.whatsapp.net"), &[])
            .await,
        "a write after the release",
    );
    let never = s.fenced(Fence {
        device_id: Uuid::now_v7(),
        owner: a.clone(),
        epoch: 1,
    });
    fenced(
        never
            .put_presence(d_id, &presence("p4@s.whatsapp.net"), &[])
            .await,
        "a write without a lease",
    );
    // The lease methods of a fenced view are not fenced.
    let other = Uuid::now_v7();
    let l = fa
        .acquire_lease(&claim(other, &a, t0))
        .await
        .expect("a claim through a fenced view");
    fa.release_lease(other, &a, l.epoch).await.unwrap();
}

fn member(owner: &Owner, expires_at: OffsetDateTime, sessions: u32) -> Member {
    Member {
        owner: owner.clone(),
        inbox: format!("inbox-{}", owner.worker_id),
        expires_at,
        sessions,
        capacity: 100 - sessions,
    }
}

/// Ours among the live workers at `now`.
async fn live(s: &dyn Store, ours: &[&str], now: OffsetDateTime) -> Vec<Member> {
    let all = s.live_workers(now).await.unwrap();
    let ids: Vec<_> = all.iter().map(|m| m.owner.worker_id.clone()).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted, "in worker id order");
    all.into_iter()
        .filter(|m| ours.contains(&m.owner.worker_id.as_str()))
        .collect()
}

/// Runs the membership checks: register, heartbeat and deregister by one run of a worker
/// only, and the live listing by expiry.
pub async fn worker_membership(s: Arc<dyn Store>) {
    let s = &*s;
    let (a, b, t0) = (owner("a"), owner("b"), time::now());
    let ours = [a.worker_id.as_str(), b.worker_id.as_str()];
    assert_eq!(
        s.heartbeat_worker(&member(&a, t0 + TTL, 0)).await,
        Err(StoreError::NotFound),
        "a heartbeat before registering"
    );
    s.register_worker(&member(&a, t0 + TTL, 0)).await.unwrap();
    s.register_worker(&member(&b, t0 + TTL, 0)).await.unwrap();
    let mut both = vec![member(&a, t0 + TTL, 0), member(&b, t0 + TTL, 0)];
    both.sort_by(|x, y| x.owner.worker_id.cmp(&y.owner.worker_id));
    assert_eq!(live(s, &ours, t0).await, both);

    let beat = member(&a, t0 + secs(60), 5);
    s.heartbeat_worker(&beat).await.unwrap();
    assert_eq!(
        live(s, &ours, t0 + secs(45)).await,
        [beat],
        "b's membership expired, a's heartbeat moved its expiry"
    );

    // Another process with a's worker id.
    let twin = Owner::new(a.worker_id.clone());
    assert_eq!(
        s.heartbeat_worker(&member(&twin, t0 + secs(90), 0)).await,
        Err(StoreError::Conflict("worker")),
        "a heartbeat of a run that did not register"
    );
    let taken = member(&twin, t0 + secs(90), 1);
    s.register_worker(&taken).await.unwrap();
    assert_eq!(
        s.heartbeat_worker(&member(&a, t0 + secs(90), 5)).await,
        Err(StoreError::Conflict("worker")),
        "the earlier run's heartbeat after the id was taken over"
    );
    assert_eq!(
        s.deregister_worker(&a).await,
        Err(StoreError::Conflict("worker"))
    );
    assert_eq!(live(s, &ours, t0 + secs(45)).await, [taken]);
    s.deregister_worker(&twin).await.unwrap();
    assert!(live(s, &ours, t0).await.iter().all(|m| m.owner != twin));
    s.deregister_worker(&twin)
        .await
        .expect("deregistering twice is no error");
    s.deregister_worker(&b).await.unwrap();
    assert!(live(s, &ours, t0).await.is_empty());
}
