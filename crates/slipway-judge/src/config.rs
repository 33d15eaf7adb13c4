//! Which models are configured: `GEMINI_API_KEY`/`GEMINI_API_URL`/`GEMINI_MODEL` and
//! `SLIPWAY_LLM_URL`/`SLIPWAY_LLM_API_KEY`/`SLIPWAY_LLM_MODEL`, with an optional price.

use slipway_core::judge::Provider;
use std::time::Duration;

pub const GEMINI_DEFAULT_URL: &str = "https://generativelanguage.googleapis.com";
pub const GEMINI_DEFAULT_MODEL: &str = "gemini-2.5-flash";
/// How long one call may take (`SLIPWAY_LLM_TIMEOUT_SECS`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// USD per million tokens (`SLIPWAY_LLM_PRICE_PER_MTOK = "INPUT/OUTPUT"`, e.g. `0.30/2.50`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Price {
    pub input_per_mtok: f64,
    pub output_per_mtok: f64,
}

impl Price {
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "invalid SLIPWAY_LLM_PRICE_PER_MTOK={text}: expected INPUT/OUTPUT in USD per \
                 million tokens, e.g. 0.30/2.50"
            )
        };
        let (input, output) = text.split_once('/').ok_or_else(bad)?;
        let number = |s: &str| {
            s.trim()
                .parse::<f64>()
                .ok()
                .filter(|n| n.is_finite() && *n >= 0.0)
        };
        Ok(Self {
            input_per_mtok: number(input).ok_or_else(bad)?,
            output_per_mtok: number(output).ok_or_else(bad)?,
        })
    }

    pub fn cost(&self, input_tokens: u64, output_tokens: u64) -> f64 {
        (input_tokens as f64 * self.input_per_mtok + output_tokens as f64 * self.output_per_mtok)
            / 1_000_000.0
    }
}

/// One model API. (No `Debug`: it holds a key.)
#[derive(Clone)]
pub struct ModelConfig {
    pub provider: Provider,
    /// Gemini: the API root (`…/v1beta/models/{model}:generateContent` is appended); an
    /// OpenAI-compatible server: its base URL with the version (`…/v1`; `/chat/completions`
    /// is appended).
    pub url: String,
    pub api_key: Option<String>,
    pub model: String,
    pub timeout: Duration,
    pub price: Option<Price>,
    /// The first wait before a retry (doubling, with jitter), when no `Retry-After` says.
    pub retry_base: Duration,
}

/// Every configured model API.
#[derive(Clone, Default)]
pub struct Models {
    pub gemini: Option<ModelConfig>,
    pub openai: Option<ModelConfig>,
}

/// What `[judge]` needs when no model is configured.
pub const NO_MODEL: &str = "the judge needs a model: set GEMINI_API_KEY (Gemini) or \
                            SLIPWAY_LLM_URL and SLIPWAY_LLM_MODEL (an OpenAI-compatible server)";

