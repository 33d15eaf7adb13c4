//! Goal-driven browser checks, the pure part: the compact page state a model is shown, the
//! one action it answers per step (a fixed schema), and the rules that read its answer
//! (an index the page has, a path on the app's own origin, a key from a short list).

use serde::{Deserialize, Serialize};

/// Steps a goal check may take when `max_steps` is not set.
pub const DEFAULT_MAX_STEPS: u32 = 15;
pub const MAX_MAX_STEPS: u32 = 100;

/// What the model sees of the page at one step (every string masked and bounded).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageState {
    pub url: String,
    pub title: String,
    /// The visible text, whitespace collapsed, trimmed.
    pub text: String,
    /// The visible interactive elements in document order; `index` is what actions name.
    pub elements: Vec<PageElement>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageElement {
    pub index: u32,
    /// ARIA role, explicit or implied (link, button, textbox, checkbox, combobox…).
    pub role: String,
    /// Its accessible name as far as cheaply known (aria-label, label, placeholder, text).
    pub label: String,
    /// `type` of an input, when it has one.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// The field's current value (fields only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// Keys a `press` may name.
pub const KEYS: &[&str] = &[
    "Enter",
    "Tab",
    "Escape",
    "Backspace",
    "ArrowUp",
    "ArrowDown",
    "ArrowLeft",
    "ArrowRight",
    "Space",
];

/// One action, read from the model's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum GoalAction {
    Click {
        index: u32,
    },
    Fill {
        index: u32,
        text: String,
    },
    Select {
        index: u32,
        value: String,
    },
    Press {
        key: String,
    },
    /// A path on the app's own origin (`/…`).
    Navigate {
        path: String,
    },
    Done {
        success: bool,
    },
}

impl GoalAction {
    /// The action in words, for timelines and logs.
    pub fn describe(&self) -> String {
        match self {
            GoalAction::Click { index } => format!("click [{index}]"),
            GoalAction::Fill { index, text } => format!("fill [{index}] with {text:?}"),
            GoalAction::Select { index, value } => format!("select {value:?} in [{index}]"),
            GoalAction::Press { key } => format!("press {key}"),
            GoalAction::Navigate { path } => format!("navigate to {path}"),
            GoalAction::Done { success: true } => "done: goal reached".into(),
            GoalAction::Done { success: false } => "done: goal not reached".into(),
        }
    }
}

/// An action with the reason the model gave for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Planned {
    pub action: GoalAction,
    pub reason: String,
}

/// One step of a goal check as the evidence shows it (and the model is told next time).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GoalStep {
    pub action: String,
    /// The model's stated reason.
    pub reason: String,
    /// Why the action could not be taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The answer's JSON Schema: flat (both APIs' strict modes take it), every field required;
/// the fields an action does not use are ignored.
pub fn action_schema() -> serde_json::Value {
    serde_json::json!({
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "action": {"type": "string",
                       "enum": ["click", "fill", "select", "press", "navigate", "done"]},
            "index": {"type": "integer", "description": "the element's index (click, fill, select); else 0"},
            "text": {"type": "string", "description": "what to type (fill) or the option (select); else empty"},
            "key": {"type": "string", "description": "the key (press); else empty"},
            "path": {"type": "string", "description": "a path starting with / (navigate); else empty"},
            "success": {"type": "boolean", "description": "whether the goal was reached (done); else false"},
            "reason": {"type": "string", "description": "why this action, in one sentence"}
        },
        "required": ["action", "index", "text", "key", "path", "success", "reason"]
    })
}

/// Reads the model's answer against the page it was shown: `Err` says what is wrong.
pub fn read_action(text: &str, state: &PageState) -> Result<Planned, String> {
    #[derive(Deserialize)]
    struct Raw {
        action: String,
        #[serde(default)]
        index: i64,
        #[serde(default)]
        text: String,
        #[serde(default)]
        key: String,
        #[serde(default)]
        path: String,
        #[serde(default)]
        success: bool,
        #[serde(default)]
        reason: String,
    }
    let raw: Raw = serde_json::from_str(text.trim())
        .map_err(|e| format!("the model's action breaks its schema: {e}"))?;
    let element = || -> Result<u32, String> {
        u32::try_from(raw.index)
            .ok()
            .filter(|i| state.elements.iter().any(|e| e.index == *i))
            .ok_or_else(|| {
                format!(
                    "the model named element [{}], which the page has not",
                    raw.index
                )
            })
    };
    let action = match raw.action.as_str() {
        "click" => GoalAction::Click { index: element()? },
        "fill" => GoalAction::Fill {
            index: element()?,
            text: raw.text,
        },
        "select" => GoalAction::Select {
            index: element()?,
            value: raw.text,
        },
        "press" if KEYS.contains(&raw.key.as_str()) => GoalAction::Press { key: raw.key },
        "press" => {
            return Err(format!(
                "the model pressed {:?}, not one of {KEYS:?}",
                raw.key
            ))
        }
        "navigate" => GoalAction::Navigate {
            path: same_origin_path(&raw.path)?,
        },
        "done" => GoalAction::Done {
            success: raw.success,
        },
        other => return Err(format!("the model answered an unknown action {other:?}")),
    };
    let reason: String = raw.reason.trim().chars().take(500).collect();
    Ok(Planned { action, reason })
}

/// A path on the app's own origin: starts with one `/`, no scheme-relative `//`, no `\`.
pub fn same_origin_path(path: &str) -> Result<String, String> {
    let ok = path.starts_with('/')
        && !path.starts_with("//")
        && !path.contains('\\')
        && !path.chars().any(char::is_control);
    if ok {
        Ok(path.to_owned())
    } else {
        Err(format!(
            "the model asked to navigate to {path:?}: only paths of the app (starting with one '/') are allowed"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> PageState {
        PageState {
            elements: vec![PageElement {
                index: 0,
                role: "textbox".into(),
                label: "User".into(),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn actions_are_read_against_the_page() {
        let fill = r#"{"action":"fill","index":0,"text":"ada","key":"","path":"","success":false,"reason":"the user field"}"#;
        assert_eq!(
            read_action(fill, &state()).unwrap(),
            Planned {
                action: GoalAction::Fill {
                    index: 0,
                    text: "ada".into()
                },
                reason: "the user field".into()
            }
        );
        let done = r#"{"action":"done","index":0,"text":"","key":"","path":"","success":true,"reason":"shown"}"#;
        assert_eq!(
            read_action(done, &state()).unwrap().action,
            GoalAction::Done { success: true }
        );
    }

    #[test]
    fn what_the_page_lacks_and_other_origins_are_refused() {
        for (answer, needle) in [
            (r#"{"action":"click","index":7,"reason":""}"#, "[7]"),
            (
                r#"{"action":"navigate","path":"https://evil.example/","reason":""}"#,
                "only paths",
            ),
            (
                r#"{"action":"navigate","path":"//evil.example/x","reason":""}"#,
                "only paths",
            ),
            (
                r#"{"action":"press","key":"F12","reason":""}"#,
                "not one of",
            ),
            (r#"{"action":"hover","reason":""}"#, "unknown action"),
            ("not json", "breaks its schema"),
        ] {
            let err = read_action(answer, &state()).unwrap_err();
            assert!(err.contains(needle), "{answer}: {err}");
        }
        assert_eq!(same_origin_path("/login?x=1").unwrap(), "/login?x=1");
    }
}
