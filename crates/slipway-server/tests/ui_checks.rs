//! The ui step with real Chromium, started in the validation's sandbox, against a fixture web
//! app the pipeline's `[service]` starts: each check's verdict and its evidence.

use reqwest::Method;
use serde_json::{json, Value};
use slipway_testkit::{fixture_repo, Body, TestApp};

/// A small web app: a page with a login form, one with a JavaScript error, one whose API
/// call answers 500, one that loads a script from another host, and one that never settles.
const APP: &str = r#"import http.server, os, time
PAGES = {
    "/": "<title>Todos</title><h1>Todos</h1><a id='login' href='/login'>Log in</a>",
    "/login": "<title>Log in</title><form action='/welcome' method='get'><input id='user' name='user'><input type='submit' id='go' value='Go'></form>",
    "/jserror": "<title>Broken</title><p>Broken page</p><script>console.error('widget failed'); undefinedFunction();</script>",
    "/apifail": "<title>Api</title><p id='p'>loading</p><script>fetch('/api/data').then(r => document.getElementById('p').textContent = 'status ' + r.status)</script>",
    "/external": "<title>External</title><p>ads</p><script src='http://tracker.example.com/t.js'></script>",
    "/slow": "<title>Slow</title><p>slow</p><img src='/never'>",
}
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        path = self.path.split("?")[0]
        if path == "/never":
            time.sleep(600)
        if path == "/welcome":
            user = self.path.split("user=")[-1]
            body, status = "<title>Welcome</title><h1>Welcome, %s</h1>" % user, 200
        elif path == "/api/data":
            body, status = "{}", 500
        elif path in PAGES:
            body, status = PAGES[path], 200
        else:
            body, status = "not found", 404
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html" if status != 500 else "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"#;

const PIPELINE: &str = r##"[service]
start = "python3 app.py"
[ui]
viewports = ["1280x800", "390x844"]
timeout_secs = 60
[[ui.checks]]
name = "log in"
path = "/"
steps = [
  { click = "#login" },
  { wait_for = "#user" },
  { fill = "#user", text = "ada" },
  { click = "#go" },
  { wait_for = "text=Welcome" },
]
expect_text = "Welcome, ada"
expect_title = "Welcome"
expect_url = "/welcome?user=ada"
expect_status = 200
[[ui.checks]]
name = "js error"
path = "/jserror"
expect_text = "Broken page"
[[ui.checks]]
name = "api fails"
path = "/apifail"
steps = [{ wait_for = "text=status" }]
[[ui.checks]]
name = "external script"
path = "/external"
expect_text = "ads"
[[ui.checks]]
name = "missing text"
path = "/"
expect_selector = "#cart"
"##;

/// A project on a repository holding the fixture app and `pipeline` as its .slipway.toml.
async fn web_project(app: &TestApp, pipeline: &str) -> i64 {
    let repo = app.data_dir.path().join("web");
    fixture_repo(&repo, &[("app.py", APP), (".slipway.toml", pipeline)]);
    app.api
        .create_project(&json!({"name": "web", "repo": repo.display().to_string()}))
        .await
        .body["id"]
        .as_i64()
        .unwrap()
}

async fn evidence(app: &TestApp, id: i64) -> Vec<Value> {
    let list = app
        .api
        .send(
            Method::GET,
            &format!("/api/v1/validations/{id}/artifacts"),
            Body::None,
        )
        .await;
    assert_eq!(list.status, 200, "{}", list.text);
    let mut reports = Vec::new();
    for item in list.body.as_array().unwrap() {
        let name = item["name"].as_str().unwrap();
        if name.ends_with(".json") {
            let file = app
                .api
                .send(Method::GET, item["url"].as_str().unwrap(), Body::None)
                .await;
            assert_eq!(file.headers["content-type"], "application/json");
            reports.push(file.body);
        }
    }
    reports
}

fn report<'a>(reports: &'a [Value], check: &str, viewport: &str) -> &'a Value {
    reports
        .iter()
        .find(|r| r["check"] == check && r["viewport"] == viewport)
        .unwrap_or_else(|| panic!("no report of {check} at {viewport}: {reports:#?}"))
}

