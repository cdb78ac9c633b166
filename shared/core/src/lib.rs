//! The domain of wa-server: its records, validation rules, use cases, and the ports
//! (small async traits) that storage adapters implement: the store, the queue and media.

pub mod apps;
pub mod auth;
pub mod consume;
pub mod contacts;
pub mod device_service;
pub mod devices;
pub mod groups;
pub mod jid;
pub mod layer;
pub mod lease;
pub mod lifecycle;
pub mod media;
pub mod messages;
pub mod metrics;
pub mod net;
pub mod notify;
pub mod outbox;
pub mod private_fs;
pub mod provider;
pub mod qr;
pub mod queue;
pub mod rate;
pub mod send_service;
pub mod session;
pub mod settings;
pub mod store;
pub mod time;
pub mod webhooks;

pub use store::{
    AppStore, AppUpdate, DeviceStore, EventStore, LeaseStore, MessageStore, Page, PageRequest,
    ReplyStore, Store, StoreError,
};
