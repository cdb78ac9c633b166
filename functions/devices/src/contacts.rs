//! Checking phone numbers on WhatsApp: whether each has an account, with its JID and LID.
//! Needs a connected device; asked of its live session (through its worker) like the
//! profile.

use axum::extract::{Path, State};
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use wa_api::openapi::{Envelope, SessionRefusals};
use wa_api::{ApiJson, AppState, AuthedApp, ok};
use wa_core::contacts::{ContactCheck, validate_phone_numbers};
use wa_core::session::SessionRequest;
use wa_errors::ApiResult;

use crate::{PATH_ID, device_id};

/// Body of `POST /devices/{device_id}/contacts/check`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"phone_numbers": ["+15551230002", "15550001234"]}))]
pub(crate) struct CheckContactsRequest {
    /// 1-50 phone numbers in international format (7-15 digits, optional leading +).
    #[schema(min_items = 1, max_items = 50, value_type = Vec<String>)]
    phone_numbers: Vec<String>,
}

/// The answer: one check per number asked, in the order asked.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ContactList {
    contacts: Vec<ContactCheck>,
}

/// Check phone numbers on WhatsApp
#[utoipa::path(post, path = "/devices/{device_id}/contacts/check", tag = "devices", security(("app_token" = [])),
    operation_id = "check_contacts",
    params(("device_id" = Uuid, Path, description = PATH_ID)),
    request_body = CheckContactsRequest,
    responses(
        (status = 200, description = "One check per number, in the order asked; `jid` and `lid` are null when the number is not on WhatsApp (`lid` also when it is not known)", body = Envelope<ContactList>),
        SessionRefusals,
    ))]
pub(crate) async fn check_contacts(
    State(ctx): State<AppState>,
    AuthedApp(app): AuthedApp,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<CheckContactsRequest>,
) -> ApiResult<impl IntoResponse> {
    let id = device_id(&id)?;
    let phone_numbers = validate_phone_numbers(&body.phone_numbers)?;
    let d = ctx.devices.get(&app, id).await?;
    d.ensure_connected()?;
    let contacts = ctx
        .sessions
        .ask(&d, SessionRequest::CheckContacts { phone_numbers })
        .await?
        .into_contacts()?;
    Ok(ok(ContactList { contacts }))
}
