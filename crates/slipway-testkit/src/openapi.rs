//! Holds the fakes to the services' published OpenAPI descriptions: an answer's status must be
//! documented for its operation, and its body must be a *subset* of the documented schema —
//! every field the fake sends exists there, with the documented type, enum value and
//! nullability. (The fakes send fewer fields than the real services, never other ones.)

use serde_json::Value;

/// An OpenAPI document (3.0 or 3.1).
pub struct Spec {
    doc: Value,
}

impl Spec {
    pub fn load(path: &std::path::Path) -> Self {
        let text = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        Self {
            doc: serde_json::from_slice(&text).expect("an OpenAPI document"),
        }
    }

    /// What is wrong with `body` as the answer `status` to `method` on `template` (the path
    /// as the document spells it); empty when it is right.
    pub fn check_answer(
        &self,
        method: &str,
        template: &str,
        status: u16,
        body: &Value,
    ) -> Vec<String> {
        let Some(operation) = self.doc["paths"][template].get(method.to_lowercase()) else {
            return vec![format!("{method} {template} is not in the description")];
        };
        let responses = &operation["responses"];
        let Some(response) = responses
            .get(status.to_string())
            .or_else(|| responses.get("default"))
        else {
            let documented: Vec<&String> = responses
                .as_object()
                .map(|r| r.keys().collect())
                .unwrap_or_default();
            return vec![format!(
                "{method} {template}: {status} is not documented (documented: {documented:?})"
            )];
        };
        let response = self.resolve(response);
        match response["content"].get("application/json") {
            Some(content) => {
                let mut problems = Vec::new();
                self.check(&content["schema"], body, "$", &mut problems);
                problems
                    .into_iter()
                    .map(|p| format!("{method} {template} {status}: {p}"))
                    .collect()
            }
            // Errors documented without a body still carry GitHub's {"message"}.
            None if body.is_null() || status >= 400 => Vec::new(),
            None => vec![format!(
                "{method} {template} {status}: documented without a JSON body"
            )],
        }
    }

    /// Whether the description lists `status` for the operation.
    pub fn documents(&self, method: &str, template: &str, status: u16) -> bool {
        self.doc["paths"][template][method.to_lowercase()]["responses"]
            .get(status.to_string())
            .is_some()
    }

    fn resolve<'a>(&'a self, schema: &'a Value) -> &'a Value {
        let mut schema = schema;
        while let Some(reference) = schema["$ref"].as_str() {
            let pointer = reference.trim_start_matches('#');
            schema = self
                .doc
                .pointer(pointer)
                .unwrap_or_else(|| panic!("unresolved {reference}"));
        }
        schema
    }

    fn check(&self, schema: &Value, value: &Value, at: &str, problems: &mut Vec<String>) {
        let schema = self.resolve(schema);
        if schema.as_object().is_some_and(|s| s.is_empty()) || schema == &Value::Bool(true) {
            return;
        }
        if value.is_null() && self.allows_null(schema) {
            return;
        }
        for combinator in ["anyOf", "oneOf"] {
            if let Some(choices) = schema[combinator].as_array() {
                let fits = choices.iter().any(|choice| {
                    let mut mine = Vec::new();
                    self.check(choice, value, at, &mut mine);
                    mine.is_empty()
                });
                if !fits {
                    problems.push(format!(
                        "{at}: {value} fits none of its {combinator} alternatives"
                    ));
                }
                return;
            }
        }
        if let Some(parts) = schema["allOf"].as_array() {
            // One object made of every part: a field of any part is documented.
            let mut merged = serde_json::Map::new();
            for part in parts {
                let part = self.resolve(part);
                for (key, field) in part["properties"].as_object().into_iter().flatten() {
                    merged.insert(key.clone(), field.clone());
                }
            }
            let combined = serde_json::json!({"type": "object", "properties": merged});
            return self.check(&combined, value, at, problems);
        }
        if let Some(allowed) = schema["enum"].as_array() {
            if !allowed.contains(value) {
                problems.push(format!("{at}: {value} is not one of {allowed:?}"));
                return;
            }
        }
        let types: Vec<&str> = match &schema["type"] {
            Value::String(t) => vec![t.as_str()],
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
            _ if schema.get("properties").is_some() => vec!["object"],
            _ => Vec::new(),
        };
        if !types.is_empty() && !types.iter().any(|t| is_of_type(value, t)) {
            problems.push(format!("{at}: {value} is not of type {types:?}"));
            return;
        }
        match value {
            Value::Object(fields) => {
                let properties = schema["properties"].as_object();
                let extra_allowed = match &schema["additionalProperties"] {
                    Value::Bool(allowed) => *allowed,
                    Value::Object(_) => true,
                    _ => properties.is_none(),
                };
                for (key, field) in fields {
                    let path = format!("{at}.{key}");
                    match properties.and_then(|p| p.get(key)) {
                        Some(field_schema) => self.check(field_schema, field, &path, problems),
                        None if extra_allowed => {
                            if let Value::Object(extra) = &schema["additionalProperties"] {
                                self.check(&Value::Object(extra.clone()), field, &path, problems);
                            }
                        }
                        None => problems.push(format!("{path}: not in the documented schema")),
                    }
                }
            }
            Value::Array(items) => {
                if let Some(item_schema) = schema.get("items") {
                    for (i, item) in items.iter().enumerate() {
                        self.check(item_schema, item, &format!("{at}[{i}]"), problems);
                    }
                }
            }
            _ => {}
        }
    }

