//! The merge and fix policy of a pull request: the project's settings, overridden by the
//! `[merge]` and `[fix]` sections of the `.slipway.toml` on the pull request's base branch.
//! The head's own file does not count here, so a pull request cannot grant itself a merge or
//! more fix attempts.

use crate::pipeline::{MergeMethod, PipelineConfig};
use crate::settings::Settings;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PullRequestPolicy {
    pub auto_merge: bool,
    pub merge_method: MergeMethod,
    pub max_fix_attempts: u32,
    /// From the settings only.
    pub required_approvals: u32,
    /// From the settings only.
    pub delete_branch_after_merge: bool,
}

impl PullRequestPolicy {
    /// `base_file` is the base branch's `.slipway.toml`, when it has a valid one.
    pub fn new(settings: &Settings, base_file: Option<&PipelineConfig>) -> Self {
        let merge = base_file.and_then(|file| file.merge.as_ref());
        let fix = base_file.and_then(|file| file.fix.as_ref());
        Self {
            auto_merge: merge.and_then(|m| m.auto).unwrap_or(settings.auto_merge),
            merge_method: merge
                .and_then(|m| m.method)
                .unwrap_or(settings.merge_method),
            max_fix_attempts: fix
                .and_then(|f| f.max_attempts)
                .unwrap_or(settings.max_fix_attempts),
            required_approvals: settings.required_approvals,
            delete_branch_after_merge: settings.delete_branch_after_merge,
        }
    }
}

/// The repository's pipeline file, at its root.
pub const PIPELINE_FILE: &str = ".slipway.toml";

/// Whether a pull request changing `files` rewrites its own checks: the pipeline that judged
/// it is its own `.slipway.toml`, so such a pull request is never merged automatically.
pub fn changes_its_own_checks(files: &[String]) -> bool {
    files.iter().any(|file| file == PIPELINE_FILE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings {
            auto_merge: false,
            merge_method: MergeMethod::Merge,
            max_fix_attempts: 3,
            ..Settings::default()
        }
    }

    #[test]
    fn without_a_file_the_settings_apply() {
        let policy = PullRequestPolicy::new(&settings(), None);
        assert_eq!(
            policy,
            PullRequestPolicy {
                auto_merge: false,
                merge_method: MergeMethod::Merge,
                max_fix_attempts: 3,
                required_approvals: 0,
                delete_branch_after_merge: false,
            }
        );
    }

    #[test]
    fn each_key_the_file_sets_wins_and_the_others_stay() {
        let file = PipelineConfig::from_toml(
            ".slipway.toml",
            "[merge]\nauto = true\n[fix]\nmax_attempts = 1\n",
        )
        .unwrap();
        let policy = PullRequestPolicy::new(&settings(), Some(&file));
        assert!(policy.auto_merge);
        assert_eq!(policy.merge_method, MergeMethod::Merge);
        assert_eq!(policy.max_fix_attempts, 1);

        let file = PipelineConfig::from_toml(
            ".slipway.toml",
            "[merge]\nauto = false\nmethod = \"squash\"\n",
        )
        .unwrap();
        let mut on = settings();
        on.auto_merge = true;
        let policy = PullRequestPolicy::new(&on, Some(&file));
        assert!(!policy.auto_merge, "the file can turn auto-merge off too");
        assert_eq!(policy.merge_method, MergeMethod::Squash);
        assert_eq!(policy.max_fix_attempts, 3);
    }

    #[test]
    fn a_pull_request_that_rewrites_the_pipeline_file_changes_its_own_checks() {
        let files = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        assert!(changes_its_own_checks(&files(&[
            "src/a.rs",
            ".slipway.toml"
        ])));
        assert!(!changes_its_own_checks(&files(&[
            "src/a.rs",
            "docs/.slipway.toml"
        ])));
        assert!(!changes_its_own_checks(&files(&[])));
    }
}