#[tokio::test]
async fn browser_checks_give_their_verdicts_with_the_evidence() {
    let app = TestApp::spawn().await;
    let project = web_project(&app, PIPELINE).await;
    let started = app
        .api
        .start_validation(project, &json!({"branch": "main"}))
        .await;
    let id = started.body["id"].as_i64().unwrap();
    let done = app.api.finished_validation(id).await;
    assert_eq!(done["status"], "failed", "{done}");
    let ui = &done["steps"][5];
    assert_eq!(ui["name"], "ui");
    assert_eq!(ui["status"], "failed");
    assert!(
        ui["detail"]
            .as_str()
            .unwrap()
            .contains("6 of 10 browser checks failed"),
        "{ui}"
    );

    let reports = evidence(&app, id).await;
    assert_eq!(reports.len(), 10, "5 checks in 2 viewports");
    for viewport in ["1280x800", "390x844"] {
        let login = report(&reports, "log in", viewport);
        assert_eq!(login["passed"], true, "{login:#}");
        assert_eq!(login["timeline"].as_array().unwrap().len(), 6);
        assert!(login["screenshot"].as_str().unwrap().ends_with(".png"));
    }
    let js = report(&reports, "js error", "1280x800");
    assert_eq!(js["passed"], false);
    let failure = js["failure"].as_str().unwrap();
    assert!(failure.contains("console error"), "{failure}");
    let console = js["console"].as_array().unwrap();
    assert!(console
        .iter()
        .any(|m| m["text"].as_str().unwrap().contains("widget failed")));
    assert!(
        console
            .iter()
            .any(|m| m["text"].as_str().unwrap().contains("undefinedFunction")),
        "{console:#?}"
    );

    let api = report(&reports, "api fails", "1280x800");
    assert_eq!(api["passed"], false);
    assert!(
        api["failure"]
            .as_str()
            .unwrap()
            .contains("/api/data answered 500"),
        "{api:#}"
    );

    let external = report(&reports, "external script", "1280x800");
    assert_eq!(
        external["passed"], true,
        "a blocked script does not fail the check: {external:#}"
    );
    let blocked = &external["requests"][0];
    assert_eq!(blocked["url"], "http://tracker.example.com/t.js");
    assert!(blocked["error"].as_str().unwrap().starts_with("blocked"));

    let missing = report(&reports, "missing text", "390x844");
    assert_eq!(
        missing["failure"],
        "expected an element matching #cart; there is none"
    );

    // The log carries the evidence the agent would be given.
    let log = app.api.validation_logs(id, "step=ui").await.text;
    assert!(log.contains("console error: widget failed"), "{log}");
    assert!(
        log.contains("request GET http://tracker.example.com/t.js"),
        "{log}"
    );

    // Screenshots are real PNGs, behind the same authentication.
    let shot = login_shot(&reports);
    let png = app
        .api
        .send(
            Method::GET,
            &format!("/api/v1/validations/{id}/artifacts/{shot}"),
            Body::None,
        )
        .await;
    assert_eq!(png.headers["content-type"], "image/png");
    // The whole page at the check's width: the PNG's own header says so.
    let stored = app.data_dir.path().join(format!("artifacts/{id}/{shot}"));
    let bytes = std::fs::read(&stored).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{}", stored.display());
    let dimension = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
    assert_eq!(dimension(16), 1280, "the viewport's width");
    assert!(dimension(20) >= 800, "at least the viewport's height");
    let anonymous = app.api_with(None);
    let refused = anonymous
        .send(
            Method::GET,
            &format!("/api/v1/validations/{id}/artifacts/{shot}"),
            Body::None,
        )
        .await;
    assert_eq!(refused.status, 401);
    let sneaky = app
        .api
        .send(
            Method::GET,
            &format!("/api/v1/validations/{id}/artifacts/..%2F..%2Fslipway.db"),
            Body::None,
        )
        .await;
    assert_eq!(sneaky.status, 404);
    assert_eq!(
        slipway_testkit::processes_with("--user-data-dir=/tmp/slipway-browser"),
        0,
        "no browser left"
    );
}

