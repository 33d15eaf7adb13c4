//! The ui step: headless Chromium started *in the validation's cell* (confined like the code
//! it visits, on the cell's network, where the service listens) but in a sandbox of its own,
//! driven over a DevTools pipe relayed to one host-loopback WebSocket (no port PR code could
//! reach), running every `[[ui.checks]]` in every viewport. Each check's evidence (JSON,
//! masked like the log) and screenshot are stored as the validation's artifacts.

use super::{stop, Attempt, PipelineError, PipelineResult, StepEnd};
use slipway_browser::{Browser, GoalStep, Planner, Report, Target};
use slipway_core::ui::{viewport, UiSection, DEFAULT_UI_TIMEOUT_SECS};
use slipway_core::ui_goal::{PageState, Planned};
use slipway_core::validation::StepName;
use slipway_judge::{AnyModel, Usage};
use slipway_sandbox::Process;
use slipway_store::StepUpdate;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The browser's profile, in its own home (a marker for tests that look for its processes).
pub const PROFILE: &str = "slipway-browser-profile";
/// How long Chromium may take to answer over DevTools.
const BROWSER_READY: Duration = Duration::from_secs(20);
/// Artifacts kept per validation; screenshots beyond are not stored (and the log says so).
pub(crate) const MAX_ARTIFACT_BYTES: u64 = 50 * 1024 * 1024;

/// How long a check's evidence (page state, screenshot) may take after its steps' timeout.
const EVIDENCE_GRACE: Duration = Duration::from_secs(30);

