#!/usr/bin/env bash
# The webhook relay end to end: relay/ on the local Workers runtime (wrangler dev, workerd),
# `slipway serve` (release) pulling from it. A burst of signed deliveries, then a trickle (one
# at a time, 50 ms apart); for each delivery, the time from the relay's 202 to Slipway's stored
# row (`webhook_deliveries.received_at`, ms), and deliveries/s from the first 202 to the last
# stored row.
# First the same number posted while Slipway is stopped: how fast it drains the relay's backlog.
# Usage: bench/relay.sh [burst deliveries, default 2000] [connections, default 16] [trickle, default 200]
set -euo pipefail
cd "$(dirname "$0")/.."
burst=${1:-2000}; conns=${2:-16}; trickle=${3:-200}
slipway=${SLIPWAY_BIN:-target/release/slipway}
[ -n "${SLIPWAY_BIN:-}" ] || cargo build --release -q -p slipway
[ -x relay/node_modules/.bin/wrangler ] || npm ci --prefix relay --no-audit --no-fund
work=$(mktemp -d); relay_pid=; slipway_pid=
stop() {
  [ -n "$slipway_pid" ] && kill "$slipway_pid" 2>/dev/null
  [ -n "$relay_pid" ] && kill -- "-$relay_pid" 2>/dev/null
  rm -rf "$work"
}
trap stop EXIT
secret=bench-webhook-secret; token=bench-relay-token-0123456789
cp tests-data/fixtures/github-webhooks/pull_request/opened.payload.json "$work/body.json"
relay_port=$((20000 + RANDOM % 20000)); port=$((relay_port + 1))
(cd relay && CI=1 WRANGLER_SEND_METRICS=false exec setsid node_modules/.bin/wrangler dev \
  --ip 127.0.0.1 --port "$relay_port" --inspector-port $((relay_port + 2)) \
  --persist-to "$work/relay-state" --show-interactive-dev-session=false --log-level warn \
  --var "GITHUB_WEBHOOK_SECRET:$secret" --var "RELAY_TOKEN:$token") >"$work/relay.log" 2>&1 &
relay_pid=$!
for _ in $(seq 300); do curl -sf "http://127.0.0.1:$relay_port/health" >/dev/null && break; sleep 0.1; done
start_slipway() {
  GITHUB_WEBHOOK_SECRET=$secret SLIPWAY_ADMIN_TOKEN=bench-admin-token-0123456789 SLIPWAY_DATA_DIR=$work/data \
    SLIPWAY_LOG=warn SLIPWAY_RELAY_URL="http://127.0.0.1:$relay_port" SLIPWAY_RELAY_TOKEN=$token \
    "$slipway" serve --bind "127.0.0.1:$port" >"$work/out" 2>"$work/err" &
  slipway_pid=$!
}

# Waits until Slipway holds every delivery of $1 (the load's output), then reports; with $2
# (epoch ms Slipway was started at), the rate it drained the relay's backlog at.
measure() {
  python3 - "$1" "$work/data/slipway.db" "${2:-}" <<'PY'
import json, os, sqlite3, sys, time
answered = json.load(open(sys.argv[1]))
while not os.path.exists(sys.argv[2]):
    time.sleep(0.1)
db = sqlite3.connect(sys.argv[2])
ids = list(answered)
deadline = time.time() + 300
while True:
    rows = dict(db.execute(
        "SELECT delivery_id, received_at FROM webhook_deliveries WHERE delivery_id LIKE ?",
        (ids[0].rsplit("-", 1)[0] + "-%",)).fetchall())
    if len(rows) >= len(ids) or time.time() > deadline:
        break
    time.sleep(0.2)
if sys.argv[3]:
    span = (max(rows.values()) - int(sys.argv[3])) / 1000
    print(f"stored {len(rows)} of {len(ids)}; backlog drained at {len(rows) / span:.0f} deliveries/s "
          f"(from Slipway's start, migrations included, to its last stored row)")
    sys.exit(0)
lat = sorted(rows[i] - answered[i] for i in ids if i in rows)
pick = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]
span = (max(rows.values()) - min(answered.values())) / 1000
print(f"stored {len(rows)} of {len(ids)}; {len(ids) / span:.0f} deliveries/s from the first 202 to the last stored row")
print(f"202 → stored in Slipway: p50 {pick(.5):.0f} ms, p99 {pick(.99):.0f} ms, max {lat[-1]:.0f} ms "
      f"(ms clock; negative means stored within the same ms)")
PY
}

echo "== backlog: $burst deliveries posted while Slipway is stopped, then Slipway started"
node bench/relay-load.mjs "http://127.0.0.1:$relay_port" "$secret" "$work/body.json" "$burst" "$conns" 0 "$work/backlog.json"
started=$(date +%s%3N)
start_slipway
measure "$work/backlog.json" "$started"
echo "== burst: $burst deliveries ($(wc -c < "$work/body.json") bytes each), $conns connections"
node bench/relay-load.mjs "http://127.0.0.1:$relay_port" "$secret" "$work/body.json" "$burst" "$conns" 0 "$work/burst.json"
measure "$work/burst.json"
echo "== trickle: $trickle deliveries, one at a time, 50 ms apart (the puller idle in its long poll)"
node bench/relay-load.mjs "http://127.0.0.1:$relay_port" "$secret" "$work/body.json" "$trickle" 1 50 "$work/trickle.json"
measure "$work/trickle.json"
curl -s "http://127.0.0.1:$port/ready"; echo
echo "slipway RSS $(awk '/VmHWM/ {print $2, $3}' /proc/$slipway_pid/status) peak"
