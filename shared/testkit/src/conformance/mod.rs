//! The conformance suites: every adapter of the store port (`wa_core::store`), of the
//! queue port (`wa_core::queue`) and of the media port (`wa_core::media`) runs them in its
//! tests (`wa_testkit::conformance::app_store(store).await`). Each check panics with what broke.
//!
//! The suites use fresh random ids (tenants, Apps, devices, queue names), so they can run
//! against a shared backend.
//!
//! Consistency: reads of a record by its key (`get_app`, `get_device`, `get_message`, ...)
//! see every write answered before them, on every adapter. Listings (`list_apps`,
//! `list_devices`, `devices_with_status`, `list_messages`, `list_deliveries`,
//! `list_leases`, `live_workers`) are
//! eventually consistent on DynamoDB (they read a global secondary index); the checks that
//! list right after writing hold there only because moto's indexes are consistent.
//! Where a use case needs a listing that sees its own writes (deleting an App and its
//! devices), the port has a method that promises it (`DeviceStore::devices_of_app`), and
//! `closed_apps` checks that promise with a device inserted just before.

mod apps;
mod devices;
mod events;
mod leases;
mod media;
mod messages;
mod queue;
mod replies;

pub use apps::{app_store, closed_apps};
pub use devices::device_store;
pub use events::event_store;
pub use leases::{fenced_writes, lease_store, worker_membership};
pub use media::media_store;
pub use messages::message_store;
pub use queue::{
    QueueProfile, queue, queue_basics, queue_dead_letters, queue_delay, queue_groups, queue_inbox,
};
pub use replies::reply_store;
