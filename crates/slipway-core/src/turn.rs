//! What one turn of an agent run decides, as pure functions: the prompt it sends, and what
//! the run becomes after the agent's answer. The engine gathers the facts and applies the
//! decision in one place.

use crate::prompt;
use crate::run::{Response, RunStatus};

/// What a turn asks of the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ask<'a> {
    Start,
    Continue(&'a str),
    Confirm,
    Modify(&'a str),
    /// Fix the pull request; the fix prompt with its evidence, as recorded.
    Fix(&'a str),
}

/// Whether the turn starts the agent's work, resumes it, or fixes its pull request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Start,
    Resume,
    Fix,
}

/// What the run knows when a turn begins.
#[derive(Debug, Clone, Copy)]
pub struct RunFacts<'a> {
    /// The first prompt (planning statement, rules, goal).
    pub first_prompt: &'a str,
    /// The agent's last reply or plan.
    pub last_answer: &'a str,
    /// Codegen keeps its own conversation: resumes send only the new words.
    pub codegen: bool,
    /// The project's plan-mode setting.
    pub plan_mode: bool,
}

/// The prompt of a turn, its shape, and whether the agent is to answer with a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prompted {
    pub prompt: String,
    pub shape: Shape,
    pub plan_mode: bool,
}

pub fn prompt(ask: Ask, run: &RunFacts) -> Prompted {
    let resume = |prompt: String, plan_mode: bool| Prompted {
        prompt,
        shape: Shape::Resume,
        plan_mode,
    };
    match ask {
        Ask::Start => Prompted {
            prompt: run.first_prompt.to_owned(),
            shape: Shape::Start,
            plan_mode: run.plan_mode,
        },
        Ask::Continue(text) if run.codegen => resume(text.to_owned(), false),
        Ask::Continue(text) => resume(
            prompt::for_continue(run.first_prompt, run.last_answer, text),
            false,
        ),
        Ask::Confirm if run.codegen => resume(
            "Your plan is confirmed: carry it out now and open a pull request.".into(),
            false,
        ),
        Ask::Confirm => resume(
            prompt::for_confirm(run.first_prompt, run.last_answer),
            false,
        ),
        Ask::Modify(text) if run.codegen => resume(
            format!("{text}\n\nAnswer with the revised plan; do not change files yet."),
            true,
        ),
        Ask::Modify(text) => resume(
            prompt::for_modify(run.first_prompt, run.last_answer, text),
            true,
        ),
        Ask::Fix(evidence) => Prompted {
            prompt: evidence.to_owned(),
            shape: Shape::Fix,
            plan_mode: false,
        },
    }
}

/// The agent's answer, its words already masked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answered {
    /// The turn was cancelled.
    Cancelled,
    Failed(String),
    Reply(String),
    Plan(String),
    /// A pull request whose head is being validated; `unchanged` when a fix left the head as
    /// the failed validation saw it.
    PullRequest {
        unchanged: bool,
    },
}

/// What the run becomes after an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nothing to record.
    Nothing,
    /// The run fails: its note, how the fix attempt in progress ends (for a fix), and what
    /// the pull request is told.
    Fail {
        note: String,
        attempt: Option<String>,
        tell: String,
    },
    /// The run shows the answer and waits; with `then_confirm`, the plan is confirmed at once.
    Answer {
        response: Response,
        status: RunStatus,
        note: Option<String>,
        then_confirm: bool,
    },
    /// The pull request is being validated.
    Validating,
}

/// The run's next state after `answered`, for a fix turn or not.
pub fn decide(answered: Answered, is_fix: bool, auto_confirm: bool) -> Decision {
    const HANDED_OVER: &str = "a person takes it from here.";
    match answered {
        Answered::Cancelled => Decision::Nothing,
        Answered::Failed(message) => Decision::Fail {
            attempt: is_fix.then(|| format!("the agent failed: {message}")),
            tell: format!("Slipway: the agent run failed: {message}"),
            note: message,
        },
        Answered::Reply(text) if is_fix => Decision::Fail {
            note: format!(
                "the agent gave up fixing its pull request without a change: {}",
                headline(&text, 200)
            ),
            attempt: Some("the agent changed nothing".into()),
            tell: format!("Slipway: the agent gave up fixing this pull request; {HANDED_OVER}"),
        },
        Answered::Reply(text) => Decision::Answer {
            response: Response::Reply { text },
            status: RunStatus::AwaitingInput,
            note: None,
            then_confirm: false,
        },
        Answered::Plan(text) => Decision::Answer {
            response: Response::Plan { text },
            status: if auto_confirm {
                RunStatus::Working
            } else {
                RunStatus::AwaitingInput
            },
            note: auto_confirm
                .then(|| "the plan was confirmed automatically (auto_confirm_plan)".into()),
            then_confirm: auto_confirm,
        },
        Answered::PullRequest { unchanged: true } if is_fix => Decision::Fail {
            note: "the agent answered without changing its pull request; the fix loop ends".into(),
            attempt: Some("the agent changed nothing".into()),
            tell: format!(
                "Slipway: the agent answered without changing this pull request; {HANDED_OVER}"
            ),
        },
        Answered::PullRequest { .. } => Decision::Validating,
    }
}

