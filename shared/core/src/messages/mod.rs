//! Messages: the record ([`record`]), the send request and its validation ([`request`]),
//! the media rules ([`media`]) and what a reaction's emoji is ([`emoji`]). Everything is
//! re-exported here, so `messages::Message`, `messages::SendRequest` and
//! `messages::check_bytes` name the same items.

pub mod actions;
pub mod emoji;
pub mod inbound_id;
pub mod media;
pub mod polls;
pub mod record;
pub mod request;
#[cfg(test)]
pub(crate) mod sample;

pub use emoji::is_one_emoji;
pub use media::{check_bytes, magic_matches};
pub use polls::PollVote;
pub use record::*;
pub use request::*;
