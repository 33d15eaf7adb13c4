//! Layered configuration: a flag wins over the environment, the environment over the
//! config file, the file over the embedded defaults. Every bad value is refused at start
//! with the key, the value and what is accepted.

use anyhow::{bail, Context};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The config file (`--config FILE`, TOML). Unknown keys are refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Address to listen on, e.g. "127.0.0.1:8080".
    pub bind: Option<String>,
    /// Where the database and the master key live.
    pub data_dir: Option<PathBuf>,
    /// `sqlite://PATH` or `postgres://…`; defaults to `DATA_DIR/slipway.db`.
    pub database_url: Option<String>,
    /// `text` or `json`.
    pub log_format: Option<String>,
    /// How many validations run at once (1 to 64).
    pub max_concurrent_validations: Option<u32>,
}

impl ConfigFile {
    pub fn load(path: Option<&Path>) -> anyhow::Result<Self> {
        let Some(path) = path else {
            return Ok(Self::default());
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the config file {}", path.display()))?;
        toml::from_str(&text).map_err(|e| {
            let line = e
                .span()
                .map(|s| format!(":{}", text[..s.start].matches('\n').count() + 1))
                .unwrap_or_default();
            anyhow::anyhow!(
                "config file {}{line}: {}",
                path.display(),
                e.message().trim()
            )
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// One setting's value and where it came from, for error messages.
struct Sourced {
    value: String,
    source: String,
}

/// Picks the first of flag, environment variable, config-file key.
fn pick(flag: Option<String>, env: &str, file: Option<String>, file_key: &str) -> Option<Sourced> {
    let flag_name = format!("--{}", file_key.replace('_', "-"));
    flag.map(|value| Sourced {
        value,
        source: flag_name,
    })
    .or_else(|| {
        std::env::var(env).ok().map(|value| Sourced {
            value,
            source: format!("environment variable {env}"),
        })
    })
    .or_else(|| {
        file.map(|value| Sourced {
            value,
            source: format!("config file key '{file_key}'"),
        })
    })
}

/// Flags that every subcommand touching the store shares.
#[derive(Debug, Default, Clone, clap::Args)]
pub struct StoreFlags {
    /// Data directory (database, master key) [env: SLIPWAY_DATA_DIR] [default: ./.slipway]
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<String>,
    /// Database URL, sqlite://PATH or postgres://USER:PASSWORD@HOST:PORT/DB [env: SLIPWAY_DATABASE_URL] [default: DATA_DIR/slipway.db]
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
    /// Config file (TOML): bind, data_dir, database_url, log_format, max_concurrent_validations
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// The resolved settings of the process.
#[derive(Debug)]
pub struct Config {
    pub bind: SocketAddr,
    pub data_dir: PathBuf,
    /// Whether the data directory is the default `./.slipway` (no flag, variable or file
    /// named one): a command that only reads or adds to a server's store refuses to make it.
    pub data_dir_is_default: bool,
    pub database_url: String,
    pub log_format: LogFormat,
    pub max_concurrent_validations: usize,
}

impl Config {
    pub fn resolve(
        store: StoreFlags,
        bind: Option<String>,
        log_format: Option<String>,
    ) -> anyhow::Result<Self> {
        let file = ConfigFile::load(store.config.as_deref())?;

        let bind = match pick(bind, "SLIPWAY_BIND", file.bind, "bind") {
            None => SocketAddr::from(([127, 0, 0, 1], 8080)),
            Some(s) => s.value.parse().map_err(|_| {
                anyhow::anyhow!(
                    "invalid value '{}' for {}: expected an address and port such as 127.0.0.1:8080",
                    s.value,
                    s.source
                )
            })?,
        };

        let chosen_dir = pick(
            store.data_dir,
            "SLIPWAY_DATA_DIR",
            file.data_dir.map(|p| p.display().to_string()),
            "data_dir",
        );
        let data_dir_is_default = chosen_dir.is_none();
        let data_dir = match chosen_dir {
            None => PathBuf::from(".slipway"),
            Some(s) if s.value.trim().is_empty() => bail!(
                "invalid value '' for {}: expected a directory path",
                s.source
            ),
            Some(s) => PathBuf::from(s.value),
        };
        // Relative paths are resolved once, at start (the sandbox needs absolute ones).
        let data_dir = std::path::absolute(&data_dir)
            .with_context(|| format!("cannot resolve the data directory {}", data_dir.display()))?;

        let database_url = match pick(
            store.database_url,
            "SLIPWAY_DATABASE_URL",
            file.database_url,
            "database_url",
        ) {
            None => format!("sqlite://{}", data_dir.join("slipway.db").display()),
            Some(s) if slipway_store::Backend::of_url(&s.value).is_ok() => s.value,
            Some(s) => bail!(
                "invalid value '{}' for {}: expected sqlite://PATH or postgres://USER:PASSWORD@HOST:PORT/DATABASE",
                slipway_store::redact_url(&s.value),
                s.source
            ),
        };

        let log_format = match pick(
            log_format,
            "SLIPWAY_LOG_FORMAT",
            file.log_format,
            "log_format",
        ) {
            None => LogFormat::Text,
            Some(s) => match s.value.as_str() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                other => bail!(
                    "invalid value '{other}' for {}: expected 'text' or 'json'",
                    s.source
                ),
            },
        };

        let max_concurrent_validations = match pick(
            None,
            "SLIPWAY_MAX_CONCURRENT_VALIDATIONS",
            file.max_concurrent_validations.map(|n| n.to_string()),
            "max_concurrent_validations",
        ) {
            None => 2,
            Some(s) => match s.value.parse::<usize>() {
                Ok(n) if (1..=64).contains(&n) => n,
                _ => bail!(
                    "invalid value '{}' for {}: expected a whole number from 1 to 64",
                    s.value,
                    s.source
                ),
            },
        };

        Ok(Self {
            bind,
            data_dir,
            data_dir_is_default,
            database_url,
            log_format,
            max_concurrent_validations,
        })
    }
}

/// The administrator's ceilings on what a pipeline's `[sandbox]` may ask for
/// (`SLIPWAY_SANDBOX_MAX_MEMORY_MB`, `_PROCESSES`, `_DISK_MB`, `_CPU_SECS`, `_LOG_LINES`,
/// `_LOG_MB`); the built-in defaults where unset. Read by `serve` and `validate` alike.
pub fn sandbox_ceilings() -> anyhow::Result<slipway_core::limits::SandboxLimits> {
    slipway_core::limits::SandboxLimits::ceilings_from(|name| std::env::var(name).ok())
        .map_err(anyhow::Error::msg)
}

/// `SLIPWAY_ADMIN_TOKEN`, if set, checked for strength.
pub fn admin_token_from_env() -> anyhow::Result<Option<String>> {
    match std::env::var("SLIPWAY_ADMIN_TOKEN") {
        Err(_) => Ok(None),
        Ok(token) if token.len() < 20 || token.chars().any(char::is_whitespace) => bail!(
            "invalid value for environment variable SLIPWAY_ADMIN_TOKEN: it must be at least 20 \
             characters without spaces (e.g. head -c 32 /dev/urandom | base64)"
        ),
        Ok(token) => Ok(Some(token)),
    }
}
