//! The sandbox's groups: the groups each simulated account is in, which it creates, joins,
//! changes and leaves, and the changes reported as made elsewhere.
//!
//! Rules:
//! - A device starts in the three groups of [`sandbox_groups`]: it
//!   is the super admin of "Sandbox team" and an ordinary participant of the two fault
//!   groups; the other participants are made-up numbers `1555124xxxx`.
//! - A device's groups live in `<data dir>/sandbox/groups/<device_id>.json`, written
//!   atomically; they are wiped with its simulated credentials (link, logout, destroy).
//! - Changes (subject, description, settings, participants, the invite) need the device
//!   to be an admin: otherwise 403 forbidden. A group it is not in: 404 not_found.
//! - A created group's members are the device (super admin) and the participants named
//!   that are on the sandbox's WhatsApp (not `1555000…`).
//! - Adding: a participant already in the group is refused with conflict, a number not on
//!   WhatsApp with not_found. Removing, promoting, demoting: a non-participant with
//!   not_found; the super admin cannot be removed nor demoted (forbidden), nor can the
//!   device remove itself (forbidden: it leaves instead).
//! - An invite code is handed out with each group; revoking it hands out a new one. Codes
//!   are kept in `<data dir>/sandbox/invites/<code>.json` with the group as it was then,
//!   so another device (of any App sharing the data directory) can join with it: it becomes
//!   an ordinary participant of its own copy of the group. An unknown or revoked code: 404.
//! - Every change the device makes appears in its sent log (`group_create`, `group_update`,
//!   `group_participants`, `group_invite_revoke`, `group_join`, `group_leave`) and is
//!   reported as `group_update` with `by` the device's own JID.

use std::path::PathBuf;
use std::sync::Mutex;

use rand::Rng;
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use wa_core::groups::{
    self, GroupAnswer, GroupChanges, GroupInfo, GroupRequest, GroupUpdate, GroupUpdateAction,
    Invite, Participant, ParticipantAction, ParticipantResult,
};
use wa_core::provider::{Group, ProviderFailure, SentRecord};
use wa_errors::ErrorCode;

use super::contacts::ABSENT_PREFIX;

/// One group as a device sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct SandboxGroup {
    pub(super) group: Group,
    pub(super) participants: Vec<Participant>,
    pub(super) invite_code: String,
}

impl SandboxGroup {
    pub(super) fn info(&self) -> GroupInfo {
        let mut group = self.group.clone();
        group.participant_count = u32::try_from(self.participants.len()).unwrap_or(u32::MAX);
        GroupInfo {
            group,
            participants: self.participants.clone(),
        }
    }

    fn member(&self, jid: &str) -> Option<&Participant> {
        self.participants.iter().find(|p| p.jid == jid)
    }

    fn is_admin(&self, jid: &str) -> bool {
        self.member(jid).is_some_and(|p| p.is_admin)
    }
}

/// What carrying out a request did: the answer, the device's groups afterwards (when they
/// changed), the changes to report, and the sent-log entries.
#[derive(Debug, Default)]
pub(super) struct Outcome {
    pub(super) answer: Option<GroupAnswer>,
    pub(super) changed: bool,
    pub(super) updates: Vec<GroupUpdate>,
    /// An invite code to keep (with the group it opens), and one to forget.
    pub(super) keep_invite: Option<SandboxGroup>,
    pub(super) forget_invite: Option<String>,
    pub(super) record: Option<SentRecord>,
}

