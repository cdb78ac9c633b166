//! A change to a group made elsewhere, simulated (`POST /sandbox/devices/{id}/group-event`):
//! someone added, removed, promoted or demoted participants, changed the subject,
//! description or settings, left, or created a group with the device in it. The sandbox
//! keeps the change in the device's groups and reports it as `group_update`.

use axum::extract::{Path, State};
use axum::response::IntoResponse;
use serde::Deserialize;
use utoipa::ToSchema;
use wa_api::{ApiJson, AppState, AuthedApp};
use wa_core::groups::{GroupChanges, GroupUpdate, GroupUpdateAction};
use wa_core::session::SessionRequest;
use wa_errors::ApiResult;
use wa_errors::schema::ErrorResponse;

use super::{accepted, owned};

/// Body of the group-event route.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"group_jid": "120363000000000001@g.us", "action": "participants_added",
    "participants": ["15551230005"], "by": "15551230002"}))]
pub(crate) struct GroupEventRequest {
    /// The group (the device must be in it, but for `created`).
    group_jid: String,
    action: GroupUpdateAction,
    /// Whom the change is about: 1-256 for the participant actions and `left`, the members
    /// for `created`, none otherwise.
    #[serde(default)]
    participants: Vec<String>,
    /// Who made the change.
    by: Option<String>,
    /// `created`, `subject`: the subject.
    subject: Option<String>,
    /// `description`: the description (`""`: removed).
    description: Option<String>,
    /// `settings`: at least one of these.
    is_announce: Option<bool>,
    is_locked: Option<bool>,
    ephemeral_secs: Option<u32>,
    is_join_approval_required: Option<bool>,
}

/// Sandbox: a change to a group made elsewhere
#[utoipa::path(post, path = "/sandbox/devices/{device_id}/group-event", operation_id = "sandbox_group_event", tag = "sandbox", security(("app_token" = [])),
    params(("device_id" = uuid::Uuid, Path, description = "The device's id")),
    request_body = GroupEventRequest,
    responses(
        (status = 202, description = "Accepted; kept in the device's groups, and the `group_update` event follows"),
        (status = 400, description = "validation_error", body = ErrorResponse),
        (status = 401, description = "invalid_api_key", body = ErrorResponse),
        (status = 404, description = "not_found: no such device, or the device is not in the group", body = ErrorResponse),
        (status = 409, description = "device_not_connected; conflict for `created` of a group the device is in", body = ErrorResponse),
        (status = 410, description = "device_destroyed", body = ErrorResponse),
        (status = 504, description = "upstream_timeout: the device's worker did not answer in time (`WA_QUERY_WAIT_MS`)", body = ErrorResponse),
    ))]
pub(crate) async fn group_event(
    State(ctx): State<AppState>,
    AuthedApp(app): AuthedApp,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<GroupEventRequest>,
) -> ApiResult<impl IntoResponse> {
    let d = owned(&ctx, &app, &id).await?;
    let update = GroupUpdate {
        group_jid: body.group_jid,
        action: body.action,
        participants: body.participants,
        by: body.by,
        changes: GroupChanges {
            subject: body.subject,
            description: body.description,
            is_announce: body.is_announce,
            is_locked: body.is_locked,
            ephemeral_secs: body.ephemeral_secs,
            is_join_approval_required: body.is_join_approval_required,
        },
    }
    .validate()?;
    d.ensure_connected()?;
    let request = SessionRequest::SandboxGroupEvent { update };
    ctx.sessions.ask(&d, request).await?.into_done()?;
    Ok(accepted())
}
