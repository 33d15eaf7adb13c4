#!/usr/bin/env bash
# What code that prints without limit costs Slipway (issue 18): `slipway serve` (release build,
# SQLite) validates commits whose test step prints
#  1. 500,000 lines, with the default log cap and with a cap that keeps everything (wall time);
#  2. 1.5 GB without one newline;
#  3. 40 million short lines;
# and reports the server's peak memory (VmHWM) over its idle size and the database's growth.
# Usage: bench/floods.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p slipway
bin=$PWD/target/release/slipway
work=$(mktemp -d /var/tmp/slipway-floods.XXXXXX)
pid=
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; rm -rf "$work"' EXIT
export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=b@b GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=b@b
ms() { echo $(( $(date +%s%N) / 1000000 )); }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

repo() { # name, test command, extra [sandbox] lines
  local dir=$work/$1
  mkdir -p "$dir" && git -C "$dir" init -q -b main
  printf '[sandbox]\n%s\n[test]\ncommands = [%s]\ntimeout_secs = 3000\n' "$3" "$2" > "$dir/.slipway.toml"
  git -C "$dir" add -A && git -C "$dir" commit -qm "$1"
  echo "$dir"
}

data=$work/data; port=$((20000 + RANDOM % 20000)); token=bench-admin-token-0123456789
SLIPWAY_ADMIN_TOKEN=$token SLIPWAY_DATA_DIR=$data SLIPWAY_LOG=warn \
  SLIPWAY_SANDBOX_MAX_LOG_LINES=1000000 SLIPWAY_SANDBOX_MAX_LOG_MB=1024 \
  "$bin" serve --bind 127.0.0.1:$port >"$work/out" 2>"$work/err" &
pid=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
api() { curl -sf -H "Authorization: Bearer $token" -H 'content-type: application/json' "$@"; }
base=http://127.0.0.1:$port/api/v1
sleep 1
idle=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)

project() { api -d "{\"name\":\"$(basename "$1")\",\"repo\":\"$1\"}" "$base/projects" | json 'd["id"]'; }
validate() { # project id → prints "<ms> ms, <status>"
  local p=$1 t0 id status
  t0=$(ms)
  id=$(api -d '{"branch":"main"}' "$base/projects/$p/validations" | json 'd["id"]')
  while :; do
    status=$(api "$base/validations/$id" | json 'd["status"]')
    case $status in queued|running) sleep 0.1;; *) break;; esac
  done
  echo "$(( $(ms) - t0 )) ms, $status"
}
db() { du -sk "$data/slipway.db"* | awk '{s += $1} END {print s}'; }

lines='"seq 500000"'
capped=$(project "$(repo capped "$lines" '')")
uncapped=$(project "$(repo uncapped "$lines" $'log_lines = 1000000\nlog_mb = 1024')")
for round in 1 2 3; do
  echo "1. 500,000 lines, round $round: capped (default) $(validate "$capped"); kept whole $(validate "$uncapped")"
done

before=$(db)
wide=$(project "$(repo wide '"head -c 1500000000 /dev/zero | tr \"\\\\0\" x"' '')")
echo "2. 1.5 GB without a newline: $(validate "$wide"); database +$(( $(db) - before )) kB"
before=$(db)
many=$(project "$(repo many '"yes slipway | head -n 40000000"' '')")
echo "3. 40 million lines: $(validate "$many"); database +$(( $(db) - before )) kB"
echo "server RSS idle $idle kB; peak (VmHWM) $(awk '/VmHWM/ {print $2}' /proc/$pid/status) kB"
