//! Groups a device manages (`/devices/{device_id}/groups/...`): what is asked of the
//! device's live session ([`GroupRequest`]), what it answers ([`GroupAnswer`]: a group with
//! its participants, a result per participant, an invite), what a change made anywhere
//! reports ([`GroupUpdate`], the `group_update` event), and the rules of each request.
//!
//! Both providers carry out a [`GroupRequest`] the same way; a change WhatsApp refuses
//! because the device is not an admin of the group is 403 forbidden.

use serde::{Deserialize, Serialize};
use wa_errors::{ApiError, ApiResult, ErrorCode};

use crate::jid;
use crate::provider::{Group, ProviderFailure};

/// The most participants one request names (create, or add/remove/promote/demote).
pub const MAX_PARTICIPANTS: usize = 256;
/// A subject's length, in characters.
pub const MAX_SUBJECT_CHARS: usize = 100;
/// A description's length, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 2048;
/// The disappearing-message timers WhatsApp offers, in seconds (0 = off).
pub const EPHEMERAL_SECS: [u32; 4] = [0, 86_400, 604_800, 7_776_000];
/// Where an invite code is a link to.
pub const INVITE_LINK_PREFIX: &str = "https://chat.whatsapp.com/";

/// A group with its participants (`GET /devices/{device_id}/groups/{group_jid}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GroupInfo {
    #[serde(flatten)]
    pub group: Group,
    pub participants: Vec<Participant>,
}

/// One participant of a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"jid": "15551230002@s.whatsapp.net", "phone_number": "15551230002",
    "is_admin": false, "is_super_admin": false}))]
pub struct Participant {
    /// The participant's JID: a phone-number JID, or an `@lid` one.
    pub jid: String,
    /// The participant's phone number, when known.
    pub phone_number: Option<String>,
    /// An admin (the super admin, the group's creator, is one too).
    pub is_admin: bool,
    pub is_super_admin: bool,
}

impl Participant {
    /// The participant `jid` (normalized); its phone number is the user of a phone-number
    /// JID, unknown for an `@lid` one.
    pub fn member(jid: &str, is_admin: bool, is_super_admin: bool) -> Participant {
        Participant {
            jid: jid.to_owned(),
            phone_number: phone_of(jid),
            is_admin: is_admin || is_super_admin,
            is_super_admin,
        }
    }
}

/// The phone number of a phone-number JID (`…@s.whatsapp.net`), without its device part.
pub fn phone_of(jid: &str) -> Option<String> {
    let user = jid.strip_suffix(&format!("@{}", jid::USER_SERVER))?;
    let user = user.split([':', '.']).next().unwrap_or(user);
    Some(user.to_owned())
}

/// What `POST /devices/{device_id}/groups/{group_jid}/participants` does to each one named.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ParticipantAction {
    Add,
    Remove,
    Promote,
    Demote,
}

impl ParticipantAction {
    /// The `group_update` action reporting it.
    pub fn update_action(self) -> GroupUpdateAction {
        match self {
            ParticipantAction::Add => GroupUpdateAction::ParticipantsAdded,
            ParticipantAction::Remove => GroupUpdateAction::ParticipantsRemoved,
            ParticipantAction::Promote => GroupUpdateAction::Promoted,
            ParticipantAction::Demote => GroupUpdateAction::Demoted,
        }
    }
}

/// Why an action failed for one participant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ParticipantError {
    #[schema(value_type = String, example = "conflict")]
    pub code: ErrorCode,
    pub message: String,
}

/// The outcome of a participant action for one participant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"jid": "15551230002@s.whatsapp.net", "ok": true, "error": null}))]
pub struct ParticipantResult {
    pub jid: String,
    pub ok: bool,
    pub error: Option<ParticipantError>,
}

impl ParticipantResult {
    /// Done for `jid`.
    pub fn done(jid: &str) -> ParticipantResult {
        ParticipantResult {
            jid: jid.to_owned(),
            ok: true,
            error: None,
        }
    }

    /// Refused for `jid`, with the reason.
    pub fn refused(jid: &str, code: ErrorCode, message: impl Into<String>) -> ParticipantResult {
        ParticipantResult {
            jid: jid.to_owned(),
            ok: false,
            error: Some(ParticipantError {
                code,
                message: message.into(),
            }),
        }
    }
}

