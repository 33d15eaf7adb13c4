#!/usr/bin/env bash
# Dashboard benchmarks: page server time (100 projects; a project with 1,000 validations), DOMContentLoaded
# in headless Chromium, and one event fanned out to 1,000 WebSocket subscribers.
# Usage: bench/dashboard.sh   (needs Chromium; figures go to BENCHMARKS.md by hand)
set -euo pipefail
cd "$(dirname "$0")/.."
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true  # 1,000 clients and their server sockets
cargo run --release -q -p slipway-server --example dashboard_bench
