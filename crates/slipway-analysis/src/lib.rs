//! Analysis of a change (DESIGN.md §6 `[analysis]`): each changed file's base and head
//! contents in, findings out. Pure: the caller reads the contents (from git objects, never
//! from a workspace code has run in) and bounds them; parsing stops at a deadline and the
//! walk never recurses, so a hostile file ends as a note.

mod credentials;
mod lang;
mod paths;
mod rules;
mod tampering;

pub use lang::Language;
use serde::Serialize;
use std::time::{Duration, Instant};

/// The rules, by id.
pub const COMPLEXITY: &str = "complexity";
pub const FUNCTION_LENGTH: &str = "function-length";
pub const CREDENTIALS: &str = "credentials";
pub const TEST_TAMPERING: &str = "test-tampering";
pub const DEBUG_LEFTOVERS: &str = "debug-leftovers";
/// Notes about the analysis itself: a file not read, not parsed, minified.
pub const NOT_ANALYSED: &str = "not-analysed";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Fails the step.
    Error,
    Warning,
    Note,
}

/// One thing found, at a file's line. No credential is ever in it unmasked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub rule: &'static str,
    pub severity: Severity,
    pub file: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    pub message: String,
    /// The line's code (cut, credentials masked).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

/// One side of a changed file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Side {
    /// Not in this commit (added or deleted).
    Absent,
    Content(Vec<u8>),
    /// Larger than the caller reads: its size in bytes.
    TooLarge(u64),
    /// Not read by the caller, for this reason.
    NotRead(String),
}

/// A changed file: its contents at the base and at the head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub path: String,
    pub base: Side,
    pub head: Side,
}

/// The rules' settings.
#[derive(Debug, Clone)]
pub struct Config {
    pub max_function_complexity: u32,
    /// `None`: the function-length rule is off.
    pub max_function_lines: Option<u32>,
    /// Error for agents' pull requests (`protect_tests`), warning for people's.
    pub tampering: Severity,
    /// Globs of paths the credentials rule skips (test fixtures).
    pub allow: Vec<String>,
    /// The project's secret values: found anywhere, masked everywhere.
    pub secrets: Vec<String>,
    /// A file larger than this is a note.
    pub max_file_bytes: u64,
    /// How long the whole analysis may parse.
    pub time_limit: Duration,
}

pub const DEFAULT_MAX_FUNCTION_COMPLEXITY: u32 = 15;
pub const DEFAULT_MAX_FILE_BYTES: u64 = 1024 * 1024;
pub const DEFAULT_TIME_LIMIT: Duration = Duration::from_secs(60);
/// Findings kept; past it, one note says how many more there were.
pub const MAX_FINDINGS: usize = 1_000;
/// A line longer than this marks a file as minified (or generated): not parsed.
const MINIFIED_LINE: usize = 5_000;

impl Default for Config {
    fn default() -> Self {
        Self {
            max_function_complexity: DEFAULT_MAX_FUNCTION_COMPLEXITY,
            max_function_lines: None,
            tampering: Severity::Error,
            allow: Vec::new(),
            secrets: Vec::new(),
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
            time_limit: DEFAULT_TIME_LIMIT,
        }
    }
}

/// Time spent per language (parsing and analysing both sides).
#[derive(Debug, Clone, Serialize)]
pub struct LanguageTime {
    pub language: &'static str,
    pub files: u32,
    pub micros: u64,
}

/// What the analysis found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub files: u32,
    pub findings: Vec<Finding>,
    pub languages: Vec<LanguageTime>,
}

impl Report {
    pub fn errors(&self) -> usize {
        self.count(Severity::Error)
    }

    pub fn count(&self, severity: Severity) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity == severity)
            .count()
    }
}

/// A file's text on one side, when it can be read as text; otherwise why not.
enum Text<'a> {
    Absent,
    Read(&'a str),
    NotRead(String),
}

fn text_of(side: &Side, max: u64) -> Text<'_> {
    match side {
        Side::Absent => Text::Absent,
        Side::TooLarge(size) => Text::NotRead(format!(
            "{} KiB, over the {} KiB analysed",
            size >> 10,
            max >> 10
        )),
        Side::NotRead(why) => Text::NotRead(why.clone()),
        Side::Content(bytes) if bytes.len() as u64 > max => Text::NotRead(format!(
            "{} KiB, over the {} KiB analysed",
            bytes.len() >> 10,
            max >> 10
        )),
        Side::Content(bytes) if bytes.iter().take(8_000).any(|&b| b == 0) => {
            Text::NotRead("a binary file".into())
        }
        Side::Content(bytes) => match std::str::from_utf8(bytes) {
            Ok(text) => Text::Read(text),
            Err(e) => Text::NotRead(format!("not UTF-8 (at byte {})", e.valid_up_to())),
        },
    }
}

