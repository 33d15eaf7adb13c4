//! Hostile and unreadable files end as notes, within the limits, never as a crash.

use slipway_analysis::{analyse, Change, Config, Report, Severity, Side};
use std::time::Duration;

fn head_only(path: &str, head: Vec<u8>) -> Change {
    Change {
        path: path.into(),
        base: Side::Absent,
        head: Side::Content(head),
    }
}

fn notes(report: &Report) -> Vec<String> {
    report
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Note)
        .map(|f| f.message.clone())
        .collect()
}

#[test]
fn deep_nesting_is_parsed_without_recursion() {
    let depth = 20_000;
    // Brackets on lines of their own: not minified, parsed whole.
    let js = format!(
        "function f(x) {{\n  return {}x{};\n}}\n",
        "[\n".repeat(depth),
        "]\n".repeat(depth)
    );
    let report = analyse(&[head_only("deep.js", js.into_bytes())], &Config::default());
    assert_eq!(report.errors(), 0, "{:?}", report.findings);
    let ifs = format!(
        "def f(x):\n{}",
        (0..500)
            .map(|i| format!("{}if x > {i}:\n", "    ".repeat(i + 1)))
            .collect::<String>()
            + &format!("{}return x\n", "    ".repeat(501))
    );
    let report = analyse(
        &[head_only("deep.py", ifs.into_bytes())],
        &Config::default(),
    );
    let complexity: Vec<_> = report
        .findings
        .iter()
        .filter(|f| f.rule == "complexity")
        .collect();
    assert_eq!(complexity.len(), 1, "{:?}", report.findings);
    assert!(
        complexity[0].message.contains("complexity 501"),
        "{:?}",
        complexity[0]
    );
}

#[test]
fn unclosed_brackets_are_a_syntax_note() {
    let text = format!(
        "def f(:\n    return {}\n",
        "(".repeat(50_000)
            .chars()
            .collect::<Vec<_>>()
            .chunks(100)
            .map(|c| c.iter().collect::<String>() + "\n")
            .collect::<String>()
    );
    let report = analyse(
        &[head_only("bad.py", text.into_bytes())],
        &Config::default(),
    );
    let notes = notes(&report);
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(notes[0].contains("syntax error"), "{notes:?}");
}

#[test]
fn minified_huge_binary_and_non_utf8_files_are_notes() {
    let minified = format!("var a={};", "[1,2,3],".repeat(20_000)).into_bytes();
    let huge = "x = 1\n".repeat(400_000).into_bytes();
    let binary = b"\x7fELF\x00\x00\x01 binary".to_vec();
    let latin1 = b"def f():\n    return '\xe9t\xe9'\n".to_vec();
    let long_line = format!("const s = \"{}\";\n", "a".repeat(100_000)).into_bytes();
    let report = analyse(
        &[
            head_only("dist/app.min.js", minified),
            head_only("big.py", huge),
            head_only("tool.go", binary),
            head_only("latin1.py", latin1),
            head_only("long.ts", long_line),
        ],
        &Config::default(),
    );
    let by_file = |file: &str| {
        report
            .findings
            .iter()
            .find(|f| f.file == file)
            .map(|f| (f.severity, f.message.clone()))
            .unwrap_or_else(|| panic!("no note for {file}: {:?}", report.findings))
    };
    assert!(by_file("dist/app.min.js").1.contains("minified"));
    assert!(by_file("big.py").1.contains("over the 1024 KiB"));
    assert!(by_file("tool.go").1.contains("binary"));
    assert!(by_file("latin1.py").1.contains("not UTF-8"));
    assert!(by_file("long.ts").1.contains("minified"));
    assert!(
        report.findings.iter().all(|f| f.severity == Severity::Note),
        "{:?}",
        report.findings
    );
    // A side the caller did not read for its size.
    let unread = Change {
        path: "huge.rs".into(),
        base: Side::Absent,
        head: Side::TooLarge(50 << 20),
    };
    let report = analyse(&[unread], &Config::default());
    assert_eq!(
        notes(&report),
        ["not analysed: 51200 KiB, over the 1024 KiB analysed"]
    );
}

#[test]
fn parsing_stops_at_the_time_limit_with_a_note() {
    let big = (0..20_000)
        .map(|i| format!("def f{i}(x):\n    return x + {i}\n"))
        .collect::<String>();
    let config = Config {
        time_limit: Duration::ZERO,
        ..Config::default()
    };
    let report = analyse(&[head_only("many.py", big.into_bytes())], &config);
    assert_eq!(
        notes(&report),
        ["not parsed: the analysis's time limit passed"]
    );
}

#[test]
fn a_test_file_that_cannot_be_checked_is_tampering_not_a_note() {
    // `assert x == 1` loosened to `assert x`, hidden behind one long comment line.
    let base = "def test_one():\n    x = 1\n    assert x == 1\n";
    let head = format!(
        "def test_one():\n    x = 1\n    assert x\n# {}\n",
        "pad ".repeat(2_000)
    );
    let change = Change {
        path: "tests/test_one.py".into(),
        base: Side::Content(base.as_bytes().to_vec()),
        head: Side::Content(head.into_bytes()),
    };
    let report = analyse(std::slice::from_ref(&change), &Config::default());
    let tampering: Vec<_> = report
        .findings
        .iter()
        .filter(|f| f.rule == "test-tampering" && f.severity == Severity::Error)
        .collect();
    assert_eq!(tampering.len(), 1, "{:?}", report.findings);
    assert!(tampering[0].message.contains("could not be checked"));

    // The same padding in a file that is not a test stays a note.
    let app = Change {
        path: "src/app.py".into(),
        ..change
    };
    let report = analyse(&[app], &Config::default());
    assert_eq!(report.errors(), 0, "{:?}", report.findings);
    assert_eq!(notes(&report).len(), 1, "{:?}", report.findings);

    // Test files past the analysis's limit count as unchecked too.
    let config = Config::default();
    let past = slipway_analysis::skipped_files(
        ["src/a.py", "tests/test_b.py"].into_iter(),
        "past the limit",
        &config,
    );
    assert_eq!(past.len(), 1);
    assert_eq!(past[0].file, "tests/test_b.py");
    assert_eq!(past[0].severity, Severity::Error);
}
