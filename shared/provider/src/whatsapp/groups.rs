//! Group requests on a live session (`client.groups()`).

use wa_core::groups::{GroupAnswer, GroupRequest};
use wa_core::provider::ProviderFailure;
use wa_errors::ErrorCode;
use whatsapp_rust::Client;

/// Carries out `request` on `client`.
pub(super) async fn run(
    _client: &Client,
    _request: &GroupRequest,
) -> Result<GroupAnswer, ProviderFailure> {
    Err(ProviderFailure::new(
        ErrorCode::ProviderError,
        "group requests are not available with the WhatsApp provider yet",
    ))
}
