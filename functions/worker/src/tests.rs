//! The worker against SQLite, the local queue and the sandbox: the restore at start in pages
//! and batches, session events retried until stored, the upkeep (idempotency purge, re-drive
//! of stale queued sends), the visibility of a long send, and a resend the provider cannot
//! vouch for.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{mpsc, watch};
use uuid::Uuid;
use wa_core::devices::{Device, DeviceStatus};
use wa_core::layer::{Layer, Layered};
use wa_core::lease::{Claim, Lease, Member, Owner};
use wa_core::messages::{Message, MessageStatus, MessageUpdate};
use wa_core::notify::Notifier;
use wa_core::provider::{
    Group, OutboundMessage, Profile, Provider, ProviderFailure, SandboxControl, ScanOutcome,
};
use wa_core::queue::{COMMANDS, Command, Depth, Queue, Received, enqueue};
use wa_core::store::*;
use wa_core::time::{self, OffsetDateTime};
use wa_provider::sandbox::Sandbox;
use wa_queue::LocalQueue;
use wa_store::SqliteStore;
use wa_testkit::fixtures::{device as new_device, outbound_text};
use wa_testkit::queues::Watched;

use crate::Worker;

/// Fails the next `fail_device_writes` device writes; counts device reads and writes, and
/// purges.
#[derive(Default)]
struct Faults {
    fail_device_writes: AtomicU32,
    device_writes: AtomicU32,
    device_reads: AtomicU32,
    purges: AtomicU32,
    pending_pages: AtomicU32,
}

/// The SQLite store with [`Faults`] around it.
type Flaky = Layered<Faults>;

fn refused() -> StoreError {
    StoreError::Backend("refused by the test".into())
}

impl Layer for Faults {
    fn before(&self, op: &'static str) -> Result<(), StoreError> {
        match op {
            "update_device" => {
                self.device_writes.fetch_add(1, Ordering::SeqCst);
                let fail = self
                    .fail_device_writes
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok();
                if fail {
                    return Err(refused());
                }
            }
            "get_device" => {
                self.device_reads.fetch_add(1, Ordering::SeqCst);
            }
            "purge_expired_idempotency" => {
                self.purges.fetch_add(1, Ordering::SeqCst);
            }
            "pending_page" => {
                self.pending_pages.fetch_add(1, Ordering::SeqCst);
            }
            _ => {}
        }
        Ok(())
    }
}

/// A provider that cannot tell whether WhatsApp already has a message (the real one after
/// a crash); everything else is the sandbox's.
struct Forgetful(Arc<Sandbox>);

#[async_trait]
impl Provider for Forgetful {
    fn name(&self) -> &'static str {
        "forgetful"
    }
    async fn link(
        &self,
        d: Uuid,
        pair: Option<&str>,
    ) -> Result<Option<(String, OffsetDateTime)>, ProviderFailure> {
        self.0.link(d, pair).await
    }
    async fn resume(&self, d: Uuid) -> Result<(), ProviderFailure> {
        self.0.resume(d).await
    }
    async fn has_credentials(&self, d: Uuid) -> bool {
        self.0.has_credentials(d).await
    }
    async fn disconnect(&self, d: Uuid) {
        self.0.disconnect(d).await
    }
    async fn destroy(&self, d: Uuid) {
        self.0.destroy(d).await
    }
    async fn profile(&self, d: Uuid, jid: &str) -> Result<Profile, ProviderFailure> {
        self.0.profile(d, jid).await
    }
    async fn groups(&self, d: Uuid) -> Result<Vec<Group>, ProviderFailure> {
        self.0.groups(d).await
    }
    async fn subscribe_presence(&self, d: Uuid, jid: &str) -> Result<(), ProviderFailure> {
        self.0.subscribe_presence(d, jid).await
    }
    async fn chat_presence(
        &self,
        d: Uuid,
        jid: &str,
        state: wa_core::provider::ChatState,
    ) -> Result<(), ProviderFailure> {
        self.0.chat_presence(d, jid, state).await
    }
    async fn set_presence(
        &self,
        d: Uuid,
        presence: wa_core::provider::OwnPresence,
    ) -> Result<(), ProviderFailure> {
        self.0.set_presence(d, presence).await
    }
    async fn edit_message(
        &self,
        d: Uuid,
        chat: &str,
        id: &str,
        text: &str,
    ) -> Result<(), ProviderFailure> {
        self.0.edit_message(d, chat, id, text).await
    }
    async fn revoke_message(&self, d: Uuid, chat: &str, id: &str) -> Result<(), ProviderFailure> {
        self.0.revoke_message(d, chat, id).await
    }
    async fn mark_read(
        &self,
        d: Uuid,
        chat: &str,
        messages: &[wa_core::provider::ReadMessage],
    ) -> Result<(), ProviderFailure> {
        self.0.mark_read(d, chat, messages).await
    }
    async fn check_contacts(
        &self,
        d: Uuid,
        phone_numbers: &[String],
    ) -> Result<Vec<wa_core::contacts::ContactCheck>, ProviderFailure> {
        self.0.check_contacts(d, phone_numbers).await
    }
    async fn group(
        &self,
        d: Uuid,
        request: &wa_core::groups::GroupRequest,
    ) -> Result<wa_core::groups::GroupAnswer, ProviderFailure> {
        self.0.group(d, request).await
    }
    async fn send(&self, d: Uuid, m: &OutboundMessage) -> Result<(), ProviderFailure> {
        self.0.send(d, m).await
    }
}

/// A worker on a fresh data directory, not started yet.
struct Harness {
    store: Arc<Flaky>,
    sqlite: Arc<SqliteStore>,
    queue: Arc<Watched<LocalQueue>>,
    sandbox: Arc<Sandbox>,
    events: mpsc::UnboundedReceiver<(Uuid, wa_core::provider::SessionEvent)>,
    inbound: mpsc::UnboundedReceiver<wa_core::provider::InboundDelivery>,
    dir: tempfile::TempDir,
}

