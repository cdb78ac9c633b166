//! Queue adapters. `LocalQueue` is the embedded server's durable queue: every named queue
//! is rows of one SQLite file (WAL, synchronous=FULL), with visibility timeouts, receive
//! counts, per-group FIFO and dead letters, so queued work survives a crash.

mod local;

pub use local::LocalQueue;
