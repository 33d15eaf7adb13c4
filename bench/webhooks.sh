#!/usr/bin/env bash
# Webhook intake: signed `pull_request` deliveries (GitHub's fixture) at 64 connections, each
# with its own X-GitHub-Delivery; then the stored deliveries are counted against the 202s.
# Usage: bench/webhooks.sh [seconds, default 10] [connections, default 64]
# BENCH_DATABASE=postgres: on a throwaway PostgreSQL on this machine (fsync and synchronous
# commits on: a 202 means the delivery is on disk), else SQLite in the data directory.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}; conns=${2:-64}
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 1; }
# SLIPWAY_BIN: a release binary built already (else it is built here).
bin=${SLIPWAY_BIN:-}
if [ -z "$bin" ]; then
  cargo build --release -q -p slipway
  bin=${CARGO_TARGET_DIR:-target}/release/slipway
fi
work=$(mktemp -d); pid=
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; [ -n "${SLIPWAY_TEST_POSTGRES_STOP:-}" ] && eval "$SLIPWAY_TEST_POSTGRES_STOP"; rm -rf "$work"' EXIT
if [ "${BENCH_DATABASE:-sqlite}" = postgres ]; then
  eval "$(./scripts/postgres.sh durable)"
  export SLIPWAY_DATABASE_URL=$SLIPWAY_TEST_POSTGRES_URL
  sql() { psql -qtA "$SLIPWAY_DATABASE_URL" -c "$1"; }
else
  sql() { python3 -c "import sqlite3,sys; print(sqlite3.connect('$work/data/slipway.db').execute(sys.argv[1]).fetchone()[0])" "$1"; }
fi
secret=bench-webhook-secret
fixture=tests-data/fixtures/github-webhooks/pull_request/opened.payload.json
cp "$fixture" "$work/body.json"
signature=sha256=$(python3 -c "import hmac,hashlib,sys; print(hmac.new(b'$secret', open('$work/body.json','rb').read(), hashlib.sha256).hexdigest())")
port=$((20000 + RANDOM % 20000))
GITHUB_WEBHOOK_SECRET=$secret SLIPWAY_ADMIN_TOKEN=bench-admin-token-0123456789 SLIPWAY_DATA_DIR=$work/data SLIPWAY_LOG=warn \
  "$bin" serve --bind 127.0.0.1:$port >"$work/out" 2>"$work/err" &
pid=$!
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
cat > "$work/post.lua" <<LUA
local f = io.open("$work/body.json", "rb"); local body = f:read("*a"); f:close()
local threads = {}
local counter = 0
function setup(thread) thread:set("tid", #threads + 1); table.insert(threads, thread) end
function request()
  counter = counter + 1
  return wrk.format("POST", "/webhooks/github", {
    ["Content-Type"] = "application/json",
    ["X-GitHub-Event"] = "pull_request",
    ["X-GitHub-Delivery"] = string.format("bench-%d-%d", tid, counter),
    ["X-Hub-Signature-256"] = "$signature",
  }, body)
end
accepted = 0
function response(status) if status == 202 then accepted = accepted + 1 end end
function done(summary, latency, requests)
  local total = 0
  for _, t in ipairs(threads) do total = total + t:get("accepted") end
  io.write(string.format("accepted %d\n", total))
end
LUA
out=$(wrk -t 2 -c "$conns" -d "${secs}s" --latency -s "$work/post.lua" "http://127.0.0.1:$port")
accepted=$(awk '/^accepted/ {print $2}' <<<"$out")
sleep 1
stored=$(sql 'select count(*) from webhook_deliveries')
echo "database ${BENCH_DATABASE:-sqlite}, payload $(wc -c < "$work/body.json") bytes, $conns connections, ${secs}s"
echo "deliveries/s $(awk '/Requests\/sec/ {print $2}' <<<"$out")  p50 $(awk '$1=="50%" {print $2}' <<<"$out")  p99 $(awk '$1=="99%" {print $2}' <<<"$out")"
echo "202 answers $accepted, stored deliveries $stored"
grep -q 'Non-2xx' <<<"$out" && grep 'Non-2xx' <<<"$out"
echo "server RSS $(awk '/VmHWM/ {print $2, $3}' /proc/$pid/status) peak"
# How fast the processor works through the backlog (these deliveries route to no project).
pending() { sql "select count(*) from webhook_deliveries where state='pending'"; }
left=$(pending); t0=$(date +%s%N)
for _ in $(seq 600); do [ "$(pending)" = 0 ] && break; sleep 0.1; done
t1=$(date +%s%N); now=$(pending)
echo "backlog of $left processed at $(( (left - now) * 1000000000 / (t1 - t0 + 1) ))/s ($now left after $(( (t1 - t0) / 1000000 )) ms)"
