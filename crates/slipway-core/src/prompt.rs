//! Prompt assembly: what a coding agent is told, for a goal, an answer to it, or a fix.
//! Pure and bounded: a prompt never grows past `MAX_PROMPT_CHARS`, however long the log.

use crate::settings::Settings;

/// The most characters a prompt may have; long logs and answers are trimmed to fit.
pub const MAX_PROMPT_CHARS: usize = 48_000;
/// The most characters of a failing step's log put into a fix prompt.
pub const MAX_LOG_CHARS: usize = 16_000;
const HEAD_LINES: usize = 15;
const TAIL_LINES: usize = 60;
const ERROR_LINES: usize = 40;
const MAX_LINE_CHARS: usize = 400;
const MAX_CHANGED_FILES: usize = 100;

/// A goal as a person wrote it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Goal {
    pub text: String,
    pub requirements: Option<String>,
    pub acceptance_criteria: Option<String>,
}

/// What a failed validation says, for a fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evidence {
    pub step: String,
    pub command: Option<String>,
    pub exit_code: Option<i32>,
    pub detail: Option<String>,
    /// The failing step's log, already masked.
    pub log: Vec<String>,
    /// Files the pull request changed.
    pub changed_files: Vec<String>,
    /// The base branch and its head that the pull request was merged onto to validate it.
    pub merged_onto: Option<(String, String)>,
    /// This fix's number, from 1, and how many are allowed.
    pub attempt: u32,
    pub max_attempts: u32,
    /// A model's note on the failure (probable cause, files, fix), when one was made.
    pub analysis: Option<String>,
}

/// The first prompt of a run. In plan mode the agent is asked for a plan only.
pub fn for_goal(settings: &Settings, goal: &Goal, plan_mode: bool) -> String {
    let mut out = preamble(settings);
    section(&mut out, "Goal", &goal.text);
    if let Some(requirements) = &goal.requirements {
        section(&mut out, "Requirements", requirements);
    }
    if let Some(criteria) = &goal.acceptance_criteria {
        section(&mut out, "Acceptance criteria", criteria);
    }
    if plan_mode {
        section(
            &mut out,
            "What to answer",
            "Do not change any file yet. Answer with a numbered plan of the changes you would make.",
        );
    } else {
        validate_with_the_tool(settings, &mut out);
        section(
            &mut out,
            "What to answer",
            "Make the changes in the repository. If something is unclear, change nothing and ask.",
        );
    }
    bounded(out)
}

/// A person's answer to a reply: the conversation so far, then their text.
pub fn for_continue(first_prompt: &str, answer: &str, text: &str) -> String {
    conversation(
        first_prompt,
        "Your answer",
        answer,
        "The person replies",
        text,
    )
}

/// The plan was confirmed: carry it out.
pub fn for_confirm(first_prompt: &str, plan: &str) -> String {
    conversation(
        first_prompt,
        "Your plan",
        plan,
        "The person confirmed the plan",
        "Carry out the plan now: make the changes in the repository.",
    )
}

/// The plan needs changes: plan again.
pub fn for_modify(first_prompt: &str, plan: &str, text: &str) -> String {
    conversation(
        first_prompt,
        "Your plan",
        plan,
        "The person wants the plan changed",
        &format!("{text}\n\nDo not change any file yet. Answer with the revised plan."),
    )
}

/// A fix of the agent's own pull request after a failed validation.
pub fn for_fix(settings: &Settings, goal: &Goal, evidence: &Evidence) -> String {
    let mut out = preamble(settings);
    section(&mut out, "Goal", &goal.text);
    let mut failure = format!(
        "Your pull request failed validation (fix {} of {}).\nStep: {}\n",
        evidence.attempt, evidence.max_attempts, evidence.step
    );
    if let Some(command) = &evidence.command {
        failure.push_str(&format!("Command: {command}\n"));
    }
    if let Some(code) = evidence.exit_code {
        failure.push_str(&format!("Exit code: {code}\n"));
    }
    if let Some(detail) = &evidence.detail {
        failure.push_str(&format!("Detail: {detail}\n"));
    }
    if let Some((branch, sha)) = &evidence.merged_onto {
        failure.push_str(&format!(
            "Validated merged onto {branch} at {sha}, as it would be merged: if {branch} \
             changed since you branched, adapt to it.\n"
        ));
    }
    section(&mut out, "Failure", failure.trim_end());
    let log = trim_log(&evidence.log);
    section(
        &mut out,
        "Log (trimmed)",
        &format!("```\n{}\n```", log.join("\n")),
    );
    if !evidence.changed_files.is_empty() {
        let mut files: Vec<String> = evidence
            .changed_files
            .iter()
            .take(MAX_CHANGED_FILES)
            .map(|f| format!("- {f}"))
            .collect();
        if evidence.changed_files.len() > MAX_CHANGED_FILES {
            files.push(format!(
                "- … and {} more",
                evidence.changed_files.len() - MAX_CHANGED_FILES
            ));
        }
        section(
            &mut out,
            "Files your pull request changed",
            &files.join("\n"),
        );
    }
    if let Some(analysis) = &evidence.analysis {
        section(
            &mut out,
            "A model's opinion of the failure (it may be wrong: check it against the log)",
            analysis,
        );
    }
    validate_with_the_tool(settings, &mut out);
    section(
        &mut out,
        "What to answer",
        "Fix the cause of the failure in the repository. Do not weaken or delete the tests.",
    );
    bounded(out)
}

