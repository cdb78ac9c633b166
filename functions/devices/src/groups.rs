//! Groups: the groups a device is in, and everything it does with them (create, info,
//! change, participants, invite, join, leave). Each needs a connected device and is
//! carried out by its live session (asked of its worker like the profile); a change
//! WhatsApp refuses because the device is not an admin answers 403 forbidden.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use wa_api::openapi::{Envelope, SessionRefusals};
use wa_api::{ApiJson, AppState, AuthedApp, created, ok};
use wa_core::groups::{
    self, GroupAnswer, GroupChanges, GroupInfo, GroupRequest, Invite, ParticipantAction,
    ParticipantResult,
};
use wa_core::session::SessionRequest;
use wa_errors::ApiResult;

use crate::views::GroupList;
use crate::{PATH_ID, device_id};

const PATH_GROUP: &str = "The group's JID, `<id>@g.us`";

/// Body of `POST /devices/{device_id}/groups`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"subject": "Lunch crew", "participants": ["+15551230002", "15551230003"]}))]
pub(crate) struct CreateGroupRequest {
    /// 1-100 characters.
    subject: String,
    /// 1-256 phone numbers or JIDs (`@s.whatsapp.net`, `@lid`); the device is added as the
    /// group's creator (super admin).
    #[schema(min_items = 1, max_items = 256, value_type = Vec<String>)]
    participants: Vec<String>,
}

/// Body of `POST /devices/{device_id}/groups/{group_jid}/participants`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"action": "add", "participants": ["+15551230002"]}))]
pub(crate) struct ParticipantsRequest {
    action: ParticipantAction,
    /// 1-256 phone numbers or JIDs (`@s.whatsapp.net`, `@lid`).
    #[schema(min_items = 1, max_items = 256, value_type = Vec<String>)]
    participants: Vec<String>,
}

/// Body of `POST /devices/{device_id}/groups/join`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"invite_code": "AbCdEfGhIjKlMnOpQrStUv"}))]
pub(crate) struct JoinRequest {
    /// The code of an invite, or its link `https://chat.whatsapp.com/<code>`.
    invite_code: String,
}

/// Body of `PATCH /devices/{device_id}/groups/{group_jid}`: at least one field.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"subject": "Lunch crew (Fridays)", "is_announce": true}))]
pub(crate) struct UpdateGroupRequest {
    /// 1-100 characters.
    subject: Option<String>,
    /// At most 2048 characters; `""` removes the description.
    description: Option<String>,
    /// Only admins can send.
    is_announce: Option<bool>,
    /// Only admins can change the subject, description and settings.
    is_locked: Option<bool>,
    /// Disappearing messages: 0 (off), 86400 (24 hours), 604800 (7 days) or 7776000 (90 days).
    ephemeral_secs: Option<u32>,
    /// New members need an admin's approval.
    is_join_approval_required: Option<bool>,
}

/// A group with its participants.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct GroupData {
    group: GroupInfo,
}

/// One result per participant named, in the order named.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ParticipantResults {
    results: Vec<ParticipantResult>,
}

/// Asks the connected device `id` of `app` to carry out the group `request`.
async fn ask(
    ctx: &AppState,
    app: &wa_core::apps::App,
    id: uuid::Uuid,
    request: GroupRequest,
) -> ApiResult<GroupAnswer> {
    let d = ctx.devices.get(app, id).await?;
    d.ensure_connected()?;
    ctx.sessions
        .ask(&d, SessionRequest::Group { request })
        .await?
        .into_group()
}

/// The groups the device is in
#[utoipa::path(get, path = "/devices/{device_id}/groups", tag = "groups", security(("app_token" = [])),
    operation_id = "list_groups",
    params(("device_id" = Uuid, Path, description = PATH_ID)),
    responses(
        (status = 200, description = "Every group, sorted by JID", body = Envelope<GroupList>),
        SessionRefusals,
    ))]
pub(crate) async fn list_groups(
    State(ctx): State<AppState>,
    AuthedApp(app): AuthedApp,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let id = device_id(&id)?;
    let d = ctx.devices.get(&app, id).await?;
    d.ensure_connected()?;
    let groups = ctx
        .sessions
        .ask(&d, SessionRequest::Groups)
        .await?
        .into_groups()?;
    Ok(ok(GroupList {
        count: groups.len(),
        groups,
    }))
}

