//! Credentials in added lines: known token formats, private keys, JWTs, high-entropy values
//! assigned to secret-sounding names, and the project's own secret values. What is found is
//! masked wherever it is shown.

use regex::Regex;
use std::sync::OnceLock;

/// A credential found in a line: its kind and its byte range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leak {
    pub kind: &'static str,
    pub range: std::ops::Range<usize>,
}

fn formats() -> &'static [(&'static str, Regex)] {
    static FORMATS: OnceLock<Vec<(&'static str, Regex)>> = OnceLock::new();
    FORMATS.get_or_init(|| {
        [
            (
                "AWS access key id",
                r"\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b",
            ),
            ("GitHub token", r"\bgh[pousr]_[A-Za-z0-9]{36,255}\b"),
            ("GitHub token", r"\bgithub_pat_[A-Za-z0-9_]{22,255}\b"),
            ("Slack token", r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),
            (
                "Slack webhook",
                r"https://hooks\.slack\.com/(?:services|workflows)/[A-Za-z0-9/_-]{20,}",
            ),
            (
                "Stripe key",
                r"\b(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}\b",
            ),
            ("Google API key", r"\bAIza[0-9A-Za-z_-]{35}\b"),
            (
                "private key",
                r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----",
            ),
            (
                "JSON Web Token",
                r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",
            ),
        ]
        .into_iter()
        .map(|(kind, pattern)| (kind, Regex::new(pattern).expect("a valid pattern")))
        .collect()
    })
}

/// `API_KEY = "…"`, `token: '…'`, `password="…"`: the quoted value is group 2.
fn assignment() -> &'static Regex {
    static ASSIGNMENT: OnceLock<Regex> = OnceLock::new();
    ASSIGNMENT.get_or_init(|| {
        Regex::new(
            r#"(?i)([A-Za-z0-9_.-]*(?:key|token|secret|password|passwd|pwd|credentials?))["']?\s*(?::=|=>|=|:)\s*["']([^"'\s]{8,})["']"#,
        )
        .expect("a valid pattern")
    })
}

/// Shannon entropy in bits per character.
fn entropy(text: &str) -> f64 {
    let mut counts = std::collections::HashMap::<char, usize>::new();
    for c in text.chars() {
        *counts.entry(c).or_default() += 1;
    }
    let len = text.chars().count() as f64;
    counts
        .values()
        .map(|&n| {
            let p = n as f64 / len;
            -p * p.log2()
        })
        .sum()
}

/// Placeholders people write where a secret will go.
fn is_placeholder(value: &str) -> bool {
    let lower = value.to_ascii_lowercase();
    [
        "xxx",
        "changeme",
        "example",
        "placeholder",
        "your",
        "dummy",
        "<",
        "${",
        "{{",
        "***",
    ]
    .iter()
    .any(|p| lower.contains(p))
}

/// The credentials in `line`; `secrets` are the project's own values.
pub fn find(line: &str, secrets: &[String]) -> Vec<Leak> {
    let mut leaks: Vec<Leak> = Vec::new();
    for (kind, pattern) in formats() {
        for found in pattern.find_iter(line) {
            leaks.push(Leak {
                kind,
                range: found.range(),
            });
        }
    }
    for captures in assignment().captures_iter(line) {
        let (name, value) = (&captures[1], captures.get(2).expect("group 2"));
        let password = ["password", "passwd", "pwd"]
            .iter()
            .any(|p| name.to_ascii_lowercase().contains(p));
        let threshold = if password { 2.5 } else { 3.5 };
        let long_enough = password || value.as_str().len() >= 16;
        if long_enough && !is_placeholder(value.as_str()) && entropy(value.as_str()) >= threshold {
            leaks.push(Leak {
                kind: "secret value assigned to a secret's name",
                range: value.range(),
            });
        }
    }
    for secret in secrets.iter().flat_map(|s| secret_parts(s)) {
        let short = secret.chars().count() < WHOLE_TOKEN_BELOW;
        for (start, _) in line.match_indices(secret) {
            let end = start + secret.len();
            if !short || stands_alone(line, start, end) {
                leaks.push(Leak {
                    kind: "a value of the project's secrets",
                    range: start..end,
                });
            }
        }
    }
    // One finding per place: the first kind that found it.
    leaks.sort_by_key(|l| (l.range.start, std::cmp::Reverse(l.range.end)));
    let mut kept: Vec<Leak> = Vec::new();
    for leak in leaks {
        match kept.last_mut() {
            Some(last) if leak.range.start < last.range.end => {
                last.range.end = last.range.end.max(leak.range.end)
            }
            _ => kept.push(leak),
        }
    }
    kept
}

