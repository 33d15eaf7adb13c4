//! Where a validation's pipeline comes from (DESIGN.md §6): the repository's `.slipway.toml`,
//! then the project's settings (setup commands and pipeline defaults), then the CLI's
//! `--config`. The choice is pure; the report names the winner and why.

use crate::pipeline::{PipelineConfig, SetupSection};
use crate::settings::Settings;
use crate::validation::StepName;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The source a validation's pipeline was taken from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum PipelineSource {
    /// The repository's `.slipway.toml`.
    Repository,
    /// The project's settings: the setup commands tab and the pipeline defaults.
    ProjectSettings,
    /// `slipway validate --config FILE`.
    ConfigFile,
    /// "Save and run setup": exactly the settings' setup commands, tried on their branch.
    SetupTrial,
}

impl PipelineSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Repository => "repository",
            Self::ProjectSettings => "project_settings",
            Self::ConfigFile => "config_file",
            Self::SetupTrial => "setup_trial",
        }
    }

    /// Said in reports.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Repository => "the repository's .slipway.toml",
            Self::ProjectSettings => "the project's settings",
            Self::ConfigFile => "the --config file",
            Self::SetupTrial => "the setup commands of the project's settings (a setup trial)",
        }
    }

    /// Which steps a pass needs one of: checks, and for a setup trial setup itself.
    pub fn counts_as_check(self, step: StepName) -> bool {
        step.is_check() || (self == Self::SetupTrial && step == StepName::Setup)
    }
}

impl fmt::Display for PipelineSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PipelineSource {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        [
            Self::Repository,
            Self::ProjectSettings,
            Self::ConfigFile,
            Self::SetupTrial,
        ]
        .into_iter()
        .find(|source| source.as_str() == s)
        .ok_or_else(|| format!("unknown pipeline source '{s}'"))
    }
}

/// The pipeline a validation runs, where it came from, and why that source won.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChosenPipeline {
    pub config: PipelineConfig,
    pub source: PipelineSource,
    pub why: String,
}

/// Said when there is nothing to validate; it tells how to add a pipeline.
pub const NOTHING_TO_VALIDATE: &str = "nothing to validate: the repository has no \
.slipway.toml and the project's settings have no setup commands or pipeline; add a \
.slipway.toml at the repository's root that checks the code, for example\n  [test]\n  \
commands = [\"make test\"]\n(or fill in the project's settings, or pass --config FILE to \
slipway validate)";

/// [`NOTHING_TO_VALIDATE`] as `slipway validate` says it: no project, so no settings.
pub const NOTHING_TO_VALIDATE_HERE: &str = "nothing to validate: the repository has no \
.slipway.toml; add one at the repository's root that checks the code, for example\n  [test]\n  \
commands = [\"make test\"]\n(or pass --config FILE with such a pipeline)";

/// Said when a pipeline only prepares the workspace.
pub const NOTHING_CHECKED: &str = "nothing to validate: the pipeline has no [build], [service] \
or [test] section, so no step would check the code; add one, for example\n  [test]\n  \
commands = [\"make test\"]";

/// The pipeline of the project's settings: its defaults, with the setup commands tab as
/// `[setup]`. `None` when the settings hold neither.
pub fn from_settings(settings: &Settings) -> Option<PipelineConfig> {
    let mut config = settings.pipeline.clone();
    if !settings.setup_commands.commands.is_empty() {
        let cache_key = config
            .setup
            .take()
            .map(|setup| setup.cache_key)
            .unwrap_or_default();
        config.setup = Some(SetupSection {
            commands: settings.setup_commands.commands.clone(),
            cache_key,
            timeout_secs: None,
        });
    }
    (config != PipelineConfig::default()).then_some(config)
}