/// For a command agent whose CLI has Slipway's MCP server: validate before finishing.
fn validate_with_the_tool(settings: &Settings, out: &mut String) {
    if let crate::settings::AgentConfig::Command {
        slipway_mcp: true, ..
    } = settings.agent
    {
        section(
            out,
            "Validate before you finish",
            "You have Slipway's MCP server. When your changes are done, commit them and call its \
             `validate` tool with the repository's directory as `path` (and `base`: the branch \
             your work will be merged into). It runs the checks the pull request must pass, in \
             a sandbox. If it fails, fix what its failing step's log and the findings say, \
             commit, and validate again until it passes.",
        );
    }
}

/// The lines of a log that matter: the head, every line that looks like an error (up to a
/// limit), and the tail, in their order, with `…` where lines were left out. Long lines are
/// cut; the whole stays under `MAX_LOG_CHARS`.
pub fn trim_log(lines: &[String]) -> Vec<String> {
    let n = lines.len();
    let mut keep = vec![false; n];
    keep.iter_mut().take(HEAD_LINES).for_each(|k| *k = true);
    keep.iter_mut()
        .skip(n.saturating_sub(TAIL_LINES))
        .for_each(|k| *k = true);
    let mut errors = 0;
    for (i, line) in lines.iter().enumerate() {
        if errors < ERROR_LINES && !keep[i] && looks_like_error(line) {
            keep[i] = true;
            errors += 1;
        }
    }
    let mut out = Vec::new();
    let mut skipped = false;
    for (line, kept) in lines.iter().zip(&keep) {
        if *kept {
            if skipped {
                out.push("…".to_owned());
                skipped = false;
            }
            out.push(cut(line, MAX_LINE_CHARS));
        } else {
            skipped = true;
        }
    }
    // Over budget: drop lines after the head until it fits (the tail matters most).
    let mut total: usize = out.iter().map(|l| l.len() + 1).sum();
    while total > MAX_LOG_CHARS && out.len() > HEAD_LINES + 1 {
        let removed = out.remove(HEAD_LINES.min(out.len() - 1));
        total -= removed.len() + 1;
    }
    out
}

fn looks_like_error(line: &str) -> bool {
    let lower = line.to_ascii_lowercase();
    [
        "error",
        "fail",
        "panic",
        "exception",
        "traceback",
        "assert",
        "fatal",
    ]
    .iter()
    .any(|word| lower.contains(word))
}

fn preamble(settings: &Settings) -> String {
    let mut out = String::new();
    if !settings.planning_statement.trim().is_empty() {
        section(
            &mut out,
            "Planning statement",
            settings.planning_statement.trim(),
        );
    }
    if !settings.repository_rules.trim().is_empty() {
        section(
            &mut out,
            "Repository rules",
            settings.repository_rules.trim(),
        );
    }
    out
}

fn conversation(first: &str, answer_title: &str, answer: &str, title: &str, text: &str) -> String {
    let mut out = first.trim_end().to_owned();
    out.push_str("\n\n");
    section(
        &mut out,
        answer_title,
        &cut(answer.trim(), MAX_PROMPT_CHARS / 4),
    );
    section(&mut out, title, text.trim());
    bounded(out)
}

fn section(out: &mut String, title: &str, body: &str) {
    out.push_str("## ");
    out.push_str(title);
    out.push_str("\n\n");
    out.push_str(body.trim_end());
    out.push_str("\n\n");
}

fn bounded(mut text: String) -> String {
    text.truncate(text.trim_end().len());
    text.push('\n');
    cut(&text, MAX_PROMPT_CHARS)
}

