//! A unified diff trimmed to a budget: lockfiles, generated and binary files left out (and
//! listed), then whole hunks, smallest first, while they fit; the hunks that do not are
//! summarised by file with their line counts.

/// About four characters make a token, for code and English alike.
pub const CHARS_PER_TOKEN: usize = 4;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrimmedDiff {
    /// The kept hunks, file by file in the diff's order.
    pub text: String,
    /// Lockfiles, generated and binary files, not shown.
    pub left_out: Vec<String>,
    /// Files with hunks not shown: `path: N hunk(s), +A −D lines`.
    pub summarised: Vec<String>,
}

struct FileDiff<'a> {
    path: String,
    header: &'a str,
    hunks: Vec<&'a str>,
}

/// Files a reviewer never reads line by line.
fn is_generated(path: &str) -> bool {
    const NAMES: [&str; 12] = [
        "Cargo.lock",
        "package-lock.json",
        "npm-shrinkwrap.json",
        "yarn.lock",
        "pnpm-lock.yaml",
        "poetry.lock",
        "Pipfile.lock",
        "uv.lock",
        "Gemfile.lock",
        "composer.lock",
        "go.sum",
        "flake.lock",
    ];
    let name = path.rsplit('/').next().unwrap_or(path);
    NAMES.contains(&name)
        || [".min.js", ".min.css", ".map", ".pb.go", "_pb2.py"]
            .iter()
            .any(|suffix| name.ends_with(suffix))
        || path
            .split('/')
            .any(|dir| matches!(dir, "dist" | "vendor" | "node_modules" | "__generated__"))
}

fn split_files(diff: &str) -> Vec<FileDiff<'_>> {
    let mut starts: Vec<usize> = diff
        .match_indices("\ndiff --git ")
        .map(|(i, _)| i + 1)
        .collect();
    if diff.starts_with("diff --git ") {
        starts.insert(0, 0);
    }
    let ends = starts.iter().skip(1).copied().chain([diff.len()]);
    starts
        .iter()
        .zip(ends)
        .map(|(&start, end)| {
            let file = &diff[start..end];
            let first = file.lines().next().unwrap_or_default();
            let path = first
                .rsplit_once(" b/")
                .map(|(_, p)| p.to_owned())
                .unwrap_or_else(|| first.to_owned());
            let mut cuts: Vec<usize> = file.match_indices("\n@@ ").map(|(i, _)| i + 1).collect();
            let header_end = cuts.first().copied().unwrap_or(file.len());
            let ends = cuts
                .iter()
                .skip(1)
                .copied()
                .chain([file.len()])
                .collect::<Vec<_>>();
            let hunks = cuts.drain(..).zip(ends).map(|(s, e)| &file[s..e]).collect();
            FileDiff {
                path,
                header: &file[..header_end],
                hunks,
            }
        })
        .collect()
}

fn counts(hunk: &str) -> (usize, usize) {
    hunk.lines()
        .skip(1)
        .fold((0, 0), |(a, d), line| match line.as_bytes().first() {
            Some(b'+') => (a + 1, d),
            Some(b'-') => (a, d + 1),
            _ => (a, d),
        })
}

/// Trims `diff` to about `max_tokens`.
pub fn trim(diff: &str, max_tokens: usize) -> TrimmedDiff {
    let budget = max_tokens.saturating_mul(CHARS_PER_TOKEN);
    let files = split_files(diff);
    let mut left_out = Vec::new();
    let mut candidates = Vec::new(); // (size, file index, hunk index)
    for (f, file) in files.iter().enumerate() {
        let binary =
            file.header.contains("\nBinary files ") || file.header.contains("GIT binary patch");
        if is_generated(&file.path) || binary {
            left_out.push(file.path.clone());
            continue;
        }
        for (h, hunk) in file.hunks.iter().enumerate() {
            candidates.push((hunk.len(), f, h));
        }
    }
    candidates.sort();
    let mut kept = vec![Vec::new(); files.len()];
    let mut used = 0;
    for (size, f, h) in candidates {
        // Each shown file costs its path line too.
        let cost = size
            + if kept[f].is_empty() {
                files[f].path.len() + 8
            } else {
                0
            };
        if used + cost <= budget {
            used += cost;
            kept[f].push(h);
        }
    }
    let (mut text, mut summarised) = (String::new(), Vec::new());
    for (f, file) in files.iter().enumerate() {
        if left_out.contains(&file.path) {
            continue;
        }
        let mut shown = kept[f].clone();
        shown.sort();
        if !shown.is_empty() {
            text.push_str(&format!("--- {}\n", file.path));
            for &h in &shown {
                text.push_str(file.hunks[h]);
                if !file.hunks[h].ends_with('\n') {
                    text.push('\n');
                }
            }
        }
        let hidden: Vec<&str> = (0..file.hunks.len())
            .filter(|h| !shown.contains(h))
            .map(|h| file.hunks[h])
            .collect();
        if !hidden.is_empty() {
            let (added, deleted) = hidden
                .iter()
                .map(|h| counts(h))
                .fold((0, 0), |a, c| (a.0 + c.0, a.1 + c.1));
            summarised.push(format!(
                "{}: {} hunk(s) not shown, +{added} -{deleted} lines",
                file.path,
                hidden.len()
            ));
        } else if file.hunks.is_empty() {
            // A rename or a mode change: the header says what.
            text.push_str(&format!("--- {} (no content change)\n", file.path));
        }
    }
    TrimmedDiff {
        text,
        left_out,
        summarised,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, hunks: &[&str]) -> String {
        let mut text = format!(
            "diff --git a/{path} b/{path}\nindex 1..2 100644\n--- a/{path}\n+++ b/{path}\n"
        );
        for hunk in hunks {
            text.push_str(&format!("@@ -1 +1 @@\n{hunk}\n"));
        }
        text
    }

    #[test]
    fn lockfiles_and_generated_files_are_left_out_and_listed() {
        let diff = file("Cargo.lock", &["+x"])
            + &file("src/a.rs", &["+fn a() {}"])
            + &file("web/dist/app.js", &["+y"]);
        let trimmed = trim(&diff, 1000);
        assert_eq!(trimmed.left_out, ["Cargo.lock", "web/dist/app.js"]);
        assert_eq!(trimmed.text, "--- src/a.rs\n@@ -1 +1 @@\n+fn a() {}\n");
        assert!(trimmed.summarised.is_empty());
    }

    #[test]
    fn small_hunks_are_kept_whole_and_the_largest_summarised() {
        let big = (0..400)
            .map(|i| format!("+line {i}"))
            .collect::<Vec<_>>()
            .join("\n");
        let diff = file("src/big.rs", &[&big, "-old\n+new"]) + &file("src/small.rs", &["+one"]);
        let trimmed = trim(&diff, 50);
        assert!(
            trimmed.text.contains("+new") && trimmed.text.contains("+one"),
            "{}",
            trimmed.text
        );
        assert!(!trimmed.text.contains("line 7"));
        assert_eq!(
            trimmed.summarised,
            ["src/big.rs: 1 hunk(s) not shown, +400 -0 lines"]
        );
        assert!(trimmed.text.len() <= 50 * CHARS_PER_TOKEN);
    }
}
