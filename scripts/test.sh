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
# The notification tests check Slipway's Standard Webhooks signatures with an independent
# implementation: the standardwebhooks npm package, pinned.
verifier=target/standardwebhooks
if ! grep -qs '"version": "1.1.1"' "$verifier/node_modules/standardwebhooks/package.json"; then
  npm install --silent --no-audit --no-fund --prefix "$verifier" standardwebhooks@1.1.1
fi
export SLIPWAY_STANDARDWEBHOOKS="$PWD/$verifier"
if ! cargo nextest --version >/dev/null 2>&1; then
  cargo install cargo-nextest --locked
fi

profile=default
[ "${CI:-}" = true ] && profile=ci
cargo nextest run --workspace --profile "$profile" "$@"
