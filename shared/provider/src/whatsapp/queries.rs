//! Queries to WhatsApp on a live session: contact and group profiles and the groups
//! the account is in, turned into the port's [`Profile`] and [`Group`]; and the parsing
//! of the JIDs callers name them with. Library failures are classified by
//! [`classify_error`].

use tracing::debug;
use wa_core::provider::{ChatState, Group, OwnPresence, Profile, ProviderFailure};
use wa_errors::ErrorCode;
use whatsapp_rust::features::{ChatStateType, PresenceStatus};
use whatsapp_rust::{Client, Jid};

use super::classify::classify_error;
use super::mapping;

/// A contact's or group's profile (`@g.us` = group).
pub(super) async fn profile(client: &Client, jid: &str) -> Result<Profile, ProviderFailure> {
    let target = parse_jid(jid)?;
    if target.to_string().ends_with("@g.us") {
        group_profile(client, &target).await
    } else {
        contact_profile(client, &target).await
    }
}

/// The groups the account participates in, sorted by JID.
pub(super) async fn groups(client: &Client) -> Result<Vec<Group>, ProviderFailure> {
    let groups = client
        .groups()
        .get_participating()
        .await
        .map_err(|e| classify_error(&e, false))?;
    let mut out: Vec<Group> = groups.values().map(super::groups::group_of).collect();
    out.sort_by(|a, b| a.jid.cmp(&b.jid));
    Ok(out)
}

/// Subscribes to a peer's presence.
pub(super) async fn subscribe_presence(client: &Client, jid: &str) -> Result<(), ProviderFailure> {
    let target = parse_jid(jid)?;
    client
        .presence()
        .subscribe(target)
        .await
        .map_err(|e| classify_error(&e, false))
}

pub(super) async fn chat_presence(
    client: &Client,
    jid: &str,
    state: ChatState,
) -> Result<(), ProviderFailure> {
    let target = parse_jid(jid)?;
    client
        .chatstate()
        .send(&target, chat_state_type(state))
        .await
        .map_err(|e| classify_error(&e, false))
}

pub(super) async fn set_presence(
    client: &Client,
    presence: OwnPresence,
) -> Result<(), ProviderFailure> {
    client
        .presence()
        .set(presence_status(presence))
        .await
        .map_err(|e| classify_error(&e, false))
}

/// The library's chat state for ours.
pub(super) fn chat_state_type(state: ChatState) -> ChatStateType {
    match state {
        ChatState::Composing => ChatStateType::Composing,
        ChatState::Recording => ChatStateType::Recording,
        ChatState::Paused => ChatStateType::Paused,
    }
}

/// The library's presence status for ours.
pub(super) fn presence_status(presence: OwnPresence) -> PresenceStatus {
    match presence {
        OwnPresence::Available => PresenceStatus::Available,
        OwnPresence::Unavailable => PresenceStatus::Unavailable,
    }
}

/// Parses a JID; bare digits (optionally `+`-prefixed) are taken as a phone number.
pub(super) fn parse_jid(jid: &str) -> Result<Jid, ProviderFailure> {
    let jid = jid.trim();
    let invalid = |why: String| {
        ProviderFailure::new(
            ErrorCode::ValidationError,
            format!("invalid WhatsApp JID `{jid}`: {why}"),
        )
    };
    match jid.split_once('@') {
        None => {
            let digits = jid.trim_start_matches('+');
            if !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()) {
                Ok(Jid::pn(digits))
            } else {
                Err(invalid("expected `user@server` or a phone number".into()))
            }
        }
        Some(("", _)) => Err(invalid("the user part is empty".into())),
        Some(_) => jid.parse::<Jid>().map_err(|e| invalid(e.to_string())),
    }
}

