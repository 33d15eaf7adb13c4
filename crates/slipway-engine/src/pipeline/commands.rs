//! Running the pipeline's commands in the cell: each step's commands (with retries), and the
//! service of the deploy step with its health check.

use super::{Attempt, PipelineResult, StepEnd};
use slipway_core::pipeline::DEFAULT_STEP_TIMEOUT_SECS;
use slipway_core::validation::StepName;
use slipway_sandbox::{Cell, CommandSpec, Outcome, Process};
use slipway_store::StepUpdate;
use std::time::{Duration, Instant};

impl Attempt<'_> {
    fn step_timeout(&self, secs: Option<u32>) -> (Duration, bool) {
        let step = Duration::from_secs(secs.unwrap_or(DEFAULT_STEP_TIMEOUT_SECS).into());
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left < step {
            (left, true)
        } else {
            (step, false)
        }
    }

    pub(super) fn spawn(
        &self,
        step: StepName,
        command: &str,
        env: &[(String, String)],
    ) -> std::io::Result<(Process, tokio::task::JoinHandle<()>)> {
        let (tx, rx) = tokio::sync::mpsc::channel(slipway_sandbox::LINES_IN_FLIGHT);
        let cell = self
            .cell
            .as_ref()
            .expect("the cell is made before any command");
        let process = cell.spawn(
            &CommandSpec {
                command,
                cwd: &self.workspace,
                env,
            },
            tx,
        )?;
        Ok((process, self.logs.follow(step, rx)))
    }

    /// Runs commands in order until one does not succeed.
    /// Runs the commands in order; each failed one is run again up to `retries` times, and
    /// a pass after a failure marks the step flaky (it passes, and says so).
    pub(super) async fn commands(
        &mut self,
        step: StepName,
        commands: &[String],
        timeout_secs: Option<u32>,
        retries: u32,
    ) -> PipelineResult<StepEnd> {
        let started = Instant::now();
        let budget = self.step_timeout(timeout_secs);
        let mut flaky = Vec::new();
        for command in commands {
            let update = StepUpdate {
                // Stored masked, as the log is: a secret may be written in the command.
                command: Some(self.logs.mask(command)),
                ..Default::default()
            };
            self.inner
                .store
                .update_step(self.id(), self.index(step)?, &update)
                .await?;
            let mut tries = 0;
            loop {
                tries += 1;
                self.logs.line(step, &format!("$ {command}"));
                let end = self.command(step, command, budget, started).await?;
                let retryable = matches!(
                    &end,
                    Some(StepEnd::Failed {
                        retryable: true,
                        ..
                    })
                );
                match end {
                    None if tries > 1 => {
                        flaky.push(format!("`{command}` passed on try {tries}"));
                        break;
                    }
                    None => break,
                    Some(_) if retryable && tries <= retries => self.logs.line(
                        step,
                        &format!("try {tries} of {} failed; running it again", retries + 1),
                    ),
                    Some(end) => return Ok(end),
                }
            }
        }
        if flaky.is_empty() {
            return Ok(StepEnd::Passed(None));
        }
        let update = StepUpdate {
            flaky: true,
            ..Default::default()
        };
        self.inner
            .store
            .update_step(self.id(), self.index(step)?, &update)
            .await?;
        Ok(StepEnd::Passed(Some(format!(
            "flaky: {}",
            flaky.join("; ")
        ))))
    }

    /// Runs one command within what is left of the step's budget; `None` when it passed.
    async fn command(
        &mut self,
        step: StepName,
        command: &str,
        (budget, is_overall): (Duration, bool),
        started: Instant,
    ) -> PipelineResult<Option<StepEnd>> {
        let (process, follow) = match self.spawn(step, command, &self.env) {
            Ok(spawned) => spawned,
            Err(error) => {
                return Ok(Some(StepEnd::Error(format!(
                    "could not start `{command}`: {error}"
                ))))
            }
        };
        let outcome = process
            .wait(budget.saturating_sub(started.elapsed()), self.cancel)
            .await;
        let _ = tokio::time::timeout(Duration::from_secs(2), follow).await;
        let failed = |detail: String, exit_code: Option<i32>, retryable: bool| {
            Some(StepEnd::Failed {
                exit_code,
                detail,
                retryable,
            })
        };
        if let Some(reason) = self.cell.as_ref().and_then(Cell::exceeded) {
            if outcome != Outcome::Cancelled {
                return Ok(failed(
                    format!("`{command}` stopped: {reason}"),
                    None,
                    false,
                ));
            }
        }
        Ok(match outcome {
            Outcome::Exited(0) => None,
            Outcome::Exited(code) => failed(
                format!("`{command}` exited with code {code}"),
                Some(code),
                true,
            ),
            Outcome::Signalled(signal) => failed(
                format!("`{command}` was killed by signal {signal}"),
                None,
                true,
            ),
            Outcome::TimedOut => {
                let why = if is_overall {
                    format!(
                        "the validation's time limit of {} s was reached",
                        self.inner.config.validation_timeout.as_secs()
                    )
                } else {
                    format!("timed out after {} s", budget.as_secs())
                };
                failed(format!("`{command}` {why}"), None, false)
            }
            Outcome::Cancelled => Some(StepEnd::Cancelled),
            Outcome::Unstarted => Some(StepEnd::Error(unstarted(command))),
        })
    }

    /// Starts the service with `PORT` set and waits for its health check.
    pub(super) async fn deploy(
        &mut self,
        start: &str,
        health_path: &str,
        ready_secs: u32,
    ) -> PipelineResult<StepEnd> {
        let port = free_port()?;
        self.service_port = Some(port);
        let mut env = self.env.clone();
        env.push(("PORT".into(), port.to_string()));
        let update = StepUpdate {
            command: Some(self.logs.mask(start)),
            ..Default::default()
        };
        self.inner
            .store
            .update_step(self.id(), self.index(StepName::Deploy)?, &update)
            .await?;
        self.logs
            .line(StepName::Deploy, &format!("$ {start}  (PORT={port})"));
        let (mut process, _follow) = match self.spawn(StepName::Deploy, start, &env) {
            Ok(spawned) => spawned,
            Err(error) => {
                return Ok(StepEnd::Error(format!(
                    "could not start `{start}`: {error}"
                )))
            }
        };
        let url = format!("http://127.0.0.1:{port}{health_path}");
        let started = Instant::now();
        let limit = Duration::from_secs(ready_secs.into())
            .min(self.deadline.saturating_duration_since(started));
        let mut last = String::from("no answer yet");
        let end = loop {
            if let Some(outcome) = process.exited() {
                break match outcome {
                    Outcome::Unstarted => StepEnd::Error(unstarted(start)),
                    Outcome::Exited(code) => StepEnd::Failed {
                        exit_code: Some(code),
                        detail: format!(
                            "the service exited with code {code} before it became healthy"
                        ),
                        retryable: false,
                    },
                    _ => StepEnd::Failed {
                        exit_code: None,
                        detail: "the service was killed before it became healthy".to_owned(),
                        retryable: false,
                    },
                };
            }
            if self.cancel.is_cancelled() {
                break StepEnd::Cancelled;
            }
            if started.elapsed() >= limit {
                break StepEnd::Failed {
                    exit_code: None,
                    detail: format!(
                        "{url} was not healthy within {} s (last: {last})",
                        limit.as_secs()
                    ),
                    retryable: false,
                };
            }
            let cell = self.cell.as_ref().expect("made before deploy");
            match crate::health::status(cell, port, health_path).await {
                Ok(status) if (200..400).contains(&status) => {
                    let detail = format!(
                        "healthy: {url} answered {status} after {} ms",
                        started.elapsed().as_millis()
                    );
                    self.logs.line(StepName::Deploy, &detail);
                    break StepEnd::Passed(Some(detail));
                }
                Ok(status) => last = format!("HTTP {status}"),
                Err(error) if error.kind() == std::io::ErrorKind::ConnectionRefused => {
                    last = "connection refused".to_owned()
                }
                Err(error) => last = error.to_string(),
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                _ = self.cancel.cancelled() => {}
            }
        };
        if matches!(end, StepEnd::Passed(_)) {
            // Later steps (tests) talk to the running app.
            self.env.push(("PORT".into(), port.to_string()));
            self.env.push((
                "SLIPWAY_SERVICE_URL".into(),
                format!("http://127.0.0.1:{port}"),
            ));
            self.service = Some(process);
        } else {
            process.kill().await;
        }
        Ok(end)
    }
}

/// Why a step is `error`: the sandbox, not the code, failed.
fn unstarted(command: &str) -> String {
    format!(
        "the sandbox could not start `{command}` (Slipway's or the machine's fault, not the \
         code's; bubblewrap's message is in the log)"
    )
}

/// A port that was free a moment ago (the service binds it next).
pub(super) fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
