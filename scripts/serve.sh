#!/usr/bin/env bash
# Runs `slipway serve` on its embedded defaults. Pull-request code runs only in a sandbox, so
# this installs what the sandbox needs first when it is missing (bubblewrap, and passt for
# outbound network), where apt-get can be used; elsewhere it says what to install.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-missing.sh git:git bwrap:bubblewrap pasta:passt
# SLIPWAY_BIN: an already built slipway binary to run instead of building one.
if [ -n "${SLIPWAY_BIN:-}" ]; then
  exec "$SLIPWAY_BIN" serve "$@"
fi
exec cargo run --release -p slipway -- serve "$@"
