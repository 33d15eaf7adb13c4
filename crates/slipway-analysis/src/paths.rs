//! What a path is: a test file, a test or CI configuration file.

/// Whether `path` holds tests by the usual conventions of the five languages.
pub fn is_test_file(path: &str) -> bool {
    let file = path.rsplit('/').next().unwrap_or(path);
    let in_dir = |dir: &str| path.split('/').rev().skip(1).any(|part| part == dir);
    let stem = file.split('.').next().unwrap_or(file);
    (file.ends_with(".py") && (stem.starts_with("test_") || stem.ends_with("_test")))
        || file.ends_with("_test.go")
        || [".test.", ".spec."].iter().any(|mark| file.contains(mark))
        || in_dir("__tests__")
        || in_dir("tests")
        || in_dir("test")
}

/// Files whose change can decide whether tests run or count: the pipeline, CI, the test
/// runners' configuration and coverage thresholds.
pub fn is_test_configuration(path: &str) -> bool {
    let file = path.rsplit('/').next().unwrap_or(path);
    let stem = file.split('.').next().unwrap_or(file);
    path == ".slipway.toml"
        || path.starts_with(".github/workflows/")
        || path.starts_with(".circleci/")
        || path.starts_with(".ci/")
        || path.starts_with(".buildkite/")
        || matches!(
            file,
            ".gitlab-ci.yml"
                | "Jenkinsfile"
                | "azure-pipelines.yml"
                | ".travis.yml"
                | "pytest.ini"
                | "tox.ini"
                | "noxfile.py"
                | "conftest.py"
                | ".coveragerc"
                | "codecov.yml"
                | ".codecov.yml"
                | ".nycrc"
                | ".nycrc.json"
                | ".mocharc.json"
                | ".mocharc.yml"
                | "nextest.toml"
        )
        || matches!(
            stem,
            "jest" | "vitest" | "karma" | "playwright" | "cypress" | "mocha"
        ) && file.contains(".config")
        || stem == "karma" && file.contains(".conf")
}

/// Files that configure tests among other things: a change counts when a changed line
/// names the test runner or coverage.
pub fn may_configure_tests(path: &str) -> bool {
    let file = path.rsplit('/').next().unwrap_or(path);
    matches!(
        file,
        "package.json" | "pyproject.toml" | "setup.cfg" | "Cargo.toml" | "Makefile"
    )
}

/// Words of a changed line in such a file that concern tests.
pub const TEST_CONFIGURATION_WORDS: [&str; 8] = [
    "pytest",
    "jest",
    "vitest",
    "coverage",
    "fail_under",
    "threshold",
    "\"test\"",
    "addopts",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_files_follow_each_languages_conventions() {
        for path in [
            "tests/test_api.py",
            "pkg/api_test.py",
            "src/app.test.ts",
            "web/Button.spec.tsx",
            "src/__tests__/x.js",
            "server/handler_test.go",
            "crates/x/tests/api.rs",
        ] {
            assert!(is_test_file(path), "{path}");
        }
        for path in ["src/app.py", "src/testing.go", "src/contest.ts", "tests"] {
            assert!(!is_test_file(path), "{path}");
        }
    }

    #[test]
    fn test_and_ci_configuration_is_recognised() {
        for path in [
            ".slipway.toml",
            ".github/workflows/ci.yml",
            "jest.config.js",
            "vitest.config.ts",
            "tests/conftest.py",
            "pytest.ini",
            ".coveragerc",
        ] {
            assert!(is_test_configuration(path), "{path}");
        }
        for path in ["src/config.ts", "jest.md", "docs/ci.md"] {
            assert!(!is_test_configuration(path), "{path}");
        }
    }
}
