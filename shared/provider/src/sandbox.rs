//! The sandbox provider: a simulated WhatsApp behind the same provider port as the real one,
//! driven by the `/sandbox` control routes. Linked sessions ("credentials") and the log of
//! what the simulated WhatsApp received are files under `<data dir>/sandbox/`, so they
//! survive a restart like real session keys do; so is the record of every session opened
//! (`opened`) and of the LID ↔ phone number pairs handed out to each device (`contacts`).

mod actions;
mod contacts;
mod groups;

pub use groups::sandbox_groups;
mod inbound;
mod opened;

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rand::Rng;
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use wa_core::contacts::ContactCheck;
use wa_core::groups::{GroupAnswer, GroupRequest, GroupUpdate};
use wa_core::messages::{MessageStatus, SendRequest};
use wa_core::provider::{
    ChatState, DropReason, EventSender, Group, InboundSender, OutboundMessage, OwnPresence,
    Presence, Profile, Provider, ProviderFailure, ReadMessage, SandboxControl, ScanOutcome,
    SentRecord, SessionEvent, SessionHolder, SessionRecord,
};
use wa_core::time::{self, OffsetDateTime};
use wa_errors::{ApiError, ApiResult, ErrorCode};

/// The group where posting is restricted (fault table).
pub const RESTRICTED_GROUP: &str = "120363000000000403@g.us";
/// The group whose prekey setup times out (fault table).
pub const SLOW_GROUP: &str = "120363000000000504@g.us";

/// Settings of the sandbox.
#[derive(Debug, Clone)]
pub struct SandboxOptions {
    /// How long a QR stays valid (`WA_QR_TTL_SECS`).
    pub qr_ttl: Duration,
    /// How long a dropped connection takes to come back.
    pub reconnect_delay: Duration,
    /// Whether every incoming call is rejected as it rings (`WA_REJECT_CALLS=1`).
    pub reject_calls: bool,
}

impl Default for SandboxOptions {
    fn default() -> Self {
        SandboxOptions {
            qr_ttl: Duration::from_secs(60),
            reconnect_delay: Duration::from_millis(500),
            reject_calls: false,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Credentials {
    wa_number: String,
    wa_device_jid: String,
}

type Sessions = std::sync::Arc<Mutex<HashMap<Uuid, Session>>>;

fn lock(sessions: &Sessions) -> std::sync::MutexGuard<'_, HashMap<Uuid, Session>> {
    sessions.lock().unwrap_or_else(|p| p.into_inner())
}

#[derive(Debug, Clone)]
enum Session {
    Linking {
        generation: u64,
        expires_at: OffsetDateTime,
    },
    Live {
        creds: Credentials,
    },
    Reconnecting {
        generation: u64,
    },
}

/// The simulated WhatsApp.
pub struct Sandbox {
    events: EventSender,
    inbound: InboundSender,
    /// Send attempts per message id (the rate-limited recipient fails the first two).
    attempts: Mutex<HashMap<String, u32>>,
    dir: PathBuf,
    options: SandboxOptions,
    sessions: Sessions,
    generation: AtomicU64,
    /// Serialises appends to the sent logs (not their fsyncs).
    sent_lock: Arc<Mutex<()>>,
    /// The record of the sessions opened and closed.
    opened: Arc<opened::Opened>,
    /// The LID ↔ phone number pairs handed out to each device.
    pairs: contacts::Pairs,
    /// The groups of each device, and the invite codes handed out.
    groups: groups::GroupFiles,
}

fn failure(code: ErrorCode, message: &str) -> ProviderFailure {
    ProviderFailure::new(code, message)
}

/// The account's own JID.
fn own_jid(creds: &Credentials) -> String {
    format!("{}@{}", creds.wa_number, wa_core::jid::USER_SERVER)
}

fn not_live(device_id: Uuid) -> ProviderFailure {
    failure(
        ErrorCode::DeviceNotConnected,
        &format!("device {device_id} has no live sandbox session"),
    )
}

/// Writes `bytes` to `path` atomically (temp file, fsync, rename).
fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Appends `record` to the sent log at `path` and waits until it is on disk. The append
/// holds `lock`, the fsync does not: concurrent sends (of other devices) wait for the disk
/// at the same time and share the file system's journal commits, instead of one after the
/// other. The fsync of the file flushes every append made before it, this one included.
fn append_sent(lock: &Mutex<()>, path: &Path, record: &SentRecord) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(record).map_err(std::io::Error::other)?;
    line.push(b'\n');
    let f = {
        let _guard = lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        f.write_all(&line)?;
        f
    };
    f.sync_data()
}

impl Sandbox {
    /// A sandbox keeping its files under `data_dir/sandbox`.
    pub fn new(
        data_dir: &Path,
        events: EventSender,
        inbound: InboundSender,
        options: SandboxOptions,
    ) -> std::io::Result<Self> {
        let dir = data_dir.join("sandbox");
        std::fs::create_dir_all(dir.join("sessions"))?;
        std::fs::create_dir_all(dir.join("sent"))?;
        Ok(Sandbox {
            events,
            inbound,
            attempts: Mutex::new(HashMap::new()),
            options,
            sessions: Sessions::default(),
            generation: AtomicU64::new(1),
            sent_lock: Arc::new(Mutex::new(())),
            opened: Arc::new(opened::Opened::new(dir.join("opened"))?),
            pairs: contacts::Pairs::new(dir.join("lids"))?,
            groups: groups::GroupFiles::new(&dir)?,
            dir,
        })
    }

