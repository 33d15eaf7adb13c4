//! The HTTP routes, one module per resource.

pub mod deliveries;
pub mod hooks;
pub mod notifications;
pub mod paging;
pub mod projects;
pub mod pulls;
pub mod runs;
pub mod secrets;
pub mod settings;
pub mod system;
pub mod tokens;
pub mod validations;
pub mod variables;
pub mod webhooks;

/// A moment as the API writes it (RFC 3339).
pub(crate) fn rfc3339(at: time::OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