fn harness() -> Harness {
    harness_with(false)
}

/// A harness; with `inline_commands` the store writes and settles send commands in its own
/// commits, as the embedded server's does.
fn harness_with(inline_commands: bool) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteStore::in_memory().unwrap();
    let local = LocalQueue::on(sqlite.db(), crate::MAX_RECEIVES).unwrap();
    let sqlite = match inline_commands {
        true => sqlite.with_commands_queue(Arc::new(local.clone())).unwrap(),
        false => sqlite,
    };
    let sqlite = Arc::new(sqlite);
    let queue = Arc::new(Watched::new(local));
    let store = Arc::new(Flaky::new(sqlite.clone(), Arc::default()));
    let (tx, events) = mpsc::unbounded_channel();
    let (in_tx, inbound) = mpsc::unbounded_channel();
    let sandbox = Arc::new(Sandbox::new(dir.path(), tx, in_tx, Default::default()).unwrap());
    Harness {
        store,
        sqlite,
        queue,
        sandbox,
        events,
        inbound,
        dir,
    }
}

impl Harness {
    fn worker(&self, provider: Arc<dyn Provider>) -> Worker {
        Worker::new(
            self.store.clone(),
            self.queue.clone(),
            provider,
            Notifier::new(),
            self.dir.path().to_path_buf(),
        )
    }

    /// Starts `worker`; the returned sender stops it.
    fn start(self, worker: Worker) -> Running {
        let (stop, stopped) = watch::channel(false);
        let worker = Arc::new(worker);
        let task = tokio::spawn(worker.clone().run(self.events, self.inbound, stopped));
        Running {
            store: self.store,
            sqlite: self.sqlite,
            queue: self.queue,
            sandbox: self.sandbox,
            worker,
            stop,
            task,
            _dir: self.dir,
        }
    }
}

struct Running {
    store: Arc<Flaky>,
    sqlite: Arc<SqliteStore>,
    queue: Arc<Watched<LocalQueue>>,
    sandbox: Arc<Sandbox>,
    worker: Arc<Worker>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

/// Polls `check` until it answers `Some`, failing after a deadline only a broken run meets.
async fn eventually<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    mut check: impl FnMut() -> F,
) -> T {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(std::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

impl Running {
    async fn status(&self, device: Uuid) -> DeviceStatus {
        self.sqlite
            .get_device(device)
            .await
            .unwrap()
            .unwrap()
            .status
    }

    /// A new device, linked and scanned in the sandbox.
    async fn connected_device(&self) -> Uuid {
        let d = stored_device(&self.sqlite, DeviceStatus::Initializing).await;
        let id = d.device_id;
        enqueue(
            &*self.queue,
            Command::Link {
                device_id: id,
                pair_phone: None,
            },
        )
        .await
        .unwrap();
        eventually("a QR", || async {
            (self.status(id).await == DeviceStatus::QrGenerated).then_some(())
        })
        .await;
        self.sandbox
            .scan(id, "15551230001", ScanOutcome::Ok)
            .await
            .unwrap();
        eventually("connected", || async {
            (self.status(id).await == DeviceStatus::Connected).then_some(())
        })
        .await;
        id
    }

    async fn message(&self, device: Uuid, id: &str) -> Message {
        self.sqlite.get_message(device, id).await.unwrap().unwrap()
    }

    async fn sent_to_whatsapp(&self, device: Uuid, id: &str) -> usize {
        let log = self.sandbox.sent(device).await.unwrap();
        log.iter().filter(|r| r.message_id == id).count()
    }

    async fn until_sent(&self, device: Uuid, id: &str) -> Message {
        eventually("sent", || async {
            let m = self.message(device, id).await;
            (m.status == MessageStatus::Sent).then_some(m)
        })
        .await
    }

    async fn stop(self) {
        self.stop.send(true).unwrap();
        self.task.await.unwrap();
    }
}

/// A new device of its own App, stored with `status`.
async fn stored_device(store: &SqliteStore, status: DeviceStatus) -> Device {
    let mut d = new_device(Uuid::now_v7(), "d");
    d.status = status;
    store.insert_device(&d).await.unwrap();
    d
}

fn text_to(device: Uuid, to: &str) -> Message {
    let mut m = outbound_text(device, Uuid::now_v7(), "hi", time::now());
    m.to = to.into();
    m
}

/// More pending messages than a page: every one gets its command, each page in one batch,
/// and the restore ends (it used to re-read the first page forever): 251 pending sends
/// (250 of held devices, queued and sending, one of another worker's) read 40 at a time
/// are ⌈251 / 40⌉ = 7 reads of the store and 7 batches on the queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_queues_every_pending_message_of_held_devices_in_paged_batches() {
    let h = harness();
    let devices: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
    let mut ids = std::collections::HashSet::new();
    for i in 0..250 {
        let mut m = text_to(devices[i % 3], "15550001111@s.whatsapp.net");
        if i % 5 == 0 {
            m.status = MessageStatus::Sending;
        }
        h.sqlite.create_message(&m, None, None, &[]).await.unwrap();
        ids.insert(m.message_id);
    }
    let done = text_to(devices[0], "15550001111@s.whatsapp.net");
    h.sqlite
        .create_message(&done, None, None, &[])
        .await
        .unwrap();
    let sent = MessageUpdate {
        status: Some(MessageStatus::Sent),
        ..MessageUpdate::default()
    };
    h.sqlite
        .update_message(devices[0], &done.message_id, &sent, &[], &[])
        .await
        .unwrap();
    let mut worker = h.worker(h.sandbox.clone());
    worker.restore_page = 40;
    // The devices are this worker's: their pending sends are queued again.
    for d in &devices {
        assert!(worker.claim(*d, None).await.unwrap().is_some());
    }
    // Another worker's device: its sends are left to it.
    let elsewhere = text_to(Uuid::now_v7(), "15550001111@s.whatsapp.net");
    h.sqlite
        .create_message(&elsewhere, None, None, &[])
        .await
        .unwrap();
    let requeued = tokio::time::timeout(Duration::from_secs(60), worker.requeue_pending())
        .await
        .expect("the requeue ends")
        .unwrap();
    assert_eq!(
        requeued,
        crate::restore::Requeued {
            messages: 250,
            pages: 7,
            batches: 7
        }
    );
    assert_eq!(
        h.store.layer().pending_pages.load(Ordering::SeqCst),
        7,
        "one store read per page"
    );
    let mut queued = std::collections::HashSet::new();
    loop {
        let got = h
            .queue
            .receive(COMMANDS, 10, Duration::from_secs(60))
            .await
            .unwrap();
        if got.is_empty() {
            break;
        }
        for r in got {
            let env: wa_core::queue::CommandEnvelope = serde_json::from_str(&r.body).unwrap();
            let Command::Send { message_id, .. } = env.command else {
                panic!("not a send: {}", r.body);
            };
            assert!(queued.insert(message_id), "queued once");
            h.queue.delete(COMMANDS, &r.receipt).await.unwrap();
        }
    }
    assert_eq!(queued, ids, "every pending message, and only those");
    assert_eq!(h.queue.calls("send"), 0, "no one-by-one sends");
    assert_eq!(h.queue.calls("send_batch"), 7, "one batch per page");
}

/// A session event whose storage fails is retried until it is stored, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_events_that_fail_to_store_are_retried() {
    let h = harness();
    h.store
        .layer()
        .fail_device_writes
        .store(3, Ordering::SeqCst);
    let d = stored_device(&h.sqlite, DeviceStatus::Initializing).await;
    let worker = h.worker(h.sandbox.clone());
    // The restore queues the device's Link; its QR event fails to store three times.
    let r = h.start(worker);
    eventually("the QR is stored", || async {
        (r.status(d.device_id).await == DeviceStatus::QrGenerated).then_some(())
    })
    .await;
    assert!(r.store.layer().device_writes.load(Ordering::SeqCst) >= 4);
    r.stop().await;
}

