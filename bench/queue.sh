#!/usr/bin/env bash
# Queued-to-started latency of the job queue between two processes' stores (one queues, the
# other leases), on a throwaway PostgreSQL (durable settings) and on SQLite.
# Usage: bench/queue.sh [jobs, default 200]
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${1:-200}
cargo build --release -q -p slipway-store --example queue_latency
bin=${CARGO_TARGET_DIR:-target}/release/examples/queue_latency
work=$(mktemp -d)
eval "$(./scripts/postgres.sh durable)"
trap 'eval "$SLIPWAY_TEST_POSTGRES_STOP"; rm -rf "$work"' EXIT
echo "postgres: $("$bin" "$SLIPWAY_TEST_POSTGRES_URL" "$jobs")"
echo "sqlite:   $("$bin" "sqlite://$work/q.db" "$jobs")"