    fn creds_path(&self, device_id: Uuid) -> PathBuf {
        self.dir.join("sessions").join(format!("{device_id}.json"))
    }

    fn sent_path(&self, device_id: Uuid) -> PathBuf {
        self.dir.join("sent").join(format!("{device_id}.jsonl"))
    }

    fn load_creds(&self, device_id: Uuid) -> Option<Credentials> {
        let bytes = std::fs::read(self.creds_path(device_id)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Forgets the device's simulated credentials, and the LID pairs its store had learned.
    fn wipe_creds(&self, device_id: Uuid) {
        self.pairs.wipe(device_id);
        self.groups.wipe(device_id);
        match std::fs::remove_file(self.creds_path(device_id)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(%device_id, error = %e, "could not wipe sandbox credentials"),
        }
    }

    /// The groups the live session of `device_id` is in, sorted by JID.
    fn device_groups(&self, device_id: Uuid) -> Result<Vec<Group>, ProviderFailure> {
        let me = own_jid(&self.live_creds(device_id)?);
        let mut list = self.groups.with(device_id, &me, |gs| {
            Ok((gs.iter().map(|g| g.info().group).collect::<Vec<_>>(), false))
        })?;
        list.sort_by(|a, b| a.jid.cmp(&b.jid));
        Ok(list)
    }

    fn emit(&self, device_id: Uuid, ev: SessionEvent) {
        // The receiver only goes away when the process is stopping.
        let _ = self.events.send((device_id, ev));
    }

    /// Makes the device's session live with `creds` and reports it connected.
    fn go_live(&self, device_id: Uuid, creds: Credentials) {
        self.sessions().insert(
            device_id,
            Session::Live {
                creds: creds.clone(),
            },
        );
        self.emit(
            device_id,
            SessionEvent::Connected {
                wa_number: creds.wa_number,
                wa_device_jid: creds.wa_device_jid,
            },
        );
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Session>> {
        lock(&self.sessions)
    }

    fn next_generation(&self) -> u64 {
        self.generation.fetch_add(1, Ordering::SeqCst)
    }

    fn live_creds(&self, device_id: Uuid) -> Result<Credentials, ProviderFailure> {
        match self.sessions().get(&device_id) {
            Some(Session::Live { creds }) => Ok(creds.clone()),
            _ => Err(not_live(device_id)),
        }
    }

    /// Appends `record` to the device's sent log and waits until it is on disk, on a
    /// blocking thread: the fsync must not hold up the runtime's other tasks.
    async fn log_sent(&self, device_id: Uuid, record: SentRecord) -> Result<(), ProviderFailure> {
        let (lock, path) = (self.sent_lock.clone(), self.sent_path(device_id));
        tokio::task::spawn_blocking(move || append_sent(&lock, &path, &record))
            .await
            .map_err(std::io::Error::other)
            .and_then(|written| written)
            .map_err(|e| {
                failure(
                    ErrorCode::ProviderError,
                    &format!("sandbox log failed: {e}"),
                )
            })
    }

    /// Keeps the LID ↔ phone number pairs of `checks` for the device.
    fn keep_pairs(&self, device_id: Uuid, checks: &[ContactCheck]) -> Result<(), ProviderFailure> {
        self.pairs.keep(device_id, checks).map_err(|e| {
            failure(
                ErrorCode::ProviderError,
                &format!("sandbox LID pairs failed: {e}"),
            )
        })
    }

    /// Records that the simulated WhatsApp received a message (used by sends): once this
    /// returns `Ok` the record is on disk.
    pub fn record_sent(&self, device_id: Uuid, record: &SentRecord) -> std::io::Result<()> {
        append_sent(&self.sent_lock, &self.sent_path(device_id), record)
    }

    fn random_code() -> String {
        let mut rng = rand::rng();
        let part = |rng: &mut rand::rngs::ThreadRng, n: usize| -> String {
            (0..n)
                .map(|_| {
                    let c = rng.random_range(0..62u8);
                    (match c {
                        0..=9 => b'0' + c,
                        10..=35 => b'a' + c - 10,
                        _ => b'A' + c - 36,
                    }) as char
                })
                .collect()
        };
        format!(
            "2@{},{},{},{}",
            part(&mut rng, 24),
            part(&mut rng, 44),
            part(&mut rng, 44),
            part(&mut rng, 24)
        )
    }

    fn random_pair_code() -> String {
        const ALPHABET: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTVWXYZ";
        let mut rng = rand::rng();
        (0..8)
            .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
            .collect()
    }
}

#[async_trait]
impl Provider for Sandbox {
    fn name(&self) -> &'static str {
        "sandbox"
    }

    async fn link(
        &self,
        device_id: Uuid,
        pair_phone: Option<&str>,
    ) -> Result<Option<(String, OffsetDateTime)>, ProviderFailure> {
        self.wipe_creds(device_id);
        let generation = self.next_generation();
        let ttl = self.options.qr_ttl;
        let expires_at = time::now() + ttl;
        self.sessions().insert(
            device_id,
            Session::Linking {
                generation,
                expires_at,
            },
        );
        self.opened.open(device_id);
        self.emit(
            device_id,
            SessionEvent::Qr {
                code: Self::random_code(),
                expires_at,
            },
        );
        // The QR expires unless scanned: this linking session ends then.
        let (sessions, events) = (self.sessions.clone(), self.events.clone());
        let opened = self.opened.clone();
        tokio::spawn(async move {
            tokio::time::sleep(ttl).await;
            let mut map = lock(&sessions);
            if matches!(map.get(&device_id), Some(Session::Linking { generation: g, .. }) if *g == generation)
            {
                map.remove(&device_id);
                drop(map);
                opened.close(device_id);
                let _ = events.send((device_id, SessionEvent::QrExhausted));
            }
        });
        Ok(pair_phone.map(|_| {
            (
                Self::random_pair_code(),
                time::now() + Duration::from_secs(180),
            )
        }))
    }

    async fn resume(&self, device_id: Uuid) -> Result<(), ProviderFailure> {
        let creds = self
            .load_creds(device_id)
            .ok_or_else(|| failure(ErrorCode::LoggedOut, "no stored session for this device"))?;
        self.opened.open(device_id);
        self.go_live(device_id, creds);
        Ok(())
    }

    async fn has_credentials(&self, device_id: Uuid) -> bool {
        self.load_creds(device_id).is_some()
    }

    async fn disconnect(&self, device_id: Uuid) {
        self.sessions().remove(&device_id);
        self.opened.close(device_id);
    }

    async fn destroy(&self, device_id: Uuid) {
        self.sessions().remove(&device_id);
        self.opened.close(device_id);
        self.wipe_creds(device_id);
    }

    async fn profile(&self, device_id: Uuid, jid: &str) -> Result<Profile, ProviderFailure> {
        self.live_creds(device_id)?;
        let user = jid.split('@').next().unwrap_or_default().to_owned();
        if wa_core::jid::is_group(jid) {
            let group = self
                .device_groups(device_id)?
                .into_iter()
                .find(|g| g.jid == jid);
            return Ok(Profile {
                jid: jid.to_owned(),
                kind: "group".into(),
                name: Some(
                    group
                        .as_ref()
                        .map(|g| g.name.clone())
                        .unwrap_or_else(|| format!("Sandbox group {user}")),
                ),
                phone_number: None,
                lid: None,
                status: None,
                picture_url: None,
                subject: Some(
                    group
                        .as_ref()
                        .map(|g| g.subject.clone())
                        .unwrap_or_else(|| format!("Sandbox group {user}")),
                ),
                description: group.as_ref().and_then(|g| g.description.clone()),
                participant_count: Some(group.map(|g| g.participant_count).unwrap_or(3)),
            });
        }
        // A phone JID has its sandbox LID (kept as handed out); a LID its kept number.
        let (phone_number, lid) = if jid.ends_with("@lid") {
            let paired = self.pairs.phone_of(device_id, jid);
            (contacts::sender_phone(jid, paired), jid.to_owned())
        } else {
            let c = contacts::check(&user);
            self.keep_pairs(device_id, std::slice::from_ref(&c))?;
            (Some(user.clone()), contacts::lid_of(&user))
        };
        Ok(Profile {
            name: Some(format!("Sandbox contact {user}")),
            phone_number,
            lid: Some(lid),
            status: Some("Hey there! I am using WhatsApp.".into()),
            ..Profile::contact(jid)
        })
    }

    async fn groups(&self, device_id: Uuid) -> Result<Vec<Group>, ProviderFailure> {
        self.device_groups(device_id)
    }

    async fn subscribe_presence(&self, device_id: Uuid, _jid: &str) -> Result<(), ProviderFailure> {
        self.live_creds(device_id).map(|_| ())
    }

    async fn send(
        &self,
        device_id: Uuid,
        message: &OutboundMessage,
    ) -> Result<(), ProviderFailure> {
        self.live_creds(device_id)?;
        let attempt = {
            let mut a = self.attempts.lock().unwrap_or_else(|p| p.into_inner());
            let n = a.entry(message.message_id.clone()).or_insert(0);
            *n += 1;
            *n
        };
        let user = message.to.split('@').next().unwrap_or_default();
        let fault = match (user, message.to.as_str()) {
            ("15550000429", _) if attempt <= 2 => Some((
                ErrorCode::ProviderRateLimit,
                "WhatsApp rate-limited this send",
            )),
            ("15550000502", _) => {
                Some((ErrorCode::ProviderError, "WhatsApp answered with an error"))
            }
            ("15550000503", _) => Some((
                ErrorCode::WhatsappConnectionLost,
                "the connection to WhatsApp dropped during the send",
            )),
            ("15550000530", _) => Some((
                ErrorCode::WhatsappConnectionAborted,
                "the connection to WhatsApp was aborted during the send",
            )),
            ("15550000504", _) => Some((
                ErrorCode::UpstreamTimeout,
                "WhatsApp did not answer in time",
            )),
            (_, RESTRICTED_GROUP) => Some((
                ErrorCode::GroupPostingRestricted,
                "only admins can post in this group",
            )),
            (_, SLOW_GROUP) => Some((
                ErrorCode::GroupPrekeyTimeout,
                "preparing encryption for this large group timed out",
            )),
            _ => None,
        };
        if let Some((code, text)) = fault {
            return Err(failure(code, text));
        }
        if user == "15550000999" {
            tokio::time::sleep(Duration::from_secs(5)).await;
            self.live_creds(device_id)?;
        }
        let record = SentRecord::of(message, time::now());
        self.log_sent(device_id, record).await?;
        self.attempts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&message.message_id);
        Ok(())
    }

    async fn chat_presence(
        &self,
        device_id: Uuid,
        jid: &str,
        state: ChatState,
    ) -> Result<(), ProviderFailure> {
        let record = SentRecord {
            state: Some(state),
            ..SentRecord::action("chat_presence", jid)
        };
        self.act(device_id, record).await
    }

    async fn set_presence(
        &self,
        device_id: Uuid,
        presence: OwnPresence,
    ) -> Result<(), ProviderFailure> {
        let record = SentRecord {
            presence: Some(presence),
            ..SentRecord::action("presence", "")
        };
        self.act(device_id, record).await
    }

    async fn edit_message(
        &self,
        device_id: Uuid,
        chat: &str,
        message_id: &str,
        text: &str,
    ) -> Result<(), ProviderFailure> {
        let record = actions::edit_record(chat, message_id, text);
        self.act(device_id, record).await
    }

    async fn revoke_message(
        &self,
        device_id: Uuid,
        chat: &str,
        message_id: &str,
    ) -> Result<(), ProviderFailure> {
        let record = actions::revoke_record(chat, message_id);
        self.act(device_id, record).await
    }

    async fn mark_read(
        &self,
        device_id: Uuid,
        chat: &str,
        messages: &[ReadMessage],
    ) -> Result<(), ProviderFailure> {
        let record = actions::read_record(chat, messages);
        self.act(device_id, record).await
    }

    /// The sandbox's rule per number (`contacts`); the pairs of the accounts found are
    /// kept for the device. Not a message nor an action: nothing in `/sent`.
    async fn check_contacts(
        &self,
        device_id: Uuid,
        phone_numbers: &[String],
    ) -> Result<Vec<ContactCheck>, ProviderFailure> {
        self.live_creds(device_id)?;
        let checks: Vec<_> = phone_numbers.iter().map(|n| contacts::check(n)).collect();
        self.keep_pairs(device_id, &checks)?;
        Ok(checks)
    }

    async fn group(
        &self,
        device_id: Uuid,
        request: &GroupRequest,
    ) -> Result<GroupAnswer, ProviderFailure> {
        let me = own_jid(&self.live_creds(device_id)?);
        let joined = match request {
            GroupRequest::Join { invite_code } => self.groups.invited(invite_code),
            _ => None,
        };
        let out = self.groups.with(device_id, &me, |gs| {
            let out = groups::carry_out(&me, gs, request, joined)?;
            let changed = out.changed;
            Ok((out, changed))
        })?;
        self.groups
            .keep_invite(out.keep_invite.as_ref(), out.forget_invite.as_deref())?;
        if let Some(r) = out.record {
            self.log_sent(device_id, r).await?;
        }
        for u in out.updates {
            self.emit(device_id, SessionEvent::GroupUpdate(u));
        }
        out.answer.ok_or_else(|| {
            failure(
                ErrorCode::ProviderError,
                "the group request answered nothing",
            )
        })
    }

    async fn was_sent(&self, device_id: Uuid, message_id: &str) -> Option<bool> {
        let sent = SandboxControl::sent(self, device_id).await.ok()?;
        Some(sent.iter().any(|r| r.message_id == message_id))
    }
}

#[async_trait]
impl SandboxControl for Sandbox {
    async fn scan(&self, device_id: Uuid, wa_number: &str, outcome: ScanOutcome) -> ApiResult<()> {
        let digits = wa_core::devices::validate_phone_number("wa_number", wa_number)?;
        {
            let mut map = self.sessions();
            match map.get(&device_id) {
                Some(Session::Linking { expires_at, .. }) if *expires_at > time::now() => {}
                _ => {
                    return Err(ApiError::conflict(
                        "the device has no valid QR to scan; regenerate one first",
                    ));
                }
            }
            map.remove(&device_id);
        }
        let failure = match outcome {
            ScanOutcome::Ok => None,
            ScanOutcome::TooManyDevices => Some(failure(
                ErrorCode::TooManyDevices,
                "WhatsApp refused pairing: too many devices are linked to this account",
            )),
            ScanOutcome::ClientOutdated => Some(failure(
                ErrorCode::ClientOutdated,
                "WhatsApp requires a newer client version",
            )),
        };
        if let Some(error) = failure {
            self.opened.close(device_id);
            self.emit(device_id, SessionEvent::Stopped { error });
            return Ok(());
        }
        let companion = rand::rng().random_range(1..=20u8);
        let creds = Credentials {
            wa_device_jid: format!("{digits}:{companion}@s.whatsapp.net"),
            wa_number: digits,
        };
        let bytes = serde_json::to_vec(&creds).map_err(ApiError::internal)?;
        write_atomic(&self.creds_path(device_id), &bytes).map_err(ApiError::internal)?;
        self.go_live(device_id, creds);
        Ok(())
    }