/// Retries are bounded: an event that can never be stored is given up (and logged).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_event_that_never_stores_is_given_up() {
    let h = harness();
    h.store
        .layer()
        .fail_device_writes
        .store(u32::MAX, Ordering::SeqCst);
    let d = stored_device(&h.sqlite, DeviceStatus::Connecting).await;
    let mut worker = h.worker(h.sandbox.clone());
    worker.event_retry = Duration::from_millis(1);
    assert!(worker.claim(d.device_id, None).await.unwrap().is_some());
    let ev = wa_core::provider::SessionEvent::Connected {
        wa_number: "15551230001".into(),
        wa_device_jid: "15551230001:1@s.whatsapp.net".into(),
    };
    assert!(!worker.record_event(d.device_id, &ev).await);
    assert_eq!(
        h.store.layer().device_writes.load(Ordering::SeqCst),
        crate::session::EVENT_ATTEMPTS
    );
    h.store
        .layer()
        .fail_device_writes
        .store(0, Ordering::SeqCst);
    assert!(worker.record_event(d.device_id, &ev).await);
}

/// Expired idempotency keys are purged while the worker runs, and again later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_idempotency_keys_are_purged_periodically() {
    let h = harness();
    let m = text_to(Uuid::now_v7(), "15550001111@s.whatsapp.net");
    let record = IdempotencyRecord {
        app_id: m.app_id,
        key: "k".into(),
        request_hash: "h".into(),
        device_id: m.device_id,
        message_id: m.message_id.clone(),
        response: None,
        expires_at: time::now() - Duration::from_secs(1),
    };
    h.sqlite
        .create_message(&m, None, Some(&record), &[])
        .await
        .unwrap();
    let mut worker = h.worker(h.sandbox.clone());
    worker.upkeep.purge_every = Duration::from_millis(50);
    let r = h.start(worker);
    eventually("purged twice", || async {
        (r.store.layer().purges.load(Ordering::SeqCst) >= 2).then_some(())
    })
    .await;
    assert_eq!(
        r.sqlite
            .purge_expired_idempotency(time::now())
            .await
            .unwrap(),
        0,
        "the worker purged the expired key already"
    );
    r.stop().await;
}

/// A send left queued without its command (lost between the commit and the queue) is
/// re-driven; a duplicate command finds it sent and sends nothing more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_queued_sends_are_re_driven_once() {
    let h = harness();
    let mut worker = h.worker(h.sandbox.clone());
    worker.upkeep.redrive_every = Duration::from_millis(100);
    worker.upkeep.redrive_after = Duration::from_secs(60);
    let r = h.start(worker);
    let device = r.connected_device().await;
    let mut m = text_to(device, "15550001111@s.whatsapp.net");
    m.created_at = time::now() - Duration::from_secs(3600);
    m.updated_at = m.created_at;
    r.sqlite.create_message(&m, None, None, &[]).await.unwrap();
    let sent = r.until_sent(device, &m.message_id).await;
    assert_eq!(sent.attempts, 1);
    let send = Command::Send {
        queued: None,
        device_id: device,
        message_id: m.message_id.clone(),
    };
    enqueue(&*r.queue, send).await.unwrap();
    eventually("the duplicate is handled", || async {
        (r.queue.depth(COMMANDS).await.unwrap() == Depth::default()).then_some(())
    })
    .await;
    assert_eq!(r.sent_to_whatsapp(device, &m.message_id).await, 1);
    let mut redriven = Default::default();
    assert_eq!(r.worker.redrive_stale(&mut redriven).await.unwrap(), 0);
    r.stop().await;
}

