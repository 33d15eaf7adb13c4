//! The line rules (credentials, skip and focus markers, debug leftovers) and the function
//! rules (complexity, length).

use crate::lang::{Language, Outline};
use crate::{credentials, Config, Finding, Severity};
use regex::Regex;
use std::collections::HashMap;
use std::sync::OnceLock;

/// A changed file's lines: those the change added (1-based line numbers in the head) and
/// those it removed (text only).
pub(crate) struct Lines<'a> {
    pub added: Vec<(u32, &'a str)>,
    pub removed: Vec<&'a str>,
}

impl<'a> Lines<'a> {
    /// A line is added when the head holds it more often than the base (by count, so a
    /// moved line is not added).
    pub fn new(base: Option<&'a str>, head: &'a str) -> Self {
        let mut counts: HashMap<&str, i64> = HashMap::new();
        for line in base.unwrap_or_default().lines() {
            *counts.entry(line).or_default() += 1;
        }
        let mut added = Vec::new();
        for (index, line) in head.lines().enumerate() {
            match counts.get_mut(line) {
                Some(n) if *n > 0 => *n -= 1,
                _ => added.push((index as u32 + 1, line)),
            }
        }
        let mut removed = Vec::new();
        for line in base.unwrap_or_default().lines() {
            if let Some(n) = counts.get_mut(line).filter(|n| **n > 0) {
                *n -= 1;
                removed.push(line);
            }
        }
        Self { added, removed }
    }
}

/// The longest code shown of a line.
const MAX_CODE: usize = 200;

/// A line as shown in a finding: credentials masked, then cut.
pub(crate) fn shown(line: &str, secrets: &[String]) -> String {
    let masked = credentials::mask(line, &credentials::find(line, secrets));
    let trimmed = masked.trim();
    match trimmed.char_indices().nth(MAX_CODE) {
        Some((end, _)) => format!("{}…", &trimmed[..end]),
        None => trimmed.to_owned(),
    }
}

fn finding(
    rule: &'static str,
    severity: Severity,
    path: &str,
    line: u32,
    message: String,
    code: &str,
) -> Finding {
    Finding {
        rule,
        severity,
        file: path.to_owned(),
        line: Some(line),
        message,
        code: Some(code.to_owned()),
    }
}

pub(crate) fn credentials(path: &str, lines: &Lines, secrets: &[String], out: &mut Vec<Finding>) {
    for &(number, line) in &lines.added {
        for leak in credentials::find(line, secrets) {
            out.push(finding(
                crate::CREDENTIALS,
                Severity::Error,
                path,
                number,
                format!(
                    "a {} was added (masked here); remove it, rotate it, and read it from the \
                     environment or a secret store",
                    leak.kind
                ),
                line,
            ));
        }
    }
}

fn marker_patterns(language: Language) -> &'static Regex {
    static PATTERNS: OnceLock<[Regex; 3]> = OnceLock::new();
    let [python, javascript, other] = PATTERNS.get_or_init(|| {
        [
            r"@pytest\.mark\.(?:skip|skipif|xfail)\b|\bpytest\.(?:skip|xfail)\(|@unittest\.(?:skip\w*|expectedFailure)|\.skipTest\(",
            r"\b(?:it|describe|test|context|suite)\.(?:skip|only|todo)\b|\b(?:xit|xdescribe|xtest|fit|fdescribe|xcontext)\s*\(|\.only\s*\(",
            r"#\[ignore\b|\b\w+\.Skip(?:Now|f)?\(",
        ]
        .map(|p| Regex::new(p).expect("a valid pattern"))
    });
    match language {
        Language::Python => python,
        Language::JavaScript | Language::TypeScript | Language::Tsx => javascript,
        Language::Rust | Language::Go => other,
    }
}