    fn allows_null(&self, schema: &Value) -> bool {
        schema["nullable"] == Value::Bool(true)
            || schema["type"] == "null"
            || schema["type"]
                .as_array()
                .is_some_and(|ts| ts.iter().any(|t| t == "null"))
            || ["anyOf", "oneOf"].iter().any(|c| {
                schema[*c].as_array().is_some_and(|choices| {
                    choices.iter().any(|s| self.allows_null(self.resolve(s)))
                })
            })
    }
}

fn is_of_type(value: &Value, kind: &str) -> bool {
    match kind {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "null" => value.is_null(),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::Spec;
    use serde_json::json;

    fn spec() -> Spec {
        Spec {
            doc: json!({
                "paths": {"/things/{id}": {"get": {"responses": {
                    "200": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/thing"}}}},
                    "404": {"$ref": "#/components/responses/not_found"}
                }}}},
                "components": {
                    "responses": {"not_found": {"content": {"application/json": {"schema": {"type": "object", "properties": {"message": {"type": "string"}}}}}}},
                    "schemas": {"thing": {"type": "object", "required": ["id"], "properties": {
                        "id": {"type": "integer"},
                        "state": {"type": "string", "enum": ["open", "closed"]},
                        "user": {"nullable": true, "allOf": [{"$ref": "#/components/schemas/user"}]},
                        "tags": {"type": "array", "items": {"type": "string"}},
                        "merged_by": {"anyOf": [{"type": "string"}, {"type": "null"}]}
                    }},
                    "user": {"type": "object", "properties": {"login": {"type": "string"}}}}
                }
            }),
        }
    }

    #[test]
    fn a_subset_of_the_documented_shape_passes() {
        let ok = json!({"id": 1, "state": "open", "user": null, "tags": ["a"], "merged_by": null});
        assert_eq!(
            spec().check_answer("GET", "/things/{id}", 200, &ok),
            Vec::<String>::new()
        );
        let partial = json!({"id": 2, "user": {"login": "ada"}});
        assert!(spec()
            .check_answer("GET", "/things/{id}", 200, &partial)
            .is_empty());
    }

    #[test]
    fn undocumented_fields_types_values_and_statuses_are_refused() {
        let s = spec();
        let cases = [
            (json!({"id": "1"}), "not of type"),
            (json!({"id": 1, "state": "merged"}), "not one of"),
            (
                json!({"id": 1, "mergeable": true}),
                "not in the documented schema",
            ),
            (json!({"id": 1, "user": {"login": 5}}), "$.user.login"),
            (json!({"id": 1, "tags": [1]}), "$.tags[0]"),
        ];
        for (body, needle) in cases {
            let problems = s.check_answer("GET", "/things/{id}", 200, &body);
            assert!(
                problems.iter().any(|p| p.contains(needle)),
                "{body}: {problems:?}"
            );
        }
        assert!(
            s.check_answer("GET", "/things/{id}", 405, &json!({}))[0].contains("not documented")
        );
        assert!(s
            .check_answer("GET", "/things/{id}", 404, &json!({"message": "Not Found"}))
            .is_empty());
    }
}
