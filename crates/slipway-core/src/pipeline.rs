//! The pipeline of `.slipway.toml` (DESIGN.md §6): what to run to validate a commit.
//! The same shape serves as a project's dashboard defaults.

pub use crate::ui::{UiCheck, UiSection, UiStep};
use crate::Invalid;
use serde::{Deserialize, Serialize};

/// A repository's pipeline. An absent section is a step that is skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct PipelineConfig {
    /// Prepares the workspace; cached as a snapshot keyed by `cache_key` files and the commands.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub setup: Option<SetupSection>,
    /// Builds the project.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub build: Option<CommandsSection>,
    /// Starts the app and waits for its health check.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceSection>,
    /// Runs the tests.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test: Option<TestSection>,
    /// Browser checks against the running service.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ui: Option<UiSection>,
    /// Static analysis limits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub analysis: Option<AnalysisSection>,
    /// The AI judgement of the pull request against its goal (needs a model).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub judge: Option<crate::judge::JudgeSection>,
    /// Whether and how a passing pull request is merged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merge: Option<MergeSection>,
    /// The auto-fix loop's budget.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<FixSection>,
    /// Network access and quotas of the validation's sandbox.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<SandboxSection>,
}

/// `[sandbox]`: what the validation's code may use. Absent keys take the defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SandboxSection {
    /// `outbound` (default: connections out, for installs) or `none`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkAccess>,
    /// Memory of all the validation's processes together (default 2048).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mb: Option<u64>,
    /// Processes at once (default 512).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_processes: Option<u64>,
    /// Disk used by the workspace and /tmp together, and the largest file (default 2048).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_mb: Option<u64>,
    /// CPU seconds of all the validation's processes together (default 3600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_secs: Option<u64>,
    /// Files and directories in the workspace and /tmp together (default 500000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_files: Option<u64>,
    /// Log lines kept per step (default 20000): the first half, a marker saying how much
    /// was dropped, the last half.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_lines: Option<u64>,
    /// Log megabytes kept per step (default 16), split the same way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_mb: Option<u64>,
}

/// Outbound network access of sandboxed code; the host's loopback is never reachable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum NetworkAccess {
    #[default]
    Outbound,
    None,
}

