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
# The webhook relay's tests run relay/ on the real Workers runtime: wrangler and workerd from
# npm at the versions relay/package-lock.json pins (wrangler 4.86, the last on Node 20).
if ! node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 3) ? 0 : 1)'; then
  echo "the relay's tests need Node.js 20.3 or newer (found $(node --version)); install it and run again" >&2
  exit 1
fi
npm ci --prefix relay --no-audit --no-fund
# The MCP server's tests drive it with the official Python MCP client (pinned, in a venv).
./scripts/mcp-client.sh >/dev/null
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

# The store's suite runs on SQLite and on a throwaway PostgreSQL (its own directory and
# port, stopped at the end). Without PostgreSQL the PostgreSQL half says why and passes,
# except under CI, where .ci/run installs it and its absence fails the run.
if pg=$(./scripts/postgres.sh 2>/tmp/slipway-pg-why.$$); then
  eval "$pg"
  trap 'eval "$SLIPWAY_TEST_POSTGRES_STOP"' EXIT
else
  echo "PostgreSQL tests skipped: $(cat /tmp/slipway-pg-why.$$)" >&2
  [ "${CI:-}" = true ] && exit 1
fi
rm -f /tmp/slipway-pg-why.$$

profile=default
[ "${CI:-}" = true ] && profile=ci
cargo nextest run --workspace --profile "$profile" "$@"
# The server's suites once more with every TestApp on its own PostgreSQL database (about
# 9 minutes on 2 cores; under CI PostgreSQL is there, or the run failed above).
if [ -n "${SLIPWAY_TEST_POSTGRES_URL:-}" ]; then
  SLIPWAY_TEST_DATABASE=postgres cargo nextest run -p slipway-server --profile "$profile" "$@"
fi
