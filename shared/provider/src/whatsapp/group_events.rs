//! Group changes as WhatsApp reports them (`Event::GroupUpdate`, one per action of a
//! `w:gp2` notification) turned into the API's `group_update`, and the bookkeeping that
//! reports each change the device makes itself exactly once.
//!
//! | Library action | `group_update` |
//! |---|---|
//! | `Create` | `created`, with the subject |
//! | `Add` | `participants_added` |
//! | `Remove` of the author alone | `left` |
//! | `Remove` | `participants_removed` |
//! | `Promote`, `Demote` | `promoted`, `demoted` |
//! | `Subject` | `subject` |
//! | `Description` | `description` (`""` when it was removed) |
//! | `Locked`, `Unlocked`, `Announce`, `NotAnnounce`, `Ephemeral`, `MembershipApprovalMode` | `settings`, with the setting changed |
//! | anything else (invites, communities, moderation) | nothing |
//!
//! Participants and the author are named by their phone-number JID when the
//! notification carries it, else by their `@lid`.
//!
//! A change the device makes is reported when its request succeeds (with `by` its own
//! JID), whether or not WhatsApp also notifies this device of it. When it does, the
//! notification (authored by this account) and the request's report describe the same
//! change: [`OwnChanges`] lets through whichever comes first and drops the other.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;
use wa_core::groups::{GroupChanges, GroupUpdate, GroupUpdateAction};
use whatsapp_rust::types::events::GroupUpdate as LibGroupUpdate;
use whatsapp_rust::wacore::stanza::groups::{GroupNotificationAction as N, GroupParticipantInfo};

use super::events::peer;

/// The `group_update` reporting one library group action, if the API reports it.
pub(crate) fn update_of(u: &LibGroupUpdate) -> Option<GroupUpdate> {
    use GroupUpdateAction as A;
    let by = u
        .participant
        .as_ref()
        .map(|p| peer(p, u.participant_pn.as_ref()).0);
    let names = |ps: &[GroupParticipantInfo]| -> Vec<String> {
        ps.iter()
            .map(|p| peer(&p.jid, p.phone_number.as_ref()).0)
            .collect()
    };
    let setting = |c: GroupChanges| (A::Settings, Vec::new(), c);
    let none = GroupChanges::default;
    let (action, participants, changes) = match &u.action {
        N::Create { raw } => {
            let subject = raw
                .get_optional_child("group")
                .and_then(|g| g.attrs().optional_string("subject").map(|s| s.into_owned()));
            let changes = GroupChanges { subject, ..none() };
            (A::Created, Vec::new(), changes)
        }
        N::Add { participants, .. } => (A::ParticipantsAdded, names(participants), none()),
        N::Remove { participants, .. } => {
            let removed = names(participants);
            let left = by.is_some() && removed.len() == 1 && removed.first() == by.as_ref();
            let action = if left {
                A::Left
            } else {
                A::ParticipantsRemoved
            };
            (action, removed, none())
        }
        N::Promote { participants } => (A::Promoted, names(participants), none()),
        N::Demote { participants } => (A::Demoted, names(participants), none()),
        N::Subject { subject, .. } => {
            let changes = GroupChanges {
                subject: Some(subject.clone()),
                ..none()
            };
            (A::Subject, Vec::new(), changes)
        }
        N::Description { description, .. } => {
            let changes = GroupChanges {
                description: Some(description.clone().unwrap_or_default()),
                ..none()
            };
            (A::Description, Vec::new(), changes)
        }
        N::Locked { .. } | N::Unlocked => setting(GroupChanges {
            is_locked: Some(matches!(u.action, N::Locked { .. })),
            ..none()
        }),
        N::Announce | N::NotAnnounce => setting(GroupChanges {
            is_announce: Some(matches!(u.action, N::Announce)),
            ..none()
        }),
        N::Ephemeral { expiration, .. } => setting(GroupChanges {
            ephemeral_secs: Some(*expiration),
            ..none()
        }),
        N::MembershipApprovalMode { enabled } => setting(GroupChanges {
            is_join_approval_required: Some(*enabled),
            ..none()
        }),
        _ => return None,
    };
    Some(GroupUpdate {
        group_jid: u.group_jid.to_non_ad().to_string(),
        action,
        participants,
        by,
        changes,
    })
}