/// Analyses a change.
pub fn analyse(changes: &[Change], config: &Config) -> Report {
    let deadline = Instant::now() + config.time_limit;
    let allow = allowlist(&config.allow);
    let mut report = Report {
        files: changes.len() as u32,
        ..Default::default()
    };
    let mut findings = Vec::new();
    let mut tests = tampering::Tests::default();
    let mut times: Vec<LanguageTime> = Vec::new();
    for change in changes {
        let started = Instant::now();
        let path = change.path.as_str();
        let language = Language::of(path);
        let base = match text_of(&change.base, config.max_file_bytes) {
            Text::Read(text) => Some(text),
            _ => None,
        };
        let head = match text_of(&change.head, config.max_file_bytes) {
            Text::Read(text) => text,
            Text::Absent => {
                // Deleted: its tests may be gone, and with it a test configuration.
                let lines = rules::Lines::new(base, "");
                let texts = (base, None);
                tampering::configuration(path, texts, &lines, config.tampering, &mut findings);
                tests.deleted_file(path, language, base, deadline);
                continue;
            }
            Text::NotRead(why) => {
                findings.push(unchecked(
                    note(path, None, format!("not analysed: {why}")),
                    config,
                ));
                continue;
            }
        };
        let lines = rules::Lines::new(base, head);
        if !allow.as_ref().is_some_and(|a| a.is_match(path)) {
            rules::credentials(path, &lines, &config.secrets, &mut findings);
        }
        let texts = (base, Some(head));
        tampering::configuration(path, texts, &lines, config.tampering, &mut findings);
        let Some(language) = language else {
            continue;
        };
        rules::markers(path, language, &lines, config.tampering, &mut findings);
        rules::debug_leftovers(path, language, &lines, &mut findings);
        if head.lines().any(|line| line.len() > MINIFIED_LINE) {
            let why = format!(
                "not parsed: minified or generated (a line over {MINIFIED_LINE} characters)"
            );
            findings.push(unchecked(note(path, None, why), config));
            continue;
        }
        let head_outline = match lang::outline(language, path, head, deadline) {
            Ok(outline) => outline,
            Err(why) => {
                findings.push(unchecked(unparsed(path, why), config));
                continue;
            }
        };
        let base_outline = base
            .filter(|b| !b.lines().any(|line| line.len() > MINIFIED_LINE))
            .and_then(|b| lang::outline(language, path, b, deadline).ok());
        rules::functions(
            path,
            config,
            base,
            base_outline.as_ref(),
            &head_outline,
            &mut findings,
        );
        tests.changed_file(path, base_outline, head_outline);
        let elapsed = started.elapsed().as_micros() as u64;
        match times.iter_mut().find(|t| t.language == language.name()) {
            Some(time) => {
                time.files += 1;
                time.micros += elapsed;
            }
            None => times.push(LanguageTime {
                language: language.name(),
                files: 1,
                micros: elapsed,
            }),
        }
    }
    tests.findings(config.tampering, &mut findings);
    for finding in &mut findings {
        if let Some(code) = &finding.code {
            finding.code = Some(rules::shown(code, &config.secrets));
        }
    }
    findings.sort_by(|a, b| (&a.file, a.line, a.severity).cmp(&(&b.file, b.line, b.severity)));
    if findings.len() > MAX_FINDINGS {
        let more = findings.len() - MAX_FINDINGS;
        findings.truncate(MAX_FINDINGS);
        findings.push(note("", None, format!("{more} more findings not kept")));
    }
    report.findings = findings;
    report.languages = times;
    report
}

fn allowlist(globs: &[String]) -> Option<globset::GlobSet> {
    if globs.is_empty() {
        return None;
    }
    let mut set = globset::GlobSetBuilder::new();
    for glob in globs {
        // Checked when the pipeline is loaded (`valid_glob`).
        if let Ok(glob) = globset::GlobBuilder::new(glob)
            .literal_separator(true)
            .build()
        {
            set.add(glob);
        }
    }
    set.build().ok()
}

/// Whether `glob` is one `[analysis] allow` accepts; the error says why not.
pub fn valid_glob(glob: &str) -> Result<(), String> {
    globset::GlobBuilder::new(glob)
        .literal_separator(true)
        .build()
        .map(|_| ())
        .map_err(|e| e.kind().to_string())
}

fn note(path: &str, line: Option<u32>, message: String) -> Finding {
    Finding {
        rule: NOT_ANALYSED,
        severity: Severity::Note,
        file: path.to_owned(),
        line,
        message,
        code: None,
    }
}

/// A file that could not be analysed: a note, but for a test file a test-tampering finding
/// (its tests cannot be checked, so padding, a huge or a minified test file cannot hide a
/// weakened test).
fn unchecked(note: Finding, config: &Config) -> Finding {
    if !paths::is_test_file(&note.file) {
        return note;
    }
    Finding {
        rule: TEST_TAMPERING,
        severity: config.tampering,
        message: format!(
            "a changed test file could not be checked ({}); keep test files readable so that \
             weakened tests can be found",
            note.message
        ),
        ..note
    }
}

/// Changed files past the analysis's limit: a note, but any test file among them is a
/// test-tampering finding (see [`unchecked`]).
pub fn skipped_files<'a>(
    paths: impl Iterator<Item = &'a str>,
    why: &str,
    config: &Config,
) -> Vec<Finding> {
    paths
        .filter(|path| paths::is_test_file(path))
        .take(MAX_FINDINGS)
        .map(|path| unchecked(note(path, None, why.to_owned()), config))
        .collect()
}

fn unparsed(path: &str, why: lang::Unparsed) -> Finding {
    match why {
        lang::Unparsed::SyntaxError(line) => note(
            path,
            Some(line),
            "not parsed: a syntax error here; its functions were not measured".into(),
        ),
        lang::Unparsed::TimedOut => note(
            path,
            None,
            "not parsed: the analysis's time limit passed".into(),
        ),
    }
}