impl Attempt<'_> {
    /// How a check ends whose browser died: the page's failure when it drove the cell past
    /// a quota (memory, processes), else Slipway's fault, never the page's.
    fn browser_died(&self) -> StepEnd {
        match self.cell.as_ref().and_then(|cell| cell.exceeded()) {
            Some(reason) => StepEnd::Failed {
                exit_code: None,
                detail: format!("the browser was stopped: {reason}"),
                retryable: false,
            },
            None => StepEnd::Error("the browser exited during the checks".into()),
        }
    }

    pub(super) async fn ui(&mut self, section: &UiSection) -> PipelineResult<StepEnd> {
        let Some(port) = self.service_port else {
            return Ok(StepEnd::Error(
                "the ui step needs the service the deploy step starts".into(),
            ));
        };
        let chromium =
            match slipway_browser::chromium() {
                Ok(path) => path,
                Err(_) => return Ok(StepEnd::Error(
                    "Chromium is not installed: apt-get install chromium, or set SLIPWAY_CHROMIUM"
                        .into(),
                )),
            };
        let started = Instant::now();
        let launched = match self.early_browser.take() {
            Some(early) => Ok(early),
            None => self.launch_browser(&chromium).await,
        };
        let connected = match launched {
            Ok((process, devtools)) => match self.connect_browser(devtools).await {
                Ok(browser) => Ok((browser, process)),
                Err(error) => Err((error, Some(process))),
            },
            Err(error) => Err((error, None)),
        };
        let (browser, mut process) = match connected {
            Ok(both) => both,
            Err((error, process)) => {
                if let Some(process) = process {
                    stop(process).await;
                }
                return Ok(StepEnd::Error(format!(
                    "the browser did not start: {error}"
                )));
            }
        };
        let ready = format!("browser ready in {} ms", started.elapsed().as_millis());
        self.logs.line(StepName::Ui, &ready);
        let end = match self.run_checks(&browser, &mut process, section, port).await {
            Ok(StepEnd::Passed(Some(detail))) => {
                Ok(StepEnd::Passed(Some(format!("{detail} ({ready})"))))
            }
            other => other,
        };
        // Killed with its cell in any case (cancel, timeout, crash); here as soon as done.
        browser.close().await;
        stop(process).await;
        end
    }

    /// Launches Chromium now (before the deploy step), if it is installed: it boots while the
    /// service starts and the tests run. A launch that fails is tried again by the ui step.
    pub(super) async fn launch_browser_early(&mut self) {
        if let Ok(chromium) = slipway_browser::chromium() {
            self.early_browser = self.launch_browser(&chromium).await.ok();
        }
    }

    /// Chromium in the cell, in a sandbox of its own (its profile there, out of PR code's
    /// reach), driven over a pipe; the port is the host-loopback WebSocket relayed to it.
    async fn launch_browser(
        &mut self,
        chromium: &std::path::Path,
    ) -> PipelineResult<(Process, u16)> {
        let command = format!(
            "exec '{}' --headless=new --no-sandbox --disable-gpu --disable-dev-shm-usage \
             --no-first-run --disable-sync --disable-background-networking \
             --disable-component-update --disable-crash-reporter --disable-extensions \
             --user-data-dir=\"$HOME/{PROFILE}\" --remote-debugging-pipe about:blank 2>/dev/null",
            chromium.display()
        );
        let cell = self
            .cell
            .as_ref()
            .expect("the cell is made before any command");
        // Its output (none but errors, and those go to /dev/null) is not the step's log.
        let (lines, mut said) = tokio::sync::mpsc::channel(slipway_sandbox::LINES_IN_FLIGHT);
        tokio::spawn(async move { while said.recv().await.is_some() {} });
        let browser = cell.spawn_browser(&command, lines)?;
        let process = browser.process;
        let relay = slipway_browser::pipe::relay(browser.commands, browser.answers).await?;
        Ok((process, relay))
    }

    /// Connects to the browser through its relay, once it answers.
    async fn connect_browser(&self, relay: u16) -> PipelineResult<Browser> {
        let url = slipway_browser::pipe::url(relay);
        match tokio::time::timeout(BROWSER_READY, Browser::connect(&url)).await {
            Ok(browser) => browser.map_err(PipelineError::Browser),
            Err(_) => Err(PipelineError::Browser(anyhow::anyhow!(
                "Chromium did not answer within {BROWSER_READY:?}"
            ))),
        }
    }

    async fn run_checks(
        &mut self,
        browser: &Browser,
        process: &mut Process,
        section: &UiSection,
        port: u16,
    ) -> PipelineResult<StepEnd> {
        let base_url = format!("http://127.0.0.1:{port}");
        let target = Target {
            base_url: &base_url,
            allow_hosts: &section.allow_hosts,
        };
        let timeout = Duration::from_secs(
            section
                .timeout_secs
                .unwrap_or(DEFAULT_UI_TIMEOUT_SECS)
                .into(),
        );
        let artifacts = self.artifacts_dir();
        tokio::fs::create_dir_all(&artifacts).await?;
        // What the page showed is masked like the log before anything of it is kept.
        let logs = self.logs.clone();
        let mask = move |text: &str| logs.mask(text);
        // Goal checks' model (refused at load when none is configured).
        let model = match section.has_goal_checks() {
            true => Some(AnyModel::new(
                self.inner
                    .config
                    .models
                    .pick(None, None)
                    .map_err(PipelineError::Config)?,
            )),
            false => None,
        };
        let total = section.checks.len() * section.viewports.len();
        let (mut done, mut failed) = (0, Vec::new());
        for size in &section.viewports {
            let dimensions = viewport(size).expect("validated at load");
            for check in &section.checks {
                if self.cancel.is_cancelled() {
                    return Ok(StepEnd::Cancelled);
                }
                let name = artifact_name(&check.name, size);
                let shot = artifacts.join(format!("{name}.png"));
                // The budget, before each goal check (the tokens of the last are recorded).
                if check.goal.is_some() {
                    if let Err(note) = self.model_budget().await? {
                        return Ok(StepEnd::Error(format!(
                            "the goal check '{}' cannot run: {note}",
                            check.name
                        )));
                    }
                }
                let mut planner = (model.clone())
                    .filter(|_| check.goal.is_some())
                    .map(ModelPlanner::new);
                let run = async {
                    match (&mut planner, &check.goal) {
                        (Some(planner), Some(_)) => {
                            browser
                                .check_goal(
                                    check, dimensions, &target, timeout, &shot, &mask, planner,
                                )
                                .await
                        }
                        _ => {
                            browser
                                .check_masked(check, dimensions, &target, timeout, &shot, &mask)
                                .await
                        }
                    }
                };
                let report = tokio::select! {
                    report = run => report,
                    _ = self.cancel.cancelled() => return Ok(StepEnd::Cancelled),
                    _ = ended(process) => return Ok(self.browser_died()),
                    // The check's own timeout covers its steps; a page that hangs the reads
                    // after them (a getter that never returns) fails the check, on its account.
                    _ = tokio::time::sleep(timeout + EVIDENCE_GRACE) => {
                        return Ok(StepEnd::Failed {
                            exit_code: None,
                            detail: format!(
                                "{}: the page did not let the check finish within {} s",
                                check.name,
                                (timeout + EVIDENCE_GRACE).as_secs()
                            ),
                            retryable: false,
                        })
                    }
                };
                if report.browser_failed {
                    let why = report.failure.unwrap_or_default();
                    return Ok(StepEnd::Error(format!("the browser failed: {why}")));
                }
                let usage = planner.map(|p| p.usage);
                if let Some(usage) = usage {
                    self.spend_model_tokens(usage).await;
                    self.logs.line(
                        StepName::Ui,
                        &format!(
                            "{}: the model used {} input and {} output tokens{}",
                            check.name,
                            usage.input_tokens,
                            usage.output_tokens,
                            usage
                                .cost_usd
                                .map(|c| format!(" (${c:.4})"))
                                .unwrap_or_default()
                        ),
                    );
                }
                self.keep_evidence(&artifacts, &name, &report, usage).await;
                if let Some(error) = &report.model_error {
                    for line in evidence_lines(&report) {
                        self.logs.line(StepName::Ui, &line);
                    }
                    return Ok(StepEnd::Error(format!(
                        "{}: the model failed, not the page: {error}",
                        check.name
                    )));
                }
                done += 1;
                for line in evidence_lines(&report) {
                    self.logs.line(StepName::Ui, &line);
                }
                if let Some(failure) = &report.failure {
                    failed.push(format!("'{}' ({size}): {failure}", check.name));
                    let shot = format!("/api/v1/validations/{}/artifacts/{name}.png", self.id());
                    self.logs
                        .line(StepName::Ui, &format!("    screenshot: {shot}"));
                }
                // Each check's result is live as soon as it is known.
                let update = StepUpdate {
                    status: Some(slipway_core::validation::StepStatus::Running),
                    detail: Some(format!(
                        "{done} of {total} checks run, {} failed",
                        failed.len()
                    )),
                    ..Default::default()
                };
                self.inner
                    .store
                    .update_step(self.id(), self.index(StepName::Ui)?, &update)
                    .await?;
            }
        }
        Ok(match failed.first() {
            None => StepEnd::Passed(Some(format!("{total} browser checks passed"))),
            Some(first) => StepEnd::Failed {
                exit_code: None,
                detail: format!("{} of {total} browser checks failed; {first}", failed.len()),
                retryable: false,
            },
        })
    }

    pub(super) fn artifacts_dir(&self) -> PathBuf {
        self.inner
            .config
            .data_dir
            .join("artifacts")
            .join(self.id().to_string())
    }

    /// Stores the check's evidence next to its screenshot; beyond the cap, the screenshot
    /// is dropped and the evidence says so.
    async fn keep_evidence(
        &self,
        dir: &std::path::Path,
        name: &str,
        report: &Report,
        model_usage: Option<Usage>,
    ) {
        let shot = dir.join(format!("{name}.png"));
        let used = dir_size(dir);
        let mut evidence = serde_json::to_value(report).expect("a report serializes");
        if let Some(usage) = model_usage {
            evidence["model_usage"] = serde_json::to_value(usage).expect("usage serializes");
        }
        // Masked already; again here, as everything stored is (every string, never the text).
        // And no string longer than 64 KiB: the page is the code's.
        slipway_browser::mask_strings(&mut evidence, &|text| {
            let mut text = self.logs.mask(text);
            if text.len() > 64 * 1024 {
                let mut end = 64 * 1024;
                while !text.is_char_boundary(end) {
                    end -= 1;
                }
                text.truncate(end);
            }
            text
        });
        if used > MAX_ARTIFACT_BYTES {
            let _ = tokio::fs::remove_file(&shot).await;
            evidence["screenshot"] = serde_json::Value::Null;
            self.logs.line(
                StepName::Ui,
                &format!(
                    "screenshot of {name} not kept: the validation's artifacts passed {} MiB",
                    MAX_ARTIFACT_BYTES >> 20
                ),
            );
        } else if tokio::fs::metadata(&shot).await.is_ok() {
            evidence["screenshot"] = format!("{name}.png").into();
        }
        let text = serde_json::to_vec_pretty(&evidence).expect("JSON serializes");
        if let Err(error) = tokio::fs::write(dir.join(format!("{name}.json")), text).await {
            tracing::warn!(%error, "ui evidence not stored");
        }
    }
}

