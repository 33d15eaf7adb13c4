//! One `[[ui.checks]]` in one viewport: open the page on the service, take the steps, meet the
//! expectations, and gather the evidence a person would look at — a timeline, console errors,
//! failed and blocked requests, the visible text and a full-page screenshot.

mod listen;

use crate::goal::{GoalRun, GoalStep, Planner};
use crate::Browser;
use chromiumoxide::cdp::browser_protocol::emulation::SetDeviceMetricsOverrideParams;
use listen::{listen, Seen};
use serde::{Deserialize, Serialize};
use slipway_core::ui::{UiCheck, UiStep};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Where the checks go: the service, and the other hosts its pages may use.
pub struct Target<'a> {
    /// `http://127.0.0.1:PORT`, as the browser reaches the service.
    pub base_url: &'a str,
    pub allow_hosts: &'a [String],
}

/// What one check found.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub check: String,
    pub viewport: String,
    pub passed: bool,
    /// The first expectation that failed, in words.
    pub failure: Option<String>,
    pub timeline: Vec<StepTime>,
    /// Errors first.
    pub console: Vec<ConsoleMessage>,
    /// Answers of 400 and above, requests that failed, requests blocked.
    pub requests: Vec<RequestProblem>,
    /// The status of the page opened.
    pub status: Option<i64>,
    pub url: String,
    pub title: String,
    /// The page's visible text, trimmed.
    pub text: String,
    pub duration_ms: u64,
    /// The browser itself failed (no tab could be opened): Slipway's fault, not the page's.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub browser_failed: bool,
    /// A goal check's steps: each action with the model's stated reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub goal_steps: Vec<GoalStep>,
    /// The model gave no usable action: Slipway's (or the model's) fault, not the page's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_error: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepTime {
    pub step: String,
    pub ms: u64,
    pub ok: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConsoleMessage {
    pub level: String,
    pub text: String,
    /// `url:line` when the browser says.
    pub source: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RequestProblem {
    pub method: String,
    pub url: String,
    pub status: Option<i64>,
    /// Why it failed, or `blocked` (not the service, not an allowed host).
    pub error: Option<String>,
}

const TEXT_KEPT: usize = 2_000;
/// How long the browser may take to open a tab before it counts as broken.
const TAB_OPENS: Duration = Duration::from_secs(15);

impl Browser {
    /// Runs `check` in a fresh tab of the viewport's size; the screenshot (PNG) is written to
    /// `screenshot`. Never fails: what went wrong is in the report.
    pub async fn check(
        &self,
        check: &UiCheck,
        viewport: (u32, u32),
        target: &Target<'_>,
        timeout: Duration,
        screenshot: &std::path::Path,
    ) -> Report {
        let keep = |text: &str| text.to_owned();
        self.check_masked(check, viewport, target, timeout, screenshot, &keep)
            .await
    }

    /// [`Browser::check`], with every string of the report passed through `mask` (the page's
    /// text before it is cut short, so no secret's beginning is left at the cut). The
    /// screenshot cannot be masked.
    pub async fn check_masked(
        &self,
        check: &UiCheck,
        (width, height): (u32, u32),
        target: &Target<'_>,
        timeout: Duration,
        screenshot: &std::path::Path,
        mask: &(dyn Fn(&str) -> String + Sync),
    ) -> Report {
        self.check_with(
            check,
            (width, height),
            target,
            timeout,
            screenshot,
            mask,
            None,
        )
        .await
    }

    /// [`Browser::check_masked`] for a check with a `goal`: `planner` chooses each action
    /// from the page's state (masked with `mask` before it is shown).
    #[allow(clippy::too_many_arguments)]
    pub async fn check_goal(
        &self,
        check: &UiCheck,
        viewport: (u32, u32),
        target: &Target<'_>,
        timeout: Duration,
        screenshot: &std::path::Path,
        mask: &(dyn Fn(&str) -> String + Sync),
        planner: &mut dyn Planner,
    ) -> Report {
        self.check_with(
            check,
            viewport,
            target,
            timeout,
            screenshot,
            mask,
            Some(planner),
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn check_with(
        &self,
        check: &UiCheck,
        (width, height): (u32, u32),
        target: &Target<'_>,
        timeout: Duration,
        screenshot: &std::path::Path,
        mask: &(dyn Fn(&str) -> String + Sync),
        planner: Option<&mut dyn Planner>,
    ) -> Report {
        // A new tab per check. (Opening the next one during a check was tried: Chromium's
        // concurrent target creation disturbed the running check's navigations.)
        let started = Instant::now();
        let page = match tokio::time::timeout(TAB_OPENS, self.cdp.new_page("about:blank")).await {
            Ok(page) => page.map_err(|e| e.to_string()),
            Err(_) => Err(format!("no answer within {TAB_OPENS:?}")),
        };
        let seen = Arc::new(Mutex::new(Seen::default()));
        let mut report = Report {
            check: check.name.clone(),
            viewport: format!("{width}x{height}"),
            passed: false,
            failure: None,
            timeline: Vec::new(),
            console: Vec::new(),
            requests: Vec::new(),
            status: None,
            url: String::new(),
            title: String::new(),
            text: String::new(),
            duration_ms: 0,
            browser_failed: false,
            goal_steps: Vec::new(),
            model_error: None,
        };
        let page = match page {
            Ok(page) => page,
            Err(error) => {
                report.failure = Some(format!("the browser could not open a tab: {error}"));
                report.browser_failed = true;
                return report;
            }
        };
        let listeners = listen(&page, target, &seen).await;
        let mut goal = planner.map(|planner| GoalRun {
            planner,
            mask,
            steps: Vec::new(),
            model_error: None,
        });
        let run = run(
            &page,
            check,
            (width, height),
            target,
            &mut report.timeline,
            goal.as_mut(),
        );
        let outcome = match tokio::time::timeout(timeout, run).await {
            Ok(outcome) => outcome,
            Err(_) => Err(format!(
                "the check did not finish within {} s (ui.timeout_secs)",
                timeout.as_secs()
            )),
        };
        if let Some(goal) = goal {
            report.goal_steps = goal.steps;
            report.model_error = goal.model_error;
        }
        // The page as it is now, whatever happened.
        // One round trip for all of it.
        let selector = check.expect_selector.as_deref().map_or("null".into(), js);
        let state = format!(
            "(() => {{ const s = {selector}; return {{ url: location.href, title: document.title, \
             text: document.body ? document.body.innerText : '', \
             found: s === null || !!document.querySelector(s) }}; }})()"
        );
        let state: serde_json::Value = eval(&page, &state).await.unwrap_or_default();
        let field = |key: &str| state[key].as_str().unwrap_or_default().to_owned();
        report.url = field("url");
        report.title = field("title");
        report.text = mask(&field("text"))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        report.text = report.text.chars().take(TEXT_KEPT).collect();
        let selector_found = state["found"] != false;
        let _ = full_page_png(&page, screenshot).await;
        for task in listeners {
            task.abort();
        }
        // Nothing of the tab is needed any more: it closes while the report is made.
        tokio::spawn(async move {
            let _ = page.close().await;
        });
        {
            let seen = seen.lock().expect("seen lock");
            report.status = seen.status;
            report.requests = seen.requests.clone();
            report.console = seen.console.clone();
        }
        report
            .console
            .sort_by_key(|m| if m.level == "error" { 0 } else { 1 });
        report.failure = match outcome {
            Err(failure) => Some(failure),
            Ok(()) => expectations(check, &report, selector_found),
        };
        report.passed = report.failure.is_none();
        report.duration_ms = started.elapsed().as_millis() as u64;
        report.masked(mask)
    }
}

/// Opens the page and takes the steps; `Err` says the first that failed.
async fn run(
    page: &chromiumoxide::Page,
    check: &UiCheck,
    (width, height): (u32, u32),
    target: &Target<'_>,
    timeline: &mut Vec<StepTime>,
    goal: Option<&mut GoalRun<'_>>,
) -> Result<(), String> {
    let metrics = SetDeviceMetricsOverrideParams::new(width, height, 1.0, width < 700);
    page.execute(metrics).await.map_err(|e| e.to_string())?;
    let url = format!("{}{}", target.base_url, check.path);
    let started = Instant::now();
    let opened = page.goto(url.as_str()).await.map(drop);
    let opened = match opened {
        Ok(()) => settle(page).await,
        Err(error) => Err(format!("{url} could not be opened: {error}")),
    };
    timeline.push(StepTime {
        step: format!("open {}", check.path),
        ms: started.elapsed().as_millis() as u64,
        ok: opened.is_ok(),
    });
    opened?;
    if let (Some(goal), Some(text)) = (goal, &check.goal) {
        return crate::goal::pursue(
            page,
            text,
            check.max_steps(),
            target.base_url,
            goal,
            timeline,
        )
        .await;
    }
    if check.goal.is_some() {
        return Err("a goal check needs a model; none was given".into());
    }
    for step in &check.steps {
        let started = Instant::now();
        let done = take(page, step).await;
        timeline.push(StepTime {
            step: step.describe(),
            ms: started.elapsed().as_millis() as u64,
            ok: done.is_ok(),
        });
        done.map_err(|why| format!("step '{}' failed: {why}", step.describe()))?;
    }
    Ok(())
}

pub(crate) async fn take(page: &chromiumoxide::Page, step: &UiStep) -> Result<(), String> {
    match step {
        UiStep::Fill { fill, text } => {
            wait_until(page, &format!("!!document.querySelector({})", js(fill))).await?;
            let script = format!(
                "(() => {{ const e = document.querySelector({}); e.focus(); e.value = {}; \
                 e.dispatchEvent(new Event('input', {{bubbles: true}})); \
                 e.dispatchEvent(new Event('change', {{bubbles: true}})); return true; }})()",
                js(fill),
                js(text)
            );
            eval::<bool>(page, &script).await.map(drop)
        }
        UiStep::Click { click } => {
            wait_until(page, &format!("!!document.querySelector({})", js(click))).await?;
            let element = page
                .find_element(click.as_str())
                .await
                .map_err(|e| format!("no element matches {click}: {e}"))?;
            element.click().await.map_err(|e| e.to_string())?;
            // A click may navigate: let the next page load before the next step.
            tokio::time::sleep(Duration::from_millis(100)).await;
            settle(page).await
        }
        UiStep::WaitFor { wait_for } => match wait_for.strip_prefix("text=") {
            Some(text) => {
                let test = format!(
                    "document.body && document.body.innerText.includes({})",
                    js(text)
                );
                wait_until(page, &test).await
            }
            None => wait_until(page, &format!("!!document.querySelector({})", js(wait_for))).await,
        },
    }
}

/// The first expectation the finished page does not meet, in words.
fn expectations(check: &UiCheck, report: &Report, selector_found: bool) -> Option<String> {
    let shows = |text: &str| {
        let head: String = text.chars().take(200).collect();
        if head.is_empty() {
            "nothing".to_owned()
        } else {
            format!("'{head}'")
        }
    };
    if let Some(expected) = check.expect_status {
        if report.status != Some(i64::from(expected)) {
            return Some(format!(
                "expected status {expected}; the page answered {}",
                report.status.map_or("nothing".into(), |s| s.to_string())
            ));
        }
    }
    if let Some(text) = &check.expect_text {
        if !report.text.contains(text.as_str()) {
            return Some(format!(
                "expected text '{text}'; the page shows: {}",
                shows(&report.text)
            ));
        }
    }
    if let (Some(selector), false) = (&check.expect_selector, selector_found) {
        return Some(format!(
            "expected an element matching {selector}; there is none"
        ));
    }
    if let Some(title) = &check.expect_title {
        if !report.title.contains(title.as_str()) {
            return Some(format!(
                "expected the title '{title}'; it is '{}'",
                report.title
            ));
        }
    }
    if let Some(url) = &check.expect_url {
        if !report.url.ends_with(url.as_str()) {
            return Some(format!(
                "expected the URL to end with '{url}'; it is {}",
                report.url
            ));
        }
    }
    let errors = report.console.iter().filter(|m| m.level == "error").count();
    if errors > check.max_console_errors as usize {
        let first = &report.console[0];
        return Some(format!(
            "{errors} console error(s), {} allowed; the first: {}{}",
            check.max_console_errors,
            first.text,
            first
                .source
                .as_deref()
                .map(|s| format!(" ({s})"))
                .unwrap_or_default()
        ));
    }
    if check.fail_on_http_errors {
        let bad = report
            .requests
            .iter()
            .find(|r| r.status.is_some_and(|s| s >= 400));
        if let Some(bad) = bad {
            return Some(format!(
                "{} {} answered {}",
                bad.method,
                bad.url,
                bad.status.unwrap_or_default()
            ));
        }
    }
    None
}

pub(crate) fn host_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    host.rsplit_once(':')
        .filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
        .map_or(host, |(h, _)| h)
        .to_ascii_lowercase()
}

/// A JavaScript string literal of `text`.
pub(crate) fn js(text: &str) -> String {
    serde_json::to_string(text).expect("a string serializes")
}

pub(crate) async fn eval<T: serde::de::DeserializeOwned>(
    page: &chromiumoxide::Page,
    expression: &str,
) -> Result<T, String> {
    page.evaluate(expression)
        .await
        .map_err(|e| e.to_string())?
        .into_value()
        .map_err(|e| e.to_string())
}

/// Waits (within the check's timeout) until the expression is truthy.
async fn wait_until(page: &chromiumoxide::Page, expression: &str) -> Result<(), String> {
    loop {
        if eval::<bool>(page, &format!("!!({expression})"))
            .await
            .unwrap_or(false)
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until the document has loaded.
/// The whole page as a PNG, in one capture beyond the viewport: the viewport the check
/// emulates is not resized, and the image is encoded for speed.
async fn full_page_png(page: &chromiumoxide::Page, path: &std::path::Path) -> anyhow::Result<()> {
    use base64::Engine;
    use chromiumoxide::cdp::browser_protocol::page::{
        CaptureScreenshotFormat, CaptureScreenshotParams, Viewport,
    };
    let size = page.layout_metrics().await?.css_content_size;
    let params = CaptureScreenshotParams::builder()
        .format(CaptureScreenshotFormat::Png)
        .capture_beyond_viewport(true)
        .optimize_for_speed(true)
        .clip(Viewport {
            x: 0.0,
            y: 0.0,
            width: size.width.max(1.0),
            height: size.height.max(1.0),
            scale: 1.0,
        })
        .build();
    let shot = page.execute(params).await?;
    let png = base64::engine::general_purpose::STANDARD.decode(&shot.result.data)?;
    tokio::fs::write(path, png).await?;
    Ok(())
}

pub(crate) async fn settle(page: &chromiumoxide::Page) -> Result<(), String> {
    wait_until(page, "document.readyState === 'complete'").await
}

#[cfg(test)]
mod tests {
    use super::host_of;

    #[test]
    fn hosts_are_read_from_urls() {
        assert_eq!(host_of("http://127.0.0.1:4000/a?b"), "127.0.0.1");
        assert_eq!(host_of("https://CDN.example.com/x.js"), "cdn.example.com");
        assert_eq!(host_of("https://u:p@h.example:8443"), "h.example");
    }
}