    async fn drop_session(&self, device_id: Uuid, reason: DropReason) -> ApiResult<()> {
        let creds = self.live_creds(device_id)?;
        match reason {
            DropReason::LoggedOut => {
                self.sessions().remove(&device_id);
                self.opened.close(device_id);
                self.wipe_creds(device_id);
                self.emit(
                    device_id,
                    SessionEvent::LoggedOut {
                        error: failure(
                            ErrorCode::LoggedOut,
                            "the session was logged out from the phone",
                        ),
                    },
                );
            }
            DropReason::ConnectionLost => {
                let generation = self.next_generation();
                self.sessions()
                    .insert(device_id, Session::Reconnecting { generation });
                self.emit(
                    device_id,
                    SessionEvent::Reconnecting {
                        error: Some(failure(
                            ErrorCode::WhatsappConnectionLost,
                            "the connection to WhatsApp dropped; reconnecting",
                        )),
                    },
                );
                let (sessions, events) = (self.sessions.clone(), self.events.clone());
                let delay = self.options.reconnect_delay;
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    let mut map = lock(&sessions);
                    if matches!(map.get(&device_id), Some(Session::Reconnecting { generation: g, .. }) if *g == generation)
                    {
                        map.insert(
                            device_id,
                            Session::Live {
                                creds: creds.clone(),
                            },
                        );
                        drop(map);
                        let _ = events.send((
                            device_id,
                            SessionEvent::Connected {
                                wa_number: creds.wa_number,
                                wa_device_jid: creds.wa_device_jid,
                            },
                        ));
                    }
                });
            }
        }
        Ok(())
    }