/// A send command that carries its message as created is sent from that copy; once the
/// message changed (canceled; marked `sending` by an attempt a crash interrupted) the
/// stored message decides, as without the copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_starts_from_the_created_copy_until_the_message_changed() {
    let h = harness();
    let worker = h.worker(h.sandbox.clone());
    let r = h.start(worker);
    let device = r.connected_device().await;
    let send = |m: &Message| Command::Send {
        queued: Some(Box::new(m.clone())),
        device_id: device,
        message_id: m.message_id.clone(),
    };
    let created = text_to(device, "15550001111@s.whatsapp.net");
    r.sqlite
        .create_message(&created, None, None, &[])
        .await
        .unwrap();
    enqueue(&*r.queue, send(&created)).await.unwrap();
    let sent = r.until_sent(device, &created.message_id).await;
    assert_eq!(sent.attempts, 1);

    let canceled = text_to(device, "15550001111@s.whatsapp.net");
    r.sqlite
        .create_message(&canceled, None, None, &[])
        .await
        .unwrap();
    let cancel = MessageUpdate {
        status: Some(MessageStatus::Canceled),
        ..MessageUpdate::default()
    };
    r.sqlite
        .update_message(device, &canceled.message_id, &cancel, &[], &[])
        .await
        .unwrap();
    let interrupted = text_to(device, "15550001111@s.whatsapp.net");
    r.sqlite
        .create_message(&interrupted, None, None, &[])
        .await
        .unwrap();
    let sending = MessageUpdate {
        status: Some(MessageStatus::Sending),
        attempts: Some(1),
        ..MessageUpdate::default()
    };
    r.sqlite
        .update_message(device, &interrupted.message_id, &sending, &[], &[])
        .await
        .unwrap();
    enqueue(&*r.queue, send(&canceled)).await.unwrap();
    enqueue(&*r.queue, send(&interrupted)).await.unwrap();
    let resent = r.until_sent(device, &interrupted.message_id).await;
    assert_eq!(
        resent.attempts, 2,
        "the stored attempt counted, not the copy's"
    );
    let stored = r
        .sqlite
        .get_message(device, &canceled.message_id)
        .await
        .unwrap();
    assert_eq!(stored.unwrap().status, MessageStatus::Canceled);
    assert_eq!(r.sent_to_whatsapp(device, &canceled.message_id).await, 0);
    for m in [&created, &interrupted] {
        assert_eq!(r.sent_to_whatsapp(device, &m.message_id).await, 1);
    }
    r.stop().await;
}

/// Sends after the first start from the device as the worker read it, until an event of
/// its session changes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_read_the_device_once_until_its_session_changes() {
    let h = harness();
    let worker = h.worker(h.sandbox.clone());
    let r = h.start(worker);
    let device = r.connected_device().await;
    let reads = || r.store.layer().device_reads.load(Ordering::SeqCst);
    let send = |m: &Message| Command::Send {
        queued: None,
        device_id: device,
        message_id: m.message_id.clone(),
    };
    let to = "15550001111@s.whatsapp.net";
    let first = text_to(device, to);
    r.sqlite
        .create_message(&first, None, None, &[])
        .await
        .unwrap();
    enqueue(&*r.queue, send(&first)).await.unwrap();
    r.until_sent(device, &first.message_id).await;
    let known = r.worker.leases.known_device(device).expect("kept");
    assert_eq!(known.status, DeviceStatus::Connected);
    let before = reads();
    let second = text_to(device, to);
    r.sqlite
        .create_message(&second, None, None, &[])
        .await
        .unwrap();
    enqueue(&*r.queue, send(&second)).await.unwrap();
    r.until_sent(device, &second.message_id).await;
    assert_eq!(
        reads(),
        before,
        "the second send read nothing of the device"
    );

    r.sandbox
        .drop_session(device, wa_core::provider::DropReason::ConnectionLost)
        .await
        .unwrap();
    eventually("forgotten", || async {
        r.worker.leases.known_device(device).is_none().then_some(())
    })
    .await;
    eventually("connected again", || async {
        (r.status(device).await == DeviceStatus::Connected).then_some(())
    })
    .await;
    let third = text_to(device, to);
    r.sqlite
        .create_message(&third, None, None, &[])
        .await
        .unwrap();
    enqueue(&*r.queue, send(&third)).await.unwrap();
    r.until_sent(device, &third.message_id).await;
    assert!(
        r.worker.leases.known_device(device).is_some(),
        "read and kept again"
    );
    r.stop().await;
}

/// A send slower than the command's visibility timeout is not received (and sent) a second
/// time while it runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_slower_than_the_visibility_runs_once() {
    let h = harness();
    let mut worker = h.worker(h.sandbox.clone());
    worker.visibility = Duration::from_millis(600);
    let r = h.start(worker);
    let device = r.connected_device().await;
    // The sandbox takes 5 s to accept a send to this number.
    let m = text_to(device, "15550000999@s.whatsapp.net");
    r.sqlite.create_message(&m, None, None, &[]).await.unwrap();
    let send = Command::Send {
        queued: None,
        device_id: device,
        message_id: m.message_id.clone(),
    };
    enqueue(&*r.queue, send).await.unwrap();
    let sent = r.until_sent(device, &m.message_id).await;
    assert_eq!(sent.attempts, 1, "sent once");
    assert_eq!(r.sent_to_whatsapp(device, &m.message_id).await, 1);
    r.stop().await;
}