/// A secret's shortest value, and below what length (in characters) it counts only as a
/// whole token: the rules of the masker (`slipway_core::secret`), so that what is found is
/// exactly what is masked.
const MIN_SECRET_CHARS: usize = 4;
const WHOLE_TOKEN_BELOW: usize = 8;

/// What of a secret a line can hold: the value, or each line of a value of many lines.
fn secret_parts(secret: &str) -> Vec<&str> {
    let parts: Vec<&str> = if secret.contains(['\n', '\r']) {
        secret
            .lines()
            .map(str::trim)
            .filter(|l| l.chars().count() >= WHOLE_TOKEN_BELOW)
            .collect()
    } else {
        vec![secret]
    };
    parts
        .into_iter()
        .filter(|p| p.chars().count() >= MIN_SECRET_CHARS)
        .collect()
}

/// Whether `text[start..end]` is a whole token: no word character runs on into it.
fn stands_alone(text: &str, start: usize, end: usize) -> bool {
    let word = |c: char| c.is_alphanumeric() || c == '_';
    let found = &text[start..end];
    let open = !found.chars().next().is_some_and(word)
        || !text[..start].chars().next_back().is_some_and(word);
    let close = !found.chars().next_back().is_some_and(word)
        || !text[end..].chars().next().is_some_and(word);
    open && close
}

/// `line` with every leak replaced by a mark naming its kind.
pub fn mask(line: &str, leaks: &[Leak]) -> String {
    let mut out = String::with_capacity(line.len());
    let mut at = 0;
    for leak in leaks {
        out.push_str(&line[at..leak.range.start]);
        out.push_str("[masked]");
        at = leak.range.end;
    }
    out.push_str(&line[at..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(line: &str) -> Vec<&'static str> {
        find(line, &[]).into_iter().map(|l| l.kind).collect()
    }

    #[test]
    fn each_known_format_is_found() {
        let gh = format!("ghp_{}", "a1B2c3D4e5".repeat(4).get(..36).unwrap());
        let cases = [
            ("aws_id: AKIAIOSFODNN7EXAMPLE".to_owned(), "AWS access key id"),
            (format!("token: {gh}"), "GitHub token"),
            (format!("x = '{}'", gh.replacen("ghp", "ghs", 1)), "GitHub token"),
            (
                format!("github_pat_{}", "A1b2".repeat(10)),
                "GitHub token",
            ),
            ("SLACK=xoxb-1234567890-abcdefghij".into(), "Slack token"),
            (
                "url: https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXXXXXXXXXXXXXX".into(),
                "Slack webhook",
            ),
            (format!("k = sk_live_{}", "4eC39HqLyjWDarjtT1zdp7dc"), "Stripe key"),
            (
                format!("key=AIza{}", "SyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY"),
                "Google API key",
            ),
            ("-----BEGIN RSA PRIVATE KEY-----".into(), "private key"),
            (
                "auth: eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U".into(),
                "JSON Web Token",
            ),
            (
                "API_KEY = \"q8Zr2Lx0Vt7Nw3Kp9Fh4\"".into(),
                "secret value assigned to a secret's name",
            ),
            (
                "password = 'S3cr!tPw'".into(),
                "secret value assigned to a secret's name",
            ),
        ];
        for (line, kind) in cases {
            assert_eq!(kinds(&line), [kind], "{line}");
        }
    }

    #[test]
    fn placeholders_and_ordinary_code_are_not_credentials() {
        for line in [
            "API_KEY = os.environ[\"API_KEY\"]",
            "password = 'changeme-please'",
            "token = \"aaaaaaaaaaaaaaaaaaaa\"",
            "let key = compute_key(input);",
            "const monkey = \"banana\";",
        ] {
            assert!(kinds(line).is_empty(), "{line}");
        }
    }

    #[test]
    fn the_projects_own_secrets_are_found_and_masked() {
        let secrets = vec!["hunter2-prod".to_owned()];
        let line = "db_url: postgres://app:hunter2-prod@db/app";
        let leaks = find(line, &secrets);
        assert_eq!(leaks.len(), 1);
        assert_eq!(mask(line, &leaks), "db_url: postgres://app:[masked]@db/app");
    }

    #[test]
    fn a_short_secret_counts_only_as_a_whole_token_as_the_masker_masks_it() {
        let secrets = vec!["k9Pz".to_owned(), "abc".to_owned()];
        assert_eq!(find("pin: k9Pz", &secrets).len(), 1);
        assert!(find("id: xk9Pzq", &secrets).is_empty(), "inside a word");
        assert!(
            find("abc = 1", &secrets).is_empty(),
            "no secret is that short"
        );
        let key = "line-one-of-it\nline-two-of-it".to_owned();
        let leaks = find("  line-two-of-it", &[key]);
        assert_eq!(mask("  line-two-of-it", &leaks), "  [masked]");
    }
}