/// A group's profile: metadata (required) and picture (best effort).
async fn group_profile(client: &Client, jid: &Jid) -> Result<Profile, ProviderFailure> {
    let meta = client
        .groups()
        .get_metadata(jid)
        .await
        .map_err(|e| classify_error(&e, false))?;
    let picture_url = picture_url(client, jid).await;
    let participant_count = meta
        .size
        .unwrap_or_else(|| u32::try_from(meta.participants.len()).unwrap_or(u32::MAX));
    Ok(Profile {
        jid: jid.to_non_ad().to_string(),
        kind: "group".to_string(),
        name: Some(meta.subject.clone()).filter(|s| !s.is_empty()),
        phone_number: None,
        lid: None,
        status: None,
        picture_url,
        subject: Some(meta.subject),
        description: meta.description,
        participant_count: Some(participant_count),
    })
}

/// A contact's profile: usync user info (required: it is the "does WhatsApp answer"
/// part), LID↔PN mapping and picture (best effort).
async fn contact_profile(client: &Client, jid: &Jid) -> Result<Profile, ProviderFailure> {
    let jid = jid.to_non_ad();
    let mut info = client
        .contacts()
        .get_user_info(std::slice::from_ref(&jid))
        .await
        .map_err(|e| classify_error(&e, false))?;
    let info = info.remove(&jid).or_else(|| info.into_values().next());
    let mapping = client.get_lid_pn_entry(&jid).await.ok().flatten();

    let phone_number = if jid.is_pn() {
        Some(mapping::digits(&jid.user))
    } else {
        mapping.as_ref().map(|m| m.phone_number.to_string())
    };
    let lid = if jid.is_lid() {
        Some(jid.to_string())
    } else {
        info.as_ref()
            .and_then(|i| i.lid.as_ref())
            .map(|l| l.to_non_ad().to_string())
            .or_else(|| mapping.as_ref().map(|m| Jid::lid(&*m.lid).to_string()))
    };
    let name = info
        .as_ref()
        .and_then(|i| i.verified_name.as_ref())
        .and_then(|v| v.name.clone())
        .filter(|n| !n.is_empty());
    let status = info
        .as_ref()
        .and_then(|i| i.status.clone())
        .filter(|s| !s.is_empty());
    let picture_url = picture_url(client, &jid).await;
    Ok(Profile {
        name,
        phone_number,
        lid,
        status,
        picture_url,
        ..Profile::contact(&jid.to_string())
    })
}

/// The profile picture URL, best effort: hidden, missing or failing pictures are `None`.
async fn picture_url(client: &Client, jid: &Jid) -> Option<String> {
    match client.contacts().get_profile_picture(jid, false).await {
        Ok(picture) => picture.map(|p| p.url).filter(|u| !u.is_empty()),
        Err(e) => {
            debug!(error = %e, "profile picture unavailable");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jids_parse_with_phone_number_shorthand() {
        assert_eq!(
            parse_jid("+15551234567").map(|j| j.to_string()),
            Ok("15551234567@s.whatsapp.net".to_string())
        );
        assert_eq!(
            parse_jid("120363025246125486@g.us").map(|j| j.to_string()),
            Ok("120363025246125486@g.us".to_string())
        );
        assert_eq!(
            parse_jid("not a jid").map_err(|f| f.code),
            Err(ErrorCode::ValidationError)
        );
    }

    #[test]
    fn chat_states_and_presences_map_onto_the_librarys() {
        for (ours, theirs) in [
            (ChatState::Composing, ChatStateType::Composing),
            (ChatState::Recording, ChatStateType::Recording),
            (ChatState::Paused, ChatStateType::Paused),
        ] {
            assert_eq!(chat_state_type(ours), theirs);
            // The stanza's attribute is our wire name.
            assert_eq!(theirs.to_string(), ours.as_str());
        }
        for (ours, theirs) in [
            (OwnPresence::Available, PresenceStatus::Available),
            (OwnPresence::Unavailable, PresenceStatus::Unavailable),
        ] {
            assert_eq!(presence_status(ours), theirs);
            assert_eq!(theirs.to_string(), ours.as_str());
        }
    }
}