/// A send interrupted by a crash (`sending`) on a provider that cannot tell whether
/// WhatsApp has it: sent again under the same message id, and it ends `sent` once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_send_is_resent_under_its_id_when_the_provider_cannot_tell() {
    let h = harness();
    let provider = Arc::new(Forgetful(h.sandbox.clone()));
    let worker = h.worker(provider);
    let r = h.start(worker);
    let device = r.connected_device().await;
    let mut m = text_to(device, "15550001111@s.whatsapp.net");
    m.status = MessageStatus::Sending;
    m.attempts = 1;
    r.sqlite.create_message(&m, None, None, &[]).await.unwrap();
    let send = Command::Send {
        queued: None,
        device_id: device,
        message_id: m.message_id.clone(),
    };
    // The command came back, and a second one (from a restore) follows it.
    enqueue(&*r.queue, send.clone()).await.unwrap();
    enqueue(&*r.queue, send).await.unwrap();
    let sent = r.until_sent(device, &m.message_id).await;
    assert_eq!(sent.attempts, 2, "one more attempt, under the same id");
    eventually("both commands handled", || async {
        (r.queue.depth(COMMANDS).await.unwrap() == Depth::default()).then_some(())
    })
    .await;
    assert_eq!(r.sent_to_whatsapp(device, &m.message_id).await, 1);
    let sent_events = r
        .sqlite
        .list_deliveries(m.app_id, None, 100, None)
        .await
        .unwrap()
        .0
        .into_iter()
        .filter(|d| d.event.payload["message_id"] == m.message_id.as_str())
        .count();
    assert_eq!(sent_events, 1, "one message event: sent");
    r.stop().await;
}

/// A command as the queue hands it over the first time, for calling `Worker::handle`.
fn delivered_once() -> Received {
    Received {
        message_id: Uuid::new_v4().to_string(),
        receipt: String::new(),
        body: String::new(),
        group: None,
        receive_count: 1,
    }
}

/// A running worker of the sandbox (its provider and control surface) with a connected
/// device.
async fn sandbox_worker_with_a_device() -> (Running, Uuid) {
    let h = harness();
    let sandbox = h.sandbox.clone();
    let worker = h.worker(sandbox.clone()).with_sandbox(Some(sandbox));
    let r = h.start(worker);
    let id = r.connected_device().await;
    (r, id)
}

/// The device record of `id`.
async fn device_of(r: &Running, id: Uuid) -> Device {
    r.sqlite.get_device(id).await.unwrap().unwrap()
}

/// Asked through the commands queue, the worker answers exactly what it answers in
/// process: answers and errors alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asks_through_the_queue_are_answered_as_in_process() {
    use wa_core::session::{LocalSessions, QueuedSessions, SessionRequest as R, Sessions};
    let (r, id) = sandbox_worker_with_a_device().await;
    let sandbox = r.sandbox.clone();
    let d = device_of(&r, id).await;
    let queued = QueuedSessions::new(r.store.clone(), r.queue.clone(), Duration::from_secs(60));
    let local = LocalSessions::new(sandbox.clone(), Some(sandbox.clone()));
    for request in [
        R::Profile {
            jid: "15550001111@s.whatsapp.net".into(),
        },
        R::Groups,
        R::SandboxSent,
        R::SandboxSessions,
    ] {
        let (q, l) = (
            queued.ask(&d, request.clone()).await,
            local.ask(&d, request.clone()).await,
        );
        assert_eq!(q.unwrap(), l.unwrap(), "{request:?}");
    }
    let unknown = R::SandboxReceipt {
        message_id: "3EB0NEVERSENT".into(),
        status: MessageStatus::Read,
    };
    let q = queued.ask(&d, unknown.clone()).await.unwrap_err();
    let l = local.ask(&d, unknown).await.unwrap_err();
    assert_eq!(q.to_json("r"), l.to_json("r"), "the same envelope");
    r.stop().await;
}

/// Nobody consumes the commands: the wait ends with 504 upstream_timeout, and the ask
/// waits in the device's own ask group, not behind its sends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ask_nobody_answers_ends_in_upstream_timeout() {
    use wa_core::session::{QueuedSessions, SessionRequest, Sessions};
    let h = harness();
    let d = new_device(Uuid::now_v7(), "d");
    let queued = QueuedSessions::new(h.store.clone(), h.queue.clone(), Duration::from_millis(60));
    let e = queued.ask(&d, SessionRequest::Groups).await.unwrap_err();
    assert_eq!(e.code(), wa_errors::ErrorCode::UpstreamTimeout);
    assert_eq!(e.code().status().as_u16(), 504);
    assert!(e.message().contains("60 ms"), "{}", e.message());
    let got = h
        .queue
        .receive(COMMANDS, 10, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    let env: wa_core::queue::CommandEnvelope = serde_json::from_str(&got[0].body).unwrap();
    assert!(
        matches!(env.command, Command::Ask { device_id, request: SessionRequest::Groups, .. } if device_id == d.device_id),
        "{:?}",
        env.command
    );
    assert_eq!(env.command.group(), format!("{}:ask", d.device_id));
}

/// An ask whose caller stopped waiting is dropped without running it: no reply, and the
/// sandbox never sees it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ask_past_its_deadline_is_dropped_unanswered() {
    use wa_core::provider::DropReason;
    use wa_core::session::SessionRequest;
    let (r, id) = sandbox_worker_with_a_device().await;
    let ask = |ask_id, deadline| Command::Ask {
        device_id: id,
        ask_id,
        request: SessionRequest::SandboxDrop {
            reason: DropReason::LoggedOut,
        },
        deadline,
    };
    let late = Uuid::new_v4();
    let next = r
        .worker
        .handle(
            &ask(late, time::now() - Duration::from_millis(1)),
            &delivered_once(),
        )
        .await
        .unwrap();
    assert_eq!(next, crate::Next::Done);
    assert_eq!(r.sqlite.get_reply(late).await.unwrap(), None);
    assert_eq!(r.status(id).await, DeviceStatus::Connected, "not run");
    // In time, the same ask runs and its reply is stored.
    let on_time = Uuid::new_v4();
    r.worker
        .handle(
            &ask(on_time, time::now() + Duration::from_secs(60)),
            &delivered_once(),
        )
        .await
        .unwrap();
    assert_eq!(
        r.sqlite.get_reply(on_time).await.unwrap(),
        Some(wa_core::session::Reply::Answer(
            wa_core::session::SessionAnswer::Done
        ))
    );
    r.stop().await;
}