/// Create a group
#[utoipa::path(post, path = "/devices/{device_id}/groups", tag = "groups", security(("app_token" = [])),
    operation_id = "create_group",
    params(("device_id" = Uuid, Path, description = PATH_ID)),
    request_body = CreateGroupRequest,
    responses(
        (status = 201, description = "Created; the device is its super admin. Participants WhatsApp would not add (not on WhatsApp, privacy) are left out: compare `participants`", body = Envelope<GroupData>),
        SessionRefusals,
    ))]
pub(crate) async fn create_group(
    State(ctx): State<AppState>,
    AuthedApp(app): AuthedApp,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<CreateGroupRequest>,
) -> ApiResult<impl IntoResponse> {
    let id = device_id(&id)?;
    let request = GroupRequest::Create {
        subject: groups::validate_subject(&body.subject)?,
        participants: groups::validate_participants(&body.participants)?,
    };
    let group = ask(&ctx, &app, id, request).await?.into_group()?;
    Ok(created(GroupData { group }))
}

/// A group with its participants
#[utoipa::path(get, path = "/devices/{device_id}/groups/{group_jid}", tag = "groups", security(("app_token" = [])),
    operation_id = "get_group",
    params(
        ("device_id" = Uuid, Path, description = PATH_ID),
        ("group_jid" = String, Path, description = PATH_GROUP),
    ),
    responses(
        (status = 200, description = "The group; 404 when the device is not in it", body = Envelope<GroupData>),
        SessionRefusals,
    ))]
pub(crate) async fn get_group(
    State(ctx): State<AppState>,
    AuthedApp(app): AuthedApp,
    Path((id, jid)): Path<(String, String)>,
) -> ApiResult<impl IntoResponse> {
    let id = device_id(&id)?;
    let group_jid = groups::validate_group_jid(&jid)?;
    let request = GroupRequest::Info { group_jid };
    let group = ask(&ctx, &app, id, request).await?.into_group()?;
    Ok(ok(GroupData { group }))
}

/// Change a group's subject, description or settings
#[utoipa::path(patch, path = "/devices/{device_id}/groups/{group_jid}", tag = "groups", security(("app_token" = [])),
    operation_id = "update_group",
    params(
        ("device_id" = Uuid, Path, description = PATH_ID),
        ("group_jid" = String, Path, description = PATH_GROUP),
    ),
    request_body = UpdateGroupRequest,
    responses(
        (status = 200, description = "The group as changed; 403 forbidden when the device is not an admin", body = Envelope<GroupData>),
        SessionRefusals,
    ))]
pub(crate) async fn update_group(
    State(ctx): State<AppState>,
    AuthedApp(app): AuthedApp,
    Path((id, jid)): Path<(String, String)>,
    ApiJson(body): ApiJson<UpdateGroupRequest>,
) -> ApiResult<impl IntoResponse> {
    let id = device_id(&id)?;
    let group_jid = groups::validate_group_jid(&jid)?;
    let changes = GroupChanges {
        subject: body.subject,
        description: body.description,
        is_announce: body.is_announce,
        is_locked: body.is_locked,
        ephemeral_secs: body.ephemeral_secs,
        is_join_approval_required: body.is_join_approval_required,
    }
    .validate()?;
    let request = GroupRequest::Update { group_jid, changes };
    let group = ask(&ctx, &app, id, request).await?.into_group()?;
    Ok(ok(GroupData { group }))
}

/// Add, remove, promote or demote participants
#[utoipa::path(post, path = "/devices/{device_id}/groups/{group_jid}/participants", tag = "groups", security(("app_token" = [])),
    operation_id = "change_group_participants",
    params(
        ("device_id" = Uuid, Path, description = PATH_ID),
        ("group_jid" = String, Path, description = PATH_GROUP),
    ),
    request_body = ParticipantsRequest,
    responses(
        (status = 200, description = "A result per participant: `ok`, or the `error` (conflict: already a participant; not_found: not on WhatsApp or not a participant; forbidden: WhatsApp refused, such as the creator or a privacy setting)", body = Envelope<ParticipantResults>),
        SessionRefusals,
    ))]
