//! The engine's configuration as `serve` and `worker` build it from the environment: the
//! sandbox (refused without one unless allowed), the forges, the agents, the models, the
//! job lease and the shutdown's grace.

use crate::config::{self, Config};
use crate::{refused, Failure};
use anyhow::Context;
use slipway_engine::EngineConfig;
use slipway_sandbox::Isolation;
use std::time::Duration;

/// The engine's configuration for a long-running process (`serve`, `worker`).
pub(crate) fn engine_config(config: &Config) -> Result<EngineConfig, Failure> {
    let mut engine_config = EngineConfig::new(config.data_dir.clone());
    engine_config.max_concurrent = config.max_concurrent_validations;
    engine_config.sandbox_ceilings = config::sandbox_ceilings().map_err(refused)?;
    let days = env_number("SLIPWAY_ARTIFACT_RETENTION_DAYS", 1..=3_650, "days")?;
    if let Some(days) = days {
        engine_config.artifact_retention = Duration::from_secs(days * 24 * 3_600);
    }
    if let Some(secs) = env_number("SLIPWAY_JOB_LEASE_SECS", 3..=3_600, "seconds")? {
        engine_config.job_lease = Duration::from_secs(secs);
    }
    let grace = env_number("SLIPWAY_SHUTDOWN_GRACE_SECS", 0..=86_400, "seconds")?;
    engine_config.shutdown_grace = Duration::from_secs(grace.unwrap_or(DEFAULT_GRACE_SECS));
    engine_config.github_token = std::env::var("GITHUB_TOKEN").ok().filter(|t| !t.is_empty());
    engine_config.public_url = std::env::var("SLIPWAY_PUBLIC_URL")
        .ok()
        .filter(|u| !u.is_empty());
    engine_config.notify_allow_hosts = slipway_core::notify::AllowList::parse(
        &std::env::var("SLIPWAY_NOTIFY_ALLOW_HOSTS").unwrap_or_default(),
    )
    .map_err(|e| refused(anyhow::anyhow!(e)))?;
    engine_config.github = github_client().map_err(refused)?.map(std::sync::Arc::new);
    engine_config.codegen = codegen_config().map_err(refused)?;
    engine_config.models = model_config().map_err(refused)?;
    engine_config.isolation = isolation()?;
    Ok(engine_config)
}

/// How long running jobs may finish after SIGTERM by default: below the usual supervisors'
/// stop timeouts (Kubernetes: 30 s), so that what is left is handed back, not killed.
const DEFAULT_GRACE_SECS: u64 = 20;

/// A whole number from the environment variable `name`, within `range`; `None` when unset.
fn env_number(
    name: &str,
    range: std::ops::RangeInclusive<u64>,
    unit: &str,
) -> Result<Option<u64>, Failure> {
    let Some(text) = std::env::var(name).ok().filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let number = text.trim().parse().ok().filter(|n| range.contains(n));
    number.map(Some).ok_or_else(|| {
        refused(anyhow::anyhow!(
            "invalid value '{text}' for {name}: expected a whole number of {unit} from {} to {}",
            range.start(),
            range.end()
        ))
    })
}

/// The sandbox this machine has; without one, refused unless `SLIPWAY_ALLOW_UNSANDBOXED=1`.
fn isolation() -> Result<Isolation, Failure> {
    let isolation = match Isolation::probe() {
        Ok(isolation) => isolation,
        Err(missing) if slipway_engine::unsandboxed_allowed() => {
            tracing::warn!(
                "{missing}; SLIPWAY_ALLOW_UNSANDBOXED=1 is set, so pull-request code runs \
                 UNISOLATED and can read and change what this user can"
            );
            Isolation::None
        }
        Err(missing) => {
            return Err(refused(anyhow::anyhow!(
                "refusing to run pull-request code without a sandbox: {missing}. \
                 Install it (as root: apt-get install bubblewrap passt, or run \
                 ./scripts/serve.sh, which does), or set SLIPWAY_ALLOW_UNSANDBOXED=1 to run \
                 it unisolated on a machine you are prepared to lose"
            )))
        }
    };
    if let Isolation::Bubblewrap { pasta: None, .. } = &isolation {
        tracing::warn!(
            "pasta is not installed: validations get no outbound network (installs fail); \
             apt-get install passt"
        );
    }
    Ok(isolation)
}

/// The GitHub API client: as a GitHub App when `GITHUB_APP_ID` and
/// `GITHUB_APP_PRIVATE_KEY_PATH` are set, else with `GITHUB_TOKEN`, else none.
fn github_client() -> anyhow::Result<Option<slipway_forge::github::GitHub>> {
    use slipway_forge::github::GitHub;
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let api = var("GITHUB_API_URL").unwrap_or_else(|| "https://api.github.com".into());
    match (var("GITHUB_APP_ID"), var("GITHUB_APP_PRIVATE_KEY_PATH")) {
        (Some(id), Some(path)) => {
            let pem = std::fs::read(&path).with_context(|| {
                format!("cannot read GITHUB_APP_PRIVATE_KEY_PATH={path}: give the app's private key (.pem)")
            })?;
            let client = GitHub::app(&api, &id, &pem).with_context(|| {
                format!("invalid value for GITHUB_APP_PRIVATE_KEY_PATH={path}: expected an RSA private key in PEM")
            })?;
            Ok(Some(client))
        }
        (Some(_), None) | (None, Some(_)) => anyhow::bail!(
            "set both GITHUB_APP_ID and GITHUB_APP_PRIVATE_KEY_PATH to act as a GitHub App, or neither"
        ),
        (None, None) => Ok(var("GITHUB_TOKEN").map(|token| GitHub::new(&api, &token))),
    }
}

/// The Codegen API: `CODEGEN_API_TOKEN` and `CODEGEN_ORG_ID` together, or neither.
fn codegen_config() -> anyhow::Result<Option<slipway_engine::CodegenConfig>> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let base_url = var("CODEGEN_API_URL").unwrap_or_else(|| "https://api.codegen.com".into());
    match (var("CODEGEN_API_TOKEN"), var("CODEGEN_ORG_ID")) {
        (Some(token), Some(org)) => {
            let org_id = org.parse().map_err(|_| {
                anyhow::anyhow!(
                    "invalid value for CODEGEN_ORG_ID={org}: expected the organization's number"
                )
            })?;
            Ok(Some(slipway_engine::CodegenConfig {
                base_url,
                token,
                org_id,
                read_limit: slipway_engine::RateLimit::CODEGEN_READS,
            }))
        }
        (Some(_), None) | (None, Some(_)) => {
            anyhow::bail!("set both CODEGEN_API_TOKEN and CODEGEN_ORG_ID to use the Codegen agent, or neither")
        }
        (None, None) => Ok(None),
    }
}

/// The model APIs of `[judge]`: `GEMINI_*` and `SLIPWAY_LLM_*` (see DESIGN.md §3).
pub(crate) fn model_config() -> anyhow::Result<slipway_engine::Models> {
    slipway_engine::Models::from_env(|name| std::env::var(name).ok()).map_err(anyhow::Error::msg)
}