/// A group's invite.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"invite_code": "AbCdEfGhIjKlMnOpQrStUv",
    "invite_link": "https://chat.whatsapp.com/AbCdEfGhIjKlMnOpQrStUv"}))]
pub struct Invite {
    pub invite_code: String,
    pub invite_link: String,
}

impl Invite {
    /// The invite of `code`, with its link.
    pub fn of(code: &str) -> Invite {
        Invite {
            invite_code: code.to_owned(),
            invite_link: format!("{INVITE_LINK_PREFIX}{code}"),
        }
    }
}

/// The changes of `PATCH /devices/{device_id}/groups/{group_jid}`; every field is optional,
/// at least one is given. `description` `""` removes the description.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GroupChanges {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Only admins can send.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_announce: Option<bool>,
    /// Only admins can change the group's subject, description and settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_locked: Option<bool>,
    /// The disappearing-messages timer: 0 (off), 86400, 604800 or 7776000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ephemeral_secs: Option<u32>,
    /// New members need an admin's approval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_join_approval_required: Option<bool>,
}

impl GroupChanges {
    /// The changes with a valid value in each field given: the subject and description
    /// trimmed; validation_error on the field otherwise, or on `subject` when none is given.
    pub fn validate(self) -> ApiResult<GroupChanges> {
        if self == GroupChanges::default() {
            return Err(ApiError::validation(
                "subject",
                "give at least one of `subject`, `description`, `is_announce`, `is_locked`, \
                 `ephemeral_secs`, `is_join_approval_required`",
            ));
        }
        Ok(GroupChanges {
            subject: self.subject.as_deref().map(validate_subject).transpose()?,
            description: self
                .description
                .as_deref()
                .map(validate_description)
                .transpose()?,
            ephemeral_secs: self.ephemeral_secs.map(validate_ephemeral).transpose()?,
            ..self
        })
    }

    /// Whether a setting (not the subject nor the description) changes.
    pub fn changes_settings(&self) -> bool {
        self.is_announce.is_some()
            || self.is_locked.is_some()
            || self.ephemeral_secs.is_some()
            || self.is_join_approval_required.is_some()
    }

    /// The changes split as `group_update` reports them: the subject, the description,
    /// and the settings together, each with its action, in that order.
    pub fn reported(&self) -> Vec<(GroupUpdateAction, GroupChanges)> {
        let mut out = Vec::new();
        if let Some(s) = &self.subject {
            let c = GroupChanges {
                subject: Some(s.clone()),
                ..GroupChanges::default()
            };
            out.push((GroupUpdateAction::Subject, c));
        }
        if let Some(d) = &self.description {
            let c = GroupChanges {
                description: Some(d.clone()),
                ..GroupChanges::default()
            };
            out.push((GroupUpdateAction::Description, c));
        }
        if self.changes_settings() {
            let c = GroupChanges {
                subject: None,
                description: None,
                ..self.clone()
            };
            out.push((GroupUpdateAction::Settings, c));
        }
        out
    }

    /// `group` with these changes made.
    pub fn apply(&self, group: &mut Group) {
        if let Some(s) = &self.subject {
            group.subject = s.clone();
            group.name = s.clone();
        }
        if let Some(d) = &self.description {
            group.description = (!d.is_empty()).then(|| d.clone());
        }
        if let Some(v) = self.is_announce {
            group.is_announce = v;
        }
        if let Some(v) = self.is_locked {
            group.is_locked = v;
        }
        if let Some(v) = self.ephemeral_secs {
            group.is_ephemeral = v > 0;
        }
        if let Some(v) = self.is_join_approval_required {
            group.is_join_approval_required = v;
        }
    }
}

/// One thing asked of a device's live session about groups. Every field is checked (and
/// JIDs normalized) by the caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum GroupRequest {
    /// Create a group; the device is its super admin.
    Create {
        subject: String,
        participants: Vec<String>,
    },
    /// A group with its participants.
    Info { group_jid: String },
    /// Change a group's subject, description or settings.
    Update {
        group_jid: String,
        changes: GroupChanges,
    },
    /// Add, remove, promote or demote participants.
    Participants {
        group_jid: String,
        action: ParticipantAction,
        participants: Vec<String>,
    },
    /// The group's invite.
    Invite { group_jid: String },
    /// Revoke the group's invite: the old code stops working; a new one is answered.
    RevokeInvite { group_jid: String },
    /// Join the group of an invite code.
    Join { invite_code: String },
    /// Leave a group.
    Leave { group_jid: String },
}

