//! Group requests on a live session, with whatsapp-rust's `client.groups()`:
//!
//! | Request | Library calls |
//! |---|---|
//! | `Create` | `create_group` (the participants named) |
//! | `Info` | `get_metadata` (participants with their phone numbers when known) |
//! | `Update` | `set_subject`, `set_description`, `set_announce`, `set_locked`, `set_ephemeral`, `set_membership_approval` for the fields given, in that order; then `get_metadata` |
//! | `Participants` | `add_participants`, `remove_participants`, `promote_participants`, `demote_participants`: one result per participant |
//! | `Invite`, `RevokeInvite` | `get_invite_link` (`reset` to revoke) |
//! | `Join` | `join_with_invite_code`, then `get_metadata` |
//! | `Leave` | `leave` |
//!
//! WhatsApp's refusals of a whole request ([`group_refusal`]) and of one participant
//! ([`participant_refusal`]) are pure functions with a test per row; everything else
//! goes through [`classify_error`]. An `Update` that fails part way leaves the changes
//! made before the failure in place (WhatsApp has no transaction across them).

use wa_core::groups::{
    self, GroupAnswer, GroupChanges, GroupInfo, GroupRequest, INVITE_LINK_PREFIX, Invite,
    Participant, ParticipantAction, ParticipantResult,
};
use wa_core::provider::{Group, ProviderFailure};
use wa_errors::ErrorCode;
use whatsapp_rust::features::{
    GroupCreateOptions, GroupDescription, GroupError, GroupMetadata, GroupParticipant,
    GroupParticipantOptions, GroupSubject, Groups, JoinGroupResult, MembershipApprovalMode,
    ParticipantChangeResponse, PreviousDescription,
};
use whatsapp_rust::{Client, ErrorChainExt, Jid};

use super::classify::classify_error;
use super::events::peer;
use super::queries::parse_jid;

/// Carries out `request` on `client`.
pub(super) async fn run(
    client: &Client,
    request: &GroupRequest,
) -> Result<GroupAnswer, ProviderFailure> {
    let groups = client.groups();
    let failed = |e: GroupError| classify_group_error(&e, request);
    match request {
        GroupRequest::Create {
            subject,
            participants,
        } => {
            let mut options = GroupCreateOptions::new(subject.clone());
            for p in participants {
                options = options.with_participant(GroupParticipantOptions::new(parse_jid(p)?));
            }
            let created = groups.create_group(options).await.map_err(failed)?;
            Ok(GroupAnswer::Group(info_of(&created.metadata)))
        }
        GroupRequest::Info { group_jid } => info(&groups, &parse_jid(group_jid)?, request).await,
        GroupRequest::Update { group_jid, changes } => {
            let jid = parse_jid(group_jid)?;
            update(&groups, &jid, changes).await.map_err(failed)?;
            info(&groups, &jid, request).await
        }
        GroupRequest::Participants {
            group_jid,
            action,
            participants,
        } => {
            let jid = parse_jid(group_jid)?;
            let jids = participants
                .iter()
                .map(|p| parse_jid(p))
                .collect::<Result<Vec<_>, _>>()?;
            let responses = match action {
                ParticipantAction::Add => groups.add_participants(jid, &jids).await,
                ParticipantAction::Remove => groups.remove_participants(jid, &jids).await,
                ParticipantAction::Promote => groups.promote_participants(jid, &jids).await,
                ParticipantAction::Demote => groups.demote_participants(jid, &jids).await,
            }
            .map_err(failed)?;
            let answered: Vec<Answered> = responses.iter().map(Answered::of).collect();
            Ok(GroupAnswer::Results(results_for(
                *action,
                participants,
                &answered,
            )))
        }
        GroupRequest::Invite { group_jid } | GroupRequest::RevokeInvite { group_jid } => {
            let reset = matches!(request, GroupRequest::RevokeInvite { .. });
            let link = groups
                .get_invite_link(parse_jid(group_jid)?, reset)
                .await
                .map_err(failed)?;
            Ok(GroupAnswer::Invite(invite_of(&link)))
        }
        GroupRequest::Join { invite_code } => {
            match groups
                .join_with_invite_code(invite_code)
                .await
                .map_err(failed)?
            {
                JoinGroupResult::Joined(jid) => info(&groups, &jid, request).await,
                JoinGroupResult::PendingApproval(_) => Err(pending_approval()),
            }
        }
        GroupRequest::Leave { group_jid } => {
            groups.leave(parse_jid(group_jid)?).await.map_err(failed)?;
            Ok(GroupAnswer::Done)
        }
    }
}

