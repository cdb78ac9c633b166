//! Votes on polls: each voter's latest vote, kept with the poll's stored message, and the
//! tally over them. WhatsApp carries a vote's choices as the SHA-256 hashes of the option
//! names ([`option_hash`]); [`options_of`] maps them back to names.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use wa_errors::{ApiError, ApiResult};

use super::record::{Content, MessageStatus};
use crate::time::OffsetDateTime;

/// A voter's latest vote on a poll.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollVote {
    /// Who voted (a JID as WhatsApp names the voter).
    pub voter: String,
    /// The options chosen, by name, in the poll's order (never empty: an empty vote
    /// withdraws the voter's vote and is not kept).
    pub selected_options: Vec<String>,
    #[serde(with = "crate::time::rfc3339")]
    pub voted_at: OffsetDateTime,
}

/// The statuses of a poll that takes votes: sent (and on) or received. A poll revoked,
/// failed or not sent yet takes none.
pub const VOTABLE: [MessageStatus; 5] = [
    MessageStatus::Sent,
    MessageStatus::Delivered,
    MessageStatus::Read,
    MessageStatus::Played,
    MessageStatus::Received,
];

/// The hash WhatsApp names an option by in a vote: SHA-256 of its name.
pub fn option_hash(name: &str) -> [u8; 32] {
    Sha256::digest(name.as_bytes()).into()
}

/// The options of `options` whose hashes are in `hashes`, in the poll's order; hashes of
/// no option are left out.
pub fn options_of(options: &[String], hashes: &[Vec<u8>]) -> Vec<String> {
    options
        .iter()
        .filter(|o| hashes.iter().any(|h| h.as_slice() == option_hash(o)))
        .cloned()
        .collect()
}

/// `votes` with `vote` as its voter's latest: the voter's earlier vote is replaced, or
/// withdrawn when `vote` selects nothing. A vote older than the voter's kept one (a late
/// redelivery) changes nothing.
pub fn apply_vote(votes: &mut Vec<PollVote>, vote: &PollVote) {
    if votes
        .iter()
        .any(|v| v.voter == vote.voter && v.voted_at > vote.voted_at)
    {
        return;
    }
    votes.retain(|v| v.voter != vote.voter);
    if !vote.selected_options.is_empty() {
        votes.push(vote.clone());
    }
}

/// How many voters chose each option, every option listed (in the poll's order).
pub fn tally(options: &[String], votes: &[PollVote]) -> Vec<(String, u64)> {
    options
        .iter()
        .map(|o| {
            let n = votes
                .iter()
                .filter(|v| v.selected_options.contains(o))
                .count();
            (o.clone(), n as u64)
        })
        .collect()
}

/// The question, options, selectable count and secret of a poll's content.
pub fn poll_of(content: Option<&Content>) -> Option<(&[String], u32, &str)> {
    match content {
        Some(Content::Poll {
            options,
            selectable_count,
            secret,
            ..
        }) => Some((options.as_slice(), *selectable_count, secret.as_str())),
        _ => None,
    }
}

/// Checks a vote given by name (the sandbox's): each a distinct option of the poll, at
/// most `selectable_count` of them (none withdraws the vote). Answers them in the poll's
/// order; a bad one is validation_error on `selected_options`.
pub fn check_selection(
    options: &[String],
    selectable_count: u32,
    selected: &[String],
) -> ApiResult<Vec<String>> {
    let field = "selected_options";
    if let Some(bad) = selected.iter().find(|s| !options.contains(s)) {
        return Err(ApiError::validation(
            field,
            format!("`{bad}` is not an option of the poll"),
        ));
    }
    let chosen: Vec<String> = options
        .iter()
        .filter(|o| selected.contains(o))
        .cloned()
        .collect();
    if chosen.len() != selected.len() {
        return Err(ApiError::validation(
            field,
            "`selected_options` must not repeat an option",
        ));
    }
    if chosen.len() > selectable_count as usize {
        return Err(ApiError::validation(
            field,
            format!("the poll lets a voter choose at most {selectable_count} option(s)"),
        ));
    }
    Ok(chosen)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn vote(voter: &str, options: &[&str]) -> PollVote {
        PollVote {
            voter: voter.into(),
            selected_options: names(options),
            voted_at: crate::time::now(),
        }
    }

    #[test]
    fn an_option_is_named_by_the_sha256_of_its_name() {
        assert_eq!(
            crate::auth::hex(&option_hash("Pizza")),
            "f12958816a49adfa2c6c8de8dd2144c163e92c5e375de964d533187c7d236c36"
        );
        let options = names(&["Pizza", "Sushi", "Tacos"]);
        let hashes = vec![
            option_hash("Tacos").to_vec(),
            vec![0; 32],
            option_hash("Pizza").to_vec(),
        ];
        assert_eq!(options_of(&options, &hashes), names(&["Pizza", "Tacos"]));
        assert!(options_of(&options, &[]).is_empty());
    }

    #[test]
    fn a_later_vote_replaces_the_earlier_and_an_empty_one_withdraws() {
        let mut votes = Vec::new();
        apply_vote(&mut votes, &vote("a", &["Pizza"]));
        apply_vote(&mut votes, &vote("b", &["Pizza", "Sushi"]));
        apply_vote(&mut votes, &vote("a", &["Sushi"]));
        let options = names(&["Pizza", "Sushi", "Tacos"]);
        assert_eq!(
            tally(&options, &votes),
            [
                ("Pizza".into(), 1),
                ("Sushi".into(), 2),
                ("Tacos".into(), 0)
            ]
        );
        let late = PollVote {
            voted_at: votes[0].voted_at - ::time::Duration::seconds(1),
            ..vote("b", &["Tacos"])
        };
        apply_vote(&mut votes, &late);
        assert_eq!(
            votes[0].selected_options,
            names(&["Pizza", "Sushi"]),
            "{votes:?}"
        );
        apply_vote(&mut votes, &vote("b", &[]));
        assert_eq!(votes.len(), 1);
        assert_eq!(
            tally(&options, &votes),
            [
                ("Pizza".into(), 0),
                ("Sushi".into(), 1),
                ("Tacos".into(), 0)
            ]
        );
    }

    #[test]
    fn a_selection_must_name_distinct_options_within_the_count() {
        let options = names(&["Pizza", "Sushi", "Tacos"]);
        assert_eq!(
            check_selection(&options, 2, &names(&["Tacos", "Pizza"])).unwrap(),
            names(&["Pizza", "Tacos"])
        );
        assert!(check_selection(&options, 1, &[]).unwrap().is_empty());
        for (count, selected) in [
            (3, names(&["Burgers"])),
            (3, names(&["Pizza", "Pizza"])),
            (1, names(&["Pizza", "Sushi"])),
        ] {
            let e = check_selection(&options, count, &selected).unwrap_err();
            assert_eq!(e.details()["field"], "selected_options", "{selected:?}");
        }
    }
}
