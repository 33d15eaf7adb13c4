#!/usr/bin/env bash
# Runs Slipway's whole test suite. Installs what a fresh machine lacks first
# (only when it is missing, and only where apt-get can be used).
set -euo pipefail
cd "$(dirname "$0")/.."

# bubblewrap and pasta (passt) make the sandbox; npm fetches GitHub's OpenAPI description the
# fakes are checked against; the dashboard's end-to-end tests drive
# headless Chromium (or the one SLIPWAY_CHROMIUM names).
tools=(git:git python3:python3 curl:curl npm:npm bwrap:bubblewrap pasta:passt)
[ -n "${SLIPWAY_CHROMIUM:-}" ] || tools+=("chromium|chromium-browser:chromium")
./scripts/install-missing.sh "${tools[@]}"
# The MCP server's tests drive it with the official Python MCP client (pinned, in a venv).
./scripts/mcp-client.sh >/dev/null
if ! cargo nextest --version >/dev/null 2>&1; then
  cargo install cargo-nextest --locked
fi

profile=default
[ "${CI:-}" = true ] && profile=ci
cargo nextest run --workspace --profile "$profile" "$@"
