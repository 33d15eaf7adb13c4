//! The webhook relay's state on the projects page: connected or failing (and why), the last
//! delivery pulled, and what the relay still holds.

use super::lists::{when, When};
use crate::relay::{Connection, RelayStatus};

pub(super) struct RelayView {
    pub(super) url: String,
    /// `connecting`, `connected` or `failing`.
    pub(super) state: &'static str,
    pub(super) error: Option<String>,
    pub(super) since: When,
    pub(super) last_delivery: Option<When>,
    pub(super) backlog: Option<u64>,
    pub(super) stored: u64,
    pub(super) duplicates: u64,
    pub(super) refused: u64,
    pub(super) last_refusal: Option<String>,
}

pub(super) fn view(status: Option<&RelayStatus>) -> Option<RelayView> {
    let shown = status?.snapshot();
    Some(RelayView {
        state: shown.state_name(),
        error: match &shown.connection {
            Connection::Failing { error } => Some(error.clone()),
            Connection::Connecting | Connection::Connected => None,
        },
        since: when(shown.since),
        last_delivery: shown.last_delivery_at.map(when),
        backlog: shown.backlog,
        stored: shown.stored,
        duplicates: shown.duplicates,
        refused: shown.refused,
        last_refusal: shown.last_refusal,
        url: shown.url,
    })
}
