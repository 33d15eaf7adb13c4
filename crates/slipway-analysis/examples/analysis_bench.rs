//! Figures for BENCHMARKS.md: a change of 200 files and 20,000 changed lines across the five
//! languages, one large changed file, and a 2 MB minified file.
//! `cargo run --release -p slipway-analysis --example analysis_bench`

use slipway_analysis::{analyse, Change, Config, Side};
use std::time::Instant;

/// One file of `functions` functions of `body` lines each, in a language; `variant` changes
/// every function's body.
fn source(ext: &str, functions: usize, variant: usize) -> String {
    let mut out = String::new();
    if ext == "go" {
        out.push_str("package bench\n\n");
    }
    for f in 0..functions {
        let cond = format!("x > {}", f + variant);
        match ext {
            "py" => out.push_str(&format!(
                "def f{f}(x):\n    if {cond}:\n        x += 1\n    for i in range(x):\n        x += i\n    return x\n\n"
            )),
            "js" | "ts" => out.push_str(&format!(
                "function f{f}(x) {{\n  if ({cond}) {{ x += 1; }}\n  for (let i = 0; i < x; i++) {{ x += i; }}\n  return x;\n}}\n\n"
            )),
            "rs" => out.push_str(&format!(
                "fn f{f}(mut x: u64) -> u64 {{\n    if {cond} {{ x += 1; }}\n    for i in 0..x {{ x += i; }}\n    x\n}}\n\n"
            )),
            "go" => out.push_str(&format!(
                "func f{f}(x int) int {{\n\tif {cond} {{ x++ }}\n\tfor i := 0; i < x; i++ {{ x += i }}\n\treturn x\n}}\n\n"
            )),
            _ => unreachable!(),
        }
    }
    out
}

fn change(path: String, base: String, head: String) -> Change {
    Change {
        path,
        base: Side::Content(base.into_bytes()),
        head: Side::Content(head.into_bytes()),
    }
}

fn time(label: &str, changes: &[Change]) {
    let config = Config::default();
    analyse(changes, &config); // warm-up
    let runs = 5;
    let started = Instant::now();
    let mut report = None;
    for _ in 0..runs {
        report = Some(analyse(changes, &config));
    }
    let each = started.elapsed() / runs;
    let report = report.unwrap();
    let lines: usize = changes
        .iter()
        .map(|c| match &c.head {
            Side::Content(b) => b.iter().filter(|&&b| b == b'\n').count(),
            _ => 0,
        })
        .sum();
    println!(
        "{label}: {} files, {lines} lines per side: {:.1} ms ({} findings)",
        changes.len(),
        each.as_secs_f64() * 1000.0,
        report.findings.len()
    );
    for language in &report.languages {
        println!(
            "    {:<10} {:>3} files {:>7.1} ms",
            language.language,
            language.files,
            language.micros as f64 / 1000.0
        );
    }
}

fn main() {
    // 200 files of 100 lines (≈16 functions each), every function changed: 20,000 lines.
    let exts = ["py", "js", "ts", "rs", "go"];
    let mut changes = Vec::new();
    for i in 0..200 {
        let ext = exts[i % exts.len()];
        let n = if ext == "py" { 14 } else { 16 };
        changes.push(change(
            format!("src/m{i}.{ext}"),
            source(ext, n, 0),
            source(ext, n, 1),
        ));
    }
    time("200 changed files", &changes);

    let big = change(
        "src/big.py".into(),
        source("py", 1_500, 0),
        source("py", 1_500, 1),
    );
    time("one large changed file", &[big]);

    // 2 MiB, over the default size limit; 900 KiB, under it (read for credentials, not parsed).
    for (label, repeat) in [("2 MiB", 262_144), ("900 KiB", 115_200)] {
        let minified = format!("var a=[{}];", "1234567,".repeat(repeat));
        let min = vec![Change {
            path: "dist/app.min.js".into(),
            base: Side::Absent,
            head: Side::Content(minified.into_bytes()),
        }];
        let config = Config::default();
        let started = Instant::now();
        let report = analyse(&min, &config);
        println!(
            "{label} minified file: {:.2} ms ({})",
            started.elapsed().as_secs_f64() * 1000.0,
            report.findings[0].message
        );
    }
}