/// With the commands queue in the store's database, a send's outcome deletes its command
/// in the same commit and takes the device's next one, handled next in the same slot: the
/// loop deletes no send command, and the device's messages go out in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_settles_its_command_with_its_outcome() {
    let h = harness_with(true);
    let worker = h.worker(h.sandbox.clone());
    let r = h.start(worker);
    let device = r.connected_device().await;
    eventually("the link command settled", || async {
        (r.queue.depth(COMMANDS).await.unwrap() == Depth::default()).then_some(())
    })
    .await;
    let before = r.queue.calls("delete");
    let mut ids = Vec::new();
    for _ in 0..5 {
        let m = text_to(device, "15550001111@s.whatsapp.net");
        let send = Command::Send {
            queued: None,
            device_id: device,
            message_id: m.message_id.clone(),
        };
        r.sqlite
            .create_message_and_enqueue(&m, None, None, &*r.queue, send)
            .await
            .unwrap();
        ids.push(m.message_id);
    }
    for id in &ids {
        r.until_sent(device, id).await;
    }
    eventually("every command settled", || async {
        (r.queue.depth(COMMANDS).await.unwrap() == Depth::default()).then_some(())
    })
    .await;
    assert_eq!(
        r.queue.calls("delete"),
        before,
        "no send command was left for the loop to delete"
    );
    let sent: Vec<String> = r
        .sandbox
        .sent(device)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.message_id)
        .collect();
    assert_eq!(sent, ids, "in order, once each");
    r.stop().await;
}

/// A claim by another worker's owner of `id`'s lease: free, or taken over at the version
/// it has now (as after watching it unchanged for a full period).
async fn taken_by_another(store: &SqliteStore, id: Uuid) -> Lease {
    let unchanged = store.get_lease(id).await.unwrap().map(|l| l.version);
    store
        .acquire_lease(&Claim {
            device_id: id,
            owner: Owner::new("other"),
            ttl: Duration::from_secs(30),
            now: time::now(),
            unchanged,
        })
        .await
        .unwrap()
}

fn connected_event() -> wa_core::provider::SessionEvent {
    wa_core::provider::SessionEvent::Connected {
        wa_number: "15551230001".into(),
        wa_device_jid: "15551230001:1@s.whatsapp.net".into(),
    }
}

/// A session event of a device this worker does not hold writes nothing and is not
/// retried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_event_of_a_device_not_held_is_dropped_at_once() {
    let h = harness();
    let d = stored_device(&h.sqlite, DeviceStatus::Connecting).await;
    taken_by_another(&h.sqlite, d.device_id).await;
    let worker = h.worker(h.sandbox.clone());
    assert!(!worker.record_event(d.device_id, &connected_event()).await);
    assert_eq!(
        h.store.layer().device_writes.load(Ordering::SeqCst),
        0,
        "no attempt"
    );
    let now = h.sqlite.get_device(d.device_id).await.unwrap().unwrap();
    assert_eq!(now.status, DeviceStatus::Connecting);
}

/// Once another worker took the lease over, the old holder's writes are fenced: it stops
/// writing for the device and closes its session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_holder_is_fenced_and_lets_the_device_go() {
    let h = harness();
    let d = stored_device(&h.sqlite, DeviceStatus::Connecting).await;
    let worker = h.worker(h.sandbox.clone());
    let mine = worker.claim(d.device_id, None).await.unwrap();
    assert!(mine.is_some());
    let theirs = taken_by_another(&h.sqlite, d.device_id).await;
    assert!(theirs.epoch > 1, "a takeover raises the epoch");
    assert!(!worker.record_event(d.device_id, &connected_event()).await);
    assert!(!worker.leases.holds(d.device_id), "let go");
    let now = h.sqlite.get_device(d.device_id).await.unwrap().unwrap();
    assert_eq!(now.status, DeviceStatus::Connecting, "nothing written");
}

/// A command of a device another live worker holds is not handled here: it is left to
/// its owner (forwarded, `crate::forward`) and nothing is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_of_a_device_held_elsewhere_is_left_to_its_owner() {
    let h = harness();
    let d = stored_device(&h.sqlite, DeviceStatus::Connected).await;
    let m = text_to(d.device_id, "15550001111@s.whatsapp.net");
    h.sqlite.create_message(&m, None, None, &[]).await.unwrap();
    let theirs = taken_by_another(&h.sqlite, d.device_id).await;
    let worker = h.worker(h.sandbox.clone());
    let send = Command::Send {
        queued: None,
        device_id: d.device_id,
        message_id: m.message_id.clone(),
    };
    assert_eq!(
        worker.handle(&send, &delivered_once()).await,
        Ok(crate::Next::Elsewhere(theirs.owner.unwrap()))
    );
    let now = h
        .sqlite
        .get_message(d.device_id, &m.message_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(now.status, MessageStatus::Queued);
    assert!(!worker.leases.holds(d.device_id));
}

/// A command of a device nobody holds makes its receiver the owner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_of_an_unowned_device_claims_it() {
    let h = harness();
    let d = stored_device(&h.sqlite, DeviceStatus::Disconnected).await;
    let worker = h.worker(h.sandbox.clone());
    let presence = Command::SubscribePresence {
        device_id: d.device_id,
        jid: "15550001111@s.whatsapp.net".into(),
    };
    assert_eq!(
        worker.handle(&presence, &delivered_once()).await,
        Ok(crate::Next::Done)
    );
    assert!(worker.leases.holds(d.device_id));
    let lease = h.sqlite.get_lease(d.device_id).await.unwrap().unwrap();
    assert_eq!(lease.owner.as_ref(), Some(&worker.leases.owner));
    assert_eq!(lease.epoch, 1);
}

