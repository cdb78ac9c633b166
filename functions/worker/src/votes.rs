//! Votes on polls: a vote is kept with the poll's stored message as its voter's latest,
//! in one commit with the `poll_vote` event and the tally over every voter's latest vote.
//! A vote the real provider reports sealed is opened here, where the poll's secret is
//! (`Provider::open_vote`); its choices arrive as hashes of the option names.
//!
//! A vote on a poll this device does not have (or one no longer taking votes: revoked),
//! and a vote that does not open, is logged and dropped: without the poll it can be
//! neither read nor counted.

use uuid::Uuid;
use wa_core::messages::polls::{VOTABLE, options_of, poll_of};
use wa_core::messages::{MessageType, MessageUpdate, PollVote};
use wa_core::provider::Ballot;
use wa_core::store::{Store, StoreError};
use wa_core::time::{self, OffsetDateTime};
use wa_core::webhooks::payload;

use crate::Worker;

/// A vote as the provider reported it.
pub(crate) struct Vote<'a> {
    pub(crate) poll_message_id: &'a str,
    pub(crate) chat: &'a str,
    pub(crate) voter: &'a str,
    pub(crate) ballot: &'a Ballot,
    pub(crate) voted_at: OffsetDateTime,
}

/// The bytes of a poll secret stored as hex; `None` when it is not hex.
fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

impl Worker {
    /// Records `vote` on its poll with the `poll_vote` event (see the module docs).
    pub(crate) async fn vote_received(
        &self,
        store: &dyn Store,
        device_id: Uuid,
        vote: Vote<'_>,
    ) -> Result<(), StoreError> {
        let poll_id = vote.poll_message_id;
        let poll = match store.get_message(device_id, poll_id).await? {
            Some(m) if m.kind == MessageType::Poll => m,
            _ => {
                tracing::info!(%device_id, poll_message_id = %poll_id, "vote on a poll this device does not have dropped");
                return Ok(());
            }
        };
        let Some((options, _, secret)) = poll_of(poll.content.as_ref()) else {
            tracing::warn!(%device_id, poll_message_id = %poll_id, "stored poll without its options; vote dropped");
            return Ok(());
        };
        let selected = match vote.ballot {
            Ballot::Options(names) => options
                .iter()
                .filter(|o| names.contains(o))
                .cloned()
                .collect(),
            Ballot::Sealed(sealed) => {
                let Some(secret) = unhex(secret) else {
                    tracing::warn!(%device_id, poll_message_id = %poll_id, "stored poll secret is not hex; vote dropped");
                    return Ok(());
                };
                match self
                    .provider
                    .open_vote(device_id, poll_id, vote.voter, sealed, &secret)
                    .await
                {
                    Ok(hashes) => options_of(options, &hashes),
                    Err(e) => {
                        tracing::warn!(%device_id, poll_message_id = %poll_id, error = %e, "vote dropped");
                        return Ok(());
                    }
                }
            }
        };
        let u = MessageUpdate {
            updated_at: Some(time::now()),
            vote: Some(PollVote {
                voter: vote.voter.to_owned(),
                selected_options: selected,
                voted_at: vote.voted_at,
            }),
            ..MessageUpdate::default()
        };
        // Votes of one device arrive in order on its one session, so the tally counted
        // from this read is the one committed.
        let mut next = poll.clone();
        u.apply_to(&mut next);
        let chosen = u.vote.as_ref().map(|v| v.selected_options.clone());
        let event = payload::poll_vote(&next, vote.chat, vote.voter, &chosen.unwrap_or_default());
        match store
            .update_message(device_id, poll_id, &u, &VOTABLE, &[event])
            .await
        {
            Ok(_) => Ok(()),
            Err(StoreError::Conflict(_)) | Err(StoreError::NotFound) => {
                tracing::info!(%device_id, poll_message_id = %poll_id, "vote on a poll no longer taking votes dropped");
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_secret_is_hex() {
        assert_eq!(unhex("00ab7F"), Some(vec![0, 0xab, 0x7f]));
        for bad in ["abc", "zz", "é0"] {
            assert_eq!(unhex(bad), None, "{bad}");
        }
    }
}
