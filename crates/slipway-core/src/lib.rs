//! Slipway's pure domain. No IO, no async runtime: everything here is a value
//! or a function of values, so it is tested exhaustively with plain unit tests.

pub mod backoff;
pub mod dotenv;
pub mod ids;
pub mod invalid;
pub mod judge;
pub mod limits;
pub mod masker;
pub mod merge;
pub mod notify;
pub mod pipeline;
pub mod pipeline_source;
pub mod policy;
pub mod project;
pub mod prompt;
pub mod role;
pub mod run;
pub mod secret;
pub mod settings;
pub mod turn;
pub mod ui;
pub mod ui_goal;
pub mod validation;

pub use ids::{ProjectId, TokenId, ValidationId};
pub use invalid::Invalid;
pub use masker::Masker;
pub use pipeline::PipelineConfig;
pub use project::{Project, ProjectDraft, ProjectPatch, RepoLocation};
pub use role::Role;
pub use settings::Settings;
