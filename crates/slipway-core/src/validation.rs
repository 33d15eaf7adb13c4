//! Validations: which steps run for a pipeline, their statuses, and the overall verdict.

use crate::pipeline::PipelineConfig;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The steps of DESIGN.md §6, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum StepName {
    Checkout,
    Setup,
    Build,
    Deploy,
    Test,
    Ui,
    Analysis,
    Judge,
    Merge,
}

/// A step's status. `Error` means the infrastructure failed, not the code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Queued,
    Running,
    Passed,
    Failed,
    Skipped,
    Cancelled,
    Error,
}

/// A validation's status as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ValidationStatus {
    Queued,
    Running,
    Passed,
    Failed,
    Cancelled,
    Error,
}

macro_rules! string_enum {
    ($ty:ty { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $ty {
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl FromStr for $ty {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok(Self::$variant),)+
                    other => Err(format!("unknown {} '{other}'", stringify!($ty))),
                }
            }
        }
    };
}

string_enum!(StepName {
    Checkout => "checkout", Setup => "setup", Build => "build", Deploy => "deploy",
    Test => "test", Ui => "ui", Analysis => "analysis", Judge => "judge", Merge => "merge",
});
string_enum!(StepStatus {
    Queued => "queued", Running => "running", Passed => "passed", Failed => "failed",
    Skipped => "skipped", Cancelled => "cancelled", Error => "error",
});
string_enum!(ValidationStatus {
    Queued => "queued", Running => "running", Passed => "passed", Failed => "failed",
    Cancelled => "cancelled", Error => "error",
});

impl StepName {
    /// Whether the step checks the code; setup only prepares it and checkout only fetches it.
    pub fn is_check(self) -> bool {
        matches!(
            self,
            StepName::Build
                | StepName::Deploy
                | StepName::Test
                | StepName::Ui
                | StepName::Analysis
                | StepName::Judge
        )
    }
}

impl StepStatus {
    pub fn is_final(self) -> bool {
        !matches!(self, StepStatus::Queued | StepStatus::Running)
    }
}

impl ValidationStatus {
    pub fn is_final(self) -> bool {
        !matches!(self, ValidationStatus::Queued | ValidationStatus::Running)
    }

    /// The verdict of finished steps: an infrastructure error outranks a failure, a failure
    /// outranks a cancellation; only passed and skipped steps make a pass.
    pub fn from_steps(steps: impl IntoIterator<Item = StepStatus>) -> Self {
        let mut verdict = ValidationStatus::Passed;
        for status in steps {
            let this = match status {
                StepStatus::Passed | StepStatus::Skipped => continue,
                StepStatus::Error => return ValidationStatus::Error,
                StepStatus::Failed => ValidationStatus::Failed,
                StepStatus::Cancelled => ValidationStatus::Cancelled,
                StepStatus::Queued | StepStatus::Running => ValidationStatus::Running,
            };
            verdict = match (verdict, this) {
                (ValidationStatus::Failed, _) | (_, ValidationStatus::Failed) => {
                    ValidationStatus::Failed
                }
                (ValidationStatus::Running, _) | (_, ValidationStatus::Running) => {
                    ValidationStatus::Running
                }
                _ => ValidationStatus::Cancelled,
            };
        }
        verdict
    }
}

/// The verdict of a validation's finished steps: as [`ValidationStatus::from_steps`], but
/// a pass needs at least one step that counts as a check to have passed (nothing checked is
/// never green: it is an error, the configuration's, not the code's).
pub fn verdict(
    steps: &[(StepName, StepStatus)],
    counts_as_check: impl Fn(StepName) -> bool,
) -> ValidationStatus {
    let status = ValidationStatus::from_steps(steps.iter().map(|s| s.1));
    let checked = steps
        .iter()
        .any(|&(name, status)| counts_as_check(name) && status == StepStatus::Passed);
    if status == ValidationStatus::Passed && !checked {
        ValidationStatus::Error
    } else {
        status
    }
}

/// What the pipeline will do for one step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepPlan {
    /// Run it.
    Run,
    /// Do not run it, for this reason.
    Skip(String),
}