impl Models {
    /// Reads the environment through `var`; a half-configured API is refused with what to set.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let var = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        let timeout = match var("SLIPWAY_LLM_TIMEOUT_SECS") {
            Some(t) => Duration::from_secs(
                t.trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|t| (1..=3_600).contains(t))
                    .ok_or_else(|| {
                        format!("invalid SLIPWAY_LLM_TIMEOUT_SECS={t}: expected 1 to 3600 seconds")
                    })?,
            ),
            None => DEFAULT_TIMEOUT,
        };
        let price = var("SLIPWAY_LLM_PRICE_PER_MTOK")
            .map(|p| Price::parse(&p))
            .transpose()?;
        let gemini = var("GEMINI_API_KEY").map(|key| ModelConfig {
            provider: Provider::Gemini,
            url: var("GEMINI_API_URL").unwrap_or_else(|| GEMINI_DEFAULT_URL.into()),
            api_key: Some(key),
            model: var("GEMINI_MODEL").unwrap_or_else(|| GEMINI_DEFAULT_MODEL.into()),
            timeout,
            price,
            retry_base: Duration::from_millis(500),
        });
        if gemini.is_none() && var("GEMINI_API_URL").is_some() {
            return Err("GEMINI_API_URL is set without GEMINI_API_KEY: set the key too".into());
        }
        let openai = match (var("SLIPWAY_LLM_URL"), var("SLIPWAY_LLM_MODEL")) {
            (Some(url), Some(model)) => Some(ModelConfig {
                provider: Provider::Openai,
                url,
                api_key: var("SLIPWAY_LLM_API_KEY"),
                model,
                timeout,
                price,
                retry_base: Duration::from_millis(500),
            }),
            (Some(_), None) => {
                return Err(
                    "SLIPWAY_LLM_URL is set without SLIPWAY_LLM_MODEL: name the \
                            model the server should use"
                        .into(),
                )
            }
            (None, _) => None,
        };
        Ok(Self { gemini, openai })
    }

    pub fn any(&self) -> bool {
        self.gemini.is_some() || self.openai.is_some()
    }

    /// The API keys, to mask wherever the validation's words go.
    pub fn keys(&self) -> Vec<String> {
        [&self.gemini, &self.openai]
            .into_iter()
            .flatten()
            .filter_map(|c| c.api_key.clone())
            .collect()
    }

    /// The model for `provider` (default: Gemini, else the OpenAI-compatible server), with
    /// `model` instead of the configured one when given.
    pub fn pick(
        &self,
        provider: Option<Provider>,
        model: Option<&str>,
    ) -> Result<ModelConfig, String> {
        let chosen = match provider {
            Some(Provider::Gemini) => self.gemini.clone().ok_or_else(|| {
                "[judge] provider = \"gemini\" needs GEMINI_API_KEY on the server".to_owned()
            })?,
            Some(Provider::Openai) => self.openai.clone().ok_or_else(|| {
                "[judge] provider = \"openai\" needs SLIPWAY_LLM_URL and SLIPWAY_LLM_MODEL on \
                 the server"
                    .to_owned()
            })?,
            None => self
                .gemini
                .clone()
                .or_else(|| self.openai.clone())
                .ok_or_else(|| NO_MODEL.to_owned())?,
        };
        Ok(ModelConfig {
            model: model.map(str::to_owned).unwrap_or(chosen.model.clone()),
            ..chosen
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn nothing_set_is_no_model_and_the_judge_says_what_to_set() {
        let models = Models::from_env(env(&[])).unwrap();
        assert!(!models.any());
        assert_eq!(models.pick(None, None).err().unwrap(), NO_MODEL);
    }

    #[test]
    fn gemini_has_defaults_and_is_preferred() {
        let models = Models::from_env(env(&[
            ("GEMINI_API_KEY", "k1"),
            ("SLIPWAY_LLM_URL", "http://127.0.0.1:8000/v1"),
            ("SLIPWAY_LLM_MODEL", "qwen"),
            ("SLIPWAY_LLM_PRICE_PER_MTOK", "0.5/1.5"),
        ]))
        .unwrap();
        let gemini = models.pick(None, None).unwrap();
        assert_eq!(gemini.provider, Provider::Gemini);
        assert_eq!(gemini.url, GEMINI_DEFAULT_URL);
        assert_eq!(gemini.model, GEMINI_DEFAULT_MODEL);
        let local = models.pick(Some(Provider::Openai), Some("other")).unwrap();
        assert_eq!((local.model.as_str(), local.api_key), ("other", None));
        assert_eq!(models.keys(), ["k1"]);
        let price = gemini.price.unwrap();
        assert!((price.cost(1_000_000, 2_000_000) - 3.5).abs() < 1e-9);
    }

    #[test]
    fn half_configurations_are_refused() {
        for pairs in [
            &[("SLIPWAY_LLM_URL", "http://x/v1")][..],
            &[("GEMINI_API_URL", "http://x")][..],
            &[("GEMINI_API_KEY", "k"), ("SLIPWAY_LLM_PRICE_PER_MTOK", "1")][..],
            &[("GEMINI_API_KEY", "k"), ("SLIPWAY_LLM_TIMEOUT_SECS", "0")][..],
        ] {
            assert!(Models::from_env(env(pairs)).is_err(), "{pairs:?}");
        }
        let only_openai = Models::from_env(env(&[("GEMINI_API_KEY", "k")])).unwrap();
        assert!(only_openai.pick(Some(Provider::Openai), None).is_err());
    }
}