/// A renewal refused because another worker has the lease closes the session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_lost_at_renewal_closes_the_session() {
    let h = harness();
    let worker =
        h.worker(h.sandbox.clone())
            .with_leases(Owner::new("w1"), Duration::from_secs(3), 8);
    let id = Uuid::now_v7();
    assert!(worker.claim(id, None).await.unwrap().is_some());
    let before = h.sqlite.get_lease(id).await.unwrap().unwrap();
    // Renewed while it is held: the version moves, the epoch stays.
    tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            worker.renew_due().await;
            let now = h.sqlite.get_lease(id).await.unwrap().unwrap();
            if now.version > before.version {
                assert_eq!(now.epoch, before.epoch);
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("renewed");
    taken_by_another(&h.sqlite, id).await;
    tokio::time::timeout(Duration::from_secs(60), async {
        while worker.leases.holds(id) {
            worker.renew_due().await;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the lost lease is let go");
    let lease = h.sqlite.get_lease(id).await.unwrap().unwrap();
    assert_eq!(lease.owner.unwrap().worker_id, "other");
}

/// The hand-over at a stop releases every lease (free for anyone at once) and deletes the
/// membership record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hand_over_releases_every_lease() {
    let h = harness();
    let worker = h.worker(h.sandbox.clone());
    worker.join().await.unwrap();
    let ids = [Uuid::now_v7(), Uuid::now_v7()];
    for id in ids {
        assert!(worker.claim(id, None).await.unwrap().is_some());
    }
    worker.hand_over().await;
    for id in ids {
        let lease = h.sqlite.get_lease(id).await.unwrap().unwrap();
        assert_eq!(lease.owner, None, "released");
        assert!(!worker.leases.holds(id));
    }
    assert!(h.sqlite.live_workers(time::now()).await.unwrap().is_empty());
}

/// The only worker of its store (the embedded server, after a kill -9) takes its earlier
/// run's leases at once, with a new epoch, and reconnects the devices: it does not wait a
/// lease period for a run that cannot be alive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exclusive_store_takes_its_earlier_runs_leases_at_once() {
    let h = harness();
    let d = stored_device(&h.sqlite, DeviceStatus::Connecting).await;
    let id = d.device_id;
    // The earlier run linked the device in its sandbox, on the same data directory.
    let earlier = Sandbox::new(
        h.dir.path(),
        mpsc::unbounded_channel().0,
        mpsc::unbounded_channel().0,
        Default::default(),
    )
    .unwrap();
    earlier.link(id, None).await.unwrap();
    earlier
        .scan(id, "15551230001", ScanOutcome::Ok)
        .await
        .unwrap();
    // It died holding the lease and its membership, both good for an hour.
    let ttl = Duration::from_secs(3600);
    let gone = Owner::new("w");
    let held = h
        .sqlite
        .acquire_lease(&Claim {
            device_id: id,
            owner: gone.clone(),
            ttl,
            now: time::now(),
            unchanged: None,
        })
        .await
        .unwrap();
    h.sqlite
        .register_worker(&Member {
            owner: gone,
            inbox: String::new(),
            expires_at: time::now() + ttl,
            sessions: 1,
            capacity: 100,
        })
        .await
        .unwrap();
    let worker = h
        .worker(h.sandbox.clone())
        .with_exclusive_store(true)
        .with_leases(Owner::new("w"), ttl, 8);
    let r = h.start(worker);
    eventually("connected again", || async {
        (r.status(id).await == DeviceStatus::Connected).then_some(())
    })
    .await;
    let lease = r.sqlite.get_lease(id).await.unwrap().unwrap();
    assert_eq!(lease.owner.as_ref(), Some(&r.worker.leases.owner));
    assert_eq!(lease.epoch, held.epoch + 1, "a new epoch");
    r.stop().await;
}

/// The `Qr` events waiting on the sandbox's channel.
fn qr_events(h: &mut Harness) -> usize {
    let mut n = 0;
    while let Ok((_, ev)) = h.events.try_recv() {
        if matches!(ev, wa_core::provider::SessionEvent::Qr { .. }) {
            n += 1;
        }
    }
    n
}

/// A link command handled twice for one request (the one the API queued, and the one the
/// restore queued again for a device still `initializing`) opens one linking session: the
/// second, handled before the first one's QR is stored, does not replace the session that
/// is being scanned. A new request (a new QR) opens a new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_request_handled_twice_opens_one_linking_session() {
    let mut h = harness();
    let d = stored_device(&h.sqlite, DeviceStatus::Initializing).await;
    let worker = h.worker(h.sandbox.clone());
    let link = Command::Link {
        device_id: d.device_id,
        pair_phone: None,
    };
    for _ in 0..2 {
        assert_eq!(
            worker.handle(&link, &delivered_once()).await,
            Ok(crate::Next::Done)
        );
    }
    assert_eq!(qr_events(&mut h), 1, "one linking session");
    assert!(worker.leases.holds(d.device_id));
    let mut again = wa_core::devices::DeviceUpdate::status(DeviceStatus::Initializing);
    again.updated_at = Some(d.updated_at + Duration::from_millis(5));
    h.sqlite
        .update_device(d.device_id, &again, &[DeviceStatus::Initializing], &[])
        .await
        .unwrap();
    worker.handle(&link, &delivered_once()).await.unwrap();
    assert_eq!(qr_events(&mut h), 1, "a new request links again");
}