/// The plan for every step of a pipeline, in order; a pull request's merge is decided after
/// its verdict.
pub fn plan(config: &PipelineConfig, pull_request: bool) -> Vec<(StepName, StepPlan)> {
    let configured = |present: bool, what: &str| {
        if present {
            StepPlan::Run
        } else {
            StepPlan::Skip(format!("no [{what}] section in the pipeline"))
        }
    };
    vec![
        (StepName::Checkout, StepPlan::Run),
        (StepName::Setup, configured(config.setup.is_some(), "setup")),
        (StepName::Build, configured(config.build.is_some(), "build")),
        (
            StepName::Deploy,
            configured(config.service.is_some(), "service"),
        ),
        (StepName::Test, configured(config.test.is_some(), "test")),
        (StepName::Ui, configured(config.ui.is_some(), "ui")),
        (
            StepName::Analysis,
            configured(config.analysis.is_some(), "analysis"),
        ),
        (StepName::Judge, configured(config.judge.is_some(), "judge")),
        (
            StepName::Merge,
            StepPlan::Skip(if pull_request {
                "decided after the verdict, by the merge controller".into()
            } else {
                "merging needs a pull request on a forge; this validation has none".into()
            }),
        ),
    ]
}

/// Whether a skipped step's reason (from [`plan`]) is that its section is absent: pages fold
/// such steps into one line.
pub fn not_configured(reason: &str) -> bool {
    reason.starts_with("no [") && reason.ends_with("] section in the pipeline")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::TestSection;
    use StepStatus::*;

    #[test]
    fn passed_and_skipped_steps_make_a_pass() {
        assert_eq!(
            ValidationStatus::from_steps([Passed, Skipped, Passed]),
            ValidationStatus::Passed
        );
        assert_eq!(ValidationStatus::from_steps([]), ValidationStatus::Passed);
    }

    #[test]
    fn errors_outrank_failures_which_outrank_cancellations() {
        assert_eq!(
            ValidationStatus::from_steps([Passed, Failed, Error]),
            ValidationStatus::Error
        );
        assert_eq!(
            ValidationStatus::from_steps([Cancelled, Failed]),
            ValidationStatus::Failed
        );
        assert_eq!(
            ValidationStatus::from_steps([Passed, Cancelled, Skipped]),
            ValidationStatus::Cancelled
        );
        assert_eq!(
            ValidationStatus::from_steps([Passed, Running, Queued]),
            ValidationStatus::Running
        );
    }

    #[test]
    fn a_step_never_passes_for_a_section_that_is_absent() {
        let config = PipelineConfig {
            test: Some(TestSection {
                commands: vec!["true".into()],
                ..Default::default()
            }),
            ..Default::default()
        };
        let plan = plan(&config, false);
        assert_eq!(plan.len(), 9);
        assert_eq!(plan[0], (StepName::Checkout, StepPlan::Run));
        assert!(matches!(&plan[2], (StepName::Build, StepPlan::Skip(r)) if r.contains("[build]")));
        assert_eq!(plan[4], (StepName::Test, StepPlan::Run));
        assert!(plan[5..]
            .iter()
            .all(|(_, p)| matches!(p, StepPlan::Skip(_))));
    }

    #[test]
    fn nothing_checked_is_never_a_pass() {
        use StepName::*;
        let checks = StepName::is_check;
        let setup_only = [(Checkout, Passed), (Setup, Passed), (Test, Skipped)];
        assert_eq!(verdict(&setup_only, checks), ValidationStatus::Error);
        assert_eq!(
            verdict(&setup_only, |s| s == Setup || s.is_check()),
            ValidationStatus::Passed
        );
        let tested = [(Checkout, Passed), (Setup, Skipped), (Test, Passed)];
        assert_eq!(verdict(&tested, checks), ValidationStatus::Passed);
        let failed = [(Checkout, Passed), (Build, Failed), (Test, Skipped)];
        assert_eq!(verdict(&failed, checks), ValidationStatus::Failed);
    }

    #[test]
    fn names_and_statuses_round_trip_through_text() {
        for name in ["checkout", "deploy", "merge"] {
            assert_eq!(name.parse::<StepName>().unwrap().as_str(), name);
        }
        assert!("deploying".parse::<StepName>().is_err());
        assert_eq!("error".parse::<StepStatus>(), Ok(Error));
    }
}
