//! Test support of wa-server, for the tests of every crate (a dev-dependency only, never a
//! dependency of a shipped binary):
//!
//! - `conformance`: the suites every adapter of the store, queue and media ports runs in its
//!   tests;
//! - `fixtures`: the records tests build (Apps, devices, messages), in one place;
//! - `moto`: a moto server (the AWS emulator) for the tests of the AWS adapters;
//! - `queues`: a queue that watches another, for the tests that assert on the calls made;
//! - `races`: how many of a test's racing tasks succeeded.

pub mod conformance;
pub mod fixtures;
pub mod moto;
pub mod queues;
pub mod races;
