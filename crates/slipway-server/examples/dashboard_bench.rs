//! Dashboard benchmarks (run by `bench/dashboard.sh`): server time of the projects page (100
//! projects) and of a project page with 1,000 validations (also filtered, and a later page);
//! DOMContentLoaded in headless Chromium; one event fanned out to 1,000 WebSocket subscribers.

use serde_json::json;
use slipway_core::validation::{plan, StepName, ValidationStatus};
use slipway_core::{PipelineConfig, ProjectId};
use slipway_store::NewValidation;
use slipway_testkit::events::EventStream;
use slipway_testkit::{fixture_repo, TestApp, ADMIN_TOKEN};
use std::time::{Duration, Instant};

fn percentile(samples: &mut [f64], p: f64) -> f64 {
    samples.sort_by(|a, b| a.total_cmp(b));
    samples[((samples.len() as f64 - 1.0) * p).round() as usize]
}

fn report(what: &str, samples: &mut [f64]) {
    let (p50, p99) = (percentile(samples, 0.5), percentile(samples, 0.99));
    println!(
        "{what}: p50 {p50:.2} ms, p99 {p99:.2} ms ({} samples)",
        samples.len()
    );
}

#[tokio::main]
async fn main() {
    let app = TestApp::spawn().await;
    let repo = app.data_dir.path().join("repo");
    let sha = fixture_repo(&repo, &[("README.md", "bench\n")]);
    for n in 0..100 {
        let reply = app
            .api
            .create_project(
                &json!({"name": format!("project-{n:03}"), "repo": repo.display().to_string()}),
            )
            .await;
        assert_eq!(reply.status, 201, "{}", reply.text);
    }
    let steps = plan(&PipelineConfig::default(), false);
    // 1,000 validations in project 1, five in each of the 99 others.
    for n in 0..1495 {
        let project = ProjectId(if n < 1000 { 1 } else { 2 + (n - 1000) % 99 });
        let new = NewValidation {
            base: None,
            setup_trial: false,
            config_file: None,
            project,
            source: repo.display().to_string(),
            branch: Some("main".into()),
            pr: None,
            sha: sha.clone(),
            plan: steps.clone(),
            started_by: Some("bench".into()),
        };
        let status = if n % 4 == 0 {
            ValidationStatus::Failed
        } else {
            ValidationStatus::Passed
        };
        app.recorded_finished(&new, status).await;
    }
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let login = client
        .post(format!("{}/login", app.base_url))
        .form(&[("token", ADMIN_TOKEN)])
        .send()
        .await
        .unwrap();
    let cookie = login.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    for (what, path) in [
        ("GET / (100 project cards)", "/"),
        ("GET /projects/1 (its validations of 1,000)", "/projects/1"),
        (
            "GET /projects/1?status=failed&branch=main (filtered)",
            "/projects/1?status=failed&branch=main",
        ),
        (
            "GET /projects/1?cursor=500 (a later page)",
            "/projects/1?cursor=500",
        ),
    ] {
        let mut samples = Vec::new();
        for i in 0..220 {
            let start = Instant::now();
            let response = client
                .get(format!("{}{path}", app.base_url))
                .header("cookie", &cookie)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
            response.bytes().await.unwrap();
            if i >= 20 {
                samples.push(start.elapsed().as_secs_f64() * 1000.0);
            }
        }
        report(what, &mut samples);
    }

    // A validation with a 100,000-line log: its page renders the tail only.
    let long = app
        .store
        .create_validation(&NewValidation {
            base: None,
            setup_trial: false,
            config_file: None,
            project: ProjectId(1),
            source: repo.display().to_string(),
            branch: None,
            pr: None,
            sha: sha.clone(),
            plan: steps.clone(),
            started_by: Some("bench".into()),
        })
        .await
        .unwrap();
    app.engine.cancel(long.validation.id).await.unwrap();
    let mut seq = 0;
    for _ in 0..100 {
        let lines: Vec<(StepName, String)> = (0..1000)
            .map(|i| {
                (
                    StepName::Test,
                    format!("\u{1b}[32mok\u{1b}[0m test line {}", seq + i),
                )
            })
            .collect();
        seq = app
            .store
            .append_logs(long.validation.id, seq, &lines)
            .await
            .unwrap();
    }
    let long_path = format!("/validations/{}", long.validation.id);
    let mut samples = Vec::new();
    for _ in 0..50 {
        let start = Instant::now();
        let response = client
            .get(format!("{}{long_path}", app.base_url))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        response.bytes().await.unwrap();
        samples.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    report("GET a validation with a 100,000-line log", &mut samples);

    // DOMContentLoaded in headless Chromium (signed in by the browser itself).
    let browser = slipway_browser::Browser::launch().await.unwrap();
    let page = browser
        .open(&format!("{}/login", app.base_url))
        .await
        .unwrap();
    page.type_into("#token", ADMIN_TOKEN).await.unwrap();
    page.click_and_wait("button[type=submit]").await.unwrap();
    for (what, path) in [
        ("DOMContentLoaded /", "/"),
        ("DOMContentLoaded /projects/1", "/projects/1"),
        (
            "DOMContentLoaded of the 100,000-line validation",
            long_path.as_str(),
        ),
    ] {
        let mut samples = Vec::new();
        for _ in 0..20 {
            page.goto(&format!("{}{path}", app.base_url)).await.unwrap();
            let ms: f64 = page
                .eval("performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd")
                .await
                .unwrap();
            samples.push(ms);
        }
        report(what, &mut samples);
    }
    browser.close().await;

    // One event to 1,000 subscribers: the time from emitting it to each one receiving it.
    let mut clients = Vec::new();
    for _ in 0..1000 {
        let mut client = EventStream::connect(&app.base_url, Some(ADMIN_TOKEN), &[])
            .await
            .unwrap();
        client.subscribe(1, None).await;
        client.send(json!({"type": "ping"})).await;
        clients.push(client);
    }
    for client in &mut clients {
        assert_eq!(client.next().await["type"], "pong");
    }
    let mut samples = Vec::new();
    for round in 0..10 {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut waiting = Vec::new();
        for mut client in clients.drain(..) {
            let tx = tx.clone();
            waiting.push(tokio::spawn(async move {
                let event = client.next().await;
                tx.send((Instant::now(), event["round"].as_i64())).unwrap();
                client
            }));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let sent = Instant::now();
        app.store
            .emit_event(
                ProjectId(1),
                slipway_store::EventKind::PrNotification,
                &json!({"type": "pr_notification", "round": round}),
            )
            .await
            .unwrap();
        for handle in waiting {
            clients.push(handle.await.unwrap());
        }
        drop(tx);
        while let Some((at, r)) = rx.recv().await {
            assert_eq!(r, Some(round));
            samples.push(at.duration_since(sent).as_secs_f64() * 1000.0);
        }
    }
    report("one event to 1,000 WebSocket subscribers", &mut samples);
    let rss = std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmHWM"))
        .map(|l| l.split_whitespace().nth(1).unwrap_or("").to_owned())
        .unwrap_or_default();
    println!("peak RSS of server + 1,000 clients in one process: {rss} kB");
}