/// The group `jid` with its participants.
async fn info(
    groups: &Groups<'_>,
    jid: &Jid,
    request: &GroupRequest,
) -> Result<GroupAnswer, ProviderFailure> {
    let meta = groups
        .get_metadata(jid)
        .await
        .map_err(|e| classify_group_error(&e, request))?;
    Ok(GroupAnswer::Group(info_of(&meta)))
}

/// Makes each change given, in the order of the module's table.
async fn update(groups: &Groups<'_>, jid: &Jid, c: &GroupChanges) -> Result<(), GroupError> {
    let invalid = |e: whatsapp_rust::anyhow::Error| GroupError::InvalidRequest(e.to_string());
    if let Some(subject) = &c.subject {
        let subject = GroupSubject::new(subject.clone()).map_err(invalid)?;
        groups.set_subject(jid.clone(), subject).await?;
    }
    if let Some(description) = &c.description {
        let description = match description.as_str() {
            "" => None,
            d => Some(GroupDescription::new(d).map_err(invalid)?),
        };
        let prev = PreviousDescription::Resolve;
        groups
            .set_description(jid.clone(), description, prev)
            .await?;
    }
    if let Some(on) = c.is_announce {
        groups.set_announce(jid.clone(), on).await?;
    }
    if let Some(on) = c.is_locked {
        groups.set_locked(jid.clone(), on).await?;
    }
    if let Some(secs) = c.ephemeral_secs {
        groups.set_ephemeral(jid.clone(), secs).await?;
    }
    if let Some(on) = c.is_join_approval_required {
        let mode = if on {
            MembershipApprovalMode::On
        } else {
            MembershipApprovalMode::Off
        };
        groups.set_membership_approval(jid.clone(), mode).await?;
    }
    Ok(())
}

/// A group as the API shows it.
pub(super) fn group_of(g: &GroupMetadata) -> Group {
    let participant_count = g
        .size
        .unwrap_or_else(|| u32::try_from(g.participants.len()).unwrap_or(u32::MAX));
    Group {
        jid: g.id.to_non_ad().to_string(),
        name: g.subject.clone(),
        subject: g.subject.clone(),
        description: g.description.clone(),
        participant_count,
        is_announce: g.is_announcement,
        is_locked: g.is_locked,
        is_ephemeral: g
            .ephemeral
            .as_ref()
            .and_then(|e| e.expiration)
            .is_some_and(|secs| secs > 0),
        is_join_approval_required: g.membership_approval,
    }
}

/// A group with its participants: each by its phone-number JID when WhatsApp names it
/// (LID-addressed groups carry it beside the LID), else by its `@lid`.
pub(super) fn info_of(g: &GroupMetadata) -> GroupInfo {
    GroupInfo {
        group: group_of(g),
        participants: g.participants.iter().map(participant_of).collect(),
    }
}

fn participant_of(p: &GroupParticipant) -> Participant {
    let (jid, _) = peer(&p.jid, p.phone_number.as_ref());
    Participant::member(&jid, p.is_admin(), p.is_super_admin())
}

/// The invite of a link (`https://chat.whatsapp.com/<code>`) or of a bare code.
pub(super) fn invite_of(link: &str) -> Invite {
    Invite::of(link.strip_prefix(INVITE_LINK_PREFIX).unwrap_or(link))
}

/// What WhatsApp answered for one participant: the JIDs it names them by (the one asked
/// for, or a LID with the phone number beside it) and its error code, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Answered {
    pub(super) jids: Vec<String>,
    pub(super) error: Option<String>,
}

impl Answered {
    fn of(r: &ParticipantChangeResponse) -> Answered {
        let jids = std::iter::once(&r.jid)
            .chain(r.phone_number.as_ref())
            .map(|j| j.to_non_ad().to_string())
            .collect();
        Answered {
            jids,
            error: r.error.clone(),
        }
    }
}

