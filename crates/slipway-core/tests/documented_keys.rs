//! Every key the `.slipway.toml` parser accepts is documented in `docs/slipway-toml.md`, in
//! its section's part; the key lists come from the parser's own types (their serde field
//! names), so a new key or section fails here until it is documented.
//!
//! Adding a section: add its line to `SECTIONS` below and a `### [name]` part, with each key
//! in backticks, to the reference.

use serde::de::{self, Deserialize, Deserializer, Visitor};
use slipway_core::judge::JudgeSection;
use slipway_core::pipeline::{
    AnalysisSection, CommandsSection, FixSection, MergeSection, SandboxSection, ServiceSection,
    SetupSection, TestSection,
};
use slipway_core::ui::{UiCheck, UiSection, UiStep};
use slipway_core::PipelineConfig;

const REFERENCE: &str = include_str!("../../../docs/slipway-toml.md");
const OPERATIONS: &str = include_str!("../../../docs/operations.md");

/// The field names serde would accept for `T` (a struct): asked of the type itself.
fn keys<'de, T: Deserialize<'de>>() -> Vec<&'static str> {
    struct Fields(Vec<&'static str>);
    #[derive(Debug)]
    struct Stop;
    impl std::fmt::Display for Stop {
        fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("stop")
        }
    }
    impl std::error::Error for Stop {}
    impl de::Error for Stop {
        fn custom<M: std::fmt::Display>(_: M) -> Self {
            Stop
        }
    }
    impl<'de> Deserializer<'de> for &mut Fields {
        type Error = Stop;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
            Err(Stop)
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Stop> {
            self.0.extend_from_slice(fields);
            Err(Stop)
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
            identifier ignored_any
        }
    }
    let mut fields = Fields(Vec::new());
    let _ = T::deserialize(&mut fields);
    assert!(
        !fields.0.is_empty(),
        "{} is not a struct",
        std::any::type_name::<T>()
    );
    fields.0
}

/// Each section (as the reference heads it) and the keys its type accepts.
fn sections() -> Vec<(&'static str, Vec<&'static str>)> {
    vec![
        ("[setup]", keys::<SetupSection>()),
        ("[build]", keys::<CommandsSection>()),
        ("[service]", keys::<ServiceSection>()),
        ("[test]", keys::<TestSection>()),
        ("[ui]", keys::<UiSection>()),
        ("[[ui.checks]]", keys::<UiCheck>()),
        ("[[ui.checks]] steps", step_keys()),
        ("[analysis]", keys::<AnalysisSection>()),
        ("[judge]", keys::<JudgeSection>()),
        ("[merge]", keys::<MergeSection>()),
        ("[fix]", keys::<FixSection>()),
        ("[sandbox]", keys::<SandboxSection>()),
    ]
}

/// A step is untagged (serde cannot list it): one of each kind, serialized. A new kind does
/// not compile here until it is added.
fn step_keys() -> Vec<&'static str> {
    let sample = |step: &UiStep| match step {
        UiStep::Fill { .. } | UiStep::Click { .. } | UiStep::WaitFor { .. } => {
            serde_json::to_value(step).unwrap()
        }
    };
    let steps = [
        UiStep::Fill {
            fill: "#a".into(),
            text: "b".into(),
        },
        UiStep::Click { click: "a".into() },
        UiStep::WaitFor {
            wait_for: "a".into(),
        },
    ];
    let mut keys: Vec<&'static str> = Vec::new();
    for step in &steps {
        for key in sample(step).as_object().unwrap().keys() {
            keys.push(Box::leak(key.clone().into_boxed_str()));
        }
    }
    keys
}

/// The part of the reference under `### {heading}`, up to the next heading.
fn part(heading: &str) -> &'static str {
    let start = REFERENCE
        .find(&format!("\n### {heading}\n"))
        .unwrap_or_else(|| panic!("docs/slipway-toml.md has no `### {heading}` part"));
    let rest = &REFERENCE[start + 5 + heading.len()..];
    &rest[..rest.find("\n#").unwrap_or(rest.len())]
}

#[test]
fn every_section_the_parser_accepts_has_a_part_in_the_reference() {
    let listed: Vec<String> = sections()
        .iter()
        .map(|(heading, _)| heading.to_string())
        .collect();
    for section in keys::<PipelineConfig>() {
        assert!(
            listed.contains(&format!("[{section}]")),
            "[{section}] is accepted by the parser: add it to SECTIONS in this test and document it"
        );
    }
}

#[test]
fn every_key_the_parser_accepts_is_documented_in_its_section() {
    let mut missing = Vec::new();
    for (heading, keys) in sections() {
        let text = part(heading);
        for key in keys {
            if !text.contains(&format!("`{key}`")) {
                missing.push(format!("{heading} {key}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "undocumented in docs/slipway-toml.md: {missing:?}"
    );
}

#[test]
fn every_example_in_the_reference_is_a_valid_pipeline() {
    let mut examples = 0;
    for block in REFERENCE.split("```toml\n").skip(1) {
        let toml = &block[..block.find("```").unwrap()];
        PipelineConfig::from_toml(".slipway.toml", toml)
            .unwrap_or_else(|e| panic!("{e}\nin the example:\n{toml}"));
        examples += 1;
    }
    assert!(examples > 5, "the reference shows examples");
}

#[test]
fn every_sandbox_ceiling_variable_is_documented_in_operations() {
    for (variable, _) in slipway_core::limits::CEILING_VARS {
        assert!(
            OPERATIONS.contains(&format!("`{variable}`")),
            "{variable} is not in docs/operations.md"
        );
    }
}