fn login_shot(reports: &[Value]) -> String {
    report(reports, "log in", "1280x800")["screenshot"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn without_chromium_a_configured_ui_step_is_an_error_never_a_pass() {
    let app = TestApp::spawn_with(|_| {}).await;
    let pipeline = "[service]\nstart = \"python3 app.py\"\n[test]\ncommands = [\"true\"]\n[[ui.checks]]\nname = \"home\"\npath = \"/\"\n";
    let project = web_project(&app, pipeline).await;
    // SAFETY (test): the variable is read by this process's engine only when the step runs.
    unsafe { std::env::set_var("SLIPWAY_CHROMIUM", "/nonexistent/chromium") };
    let done = app.api.validated(project, &json!({"branch": "main"})).await;
    unsafe { std::env::remove_var("SLIPWAY_CHROMIUM") };
    assert_eq!(done["status"], "error", "{done}");
    let ui = &done["steps"][5];
    assert_eq!(ui["status"], "error");
    assert!(
        ui["detail"]
            .as_str()
            .unwrap()
            .contains("apt-get install chromium"),
        "{ui}"
    );
}

#[tokio::test]
async fn cancelling_mid_check_leaves_no_browser_behind() {
    let app = TestApp::spawn().await;
    let pipeline = "[service]\nstart = \"python3 app.py\"\n[ui]\ntimeout_secs = 120\n[[ui.checks]]\nname = \"slow\"\npath = \"/slow\"\n";
    let project = web_project(&app, pipeline).await;
    let started = app
        .api
        .start_validation(project, &json!({"branch": "main"}))
        .await;
    let id = started.body["id"].as_i64().unwrap();
    for _ in 0..400 {
        let record = app.api.validation(id).await.body;
        if record["steps"][5]["status"] == "running"
            && slipway_testkit::processes_with("--user-data-dir=/tmp/slipway-browser") > 0
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        slipway_testkit::processes_with("--user-data-dir=/tmp/slipway-browser") > 0,
        "the browser runs"
    );
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    app.api.cancel_validation(id).await;
    let done = app.api.finished_validation(id).await;
    assert_eq!(done["status"], "cancelled", "{done}");
    assert_eq!(
        slipway_testkit::processes_with("--user-data-dir=/tmp/slipway-browser"),
        0,
        "no browser left"
    );
}

#[tokio::test]
async fn artifacts_older_than_the_retention_are_pruned() {
    let app = TestApp::spawn_with(|config| {
        config.artifact_retention = std::time::Duration::from_secs(3_600);
    })
    .await;
    let root = app.data_dir.path().join("artifacts");
    let (old, new) = (root.join("7"), root.join("8"));
    for dir in [&old, &new] {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("home-1280x800.png"), b"png").unwrap();
    }
    let two_hours_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(7_200);
    std::fs::File::open(&old)
        .unwrap()
        .set_modified(two_hours_ago)
        .unwrap();
    app.engine.prune_artifacts().await;
    assert!(!old.exists(), "older than the retention: removed");
    assert!(new.exists(), "recent: kept");
}

#[tokio::test]
async fn a_page_that_never_settles_fails_at_the_check_timeout() {
    let app = TestApp::spawn().await;
    let pipeline = "[service]\nstart = \"python3 app.py\"\n[ui]\ntimeout_secs = 3\n[[ui.checks]]\nname = \"never settles\"\npath = \"/slow\"\n";
    let project = web_project(&app, pipeline).await;
    let started = app
        .api
        .start_validation(project, &json!({"branch": "main"}))
        .await;
    let id = started.body["id"].as_i64().unwrap();
    let done = app.api.finished_validation(id).await;
    assert_eq!(done["status"], "failed", "{done}");
    let reports = evidence(&app, id).await;
    let slow = report(&reports, "never settles", "1280x800");
    assert!(
        slow["failure"].as_str().unwrap().contains("within 3 s"),
        "{slow:#}"
    );
    assert!(
        slow["screenshot"].as_str().is_some(),
        "a screenshot at the failure"
    );
}

/// The browser starts with the deploy step, so it boots while the service starts and the
/// tests run; when a step before the ui step fails, it is stopped with the rest.
#[tokio::test]
async fn the_browser_starts_while_the_tests_run_and_stops_when_an_earlier_step_fails() {
    let app = TestApp::spawn().await;
    // The test step waits until something besides the service listens in the cell (the
    // browser's DevTools; each command has its own PID namespace, so it cannot see the
    // process), at most 20 s, then passes or fails.
    let test = "python3 -c 'import os,sys,time\nfor _ in range(200):\n    for l in open(\"/proc/net/tcp\").readlines()[1:]:\n        f = l.split()\n        if f[3] == \"0A\" and int(f[1].split(\":\")[1], 16) != int(os.environ[\"PORT\"]): sys.exit($FAIL)\n    time.sleep(0.1)\nsys.exit(7)'";
    for (fail, expected) in [("0", "passed"), ("1", "failed")] {
        let pipeline = format!(
            "[service]\nstart = \"python3 app.py\"\n[test]\ncommands = [{:?}]\n\
             [[ui.checks]]\nname = \"home\"\npath = \"/\"\nexpect_text = \"Todos\"\n",
            test.replace("$FAIL", fail)
        );
        let project = web_project(&app, &pipeline).await;
        let done = app.api.validated(project, &json!({"branch": "main"})).await;
        assert_eq!(done["status"], expected, "{done}");
        // Exit 7 would mean the test step never saw the browser.
        let test_step = &done["steps"][4];
        assert_eq!(test_step["name"], "test");
        assert_eq!(test_step["status"], expected, "{done}");
        assert_ne!(
            test_step["exit_code"], 7,
            "the browser ran during the tests: {done}"
        );
        assert_eq!(
            slipway_testkit::processes_with("--user-data-dir=/tmp/slipway-browser"),
            0,
            "no browser left"
        );
        app.api.delete_project(project).await;
    }
}