/// One result per participant `asked`, in that order: done when WhatsApp answered for
/// it without an error, refused with [`participant_refusal`] when with one, and
/// provider_error when it did not answer for it at all.
pub(super) fn results_for(
    action: ParticipantAction,
    asked: &[String],
    answered: &[Answered],
) -> Vec<ParticipantResult> {
    asked
        .iter()
        .map(
            |jid| match answered.iter().find(|a| a.jids.iter().any(|j| j == jid)) {
                Some(Answered { error: None, .. }) => ParticipantResult::done(jid),
                Some(Answered {
                    error: Some(code), ..
                }) => {
                    let (code, message) = participant_refusal(action, code);
                    ParticipantResult::refused(jid, code, message)
                }
                None => ParticipantResult::refused(
                    jid,
                    ErrorCode::ProviderError,
                    "WhatsApp did not answer for this participant",
                ),
            },
        )
        .collect()
}

/// Why WhatsApp refused an action for one participant, from its error code.
///
/// | Code | Error |
/// |---|---|
/// | 409 | conflict: already a participant (add), already in that role (promote, demote) |
/// | 408 | conflict: left the group recently and cannot be added back yet |
/// | 404 | not_found: not on WhatsApp (add), not a participant (otherwise) |
/// | 403 | forbidden: their privacy settings let only their contacts add them (add), not allowed (otherwise) |
/// | 401 | forbidden: they blocked this account |
/// | other | provider_error |
pub(super) fn participant_refusal(action: ParticipantAction, code: &str) -> (ErrorCode, String) {
    let add = action == ParticipantAction::Add;
    let (code_of, message) = match code.trim() {
        "409" if add => (ErrorCode::Conflict, "already a participant of the group"),
        "409" => (ErrorCode::Conflict, "already in that role"),
        "408" => (
            ErrorCode::Conflict,
            "left the group recently and cannot be added back yet",
        ),
        "404" if add => (ErrorCode::NotFound, "not on WhatsApp"),
        "404" => (ErrorCode::NotFound, "not a participant of the group"),
        "403" if add => (
            ErrorCode::Forbidden,
            "their privacy settings do not let this account add them; send them the invite link",
        ),
        "403" => (ErrorCode::Forbidden, "WhatsApp does not allow this"),
        "401" => (ErrorCode::Forbidden, "they blocked this account"),
        other => {
            let message = format!("WhatsApp refused this participant (code {other})");
            return (ErrorCode::ProviderError, message);
        }
    };
    (code_of, message.to_owned())
}

/// A failed group request: WhatsApp's refusal by [`group_refusal`], a description
/// changed meanwhile as conflict, anything else by [`classify_error`].
fn classify_group_error(err: &GroupError, request: &GroupRequest) -> ProviderFailure {
    if let GroupError::DescriptionConflict = err {
        return ProviderFailure::new(
            ErrorCode::Conflict,
            "the group's description changed meanwhile; read the group and try again",
        );
    }
    err.server_rejection()
        .and_then(|r| group_refusal(r.code, request))
        .unwrap_or_else(|| classify_error(err, false))
}

/// WhatsApp's refusal (the IQ error code) of a whole group request, when it means
/// something to the caller:
///
/// | Code | Join | Any other request |
/// |---|---|---|
/// | 401, 403 | forbidden: this account may not join (removed by an admin) | forbidden: the device is not an admin |
/// | 404, 406, 410 | not_found: unknown or revoked invite | not_found (404 only): not a participant |
///
/// Other codes (429 among them) are left to [`classify_error`].
pub(super) fn group_refusal(code: u16, request: &GroupRequest) -> Option<ProviderFailure> {
    let join = matches!(request, GroupRequest::Join { .. });
    match code {
        401 | 403 if join => Some(ProviderFailure::new(
            ErrorCode::Forbidden,
            "WhatsApp does not let this account join the group (an admin may have removed it)",
        )),
        401 | 403 => Some(groups::not_admin()),
        404 | 406 | 410 if join => Some(groups::unknown_invite()),
        404 => Some(groups::not_a_member()),
        _ => None,
    }
}

/// A join that waits for an admin's approval.
fn pending_approval() -> ProviderFailure {
    ProviderFailure::new(
        ErrorCode::Conflict,
        "the group's admins approve new members: the request to join was sent, and the device \
         becomes a participant once an admin approves it",
    )
}

#[cfg(test)]
mod tests;
