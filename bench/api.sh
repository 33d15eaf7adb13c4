#!/usr/bin/env bash
# API throughput and latency: release build, 100 projects, wrk at 1 and 64 connections
# against GET /api/v1/projects and GET /api/v1/projects/{id}; idle RSS of `slipway serve`.
# Usage: bench/api.sh [seconds per run, default 10]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 1; }

cargo build --release -q -p slipway
data=$(mktemp -d)
port=$((20000 + RANDOM % 20000))
token=bench-admin-token-0123456789
SLIPWAY_ADMIN_TOKEN=$token SLIPWAY_DATA_DIR=$data SLIPWAY_LOG=warn \
  target/release/slipway serve --bind 127.0.0.1:$port >"$data/out" 2>"$data/err" &
pid=$!
trap 'kill $pid 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done

for i in $(seq 100); do
  curl -sf -o /dev/null -H "Authorization: Bearer $token" -H 'content-type: application/json' \
    -d "{\"name\":\"project-$i\",\"description\":\"benchmark project number $i\",\"repo\":\"acme/app-$i\"}" \
    "http://127.0.0.1:$port/api/v1/projects"
done
# Measure with a stored token, as dashboards and bots use, not the environment's admin token.
token=$(SLIPWAY_DATA_DIR=$data target/release/slipway token create --role viewer --name bench 2>/dev/null)
sleep 1
echo "idle RSS after start and 100 projects: $(awk '/VmRSS/ {print $2, $3}' /proc/$pid/status)"

run() { # connections path
  local out
  out=$(wrk -t "$(( $1 < 2 ? 1 : 2 ))" -c "$1" -d "${secs}s" --latency \
        -H "Authorization: Bearer $token" "http://127.0.0.1:$port$2")
  printf '%-28s c=%-3s %10s req/s  p50 %-9s p99 %s\n' "$2" "$1" \
    "$(awk '/Requests\/sec/ {print $2}' <<<"$out")" \
    "$(awk '$1=="50%" {print $2}' <<<"$out")" \
    "$(awk '$1=="99%" {print $2}' <<<"$out")"
  grep -q 'Non-2xx' <<<"$out" && { echo "non-2xx answers:"; grep 'Non-2xx' <<<"$out"; }
  return 0
}
for c in 1 64; do
  run "$c" /api/v1/projects
  run "$c" /api/v1/projects/50
done
echo "RSS after load: $(awk '/VmRSS/ {print $2, $3}' /proc/$pid/status)"