impl GroupRequest {
    /// The `group_update` events reporting what this request did, made by the device
    /// `me`, given what it answered: `created` with the members and the subject;
    /// `subject`, `description` and `settings` for the changes ([`GroupChanges::reported`]);
    /// the participant action with the participants it was done for (none when it was
    /// done for nobody); `participants_added` with `me` for a join; `left` with `me`. An
    /// invite, its revocation and `Info` change nothing reported.
    pub fn reports(&self, answer: &GroupAnswer, me: &str) -> Vec<GroupUpdate> {
        use GroupUpdateAction as A;
        let none = GroupChanges::default;
        match (self, answer) {
            (GroupRequest::Create { subject, .. }, GroupAnswer::Group(info)) => {
                let members = info.participants.iter().map(|p| p.jid.clone()).collect();
                let changes = GroupChanges {
                    subject: Some(subject.clone()),
                    ..none()
                };
                vec![GroupUpdate::made_by(
                    &info.group.jid,
                    A::Created,
                    members,
                    me,
                    changes,
                )]
            }
            (GroupRequest::Update { group_jid, changes }, _) => changes
                .reported()
                .into_iter()
                .map(|(action, c)| GroupUpdate::made_by(group_jid, action, vec![], me, c))
                .collect(),
            (
                GroupRequest::Participants {
                    group_jid, action, ..
                },
                GroupAnswer::Results(results),
            ) => {
                let done: Vec<String> = results
                    .iter()
                    .filter(|r| r.ok)
                    .map(|r| r.jid.clone())
                    .collect();
                if done.is_empty() {
                    return vec![];
                }
                let action = action.update_action();
                vec![GroupUpdate::made_by(group_jid, action, done, me, none())]
            }
            (GroupRequest::Join { .. }, GroupAnswer::Group(info)) => {
                let joined = vec![me.to_owned()];
                let action = A::ParticipantsAdded;
                vec![GroupUpdate::made_by(
                    &info.group.jid,
                    action,
                    joined,
                    me,
                    none(),
                )]
            }
            (GroupRequest::Leave { group_jid }, _) => {
                let left = vec![me.to_owned()];
                vec![GroupUpdate::made_by(group_jid, A::Left, left, me, none())]
            }
            _ => vec![],
        }
    }
}

/// What a [`GroupRequest`] answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum GroupAnswer {
    /// `Create`, `Info`, `Update`, `Join`: the group as it is now.
    Group(GroupInfo),
    /// `Participants`: one result per participant named, in the order named.
    Results(Vec<ParticipantResult>),
    /// `Invite`, `RevokeInvite`.
    Invite(Invite),
    /// `Leave`.
    Done,
}

impl GroupAnswer {
    fn kind(&self) -> &'static str {
        match self {
            GroupAnswer::Group(_) => "a group",
            GroupAnswer::Results(_) => "participant results",
            GroupAnswer::Invite(_) => "an invite",
            GroupAnswer::Done => "nothing",
        }
    }

    fn unexpected(&self, wanted: &str) -> ApiError {
        ApiError::internal(format!(
            "the group request answered {} instead of {wanted}",
            self.kind()
        ))
    }

    /// The group of a `Group` answer; 500 internal_error for another answer.
    pub fn into_group(self) -> ApiResult<GroupInfo> {
        match self {
            GroupAnswer::Group(g) => Ok(g),
            a => Err(a.unexpected("a group")),
        }
    }

    /// The results of a `Results` answer; 500 internal_error for another answer.
    pub fn into_results(self) -> ApiResult<Vec<ParticipantResult>> {
        match self {
            GroupAnswer::Results(r) => Ok(r),
            a => Err(a.unexpected("participant results")),
        }
    }

    /// Nothing, for a `Done` answer; 500 internal_error for another answer.
    pub fn into_done(self) -> ApiResult<()> {
        match self {
            GroupAnswer::Done => Ok(()),
            a => Err(a.unexpected("nothing")),
        }
    }

    /// The invite of an `Invite` answer; 500 internal_error for another answer.
    pub fn into_invite(self) -> ApiResult<Invite> {
        match self {
            GroupAnswer::Invite(i) => Ok(i),
            a => Err(a.unexpected("an invite")),
        }
    }
}

/// What a `group_update` event reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GroupUpdateAction {
    Created,
    ParticipantsAdded,
    ParticipantsRemoved,
    Promoted,
    Demoted,
    Subject,
    Description,
    Settings,
    Left,
}

