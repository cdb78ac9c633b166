//! End-to-end tests: the real `wa-server` binary on a free loopback port, driven over HTTP.

mod aws;
mod dashboard;
mod devices;
mod foundation;
mod messages;
mod observability;
mod support;
mod webhooks;
mod worker;
