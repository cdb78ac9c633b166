//! Store adapters. `SqliteStore` keeps the embedded server's state in one SQLite file
//! (WAL mode, synchronous=FULL: a write is on disk before it is acknowledged).

pub mod db;
mod sqlite;

pub use sqlite::SqliteStore;
