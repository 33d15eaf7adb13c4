//! Command agents: any coding CLI (`claude -p`, `codex exec`, `aider --message`, a script)
//! run inside the sandbox in a fresh clone of the repository, with the prompt on stdin and
//! in the file `SLIPWAY_PROMPT_FILE` names. Its changes become a commit that Slipway makes
//! and pushes; without changes its output is a reply; in plan mode its output is the plan.
//!
//! The agent's clone is untrusted (it can rewrite its `.git`, or plant a `.git` file that
//! points at another repository), so Slipway commits from its own bare clone, outside the
//! sandbox's reach, with a plain copy of the agent's files (every `.git` dropped, links
//! never followed) as the work tree.

mod copy;

use crate::{Agent, AgentError, Answer, Progress, Turn};
use slipway_forge::git::Git;
use slipway_sandbox::{CellSpec, CommandSpec, Network, Outcome, Quotas, Sandbox};
use std::collections::VecDeque;
use std::path::PathBuf;
use tokio::sync::mpsc::Sender;

/// The most characters of output kept as a reply or a plan.
pub const MAX_ANSWER_CHARS: usize = 20_000;
const MAX_KEPT_LINES: usize = 2_000;

/// One project's command agent for one turn.
pub struct CommandAgent<'a> {
    pub sandbox: &'a Sandbox,
    pub git: &'a Git,
    /// The command line, run with `sh -c`.
    pub command: String,
    /// The repository (path or URL) to clone and push to.
    pub source: String,
    /// The branch the agent starts from: the base for a goal, the PR's branch for a fix.
    pub start_branch: String,
    /// The branch its changes are pushed to.
    pub push_branch: String,
    /// Whether the push may replace the branch (a fresh run branch) or must fast-forward
    /// (a fix: a push by a person in between is never overwritten).
    pub replace_branch: bool,
    /// A fresh directory for this turn; removed by the caller.
    pub workdir: PathBuf,
    /// The project's secrets and the run's facts.
    pub env: Vec<(String, String)>,
    /// The commit message's first line.
    pub title: String,
    /// Paths the agent must not see (the project's repository on disk).
    pub hidden: Vec<PathBuf>,
}

impl CommandAgent<'_> {
    async fn prepare(
        &self,
        prompt: &str,
    ) -> Result<(PathBuf, PathBuf, PathBuf, String), AgentError> {
        let trusted = self.workdir.join("git");
        let workspace = self.workdir.join("work");
        let repo = workspace.join("repo");
        tokio::fs::create_dir_all(&workspace)
            .await
            .map_err(|source| AgentError::Io {
                what: "cannot create the workspace",
                source,
            })?;
        let unavailable = |source| AgentError::Git {
            what: "cannot clone the repository",
            source,
        };
        let (trusted_text, repo_text) = (path_text(&trusted), path_text(&repo));
        self.git
            .run(
                None,
                &[
                    "clone",
                    "--quiet",
                    "--no-local",
                    "--bare",
                    &self.source,
                    &trusted_text,
                ],
            )
            .await
            .map_err(unavailable)?;
        let start = self
            .git
            .run(
                Some(&trusted),
                &[
                    "rev-parse",
                    "--verify",
                    &format!("refs/heads/{}^{{commit}}", self.start_branch),
                ],
            )
            .await
            .map_err(|_| {
                AgentError::Refused(format!(
                    "branch '{}' does not exist in {}",
                    self.start_branch, self.source
                ))
            })?;
        self.git
            .run(
                None,
                &[
                    "clone",
                    "--quiet",
                    "--no-local",
                    "--branch",
                    &self.start_branch,
                    &trusted_text,
                    &repo_text,
                ],
            )
            .await
            .map_err(unavailable)?;
        for (key, value) in [
            ("user.name", "Slipway agent"),
            ("user.email", "agent@slipway.invalid"),
        ] {
            self.git
                .run(Some(&repo), &["config", key, value])
                .await
                .map_err(unavailable)?;
        }
        let prompt_file = workspace.join("prompt.md");
        tokio::fs::write(&prompt_file, prompt)
            .await
            .map_err(|source| AgentError::Io {
                what: "cannot write the prompt",
                source,
            })?;
        Ok((trusted, repo, prompt_file, start))
    }

    /// Commits the agent's files (as they are in `repo`, Slipway's plain copy of them) on top
    /// of `start` from the trusted clone, and pushes; `None` when nothing changed.
    async fn commit_and_push(
        &self,
        trusted: &std::path::Path,
        repo: &std::path::Path,
        start: &str,
    ) -> Result<Option<String>, AgentError> {
        self.in_work_tree(trusted, repo, &["read-tree", start])
            .await?;
        self.in_work_tree(trusted, repo, &["add", "--all", "."])
            .await?;
        let tree = self.in_work_tree(trusted, repo, &["write-tree"]).await?;
        let start_tree = self
            .in_work_tree(trusted, repo, &["rev-parse", &format!("{start}^{{tree}}")])
            .await?;
        if tree == start_tree {
            return Ok(None);
        }
        let sha = self
            .in_work_tree(
                trusted,
                repo,
                &[
                    "-c",
                    "user.name=Slipway agent",
                    "-c",
                    "user.email=agent@slipway.invalid",
                    "commit-tree",
                    &tree,
                    "-p",
                    start,
                    "-m",
                    &self.title,
                ],
            )
            .await?;
        let refspec = format!(
            "{}{sha}:refs/heads/{}",
            if self.replace_branch { "+" } else { "" },
            self.push_branch
        );
        self.git
            .run(Some(trusted), &["push", "--quiet", &self.source, &refspec])
            .await
            .map_err(|e| {
                AgentError::Refused(format!(
                    "the changes could not be pushed to '{}' (did someone else push to it?): {e}",
                    self.push_branch
                ))
            })?;
        Ok(Some(sha))
    }
}

