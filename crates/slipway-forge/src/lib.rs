//! Forges: the `Forge` trait (`forge`) with GitHub's implementation (`github`), git access
//! (`git`), the local forge's merges (`local`), and GitHub webhook
//! deliveries verified over their raw body and turned into typed events (`webhook`), so that
//! nothing past this crate sees a raw payload.

pub mod forge;
pub mod git;
pub mod github;
pub mod local;
pub mod webhook;

pub use forge::{
    Annotation, CommitInfo, FileChange, Forge, MergeResult, Opened, PullState, Report, Verdict,
    MAX_SHOWN,
};
