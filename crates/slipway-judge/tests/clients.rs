//! The real model clients against the fakes over real HTTP: answers, tokens and cost, and
//! every injected fault (429 with Retry-After, 500, malformed JSON, an answer outside the
//! schema, a slow answer, a wrong key).

use serde_json::json;
use slipway_core::judge::{JudgeMode, JudgeSection, Provider, Verdict};
use slipway_judge::judge::{judge, Outcome};
use slipway_judge::prompt::JudgeInput;
use slipway_judge::{AnyModel, Model, ModelConfig, ModelError, Price, Request};
use slipway_testkit::fake_gemini::FakeGemini;
use slipway_testkit::fake_model::{Fault, Script};
use slipway_testkit::fake_openai::FakeOpenAi;
use std::time::Duration;

const KEY: &str = "gm-secret-key-123";

fn config(provider: Provider, url: &str, key: Option<&str>) -> ModelConfig {
    ModelConfig {
        provider,
        url: url.to_owned(),
        api_key: key.map(str::to_owned),
        model: "test-model".into(),
        timeout: Duration::from_secs(2),
        price: Some(Price {
            input_per_mtok: 1.0,
            output_per_mtok: 4.0,
        }),
        retry_base: Duration::from_millis(10),
    }
}

fn request(schema: &serde_json::Value) -> Request<'_> {
    Request {
        system: "answer with JSON",
        user: "is it done?",
        schema,
        max_output_tokens: 512,
    }
}

/// Both fakes, with the clients that talk to them.
async fn both() -> (FakeGemini, FakeOpenAi, Vec<AnyModel>) {
    let gemini = FakeGemini::start(KEY).await;
    let openai = FakeOpenAi::start(Some(KEY)).await;
    let models = vec![
        AnyModel::new(config(Provider::Gemini, &gemini.url, Some(KEY))),
        AnyModel::new(config(Provider::Openai, &openai.url, Some(KEY))),
    ];
    (gemini, openai, models)
}

fn handles<'a>(
    gemini: &'a FakeGemini,
    openai: &'a FakeOpenAi,
) -> [&'a slipway_testkit::fake_model::Handle; 2] {
    [&gemini.handle, &openai.handle]
}

#[tokio::test]
async fn an_answer_comes_back_with_its_tokens_and_cost() {
    let (gemini, openai, models) = both().await;
    let schema = slipway_judge::answer::schema();
    for (fake, model) in handles(&gemini, &openai).into_iter().zip(&models) {
        fake.script([Script::Answer(json!({"ok": true}))]);
        let completion = model.complete(request(&schema)).await.unwrap();
        assert_eq!(completion.text, r#"{"ok":true}"#, "{}", model.name());
        assert_eq!(completion.calls, 1);
        let usage = completion.usage;
        assert!(
            usage.input_tokens > 0 && usage.output_tokens > 0,
            "{usage:?}"
        );
        let cost = (usage.input_tokens as f64 + 4.0 * usage.output_tokens as f64) / 1e6;
        assert_eq!(usage.cost_usd, Some(cost));
    }
    // The requests follow each API's shape: instructions apart, the schema attached.
    let sent = &gemini.requests()[0];
    assert_eq!(
        sent["systemInstruction"]["parts"][0]["text"],
        "answer with JSON"
    );
    assert_eq!(sent["contents"][0]["parts"][0]["text"], "is it done?");
    assert_eq!(
        sent["generationConfig"]["responseMimeType"],
        "application/json"
    );
    assert_eq!(sent["generationConfig"]["responseSchema"]["type"], "OBJECT");
    let sent = &openai.requests()[0];
    assert_eq!(sent["messages"][0]["role"], "system");
    assert_eq!(sent["messages"][1]["content"], "is it done?");
    assert_eq!(sent["response_format"]["type"], "json_schema");
    assert_eq!(sent["response_format"]["json_schema"]["schema"], schema);
}

#[tokio::test]
async fn rate_limits_and_server_faults_are_retried_until_an_answer() {
    let (gemini, openai, models) = both().await;
    let schema = slipway_judge::answer::schema();
    for (fake, model) in handles(&gemini, &openai).into_iter().zip(&models) {
        fake.fault([Fault::Status(429, Some(1)), Fault::Status(500, None)]);
        fake.script([Script::Answer(json!({"ok": 1}))]);
        let completion = model.complete(request(&schema)).await.unwrap();
        assert_eq!(completion.calls, 3, "{}", model.name());
        assert_eq!(fake.requests().len(), 3);
    }
}

#[tokio::test]
async fn a_slow_answer_times_out_and_is_tried_again() {
    let (gemini, openai, models) = both().await;
    let schema = slipway_judge::answer::schema();
    for (fake, model) in handles(&gemini, &openai).into_iter().zip(&models) {
        fake.fault([Fault::Slow(Duration::from_secs(5))]);
        fake.script([Script::Answer(json!({"late": false}))]);
        let completion = model.complete(request(&schema)).await.unwrap();
        assert_eq!(completion.text, r#"{"late":false}"#, "{}", model.name());
        assert_eq!(completion.calls, 2);
    }
}

#[tokio::test]
async fn a_server_that_keeps_failing_is_a_clear_final_error() {
    let (gemini, openai, models) = both().await;
    let schema = slipway_judge::answer::schema();
    for (fake, model) in handles(&gemini, &openai).into_iter().zip(&models) {
        fake.fault([Fault::Status(503, None); 4]);
        let err = model.complete(request(&schema)).await.unwrap_err();
        assert!(
            matches!(&err, ModelError::Unavailable { tries: 4, message } if message.contains("503")),
            "{err}"
        );
    }
}

#[tokio::test]
async fn a_malformed_body_is_unreadable_and_not_retried() {
    let (gemini, openai, models) = both().await;
    let schema = slipway_judge::answer::schema();
    for (fake, model) in handles(&gemini, &openai).into_iter().zip(&models) {
        fake.fault([Fault::MalformedBody]);
        let err = model.complete(request(&schema)).await.unwrap_err();
        assert!(matches!(err, ModelError::Unreadable(_)), "{err}");
        assert_eq!(fake.requests().len(), 1);
    }
}

#[tokio::test]
async fn a_wrong_key_is_refused_at_once_naming_the_variable_and_never_the_key() {
    let gemini = FakeGemini::start(KEY).await;
    let openai = FakeOpenAi::start(Some(KEY)).await;
    let schema = slipway_judge::answer::schema();
    let models = [
        AnyModel::new(config(Provider::Gemini, &gemini.url, Some("wrong-key-456"))),
        AnyModel::new(config(Provider::Openai, &openai.url, Some("wrong-key-456"))),
    ];
    for model in models {
        let err = model.complete(request(&schema)).await.unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, ModelError::Refused { .. }), "{text}");
        assert!(
            text.contains("API key") && !text.contains("wrong-key-456"),
            "{text}"
        );
    }
    assert_eq!(gemini.requests().len() + openai.requests().len(), 0);
}