    async fn presence(
        &self,
        device_id: Uuid,
        jid: &str,
        presence: &str,
        chat_state: Option<&str>,
    ) -> ApiResult<()> {
        let jid = wa_core::jid::normalize("jid", jid)?;
        if !matches!(presence, "available" | "unavailable") {
            return Err(ApiError::validation(
                "presence",
                "`presence` must be available or unavailable",
            ));
        }
        if let Some(c) = chat_state
            && !matches!(c, "composing" | "paused" | "recording")
        {
            return Err(ApiError::validation(
                "chat_state",
                "`chat_state` must be composing, recording or paused",
            ));
        }
        self.live_creds(device_id)?;
        let now = time::now();
        self.emit(
            device_id,
            SessionEvent::Presence(Presence {
                jid,
                presence: presence.to_owned(),
                chat_state: chat_state.map(str::to_owned),
                last_seen: (presence == "unavailable").then_some(now),
                updated_at: now,
            }),
        );
        Ok(())
    }

    async fn inbound(
        &self,
        device_id: Uuid,
        from: &str,
        request: SendRequest,
    ) -> ApiResult<String> {
        self.deliver_inbound(device_id, from, request).await
    }

    async fn react(
        &self,
        device_id: Uuid,
        chat: &str,
        from: &str,
        message_id: &str,
        emoji: &str,
    ) -> ApiResult<()> {
        self.live_creds(device_id)?;
        let event = actions::peer_reaction(chat, from, message_id, emoji);
        self.emit(device_id, event);
        Ok(())
    }

