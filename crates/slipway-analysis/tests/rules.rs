//! Each rule in each language, on base and head contents as git would hand them over.

use slipway_analysis::{analyse, Change, Config, Finding, Severity, Side};

fn change(path: &str, base: Option<&str>, head: Option<&str>) -> Change {
    let side = |text: Option<&str>| match text {
        Some(text) => Side::Content(text.as_bytes().to_vec()),
        None => Side::Absent,
    };
    Change {
        path: path.into(),
        base: side(base),
        head: side(head),
    }
}

fn findings(changes: &[Change], config: &Config) -> Vec<Finding> {
    analyse(changes, config).findings
}

fn rule_of(found: &[Finding], rule: &str) -> Vec<Finding> {
    found.iter().filter(|f| f.rule == rule).cloned().collect()
}

fn low_limit() -> Config {
    Config {
        max_function_complexity: 3,
        ..Config::default()
    }
}

/// A complex function in each language (complexity 5) and its simpler version (2).
const COMPLEX: [(&str, &str, &str); 6] = [
    (
        "app.py",
        "def f(a, b):\n    if a and b:\n        return 1\n    for x in a:\n        if x:\n            return x\n    return 0\n",
        "def f(a, b):\n    if a:\n        return 1\n    return 0\n",
    ),
    (
        "app.js",
        "function f(a, b) {\n  if (a && b) { return 1; }\n  for (const x of a) { if (x) { return x; } }\n  return 0;\n}\n",
        "function f(a, b) {\n  if (a) { return 1; }\n  return 0;\n}\n",
    ),
    (
        "app.ts",
        "export const f = (a: number[], b: boolean): number => {\n  if (a.length && b) { return 1; }\n  for (const x of a) { if (x) { return x; } }\n  return 0;\n};\n",
        "export const f = (a: number[], b: boolean): number => {\n  if (b) { return 1; }\n  return 0;\n};\n",
    ),
    (
        "view.tsx",
        "export function F(p: { a: boolean; b: boolean }) {\n  if (p.a || p.b) { return <div/>; }\n  while (p.a) { if (p.b) { break; } }\n  return <span/>;\n}\n",
        "export function F(p: { a: boolean }) {\n  if (p.a) { return <div/>; }\n  return <span/>;\n}\n",
    ),
    (
        "lib.rs",
        "fn f(a: &[u8], b: bool) -> u8 {\n    if !a.is_empty() && b { return 1; }\n    for x in a { if *x > 0 { return *x; } }\n    0\n}\n",
        "fn f(a: &[u8], b: bool) -> u8 {\n    if b { return 1; }\n    a.len() as u8\n}\n",
    ),
    (
        "main.go",
        "package main\n\nfunc f(a []int, b bool) int {\n\tif len(a) > 0 && b {\n\t\treturn 1\n\t}\n\tfor _, x := range a {\n\t\tif x > 0 {\n\t\t\treturn x\n\t\t}\n\t}\n\treturn 0\n}\n",
        "package main\n\nfunc f(a []int, b bool) int {\n\tif b {\n\t\treturn 1\n\t}\n\treturn 0\n}\n",
    ),
];

#[test]
fn a_new_complex_function_fails_in_every_language() {
    for (path, complex, _) in COMPLEX {
        let found = findings(&[change(path, None, Some(complex))], &low_limit());
        let complexity = rule_of(&found, "complexity");
        assert_eq!(complexity.len(), 1, "{path}: {found:?}");
        assert_eq!(complexity[0].severity, Severity::Error);
        assert_eq!(
            complexity[0].line,
            Some(if path == "main.go" { 3 } else { 1 })
        );
        assert!(
            complexity[0].message.contains("complexity 5 (limit 3)"),
            "{path}: {}",
            complexity[0].message
        );
    }
}

#[test]
fn a_function_made_simpler_or_left_alone_never_fails() {
    for (path, complex, simple) in COMPLEX {
        let simpler = findings(&[change(path, Some(complex), Some(simple))], &low_limit());
        assert!(
            rule_of(&simpler, "complexity").is_empty(),
            "{path}: {simpler:?}"
        );
        // Unchanged but over the limit, beside a new line elsewhere in the file.
        let touched = format!("{complex}\n// x\n").replace("// x", comment(path));
        let untouched = findings(&[change(path, Some(complex), Some(&touched))], &low_limit());
        assert!(
            rule_of(&untouched, "complexity").is_empty(),
            "{path}: {untouched:?}"
        );
    }
}

fn comment(path: &str) -> &'static str {
    if path.ends_with(".py") {
        "# note"
    } else {
        "// note"
    }
}