/// How long a change the device made waits for its twin (WhatsApp's notification of it,
/// or the request's own report).
pub(crate) const OWN_CHANGE_WINDOW: Duration = Duration::from_secs(120);

/// Where a report of the device's own change comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// The request that made it succeeded.
    Request,
    /// WhatsApp notified this device of a change authored by this account.
    Notification,
}

/// The device's own changes reported in the last [`OWN_CHANGE_WINDOW`], setting by setting
/// (WhatsApp notifies each setting of a change on its own, where the request reports them
/// together): one is told from another by its group, its action and its changed fields
/// (participant JIDs are left out: a notification may name them by LID where the request
/// named phone numbers).
#[derive(Debug, Default)]
pub(crate) struct OwnChanges(Mutex<Vec<(Instant, Source, GroupUpdate)>>);

impl OwnChanges {
    /// What of `update`, reported by `source` at `now`, is still to be reported: each part
    /// (the whole update, or each setting of a `settings` one) unless the other source
    /// reported it within the window (that twin is then used up); the parts to report are
    /// kept for their own twins. `None` when nothing is left.
    pub(crate) fn first_report(
        &self,
        source: Source,
        update: &GroupUpdate,
        now: Instant,
    ) -> Option<GroupUpdate> {
        let mut seen = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        seen.retain(|(at, _, _)| now.saturating_duration_since(*at) < OWN_CHANGE_WINDOW);
        let mut left: Option<GroupUpdate> = None;
        for part in parts(update) {
            let twin = seen
                .iter()
                .position(|(_, s, u)| *s != source && same_change(u, &part));
            match twin {
                Some(i) => {
                    seen.remove(i);
                }
                None => {
                    seen.push((now, source, part.clone()));
                    left = Some(match left {
                        None => part,
                        Some(mut sum) => {
                            sum.changes = merged(&sum.changes, &part.changes);
                            sum
                        }
                    });
                }
            }
        }
        left
    }
}

/// `u` as the parts a twin is looked for by: each setting of a `settings` update alone,
/// any other update whole.
fn parts(u: &GroupUpdate) -> Vec<GroupUpdate> {
    if u.action != GroupUpdateAction::Settings {
        return vec![u.clone()];
    }
    let c = &u.changes;
    let none = GroupChanges::default;
    let settings = [
        GroupChanges {
            is_announce: c.is_announce,
            ..none()
        },
        GroupChanges {
            is_locked: c.is_locked,
            ..none()
        },
        GroupChanges {
            ephemeral_secs: c.ephemeral_secs,
            ..none()
        },
        GroupChanges {
            is_join_approval_required: c.is_join_approval_required,
            ..none()
        },
    ];
    let out: Vec<GroupUpdate> = settings
        .into_iter()
        .filter(|one| *one != none())
        .map(|changes| GroupUpdate {
            changes,
            ..u.clone()
        })
        .collect();
    if out.is_empty() { vec![u.clone()] } else { out }
}

/// The fields of `a` and of `b` together (`b`'s where both have one).
fn merged(a: &GroupChanges, b: &GroupChanges) -> GroupChanges {
    GroupChanges {
        subject: b.subject.clone().or_else(|| a.subject.clone()),
        description: b.description.clone().or_else(|| a.description.clone()),
        is_announce: b.is_announce.or(a.is_announce),
        is_locked: b.is_locked.or(a.is_locked),
        ephemeral_secs: b.ephemeral_secs.or(a.ephemeral_secs),
        is_join_approval_required: b.is_join_approval_required.or(a.is_join_approval_required),
    }
}

fn same_change(a: &GroupUpdate, b: &GroupUpdate) -> bool {
    a.group_jid == b.group_jid && a.action == b.action && a.changes == b.changes
}

#[cfg(test)]
mod tests;