/// The lines of a failed agent's output that say why, as a note quotes them (one per line,
/// indented): the last `n` that name an error, or else the last `n` that are not empty. An
/// agent's last words are often chatter ("got a prompt of 38 lines") after the error itself.
pub fn telling_lines(lines: &[&str], n: usize) -> String {
    const SIGNS: [&str; 10] = [
        "error",
        "fatal",
        "fail",
        "denied",
        "not found",
        "no such",
        "panic",
        "exception",
        "traceback",
        "cannot",
    ];
    let said: Vec<&str> = lines
        .iter()
        .map(|l| l.trim_end())
        .filter(|l| !l.trim().is_empty())
        .collect();
    let telling: Vec<&str> = said
        .iter()
        .copied()
        .filter(|l| {
            let lower = l.to_lowercase();
            SIGNS.iter().any(|sign| lower.contains(sign))
        })
        .collect();
    let chosen = if telling.is_empty() { said } else { telling };
    let skip = chosen.len().saturating_sub(n);
    chosen[skip..]
        .iter()
        .map(|l| format!("\n    {l}"))
        .collect()
}

/// The first non-empty line of `text`, at most `max` characters (titles, notes).
pub fn headline(text: &str, max: usize) -> String {
    text.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .chars()
        .take(max)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUN: RunFacts = RunFacts {
        first_prompt: "Goal: greet",
        last_answer: "Plan: 1. greet",
        codegen: false,
        plan_mode: true,
    };

    #[test]
    fn a_failure_note_quotes_the_lines_that_name_the_error_not_the_last_chatter() {
        let output = [
            "reading the repository",
            "Error: ANTHROPIC_API_KEY is not set",
            "",
            "got a prompt of 38 lines",
        ];
        assert_eq!(
            telling_lines(&output, 5),
            "\n    Error: ANTHROPIC_API_KEY is not set"
        );
        assert_eq!(
            telling_lines(&["one", "two", "", "three"], 2),
            "\n    two\n    three"
        );
        assert_eq!(telling_lines(&[], 5), "");
    }

    #[test]
    fn a_start_sends_the_first_prompt_in_the_projects_plan_mode() {
        let p = prompt(Ask::Start, &RUN);
        assert_eq!(
            (p.prompt.as_str(), p.shape, p.plan_mode),
            ("Goal: greet", Shape::Start, true)
        );
    }

    #[test]
    fn resumes_carry_the_conversation_for_a_command_and_only_the_words_for_codegen() {
        let command = prompt(Ask::Modify("shorter"), &RUN);
        assert!(command.prompt.contains("Goal: greet") && command.prompt.contains("shorter"));
        assert_eq!((command.shape, command.plan_mode), (Shape::Resume, true));
        let codegen = RunFacts {
            codegen: true,
            ..RUN
        };
        let p = prompt(Ask::Continue("go on"), &codegen);
        assert_eq!((p.prompt.as_str(), p.plan_mode), ("go on", false));
        assert!(prompt(Ask::Confirm, &codegen)
            .prompt
            .contains("plan is confirmed"));
        let fix = prompt(Ask::Fix("evidence"), &RUN);
        assert_eq!(
            (fix.prompt.as_str(), fix.shape, fix.plan_mode),
            ("evidence", Shape::Fix, false)
        );
    }

    #[test]
    fn a_failure_fails_the_run_and_ends_a_fix_attempt() {
        let Decision::Fail {
            note,
            attempt,
            tell,
        } = decide(Answered::Failed("boom".into()), true, false)
        else {
            panic!("not a failure");
        };
        assert_eq!(note, "boom");
        assert_eq!(attempt.as_deref(), Some("the agent failed: boom"));
        assert!(tell.contains("boom"));
        assert!(matches!(
            decide(Answered::Failed("x".into()), false, false),
            Decision::Fail { attempt: None, .. }
        ));
    }

    #[test]
    fn a_fix_without_a_change_ends_the_loop_but_a_reply_otherwise_waits() {
        for answer in [
            Answered::Reply("I give up".into()),
            Answered::PullRequest { unchanged: true },
        ] {
            assert!(matches!(
                decide(answer, true, false),
                Decision::Fail { attempt: Some(a), .. } if a == "the agent changed nothing"
            ));
        }
        assert_eq!(
            decide(Answered::Reply("which file?".into()), false, false),
            Decision::Answer {
                response: Response::Reply {
                    text: "which file?".into()
                },
                status: RunStatus::AwaitingInput,
                note: None,
                then_confirm: false,
            }
        );
        assert_eq!(
            decide(Answered::PullRequest { unchanged: true }, false, false),
            Decision::Validating
        );
    }

    #[test]
    fn a_plan_is_confirmed_at_once_only_with_auto_confirm() {
        let Decision::Answer {
            status,
            then_confirm,
            note,
            ..
        } = decide(Answered::Plan("p".into()), false, true)
        else {
            panic!("not an answer");
        };
        assert_eq!((status, then_confirm), (RunStatus::Working, true));
        assert!(note.unwrap().contains("auto_confirm_plan"));
        assert!(matches!(
            decide(Answered::Plan("p".into()), false, false),
            Decision::Answer {
                status: RunStatus::AwaitingInput,
                then_confirm: false,
                ..
            }
        ));
        assert_eq!(decide(Answered::Cancelled, true, true), Decision::Nothing);
    }
}
