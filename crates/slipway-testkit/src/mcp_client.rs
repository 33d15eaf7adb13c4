//! The MCP client the tests drive Slipway's MCP server with: the official Python SDK from
//! PyPI (pinned in `scripts/mcp-client.sh`, installed in a venv under the target directory).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The venv's python, the client installed on first use.
pub fn python() -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/mcp-client.sh");
    let out = Command::new("bash")
        .arg(&script)
        .output()
        .expect("bash runs scripts/mcp-client.sh");
    assert!(
        out.status.success(),
        "scripts/mcp-client.sh failed (PyPI must be reachable): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// Runs a client script with `args`; its stdout is one JSON object of what it saw.
pub fn run(script: &Path, args: &[&str]) -> serde_json::Value {
    let out: Output = Command::new(python())
        .arg(script)
        .args(args)
        .output()
        .expect("the MCP client runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{} failed: {}\nstdout: {stdout}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "{e}: {stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}
