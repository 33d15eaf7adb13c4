//! GitHub over its REST API, authenticated by a token or as a GitHub App (a JWT signed with
//! the app's private key, exchanged per repository for installation tokens that are cached
//! until shortly before they expire). The base URL comes from `GITHUB_API_URL`, so GitHub
//! Enterprise and the test fake work the same way. Rate limits are honoured (`Retry-After`,
//! `X-RateLimit-Remaining`/`Reset`, and secondary limits that carry neither: a 429, or a 403
//! that says so, waited out with a growing pause), polling uses ETags, a pull request whose
//! mergeability GitHub is still computing is read again, and a merge GitHub answers "Base
//! branch was modified" is tried again — all within bounds ([`Waits`]).

mod checks;
mod client;
mod comments;
mod pulls;
mod repo;
mod retry;
mod setup;

pub use checks::StatusState;
use client::{App, Credentials, MAX_PAGES};
pub use client::{GitHub, GitHubError, Waits};
pub use pulls::{Merge, Pull};
pub use repo::GitHubRepo;
pub use retry::is_transient;
pub use setup::{Hook, HookConfig, HookDelivery, HookResponse, WantedHook};