fn input() -> JudgeInput {
    let mut input = JudgeInput {
        goal: Some("Add a health route".into()),
        criteria: vec!["GET /health answers 200".into()],
        title: Some("Add /health".into()),
        ..Default::default()
    };
    let diff = "diff --git a/app.js b/app.js\n--- a/app.js\n+++ b/app.js\n@@ -1 +1 @@\n+app.get('/health', (q, r) => r.sendStatus(200))\n";
    slipway_judge::judge::fit_diff(&mut input, diff, &JudgeSection::default());
    input
}

fn verdict(verdict: &str, score: u8, met: bool) -> Script {
    Script::Answer(json!({
        "verdict": verdict, "score": score, "concerns": [],
        "criteria": [{"criterion": "GET /health answers 200", "met": met,
            "evidence": if met { "app.get('/health'" } else { "no route in the diff" }}]
    }))
}

#[tokio::test]
async fn verdicts_pass_fail_and_uncertain_advisory_and_blocking() {
    let fake = FakeOpenAi::start(None).await;
    let model = AnyModel::new(config(Provider::Openai, &fake.url, None));
    let blocking = JudgeSection {
        mode: JudgeMode::Blocking,
        min_score: Some(60),
        ..Default::default()
    };
    let advisory = JudgeSection::default();
    let cases = [
        (verdict("pass", 90, true), &blocking, "passed"),
        (verdict("fail", 20, false), &blocking, "failed"),
        (verdict("uncertain", 50, true), &blocking, "failed"),
        (verdict("uncertain", 70, true), &blocking, "passed"),
        (verdict("fail", 10, false), &advisory, "passed"),
    ];
    for (script, section, expected) in cases {
        fake.script([script]);
        let judgement = judge(&model, section, &input(), None).await;
        let status = match &judgement.outcome {
            Outcome::Passed(_) => "passed",
            Outcome::Failed(_) => "failed",
            Outcome::Error(e) => panic!("error: {e}"),
        };
        assert_eq!(status, expected, "{:?}", judgement.outcome);
        assert!(judgement.usage.input_tokens > 0);
    }
    let last = judge(&model, &advisory, &input(), None).await;
    assert!(
        matches!(last.outcome, Outcome::Error(_)),
        "no script left: a 500 each time"
    );
}

#[tokio::test]
async fn an_answer_outside_the_schema_or_citing_what_is_not_there_is_an_error() {
    let fake = FakeGemini::start(KEY).await;
    let model = AnyModel::new(config(Provider::Gemini, &fake.url, Some(KEY)));
    let invented = Script::Answer(json!({
        "verdict": "pass", "score": 99, "concerns": [],
        "criteria": [{"criterion": "GET /health answers 200", "met": true,
            "evidence": "all the tests passed in CI"}]
    }));
    for script in [
        Script::Text(r#"{"verdict": "approve", "score": 100}"#.into()),
        Script::Text("Sure! The PR looks great.".into()),
        invented,
    ] {
        fake.script([script]);
        let judgement = judge(&model, &JudgeSection::default(), &input(), None).await;
        assert!(
            matches!(&judgement.outcome, Outcome::Error(e) if e.contains("breaks its schema")),
            "{:?}",
            judgement.outcome
        );
        assert!(judgement.answer.is_none());
    }
    fake.script([verdict("pass", 95, true)]);
    let judgement = judge(&model, &JudgeSection::default(), &input(), None).await;
    assert_eq!(judgement.answer.unwrap().verdict, Verdict::Pass);
}

#[tokio::test]
async fn the_same_input_is_judged_once_and_the_answer_reused() {
    let fake = FakeOpenAi::start(None).await;
    let model = AnyModel::new(config(Provider::Openai, &fake.url, None));
    let cache = tempfile::tempdir().unwrap();
    fake.script([verdict("pass", 90, true), verdict("fail", 10, false)]);
    let section = JudgeSection::default();
    let first = judge(&model, &section, &input(), Some(cache.path())).await;
    let again = judge(&model, &section, &input(), Some(cache.path())).await;
    assert!(!first.cached && again.cached);
    assert_eq!(again.answer, first.answer);
    assert_eq!(again.usage, first.usage);
    assert_eq!(fake.requests().len(), 1);
    // Another input is another judgement.
    let mut other = input();
    other.title = Some("Add /health, again".into());
    let third = judge(&model, &section, &other, Some(cache.path())).await;
    assert!(!third.cached);
    assert_eq!(third.answer.unwrap().verdict, Verdict::Fail);
}
