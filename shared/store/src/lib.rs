//! Store adapters. `SqliteStore` (feature `sqlite`, the default) keeps the embedded
//! server's state in one SQLite file (WAL mode, synchronous=FULL: a write is on disk before
//! it is acknowledged). `DynamoStore` (feature `dynamo`) keeps it in one DynamoDB table.

#[cfg(feature = "sqlite")]
pub mod db;
#[cfg_attr(not(any(feature = "sqlite", feature = "dynamo")), allow(dead_code))]
mod inbound;
#[cfg_attr(not(any(feature = "sqlite", feature = "dynamo")), allow(dead_code))]
mod page;
#[cfg(feature = "sqlite")]
mod sqlite;

#[cfg(feature = "sqlite")]
pub use sqlite::{InlineQueue, SqliteStore};

#[cfg(feature = "dynamo")]
mod dynamo;

#[cfg(feature = "dynamo")]
pub use dynamo::DynamoStore;
