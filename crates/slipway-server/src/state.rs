//! What every handler shares.

use crate::metrics::Metrics;
use slipway_engine::Engine;
use slipway_store::Store;
use std::sync::Arc;

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub engine: Engine,
    pub metrics: Arc<Metrics>,
    /// `GITHUB_WEBHOOK_SECRET`: deliveries are refused while it is not set.
    pub webhook_secret: Option<Arc<str>>,
    /// SHA-256 of `SLIPWAY_ADMIN_TOKEN`, when it is set.
    pub env_admin_hash: Option<[u8; 32]>,
    /// Session cookies are `Secure` when Slipway is served over HTTPS (`SLIPWAY_PUBLIC_URL`).
    pub secure_cookies: bool,
    /// Bumped when a token is revoked or a session ends: open event streams check again
    /// that what they were opened with is still valid.
    pub auth_epoch: Arc<tokio::sync::watch::Sender<u64>>,
    /// SHA-256 of `SLIPWAY_METRICS_TOKEN`, when `/metrics` needs a token.
    pub metrics_hash: Option<[u8; 32]>,
    /// The webhook relay's state, when Slipway pulls from one.
    pub relay: Option<crate::relay::RelayStatus>,
}

impl AppState {
    /// Tells open event streams that some credential stopped being valid.
    pub fn credentials_changed(&self) {
        self.auth_epoch.send_modify(|epoch| *epoch += 1);
    }
}
