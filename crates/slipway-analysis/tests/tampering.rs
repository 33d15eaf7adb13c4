//! Tests weakened to pass, in each language: deleted, skipped or focused, loosened.

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

fn tampering(changes: &[Change]) -> Vec<Finding> {
    analyse(changes, &Config::default())
        .findings
        .into_iter()
        .filter(|f| f.rule == "test-tampering")
        .collect()
}

const PY: &str =
    "def test_add():\n    assert add(1, 1) == 2\n\n\ndef test_sub():\n    assert sub(2, 1) == 1\n";
const JS: &str = "describe('math', () => {\n  it('adds', () => {\n    expect(add(1, 1)).toBe(2);\n  });\n  it('subtracts', () => {\n    expect(sub(2, 1)).toBe(1);\n  });\n});\n";
const RS: &str = "#[cfg(test)]\nmod tests {\n    #[test]\n    fn adds() {\n        assert_eq!(add(1, 1), 2);\n    }\n\n    #[test]\n    fn subtracts() {\n        assert_eq!(sub(2, 1), 1);\n    }\n}\n";
const GO: &str = "package m\n\nimport \"testing\"\n\nfunc TestAdd(t *testing.T) {\n\tif add(1, 1) != 2 {\n\t\tt.Fatal(\"add\")\n\t}\n}\n\nfunc TestSub(t *testing.T) {\n\tif sub(2, 1) != 1 {\n\t\tt.Fatal(\"sub\")\n\t}\n}\n";

/// Each language's test file, and the same file with its second test removed.
fn fixtures() -> Vec<(&'static str, &'static str, String)> {
    let cut = |text: &str, from: &str, to: Option<&str>| {
        let start = text.find(from).unwrap();
        let end = to
            .map(|t| start + text[start..].find(t).unwrap() + t.len())
            .unwrap_or(text.len());
        format!("{}{}", &text[..start], &text[end..])
    };
    vec![
        ("tests/test_math.py", PY, cut(PY, "\n\ndef test_sub", None)),
        (
            "src/math.test.js",
            JS,
            cut(JS, "  it('subtracts'", Some("});\n")),
        ),
        (
            "src/math.test.ts",
            JS,
            cut(JS, "  it('subtracts'", Some("});\n")),
        ),
        (
            "src/math.rs",
            RS,
            cut(RS, "\n    #[test]\n    fn subtracts", Some("}\n")),
        ),
        ("math_test.go", GO, cut(GO, "\nfunc TestSub", None)),
    ]
}

#[test]
fn a_deleted_test_is_found_in_every_language() {
    for (path, base, head) in fixtures() {
        let found = tampering(&[change(path, Some(base), Some(&head))]);
        assert_eq!(found.len(), 1, "{path}: {found:?}\n{head}");
        assert!(
            found[0].message.contains("was deleted"),
            "{path}: {found:?}"
        );
        assert_eq!(found[0].severity, Severity::Error);
    }
}

#[test]
fn a_deleted_test_file_is_found() {
    for (path, base, _) in fixtures() {
        let found = tampering(&[change(path, Some(base), None)]);
        assert_eq!(found.len(), 2, "{path}: {found:?}");
    }
    let found = tampering(&[change("spec/old_spec.rb", Some("it 'works'"), None)]);
    assert!(
        found.is_empty(),
        "not a test file by the conventions known: {found:?}"
    );
    let found = tampering(&[change("tests/data.txt", Some("x"), None)]);
    assert_eq!(found.len(), 1, "{found:?}");
}

#[test]
fn a_moved_or_renamed_test_is_not_deleted() {
    // Moved to another file, whole.
    let moved = tampering(&[
        change("tests/test_math.py", Some(PY), None),
        change("tests/test_arith.py", None, Some(PY)),
    ]);
    assert!(moved.is_empty(), "{moved:?}");
    // Renamed, same body.
    let renamed = PY.replace("def test_sub", "def test_subtraction");
    let found = tampering(&[change("tests/test_math.py", Some(PY), Some(&renamed))]);
    assert!(found.is_empty(), "{found:?}");
}

#[test]
fn a_test_that_only_gained_assertions_passes() {
    let more = PY.replace(
        "    assert add(1, 1) == 2\n",
        "    assert add(1, 1) == 2\n    assert add(2, 2) == 4\n",
    );
    assert!(tampering(&[change("tests/test_math.py", Some(PY), Some(&more))]).is_empty());
}

#[test]
fn a_loosened_or_emptied_assertion_is_found() {
    let cases = [
        (
            "tests/test_math.py",
            PY,
            PY.replace("assert add(1, 1) == 2", "assert add(1, 1)"),
            "checks less",
        ),
        (
            "tests/test_math.py",
            PY,
            PY.replace("assert add(1, 1) == 2", "pass"),
            "no longer asserts",
        ),
        (
            "src/math.test.js",
            JS,
            JS.replace(
                "expect(add(1, 1)).toBe(2);",
                "expect(add(1, 1)).toBeTruthy();",
            ),
            "checks less",
        ),
        (
            "src/math.test.js",
            JS,
            JS.replace("    expect(sub(2, 1)).toBe(1);\n", ""),
            "no longer asserts",
        ),
        (
            "src/math.rs",
            RS,
            RS.replace("assert_eq!(add(1, 1), 2);", "let _ = add(1, 1);"),
            "no longer asserts",
        ),
        (
            "math_test.go",
            GO,
            GO.replace(
                "\tif add(1, 1) != 2 {\n\t\tt.Fatal(\"add\")\n\t}\n",
                "\t_ = add(1, 1)\n",
            ),
            "no longer asserts",
        ),
    ];
    for (path, base, head, what) in cases {
        let found = tampering(&[change(path, Some(base), Some(&head))]);
        assert_eq!(found.len(), 1, "{path}: {found:?}");
        assert!(found[0].message.contains(what), "{path}: {found:?}");
    }
}