/// The evidence as the log shows it (and the agent reads it when asked to fix).
fn evidence_lines(report: &Report) -> Vec<String> {
    let mark = if report.passed { "✓" } else { "✗" };
    let mut lines = vec![format!(
        "{mark} {} ({}) in {} ms{}",
        report.check,
        report.viewport,
        report.duration_ms,
        report
            .failure
            .as_deref()
            .map(|f| format!(": {f}"))
            .unwrap_or_default()
    )];
    for step in &report.timeline {
        let ok = if step.ok { "ok" } else { "FAILED" };
        lines.push(format!("    {} {} ms {ok}", step.step, step.ms));
    }
    for (i, step) in report.goal_steps.iter().enumerate() {
        let error = (step.error.as_deref())
            .map(|e| format!(" (failed: {e})"))
            .unwrap_or_default();
        lines.push(format!(
            "    goal step {}: {} (the model's reason: {}){error}",
            i + 1,
            step.action,
            step.reason
        ));
    }
    for message in &report.console {
        let source = message
            .source
            .as_deref()
            .map(|s| format!(" ({s})"))
            .unwrap_or_default();
        lines.push(format!(
            "    console {}: {}{source}",
            message.level, message.text
        ));
    }
    for request in &report.requests {
        let what = match (request.status, &request.error) {
            (Some(status), _) => status.to_string(),
            (None, Some(error)) => error.clone(),
            _ => String::new(),
        };
        lines.push(format!(
            "    request {} {} → {what}",
            request.method, request.url
        ));
    }
    if !report.passed {
        let text: String = report.text.chars().take(500).collect();
        lines.push(format!("    page {} shows: {text}", report.url));
    }
    lines
}

