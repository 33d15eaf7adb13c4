//! What a notification says: one typed message, written either as the JSON body of a
//! Standard Webhooks delivery (`{"type", "timestamp", "data"}`) or as a Slack Block Kit
//! message with links back to the dashboard and to the pull request. Every string of it is
//! masked with the project's secrets before it is written either way.

use crate::Masker;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// The `type` of a test delivery ("send a test").
pub const TEST_TYPE: &str = "notification.test";

/// Lines of a failing step's log a message carries (its end, where the failure is).
pub const LOG_TAIL_LINES: usize = 12;
/// Characters of one text a message carries (Slack's sections hold 3,000).
const MAX_TEXT: usize = 1_500;

/// One notification's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// One sentence: what happened.
    pub summary: String,
    pub project: ProjectRef,
    /// The dashboard's page of what happened (absolute with `SLIPWAY_PUBLIC_URL`).
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation: Option<ValidationInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<RunInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_request: Option<PullInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectRef {
    pub id: i64,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidationInfo {
    pub id: i64,
    /// `passed`, `failed`, `error`, `cancelled`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    pub sha: String,
    /// The first step that failed (or ended in error), when one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failing_step: Option<String>,
    /// What that step or the validation says about it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The end of the failing step's log.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub log_tail: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunInfo {
    pub id: i64,
    pub status: String,
    pub goal: String,
    /// What a person is asked for: `plan` (confirm or modify) or `reply` (continue).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_for: Option<String>,
    /// The agent's plan or reply, or why the fix loop stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullInfo {
    pub number: i64,
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
}

/// A text cut to what a message carries.
pub fn bounded(text: &str) -> String {
    match text.char_indices().nth(MAX_TEXT) {
        Some((at, _)) => format!("{} …", &text[..at]),
        None => text.to_owned(),
    }
}

impl Message {
    /// The message with every string masked (URLs, names and log lines alike).
    pub fn masked(&self, masker: &Masker) -> Self {
        let value = serde_json::to_value(self).expect("a message serializes");
        serde_json::from_value(mask_value(value, masker)).expect("masking keeps the shape")
    }

    /// The Standard Webhooks body: `{"type", "timestamp", "data"}`.
    pub fn body(&self, kind: &str, timestamp: &str) -> Value {
        json!({"type": kind, "timestamp": timestamp, "data": self})
    }

    /// A Slack incoming webhook's message: Block Kit, with a plain `text` fallback for
    /// notifications that show no blocks.
    pub fn slack(&self, kind: &str) -> Value {
        // Slack refuses links and buttons that are not absolute (no SLIPWAY_PUBLIC_URL):
        // then only the words are shown.
        let link = |url: &str, label: &str| match absolute(url) {
            true => format!("<{}|{}>", escape(url), escape(label)),
            false => escape(label),
        };
        let mut headline = format!(
            "*{}*\n{} · {}",
            escape(&self.summary),
            link(&self.url, "Open in Slipway"),
            escape(&self.project.name)
        );
        if let Some(pull) = &self.pull_request {
            let label = match &pull.title {
                Some(title) => format!("#{} {title}", pull.number),
                None => format!("pull request #{}", pull.number),
            };
            headline.push_str(&format!(" · {}", link(&pull.url, &label)));
        }
        let mut blocks = vec![section(&headline)];
        if let Some(validation) = &self.validation {
            let mut text = format!("Validation {} *{}*", validation.id, validation.status);
            if let Some(step) = &validation.failing_step {
                text.push_str(&format!(" at step `{}`", escape(step)));
            }
            if let Some(branch) = &validation.branch {
                text.push_str(&format!(" · branch `{}`", escape(branch)));
            }
            text.push_str(&format!(" · `{}`", short(&validation.sha)));
            if let Some(detail) = &validation.detail {
                text.push_str(&format!("\n{}", escape(detail)));
            }
            blocks.push(section(&text));
            if !validation.log_tail.is_empty() {
                let log = bounded(&validation.log_tail.join("\n")).replace("```", "'''");
                blocks.push(section(&format!("```{}```", escape(&log))));
            }
        }
        if let Some(run) = &self.run {
            let mut text = format!("Run {}: _{}_", run.id, escape(&bounded(&run.goal)));
            if let Some(said) = &run.text {
                text.push_str(&format!(
                    "\n>{}",
                    escape(&bounded(said)).replace('\n', "\n>")
                ));
            }
            blocks.push(section(&text));
        }
        let mut buttons = vec![("Open in Slipway", &self.url)];
        if let Some(pull) = &self.pull_request {
            buttons.push(("Open the pull request", &pull.url));
        }
        let buttons: Vec<Value> = buttons
            .into_iter()
            .filter(|(_, url)| absolute(url))
            .map(|(label, url)| button(label, url))
            .collect();
        if !buttons.is_empty() {
            blocks.push(json!({"type": "actions", "elements": buttons}));
        }
        blocks.push(json!({"type": "context", "elements": [
            {"type": "mrkdwn", "text": format!("Slipway · `{kind}`")}
        ]}));
        json!({"text": self.summary, "blocks": blocks})
    }
}

fn absolute(url: &str) -> bool {
    url.starts_with("https://") || url.starts_with("http://")
}

fn section(text: &str) -> Value {
    json!({"type": "section", "text": {"type": "mrkdwn", "text": text}})
}

fn button(label: &str, url: &str) -> Value {
    json!({"type": "button", "text": {"type": "plain_text", "text": label}, "url": url})
}

/// Slack's three control characters in mrkdwn.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
}