/// A new invite code: 22 letters and digits, as WhatsApp's.
pub(super) fn new_invite_code() -> String {
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut rng = rand::rng();
    (0..22)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// A new group JID: `120363` and 12 random digits.
fn new_group_jid() -> String {
    let n: u64 = rand::rng().random_range(100_000_000_000..1_000_000_000_000);
    format!("120363{n}@g.us")
}

/// The groups every sandbox account is in: an ordinary one and the two of the fault table.
pub fn sandbox_groups() -> Vec<Group> {
    vec![
        Group {
            jid: "120363000000000001@g.us".into(),
            name: "Sandbox team".into(),
            subject: "Sandbox team".into(),
            description: Some("An ordinary group".into()),
            participant_count: 3,
            is_announce: false,
            is_locked: false,
            is_ephemeral: false,
            is_join_approval_required: false,
        },
        Group {
            jid: super::RESTRICTED_GROUP.into(),
            name: "Announcements".into(),
            subject: "Announcements".into(),
            description: Some(
                "Only admins can post: sends fail with group_posting_restricted".into(),
            ),
            participant_count: 250,
            is_announce: true,
            is_locked: true,
            is_ephemeral: false,
            is_join_approval_required: true,
        },
        Group {
            jid: super::SLOW_GROUP.into(),
            name: "Huge community".into(),
            subject: "Huge community".into(),
            description: Some(
                "Prekey setup times out: sends fail with group_prekey_timeout".into(),
            ),
            participant_count: 1024,
            is_announce: false,
            is_locked: false,
            is_ephemeral: true,
            is_join_approval_required: false,
        },
    ]
}

/// The groups a device starts in, `me` being its own JID.
pub(super) fn seed(me: &str) -> Vec<SandboxGroup> {
    sandbox_groups()
        .into_iter()
        .enumerate()
        .map(|(i, group)| {
            let admin = i == 0;
            let mut participants = vec![Participant::member(me, admin, admin)];
            let others = group.participant_count.saturating_sub(1);
            participants.extend((0..others).map(|n| {
                let jid = format!("1555124{n:04}@s.whatsapp.net");
                // The first of the others created the groups the device did not.
                Participant::member(&jid, !admin && n == 0, !admin && n == 0)
            }));
            SandboxGroup {
                group,
                participants,
                invite_code: format!("SandboxInvite{i:09}"),
            }
        })
        .collect()
}

fn refused(code: ErrorCode, message: &str) -> ProviderFailure {
    ProviderFailure::new(code, message)
}

/// Carries out `request` for the device `me` on its `groups` (changed in place); `joined`
/// is the group an invite code opens, looked up by the caller for a join.
pub(super) fn carry_out(
    me: &str,
    groups: &mut Vec<SandboxGroup>,
    request: &GroupRequest,
    joined: Option<SandboxGroup>,
) -> Result<Outcome, ProviderFailure> {
    let find = |groups: &[SandboxGroup], jid: &str| {
        groups
            .iter()
            .position(|g| g.group.jid == jid)
            .ok_or_else(groups::not_a_member)
    };
    let mut out = Outcome::default();
    match request {
        GroupRequest::Create {
            subject,
            participants,
        } => {
            let jid = new_group_jid();
            let mut members = vec![Participant::member(me, true, true)];
            members.extend(
                participants
                    .iter()
                    .filter(|p| *p != me && !p.starts_with(ABSENT_PREFIX))
                    .map(|p| Participant::member(p, false, false)),
            );
            let g = SandboxGroup {
                group: Group {
                    jid: jid.clone(),
                    name: subject.clone(),
                    subject: subject.clone(),
                    description: None,
                    participant_count: 0,
                    is_announce: false,
                    is_locked: false,
                    is_ephemeral: false,
                    is_join_approval_required: false,
                },
                participants: members,
                invite_code: new_invite_code(),
            };
            let changes = GroupChanges {
                subject: Some(subject.clone()),
                ..GroupChanges::default()
            };
            out.record = Some(SentRecord {
                participants: participants.clone(),
                changes,
                ..SentRecord::action("group_create", &jid)
            });
            out.answer = Some(GroupAnswer::Group(g.info()));
            out.keep_invite = Some(g.clone());
            groups.push(g);
            out.changed = true;
        }
        GroupRequest::Info { group_jid } => {
            let g = &groups[find(groups, group_jid)?];
            out.answer = Some(GroupAnswer::Group(g.info()));
        }
        GroupRequest::Update { group_jid, changes } => {
            let i = find(groups, group_jid)?;
            let g = &mut groups[i];
            if !g.is_admin(me) {
                return Err(groups::not_admin());
            }
            changes.apply(&mut g.group);
            out.record = Some(SentRecord {
                changes: changes.clone(),
                ..SentRecord::action("group_update", group_jid)
            });
            out.answer = Some(GroupAnswer::Group(g.info()));
            out.changed = true;
        }
        GroupRequest::Participants {
            group_jid,
            action,
            participants,
        } => {
            let i = find(groups, group_jid)?;
            let g = &mut groups[i];
            if !g.is_admin(me) {
                return Err(groups::not_admin());
            }
            let results: Vec<ParticipantResult> = participants
                .iter()
                .map(|p| participant_action(me, g, *action, p))
                .collect();
            out.record = Some(SentRecord {
                participants: participants.clone(),
                action: Some(*action),
                ..SentRecord::action("group_participants", group_jid)
            });
            out.answer = Some(GroupAnswer::Results(results));
            out.changed = true;
        }
        GroupRequest::Invite { group_jid } => {
            let g = &groups[find(groups, group_jid)?];
            if !g.is_admin(me) {
                return Err(groups::not_admin());
            }
            out.answer = Some(GroupAnswer::Invite(Invite::of(&g.invite_code)));
            out.keep_invite = Some(g.clone());
        }
        GroupRequest::RevokeInvite { group_jid } => {
            let i = find(groups, group_jid)?;
            let g = &mut groups[i];
            if !g.is_admin(me) {
                return Err(groups::not_admin());
            }
            out.forget_invite = Some(std::mem::replace(&mut g.invite_code, new_invite_code()));
            out.record = Some(SentRecord {
                invite_code: Some(g.invite_code.clone()),
                ..SentRecord::action("group_invite_revoke", group_jid)
            });
            out.answer = Some(GroupAnswer::Invite(Invite::of(&g.invite_code)));
            out.keep_invite = Some(g.clone());
            out.changed = true;
        }
        GroupRequest::Join { invite_code } => {
            let mut g = joined.ok_or_else(groups::unknown_invite)?;
            let jid = g.group.jid.clone();
            if let Some(mine) = groups.iter().find(|x| x.group.jid == jid) {
                out.answer = Some(GroupAnswer::Group(mine.info()));
                return Ok(out);
            }
            g.participants.push(Participant::member(me, false, false));
            out.record = Some(SentRecord {
                invite_code: Some(invite_code.clone()),
                ..SentRecord::action("group_join", &jid)
            });
            out.answer = Some(GroupAnswer::Group(g.info()));
            groups.push(g);
            out.changed = true;
        }
        GroupRequest::Leave { group_jid } => {
            let i = find(groups, group_jid)?;
            groups.remove(i);
            out.record = Some(SentRecord::action("group_leave", group_jid));
            out.answer = Some(GroupAnswer::Done);
            out.changed = true;
        }
    }
    if out.changed
        && let Some(answer) = &out.answer
    {
        out.updates = request.reports(answer, me);
    }
    Ok(out)
}

/// One participant action on `g`, by its admin `me`.
fn participant_action(
    me: &str,
    g: &mut SandboxGroup,
    action: ParticipantAction,
    jid: &str,
) -> ParticipantResult {
    let position = g.participants.iter().position(|p| p.jid == jid);
    let no = |code, message: &str| ParticipantResult::refused(jid, code, message);
    match (action, position) {
        (ParticipantAction::Add, Some(_)) => {
            no(ErrorCode::Conflict, "already a participant of this group")
        }
        (ParticipantAction::Add, None) if jid.starts_with(ABSENT_PREFIX) => {
            no(ErrorCode::NotFound, "not on WhatsApp")
        }
        (ParticipantAction::Add, None) => {
            g.participants.push(Participant::member(jid, false, false));
            ParticipantResult::done(jid)
        }
        (_, None) => no(ErrorCode::NotFound, "not a participant of this group"),
        (ParticipantAction::Remove, Some(_)) if jid == me => no(
            ErrorCode::Forbidden,
            "the device cannot remove itself; it leaves the group instead",
        ),
        (ParticipantAction::Remove | ParticipantAction::Demote, Some(i))
            if g.participants[i].is_super_admin =>
        {
            no(
                ErrorCode::Forbidden,
                "the group's creator cannot be removed nor demoted",
            )
        }
        (ParticipantAction::Remove, Some(i)) => {
            g.participants.remove(i);
            ParticipantResult::done(jid)
        }
        (ParticipantAction::Promote, Some(i)) => {
            g.participants[i].is_admin = true;
            ParticipantResult::done(jid)
        }
        (ParticipantAction::Demote, Some(i)) => {
            g.participants[i].is_admin = false;
            ParticipantResult::done(jid)
        }
    }
}

/// Applies a change reported as made elsewhere (by `update.by`) to the device `me`'s
/// groups: 404 not_found for a group the device is not in (except `created`).
pub(super) fn apply_reported(
    me: &str,
    groups: &mut Vec<SandboxGroup>,
    update: &GroupUpdate,
) -> Result<(), ProviderFailure> {
    use GroupUpdateAction as A;
    let jid = &update.group_jid;
    let position = groups.iter().position(|g| &g.group.jid == jid);
    let Some(i) = position else {
        if update.action != A::Created {
            return Err(groups::not_a_member());
        }
        let mut participants: Vec<Participant> = update
            .by
            .iter()
            .map(|by| Participant::member(by, true, true))
            .collect();
        for p in update
            .participants
            .iter()
            .chain(std::iter::once(&me.to_owned()))
        {
            if !participants.iter().any(|x| &x.jid == p) {
                participants.push(Participant::member(p, false, false));
            }
        }
        let subject = update.changes.subject.clone().unwrap_or_default();
        groups.push(SandboxGroup {
            group: Group {
                jid: jid.clone(),
                name: subject.clone(),
                subject,
                description: None,
                participant_count: 0,
                is_announce: false,
                is_locked: false,
                is_ephemeral: false,
                is_join_approval_required: false,
            },
            participants,
            invite_code: new_invite_code(),
        });
        return Ok(());
    };
    let g = &mut groups[i];
    match update.action {
        A::Created => {
            return Err(refused(
                ErrorCode::Conflict,
                "the device is already in this group",
            ));
        }
        A::ParticipantsAdded => {
            for p in &update.participants {
                if g.member(p).is_none() {
                    g.participants.push(Participant::member(p, false, false));
                }
            }
        }
        A::ParticipantsRemoved | A::Left => {
            g.participants
                .retain(|p| !update.participants.contains(&p.jid));
            if update.participants.iter().any(|p| p == me) {
                groups.remove(i);
            }
        }
        A::Promoted | A::Demoted => {
            for p in g.participants.iter_mut() {
                if update.participants.contains(&p.jid) {
                    p.is_admin = update.action == A::Promoted || p.is_super_admin;
                }
            }
        }
        A::Subject | A::Description | A::Settings => update.changes.apply(&mut g.group),
    }
    Ok(())
}

/// The groups of every device and the invite codes handed out, under a directory.
pub(super) struct GroupFiles {
    dir: PathBuf,
    invites: PathBuf,
    /// Serialises this process's reads and writes of the files.
    lock: Mutex<()>,
}

impl GroupFiles {
    /// The files under `dir` (`groups/` and `invites/`, created if missing).
    pub(super) fn new(dir: &std::path::Path) -> std::io::Result<GroupFiles> {
        let files = GroupFiles {
            dir: dir.join("groups"),
            invites: dir.join("invites"),
            lock: Mutex::new(()),
        };
        std::fs::create_dir_all(&files.dir)?;
        std::fs::create_dir_all(&files.invites)?;
        Ok(files)
    }

    fn path(&self, device_id: Uuid) -> PathBuf {
        self.dir.join(format!("{device_id}.json"))
    }

    fn invite_path(&self, code: &str) -> PathBuf {
        // Codes are checked to be letters, digits, `-` and `_` before they get here.
        self.invites.join(format!("{code}.json"))
    }

    /// Runs `f` on the groups of `device_id` (seeded for `me` when it has none yet) and
    /// writes them back when `f` says they changed.
    pub(super) fn with<T>(
        &self,
        device_id: Uuid,
        me: &str,
        f: impl FnOnce(&mut Vec<SandboxGroup>) -> Result<(T, bool), ProviderFailure>,
    ) -> Result<T, ProviderFailure> {
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let path = self.path(device_id);
        let mut groups = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(io_failure)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => seed(me),
            Err(e) => return Err(io_failure(e)),
        };
        let (value, changed) = f(&mut groups)?;
        if changed || !path.exists() {
            let bytes = serde_json::to_vec(&groups).map_err(io_failure)?;
            super::write_atomic(&path, &bytes).map_err(io_failure)?;
        }
        Ok(value)
    }

    /// The group the invite `code` opens, if it is still valid.
    pub(super) fn invited(&self, code: &str) -> Option<SandboxGroup> {
        let bytes = std::fs::read(self.invite_path(code)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Keeps `group`'s invite code, and forgets `revoked`.
    pub(super) fn keep_invite(
        &self,
        group: Option<&SandboxGroup>,
        revoked: Option<&str>,
    ) -> Result<(), ProviderFailure> {
        if let Some(code) = revoked {
            match std::fs::remove_file(self.invite_path(code)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_failure(e)),
            }
        }
        if let Some(g) = group {
            let bytes = serde_json::to_vec(g).map_err(io_failure)?;
            super::write_atomic(&self.invite_path(&g.invite_code), &bytes).map_err(io_failure)?;
        }
        Ok(())
    }

    /// Forgets the groups of `device_id`.
    pub(super) fn wipe(&self, device_id: Uuid) {
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        match std::fs::remove_file(self.path(device_id)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(%device_id, error = %e, "could not wipe sandbox groups"),
        }
    }
}

fn io_failure(e: impl std::fmt::Display) -> ProviderFailure {
    refused(
        ErrorCode::ProviderError,
        &format!("sandbox groups failed: {e}"),
    )
}

#[cfg(test)]
mod tests;
