#!/usr/bin/env bash
# Trivial validations (setup, build and test all `true`, real sandbox) through
# `slipway serve --workers 0` and 1, then 3, `slipway worker` processes on one database:
# a SQLite file, and a throwaway PostgreSQL (durable settings). Every validation is POSTed
# at once (16 in flight); the time runs from the first POST to the last verdict.
# Usage: bench/workers.sh [validations, default 100]   (WORKER_CONCURRENCY, default 2)
set -euo pipefail
cd "$(dirname "$0")/.."
count=${1:-100}
concurrency=${WORKER_CONCURRENCY:-2}
cargo build --release -q -p slipway
bin=$(realpath "${CARGO_TARGET_DIR:-target}/release/slipway")
work=$(mktemp -d)
pids=()
stop_all() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done; pids=(); }
eval "$(./scripts/postgres.sh durable)"
trap 'stop_all; eval "$SLIPWAY_TEST_POSTGRES_STOP"; rm -rf "$work"' EXIT
export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=b@b GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=b@b
export SLIPWAY_MASTER_KEY=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= SLIPWAY_LOG=warn
token=bench-admin-token-0123456789
export SLIPWAY_ADMIN_TOKEN=$token
ms() { echo $(( $(date +%s%N) / 1000000 )); }
api() { curl -sf -H "Authorization: Bearer $token" -H 'content-type: application/json' "$@"; }

repo=$work/trivial
mkdir "$repo" && git -C "$repo" init -q -b main
printf '[setup]\ncommands = ["true"]\n[build]\ncommands = ["true"]\n[test]\ncommands = ["true"]\n' > "$repo/.slipway.toml"
git -C "$repo" add -A && git -C "$repo" commit -qm trivial
sha=$(git -C "$repo" rev-parse HEAD)

# run LABEL DATABASE_URL WORKERS: one server, WORKERS workers, COUNT validations; prints the
# figures after LABEL.
run() {
  local label=$1 db=$2 workers=$3 dir=$work/run-$RANDOM port=$((20000 + RANDOM % 20000))
  mkdir "$dir"
  "$bin" serve --workers 0 --bind 127.0.0.1:$port --data-dir "$dir/server" --database-url "$db" \
    >"$dir/server.out" 2>"$dir/server.err" &
  pids+=($!)
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
  for n in $(seq "$workers"); do
    "$bin" worker --concurrency "$concurrency" --data-dir "$dir/worker-$n" --database-url "$db" \
      >"$dir/worker-$n.out" 2>"$dir/worker-$n.err" &
    pids+=($!)
  done
  for _ in $(seq 300); do # until every worker is registered
    live=$(api "http://127.0.0.1:$port/ready" | python3 -c 'import json,sys; print(json.load(sys.stdin)["workers"])' 2>/dev/null || true)
    [ "$live" = "$workers" ] && break; sleep 0.1
  done
  local base=http://127.0.0.1:$port/api/v1
  local project
  project=$(api -d "{\"name\":\"trivial\",\"repo\":\"$repo\"}" "$base/projects" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  local t0 t1
  t0=$(ms)
  seq "$count" | xargs -P 16 -I{} curl -sf -o /dev/null -H "Authorization: Bearer $token" \
    -H 'content-type: application/json' -d "{\"sha\":\"$sha\"}" "$base/projects/$project/validations"
  while api "$base/projects/$project/validations?limit=500" | grep -q -E '"status":"(queued|running)"'; do sleep 0.02; done
  t1=$(ms)
  api "$base/projects/$project/validations?limit=500" | python3 -c '
import json, sys
rows = json.load(sys.stdin)
assert len(rows) == int(sys.argv[1]), len(rows)
bad = [(v["id"], v["status"]) for v in rows if v["status"] != "passed" or v["attempt"] != 1]
assert not bad, bad
' "$count"
  stop_all
  python3 -c "print(f'$label: {$count} passed in {($t1 - $t0) / 1000:.2f} s: {$count * 1000 / ($t1 - $t0):.1f} validations/s')"
}

for workers in 1 3; do
  run "sqlite,     $workers worker(s) x $concurrency" "sqlite://$work/sqlite-$workers.db" "$workers"
  # A database of its own on the throwaway server.
  psql=$(ls /usr/lib/postgresql/*/bin/psql | tail -1)
  "$psql" -q "$SLIPWAY_TEST_POSTGRES_URL" -c "CREATE DATABASE bench_workers_$workers"
  pg=${SLIPWAY_TEST_POSTGRES_URL%/*}/bench_workers_$workers
  run "postgresql, $workers worker(s) x $concurrency" "$pg" "$workers"
done
