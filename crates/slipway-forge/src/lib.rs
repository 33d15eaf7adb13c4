//! Forges. For now: GitHub webhook deliveries, verified over their raw body and turned into
//! typed events, so that nothing past this crate sees a raw payload.

pub mod webhook;
