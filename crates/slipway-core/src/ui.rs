//! `[ui]` of `.slipway.toml`: browser checks against the running service, each a path to
//! open, steps to take and expectations to meet, in every viewport.

use crate::Invalid;
use serde::{Deserialize, Serialize};

/// `[ui]`: the browser checks and how they run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UiSection {
    /// `WIDTHxHEIGHT`; every check runs in each (default `["1280x800"]`).
    #[serde(default = "default_viewports")]
    pub viewports: Vec<String>,
    /// Other hosts the pages may load from; every other request is blocked and listed.
    #[serde(default)]
    pub allow_hosts: Vec<String>,
    /// How long one check may take, in one viewport (default 60).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<u32>,
    #[serde(default)]
    pub checks: Vec<UiCheck>,
}

fn default_viewports() -> Vec<String> {
    vec!["1280x800".to_owned()]
}

/// One `[[ui.checks]]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UiCheck {
    pub name: String,
    /// The page to open on the service, from `/` (default `/`).
    #[serde(default = "root")]
    pub path: String,
    #[serde(default)]
    pub steps: Vec<UiStep>,
    /// The page's visible text contains it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_text: Option<String>,
    /// An element matches this CSS selector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_selector: Option<String>,
    /// The page's title contains it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_title: Option<String>,
    /// The HTTP status of the page opened (before the steps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_status: Option<u16>,
    /// The URL at the end ends with it (a path like `/dashboard`, or a whole URL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_url: Option<String>,
    /// Console errors (and uncaught exceptions) allowed (default 0).
    #[serde(default)]
    pub max_console_errors: u32,
    /// A 4xx/5xx answer from the service fails the check (default true).
    #[serde(default = "yes")]
    pub fail_on_http_errors: bool,
    /// Instead of `steps`: what a model should achieve on the page, one action a step
    /// (needs a model, as `[judge]` does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub goal: Option<String>,
    /// The most actions a goal check takes (default 15); running out fails the check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_steps: Option<u32>,
}

impl UiCheck {
    /// The actions a goal check may take.
    pub fn max_steps(&self) -> u32 {
        self.max_steps.unwrap_or(crate::ui_goal::DEFAULT_MAX_STEPS)
    }
}

fn root() -> String {
    "/".to_owned()
}

fn yes() -> bool {
    true
}

/// One step of a check, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(untagged, deny_unknown_fields)]
pub enum UiStep {
    /// Types `text` into the field `fill` selects (replacing what it held).
    Fill { fill: String, text: String },
    /// Clicks the element `click` selects.
    Click { click: String },
    /// Waits for an element (a CSS selector) or for `text=…` on the page.
    WaitFor { wait_for: String },
}

impl UiStep {
    /// The step in words, for timelines and logs.
    pub fn describe(&self) -> String {
        match self {
            UiStep::Fill { fill, .. } => format!("fill {fill}"),
            UiStep::Click { click } => format!("click {click}"),
            UiStep::WaitFor { wait_for } => format!("wait for {wait_for}"),
        }
    }
}

/// Accepted check timeouts and sizes.
pub const MAX_UI_TIMEOUT_SECS: u32 = 600;
pub const DEFAULT_UI_TIMEOUT_SECS: u32 = 60;
const MAX_VIEWPORT: u32 = 8_000;

/// `WIDTHxHEIGHT` as numbers.
pub fn viewport(text: &str) -> Option<(u32, u32)> {
    let (w, h) = text.split_once('x')?;
    let (w, h) = (w.trim().parse().ok()?, h.trim().parse().ok()?);
    ((100..=MAX_VIEWPORT).contains(&w) && (100..=MAX_VIEWPORT).contains(&h)).then_some((w, h))
}

impl UiSection {
    /// Whether a check is driven by a model (so the pipeline needs one).
    pub fn has_goal_checks(&self) -> bool {
        self.checks.iter().any(|c| c.goal.is_some())
    }

    pub fn validate(&self) -> Result<(), Invalid> {
        if self.checks.is_empty() {
            return Err(Invalid::new(
                "ui.checks",
                "is empty; add a [[ui.checks]] with a name and a path, or leave [ui] out",
            ));
        }
        if self.viewports.is_empty() {
            return Err(Invalid::new(
                "ui.viewports",
                "is empty; leave it out for 1280x800",
            ));
        }
        for v in &self.viewports {
            if viewport(v).is_none() {
                return Err(Invalid::new(
                    "ui.viewports",
                    format!("'{v}' is not WIDTHxHEIGHT (100 to {MAX_VIEWPORT} each), e.g. 390x844"),
                ));
            }
        }
        for host in &self.allow_hosts {
            if host.is_empty() || host.contains(['/', ' ', ':']) {
                return Err(Invalid::new(
                    "ui.allow_hosts",
                    format!("'{host}' is not a host name (like cdn.example.com)"),
                ));
            }
        }
        if let Some(t) = self.timeout_secs {
            if !(1..=MAX_UI_TIMEOUT_SECS).contains(&t) {
                return Err(Invalid::new(
                    "ui.timeout_secs",
                    format!("{t} is out of range; accepted: 1 to {MAX_UI_TIMEOUT_SECS}"),
                ));
            }
        }
        for check in &self.checks {
            check.validate().map_err(|e| e.within("ui.checks"))?;
        }
        Ok(())
    }
}