pub(crate) async fn change_participants(
    State(ctx): State<AppState>,
    AuthedApp(app): AuthedApp,
    Path((id, jid)): Path<(String, String)>,
    ApiJson(body): ApiJson<ParticipantsRequest>,
) -> ApiResult<impl IntoResponse> {
    let id = device_id(&id)?;
    let group_jid = groups::validate_group_jid(&jid)?;
    let request = GroupRequest::Participants {
        group_jid,
        action: body.action,
        participants: groups::validate_participants(&body.participants)?,
    };
    let results = ask(&ctx, &app, id, request).await?.into_results()?;
    Ok(ok(ParticipantResults { results }))
}

/// A group's invite link
#[utoipa::path(get, path = "/devices/{device_id}/groups/{group_jid}/invite", tag = "groups", security(("app_token" = [])),
    operation_id = "get_group_invite",
    params(
        ("device_id" = Uuid, Path, description = PATH_ID),
        ("group_jid" = String, Path, description = PATH_GROUP),
    ),
    responses(
        (status = 200, description = "The current invite; 403 forbidden when the device is not an admin", body = Envelope<Invite>),
        SessionRefusals,
    ))]
pub(crate) async fn get_invite(
    State(ctx): State<AppState>,
    AuthedApp(app): AuthedApp,
    Path((id, jid)): Path<(String, String)>,
) -> ApiResult<impl IntoResponse> {
    let id = device_id(&id)?;
    let group_jid = groups::validate_group_jid(&jid)?;
    let request = GroupRequest::Invite { group_jid };
    Ok(ok(ask(&ctx, &app, id, request).await?.into_invite()?))
}

/// Revoke a group's invite link
#[utoipa::path(post, path = "/devices/{device_id}/groups/{group_jid}/invite/revoke", tag = "groups", security(("app_token" = [])),
    operation_id = "revoke_group_invite",
    params(
        ("device_id" = Uuid, Path, description = PATH_ID),
        ("group_jid" = String, Path, description = PATH_GROUP),
    ),
    responses(
        (status = 200, description = "The old code stops working; this is the new invite", body = Envelope<Invite>),
        SessionRefusals,
    ))]
pub(crate) async fn revoke_invite(
    State(ctx): State<AppState>,
    AuthedApp(app): AuthedApp,
    Path((id, jid)): Path<(String, String)>,
) -> ApiResult<impl IntoResponse> {
    let id = device_id(&id)?;
    let group_jid = groups::validate_group_jid(&jid)?;
    let request = GroupRequest::RevokeInvite { group_jid };
    Ok(ok(ask(&ctx, &app, id, request).await?.into_invite()?))
}

/// Join a group by its invite code
#[utoipa::path(post, path = "/devices/{device_id}/groups/join", tag = "groups", security(("app_token" = [])),
    operation_id = "join_group",
    params(("device_id" = Uuid, Path, description = PATH_ID)),
    request_body = JoinRequest,
    responses(
        (status = 200, description = "Joined (or already in it): the group; 404 not_found for an unknown or revoked code", body = Envelope<GroupData>),
        SessionRefusals,
    ))]
pub(crate) async fn join_group(
    State(ctx): State<AppState>,
    AuthedApp(app): AuthedApp,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<JoinRequest>,
) -> ApiResult<impl IntoResponse> {
    let id = device_id(&id)?;
    let invite_code = groups::validate_invite_code(&body.invite_code)?;
    let request = GroupRequest::Join { invite_code };
    let group = ask(&ctx, &app, id, request).await?.into_group()?;
    Ok(ok(GroupData { group }))
}

/// Leave a group
#[utoipa::path(post, path = "/devices/{device_id}/groups/{group_jid}/leave", tag = "groups", security(("app_token" = [])),
    operation_id = "leave_group",
    params(
        ("device_id" = Uuid, Path, description = PATH_ID),
        ("group_jid" = String, Path, description = PATH_GROUP),
    ),
    responses(
        (status = 204, description = "Left"),
        SessionRefusals,
    ))]
pub(crate) async fn leave_group(
    State(ctx): State<AppState>,
    AuthedApp(app): AuthedApp,
    Path((id, jid)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let id = device_id(&id)?;
    let group_jid = groups::validate_group_jid(&jid)?;
    let request = GroupRequest::Leave { group_jid };
    ask(&ctx, &app, id, request).await?.into_done()?;
    Ok(StatusCode::NO_CONTENT)
}
