//! Times everything around the model call (issue 22's goal: under 50 ms): the judge's input
//! from a 5,000-line diff and the earlier steps' evidence (trimmed, fenced), and reading an
//! answer. Run by `bench/judge.sh` (release build); prints one line per figure.

use slipway_core::judge::JudgeSection;
use slipway_judge::judge::fit_diff;
use slipway_judge::prompt::{build, JudgeInput, StepEvidence};
use std::time::Instant;

fn diff(lines: usize) -> String {
    let mut text = String::new();
    let files = 50;
    for f in 0..files {
        text.push_str(&format!(
            "diff --git a/src/mod{f}.rs b/src/mod{f}.rs\nindex 1..2 100644\n--- a/src/mod{f}.rs\n+++ b/src/mod{f}.rs\n"
        ));
        let per_file = lines / files;
        for h in 0..per_file / 20 {
            text.push_str(&format!("@@ -{0},10 +{0},20 @@ fn f{h}()\n", h * 30 + 1));
            for l in 0..20 {
                text.push_str(&format!(
                    "+    let value_{h}_{l} = compute({l}, \"{f}\"); // line\n"
                ));
            }
        }
    }
    text.push_str("diff --git a/Cargo.lock b/Cargo.lock\n--- a/Cargo.lock\n+++ b/Cargo.lock\n@@ -1 +1 @@\n+x\n");
    text
}

fn main() {
    let raw = diff(5_000);
    let steps: Vec<StepEvidence> = ["build", "deploy", "test", "ui"]
        .iter()
        .map(|name| StepEvidence {
            name: name.to_string(),
            status: "passed".into(),
            detail: Some("3 commands passed".into()),
            log_tail: (0..40)
                .map(|i| format!("line {i} of the {name} step's log: ok"))
                .collect(),
        })
        .collect();
    let section = JudgeSection::default();
    let criteria: Vec<String> = (0..5).map(|i| format!("criterion number {i}")).collect();
    let answer = serde_json::json!({
        "verdict": "pass", "score": 90, "concerns": ["none"],
        "criteria": criteria.iter().map(|c| serde_json::json!({"criterion": c, "met": true,
            "evidence": "let value_0_1 = compute(1, \"0\");"})).collect::<Vec<_>>()
    })
    .to_string();
    let runs = 20;
    let mut times = Vec::new();
    for _ in 0..runs {
        let started = Instant::now();
        let mut input = JudgeInput {
            goal: Some("Add a feature".into()),
            criteria: criteria.clone(),
            title: Some("A change".into()),
            body: Some("The message".into()),
            steps: steps.clone(),
            ..Default::default()
        };
        fit_diff(&mut input, &raw, &section);
        let prompt = build(&input, &slipway_judge::prompt::nonce());
        let read = slipway_judge::answer::read(&answer, &criteria, &prompt.data);
        assert!(read.is_ok(), "{read:?}");
        times.push(started.elapsed());
    }
    times.sort();
    println!(
        "judge input from a {}-line diff ({} KB) + 4 steps' evidence, prompt and answer read: \
         min {:?}, median {:?}, max {:?} ({runs} runs)",
        raw.lines().count(),
        raw.len() / 1024,
        times[0],
        times[runs / 2],
        times[runs - 1]
    );
}
