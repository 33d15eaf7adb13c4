//! Tests weakened to pass: deleted tests (a moved or renamed one is not: matched by name
//! and body), fewer or looser assertions, and changed test or CI configuration. Skip and
//! focus markers are line rules (`rules::markers`).

use crate::lang::{Language, Outline, TestCase};
use crate::paths;
use crate::rules::Lines;
use crate::{Finding, Severity};
use std::time::Instant;

/// The tests of every changed file, before and after.
#[derive(Default)]
pub(crate) struct Tests {
    before: Vec<(String, TestCase)>,
    after: Vec<(String, TestCase)>,
    /// Test files deleted whose tests could not be read.
    deleted_files: Vec<String>,
}

impl Tests {
    pub fn changed_file(&mut self, path: &str, base: Option<Outline>, head: Outline) {
        let own = |tests: Vec<TestCase>| tests.into_iter().map(|t| (path.to_owned(), t));
        self.before
            .extend(own(base.map(|b| b.tests).unwrap_or_default()));
        self.after.extend(own(head.tests));
    }

    pub fn deleted_file(
        &mut self,
        path: &str,
        language: Option<Language>,
        base: Option<&str>,
        deadline: Instant,
    ) {
        let outline = match (language, base) {
            (Some(language), Some(text)) => {
                crate::lang::outline(language, path, text, deadline).ok()
            }
            _ => None,
        };
        match outline {
            Some(outline) if !outline.tests.is_empty() => {
                self.changed_file(path, Some(outline), Outline::default())
            }
            _ if paths::is_test_file(path) => self.deleted_files.push(path.to_owned()),
            _ => {}
        }
    }

    pub fn findings(&self, severity: Severity, out: &mut Vec<Finding>) {
        for path in &self.deleted_files {
            out.push(Finding {
                rule: crate::TEST_TAMPERING,
                severity,
                file: path.clone(),
                line: None,
                message: "a test file was deleted; keep the tests and fix the code".into(),
                code: None,
            });
        }
        for (path, test) in &self.before {
            let same_place = self
                .after
                .iter()
                .find(|(p, t)| p == path && t.name == test.name);
            let elsewhere = || {
                self.after
                    .iter()
                    .find(|(_, t)| t.name == test.name || t.body == test.body)
            };
            match same_place.or_else(elsewhere) {
                None => out.push(Finding {
                    rule: crate::TEST_TAMPERING,
                    severity,
                    file: path.clone(),
                    line: Some(test.line),
                    message: format!(
                        "test `{}` was deleted; keep it and fix the code instead",
                        test.name
                    ),
                    code: None,
                }),
                Some((new_path, new)) if new.body != test.body => {
                    if let Some(message) = weakened(test, new) {
                        out.push(Finding {
                            rule: crate::TEST_TAMPERING,
                            severity,
                            file: new_path.clone(),
                            line: Some(new.line),
                            message,
                            code: None,
                        });
                    }
                }
                Some(_) => {}
            }
        }
    }
}

/// What makes an assertion: calls and statements of the five languages' test styles.
const ASSERTIONS: [&str; 9] = [
    "assert",
    "expect(",
    "t.Error",
    "t.Fatal",
    "require.",
    "pytest.raises",
    "self.fail(",
    "should.",
    "panic!(",
];

/// What an assertion compares: a `assert x == 1` loosened to `assert x` loses one.
const COMPARISONS: [&str; 24] = [
    "==",
    "!=",
    "<=",
    ">=",
    " < ",
    " > ",
    " is ",
    " in ",
    "assert_eq!",
    "assert_ne!",
    "assertEqual",
    "assertIn",
    "assertIs",
    "assertRaises",
    "toBe(",
    "toEqual(",
    "toStrictEqual(",
    "toMatch",
    "toContain",
    "toHaveBeenCalledWith",
    "toThrow",
    ".Equal(",
    "DeepEqual",
    "matches!",
];

fn count(body: &str, words: &[&str]) -> usize {
    words.iter().map(|w| body.matches(w).count()).sum()
}

/// How a changed test was weakened, if it was.
fn weakened(before: &TestCase, after: &TestCase) -> Option<String> {
    let (was, now) = (
        count(&before.body, &ASSERTIONS),
        count(&after.body, &ASSERTIONS),
    );
    if now == 0 && was > 0 {
        return Some(format!(
            "test `{}` no longer asserts anything (it had {was} assertions); restore them and \
             fix the code instead",
            after.name
        ));
    }
    if now < was {
        return Some(format!(
            "test `{}` has fewer assertions ({was} → {now}); restore them and fix the code \
             instead",
            after.name
        ));
    }
    let (was, now) = (
        count(&before.body, &COMPARISONS),
        count(&after.body, &COMPARISONS),
    );
    (now < was).then(|| {
        format!(
            "test `{}` checks less: its assertions compare {now} values where they compared \
             {was}; restore them and fix the code instead",
            after.name
        )
    })
}

/// A change to the pipeline, CI, or the test runners' configuration.
pub(crate) fn configuration(
    path: &str,
    texts: (Option<&str>, Option<&str>),
    lines: &Lines,
    severity: Severity,
    out: &mut Vec<Finding>,
) {
    if path == PIPELINE_FILE && texts.0.is_none() {
        // A pipeline where there was none (the commit that adopts Slipway) adds checks:
        // nothing it could weaken.
        return;
    }
    if path == PIPELINE_FILE && analysis_section(texts.0) != analysis_section(texts.1) {
        // The base branch's `[analysis]` decides anyway; trying to change it is said as such.
        out.push(Finding {
            rule: crate::TEST_TAMPERING,
            severity,
            file: path.to_owned(),
            line: texts.1.and_then(analysis_header_line),
            message: "changes `[analysis]` in .slipway.toml: a change may not relax its own \
                      analysis (for a pull request, the base branch's section decides)"
                .into(),
            code: None,
        });
    }
    let touches_tests = |line: &&str| {
        paths::TEST_CONFIGURATION_WORDS
            .iter()
            .any(|word| line.contains(word))
    };
    let changed = paths::is_test_configuration(path)
        || paths::may_configure_tests(path)
            && (lines.added.iter().any(|(_, l)| touches_tests(l))
                || lines.removed.iter().any(touches_tests));
    if changed {
        let first = lines.added.first();
        out.push(Finding {
            rule: crate::TEST_TAMPERING,
            severity,
            file: path.to_owned(),
            line: first.map(|(n, _)| *n),
            message: "changes how tests or checks run (test, CI or pipeline configuration); a \
                      change may not change the checks that judge it"
                .into(),
            code: first.map(|(_, l)| l.to_string()),
        });
    }
}

const PIPELINE_FILE: &str = ".slipway.toml";

/// The `[analysis]` section's lines (trimmed, blank lines and comments left out), if any.
fn analysis_section(text: Option<&str>) -> Option<Vec<&str>> {
    let mut lines = text?.lines().map(str::trim);
    lines.find(|line| is_analysis_header(line))?;
    Some(
        lines
            .take_while(|line| !line.starts_with('['))
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .collect(),
    )
}

fn is_analysis_header(line: &str) -> bool {
    let line = line.split('#').next().unwrap_or_default().trim();
    line.strip_prefix('[')
        .and_then(|l| l.strip_suffix(']'))
        .is_some_and(|name| name.trim() == "analysis")
}

/// The 1-based line of the `[analysis]` header.
fn analysis_header_line(text: &str) -> Option<u32> {
    let index = text.lines().position(|l| is_analysis_header(l.trim()))?;
    Some(index as u32 + 1)
}