/// Two workers of one store and queue, `w1` holding `device` with its inbox open and
/// known to `w2`; the command `command` for it, as `w2` received it from the queue.
async fn a_command_received_by_the_other_worker(
    h: &Harness,
    device: Uuid,
) -> (Worker, Worker, String, Received) {
    let ttl = Duration::from_secs(30);
    let owner = h
        .worker(h.sandbox.clone())
        .with_leases(Owner::new("w1"), ttl, 8);
    let other = h
        .worker(h.sandbox.clone())
        .with_leases(Owner::new("w2"), ttl, 8);
    let inbox = owner
        .open_inbox()
        .await
        .expect("the local queue has inboxes");
    owner.join().await.unwrap();
    assert!(owner.claim(device, None).await.unwrap().is_some());
    other
        .leases
        .inboxes
        .know(&h.sqlite.live_workers(time::now()).await.unwrap());
    let presence = Command::SubscribePresence {
        device_id: device,
        jid: "15550001111@s.whatsapp.net".into(),
    };
    enqueue(&*h.queue, presence).await.unwrap();
    let msg = h
        .queue
        .receive(COMMANDS, 10, crate::VISIBILITY)
        .await
        .unwrap()
        .remove(0);
    (owner, other, inbox, msg)
}

/// A command of a device another live worker holds is forwarded to that worker's inbox:
/// it stays hidden at the head of its group meanwhile, and the owner handles it and
/// settles it through its receipt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_of_another_workers_device_is_forwarded_to_its_owner() {
    use crate::forward::Via;
    use wa_core::consume::Settle;
    let h = harness();
    let d = stored_device(&h.sqlite, DeviceStatus::Disconnected).await;
    let (owner, other, inbox, msg) = a_command_received_by_the_other_worker(&h, d.device_id).await;
    assert_eq!(
        other.process(msg, Via::received(COMMANDS)).await,
        Settle::Settled(None),
        "forwarded: the owner settles it"
    );
    assert!(!other.leases.holds(d.device_id), "not claimed");
    assert_eq!(
        h.queue.depth(COMMANDS).await.unwrap().in_flight,
        1,
        "still hidden"
    );
    let pointer = h
        .queue
        .receive(&inbox, 10, crate::VISIBILITY)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(owner.take_forwarded(pointer).await, Settle::Delete);
    let left = h.queue.depth(COMMANDS).await.unwrap();
    assert_eq!(
        (left.visible, left.in_flight),
        (0, 0),
        "settled by the owner"
    );
    owner.close_inbox().await;
    assert!(owner.leases.inboxes.own().is_none());
}

/// A pointer whose command came back meanwhile (its receipt expired, another delivery has
/// it) is dropped: the command is not handled twice. An owner without a known inbox gets
/// the command back through the queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_pointer_is_dropped_and_an_unknown_inbox_hands_back() {
    use crate::forward::{Pointer, Via};
    use wa_core::consume::Settle;
    let h = harness();
    let d = stored_device(&h.sqlite, DeviceStatus::Disconnected).await;
    let (owner, other, inbox, msg) = a_command_received_by_the_other_worker(&h, d.device_id).await;
    let stale = Pointer {
        queue: COMMANDS.into(),
        message_id: msg.message_id.clone(),
        receipt: msg.receipt.clone(),
        body: msg.body.clone(),
        group: msg.group.clone(),
        receive_count: msg.receive_count,
        hidden_at_ms: 0,
        hops: 1,
    };
    // The command comes back and is received again, under a new receipt.
    h.queue
        .retry_after(COMMANDS, &msg.receipt, Duration::ZERO)
        .await
        .unwrap();
    let again = h
        .queue
        .receive(COMMANDS, 10, crate::VISIBILITY)
        .await
        .unwrap()
        .remove(0);
    h.queue
        .send(
            &inbox,
            None,
            &serde_json::to_string(&stale).unwrap(),
            Duration::ZERO,
        )
        .await
        .unwrap();
    let pointer = h
        .queue
        .receive(&inbox, 10, crate::VISIBILITY)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(owner.take_forwarded(pointer).await, Settle::Delete);
    assert_eq!(
        h.queue.depth(COMMANDS).await.unwrap().in_flight,
        1,
        "left to its delivery"
    );
    other.leases.inboxes.know(&[]);
    assert_eq!(
        other.process(again, Via::received(COMMANDS)).await,
        Settle::RetryAfter(crate::commands::ELSEWHERE_RETRY)
    );
}

/// A balance pass deletes the inbox and the record of a worker gone for two lease periods
/// (killed without its stop), and leaves a live worker's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_balance_pass_deletes_the_inboxes_of_workers_long_gone() {
    let h = harness();
    let ttl = Duration::from_secs(30);
    let member = |id: &str, expires_at| Member {
        owner: Owner::new(id),
        inbox: format!("inbox-{id}"),
        expires_at,
        sessions: 0,
        capacity: 10,
    };
    let gone = member("gone", time::now() - ttl * 3);
    let live = member("live", time::now() + ttl);
    for m in [&gone, &live] {
        h.sqlite.register_worker(m).await.unwrap();
        h.queue
            .send(&m.inbox, None, "left", Duration::ZERO)
            .await
            .unwrap();
    }
    let worker = Arc::new(
        h.worker(h.sandbox.clone())
            .with_leases(Owner::new("w"), ttl, 8),
    );
    worker.balance(false).await.unwrap();
    assert_eq!(
        h.queue.depth(&gone.inbox).await.unwrap().visible,
        0,
        "deleted"
    );
    assert_eq!(h.queue.depth(&live.inbox).await.unwrap().visible, 1, "kept");
    let left: Vec<_> = h
        .sqlite
        .live_workers(OffsetDateTime::UNIX_EPOCH)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.owner.worker_id)
        .collect();
    assert!(!left.contains(&"gone".to_owned()), "{left:?}");
    assert!(left.contains(&"live".to_owned()), "{left:?}");
}