    async fn group_event(&self, device_id: Uuid, update: GroupUpdate) -> ApiResult<()> {
        let me = own_jid(&self.live_creds(device_id)?);
        self.groups.with(device_id, &me, |gs| {
            groups::apply_reported(&me, gs, &update)?;
            Ok(((), true))
        })?;
        self.emit(device_id, SessionEvent::GroupUpdate(update));
        Ok(())
    }

    async fn edit(
        &self,
        device_id: Uuid,
        chat: &str,
        from: &str,
        message_id: &str,
        text: &str,
    ) -> ApiResult<()> {
        self.live_creds(device_id)?;
        let event = actions::peer_edit(chat, from, message_id, text);
        self.emit(device_id, event);
        Ok(())
    }

    async fn poll_vote(
        &self,
        device_id: Uuid,
        chat: &str,
        voter: &str,
        poll_message_id: &str,
        selected_options: &[String],
    ) -> ApiResult<()> {
        self.live_creds(device_id)?;
        let event = actions::peer_vote(chat, voter, poll_message_id, selected_options);
        self.emit(device_id, event);
        Ok(())
    }

    async fn call(&self, device_id: Uuid, from: &str, is_video: bool) -> ApiResult<()> {
        self.live_creds(device_id)?;
        let event = actions::peer_call(from, is_video, self.options.reject_calls);
        self.emit(device_id, event);
        Ok(())
    }