/// Accepted ranges of the `[sandbox]` quotas (and of the administrator's ceilings); what a
/// validation gets is also held under the ceilings (`limits.rs`).
pub const MAX_MEMORY_MB: u64 = 256 * 1024;
pub const MAX_PROCESSES: u64 = 65_536;
pub const MAX_DISK_MB: u64 = 1024 * 1024;
pub const MAX_CPU_SECS: u64 = 7 * 24 * 3_600;
pub const MAX_FILES: u64 = 100_000_000;
pub const MAX_LOG_LINES: u64 = 10_000_000;
pub const MAX_LOG_MB: u64 = 4_096;
/// The accepted range of each `[sandbox]` limit, by its key.
pub const LIMIT_RANGES: [(&str, u64, u64); 7] = [
    ("memory_mb", 16, MAX_MEMORY_MB),
    ("max_processes", 8, MAX_PROCESSES),
    ("disk_mb", 1, MAX_DISK_MB),
    ("cpu_secs", 1, MAX_CPU_SECS),
    ("max_files", 100, MAX_FILES),
    ("log_lines", 100, MAX_LOG_LINES),
    ("log_mb", 1, MAX_LOG_MB),
];

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SetupSection {
    /// Shell commands, run with `sh -c` in the workspace root.
    pub commands: Vec<String>,
    /// Files whose contents key the snapshot (lockfiles).
    #[serde(default)]
    pub cache_key: Vec<String>,
    /// How long the commands may take together (default 600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CommandsSection {
    /// Shell commands, run with `sh -c` in the workspace root, in order.
    pub commands: Vec<String>,
    /// How long the commands may take together (default 600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TestSection {
    /// Shell commands, run with `sh -c` in the workspace root, in order.
    pub commands: Vec<String>,
    /// How long the commands may take together (default 600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<u32>,
    /// Reruns of a failed command (default 0); a pass after a failure marks the step flaky.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retries: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Accepted `[test] retries`.
pub const MAX_TEST_RETRIES: u32 = 10;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ServiceSection {
    /// The command that starts the app; `PORT` is set for it.
    pub start: String,
    /// The path that answers 200–399 once the app is ready.
    #[serde(default = "default_health_path")]
    pub health_path: String,
    /// How long the app may take to become healthy.
    #[serde(default = "default_ready_timeout")]
    pub ready_timeout_secs: u32,
}

fn default_health_path() -> String {
    "/".to_owned()
}

fn default_ready_timeout() -> u32 {
    60
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AnalysisSection {
    /// Cyclomatic complexity above which an added or changed function fails (default 15).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_function_complexity: Option<u32>,
    /// Lines above which an added or grown function fails (default 0: off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_function_lines: Option<u32>,
    /// Whether weakened tests fail agents' pull requests (default true); people's only warn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protect_tests: Option<bool>,
    /// Path globs the credentials rule skips (test fixtures).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<String>,
    /// Files larger than this are not analysed, only noted (default 1024).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_file_kb: Option<u32>,
}

/// Accepted `[analysis]` values.
pub const MAX_FUNCTION_COMPLEXITY: u32 = 1_000;
pub const MAX_FUNCTION_LINES: u32 = 100_000;
pub const MAX_ANALYSED_FILE_KB: u32 = 16 * 1024;

impl AnalysisSection {
    fn validate(&self) -> Result<(), Invalid> {
        for (key, value, min, max) in [
            (
                "max_function_complexity",
                self.max_function_complexity,
                1,
                MAX_FUNCTION_COMPLEXITY,
            ),
            (
                "max_function_lines",
                self.max_function_lines,
                0,
                MAX_FUNCTION_LINES,
            ),
            ("max_file_kb", self.max_file_kb, 1, MAX_ANALYSED_FILE_KB),
        ] {
            if let Some(value) = value.filter(|v| !(min..=max).contains(v)) {
                return Err(Invalid::new(
                    format!("analysis.{key}"),
                    format!("{value} is out of range; accepted: {min} to {max}"),
                ));
            }
        }
        for glob in &self.allow {
            if glob.trim().is_empty() || glob.starts_with('/') || glob.split('/').any(|p| p == "..")
            {
                return Err(Invalid::new(
                    "analysis.allow",
                    format!("'{glob}' must be a path glob relative to the repository's root"),
                ));
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MergeSection {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<MergeMethod>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct FixSection {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
}

/// How a pull request is merged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum MergeMethod {
    #[default]
    Merge,
    Squash,
    Rebase,
}

pub const MAX_FIX_ATTEMPTS: u32 = 20;
/// A step's time limit when its section names none.
pub const DEFAULT_STEP_TIMEOUT_SECS: u32 = 600;
pub const MAX_STEP_TIMEOUT_SECS: u32 = 24 * 3_600;
pub const MAX_READY_TIMEOUT_SECS: u32 = 3_600;
const MAX_COMMAND_LEN: usize = 8_192;

/// A `.slipway.toml` that could not be read: where, and what is accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}{}: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct PipelineFileError {
    pub file: String,
    pub line: Option<usize>,
    pub message: String,
}

impl PipelineConfig {
    /// Parses and checks a `.slipway.toml`; errors name the file, the line and the key.
    pub fn from_toml(file: &str, text: &str) -> Result<Self, PipelineFileError> {
        let refuse = |invalid: Invalid| PipelineFileError {
            file: file.to_owned(),
            line: line_of_section(text, &invalid.field),
            message: invalid.to_string(),
        };
        let config: PipelineConfig = toml::from_str(text).map_err(|e| PipelineFileError {
            file: file.to_owned(),
            line: e.span().map(|span| line_of(text, span.start)),
            message: e.message().trim().to_owned(),
        })?;
        config.validate().map_err(refuse)?;
        Ok(config)
    }

    /// Whether any section checks the code (setup only prepares it).
    pub fn checks_anything(&self) -> bool {
        self.build.is_some()
            || self.service.is_some()
            || self.test.is_some()
            || self.ui.is_some()
            || self.analysis.is_some()
            || self
                .judge
                .as_ref()
                .is_some_and(|j| j.mode == crate::judge::JudgeMode::Blocking)
    }

    /// Checks the values that the types alone do not.
    pub fn validate(&self) -> Result<(), Invalid> {
        for (name, timeout) in [
            ("setup", self.setup.as_ref().and_then(|s| s.timeout_secs)),
            ("build", self.build.as_ref().and_then(|s| s.timeout_secs)),
            ("test", self.test.as_ref().and_then(|s| s.timeout_secs)),
        ] {
            if let Some(t) = timeout {
                if !(1..=MAX_STEP_TIMEOUT_SECS).contains(&t) {
                    return Err(Invalid::new(
                        format!("{name}.timeout_secs"),
                        format!("{t} is out of range; accepted: 1 to {MAX_STEP_TIMEOUT_SECS}"),
                    ));
                }
            }
        }
        if let Some(setup) = &self.setup {
            validate_commands(&setup.commands).map_err(|e| e.within("setup"))?;
            for key in &setup.cache_key {
                if key.is_empty() || key.starts_with('/') || key.split('/').any(|p| p == "..") {
                    return Err(Invalid::new(
                        "setup.cache_key",
                        format!("'{key}' must be a relative path inside the repository"),
                    ));
                }
            }
        }
        if let Some(build) = &self.build {
            validate_commands(&build.commands).map_err(|e| e.within("build"))?;
        }
        if let Some(test) = &self.test {
            validate_commands(&test.commands).map_err(|e| e.within("test"))?;
            if test.retries > MAX_TEST_RETRIES {
                return Err(Invalid::new(
                    "test.retries",
                    format!(
                        "{} is out of range; accepted: 0 to {MAX_TEST_RETRIES}",
                        test.retries
                    ),
                ));
            }
        }
        if let Some(service) = &self.service {
            if service.start.trim().is_empty() {
                return Err(Invalid::new(
                    "service.start",
                    "is empty; give the command that starts the app",
                ));
            }
            if !service.health_path.starts_with('/') {
                return Err(Invalid::new(
                    "service.health_path",
                    format!("'{}' must start with '/'", service.health_path),
                ));
            }
            if !(1..=MAX_READY_TIMEOUT_SECS).contains(&service.ready_timeout_secs) {
                return Err(Invalid::new(
                    "service.ready_timeout_secs",
                    format!(
                        "{} is out of range; accepted: 1 to {MAX_READY_TIMEOUT_SECS}",
                        service.ready_timeout_secs
                    ),
                ));
            }
        }
        // Configured but unrunnable: refused, never skipped, so nothing configured goes
        // unchecked while the validation passes.
        if self.ui.is_some() && self.service.is_none() {
            return Err(Invalid::new(
                "ui",
                "browser checks visit the running app; add a [service] section that starts it",
            ));
        }

        if let Some(analysis) = &self.analysis {
            analysis.validate()?;
        }
        if let Some(ui) = &self.ui {
            ui.validate()?;
        }
        if let Some(judge) = &self.judge {
            judge.validate()?;
        }
        if let Some(sandbox) = &self.sandbox {
            let values = [
                sandbox.memory_mb,
                sandbox.max_processes,
                sandbox.disk_mb,
                sandbox.cpu_secs,
                sandbox.max_files,
                sandbox.log_lines,
                sandbox.log_mb,
            ];
            for ((name, min, max), value) in LIMIT_RANGES.into_iter().zip(values) {
                if let Some(value) = value {
                    if !(min..=max).contains(&value) {
                        return Err(Invalid::new(
                            format!("sandbox.{name}"),
                            format!("{value} is out of range; accepted: {min} to {max}"),
                        ));
                    }
                }
            }
        }
        if let Some(max) = self.fix.as_ref().and_then(|f| f.max_attempts) {
            if max > MAX_FIX_ATTEMPTS {
                return Err(Invalid::new(
                    "fix.max_attempts",
                    format!("{max} is out of range; accepted: 0 to {MAX_FIX_ATTEMPTS}"),
                ));
            }
        }
        Ok(())
    }
}

fn validate_commands(commands: &[String]) -> Result<(), Invalid> {
    if commands.is_empty() {
        return Err(Invalid::new(
            "commands",
            "is empty; list at least one command or leave the section out",
        ));
    }
    for command in commands {
        if command.trim().is_empty() {
            return Err(Invalid::new("commands", "contains an empty command"));
        }
        if command.len() > MAX_COMMAND_LEN {
            return Err(Invalid::new(
                "commands",
                format!("contains a command longer than {MAX_COMMAND_LEN} bytes"),
            ));
        }
    }
    Ok(())
}

/// The line of the section (or top-level key) a field belongs to: `service.start` → the
/// line of `[service]`.
fn line_of_section(text: &str, field: &str) -> Option<usize> {
    let section = field.split('.').next()?;
    let follows = |rest: &str, marks: &[char]| rest.trim_start().starts_with(marks);
    text.lines()
        .position(|line| {
            let line = line.trim_start();
            match line.strip_prefix('[') {
                Some(header) => header
                    .trim_start_matches('[')
                    .trim_start()
                    .strip_prefix(section)
                    .is_some_and(|rest| follows(rest, &[']', '.'])),
                None => line
                    .strip_prefix(section)
                    .is_some_and(|rest| follows(rest, &['=', '.'])),
            }
        })
        .map(|index| index + 1)
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    const DESIGN_EXAMPLE: &str = r#"
[setup]
commands = ["npm ci"]
cache_key = ["package-lock.json"]
[build]
commands = ["npm run build"]
[service]
start = "npm start"
health_path = "/health"
ready_timeout_secs = 60
[test]
commands = ["npm test"]
[[ui.checks]]
name = "home page"
path = "/"
expect_text = "Todos"
[analysis]
max_function_complexity = 15
[merge]
auto = true
method = "squash"
[fix]
max_attempts = 3
"#;

    /// The design example without the sections this version cannot run.
    fn runnable_example() -> String {
        let start = DESIGN_EXAMPLE.find("[analysis]").unwrap();
        let end = DESIGN_EXAMPLE.find("[merge]").unwrap();
        format!("{}{}", &DESIGN_EXAMPLE[..start], &DESIGN_EXAMPLE[end..])
    }

    #[test]
    fn the_design_example_parses_completely() {
        let config = PipelineConfig::from_toml(".slipway.toml", &runnable_example()).unwrap();
        assert_eq!(config.setup.unwrap().cache_key, ["package-lock.json"]);
        assert_eq!(config.service.unwrap().health_path, "/health");
        assert_eq!(
            config.ui.unwrap().checks[0].expect_text.as_deref(),
            Some("Todos")
        );
        assert_eq!(config.merge.unwrap().method, Some(MergeMethod::Squash));
        assert_eq!(config.fix.unwrap().max_attempts, Some(3));
    }

    #[test]
    fn sections_this_version_cannot_run_are_refused_with_their_line() {
        let no_service =
            "[test]\ncommands = [\"true\"]\n[[ui.checks]]\nname = \"a\"\npath = \"/\"\n";
        let err = PipelineConfig::from_toml(".slipway.toml", no_service).unwrap_err();
        assert_eq!(err.line, Some(3));
        assert!(err.message.contains("add a [service]"), "{err}");

        let judge =
            "[test]\ncommands = [\"true\"]\n[judge]\nmode = \"blocking\"\nmin_score = 101\n";
        let err = PipelineConfig::from_toml(".slipway.toml", judge).unwrap_err();
        assert_eq!(err.line, Some(3));
        assert!(err.message.contains("judge.min_score"), "{err}");
    }

    #[test]
    fn a_judge_section_is_read() {
        let text = "[test]\ncommands = [\"true\"]\n[judge]\nmode = \"blocking\"\nmin_score = 70\n";
        let judge = PipelineConfig::from_toml(".slipway.toml", text)
            .unwrap()
            .judge
            .unwrap();
        assert_eq!(judge.mode, crate::judge::JudgeMode::Blocking);
        assert_eq!(judge.min_score, Some(70));
    }

    #[test]
    fn analysis_keys_are_read_and_their_values_checked() {
        let config = PipelineConfig::from_toml(".slipway.toml", DESIGN_EXAMPLE).unwrap();
        assert_eq!(config.analysis.unwrap().max_function_complexity, Some(15));
        let text = "[analysis]\nmax_function_lines = 80\nprotect_tests = false\nallow = [\"tests/fixtures/**\"]\nmax_file_kb = 512\n";
        let analysis = PipelineConfig::from_toml("f", text)
            .unwrap()
            .analysis
            .unwrap();
        assert_eq!(analysis.max_function_lines, Some(80));
        assert_eq!(analysis.protect_tests, Some(false));
        assert_eq!(analysis.allow, ["tests/fixtures/**"]);
        for (text, field) in [
            (
                "[analysis]\nmax_function_complexity = 0\n",
                "analysis.max_function_complexity",
            ),
            ("[analysis]\nmax_file_kb = 999999\n", "analysis.max_file_kb"),
            ("[analysis]\nallow = [\"../x\"]\n", "analysis.allow"),
        ] {
            let err = PipelineConfig::from_toml("f", text).unwrap_err();
            assert!(err.message.starts_with(field), "{text}: {err}");
            assert_eq!(err.line, Some(1), "{err}");
        }
    }

    #[test]
    fn only_sections_that_check_the_code_count_as_checks() {
        let setup_only = PipelineConfig::from_toml("f", "[setup]\ncommands = [\"x\"]\n").unwrap();
        assert!(!setup_only.checks_anything());
        assert!(!PipelineConfig::default().checks_anything());
        let test = PipelineConfig::from_toml("f", "[test]\ncommands = [\"x\"]\n").unwrap();
        assert!(test.checks_anything());
    }

    #[test]
    fn an_empty_file_skips_every_step() {
        assert_eq!(
            PipelineConfig::from_toml(".slipway.toml", "").unwrap(),
            PipelineConfig::default()
        );
    }

    #[test]
    fn unknown_keys_name_the_file_line_and_accepted_keys() {
        let err =
            PipelineConfig::from_toml(".slipway.toml", "[build]\ncommands = [\"make\"]\nrun = 1\n")
                .unwrap_err();
        assert_eq!(err.line, Some(3));
        assert!(err.message.contains("unknown field `run`"), "{err}");
        assert!(err.message.contains("commands"), "{err}");
        assert!(err.to_string().starts_with(".slipway.toml:3: "), "{err}");
    }

    #[test]
    fn wrong_types_are_reported_with_their_line() {
        let err = PipelineConfig::from_toml(
            "x.toml",
            "[service]\nstart = \"a\"\nready_timeout_secs = \"soon\"\n",
        )
        .unwrap_err();
        assert_eq!(err.line, Some(3));
    }

    #[test]
    fn values_out_of_range_are_refused() {
        let cases = [
            ("[build]\ncommands = []\n", "build.commands"),
            (
                "[service]\nstart = \"x\"\nhealth_path = \"health\"\n",
                "service.health_path",
            ),
            (
                "[service]\nstart = \"x\"\nready_timeout_secs = 0\n",
                "service.ready_timeout_secs",
            ),
            ("[fix]\nmax_attempts = 99\n", "fix.max_attempts"),
            ("[test]\ncommands = [\"x\"]\nretries = 11\n", "test.retries"),
            (
                "[setup]\ncommands = [\"x\"]\ncache_key = [\"../etc/passwd\"]\n",
                "setup.cache_key",
            ),
        ];
        for (text, field) in cases {
            let err = PipelineConfig::from_toml("f", text).unwrap_err();
            assert!(err.message.starts_with(field), "{text}: {err}");
            assert_eq!(err.line, Some(1), "{text}: {err}");
        }
    }
}
