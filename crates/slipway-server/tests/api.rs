//! The API over real HTTP against a real server and SQLite file.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use slipway_testkit::{git_repository, Body, TestApp};

#[tokio::test]
async fn every_api_route_in_the_openapi_document_requires_a_token() {
    let app = TestApp::spawn().await;
    let document = app.api.openapi().await;
    assert_eq!(document.status, StatusCode::OK);
    let paths = document.body["paths"].as_object().unwrap();
    assert!(paths.len() >= 8, "{paths:?}");
    let anonymous = app.api_with(None);
    let forged = app.api_with(Some("slw_forged-token-value"));
    for (path, operations) in paths {
        let concrete = path.replace("{id}", "1").replace("{name}", "API_KEY");
        for method in operations.as_object().unwrap().keys() {
            let method: Method = method.to_uppercase().parse().unwrap();
            for client in [&anonymous, &forged] {
                let reply = client.send(method.clone(), &concrete, Body::None).await;
                assert_eq!(
                    reply.status,
                    StatusCode::UNAUTHORIZED,
                    "{method} {concrete}: {}",
                    reply.text
                );
                assert_eq!(reply.code(), "unauthorized");
            }
        }
    }
    assert_eq!(anonymous.openapi().await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn viewers_read_operators_cannot_manage_and_admins_can() {
    let app = TestApp::spawn().await;
    let id = app.project("demo").await;
    let viewer = app.api_as("viewer").await;
    let operator = app.api_as("operator").await;

    assert_eq!(viewer.list_projects().await.status, StatusCode::OK);
    assert_eq!(viewer.settings(id).await.status, StatusCode::OK);
    assert_eq!(viewer.secrets(id).await.status, StatusCode::OK);
    for client in [&viewer, &operator] {
        let created = client
            .create_project(&json!({"name": "x", "repo": "a/b"}))
            .await;
        assert_eq!(created.status, StatusCode::FORBIDDEN);
        assert!(created.message().contains("admin role"), "{}", created.text);
        assert_eq!(
            client.delete_project(id).await.status,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            client.put_settings(id, &json!({})).await.status,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            client.put_secret(id, "K", "v").await.status,
            StatusCode::FORBIDDEN
        );
        assert_eq!(client.tokens().await.status, StatusCode::FORBIDDEN);
    }
    assert_eq!(app.api.project(id).await.status, StatusCode::OK);
}

#[tokio::test]
async fn projects_are_created_read_patched_and_deleted() {
    let app = TestApp::spawn().await;
    let created = app
        .api
        .create_project(&json!({"name": "shop", "description": "web shop", "repo": "acme/shop"}))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let id = created.body["id"].as_i64().unwrap();
    assert_eq!(created.body["default_branch"], "main");

    let patched = app
        .api
        .update_project(id, &json!({"default_branch": "develop"}))
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    assert_eq!(patched.body["default_branch"], "develop");
    assert_eq!(patched.body["name"], "shop");

    let listed = app.api.list_projects().await;
    assert_eq!(listed.body.as_array().unwrap().len(), 1);
    assert_eq!(listed.body[0], patched.body);

    assert_eq!(
        app.api.delete_project(id).await.status,
        StatusCode::NO_CONTENT
    );
    let gone = app.api.project(id).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert_eq!(gone.code(), "not_found");
}

#[tokio::test]
async fn a_local_repo_must_be_an_existing_git_repository() {
    let app = TestApp::spawn().await;
    let repo = app.data_dir.path().join("repo");
    git_repository(&repo);
    let ok = app
        .api
        .create_project(&json!({"name": "local", "repo": repo.display().to_string()}))
        .await;
    assert_eq!(ok.status, StatusCode::CREATED, "{}", ok.text);
    let url = app
        .api
        .create_project(&json!({"name": "url", "repo": format!("file://{}", repo.display())}))
        .await;
    assert_eq!(url.status, StatusCode::CREATED, "{}", url.text);

    let plain_dir = app.data_dir.path().join("plain");
    std::fs::create_dir(&plain_dir).unwrap();
    for repo in [
        plain_dir.display().to_string(),
        "/no/such/path".into(),
        "not a repo".into(),
    ] {
        let refused = app
            .api
            .create_project(&json!({"name": "bad", "repo": repo}))
            .await;
        assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{repo}");
        assert!(refused.message().starts_with("repo: "), "{}", refused.text);
        assert!(refused.message().contains("owner/name"), "{}", refused.text);
    }
    assert_eq!(
        app.api.list_projects().await.body.as_array().unwrap().len(),
        2
    );
}

#[tokio::test]
async fn bad_request_bodies_get_clear_errors_and_change_nothing() {
    let app = TestApp::spawn().await;
    let id = app.project("keep").await;
    let before = app.api.project(id).await.body;
    let path = format!("/api/v1/projects/{id}");

    let malformed = app
        .api
        .send(
            Method::PATCH,
            &path,
            Body::Raw("application/json", b"{\"name\":".to_vec()),
        )
        .await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
    assert_eq!(malformed.code(), "malformed_json");

    let unknown = app.api.update_project(id, &json!({"nmae": "typo"})).await;
    assert_eq!(unknown.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        unknown.message().contains("unknown field `nmae`"),
        "{}",
        unknown.text
    );

    let wrong_type = app.api.update_project(id, &json!({"name": 42})).await;
    assert_eq!(wrong_type.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        wrong_type.message().contains("invalid type"),
        "{}",
        wrong_type.text
    );

    let invalid = app.api.update_project(id, &json!({"name": ""})).await;
    assert_eq!(invalid.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(invalid.message().starts_with("name: "));

    let huge = app
        .api
        .send(
            Method::PATCH,
            &path,
            Body::Raw("application/json", vec![b' '; 2 * 1024 * 1024]),
        )
        .await;
    assert_eq!(huge.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(huge.code(), "body_too_large");

    let not_json = app
        .api
        .send(
            Method::PATCH,
            &path,
            Body::Raw("text/plain", b"{}".to_vec()),
        )
        .await;
    assert_eq!(not_json.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    let bad_id = app
        .api
        .send(Method::GET, "/api/v1/projects/abc", Body::None)
        .await;
    assert_eq!(bad_id.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad_id.code(), "invalid_path");

    let no_route = app
        .api
        .send(Method::GET, "/api/v1/nothing", Body::None)
        .await;
    assert_eq!(no_route.status, StatusCode::NOT_FOUND);
    let wrong_method = app
        .api
        .send(Method::PUT, "/api/v1/projects", Body::None)
        .await;
    assert_eq!(wrong_method.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(wrong_method.code(), "method_not_allowed");

    assert_eq!(app.api.project(id).await.body, before);
}

#[tokio::test]
async fn project_names_are_unique() {
    let app = TestApp::spawn().await;
    app.project("same").await;
    let other = app.project("other").await;
    let duplicate = app
        .api
        .create_project(&json!({"name": "same", "repo": "a/b"}))
        .await;
    assert_eq!(duplicate.status, StatusCode::CONFLICT);
    assert!(duplicate.message().contains("already exists"));
    let renamed = app
        .api
        .update_project(other, &json!({"name": "same"}))
        .await;
    assert_eq!(renamed.status, StatusCode::CONFLICT);
}

#[tokio::test]
async fn settings_round_trip_and_refuse_bad_values() {
    let app = TestApp::spawn().await;
    let id = app.project("p").await;
    let mut settings = app.api.settings(id).await.body;
    assert_eq!(settings["id"], id);
    assert_eq!(settings["max_fix_attempts"], 3);

    settings["repository_rules"] = json!("Never touch migrations/");
    settings["setup_commands"] = json!({"branch": "develop", "commands": ["npm ci"]});
    settings["planning_statement"] = json!("Plan in small steps.");
    settings["auto_confirm_plan"] = json!(true);
    settings["auto_merge"] = json!(true);
    settings["merge_method"] = json!("squash");
    settings["max_fix_attempts"] = json!(5);
    settings["agent"] = json!({"kind": "command", "command": "claude -p", "plan_mode": true});
    settings["pipeline"] = json!({
        "build": {"commands": ["make"]},
        "service": {"start": "./run", "health_path": "/health"},
        "test": {"commands": ["make test"]}
    });
    let saved = app.api.put_settings(id, &settings).await;
    assert_eq!(saved.status, StatusCode::OK, "{}", saved.text);
    settings["pipeline"]["service"]["ready_timeout_secs"] = json!(60);
    assert_eq!(app.api.settings(id).await.body, settings);

    let refusals = [
        (json!({"merge_method": "yolo"}), "invalid_body"),
        (json!({"max_fix_attempts": 100}), "invalid"),
        (json!({"max_fix_attempts": "3"}), "invalid_body"),
        (json!({"auto_merge": true, "colour": "red"}), "invalid_body"),
        (json!({"id": id + 1}), "invalid"),
        (
            json!({"agent": {"kind": "command", "command": ""}}),
            "invalid",
        ),
        (
            json!({"pipeline": {"service": {"start": "x", "health_path": "health"}}}),
            "invalid",
        ),
    ];
    for (body, code) in refusals {
        let reply = app.api.put_settings(id, &body).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(reply.code(), code, "{body}: {}", reply.text);
    }
    assert_eq!(app.api.settings(id).await.body, settings);
    assert_eq!(app.api.settings(9999).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn secret_values_are_write_only() {
    let app = TestApp::spawn().await;
    let id = app.project("p").await;
    let value = "very-secret-value-7d1f";
    let created = app.api.put_secret(id, "API_KEY", value).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert_eq!(created.body["name"], "API_KEY");
    assert_eq!(
        app.api.put_secret(id, "API_KEY", value).await.status,
        StatusCode::OK
    );
    let listed = app.api.secrets(id).await;
    assert_eq!(listed.body.as_array().unwrap().len(), 1);
    for reply in [&created, &listed] {
        assert!(!reply.text.contains(value));
    }
    let bad_name = app.api.put_secret(id, "BAD-NAME", value).await;
    assert_eq!(bad_name.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(!bad_name.text.contains(value));
    let empty = app.api.put_secret(id, "EMPTY", "").await;
    assert_eq!(empty.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        app.api.put_secret(999, "X", "value-1234").await.status,
        StatusCode::NOT_FOUND
    );

    assert_eq!(
        app.api.delete_secret(id, "API_KEY").await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.api.delete_secret(id, "API_KEY").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn dotenv_import_reports_every_line() {
    let app = TestApp::spawn().await;
    let id = app.project("p").await;
    app.api.put_secret(id, "EXISTING", "old-value").await;
    let text =
        "# comment\nNEW=one-value\nEXISTING=\"two-value\"\n9BAD=x\nEMPTY=\nNEW=again\nnonsense\n";
    let report = app.api.import_secrets(id, text).await;
    assert_eq!(report.status, StatusCode::OK, "{}", report.text);
    assert_eq!(
        report.body["imported"],
        json!([
            {"line": 2, "name": "NEW", "kind": "secret", "status": "created"},
            {"line": 3, "name": "EXISTING", "kind": "secret", "status": "updated"}
        ])
    );
    let refused: Vec<(i64, String)> = report.body["refused"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["line"].as_i64().unwrap(),
                r["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        refused.iter().map(|r| r.0).collect::<Vec<_>>(),
        [4, 5, 6, 7]
    );
    assert!(refused[0].1.contains("not a valid secret name"));
    assert!(refused[1].1.contains("empty"));
    assert!(refused[2].1.contains("duplicate"));
    assert!(refused[3].1.contains("KEY=value"));
    assert!(!report.text.contains("again") && !report.text.contains("one-value"));

    let values = app
        .store
        .secret_values(slipway_core::ProjectId(id))
        .await
        .unwrap();
    let values: Vec<(&str, &str)> = values
        .iter()
        .map(|(n, v)| (n.as_str(), v.expose()))
        .collect();
    assert_eq!(values, [("EXISTING", "two-value"), ("NEW", "one-value")]);
}

#[tokio::test]
async fn short_values_are_refused_as_secrets_and_kept_as_variables() {
    let app = TestApp::spawn().await;
    let id = app.project("p").await;
    let short = app.api.put_secret(id, "FEATURE", "on").await;
    assert_eq!(short.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(short.message().contains("as a variable"), "{}", short.text);
    assert!(short.message().contains("at least 4"), "{}", short.text);
    let warned = app.api.put_secret(id, "PIN", "t3st").await;
    assert_eq!(warned.status, StatusCode::CREATED, "{}", warned.text);
    assert!(warned.body["warning"]
        .as_str()
        .unwrap()
        .contains("whole word"));
    let long = app.api.put_secret(id, "TOKEN", "long-enough-1").await;
    assert!(long.body.get("warning").is_none(), "{}", long.text);

    // The import's rule: a value under 4 characters becomes a variable, saying so.
    let report = app
        .api
        .import_secrets(id, "FEATURE=on\nAPI_KEY=sk-0123456789\nCODE=1234\n")
        .await;
    assert_eq!(report.status, StatusCode::OK, "{}", report.text);
    let imported = report.body["imported"].as_array().unwrap();
    let kinds: Vec<(&str, &str)> = imported
        .iter()
        .map(|l| (l["name"].as_str().unwrap(), l["kind"].as_str().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("FEATURE", "variable"),
            ("API_KEY", "secret"),
            ("CODE", "secret")
        ]
    );
    assert!(imported[0]["note"].as_str().unwrap().contains("too short"));
    assert!(imported[2]["note"].as_str().unwrap().contains("whole word"));
    let variables = app.api.variables(id).await;
    assert_eq!(variables.body[0]["name"], "FEATURE");
    assert_eq!(variables.body[0]["value"], "on");
}

#[tokio::test]
async fn variables_are_shown_managed_by_admins_and_distinct_from_secrets() {
    let app = TestApp::spawn().await;
    let id = app.project("p").await;
    let created = app.api.put_variable(id, "MODE", "fast").await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert_eq!(created.body["value"], "fast");
    let replaced = app.api.put_variable(id, "MODE", "slow").await;
    assert_eq!(replaced.status, StatusCode::OK);
    let viewer = app.api_as("viewer").await;
    let operator = app.api_as("operator").await;
    let listed = viewer.variables(id).await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(listed.body[0]["name"], "MODE");
    assert_eq!(listed.body[0]["value"], "slow");
    for client in [&viewer, &operator] {
        let refused = client.put_variable(id, "X", "y").await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
        assert!(refused.message().contains("admin role"), "{}", refused.text);
        assert_eq!(
            client.delete_variable(id, "MODE").await.status,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            client.import_variables(id, "A=b").await.status,
            StatusCode::FORBIDDEN
        );
    }
    // Bad names, empty values, another kind's name.
    let bad = app.api.put_variable(id, "BAD-NAME", "x").await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        bad.message().contains("not a valid variable name"),
        "{}",
        bad.text
    );
    assert_eq!(
        app.api.put_variable(id, "EMPTY", "").await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    app.api.put_secret(id, "API_KEY", "sk-0123456789").await;
    let taken = app.api.put_variable(id, "API_KEY", "plain").await;
    assert_eq!(taken.status, StatusCode::CONFLICT);
    assert!(
        taken.message().contains("already a secret"),
        "{}",
        taken.text
    );
    let taken = app.api.put_secret(id, "MODE", "secret-mode").await;
    assert_eq!(taken.status, StatusCode::CONFLICT);
    // The variables import: every line a variable, short or long.
    let report = app.api.import_variables(id, "A=1\nB=a-long-value\n").await;
    assert_eq!(report.status, StatusCode::OK, "{}", report.text);
    assert_eq!(report.body["imported"][1]["kind"], "variable");
    assert_eq!(
        app.api.variables(id).await.body.as_array().unwrap().len(),
        3
    );
    assert_eq!(
        app.api.delete_variable(id, "MODE").await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.api.delete_variable(id, "MODE").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(app.api.variables(404).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn text_that_is_not_dotenv_imports_nothing() {
    let app = TestApp::spawn().await;
    let id = app.project("p").await;
    let reply = app.api.import_secrets(id, r#"{"API_KEY": "abc"}"#).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reply.code(), "not_dotenv");
    assert_eq!(app.api.secrets(id).await.body, json!([]));
    assert_eq!(
        app.api.import_secrets(404, "A=1").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn deleting_a_project_deletes_its_secrets_and_settings() {
    let app = TestApp::spawn().await;
    let id = app.project("p").await;
    app.api.put_secret(id, "A", "1").await;
    app.api.put_settings(id, &json!({"auto_merge": true})).await;
    app.api.delete_project(id).await;
    let project = slipway_core::ProjectId(id);
    assert!(app.store.secret_values(project).await.unwrap().is_empty());
    assert_eq!(app.api.secrets(id).await.status, StatusCode::NOT_FOUND);
    assert_eq!(app.api.settings(id).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn tokens_are_created_used_and_revoked() {
    let app = TestApp::spawn().await;
    let created = app.api.create_token("deploy bot", "operator").await;
    assert_eq!(created.status, StatusCode::CREATED);
    let token = created.body["token"].as_str().unwrap().to_owned();
    let token_id = created.body["id"].as_i64().unwrap();
    let listed = app.api.tokens().await;
    assert!(!listed.text.contains(&token), "token plaintext listed");
    assert_eq!(listed.body[0]["role"], "operator");

    let bot = app.api_with(Some(&token));
    assert_eq!(bot.list_projects().await.status, StatusCode::OK);
    assert_eq!(
        app.api.revoke_token(token_id).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(bot.list_projects().await.status, StatusCode::UNAUTHORIZED);

    let bad_role = app.api.create_token("x", "root").await;
    assert_eq!(bad_role.status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn health_ready_metrics_and_request_ids() {
    let app = TestApp::spawn().await;
    let anonymous = app.api_with(None);
    assert_eq!(anonymous.health().await.body, json!({"status": "ok"}));
    assert_eq!(anonymous.ready().await.status, StatusCode::OK);
    let reply = app.api.list_projects().await;
    assert_eq!(reply.headers["x-request-id"].len(), 16);
    let echoed = reqwest::Client::new()
        .get(format!("{}/health", app.base_url))
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.headers()["x-request-id"], "trace-me-42");

    let metrics = anonymous.metrics().await.text;
    assert!(
        metrics.contains(
            r#"slipway_http_requests_total{method="GET",route="/api/v1/projects",status="200"} 1"#
        ),
        "{metrics}"
    );
    assert!(metrics.contains("slipway_http_request_duration_seconds_bucket"));
}

#[tokio::test]
async fn the_openapi_document_describes_the_schemas() {
    let app = TestApp::spawn().await;
    let document: Value = app.api.openapi().await.body;
    for schema in [
        "Project",
        "ProjectDraft",
        "Settings",
        "PipelineConfig",
        "ErrorBody",
    ] {
        assert!(
            document["components"]["schemas"].get(schema).is_some(),
            "missing schema {schema}"
        );
    }
    assert_eq!(
        document["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
}

mod validations {
    use super::*;
    use slipway_testkit::{fixture_repo, PYTHON_APP, PYTHON_APP_TEST};

    async fn project_with_repo(app: &TestApp, files: &[(&str, &str)]) -> (i64, std::path::PathBuf) {
        let repo = app.data_dir.path().join("fixture-repo");
        fixture_repo(&repo, files);
        let created = app
            .api
            .create_project(&json!({"name": "app", "repo": repo.display().to_string()}))
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
        (created.body["id"].as_i64().unwrap(), repo)
    }

    fn pipeline() -> String {
        format!(
            "[service]\nstart = \"python3 app.py\"\nhealth_path = \"/health\"\n[test]\ncommands = [{PYTHON_APP_TEST:?}]\n"
        )
    }

    #[tokio::test]
    async fn a_validation_started_over_http_runs_and_reports_its_steps_and_logs() {
        // The workers wait for the test: what the answer says of a queued validation holds.
        let app = TestApp::spawn_held().await;
        let (project, _) = project_with_repo(
            &app,
            &[("app.py", PYTHON_APP), (".slipway.toml", &pipeline())],
        )
        .await;
        let operator = app.api_as("operator").await;
        let started = operator
            .start_validation(project, &json!({"branch": "main"}))
            .await;
        assert_eq!(started.status, StatusCode::CREATED, "{}", started.text);
        assert_eq!(started.body["status"], "queued");
        let id = started.body["id"].as_i64().unwrap();
        let queued = app.api.validation(id).await;
        assert_eq!(queued.body["status"], "queued", "{}", queued.text);

        app.release_workers();
        let done = app.api.finished_validation(id).await;
        assert_eq!(done["status"], "passed", "{done}");
        // What the lists show: who started it, and the head commit's title and author.
        assert!(
            done["started_by"].as_str().unwrap().starts_with("token "),
            "{done}"
        );
        assert_eq!(done["commit_title"], "fixture", "{done}");
        assert_eq!(done["commit_author"], "Test", "{done}");
        let steps: Vec<(&str, &str)> = done["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| (s["name"].as_str().unwrap(), s["status"].as_str().unwrap()))
            .collect();
        assert_eq!(
            steps,
            [
                ("checkout", "passed"),
                ("setup", "skipped"),
                ("build", "skipped"),
                ("deploy", "passed"),
                ("test", "passed"),
                ("ui", "skipped"),
                ("analysis", "skipped"),
                ("judge", "skipped"),
                ("merge", "skipped")
            ]
        );

        let all = app.api.validation_logs(id, "").await;
        let lines = all.body["lines"].as_array().unwrap();
        assert!(lines
            .windows(2)
            .all(|w| w[0]["seq"].as_i64() < w[1]["seq"].as_i64()));
        let test_only = app.api.validation_logs(id, "step=test").await;
        assert!(test_only.body["lines"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["step"] == "test"));
        assert!(test_only.text.contains("test passed"));
        let after = all.body["lines"][2]["seq"].as_i64().unwrap();
        let rest = app.api.validation_logs(id, &format!("after={after}")).await;
        assert_eq!(rest.body["lines"][0]["seq"].as_i64().unwrap(), after + 1);
        assert_eq!(
            app.api.validation_logs(id, "step=nope").await.code(),
            "invalid_query"
        );
        assert_eq!(
            app.api.validation_logs(id, "colour=red").await.status,
            StatusCode::BAD_REQUEST
        );

        let listed = app.api.validations(project).await;
        assert_eq!(listed.body[0]["id"], id);

        let retried = operator.retry_validation(id).await;
        assert_eq!(retried.status, StatusCode::CREATED);
        assert_ne!(retried.body["id"], id);
        assert_eq!(retried.body["sha"], done["sha"]);
        let again = app
            .api
            .finished_validation(retried.body["id"].as_i64().unwrap())
            .await;
        assert_eq!(again["status"], "passed");
    }

    /// Five finished validations (1, 3 and 5 failed; 4 and 5 of branch `dev`), recorded
    /// without running.
    async fn five_finished(app: &TestApp, project: i64) {
        use slipway_core::validation::ValidationStatus;
        for n in 1..=5 {
            let new = slipway_store::NewValidation {
                project: slipway_core::ProjectId(project),
                source: "/nowhere".into(),
                branch: Some(if n >= 4 { "dev" } else { "main" }.into()),
                pr: None,
                sha: format!("{n}").repeat(40),
                base: None,
                setup_trial: false,
                config_file: None,
                plan: Vec::new(),
                started_by: None,
            };
            let status = if n % 2 == 1 {
                ValidationStatus::Failed
            } else {
                ValidationStatus::Passed
            };
            app.recorded_finished(&new, status).await;
        }
    }

    fn ids(reply: &slipway_testkit::Reply) -> Vec<i64> {
        reply
            .body
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["id"].as_i64().unwrap())
            .collect()
    }

    #[tokio::test]
    async fn lists_come_in_pages_by_cursor_and_filter_by_status_and_branch() {
        // No worker runs the validations recorded as finished.
        let app = TestApp::spawn_held().await;
        let (project, _) = project_with_repo(
            &app,
            &[(
                "README.md",
                "x
",
            )],
        )
        .await;
        five_finished(&app, project).await;
        let path = format!("/api/v1/projects/{project}/validations");
        let get = |query: String| {
            let (api, path) = (app.api.clone(), path.clone());
            async move {
                api.send(Method::GET, &format!("{path}{query}"), Body::None)
                    .await
            }
        };
        let first = get("?limit=2".into()).await;
        assert_eq!(ids(&first), [5, 4]);
        let cursor = first.headers["x-next-cursor"].to_str().unwrap().to_owned();
        let link = first.headers["link"].to_str().unwrap();
        assert_eq!(
            link,
            format!("<{path}?limit=2&cursor={cursor}>; rel=\"next\"")
        );
        let second = get(format!("?limit=2&cursor={cursor}")).await;
        assert_eq!(ids(&second), [3, 2]);
        let cursor = second.headers["x-next-cursor"].to_str().unwrap().to_owned();
        let last = get(format!("?limit=2&cursor={cursor}")).await;
        assert_eq!(ids(&last), [1]);
        assert!(
            last.headers.get("x-next-cursor").is_none(),
            "no page after the last"
        );

        assert_eq!(ids(&get("?status=failed".into()).await), [5, 3, 1]);
        assert_eq!(ids(&get("?branch=dev".into()).await), [5, 4]);
        let failed_main = get("?status=failed&branch=main&limit=1".into()).await;
        assert_eq!(ids(&failed_main), [3]);
        let link = failed_main.headers["link"].to_str().unwrap();
        assert!(
            link.contains("status=failed&branch=main&limit=1&cursor=3"),
            "{link}"
        );

        let bad = get("?status=green".into()).await;
        assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            bad.message().contains("queued, running, passed"),
            "{}",
            bad.text
        );
        let bad = get("?cursor=abc".into()).await;
        assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(bad.message().contains("X-Next-Cursor"), "{}", bad.text);
        let runs = app
            .api
            .send(
                Method::GET,
                &format!("/api/v1/projects/{project}/runs?cursor=-1"),
                Body::None,
            )
            .await;
        assert_eq!(
            runs.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            runs.text
        );
    }

    #[tokio::test]
    async fn a_running_validation_is_cancelled_over_http() {
        let app = TestApp::spawn().await;
        let (project, _) = project_with_repo(
            &app,
            &[(".slipway.toml", "[test]\ncommands = [\"sleep 8001.5\"]\n")],
        )
        .await;
        let id = app
            .api
            .start_validation(project, &json!({"branch": "main"}))
            .await
            .body["id"]
            .as_i64()
            .unwrap();
        for _ in 0..200 {
            if app.api.validation(id).await.body["steps"][4]["status"] == "running" {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        let cancelled = app.api.cancel_validation(id).await;
        assert_eq!(cancelled.status, StatusCode::ACCEPTED);
        let done = app.api.finished_validation(id).await;
        assert_eq!(done["status"], "cancelled");
        assert_eq!(done["steps"][4]["status"], "cancelled");
    }

    #[tokio::test]
    async fn bad_validation_requests_are_refused() {
        let app = TestApp::spawn().await;
        let (project, _) = project_with_repo(&app, &[("README", "x")]).await;
        let cases = [
            (json!({}), StatusCode::UNPROCESSABLE_ENTITY, "exactly one"),
            (
                json!({"branch": "main", "sha": "abc"}),
                StatusCode::UNPROCESSABLE_ENTITY,
                "exactly one",
            ),
            (
                json!({"branch": "missing"}),
                StatusCode::UNPROCESSABLE_ENTITY,
                "does not exist",
            ),
            (
                json!({"branch": "a b"}),
                StatusCode::UNPROCESSABLE_ENTITY,
                "branch",
            ),
            (
                json!({"sha": "0123456789"}),
                StatusCode::UNPROCESSABLE_ENTITY,
                "not a commit",
            ),
            (
                json!({"pr": 4}),
                StatusCode::UNPROCESSABLE_ENTITY,
                "no pull request #4",
            ),
            (
                json!({"ref": "main"}),
                StatusCode::UNPROCESSABLE_ENTITY,
                "unknown field",
            ),
        ];
        for (body, status, needle) in cases {
            let reply = app.api.start_validation(project, &body).await;
            assert_eq!(reply.status, status, "{body}: {}", reply.text);
            assert!(reply.message().contains(needle), "{body}: {}", reply.text);
        }
        let viewer = app.api_as("viewer").await;
        assert_eq!(
            viewer
                .start_validation(project, &json!({"branch": "main"}))
                .await
                .status,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            app.api
                .start_validation(999, &json!({"branch": "main"}))
                .await
                .status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(app.api.validation(999).await.status, StatusCode::NOT_FOUND);
        assert_eq!(app.api.validations(project).await.body, json!([]));
    }
}

#[tokio::test]
async fn a_test_passing_only_on_a_retry_is_flaky_in_the_api_and_the_metrics() {
    let app = TestApp::spawn().await;
    let repo = app.data_dir.path().join("flaky");
    let flaky = "if [ -f .tried ]; then true; else touch .tried; false; fi";
    slipway_testkit::fixture_repo(
        &repo,
        &[(
            ".slipway.toml",
            &format!("[test]\ncommands = [{flaky:?}]\nretries = 1\n"),
        )],
    );
    let project = app
        .api
        .create_project(&json!({"name": "flaky", "repo": repo.display().to_string()}))
        .await
        .body["id"]
        .as_i64()
        .unwrap();
    let done = app.api.validated(project, &json!({"branch": "main"})).await;
    assert_eq!(done["status"], "passed", "{done}");
    assert_eq!(done["steps"][4]["flaky"], true, "{done}");
    let metrics = app.api.metrics().await.text;
    assert!(metrics.contains("slipway_flaky_steps_total 1"), "{metrics}");
}

#[tokio::test]
async fn a_settings_patch_changes_only_the_fields_sent() {
    let app = TestApp::spawn().await;
    let project = app.project("patched").await;
    let full = json!({"repository_rules": "Use tabs.", "planning_statement": "Plan first.",
                      "auto_merge": true, "merge_method": "squash"});
    assert_eq!(
        app.api.put_settings(project, &full).await.status,
        StatusCode::OK
    );
    let path = format!("/api/v1/projects/{project}/settings");
    let agent = json!({"agent": {"kind": "command", "command": "sh agent.sh", "plan_mode": false}});
    let patched = app.api.send(Method::PATCH, &path, Body::Json(&agent)).await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    let settings = app.api.settings(project).await.body;
    assert_eq!(settings["agent"]["command"], "sh agent.sh");
    assert_eq!(settings["repository_rules"], "Use tabs.");
    assert_eq!(settings["planning_statement"], "Plan first.");
    assert_eq!(settings["auto_merge"], true);
    assert_eq!(settings["merge_method"], "squash");
    // null: back to the default; nested objects merge.
    let reset = json!({"auto_merge": null, "setup_commands": {"commands": ["npm ci"]}});
    let patched = app.api.send(Method::PATCH, &path, Body::Json(&reset)).await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    assert_eq!(patched.body["auto_merge"], false);
    assert_eq!(
        patched.body["setup_commands"]["commands"],
        json!(["npm ci"])
    );
    assert_eq!(patched.body["repository_rules"], "Use tabs.");
    // Bad fields are refused and nothing changes.
    let bad = json!({"auto_merge": "yes"});
    let refused = app.api.send(Method::PATCH, &path, Body::Json(&bad)).await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        refused.text
    );
    let unknown = json!({"colour": "blue"});
    let refused = app
        .api
        .send(Method::PATCH, &path, Body::Json(&unknown))
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        app.api.settings(project).await.body["setup_commands"]["commands"],
        json!(["npm ci"])
    );
}

#[tokio::test]
async fn every_operation_of_the_openapi_document_is_in_the_http_api_guide() {
    let guide = include_str!("../../../docs/http-api.md");
    let app = TestApp::spawn().await;
    let document = app.api.openapi().await.body;
    let mut missing = Vec::new();
    let paths = document["paths"].as_object().unwrap();
    assert!(paths.len() > 20, "{document}");
    for (path, item) in paths {
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_some() {
                let row = format!("| {} | `{path}` |", method.to_uppercase());
                if !guide.contains(&row) {
                    missing.push(row);
                }
            }
        }
    }
    assert!(missing.is_empty(), "not in docs/http-api.md: {missing:?}");
}