    async fn revoke(
        &self,
        device_id: Uuid,
        message_id: &str,
        chat: &str,
        from: &str,
    ) -> ApiResult<()> {
        self.live_creds(device_id)?;
        self.emit(
            device_id,
            SessionEvent::Revoked {
                message_id: message_id.to_owned(),
                chat: chat.to_owned(),
                from: from.to_owned(),
            },
        );
        Ok(())
    }

    async fn receipt(
        &self,
        device_id: Uuid,
        message_id: &str,
        status: MessageStatus,
    ) -> ApiResult<()> {
        if !matches!(
            status,
            MessageStatus::Delivered | MessageStatus::Read | MessageStatus::Played
        ) {
            return Err(ApiError::validation(
                "status",
                "`status` must be delivered, read or played",
            ));
        }
        self.live_creds(device_id)?;
        let sent = SandboxControl::sent(self, device_id).await?;
        let Some(record) = sent.iter().find(|r| r.message_id == message_id) else {
            return Err(ApiError::not_found(
                "the simulated WhatsApp never received this message",
            ));
        };
        self.emit(
            device_id,
            SessionEvent::Receipt {
                message_ids: vec![message_id.to_owned()],
                status,
                from: record.to.clone(),
                chat: record.to.clone(),
            },
        );
        Ok(())
    }

    async fn sessions(&self, device_id: Uuid) -> ApiResult<Vec<SessionRecord>> {
        self.opened.sessions(device_id).map_err(ApiError::internal)
    }

    fn held_by(&self, holder: Arc<dyn SessionHolder>) {
        self.opened.held_by(holder);
    }

    async fn sent(&self, device_id: Uuid) -> ApiResult<Vec<SentRecord>> {
        let text = match std::fs::read_to_string(self.sent_path(device_id)) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(ApiError::internal(e)),
        };
        // A line cut short by a crash mid-append is skipped, not fatal.
        Ok(text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect())
    }
}
