//! Masking what a check saw before it leaves Slipway's hands: the page's text, title and URL,
//! console messages and requests can show a project's secret as the page printed it.

use crate::Report;
use serde_json::Value;

/// Replaces every string of `value` (object keys too) by `mask` of it. Strings are masked one
/// by one, never the serialized text, whose escaping (`\"`, `\\`, `\n`) would hide a secret.
pub fn mask_strings(value: &mut Value, mask: &dyn Fn(&str) -> String) {
    // Iterative: evidence nests little, but nothing here should recurse on input.
    let mut pending = vec![value];
    while let Some(value) = pending.pop() {
        match value {
            Value::String(text) => *text = mask(text),
            Value::Array(items) => pending.extend(items.iter_mut()),
            Value::Object(map) => {
                let masked: serde_json::Map<String, Value> = std::mem::take(map)
                    .into_iter()
                    .map(|(key, value)| (mask(&key), value))
                    .collect();
                *map = masked;
                pending.extend(map.values_mut());
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }
}

impl Report {
    /// The report with every string of it masked (as its JSON is).
    pub fn masked(self, mask: &dyn Fn(&str) -> String) -> Report {
        let mut value = serde_json::to_value(&self).expect("a report serializes");
        mask_strings(&mut value, mask);
        serde_json::from_value(value).expect("a masked report reads back")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_string_is_masked_and_escaping_does_not_hide_a_secret() {
        let secret = r#"pa"ss\word"#;
        let mask = |text: &str| text.replace(secret, "***");
        let mut value = serde_json::json!({
            "title": format!("t {secret}"),
            "console": [{"text": format!("x{secret}y"), "source": null}],
            secret: 1,
        });
        mask_strings(&mut value, &mask);
        let text = value.to_string();
        assert!(!text.contains("ss\\\\word"), "{text}");
        assert_eq!(value["title"], "t ***");
        assert_eq!(value["console"][0]["text"], "x***y");
        assert_eq!(value["***"], 1);
    }
}
