//! `slipway validate` with a `[judge]`: the model from GEMINI_* (the fake Gemini over real
//! HTTP), its answer, tokens and cost in the report; refused without a model.

use serde_json::{json, Value};
use slipway_testkit::fake_gemini::FakeGemini;
use slipway_testkit::fake_model::Script;
use slipway_testkit::{commit_files, fixture_repo};
use std::process::Output;

const BIN: &str = env!("CARGO_BIN_EXE_slipway");
const KEY: &str = "gm-cli-key-987654";
const PIPELINE: &str = "[test]\ncommands = [\"grep -q ok status.txt\"]\n[judge]\nmode = \"blocking\"\nmin_score = 50\n";

async fn validate(repo: &std::path::Path, env: Vec<(&'static str, String)>, json: bool) -> Output {
    let cache = tempfile::tempdir().unwrap();
    let mut command = tokio::process::Command::new(BIN);
    command
        .arg("validate")
        .arg(repo)
        .env_remove("SLIPWAY_DATA_DIR")
        .env_remove("GEMINI_API_KEY")
        .env_remove("SLIPWAY_LLM_URL")
        .env("XDG_CACHE_HOME", cache.path())
        .envs(env);
    if json {
        command.arg("--json");
    }
    command.output().await.expect("slipway runs")
}

fn repo(dir: &std::path::Path) {
    fixture_repo(
        dir,
        &[(".slipway.toml", PIPELINE), ("status.txt", "starting\n")],
    );
    commit_files(
        dir,
        &[("status.txt", "status: ok\n")],
        "Report the status as ok",
    );
}

#[tokio::test]
async fn the_judgement_its_tokens_and_cost_are_in_the_report() {
    let fake = FakeGemini::start(KEY).await;
    let dir = tempfile::tempdir().unwrap();
    repo(dir.path());
    let env = vec![
        ("GEMINI_API_KEY", KEY.to_owned()),
        ("GEMINI_API_URL", fake.url.clone()),
        ("GEMINI_MODEL", "gemini-test".to_owned()),
        ("SLIPWAY_LLM_PRICE_PER_MTOK", "0.30/2.50".to_owned()),
    ];
    let verdict = json!({"verdict": "pass", "score": 80, "criteria": [],
        "concerns": ["only a status file changed"]});
    fake.script([Script::Answer(verdict.clone()), Script::Answer(verdict)]);

    let out = validate(dir.path(), env.clone(), true).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let judge = &report["judge"];
    assert_eq!(judge["model"], "gemini:gemini-test", "{report:#}");
    assert_eq!(judge["answer"]["verdict"], "pass");
    assert!(judge["usage"]["input_tokens"].as_u64().unwrap() > 0);
    assert!(judge["usage"]["cost_usd"].as_f64().unwrap() > 0.0);
    let sent = fake.requests()[0]["contents"][0]["parts"][0]["text"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        sent.contains("+status: ok") && sent.contains("Report the status as ok"),
        "{sent}"
    );
    assert!(!stderr.contains(KEY) && !String::from_utf8_lossy(&out.stdout).contains(KEY));

    // Without --json: the judgement is printed as the model's opinion.
    let out = validate(dir.path(), env, false).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("judge (the model's opinion):"), "{stderr}");
    assert!(
        stderr.contains("concern: only a status file changed"),
        "{stderr}"
    );
}

#[tokio::test]
async fn without_a_model_a_judge_is_refused_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    repo(dir.path());
    let out = validate(dir.path(), vec![], false).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("needs a model") && stderr.contains("GEMINI_API_KEY"),
        "{stderr}"
    );
}
