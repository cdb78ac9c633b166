//! The whatsapp-rust provider.