#[test]
fn new_skip_and_focus_markers_are_found() {
    let cases = [
        (
            "tests/test_math.py",
            PY,
            PY.replacen("def test_add", "@pytest.mark.skip\ndef test_add", 1),
        ),
        (
            "tests/test_math.py",
            PY,
            PY.replacen(
                "def test_add",
                "@pytest.mark.xfail(reason='x')\ndef test_add",
                1,
            ),
        ),
        (
            "tests/test_math.py",
            PY,
            PY.replacen(
                "    assert add",
                "    pytest.skip('later')\n    assert add",
                1,
            ),
        ),
        (
            "src/math.test.js",
            JS,
            JS.replacen("it('adds'", "it.only('adds'", 1),
        ),
        (
            "src/math.test.js",
            JS,
            JS.replacen("it('adds'", "it.skip('adds'", 1),
        ),
        (
            "src/math.test.ts",
            JS,
            JS.replacen("it('adds'", "xit('adds'", 1),
        ),
        (
            "src/math.test.ts",
            JS,
            JS.replacen("describe('math'", "describe.only('math'", 1),
        ),
        (
            "src/math.rs",
            RS,
            RS.replacen(
                "    #[test]\n    fn adds",
                "    #[test]\n    #[ignore]\n    fn adds",
                1,
            ),
        ),
        (
            "math_test.go",
            GO,
            GO.replacen("\tif add", "\tt.Skip(\"flaky\")\n\tif add", 1),
        ),
    ];
    for (path, base, head) in cases {
        let found = tampering(&[change(path, Some(base), Some(&head))]);
        assert_eq!(found.len(), 1, "{path}: {found:?}\n{head}");
        assert!(found[0].message.starts_with("adds `"), "{path}: {found:?}");
    }
}

#[test]
fn changes_to_test_and_ci_configuration_are_found() {
    for path in [
        ".slipway.toml",
        ".github/workflows/ci.yml",
        "jest.config.js",
        "tests/conftest.py",
        "pytest.ini",
    ] {
        let found = tampering(&[change(path, Some("a = 1\n"), Some("a = 2\n"))]);
        assert_eq!(found.len(), 1, "{path}: {found:?}");
    }
    let pyproject = "[tool.coverage.report]\nfail_under = 90\n";
    let lowered = pyproject.replace("90", "10");
    assert_eq!(
        tampering(&[change("pyproject.toml", Some(pyproject), Some(&lowered))]).len(),
        1
    );
    let unrelated = format!("{pyproject}[project]\nname = \"x\"\n");
    assert!(tampering(&[change("pyproject.toml", Some(pyproject), Some(&unrelated))]).is_empty());
}

#[test]
fn a_change_to_analysis_in_the_pull_requests_own_pipeline_is_tampering() {
    let base = "[test]\ncommands = [\"pytest\"]\n\n[analysis]\nmax_function_complexity = 10\n";
    let about_analysis = |found: &[Finding]| {
        found
            .iter()
            .filter(|f| f.message.starts_with("changes `[analysis]`"))
            .map(|f| (f.severity, f.line))
            .collect::<Vec<_>>()
    };
    let relaxed = base.replace("= 10", "= 1000");
    let removed = base.replace("[analysis]\nmax_function_complexity = 10\n", "");
    let off = format!("{base}protect_tests = false\n");
    for (what, head, line) in [
        ("relaxed", relaxed.as_str(), Some(4)),
        ("removed", removed.as_str(), None),
        ("turned off", off.as_str(), Some(4)),
    ] {
        let found = tampering(&[change(".slipway.toml", Some(base), Some(head))]);
        assert_eq!(
            about_analysis(&found),
            [(Severity::Error, line)],
            "{what}: {found:?}"
        );
    }
    // Added where the base had none: still the pull request writing its own analysis.
    let found = tampering(&[change(".slipway.toml", Some(&removed), Some(base))]);
    assert_eq!(about_analysis(&found), [(Severity::Error, Some(4))]);
    // Another section changed: the pipeline changed, but not `[analysis]`.
    let other = base.replace("pytest", "pytest -x");
    let found = tampering(&[change(".slipway.toml", Some(base), Some(&other))]);
    assert!(about_analysis(&found).is_empty(), "{found:?}");
    assert_eq!(found.len(), 1, "the pipeline's change: {found:?}");
}

#[test]
fn for_peoples_pull_requests_tampering_only_warns() {
    let config = Config {
        tampering: Severity::Warning,
        ..Config::default()
    };
    let (path, base, head) = fixtures().remove(0);
    let report = analyse(&[change(path, Some(base), Some(&head))], &config);
    assert_eq!(report.findings.len(), 1);
    assert_eq!(report.findings[0].severity, Severity::Warning);
    assert_eq!(report.errors(), 0);
}