/// A goal check's planner: the configured model, its tokens summed over the check's steps.
struct ModelPlanner {
    model: AnyModel,
    usage: Usage,
}

impl ModelPlanner {
    fn new(model: AnyModel) -> Self {
        Self {
            model,
            usage: Usage::default(),
        }
    }
}

impl Planner for ModelPlanner {
    fn next<'a>(
        &'a mut self,
        goal: &'a str,
        state: &'a PageState,
        history: &'a [GoalStep],
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Planned, String>> + Send + 'a>>
    {
        Box::pin(async move {
            let (planned, usage) =
                slipway_judge::goal::next_action(&self.model, goal, state, history).await;
            self.usage.input_tokens += usage.input_tokens;
            self.usage.output_tokens += usage.output_tokens;
            if let Some(cost) = usage.cost_usd {
                self.usage.cost_usd = Some(self.usage.cost_usd.unwrap_or(0.0) + cost);
            }
            planned
        })
    }
}

/// Resolves when the process has ended.
async fn ended(process: &mut Process) {
    while process.exited().is_none() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The bytes of the files in `dir` (artifacts are a flat directory).
fn dir_size(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// A file name for a check in a viewport: letters, digits and dashes.
fn artifact_name(check: &str, viewport: &str) -> String {
    let slug: String = check
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let slug = slug
        .split('-')
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("-");
    format!("{}-{viewport}", &slug[..slug.len().min(60)])
}

#[cfg(test)]
mod tests {
    use super::artifact_name;

    #[test]
    fn artifact_names_are_safe_file_names() {
        assert_eq!(
            artifact_name("Register & log in!", "390x844"),
            "register-log-in-390x844"
        );
        assert_eq!(artifact_name("../../etc", "1x1"), "etc-1x1");
    }
}