/// A change to a group, made by this device or elsewhere: the payload of `group_update`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"group_jid": "120363000000000001@g.us", "action": "participants_added",
    "participants": ["15551230002@s.whatsapp.net"], "by": "15551230001@s.whatsapp.net"}))]
pub struct GroupUpdate {
    pub group_jid: String,
    pub action: GroupUpdateAction,
    /// The participants the change is about (added, removed, promoted, demoted; the
    /// group's members for `created`; the one who left for `left`); empty otherwise.
    pub participants: Vec<String>,
    /// Who made the change (this device's own JID for its own changes), when known.
    pub by: Option<String>,
    /// The changed fields (`subject`, `description`, settings), for those actions.
    #[serde(flatten)]
    pub changes: GroupChanges,
}

impl GroupUpdate {
    /// The change `action` to `group_jid`, made by `by`.
    pub fn made_by(
        group_jid: &str,
        action: GroupUpdateAction,
        participants: Vec<String>,
        by: &str,
        changes: GroupChanges,
    ) -> GroupUpdate {
        GroupUpdate {
            group_jid: group_jid.to_owned(),
            action,
            participants,
            by: Some(by.to_owned()),
            changes,
        }
    }

    /// A change reported as made elsewhere, checked: `participants` (JIDs, normalized)
    /// name whom it is about (1 or more for the participant actions and `left`; any for
    /// `created`; none for the others); `by` a phone-number or `@lid` JID; the changed
    /// fields those of the action (`subject` for `created` and `subject`, `description`
    /// for `description`, at least one setting for `settings`, none otherwise), each valid.
    /// validation_error on the field otherwise.
    pub fn validate(self) -> ApiResult<GroupUpdate> {
        use GroupUpdateAction as A;
        let group_jid = validate_group_jid(&self.group_jid)?;
        let participants = match self.action {
            A::ParticipantsAdded | A::ParticipantsRemoved | A::Promoted | A::Demoted | A::Left => {
                validate_participants(&self.participants)?
            }
            A::Created if !self.participants.is_empty() => {
                validate_participants(&self.participants)?
            }
            _ if !self.participants.is_empty() => {
                return Err(ApiError::validation(
                    "participants",
                    "`participants` goes with the participant actions, `left` and `created`",
                ));
            }
            _ => Vec::new(),
        };
        let by = match self.by.as_deref() {
            None => None,
            Some(raw) => Some(
                jid::normalize("by", raw)
                    .ok()
                    .filter(|j| !jid::is_group(j))
                    .ok_or_else(|| {
                        ApiError::validation(
                            "by",
                            "`by` must be a phone number or a JID ending in @s.whatsapp.net or @lid",
                        )
                    })?,
            ),
        };
        let c = self.changes;
        let wanted: &[&str] = match self.action {
            A::Created | A::Subject => &["subject"],
            A::Description => &["description"],
            A::Settings => &[
                "is_announce",
                "is_locked",
                "ephemeral_secs",
                "is_join_approval_required",
            ],
            _ => &[],
        };
        let given = [
            ("subject", c.subject.is_some()),
            ("description", c.description.is_some()),
            ("is_announce", c.is_announce.is_some()),
            ("is_locked", c.is_locked.is_some()),
            ("ephemeral_secs", c.ephemeral_secs.is_some()),
            (
                "is_join_approval_required",
                c.is_join_approval_required.is_some(),
            ),
        ];
        if let Some((field, _)) = given.iter().find(|(f, g)| *g && !wanted.contains(f)) {
            return Err(ApiError::validation(
                *field,
                format!("`{field}` does not go with this action"),
            ));
        }
        if !wanted.is_empty() && !given.iter().any(|(f, g)| *g && wanted.contains(f)) {
            return Err(ApiError::validation(
                wanted[0],
                format!("this action needs `{}`", wanted.join("` or `")),
            ));
        }
        let changes = if wanted.is_empty() { c } else { c.validate()? };
        Ok(GroupUpdate {
            group_jid,
            action: self.action,
            participants,
            by,
            changes,
        })
    }
}

/// A group JID from a path: `<digits>@g.us` (the old `<creator>-<timestamp>@g.us` too);
/// validation_error on `group_jid` otherwise.
pub fn validate_group_jid(raw: &str) -> ApiResult<String> {
    let bad = || ApiError::validation("group_jid", "`group_jid` must be a group JID, `<id>@g.us`");
    let jid = jid::normalize("group_jid", raw).map_err(|_| bad())?;
    if jid::is_group(&jid) {
        Ok(jid)
    } else {
        Err(bad())
    }
}