impl CommandAgent<'_> {
    /// Runs git on Slipway's own clone (`trusted`) with the agent's files as the work tree.
    async fn in_work_tree(
        &self,
        trusted: &std::path::Path,
        repo: &std::path::Path,
        args: &[&str],
    ) -> Result<String, AgentError> {
        let git_dir = format!("--git-dir={}", path_text(trusted));
        let work_tree = format!("--work-tree={}", path_text(repo));
        let mut all = vec![git_dir.as_str(), work_tree.as_str()];
        all.extend_from_slice(args);
        self.git
            .run(None, &all)
            .await
            .map_err(|source| AgentError::Git {
                what: "git failed on the agent's commit",
                source,
            })
    }
}

impl Agent for CommandAgent<'_> {
    async fn work(&self, turn: Turn<'_>, progress: Sender<Progress>) -> Result<Answer, AgentError> {
        let (trusted, repo, prompt_file, start) = self.prepare(turn.prompt).await?;
        let workspace = self.workdir.join("work");
        let mut env = self.env.clone();
        env.push(("SLIPWAY_PROMPT_FILE".into(), path_text(&prompt_file)));
        env.push(("SLIPWAY_RUN_ID".into(), turn.run_id.to_string()));
        env.push((
            "SLIPWAY_PLAN_MODE".into(),
            if turn.plan_mode { "1" } else { "0" }.into(),
        ));
        // The prompt on stdin too: most coding CLIs read it there.
        let command = format!("exec < \"$SLIPWAY_PROMPT_FILE\"\n{}", self.command);
        slipway_sandbox::give_to_sandbox(self.sandbox, &workspace).map_err(|source| {
            AgentError::Io {
                what: "the workspace could not be prepared",
                source,
            }
        })?;
        let scratch = self.workdir.join("scratch");
        let cell = self
            .sandbox
            .cell(&CellSpec {
                // The operator's command may name its script: the agent sees it, read-only.
                visible: &slipway_sandbox::paths_named_in(&command),
                workspace: &workspace,
                scratch: &scratch,
                network: Network::Outbound,
                quotas: Quotas::default(),
                hidden: &self.hidden,
                name: &format!("agent-run-{}", turn.run_id),
            })
            .await?;
        let prompt_inside = cell.inside(&prompt_file);
        if let Some(entry) = env.iter_mut().find(|(k, _)| k == "SLIPWAY_PROMPT_FILE") {
            entry.1 = path_text(&prompt_inside);
        }
        let (lines_tx, mut lines) = tokio::sync::mpsc::channel(slipway_sandbox::LINES_IN_FLIGHT);
        let process = cell
            .spawn(
                &CommandSpec {
                    command: &command,
                    cwd: &repo,
                    env: &env,
                },
                lines_tx,
            )
            .map_err(|source| AgentError::Io {
                what: "the agent could not start",
                source,
            })?;
        let collect = async {
            let mut kept = VecDeque::new();
            while let Some(line) = lines.recv().await {
                // Only a tail of the output is kept: a line the reader has no room for is dropped.
                let _ = progress.try_send(Progress::Output(line.clone()));
                if kept.len() == MAX_KEPT_LINES {
                    kept.pop_front();
                }
                kept.push_back(line);
            }
            kept
        };
        let (outcome, kept) = tokio::join!(process.wait(turn.timeout, turn.cancel), collect);
        let exceeded = cell.exceeded();
        // Nothing of the agent's runs past here, so its files hold still while read.
        cell.close().await;
        let output = tail_text(&kept);
        if let (Some(reason), false) = (exceeded, outcome == Outcome::Cancelled) {
            return Ok(Answer::Failed(format!("the agent was stopped: {reason}")));
        }
        match outcome {
            Outcome::Exited(0) => {}
            Outcome::Cancelled => return Ok(Answer::Cancelled),
            Outcome::Unstarted => return Err(AgentError::Unstarted(last_lines(&kept, 3))),
            Outcome::TimedOut => {
                return Ok(Answer::Failed(format!(
                    "the agent did not finish within {} s (agent_timeout_secs) and was stopped",
                    turn.timeout.as_secs()
                )))
            }
            Outcome::Exited(code) => {
                let said: Vec<&str> = kept.iter().map(String::as_str).collect();
                let quoted = slipway_core::turn::telling_lines(&said, 5);
                return Ok(Answer::Failed(if quoted.is_empty() {
                    format!("the agent exited with code {code} and printed nothing")
                } else {
                    format!("the agent exited with code {code}:{quoted}")
                }));
            }
            Outcome::Signalled(signal) => {
                return Ok(Answer::Failed(format!(
                    "the agent was killed by signal {signal}"
                )))
            }
        }
        if turn.plan_mode {
            return Ok(Answer::Plan(output));
        }
        // The agent could have replaced its checkout by a link to anywhere on the host.
        if !std::fs::symlink_metadata(&repo).is_ok_and(|m| m.is_dir()) {
            return Ok(Answer::Failed(
                "the agent replaced its checkout with something other than a directory".into(),
            ));
        }
        // Git reads a copy of Slipway's own, never the agent's tree itself.
        let plain = self.workdir.join("commit");
        let copied = {
            let (repo, plain) = (repo.clone(), plain.clone());
            tokio::task::spawn_blocking(move || copy::plain_copy(&repo, &plain)).await
        };
        match copied {
            Ok(Ok(notes)) => {
                for note in notes {
                    let _ = progress
                        .send(Progress::Output(format!("slipway: {note}")))
                        .await;
                }
            }
            Ok(Err(error)) => {
                return Ok(Answer::Failed(format!(
                    "the agent's files could not be copied for the commit: {error}"
                )))
            }
            Err(source) => {
                return Err(AgentError::Task {
                    what: "copying the agent's files failed",
                    source,
                })
            }
        }
        match self.commit_and_push(&trusted, &plain, &start).await? {
            Some(sha) => Ok(Answer::Pushed {
                branch: self.push_branch.clone(),
                sha,
            }),
            None => Ok(Answer::Reply(output)),
        }
    }

    async fn stop(&self, _external_id: i64) -> Result<(), AgentError> {
        Ok(()) // a local command is stopped by cancelling its turn
    }
}

fn path_text(path: &std::path::Path) -> String {
    path.display().to_string()
}

/// The output as text, its tail when long.
fn tail_text(lines: &VecDeque<String>) -> String {
    let text = lines
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join("\n");
    if text.len() <= MAX_ANSWER_CHARS {
        return text;
    }
    let mut start = text.len() - MAX_ANSWER_CHARS;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("[…]{}", &text[start..])
}

fn last_lines(lines: &VecDeque<String>, n: usize) -> String {
    let skip = lines.len().saturating_sub(n);
    lines
        .iter()
        .skip(skip)
        .cloned()
        .collect::<Vec<_>>()
        .join(" | ")
}