#[test]
fn a_function_made_more_complex_reports_old_and_new_values() {
    let (path, complex, simple) = COMPLEX[0];
    let config = Config {
        max_function_complexity: 4,
        ..Config::default()
    };
    let found = findings(&[change(path, Some(simple), Some(complex))], &config);
    let complexity = rule_of(&found, "complexity");
    assert_eq!(complexity.len(), 1, "{found:?}");
    assert!(
        complexity[0]
            .message
            .contains("complexity 5 (was 2; limit 4)"),
        "{:?}",
        complexity[0]
    );
}

#[test]
fn function_length_is_off_unless_set_and_then_holds_new_and_grown_functions() {
    let (path, complex, _) = COMPLEX[4];
    let found = findings(&[change(path, None, Some(complex))], &Config::default());
    assert!(rule_of(&found, "function-length").is_empty());
    let config = Config {
        max_function_lines: Some(3),
        ..Config::default()
    };
    let found = findings(&[change(path, None, Some(complex))], &config);
    let long = rule_of(&found, "function-length");
    assert_eq!(long.len(), 1, "{found:?}");
    assert!(
        long[0].message.contains("5 lines long (limit 3)"),
        "{:?}",
        long[0]
    );
}

#[test]
fn a_pasted_github_token_fails_and_is_masked_everywhere_in_the_finding() {
    let token = format!("ghp_{}", "Zx9Qw8Er7Ty6Ui5Op4As3Df2Gh1Jk0LmNbVc");
    let yaml = format!("deploy:\n  token: {token}\n");
    let config = Config::default();
    let report = analyse(
        &[change("config/deploy.yml", Some("deploy:\n"), Some(&yaml))],
        &config,
    );
    let leaks = rule_of(&report.findings, "credentials");
    assert_eq!(leaks.len(), 1, "{:?}", report.findings);
    assert_eq!(leaks[0].line, Some(2));
    assert_eq!(leaks[0].code.as_deref(), Some("token: [masked]"));
    let json = serde_json::to_string(&report).unwrap();
    assert!(!json.contains(&token[4..]), "{json}");
    // Only added lines count, and an allowlisted fixture is not a leak.
    let kept = findings(
        &[change(
            "config/deploy.yml",
            Some(&yaml),
            Some(&format!("{yaml}x: 1\n")),
        )],
        &config,
    );
    assert!(rule_of(&kept, "credentials").is_empty(), "{kept:?}");
    let allowed = Config {
        allow: vec!["tests/fixtures/**".into()],
        ..Config::default()
    };
    let fixture = findings(
        &[change("tests/fixtures/deploy.yml", None, Some(&yaml))],
        &allowed,
    );
    assert!(rule_of(&fixture, "credentials").is_empty(), "{fixture:?}");
    let elsewhere = findings(&[change("src/deploy.yml", None, Some(&yaml))], &allowed);
    assert_eq!(rule_of(&elsewhere, "credentials").len(), 1);
}

#[test]
fn a_project_secret_in_any_finding_is_masked() {
    let config = Config {
        secrets: vec!["s3cret-value-42".into()],
        ..Config::default()
    };
    let head = "function f() {\n  console.log(\"s3cret-value-42\");\n}\n";
    let found = findings(&[change("src/a.js", None, Some(head))], &config);
    assert_eq!(rule_of(&found, "credentials").len(), 1, "{found:?}");
    let debug = rule_of(&found, "debug-leftovers");
    assert_eq!(debug.len(), 1, "{found:?}");
    assert_eq!(debug[0].severity, Severity::Warning);
    assert_eq!(debug[0].code.as_deref(), Some("console.log(\"[masked]\");"));
}

#[test]
fn debug_leftovers_are_warnings_in_code_and_ignored_in_tests() {
    let cases = [
        ("src/a.py", "def f():\n    print(1)\n    breakpoint()\n", 2),
        ("src/a.rs", "fn f() { dbg!(1); }\n", 1),
        ("src/a.go", "package a\n\nfunc f() { fmt.Println(1) }\n", 1),
        ("src/a.ts", "function f() {\n  debugger;\n}\n", 1),
    ];
    for (path, head, count) in cases {
        let found = findings(&[change(path, None, Some(head))], &Config::default());
        assert_eq!(
            rule_of(&found, "debug-leftovers").len(),
            count,
            "{path}: {found:?}"
        );
        let test_path = path.replace("src/", "tests/");
        let found = findings(&[change(&test_path, None, Some(head))], &Config::default());
        assert!(rule_of(&found, "debug-leftovers").is_empty(), "{test_path}");
    }
}
