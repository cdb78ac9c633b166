//! Messages: the record ([`record`]), the send request and its validation ([`request`]),
//! and the media rules ([`media`]). Everything is re-exported here, so `messages::Message`,
//! `messages::SendRequest` and `messages::check_bytes` name the same items.

pub mod media;
pub mod record;
pub mod request;

pub use media::{check_bytes, magic_matches};
pub use record::*;
pub use request::*;
