//! Queue adapters. `LocalQueue` (feature `local`, the default) is the embedded server's
//! durable queue: every named queue is rows of one SQLite file (WAL, synchronous=FULL),
//! with visibility timeouts, receive counts, per-group FIFO and dead letters, so queued
//! work survives a crash. `SqsQueue` (feature `sqs`) maps the same port onto Amazon SQS;
//! the `sqs` module also creates the deployment's queues.

#[cfg(feature = "local")]
mod local;

#[cfg(feature = "local")]
pub use local::LocalQueue;

#[cfg(feature = "sqs")]
pub mod sqs;

#[cfg(feature = "sqs")]
pub use sqs::SqsQueue;