/// A group's subject, trimmed: 1 to [`MAX_SUBJECT_CHARS`] characters, else validation_error
/// on `subject`.
pub fn validate_subject(raw: &str) -> ApiResult<String> {
    let s = raw.trim();
    let n = s.chars().count();
    if n == 0 || n > MAX_SUBJECT_CHARS {
        return Err(ApiError::validation(
            "subject",
            format!("`subject` takes 1-{MAX_SUBJECT_CHARS} characters"),
        ));
    }
    Ok(s.to_owned())
}

/// A group's description, trimmed: at most [`MAX_DESCRIPTION_CHARS`] characters (`""`
/// removes it), else validation_error on `description`.
pub fn validate_description(raw: &str) -> ApiResult<String> {
    let s = raw.trim();
    if s.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(ApiError::validation(
            "description",
            format!("`description` takes at most {MAX_DESCRIPTION_CHARS} characters"),
        ));
    }
    Ok(s.to_owned())
}

/// A disappearing-messages timer: one of [`EPHEMERAL_SECS`], else validation_error on
/// `ephemeral_secs`.
pub fn validate_ephemeral(secs: u32) -> ApiResult<u32> {
    if EPHEMERAL_SECS.contains(&secs) {
        Ok(secs)
    } else {
        Err(ApiError::validation(
            "ephemeral_secs",
            "`ephemeral_secs` is 0 (off), 86400 (24 hours), 604800 (7 days) or 7776000 (90 days)",
        ))
    }
}

/// The participants of a request as JIDs, in the order given: 1 to [`MAX_PARTICIPANTS`]
/// entries (else validation_error on `participants`), each a phone number or a
/// phone-number or `@lid` JID, named once (else validation_error on `participants[i]`).
pub fn validate_participants(raw: &[String]) -> ApiResult<Vec<String>> {
    if raw.is_empty() || raw.len() > MAX_PARTICIPANTS {
        return Err(ApiError::validation(
            "participants",
            format!("`participants` takes 1-{MAX_PARTICIPANTS} phone numbers or JIDs"),
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(raw.len());
    for (i, entry) in raw.iter().enumerate() {
        let field = format!("participants[{i}]");
        let jid = jid::normalize("participants", entry)
            .ok()
            .filter(|j| !jid::is_group(j))
            .ok_or_else(|| {
                ApiError::validation(
                    field.clone(),
                    format!(
                        "`{field}` must be a phone number (digits, optional +) or a JID ending \
                         in @s.whatsapp.net or @lid"
                    ),
                )
            })?;
        if out.contains(&jid) {
            return Err(ApiError::validation(
                field.clone(),
                format!("`{field}` names {jid} a second time"),
            ));
        }
        out.push(jid);
    }
    Ok(out)
}

/// An invite code, or the code of an invite link (`https://chat.whatsapp.com/<code>`):
/// 1-64 letters, digits, `-` or `_`, else validation_error on `invite_code`.
pub fn validate_invite_code(raw: &str) -> ApiResult<String> {
    let raw = raw.trim();
    let code = raw.strip_prefix(INVITE_LINK_PREFIX).unwrap_or(raw);
    let ok = (1..=64).contains(&code.len())
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(code.to_owned())
    } else {
        Err(ApiError::validation(
            "invite_code",
            format!("`invite_code` must be an invite code or a link {INVITE_LINK_PREFIX}<code>"),
        ))
    }
}

/// 403 forbidden: WhatsApp refused a group change because the device is not an admin.
pub fn not_admin() -> ProviderFailure {
    ProviderFailure::new(
        ErrorCode::Forbidden,
        "the device is not an admin of this group; only admins can do this",
    )
}

/// 404 not_found: the device is not in the group (or it does not exist).
pub fn not_a_member() -> ProviderFailure {
    ProviderFailure::new(
        ErrorCode::NotFound,
        "the device is not a participant of this group",
    )
}

/// 404 not_found: no group has this invite code (it may have been revoked).
pub fn unknown_invite() -> ProviderFailure {
    ProviderFailure::new(
        ErrorCode::NotFound,
        "no group has this invite code; it may have been revoked",
    )
}

#[cfg(test)]
mod tests;