impl UiCheck {
    fn validate(&self) -> Result<(), Invalid> {
        if self.name.trim().is_empty() {
            return Err(Invalid::new("name", "is empty; name the check"));
        }
        if !self.path.starts_with('/') {
            return Err(Invalid::new(
                "path",
                format!(
                    "'{}' must start with '/' (a page of the service)",
                    self.path
                ),
            ));
        }
        match (&self.goal, self.max_steps) {
            (Some(goal), _) if goal.trim().is_empty() => {
                return Err(Invalid::new("goal", "is empty; say what to achieve"))
            }
            (Some(_), _) if !self.steps.is_empty() => {
                return Err(Invalid::new(
                    "goal",
                    "and steps both given; a check follows its steps or a goal, not both",
                ))
            }
            (None, Some(_)) => {
                return Err(Invalid::new(
                    "max_steps",
                    "is only for a goal check; add goal = \"…\" or leave it out",
                ))
            }
            (_, Some(n)) if !(1..=crate::ui_goal::MAX_MAX_STEPS).contains(&n) => {
                return Err(Invalid::new(
                    "max_steps",
                    format!(
                        "{n} is out of range; accepted: 1 to {}",
                        crate::ui_goal::MAX_MAX_STEPS
                    ),
                ))
            }
            _ => {}
        }
        for step in &self.steps {
            let selector = match step {
                UiStep::Fill { fill, .. } => fill,
                UiStep::Click { click } => click,
                UiStep::WaitFor { wait_for } if wait_for.starts_with("text=") => continue,
                UiStep::WaitFor { wait_for } => wait_for,
            };
            check_selector(selector).map_err(|why| {
                Invalid::new(
                    "steps",
                    format!("'{selector}' ({}): {why}", step.describe()),
                )
            })?;
        }
        if let Some(selector) = &self.expect_selector {
            check_selector(selector)
                .map_err(|why| Invalid::new("expect_selector", format!("'{selector}': {why}")))?;
        }
        if let Some(status) = self.expect_status {
            if !(100..=599).contains(&status) {
                return Err(Invalid::new(
                    "expect_status",
                    format!("{status} is not an HTTP status"),
                ));
            }
        }
        Ok(())
    }
}

/// A CSS selector's obvious mistakes: empty, unbalanced brackets, parentheses or quotes.
fn check_selector(selector: &str) -> Result<(), &'static str> {
    if selector.trim().is_empty() {
        return Err("is empty");
    }
    let mut stack = Vec::new();
    let mut quote = None;
    for c in selector.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '[' | '(') => stack.push(c),
            (None, ']') if stack.pop() != Some('[') => return Err("has an unbalanced ']'"),
            (None, ')') if stack.pop() != Some('(') => return Err("has an unbalanced ')'"),
            _ => {}
        }
    }
    if quote.is_some() {
        return Err("has an unclosed quote");
    }
    if !stack.is_empty() {
        return Err("has an unclosed '[' or '('");
    }
    if selector.trim_end().ends_with([',', '>', '+', '~']) {
        return Err("ends with a combinator");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(toml_text: &str) -> Result<UiSection, String> {
        let section: UiSection = toml::from_str(toml_text).map_err(|e| e.to_string())?;
        section.validate().map_err(|e| e.to_string())?;
        Ok(section)
    }

    #[test]
    fn the_issue_example_parses() {
        let ui = section(
            r##"
viewports = ["1280x800", "390x844"]
allow_hosts = ["cdn.example.com"]
timeout_secs = 60
[[checks]]
name = "register and log in"
path = "/auth/register"
steps = [
  { fill = "#username", text = "ada" },
  { click = "input[type=submit]" },
  { wait_for = "text=Log In" },
]
expect_text = "Log In"
max_console_errors = 0
fail_on_http_errors = true
"##,
        )
        .unwrap();
        assert_eq!(ui.checks[0].steps.len(), 3);
        assert_eq!(
            ui.checks[0].steps[1],
            UiStep::Click {
                click: "input[type=submit]".into()
            }
        );
        assert!(ui.checks[0].fail_on_http_errors);
        assert_eq!(viewport("390x844"), Some((390, 844)));
    }

    #[test]
    fn unknown_steps_and_bad_selectors_and_viewports_are_refused() {
        let base = "[[checks]]\nname = \"a\"\npath = \"/\"\n";
        for (extra, needle) in [
            ("steps = [{ hover = \"a\" }]\n", "did not match any variant"),
            ("steps = [{ click = \"a[href\" }]\n", "unclosed"),
            ("expect_selector = \"div >\"\n", "combinator"),
            ("expect_status = 999\n", "not an HTTP status"),
            ("goal = \"\"\n", "is empty"),
            (
                "goal = \"log in\"\nsteps = [{ click = \"a\" }]\n",
                "not both",
            ),
            ("max_steps = 3\n", "only for a goal check"),
            ("goal = \"log in\"\nmax_steps = 0\n", "out of range"),
            ("goal = \"log in\"\nmax_step = 3\n", "unknown field"),
        ] {
            let err = section(&format!("{base}{extra}")).unwrap_err();
            assert!(err.contains(needle), "{extra}: {err}");
        }
        let err = section(&format!("viewports = [\"big\"]\n{base}")).unwrap_err();
        assert!(err.contains("WIDTHxHEIGHT"), "{err}");
        let goal = section(&format!("{base}goal = \"log in\"\n")).unwrap();
        assert!(goal.has_goal_checks());
        assert_eq!(goal.checks[0].max_steps(), 15);
        assert!(section("viewports = [\"1280x800\"]\n")
            .unwrap_err()
            .contains("ui.checks"));
    }
}
