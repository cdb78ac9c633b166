//! End-to-end tests: the real `wa-server` binary on a free loopback port, driven over HTTP.

mod aws;
mod aws_stack;
mod conversations;
mod dashboard;
mod devices;
mod fleet;
mod foundation;
mod groups;
mod limits;
mod media;
mod messages;
mod observability;
mod permissions;
mod sessions;
mod support;
mod webhook_secret;
mod webhooks;
mod worker;
