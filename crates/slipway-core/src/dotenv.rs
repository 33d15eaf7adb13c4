//! Reads dotenv text (`KEY=value` lines) for bulk secret import, line by line.

use crate::secret::{validate_name, SecretValue};
use std::collections::HashSet;

/// What became of one line of the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DotenvLine {
    /// A well-formed entry to import.
    Entry {
        line: usize,
        name: String,
        value: SecretValue,
    },
    /// A line that will not be imported, and why.
    Refused {
        line: usize,
        name: Option<String>,
        reason: String,
    },
}

/// The text has no `KEY=value` line at all, so it is not dotenv.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the body is not dotenv text: no line has the form KEY=value (blank lines and # comments aside); send lines like API_KEY=abc123")]
pub struct NotDotenv;

/// Parses dotenv text. Blank lines and `#` comments are skipped; `export ` prefixes,
/// single and double quotes are understood; a name seen twice is refused the second time.
pub fn parse(text: &str) -> Result<Vec<DotenvLine>, NotDotenv> {
    let mut seen = HashSet::new();
    let mut lines = Vec::new();
    let mut any_assignment = false;
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let body = trimmed.strip_prefix("export ").unwrap_or(trimmed);
        let Some((name, raw_value)) = body.split_once('=') else {
            lines.push(DotenvLine::Refused {
                line,
                name: None,
                reason: "not of the form KEY=value".into(),
            });
            continue;
        };
        let name = name.trim();
        if let Err(invalid) = validate_name(name) {
            lines.push(DotenvLine::Refused {
                line,
                name: Some(name.to_owned()),
                reason: invalid.message,
            });
            continue;
        }
        any_assignment = true;
        let value = match unquote(raw_value.trim()) {
            Ok(value) => value,
            Err(reason) => {
                lines.push(DotenvLine::Refused {
                    line,
                    name: Some(name.to_owned()),
                    reason,
                });
                continue;
            }
        };
        let value = match SecretValue::new(value) {
            Ok(value) => value,
            Err(invalid) => {
                lines.push(DotenvLine::Refused {
                    line,
                    name: Some(name.to_owned()),
                    reason: format!("value {}", invalid.message),
                });
                continue;
            }
        };
        if !seen.insert(name.to_owned()) {
            lines.push(DotenvLine::Refused {
                line,
                name: Some(name.to_owned()),
                reason: "duplicate: this name appears on an earlier line, which wins".into(),
            });
            continue;
        }
        lines.push(DotenvLine::Entry {
            line,
            name: name.to_owned(),
            value,
        });
    }
    if any_assignment {
        Ok(lines)
    } else {
        Err(NotDotenv)
    }
}

fn unquote(value: &str) -> Result<String, String> {
    for quote in ['"', '\''] {
        if let Some(rest) = value.strip_prefix(quote) {
            let Some(end) = rest.find(quote) else {
                return Err(format!("unterminated {quote} quote"));
            };
            let inner = &rest[..end];
            let after = rest[end + 1..].trim();
            if !after.is_empty() && !after.starts_with('#') {
                return Err("text after the closing quote".into());
            }
            return Ok(if quote == '"' {
                inner.replace("\\n", "\n").replace("\\\"", "\"")
            } else {
                inner.to_owned()
            });
        }
    }
    // Unquoted: an inline comment starts at " #".
    let value = value.split(" #").next().unwrap_or_default().trim_end();
    Ok(value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(lines: &[DotenvLine]) -> Vec<(&str, &str)> {
        lines
            .iter()
            .filter_map(|l| match l {
                DotenvLine::Entry { name, value, .. } => Some((name.as_str(), value.expose())),
                DotenvLine::Refused { .. } => None,
            })
            .collect()
    }

    fn refusals(lines: &[DotenvLine]) -> Vec<(usize, String)> {
        lines
            .iter()
            .filter_map(|l| match l {
                DotenvLine::Refused { line, reason, .. } => Some((*line, reason.clone())),
                DotenvLine::Entry { .. } => None,
            })
            .collect()
    }

    #[test]
    fn reads_plain_quoted_exported_and_commented_lines() {
        let text = "# comment\n\nA=1\nexport B=two words\nC=\"quoted # not a comment\"\nD='single'\nE=val # trailing\n";
        let lines = parse(text).unwrap();
        assert_eq!(
            entries(&lines),
            [
                ("A", "1"),
                ("B", "two words"),
                ("C", "quoted # not a comment"),
                ("D", "single"),
                ("E", "val")
            ]
        );
        assert!(refusals(&lines).is_empty());
    }

    #[test]
    fn refuses_bad_names_empty_values_and_duplicates_per_line() {
        let text = "GOOD=1\n1BAD=2\nEMPTY=\nGOOD=3\njust words\nQ=\"open\n";
        let lines = parse(text).unwrap();
        assert_eq!(entries(&lines), [("GOOD", "1")]);
        let refused = refusals(&lines);
        assert_eq!(refused.len(), 5);
        assert_eq!(refused[0].0, 2);
        assert!(refused[0].1.contains("not a valid secret name"));
        assert!(refused[1].1.contains("empty"));
        assert!(refused[2].1.contains("duplicate"));
        assert!(refused[3].1.contains("KEY=value"));
        assert!(refused[4].1.contains("unterminated"));
    }

    #[test]
    fn text_without_any_assignment_is_not_dotenv() {
        assert_eq!(parse(r#"{"API_KEY": "x"}"#), Err(NotDotenv));
        assert_eq!(parse(""), Err(NotDotenv));
        assert_eq!(parse("hello world\n# only a comment"), Err(NotDotenv));
    }
}