/// At most `max` bytes of `text`, cut at a character boundary, marked when cut.
fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    const MARK: &str = " […]";
    let mut end = max.saturating_sub(MARK.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{MARK}", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings {
            planning_statement: "Keep changes small.".into(),
            repository_rules: "Use the standard library only.".into(),
            ..Settings::default()
        }
    }

    fn goal() -> Goal {
        Goal {
            text: "Add a /version endpoint.".into(),
            requirements: Some("Answer JSON.".into()),
            acceptance_criteria: Some("GET /version returns 200.".into()),
        }
    }

    #[test]
    fn a_goal_prompt_puts_the_planning_statement_and_rules_first() {
        insta::assert_snapshot!(for_goal(&settings(), &goal(), false));
    }

    #[test]
    fn an_agent_with_slipway_mcp_is_asked_to_validate_with_the_tool() {
        let mut settings = settings();
        settings.agent = crate::settings::AgentConfig::Command {
            command: "claude -p".into(),
            plan_mode: false,
            slipway_mcp: true,
        };
        insta::assert_snapshot!(for_goal(&settings, &goal(), false));
        let plain = for_goal(&self::settings(), &goal(), false);
        assert!(!plain.contains("`validate` tool"), "{plain}");
    }

    #[test]
    fn a_plan_mode_prompt_asks_for_a_plan_only() {
        insta::assert_snapshot!(for_goal(&Settings::default(), &goal(), true));
    }

    #[test]
    fn answers_carry_the_conversation() {
        let first = for_goal(&Settings::default(), &goal(), true);
        insta::assert_snapshot!("continue", for_continue(&first, "Which port?", "8080"));
        insta::assert_snapshot!("confirm", for_confirm(&first, "1. add route"));
        insta::assert_snapshot!("modify", for_modify(&first, "1. add route", "also a test"));
    }

    #[test]
    fn a_fix_prompt_carries_the_evidence() {
        let evidence = Evidence {
            step: "test".into(),
            command: Some("python3 -m unittest".into()),
            exit_code: Some(1),
            detail: Some("exit code 1".into()),
            log: vec![
                "test_version (test_app.T) ... FAIL".into(),
                "AssertionError: 404 != 200".into(),
            ],
            changed_files: vec!["app.py".into()],
            merged_onto: Some((
                "main".into(),
                "4b825dc642cb6eb9a060e54bf8d69288fbee4904".into(),
            )),
            attempt: 1,
            max_attempts: 3,
            analysis: None,
        };
        insta::assert_snapshot!(for_fix(&settings(), &goal(), &evidence));
        let noted = Evidence {
            analysis: Some("probable cause: the route is missing".into()),
            ..evidence
        };
        let prompt = for_fix(&settings(), &goal(), &noted);
        let opinion = prompt.find("A model's opinion of the failure").unwrap();
        assert!(prompt[opinion..].contains("probable cause: the route is missing"));
        assert!(opinion < prompt.find("What to answer").unwrap());
    }

    #[test]
    fn a_long_log_keeps_its_head_its_errors_and_its_tail() {
        let mut log: Vec<String> = (0..10_000).map(|i| format!("line {i}")).collect();
        log[5_000] = "ERROR: the database is gone".into();
        let trimmed = trim_log(&log);
        assert_eq!(trimmed[0], "line 0");
        assert!(trimmed.contains(&"ERROR: the database is gone".to_owned()));
        assert_eq!(trimmed.last().unwrap(), "line 9999");
        assert!(trimmed.contains(&"…".to_owned()));
        assert!(trimmed.len() < HEAD_LINES + TAIL_LINES + ERROR_LINES + 3);
    }

    #[test]
    fn prompts_stay_bounded_however_long_the_input() {
        let huge_line = "x".repeat(200_000);
        let evidence = Evidence {
            step: "build".into(),
            command: None,
            exit_code: None,
            detail: None,
            log: vec![huge_line.clone(); 50],
            changed_files: (0..10_000).map(|i| format!("f{i}.rs")).collect(),
            merged_onto: None,
            attempt: 2,
            max_attempts: 3,
            analysis: None,
        };
        let long_goal = Goal {
            text: huge_line.clone(),
            ..Goal::default()
        };
        let prompt = for_fix(&Settings::default(), &long_goal, &evidence);
        assert!(prompt.len() <= MAX_PROMPT_CHARS, "{}", prompt.len());
        let lines: Vec<String> = vec!["é".repeat(10_000); 200];
        assert!(trim_log(&lines).iter().map(String::len).sum::<usize>() <= MAX_LOG_CHARS + 1_000);
        let answer = for_continue(&huge_line, &huge_line, &huge_line);
        assert!(answer.len() <= MAX_PROMPT_CHARS);
    }
}
