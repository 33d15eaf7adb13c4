#!/usr/bin/env bash
# Everything around the judge's model call (issue 22): building its input from a 5,000-line
# diff and the earlier steps' evidence, the prompt, and reading an answer. Release build.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --quiet --release -p slipway-judge --example judge_input