fn mask_value(value: Value, masker: &Masker) -> Value {
    match value {
        Value::String(text) => Value::String(masker.mask(&text).into_owned()),
        Value::Array(items) => {
            Value::Array(items.into_iter().map(|v| mask_value(v, masker)).collect())
        }
        Value::Object(fields) => Value::Object(
            fields
                .into_iter()
                .map(|(k, v)| (k, mask_value(v, masker)))
                .collect(),
        ),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed() -> Message {
        Message {
            summary: "Validation 7 of shop failed at tests".into(),
            project: ProjectRef {
                id: 1,
                name: "shop".into(),
            },
            url: "https://slipway.example/validations/7".into(),
            validation: Some(ValidationInfo {
                id: 7,
                status: "failed".into(),
                branch: Some("feature/<x>".into()),
                sha: "0123456789abcdef0123".into(),
                failing_step: Some("tests".into()),
                detail: None,
                log_tail: vec!["token=hunter2-secret-value".into(), "1 failed".into()],
            }),
            run: None,
            pull_request: Some(PullInfo {
                number: 4,
                url: "https://github.com/acme/shop/pull/4".into(),
                title: Some("Fix & ship".into()),
            }),
        }
    }

    #[test]
    fn masking_reaches_every_string() {
        let masker = Masker::new(["hunter2-secret-value"]);
        let masked = failed().masked(&masker);
        let text = serde_json::to_string(&masked).unwrap();
        assert!(!text.contains("hunter2-secret-value"), "{text}");
        assert!(text.contains("token=***"), "{text}");
    }

    #[test]
    fn the_body_follows_the_contract() {
        let body = failed().body("validation.finished", "2026-01-01T00:00:00Z");
        assert_eq!(body["type"], "validation.finished");
        assert_eq!(body["data"]["validation"]["failing_step"], "tests");
        assert_eq!(body["data"]["project"]["name"], "shop");
        assert_eq!(body["data"]["url"], "https://slipway.example/validations/7");
        assert!(body["data"].get("run").is_none());
    }

    #[test]
    fn a_slack_message_links_back_and_escapes_its_text() {
        let slack = failed().slack("validation.finished");
        let text = slack.to_string();
        assert!(text.contains("<https://slipway.example/validations/7|Open in Slipway>"));
        assert!(text.contains("#4 Fix &amp; ship"), "{text}");
        assert!(text.contains("feature/&lt;x&gt;"), "{text}");
        let buttons = &slack["blocks"][3]["elements"];
        assert_eq!(buttons[1]["url"], "https://github.com/acme/shop/pull/4");
        assert_eq!(slack["text"], "Validation 7 of shop failed at tests");
    }

    #[test]
    fn without_absolute_urls_slack_gets_words_not_links() {
        let mut message = failed();
        message.url = "/validations/7".into();
        message.pull_request.as_mut().unwrap().url = "/projects/1/pulls/4".into();
        let slack = message.slack("validation.finished");
        let text = slack.to_string();
        assert!(!text.contains("<"), "{text}");
        assert!(!text.contains("\"actions\""), "{text}");
        assert!(text.contains("Open in Slipway"), "{text}");
    }

    #[test]
    fn long_texts_are_bounded() {
        let long = "x".repeat(5_000);
        assert!(bounded(&long).chars().count() < MAX_TEXT + 3);
    }
}
