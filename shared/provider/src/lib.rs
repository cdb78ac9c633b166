//! Provider adapters of the provider port (`wa_core::provider::Provider`):
//! the sandbox (simulated WhatsApp, always built) and whatsapp-rust (feature `whatsapp`).

pub mod sandbox;
#[cfg(feature = "whatsapp")]
pub mod whatsapp;