/// Picks the pipeline, in the order of DESIGN.md §6; a setup trial takes exactly the
/// settings' setup commands. `Err` says why nothing can be validated and how to fix it.
pub fn choose(
    repository: Option<PipelineConfig>,
    settings: &Settings,
    config_file: Option<PipelineConfig>,
    setup_trial: bool,
) -> Result<ChosenPipeline, &'static str> {
    let from_settings = from_settings(settings);
    let mut unused = Vec::new();
    let (config, source) = if setup_trial {
        if repository.is_some() {
            unused.push("the repository's .slipway.toml");
        }
        let config = from_settings.filter(|c| c.setup.is_some());
        (
            config.ok_or(NOTHING_TO_VALIDATE)?,
            PipelineSource::SetupTrial,
        )
    } else if let Some(config) = repository {
        unused.extend(from_settings.is_some().then_some("the project's settings"));
        unused.extend(config_file.is_some().then_some("the --config file"));
        (config, PipelineSource::Repository)
    } else if let Some(config) = from_settings {
        unused.extend(config_file.is_some().then_some("the --config file"));
        (config, PipelineSource::ProjectSettings)
    } else if let Some(config) = config_file {
        (config, PipelineSource::ConfigFile)
    } else {
        return Err(NOTHING_TO_VALIDATE);
    };
    if !config.checks_anything() && source != PipelineSource::SetupTrial {
        return Err(NOTHING_CHECKED);
    }
    let mut why = format!("pipeline: {}", source.describe());
    if !unused.is_empty() {
        let reason = if setup_trial {
            "a setup trial runs exactly the typed commands"
        } else {
            "an earlier source wins (.slipway.toml, then the project's settings, then --config)"
        };
        why.push_str(&format!("; not used: {} ({reason})", unused.join(", ")));
    }
    Ok(ChosenPipeline {
        config,
        source,
        why,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::TestSection;

    fn tests_only() -> PipelineConfig {
        PipelineConfig {
            test: Some(TestSection {
                commands: vec!["make test".into()],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn with_setup_commands(commands: &[&str]) -> Settings {
        let mut settings = Settings::default();
        settings.setup_commands.commands = commands.iter().map(|c| c.to_string()).collect();
        settings
    }

    #[test]
    fn the_repository_wins_then_the_settings_then_the_config_file() {
        let settings = with_setup_commands(&["npm ci"]);
        let mut repository = tests_only();
        repository.build = Some(Default::default());
        let chosen = choose(
            Some(repository.clone()),
            &settings,
            Some(tests_only()),
            false,
        )
        .unwrap();
        assert_eq!(chosen.source, PipelineSource::Repository);
        assert_eq!(chosen.config, repository);
        assert!(chosen
            .why
            .contains("not used: the project's settings, the --config file"));

        let mut settings = with_setup_commands(&["npm ci"]);
        settings.pipeline = tests_only();
        let chosen = choose(None, &settings, Some(PipelineConfig::default()), false).unwrap();
        assert_eq!(chosen.source, PipelineSource::ProjectSettings);
        assert_eq!(chosen.config.setup.unwrap().commands, ["npm ci"]);
        assert!(chosen.config.test.is_some());

        let chosen = choose(None, &Settings::default(), Some(tests_only()), false).unwrap();
        assert_eq!(chosen.source, PipelineSource::ConfigFile);
        assert_eq!(chosen.why, "pipeline: the --config file");
    }

    #[test]
    fn nothing_to_validate_says_how_to_add_a_pipeline() {
        let err = choose(None, &Settings::default(), None, false).unwrap_err();
        assert!(
            err.contains(".slipway.toml") && err.contains("[test]"),
            "{err}"
        );
        let setup_only = with_setup_commands(&["npm ci"]);
        assert_eq!(choose(None, &setup_only, None, false), Err(NOTHING_CHECKED));
    }

    #[test]
    fn a_setup_trial_runs_exactly_the_typed_commands() {
        let settings = with_setup_commands(&["pip install -r requirements.txt"]);
        let chosen = choose(Some(tests_only()), &settings, None, true).unwrap();
        assert_eq!(chosen.source, PipelineSource::SetupTrial);
        assert_eq!(
            chosen.config.setup.unwrap().commands,
            ["pip install -r requirements.txt"]
        );
        assert!(chosen.config.test.is_none());
        assert!(chosen
            .why
            .contains("not used: the repository's .slipway.toml"));
        assert!(choose(None, &Settings::default(), None, true).is_err());
        assert!(PipelineSource::SetupTrial.counts_as_check(StepName::Setup));
        assert!(!PipelineSource::Repository.counts_as_check(StepName::Setup));
    }

    #[test]
    fn sources_round_trip_through_text() {
        for source in [
            "repository",
            "project_settings",
            "config_file",
            "setup_trial",
        ] {
            assert_eq!(source.parse::<PipelineSource>().unwrap().as_str(), source);
        }
    }
}
