//! A store wrapped around another. [`Layered`] passes every call of every store port to the
//! inner store, and lets its [`Layer`] act before each call and after each write that
//! committed events. The events queue's nudges (`crate::outbox`) and the fault injection of
//! tests are layers, so that the forwarding of the store's methods is written once.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use uuid::Uuid;

use crate::apps::App;
use crate::devices::{Device, DeviceStatus, DeviceUpdate};
use crate::lease::{Claim, Fence, Lease, Member, Owner};
use crate::messages::{Message, MessageStatus, MessageUpdate};
use crate::provider::Presence;
use crate::queue::{Command, Queue, Received};
use crate::session::Reply;
use crate::store::*;
use crate::time::OffsetDateTime;
use crate::webhooks::Event;

/// What a [`Layered`] store does around the inner store's calls.
#[async_trait]
pub trait Layer: Send + Sync + 'static {
    /// Runs before the call `op` (the store method's name) reaches the inner store; an
    /// error is the call's answer, and the inner store is not called.
    fn before(&self, op: &'static str) -> Result<(), StoreError> {
        let _ = op;
        Ok(())
    }

    /// Runs after a write committed `events` (never after a failed write, nor after one
    /// that wrote nothing, such as a send whose idempotency key existed).
    async fn committed(&self, events: &[Event]) {
        let _ = events;
    }
}

/// `inner`, with `layer` around each of its calls. Its fenced views keep the layer.
pub struct Layered<L> {
    inner: Arc<dyn Store>,
    layer: Arc<L>,
}

impl<L: Layer> Layered<L> {
    pub fn new(inner: Arc<dyn Store>, layer: Arc<L>) -> Layered<L> {
        Layered { inner, layer }
    }

    /// The layer, for its owner to inspect.
    pub fn layer(&self) -> &L {
        &self.layer
    }

    /// The answer of a write marked `commits(events)`: the layer sees `events` if it
    /// succeeded.
    async fn commits<T>(
        &self,
        result: Result<T, StoreError>,
        events: &[Event],
    ) -> Result<T, StoreError> {
        if result.is_ok() && !events.is_empty() {
            self.layer.committed(events).await;
        }
        result
    }

    /// The answer of a write marked `creates(events)`: an existing key wrote nothing, so
    /// the layer sees the events of a created message only.
    async fn creates(
        &self,
        result: Result<Created, StoreError>,
        events: &[Event],
    ) -> Result<Created, StoreError> {
        let written: &[Event] = match result {
            Ok(Created::Created) => events,
            _ => &[],
        };
        self.commits(result, written).await
    }

    /// The answer of a write marked `redelivers()`: the redelivered event is committed
    /// again, and the layer sees it.
    async fn redelivers(
        &self,
        result: Result<Delivery, StoreError>,
    ) -> Result<Delivery, StoreError> {
        if let Ok(d) = &result {
            self.layer.committed(std::slice::from_ref(&d.event)).await;
        }
        result
    }
}

/// `Layered`'s impls of the store ports, from their list (`crate::store::store_ports`).
macro_rules! forward_ports {
    ($(
        $(#[$port_attr:meta])*
        pub trait $port:ident { $($methods:tt)* }
        $(provided { $($provided:tt)* })?
        $(verbatim { $($verbatim:tt)* })?
    )*) => {
        $(forward_port! { $port { $($methods)* $($($provided)*)? } })*
    };
}

/// `Layered`'s impl of the port `$port`: each method runs `before` with its name, then the
/// inner store's method with the same arguments; a marked write hands its answer to the
/// `Layered` method of its mark (`commits`, `creates`, `redelivers`). `fenced` (written out)
/// keeps the layer around the fenced view.
macro_rules! forward_port {
    (@impl $port:ident {
        $(
            $(#[$attr:meta])*
            fn $name:ident($($arg:ident: $ty:ty),* $(,)?) -> $ok:ty
                $(=> $mark:ident($($marked:ident),*))? $(= |$store:ident| $default:expr)?;
        )*
    } $($written_out:tt)*) => {
        #[async_trait]
        impl<L: Layer> $port for Layered<L> {
            $(
                $(#[$attr])*
                #[allow(clippy::let_and_return)]
                async fn $name(&self, $($arg: $ty),*) -> Result<$ok, StoreError> {
                    self.layer.before(stringify!($name))?;
                    let result = self.inner.$name($($arg),*).await;
                    $(let result = self.$mark(result, $($marked),*).await;)?
                    result
                }
            )*
            $($written_out)*
        }
    };
    (LeaseStore { $($methods:tt)* }) => {
        forward_port! { @impl LeaseStore { $($methods)* }
            fn fenced(&self, fence: Fence) -> Arc<dyn Store> {
                Arc::new(Layered::new(self.inner.fenced(fence), self.layer.clone()))
            }
        }
    };
    ($port:ident { $($methods:tt)* }) => {
        forward_port! { @impl $port { $($methods)* } }
    };
}

crate::store::store_ports!(forward_ports);