/// New skip and focus markers: a test that no longer runs, or that makes the others not run.
pub(crate) fn markers(
    path: &str,
    language: Language,
    lines: &Lines,
    severity: Severity,
    out: &mut Vec<Finding>,
) {
    let pattern = marker_patterns(language);
    for &(number, line) in &lines.added {
        if let Some(found) = pattern.find(line) {
            out.push(finding(
                crate::TEST_TAMPERING,
                severity,
                path,
                number,
                format!(
                    "adds `{}`: tests that are skipped or focused stop checking the code; fix \
                     the code instead",
                    found.as_str().trim_end_matches('(')
                ),
                line,
            ));
        }
    }
}

fn debug_pattern(language: Language) -> &'static Regex {
    static PATTERNS: OnceLock<[Regex; 4]> = OnceLock::new();
    let [python, javascript, rust, go] = PATTERNS.get_or_init(|| {
        [
            r"^\s*(?:print\(|breakpoint\(\)|import pdb|pdb\.set_trace\()",
            r"\bconsole\.(?:log|debug)\(|^\s*debugger\b",
            r"\bdbg!\(",
            r"\bfmt\.Print(?:ln|f)?\(",
        ]
        .map(|p| Regex::new(p).expect("a valid pattern"))
    });
    match language {
        Language::Python => python,
        Language::JavaScript | Language::TypeScript | Language::Tsx => javascript,
        Language::Rust => rust,
        Language::Go => go,
    }
}

/// Debugging output left in code that is not a test.
pub(crate) fn debug_leftovers(
    path: &str,
    language: Language,
    lines: &Lines,
    out: &mut Vec<Finding>,
) {
    if crate::paths::is_test_file(path) {
        return;
    }
    let pattern = debug_pattern(language);
    for &(number, line) in &lines.added {
        if let Some(found) = pattern.find(line) {
            out.push(finding(
                crate::DEBUG_LEFTOVERS,
                Severity::Warning,
                path,
                number,
                format!("debugging left in: `{}`", found.as_str().trim()),
                line,
            ));
        }
    }
}

/// Complexity and length of the functions the change added or changed; a function that
/// existed is held to its old value, so one made simpler or left as it was never fails.
pub(crate) fn functions(
    path: &str,
    config: &Config,
    base_text: Option<&str>,
    base: Option<&Outline>,
    head: &Outline,
    out: &mut Vec<Finding>,
) {
    let before: HashMap<&str, &crate::lang::Function> = base
        .map(|b| b.functions.iter().map(|f| (f.key.as_str(), f)).collect())
        .unwrap_or_default();
    for function in &head.functions {
        let old = before.get(function.key.as_str());
        // Unchanged; when the base could not be parsed, its text still holds the function.
        let unchanged = match base {
            Some(_) => old.is_some_and(|o| o.text == function.text),
            None => base_text.is_some_and(|b| b.contains(&function.text)),
        };
        if unchanged {
            continue;
        }
        let code = function.text.lines().next().unwrap_or_default();
        let limit = config.max_function_complexity;
        if function.complexity > limit {
            let message = match old {
                Some(old) if old.complexity >= function.complexity => None,
                Some(old) => Some(format!(
                    "`{}` has cyclomatic complexity {} (was {}; limit {limit}): split it",
                    function.key, function.complexity, old.complexity
                )),
                None => Some(format!(
                    "`{}` has cyclomatic complexity {} (limit {limit}): split it",
                    function.key, function.complexity
                )),
            };
            if let Some(message) = message {
                out.push(finding(
                    crate::COMPLEXITY,
                    Severity::Error,
                    path,
                    function.line,
                    message,
                    code,
                ));
            }
        }
        if let Some(limit) = config.max_function_lines {
            let grew = old.is_none_or(|old| function.lines > old.lines);
            if function.lines > limit && grew {
                let was = old
                    .map(|o| format!("was {}; ", o.lines))
                    .unwrap_or_default();
                out.push(finding(
                    crate::FUNCTION_LENGTH,
                    Severity::Error,
                    path,
                    function.line,
                    format!(
                        "`{}` is {} lines long ({was}limit {limit}): split it",
                        function.key, function.lines
                    ),
                    code,
                ));
            }
        }
    }
}
